"""Shared helpers of the static checks: IR traversal, op classification, buffer aliases.

Names, not `Var` objects, identify variables: the frontend keeps one name per variable
(non-SSA rebinding) and builds a fresh `Var` node for every use, so a use's `Var` carries its
own span.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pldsl.diagnostics import Diagnostic, Span
from pldsl.enums import FunctionType
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Call,
    Const,
    Expr,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    OpCall,
    Program,
    Return,
    Scope,
    Stmt,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
)
from pldsl.ir.types import TensorType
from pldsl.ops import lookup

WRAPPER_TYPES = (FunctionType.Group, FunctionType.Spmd)
VIEW_OPS = ("slice", "reshape")
OUT_DIRECTIONS = ("Out", "InOut")


def diag(rule: str, severity: str, message: str, span: Span, help: str | None = None) -> Diagnostic:
    return Diagnostic(rule, severity, message, span, help)


# ------------------------------------------------------------------ traversal


def sub_exprs(e: object) -> Iterator[Expr]:
    """Direct sub-expressions of an expression (None holes skipped)."""
    if isinstance(e, BinOp):
        yield e.lhs
        yield e.rhs
    elif isinstance(e, UnaryOp):
        yield e.operand
    elif isinstance(e, ListExpr):
        yield from e.items
    elif isinstance(e, (OpCall, Call)):
        for a in e.args:
            if a is not None:
                yield a
    elif isinstance(e, TupleGet):
        yield e.value


def iter_expr(e: object) -> Iterator[Expr]:
    """Pre-order walk of an expression tree."""
    stack = [e]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        children = list(sub_exprs(node))
        stack.extend(reversed(children))


def read_vars(e: object) -> Iterator[Var]:
    """Every `Var` read by an expression, in evaluation order."""
    for node in iter_expr(e):
        if isinstance(node, Var):
            yield node


def stmt_exprs(s: Stmt) -> Iterator[Expr]:
    """Expressions read directly by a statement (not those of nested statements)."""
    if isinstance(s, Assign):
        yield s.value
    elif isinstance(s, ExprStmt):
        yield s.expr
    elif isinstance(s, Yield):
        yield from s.values
    elif isinstance(s, Return):
        yield from s.values
    elif isinstance(s, If):
        yield s.cond
    elif isinstance(s, For):
        yield s.start
        yield s.stop
        yield s.step
        yield from s.init_values


def child_bodies(s: Stmt) -> tuple[tuple[Stmt, ...], ...]:
    if isinstance(s, For):
        return (s.body,)
    if isinstance(s, If):
        return (s.then_body, s.else_body)
    if isinstance(s, Scope):
        return (s.body,)
    return ()


def iter_stmts(body: Iterable[Stmt]) -> Iterator[Stmt]:
    """Every statement of a body, nested ones included, in source order."""
    for s in body:
        yield s
        for b in child_bodies(s):
            yield from iter_stmts(b)


def iter_body_exprs(body: Iterable[Stmt]) -> Iterator[Expr]:
    """Every expression node below a body (pre-order inside each statement)."""
    for s in iter_stmts(body):
        for e in stmt_exprs(s):
            yield from iter_expr(e)


def iter_opcalls_with_scope(
    body: Iterable[Stmt], in_scope: bool = False
) -> Iterator[tuple[OpCall, bool]]:
    """(OpCall, inside a pl.at scope?) for every builtin op call below a body."""
    for s in body:
        for e in stmt_exprs(s):
            for node in iter_expr(e):
                if isinstance(node, OpCall):
                    yield node, in_scope
        if isinstance(s, Scope):
            yield from iter_opcalls_with_scope(s.body, True)
        else:
            for b in child_bodies(s):
                yield from iter_opcalls_with_scope(b, in_scope)


def assigned_names(body: Iterable[Stmt]) -> set[str]:
    """Names (re)bound anywhere in a body: assignment and yield targets, loop headers."""
    out: set[str] = set()
    for s in iter_stmts(body):
        if isinstance(s, (Assign, Yield)):
            out.update(t.name for t in s.targets)
        elif isinstance(s, For):
            out.add(s.var.name)
            out.update(v.name for v in s.iter_args)
    return out


def target_span(target: Var, stmt: Stmt) -> Span:
    """Where an assignment target is bound. A rebinding reuses the first binding's `Var`
    (non-SSA capture), whose span is the first definition: then the statement's span."""
    if target.span.line == stmt.span.line and target.span.file == stmt.span.file:
        return target.span
    return stmt.span


