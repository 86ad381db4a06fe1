"""rope: half-split rotary position embedding with one cos/sin row (pypto-lib
intermediate/rope).

    y_lo = x_lo * cos_lo - x_hi * sin_lo
    y_hi = x_hi * cos_hi + x_lo * sin_hi          y = [y_lo | y_hi]

``x``/``y`` are FP32 ``[rows, head_dim]`` (upstream: ``batch * num_heads`` rows of one
position, ``[16*8, 128]``); ``cos``/``sin`` are FP32 ``[1, head_dim]`` rows shared by every
row and applied with ``col_expand_mul``. Row tiles of ``row_tile`` rows run under
``pl.parallel``; the lo/hi column halves are separate ``pl.slice`` windows and are stored to
the two column halves of ``y`` with two ``pl.assemble``. ``rows`` is dynamic by default; the
tail tile carries ``valid_shape`` from its slices to its stores.
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import rope_golden as golden

__all__ = ["ROWS", "HEAD_DIM", "ROW_TILE", "build", "golden", "make_inputs", "run"]

ROWS = 16 * 8
HEAD_DIM = 128
ROW_TILE = 8

# FP32: two products and one add/sub per element (cancellation -> absolute term).
RTOL = ATOL = 1e-5


def build(
    head_dim: int = HEAD_DIM, row_tile: int = ROW_TILE, rows: int | None = None
) -> pl.Program:
    """The program ``RoPE`` with entry ``rope(x, cos, sin, y)``.

    ``rows=None`` makes the row dim ``pl.dynamic("ROWS")``. ``head_dim`` must be even.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be even")
    half = head_dim // 2
    R = pl.dynamic("ROWS") if rows is None else rows

    @pl.program
    class RoPE:
        @pl.function(type=pl.FunctionType.Opaque)
        def rope(
            self,
            x: pl.Tensor[[R, head_dim], pl.FP32],
            cos: pl.Tensor[[1, head_dim], pl.FP32],
            sin: pl.Tensor[[1, head_dim], pl.FP32],
            y: pl.Out[pl.Tensor[[R, head_dim], pl.FP32]],
        ) -> pl.Tensor[[R, head_dim], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for r in pl.parallel(0, n, row_tile, chunk=4):
                    valid = pl.min(row_tile, n - r)
                    cos_lo = pl.slice(cos, [1, half], [0, 0])
                    cos_hi = pl.slice(cos, [1, half], [0, half])
                    sin_lo = pl.slice(sin, [1, half], [0, 0])
                    sin_hi = pl.slice(sin, [1, half], [0, half])
                    x_lo = pl.slice(x, [row_tile, half], [r, 0], valid_shape=[valid, half])
                    x_hi = pl.slice(x, [row_tile, half], [r, half], valid_shape=[valid, half])
                    rot_lo = pl.sub(
                        pl.col_expand_mul(x_lo, cos_lo), pl.col_expand_mul(x_hi, sin_lo)
                    )
                    rot_hi = pl.add(
                        pl.col_expand_mul(x_hi, cos_hi), pl.col_expand_mul(x_lo, sin_hi)
                    )
                    y = pl.assemble(y, rot_lo, [r, 0])
                    y = pl.assemble(y, rot_hi, [r, half])
            return y

    return RoPE


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``RoPE``) and a static one (``RoPE_rows37``)."""
    return {"RoPE": build(), "RoPE_rows37": build(rows=37)}


def make_inputs(
    rows: int = ROWS, head_dim: int = HEAD_DIM, seed: int = 0, position: int = 7
) -> dict[str, np.ndarray]:
    """Random FP32 ``x``; ``cos``/``sin`` rows of one position with the usual inverse
    frequencies ``theta**(-2i/head_dim)`` (theta = 1e6, Qwen3), duplicated over both halves."""
    rng = np.random.default_rng(seed)
    inv_freq = 1e6 ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.concatenate([position * inv_freq, position * inv_freq]).reshape(1, head_dim)
    return {
        "x": rng.standard_normal((rows, head_dim), dtype=np.float32),
        "cos": np.cos(angles).astype(np.float32),
        "sin": np.sin(angles).astype(np.float32),
    }


def run(
    rows: int = ROWS, seed: int = 0, strict: bool = False, precision: str = "bf16", **build_kw
) -> tuple[np.ndarray, np.ndarray]:
    """Build, interpret on random inputs; returns (kernel output, golden)."""
    head_dim = build_kw.get("head_dim", HEAD_DIM)
    inp = make_inputs(rows, head_dim, seed)
    y = _harness.new_output((rows, head_dim), "FP32")
    out = _harness.interpret(
        build(**build_kw),
        "rope",
        [inp["x"], inp["cos"], inp["sin"]],
        y,
        strict=strict,
        precision=precision,
    )
    return out, golden(inp["x"], inp["cos"], inp["sin"])


if __name__ == "__main__":
    raise SystemExit(_harness.main("rope", run, RTOL, ATOL, ROWS))
