"""`scatter`: PyPTO's column scatter, the inverse of the gather. Index form
(`scatter(input, dim=-1, index=, src=)`) and mask form (`scatter(input, mask_pattern=, dst=)`,
PyPTO's `tensor.scatter_mask`). Error messages follow PyPTO's type deducers' wording.
"""

from __future__ import annotations

from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import format_dims
from pldsl.ir.symbolic import static_value
from pldsl.ir.types import TensorType
from pldsl.ops.table import _tensor
from pldsl.ops.table_more import MASK_STRIDE, mask_pattern_code

P = OpParam

ELEMENTS = ("FP16", "FP32", "BF16", "INT16", "INT32", "INT8")


def _infer_scatter(args: dict, attrs: dict) -> TensorType:
    op = "tensor.scatter"
    is_index = any(v is not None for v in (args.get("index"), args.get("src"), attrs.get("dim")))
    if attrs.get("mask_pattern") is not None or args.get("dst") is not None:
        if is_index:
            raise TypeRuleError(
                "scatter() index form (dim, index, src) and mask form (mask_pattern, dst) are "
                "mutually exclusive; do not mix kwargs from different forms"
            )
        return _infer_scatter_mask(args, attrs)
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


def _infer_scatter_mask(args: dict, attrs: dict) -> TensorType:
    """PyPTO's tensor.scatter_mask: each row of input spread over the columns of dst that
    mask_pattern selects (dst.cols == input.cols * stride); the result is dst's type."""
    op = "tensor.scatter_mask"
    if attrs.get("mask_pattern") is None or args.get("dst") is None:
        raise TypeRuleError("scatter() mask form requires both mask_pattern and dst")
    x, dst = _tensor(args, "input"), _tensor(args, "dst")
    for name, t in (("input", x), ("dst", dst)):
        if t.dtype.name not in ELEMENTS:
            raise TypeRuleError(
                f"The operator {op} requires {name} dtype in {{I8, I16, I32, FP16, FP32, BF16}}, "
                f"but got {t.dtype.name}"
            )
    if x.dtype != dst.dtype:
        raise TypeRuleError(
            f"The operator {op} requires input and dst to have the same dtype, got "
            f"{x.dtype.name} vs {dst.dtype.name}"
        )
    if x.rank != 2 or dst.rank != 2:
        raise TypeRuleError(
            f"The operator {op} requires 2D input/dst, but got input rank {x.rank} and dst rank "
            f"{dst.rank}"
        )
    code = mask_pattern_code(attrs["mask_pattern"])
    if code is None:
        raise TypeRuleError(
            f"The operator {op} requires mask_pattern in [1, 7], but got {attrs['mask_pattern']!r}"
        )
    stride = MASK_STRIDE[code][0]
    xr, dr = static_value(x.shape[0]), static_value(dst.shape[0])
    if None not in (xr, dr) and xr != dr:  # the tile op it lowers to (tile.scatter_mask)
        raise TypeRuleError(
            f"The operator {op} requires input.shape[0] == dst.shape[0], got input rows {xr} "
            f"vs dst rows {dr}"
        )
    xc, dc = static_value(x.shape[1]), static_value(dst.shape[1])
    if None not in (xc, dc) and dc != xc * stride:
        raise TypeRuleError(
            f"The operator {op} with mask_pattern={code} requires dst.shape[1] ({dc}) == "
            f"input.shape[1] ({xc}) * {stride}"
        )
    return TensorType(dst.shape, dst.dtype, dst.valid_shape, None)


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
        "Index form: a copy of input with out[b, index[b, k]] = src[b, k] over index's valid "
        "region (in k order: a repeated column keeps the last); an index outside [0, N) is a "
        "runtime fault. Mask form: a copy of dst with out[b, off + k * stride] = input[b, k] "
        "over input's valid region (the MaskPattern's stride and offset, as the mask gather).",
        aliases=("tensor.scatter",),
    )
)