# ------------------------------------------------------------------ ops


def op_def(call: OpCall):
    return lookup(call.op)


def op_name(call: OpCall) -> str:
    d = lookup(call.op)
    return d.name if d is not None else call.op


def write_target(call: OpCall) -> Expr | None:
    """The argument an in-place op (assemble, write, store, ...) writes, else None."""
    d = lookup(call.op)
    if d is None or d.writes_arg is None or d.writes_arg >= len(call.args):
        return None
    return call.args[d.writes_arg]


def runtime_arg(call: OpCall, *names: str) -> Expr | None:
    """The first runtime argument of `call` whose parameter name is one of `names`."""
    d = lookup(call.op)
    if d is None:
        return None
    params = [p.name for p in d.runtime_params]
    for name in names:
        if name in params:
            i = params.index(name)
            return call.args[i] if i < len(call.args) else None
    return None


def list_items(e: Expr | None) -> tuple[Expr, ...] | None:
    return e.items if isinstance(e, ListExpr) else None


@dataclass(frozen=True)
class Window:
    """What an access touches: a box (offsets + extents) or one element (indices)."""

    kind: str  # "slice" | "assemble" | "read" | "write"
    tensor: Expr  # the tensor read or written
    offsets: tuple[Expr, ...]
    extents: tuple[object, ...] | None  # Dims (int or Expr); None for element accesses


def access_window(call: OpCall) -> Window | None:
    """The window of a slice / assemble / read / write op call (None for other ops)."""
    name = op_name(call)
    if name == "slice":
        x = runtime_arg(call, "x")
        off = list_items(runtime_arg(call, "offset"))
        valid = list_items(runtime_arg(call, "valid_shape"))
        shape = list_items(runtime_arg(call, "shape"))
        ext = valid if valid is not None else shape
        if x is None or off is None or ext is None:
            return None
        return Window("slice", x, off, tuple(ext))
    if name in ("read", "write"):
        x = runtime_arg(call, "x")
        idx = list_items(runtime_arg(call, "indices"))
        if x is None or idx is None:
            return None
        return Window(name, x, idx, None)
    target = write_target(call)
    if target is None:
        return None
    src = runtime_arg(call, "source", "tile", "src")
    off = list_items(runtime_arg(call, "offset", "offsets"))
    src_t = getattr(src, "type", None)
    if off is None or not isinstance(src_t, TensorType):
        return None
    return Window("assemble", target, off, tuple(src_t.effective_valid_shape))


# ------------------------------------------------------------------ functions


def directions(func: Function) -> dict[str, str]:
    return {p.name: p.direction for p in func.params}


def out_params(func: Function, dirs: tuple[str, ...] = OUT_DIRECTIONS) -> dict[str, str]:
    return {
        p.name: p.direction
        for p in func.params
        if p.direction in dirs and isinstance(p.type, TensorType)
    }


def callee(program: Program, call: Call) -> Function | None:
    for f in program.function_list:
        if f.name == call.func:
            return f
    return None


def is_int_const(e: object, value: int | None = None) -> bool:
    return (
        isinstance(e, Const)
        and isinstance(e.value, int)
        and not isinstance(e.value, bool)
        and (value is None or e.value == value)
    )


# ------------------------------------------------------------------ buffer aliases


