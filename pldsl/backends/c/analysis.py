"""Static analyses the C emitter needs: liveness, definite assignment, and which `pl.parallel`
loops are provably free of cross-iteration dependences (so they may become OpenMP loops).

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
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    OpCall,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
    structural_equal,
    walk,
)
from pldsl.ir.symbolic import static_value
from pldsl.ir.traversal import VIEW_OPS, assigned_names, iter_stmts, write_target
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


def own_yields(loop: For) -> list[Yield]:
    """The Yield statements belonging to `loop` (not to nested loops)."""
    out: list[Yield] = []
    stack = list(loop.body)
    while stack:
        n = stack.pop()
        if isinstance(n, Yield):
            out.append(n)
        elif isinstance(n, If):
            stack += [*n.then_body, *n.else_body]
        elif isinstance(n, Scope):
            stack += list(n.body)
    return out


# ------------------------------------------------------------------ liveness


class Liveness:
    """Backward liveness over the structured IR; records per loop the live set after the loop
    and at the entry of its body."""

    def __init__(self, fn: Function):
        self.after: dict[int, frozenset[str]] = {}
        self.body_in: dict[int, frozenset[str]] = {}
        self._loops: list[tuple[frozenset[str], frozenset[str]]] = []  # (exit, continue)
        self.block(fn.body, frozenset())

    def block(self, stmts, live: frozenset[str]) -> frozenset[str]:
        for s in reversed(stmts):
            live = self.stmt(s, live)
        return live

    def stmt(self, s, live: frozenset[str]) -> frozenset[str]:
        if isinstance(s, Assign):
            return (live - set(stmt_targets(s))) | expr_uses(s.value)
        if isinstance(s, ExprStmt):
            return live | expr_uses(s.expr)
        if isinstance(s, Yield):
            uses: set[str] = set()
            for v in s.values:
                uses |= expr_uses(v)
            return (live - set(stmt_targets(s))) | uses
        if isinstance(s, If):
            return expr_uses(s.cond) | self.block(s.then_body, live) | self.block(s.else_body, live)
        if isinstance(s, Scope):
            return self.block(s.body, live)
        if isinstance(s, Return):
            uses = set()
            for v in s.values:
                uses |= expr_uses(v)
            return frozenset(uses)
        if isinstance(s, Break):
            return self._loops[-1][0] if self._loops else live
        if isinstance(s, Continue):
            return self._loops[-1][1] if self._loops else live
        if isinstance(s, For):
            return self.loop(s, live)
        return live

    def loop(self, s: For, live: frozenset[str]) -> frozenset[str]:
        targets = {t.name for y in own_yields(s) for t in y.targets} if s.iter_args else set()
        exit_live = frozenset(live - targets)
        defined_at_head = {s.var.name} | {v.name for v in s.iter_args}
        body_in: frozenset[str] = frozenset()
        for _ in range(50):
            body_out = exit_live | (body_in - defined_at_head)
            self._loops.append((exit_live, frozenset(body_out)))
            new = self.block(s.body, frozenset(body_out))
            self._loops.pop()
            if new == body_in:
                break
            body_in = new
        self.after[id(s)] = exit_live
        self.body_in[id(s)] = body_in
        uses: set[str] = set()
        for e in (s.start, s.stop, s.step, *s.init_values):
            uses |= expr_uses(e)
        return frozenset(uses) | (body_in - defined_at_head) | exit_live


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
                assigned, term = block(s.body, assigned)
                if term:
                    return assigned, True
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
                    assigned |= {t.name for y in own_yields(s) for t in y.targets}
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
        elif isinstance(s, For):
            for v, init in zip(s.iter_args, s.init_values):
                out.setdefault(v.name, []).append(init)
            for y in own_yields(s):
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
        self.live = Liveness(fn)
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
        after = self.live.after.get(id(loop), frozenset())
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
        if isinstance(s, For):
            if _has_own_jump(s.body, depth + 1):
                return True
        elif isinstance(s, If):
            if _has_own_jump(s.then_body, depth) or _has_own_jump(s.else_body, depth):
                return True
        elif isinstance(s, Scope):
            if _has_own_jump(s.body, depth):
                return True
    return False
