"""IR analyses, one copy for the checks, the backends and the interpreter's fast path.

Reads and own yields of a statement, liveness, definite assignment, buffer alias roots (per
function, flow-insensitive), affine (linear) index forms, and which `pl.parallel` loops are
provably free of cross-iteration dependences (so they may run as OpenMP loops or as one
batched NumPy operation).

A `pl.parallel` loop is emitted as an OpenMP loop only when all of these hold:

* no loop carries, no `break`/`continue`/`return` of its own, no calls to program functions;
* every variable the body (re)binds is *private*: not live on entry to an iteration (never read
  before it is assigned in the same iteration) and not live after the loop. `y = pl.assemble(y,
  ...)` / `y = pl.write(y, ...)` rebinding a name to its own buffer does not count as binding;
* every buffer the body writes that was not created by the same iteration (a parameter, or a
  tensor created before the loop) is accessed -- written and read -- only through windows that
  are disjoint between iterations: along one axis every access starts at ``c * i + inv`` (``i``
  the loop variable, ``inv`` loop-invariant and the same for every access) and extends at most
  ``|c * step|`` elements (a static bound from the type).

When in doubt the loop stays a plain sequential loop.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pldsl.dtypes import INDEX
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    Expr,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    MakeTuple,
    OpCall,
    Program,
    Return,
    Scope,
    Stmt,
    TupleGet,
    UnaryOp,
    Var,
    While,
    Yield,
    structural_equal,
    walk,
)
from pldsl.ir.symbolic import static_value
from pldsl.ir.traversal import (
    VIEW_OPS,
    assigned_names,
    iter_stmts,
    read_names,
    stmt_exprs,
    write_target,
)
from pldsl.ir.types import TensorType

# ------------------------------------------------------------------ helpers


def expr_uses(e: Any) -> set[str]:
    """Names of the variables an expression reads."""
    if e is None:
        return set()
    return {n.name for n in walk(e) if isinstance(n, Var)}


def stmt_targets(s: Any) -> list[str]:
    if isinstance(s, (Assign, Yield)):
        return [t.name for t in s.targets]
    return []


def is_self_inplace(s: Any) -> bool:
    """`y = pl.assemble(y, ...)` / `y = pl.write(y, ...)`: rebinds y to its own buffer."""
    if not isinstance(s, Assign) or len(s.targets) != 1 or not isinstance(s.value, OpCall):
        return False
    written = write_target(s.value)
    return isinstance(written, Var) and written.name == s.targets[0].name


# ------------------------------------------------------------------ liveness


class Liveness:
    """Backward liveness over a structured body (one implementation for checks, backends and
    the interpreter's fast path).

    `reads(expr)` names what an expression reads (default: its variables). `if` branches join;
    a loop body iterates to a fixed point (what the next iteration reads is live at the end of
    the body). Recorded: `live_after[id(s)]` for every assignment and loop `s` (the union over
    all passes), `body_in[id(loop)]` (live at the entry of an iteration).

    `kill_yields=True` (backends, the fast path): a yield kills its targets, a loop's exit kills
    the targets of its own yields, `break`/`continue` keep what is live after the loop / at its
    head. `kill_yields=False` (the default, for checks): yield targets are never killed and `break`/`continue`
    keep both, an over-approximation that keeps "unused" findings quiet when unsure.
    """

    def __init__(
        self,
        body: tuple[Stmt, ...],
        reads: Callable[[object], set[str]] | None = None,
        kill_yields: bool = False,
    ):
        self._reads_of = reads or read_names
        self.kill_yields = kill_yields
        self._cache: dict[int, frozenset[str]] = {}
        self._loops: list[tuple[frozenset[str], frozenset[str]]] = []  # (exit live, head live)
        self.live_after: dict[int, frozenset[str]] = {}
        self.body_in: dict[int, frozenset[str]] = {}
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

    def _block(self, stmts, live: frozenset[str]) -> frozenset[str]:
        for s in reversed(stmts):
            live = self._stmt(s, live)
        return live

    def _stmt(self, s: Stmt, live: frozenset[str]) -> frozenset[str]:
        if isinstance(s, Assign):
            self._after(s, live)
            return (live - {t.name for t in s.targets}) | self._reads(s)
        if isinstance(s, Return):
            return self._reads(s)
        if isinstance(s, Yield) and self.kill_yields:
            return (live - {t.name for t in s.targets}) | self._reads(s)
        if isinstance(s, (Yield, ExprStmt)):
            return live | self._reads(s)
        if isinstance(s, If):
            then_live = self._block(s.then_body, live)
            return then_live | self._block(s.else_body, live) | self._reads(s)
        if isinstance(s, Scope):
            if s.tid is not None:
                live = live - {s.tid.name}
            return self._block(s.body, live) | self._reads(s)
        if isinstance(s, (For, While)):
            return self._loop(s, live)
        if not self._loops:
            return live
        exit_live, head_live = self._loops[-1]
        if not self.kill_yields:
            return live | exit_live | head_live
        return exit_live if isinstance(s, Break) else head_live

    def _loop(self, s: For | While, live: frozenset[str]) -> frozenset[str]:
        if self.kill_yields and s.iter_args:
            live = live - {t.name for y in own_yields(s.body) for t in y.targets}
        self._after(s, live)
        header = {ia.name for ia in s.iter_args}
        cond: frozenset[str] = frozenset()
        if isinstance(s, For):
            header.add(s.var.name)
        else:  # a while's condition is read before every iteration
            cond = frozenset(read_names(s.cond))
        body_in: frozenset[str] = frozenset()
        for _ in range(50):
            # what the next iteration reads is live at the end of the body (the checks'
            # flavour keeps the header names too: an over-approximation)
            body_out = live | cond | (body_in - header if self.kill_yields else body_in)
            self._loops.append((live, body_out))
            new = self._block(s.body, body_out)
            self._loops.pop()
            if new <= body_in:
                break
            body_in = body_in | new
        self.body_in[id(s)] = body_in
        return live | (body_in - header) | self._reads(s)


# ------------------------------------------------------------------ definite assignment


def maybe_unassigned_uses(fn: Function) -> set[str]:
    """Names read somewhere they may not have been assigned yet (they need a runtime flag)."""
    flagged: set[str] = set()
    start = {p.name for p in fn.params} | {v.name for v in fn.dynamic_dims}

    def use(e, assigned: set[str]) -> None:
        for n in expr_uses(e):
            if n not in assigned:
                flagged.add(n)

    def block(stmts, assigned: set[str]) -> tuple[set[str], bool]:
        assigned = set(assigned)
        for s in stmts:
            if isinstance(s, Assign):
                use(s.value, assigned)
                assigned |= set(stmt_targets(s))
            elif isinstance(s, ExprStmt):
                use(s.expr, assigned)
            elif isinstance(s, Yield):
                for v in s.values:
                    use(v, assigned)
                assigned |= set(stmt_targets(s))
            elif isinstance(s, If):
                use(s.cond, assigned)
                a, ta = block(s.then_body, assigned)
                b, tb = block(s.else_body, assigned)
                if ta and tb:
                    return assigned | a | b, True
                assigned = b if ta else a if tb else (a & b)
            elif isinstance(s, Scope):
                for d in s.deps:
                    use(d, assigned)
                assigned, term = block(s.body, assigned)
                if term:
                    return assigned, True
                if s.tid is not None:
                    assigned.add(s.tid.name)
            elif isinstance(s, Return):
                for v in s.values:
                    use(v, assigned)
                return assigned, True
            elif isinstance(s, (Break, Continue)):
                return assigned, True
            elif isinstance(s, For):
                for e in (s.start, s.stop, s.step, *s.init_values):
                    use(e, assigned)
                inner = assigned | {s.var.name} | {v.name for v in s.iter_args}
                block(s.body, inner)
                if s.iter_args:
                    assigned |= {t.name for y in own_yields(s.body) for t in y.targets}
            elif isinstance(s, While):
                for e in s.init_values:
                    use(e, assigned)
                inner = assigned | {v.name for v in s.iter_args}
                use(s.cond, inner)
                block(s.body, inner)
                if s.iter_args:
                    assigned |= {t.name for y in own_yields(s.body) for t in y.targets}
        return assigned, False

    block(fn.body, start)
    return flagged


# ------------------------------------------------------------------ aliasing


@dataclass
class Alias:
    """Flow-insensitive alias facts of one function."""

    roots: dict[str, frozenset] = field(default_factory=dict)
    # name -> offsets (per axis, IR exprs in root coordinates) when known, else None
    offsets: dict[str, tuple | None] = field(default_factory=dict)


def _defs(fn: Function) -> dict[str, list[Any]]:
    """name -> the expressions bound to it (self in-place rebinds excluded; a tuple target
    gets ("tuple", call, index))."""
    out: dict[str, list[Any]] = {}
    for s in iter_stmts(fn.body):
        if isinstance(s, Assign):
            if is_self_inplace(s):
                continue
            if len(s.targets) == 1:
                out.setdefault(s.targets[0].name, []).append(s.value)
            else:
                for i, t in enumerate(s.targets):
                    out.setdefault(t.name, []).append(("tuple", s.value, i))
        elif isinstance(s, Yield):
            for t, v in zip(s.targets, s.values):
                out.setdefault(t.name, []).append(v)
        elif isinstance(s, (For, While)):
            for v, init in zip(s.iter_args, s.init_values):
                out.setdefault(v.name, []).append(init)
            for y in own_yields(s.body):
                for v, val in zip(s.iter_args, y.values):
                    out.setdefault(v.name, []).append(val)
    return out


def compute_alias(fn: Function) -> Alias:
    defs = _defs(fn)
    params = {p.name for p in fn.params}
    roots: dict[str, frozenset] = {p.name: frozenset({("param", p.name)}) for p in fn.params}

    def roots_of(e: Any) -> frozenset:
        if isinstance(e, tuple) and e and e[0] == "tuple":
            return roots_of(e[1])
        if isinstance(e, Var):
            return roots.get(e.name, frozenset())
        if isinstance(e, TupleGet):
            return roots_of(e.value)
        if isinstance(e, MakeTuple):  # every item's roots (a tuple target takes them all)
            return frozenset().union(*(roots_of(i) for i in e.items))
        if isinstance(e, OpCall):
            if e.op in VIEW_OPS:
                return roots_of(e.args[0])
            written = write_target(e)  # assemble / write return their target
            return roots_of(written) if written is not None else frozenset({("fresh", id(e))})
        if isinstance(e, Call):
            out = frozenset({("fresh", id(e))})
            for a in e.args:
                out |= roots_of(a)
            return out
        return frozenset()

    for _ in range(100):
        changed = False
        for name, values in defs.items():
            r = set(roots.get(name, frozenset()))
            for v in values:
                r |= roots_of(v)
            if frozenset(r) != roots.get(name, frozenset()):
                roots[name] = frozenset(r)
                changed = True
        if not changed:
            break

    offsets: dict[str, tuple | None] = {}

    def offset_of(name: str, depth: int = 0):
        if name in offsets:
            return offsets[name]
        if depth > 50:
            return None
        offsets[name] = None  # cycle guard
        values = defs.get(name, [])
        result = None
        if name in params and not values:
            result = ("zero",)
        elif values:
            results = []
            for v in values:
                results.append(_value_offset(v, depth))
            if all(r is not None for r in results):
                first = results[0]
                if all(_same_offsets(r, first) for r in results):
                    result = first
        offsets[name] = result
        return result

    def _value_offset(v: Any, depth: int):
        if isinstance(v, Var):
            return offset_of(v.name, depth + 1)
        if isinstance(v, OpCall):
            written = write_target(v)
            if written is not None:
                return offset_of(written.name, depth + 1) if isinstance(written, Var) else None
            if v.op == "slice":
                src = v.args[0]
                base = offset_of(src.name, depth + 1) if isinstance(src, Var) else None
                off = v.args[2]
                if base is None or not isinstance(off, ListExpr):
                    return None
                if base == ("zero",):
                    return tuple(off.items)
                return tuple(BinOp("add", a, b, b.type) for a, b in zip(base, off.items))
            if v.op == "reshape":
                return None
            return ("zero",)
        return None

    for name in list(defs) + list(params):
        offset_of(name)
    return Alias(roots, offsets)


def _same_offsets(a, b) -> bool:
    if a == ("zero",) or b == ("zero",):
        return a == b
    return structural_equal(a, b)


# ------------------------------------------------------------------ linear forms


class NotLinear(Exception):
    pass


def linear_form(e: Any, subst: dict[str, Any], depth: int = 0) -> dict:
    """An integer expression as {symbol: coefficient, "": constant}; symbols are variable
    names (after substituting `subst`). Raises NotLinear."""
    if depth > 40:
        raise NotLinear
    if isinstance(e, Const):
        if isinstance(e.value, bool) or not isinstance(e.value, int):
            raise NotLinear
        return {"": int(e.value)}
    if isinstance(e, Var):
        if e.name in subst:
            return linear_form(subst[e.name], subst, depth + 1)
        return {e.name: 1}
    if isinstance(e, BinOp):
        if e.op in ("add", "sub"):
            a = linear_form(e.lhs, subst, depth + 1)
            b = linear_form(e.rhs, subst, depth + 1)
            sign = 1 if e.op == "add" else -1
            out = dict(a)
            for k, v in b.items():
                out[k] = out.get(k, 0) + sign * v
            return {k: v for k, v in out.items() if v != 0 or k == ""}
        if e.op == "mul":
            a = linear_form(e.lhs, subst, depth + 1)
            b = linear_form(e.rhs, subst, depth + 1)
            if set(a) <= {""}:
                c = a.get("", 0)
                return {k: v * c for k, v in b.items()}
            if set(b) <= {""}:
                c = b.get("", 0)
                return {k: v * c for k, v in a.items()}
            raise NotLinear
        raise NotLinear
    if isinstance(e, UnaryOp) and e.op == "neg":
        return {k: -v for k, v in linear_form(e.operand, subst, depth + 1).items()}
    raise NotLinear


# ------------------------------------------------------------------ parallel loops


@dataclass
class ParallelPlan:
    parallel: bool
    reason: str = ""
    private: frozenset[str] = frozenset()
    cost: int = 0  # estimated elements of work per iteration


def _static_numel(t: Any, default: int = 64) -> int:
    if not isinstance(t, TensorType):
        return 1
    n = 1
    for d in t.shape:
        v = static_value(d)
        n *= v if v is not None else default
    return n


def work_estimate(stmts) -> int:
    """Rough cost of a block in nanoseconds (on the project's machine): per op a fixed
    ~60 ns, elementwise ~0.5 ns per element, exp/log ~8 ns, matmul ~32 FMA lanes per ns.
    Unknown trip counts count as 4, dynamic dims as 64."""
    total = 0
    for s in stmts:
        if isinstance(s, For):
            trips = None
            a, b, c = (static_value(x) if isinstance(x, Const) else None
                       for x in (s.start, s.stop, s.step))  # fmt: skip
            if a is not None and b is not None and c:
                trips = max(0, len(range(a, b, c)))
            total += (trips if trips is not None else 4) * work_estimate(s.body)
        elif isinstance(s, While):  # unknown trip count
            total += 4 * work_estimate(s.body)
        elif isinstance(s, If):
            total += max(work_estimate(s.then_body), work_estimate(s.else_body))
        elif isinstance(s, Scope):
            total += work_estimate(s.body)
        else:
            for n in walk(s):
                if isinstance(n, OpCall):
                    total += 60
                    if n.op in ("matmul", "matmul_acc"):
                        lhs = n.args[0] if n.op == "matmul" else n.args[1]
                        k = 64
                        lt = getattr(lhs, "type", None)
                        if isinstance(lt, TensorType) and lt.rank == 2:
                            k = static_value(lt.shape[0 if n.attr("a_trans") else 1]) or 64
                        total += _static_numel(n.type) * k // 32
                    elif n.op in ("exp", "log"):
                        total += _static_numel(n.type) * 8
                    elif n.op == "assemble":
                        total += _static_numel(getattr(n.args[1], "type", None)) // 2
                    elif n.op not in ("slice", "dim", "read", "write", "reshape"):
                        total += _static_numel(n.type) // 2
    return total


class ParallelAnalysis:
    def __init__(self, fn: Function):
        self.fn = fn
        self.live = Liveness(fn.body, kill_yields=True)
        self.alias = compute_alias(fn)
        self.plans: dict[int, ParallelPlan] = {}
        for s in iter_stmts(fn.body):
            if isinstance(s, For) and s.kind == "parallel":
                self.plans[id(s)] = self.plan(s)

    def plan(self, loop: For) -> ParallelPlan:
        try:
            private = self._check(loop)
        except _Reject as r:
            return ParallelPlan(False, str(r))
        return ParallelPlan(True, "", frozenset(private), max(1, work_estimate(loop.body)))

    def _check(self, loop: For) -> set[str]:
        if loop.iter_args:
            raise _Reject("loop carries")
        step = static_value(loop.step) if isinstance(loop.step, Const) else None
        if not step:
            raise _Reject("step is not a constant")
        if _has_own_jump(loop.body):
            raise _Reject("break/continue/return")
        if any(isinstance(s, While) for s in iter_stmts(loop.body)):
            raise _Reject("a while loop in the body")
        for s in iter_stmts(loop.body):
            for n in walk(s):
                if isinstance(n, Call):
                    raise _Reject("calls a program function")
        # ---- privatisation
        proper: set[str] = set()
        for s in iter_stmts(loop.body):
            if isinstance(s, (Assign, Yield)) and not is_self_inplace(s):
                proper.update(stmt_targets(s))
            if isinstance(s, For):
                proper.add(s.var.name)
                proper.update(v.name for v in s.iter_args)
        after = self.live.live_after.get(id(loop), frozenset())
        body_in = self.live.body_in.get(id(loop), frozenset())
        bad = (proper & after) | ((proper & body_in) - {loop.var.name})
        if bad:
            raise _Reject(f"variables carried across iterations: {sorted(bad)}")
        # ---- buffers: roots created by this iteration are private
        body_ops = {id(n) for s in iter_stmts(loop.body) for n in walk(s)
                    if isinstance(n, (OpCall, Call))}  # fmt: skip

        def shared_roots(name: str) -> frozenset:
            rs = self.alias.roots.get(name)
            if rs is None:
                return frozenset({("unknown", name)})
            return frozenset(r for r in rs if not (r[0] == "fresh" and r[1] in body_ops))

        assigned_in_body = assigned_names(loop.body)
        subst = self._scalar_defs(loop)
        accesses: list[tuple[frozenset, tuple | None, tuple | None, bool]] = []

        def record(var: Any, offs, extents, is_write: bool) -> None:
            if not isinstance(var, Var):
                raise _Reject("in-place write through an expression")
            roots = shared_roots(var.name)
            if not roots:
                return
            base = self.alias.offsets.get(var.name)
            if base is None or offs is None:
                accesses.append((roots, None, extents, is_write))
                return
            if base == ("zero",):
                full = tuple(offs)
            else:
                full = tuple(BinOp("add", a, b, b.type) for a, b in zip(base, offs))
            accesses.append((roots, full, extents, is_write))

        for s in iter_stmts(loop.body):
            handled: set[int] = set()
            for n in walk(s):
                if not isinstance(n, OpCall):
                    continue
                if n.op == "assemble":
                    src_t = n.args[1].type
                    ext = _static_extents(src_t)
                    record(n.args[0], n.args[2].items, ext, True)
                    handled.add(id(n.args[0]))
                elif n.op == "write":
                    x = n.args[0]
                    idx = n.args[1].items
                    if isinstance(x.type, TensorType) and len(idx) == x.type.rank:
                        record(x, idx, (1,) * len(idx), True)
                    else:
                        record(x, None, None, True)
                    handled.add(id(x))
                elif n.op == "slice":
                    record_read = n.args[0]
                    if isinstance(record_read, Var):
                        ext = _static_extents_list(n.args[1])
                        record(record_read, n.args[2].items, ext, False)
                        handled.add(id(record_read))
                elif n.op == "read":
                    x = n.args[0]
                    idx = n.args[1].items
                    if isinstance(x, Var):
                        if isinstance(x.type, TensorType) and len(idx) == x.type.rank:
                            record(x, idx, (1,) * len(idx), False)
                        else:
                            record(x, None, None, False)
                        handled.add(id(x))
            for n in walk(s):
                if isinstance(n, OpCall) and n.op not in ("dim",):
                    for a in n.args:
                        if (
                            isinstance(a, Var)
                            and isinstance(a.type, TensorType)
                            and id(a) not in handled
                        ):
                            if n.op == "reshape":
                                # the result is a view with unknown coordinates: any access to it
                                # counts as a whole read of the source
                                record(a, None, None, False)
                            else:
                                ext = _static_extents(a.type)
                                zero = tuple(Const(0, INDEX) for _ in range(a.type.rank))
                                record(a, zero, ext, False)
        written: set = set()
        for roots, _, _, is_write in accesses:
            if is_write:
                written |= roots
        for root in sorted(written, key=repr):  # a stable order: the first is reported
            if root[0] == "unknown":
                raise _Reject("write through a tensor of unknown origin")
            group = [a for a in accesses if root in a[0]]
            if not self._disjoint(loop, group, subst, assigned_in_body, step):
                raise _Reject(f"writes to {root[1] if root[0] == 'param' else 'a buffer'} "
                              "may overlap between iterations")  # fmt: skip
        return proper | {loop.var.name}

    def _scalar_defs(self, loop: For) -> dict[str, Any]:
        """Scalars bound exactly once in the body (substituted into offsets)."""
        count: dict[str, int] = {}
        value: dict[str, Any] = {}
        for s in iter_stmts(loop.body):
            for t in stmt_targets(s):
                count[t] = count.get(t, 0) + 1
                if isinstance(s, Assign) and len(s.targets) == 1:
                    value[t] = s.value
            if isinstance(s, For):
                count[s.var.name] = count.get(s.var.name, 0) + 2
        return {k: v for k, v in value.items() if count.get(k) == 1}

    def _disjoint(self, loop: For, group, subst, assigned, step: int) -> bool:
        rank = None
        for _, offs, _, _ in group:
            if offs is None:
                return False
            rank = len(offs)
        if rank is None:
            return True
        v = loop.var.name
        for d in range(rank):
            ok = True
            coef = None
            inv_ref = None
            for _, offs, ext, _ in group:
                try:
                    form = linear_form(offs[d], subst)
                except NotLinear:
                    ok = False
                    break
                c = form.pop(v, 0)
                if c == 0 or (coef is not None and c != coef):
                    ok = False
                    break
                if any(k and k in assigned for k in form):
                    ok = False
                    break
                if inv_ref is not None and form != inv_ref:
                    ok = False
                    break
                if ext is None or ext[d] is None or ext[d] > abs(c * step):
                    ok = False
                    break
                coef, inv_ref = c, form
            if ok:
                return True
        return False


class _Reject(Exception):
    pass


def _static_extents(t: Any) -> tuple | None:
    if not isinstance(t, TensorType):
        return None
    return tuple(static_value(d) for d in t.shape)


def _static_extents_list(lst: Any) -> tuple | None:
    if not isinstance(lst, ListExpr):
        return None
    return tuple(static_value(d) if isinstance(d, Const) else None for d in lst.items)


def _has_own_jump(stmts, depth: int = 0) -> bool:
    for s in stmts:
        if isinstance(s, Return):
            return True
        if isinstance(s, (Break, Continue)) and depth == 0:
            return True
        if isinstance(s, (For, While)):
            if _has_own_jump(s.body, depth + 1):
                return True
        elif isinstance(s, If):
            if _has_own_jump(s.then_body, depth) or _has_own_jump(s.else_body, depth):
                return True
        elif isinstance(s, Scope):
            if _has_own_jump(s.body, depth):
                return True
    return False


def own_yields(body: tuple[Stmt, ...]) -> Iterator[Yield]:
    """The yields of a loop body that feed that loop (not those of nested loops, nor the
    yields that end the branches of an SSA if: those bind the if's results)."""
    for s in body:
        if isinstance(s, Yield):
            yield s
        elif isinstance(s, Scope):
            yield from own_yields(s.body)
        elif isinstance(s, If):
            for b in (s.then_body, s.else_body):
                yield from own_yields(b[:-1] if if_result(b) is not None else b)


def if_result(branch: tuple[Stmt, ...]) -> Yield | None:
    """The yield that ends a branch of an `If` (PyPTO's SSA if-form), else None."""
    return branch[-1] if branch and isinstance(branch[-1], Yield) else None


# ------------------------------------------------------------------ buffer aliases


OUT_DIRECTIONS = ("Out", "InOut")


def callee(program: Program, call: Call) -> Function | None:
    for f in program.function_list:
        if f.name == call.func:
            return f
    return None


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
        if isinstance(e, MakeTuple):
            return [(self.expr_roots(i)[:1] or [set()])[0] for i in e.items]
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
        if isinstance(e, (Var, Call, TupleGet, MakeTuple)):
            return True
        if isinstance(e, OpCall):
            return write_target(e) is not None or (self.views and e.op in VIEW_OPS)
        return False

    def _solve(self) -> None:
        stmts = [
            s
            for s in iter_stmts(self.func.body)
            if isinstance(s, (Yield, For, While))
            or isinstance(s, Assign)
            and self._carries_roots(s.value)
        ]
        for _ in range(20):  # fixed point; chains are short
            changed = False
            for s in stmts:
                if isinstance(s, Assign):
                    roots = self.expr_roots(s.value)
                    if len(s.targets) == 1:
                        tuple_value = isinstance(s.value, (Call, MakeTuple)) and len(roots) > 1
                        changed |= self._bind(s.targets[0].name, roots, tuple_value)
                    else:
                        for i, t in enumerate(s.targets):
                            r = roots[i] if i < len(roots) else {self.UNKNOWN}
                            changed |= self._bind(t.name, [r], False)
                elif isinstance(s, Yield):
                    for t, v in zip(s.targets, s.values):
                        changed |= self._bind(t.name, self.expr_roots(v)[:1], False)
                elif isinstance(s, (For, While)):
                    # a carry takes its initial value and what the loop's own yields pass back
                    for ia, init in zip(s.iter_args, s.init_values):
                        changed |= self._bind(ia.name, self.expr_roots(init)[:1], False)
                    for ia, v in zip(s.iter_args, _loop_yields(s)):
                        if v is not None:
                            changed |= self._bind(ia.name, self.expr_roots(v)[:1], False)
            if not changed:
                break


def _loop_yields(loop: For | While) -> list[Expr | None]:
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


_WRITTEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def written_params(program: Program, func: Function, stack: tuple[str, ...] = ()) -> frozenset:
    """The tensor parameters whose caller buffer `func` may write: Out and InOut always; an In
    parameter when an in-place op (assemble, write) or a callee's written parameter reaches it
    through copies, carries and views. Host stubs and recursion: every tensor parameter."""
    per_program = _WRITTEN.setdefault(program, {})
    if func.name in per_program:
        return per_program[func.name]
    tensors = frozenset(p.name for p in func.params if isinstance(p.type, TensorType))
    if func.name in stack or func.is_host_stub or not func.body:
        return tensors
    names = {p.name for p in func.params if p.direction in OUT_DIRECTIONS} & tensors
    aliases = Aliases(program, func, stack, views=True)
    for s in iter_stmts(func.body):
        for e in stmt_exprs(s):
            for node in walk(e) if e is not None else ():
                for target in _written_args(program, node, stack + (func.name,)):
                    roots = aliases.expr_roots(target)[0] if target is not None else set()
                    if Aliases.UNKNOWN in roots:
                        per_program[func.name] = tensors
                        return tensors
                    names |= roots & tensors
    per_program[func.name] = frozenset(names)
    return per_program[func.name]


def _written_args(program: Program, node: Any, stack: tuple[str, ...]) -> list[Any]:
    if isinstance(node, OpCall):
        target = write_target(node)
        return [] if target is None else [target]
    if isinstance(node, Call):
        f = callee(program, node)
        if f is None:
            return list(node.args)
        w = written_params(program, f, stack)
        return [a for a, p in zip(node.args, f.params) if p.name in w]
    return []
