"""softmax: numerically stable row softmax (pypto-lib intermediate/softmax).

    y[r, :] = exp(x[r, :] - max(x[r, :])) / sum(exp(x[r, :] - max(x[r, :])))

``x``/``y`` FP32 ``[rows, cols]``; each ``row_tile``-row tile holds whole rows:
``row_max`` -> ``row_expand_sub`` -> ``exp`` -> ``row_sum`` -> ``row_expand_div``. All steps
are row-local, so the dynamic-row tail tile carries ``valid_shape=[valid, cols]`` from its
slice to its store (its undefined rows are never reduced into a valid row).
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import softmax_golden as golden

__all__ = ["ROWS", "COLS", "ROW_TILE", "build", "golden", "make_inputs", "run"]

ROWS = 512
COLS = 256
ROW_TILE = 32

# FP32: exp correctly rounded, sum over cols, one division (upstream: 1e-5).
RTOL = 1e-5
ATOL = 1e-7


def build(cols: int = COLS, row_tile: int = ROW_TILE, rows: int | None = None) -> pl.Program:
    """The program ``Softmax`` with entry ``softmax(x, y)``.

    ``rows=None`` makes the row dim ``pl.dynamic("ROWS")``.
    """
    R = pl.dynamic("ROWS") if rows is None else rows

    @pl.program
    class Softmax:
        @pl.function(type=pl.FunctionType.Opaque)
        def softmax(
            self,
            x: pl.Tensor[[R, cols], pl.FP32],
            y: pl.Out[pl.Tensor[[R, cols], pl.FP32]],
        ) -> pl.Tensor[[R, cols], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for r in pl.parallel(0, n, row_tile, chunk=1):
                    valid = pl.min(row_tile, n - r)
                    tile_x = pl.slice(x, [row_tile, cols], [r, 0], valid_shape=[valid, cols])
                    row_max = pl.row_max(tile_x)
                    shifted = pl.row_expand_sub(tile_x, row_max)
                    exps = pl.exp(shifted)
                    row_sum = pl.row_sum(exps)
                    probs = pl.row_expand_div(exps, row_sum)
                    y = pl.assemble(y, probs, [r, 0])
            return y

    return Softmax


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``Softmax``) and a static one (``Softmax_rows37``)."""
    return {"Softmax": build(), "Softmax_rows37": build(rows=37)}


def make_inputs(rows: int = ROWS, cols: int = COLS, seed: int = 0) -> dict[str, np.ndarray]:
    """Random FP32 ``x`` (standard normal, times 4 so rows have a dominant entry)."""
    rng = np.random.default_rng(seed)
    return {"x": (4.0 * rng.standard_normal((rows, cols))).astype(np.float32)}


def run(
    rows: int = ROWS, seed: int = 0, strict: bool = False, precision: str = "bf16", **build_kw
) -> tuple[np.ndarray, np.ndarray]:
    """Build, interpret on random inputs; returns (kernel output, golden)."""
    cols = build_kw.get("cols", COLS)
    inp = make_inputs(rows, cols, seed)
    y = _harness.new_output((rows, cols), "FP32")
    out = _harness.interpret(
        build(**build_kw), "softmax", [inp["x"]], y, strict=strict, precision=precision
    )
    return out, golden(inp["x"])


if __name__ == "__main__":
    raise SystemExit(_harness.main("softmax", run, RTOL, ATOL, ROWS))
