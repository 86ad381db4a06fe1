"""A seed-era pypto-lib-style file: a @pl.program built by a function, run(config=RunConfig)."""

import numpy as np
import pypto.language as pl

N = 16


def build_program(n: int = N):
    @pl.program
    class Square:
        @pl.function(type=pl.FunctionType.Opaque)
        def square(x: pl.Tensor[[n, n], pl.FP32], y: pl.Out[pl.Tensor[[n, n], pl.FP32]]):
            with pl.at(level=pl.Level.CORE_GROUP, optimizations=[pl.split(pl.SplitMode.UP_DOWN)]):
                y = pl.assemble(y, pl.mul(x, x), [0, 0])
            return y

    return Square


def golden(values):
    values["y"][:] = values["x"] * values["x"]


if __name__ == "__main__":
    from golden import RunConfig, TensorSpec, run

    specs = [
        TensorSpec("x", [N, N], np.float32, init_value=np.random.rand),
        TensorSpec("y", [N, N], np.float32, is_output=True),
    ]
    result = run(
        program=build_program(),
        specs=specs,
        golden_fn=golden,
        config=RunConfig(rtol=1e-6, atol=1e-6, runtime=dict(platform="a2a3")),
    )
    if not result.passed:
        raise SystemExit(1)
