"""One NumPy kernel per op of the op table, registered under the table's name.

Calling convention (independent of how the IR is walked, so a fast path can reuse it)::

    KERNELS[name].fn(ctx, rtype, *runtime_args, **static_attrs)

* ``ctx``: a `memory.Context` (strict, precision, bounds_check).
* ``rtype``: the result's dtype name from the op's static type ("FP32", ...), or None to
  derive it from the operands as the type rule does.
* runtime args in op-table order: `TensorValue`s, scalars (Python / NumPy numbers), dims as
  tuples of ints (None for an omitted optional dims argument).
* static attrs by their op-table names (DType objects, PadValue members, bools, ...).

Kernels return a `TensorValue` (fresh for computed tiles; the same buffer for views and
in-place writes) or a scalar, and raise `memory.OpFault` for runtime faults. Every rounding
goes through `pldsl.execution.numerics`. Valid regions propagate as the type rules in
`pldsl/ops/table.py` say; in strict mode each kernel first checks that the part of each
input it consumes (the part that feeds the result's valid region) is defined.

``KERNELS[name].cost(args, result)`` gives (bytes moved, FLOPs) for traces.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pldsl.execution import faults, numerics
from pldsl.execution.memory import (
    Box,
    Context,
    OpFault,
    TensorValue,
    fresh,
    new_buffer,
    reshaped,
    undefined_fault,
)


@dataclass(frozen=True)
class Kernel:
    name: str
    fn: Callable
    cost: Callable  # (args: tuple, result) -> (bytes, flops)


KERNELS: dict[str, Kernel] = {}


def kernel(*names: str, cost: Callable | None = None):
    """Register `fn` under each op-table name (one function may serve a family): its
    `Kernel.fn` is `fn` with the op name bound as the first argument."""

    def decorate(fn: Callable) -> Callable:
        for name in names:
            KERNELS[name] = Kernel(name, functools.partial(fn, name), cost or _no_cost)
        return fn

    return decorate


# ------------------------------------------------------------------ helpers


def _dtype_name(d) -> str | None:
    return None if d is None else getattr(d, "name", d)


def _scalar_dtype(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "BOOL"
    if isinstance(v, (int, np.integer)):
        return "INDEX" if isinstance(v, int) else _np_name(np.asarray(v).dtype)
    if isinstance(v, np.generic):
        return _np_name(np.asarray(v).dtype)
    return "FP32"


# Storage dtype -> dtype name, for the dtype of an untyped NumPy scalar operand.
_NP_NAME = {
    numerics.storage_dtype(n): n
    for n in ("BF16", "FP16", "FP32", "INT8", "INT16", "INT32", "INT64")
    + ("UINT8", "UINT16", "UINT32", "UINT64", "BOOL")
}


def _np_name(dt: np.dtype) -> str:
    return _NP_NAME.get(dt, "FP32")


def _nbytes(v: TensorValue, box: Box | None = None) -> int:
    box = v.shape if box is None else box
    return math.prod(box) * np.dtype(v.buffer.data.dtype).itemsize


def _check_dims(what: str, dims: Box) -> None:
    for i, d in enumerate(dims):
        if d < 0:
            raise OpFault("BadShape", f"{what} has a negative extent {d} on axis {i}")


def _broadcast(a: Box, b: Box) -> Box:
    if len(a) != len(b):
        raise OpFault("ShapeMismatch", f"shapes {list(a)} and {list(b)} have different ranks")
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise OpFault(
                "ShapeMismatch",
                f"shapes {list(a)} and {list(b)} do not broadcast",
                "the dynamic dims of the operands differ at run time",
            )
    return tuple(out)


def _needed(shape: Box, result_shape: Box, result_valid: Box) -> Box:
    """The box of an operand that feeds the result's valid box (broadcast axes: index 0)."""
    return tuple(v if s == r else min(1, v) for s, r, v in zip(shape, result_shape, result_valid))


def _check_window(target: TensorValue, offset: Box, extent: Box) -> None:
    """The window [offset, offset + extent) of a slice or assemble lies inside `target`."""
    rank = len(target.shape)
    if len(offset) == rank and len(extent) == rank:  # one pass when it fits (the common case)
        bshape = target.buffer.data.shape
        for o, e, d, b, bd in zip(offset, extent, target.shape, target.offset, bshape):
            if o < 0 or o + e > d or (e > 0 and b + o + e > bd):
                break
        else:
            return
    if len(offset) != rank or len(extent) != rank:
        raise OpFault(
            "ShapeMismatch",
            f"window: {len(offset)} offsets / {len(extent)} extents for a rank-{rank} tensor",
        )
    for i, (o, e, d) in enumerate(zip(offset, extent, target.shape)):
        if o < 0:
            raise OpFault(
                "OutOfBounds",
                faults.window_negative_offset(i, o, target.name),
                faults.WINDOW_NEGATIVE_HELP,
            )
        if o + e > d:
            raise OpFault(
                "OutOfBounds",
                faults.window_past_dim(i, o, e, d, target.name),
                faults.WINDOW_PAST_DIM_HELP,
            )
    # The physical buffer (a view's window may reach past its buffer's edge when its valid
    # region does not).
    for i, (o, e, d) in enumerate(zip(target.buffer_index(offset), extent, target.buffer.shape)):
        if e > 0 and o + e > d:
            raise OpFault(
                "OutOfBounds",
                faults.window_past_buffer(i, o, e, d, target.buffer.name),
                faults.WINDOW_PAST_BUFFER_HELP,
            )


