"""PyPTO's kernel-driven paged gather: `create_l1` allocates an on-chip (L1) accumulator with
a tensor type, `gather_row` copies one window of a global tensor into it (in place, returning
it), optionally transposed. Error messages follow PyPTO's type deducers' wording.
"""

from __future__ import annotations

from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.symbolic import static_value
from pldsl.ir.types import TensorType
from pldsl.ops.table import _dims, _tensor

P = OpParam


def _infer_create_l1(args: dict, attrs: dict) -> TensorType:
    op = "tensor.create_l1"
    shape = _dims(args, "shape")
    if not shape:
        raise TypeRuleError(f"The operator {op} requires a non-empty shape")
    for i, d in enumerate(shape):
        v = static_value(d)
        if v is None or v <= 0:
            raise TypeRuleError(
                f"The operator {op} shape element {i} must be a positive compile-time ConstInt"
            )
    return TensorType(shape, attrs["dtype"])


register(
    OpDef(
        "create_l1",
        (P("shape", "dims"), P("dtype", "dtype"), P("transpose", "attr", False)),
        _infer_create_l1,
        "An on-chip (L1) accumulator of static shape, contents undefined until gather_row "
        "writes them (transpose picks PyPTO's layout; no effect on values).",
        category="data",
        aliases=("tensor.create_l1",),
    )
)


def _infer_gather_row(args: dict, attrs: dict) -> TensorType:
    op = "tensor.gather_row"
    acc, src = _tensor(args, "acc"), _tensor(args, "src")
    if acc.dtype != src.dtype:
        raise TypeRuleError(
            f"The operator {op} requires acc and src to share dtype, but got {acc.dtype.name} "
            f"and {src.dtype.name}"
        )
    if acc.rank != 2 or src.rank != 2:
        raise TypeRuleError(f"{op} needs 2-D acc and src, got ranks {acc.rank} and {src.rank}")
    for name in ("dst_offset", "src_offset", "shapes"):
        if len(_dims(args, name)) != 2:
            raise TypeRuleError(f"{op} {name} must have 2 entries ([row, col])")
    if any(static_value(d) is None for d in _dims(args, "shapes")):
        raise TypeRuleError(f"{op} shapes must be compile-time constants")
    if args.get("valid_shape") is not None:
        if len(_dims(args, "valid_shape")) != 2:
            raise TypeRuleError(f"{op} valid_shape must have 2 entries ([row, col])")
        if attrs["transpose"]:
            raise TypeRuleError(f"{op} valid_shape is not supported together with transpose=True")
    return acc


register(
    OpDef(
        "gather_row",
        (
            P("acc", "tensor"),
            P("src", "tensor"),
            P("dst_offset", "dims"),
            P("src_offset", "dims"),
            P("shapes", "dims"),
            P("transpose", "attr", False),
            P("valid_shape", "dims", None),
        ),
        _infer_gather_row,
        "Copy src's window [src_offset, +valid_shape (default shapes)) into acc at dst_offset, "
        "in place (transpose=True: the [r, c] window lands as [c, r]); returns acc.",
        category="data",
        writes_arg=0,
        aliases=("tensor.gather_row",),
    )
)
