"""Buffers and tensor values of the interpreter.

A `Buffer` is memory: a NumPy array in the storage dtype of its element type (see
`numerics.storage_dtype`), a name for diagnostics and, in strict mode, a `defined` mask.
Buffers are mutable: `pl.assemble` / `pl.write` write into them in place (PyPTO semantics).

A `TensorValue` is what a kernel variable holds: a window onto a buffer (offset, shape), the
valid region of the value (a box anchored at the window origin, evaluated to ints) and its pad
mode. `pl.slice` makes a new window onto the same buffer; computed tiles are fresh buffers.

Outside its valid region a value is undefined, unless its pad mode is zero/min/max (then it
reads as the pad value). The default mode fills undefined elements with the pad value of
`PadValue.null` (zero) when an op consumes the value; strict mode fills them with the poison
value and records them as undefined, so the op that consumes one can be reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pldsl.execution import f32cache, numerics

Box = tuple[int, ...]


class OpFault(Exception):
    """A runtime fault found by a kernel; the machine adds the op name and source location."""

    def __init__(self, rule: str, message: str, help: str | None = None, notes: Sequence[str] = ()):
        super().__init__(message)
        self.rule, self.message, self.help, self.notes = rule, message, help, tuple(notes)


@dataclass
class Context:
    """What a kernel needs to know about the run (independent of how the IR is walked)."""

    strict: bool = False
    precision: str = "bf16"
    bounds_check: bool = True
    f32_cache: bool = False  # matmuls may read BF16 arguments through pldsl.execution.f32cache
    # The SPMD block now running (pl.tile.get_block_idx); an executor running pl.spmd blocks
    # sets it per block, and it stays 0 outside any pl.spmd.
    block_idx: int = 0

    def storage(self, dtype: str) -> np.dtype:
        return numerics.storage_dtype(dtype, self.precision)


class Buffer:
    """Memory: storage array, element dtype name, diagnostic name, definedness (strict)."""

    __slots__ = (
        "data", "dtype", "name", "defined", "root", "written", "auto_named", "cached", "f32",
    )  # fmt: skip

    def __init__(
        self,
        data: np.ndarray,
        dtype: str,
        name: str | None = None,
        defined: np.ndarray | None = None,
        root: Buffer | None = None,
    ):
        self.data = data
        self.dtype = dtype
        self.name = name
        self.defined = defined
        self.root = root if root is not None else self
        self.written = False
        self.auto_named = name is None
        self.cached = False  # a BF16 argument the kernel only reads: f32cache may widen it
        self.f32: np.ndarray | None = None  # its widened copy, once a matmul asked for it

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def mark_written(self) -> None:
        self.root.written = True

    def __repr__(self) -> str:
        return f"Buffer({self.name!r}, {self.dtype}, {list(self.shape)})"


class TensorValue:
    """A view: buffer + window (offset, shape) + valid region + pad mode."""

    __slots__ = ("buffer", "offset", "shape", "valid", "pad")

    def __init__(
        self,
        buffer: Buffer,
        offset: Box,
        shape: Box,
        valid: Box | None = None,
        pad=None,
    ):
        self.buffer = buffer
        self.offset = tuple(offset)
        self.shape = tuple(shape)
        self.valid = tuple(valid) if valid is not None else self.shape
        self.pad = pad

    # ----------------------------------------------------------------- basics
    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        return self.buffer.name or "<tensor>"

    @property
    def fully_valid(self) -> bool:
        return self.valid == self.shape

    @property
    def pad_defined(self) -> bool:
        """A zero/min/max pad mode makes the invalid region read as that value."""
        return pad_name(self.pad) != "null"

    def window(self, box: Box | None = None, start: Box | None = None) -> tuple[slice, ...]:
        """Buffer index of the box [start, start+box) of this value (default: the valid box)."""
        box = self.valid if box is None else box
        if start is None:
            return tuple([slice(o, o + b) for o, b in zip(self.offset, box)])
        return tuple([slice(o + s, o + s + b) for o, s, b in zip(self.offset, start, box)])

    def buffer_index(self, index: Sequence[int]) -> tuple[int, ...]:
        return tuple(o + i for o, i in zip(self.offset, index))

    def in_buffer(self) -> bool:
        return all(o + s <= d for o, s, d in zip(self.offset, self.shape, self.buffer.shape))

    def view(self) -> np.ndarray:
        """The window as a writable array view (the window must lie inside the buffer)."""
        return self.buffer.data[self.window(self.shape)]

    def __repr__(self) -> str:
        return (
            f"TensorValue({self.name!r}, {self.dtype}, shape={list(self.shape)}, "
            f"valid={list(self.valid)}, offset={list(self.offset)})"
        )

    # ----------------------------------------------------------------- reading
    def fill_value(self, ctx: Context) -> np.generic:
        """What an element outside the valid region reads as."""
        return _fill_value(ctx, self.pad, self.dtype)

    def materialize(self, ctx: Context) -> np.ndarray:
        """The value as an array of its window shape; undefined parts filled (pad / poison).

        Fully valid values in default mode come back as a read-only view (no copy)."""
        if self.valid == self.shape and (not ctx.strict or self.buffer.defined is None):
            out = self.buffer.data[self.window(self.shape)]  # a new view object
            out.flags.writeable = False
            return out
        out = np.full(self.shape, self.fill_value(ctx), dtype=self.buffer.data.dtype)
        valid = tuple(slice(0, v) for v in self.valid)
        out[valid] = self.buffer.data[self.window()]
        if ctx.strict and self.buffer.defined is not None:
            undefined = ~self.buffer.defined[self.window()]
            if undefined.any():
                part = out[valid]
                part[undefined] = numerics.poison_value(self.dtype, ctx.precision)
        return out

    def widened(self) -> np.ndarray | None:
        """The value as FP32 from the buffer's cached widened copy (pldsl.execution.f32cache),
        when the buffer is a cached argument and the value a fully valid window inside it;
        else None (the caller widens the tile itself)."""
        buf = self.buffer
        if not buf.cached or self.valid != self.shape or not self.in_buffer():
            return None
        if buf.f32 is None:
            buf.f32 = f32cache.widened(buf.data)
        out = buf.f32[self.window(self.shape)]
        out.flags.writeable = False
        return out

    def defined_mask(self) -> np.ndarray:
        """Strict mode: which elements of the window are defined."""
        if self.pad_defined:
            mask = np.ones(self.shape, bool)
        else:
            mask = np.zeros(self.shape, bool)
        valid = tuple(slice(0, v) for v in self.valid)
        if self.buffer.defined is None:
            mask[valid] = True
        else:
            mask[valid] = self.buffer.defined[self.window()]
        return mask

    def require(self, ctx: Context, box: Box | None = None, what: str = "x") -> None:
        """Strict mode: fault if any element of the box [0, box) is undefined."""
        if not ctx.strict:
            return
        box = self.shape if box is None else tuple(box)
        if any(b <= 0 for b in box):
            return
        inside_valid = all(b <= v for b, v in zip(box, self.valid))
        if inside_valid:
            if self.buffer.defined is None:
                return
            part = self.buffer.defined[self.window(box)]
            if part.all():
                return
            mask = np.ones(self.shape, bool)
            mask[tuple(slice(0, b) for b in box)] = part
        else:
            mask = self.defined_mask()
        region = mask[tuple(slice(0, b) for b in box)]
        if region.all():
            return
        index = tuple(int(i) for i in np.argwhere(~region)[0])
        raise undefined_fault(self, index, what)

    def require_index(self, ctx: Context, index: Sequence[int], what: str = "x") -> None:
        if not ctx.strict:
            return
        index = tuple(index)
        inside = all(i < v for i, v in zip(index, self.valid))
        if inside:
            if self.buffer.defined is None or self.buffer.defined[self.buffer_index(index)]:
                return
        elif self.pad_defined:
            return
        raise undefined_fault(self, index, what)


def undefined_fault(value: TensorValue, index: tuple[int, ...], what: str) -> OpFault:
    shown = list(index)
    inside = all(i < v for i, v in zip(index, value.valid))
    if inside:
        where = value.buffer_index(index)
        at = f" (buffer element {list(where)})" if tuple(where) != index else ""
        return OpFault(
            "UndefinedRead",
            f"reads undefined element {shown} of '{value.name}'{at} (operand `{what}`): it was "
            "never written",
            "write the element before this op (pl.assemble / pl.write), or check loop bounds "
            "and offsets",
            (f"'{value.name}' is a {value.dtype} buffer of shape {list(value.buffer.shape)}",),
        )
    return OpFault(
        "UndefinedRead",
        f"reads undefined element {shown} of '{value.name}' (operand `{what}`): it lies outside "
        f"the valid region {list(value.valid)} of a {list(value.shape)} value",
        "pl.fillpad(x, pad_value=...) the value first, or keep the op inside the valid region",
    )


# ------------------------------------------------------------------ creation


def pad_name(pad) -> str:
    """A pad mode's name (null, zero, min, max) from a PadValue, its spelling, or None."""
    if pad is None:
        return "null"
    return str(getattr(pad, "value", pad)).lower().rsplit(".", 1)[-1]