def _check_index(ctx: Context, x: TensorValue, indices: Box) -> Box:
    if len(indices) == 1 and x.rank != 1:
        flat, size = indices[0], math.prod(x.shape)
        if ctx.bounds_check and not 0 <= flat < size:
            raise OpFault(
                "OutOfBounds",
                f"flat index {flat} out of bounds for '{x.name}' {list(x.shape)} ({size} elements)",
                "indices must satisfy 0 <= i < size",
            )
        return tuple(int(i) for i in np.unravel_index(flat, x.shape))
    if len(indices) != x.rank:
        raise OpFault("ShapeMismatch", f"{len(indices)} indices for a rank-{x.rank} tensor")
    if ctx.bounds_check:
        for axis, (i, d) in enumerate(zip(indices, x.shape)):
            if not 0 <= i < d:
                raise OpFault(
                    "OutOfBounds",
                    f"index {list(indices)} out of bounds on axis {axis}: {i} not in [0, {d}) "
                    f"for '{x.name}' {list(x.shape)}",
                    "indices must satisfy 0 <= i < dim",
                )
    return tuple(indices)


def _to_scalar(value: np.ndarray | np.generic, dtype: str):
    """A 0-d result as the interpreter's scalar: Python int for INDEX, bool for BOOL, else a
    NumPy scalar of the storage dtype."""
    v = np.asarray(value)[()]
    if dtype == "INDEX":
        return int(v)
    if dtype == "BOOL":
        return bool(v)
    return v


# ------------------------------------------------------------------ costs


def _no_cost(args, result) -> tuple[int, int]:
    return 0, 0


def _tensors(args) -> list[TensorValue]:
    return [a for a in args if isinstance(a, TensorValue)]


def _elementwise_cost(args, result) -> tuple[int, int]:
    moved = sum(_nbytes(t) for t in _tensors(args)) + _nbytes(result)
    return moved, math.prod(result.shape)


def _reduce_cost(args, result) -> tuple[int, int]:
    x = args[0]
    return _nbytes(x) + _nbytes(result), math.prod(x.shape)


def _copy_cost(args, result) -> tuple[int, int]:
    moved = sum(_nbytes(t) for t in _tensors(args)) + _nbytes(result)
    return moved, 0


def _alloc_cost(args, result) -> tuple[int, int]:
    return _nbytes(result), 0


def _matmul_cost(args, result) -> tuple[int, int]:
    tensors = _tensors(args)
    lhs = tensors[-2]
    *batch, m, n = result.shape
    k = lhs.shape[-1] if lhs.shape[-2] == m else lhs.shape[-2]  # a_trans reads [K, M]
    count = math.prod(batch) * m * n
    flops = 2 * count * k + (count if len(tensors) == 3 else 0)
    return sum(_nbytes(t) for t in tensors) + _nbytes(result), flops


def _assemble_cost(args, result) -> tuple[int, int]:
    source = args[1]
    return 2 * _nbytes(source, source.valid), 0


def _element_cost(args, result) -> tuple[int, int]:
    return np.dtype(args[0].buffer.data.dtype).itemsize, 0


# ------------------------------------------------------------------ elementwise


@kernel("add", "sub", "mul", "div", "maximum", "minimum", cost=_elementwise_cost)
def binary(op, ctx: Context, rtype, lhs: TensorValue, rhs):
    """lhs op rhs (tensor or scalar rhs, NumPy broadcasting); result valid = lhs valid."""
    rhs_tensor = isinstance(rhs, TensorValue)
    if rhs_tensor:
        shape = _broadcast(lhs.shape, rhs.shape)
        dtype = rtype or numerics.promote(lhs.dtype, rhs.dtype)
    else:
        shape = lhs.shape
        dtype = rtype
        if dtype is None:
            s = _scalar_dtype(rhs)
            dtype = lhs.dtype if s == "INDEX" else numerics.promote(lhs.dtype, s)
    valid = lhs.valid
    if shape != lhs.shape:  # lhs broadcasts: its valid extent there becomes the result's dim
        valid = tuple(
            v if s == r else (r if v > 0 else 0) for s, r, v in zip(lhs.shape, shape, valid)
        )
    if ctx.strict:
        lhs.require(ctx, _needed(lhs.shape, shape, valid), "lhs")
        if rhs_tensor:
            rhs.require(ctx, _needed(rhs.shape, shape, valid), "rhs")
    b = rhs.materialize(ctx) if rhs_tensor else np.asarray(rhs)
    r = numerics.binary(op, lhs.materialize(ctx), b, dtype, ctx.precision)
    return fresh(ctx, r, dtype, valid)


