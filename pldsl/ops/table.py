"""Every builtin op of the `pl` language: signature, type rule, doc. One entry per op."""

from __future__ import annotations

import math

from pldsl.dtypes import CAST_MODES, FP32, INDEX, INT32, DType, promote
from pldsl.enums import AtomicType, PadValue
from pldsl.ir.nodes import Const, ListExpr
from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import describe_type, format_dims
from pldsl.ir.symbolic import dims_equal, simplify_dim, static_value
from pldsl.ir.types import Dim, ScalarType, TensorType

P = OpParam

# ------------------------------------------------------------------ helpers


def _tensor(args: dict, name: str) -> TensorType:
    t = getattr(args[name], "type", None)
    if not isinstance(t, TensorType):
        raise TypeRuleError(
            f"argument '{name}' must be a tensor, got {describe_type(t)}",
            "pass a pl.Tensor value (scalars use Python operators)",
        )
    return t


def _dims(args: dict, name: str) -> tuple[Dim, ...]:
    value = args[name]
    if not isinstance(value, ListExpr):
        raise TypeRuleError(f"argument '{name}' must be a list of dims, e.g. [16, 128]")
    for item in value.items:
        t = getattr(item, "type", None)
        if not (isinstance(t, ScalarType) and t.dtype.is_int):
            raise TypeRuleError(f"'{name}' entries must be integer scalars, got {describe_type(t)}")
    dims = tuple(simplify_dim(i) for i in value.items)
    negative = [d for d in dims if isinstance(d, int) and d < 0]
    if negative:
        raise TypeRuleError(f"'{name}' has a negative entry {negative[0]}")
    return dims


def _broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    if len(a) != len(b):
        raise TypeRuleError(
            f"shapes {format_dims(a)} and {format_dims(b)} have different ranks",
            "reshape one operand first",
        )
    out = []
    for x, y in zip(a, b):
        if dims_equal(x, y) or static_value(y) == 1:
            out.append(x)
        elif static_value(x) == 1:
            out.append(y)
        else:
            raise TypeRuleError(f"shapes {format_dims(a)} and {format_dims(b)} do not broadcast")
    return tuple(out)


def _keep_valid(t: TensorType, shape: tuple[Dim, ...]) -> tuple[Dim, ...] | None:
    if t.valid_shape is None or len(t.valid_shape) != len(shape):
        return None
    return t.valid_shape


# ------------------------------------------------------------ elementwise


def _infer_binary(args: dict, attrs: dict) -> TensorType:
    lhs = _tensor(args, "lhs")
    rhs_t = getattr(args["rhs"], "type", None)
    if isinstance(rhs_t, TensorType):
        shape = _broadcast(lhs.shape, rhs_t.shape)
        dtype = promote(lhs.dtype, rhs_t.dtype)
    elif isinstance(rhs_t, ScalarType):
        if rhs_t.dtype.is_bool and not lhs.dtype.is_bool:
            raise TypeRuleError("a BOOL scalar is not a number", "pl.cast it to the tensor's dtype")
        shape = lhs.shape
        rhs = args["rhs"]
        # An integer literal is re-stamped to the element dtype (PyPTO); others promote.
        literal_int = isinstance(rhs, Const) and rhs.dtype == INDEX
        dtype = lhs.dtype if literal_int else promote(lhs.dtype, rhs_t.dtype)
    else:
        raise TypeRuleError(
            f"argument 'rhs' must be a tensor or a scalar, got {describe_type(rhs_t)}"
        )
    return TensorType(shape, dtype, _keep_valid(lhs, shape), None)


