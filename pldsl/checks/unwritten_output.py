"""UnwrittenOutput (warning): part of an `Out` parameter that no path writes.

An `Out` buffer arrives undefined; whatever the kernel does not write reaches the caller as
garbage (or as zeros in a zero-filling simulator, which hides the bug). The seed Qwen3 decode
had exactly this: its fused tail looped `for b0 in pl.range(0, 16, 16)` and wrote logits for
the first 16 rows only, while the batch is dynamic.

Technique: a *structure-only run*. Each function with `Out` parameters is executed for sample
values of its dynamic dims (1, 15, 16, 17, 33) and small values of its scalar parameters,
without any tensor data: control flow and index arithmetic run for real (scalar expressions
with PyPTO's integer semantics, `pl.tensor.dim` from the types), and every write into an
`Out` buffer records the box it covers: `pl.assemble` the source's valid region (its
`valid_shape` evaluated), `pl.write` one element. Calls to `self.f(...)` are followed with
their arguments bound (buffers by identity, dims from the argument shapes). Afterwards the
union of boxes is compared with the whole buffer.

Never guessed: a write whose offsets depend on tensor data (a `pl.read` result), a loop or
`if` over such data that may write the output, an `if` over a scalar parameter (its value is
the run's invention: `if (start_pos + 1) % 4 == 0` writes or not as the caller decides), or a write through a reshaped view makes that
output "unknown" and it is not reported. Loops and statements that cannot affect an output
are skipped; the run stops after 200k loop iterations in all and then reports nothing.
An external kernel (`pl.jit.extern`) is hand-written device code: its own `Out` parameters are
not reported, and the buffers a call to it receives become "unknown".
A gap found with small scalar parameters is confirmed with the scalars set to the dims'
sample value before it is reported. The message names the output, the sample dims and the
first unwritten region.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left

import numpy as np

from pldsl.diagnostics import Diagnostic
from pldsl.ir.analysis import if_result, own_yields
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
)
from pldsl.ir.symbolic import Unbound, apply_scalar_binop, evaluate
from pldsl.ir.traversal import (
    VIEW_OPS,
    assigned_names,
    iter_expr,
    iter_stmts,
    read_names,
    read_names_with_types,
    stmt_exprs,
    write_target,
)
from pldsl.ir.types import ScalarType, TensorType

from .common import WRAPPER_TYPES, Aliases, Liveness, access_window, callee, dim_extent

RULE = "UnwrittenOutput"
SEVERITY = "warning"
DOC = "an Out parameter (or a region of it) that no path writes, for some sample dynamic dims"

DIM_SAMPLES = (1, 15, 16, 17, 33)
SMALL_SCALAR = 2


class _Sampled(int):
    """An integer the run derived from a sampled scalar parameter (not a dynamic dim): an
    `if` over it picks a branch for an invented value, so the run treats it as data."""


def _keep_sample(result: object, *operands: object) -> object:
    if isinstance(result, (int, bool)) and any(isinstance(o, _Sampled) for o in operands):
        return _Sampled(int(result))
    return result


MAX_ITERATIONS = 200_000
MAX_DEPTH = 32
MAX_BOXES = 200_000
MAX_CELLS = 4_000_000


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNK = _Unknown()


class _Capped(Exception):
    pass


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Buf:
    """A view into an Out buffer: root parameter name, offsets and extents in the root."""

    __slots__ = ("root", "offset", "shape")

    def __init__(self, root: str, offset: tuple[int, ...], shape: tuple[int, ...]):
        self.root, self.offset, self.shape = root, offset, shape


class Taint:
    """A value derived from an Out buffer in a way the run does not model (e.g. reshape)."""

    __slots__ = ("root",)

    def __init__(self, root: str):
        self.root = root


# ------------------------------------------------------------------ static facts per function


class _FuncInfo:
    """What the run may skip in one function: loops and statements that cannot matter.

    Which buffers matter depends on the call: the parameters bound to an Out buffer (or to
    something unknown) are the *live roots*; a plan is computed per set of live roots.
    """

    def __init__(self, program: Program, func: Function):
        self.func = func
        self.aliases = Aliases(program, func, views=True)
        self.live_out = Liveness(func.body, read_names_with_types).live_after
        self._plans: dict[frozenset[str], _Plan] = {}

    def plan(self, live: frozenset[str]) -> _Plan:
        got = self._plans.get(live)
        if got is None:
            got = self._plans[live] = _Plan(self, live | {Aliases.UNKNOWN})
        return got


class _Plan:
    def __init__(self, info: _FuncInfo, live: frozenset[str]):
        self.info, self.live = info, live
        self._rooted: dict[str, bool] = {}
        self._writes: dict[int, bool] = {}
        self.relevant: dict[int, bool] = {}
        for s in iter_stmts(info.func.body):
            if isinstance(s, For):
                self.relevant[id(s)] = self._loop_relevant(s, info.live_out.get(id(s), frozenset()))
        self.needed: set[int] = set()
        self._mark(info.func.body)

    def rooted(self, name: str) -> bool:
        hit = self._rooted.get(name)
        if hit is None:
            hit = self._rooted[name] = bool(self.info.aliases.roots(name) & self.live)
        return hit

    def _writes_live(self, e: object) -> bool:
        """A call, or a write into a buffer that may alias a live root."""
        key = id(e)
        hit = self._writes.get(key)
        if hit is None:
            hit = False
            for node in iter_expr(e):
                if isinstance(node, Call):
                    hit = True
                    break
                if isinstance(node, OpCall):
                    t = write_target(node)
                    if t is not None and self.info.aliases.expr_roots(t)[0] & self.live:
                        hit = True
                        break
            self._writes[key] = hit
        return hit

    def _mark(self, body: tuple[Stmt, ...]) -> bool:
        """Mark the statements the run must execute; True when any in `body` is."""
        any_needed = False
        for s in body:
            if isinstance(s, (For, While)):
                inner = self._mark(s.body)
                need = inner and self.relevant.get(id(s), True)
            elif isinstance(s, If):
                a, b = self._mark(s.then_body), self._mark(s.else_body)
                need = a or b
            elif isinstance(s, Scope):
                need = self._mark(s.body)
            elif isinstance(s, Assign):
                need = any(
                    not isinstance(t.type, TensorType) or self.rooted(t.name) for t in s.targets
                ) or self._writes_live(s.value)
            elif isinstance(s, ExprStmt):
                need = self._writes_live(s.expr)
            else:  # Yield, Return, Break, Continue
                need = True
            if need:
                self.needed.add(id(s))
                any_needed = True
        return any_needed

    def _loop_relevant(self, loop: For, live_out: frozenset[str]) -> bool:
        """A loop matters when it may write a live buffer, calls a function, or leaves a
        value (a scalar or a live buffer alias) that is read after it."""
        for s in iter_stmts(loop.body):
            if isinstance(s, Return):
                return True
            for e in stmt_exprs(s):
                if self._writes_live(e):
                    return True
            targets: list[Var] = []
            if isinstance(s, (Assign, Yield)):
                targets = list(s.targets)
            elif isinstance(s, (For, While)):
                targets = list(s.iter_args)
            for t in targets:
                if t.name in live_out and (
                    not isinstance(t.type, TensorType) or self.rooted(t.name)
                ):
                    return True
        return any(ia.name in live_out for ia in loop.iter_args)


def _needs_eval(e: object, cache: dict[int, bool]) -> bool:
    """Whether evaluating a tensor expression can have an effect (a call or a write inside)."""
    key = id(e)
    hit = cache.get(key)
    if hit is None:
        hit = any(
            isinstance(n, Call) or (isinstance(n, OpCall) and write_target(n) is not None)
            for n in iter_expr(e)
        )
        cache[key] = hit
    return hit


# ------------------------------------------------------------------ the run

_INFOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EFFECTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _value_key(v: object):
    if isinstance(v, Buf):
        return ("B", v.root, v.offset, v.shape)
    if isinstance(v, Taint):
        return ("T", v.root)
    if v is UNK:
        return ("U",)
    if isinstance(v, tuple):
        return ("t",) + tuple(_value_key(x) for x in v)
    if v is None or isinstance(v, (int, float, bool)):
        return (type(v).__name__, v)
    raise TypeError


def _memo_key(name: str, env: dict[str, object]) -> tuple | None:
    try:
        return (name,) + tuple(sorted((k, _value_key(v)) for k, v in env.items()))
    except TypeError:
        return None


class _Run:
    def __init__(self, program: Program, roots: dict[str, tuple[int, ...]]):
        self.program = program
        self.roots = roots
        self.boxes: dict[str, set[tuple[tuple[int, int], ...]]] = {r: set() for r in roots}
        self.unknown: set[str] = set()
        self.iterations = 0
        self.infos: dict[str, _FuncInfo] = _INFOS.setdefault(program, {})
        self.effect_cache: dict[int, bool] = _EFFECTS.setdefault(program, {})
        self.memo: dict[tuple, object] = {}
        self.depth = 0

    def info(self, func: Function) -> _FuncInfo:
        got = self.infos.get(func.name)
        if got is None:
            got = self.infos[func.name] = _FuncInfo(self.program, func)
        return got

    # -------------------------------------------------------------- functions
    def call_function(self, func: Function, env: dict[str, object]):
        # a host stub or an external kernel (`pl.jit.extern`) has no body to follow: what it
        # writes is unknown
        if func.is_host_stub or func.external or self.depth >= MAX_DEPTH:
            for v in env.values():
                self.taint(v)
            return UNK
        key = _memo_key(func.name, env)
        if key is not None and key in self.memo:
            return self.memo[key]  # same arguments: its writes are already recorded
        frame = _Frame(self, func, env)
        self.depth += 1
        result = None
        try:
            frame.body(func.body)
        except _Return as r:
            result = r.value
        finally:
            self.depth -= 1
        if key is not None:
            self.memo[key] = result
        return result

    def taint(self, v: object) -> None:
        if isinstance(v, (Buf, Taint)):
            self.unknown.add(v.root)
        elif isinstance(v, tuple):
            for x in v:
                self.taint(x)

    def record(self, buf: Buf, lo: tuple[int, ...], ext: tuple[int, ...]) -> None:
        """A write of `ext` elements at `lo` (relative to the view) into the view's root."""
        root_shape = self.roots.get(buf.root)
        if root_shape is None:
            return
        box = []
        for k, (o, e) in enumerate(zip(lo, ext)):
            a = max(o, 0)
            b = min(o + e, buf.shape[k])
            if b <= a:
                return
            a += buf.offset[k]
            b += buf.offset[k]
            a, b = max(a, 0), min(b, root_shape[k])
            if b <= a:
                return
            box.append((a, b))
        boxes = self.boxes[buf.root]
        boxes.add(tuple(box))
        if len(boxes) > MAX_BOXES:
            self.unknown.add(buf.root)