@kernel("exp", "sqrt", "rsqrt", "recip", "log", "neg", "abs", "relu", cost=_elementwise_cost)
def unary(op, ctx: Context, rtype, x: TensorValue, high_precision=False):
    """op(x) elementwise; result valid = x valid. (rsqrt's high_precision changes nothing:
    the result is already sqrt then 1/x, each correctly rounded.)"""
    dtype = rtype or x.dtype
    x.require(ctx, x.valid, "x")
    r = numerics.unary(op, x.materialize(ctx), dtype, ctx.precision)
    return fresh(ctx, r, dtype, x.valid)


# ------------------------------------------------------------------ reductions


@kernel("row_sum", "row_max", "row_min", "col_sum", "col_max", "col_min", cost=_reduce_cost)
def reduction(op, ctx: Context, rtype, x: TensorValue, tmp=None):
    """row_*: reduce the last axis -> [..., 1]; col_*: reduce axis 0 of a 2-D tensor -> [1, N].
    (`tmp`, PyPTO's scratch tile of the tile form, is neither read nor written.)

    The whole reduced axis is consumed: outside the valid region it reads the pad value
    (default mode) or is an undefined read (strict mode) -- pl.fillpad first."""
    kind, red = op.split("_")
    dtype = rtype or x.dtype
    if kind == "row":
        if x.rank < 1:
            raise OpFault("ShapeMismatch", "row reductions need a tensor of rank >= 1")
        axis = x.rank - 1
        valid = x.valid[:-1] + (1,)
        need = x.valid[:-1] + (x.shape[-1],)
    else:
        if x.rank != 2:
            raise OpFault("ShapeMismatch", f"column reductions need a 2-D tensor, got {x.rank}")
        axis = 0
        valid = (1, x.valid[1])
        need = (x.shape[0], x.valid[1])
    if x.shape[axis] == 0 and red != "sum":
        raise OpFault("EmptyReduction", f"{red} over an empty axis of '{x.name}' has no value")
    x.require(ctx, need, "x")
    r = numerics.reduce(red, x.materialize(ctx), axis, dtype, ctx.precision)
    return fresh(ctx, r, dtype, valid)


@kernel(
    "row_expand_add",
    "row_expand_sub",
    "row_expand_mul",
    "row_expand_div",
    "row_expand",
    "col_expand_add",
    "col_expand_sub",
    "col_expand_mul",
    "col_expand_div",
    "col_expand",
    "col_expand_expdif",
    cost=_elementwise_cost,
)
def expand(op, ctx: Context, rtype, x: TensorValue, v: TensorValue):
    """x op v with one value per row (v: [..., M, 1]) or per column (v: [..., 1, N]); leading
    axes of v equal x's or 1; valid = x valid. row_expand / col_expand: v broadcast (x gives
    only the shape)."""
    from pldsl.ops.table import expand_shape  # the same shape rule as the type rule

    parts = op.split("_")
    kind, fn = parts[0], (parts[2] if len(parts) == 3 else "rhs")
    why = expand_shape(kind, x.shape, v.shape, op)
    if why is not None:
        raise OpFault(
            "ShapeMismatch",
            f"{why} (at run time)",
            "row_expand_* takes one value per row [..., M, 1]; col_expand_* one per column "
            "[..., 1, N]",
        )
    dtype = rtype or numerics.promote(x.dtype, v.dtype)
    if v.rank < x.rank:  # fewer leading axes: they broadcast (a view with leading 1s)
        lead = (1,) * (x.rank - v.rank)
        v = reshaped(ctx, v, lead + v.shape, lead + v.valid)
    if ctx.strict:
        if fn != "rhs":
            x.require(ctx, x.valid, "x")
        v.require(ctx, _needed(v.shape, x.shape, x.valid), "v")
    r = numerics.binary(fn, x.materialize(ctx), v.materialize(ctx), dtype, ctx.precision)
    return fresh(ctx, r, dtype, x.valid)


# ------------------------------------------------------------------ matmul


