"""The ops PyPTO kernels use beyond the core set: index generation, valid-shape metadata,
layout moves (transpose, concat), gathers, comparisons, remainders and argmax.

One entry per op, as in `table.py` (shared helpers come from there). Error messages follow
PyPTO's type deducers' wording, so a PyPTO author recognises them.
"""

from __future__ import annotations

from pldsl.dtypes import INDEX, INT16, INT32, UINT16, UINT32
from pldsl.ir.nodes import Const
from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import describe_type, format_dims
from pldsl.ir.symbolic import dims_equal, simplify_dim, static_value
from pldsl.ir.types import ScalarType, TensorType, TupleType
from pldsl.ops.gather_compare import infer_gather_compare, is_compare_form
from pldsl.ops.table import _dims, _infer_binary, _tensor

P = OpParam

ARANGE_DTYPES = (INT16, INT32, UINT16, UINT32)
CMP_NAMES = ("eq", "ne", "lt", "le", "gt", "ge")

# ------------------------------------------------------------------ arange


def _infer_arange(args: dict, attrs: dict) -> TensorType:
    dtype = attrs["dtype"]
    if dtype not in ARANGE_DTYPES:
        raise TypeRuleError(
            f"tensor.ci dtype must be one of {{INT16, INT32, UINT16, UINT32}}, but got {dtype.name}"
        )
    start = args["start"]
    t = getattr(start, "type", None)
    if not isinstance(t, ScalarType) or not t.dtype.is_int:
        raise TypeRuleError(
            f"tensor.ci requires first argument 'start' to be an integer scalar, but got "
            f"{describe_type(t)}"
        )
    literal = isinstance(start, Const) and t.dtype == INDEX
    if not literal and t.dtype != dtype:
        raise TypeRuleError(
            f"tensor.ci 'start' dtype ({t.dtype.name}) must match destination dtype ({dtype.name})",
            f"pl.cast(start, pl.{dtype.name}) first",
        )
    shape = _dims(args, "shape")
    if not shape:
        raise TypeRuleError("tensor.ci requires non-empty shape")
    if static_value(shape[-1]) == 1:
        raise TypeRuleError(
            "tensor.ci requires the innermost dimension (Cols) to be != 1, got 1",
            "generate a row: shape [1, N]",
        )
    for i, d in enumerate(shape[:-1]):
        if static_value(d) is not None and static_value(d) != 1:
            raise TypeRuleError(
                "tensor.ci only populates the first row because pto.tci ignores valid rows; "
                f"leading dimensions must be 1, but got {static_value(d)} at index {i}",
                "generate [1, N] and row_expand/col_expand it if every row needs it",
            )
    return TensorType(shape, dtype)


register(
    OpDef(
        "arange",
        (
            P("start", "scalar"),
            P("shape", "dims"),
            P("dtype", "dtype", INT32),
            P("descending", "attr", False),
        ),
        _infer_arange,
        "start, start+1, ... (start-1, ... when descending) along the last axis, wrapping in "
        "dtype; leading axes must be 1.",
        category="data",
        aliases=("ci", "tensor.ci", "tensor.arange"),
    )
)

# ------------------------------------------------------------ set_validshape


def _index_scalar(args: dict, name: str):
    t = getattr(args[name], "type", None)
    if not isinstance(t, ScalarType) or not t.dtype.is_int:
        raise TypeRuleError(
            f"tensor.set_validshape {name} must be an integer scalar, but got {describe_type(t)}"
        )
    return simplify_dim(args[name])


