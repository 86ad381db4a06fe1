"""The ops of issue 10 on the interpreter against NumPy oracles (tests/new_ops_checks.py),
in the default and the strict mode."""

from __future__ import annotations

from new_ops_checks import make_tests

from pldsl import interpreter


def _run(program, *args):
    return interpreter.run(program, "k", *args, precision="bf16")


def _run_strict(program, *args):
    return interpreter.run(program, "k", *args, precision="bf16", strict=True)


globals().update(make_tests(_run))
globals().update({f"{k}_strict": v for k, v in make_tests(_run_strict).items()})
