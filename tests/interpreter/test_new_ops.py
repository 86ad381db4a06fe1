"""The ops of issue 10 on the interpreter against NumPy oracles (tests/new_ops_checks.py),
in the default and the strict mode."""

from __future__ import annotations

import numpy as np
import pytest
from new_ops_checks import make_tests

import pldsl as pl
from pldsl import interpreter


def _run(program, *args):
    return interpreter.run(program, "k", *args, precision="bf16")


def _run_strict(program, *args):
    return interpreter.run(program, "k", *args, precision="bf16", strict=True)


globals().update(make_tests(_run))
globals().update({f"{k}_strict": v for k, v in make_tests(_run_strict).items()})


# ------------------------------------------------------------------ type rules: located errors

_ERR_SRC = """\
import pldsl as pl


@pl.program
class P:
    @pl.function
    def k(
        self,
        x: pl.Tensor[[16, 64], pl.FP32],
        i: pl.Tensor[[16, 8], pl.FP32],
        x3: pl.Tensor[[2, 16, 64], pl.FP32],
        v3: pl.Tensor[[2, 16, 2], pl.FP32],
        xi: pl.Tensor[[16, 64], pl.INT32],
    ):
        r = {call}
        return r
"""

TYPE_ERRORS = [
    ("pl.arange(0, [2, 64], dtype=pl.INT32)",
     "tensor.ci only populates the first row because pto.tci ignores valid rows; leading "
     "dimensions must be 1, but got 2 at index 0"),
    ("pl.arange(0, [1, 1])", "tensor.ci requires the innermost dimension (Cols) to be != 1, got 1"),
    ("pl.arange(0, [1, 64], dtype=pl.FP32)",
     "tensor.ci dtype must be one of {INT16, INT32, UINT16, UINT32}, but got FP32"),
    ("pl.set_validshape(x3, 1, 1)", "tensor.set_validshape requires a 2D tensor, but got rank 3"),
    ("pl.set_validshape(x, 17, 4)",
     "tensor.set_validshape valid_rows (17) exceeds tensor bound 16"),
    ("pl.transpose(x, 0, 2)", "tensor.transpose axis2 (2) out of range for a rank-2 tensor"),
    ("pl.concat(x, xi)", "tensor.concat requires matching dtypes, but got FP32 and INT32"),
    ("pl.concat(x, x3)", "tensor.concat requires operands of the same rank, but got 2 and 3"),
    ("pl.gather(x, dim=-1, index=i)",
     "tensor.gather index must be INT32 (or INT16 with a 16-bit input), but got FP32"),
    ("pl.gather(x3, dim=-1, index=i)",
     "tensor.gather supports only rank-2 inputs with dim == -1 (or rank - 1), but got rank 3 "
     "and dim -1"),
    ("pl.gather(x, mask_pattern=1, dim=-1)",
     "gather() index form (dim, index), mask form (mask_pattern=...) and compare form"),
    ("pl.gather(x, mask_pattern=9)", "gather mask_pattern must be 1..7"),
    ("pl.gather(x, mask_pattern=1, output_dtype=pl.INT16)",
     "gather output_dtype INT16 must have the same bit width as the input FP32"),
    ("pl.gather(x, dim=-1, index=xi, output_dtype=pl.INT32)",
     "output_dtype is only valid for the mask form of gather()"),
    ("pl.scatter(i, mask_pattern=1, dst=x, dim=-1)",
     "scatter() index form (dim, index, src) and mask form (mask_pattern, dst) are mutually "
     "exclusive"),
    ("pl.scatter(i, mask_pattern=1)", "scatter() mask form requires both mask_pattern and dst"),
    ("pl.scatter(i, dst=x)", "scatter() mask form requires both mask_pattern and dst"),
    ("pl.scatter(i, mask_pattern=8, dst=pl.slice(x, [16, 16], [0, 0]))",
     "The operator tensor.scatter_mask requires mask_pattern in [1, 7], but got 8"),
    ("pl.scatter(i, mask_pattern=1, dst=pl.slice(xi, [16, 16], [0, 0]))",
     "The operator tensor.scatter_mask requires input and dst to have the same dtype, got FP32 "
     "vs INT32"),
    ("pl.scatter(i, mask_pattern=3, dst=pl.slice(x, [16, 16], [0, 0]))",
     "The operator tensor.scatter_mask with mask_pattern=3 requires dst.shape[1] (16) == "
     "input.shape[1] (8) * 4"),
    ("pl.scatter(i, mask_pattern=1, dst=pl.slice(x, [16, 17], [0, 0]))",
     "requires dst.shape[1] (17) == input.shape[1] (8) * 2"),
    ("pl.scatter(i, mask_pattern=7, dst=pl.slice(x, [16, 9], [0, 0]))",
     "requires dst.shape[1] (9) == input.shape[1] (8) * 1"),
    ("pl.scatter(i, mask_pattern=1, dst=pl.slice(x, [15, 16], [0, 0]))",
     "The operator tensor.scatter_mask requires input.shape[0] == dst.shape[0], got input rows "
     "16 vs dst rows 15"),
    ("pl.scatter(v3, mask_pattern=1, dst=x3)",
     "The operator tensor.scatter_mask requires 2D input/dst, but got input rank 3 and dst rank 3"),
    ("pl.cmp(x, x, cmp_type=6)", "tensor.cmp cmp_type must be an integer in 0..5, but got 6"),
    ("pl.fmods(xi, 0.5)", "tensor.fmods of an integer tensor (INT32) needs an integer divisor"),
    ("pl.row_argmax(pl.reshape(x, [1024]))",
     "The operator tensor.row_argmax requires at least a 2D tensor, but got 1D"),
    ("pl.row_expand_mul(x3, v3)",
     "The operator row_expand_mul requires second argument's last dimension to be 1, but got "
     "[2, 16, 2]"),
    ("pl.col_expand(x3, x3)",
     "The operator col_expand requires second argument's second-to-last dimension (row) to be 1, "
     "but got [2, 16, 64]"),
    ("pl.row_expand(pl.reshape(x, [1024]), pl.reshape(x, [1024]))",
     "The operator row_expand requires first argument to have at least 2 dimensions, but got 1 "
     "dimensions"),
    ("pl.col_expand_expdif(xi, pl.slice(xi, [1, 64], [0, 0]))",
     "The operator col_expand_expdif requires floating-point operands, but got INT32 and INT32"),
    ("pl.create_tensor([4, 4], dtype=pl.FP32, valid_shape=[5, 4])",
     "valid_shape [5, 4] is wider than the shape [4, 4] on axis 0"),
    ("pl.sort32(xi, pl.cast(xi, pl.UINT32))",
     "The operator tensor.sort32 requires src dtype to be FP16 or FP32, but got INT32"),
    ("pl.sort32(pl.cast(x, pl.FP16), pl.cast(xi, pl.UINT32))",
     "tensor.sort32 of an FP16 src is not supported by pldsl"),
    ("pl.sort32(i, pl.cast(i, pl.UINT32))",
     "The operator tensor.sort32 requires the last dimension to be a positive multiple of 32, "
     "but got 8"),
    ("pl.sort32(x, xi)", "The operator tensor.sort32 requires idx dtype to be UINT32, but got INT32"),
    ("pl.sort32(x, pl.cast(x3, pl.UINT32))",
     "The operator tensor.sort32 requires idx rank (3) to match src rank (2)"),
    ("pl.mrgsort(x, block_len=96)",
     "The operator tensor.mrgsort_format1 requires block_len to be a positive multiple of 64, "
     "but got 96"),
    ("pl.mrgsort(x, x, block_len=64)",
     "mrgsort() format1 (block_len=...) and format2 (src1, ...) are mutually exclusive"),
    ("pl.mrgsort(x)", "mrgsort() requires either block_len=<int> for format1, or at least"),
    ("pl.mrgsort(x, x, src3=x)", "mrgsort() format2 requires src2 when src3 is provided"),
    ("pl.mrgsort(x, xi)",
     "The operator tensor.mrgsort_format2 requires all src tensors to have matching dtype, but "
     "argument 1 has INT32 (expected FP32)"),
    ("pl.mrgsort(x, x3)",
     "The operator tensor.mrgsort_format2 requires all src tensors to have matching rank"),
    ("pl.mrgsort(x, pl.transpose(x, 0, 1))",
     "requires all src tensors to match shape on non-concat axis 0, but argument 1 differs"),
    ("pl.matmul(x3, pl.slice(x3, [3, 64, 16], [0, 0, 0]))",
     "Cannot broadcast batch dimensions for tensor.matmul"),
    ("pl.matmul(pl.reshape(x, [1024]), x)", "matmul needs operands of rank >= 2, got ranks 1 and 2"),
    ("pl.assemble(x, x3, [0, 0])", "assemble of a rank-3 source into a rank-2 target"),
    ("pl.gather(x, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq', out_cols=4, offset=2)",
     "tensor.gather_compare with offset=2 is not supported by pldsl"),
    ("pl.gather(xi, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq', out_cols=4)",
     "requires kvalue dtype equal to src dtype INT32, but got FP32"),
    ("pl.gather(x, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='xx', out_cols=4)",
     "requires cmp_mode in [0, 5] (eq/ne/lt/le/gt/ge), but got 'xx'"),
    ("pl.gather(x, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode=6, out_cols=4)", "requires cmp_mode in [0, 5]"),
    ("pl.gather(x, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq', out_cols=0)",
     "The operator tensor.gather_compare requires out_cols > 0, but got 0"),
    ("pl.gather(x, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq')",
     "gather() compare form requires kvalue, cmp_mode and out_cols all set"),
    ("pl.gather(x, dim=-1, index=xi, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq', out_cols=4)",
     "are mutually exclusive; do not mix kwargs from different forms"),
    ("pl.gather(x3, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq', out_cols=4)",
     "The operator tensor.gather_compare requires 2D input, but got rank 3"),
    ("pl.gather(x, kvalue=pl.tensor.read(x, [0, 0]), cmp_mode='eq', out_cols=4, count_dtype=pl.INT16)",
     "requires count_dtype to be INT32 or UINT32, but got INT16"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), TYPE_ERRORS)