def _fill_value(ctx: Context, pad, dtype: str) -> np.generic:
    """What an undefined element holds: the pad value, or poison (strict mode, null pad)."""
    name = pad_name(pad)
    if name == "null" and ctx.strict:
        return numerics.poison_value(dtype, ctx.precision)
    return numerics.pad_value(name, dtype, ctx.precision)


def new_buffer(
    ctx: Context, shape: Box, dtype: str, name: str | None = None, defined: bool = False
) -> Buffer:
    """Fresh memory: zero-filled (default mode) or poisoned and undefined (strict mode)."""
    storage = ctx.storage(dtype)
    if ctx.strict and not defined:
        data = np.full(shape, numerics.poison_value(dtype, ctx.precision), dtype=storage)
        mask = np.zeros(shape, bool)
    else:
        data = np.zeros(shape, dtype=storage)
        mask = np.ones(shape, bool) if ctx.strict else None
    return Buffer(data, dtype, name, mask)


def fresh(
    ctx: Context, data: np.ndarray, dtype: str, valid: Box | None = None, pad=None
) -> TensorValue:
    """Wrap a computed array as a fresh tile. Outside `valid` it is undefined: filled with
    the pad value (default mode, or a zero/min/max pad) or poisoned (strict, null pad)."""
    if valid is None and not ctx.strict and type(data) is np.ndarray and data.flags.writeable:
        if data.dtype == ctx.storage(dtype):  # the common case: a whole, fresh result
            shape = data.shape
            return TensorValue(Buffer(data, dtype), (0,) * len(shape), shape, shape, pad)
    storage = ctx.storage(dtype)
    data = np.asarray(data)
    if data.dtype != storage:
        raise TypeError(f"internal: {dtype} tile computed as {data.dtype}, expected {storage}")
    if not data.flags.writeable:
        data = data.copy()
    shape = data.shape
    valid = shape if valid is None else tuple(min(v, s) for v, s in zip(valid, shape))
    mask = None
    if valid != shape:
        inside = np.zeros(shape, bool)
        inside[tuple(slice(0, v) for v in valid)] = True
        data[~inside] = _fill_value(ctx, pad, dtype)
        if ctx.strict:
            mask = inside | (pad_name(pad) != "null")
    elif ctx.strict:
        mask = np.ones(shape, bool)
    return TensorValue(Buffer(data, dtype, None, mask), (0,) * len(shape), shape, valid, pad)


