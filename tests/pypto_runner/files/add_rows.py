"""A pypto-lib-style file: a @pl.jit kernel, build_specs(), a golden, run_jit (NumPy dtypes)."""

import numpy as np
import pypto.language as pl

ROWS, COLS, TILE = 32, 16, 8
GOLDEN_BIAS_SCALE = 1.0  # the wrong-golden test writes a copy with 2.0


@pl.jit
def add_rows(
    x: pl.Tensor[[ROWS, COLS], pl.FP32],
    b: pl.Tensor[[1, COLS], pl.FP32],
    a: pl.Scalar[pl.FP32],
    y: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]],
):
    for r in pl.parallel(0, ROWS, TILE):
        with pl.at(level=pl.Level.CORE_GROUP, name_hint="scale_add"):
            t = pl.mul(x[r : r + TILE, :], a)
            y[r : r + TILE, :] = pl.col_expand_add(t, b)
    return y


def build_specs(rows: int = ROWS, cols: int = COLS, a: float = 0.5):
    from golden import ScalarSpec, TensorSpec

    return [
        TensorSpec("x", [rows, cols], np.float32, init_value=np.random.randn),
        TensorSpec("b", [1, cols], np.float32, init_value=np.random.randn),
        ScalarSpec("a", np.float32, a),
        TensorSpec("y", [rows, cols], np.float32, is_output=True),
    ]


def golden_add_rows(values):
    values["y"][:] = values["x"] * values["a"] + GOLDEN_BIAS_SCALE * values["b"]


if __name__ == "__main__":
    import argparse

    from golden import run_jit

    parser = argparse.ArgumentParser()
    parser.add_argument("-p", "--platform", default="a2a3", choices=["a2a3", "a2a3sim"])
    parser.add_argument("-d", "--device", type=int, default=0)
    args = parser.parse_args()
    result = run_jit(
        fn=add_rows,
        specs=build_specs(),
        golden_fn=golden_add_rows,
        runtime_cfg=dict(platform=args.platform, device_id=args.device),
        rtol=1e-5,
        atol=1e-5,
    )
    if not result.passed:
        raise SystemExit(1)
