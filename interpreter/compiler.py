"""The interpreter's fast path: each function's IR compiled once into Python closures.

`FastMachine` runs the same program as `Machine`, with the same semantics and the same faults,
but without walking the IR at run time: every statement and expression becomes a closure the
first time its function runs, with what can be decided from the IR decided then (constants
rounded, constant lists built, the op's kernel bound with its static attributes, INDEX
arithmetic specialised to Python ints, the loop's own yields found). Ops run one tile at a time
through `interpreter.ops.KERNELS`, except in two proven shapes: `matmul_acc` K-loops over
adjacent windows (interpreter/kloop.py) and loops whose iterations the IR proves independent,
run over all iterations at once (interpreter/batched.py; each falls back to the per-tile
closures at run time when it cannot run exactly). docs/numerics.md ("the fast path") says which
results stay bit-exact. Strict mode and traces never batch; bounds checks run on every path.

`fast=False` on `interpreter.run` keeps the plain tree-walking `Machine` for differential tests.
"""

from __future__ import annotations

import operator
import threading
import weakref
from collections.abc import Callable
from typing import Any

from pldsl.interpreter import tasks
from pldsl.interpreter.batched import _CAUGHT, BatchedLoop, Fallback, _count, batchable, in_order
from pldsl.interpreter.kloop import k_loop_shape, run_k_loop
from pldsl.interpreter.machine import (
    DEFERRED_OPS,
    PER_OP,
    DeferredCall,
    Frame,
    Machine,
    _Break,
    _Continue,
    _Loop,
    _Return,
    as_index,
    op_fault,
    outer_values,
    restore_outer,
)

from pldsl.execution import faults, numerics
from pldsl.execution.arguments import py_scalar
from pldsl.execution.faults import fault
from pldsl.execution.memory import Context, OpFault, TensorValue
from pldsl.ir.analysis import Liveness, ParallelAnalysis, if_result, own_yields
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
    TupleGet,
    UnaryOp,
    Var,
    While,
    Yield,
)
from pldsl.ir.traversal import assigned_names, walk

__all__ = ["FastMachine"]

Code = Callable[[Frame], Any]
_FAULTS = (OpFault, numerics.NumericsError)

# INDEX arithmetic on Python ints, exactly as apply_scalar_binop + scalar_from_int compute it
# (// and % floor; min/max; no wrap-around for INDEX).
_INDEX_OPS: dict[str, Callable[[int, int], int]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "min": min,
    "max": max,
}
_INDEX_DIV = {"floordiv": operator.floordiv, "mod": operator.mod}
_CMP = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}