def _mm_dims(op: str, lhs: TensorValue, rhs: TensorValue, a_trans: bool, b_trans: bool):
    """(batch + (M, N)) of a (batched) product: operands of rank >= 2, leading axes broadcast
    as in the type rule (pldsl.ops.table.mm_batch)."""
    from pldsl.ops.table import mm_batch

    if lhs.rank < 2 or rhs.rank < 2:
        raise OpFault("ShapeMismatch", f"{op} needs operands of rank >= 2")
    m, k1 = (lhs.shape[-1], lhs.shape[-2]) if a_trans else lhs.shape[-2:]
    k2, n = (rhs.shape[-1], rhs.shape[-2]) if b_trans else rhs.shape[-2:]
    if k1 != k2:
        raise OpFault(
            "ShapeMismatch",
            f"{op} contraction dims differ at run time: lhs K={k1}, rhs K={k2}",
            "check a_trans/b_trans and the slice shapes",
        )
    batch = mm_batch(lhs.shape[:-2], rhs.shape[:-2])
    if batch is None:
        raise OpFault(
            "ShapeMismatch",
            f"{op}: batch axes {lhs.shape[:-2]} and {rhs.shape[:-2]} do not broadcast",
        )
    return batch + (m, n)


def operand(ctx: Context, x: TensorValue) -> np.ndarray:
    """A matmul operand: the cached FP32 copy of a BF16 argument's window where there is one
    (exact widening, so the product is bit-identical), else the tile itself."""
    w = x.widened()
    return x.materialize(ctx) if w is None else w


@kernel("matmul", cost=_matmul_cost)
def matmul(op, ctx: Context, rtype, lhs, rhs, out_dtype=None, a_trans=False, b_trans=False):
    """lhs @ rhs, FP32 accumulation, one rounding to out_dtype; consumes both operands whole."""
    _mm_dims(op, lhs, rhs, a_trans, b_trans)
    dtype = rtype or _dtype_name(out_dtype) or numerics.promote(lhs.dtype, rhs.dtype)
    lhs.require(ctx, None, "lhs")
    rhs.require(ctx, None, "rhs")
    r = numerics.matmul(
        operand(ctx, lhs), operand(ctx, rhs), dtype, a_trans, b_trans, ctx.precision
    )
    return fresh(ctx, r, dtype)


@kernel("matmul_acc", cost=_matmul_cost)
def matmul_acc(op, ctx: Context, rtype, acc, lhs, rhs, a_trans=False, b_trans=False):
    """acc + lhs @ rhs in the FP32 (INT32) accumulator; a fresh result."""
    want = _mm_dims(op, lhs, rhs, a_trans, b_trans)
    if acc.shape != want:
        raise OpFault(
            "ShapeMismatch",
            f"accumulator shape {list(acc.shape)} does not match the product {list(want)}",
        )
    dtype = rtype or acc.dtype
    acc.require(ctx, None, "acc")
    lhs.require(ctx, None, "lhs")
    rhs.require(ctx, None, "rhs")
    r = numerics.matmul_acc(
        acc.materialize(ctx),
        operand(ctx, lhs),
        operand(ctx, rhs),
        dtype,
        a_trans,
        b_trans,
        ctx.precision,
    )
    return fresh(ctx, r, dtype)


# ------------------------------------------------------------------ casts, reshape, fillpad


def _cast_cost(args, result) -> tuple[int, int]:
    if isinstance(result, TensorValue):
        return _nbytes(args[0]) + _nbytes(result), 0
    return 0, 0


@kernel("cast", cost=_cast_cost)
def cast(op, ctx: Context, rtype, x, target_type=None, mode="round"):
    """Convert to target_type with a PyPTO cast mode (tensors keep valid region and pad)."""
    dst = _dtype_name(target_type) or rtype
    if not isinstance(x, TensorValue):
        r = numerics.cast(np.asarray(x), dst, mode, ctx.precision)
        return _to_scalar(r, dst)
    x.require(ctx, x.valid, "x")
    r = numerics.cast(x.materialize(ctx), dst, mode, ctx.precision)
    return fresh(ctx, r, dst, x.valid, x.pad)


@kernel("reshape")
def reshape(op, ctx: Context, rtype, x: TensorValue, shape: Box):
    """Row-major reinterpretation: a view of the same memory when the window is contiguous."""
    shape = tuple(shape)
    _check_dims("the new shape", shape)
    if math.prod(shape) != math.prod(x.shape):
        raise OpFault(
            "ShapeMismatch",
            f"reshape from {list(x.shape)} to {list(shape)} changes the element count "
            f"({math.prod(x.shape)} -> {math.prod(shape)})",
        )
    valid = None
    if not x.fully_valid:
        from pldsl.ops import TypeRuleError
        from pldsl.ops.table import reshape_valid  # the same mapping as the type rule

        try:
            valid = reshape_valid(tuple(x.shape), tuple(x.valid), shape)
        except TypeRuleError as exc:
            raise OpFault("PartialReshape", f"'{x.name}': {exc.message}", exc.hint) from None
    return reshaped(ctx, x, shape, valid)


