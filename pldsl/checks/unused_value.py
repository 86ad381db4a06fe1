"""UnusedValue (warning): a value assigned to a name that nothing reads afterwards.

Backward liveness over the structured body: an assignment is reported when no path from it
reads the name before the name is bound again (or the function returns). `if` branches
join, loop bodies iterate to a fixed point (a value read by the next iteration is used), and
`break`/`continue` keep everything live that is live after the loop or at its next iteration.

Not reported: names starting with `_` (the usual "unused on purpose" spelling), loop
variables and carries, rebinding of Out/InOut parameters (`out = pl.assemble(out, ...)`
threads the caller's buffer; OutParamWriteDropped covers the bad cases), and a name rebound
to an in-place write of itself (`x = pl.assemble(x, ...)`, `x = pl.write(x, ...)`), whose
effect is the write.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import (
    Assign,
    Break,
    Continue,
    ExprStmt,
    For,
    Function,
    If,
    OpCall,
    Program,
    Return,
    Scope,
    Stmt,
    Var,
    Yield,
)

from .common import diag, out_params, read_vars, stmt_exprs, target_span, write_target

RULE = "UnusedValue"
SEVERITY = "warning"
DOC = "a value assigned to a name that is never read afterwards"


def _reads(s: Stmt) -> set[str]:
    out: set[str] = set()
    for e in stmt_exprs(s):
        out.update(v.name for v in read_vars(e))
    return out


class _Liveness:
    def __init__(self, func: Function):
        self.exempt = set(out_params(func))
        self.dead_stores: dict[tuple[int, str], tuple[Assign, Var]] = {}
        self.loops: list[tuple[frozenset[str], frozenset[str]]] = []  # (exit live, head live)

    def body(self, stmts: tuple[Stmt, ...], live: frozenset[str], report: bool) -> frozenset[str]:
        for s in reversed(stmts):
            live = self.stmt(s, live, report)
        return live

    def stmt(self, s: Stmt, live: frozenset[str], report: bool) -> frozenset[str]:
        if isinstance(s, Assign):
            targets = {t.name for t in s.targets}
            if report:
                for t in s.targets:
                    if t.name not in live and not self._exempt(t, s):
                        self.dead_stores[(id(s), t.name)] = (s, t)
            return (live - targets) | _reads(s)
        if isinstance(s, Yield):
            return live | _reads(s)  # carries and targets: conservatively not killed
        if isinstance(s, (ExprStmt,)):
            return live | _reads(s)
        if isinstance(s, Return):
            return frozenset(_reads(s))
        if isinstance(s, (Break, Continue)):
            if self.loops:
                exit_live, head_live = self.loops[-1]
                return live | exit_live | head_live
            return live
        if isinstance(s, If):
            then_live = self.body(s.then_body, live, report)
            else_live = self.body(s.else_body, live, report)
            return then_live | else_live | _reads(s)
        if isinstance(s, Scope):
            return self.body(s.body, live, report)
        if isinstance(s, For):
            header = {s.var.name} | {ia.name for ia in s.iter_args}
            head: frozenset[str] = frozenset()
            outer = self.dead_stores
            for _ in range(50):
                self.dead_stores = {}  # keep only the findings of the converged pass
                self.loops.append((live, head))
                new_head = self.body(s.body, live | head, report)
                self.loops.pop()
                if new_head <= head:
                    break
                head = head | new_head
            outer.update(self.dead_stores)
            self.dead_stores = outer
            return live | (head - header) | _reads(s)
        return live

    def _exempt(self, t: Var, s: Assign) -> bool:
        if t.name.startswith("_") or t.name in self.exempt:
            return True
        if isinstance(s.value, OpCall):
            target = write_target(s.value)
            if isinstance(target, Var) and target.name == t.name:
                return True
        return False


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        lv = _Liveness(func)
        lv.body(func.body, frozenset(), True)
        for s, t in lv.dead_stores.values():
            out.append(
                diag(
                    RULE,
                    SEVERITY,
                    f"the value assigned to '{t.name}' is never read",
                    target_span(t, s),
                    f"remove the assignment, or name it '_{t.name}' if it is unused on purpose",
                )
            )
    return out