class Aliases:
    """Flow-insensitive buffer roots of every name of one function.

    `roots(name)` is the set of parameter names whose caller buffer `name` may hold: a
    parameter holds itself; an in-place write (`y = pl.assemble(x, ...)`), a plain copy
    (`y = x`), a loop carry (`init_values`) and a yield pass the roots on; a user call
    passes on the roots of the arguments bound to the callee parameters it returns (any
    Out/InOut argument when that is unknown). "?" among the roots means "unknown".
    The union over all bindings of a name over-approximates, so checks that report a
    missing alias stay quiet when unsure.
    """

    UNKNOWN = "?"

    def __init__(
        self,
        program: Program,
        func: Function,
        _stack: tuple[str, ...] = (),
        views: bool = False,
    ):
        self.program, self.func, self.views = program, func, views
        self._stack = _stack + (func.name,)
        self.map: dict[str, set[str]] = {p.name: {p.name} for p in func.params}
        self._tuples: dict[str, list[set[str]]] = {}
        self._solve()

    def roots(self, name: str) -> frozenset[str]:
        return frozenset(self.map.get(name, ()))

    def expr_roots(self, e: Expr | None) -> list[set[str]]:
        """Roots of an expression's value; one set per tuple item for tuple values."""
        if isinstance(e, Var):
            if e.name in self._tuples:
                return self._tuples[e.name]
            return [set(self.map.get(e.name, ()))]
        if isinstance(e, TupleGet):
            items = self.expr_roots(e.value)
            return [items[e.index]] if e.index < len(items) else [{self.UNKNOWN}]
        if isinstance(e, OpCall):
            target = write_target(e)
            if target is not None:
                return self.expr_roots(target)[:1] or [set()]
            if self.views and op_name(e) in VIEW_OPS and e.args:
                return self.expr_roots(e.args[0])[:1] or [set()]
            return [set()]
        if isinstance(e, Call):
            return self._call_roots(e)
        return [set()]

    def _call_roots(self, call: Call) -> list[set[str]]:
        f = callee(self.program, call)
        if f is None:
            return [{self.UNKNOWN}]
        mapping = returned_params(self.program, f, self._stack)
        out: list[set[str]] = []
        for item in mapping:
            roots: set[str] = set()
            for idx in item:
                if idx == self.UNKNOWN:
                    for a, p in zip(call.args, f.params):
                        if p.direction in OUT_DIRECTIONS:
                            roots |= self.expr_roots(a)[0]
                    roots.add(self.UNKNOWN)
                elif isinstance(idx, int) and idx < len(call.args):
                    roots |= self.expr_roots(call.args[idx])[0]
            out.append(roots)
        return out or [set()]

    def _bind(self, name: str, roots: list[set[str]], tuple_value: bool) -> bool:
        if tuple_value:
            old = self._tuples.setdefault(name, [set() for _ in roots])
            changed = False
            for i, r in enumerate(roots):
                if i >= len(old):
                    old.append(set())
                if not r <= old[i]:
                    old[i] |= r
                    changed = True
            return changed
        cur = self.map.setdefault(name, set())
        new = roots[0] if roots else set()
        if new <= cur:
            return False
        cur |= new
        return True

    def _carries_roots(self, e: object) -> bool:
        """Whether a value can carry roots at all (fresh values never do)."""
        if isinstance(e, (Var, Call, TupleGet)):
            return True
        if isinstance(e, OpCall):
            return write_target(e) is not None or (self.views and op_name(e) in VIEW_OPS)
        return False

    def _solve(self) -> None:
        stmts = [
            s
            for s in iter_stmts(self.func.body)
            if isinstance(s, (Yield, For)) or isinstance(s, Assign) and self._carries_roots(s.value)
        ]
        for _ in range(20):  # fixed point; chains are short
            changed = False
            for s in stmts:
                if isinstance(s, Assign):
                    roots = self.expr_roots(s.value)
                    if len(s.targets) == 1:
                        tuple_value = isinstance(s.value, Call) and len(roots) > 1
                        changed |= self._bind(s.targets[0].name, roots, tuple_value)
                    else:
                        for i, t in enumerate(s.targets):
                            r = roots[i] if i < len(roots) else {self.UNKNOWN}
                            changed |= self._bind(t.name, [r], False)
                elif isinstance(s, Yield):
                    for t, v in zip(s.targets, s.values):
                        changed |= self._bind(t.name, self.expr_roots(v)[:1], False)
                    # the carries of the enclosing loop take the yielded values too
                elif isinstance(s, For):
                    for ia, init in zip(s.iter_args, s.init_values):
                        changed |= self._bind(ia.name, self.expr_roots(init)[:1], False)
                    carried = _loop_yields(s)
                    for ia, v in zip(s.iter_args, carried):
                        if v is not None:
                            changed |= self._bind(ia.name, self.expr_roots(v)[:1], False)
            if not changed:
                break


