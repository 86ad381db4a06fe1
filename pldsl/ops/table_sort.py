"""Sorting ops: `sort32` (sort fixed 32-element blocks into value/index pairs) and `mrgsort`
(merge sorted runs of such pairs: format1 with `block_len=`, format2 with 2-4 lists).

The pair layout is PyPTO's: a sorted FP32 row of N values becomes 2N FP32 columns, each value
followed by the raw bits of its UINT32 index (`[v0, i0, v1, i1, ...]`), so a mask gather
(`mask_pattern=P0101` the values, `P1010` with `output_dtype=INT32` the indices) splits them.
Error messages follow PyPTO's type deducers' wording.
"""

from __future__ import annotations

from pldsl.dtypes import FP32, UINT32
from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import describe_type, format_dims
from pldsl.ir.symbolic import dims_equal, simplify_dim, static_value
from pldsl.ir.types import Dim, ScalarType, TensorType
from pldsl.ops.table import _tensor

P = OpParam

SORT_BLOCK = 32  # values per sort32 block
MERGE_WAYS = 4  # runs merged per group by mrgsort's format1
FP16_HINT = (
    "pldsl sorts FP32 only: PyPTO types FP16 pairs as 2 halves each but the hardware writes 4 "
    "(value, pad, index); pl.cast the scores to pl.FP32 first"
)


def _src_dtype(t: TensorType, op: str, what: str = "src") -> None:
    if t.dtype.name == "FP16":
        raise TypeRuleError(f"{op} of an FP16 {what} is not supported by pldsl", FP16_HINT)
    if t.dtype != FP32:
        raise TypeRuleError(
            f"The operator {op} requires {what} dtype to be FP16 or FP32, but got {t.dtype.name}",
            "pl.cast it to pl.FP32 first",
        )
    if t.rank < 1:
        raise TypeRuleError(f"The operator {op} requires non-empty {what} shape")


def _times(d: Dim, k: int) -> Dim | None:
    v = static_value(d)
    return v * k if v is not None else None


# ------------------------------------------------------------------ sort32


def _infer_sort32(args: dict, attrs: dict) -> TensorType:
    op = "tensor.sort32"
    src = _tensor(args, "src")
    _src_dtype(src, op)
    last = static_value(src.shape[-1])
    if last is None or last <= 0 or last % SORT_BLOCK:
        got = last if last is not None else format_dims(src.shape[-1:])
        raise TypeRuleError(
            f"The operator {op} requires the last dimension to be a positive multiple of 32, "
            f"but got {got}",
            "pad the row to a multiple of 32 (pl.fillpad with pl.PadValue.min keeps the padding "
            "at the end of the sort)",
        )
    idx = _tensor(args, "idx")
    if idx.dtype != UINT32:
        raise TypeRuleError(
            f"The operator {op} requires idx dtype to be UINT32, but got {idx.dtype.name}",
            "pl.arange(0, [1, N], dtype=pl.UINT32)",
        )
    if idx.rank != src.rank:
        raise TypeRuleError(
            f"The operator {op} requires idx rank ({idx.rank}) to match src rank ({src.rank})"
        )
    for axis, (a, b) in enumerate(zip(src.shape, idx.shape)):
        sa, sb = static_value(a), static_value(b)
        if not dims_equal(a, b) and sa is not None and sb is not None:
            raise TypeRuleError(
                f"The operator {op} requires idx shape to match src shape at axis {axis}",
                f"src is {format_dims(src.shape)}, idx {format_dims(idx.shape)}",
            )
    shape = src.shape[:-1] + (2 * last,)
    valid = None
    if src.valid_shape is not None:
        cols = _times(src.valid_shape[-1], 2)
        if cols is not None:
            valid = src.valid_shape[:-1] + (cols,)
    return TensorType(shape, FP32, valid, None)


register(
    OpDef(
        "sort32",
        (P("src", "tensor"), P("idx", "tensor")),
        _infer_sort32,
        "Each block of 32 values along the last axis sorted descending (ties: the smaller index "
        "first; NaN first), written as (value, index bits) pairs: FP32 [..., N] -> [..., 2N].",
        aliases=("tensor.sort32",),
    )
)