@kernel("fillpad", cost=_copy_cost)
def fillpad(op, ctx: Context, rtype, x: TensorValue, pad_value=None):
    """Copy the valid region, fill the rest with the pad value (min = -inf); fully valid."""
    pad = "zero" if pad_value is None else pad_value
    x.require(ctx, x.valid, "x")
    out = np.full(x.shape, numerics.pad_value(pad, x.dtype, ctx.precision), x.buffer.data.dtype)
    valid = tuple(slice(0, v) for v in x.valid)
    out[valid] = x.buffer.data[x.window()]
    return fresh(ctx, out, x.dtype)


# ------------------------------------------------------------------ memory and views


@kernel("create_tensor", cost=_alloc_cost)
def create_tensor(
    op, ctx: Context, rtype, shape: Box, init_value=None, valid_shape=None, dtype=None
):
    """A fresh buffer, undefined until written (zero-filled in default mode); with init_value
    every element holds it (converted with round-to-nearest-even), defined."""
    name = _dtype_name(dtype) or rtype
    shape = tuple(shape)
    _check_dims("pl.create_tensor shape", shape)
    valid = None
    if valid_shape is not None:
        valid = tuple(valid_shape)
        for i, (v, s) in enumerate(zip(valid, shape)):
            if not 0 <= v <= s:
                raise OpFault(
                    "BadValidShape",
                    f"valid_shape {list(valid)} does not fit the shape {list(shape)} on axis {i}",
                    "valid extents must satisfy 0 <= valid <= shape",
                )
    buf = new_buffer(ctx, shape, name, defined=init_value is not None)
    if init_value is not None:
        v = numerics.cast(np.asarray(init_value), name, "rint", ctx.precision)
        buf.data[...] = v[()]
    return TensorValue(buf, (0,) * len(shape), shape, valid)


@kernel("full", cost=_alloc_cost)
def full(op, ctx: Context, rtype, shape: Box, value, dtype=None):
    """A tensor filled with value (converted to the dtype with round-to-nearest-even)."""
    name = _dtype_name(dtype) or rtype
    shape = tuple(shape)
    _check_dims("pl.full shape", shape)
    v = numerics.cast(np.asarray(value), name, "rint", ctx.precision)
    data = np.full(shape, v[()], dtype=ctx.storage(name))
    return fresh(ctx, data, name)


@kernel("slice")
def slice_(
    op, ctx: Context, rtype, x: TensorValue, shape, offset, valid_shape=None, pad_value=None
):
    """A view of [offset, offset+shape). The accessed extent (valid_shape, else shape) must lie
    inside x; the view's valid region is valid_shape cut by x's own valid region."""
    shape, offset = tuple(shape), tuple(offset)
    if valid_shape is None and len(shape) == len(offset) == x.rank and min(shape, default=0) >= 0:
        # the common case, checked in one pass (the general path below words the faults)
        if ctx.bounds_check:
            _check_window(x, offset, shape)
        xo = x.offset
        valid = tuple([max(0, min(s, xv - o)) for s, xv, o in zip(shape, x.valid, offset)])
        return TensorValue(x.buffer, tuple([a + b for a, b in zip(xo, offset)]), shape, valid,
                           pad_value)  # fmt: skip
    _check_dims("the slice shape", shape)
    if len(shape) != x.rank or len(offset) != x.rank:
        raise OpFault(
            "ShapeMismatch",
            f"slice of a rank-{x.rank} tensor with {len(shape)} dims and {len(offset)} offsets",
        )
    want = shape if valid_shape is None else tuple(valid_shape)
    if len(want) != len(shape):
        raise OpFault("ShapeMismatch", f"valid_shape has {len(want)} dims, the window {len(shape)}")
    for i, (v, s) in enumerate(zip(want, shape)):
        if not 0 <= v <= s:
            raise OpFault(
                "BadValidShape", faults.valid_shape_misfit(i, v, s), faults.VALID_SHAPE_HELP
            )
    if ctx.bounds_check:
        _check_window(x, offset, want)
    valid = tuple(max(0, min(v, xv - o)) for v, xv, o in zip(want, x.valid, offset))
    return TensorValue(x.buffer, x.buffer_index(offset), shape, valid, pad_value)


def _drop_unit_axes(ctx: Context, x: TensorValue, n: int) -> TensorValue:
    """x without its first n axes, which must have extent 1 (a view when contiguous)."""
    if any(d != 1 for d in x.shape[:n]):
        raise OpFault(
            "ShapeMismatch",
            f"assemble of a {list(x.shape)} source: only leading axes of 1 can be dropped",
        )
    valid = x.valid[n:] if all(v == 1 for v in x.valid[:n]) else (0,) * (x.rank - n)
    return reshaped(ctx, x, x.shape[n:], valid)


