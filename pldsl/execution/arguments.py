"""Arguments of a run, shared by every executor: conversion, checks, binding, write-back.

`prepare_arguments` turns the caller's values into executor values (scalars coerced, arrays of
the storage dtype used in place, others converted exactly); `bind_params` checks them against a
function's parameters and binds the dynamic dims; `write_back` copies converted arrays the
kernel wrote back into the caller's. The interpreter and the C backend both call these, so a
run is refused or accepted identically on both.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pldsl.diagnostics import NO_SPAN, RuntimeFault, Span
from pldsl.dtypes import DType
from pldsl.execution import numerics
from pldsl.execution.f32cache import MIN_ELEMENTS
from pldsl.execution.faults import ArgumentError, check_count, fault
from pldsl.execution.memory import Context, OpFault, TensorValue, wrap_array
from pldsl.ir.nodes import Function, Var
from pldsl.ir.printer import format_type
from pldsl.ir.symbolic import Unbound, evaluate
from pldsl.ir.types import ScalarType, TensorType


def py_scalar(v: Any) -> Any:
    """A scalar as a Python number for arithmetic."""
    if isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    return float(v)


def scalar_from_int(value: int, dtype: DType) -> Any:
    """An integer scalar result: INDEX a Python int, BOOL a bool, else wrapped into a NumPy
    scalar of the dtype (numerics.wrap_int)."""
    if dtype.name == "INDEX":
        return int(value)
    if dtype.is_bool:
        return bool(value)
    return numerics.storage_dtype(dtype.name).type(numerics.wrap_int(value, dtype.name))


def eval_shape(shape, env: Mapping[str, Any]) -> tuple[int, ...] | None:
    try:
        scalars = {
            k: py_scalar(v) for k, v in env.items() if not isinstance(v, (TensorValue, tuple))
        }
        return tuple(int(evaluate(d, scalars)) for d in shape)
    except (Unbound, TypeError, ValueError):
        return None


# ------------------------------------------------------------------ argument conversion


def coerce_array(
    value: Any, dtype: str, ctx: Context, what: str, span: Span, cls: type = ArgumentError
) -> tuple[np.ndarray, bool]:
    """An argument as an array of the storage dtype. Returns (array, converted): converted is
    False when `value` itself is used (in place). Conversions must be exact: a float32 array
    for a BF16 parameter must hold BF16 values (checked), an int64 array for INT32 must fit."""
    storage = ctx.storage(dtype)
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) or np.isscalar(value):
            value = np.asarray(value)
        else:
            raise fault(
                "ArgumentMismatch",
                f"{what} must be a NumPy array for a {dtype} tensor, got {type(value).__name__}",
                span,
                cls=cls,
            )
    if value.dtype == storage:
        return value, False
    src = value.dtype
    src_float = src.kind == "f" or src == numerics.storage_dtype("BF16")
    if dtype in numerics.FLOAT_DTYPES:
        if not src_float:
            raise fault(
                "ArgumentMismatch",
                f"{what} is a {src} array, expected {dtype} (stored as {storage})",
                span,
                f"convert it: x.astype({_np_spelling(storage)})",
                cls=cls,
            )
        converted = numerics.cast(value, dtype, "rint", ctx.precision)
        idx = _first_change(value, converted)
        if idx is not None:
            raise fault(
                "InexactArgument",
                f"{what} ({dtype}) holds values that are not exactly representable in "
                f"{dtype}: element {list(idx)} is {value[idx]!r}",
                span,
                f"round it first (e.g. x.astype({_np_spelling(storage)})), or pass precision='fp32'"
                if dtype in ("BF16", "FP16")
                else f"convert it first: x.astype({_np_spelling(storage)})",
                cls=cls,
            )
        return converted, True
    if dtype in numerics.INT_DTYPES:
        if src.kind not in "iub":
            raise fault(
                "ArgumentMismatch",
                f"{what} is a {src} array, expected {dtype} (stored as {storage})",
                span,
                f"convert it: x.astype({_np_spelling(storage)})",
                cls=cls,
            )
        converted = value.astype(storage)
        if _first_change(value, converted) is not None:
            raise fault(
                "InexactArgument", f"{what} has values that do not fit {dtype}", span, cls=cls
            )
        return converted, True
    if dtype == "BOOL":
        if src.kind != "b":
            raise fault(
                "ArgumentMismatch", f"{what} is a {src} array, expected BOOL", span, cls=cls
            )
        return value.astype(np.bool_), True
    raise fault("ArgumentMismatch", f"{what}: unsupported dtype {dtype}", span, cls=cls)


def _first_change(before: np.ndarray, after: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first element whose value a conversion changed (NaN stays NaN;
    NumPy compares mixed integer types exactly), else None."""
    with np.errstate(invalid="ignore"):
        changed = (before != after) & ~((before != before) & (after != after))
    if not changed.any():
        return None
    return tuple(int(i) for i in np.argwhere(changed)[0])