class _Frame:
    def __init__(self, run: _Run, func: Function, env: dict[str, object]):
        self.run, self.func, self.env = run, func, env
        self.info = run.info(func)
        live = frozenset(
            p.name
            for p in func.params
            if isinstance(env.get(p.name, UNK), (Buf, Taint, _Unknown, tuple))
        )
        self.plan = self.info.plan(live)
        self.entry = dict(env)
        self.yields: list[list[object] | None] = []

    # -------------------------------------------------------------- scalars
    def scalar(self, e: object) -> object:
        if isinstance(e, bool):
            return e
        if isinstance(e, int):
            return e
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Var):
            return self.env.get(e.name, UNK)
        if isinstance(e, BinOp):
            a = self.scalar(e.lhs)
            if a is UNK:
                return UNK
            b = self.scalar(e.rhs)
            if b is UNK or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
                return UNK
            try:
                return _keep_sample(apply_scalar_binop(e.op, a, b, e.type), a, b)
            except (ZeroDivisionError, ValueError, OverflowError):
                return UNK
        if isinstance(e, UnaryOp):
            v = self.scalar(e.operand)
            if v is UNK:
                return UNK
            return _keep_sample((not v) if e.op == "not" else -v, v)
        return self.value(e)

    def dims(self, dims) -> tuple | None:
        out = []
        for d in dims:
            v = self.scalar(d)
            if v is UNK or not isinstance(v, int):
                return None
            out.append(int(v))
        return tuple(out)

    # -------------------------------------------------------------- values
    def value(self, e: object) -> object:
        if e is None:
            return None
        if isinstance(e, (Const, BinOp, UnaryOp, int)):
            return self.scalar(e)
        if isinstance(e, Var):
            v = self.env.get(e.name, UNK)
            if v is UNK and isinstance(e.type, TensorType) and not self.plan.rooted(e.name):
                return None  # a local buffer: never an output
            return v
        if isinstance(e, ListExpr):
            return [self.scalar(i) for i in e.items]
        if isinstance(e, TupleGet):
            v = self.value(e.value)
            return v[e.index] if isinstance(v, tuple) and e.index < len(v) else UNK
        if isinstance(e, MakeTuple):
            return tuple(self.value(i) for i in e.items)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, OpCall):
            return self.op(e)
        return UNK

    def call(self, e: Call) -> object:
        f = callee(self.run.program, e)
        args = [self.value(a) for a in e.args]
        if f is None:  # (an external kernel is handled in call_function)
            for a in args:
                self.run.taint(a)
            return UNK
        env: dict[str, object] = {}
        for p, a, arg in zip(f.params, args, e.args):
            env[p.name] = a
            pt, at = p.type, getattr(arg, "type", None)
            if isinstance(pt, TensorType) and isinstance(at, TensorType):
                for pd, ad in zip(pt.shape, at.shape):
                    if isinstance(pd, Var) and pd.name not in env:
                        v = self.scalar(ad)
                        if isinstance(v, int):
                            env[pd.name] = v
        return self.run.call_function(f, env)

    def op(self, e: OpCall) -> object:
        name = e.op
        result_t = e.type
        if name == "dim":
            return self.scalar(dim_extent(e))
        if name == "read":
            return UNK  # tensor data
        if name == "cast" and isinstance(result_t, ScalarType):
            v = self.scalar(e.args[0])
            if v is UNK:
                return UNK
            return float(v) if result_t.dtype.is_float else _keep_sample(int(v), v)
        target = write_target(e)
        if target is not None:
            return self.write(e, target)
        if name == "slice":
            return self.slice(e)
        if name == "reshape":
            x = self.value(e.args[0])
            return Taint(x.root) if isinstance(x, (Buf, Taint)) else None
        if isinstance(result_t, ScalarType):
            return UNK
        if _needs_eval(e, self.run.effect_cache):
            for a in e.args:
                self.value(a)
        return None

    def slice(self, e: OpCall) -> object:
        x = self.value(e.args[0])
        if isinstance(x, Taint):
            return x
        if not isinstance(x, Buf):
            return None
        off = self.dims(access_window(e).offsets)
        shape = self.dims(e.type.shape)
        if off is None or shape is None:
            return Taint(x.root)
        return Buf(x.root, tuple(a + b for a, b in zip(x.offset, off)), shape)

    def write(self, e: OpCall, target_expr: object) -> object:
        target = self.value(target_expr)
        for a in e.args:
            if a is not target_expr and _needs_eval(a, self.run.effect_cache):
                self.value(a)
        if isinstance(target, Taint):
            self.run.unknown.add(target.root)
            return target
        if target is UNK:
            self.taint_name(target_expr)
            return UNK
        if not isinstance(target, Buf):
            return target
        w = access_window(e)
        if w is None:  # an op writing a region the run does not model (pld.tensor.get ...)
            self.run.unknown.add(target.root)
            return target
        lo = self.dims(w.offsets)
        if w.extents is None:
            if lo is None:
                self.run.unknown.add(target.root)
            elif len(lo) == len(target.shape):
                self.run.record(target, lo, (1,) * len(lo))
            elif len(lo) == 1:
                try:
                    idx = np.unravel_index(lo[0], target.shape)
                except ValueError:
                    return target
                self.run.record(target, tuple(int(i) for i in idx), (1,) * len(target.shape))
            return target
        ext = self.dims(w.extents)
        if lo is None or ext is None or len(lo) != len(target.shape):
            self.run.unknown.add(target.root)
            return target
        self.run.record(target, lo, ext)
        return target

    def taint_arg(self, a: object) -> None:
        """A call argument in a skipped region: the callee may write any buffer it names,
        also through a view (`outputs[r]`: a host loop over `pld.world_size()` launching a
        per-rank kernel on each row)."""
        if isinstance(a, Var):
            named = [a]
        else:
            named = [
                n for n in iter_expr(a) if isinstance(n, Var) and isinstance(n.type, TensorType)
            ]
        for x in named:
            v = self.value(x)
            self.run.taint(v)
            if v is UNK:
                self.taint_name(x)

    def taint_name(self, e: object) -> None:
        """An unknown value is written: every Out root it may alias becomes unknown."""
        if isinstance(e, Var):
            roots = self.info.aliases.roots(e.name)
            if Aliases.UNKNOWN in roots:
                for v in self.entry.values():
                    self.run.taint(v)
            for r in roots:
                self.run.taint(self.entry.get(r))

    # -------------------------------------------------------------- statements
    def body(self, stmts: tuple[Stmt, ...]) -> None:
        needed = self.plan.needed
        for s in stmts:
            if id(s) in needed:
                self.stmt(s)

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Assign):
            value = s.value
            if (
                len(s.targets) == 1
                and isinstance(s.targets[0].type, TensorType)
                and isinstance(value, OpCall)
                and write_target(value) is None
                and value.op not in VIEW_OPS
                and not _needs_eval(value, self.run.effect_cache)
            ):
                self.env[s.targets[0].name] = None  # a fresh tensor nobody tracks
                return
            v = self.value(value)
            if len(s.targets) == 1:
                self.env[s.targets[0].name] = v
            else:
                items = v if isinstance(v, tuple) else (UNK,) * len(s.targets)
                for t, x in zip(s.targets, items):
                    self.env[t.name] = x
        elif isinstance(s, ExprStmt):
            if isinstance(s.expr, (Call, OpCall)) and (
                isinstance(s.expr, Call) or _needs_eval(s.expr, self.run.effect_cache)
            ):
                self.value(s.expr)
        elif isinstance(s, Yield):
            values = [self.value(v) for v in s.values]
            if self.yields:
                self.yields[-1] = values
            for t, v in zip(s.targets, values):
                self.env[t.name] = v
        elif isinstance(s, Return):
            values = tuple(self.value(v) for v in s.values)
            raise _Return(values[0] if len(values) == 1 else values)
        elif isinstance(s, If):
            c = self.scalar(s.cond)
            if c is UNK or isinstance(c, _Sampled):
                self.skip(s.then_body + s.else_body)
                for y in filter(None, (if_result(s.then_body), if_result(s.else_body))):
                    for t in y.targets:
                        self.env[t.name] = UNK
            else:
                self.branch(s.then_body if c else s.else_body)
        elif isinstance(s, For):
            self.loop(s)
        elif isinstance(s, While):  # trip count unknown to this simulation
            self.skip(s.body)
            for y in own_yields(s.body):
                for t in y.targets:
                    self.env[t.name] = UNK
        elif isinstance(s, Scope):
            self.body(s.body)
        elif isinstance(s, Break):
            raise _Break()
        elif isinstance(s, Continue):
            raise _Continue()

    def branch(self, body: tuple[Stmt, ...]) -> None:
        """A branch of an If; one ending in a yield (SSA if-form) binds the if's results."""
        phi = if_result(body)
        if phi is None:
            self.body(body)
            return
        self.body(body[:-1])
        for t, v in zip(phi.targets, [self.value(v) for v in phi.values]):
            self.env[t.name] = v

    def loop(self, s: For) -> None:
        if not self.plan.relevant.get(id(s), True):
            return
        start, stop, step = self.scalar(s.start), self.scalar(s.stop), self.scalar(s.step)
        inits = [self.value(v) for v in s.init_values]
        if not all(isinstance(v, int) for v in (start, stop, step)) or step == 0:
            self.skip(s.body, s)
            return
        for ia, v in zip(s.iter_args, inits):
            self.env[ia.name] = v
        self.yields.append(None)
        run = self.run
        iterations = range(start, stop, step)
        if not iterations and s.iter_args:
            for st in own_yields(s.body):
                for t, v in zip(st.targets, inits):
                    self.env[t.name] = v
        try:
            for i in iterations:
                run.iterations += 1
                if run.iterations > MAX_ITERATIONS:
                    raise _Capped()
                self.env[s.var.name] = i
                try:
                    self.body(s.body)
                except _Continue:
                    pass
                except _Break:
                    break
                carried = self.yields[-1]
                if carried is not None:
                    for ia, v in zip(s.iter_args, carried):
                        self.env[ia.name] = v
        finally:
            self.yields.pop()

    def skip(self, body: tuple[Stmt, ...], loop: For | None = None) -> None:
        """A region whose execution depends on tensor data: what it may write is unknown."""
        for st in iter_stmts(body):
            for e in stmt_exprs(st):
                for node in iter_expr(e):
                    if isinstance(node, OpCall):
                        t = write_target(node)
                        if t is not None:
                            v = self.value(t) if isinstance(t, Var) else UNK
                            if isinstance(v, (Buf, Taint)):
                                self.run.unknown.add(v.root)
                            else:
                                self.taint_name(t)
                    elif isinstance(node, Call):
                        for a in node.args:
                            self.taint_arg(a)
        names = assigned_names(body)
        if loop is not None:
            names.update(ia.name for ia in loop.iter_args)
        for n in names:
            self.env[n] = UNK


