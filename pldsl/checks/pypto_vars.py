"""Variables as PyPTO's parser binds them: which variable each occurrence of a name means.

pldsl's IR identifies variables by name (one name, rebound; a fresh `Var` node per use).
PyPTO's parser builds `Var` objects, and its verifiers (InOutUseValid, OutParamWriteDropped)
compare those by identity. Where one name means two variables, a rule that follows PyPTO's
algorithm must bind names the way PyPTO's parser does (its scope manager, non-strict mode):

- a parameter is a variable; `x = e` assigns the variable `x` already means (in any enclosing
  scope) when that is a plain variable, and binds a new one in the current scope otherwise;
- a loop with `init_values` opens a scope: its loop variable and its carries (iter args) are
  new variables; a carry is not plain (assigning its name binds a new variable in the loop
  scope); nothing bound in the body is visible after the loop; each `pl.yield_` target becomes
  a new variable (a loop return var) bound after the loop, and a yield rebinds nothing inside
  the body;
- a loop without carries, and an `if` without yields, leak what their bodies bind (the then
  branch first, so the else branch already sees it); an `if` with yields leaks nothing and
  binds its yield targets as new variables after it;
- `with pl.at(...)` scopes are transparent.

So in `for i, (x,) in pl.range(..., init_values=(r,))` the body's `x` is the carry, and after
the loop `x` is the outer variable again (unless a yield target is named `x`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pldsl.ir.nodes import (
    Assign,
    ExprStmt,
    For,
    Function,
    If,
    Return,
    Scope,
    Stmt,
    Var,
    While,
    Yield,
)
from pldsl.ir.traversal import iter_expr


@dataclass(frozen=True)
class Variable:
    """One PyPTO variable: a name plus where it was introduced."""

    name: str
    kind: str  # "param" | "let" | "loop_var" | "iter_arg" | "return" | "free"
    site: int = 0  # id() of the introducing statement (0 for parameters and free names)

    @property
    def plain(self) -> bool:
        """Whether assigning its name assigns it (PyPTO: a plain `ir.Var`, not an IterArg)."""
        return self.kind != "iter_arg"


class Bindings:
    """The variable of every `Var` node of one function (reads, targets, loop headers)."""

    def __init__(self, func: Function):
        self._of: dict[int, Variable] = {}
        self._frames: list[dict[str, Variable]] = [
            {p.name: Variable(p.name, "param") for p in func.params}
        ]
        self.carries: dict[int, tuple[Variable, ...]] = {}  # id(For) -> its iter args
        self.results: dict[int, tuple[Variable, ...]] = {}  # id(For / If) -> its return vars
        self._block(func.body)
        del self._frames

    def of(self, node: Var) -> Variable:
        """The variable a `Var` node of this function means."""
        return self._of.get(id(node)) or Variable(node.name, "free")

    @staticmethod
    def param(name: str) -> Variable:
        return Variable(name, "param")

    # -------------------------------------------------------------- scopes
    def _lookup(self, name: str) -> Variable | None:
        for frame in reversed(self._frames):
            if name in frame:
                return frame[name]
        return None

    def _define(self, node: Var | None, v: Variable) -> None:
        self._frames[-1][v.name] = v
        if node is not None:
            self._of[id(node)] = v

    def _pop(self, leak: bool) -> None:
        frame = self._frames.pop()
        if leak:
            self._frames[-1].update(frame)

    def _read(self, e: object) -> None:
        for node in iter_expr(e):
            if isinstance(node, Var):
                self._of[id(node)] = self._lookup(node.name) or Variable(node.name, "free")

    # -------------------------------------------------------------- statements
    def _block(self, stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            self._stmt(s)

    def _stmt(self, s: Stmt) -> None:
        if isinstance(s, Assign):
            self._read(s.value)
            for t in s.targets:
                cur = self._lookup(t.name)
                self._define(
                    t, cur if cur is not None and cur.plain else Variable(t.name, "let", id(s))
                )
        elif isinstance(s, (ExprStmt, Return, Yield)):
            for e in (s.expr,) if isinstance(s, ExprStmt) else s.values:
                self._read(e)
        elif isinstance(s, Scope):
            self._block(s.body)
        elif isinstance(s, If):
            self._if(s)
        elif isinstance(s, (For, While)):
            self._for(s)

    def _if(self, s: If) -> None:
        self._read(s.cond)
        yields = own_yields(s.then_body) + own_yields(s.else_body)
        for body in (s.then_body, s.else_body) if s.else_body else (s.then_body,):
            self._frames.append({})
            self._block(body)
            self._pop(leak=not yields)
        self._bind_results(s, yields)

    def _for(self, s: For | While) -> None:
        heads = (s.start, s.stop, s.step) if isinstance(s, For) else ()
        for e in (*heads, *s.init_values):
            self._read(e)
        self._frames.append({})
        if isinstance(s, For):
            self._define(s.var, Variable(s.var.name, "loop_var", id(s)))
        carries = tuple(Variable(ia.name, "iter_arg", id(s)) for ia in s.iter_args)
        for ia, v in zip(s.iter_args, carries):
            self._define(ia, v)
        self.carries[id(s)] = carries
        if isinstance(s, While):  # the condition reads the carries (or the outer names)
            self._read(s.cond)
        self._block(s.body)
        yields = own_yields(s.body)
        self._pop(leak=not s.iter_args and not yields)
        if s.iter_args:
            self._bind_results(s, yields)

    def _bind_results(self, s: Stmt, yields: list[Yield]) -> None:
        """Yield targets become new variables after the construct (first yield of a name wins)."""
        bound: dict[str, Variable] = {}
        for y in yields:
            for t in y.targets:
                v = bound.setdefault(t.name, Variable(t.name, "return", id(s)))
                self._of[id(t)] = v
        for v in bound.values():
            self._define(None, v)
        self.results[id(s)] = tuple(bound.values())


def own_yields(body: tuple[Stmt, ...]) -> list[Yield]:
    """The yields that belong to the loop or `if` holding `body` (through `pl.at` scopes, not
    into nested loops or ifs, which collect their own)."""
    out: list[Yield] = []
    for s in body:
        if isinstance(s, Yield):
            out.append(s)
        elif isinstance(s, Scope):
            out.extend(own_yields(s.body))
    return out
