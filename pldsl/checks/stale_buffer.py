"""StaleBufferRead (warning): reading an older name of a buffer after an in-place write.

`pl.assemble` and `pl.write` write their target in place and return the *same* buffer
(PyPTO fact 4). After `b = pl.assemble(a, t, [0, 0])`, `a` and `b` are one buffer: reading
`a` sees the new data on hardware (and in pldsl's interpreter), while the code reads as if `a`
were the value before the write; a copy-on-write reading of the same program would differ.
PyPTO verifies nothing here (its InOutUseDiscipline covers user calls only). The usual
spelling rebinds the same name (`a = pl.assemble(a, t, [0, 0])`), which never warns. Nor does
`return p` of a tensor parameter `p`: it hands the caller's buffer back, written through any
alias (`p_flat = p`, then writes into `p_flat`), and no one reads it as the value before.

Flow-sensitive over names: a write under a new name makes every other name of that buffer
stale until it is rebound; `if` branches union; a loop body is walked twice so that a read in
iteration 2 of a name made stale in iteration 1 is seen. Every later use of a stale name is
reported (as the write target of another op too).
"""

from __future__ import annotations

import itertools

from pldsl.diagnostics import Diagnostic, Span
from pldsl.ir.nodes import (
    Assign,
    Call,
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
    While,
    Yield,
    child_exprs,
)
from pldsl.ir.traversal import iter_opcalls, stmt_exprs, write_target
from pldsl.ir.types import TensorType

RULE = "StaleBufferRead"
SEVERITY = "warning"
DOC = "reading an older name of a buffer after an in-place pl.assemble/pl.write under a new name"


class _State:
    __slots__ = ("buf", "stale")

    def __init__(self, buf: dict[str, frozenset[int]], stale: dict[str, tuple[Span, str]]):
        self.buf, self.stale = buf, stale

    def copy(self) -> _State:
        return _State(dict(self.buf), dict(self.stale))

    def merge(self, other: _State) -> None:
        buf = self.buf
        for k, v in other.buf.items():
            cur = buf.get(k)
            if cur is not v:
                buf[k] = v if cur is None else cur | v
        for k, v in other.stale.items():
            self.stale.setdefault(k, v)


