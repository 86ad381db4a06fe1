"""The C backend: compile a captured program to native code and run it like the interpreter.

    from pldsl.backends import c
    prog = c.compile(program)                 # emit C, build (cached), load with ctypes
    out = prog.run("main", x, out)            # same interface and semantics as interpreter.run

See docs/backends.md for the design, what is bit-exact and what is bounded, and timings.
"""

from __future__ import annotations

from .abi import CBackendError
from .build import CCompileError
from .lowering import emit_program
from .op_emitters import OP_EMITTERS
from .runtime import CompiledProgram

__all__ = [
    "CBackendError",
    "CCompileError",
    "CompiledProgram",
    "OP_EMITTERS",
    "compile",
    "emit_c",
]


def compile(program, *, bounds_check: bool = True, precision: str = "bf16") -> CompiledProgram:  # noqa: A001
    """Compile `program` (a captured pl.program) to a shared object and load it.

    bounds_check: default for `run` (window/index checks; faults carry the kernel's span).
    precision: "bf16" (the contract) or "fp32" (BF16/FP16 stored as float32); `run` may ask
    for the other one, which is then compiled on first use.
    """
    return CompiledProgram(program, bounds_check=bounds_check, precision=precision)


def emit_c(program, precision: str = "bf16") -> str:
    """The C translation unit of `program` (what `pldsl emit --backend c` prints)."""
    return emit_program(program, precision).source
