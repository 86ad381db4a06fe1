"""elementwise_add: ``y = x + a`` with a scalar parameter (pypto-lib beginner/hello_world).

    y[r, c] = x[r, c] + a

``x`` and ``y`` are FP32 ``[rows, cols]``; ``a`` is a ``pl.Scalar[pl.FP32]`` parameter. Rows
are split into ``row_tile``-row tiles with ``pl.parallel`` and columns into ``col_tile``-wide
tiles with ``pl.range`` (the upstream example uses ``[1024, 512]`` with 128x256 tiles, the
defaults below). The row dim is dynamic by default (``rows=None``): the last row tile may be
partial, and is then loaded with ``valid_shape=[valid, col_tile]`` so that ``pl.assemble``
writes only its valid rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import elementwise_add_golden as golden

__all__ = ["ROWS", "COLS", "ROW_TILE", "COL_TILE", "build", "golden", "make_inputs", "run"]

ROWS = 1024
COLS = 512
ROW_TILE = 128
COL_TILE = 256
RTOL = ATOL = 1e-5  # one FP32 add, correctly rounded: at most 2**-24 relative error


def build(
    cols: int = COLS,
    row_tile: int = ROW_TILE,
    col_tile: int = COL_TILE,
    rows: int | None = None,
) -> pl.Program:
    """The program ``ElementwiseAdd`` with entry ``elementwise_add(x, a, y)``.

    ``rows=None`` makes the row dim ``pl.dynamic("ROWS")``; an int makes it static (a tail
    tile is still handled when it is not a multiple of ``row_tile``). ``cols`` must be a
    multiple of ``col_tile``.
    """
    if cols % col_tile:
        raise ValueError(f"cols={cols} must be a multiple of col_tile={col_tile}")
    R = pl.dynamic("ROWS") if rows is None else rows

    @pl.program
    class ElementwiseAdd:
        @pl.function(type=pl.FunctionType.Opaque)
        def elementwise_add(
            self,
            x: pl.Tensor[[R, cols], pl.FP32],
            a: pl.Scalar[pl.FP32],
            y: pl.Out[pl.Tensor[[R, cols], pl.FP32]],
        ) -> pl.Tensor[[R, cols], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for r in pl.parallel(0, n, row_tile, chunk=4):
                    valid = pl.min(row_tile, n - r)
                    for c in pl.range(0, cols, col_tile):
                        tile_x = pl.slice(
                            x, [row_tile, col_tile], [r, c], valid_shape=[valid, col_tile]
                        )
                        tile_y = pl.add(tile_x, a)
                        y = pl.assemble(y, tile_y, [r, c])
            return y

    return ElementwiseAdd


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``ElementwiseAdd``) and a static one (``ElementwiseAdd_rows37``)."""
    return {"ElementwiseAdd": build(), "ElementwiseAdd_rows37": build(rows=37)}


def make_inputs(rows: int = ROWS, cols: int = COLS, seed: int = 0) -> dict[str, Any]:
    """Random FP32 ``x`` (standard normal) and the scalar ``a``."""
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((rows, cols), dtype=np.float32), "a": 1.5}


def run(
    rows: int = ROWS, seed: int = 0, strict: bool = False, precision: str = "bf16", **build_kw
) -> tuple[np.ndarray, np.ndarray]:
    """Build, interpret on random inputs; returns (kernel output, golden)."""
    cols = build_kw.get("cols", COLS)
    inp = make_inputs(rows, cols, seed)
    y = _harness.new_output((rows, cols), "FP32")
    out = _harness.interpret(
        build(**build_kw),
        "elementwise_add",
        [inp["x"], inp["a"]],
        y,
        strict=strict,
        precision=precision,
    )
    return out, golden(inp["x"], inp["a"])


if __name__ == "__main__":
    raise SystemExit(_harness.main("elementwise_add", run, RTOL, ATOL, ROWS))