class _Checker:
    def __init__(self, func: Function):
        self.ids = itertools.count()
        self.state = _State({}, {})
        self.params = {p.name for p in func.params if isinstance(p.type, TensorType)}
        for p in func.params:
            if isinstance(p.type, TensorType):
                self.state.buf[p.name] = frozenset([next(self.ids)])
        self.report = True
        self.diags: dict[tuple, Diagnostic] = {}
        # per enclosing loop: its carries, and the buffers its yields pass to each carry
        self.carries: list[tuple[tuple[str, ...], dict[str, frozenset[int]]]] = []
        self.shared: set[int] = set()  # buffers ever held by two names

    def buffers(self, name: str) -> frozenset[int]:
        b = self.state.buf.get(name)
        if b is None:
            b = frozenset([next(self.ids)])
            self.state.buf[name] = b
        return b

    def value_buffers(self, e: object) -> tuple[frozenset[int] | None, str | None]:
        """The buffers the value of `e` is (None: a fresh value) and the name it reads them
        through."""
        if isinstance(e, OpCall):
            e = write_target(e)
        if isinstance(e, Var) and isinstance(e.type, TensorType):
            return self.buffers(e.name), e.name
        return None, None

    # -------------------------------------------------------------- expressions
    def expr(self, e: object, new_name: str | None = None) -> None:
        if e is None:
            return
        if isinstance(e, Var):
            hit = self.state.stale.get(e.name)
            if hit is not None and self.report:
                span, newer = hit
                key = (e.span.file, e.span.line, e.span.col, e.name)
                self.diags.setdefault(
                    key,
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"'{e.name}' is read after its buffer was written in place under the "
                        f"name '{newer}' (pl.assemble/pl.write at line {span.line}); it holds the "
                        "new data, not the value before the write",
                        e.span,
                        f"read '{newer}' instead, or rebind the same name: "
                        f"`{e.name} = pl.assemble({e.name}, ...)`",
                    ),
                )
            return
        if isinstance(e, (OpCall, Call)):
            for a in e.args:
                self.expr(a)
            if isinstance(e, OpCall):
                target = write_target(e)
                if isinstance(target, Var) and isinstance(target.type, TensorType):
                    keep = new_name or target.name
                    bufs = self.buffers(target.name)
                    if keep != target.name:
                        self.state.stale.setdefault(target.name, (e.span, keep))
                    if bufs & self.shared:  # other names may hold this buffer
                        for name, b in list(self.state.buf.items()):
                            if name != keep and b & bufs:
                                self.state.stale.setdefault(name, (e.span, keep))
            return
        for c in child_exprs(e):
            self.expr(c)

    # -------------------------------------------------------------- statements
    def body(self, stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            self.stmt(s)

    def rebind(
        self, name: str, bufs: frozenset[int] | None, source: str | None, is_tensor: bool
    ) -> None:
        """`name` now holds `bufs` (None: a fresh value), read through the name `source`."""
        self.state.stale.pop(name, None)
        if bufs is not None and source != name:
            self.shared |= bufs
        if is_tensor:
            self.state.buf[name] = bufs if bufs is not None else frozenset([next(self.ids)])
        else:
            self.state.buf.pop(name, None)

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Assign):
            single = s.targets[0].name if len(s.targets) == 1 else None
            self.expr(s.value, new_name=single)
            if single is not None:
                t = s.targets[0]
                self.rebind(t.name, *self.value_buffers(s.value), isinstance(t.type, TensorType))
            else:
                for t in s.targets:
                    self.rebind(t.name, None, None, isinstance(t.type, TensorType))
        elif isinstance(s, Yield):
            for v in s.values:
                self.expr(v)
            bufs = [self.value_buffers(v)[0] for v in s.values]
            if self.carries:
                names, carried = self.carries[-1]
                for name, b in zip(names, bufs):
                    if b is not None:
                        carried[name] = carried.get(name, frozenset()) | b
                        self.shared |= b  # the carry and the yielded name hold one buffer
            for t, b in zip(s.targets, bufs):
                self.rebind(t.name, b, None, isinstance(t.type, TensorType))
        elif isinstance(s, Return):
            for e in s.values:
                if not (isinstance(e, Var) and e.name in self.params):
                    self.expr(e)  # `return out` hands back the caller's buffer, whatever it holds
        elif isinstance(s, ExprStmt):
            for e in stmt_exprs(s):
                self.expr(e)
        elif isinstance(s, If):
            self.expr(s.cond)
            before = self.state.copy()
            self.body(s.then_body)
            after_then = self.state
            self.state = before
            self.body(s.else_body)
            self.state.merge(after_then)
        elif isinstance(s, (For, While)):
            self.loop(s)
        elif isinstance(s, Scope):
            self.body(s.body)

    def loop(self, s: For | While) -> None:
        for e in stmt_exprs(s):
            self.expr(e)
        for ia, init in zip(s.iter_args, s.init_values):
            self.rebind(ia.name, *self.value_buffers(init), isinstance(ia.type, TensorType))
        if isinstance(s, For):
            self.rebind(s.var.name, None, None, False)
        entry = self.state.copy()
        if any(write_target(e) is not None for e in iter_opcalls(s.body)):
            # silent pass: what one iteration leaves behind reaches the next one
            report, self.report = self.report, False
            carried = self.iteration(s)
            self.report = report
            end = self.state
            for ia in s.iter_args:
                end.stale.pop(ia.name, None)
                if ia.name in carried:
                    end.buf[ia.name] = end.buf.get(ia.name, frozenset()) | carried[ia.name]
            self.state = entry.copy()
            self.state.merge(end)
        self.iteration(s)
        self.state.merge(entry)  # the loop may run zero times

    def iteration(self, s: For | While) -> dict[str, frozenset[int]]:
        """One pass over the loop body; returns the buffers its yields pass to each carry."""
        self.carries.append((tuple(ia.name for ia in s.iter_args), {}))
        self.body(s.body)
        return self.carries.pop()[1]


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        checker = _Checker(func)
        checker.body(func.body)
        out.extend(checker.diags.values())
    return out
