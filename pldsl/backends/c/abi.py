"""The ABI between generated C and Python: calling convention, argument slots, fault sites.

A program function `f` is exported as ``int pldsl_entry_f(ctx, targs, iargs, fargs, trets,
irets, frets)``: tensors travel as `pt_tensor` structs, integer scalars (INDEX, ints, bools) as
``int64_t``, float scalars as ``double`` holding the value of their dtype; each kind has its own
array of slots (`FnABI`). A fault records a *site* (an index into `Emitted.sites`) and up to 16
integers, which `Site.render` turns into the message (floats travel as their bits: `fault_value`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pldsl.diagnostics import NO_SPAN, CaptureError, Diagnostic, Span
from pldsl.ir.nodes import (
    Var,
)
from pldsl.ir.types import ScalarType, TensorType

MAX_RANK = 8
PAD_CODE = {"null": "PT_PAD_NULL", "zero": "PT_PAD_ZERO", "min": "PT_PAD_MIN", "max": "PT_PAD_MAX"}
MODE_CODE = {"none": "PT_M_NONE", "rint": "PT_M_RINT", "round": "PT_M_ROUND",
             "floor": "PT_M_FLOOR", "ceil": "PT_M_CEIL", "trunc": "PT_M_TRUNC", "odd": "PT_M_ODD"}  # fmt: skip


class CBackendError(CaptureError):
    """A construct the C backend cannot compile (reported like a capture error)."""


def unsupported(message: str, span: Span = NO_SPAN, help: str | None = None) -> CBackendError:
    return CBackendError(Diagnostic("CBackendUnsupported", "error", message, span, help))


# ------------------------------------------------------------------ results


@dataclass
class Site:
    span: Span
    rule: str
    render: Callable[[list[int]], str]
    help: str | None = None


@dataclass
class ParamABI:
    name: str
    kind: str  # "t" tensor, "i" int, "b" bool, "f" float
    type: Any
    direction: str
    slot: int  # index into targs / iargs / fargs


@dataclass
class FnABI:
    name: str
    params: list[ParamABI]
    rets: list[tuple[str, Any, int]]  # (kind, type, slot)
    tuple_return: bool
    host_stub: bool
    n_t: int = 0
    n_i: int = 0
    n_f: int = 0
    nr_t: int = 0
    nr_i: int = 0
    nr_f: int = 0


@dataclass
class Emitted:
    source: str
    sites: list[Site]
    line_spans: list[Span | None]
    functions: dict[str, FnABI]
    host_sites: dict[int, tuple[str, Span]]
    parallel_loops: dict[str, list[tuple[Span, bool, str]]] = field(default_factory=dict)
    profile_sites: list[tuple[str, Span]] = field(default_factory=list)
    # (preamble, kernel definitions, preamble + functions): pieces for a parallel build
    split: tuple[str, list[str], str] | None = None


@dataclass
class CVal:
    kind: str  # "t" tensor lvalue, "s" scalar expression, "tuple", "none"
    code: str = ""
    type: Any = None
    owned: bool = False
    items: list | None = None


def cname(name: str) -> str:
    return "v_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def kind_of(t: Any) -> str:
    if isinstance(t, TensorType):
        return "t"
    if isinstance(t, ScalarType):
        if t.dtype.is_float:
            return "f"
        if t.dtype.is_bool:
            return "b"
        return "i"
    raise TypeError(t)


def slots(types) -> tuple[list[tuple[str, int]], tuple[int, int, int]]:
    """(kind, slot) of each type: tensors, ints (and bools) and floats are numbered apart
    (the targs / iargs / fargs arrays of an entry); and the three counts."""
    count = {"t": 0, "i": 0, "f": 0}
    out = []
    for t in types:
        k = kind_of(t)
        array = "i" if k == "b" else k
        out.append((k, count[array]))
        count[array] += 1
    return out, (count["t"], count["i"], count["f"])


def span_text(span: Span) -> str:
    if span is None or span.line <= 0:
        return "?"
    f = span.file.replace("*/", "* /")
    return f"{f}:{span.line}:{span.col}"


def fault_value(v: list[int], i: int, is_float: bool):
    """Fault value i: an int, or a double passed as its bits."""
    if is_float:
        return struct.unpack("<d", struct.pack("<q", v[i]))[0]
    return v[i]


def argname(e: Any) -> str:
    return e.name if isinstance(e, Var) else "<tensor>"
