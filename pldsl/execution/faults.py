"""Runtime faults shared by every executor (the interpreter and the C backend).

A fault is a `RuntimeFault` carrying one `Diagnostic`; a fault about the arguments of a run is an
`ArgumentError` (bad input, not a kernel fault). The texts that both executors raise are built
here, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pldsl.diagnostics import NO_SPAN, Diagnostic, RuntimeFault, Span
from pldsl.ir.nodes import Function

__all__ = ["ArgumentError", "check_count", "fault", "with_note"]


class ArgumentError(RuntimeFault):
    """The arguments of a run do not fit the function's parameters (bad input, not a kernel
    fault): wrong count, dtype, rank, static or dynamic dim, inexact BF16 values, ..."""


def fault(
    rule: str,
    message: str,
    span: Span = NO_SPAN,
    help: str | None = None,
    notes: Sequence[str] = (),
    cls: type = RuntimeFault,
) -> RuntimeFault:
    return cls(Diagnostic(rule, "error", message, span, help, tuple(notes)))


def check_count(fn: Function, args: Sequence[Any], span: Span, cls: type) -> None:
    if len(args) != len(fn.params):
        raise fault(
            "ArgumentCount",
            f"'{fn.name}' takes {len(fn.params)} arguments "
            f"({', '.join(p.name for p in fn.params)}), got {len(args)}",
            span,
            cls=cls,
        )


def with_note(err: RuntimeFault, note: str | None) -> RuntimeFault:
    """The same fault with one more note (faults are immutable)."""
    if note is None:
        return err
    d = err.diagnostic
    new = type(err)(dataclasses.replace(d, notes=(*d.notes, note)))
    new.__cause__ = err.__cause__
    return new


# ------------------------------------------------------------------ the catalogue
# Texts both executors raise: the interpreter formats them where the fault happens, the C
# backend from the integers its fault site records. One wording, one place.

MAX_CALL_DEPTH = 200
# A while loop that runs this many iterations is taken to be endless (the interpreter stops it).
MAX_WHILE_ITERATIONS = 10_000_000
WHILE_LIMIT_HELP = "check that the loop's condition becomes false (its carries must change)"
DIVISION_BY_ZERO_HELP = "guard the divisor, e.g. with pl.max(d, 1)"
BAD_LOOP_STEP_HELP = "a loop step must be a nonzero integer"
UNBOUND_VARIABLE_HELP = (
    "it is assigned only on some paths (an if branch or a loop that ran zero times) before this use"
)


def while_limit() -> str:
    return f"while loop still running after {MAX_WHILE_ITERATIONS} iterations"


def recursion_limit(function: str) -> str:
    return f"call depth exceeds {MAX_CALL_DEPTH} at '{function}'"


def bad_loop_step(kind: str, start: Any, stop: Any) -> str:
    return f"pl.{kind} step is 0 (start {start}, stop {stop})"


def unbound_variable(name: str) -> str:
    return f"'{name}' has no value here"


def division_by_zero(a: Any, sym: str, b: Any) -> str:
    return f"scalar division by zero: {a} {sym} {b}"


EXTERNAL_HELP = (
    "an external C++ kernel runs on PyPTO's device toolchain only; pldsl captures and checks "
    "the pl kernels around it"
)


def external_kernel(function: str) -> str:
    return f"'{function}' is an external C++ kernel (pl.jit.extern): pldsl cannot run it"


# Windows (slice, assemble, load, store, gather_row): the interpreter checks them in
# interpreter/ops.py, the C runtime in pt_slice / pt_assemble; the op's label (`pl.slice: `)
# comes first, from the executor. Only integers and the tensor's name go in, as the C fault
# site records no more.
WINDOW_NEGATIVE_HELP = "offsets must be >= 0"
WINDOW_PAST_DIM_HELP = (
    "clip the window with valid_shape=[pl.min(tile, n - i), ...] or check the loop bounds and "
    "offsets"
)
WINDOW_PAST_BUFFER_HELP = "the window lies past the end of the underlying buffer"
VALID_SHAPE_HELP = "valid extents must satisfy 0 <= valid <= shape"


def window_negative_offset(axis: int, offset: int, name: str) -> str:
    return f"window out of bounds on axis {axis}: negative offset {offset} into '{name}'"


def window_past_dim(axis: int, offset: int, extent: int, dim: int, name: str) -> str:
    return (
        f"window out of bounds on axis {axis}: offset {offset} + extent {extent} = "
        f"{offset + extent} > {dim} (dim {axis} of '{name}')"
    )


def window_past_buffer(axis: int, offset: int, extent: int, dim: int, name: str) -> str:
    return (
        f"window out of bounds on axis {axis}: buffer offset {offset} + extent {extent} = "
        f"{offset + extent} > {dim} (dim {axis} of buffer '{name}')"
    )


def valid_shape_misfit(axis: int, valid: int, extent: int) -> str:
    return f"valid_shape does not fit the window on axis {axis} ({valid} not in [0, {extent}])"


def tile_valid_shape_misfit(axis: int, valid: int, extent: int) -> str:
    """`pl.tile.set_validshape` out of the tile's own shape."""
    return f"valid shape does not fit the tile on axis {axis} ({valid} not in [0, {extent}])"