@kernel("assemble", cost=_assemble_cost)
def assemble(
    op, ctx: Context, rtype, target: TensorValue, source: TensorValue, offset, atomic=None
):
    """Write source's valid region into target at offset, in place (atomic Add: add it);
    returns target."""
    offset = tuple(offset)
    if source.rank > target.rank:
        source = _drop_unit_axes(ctx, source, source.rank - target.rank)
    # a lower-rank source fills the trailing axes (leading extents 1)
    extents = (1,) * (target.rank - source.rank) + tuple(source.valid)
    if ctx.bounds_check:
        _check_window(target, offset, extents)
    source.require(ctx, source.valid, "source")
    dst = target.window(extents, offset)
    src = source.buffer.data[source.window()]
    if _atomic_add(atomic):  # target += source, rounded as pl.add (sequential: no race)
        if ctx.strict and target.buffer.defined is not None:
            undefined = ~target.buffer.defined[dst]
            if undefined.any():
                first = tuple(int(i) + o for i, o in zip(np.argwhere(undefined)[0], offset))
                raise undefined_fault(target, first, "target")
        cur = target.buffer.data[dst]
        src = numerics.binary("add", cur, src.reshape(cur.shape), target.dtype, ctx.precision)
    target.buffer.data[dst] = src
    if target.buffer.defined is not None:
        target.buffer.defined[dst] = True
    target.buffer.mark_written()
    return target


@kernel("read", cost=_element_cost)
def read(op, ctx: Context, rtype, x: TensorValue, indices):
    """One element as a NumPy scalar of the storage dtype (flat index allowed)."""
    index = _check_index(ctx, x, tuple(indices))
    x.require_index(ctx, index, "x")
    if all(i < v for i, v in zip(index, x.valid)):
        value = x.buffer.data[x.buffer_index(index)]
    else:
        value = x.fill_value(ctx)
    return _to_scalar(value, x.dtype) if x.dtype in ("INDEX", "BOOL") else value


@kernel("write", cost=_element_cost)
def write(op, ctx: Context, rtype, x: TensorValue, indices, value):
    """Write one element in place (value converted with round-to-nearest-even); returns x."""
    index = _check_index(ctx, x, tuple(indices))
    where = x.buffer_index(index)
    if ctx.bounds_check and any(w >= d for w, d in zip(where, x.buffer.shape)):
        raise OpFault(
            "OutOfBounds",
            f"index {list(index)} of '{x.name}' lies past the end of its buffer "
            f"{list(x.buffer.shape)}",
        )
    v = numerics.cast(np.asarray(value), x.dtype, "rint", ctx.precision)
    x.buffer.data[where] = v[()]
    if x.buffer.defined is not None:
        x.buffer.defined[where] = True
    x.buffer.mark_written()
    return x


@kernel("dim")
def dim(op, ctx: Context, rtype, x: TensorValue, axis=0):
    """The runtime extent of an axis (negative axes count from the end)."""
    if not -x.rank <= axis < x.rank:
        raise OpFault("BadAxis", f"axis {axis} out of range for a rank-{x.rank} tensor")
    return int(x.shape[axis])


def _atomic_add(atomic) -> bool:
    return atomic is not None and getattr(atomic, "value", atomic) == "add"


# ------------------------------------------------------------------ PyPTO's wider op set


@kernel("arange", cost=_alloc_cost)
def arange(op, ctx: Context, rtype, start, shape: Box, dtype=None, descending=False):
    """start, start+1, ... (start-1, ... descending) along the last axis, wrapped into the
    dtype; leading axes must be 1 (PyPTO fills only the first row)."""
    name = _dtype_name(dtype) or rtype or "INT32"
    shape = tuple(shape)
    _check_dims("pl.arange shape", shape)
    if any(d != 1 for d in shape[:-1]):
        raise OpFault(
            "BadShape",
            f"pl.arange fills only the first row; leading dimensions must be 1, got {list(shape)}",
        )
    n = shape[-1] if shape else 1
    step = -1 if descending else 1
    values = int(start) + step * np.arange(n, dtype=np.int64)
    data = np.broadcast_to(values, shape).astype(ctx.storage(name))  # wraps (two's complement)
    return fresh(ctx, data, name)


@kernel("set_validshape")
def set_validshape(op, ctx: Context, rtype, x: TensorValue, valid_rows, valid_cols):
    """The same view of x with valid region [valid_rows, valid_cols] (no data moves)."""
    if x.rank != 2:
        raise OpFault("ShapeMismatch", f"set_validshape needs a 2-D tensor, got rank {x.rank}")
    valid = (int(valid_rows), int(valid_cols))
    for axis, (v, d) in enumerate(zip(valid, x.shape)):
        if not 0 <= v <= d:
            raise OpFault(
                "BadValidShape",
                f"set_validshape: valid extent {v} not in [0, {d}] on axis {axis} of "
                f"'{x.name}' {list(x.shape)}",
                "valid extents must satisfy 0 <= valid <= shape",
            )
    if ctx.bounds_check and not x.in_buffer():
        raise OpFault("OutOfBounds", f"set_validshape: '{x.name}' lies past its buffer's end")
    return TensorValue(x.buffer, x.offset, x.shape, valid, x.pad)


