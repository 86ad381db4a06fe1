"""gemm: K-tiled FP32 GEMM ``C = A @ B`` (pypto-lib intermediate/gemm).

    C[m, n] = sum_kb A[m, kb*k_tile:(kb+1)*k_tile] @ B[kb*k_tile:(kb+1)*k_tile, n]

Like ``matmul`` but the contraction is split into ``k // k_tile`` blocks walked by a
sequential ``pl.range``. The accumulator is declared with ``pl.create_tensor`` (a type
placeholder, never read while undefined) and rebound inside the loop with the canonical idiom
``if kb == 0: acc = pl.matmul(...)`` / ``else: acc = pl.matmul_acc(acc, ...)``. FP32 in, FP32
accumulate, FP32 out. ``M`` is dynamic by default; the tail row panel is ``fillpad``-ed before
the matmuls and stored through a ``valid_shape`` view.
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import gemm_golden as golden

__all__ = ["M", "N", "K", "M_TILE", "N_TILE", "K_TILE", "build", "golden", "make_inputs", "run"]

M = 256
N = 256
K = 256
M_TILE = 64
N_TILE = 64
K_TILE = 64

# CLI tolerance (upstream: 1e-3); the tests use gamma_(K + K/k_tile) * (|A| @ |B|).
RTOL = ATOL = 1e-4


def build(
    k: int = K,
    n: int = N,
    m_tile: int = M_TILE,
    n_tile: int = N_TILE,
    k_tile: int = K_TILE,
    m: int | None = None,
) -> pl.Program:
    """The program ``Gemm`` with entry ``gemm(a, b, c)``.

    ``m=None`` makes the row dim ``pl.dynamic("M")``. ``n`` and ``k`` must be multiples of
    ``n_tile`` and ``k_tile``.
    """
    if n % n_tile or k % k_tile:
        raise ValueError(f"n={n}, k={k} must be multiples of n_tile={n_tile}, k_tile={k_tile}")
    k_blocks = k // k_tile
    Mdim = pl.dynamic("M") if m is None else m

    @pl.program
    class Gemm:
        @pl.function(type=pl.FunctionType.Opaque)
        def gemm(
            self,
            a: pl.Tensor[[Mdim, k], pl.FP32],
            b: pl.Tensor[[k, n], pl.FP32],
            c: pl.Out[pl.Tensor[[Mdim, n], pl.FP32]],
        ) -> pl.Tensor[[Mdim, n], pl.FP32]:
            rows = pl.tensor.dim(a, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for mb in pl.parallel(0, rows, m_tile, chunk=2):
                    valid = pl.min(m_tile, rows - mb)
                    for nb in pl.parallel(0, n, n_tile, chunk=2):
                        acc = pl.create_tensor([m_tile, n_tile], dtype=pl.FP32)
                        for kb in pl.range(k_blocks):
                            k0 = kb * k_tile
                            a_part = pl.slice(
                                a, [m_tile, k_tile], [mb, k0], valid_shape=[valid, k_tile]
                            )
                            tile_a = pl.fillpad(a_part)
                            tile_b = pl.slice(b, [k_tile, n_tile], [k0, nb])
                            if kb == 0:
                                acc = pl.matmul(tile_a, tile_b, out_dtype=pl.FP32)
                            else:
                                acc = pl.matmul_acc(acc, tile_a, tile_b)
                        tile_c = pl.slice(
                            acc, [m_tile, n_tile], [0, 0], valid_shape=[valid, n_tile]
                        )
                        c = pl.assemble(c, tile_c, [mb, nb])
            return c

    return Gemm


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``Gemm``) and a static one (``Gemm_m37``)."""
    return {"Gemm": build(), "Gemm_m37": build(m=37)}


def make_inputs(m: int = M, k: int = K, n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """Random FP32 ``a`` ``[m, k]`` and ``b`` ``[k, n]`` (standard normal)."""
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal((m, k), dtype=np.float32),
        "b": rng.standard_normal((k, n), dtype=np.float32),
    }


def run(
    rows: int = M, seed: int = 0, strict: bool = False, precision: str = "bf16", **build_kw
) -> tuple[np.ndarray, np.ndarray]:
    """Build, interpret on random inputs (``rows`` = M); returns (kernel output, golden)."""
    k, n = build_kw.get("k", K), build_kw.get("n", N)
    inp = make_inputs(rows, k, n, seed)
    c = _harness.new_output((rows, n), "FP32")
    out = _harness.interpret(
        build(**build_kw), "gemm", [inp["a"], inp["b"]], c, strict=strict, precision=precision
    )
    return out, golden(inp["a"], inp["b"])


if __name__ == "__main__":
    raise SystemExit(_harness.main("gemm", run, RTOL, ATOL, M))