def _infer_set_validshape(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    if x.rank != 2:
        raise TypeRuleError(f"tensor.set_validshape requires a 2D tensor, but got rank {x.rank}")
    valid = (_index_scalar(args, "valid_rows"), _index_scalar(args, "valid_cols"))
    for name, v, bound in zip(("valid_rows", "valid_cols"), valid, x.shape):
        sv, sb = static_value(v), static_value(bound)
        if sv is not None and sv < 0:
            raise TypeRuleError(f"tensor.set_validshape {name} must be >= 0, got {sv}")
        if sv is not None and sb is not None and sv > sb:
            raise TypeRuleError(
                f"tensor.set_validshape {name} ({sv}) exceeds tensor bound {sb}",
                "valid extents must satisfy 0 <= valid <= shape",
            )
    return TensorType(x.shape, x.dtype, valid, x.pad)


register(
    OpDef(
        "set_validshape",
        (P("x", "tensor"), P("valid_rows", "scalar"), P("valid_cols", "scalar")),
        _infer_set_validshape,
        "The same 2-D tensor with valid region [valid_rows, valid_cols] (metadata only; it may "
        "widen the region over memory the tensor holds).",
        category="data",
        aliases=("tensor.set_validshape",),
    )
)

# ---------------------------------------------------------------- transpose


def _norm_axis(axis, rank: int, name: str) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise TypeRuleError(
            f"tensor.transpose {name} ({axis}) out of range for a rank-{rank} tensor",
            f"axes lie in [-{rank}, {rank})",
        )
    return axis % rank


def transpose_axes(rank: int, axis1, axis2) -> tuple[int, int]:
    """The two (non-negative) axes a transpose swaps; raises TypeRuleError."""
    return _norm_axis(axis1, rank, "axis1"), _norm_axis(axis2, rank, "axis2")


def _swap(items: tuple, a: int, b: int) -> tuple:
    out = list(items)
    out[a], out[b] = out[b], out[a]
    return tuple(out)


def _infer_transpose(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    if x.rank < 2:
        raise TypeRuleError(f"tensor.transpose requires at least 2 dimensions, but got {x.rank}")
    a, b = transpose_axes(x.rank, attrs["axis1"], attrs["axis2"])
    valid = _swap(x.valid_shape, a, b) if x.valid_shape is not None else None
    return TensorType(_swap(x.shape, a, b), x.dtype, valid, None)


register(
    OpDef(
        "transpose",
        (P("x", "tensor"), P("axis1", "attr"), P("axis2", "attr")),
        _infer_transpose,
        "x with axes axis1 and axis2 swapped (negative axes count from the end); valid region "
        "swapped too.",
    )
)

# ------------------------------------------------------------------- concat


def _infer_concat(args: dict, attrs: dict) -> TensorType:
    a, b = _tensor(args, "src0"), _tensor(args, "src1")
    if a.rank != b.rank or a.rank < 1:
        raise TypeRuleError(
            f"tensor.concat requires operands of the same rank, but got {a.rank} and {b.rank}"
        )
    if a.dtype != b.dtype:
        raise TypeRuleError(
            f"tensor.concat requires matching dtypes, but got {a.dtype.name} and {b.dtype.name}",
            f"pl.cast one operand to pl.{a.dtype.name} first",
        )
    for i, (x, y) in enumerate(zip(a.shape[:-1], b.shape[:-1])):
        if not dims_equal(x, y) and static_value(x) is not None and static_value(y) is not None:
            raise TypeRuleError(
                f"tensor.concat requires matching dimension {i}, but got {format_dims(a.shape)} "
                f"and {format_dims(b.shape)}",
                "concat joins along the last axis (columns)",
            )
    last = a.shape[-1], b.shape[-1]
    sa, sb = static_value(last[0]), static_value(last[1])
    width = sa + sb if sa is not None and sb is not None else None
    if width is None:
        raise TypeRuleError("tensor.concat needs static column counts")
    valid = None
    if a.valid_shape is not None or b.valid_shape is not None:
        valid = concat_valid(a.shape, a.valid_shape or a.shape, b.shape, b.valid_shape or b.shape)
    return TensorType(a.shape[:-1] + (width,), a.dtype, valid, None)


def concat_valid(a_shape, a_valid, b_shape, b_valid) -> tuple | None:
    """The valid region of concat(a, b): leading axes the smaller of the two; along the last
    axis src0's valid columns, followed by src1's only when src0's are all valid."""
    lead = []
    for x, y in zip(a_valid[:-1], b_valid[:-1]):
        sx, sy = static_value(x), static_value(y)
        if dims_equal(x, y):
            lead.append(x)
        elif sx is not None and sy is not None:
            lead.append(min(sx, sy))
        else:
            return None
    av, bv, aw = static_value(a_valid[-1]), static_value(b_valid[-1]), static_value(a_shape[-1])
    if dims_equal(a_valid[-1], a_shape[-1]):
        cols = aw + bv if bv is not None else None
    else:
        cols = av
    if cols is None:
        return None
    return tuple(lead) + (cols,)


register(
    OpDef(
        "concat",
        (P("src0", "tensor"), P("src1", "tensor")),
        _infer_concat,
        "src0 and src1 joined along the last axis (columns).",
    )
)

# ------------------------------------------------------------------- gather


MASK_STRIDE = {1: (2, 0), 2: (2, 1), 3: (4, 0), 4: (4, 1), 5: (4, 2), 6: (4, 3), 7: (1, 0)}


def mask_pattern_code(value) -> int | None:
    """PyPTO's MaskPattern as its integer (1=P0101 ... 7=P1111); an enum member counts by its
    value. None when it is not one."""
    code = getattr(value, "value", value)
    if isinstance(code, bool) or not isinstance(code, int) or code not in MASK_STRIDE:
        return None
    return code


def mask_cols(cols: int, valid_cols: int, code: int) -> tuple[int, int]:
    """(result columns, result valid columns) of the mask form: element j of a row is kept
    when j % stride == offset (the pattern's set bit, element 0 = the rightmost)."""
    stride, off = MASK_STRIDE[code]
    return cols // stride, max(0, -(-(valid_cols - off) // stride))


def _infer_gather(args: dict, attrs: dict) -> TensorType | TupleType:
    x = _tensor(args, "x")
    if is_compare_form(args, attrs):
        return infer_gather_compare(x, args, attrs)
    mask = attrs.get("mask_pattern")
    if mask is not None:
        return _infer_gather_mask(x, args, attrs, mask)
    if attrs.get("output_dtype") is not None:
        raise TypeRuleError(
            "output_dtype is only valid for the mask form of gather(); use mask_pattern=<int>"
        )
    if args.get("index") is None:
        raise TypeRuleError(
            "gather() index form requires both dim and index",
            "pl.gather(x, dim=-1, index=idx), or the mask form pl.gather(x, mask_pattern=1)",
        )
    idx = _tensor(args, "index")
    dim = attrs.get("dim")
    if x.rank != 2 or dim not in (-1, 1):
        raise TypeRuleError(
            f"tensor.gather supports only rank-2 inputs with dim == -1 (or rank - 1), but got "
            f"rank {x.rank} and dim {dim}"
        )
    if idx.rank != 2:
        raise TypeRuleError(f"tensor.gather index must have rank 2, but got rank {idx.rank}")
    wide16 = x.dtype.bits == 16
    if idx.dtype != INT32 and not (wide16 and idx.dtype == INT16):
        raise TypeRuleError(
            f"tensor.gather index must be INT32 (or INT16 with a 16-bit input), but got "
            f"{idx.dtype.name}",
            "pl.cast(index, pl.INT32) first",
        )
    if not dims_equal(x.shape[0], idx.shape[0]) and None not in (
        static_value(x.shape[0]),
        static_value(idx.shape[0]),
    ):
        raise TypeRuleError(
            f"tensor.gather index shape {format_dims(idx.shape)} must match input "
            f"{format_dims(x.shape)} on every axis except dim"
        )
    return TensorType(idx.shape, x.dtype, idx.valid_shape, None)


def _infer_gather_mask(x: TensorType, args: dict, attrs: dict, mask) -> TensorType:
    if args.get("index") is not None or attrs.get("dim") is not None:
        raise TypeRuleError(
            "gather() index form (dim, index), mask form (mask_pattern=...) and compare form "
            "(kvalue=..., cmp_mode=..., out_cols=...) are mutually exclusive; do not mix kwargs "
            "from different forms"
        )
    code = mask_pattern_code(mask)
    if code is None:
        raise TypeRuleError(
            f"gather mask_pattern must be 1..7 (P0101, P1010, P0001, P0010, P0100, P1000, "
            f"P1111), got {mask!r}"
        )
    if x.rank != 2:
        raise TypeRuleError(f"tensor.gather mask form requires a 2D input, but got rank {x.rank}")
    out = attrs.get("output_dtype") or x.dtype
    if out.bits != x.dtype.bits:
        raise TypeRuleError(
            f"gather output_dtype {out.name} must have the same bit width as the input "
            f"{x.dtype.name}",
            "output_dtype reinterprets the gathered bits (e.g. FP32 -> INT32)",
        )
    cols = static_value(x.shape[1])
    stride = MASK_STRIDE[code][0]
    if cols is None or cols % stride:
        raise TypeRuleError(
            f"tensor.gather mask form needs a static column count divisible by {stride}, got "
            f"{format_dims(x.shape)}"
        )
    valid = None
    if x.valid_shape is not None:
        vc = static_value(x.valid_shape[1])
        if vc is not None:
            valid = (x.valid_shape[0], mask_cols(cols, vc, code)[1])
    return TensorType((x.shape[0], cols // stride), out, valid, None)


register(
    OpDef(
        "gather",
        (
            P("x", "tensor"),
            P("dim", "attr", None),
            P("index", "tensor", None),
            P("mask_pattern", "attr", None),
            P("output_dtype", "dtype", None),
            P("kvalue", "scalar", None),
            P("cmp_mode", "attr", None),
            P("out_cols", "attr", None),
            P("offset", "attr", None),
            P("count_dtype", "dtype", None),
        ),
        _infer_gather,
        "Index form: out[b, k] = x[b, index[b, k]] (dim = -1; an index outside [0, N) is a "
        "runtime fault). Mask form: the columns a MaskPattern selects (1=P0101 even, 2=P1010 "
        "odd, 3..6 one in four, 7 all), bits reinterpreted as output_dtype. Compare form "
        "(kvalue, cmp_mode, out_cols): per row, the indices j with x[b, j] <cmp> kvalue and "
        "their count, as (dst, cdst); a row whose count is not out_cols is a runtime fault.",
        aliases=("tensor.gather",),
    )
)

# ---------------------------------------------------------------- cmp, fmods


def _infer_cmp(args: dict, attrs: dict) -> TensorType:
    cmp_type = attrs.get("cmp_type", 0)
    if not isinstance(cmp_type, int) or isinstance(cmp_type, bool) or not 0 <= cmp_type <= 5:
        raise TypeRuleError(
            f"tensor.cmp cmp_type must be an integer in 0..5, but got {cmp_type!r}",
            "0=eq, 1=ne, 2=lt, 3=le, 4=gt, 5=ge",
        )
    t = _infer_binary({"lhs": args["lhs"], "rhs": args["rhs"]}, {})
    return t


register(
    OpDef(
        "cmp",
        (P("lhs", "tensor"), P("rhs", "value"), P("cmp_type", "attr", 0)),
        _infer_cmp,
        "1 where `lhs <cmp> rhs` holds, else 0, in the operands' (promoted) dtype; cmp_type "
        "0=eq, 1=ne, 2=lt, 3=le, 4=gt, 5=ge.",
        aliases=("tensor.cmp",),
    )
)


def _infer_fmods(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "lhs")
    t = getattr(args["rhs"], "type", None)
    if not isinstance(t, ScalarType) or t.dtype.is_bool:
        raise TypeRuleError(
            f"The operator tensor.fmods requires second argument to be a ScalarType, but got "
            f"{describe_type(t)}"
        )
    if not x.dtype.is_float and t.dtype.is_float:
        raise TypeRuleError(
            f"tensor.fmods of an integer tensor ({x.dtype.name}) needs an integer divisor"
        )
    return TensorType(x.shape, x.dtype, x.valid_shape, None)


register(
    OpDef(
        "fmods",
        (P("lhs", "tensor"), P("rhs", "scalar")),
        _infer_fmods,
        "Remainder of lhs / rhs with the sign of lhs (C fmod; truncating for integers), in "
        "lhs's dtype.",
        aliases=("tensor.fmods",),
    )
)

# --------------------------------------------------------------- row_argmax


def _infer_row_argmax(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    if x.rank < 2:
        raise TypeRuleError(
            f"The operator tensor.row_argmax requires at least a 2D tensor, but got {x.rank}D"
        )
    valid = x.valid_shape[:-1] + (1,) if x.valid_shape is not None else None
    return TensorType(x.shape[:-1] + (1,), INT32, valid, None)


register(
    OpDef(
        "row_argmax",
        (P("x", "tensor"),),
        _infer_row_argmax,
        "INT32 index of the first maximum along the last axis (NaN counts as the maximum), "
        "kept as an axis of size 1.",
        aliases=("tensor.row_argmax",),
    )
)

__all__ = [
    "ARANGE_DTYPES",
    "CMP_NAMES",
    "MASK_STRIDE",
    "concat_valid",
    "mask_cols",
    "mask_pattern_code",
    "transpose_axes",
]