def test_type_rule_errors_are_located(call, message):
    """Each type rule rejects with PyPTO's wording, located at the call."""
    src = _ERR_SRC.format(call=call)
    with pytest.raises(pl.CaptureError) as info:
        pl.capture_source(src, "<new-ops>")
    d = info.value.diagnostic
    assert message in d.message, d.message
    line = next(n for n, text in enumerate(src.splitlines(), 1) if "r = " in text)
    assert d.span.line == line
    assert d.span.col == src.splitlines()[line - 1].index(call.split("(")[0]) + 1


def test_rank3_expand_is_accepted_with_broadcast_leading_axes():
    src = _ERR_SRC.format(call="pl.row_expand_add(x3, pl.slice(v3, [1, 16, 1], [0, 0, 0]))")
    (prog,) = pl.capture_source(src, "<new-ops>")
    x3 = np.arange(2 * 16 * 64, dtype=np.float32).reshape(2, 16, 64)
    v3 = np.zeros((2, 16, 2), np.float32)
    v3[0, :, 0] = np.arange(16)
    z = np.zeros((16, 64), np.float32)
    got = interpreter.run(prog, "k", z, z[:, :8], x3, v3, z.astype(np.int32))
    assert np.array_equal(got, x3 + np.arange(16, dtype=np.float32)[None, :, None])


def test_batched_matmul_broadcasts_batch_axes():
    """[2, M, K] @ [K, N] -> [2, M, N] (the interpreter; the C backend takes batch axes of 1
    only), against NumPy's matmul on exact small integers."""
    src = _ERR_SRC.format(call="pl.matmul(x3, pl.transpose(x, 0, 1), out_dtype=pl.FP32)")
    (prog,) = pl.capture_source(src, "<new-ops>")
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (16, 64)).astype(np.float32)
    x3 = rng.integers(-3, 4, (2, 16, 64)).astype(np.float32)
    args = (x, np.zeros((16, 8), np.float32), x3, np.zeros((2, 16, 2), np.float32),
            np.zeros((16, 64), np.int32))  # fmt: skip
    got = np.asarray(interpreter.run(prog, "k", *args))
    assert got.shape == (2, 16, 16)
    assert np.array_equal(got, x3 @ x.T)
