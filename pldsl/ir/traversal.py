"""Walking IR statement bodies: the statements, expressions and names they hold.

Shared by the static checks and the C backend's loop analysis. Names, not `Var` objects,
identify variables (non-SSA: one name per variable, a fresh `Var` node per use).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pldsl.ir.nodes import (
    Assign,
    Expr,
    ExprStmt,
    For,
    If,
    OpCall,
    Return,
    Scope,
    Stmt,
    Var,
    While,
    Yield,
    walk,
)
from pldsl.ir.opdefs import lookup
from pldsl.ir.types import TensorType

VIEW_OPS = ("slice", "reshape")


def iter_expr(e: object) -> Iterator[Expr]:
    """Pre-order walk of an expression tree (nothing for None, an omitted argument)."""
    return walk(e) if e is not None else iter(())


def stmt_exprs(s: Stmt) -> Iterator[Expr]:
    """Expressions read directly by a statement (not those of nested statements)."""
    if isinstance(s, Assign):
        yield s.value
    elif isinstance(s, ExprStmt):
        yield s.expr
    elif isinstance(s, (Yield, Return)):
        yield from s.values
    elif isinstance(s, If):
        yield s.cond
    elif isinstance(s, For):
        yield s.start
        yield s.stop
        yield s.step
        yield from s.init_values
    elif isinstance(s, While):
        yield s.cond  # read before every iteration (with the carries bound)
        yield from s.init_values
    elif isinstance(s, Scope):
        yield from s.deps  # task ids the scope waits on


def child_bodies(s: Stmt) -> tuple[tuple[Stmt, ...], ...]:
    if isinstance(s, (For, While, Scope)):
        return (s.body,)
    if isinstance(s, If):
        return (s.then_body, s.else_body)
    return ()


def iter_stmts(body: Iterable[Stmt]) -> Iterator[Stmt]:
    """Every statement of a body, nested ones included, in source order."""
    for s in body:
        yield s
        for b in child_bodies(s):
            yield from iter_stmts(b)


def iter_opcalls(body: Iterable[Stmt]) -> Iterator[OpCall]:
    """Every builtin op call below a body."""
    for s in iter_stmts(body):
        for e in stmt_exprs(s):
            for node in iter_expr(e):
                if isinstance(node, OpCall):
                    yield node


def assigned_names(body: Iterable[Stmt]) -> set[str]:
    """Names (re)bound anywhere in a body: assignment and yield targets, loop headers."""
    out: set[str] = set()
    for s in iter_stmts(body):
        if isinstance(s, (Assign, Yield)):
            out.update(t.name for t in s.targets)
        elif isinstance(s, For):
            out.add(s.var.name)
            out.update(v.name for v in s.iter_args)
        elif isinstance(s, While):
            out.update(v.name for v in s.iter_args)
        elif isinstance(s, Scope) and s.tid is not None:
            out.add(s.tid.name)
    return out


def bindings(s: Stmt) -> list[tuple[Var, Expr, int]]:
    """(target, value, item) for each name an assignment or yield binds; `item` is the
    position of the target in an unpacking assignment (`a, b = self.k(...)`), else 0."""
    if isinstance(s, Assign):
        return [(t, s.value, i) for i, t in enumerate(s.targets)]
    if isinstance(s, Yield):
        return [(t, v, 0) for t, v in zip(s.targets, s.values)]
    return []


def read_names(e: object) -> set[str]:
    """Names an expression reads."""
    return {node.name for node in iter_expr(e) if isinstance(node, Var)}


def read_names_with_types(e: object) -> set[str]:
    """Names an expression reads, including the dims in the types of the tensors it reads
    (a tensor's `valid_shape` refers to scalars by name)."""
    out: set[str] = set()
    for node in iter_expr(e):
        if isinstance(node, Var):
            out.add(node.name)
        t = getattr(node, "type", None)
        if isinstance(t, TensorType):
            for d in (*t.shape, *(t.valid_shape or ())):
                if not isinstance(d, int):
                    out |= read_names(d)
    return out


def write_target(call: OpCall) -> Expr | None:
    """The argument an in-place op (assemble, write) writes, else None."""
    i = lookup(call.op).writes_arg
    return None if i is None else call.args[i]