def wrap_array(
    ctx: Context, data: np.ndarray, dtype: str, name: str, defined: bool = True
) -> TensorValue:
    """An argument array used as a buffer in place (its storage dtype must already match)."""
    mask = None
    if ctx.strict:
        mask = np.full(data.shape, bool(defined))
    buf = Buffer(data, dtype, name, mask)
    return TensorValue(buf, (0,) * data.ndim, data.shape)


def reshaped(ctx: Context, x: TensorValue, shape: Box, valid: Box | None) -> TensorValue:
    """`pl.reshape`: a view sharing memory when the window is contiguous, else a copy."""
    if x.in_buffer():
        window = x.view()
        try:
            data = window.view()
            data.shape = shape  # raises if this would need a copy
            mask = None
            if x.buffer.defined is not None:
                mask = x.buffer.defined[x.window(x.shape)].view()
                mask.shape = shape
            buf = Buffer(data, x.dtype, x.buffer.name, mask, root=x.buffer.root)
            buf.auto_named = x.buffer.auto_named
            return TensorValue(buf, (0,) * len(shape), shape, valid, x.pad)
        except AttributeError:
            pass
    data = np.ascontiguousarray(x.materialize(ctx)).reshape(shape).copy()
    mask = None
    if ctx.strict:
        mask = x.defined_mask().reshape(shape).copy()
    return TensorValue(
        Buffer(data, x.dtype, x.buffer.name, mask), (0,) * len(shape), shape, valid, x.pad
    )