def _np_spelling(dt: np.dtype) -> str:
    return "ml_dtypes.bfloat16" if dt == numerics.storage_dtype("BF16") else f"np.{dt}"


def coerce_scalar(
    value: Any, dtype: DType, ctx: Context, what: str, span: Span, cls: type = ArgumentError
) -> Any:
    """A scalar argument in the interpreter's representation (int for INDEX, bool for BOOL,
    else a NumPy scalar of the storage dtype). Floats round to FP32 (RNE); BF16/FP16
    scalars must be exact."""
    if isinstance(value, TensorValue):
        raise fault("ArgumentMismatch", f"{what} must be a scalar, got a tensor", span, cls=cls)
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise fault(
                "ArgumentMismatch",
                f"{what} must be a scalar, got an array of shape {list(value.shape)}",
                span,
                cls=cls,
            )
        value = value[()]
    name = dtype.name
    if dtype.is_bool:
        if not isinstance(value, (bool, np.bool_)):
            raise fault("ArgumentMismatch", f"{what} must be a bool, got {value!r}", span, cls=cls)
        return bool(value)
    if dtype.is_int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            if isinstance(value, (float, np.floating)) and float(value).is_integer():
                value = int(value)
            else:
                raise fault(
                    "ArgumentMismatch",
                    f"{what} must be an integer ({name}), got {value!r}",
                    span,
                    cls=cls,
                )
        v = int(value)
        if name != "INDEX":
            info = np.iinfo(numerics.storage_dtype(name))
            if not info.min <= v <= info.max:
                raise fault("InexactArgument", f"{what} = {v} does not fit {name}", span, cls=cls)
            return numerics.storage_dtype(name).type(v)
        return v
    if not isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, np.generic) and value.dtype == numerics.storage_dtype("BF16")
    ):
        raise fault(
            "ArgumentMismatch", f"{what} must be a number ({name}), got {value!r}", span, cls=cls
        )
    src = np.asarray(value)
    if src.dtype.kind in "iub":
        src = src.astype(np.float64)
    out = numerics.cast(src, name, "rint", ctx.precision)
    if name in ("BF16", "FP16") and not (
        float(out) == float(src) or (math.isnan(float(out)) and math.isnan(float(src)))
    ):
        raise fault(
            "InexactArgument",
            f"{what} = {value!r} is not exactly representable in {name}",
            span,
            cls=cls,
        )
    return out[()]


# ------------------------------------------------------------------ run


@dataclass
class RunResult:
    """What `execute` returns: the function's result, and the final state of every tensor
    argument (the caller's arrays where they were used in place)."""

    value: Any
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    trace: Any = None  # the interpreter's Trace, when one was recorded