def _infer_unary(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    return TensorType(x.shape, x.dtype, x.valid_shape, None)


def _infer_float_unary(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    if not x.dtype.is_float:
        raise TypeRuleError(
            f"needs a floating-point tensor, got {x.dtype.name}", "pl.cast it first"
        )
    return TensorType(x.shape, x.dtype, x.valid_shape, None)


def _binary_op(name: str, doc: str) -> None:
    register(OpDef(name, (P("lhs", "tensor"), P("rhs", "value")), _infer_binary, doc))


def _unary_op(name: str, doc: str, float_only: bool = True) -> None:
    rule = _infer_float_unary if float_only else _infer_unary
    register(OpDef(name, (P("x", "tensor"),), rule, doc))


for _name, _doc in {
    "add": "Elementwise lhs + rhs (tensor or scalar rhs, broadcasting).",
    "sub": "Elementwise lhs - rhs.",
    "mul": "Elementwise lhs * rhs.",
    "div": "Elementwise lhs / rhs.",
    "maximum": "Elementwise maximum.",
    "minimum": "Elementwise minimum.",
}.items():
    _binary_op(_name, _doc)

for _name, _doc in {
    "exp": "Elementwise e**x.",
    "sqrt": "Elementwise square root.",
    "recip": "Elementwise 1/x.",
    "log": "Elementwise natural logarithm.",
}.items():
    _unary_op(_name, _doc)
register(
    OpDef(
        "rsqrt",
        (P("x", "tensor"), P("high_precision", "attr", False)),
        _infer_float_unary,
        "Elementwise 1/sqrt(x); high_precision (PyPTO's refinement flag) changes nothing here: "
        "the result is already sqrt then 1/x, each correctly rounded.",
    )
)
_unary_op("neg", "Elementwise -x.", float_only=False)
_unary_op("abs", "Elementwise |x|.", float_only=False)
_unary_op("relu", "Elementwise max(x, 0).", float_only=False)

# ------------------------------------------------------------ reductions


def _row_reduce(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    if args.get("tmp") is not None:
        tmp = _tensor(args, "tmp")
        if tmp.dtype != x.dtype:
            raise TypeRuleError(
                f"row reduction tmp dtype {tmp.dtype.name} differs from the input's {x.dtype.name}",
                "tmp is PyPTO's scratch tile: give it the input's dtype",
            )
    if x.rank < 1:
        raise TypeRuleError("row reductions need a tensor of rank >= 1")
    shape = x.shape[:-1] + (1,)
    valid = x.valid_shape[:-1] + (1,) if x.valid_shape is not None else None
    return TensorType(shape, x.dtype, valid, None)


def _col_reduce(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    if x.rank != 2:
        raise TypeRuleError(f"column reductions need a 2-D tensor, got rank {x.rank}")
    valid = (1, x.valid_shape[1]) if x.valid_shape is not None else None
    return TensorType((1, x.shape[1]), x.dtype, valid, None)


for _kind, _rule, _axis in (("row", _row_reduce, "last"), ("col", _col_reduce, "first")):
    for _red in ("sum", "max", "min"):
        # PyPTO's tile form row_sum(x, tmp) passes a scratch tile; it holds no result here.
        _tmp = (P("tmp", "tensor", None),) if _kind == "row" else ()
        register(
            OpDef(
                f"{_kind}_{_red}",
                (P("x", "tensor"), *_tmp),
                _rule,
                f"{_red} over the {_axis} axis, kept as an axis of size 1.",
            )
        )


def expand_shape(axis: str, x_shape: tuple, v_shape: tuple, op: str) -> tuple | None:
    """Why `v` cannot be expanded over `x` (row: one value per row, v [..., M, 1]; col: one per
    column, v [..., 1, N]; v's leading axes, right-aligned with x's and possibly fewer, equal
    or 1), as PyPTO words it; None when it can."""
    if len(x_shape) < 2:
        return f"The operator {op} requires first argument to have at least 2 dimensions, but got {len(x_shape)} dimensions"
    if len(v_shape) < 2:
        return f"The operator {op} requires second argument to have at least 2 dimensions, but got {len(v_shape)} dimensions"
    if len(v_shape) > len(x_shape):  # v's leading axes broadcast right-aligned onto x's
        return f"The operator {op} requires second argument to have rank at most {len(x_shape)}, but got {len(v_shape)} dimensions"
    unit, match = (-1, -2) if axis == "row" else (-2, -1)
    if static_value(v_shape[unit]) != 1:
        which = "last dimension" if axis == "row" else "second-to-last dimension (row)"
        return f"The operator {op} requires second argument's {which} to be 1, but got {format_dims(v_shape)}"
    a, b = static_value(x_shape[match]), static_value(v_shape[match])
    if not dims_equal(x_shape[match], v_shape[match]) and (a is not None and b is not None):
        what = "row" if axis == "row" else "column"
        return (
            f"The operator {op} requires matching {what} dimensions, but got tensor "
            f"{what}s={a} and {axis}_vec {what}s={b}"
        )
    skip = len(x_shape) - len(v_shape)
    for i, (d, e) in enumerate(zip(x_shape[skip:-2], v_shape[:-2]), start=skip):
        if not (dims_equal(d, e) or static_value(e) == 1):
            return f"The operator {op} requires leading dimension {i} of the second argument to be 1 or {d}, but got {e}"
    return None


def _expand(axis: str, op: str, float_only: bool = False):
    def rule(args: dict, attrs: dict) -> TensorType:
        t = _tensor(args, "x")
        v = _tensor(args, "v")
        if float_only and not (t.dtype.is_float and v.dtype.is_float):
            raise TypeRuleError(
                f"The operator {op} requires floating-point operands, but got "
                f"{t.dtype.name} and {v.dtype.name}",
                "pl.cast them first",
            )
        why = expand_shape(axis, t.shape, v.shape, f"{op}")
        if why is not None:
            raise TypeRuleError(
                why,
                f"{axis}_expand* takes one value per {axis}: "
                + ("v of shape [..., M, 1]" if axis == "row" else "v of shape [..., 1, N]"),
            )
        return TensorType(t.shape, promote(t.dtype, v.dtype), t.valid_shape, None)

    return rule


for _axis in ("row", "col"):
    for _op in ("add", "sub", "mul", "div"):
        register(
            OpDef(
                f"{_axis}_expand_{_op}",
                (P("x", "tensor"), P("v", "tensor")),
                _expand(_axis, f"{_axis}_expand_{_op}"),
                f"Apply `{_op}` with one value per {_axis} ({'[..., M,1]' if _axis == 'row' else '[..., 1,N]'}).",
            )
        )
    register(
        OpDef(
            f"{_axis}_expand",
            (P("x", "tensor"), P("v", "tensor")),
            _expand(_axis, f"{_axis}_expand"),
            f"v ({'[..., M,1]' if _axis == 'row' else '[..., 1,N]'}) broadcast to x's shape "
            "(x gives only the shape and valid region).",
        )
    )
register(
    OpDef(
        "col_expand_expdif",
        (P("x", "tensor"), P("v", "tensor")),
        _expand("col", "col_expand_expdif", float_only=True),
        "exp(x - v) with one value per column ([..., 1,N]); float operands.",
    )
)

# ----------------------------------------------------------------- matmul


def _mm_shapes(lhs: TensorType, rhs: TensorType, attrs: dict) -> tuple[Dim, Dim, Dim, Dim]:
    if lhs.rank < 2 or rhs.rank < 2:
        raise TypeRuleError(
            f"matmul needs operands of rank >= 2, got ranks {lhs.rank} and {rhs.rank}",
            "PyPTO's vector forms ([K] operands) are not supported: reshape to [1, K] / [K, 1]",
        )
    m, k1 = (lhs.shape[-1], lhs.shape[-2]) if attrs.get("a_trans") else lhs.shape[-2:]
    k2, n = (rhs.shape[-1], rhs.shape[-2]) if attrs.get("b_trans") else rhs.shape[-2:]
    if not dims_equal(k1, k2) and static_value(k1) is not None and static_value(k2) is not None:
        raise TypeRuleError(
            f"matmul contraction dims differ: lhs K={k1}, rhs K={k2}",
            "check a_trans/b_trans and the slice shapes",
        )
    return m, k1, k2, n


def mm_batch(lhs_batch: tuple, rhs_batch: tuple) -> tuple | None:
    """The batch axes of a batched matmul: the operands' leading axes (all but the last two)
    broadcast right-aligned, as PyPTO's tensor.matmul does; None when they do not."""
    rank = max(len(lhs_batch), len(rhs_batch))
    a = (1,) * (rank - len(lhs_batch)) + tuple(lhs_batch)
    b = (1,) * (rank - len(rhs_batch)) + tuple(rhs_batch)
    out = []
    for x, y in zip(a, b):
        if dims_equal(x, y) or static_value(y) == 1:
            out.append(x)
        elif static_value(x) == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def _batch(lhs: TensorType, rhs: TensorType, op: str) -> tuple:
    batch = mm_batch(lhs.shape[:-2], rhs.shape[:-2])
    if batch is None:
        raise TypeRuleError(
            f"Cannot broadcast batch dimensions for tensor.{op}: {format_dims(lhs.shape)} and "
            f"{format_dims(rhs.shape)}",
            "the axes before the last two broadcast as in NumPy (equal, or 1)",
        )
    return batch


def _infer_matmul(args: dict, attrs: dict) -> TensorType:
    lhs, rhs = _tensor(args, "lhs"), _tensor(args, "rhs")
    m, _, _, n = _mm_shapes(lhs, rhs, attrs)
    out = attrs.get("out_dtype") or promote(lhs.dtype, rhs.dtype)
    return TensorType(_batch(lhs, rhs, "matmul") + (m, n), out)


def _infer_matmul_acc(args: dict, attrs: dict) -> TensorType:
    acc, lhs, rhs = _tensor(args, "acc"), _tensor(args, "lhs"), _tensor(args, "rhs")
    m, _, _, n = _mm_shapes(lhs, rhs, attrs)
    if acc.rank < 2:
        raise TypeRuleError(
            f"tensor.matmul_acc requires acc to be at least 2D, but got {acc.rank}D"
        )
    if acc.dtype not in (FP32, INT32):
        raise TypeRuleError(f"matmul_acc accumulator must be FP32 or INT32, got {acc.dtype.name}")
    want = _batch(lhs, rhs, "matmul_acc") + (m, n)
    if len(want) != acc.rank or not all(
        dims_equal(a, w) or None in (static_value(a), static_value(w))
        for a, w in zip(acc.shape, want)
    ):
        raise TypeRuleError(
            f"accumulator shape {format_dims(acc.shape)} does not match the product "
            f"{format_dims(want)}"
        )
    return TensorType(acc.shape, acc.dtype)


_MM_FLAGS = (P("a_trans", "attr", False), P("b_trans", "attr", False))
register(
    OpDef(
        "matmul",
        (P("lhs", "tensor"), P("rhs", "tensor"), P("out_dtype", "dtype", None), *_MM_FLAGS),
        _infer_matmul,
        "[M,K] @ [K,N] -> [M,N], FP32 accumulation, result in out_dtype (default: promoted "
        "input); operands of rank > 2 are batched (leading axes broadcast).",
    )
)
register(
    OpDef(
        "matmul_acc",
        (P("acc", "tensor"), P("lhs", "tensor"), P("rhs", "tensor"), *_MM_FLAGS),
        _infer_matmul_acc,
        "acc + lhs @ rhs, accumulated in the FP32 (or INT32) accumulator.",
    )
)

# --------------------------------------------------------------- casts etc.


def _infer_cast(args: dict, attrs: dict):
    mode = attrs.get("mode", "round")
    if mode not in CAST_MODES:
        raise TypeRuleError(f"unknown cast mode {mode!r}", f"use one of {', '.join(CAST_MODES)}")
    dtype: DType = attrs["target_type"]
    t = getattr(args["x"], "type", None)
    if isinstance(t, ScalarType):
        if mode != "round":
            raise TypeRuleError("scalar casts accept only the default mode")
        return ScalarType(dtype)
    x = _tensor(args, "x")
    return TensorType(x.shape, dtype, x.valid_shape, x.pad)


register(
    OpDef(
        "cast",
        (P("x", "value"), P("target_type", "dtype"), P("mode", "attr", "round")),
        _infer_cast,
        "Convert to target_type; mode round (ties away, default), rint, floor, ceil, trunc, odd.",
    )
)


def _infer_reshape(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    shape = _dims(args, "shape")
    old = [static_value(d) for d in x.shape]
    new = [static_value(d) for d in shape]
    if None not in old and None not in new:
        if math.prod(old) != math.prod(new):
            raise TypeRuleError(
                f"reshape from {format_dims(x.shape)} to {format_dims(shape)} changes the "
                f"element count ({math.prod(old)} -> {math.prod(new)})"
            )
    valid = None
    if x.valid_shape is not None and not all(
        dims_equal(a, b) for a, b in zip(x.valid_shape, x.shape)
    ):
        valid = reshape_valid(x.shape, x.valid_shape, shape)
    return TensorType(shape, x.dtype, valid, x.pad)


def reshape_valid(shape: tuple, valid: tuple, new_shape: tuple) -> tuple | None:
    """The valid region of a reshape, mapped as PyPTO maps it (None: fully valid).

    A reshape is a view, so the region must be one the new shape can describe: unchanged
    when only unit axes move; otherwise a flat prefix of the buffer (leading axes valid 1,
    one partial axis, full axes below it) landing on a whole number of target rows. Anything
    else raises TypeRuleError (the caller reports it)."""
    if all(dims_equal(v, d) for v, d in zip(valid, shape)):
        return None
    if any(static_value(v) == 0 for v in valid):
        return tuple(0 for _ in new_shape)
    src = [(d, v) for d, v in zip(shape, valid) if static_value(d) != 1]
    dst = [d for d in new_shape if static_value(d) != 1]
    if len(src) == len(dst) and all(dims_equal(a, b) for (a, _), b in zip(src, dst)):
        it = iter(v for _, v in src)
        return tuple(next(it) if static_value(d) != 1 else 1 for d in new_shape)
    return _flat_prefix(shape, valid, new_shape)


def _flat_prefix(shape: tuple, valid: tuple, new_shape: tuple) -> tuple:
    def refuse(why: str) -> TypeRuleError:
        return TypeRuleError(
            f"cannot reshape {format_dims(shape)} (valid {format_dims(valid)}) to "
            f"{format_dims(new_shape)}: {why}",
            "reshape the full extent and narrow afterwards, or pl.fillpad the value first",
        )

    free = 0
    while free + 1 < len(valid) and static_value(valid[free]) == 1:
        free += 1
    if not all(dims_equal(valid[i], shape[i]) for i in range(free + 1, len(shape))):
        raise refuse("the valid data is scattered, not a prefix of the buffer")
    trailing = [static_value(d) for d in shape[free + 1 :]]
    target = [static_value(d) for d in new_shape]
    if None in trailing or None in target:
        raise refuse("mapping a partial region needs static dims")
    step = math.prod(trailing)
    suffix = [math.prod(target[i + 1 :]) for i in range(len(target))]

    def box(axis: int, extent) -> tuple:
        return tuple(1 if i < axis else extent if i == axis else d for i, d in enumerate(new_shape))

    v = static_value(valid[free])
    if v is not None:
        elements = v * step
        for i, sfx in enumerate(suffix):
            if sfx and elements % sfx == 0 and elements // sfx <= target[i]:
                return box(i, elements // sfx)
        raise refuse(f"its {elements} valid elements fill no whole number of target rows")
    physical = static_value(shape[free])
    for i, sfx in enumerate(suffix):
        if physical is not None and sfx == step and physical <= target[i]:
            return box(i, valid[free])
    raise refuse("a runtime number of valid rows needs a target axis with the same row size")


register(
    OpDef(
        "reshape",
        (P("x", "tensor"), P("shape", "dims")),
        _infer_reshape,
        "Row-major reinterpretation with the same element count.",
        category="data",
    )
)


def _infer_fillpad(args: dict, attrs: dict) -> TensorType:
    x = _tensor(args, "x")
    pad = attrs.get("pad_value", PadValue.zero)
    if not isinstance(pad, PadValue):
        raise TypeRuleError("pad_value must be a pl.PadValue")
    if pad is PadValue.null:  # PyPTO's parse-time wording (python/pypto/ir/op/_pad_value.py)
        raise TypeRuleError(
            "fillpad pad_value cannot be PadValue.null — that means no padding mode"
        )
    return TensorType(x.shape, x.dtype)


register(
    OpDef(
        "fillpad",
        (P("x", "tensor"), P("pad_value", "attr", PadValue.zero)),
        _infer_fillpad,
        "Fill the invalid region with the pad value (min = -inf); the result is fully valid.",
    )
)

# ------------------------------------------------------ memory and views


def _infer_create(args: dict, attrs: dict) -> TensorType:
    shape = _dims(args, "shape")
    init = args.get("init_value")
    if init is not None:
        t = getattr(init, "type", None)
        if not isinstance(t, ScalarType) or t.dtype.is_bool:
            raise TypeRuleError(
                f"create_tensor init_value must be a number, got {describe_type(t)}",
                "e.g. init_value=0",
            )
    valid = None
    if args.get("valid_shape") is not None:
        valid = _dims(args, "valid_shape")
        if len(valid) != len(shape):
            raise TypeRuleError(f"valid_shape has {len(valid)} dims, the shape {len(shape)}")
        _check_narrows(valid, shape, "shape")
    return TensorType(shape, attrs["dtype"], valid)


def _check_narrows(valid: tuple, shape: tuple, what: str) -> None:
    for axis, (v, w) in enumerate(zip(valid, shape)):
        sv, sw = static_value(v), static_value(w)
        if sv is not None and sw is not None and sv > sw:
            raise TypeRuleError(
                f"valid_shape {format_dims(valid)} is wider than the {what} {format_dims(shape)} "
                f"on axis {axis}",
                "valid_shape can only narrow",
            )


register(
    OpDef(
        "create_tensor",
        (
            P("shape", "dims"),
            P("dtype", "dtype"),
            P("init_value", "scalar", None),
            P("valid_shape", "dims", None),
        ),
        _infer_create,
        "A fresh buffer; its contents are undefined until written, or init_value everywhere.",
        category="data",
    )
)


def _infer_full(args: dict, attrs: dict) -> TensorType:
    t = getattr(args["value"], "type", None)
    if not isinstance(t, ScalarType):
        raise TypeRuleError("pl.full value must be a scalar")
    if t.dtype.is_bool and not attrs["dtype"].is_bool:
        raise TypeRuleError("a BOOL value cannot fill a numeric tensor")
    return TensorType(_dims(args, "shape"), attrs["dtype"])


register(
    OpDef(
        "full",
        (P("shape", "dims"), P("dtype", "dtype"), P("value", "scalar")),
        _infer_full,
        "A tensor filled with value.",
        category="data",
    )
)


def _infer_slice(args: dict, attrs: dict) -> TensorType:
    src = _tensor(args, "x")
    shape = _dims(args, "shape")
    offset = _dims(args, "offset")
    if len(shape) != src.rank or len(offset) != src.rank:
        raise TypeRuleError(
            f"slice of a rank-{src.rank} tensor needs {src.rank} dims in shape and offset, "
            f"got {len(shape)} and {len(offset)}",
            "pl.slice(t, shape, offset): shape comes first",
        )
    valid = _dims(args, "valid_shape") if args.get("valid_shape") is not None else None
    if valid is not None and len(valid) != len(shape):
        raise TypeRuleError(f"valid_shape has {len(valid)} dims, the window {len(shape)}")
    for axis, (v, w) in enumerate(zip(valid or (), shape)):
        if (
            static_value(v) is not None
            and static_value(w) is not None
            and static_value(v) > static_value(w)
        ):
            raise TypeRuleError(
                f"valid_shape {format_dims(valid)} is wider than the window {format_dims(shape)} "
                f"on axis {axis}",
                "valid_shape can only narrow a window",
            )
    return TensorType(shape, src.dtype, valid, attrs.get("pad_value"))


register(
    OpDef(
        "slice",
        (
            P("x", "tensor"),
            P("shape", "dims"),
            P("offset", "dims"),
            P("valid_shape", "dims", None),
            P("pad_value", "attr", None),
        ),
        _infer_slice,
        "A view of the window [offset, offset+shape); valid_shape narrows the valid region.",
        category="data",
    )
)


def _infer_assemble(args: dict, attrs: dict) -> TensorType:
    target, source = _tensor(args, "target"), _tensor(args, "source")
    offset = _dims(args, "offset")
    # A lower-rank source fills the target's trailing axes (leading extents 1), as PyPTO
    # writes a [rows, cols] tile into a [batch, seq, hidden] buffer.
    # A higher-rank source whose extra leading axes are 1 (a batched matmul's [1, M, N]
    # result) writes its trailing axes: PyPTO accepts rank-mismatched writes.
    extra = source.rank - target.rank
    if len(offset) != target.rank or (
        extra > 0 and any(static_value(d) != 1 for d in source.shape[:extra])
    ):
        raise TypeRuleError(
            f"assemble of a rank-{source.rank} source into a rank-{target.rank} target "
            f"with {len(offset)} offsets",
            "give one offset per target axis; a source of higher rank must have leading axes "
            "of 1 (they are dropped)",
        )
    if source.dtype != target.dtype:
        raise TypeRuleError(
            f"assemble source dtype {source.dtype.name} differs from target {target.dtype.name}",
            f"pl.cast(source, pl.{target.dtype.name}) first",
        )
    atomic = attrs.get("atomic", AtomicType.None_)
    if not isinstance(atomic, AtomicType):
        raise TypeRuleError(
            f"assemble atomic must be a pl.AtomicType, got {atomic!r}",
            "atomic=pl.AtomicType.Add adds source into target; pl.AtomicType.None_ overwrites",
        )
    if atomic is AtomicType.Add and target.dtype.is_bool:
        raise TypeRuleError("assemble atomic=pl.AtomicType.Add needs a numeric target, got BOOL")
    return TensorType(target.shape, target.dtype, target.valid_shape, target.pad)


register(
    OpDef(
        "assemble",
        (
            P("target", "tensor"),
            P("source", "tensor"),
            P("offset", "dims"),
            P("atomic", "attr", AtomicType.None_),
        ),
        _infer_assemble,
        "Write source's valid region into target at offset, in place (atomic=pl.AtomicType.Add: "
        "add it, rounding as pl.add); returns target.",
        category="data",
        writes_arg=0,
    )
)


def _check_indices(t: TensorType, args: dict) -> None:
    n = len(_dims(args, "indices"))
    if n not in (t.rank, 1):
        raise TypeRuleError(f"{n} indices for a rank-{t.rank} tensor")


def _infer_read(args: dict, attrs: dict) -> ScalarType:
    t = _tensor(args, "x")
    _check_indices(t, args)
    return ScalarType(t.dtype)


def _infer_write(args: dict, attrs: dict) -> TensorType:
    t = _tensor(args, "x")
    _check_indices(t, args)
    v = getattr(args["value"], "type", None)
    if not isinstance(v, ScalarType):
        raise TypeRuleError("pl.write value must be a scalar")
    value = args["value"]
    if v.dtype != t.dtype and not (
        isinstance(value, Const) and v.dtype.is_float == t.dtype.is_float
    ):
        raise TypeRuleError(
            f"pl.write value dtype {v.dtype.name} differs from the tensor's {t.dtype.name}",
            f"pl.cast(value, pl.{t.dtype.name}) first",
        )
    return t


register(
    OpDef(
        "read",
        (P("x", "tensor"), P("indices", "dims")),
        _infer_read,
        "One element as a scalar.",
        category="data",
        aliases=("tensor.read",),
    )
)
register(
    OpDef(
        "write",
        (P("x", "tensor"), P("indices", "dims"), P("value", "scalar")),
        _infer_write,
        "Write one element in place; returns the tensor.",
        category="data",
        writes_arg=0,
        aliases=("tensor.write",),
    )
)


def _infer_dim(args: dict, attrs: dict) -> ScalarType:
    t = _tensor(args, "x")
    axis = attrs["axis"]
    if not isinstance(axis, int) or not -t.rank <= axis < t.rank:
        raise TypeRuleError(f"axis {axis} out of range for a rank-{t.rank} tensor")
    return ScalarType(INDEX)


register(
    OpDef(
        "dim",
        (P("x", "tensor"), P("axis", "attr")),
        _infer_dim,
        "The runtime extent of an axis, as Scalar[INDEX].",
        category="data",
        aliases=("tensor.dim",),
    )
)
