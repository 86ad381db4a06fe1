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