def prepare_arguments(
    fn: Function,
    args: Sequence[Any],
    ctx: Context,
    written: Collection[str] | None = None,
) -> tuple[list[Any], dict[str, tuple[Any, np.ndarray]]]:
    """The arguments of a run as executor values, checked against `fn` (shared with the C
    backend). Every check comes before the first write, so a refused call leaves the caller's
    arrays untouched: count, scalar values, array dtypes and exactness, writability of Out and
    InOut arrays, aliasing, ranks, static and dynamic dims.

    Scalars are coerced; arrays of the storage dtype are used in place, others converted
    exactly (`originals`: parameter name -> (the caller's value, the converted array)); Out
    arrays arrive undefined: zero-filled, or poisoned in strict mode; Out arguments given as
    None are allocated once the dynamic dims are known from the other arguments. `written`:
    the parameters the kernel may write (`pldsl.ir.analysis.written_params`; default: the Out
    and InOut ones): an array passed for one of them may not share memory with another
    argument."""
    check_count(fn, args, fn.span, ArgumentError)
    if written is None:
        written = {p.name for p in fn.params if p.direction in ("Out", "InOut")}
    values: list[Any] = [None] * len(args)
    originals: dict[str, tuple[Any, np.ndarray]] = {}
    # Scalars first: a Scalar[INDEX] parameter named like a dynamic dim binds it.
    env: dict[str, Any] = {}
    for i, (p, a) in enumerate(zip(fn.params, args)):
        if isinstance(p.type, ScalarType):
            values[i] = env[p.name] = coerce_scalar(
                a, p.type.dtype, ctx, f"argument '{p.name}'", p.var.span
            )
    missing, to_fill = [], []
    for i, (p, a) in enumerate(zip(fn.params, args)):
        t = p.type
        if isinstance(t, ScalarType):
            continue
        if not isinstance(t, TensorType):
            raise fault(
                "BadParameter",
                f"unsupported parameter type of '{p.name}'",
                p.var.span,
                cls=ArgumentError,
            )
        if a is None:
            missing.append(i)
            continue
        arr, converted = coerce_array(a, t.dtype.name, ctx, f"argument '{p.name}'", p.var.span)
        # the caller's array, converted or not: a read-only one could not receive the writes
        if (
            not arr.flags.writeable
            and not converted
            or (isinstance(a, np.ndarray) and not a.flags.writeable)
        ):
            if p.direction != "In":
                raise fault(
                    "ReadOnlyArgument",
                    f"argument '{p.name}' of '{fn.name}' is a read-only array, but it is an "
                    f"{p.direction} parameter: the kernel's writes could not reach it",
                    p.var.span,
                    "pass a writable array (np.array(x) makes a writable copy), or pass None "
                    "for an Out parameter to have one allocated and returned"
                    if p.direction == "Out"
                    else "pass a writable array (np.array(x) makes a writable copy)",
                    cls=ArgumentError,
                )
            if not converted:
                arr, converted = arr.copy(), True  # an In array: the kernel reads it only
        if converted:
            originals[p.name] = (a, arr)
        out = p.direction == "Out"
        if out:
            to_fill.append((arr, t.dtype.name))
        values[i] = wrap_array(ctx, arr, t.dtype.name, p.name, defined=not out)
        for d, n in zip(t.shape, arr.shape):
            if isinstance(d, Var):
                env.setdefault(d.name, n)
    _check_aliasing(fn, args, written)
    for i in missing:
        p = fn.params[i]
        shape = eval_shape(p.type.shape, env) if p.direction == "Out" else None
        if shape is None:
            raise fault(
                "MissingArgument",
                f"argument '{p.name}' is None"
                + (
                    ", and its dims are not known from the other arguments"
                    if p.direction == "Out"
                    else f" but it is an {p.direction} tensor"
                ),
                p.var.span,
                "pass a NumPy array",
                cls=ArgumentError,
            )
        dtype = p.type.dtype.name
        if any(n < 0 for n in shape):
            raise fault(
                "MissingArgument",
                f"argument '{p.name}' is None, and its dims from the other arguments are "
                f"negative: {list(shape)}",
                p.var.span,
                "pass a NumPy array",
                cls=ArgumentError,
            )
        data = np.empty(shape, ctx.storage(dtype))
        to_fill.append((data, dtype))
        values[i] = wrap_array(ctx, data, dtype, p.name, defined=False)
    bind_entry(fn, values, ctx)  # ranks, static and dynamic dims: still nothing written
    if ctx.f32_cache and ctx.precision == "bf16":
        for p, v in zip(fn.params, values):
            if (
                isinstance(v, TensorValue)
                and p.name not in written
                and v.dtype == "BF16"
                and v.buffer.data.size >= MIN_ELEMENTS
            ):
                v.buffer.cached = True
    for arr, dtype in to_fill:  # the first write
        arr[...] = _undefined_fill(dtype, ctx)
    return values, originals


def _check_aliasing(fn: Function, args: Sequence[Any], written: Collection[str]) -> None:
    """Refuse two arguments that share memory where the kernel may write one of them: the
    result would depend on the order of reads and writes (and an Out is cleared on entry)."""
    arrays = [
        (p, a)
        for p, a in zip(fn.params, args)
        if isinstance(p.type, TensorType) and isinstance(a, np.ndarray)
    ]
    for k, (p, a) in enumerate(arrays):
        for q, b in arrays[k + 1 :]:
            if p.name not in written and q.name not in written:
                continue
            if not _shares_memory(a, b):
                continue
            w = p if p.name in written else q
            raise fault(
                "ArgumentAliasing",
                f"arguments '{p.name}' and '{q.name}' of '{fn.name}' share memory, and the "
                f"kernel writes '{w.name}' ({w.direction}): its result would depend on the "
                "order of reads and writes",
                w.var.span,
                "pass separate arrays (e.g. out = np.empty_like(x)); to update an array in "
                "place, declare one InOut parameter and pass the array once",
                cls=ArgumentError,
            )


