"""Shared helpers of the interpreter tests: capture a kernel from source text."""

from __future__ import annotations

import textwrap

import pytest

import pldsl as pl  # noqa: E402

HEADER = "import pldsl as pl\n"


def _capture(src: str, filename: str) -> pl.Program:
    text = HEADER + textwrap.dedent(src).lstrip("\n")
    programs = pl.capture_source(text, filename)
    assert len(programs) == 1, programs
    return programs[0]


@pytest.fixture
def capture(request):
    """capture(src) -> Program. The source gets `import pldsl as pl` prepended (line 1), so
    line N of the dedented snippet is line N + 1 of the file named after the test."""
    counter = iter(range(1000))

    def make(src: str) -> pl.Program:
        name = f"{request.node.name}_{next(counter)}.py"
        return _capture(src, name)

    return make


def line_of(program: pl.Program, needle: str) -> int:
    """1-based line of the first source line of `program` containing `needle`."""
    import linecache

    lines = linecache.getlines(program.source_file)
    for i, text in enumerate(lines, 1):
        if needle in text:
            return i
    raise AssertionError(f"{needle!r} not in {program.source_file}")


@pytest.fixture
def line():
    return line_of