# ------------------------------------------------------------------ coverage


def first_gap(shape: tuple[int, ...], boxes: set) -> tuple[tuple[int, int], ...] | None | str:
    """The first unwritten region (a box) of a buffer, None when covered, "?" when too big."""
    if any(d <= 0 for d in shape):
        return None
    if not boxes:
        return tuple((0, d) for d in shape)
    cuts = []
    for k, d in enumerate(shape):
        pts = {0, d}
        for b in boxes:
            pts.add(b[k][0])
            pts.add(b[k][1])
        cuts.append(sorted(p for p in pts if 0 <= p <= d))
    cells = 1
    for c in cuts:
        cells *= max(1, len(c) - 1)
    if cells > MAX_CELLS:
        return "?"
    grid = np.zeros(tuple(len(c) - 1 for c in cuts), dtype=bool)
    for b in boxes:
        grid[
            tuple(slice(bisect_left(c, lo), bisect_left(c, hi)) for c, (lo, hi) in zip(cuts, b))
        ] = True
    if grid.all():
        return None
    flat = int(np.argmin(grid.reshape(-1)))
    start = list(np.unravel_index(flat, grid.shape))
    end = [i + 1 for i in start]
    for k in reversed(range(grid.ndim)):  # grow the region: last axis first
        while end[k] < grid.shape[k]:
            sl = [slice(a, b) for a, b in zip(start, end)]
            sl[k] = slice(end[k], end[k] + 1)
            if grid[tuple(sl)].any():
                break
            end[k] += 1
    return tuple((cuts[k][start[k]], cuts[k][end[k]]) for k in range(grid.ndim))


