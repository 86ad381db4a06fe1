"""StaleBufferRead (warning): reading an older name of a buffer after an in-place write.

`pl.assemble` and `pl.write` write their target in place and return the *same* buffer
(PyPTO fact 4). After `b = pl.assemble(a, t, [0, 0])`, `a` and `b` are one buffer: reading
`a` sees the new data on hardware (and in pldsl's interpreter), while the code reads as if `a`
were the value before the write; a copy-on-write reading of the same program would differ.
PyPTO verifies nothing here (its InOutUseDiscipline covers user calls only). The usual
spelling rebinds the same name (`a = pl.assemble(a, t, [0, 0])`), which never warns.

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
    Yield,
)
from pldsl.ir.types import TensorType

from .common import diag, iter_body_exprs, stmt_exprs, sub_exprs, write_target

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
        for p in func.params:
            if isinstance(p.type, TensorType):
                self.state.buf[p.name] = frozenset([next(self.ids)])
        self.report = True
        self.diags: dict[tuple, Diagnostic] = {}
        self.carries: list[tuple[str, ...]] = []
        self.carried: list[dict[str, frozenset[int]]] = []
        self.shared: set[int] = set()  # buffers ever held by two names
        self._source: str | None = None

    def buffers(self, name: str) -> frozenset[int]:
        b = self.state.buf.get(name)
        if b is None:
            b = frozenset([next(self.ids)])
            self.state.buf[name] = b
        return b

    def value_buffers(self, e: object) -> frozenset[int] | None:
        """Buffers the value of `e` is (None: a fresh value)."""
        self._source = None
        if isinstance(e, Var):
            if not isinstance(e.type, TensorType):
                return None
            self._source = e.name
            return self.buffers(e.name)
        if isinstance(e, OpCall):
            target = write_target(e)
            if isinstance(target, Var):
                self._source = target.name
                return self.buffers(target.name)
        return None

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
                    diag(
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
        for c in sub_exprs(e):
            self.expr(c)

    # -------------------------------------------------------------- statements
    def body(self, stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            self.stmt(s)

    def rebind(self, name: str, bufs: frozenset[int] | None, is_tensor: bool) -> None:
        self.state.stale.pop(name, None)
        if bufs is not None and self._source != name:
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
                self.rebind(t.name, self.value_buffers(s.value), isinstance(t.type, TensorType))
            else:
                for t in s.targets:
                    self.rebind(t.name, None, isinstance(t.type, TensorType))
        elif isinstance(s, Yield):
            for v in s.values:
                self.expr(v)
            bufs = [self.value_buffers(v) for v in s.values]
            if self.carries:
                for name, b in zip(self.carries[-1], bufs):
                    if b is not None:
                        self.carried[-1][name] = self.carried[-1].get(name, frozenset()) | b
                        self.shared |= b  # the carry and the yielded name hold one buffer
            for t, b in zip(s.targets, bufs):
                self._source = None
                self.rebind(t.name, b, isinstance(t.type, TensorType))
        elif isinstance(s, (ExprStmt, Return)):
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
        elif isinstance(s, For):
            self.loop(s)
        elif isinstance(s, Scope):
            self.body(s.body)

    def loop(self, s: For) -> None:
        for e in (s.start, s.stop, s.step, *s.init_values):
            self.expr(e)
        for ia, init in zip(s.iter_args, s.init_values):
            self.rebind(ia.name, self.value_buffers(init), isinstance(ia.type, TensorType))
        if isinstance(s.var, Var):
            self.rebind(s.var.name, None, False)
        carries = tuple(ia.name for ia in s.iter_args)
        entry = self.state.copy()
        has_writes = any(
            isinstance(e, OpCall) and write_target(e) is not None for e in iter_body_exprs(s.body)
        )
        if has_writes:
            # silent pass: what one iteration leaves behind reaches the next one
            report, self.report = self.report, False
            self.carries.append(carries)
            self.carried.append({})
            self.body(s.body)
            carried = self.carried.pop()
            self.carries.pop()
            self.report = report
            end = self.state
            for name in carries:
                end.stale.pop(name, None)
                if name in carried:
                    end.buf[name] = end.buf.get(name, frozenset()) | carried[name]
            self.state = entry.copy()
            self.state.merge(end)
        self.carries.append(carries)
        self.carried.append({})
        self.body(s.body)
        self.carried.pop()
        self.carries.pop()
        self.state.merge(entry)  # the loop may run zero times


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        checker = _Checker(func)
        checker.body(func.body)
        out.extend(checker.diags.values())
    return out
