"""Helpers shared by the frontend and IR-text tests: the sample kernels, the round-trip check."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from toolchain import have_c_compiler

import pldsl as pl
from pldsl.diagnostics import CaptureError

KERNELS_SRC = Path(__file__).resolve().parent / "kernels_src"


def first_difference(a: Any, b: Any, path: str = "program") -> str | None:
    """Where two IR trees differ (for readable assertion messages)."""
    if is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        for f in fields(a):
            if f.name in ("span", "source_file"):
                continue
            d = first_difference(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
            if d:
                return d
        return None
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if not pl.structural_equal(a, b):
        return f"{path}: {a!r} vs {b!r}"
    return None


def round_trip(program: pl.Program) -> pl.Program:
    """print_ir -> parse_ir gives the same program, and printing it again is a fixed point.

    Returns the re-parsed program."""
    text = pl.print_ir(program)
    again = pl.parse_ir(text, "<roundtrip>")
    assert pl.structural_equal(again, program), f"{first_difference(program, again)}\n{text}"
    assert pl.print_ir(again) == text
    return again


def orchestration_capture_error(body: str, filename: str) -> CaptureError:
    """The CaptureError of `body` placed in a one-tensor orchestration function."""
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.Orchestration)\n"
        "    def f(self, a: pl.Tensor[[16, 16], pl.FP32]) -> pl.Tensor[[16, 16], pl.FP32]:\n"
        + "".join(f"        {line}\n" for line in body.splitlines())
        + "        return a\n"
    )
    with pytest.raises(CaptureError) as info:
        pl.capture_source(src, filename)
    return info.value


def compile_c(program: pl.Program):
    """The C backend's build of `program`; skips only where no C compiler is found, so a
    backend or compile error fails the test instead of skipping it."""
    from pldsl.backends.c import compile

    if not have_c_compiler():
        pytest.skip("no C compiler (cc / $CC) on this machine")
    return compile(program)