# ------------------------------------------------------------------ mrgsort


def _infer_mrgsort(args: dict, attrs: dict) -> TensorType:
    srcs = [args.get(n) for n in ("src1", "src2", "src3")]
    if args.get("block_len") is not None:
        return _infer_format1(args, attrs, srcs)
    return _infer_format2(args, attrs, srcs)


def _infer_format1(args: dict, attrs: dict, srcs: list) -> TensorType:
    op = "tensor.mrgsort_format1"
    if any(s is not None for s in srcs) or args.get("tmp") is not None or attrs["exhausted"]:
        raise TypeRuleError(
            "mrgsort() format1 (block_len=...) and format2 (src1, ...) are mutually exclusive; "
            "do not pass format2 arguments or exhausted=True with block_len"
        )
    src = _tensor(args, "src0")
    _src_dtype(src, op)
    t = getattr(args["block_len"], "type", None)
    if not isinstance(t, ScalarType) or not t.dtype.is_int:
        raise TypeRuleError(
            f"The operator {op} requires block_len to be an integer type, but got "
            f"{describe_type(t)}"
        )
    n = static_value(simplify_dim(args["block_len"]))
    if n is not None and (n <= 0 or n % 64):
        raise TypeRuleError(
            f"The operator {op} requires block_len to be a positive multiple of 64, but got {n}",
            "block_len counts columns (2 per pair): 64 merges the runs sort32 leaves",
        )
    return TensorType(src.shape, FP32, None, None)


def _infer_format2(args: dict, attrs: dict, srcs: list) -> TensorType:
    op = "tensor.mrgsort_format2"
    if srcs[0] is None:
        raise TypeRuleError(
            "mrgsort() requires either block_len=<int> for format1, or at least (src0, src1) "
            "for format2"
        )
    if srcs[1] is None and srcs[2] is not None:
        raise TypeRuleError("mrgsort() format2 requires src2 when src3 is provided")
    names = ["src0"] + [n for n, s in zip(("src1", "src2", "src3"), srcs) if s is not None]
    types = [_tensor(args, n) for n in names]
    first = types[0]
    _src_dtype(first, op)
    for i, t in enumerate(types[1:], start=1):
        if t.dtype != first.dtype:
            raise TypeRuleError(
                f"The operator {op} requires all src tensors to have matching dtype, but "
                f"argument {i} has {t.dtype.name} (expected {first.dtype.name})"
            )
        if t.rank != first.rank:
            raise TypeRuleError(f"The operator {op} requires all src tensors to have matching rank")
        for axis in range(first.rank - 1):
            a, b = first.shape[axis], t.shape[axis]
            if not dims_equal(a, b) and None not in (static_value(a), static_value(b)):
                raise TypeRuleError(
                    f"The operator {op} requires all src tensors to match shape on non-concat "
                    f"axis {axis}, but argument {i} differs"
                )
    if args.get("tmp") is not None:  # the tile form: the result takes the scratch tile's shape
        return TensorType(_tensor(args, "tmp").shape, FP32, None, None)
    lasts = [static_value(t.shape[-1]) for t in types]
    if None in lasts:
        raise TypeRuleError(f"The operator {op} needs static column counts in pldsl")
    return TensorType(first.shape[:-1] + (sum(lasts),), FP32, None, None)


register(
    OpDef(
        "mrgsort",
        (
            P("src0", "tensor"),
            P("src1", "tensor", None),
            P("src2", "tensor", None),
            P("src3", "tensor", None),
            P("tmp", "tensor", None),
            P("exhausted", "attr", False),
            P("block_len", "scalar", None),
        ),
        _infer_mrgsort,
        "Merge descending runs of (value, index) pairs. Format1 (block_len=B): each group of 4 "
        "adjacent runs of B columns becomes one run of 4B. Format2 (src0, src1[, src2[, src3]]): "
        "the lists merged into one, last dims added (exhausted=True stops when a list runs "
        "out). The larger value goes first; on a tie the earlier run or list.",
        aliases=("tensor.mrgsort",),
    )
)

__all__ = ["MERGE_WAYS", "SORT_BLOCK"]