@kernel("transpose", cost=_copy_cost)
def transpose(op, ctx: Context, rtype, x: TensorValue, axis1=0, axis2=1):
    """x with two axes swapped (a fresh copy); the valid region swaps too."""
    rank = x.rank
    if not (-rank <= axis1 < rank and -rank <= axis2 < rank):
        raise OpFault("BadAxis", f"transpose axes ({axis1}, {axis2}) out of range for rank {rank}")
    a, b = axis1 % rank, axis2 % rank
    x.require(ctx, x.valid, "x")
    order = list(range(rank))
    order[a], order[b] = order[b], order[a]
    data = np.ascontiguousarray(np.transpose(x.materialize(ctx), order))
    valid = tuple(x.valid[i] for i in order)
    return fresh(ctx, data, x.dtype, valid)


@kernel("concat", cost=_copy_cost)
def concat(op, ctx: Context, rtype, src0: TensorValue, src1: TensorValue):
    """src0 and src1 joined along the last axis; valid: the smaller leading extents, and
    src0's valid columns followed by src1's only when all of src0's are valid."""
    if src0.rank != src1.rank or src0.shape[:-1] != src1.shape[:-1]:
        raise OpFault(
            "ShapeMismatch",
            f"concat of {list(src0.shape)} and {list(src1.shape)}: all but the last axis must match",
        )
    from pldsl.ops.table_more import concat_valid  # the same rule as the type rule

    valid = concat_valid(src0.shape, src0.valid, src1.shape, src1.valid)
    lead = valid[:-1]
    src0.require(ctx, lead + (min(src0.valid[-1], valid[-1]),), "src0")
    src1.require(ctx, lead + (max(0, valid[-1] - src0.shape[-1]),), "src1")
    data = np.concatenate([src0.materialize(ctx), src1.materialize(ctx)], axis=-1)
    return fresh(ctx, data, src0.dtype, valid)


@kernel("gather", cost=_copy_cost)
def gather(op, ctx: Context, rtype, x: TensorValue, index=None, kvalue=None, dim=-1,
           mask_pattern=None, output_dtype=None, cmp_mode=None, out_cols=None, offset=None,
           count_dtype=None):  # fmt: skip
    """Index form: out[b, k] = x[b, index[b, k]] over index's valid region; an index outside
    [0, N) of x's columns is a fault (the whole row of x can be read: pad beyond its valid
    columns). Mask form: the selected columns, bits reinterpreted as output_dtype. Compare
    form: see _gather_compare."""
    if cmp_mode is not None:
        return _gather_compare(ctx, x, kvalue, cmp_mode, out_cols, _dtype_name(count_dtype))
    if mask_pattern is not None:
        return _gather_mask(ctx, x, mask_pattern, _dtype_name(output_dtype) or rtype or x.dtype)
    if dim is None:
        dim = -1
    if x.rank != 2 or index is None or index.rank != 2 or dim not in (-1, 1):
        raise OpFault("ShapeMismatch", "gather needs rank-2 x and index with dim=-1")
    rows, cols = index.valid
    if rows > x.shape[0]:
        raise OpFault(
            "ShapeMismatch",
            f"gather: index has {rows} valid rows, x only {x.shape[0]}",
        )
    index.require(ctx, index.valid, "index")
    idx = index.materialize(ctx)[:rows, :cols].astype(np.int64)
    bad = (idx < 0) | (idx >= x.shape[1])
    if bad.any():
        b, k = (int(i) for i in np.argwhere(bad)[0])
        raise OpFault(
            "OutOfBounds",
            f"gather: index[{b}, {k}] = {idx[b, k]} is outside [0, {x.shape[1]}) for "
            f"'{x.name}' {list(x.shape)}",
            "gather indices must address a column of x",
        )
    x.require(ctx, (rows, x.shape[1]) if rows else (0, 0), "x")
    src = x.materialize(ctx)
    out = np.zeros(index.shape, dtype=src.dtype)
    out[:rows, :cols] = np.take_along_axis(src[:rows], idx, axis=1)
    return fresh(ctx, out, x.dtype, (rows, cols))


_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
        "gt": np.greater, "ge": np.greater_equal}  # fmt: skip


