"""pypto-lib's qwen3_14b/decode_layer_a8w8.py form: jit entries with bare `pl.Tensor`
parameters. `scaled` is specialised only by the file's own compile-only harness
(`-p a2a3sim` lowers it); `unused` is never called in this file; `fixed` is fully annotated."""

import argparse

import numpy as np
import pypto.language as pl
from sizes import COLS, ROWS


@pl.jit
def scaled(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.mul(x, 3.0), [0, 0])
    return y


@pl.jit
def unused(x: pl.Tensor, w: pl.Tensor, y: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.add(x, w), [0, 0])
    return y


@pl.jit
def fixed(x: pl.Tensor[[ROWS, COLS], pl.FP32], y: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.add(x, 1.0), [0, 0])
    return y


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-p", "--platform", default="a2a3")
    args = parser.parse_args()
    x, y = np.ones((ROWS, COLS), np.float32), np.zeros((ROWS, COLS), np.float32)
    if args.platform.endswith("sim"):
        program = scaled.lower(x, y)
        print(f"Lowered {len(program.functions)} function(s).")
        raise SystemExit(0)
    scaled(x, y)
    assert np.array_equal(y, 3 * x)
