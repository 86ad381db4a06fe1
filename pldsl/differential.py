"""Differential testing: run a program on the interpreter and on the C backend, compare.

    from pldsl.differential import compare
    report = compare(program, "main", [x, w, out])
    report.check()          # raises AssertionError with a readable table on mismatch

Every output is compared: the returned values and the final state of every array argument
(kernels write Out/InOut/In arguments in place). Each side runs on its own copy of the
arguments.

Limits (docs/numerics.md): casts, elementwise arithmetic, exp/log, max/min reductions, views,
assemble/fillpad/reshape are bit-exact, so a program built only from them must agree bit for
bit (NaN == NaN; +0 == -0). Sum reductions and matmul are bounded, not bit-exact (the summation
order is the implementation's); a program that uses them is compared against `bounds` (per
output, absolute, elementwise: e.g. ``2 * numerics.matmul_error_bound(...)``) when given, else
against a relative tolerance ``rtol * max|reference|`` (default: one ulp of the output's
dtype at the largest magnitude, times `ulps`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from pldsl import interpreter
from pldsl.backends.c import compile as c_compile
from pldsl.diagnostics import RuntimeFault
from pldsl.ir.nodes import Call, OpCall, Program, walk

BOUNDED_OPS = frozenset({"matmul", "matmul_acc", "row_sum", "col_sum"})


def reachable_ops(program: Program, function: str) -> set[str]:
    """Op names used by `function` and every program function it calls."""
    seen: set[str] = set()
    ops: set[str] = set()
    stack = [function]
    funcs = program.functions
    while stack:
        name = stack.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        for node in walk(funcs[name]):
            if isinstance(node, OpCall):
                ops.add(node.op)
            elif isinstance(node, Call):
                stack.append(node.func)
    return ops


def is_exact(program: Program, function: str) -> bool:
    """True when the contract makes every result of `function` bit-exact."""
    return not (reachable_ops(program, function) & BOUNDED_OPS)


@dataclass
class OutputReport:
    name: str
    shape: tuple
    dtype: str
    equal_fraction: float
    max_abs: float
    max_rel: float  # max |c - i| / max |i|
    ok: bool
    note: str = ""

    def row(self) -> str:
        mark = "ok " if self.ok else "BAD"
        return (f"{mark} {self.name:<24} {str(list(self.shape)):<16} {self.dtype:<10} "
                f"equal {self.equal_fraction * 100:7.3f}%  max|d| {self.max_abs:.3g}  "
                f"rel {self.max_rel:.3g} {self.note}")  # fmt: skip


@dataclass
class Report:
    program: str
    function: str
    mode: str  # "exact" | "bounded" | "fault"
    outputs: list[OutputReport] = field(default_factory=list)
    fault_interp: RuntimeFault | None = None
    fault_c: RuntimeFault | None = None
    ok: bool = True
    message: str = ""

    @property
    def bit_exact(self) -> bool:
        return all(o.equal_fraction == 1.0 for o in self.outputs)

    def __str__(self) -> str:
        head = f"{self.program}.{self.function} [{self.mode}] {'ok' if self.ok else 'MISMATCH'}"
        lines = [head] + [o.row() for o in self.outputs]
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)

    def check(self) -> Report:
        if not self.ok:
            raise AssertionError(str(self))
        return self


def _copy_args(args: Sequence[Any]) -> list[Any]:
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(a.copy())
        else:
            out.append(copy.deepcopy(a))
    return out


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, tuple):
        out = []
        for i, v in enumerate(value):
            out += _flatten(v, f"{prefix}[{i}]")
        return out
    return [(prefix, value)]


def _as_f64(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iub":
        return a
    with np.errstate(invalid="ignore"):
        return np.asarray(a).astype(np.float64)


def _compare_arrays(name: str, ref: Any, got: Any, mode: str, bound: np.ndarray | None,
                    rtol: float | None, ulps: float) -> OutputReport:  # fmt: skip
    if ref is None or got is None:
        ok = ref is None and got is None
        return OutputReport(name, (), "None", 1.0 if ok else 0.0, 0.0, 0.0, ok,
                            "" if ok else f"interpreter {type(ref).__name__}, C {type(got).__name__}")  # fmt: skip
    r = np.asarray(ref)
    g = np.asarray(got)
    dtname = r.dtype.name
    if r.shape != g.shape or r.dtype != g.dtype:
        return OutputReport(name, r.shape, dtname, 0.0, np.inf, np.inf, False,
                            f"shape/dtype {r.shape} {r.dtype} vs {g.shape} {g.dtype}")  # fmt: skip
    if r.dtype.kind in "iub":
        eq = r == g
        diff = np.abs(r.astype(np.float64) - g.astype(np.float64))
        scale = float(np.max(np.abs(r.astype(np.float64)), initial=0.0)) or 1.0
        ok = bool(eq.all())
        return OutputReport(name, r.shape, dtname, float(eq.mean()) if eq.size else 1.0,
                            float(diff.max(initial=0.0)), float(diff.max(initial=0.0)) / scale, ok)  # fmt: skip
    rf, gf = _as_f64(r), _as_f64(g)
    both_nan = np.isnan(rf) & np.isnan(gf)
    eq = (rf == gf) | both_nan
    with np.errstate(invalid="ignore"):
        diff = np.where(eq, 0.0, np.abs(rf - gf))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite = np.isfinite(rf)
    scale = float(np.max(np.abs(rf[finite]), initial=0.0)) or 1.0
    max_abs = float(diff.max(initial=0.0))
    frac = float(eq.mean()) if eq.size else 1.0
    if mode == "exact":
        ok = bool(eq.all())
        note = "" if ok else "must be bit-exact"
    elif bound is not None:
        b = np.broadcast_to(np.asarray(bound, np.float64), rf.shape)
        ok = bool(np.all(eq | (diff <= b)))
        note = "" if ok else "outside the contract bound"
    else:
        tol = (rtol if rtol is not None else ulps * float(ml_dtypes.finfo(r.dtype).eps)) * scale
        ok = bool(np.all(eq | (diff <= tol)))
        note = f"(tol {tol:.3g})"
    return OutputReport(name, r.shape, dtname, frac, max_abs, max_abs / scale, ok, note)


def compare(
    program: Program,
    function: str,
    args: Sequence[Any],
    *,
    compiled: Any = None,
    host: Mapping[str, Callable] | None = None,
    precision: str = "bf16",
    exact: bool | None = None,
    bounds: Mapping[str, np.ndarray] | None = None,
    rtol: float | None = None,
    ulps: float = 4.0,
    bounds_check: bool = True,
) -> Report:
    """Run `function` on both engines and compare every output.

    exact: None derives it from the ops the function reaches (see `is_exact`).
    bounds: per output name (a parameter name, or "return", "return[i]") absolute bounds.
    rtol / ulps: tolerance relative to max|reference| for bounded outputs without `bounds`.
    Faults must match: both raise a RuntimeFault with the same rule (and span line)."""
    if compiled is None:
        compiled = c_compile(program, precision=precision)
    return _compare_runs(
        program,
        function,
        args,
        lambda *a, **kw: interpreter.run(program, function, *a, **kw),
        lambda *a, **kw: compiled.run(function, *a, **kw),
        dict(precision=precision, host=host, bounds_check=bounds_check),
        exact,
        bounds,
        rtol,
        ulps,
    )


def compare_fast(
    program: Program,
    function: str,
    args: Sequence[Any],
    *,
    exact: bool | None = None,
    bounds: Mapping[str, np.ndarray] | None = None,
    rtol: float | None = None,
    ulps: float = 4.0,
    **options: Any,
) -> Report:
    """The interpreter's plain path (reported as "interpreter") against its fast path
    (reported as "C"), every output compared as `compare` does; `options` go to both runs
    (strict, precision, host, bounds_check)."""
    return _compare_runs(
        program,
        function,
        args,
        lambda *a, **kw: interpreter.run(program, function, *a, fast=False, **kw),
        lambda *a, **kw: interpreter.run(program, function, *a, fast=True, **kw),
        options,
        exact,
        bounds,
        rtol,
        ulps,
    )


def _compare_runs(
    program: Program,
    function: str,
    args: Sequence[Any],
    run_ref: Callable,
    run_other: Callable,
    options: Mapping[str, Any],
    exact: bool | None,
    bounds: Mapping[str, np.ndarray] | None,
    rtol: float | None,
    ulps: float,
) -> Report:
    if exact is None:
        exact = is_exact(program, function)
    report = Report(program.name, function, "exact" if exact else "bounded")
    args_i, args_c = _copy_args(args), _copy_args(args)
    res_i = res_c = None
    try:
        res_i = run_ref(*args_i, **options)
    except RuntimeFault as f:
        report.fault_interp = f
    try:
        res_c = run_other(*args_c, **options)
    except RuntimeFault as f:
        report.fault_c = f
    if report.fault_interp or report.fault_c:
        report.mode = "fault"
        fi, fc = report.fault_interp, report.fault_c
        if fi is None or fc is None:
            report.ok = False
            report.message = (
                f"interpreter: {fi and fi.diagnostic.render()}\nC: {fc and fc.diagnostic.render()}"
            )
        else:
            di, dc = fi.diagnostic, fc.diagnostic
            report.ok = di.rule == dc.rule and di.span.line == dc.span.line
            report.message = (
                f"interpreter: {di.rule} at {di.span}\nC:           {dc.rule} at {dc.span}"
            )
            if not report.ok:
                report.message += f"\n{di.render()}\n{dc.render()}"
        return report
    fn = program.functions[function]
    pairs = list(zip(_flatten(res_i, "return"), _flatten(res_c, "return")))
    for p, ai, ac in zip(fn.params, args_i, args_c):
        if isinstance(ai, np.ndarray):
            pairs.append(((p.name, ai), (p.name, ac)))
    for (name, ri), (_, rc) in pairs:
        if not isinstance(ri, np.ndarray) and ri is not None:
            same = (ri == rc) or (isinstance(ri, float) and ri != ri and rc != rc)
            report.outputs.append(OutputReport(name, (), type(ri).__name__, 1.0 if same else 0.0,
                                               0.0, 0.0, bool(same)))  # fmt: skip
            continue
        b = bounds.get(name) if bounds else None
        report.outputs.append(_compare_arrays(name, ri, rc, report.mode, b, rtol, ulps))
    report.ok = all(o.ok for o in report.outputs)
    return report
