"""matmul: ``C = A @ B`` in FP32 with M/N tiles and the full K per tile (pypto-lib
beginner/matmul).

    C[m, n] = sum_k A[m, k] * B[k, n]

``A`` is FP32 ``[M, k]``, ``B`` FP32 ``[k, n]``, ``C`` FP32 ``[M, n]``. Two nested
``pl.parallel`` loops walk ``m_tile x n_tile`` output tiles; each tile is one ``pl.matmul`` of
an ``[m_tile, k]`` row panel by a ``[k, n_tile]`` column panel. ``M`` is dynamic by default:
a partial last row panel is loaded with ``valid_shape``, ``pl.fillpad``-ed (zero rows, so the
matmul reads only defined data) and its product is stored through a ``valid_shape`` view so
only the valid rows reach ``C``.
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import matmul_golden as golden

__all__ = ["M", "N", "K", "M_TILE", "N_TILE", "build", "golden", "make_inputs", "run"]

M = 256
N = 256
K = 256
M_TILE = 64
N_TILE = 64

# CLI tolerance (as upstream, 1e-3 there): FP32 accumulation over K=256 standard-normal
# products; the tests use the elementwise bound gamma_K * (|A| @ |B|) instead.
RTOL = ATOL = 1e-4


def build(
    k: int = K,
    n: int = N,
    m_tile: int = M_TILE,
    n_tile: int = N_TILE,
    m: int | None = None,
) -> pl.Program:
    """The program ``Matmul`` with entry ``matmul(a, b, c)``.

    ``m=None`` makes the row dim ``pl.dynamic("M")``. ``n`` must be a multiple of ``n_tile``.
    """
    if n % n_tile:
        raise ValueError(f"n={n} must be a multiple of n_tile={n_tile}")
    Mdim = pl.dynamic("M") if m is None else m

    @pl.program
    class Matmul:
        @pl.function(type=pl.FunctionType.Opaque)
        def matmul(
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
                        a_part = pl.slice(a, [m_tile, k], [mb, 0], valid_shape=[valid, k])
                        tile_a = pl.fillpad(a_part)
                        tile_b = pl.slice(b, [k, n_tile], [0, nb])
                        prod = pl.matmul(tile_a, tile_b, out_dtype=pl.FP32)
                        tile_c = pl.slice(
                            prod, [m_tile, n_tile], [0, 0], valid_shape=[valid, n_tile]
                        )
                        c = pl.assemble(c, tile_c, [mb, nb])
            return c

    return Matmul


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``Matmul``) and a static one (``Matmul_m37``)."""
    return {"Matmul": build(), "Matmul_m37": build(m=37)}


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
        build(**build_kw), "matmul", [inp["a"], inp["b"]], c, strict=strict, precision=precision
    )
    return out, golden(inp["a"], inp["b"])


if __name__ == "__main__":
    raise SystemExit(_harness.main("matmul", run, RTOL, ATOL, M))