def _loop_yields(loop: For) -> list[Expr | None]:
    """The values of the loop's own yield (top level of its body or nested ifs/scopes)."""
    out: list[Expr | None] = [None] * len(loop.iter_args)

    def visit(body: tuple[Stmt, ...]) -> None:
        for s in body:
            if isinstance(s, Yield):
                for i, v in enumerate(s.values[: len(out)]):
                    out[i] = v
            elif isinstance(s, (If, Scope)):
                for b in child_bodies(s):
                    visit(b)

    visit(loop.body)
    return out


_RETURNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def returned_params(program: Program, func: Function, stack: tuple[str, ...] = ()) -> list[set]:
    """For each returned value of `func`: the indices of the parameters it may alias.

    "?" in a set means "unknown" (recursion, calls of unknown results).
    """
    per_program = _RETURNED.setdefault(program, {})
    if func.name in per_program:
        return per_program[func.name]
    if func.name in stack or func.is_host_stub or not func.body:
        # recursion, or a body bound at run time: anything may be returned
        return [{Aliases.UNKNOWN} for _ in range(max(1, len(func.return_types)))]
    aliases = Aliases(program, func, stack)
    index = {p.name: i for i, p in enumerate(func.params)}
    width = max(1, len(func.return_types))
    out: list[set] = [set() for _ in range(width)]
    for s in iter_stmts(func.body):
        if not isinstance(s, Return):
            continue
        roots_per_item: list[set[str]] = []
        if len(s.values) == 1:
            roots_per_item = aliases.expr_roots(s.values[0])
        else:
            for v in s.values:
                roots_per_item.extend(aliases.expr_roots(v)[:1])
        for i, roots in enumerate(roots_per_item[:width]):
            for r in roots:
                out[i].add(index.get(r, Aliases.UNKNOWN) if r != Aliases.UNKNOWN else r)
    per_program[func.name] = out
    return out


# ------------------------------------------------------------------ liveness


def reads_with_types(e: object) -> set[str]:
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
                    out.update(v.name for v in read_vars(d))
    return out


def loop_live_out(body: tuple[Stmt, ...]) -> dict[int, frozenset[str]]:
    """Backward liveness: for every loop below `body`, the names live when it exits."""
    result: dict[int, frozenset[str]] = {}
    loops: list[tuple[frozenset[str], frozenset[str]]] = []

    cache: dict[int, frozenset[str]] = {}

    def reads(s: Stmt) -> frozenset[str]:
        got = cache.get(id(s))
        if got is None:
            out: set[str] = set()
            for e in stmt_exprs(s):
                out |= reads_with_types(e)
            got = cache[id(s)] = frozenset(out)
        return got

    def block(stmts: tuple[Stmt, ...], live: frozenset[str]) -> frozenset[str]:
        for s in reversed(stmts):
            live = stmt(s, live)
        return live

    def stmt(s: Stmt, live: frozenset[str]) -> frozenset[str]:
        if isinstance(s, Assign):
            return (live - {t.name for t in s.targets}) | reads(s)
        if isinstance(s, Return):
            return reads(s)
        if isinstance(s, (Yield, ExprStmt)):
            return live | reads(s)
        if isinstance(s, If):
            return block(s.then_body, live) | block(s.else_body, live) | reads(s)
        if isinstance(s, Scope):
            return block(s.body, live)
        if isinstance(s, For):
            header = {s.var.name} | {ia.name for ia in s.iter_args}
            head: frozenset[str] = frozenset()
            for _ in range(50):
                loops.append((live, head))
                new_head = block(s.body, live | head)
                loops.pop()
                if new_head <= head:
                    break
                head = head | new_head
            result[id(s)] = result.get(id(s), frozenset()) | live
            return live | (head - header) | reads(s)
        if loops:  # break / continue
            exit_live, head_live = loops[-1]
            return live | exit_live | head_live
        return live

    block(body, frozenset())
    return result
