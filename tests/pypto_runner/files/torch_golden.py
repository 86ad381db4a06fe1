"""A pypto-lib file as written upstream: torch dtypes and a torch golden (needs torch)."""

import pypto.language as pl

M, N = 16, 32


@pl.jit
def silu_ish(x: pl.Tensor[[M, N], pl.BF16], y: pl.Out[pl.Tensor[[M, N], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        xf = pl.cast(x, target_type=pl.FP32)
        y = pl.assemble(y, pl.mul(xf, pl.recip(pl.add(pl.exp(pl.neg(xf)), 1.0))), [0, 0])
    return y


def build_specs():
    import torch
    from golden import TensorSpec

    return [
        TensorSpec("x", [M, N], torch.bfloat16, init_value=torch.randn),
        TensorSpec("y", [M, N], torch.float32, is_output=True),
    ]


def golden(values):
    x = values["x"].float()
    values["y"][:] = x * torch_sigmoid(x)


def torch_sigmoid(x):
    import torch

    return torch.sigmoid(x)


if __name__ == "__main__":
    from golden import run_jit

    result = run_jit(fn=silu_ish, specs=build_specs(), golden_fn=golden, rtol=1e-5, atol=1e-5)
    if not result.passed:
        raise SystemExit(1)