def _gather_compare(ctx: Context, x: TensorValue, kvalue, cmp_mode, out_cols: int,
                    count_dtype: str | None) -> tuple[TensorValue, TensorValue]:  # fmt: skip
    """Per valid row b of x: the valid columns j (ascending) with x[b, j] <cmp> kvalue, as
    INT32 indices, and their count. Floats compare as FP32 (IEEE: NaN only `ne`), ints exactly.
    A row whose count is not out_cols is a fault: PyPTO does not state that result."""
    from pldsl.ops.gather_compare import cmp_mode_name

    rows, cols = x.valid
    x.require(ctx, x.valid, "x")
    src = np.asarray(x.materialize(ctx))[:rows, :cols]
    if x.dtype in ("FP16", "FP32"):
        hits = _CMP[cmp_mode_name(cmp_mode)](src.astype(np.float32), np.float32(kvalue))
    else:
        hits = _CMP[cmp_mode_name(cmp_mode)](src.astype(np.int64), int(kvalue))
    counts = hits.sum(axis=1)
    for b, n in enumerate(counts):
        if n != out_cols:
            raise OpFault(
                "ShapeMismatch",
                f"gather compare form: row {b} of '{x.name}' has {int(n)} matches, out_cols is "
                f"{out_cols}",
                "PyPTO defines the result only when every row matches exactly out_cols elements",
            )
    dst = np.zeros((x.shape[0], out_cols), np.int32)
    for b in range(rows):
        dst[b] = np.flatnonzero(hits[b])
    cdt = count_dtype or "INT32"
    cdst = np.zeros((1, x.shape[0]), np.int32 if cdt == "INT32" else np.uint32)
    cdst[0, :rows] = counts
    return fresh(ctx, dst, "INT32", (rows, out_cols)), fresh(ctx, cdst, cdt, (1, rows))


def _gather_mask(ctx: Context, x: TensorValue, mask_pattern, out_dtype: str) -> TensorValue:
    from pldsl.ops.table_more import MASK_STRIDE, mask_cols, mask_pattern_code

    stride, off = MASK_STRIDE[mask_pattern_code(mask_pattern)]
    _, vcols = mask_cols(x.shape[1], x.valid[1], mask_pattern_code(mask_pattern))
    x.require(ctx, x.valid, "x")
    data = np.ascontiguousarray(x.materialize(ctx)[:, off::stride][:, : x.shape[1] // stride])
    storage = ctx.storage(out_dtype)
    if storage.itemsize != data.dtype.itemsize:
        raise OpFault(
            "BadDtype",
            f"gather output_dtype {out_dtype} cannot reinterpret {x.dtype} stored as "
            f"{data.dtype} (precision={ctx.precision})",
        )
    return fresh(ctx, data.view(storage), out_dtype, (x.valid[0], vcols))


@kernel("cmp", cost=_elementwise_cost)
def cmp(op, ctx: Context, rtype, lhs: TensorValue, rhs, cmp_type=0):
    """1 where lhs <cmp> rhs, else 0, in the promoted dtype; valid = lhs valid."""
    rhs_tensor = isinstance(rhs, TensorValue)
    if rhs_tensor:
        shape = _broadcast(lhs.shape, rhs.shape)
        dtype = rtype or numerics.promote(lhs.dtype, rhs.dtype)
    else:
        shape = lhs.shape
        s = _scalar_dtype(rhs)
        dtype = rtype or (lhs.dtype if s == "INDEX" else numerics.promote(lhs.dtype, s))
    valid = lhs.valid
    if shape != lhs.shape:
        valid = tuple(v if s == r else (r if v > 0 else 0)
                      for s, r, v in zip(lhs.shape, shape, valid))  # fmt: skip
    if ctx.strict:
        lhs.require(ctx, _needed(lhs.shape, shape, valid), "lhs")
        if rhs_tensor:
            rhs.require(ctx, _needed(rhs.shape, shape, valid), "rhs")
    b = rhs.materialize(ctx) if rhs_tensor else np.asarray(rhs)
    which = numerics.CMP_OPS[cmp_type]
    r = numerics.compare(which, lhs.materialize(ctx), b, dtype, ctx.precision)
    return fresh(ctx, np.array(np.broadcast_to(r, shape)), dtype, valid)


@kernel("fmods", cost=_elementwise_cost)
def fmods(op, ctx: Context, rtype, lhs: TensorValue, rhs):
    """lhs fmod rhs (sign of lhs) in lhs's dtype; valid = lhs valid."""
    dtype = rtype or lhs.dtype
    lhs.require(ctx, lhs.valid, "lhs")
    r = numerics.binary("fmod", lhs.materialize(ctx), np.asarray(rhs), dtype, ctx.precision)
    return fresh(ctx, r, dtype, lhs.valid)


@kernel("row_argmax", cost=_reduce_cost)
def row_argmax(op, ctx: Context, rtype, x: TensorValue):
    """INT32 index of the first maximum of each row (the whole row is consumed, as in the
    row reductions: pad beyond the valid columns)."""
    if x.rank < 2:
        raise OpFault("ShapeMismatch", f"row_argmax needs rank >= 2, got {x.rank}")
    if x.shape[-1] == 0:
        raise OpFault("EmptyReduction", f"argmax over an empty axis of '{x.name}' has no value")
    x.require(ctx, x.valid[:-1] + (x.shape[-1],), "x")
    r = numerics.argmax_last(x.materialize(ctx))
    return fresh(ctx, r, "INT32", x.valid[:-1] + (1,))


from . import l1_ops, sort_ops, tile_ops  # noqa: E402, F401  (their kernels register themselves)
