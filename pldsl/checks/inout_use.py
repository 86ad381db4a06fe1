"""InOutUseDiscipline (error): no reading a variable after passing it as Out/InOut to a call.

PyPTO's verifier (`InOutUseValid`, RFC #1026), same algorithm and message. After a call to a
user function (`self.f(...)`), every argument that is a bare variable bound to an `Out` or
`InOut` parameter is *dead for reading* until it is rebound; the post-call state must be read
through the call's return value (`x = self.f(x)` is clean: rebinding makes the name fresh).

- Call arguments are read before the call kills anything (`self.f(x, x)` is fine).
- Builtin ops (`pl.assemble`, `pl.write`, ...) never kill.
- `if`: both branches start from the same state; afterwards a name is dead if it is dead
  after either branch.
- Loops: before the body, the dead set is seeded with every kill the body makes (the back
  edge: iteration 2 reads what iteration 1 killed), except the loop's own carries
  (`init_values`), which the header rebinds; they are dropped again after the loop.
- Assignment and `pl.yield_` targets are rebound after their right-hand side is read.
- `return x` is a read.
- Functions of type Group and Spmd are skipped (compiler wrappers).

The diagnostic points at the offending read and names the call that killed the variable.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic, Span
from pldsl.ir.nodes import (
    Assign,
    Call,
    ExprStmt,
    For,
    Function,
    If,
    Program,
    Return,
    Scope,
    Stmt,
    Var,
    Yield,
    child_exprs,
)

from .common import OUT_DIRECTIONS, WRAPPER_TYPES, callee

RULE = "InOutUseDiscipline"
SEVERITY = "error"
DOC = "no reading a variable after passing it bare to an Out/InOut parameter of a user call"
HELP = "bind the call's result (e.g. `x = self.f(..., x)`) and read that name afterwards"


class _Checker:
    def __init__(self, program: Program, report: bool, kill_cache: dict[int, dict[str, Span]]):
        self.program = program
        self.report = report
        self.dead: dict[str, Span] = {}
        self.diags: list[Diagnostic] = []
        self.kill_cache = kill_cache

    # -------------------------------------------------------------- expressions
    def expr(self, e: object) -> None:
        if e is None:
            return
        if isinstance(e, Var):
            origin = self.dead.get(e.name)
            if origin is not None and self.report:
                self.diags.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"variable '{e.name}' was passed as InOut/Out at {origin}; read the "
                        "post-call return value instead of the pre-call variable",
                        e.span,
                        HELP,
                    )
                )
            return
        if isinstance(e, Call):
            for a in e.args:
                self.expr(a)
            f = callee(self.program, e)
            if f is None:
                return
            for a, p in zip(e.args, f.params):
                if p.direction in OUT_DIRECTIONS and isinstance(a, Var):
                    # only the first call is remembered as the origin while the name is dead
                    self.dead.setdefault(a.name, e.span)
            return
        for c in child_exprs(e):
            self.expr(c)

    # -------------------------------------------------------------- statements
    def body(self, stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Assign):
            self.expr(s.value)
            for t in s.targets:
                self.dead.pop(t.name, None)
        elif isinstance(s, Yield):
            for v in s.values:
                self.expr(v)
            for t in s.targets:
                self.dead.pop(t.name, None)
        elif isinstance(s, ExprStmt):
            self.expr(s.expr)
        elif isinstance(s, Return):
            for v in s.values:
                self.expr(v)
        elif isinstance(s, If):
            self.expr(s.cond)
            snapshot = dict(self.dead)
            self.body(s.then_body)
            after_then = self.dead
            self.dead = snapshot
            self.body(s.else_body)
            for name, origin in after_then.items():
                self.dead.setdefault(name, origin)
        elif isinstance(s, For):
            for e in (s.start, s.stop, s.step, *s.init_values):
                self.expr(e)
            for name, origin in self.loop_kills(s).items():
                self.dead.setdefault(name, origin)
            self.body(s.body)
            for ia in s.iter_args:
                self.dead.pop(ia.name, None)
        elif isinstance(s, Scope):
            self.body(s.body)

    def loop_kills(self, loop: For) -> dict[str, Span]:
        """What one pass over the body leaves dead, starting clean; carries excluded."""
        key = id(loop)
        cached = self.kill_cache.get(key)
        if cached is None:
            sub = _Checker(self.program, False, self.kill_cache)
            sub.body(loop.body)
            carries = {ia.name for ia in loop.iter_args}
            cached = {k: v for k, v in sub.dead.items() if k not in carries}
            self.kill_cache[key] = cached
        return cached


def check_function(program: Program, func: Function) -> list[Diagnostic]:
    if func.func_type in WRAPPER_TYPES:
        return []
    checker = _Checker(program, True, {})
    checker.body(func.body)
    return checker.diags


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        out.extend(check_function(program, func))
    return out
