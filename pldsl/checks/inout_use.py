"""InOutUseDiscipline (error): no reading a variable after passing it as Out/InOut to a call.

PyPTO's verifier (`InOutUseValid`, RFC #1026), same algorithm and message. After a call to a
user function (`self.f(...)`), every argument that is a bare variable bound to an `Out` or
`InOut` parameter is *dead for reading* until it is assigned again; the post-call state must
be read through the call's return value (`x = self.f(x)` is clean: the assignment revives `x`).

Variables, not names, are tracked: a name means the variable PyPTO's parser binds it to
(`pypto_vars`). A loop's carries are new variables, so is every `pl.yield_` target, which
exists only after its loop or `if`.

- Call arguments are read before the call kills anything (`self.f(x, x)` is fine).
- Builtin ops (`pl.assemble`, `pl.write`, ...) never kill.
- A `@pl.jit.inline` helper's parameters are all `In` (pldsl.jit.specialize drops `pl.Out` /
  `pl.InOut` there, as PyPTO's jit specializer does), so a call to one kills nothing;
  `@pl.function(type=Inline)` in a `@pl.program` keeps its declared directions.
- `if`: both branches start from the same state; afterwards a variable is dead if it is dead
  after either branch.
- Loops: before the body, the dead set is seeded with every kill one pass over the body
  leaves (the back edge: iteration 2 reads what iteration 1 killed), except the loop's own
  carries, which the header rebinds; they are dropped again after the loop. A yield revives
  nothing inside the body (`r = self.f(x)` then `x = pl.yield_(r)`: iteration 2's `self.f(x)`
  reads the dead parameter `x`).
- A `pl.spmd` grid is no loop: PyPTO's parser makes its body one scope, run by every block
  (outlined into one kernel), so the body is walked once with no back edge.
- An assignment revives its target after its right-hand side is read.
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
    While,
    Yield,
    child_exprs,
)

from .common import OUT_DIRECTIONS, WRAPPER_TYPES, callee
from .pypto_vars import Bindings, Variable

RULE = "InOutUseDiscipline"
SEVERITY = "error"
DOC = "no reading a variable after passing it bare to an Out/InOut parameter of a user call"
HELP = "bind the call's result (e.g. `x = self.f(..., x)`) and read that name afterwards"


class _Checker:
    def __init__(
        self,
        program: Program,
        names: Bindings,
        report: bool,
        kill_cache: dict[int, dict[Variable, Span]],
    ):
        self.program = program
        self.names = names
        self.report = report
        self.dead: dict[Variable, Span] = {}
        self.diags: list[Diagnostic] = []
        self.kill_cache = kill_cache

    # -------------------------------------------------------------- expressions
    def expr(self, e: object) -> None:
        if e is None:
            return
        if isinstance(e, Var):
            origin = self.dead.get(self.names.of(e))
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
                    # only the first call is remembered as the origin while the variable is dead
                    self.dead.setdefault(self.names.of(a), e.span)
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
                self.dead.pop(self.names.of(t), None)
        elif isinstance(s, (Yield, Return)):
            # a yield's targets are new variables bound after its loop or if: nothing here
            for v in s.values:
                self.expr(v)
        elif isinstance(s, ExprStmt):
            self.expr(s.expr)
        elif isinstance(s, If):
            self.expr(s.cond)
            snapshot = dict(self.dead)
            self.body(s.then_body)
            after_then = self.dead
            self.dead = snapshot
            self.body(s.else_body)
            for v, origin in after_then.items():
                self.dead.setdefault(v, origin)
        elif isinstance(s, (For, While)):
            heads = (s.start, s.stop, s.step) if isinstance(s, For) else ()
            for e in (*heads, *s.init_values):
                self.expr(e)
            if not (isinstance(s, For) and s.kind == "spmd"):  # a grid's body is one scope
                for v, origin in self.loop_kills(s).items():  # (blocks, not iterations)
                    self.dead.setdefault(v, origin)
            if isinstance(s, While):  # read before every iteration, after the back edge too
                self.expr(s.cond)
            self.body(s.body)
            for v in self.names.carries.get(id(s), ()):
                self.dead.pop(v, None)
        elif isinstance(s, Scope):
            self.body(s.body)

    def loop_kills(self, loop: For | While) -> dict[Variable, Span]:
        """What one pass over the body leaves dead, starting clean; the loop's carries excluded
        (the header rebinds them on the back edge)."""
        key = id(loop)
        cached = self.kill_cache.get(key)
        if cached is None:
            sub = _Checker(self.program, self.names, False, self.kill_cache)
            sub.body(loop.body)
            carries = set(self.names.carries.get(key, ()))
            cached = {v: o for v, o in sub.dead.items() if v not in carries}
            self.kill_cache[key] = cached
        return cached


def check_function(program: Program, func: Function) -> list[Diagnostic]:
    if func.func_type in WRAPPER_TYPES:
        return []
    checker = _Checker(program, Bindings(func), True, {})
    checker.body(func.body)
    return checker.diags


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        out.extend(check_function(program, func))
    return out
