"""Shared helpers of the static checks: traversal, access windows, buffer aliases, liveness.

Names, not `Var` objects, identify variables: the frontend keeps one name per variable
(non-SSA rebinding) and builds a fresh `Var` node for every use and every binding, so each
carries its own span (a finding about an assignment points at its target).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from pldsl.enums import FunctionType
from pldsl.ir.nodes import (
    Assign,
    Call,
    Expr,
    ExprStmt,
    For,
    Function,
    If,
    OpCall,
    Program,
    Return,
    Scope,
    Stmt,
    TupleGet,
    Var,
    Yield,
)
from pldsl.ir.traversal import (
    VIEW_OPS,
    iter_stmts,
    own_yields,
    stmt_exprs,
    write_target,
)
from pldsl.ir.types import TensorType

WRAPPER_TYPES = (FunctionType.Group, FunctionType.Spmd)
OUT_DIRECTIONS = ("Out", "InOut")


# ------------------------------------------------------------------ ops


def dim_extent(call: OpCall) -> object:
    """The shape entry (int or expression) a `pl.tensor.dim(x, axis)` call reads."""
    return call.args[0].type.shape[call.attr("axis")]


@dataclass(frozen=True)
class Window:
    """What an access touches: a box (offsets + extents) or one element (indices)."""

    tensor: Expr  # the tensor read or written
    offsets: tuple[Expr, ...]
    extents: tuple[object, ...] | None  # Dims (int or Expr); None for element accesses


_WINDOWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def access_window(call: OpCall) -> Window | None:
    """The window of a slice / assemble / read / write op call (None for other ops); cached,
    since IR nodes are immutable and structure-only runs ask for the same window often."""
    try:
        return _WINDOWS[call]
    except KeyError:
        w = _WINDOWS[call] = _window(call)
        return w


def _window(call: OpCall) -> Window | None:
    op = call.op
    if op == "slice":
        extents = call.arg("valid_shape") or call.arg("shape")  # a trimmed tile reads less
        return Window(call.arg("x"), call.arg("offset").items, extents.items)
    if op in ("read", "write"):
        return Window(call.arg("x"), call.arg("indices").items, None)
    if op == "assemble":
        source = call.arg("source").type.effective_valid_shape
        return Window(call.arg("target"), call.arg("offset").items, source)
    return None


# ------------------------------------------------------------------ functions


def out_params(func: Function) -> dict[str, str]:
    """Out/InOut tensor parameters: name -> direction."""
    return {
        p.name: p.direction
        for p in func.params
        if p.direction in OUT_DIRECTIONS and isinstance(p.type, TensorType)
    }


def callee(program: Program, call: Call) -> Function | None:
    for f in program.function_list:
        if f.name == call.func:
            return f
    return None


# ------------------------------------------------------------------ buffer aliases


class Aliases:
    """Flow-insensitive buffer roots of every name of one function.

    `roots(name)` is the set of parameter names whose caller buffer `name` may hold: a
    parameter holds itself; an in-place write (`y = pl.assemble(x, ...)`), a plain copy
    (`y = x`), a loop carry (`init_values`) and a yield pass the roots on; a user call
    passes on the roots of the arguments bound to the callee parameters it returns (any
    Out/InOut argument when that is unknown); with `views=True`, so do `pl.slice` and
    `pl.reshape`. "?" among the roots means "unknown". The union over all bindings of a
    name over-approximates, so checks that report a missing alias stay quiet when unsure.
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
            if self.views and e.op in VIEW_OPS:
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
            return write_target(e) is not None or (self.views and e.op in VIEW_OPS)
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
                elif isinstance(s, For):
                    # a carry takes its initial value and what the loop's own yields pass back
                    for ia, init in zip(s.iter_args, s.init_values):
                        changed |= self._bind(ia.name, self.expr_roots(init)[:1], False)
                    for ia, v in zip(s.iter_args, _loop_yields(s)):
                        if v is not None:
                            changed |= self._bind(ia.name, self.expr_roots(v)[:1], False)
            if not changed:
                break


def _loop_yields(loop: For) -> list[Expr | None]:
    """Per carry, the value of the loop's last own yield (None when none yields it)."""
    out: list[Expr | None] = [None] * len(loop.iter_args)
    for y in own_yields(loop.body):
        for i, v in enumerate(y.values[: len(out)]):
            out[i] = v
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


class Liveness:
    """Backward liveness over a structured body, `reads(expr)` naming what an expression reads.

    `if` branches join; a loop body iterates to a fixed point (what the next iteration reads
    is live at the end of the body); `break`/`continue` keep live what is live after the loop
    and at its head. `live_after[id(s)]`, for every assignment and loop `s`: the names live
    right after it (the union over all passes, which is the converged set: every pass sees
    at most what the last one sees).
    """

    def __init__(self, body: tuple[Stmt, ...], reads: Callable[[object], set[str]]):
        self._reads_of = reads
        self._cache: dict[int, frozenset[str]] = {}
        self._loops: list[tuple[frozenset[str], frozenset[str]]] = []  # (exit live, head live)
        self.live_after: dict[int, frozenset[str]] = {}
        self._block(body, frozenset())

    def _reads(self, s: Stmt) -> frozenset[str]:
        got = self._cache.get(id(s))
        if got is None:
            out: set[str] = set()
            for e in stmt_exprs(s):
                out |= self._reads_of(e)
            got = self._cache[id(s)] = frozenset(out)
        return got

    def _after(self, s: Stmt, live: frozenset[str]) -> None:
        old = self.live_after.get(id(s))
        self.live_after[id(s)] = live if old is None else old | live

    def _block(self, stmts: tuple[Stmt, ...], live: frozenset[str]) -> frozenset[str]:
        for s in reversed(stmts):
            live = self._stmt(s, live)
        return live

    def _stmt(self, s: Stmt, live: frozenset[str]) -> frozenset[str]:
        if isinstance(s, Assign):
            self._after(s, live)
            return (live - {t.name for t in s.targets}) | self._reads(s)
        if isinstance(s, Return):
            return self._reads(s)
        if isinstance(s, (Yield, ExprStmt)):  # yield targets: conservatively not killed
            return live | self._reads(s)
        if isinstance(s, If):
            then_live = self._block(s.then_body, live)
            return then_live | self._block(s.else_body, live) | self._reads(s)
        if isinstance(s, Scope):
            return self._block(s.body, live)
        if isinstance(s, For):
            self._after(s, live)
            header = {s.var.name} | {ia.name for ia in s.iter_args}
            head: frozenset[str] = frozenset()
            for _ in range(50):
                self._loops.append((live, head))
                new_head = self._block(s.body, live | head)
                self._loops.pop()
                if new_head <= head:
                    break
                head = head | new_head
            return live | (head - header) | self._reads(s)
        if self._loops:  # break / continue
            exit_live, head_live = self._loops[-1]
            return live | exit_live | head_live
        return live