def _shares_memory(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=1_000_000))
    except np.exceptions.TooHardError:
        return True  # cannot prove them apart: refuse


def _undefined_fill(dtype: str, ctx: Context) -> np.generic:
    """What an Out parameter holds on entry: zero (default mode) or poison (strict)."""
    if ctx.strict:
        return numerics.poison_value(dtype, ctx.precision)
    return numerics.pad_value("zero", dtype, ctx.precision)


def write_back(
    fn: Function,
    values: Sequence[Any],
    originals: Mapping[str, tuple[Any, np.ndarray]],
    written: set[str],
) -> dict[str, np.ndarray]:
    """After a run: converted arguments the kernel wrote are written back exactly into the
    caller's (writable) arrays; all of them are checked before the first is written. Returns
    the final array of every tensor parameter."""
    arrays: dict[str, np.ndarray] = {}
    pending = []
    for p, v in zip(fn.params, values):
        if not isinstance(v, TensorValue):
            continue
        arrays[p.name] = v.buffer.data
        if p.name in originals:
            user, data = originals[p.name]
            if p.name in written and isinstance(user, np.ndarray) and user.flags.writeable:
                pending.append((user, _exact_back(user, data, p)))
                arrays[p.name] = user
    for user, back in pending:
        user[...] = back
    return arrays


def _exact_back(user: np.ndarray, data: np.ndarray, p) -> np.ndarray:
    back = data.astype(user.dtype)
    idx = _first_change(data, back)
    if idx is not None:
        raise fault(
            "LossyWriteBack",
            f"the kernel wrote '{p.name}', but its new value at {list(idx)} "
            f"({data[idx]!r}) does not fit the caller's {user.dtype} array exactly",
            p.var.span,
            "pass float32 arrays for BF16/FP16 parameters the kernel writes when precision='fp32'"
            if data.dtype == np.float32 and user.dtype != np.float32
            else "pass an array of the storage dtype to have it updated in place",
            cls=ArgumentError,
        )
    return back


def partial_outputs(
    fn: Function, values: Sequence[Any], originals: Mapping[str, tuple[Any, np.ndarray]]
) -> str | None:
    """After a fault in the middle of a run: which of the caller's arrays hold partial results
    (used in place and possibly written), as a note for the diagnostic."""
    partial, untouched = [], []
    for p, v in zip(fn.params, values):
        if not isinstance(v, TensorValue):
            continue
        if not (v.buffer.written or p.direction != "In"):
            continue
        (untouched if p.name in originals else partial).append(f"'{p.name}' ({p.direction})")
    if not partial and not untouched:
        return None
    parts = []
    if partial:
        parts.append(
            f"partial outputs: {', '.join(partial)} were updated in place up to the fault "
            "(Out arrays were cleared on entry)"
        )
    if untouched:
        parts.append(f"{', '.join(untouched)} were converted copies: not written back")
    return "; ".join(parts)


def check_outputs(fn: Function, values: Sequence[Any], span: Span) -> None:
    """Strict mode: every element of every Out parameter must have been written."""
    for p, v in zip(fn.params, values):
        if p.direction != "Out" or not isinstance(v, TensorValue):
            continue
        mask = v.buffer.defined
        if mask is None or mask.all():
            continue
        idx = tuple(int(i) for i in np.argwhere(~mask)[0])
        missing = int((~mask).sum())
        ps = p.var.span
        raise fault(
            "UnwrittenOutput",
            f"Out parameter '{p.name}' element {list(idx)} was never written "
            f"({missing} of {mask.size} elements unwritten) when '{fn.name}' returned",
            span if span.line else fn.span,
            "write every element of an Out parameter, or declare it InOut if it keeps the "
            "caller's data",
            (f"'{p.name}' is declared at {ps}",),
        )


