"""Decorators and placeholders of the `pl` surface.

Kernel bodies are captured from source, never run: calling a `pl` op from ordinary
Python is an error that says so.
"""

from __future__ import annotations

import sys
from typing import Any

from pldsl.diagnostics import CaptureError, Diagnostic, Span
from pldsl.enums import Optimizer
from pldsl.ir.nodes import Program


def _frame_namespace(depth: int) -> dict[str, Any]:
    frame = sys._getframe(depth + 1)
    ns = dict(frame.f_globals)
    ns.update(frame.f_locals)
    return ns


def program(cls: type | None = None, *, strict_ssa: bool = False, name: str | None = None):
    """`@pl.program` (or `@pl.program(strict_ssa=True)`): capture a class of `@pl.function`
    methods into a Program. Closure names resolve from the decorating frame."""
    from pldsl.frontend.capture import capture_class

    options = {"strict_ssa": strict_ssa, "name": name}
    ns = _frame_namespace(1)
    if cls is None:

        def decorate(inner: type) -> Program:
            return capture_class(inner, ns, options)

        return decorate
    return capture_class(cls, ns, options)


def function(fn: Any = None, **options: Any):
    """`@pl.function(type=..., level=..., role=...)`: marks a method for capture.

    Outside a `@pl.program` class it captures a one-function program immediately. The keyword
    arguments are read (and checked) from the decorator's source by capture, not from `options`.
    """
    ns = _frame_namespace(1)
    if fn is not None and not callable(fn):
        raise CaptureError(
            Diagnostic(
                "BadDecorator",
                "error",
                "@pl.function takes keyword arguments only",
                Span("<python>"),
                "e.g. @pl.function(type=pl.FunctionType.InCore)",
            )
        )

    def decorate(f: Any) -> Any:
        parts = f.__qualname__.split(".")
        in_class = len(parts) > 1 and parts[-2] != "<locals>"
        if in_class:
            return f
        from pldsl.frontend.capture import capture_function_object

        return capture_function_object(f, ns)

    return decorate(fn) if fn is not None else decorate


def inline(fn: Any):
    """`@pl.inline`: a function template expanded at each call site inside kernels (called by
    its bare name); no function is added to the program. Closure names resolve from the
    decorating frame."""
    from pldsl.frontend.inline import from_function

    return from_function(fn, _frame_namespace(1))


def capture_source(
    text: str, filename: str = "<string>", namespace: dict | None = None
) -> list[Program]:
    """Capture every `@pl.program` in a source text without running it (CLI, tests)."""
    from pldsl.frontend.capture import capture_source as _capture

    return _capture(text, filename, namespace)


def _kernel_only(name: str):
    def placeholder(*args: Any, **kwargs: Any) -> Any:
        raise CaptureError(
            Diagnostic(
                "NotInKernel",
                "error",
                f"pl.{name} can only be used inside a @pl.function body",
                Span("<python>"),
                "kernel bodies are captured, not executed; run them with interpreter.run(...)",
            )
        )

    placeholder.__name__ = name
    placeholder.__qualname__ = name
    return placeholder


class _Namespace:
    """`pl.tensor.read`, `pl.tensor.dim`... as placeholders."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _kernel_only(f"{self._prefix}.{name}")


chunked_loop_optimizer = Optimizer.chunked_loop_optimizer
auto_chunk = Optimizer.auto_chunk
