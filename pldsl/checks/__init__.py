"""Static checks over a captured program (`pl.check(program)`, `pldsl check`).

Every rule is a module of this package with a `check(program) -> list[Diagnostic]`
function; `RULES` lists them: name -> (severity, one-line doc, function). Errors mean the
kernel is wrong (PyPTO would reject it, or it provably faults); warnings point at code
that is legal but likely not what was meant, and never block.

    diags = run_checks(program, disable=("UnusedValue",), warnings_as_errors=False)
    diags = run_checks(program, enable=("InParamWritten",))   # an opt-in rule

Rule docs: docs/checks.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import NamedTuple

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Program

from . import (
    in_param_written,
    inout_use,
    low_precision,
    misplaced_compute,
    no_nested_incore,
    out_param_not_shadowed,
    out_param_write_dropped,
    rank_collective,
    spmd_race,
    stale_buffer,
    static_bounds,
    unpadded_reduction,
    unused_value,
    unwritten_output,
)
from .param_directions import upgrade_param_directions


class Rule(NamedTuple):
    severity: str  # "error" | "warning"
    doc: str
    check: Callable[[Program], list[Diagnostic]]
    default: bool = True  # False: opt-in, runs only when named in `enable`


_MODULES = (
    inout_use,
    out_param_not_shadowed,
    no_nested_incore,
    misplaced_compute,
    static_bounds,
    out_param_write_dropped,
    in_param_written,
    unwritten_output,
    stale_buffer,
    spmd_race,
    rank_collective,
    low_precision,
    unpadded_reduction,
    unused_value,
)

RULES: dict[str, Rule] = {
    m.RULE: Rule(m.SEVERITY, m.DOC, m.check, getattr(m, "DEFAULT", True)) for m in _MODULES
}


def _sort_key(d: Diagnostic) -> tuple:
    return (d.span.file, d.span.line, d.span.col, d.rule, d.message)


def run_checks(
    program: Program,
    disable: Iterable[str] = (),
    warnings_as_errors: bool = False,
    enable: Iterable[str] = (),
) -> list[Diagnostic]:
    """Run every default rule not in `disable`, plus the opt-in rules named in `enable`;
    diagnostics sorted by file, line and column.

    `warnings_as_errors` turns every warning into an error (CI gates). An unknown name in
    `disable` or `enable` raises ValueError listing the known rules; `disable` wins over
    `enable`. A rule that crashes is reported as a warning of that rule ("internal error:
    ...") and the other rules still run.
    """
    disabled, enabled = _names(disable), _names(enable)
    unknown = sorted((disabled | enabled) - set(RULES))
    if unknown:
        raise ValueError(f"unknown check rule(s): {', '.join(unknown)}; known: {', '.join(RULES)}")
    found: dict[tuple, Diagnostic] = {}
    for name, rule in RULES.items():
        if name in disabled or not (rule.default or name in enabled):
            continue
        try:
            diags = rule.check(program)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not hide the others
            diags = [_crashed(name, program, exc)]
        for d in diags:
            if warnings_as_errors and d.severity == "warning":
                d = dataclasses.replace(d, severity="error")
            found.setdefault((*_sort_key(d), d.severity), d)
    return sorted(found.values(), key=_sort_key)


def _names(names: Iterable[str]) -> set[str]:
    return {names} if isinstance(names, str) else set(names)  # a single string is one name


def _crashed(name: str, program: Program, exc: Exception) -> Diagnostic:
    return Diagnostic(
        name,
        "warning",
        f"internal error: check {name} crashed on program '{program.name}' "
        f"({type(exc).__name__}: {exc}); its findings are missing",
        program.span,
        f"run the other rules with --disable {name}, and report the crash",
    )


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True when any diagnostic blocks (severity error)."""
    return any(d.is_error for d in diagnostics)


__all__ = ["RULES", "Rule", "run_checks", "has_errors", "upgrade_param_directions"]
