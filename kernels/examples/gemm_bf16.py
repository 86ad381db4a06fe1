"""gemm_bf16: K-tiled GEMM with BF16 inputs, FP32 accumulation and a BF16 result
(the cast pattern of pypto-lib advanced/gemm_eltwise and the Qwen3 projections).

    C = bf16( sum_kb A_kb @ B_kb )      A, B: BF16;  accumulation: FP32;  C: BF16

Same loop nest as ``gemm``. The first K block is ``pl.matmul(..., out_dtype=pl.FP32)`` and the
rest ``pl.matmul_acc`` into the FP32 accumulator (BF16 x BF16 products are exact in FP32).
The **only** rounding to BF16 is one ``pl.cast(acc, pl.BF16)`` after the last K block (default
mode ``round``: ties away from zero). Casting per K block instead would round ``k // k_tile``
times and is measurably less accurate; the tests check both that the kernel matches the
single-rounding golden and that a per-block-rounding golden would not.
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import gemm_bf16_golden as golden

__all__ = ["M", "N", "K", "M_TILE", "N_TILE", "K_TILE", "build", "golden", "make_inputs", "run"]

M = 256
N = 256
K = 512
M_TILE = 64
N_TILE = 64
K_TILE = 128

# CLI tolerance: one BF16 rounding of the result (2**-8 relative) plus FP32 accumulation.
RTOL = 2.0**-7
ATOL = 1e-4


def build(
    k: int = K,
    n: int = N,
    m_tile: int = M_TILE,
    n_tile: int = N_TILE,
    k_tile: int = K_TILE,
    m: int | None = None,
) -> pl.Program:
    """The program ``GemmBF16`` with entry ``gemm_bf16(a, b, c)``.

    ``m=None`` makes the row dim ``pl.dynamic("M")``. ``n`` and ``k`` must be multiples of
    ``n_tile`` and ``k_tile``.
    """
    if n % n_tile or k % k_tile:
        raise ValueError(f"n={n}, k={k} must be multiples of n_tile={n_tile}, k_tile={k_tile}")
    k_blocks = k // k_tile
    Mdim = pl.dynamic("M") if m is None else m

    @pl.program
    class GemmBF16:
        @pl.function(type=pl.FunctionType.Opaque)
        def gemm_bf16(
            self,
            a: pl.Tensor[[Mdim, k], pl.BF16],
            b: pl.Tensor[[k, n], pl.BF16],
            c: pl.Out[pl.Tensor[[Mdim, n], pl.BF16]],
        ) -> pl.Tensor[[Mdim, n], pl.BF16]:
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
                        # The one BF16 rounding point: after the whole K reduction.
                        acc_bf16 = pl.cast(acc, pl.BF16)
                        tile_c = pl.slice(
                            acc_bf16, [m_tile, n_tile], [0, 0], valid_shape=[valid, n_tile]
                        )
                        c = pl.assemble(c, tile_c, [mb, nb])
            return c

    return GemmBF16


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``GemmBF16``) and a static one (``GemmBF16_m37``)."""
    return {"GemmBF16": build(), "GemmBF16_m37": build(m=37)}


def make_inputs(m: int = M, k: int = K, n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """BF16 ``a`` ``[m, k]`` and ``b`` ``[k, n]``: uniform(-1, 1), ``b`` scaled by
    1/sqrt(k) (the multi_proj convention), rounded to BF16."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, (m, k)).astype(np.float32)
    b = (rng.uniform(-1.0, 1.0, (k, n)) / np.sqrt(k)).astype(np.float32)
    return {"a": _harness.to_bf16(a), "b": _harness.to_bf16(b)}


def run(
    rows: int = M, seed: int = 0, strict: bool = False, precision: str = "bf16", **build_kw
) -> tuple[np.ndarray, np.ndarray]:
    """Build, interpret on random inputs (``rows`` = M); returns (kernel output, golden)."""
    k, n = build_kw.get("k", K), build_kw.get("n", N)
    inp = make_inputs(rows, k, n, seed)
    c = _harness.new_output((rows, n), "BF16", precision)
    out = _harness.interpret(
        build(**build_kw),
        "gemm_bf16",
        [inp["a"], inp["b"]],
        c,
        strict=strict,
        precision=precision,
    )
    return out, golden(inp["a"], inp["b"])


if __name__ == "__main__":
    raise SystemExit(_harness.main("gemm_bf16", run, RTOL, ATOL, M))
