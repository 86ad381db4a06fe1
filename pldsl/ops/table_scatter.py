"""`scatter`: PyPTO's column scatter, the inverse of the index gather. Index form only (the
mask form is refused with a diagnostic). Error messages follow PyPTO's type deducers' wording.
"""

from __future__ import annotations

from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import format_dims
from pldsl.ir.symbolic import static_value
from pldsl.ir.types import TensorType
from pldsl.ops.table import _tensor

P = OpParam

ELEMENTS = ("FP16", "FP32", "BF16", "INT16", "INT32", "INT8")


def _infer_scatter(args: dict, attrs: dict) -> TensorType:
    op = "tensor.scatter"
    if attrs.get("mask_pattern") is not None or args.get("dst") is not None:
        raise TypeRuleError(
            "the mask form of scatter (mask_pattern=, dst=) is not supported by pldsl",
            "use the index form: pl.scatter(input, dim=-1, index=idx, src=values)",
        )
    if args.get("index") is None or args.get("src") is None or attrs.get("dim") is None:
        raise TypeRuleError("scatter() index form requires dim, index and src")
    x, idx, src = _tensor(args, "input"), _tensor(args, "index"), _tensor(args, "src")
    if x.dtype.name not in ELEMENTS:
        raise TypeRuleError(f"The operator {op} does not support input dtype {x.dtype.name}")
    if idx.dtype.name not in ("INT16", "INT32"):
        raise TypeRuleError(
            f"The operator {op} requires index dtype INT16 or INT32, got {idx.dtype.name}"
        )
    need = 2 if x.dtype.bits == 8 else x.dtype.bits // 8
    if idx.dtype.bits // 8 != need:
        raise TypeRuleError(
            f"The operator {op} with input dtype {x.dtype.name} ({x.dtype.bits // 8} bytes) "
            f"requires index dtype of {need} bytes, but got {idx.dtype.name} "
            f"({idx.dtype.bits // 8} bytes)"
        )
    if src.dtype != x.dtype:
        raise TypeRuleError(
            f"The operator {op} requires src dtype to match input, but got {src.dtype.name} and "
            f"{x.dtype.name}"
        )
    if x.rank != 2 or src.rank != 2 or idx.rank != 2:
        raise TypeRuleError(f"The operator {op} currently supports rank-2 input only")
    if attrs["dim"] not in (-1, 1):
        raise TypeRuleError(
            f"The operator {op} requires dim == -1 (or rank - 1), got {attrs['dim']}"
        )
    for axis in (0, 1):
        s, i, n = (static_value(t.shape[axis]) for t in (src, idx, x))
        if None not in (s, i) and s != i:
            raise TypeRuleError(
                f"The operator {op} requires index shape {format_dims(idx.shape)} to equal src "
                f"shape {format_dims(src.shape)}"
            )
        if None not in (s, n) and s > n:
            raise TypeRuleError(
                f"The operator {op} requires src {format_dims(src.shape)} to fit input "
                f"{format_dims(x.shape)}"
            )
    return TensorType(x.shape, x.dtype, x.valid_shape, None)


register(
    OpDef(
        "scatter",
        (
            P("input", "tensor"),
            P("dim", "attr", None),
            P("index", "tensor", None),
            P("src", "tensor", None),
            P("mask_pattern", "attr", None),
            P("dst", "tensor", None),
        ),
        _infer_scatter,
        "A copy of input with out[b, index[b, k]] = src[b, k] over index's valid region (in k "
        "order: a repeated column keeps the last); an index outside [0, N) is a runtime fault.",
        aliases=("tensor.scatter",),
    )
)
