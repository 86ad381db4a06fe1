"""`out, tid = pl.spmd_submit(self.kernel, *args, core_num=N, deps=[...])` (pypto-lib's
DeepSeek-V4-Pro MoE reduce): the kernel runs on N SPMD blocks as one task named `tid`, the
same as `with pl.spmd(N, deps=[...]) as tid: out = self.kernel(*args)`. `pl.no_dep(x)` is `x`.
Values are checked against plain NumPy."""

import numpy as np
import pytest

import pldsl as pl
from pldsl.diagnostics import CaptureError

T, D = 6, 16


@pl.jit.incore
def row_sum(
    a: pl.Tensor[[T, D], pl.FP32],
    b: pl.Tensor[[T, D], pl.FP32],
    out: pl.Out[pl.Tensor[[T, D], pl.FP32]],
    n: pl.Scalar[pl.INT32],
):
    t = pl.tile.get_block_idx()
    if t < pl.cast(n, pl.INDEX):
        out[t : t + 1, :] = pl.add(a[t : t + 1, :], b[t : t + 1, :])
    else:
        out[t : t + 1, :] = a[t : t + 1, :]
    return out


@pl.jit
def submit_rows(
    a: pl.Tensor[[T, D], pl.FP32],
    b: pl.Tensor[[T, D], pl.FP32],
    out: pl.Out[pl.Tensor[[T, D], pl.FP32]],
    n: pl.Scalar[pl.INT32],
):
    with pl.at(level=pl.Level.CORE_GROUP, name_hint="scale") as first:
        b2 = pl.mul(b, 2.0)
    out, tid = pl.spmd_submit(
        self.row_sum,  # noqa: F821 - a @pl.program method under PyPTO's jit
        a,
        pl.no_dep(b2),
        out,
        n,
        core_num=T,
        deps=[first],
    )
    with pl.at(level=pl.Level.CORE_GROUP, deps=[tid]):
        out[0:T, :] = pl.add(out, 1.0)
    return out


def test_each_block_runs_the_kernel_with_its_index():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((T, D)).astype(np.float32)
    b = rng.standard_normal((T, D)).astype(np.float32)
    out = np.zeros_like(a)
    submit_rows(a, b, out, 4)
    want = a.copy()
    want[:4] += np.float32(2) * b[:4]
    np.testing.assert_array_equal(out, want + np.float32(1))


def test_captured_as_a_task_around_an_spmd_grid():
    a = np.zeros((T, D), np.float32)
    p = submit_rows.specialize(a, a, a.copy(), 4)
    text = pl.print_ir(p)
    assert "with pl.task(deps=[first]) as tid:" in text
    assert f"in pl.spmd(0, {T}, 1, form='with'):" in text
    assert "self.row_sum(a, b2, out, n)" in text
    assert pl.structural_equal(pl.parse_ir(text), p)
    assert [d for d in pl.check(p) if d.is_error] == []


SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def k(self, x: pl.Tensor[[4, 8], pl.FP32], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]) -> pl.Tensor[[4, 8], pl.FP32]:
        y = pl.assemble(y, pl.slice(x, [1, 8], [pl.tile.get_block_idx(), 0]), [pl.tile.get_block_idx(), 0])
        return y

    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, x: pl.Tensor[[4, 8], pl.FP32], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]) -> pl.Tensor[[4, 8], pl.FP32]:
        STMT
        return y
"""


@pytest.mark.parametrize(
    "stmt, message",
    [
        ("y = pl.spmd_submit(self.k, x, y, core_num=4)", "must be unpacked as a 2-tuple"),
        ("y, t = pl.spmd_submit(self.k, x, y)", "needs core_num="),
        ("y, t = pl.spmd_submit(x, y, core_num=4)", "first argument is the kernel, as self.kernel"),
        (
            "y, t = pl.spmd_submit(self.k, x, y, core_num=4, predicate=(x,))",
            "pl.spmd_submit(..., predicate=) is not supported",
        ),
    ],
)
def test_misuse_is_one_located_diagnostic(stmt, message):
    with pytest.raises(CaptureError) as err:
        pl.capture_source(SRC.replace("STMT", stmt), "<spmd-submit>.py")
    assert message in err.value.diagnostic.message


def test_program_form_calls_the_program_function():
    (p,) = pl.capture_source(
        SRC.replace("STMT", "y, t = pl.spmd_submit(self.k, x, y, core_num=4)"), "<s>.py"
    )
    from pldsl import interpreter

    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    y = np.zeros_like(x)
    interpreter.run(p, "f", x, y)
    np.testing.assert_array_equal(y, x)