def _scalar_sample(p, dims: dict[str, int], value: int) -> object:
    t = p.type
    if p.name in dims:
        return dims[p.name]
    if t.dtype.is_bool:
        return _Sampled(1)  # True
    if t.dtype.is_float:
        return 1.0
    return _Sampled(value)


def _static_shape(t: TensorType, env: dict[str, object]) -> tuple[int, ...] | None:
    """A parameter's shape for the sample dims (None when it depends on anything else)."""
    out = []
    for d in t.shape:
        try:
            v = evaluate(d, env)
        except (Unbound, ZeroDivisionError):
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            return None
        out.append(v)
    return tuple(out)


def _analyse(program: Program, func: Function, dims: dict[str, int], scalar: int):
    """One run; returns {output: gap box} for the Out params found incomplete, or None."""
    outs: dict[str, tuple[int, ...]] = {}
    env: dict[str, object] = dict(dims)
    for p in func.params:
        if isinstance(p.type, ScalarType):
            env[p.name] = _scalar_sample(p, dims, scalar)
    run = _Run(program, outs)
    for p in func.params:
        if isinstance(p.type, TensorType):
            shape = _static_shape(p.type, env)
            if p.direction == "Out" and shape is not None:
                outs[p.name] = shape
                run.boxes[p.name] = set()
                env[p.name] = Buf(p.name, (0,) * len(shape), shape)
            else:
                env[p.name] = None
    if not outs:
        return {}, 0
    try:
        run.call_function(func, env)
    except (
        _Capped,
        RecursionError,
        _Break,
        _Continue,
        TypeError,
        ValueError,
        IndexError,
        ZeroDivisionError,
    ):  # over budget, or a program the run cannot follow
        return None, run.iterations
    gaps = {}
    for name, shape in outs.items():
        if name in run.unknown:
            continue
        gap = first_gap(shape, run.boxes[name])
        if gap is not None and gap != "?":
            gaps[name] = (gap, shape)
    return gaps, run.iterations


