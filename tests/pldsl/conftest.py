"""Fixtures shared by the frontend tests (capture, errors, mutation)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pldsl as pl  # noqa: E402

KERNELS_SRC = Path(__file__).resolve().parent / "kernels_src"


def _assert_roundtrip(program: pl.Program) -> str:
    """print -> parse -> structural_equal, and printing the re-parsed program is a fixed point."""
    text = pl.print_ir(program)
    again = pl.parse_ir(text)
    assert pl.structural_equal(again, program), text
    assert pl.print_ir(again) == text
    return text


@pytest.fixture
def roundtrip():
    return _assert_roundtrip


@pytest.fixture(scope="session")
def kernels_src() -> Path:
    """Directory of sample kernel sources (each file holds one or more @pl.program)."""
    return KERNELS_SRC