class FastMachine(Machine):
    """`Machine` with every function body compiled to closures on its first call. Without a
    trace, one machine (and its closures) serves every run of a program with the same options
    (`compiled_machine`): the IR is compiled once, not once per run."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._blocks: dict[int, Code] = {}
        self._live: Liveness | None = None  # of the function being compiled
        self._fn: Function | None = None  # the function being compiled
        self.busy = threading.Lock()

    def __exit__(self, *exc: object) -> None:
        self.host = {}
        self.depth = 0
        if self.busy.locked():
            self.busy.release()

    # ------------------------------------------------------------- entry from Machine.invoke
    def exec_block(self, stmts, frame: Frame) -> None:
        code = self._blocks.get(id(stmts))
        if code is None:
            self._live = _liveness(frame.function)
            self._fn = frame.function
            code = self._blocks[id(stmts)] = self.block(stmts)
        code(frame)

    # ------------------------------------------------------------- statements
    def block(self, stmts) -> Code:
        return in_order(tuple(self.stmt(s) for s in stmts))

    def stmt(self, s) -> Code:
        kind = type(s)
        if kind is Assign:
            return self._c_assign(s)
        if kind is ExprStmt:
            ev = self.expr(s.expr)
            return ev
        if kind is For:
            return self._c_for(s)
        if kind is Yield:
            return self._c_yield(s)
        if kind is While:  # the plain machine's loop; its body compiles through exec_block
            return lambda f: self._while(s, f)
        if kind is If:
            return self._c_if(s)
        if kind is Scope:
            return self._c_scope(s)
        if kind is Return:
            return self._c_return(s)
        if kind is Break:
            return _raise_break
        if kind is Continue:
            return _raise_continue
        raise fault("UnknownStatement", f"cannot execute {kind.__name__}", s.span)

    def _c_assign(self, s: Assign) -> Code:
        value = self.expr(s.value)
        if len(s.targets) == 1:
            name = s.targets[0].name

            def assign(f: Frame) -> None:
                v = value(f)
                if type(v) is TensorValue and v.buffer.auto_named:
                    v.buffer.name = name
                    v.buffer.auto_named = False
                f.env[name] = v

            return assign
        names = [t.name for t in s.targets]
        bind = self._bind_name

        def unpack(f: Frame) -> None:
            v = value(f)
            if not isinstance(v, tuple) or len(v) != len(names):
                raise fault(
                    "UnpackMismatch",
                    f"cannot unpack {type(v).__name__} into {len(names)} names",
                    s.span,
                )
            for n, item in zip(names, v):
                bind(f, n, item)

        return unpack

    def _c_scope(self, s: Scope) -> Code:
        body = self.block(s.body)
        if not s.deps and s.tid is None:
            return body  # placement only: no numeric effect
        deps = tuple(self.expr(d) for d in s.deps)
        tid = s.tid.name if s.tid is not None else None
        log = self.tasks

        def task(f: Frame) -> None:
            if deps:
                log.check_deps([d(f) for d in deps], s.span)
            body(f)
            if tid is not None:
                f.env[tid] = log.new_id()

        return task

    def _c_for(self, s: For) -> Code:
        if s.kind == "spmd":
            return self._spmd_for(s)
        fused = self._k_loop(s)
        if fused is not None:
            return fused
        batched = self._batched_for(s)
        if batched is not None:
            return batched
        return self._plain_for(s)

    def _batched_for(self, s: For) -> Code | None:
        """A loop whose iterations the IR proves independent, run over all iterations at once
        (interpreter/batched.py), falling back to the per-tile closures at run time whenever
        the batched form cannot run it exactly. None when the IR rules it out, in strict mode
        (definedness is tracked per tile) and with a trace (per-op events)."""
        if self.trace is not None or self.ctx.strict or self._fn is None:
            return None
        if s.iter_args or batchable(s) is not None:
            return None
        try:  # an optional shortcut: a loop it cannot take runs per tile, never fails
            mode = _parallel_plan(self._fn, s)
            if mode is None:
                return None
            runner = BatchedLoop(self, s, check_writes=mode == "checked")
            inner = self._inner_trips(s) if mode == "checked" else None
            nest = self._flat_inner(s) if mode == "checked" else None
            flat = None
            if nest is not None:
                flat_bounds = tuple(self._index(e, "loop bound")
                                    for e in (nest.start, nest.stop, nest.step))  # fmt: skip
                flat = (BatchedLoop(self, s, check_writes=True, flat=nest), flat_bounds)
        except Exception:  # noqa: BLE001
            return None
        plain = self._plain_for(s)
        bounds = tuple(self._index(e, w) for e, w in
                       ((s.start, "loop start"), (s.stop, "loop stop"), (s.step, "loop step")))  # fmt: skip
        return _batched_code(runner, plain, bounds, inner, flat)

    def _flat_inner(self, s: For) -> For | None:
        """The loop ending `s`'s body when the nest can run as one set of (outer, inner) lanes:
        a batchable loop itself (proven or checked), without yields of its own, whose bounds
        use no op and no name the outer body assigns (so they are known, and the same for
        every outer iteration, at the outer loop's entry)."""
        if not s.body or type(s.body[-1]) is not For:
            return None
        inner = s.body[-1]
        if inner.iter_args or batchable(inner) is not None or any(own_yields(inner.body)):
            return None
        if _parallel_plan(self._fn, inner) is None:
            return None
        assigned = {s.var.name, inner.var.name} | assigned_names(s.body)
        for e in (inner.start, inner.stop, inner.step):
            for x in walk(e):
                if type(x) is OpCall or (type(x) is Var and x.name in assigned):
                    return None
        return inner

    def _inner_trips(self, s: For) -> list:
        """Bounds of the batchable loops nested directly in `s`'s body (inside `pl.at` scopes
        too), as closures, for a run-time choice: a loop whose batched form needs the run-time
        write check batches only when it has at least as many iterations as the loops inside
        it (which batch on their own when it runs per tile). Bounds with op calls are left out
        (evaluating them early could fault)."""
        found = []
        stack = list(s.body)
        while stack:
            n = stack.pop()
            if type(n) is Scope:
                stack.extend(n.body)
            elif type(n) is For and not n.iter_args and batchable(n) is None:
                exprs = (n.start, n.stop, n.step)
                if any(type(x) is OpCall for e in exprs for x in walk(e)):
                    continue
                found.append(tuple(self._index(e, "loop bound") for e in exprs))
        return found

    def _spmd_for(self, s: For) -> Code:
        """Blocks one after another, the running one published for get_block_idx kernels."""
        start, stop = self._index(s.start, "loop start"), self._index(s.stop, "loop stop")
        var = s.var.name
        ctx = self.ctx
        cut = tasks.phases(s.body)
        if len(cut) > 1:  # barriers (pl.system.syncall): every block, phase by phase
            codes = [self.block(ph) for ph in cut]
            names = assigned_names(s.body)

            def phased(f: Frame) -> None:
                tasks.run_phased(ctx, f.env, var, range(start(f), stop(f)), cut, names,
                                 lambda k, ph: codes[k](f))  # fmt: skip

            return phased
        body = self.block(s.body)

        def grid(f: Frame) -> None:
            env = f.env
            blocks = tasks.grid_blocks(ctx, start(f), stop(f))
            try:
                for i in blocks:
                    env[var] = i
                    body(f)
            finally:
                blocks.close()  # restores the enclosing block's index now, even on a fault

        return grid

    def _plain_for(self, s: For) -> Code:
        start, stop, step = (self._index(e, w) for e, w in
                             ((s.start, "loop start"), (s.stop, "loop stop"), (s.step, "loop step")))  # fmt: skip
        inits = tuple(self.expr(v) for v in s.init_values)
        names = tuple(v.name for v in s.iter_args)
        yields = tuple(y for y in own_yields(s.body)) if names else ()
        var = s.var.name
        body = self.block(s.body)

        def loop(f: Frame) -> None:
            lo, hi, st = start(f), stop(f), step(f)
            if st == 0:
                raise fault(
                    "BadLoopStep",
                    faults.bad_loop_step(s.kind, lo, hi),
                    s.span,
                    faults.BAD_LOOP_STEP_HELP,
                )
            env = f.env
            carries = [c(f) for c in inits]
            outer = outer_values(env, names)
            for n, v in zip(names, carries):
                env[n] = v
            state = _Loop()
            f.loops.append(state)
            try:
                if not names:
                    for i in range(lo, hi, st):
                        env[var] = i
                        try:
                            body(f)
                        except _Break:
                            break
                        except _Continue:
                            pass
                else:
                    for i in range(lo, hi, st):
                        env[var] = i
                        state.pending = None
                        try:
                            body(f)
                        except _Break:
                            if state.pending is not None:
                                carries = state.pending
                            break
                        except _Continue:
                            pass
                        if state.pending is not None:
                            carries = state.pending
                            for n, v in zip(names, carries):
                                env[n] = v
            finally:
                f.loops.pop()
            restore_outer(env, outer)  # carry names are loop-local (PyPTO's iter args)
            for y in yields:
                for t, v in zip(y.targets, carries):
                    env[t.name] = v

        return loop

    def _index(self, e, what: str) -> Code:
        if type(e) is Const and type(e.value) is int:
            value = e.value
            return lambda f: value
        ev, span = self.expr(e), e.span

        def index(f: Frame) -> int:
            v = ev(f)
            return v if type(v) is int else as_index(v, what, span)

        return index

    def _k_loop(self, s: For) -> Code | None:
        """A `matmul_acc` K-loop (`acc = pl.matmul_acc(acc, slice(A), slice(B))` over adjacent
        windows) compiled to one matmul over the joined windows (interpreter/kloop.py); None
        when the IR does not have that shape or a trace records every op."""
        if self.trace is not None or self._live is None:
            return None
        live_after = self._live.live_after.get(id(s), frozenset())
        shape = k_loop_shape(s, live_after)
        if shape is None:
            return None
        plain = self._plain_for(s)
        prefix = tuple(self.stmt(st) for st in shape.prefix)
        lhs, rhs = self.expr(shape.lhs), self.expr(shape.rhs)
        op = self._ops.get(id(shape.call)) or self._prepare_op(shape.call)
        bounds = tuple(self._index(e, w) for e, w in
                       ((s.start, "loop start"), (s.stop, "loop stop"), (s.step, "loop step")))  # fmt: skip
        return run_k_loop(self, s, shape, plain, prefix, lhs, rhs, op, bounds)

    def _c_yield(self, s: Yield) -> Code:
        values = tuple(self.expr(v) for v in s.values)
        names = tuple(t.name for t in s.targets)
        bind = self._bind_name

        def yield_(f: Frame) -> None:
            got = [v(f) for v in values]
            if f.loops:  # a loop's yield: targets are bound when the loop ends
                f.loops[-1].pending = got
                return
            for n, v in zip(names, got):
                bind(f, n, v)

        return yield_

    def _c_branch(self, body) -> Code:
        """A branch of an If; one ending in a yield (SSA if-form) binds the if's results."""
        phi = if_result(body)
        if phi is None:
            return self.block(body)
        run, values = self.block(body[:-1]), tuple(self.expr(v) for v in phi.values)
        names, bind = tuple(t.name for t in phi.targets), self._bind_name

        def branch(f: Frame) -> None:
            run(f)
            got = [v(f) for v in values]
            for n, v in zip(names, got):
                bind(f, n, v)

        return branch

    def _c_if(self, s: If) -> Code:
        cond, then, other = (
            self.expr(s.cond),
            self._c_branch(s.then_body),
            self._c_branch(s.else_body),
        )

        def if_(f: Frame) -> None:
            if cond(f):
                then(f)
            else:
                other(f)

        return if_

    def _c_return(self, s: Return) -> Code:
        values = tuple(self.expr(v) for v in s.values)
        span = s.span

        def return_(f: Frame) -> None:
            raise _Return(tuple(v(f) for v in values), span)

        return return_

    # ------------------------------------------------------------- expressions
    def expr(self, e) -> Code:
        if e is None:
            return _none
        kind = type(e)
        if kind is Var:
            return self._c_var(e)
        if kind is Const:
            value = self._const(e, None)
            return lambda f: value
        if kind is BinOp:
            return self._c_binop(e)
        if kind is UnaryOp:
            operand = self.expr(e.operand)
            unary = self._unary_value
            return lambda f: unary(e, operand(f))
        if kind is ListExpr:
            return self._c_list(e)
        if kind is OpCall:
            return self._c_opcall(e)
        if kind is Call:
            return self._c_call(e)
        if kind is TupleGet:
            value, index = self.expr(e.value), e.index
            return lambda f: value(f)[index]
        if kind is MakeTuple:
            items = tuple(self.expr(i) for i in e.items)
            return lambda f: tuple(i(f) for i in items)
        raise fault("UnknownExpression", f"cannot evaluate {kind.__name__}", e.span)

    def _c_var(self, e: Var) -> Code:
        name, unbound = e.name, self._var

        def var(f: Frame) -> Any:
            try:
                return f.env[name]
            except KeyError:
                return unbound(e, f)  # raises UnboundVariable

        return var

    def _c_binop(self, e: BinOp) -> Code:
        lhs, rhs, op = self.expr(e.lhs), self.expr(e.rhs), e.op
        generic = self._binop_value
        dtype = getattr(e.type, "dtype", None)
        if dtype is not None and dtype.name == "INDEX" and (op in _INDEX_OPS or op in _INDEX_DIV):
            fn = _INDEX_OPS.get(op) or _INDEX_DIV[op]
            checked = op in _INDEX_DIV

            def index_op(f: Frame) -> Any:
                a, b = lhs(f), rhs(f)
                if type(a) is int and type(b) is int and not (checked and b == 0):
                    return fn(a, b)
                return generic(e, a, b)

            return index_op
        if op in _CMP:
            cmp = _CMP[op]

            def compare(f: Frame) -> Any:
                a, b = lhs(f), rhs(f)
                if type(a) is int and type(b) is int:
                    return cmp(a, b)
                return generic(e, a, b)

            return compare
        return lambda f: generic(e, lhs(f), rhs(f))

    def _c_list(self, e: ListExpr) -> Code:
        if all(type(i) is Const for i in e.items):
            items = tuple(int(py_scalar(self._const(i, None))) for i in e.items)
            return lambda f: items
        evs = tuple(self.expr(i) for i in e.items)

        def list_(f: Frame) -> tuple[int, ...]:
            out = []
            for ev in evs:
                v = ev(f)
                out.append(v if type(v) is int else int(py_scalar(v)))
            return tuple(out)

        return list_

    def _c_call(self, e: Call) -> Code:
        fn = self.functions.get(e.func)
        args = tuple(self.expr(a) for a in e.args)
        invoke, span = self.invoke, e.span
        if fn is None:

            def missing(f: Frame) -> Any:
                raise fault("UndefinedFunction", f"program has no function '{e.func}'", span)

            return missing
        return lambda f: invoke(fn, [a(f) for a in args], span)[0]

    def _c_deferred(self, e: Call) -> Code:
        """A call given to an op as an operand (`pld.launch`): see Machine._deferred_call."""
        args = tuple(self.expr(a) for a in e.args)
        return lambda f: DeferredCall(self, e, [a(f) for a in args])

    def _c_opcall(self, e: OpCall) -> Code:
        op = self._ops.get(id(e)) or self._prepare_op(e)
        deferred = e.op in DEFERRED_OPS
        args = tuple(
            self._c_deferred(a) if deferred and type(a) is Call else self.expr(a) for a in e.args
        )
        if self.trace is not None:
            run = self._run_op
            return lambda f: run(e, op, [a(f) for a in args])
        call, name = op.call, op.result_name
        n = len(args)
        if n == 1:
            (a0,) = args

            def op1(f: Frame) -> Any:
                x = a0(f)
                try:
                    r = call(x)
                except _FAULTS as err:
                    raise op_fault(e, op, err) from None
                if type(r) is TensorValue and r.buffer.name is None:
                    r.buffer.name = name
                return r

            return op1
        if n == 2:
            a0, a1 = args

            def op2(f: Frame) -> Any:
                x, y = a0(f), a1(f)
                try:
                    r = call(x, y)
                except _FAULTS as err:
                    raise op_fault(e, op, err) from None
                if type(r) is TensorValue and r.buffer.name is None:
                    r.buffer.name = name
                return r

            return op2

        def opn(f: Frame) -> Any:
            vals = [a(f) for a in args]
            try:
                r = call(*vals)
            except _FAULTS as err:
                raise op_fault(e, op, err) from None
            if type(r) is TensorValue and r.buffer.name is None:
                r.buffer.name = name
            return r

        return opn


_MACHINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MACHINES_LOCK = threading.Lock()


def compiled_machine(program: Program, ctx: Context, host: Any, trace: Any) -> FastMachine:
    """The program's cached FastMachine for these options (its closures compiled on first
    use and kept), taken for one run; a fresh one with a trace or while another thread runs
    the cached one. Closures bind the machine's own Context, which equals `ctx` field for
    field."""
    if trace is not None:
        return FastMachine(program, ctx, host, trace)
    key = (ctx.strict, ctx.precision, ctx.bounds_check, ctx.f32_cache)
    with _MACHINES_LOCK:
        per_program = _MACHINES.setdefault(program, {})
        m = per_program.get(key)
        if m is None:
            m = per_program[key] = FastMachine(program, ctx, host, None)
    if not m.busy.acquire(blocking=False):
        return FastMachine(program, ctx, host, None)
    m.host = dict(host or {})
    m.depth = 0
    m.tasks.finished = 0  # task ids count per run (closures hold this TaskLog object)
    m.ctx.block_idx = ctx.block_idx  # the block a run starts in (closures hold m.ctx)
    return m


_LIVENESS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PARALLEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MIN_LANES = 2  # fewer iterations run per tile
_GIVE_UP = 3  # consecutive run-time fallbacks after which a loop stops trying the batched form


def _parallel_plan(fn: Function, loop: For) -> str | None:
    """How the loop may run batched: "proven" when the IR proves its iterations independent
    (ParallelAnalysis, the proof the C backend's OpenMP loops use), "checked" when that proof
    fails only because the IR cannot show the iterations' writes to shared buffers disjoint
    (dynamic bounds, indices through scalars it cannot follow): everything else about
    independence holds, and the batched run checks the windows it wrote for overlap between
    iterations, and those it read against other iterations' writes, before committing
    (batched.Lanes.commit), restoring and falling back otherwise. None: per tile.
    Computed once per captured function."""
    analysis = _PARALLEL.get(fn)
    if analysis is None:
        analysis = _PARALLEL[fn] = ParallelAnalysis(fn)
    plan = analysis.plans.get(id(loop))
    if plan is None:
        plan = analysis.plans[id(loop)] = analysis.plan(loop)
    if plan.parallel:
        return "proven"
    # the reasons of ParallelAnalysis's last stage (the write-disjointness proof); every
    # earlier check (carried variables, jumps, calls, step) passed when it reports one of them
    if plan.reason.endswith("may overlap between iterations") or \
            plan.reason == "write through a tensor of unknown origin":  # fmt: skip
        return "checked"
    return None


def _batched_code(runner: BatchedLoop, plain: Code, bounds: tuple, inner: list | None,
                  flat: tuple[BatchedLoop, tuple] | None = None) -> Code:  # fmt: skip
    """The loop batched where it can be, else `plain`. With `flat` (a nest ending in its
    inner loop), the nest runs as (outer, inner) lanes when the outer loop has fewer
    iterations than the inner one, else the outer loop's lanes run the inner loop serially
    (measured: the inner loop's windows are often affine in the outer variable, strided views,
    where the pairs' windows need gathers)."""
    start, stop, step = bounds

    def batched(f: Frame) -> None:
        if PER_OP and any(p() for p in PER_OP):
            plain(f)
            return
        use = runner
        try:
            lo, hi, st = start(f), stop(f), step(f)
            n = len(range(lo, hi, st)) if st != 0 else 0
            lanes, rng = n, None
            if flat is not None:
                rng = _inner_range(f, flat[1])
                if rng is not None and n < len(rng):
                    use, lanes = flat[0], n * len(rng)
                else:
                    rng = None
            if (use.fails < _GIVE_UP and lanes >= _MIN_LANES
                    and (rng is not None or not inner or n >= _inner_max(f, inner))):  # fmt: skip
                use.run(f.env, lo, hi, st, rng)
                use.fails = 0
                _count("batched")
                return
        except _CAUGHT as why:
            use.fails += 1
            # a bounded set of keys: Fallback's fixed reasons, else the fault's type
            _count("fallback: " + (str(why) if type(why) is Fallback else type(why).__name__))
        plain(f)

    return batched


def _inner_range(f: Frame, bounds: tuple) -> range | None:
    """The inner loop's iterations, evaluated at the outer loop's entry (its bounds use no name
    the outer body assigns); None where there are none or evaluating them fails (the per-tile
    path then evaluates them in order and reports any fault itself)."""
    try:
        lo, hi, st = (b(f) for b in bounds)
        rng = range(lo, hi, st)
    except Exception:  # noqa: BLE001
        return None
    return rng if len(rng) else None


def _inner_max(f: Frame, inner: list) -> int:
    """The most iterations of a nested loop, where its bounds are known at this loop's entry
    (0 where none is: bounds computed inside the body)."""
    most = 0
    for bounds in inner:
        try:
            lo, hi, st = (b(f) for b in bounds)
        except Exception:  # noqa: BLE001 - a bound defined inside the body: unknown here
            continue
        if st != 0:
            most = max(most, len(range(lo, hi, st)))
    return most


def _liveness(fn: Function) -> Liveness:
    """A function's liveness, computed once per captured function (IR is immutable)."""
    live = _LIVENESS.get(fn)
    if live is None:
        live = _LIVENESS[fn] = Liveness(fn.body, kill_yields=True)
    return live


def _none(f: Frame) -> None:
    return None


def _raise_break(f: Frame) -> None:
    raise _Break()


def _raise_continue(f: Frame) -> None:
    raise _Continue()