def _fmt_region(name: str, gap) -> str:
    return f"{name}[{', '.join(f'{a}:{b}' for a, b in gap)}]"


def check_function(program: Program, func: Function) -> list[Diagnostic]:
    if func.is_host_stub or func.external or func.func_type in WRAPPER_TYPES:
        return []  # an external kernel's body is C++: its writes are not in the IR
    params = [p for p in func.params if p.direction == "Out" and isinstance(p.type, TensorType)]
    if not params:
        return []
    dyn = [d.name for d in func.dynamic_dims]
    samples = DIM_SAMPLES if dyn else (None,)
    has_int_scalars = any(
        isinstance(p.type, ScalarType) and p.type.dtype.is_int and p.name not in dyn
        for p in func.params
    )
    found: dict[str, list[tuple[object, object, tuple]]] = {}
    budget = 0
    for sample in samples:
        dims = {d: sample for d in dyn} if sample is not None else {}
        gaps, used = _analyse(program, func, dims, SMALL_SCALAR)
        budget += used
        if gaps is None or budget > MAX_ITERATIONS:
            return []  # capped or not analysable: report nothing
        if gaps and has_int_scalars and sample is not None and sample != SMALL_SCALAR:
            confirm, used = _analyse(program, func, dims, sample)
            budget += used
            if confirm is None:
                return []
            gaps = {k: v for k, v in gaps.items() if k in confirm}
        for name, (gap, shape) in gaps.items():
            found.setdefault(name, []).append((sample, gap, shape))
    return [_finding(func, p, found[p.name], dyn, len(samples)) for p in params if p.name in found]