def export(value: Any, ctx: Context, span: Span) -> Any:
    """Interpreter values -> NumPy (fresh arrays for tensors)."""
    if isinstance(value, tuple):
        return tuple(export(v, ctx, span) for v in value)
    if isinstance(value, TensorValue):
        if ctx.strict:
            try:
                value.require(ctx, value.valid, "return value")
            except OpFault as f:
                raise fault(f.rule, f"return {f.message}", span, f.help, f.notes) from None
        return np.array(value.materialize(ctx), copy=True)
    return value


# ------------------------------------------------------------------ binding


def bind_params(
    fn: Function, args: Sequence[Any], span: Span, ctx: Context, cls: type = RuntimeFault
) -> dict:
    """Parameters -> values, dynamic dims bound from the argument shapes (every argument
    checked against its parameter: kind, dtype, rank, static and dynamic dims)."""
    check_count(fn, args, span, cls)
    env: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for p, v in zip(fn.params, args):
        if isinstance(p.type, ScalarType):
            env[p.name] = coerce_scalar(v, p.type.dtype, ctx, p.name, span, cls)
            origin[p.name] = f"scalar argument '{p.name}'"
    for p, v in zip(fn.params, args):
        t = p.type
        if not isinstance(t, TensorType):
            if not isinstance(t, ScalarType):
                raise fault(
                    "BadParameter", f"unsupported parameter type for '{p.name}'", span, cls=cls
                )
            continue
        where = span if span.line else p.var.span
        if not isinstance(v, TensorValue):
            raise fault(
                "ArgumentMismatch",
                f"argument '{p.name}' of '{fn.name}' must be a tensor "
                f"{format_type(t)}, got {type(v).__name__}",
                where,
                cls=cls,
            )
        if v.dtype != t.dtype.name:
            raise fault(
                "ArgumentMismatch",
                f"argument '{p.name}' of '{fn.name}' has dtype {v.dtype}, expected {t.dtype.name}",
                where,
                cls=cls,
            )
        if v.rank != t.rank:
            raise fault(
                "ArgumentMismatch",
                f"argument '{p.name}' of '{fn.name}' has rank {v.rank} (shape "
                f"{list(v.shape)}), expected rank {t.rank} {format_type(t)}",
                where,
                cls=cls,
            )
        for axis, (d, actual) in enumerate(zip(t.shape, v.shape)):
            if isinstance(d, int):
                if d != actual:
                    raise fault(
                        "ArgumentMismatch",
                        f"argument '{p.name}' of '{fn.name}': dim {axis} is {actual}, "
                        f"the declared static dim is {d} ({format_type(t)}, got shape "
                        f"{list(v.shape)})",
                        where,
                        cls=cls,
                    )
            elif isinstance(d, Var):
                if d.name in env:
                    if py_scalar(env[d.name]) != actual:
                        raise fault(
                            "DynamicDimMismatch",
                            f"argument '{p.name}' of '{fn.name}': dim {axis} ({d.name}) "
                            f"is {actual}, but {d.name} = {py_scalar(env[d.name])} from "
                            f"{origin[d.name]}",
                            where,
                            "every use of a pl.dynamic dim must have the same extent",
                            cls=cls,
                        )
                else:
                    env[d.name] = actual
                    origin[d.name] = f"argument '{p.name}' dim {axis}"
        env[p.name] = v
    # Composite dims (`N * 2`: only IR text has them) are checked once all dims bind.
    for p, v in zip(fn.params, args):
        for axis, d in enumerate(getattr(p.type, "shape", ())):
            if isinstance(d, (int, Var)):
                continue
            want = eval_shape((d,), env)
            if want is not None and want[0] != v.shape[axis]:
                raise fault(
                    "DynamicDimMismatch",
                    f"argument '{p.name}' of '{fn.name}': dim {axis} is "
                    f"{v.shape[axis]}, expected {want[0]}",
                    span,
                    cls=cls,
                )
    return env


def bind_entry(fn: Function, values: Sequence[Any], ctx: Context) -> dict:
    """`bind_params` for the function a run calls (faults are ArgumentErrors); parameters
    annotated with a valid_shape then carry that valid region."""
    env = bind_params(fn, values, NO_SPAN, ctx, ArgumentError)
    for p, v in zip(fn.params, values):
        t = p.type
        if isinstance(t, TensorType) and t.valid_shape is not None:
            valid = eval_shape(t.valid_shape, env)
            if valid is not None:
                v.valid = tuple(max(0, min(a, b)) for a, b in zip(valid, v.shape))
    return env
