"""The compare form of `pl.gather` (PyPTO's tensor.gather_compare): for each row of a 2-D
input, the column indices whose element compares true against a scalar threshold, and the
per-row match count. Error messages follow PyPTO's type deducer's wording.

PyPTO states the result only where every row has exactly `out_cols` matches and `offset` is 0
(its own tests cover just that), so pldsl accepts offset 0 only (a capture-time refusal) and
faults at run time on a row with another count, rather than guess what the hardware writes.
"""

from __future__ import annotations

from pldsl.dtypes import INT32, UINT32
from pldsl.ir.opdefs import TypeRuleError
from pldsl.ir.types import ScalarType, TensorType, TupleType

OP = "tensor.gather_compare"
CMP_MODES = ("eq", "ne", "lt", "le", "gt", "ge")  # PyPTO's codes 0..5, in this order
COMPARE_KEYS = ("kvalue", "cmp_mode", "out_cols", "offset", "count_dtype")


def is_compare_form(args: dict, attrs: dict) -> bool:
    return any(args.get(k) is not None or attrs.get(k) is not None for k in COMPARE_KEYS)


def cmp_mode_name(mode) -> str:
    """'eq'..'ge' from a name or PyPTO's code 0..5 (a capture-time error otherwise)."""
    if isinstance(mode, str) and mode in CMP_MODES:
        return mode
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode < len(CMP_MODES):
        return CMP_MODES[mode]
    raise TypeRuleError(
        f"The operator {OP} requires cmp_mode in [0, 5] (eq/ne/lt/le/gt/ge), but got {mode!r}"
    )


def infer_gather_compare(x: TensorType, args: dict, attrs: dict) -> TupleType:
    """(dst [rows, out_cols] INT32 indices, cdst [1, rows] count_dtype counts)."""
    if (
        args.get("index") is not None
        or attrs.get("dim") is not None
        or (attrs.get("mask_pattern") is not None or attrs.get("output_dtype") is not None)
    ):
        raise TypeRuleError(
            "gather() index form (dim, index), mask form (mask_pattern=...) and compare form "
            "(kvalue=..., cmp_mode=..., out_cols=...) are mutually exclusive; do not mix kwargs "
            "from different forms"
        )
    if args.get("kvalue") is None or attrs.get("cmp_mode") is None or attrs.get("out_cols") is None:
        raise TypeRuleError("gather() compare form requires kvalue, cmp_mode and out_cols all set")
    if x.dtype.name not in ("FP16", "FP32", "INT16", "INT32"):
        raise TypeRuleError(
            f"The operator {OP} requires input dtype in {{FP16, FP32, INT16, INT32}}, but got "
            f"{x.dtype.name}"
        )
    if x.rank != 2:
        raise TypeRuleError(f"The operator {OP} requires 2D input, but got rank {x.rank}")
    kv = getattr(args["kvalue"], "type", None)
    if not isinstance(kv, ScalarType) or kv.dtype != x.dtype:
        got = kv.dtype.name if isinstance(kv, ScalarType) else "a non-scalar"
        raise TypeRuleError(
            f"The operator {OP} requires kvalue dtype equal to src dtype {x.dtype.name}, but got "
            f"{got}",
            f"pl.cast(k, {x.dtype.name}) converts the threshold",
        )
    cmp_mode_name(attrs["cmp_mode"])
    cols = attrs["out_cols"]
    if not isinstance(cols, int) or isinstance(cols, bool) or cols <= 0:
        raise TypeRuleError(f"The operator {OP} requires out_cols > 0, but got {cols!r}")
    if attrs.get("offset") not in (None, 0):
        raise TypeRuleError(
            f"{OP} with offset={attrs['offset']!r} is not supported by pldsl: PyPTO does not "
            "state what the offset does to the result",
            "use offset=0 and add the offset to the indices: pl.adds(dst, offset)",
        )
    count = attrs.get("count_dtype") or INT32
    if count not in (INT32, UINT32):
        raise TypeRuleError(
            f"The operator {OP} requires count_dtype to be INT32 or UINT32, but got {count.name}"
        )
    rows = x.shape[0]
    valid_rows = None if x.valid_shape is None else x.valid_shape[0]
    dst_valid = None if valid_rows is None else (valid_rows, cols)
    cdst_valid = None if valid_rows is None else (1, valid_rows)
    return TupleType(
        (
            TensorType((rows, cols), INT32, dst_valid, None),
            TensorType((1, rows), count, cdst_valid, None),
        )
    )


__all__ = ["CMP_MODES", "cmp_mode_name", "infer_gather_compare", "is_compare_form"]