def _whole(gap, shape) -> bool:
    return all(a == 0 and b == d for (a, b), d in zip(gap, shape))


def _finding(func: Function, p, hits: list, dyn: list[str], runs: int) -> Diagnostic:
    """The warning for Out parameter `p`; `hits`: (sample, gap, shape) of each run with a gap."""
    sample, gap, shape = hits[0]
    names = {n for d in p.type.shape if not isinstance(d, int) for n in read_names(d)}
    own = [d for d in dyn if d in names]  # the dims the output's own shape depends on
    static = not own and len(hits) == runs and all(h[1] == gap for h in hits)
    shown = own or dyn

    def label(value) -> str:
        return ", ".join(f"{d}={value}" for d in shown)

    whole = _whole(gap, shape)
    what = (
        "is never written"
        if whole
        else f"is not fully written: no path writes {_fmt_region(p.name, gap)}"
    )
    never = len(hits) == runs and all(_whole(g, s) for _, g, s in hits)  # whatever the dims
    when = also = ""
    if sample is not None and not static and not never:
        when = f" when {label(sample)}"
        if len(hits) > 1:
            also = f" (also incomplete for {'; '.join(label(h[0]) for h in hits[1:])})"
    notes: tuple[str, ...] = ()
    if when and len(dyn) > len(shown):
        notes = (
            f"every dynamic dim of '{func.name}' ({', '.join(dyn)}) takes the sample "
            "value in a run",
        )
    return Diagnostic(
        RULE,
        SEVERITY,
        f"Out parameter '{p.name}' of '{func.name}' {what}{when}{also}; the caller "
        "reads undefined data there",
        p.var.span,
        "cover every row of the output: loop over the padded extent "
        "(e.g. `pl.parallel(0, batch_padded, 16)`) and trim edge tiles with "
        "valid_shape=[pl.min(16, n - b0), ...]",
        notes,
    )


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        out.extend(check_function(program, func))
    return out
