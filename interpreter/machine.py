"""The interpreter's machine: walks a captured program's functions on NumPy.

Statements execute in program order with mutable bindings (non-SSA capture + in-place
buffers reproduce PyPTO semantics). `pl.at` scopes are no-ops; range/parallel/unroll/pipeline
loops run sequentially in index order (`chunk=` and `stage=` are ignored); loop carries
(`init_values` / `pl.yield_`) are explicit. Ops run through `interpreter.ops.KERNELS`; scalar
expressions follow PyPTO semantics (`//` floor, `%` floor-mod, `/` true division), with float
results rounded to their dtype through `pldsl.execution.numerics`.

Every fault is a `RuntimeFault` carrying a `Diagnostic` with the kernel's source location.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pldsl.interpreter import tasks
from pldsl.interpreter.ops import KERNELS
from pldsl.interpreter.trace import Event, Trace, shapes_dtypes

from pldsl.diagnostics import NO_SPAN, RuntimeFault, Span
from pldsl.execution import faults, numerics
from pldsl.execution.arguments import (
    RunResult,
    bind_params,
    check_outputs,
    export,
    partial_outputs,
    prepare_arguments,
    py_scalar,
    scalar_from_int,
    write_back,
)
from pldsl.execution.faults import ArgumentError, fault, with_note
from pldsl.execution.host import host_call
from pldsl.execution.memory import Context, OpFault, TensorValue
from pldsl.ir.analysis import if_result, own_yields, written_params
from pldsl.ir.nodes import (
    COMPARISONS,
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
from pldsl.ir.opdefs import op_label
from pldsl.ir.symbolic import apply_scalar_binop
from pldsl.ir.traversal import assigned_names
from pldsl.ops import lookup

__all__ = ["ArgumentError", "Machine", "RunResult", "execute", "run"]


class _Return(Exception):
    def __init__(self, values: tuple, span: Span):
        self.values, self.span = values, span


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Loop:
    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: list | None = None


class _Op:
    """An OpCall node resolved once per run: the kernel with ctx, result dtype and static attrs
    bound, and an evaluator per runtime argument."""

    __slots__ = ("kernel", "call", "args", "label", "result_name")

    def __init__(self, kernel, call: Callable, args: tuple, label: str, result_name: str):
        self.kernel, self.call, self.args = kernel, call, args
        self.label, self.result_name = label, result_name


def _eval_none(e: None, f: Frame) -> None:
    return None


class Frame:
    __slots__ = ("env", "function", "loops")

    def __init__(self, function: Function, env: dict[str, Any]):
        self.function, self.env = function, env
        self.loops: list[_Loop] = []


def outer_values(env: dict, names: Sequence[str]) -> dict:
    """What the carry names of a loop mean before it (None: unbound)."""
    return {n: env.get(n) for n in names}


def restore_outer(env: dict, outer: Mapping[str, Any]) -> None:
    """After a loop the header's carry names are what they were before it (PyPTO's iter args
    are loop-local); None: the name was unbound."""
    for n, v in outer.items():
        if v is None:
            env.pop(n, None)
        else:
            env[n] = v


# ------------------------------------------------------------------ the machine


def as_index(v: Any, what: str, span) -> int:
    """`v` as a Python int for a loop bound or step; a bool or non-integer is a TypeError
    fault (shared with the compiled fast path)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise fault("TypeError", f"{what} must be an integer, got {v!r}", span)
    return int(v)


class Machine:
    """Executes the functions of one program under one Context."""

    def __init__(
        self,
        program: Program,
        ctx: Context,
        host: Mapping[str, Callable] | None = None,
        trace: Trace | None = None,
    ):
        # the functions only: a cached FastMachine must not keep its Program alive (compiler.py)
        self.functions = program.functions
        self.kernels: Mapping[str, Any] = KERNELS
        for overlay in KERNEL_OVERLAYS:
            extra = overlay(program)
            if extra:
                self.kernels = {**self.kernels, **extra}
        self.ctx = ctx
        self.host = dict(host or {})
        self.trace = trace
        self.depth = 0
        self.tasks = tasks.TaskLog()
        self._ops: dict[int, _Op] = {}
        self._consts: dict[int, Any] = {}
        self._lists: dict[int, tuple[int, ...] | bool] = {}
        self._yields: dict[int, list[Yield]] = {}
        self._eval = {
            Var: self._var,
            Const: self._const,
            BinOp: self._binop,
            UnaryOp: self._unary,
            ListExpr: self._list,
            OpCall: self._opcall,
            Call: self._call,
            TupleGet: self._tuple_get,
            MakeTuple: self._make_tuple,
        }
        self._exec = {
            Assign: self._assign,
            ExprStmt: self._expr_stmt,
            For: self._for,
            While: self._while,
            Yield: self._yield,
            If: self._if,
            Scope: self._scope,
            Return: self._return,
            Break: self._break,
            Continue: self._continue,
        }

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        """The run is over (a cached FastMachine becomes free for the next one)."""

    # ------------------------------------------------------------- functions
    def invoke(self, fn: Function, args: Sequence[Any], span: Span) -> tuple[Any, Span]:
        """Call `fn` with interpreter values; returns (result, span of the return)."""
        if fn.is_host_stub:
            return self.host_call(fn, args, span), span
        if fn.external:
            raise fault(
                "ExternalKernel", faults.external_kernel(fn.name), span, faults.EXTERNAL_HELP
            )
        env = self.bind(fn, args, span)
        frame = Frame(fn, env)
        trace, t0 = self.trace, 0
        if trace is not None:
            t0 = trace.now()
        self.depth += 1
        if self.depth > faults.MAX_CALL_DEPTH:
            raise fault("RecursionLimit", faults.recursion_limit(fn.name), span)
        ok = False
        try:
            self.exec_block(fn.body, frame)
            values, ret_span = (), fn.span
            ok = True
        except _Return as r:
            values, ret_span = r.values, r.span
            ok = True
        finally:
            self.depth -= 1
            if trace is not None:
                self._trace_call(f"call {fn.name}", fn.span, t0)
            for hook in AFTER_INVOKE:  # e.g. ranks launched by this call run to completion
                hook(self, ok)
        return self._pack_return(fn, values), ret_span

    def _trace_call(self, name: str, span: Span, t0: int) -> None:
        dur = self.trace.now() - t0
        self.trace.add(
            Event(name, "call", span.file, span.line, span.col, t0, dur, depth=self.depth)
        )

    @staticmethod
    def _pack_return(fn: Function, values: tuple) -> Any:
        if fn.tuple_return:
            if len(values) == 1 and isinstance(values[0], tuple):
                return values[0]
            return tuple(values)
        if not values:
            return None
        return values[0]

    def bind(self, fn: Function, args: Sequence[Any], span: Span) -> dict:
        return bind_params(fn, args, span, self.ctx)

    def host_call(self, fn: Function, args: Sequence[Any], span: Span) -> Any:
        trace, t0 = self.trace, 0
        if trace is not None:
            t0 = trace.now()
        out = host_call(fn, args, span, self.ctx, self.host)
        if trace is not None:
            self._trace_call(f"host {fn.name}", span, t0)
        return out

    # ------------------------------------------------------------- statements
    def exec_block(self, stmts, frame: Frame) -> None:
        table = self._exec
        for s in stmts:
            table[type(s)](s, frame)

    def _assign(self, s: Assign, f: Frame) -> None:
        value = self.eval(s.value, f)
        if len(s.targets) == 1:
            self._bind_name(f, s.targets[0].name, value)
            return
        if not isinstance(value, tuple) or len(value) != len(s.targets):
            raise fault(
                "UnpackMismatch",
                f"cannot unpack {type(value).__name__} into {len(s.targets)} names",
                s.span,
            )
        for t, v in zip(s.targets, value):
            self._bind_name(f, t.name, v)

    @staticmethod
    def _bind_name(f: Frame, name: str, value: Any) -> None:
        if isinstance(value, TensorValue) and value.buffer.auto_named:
            value.buffer.name = name
            value.buffer.auto_named = False
        f.env[name] = value

    def _expr_stmt(self, s: ExprStmt, f: Frame) -> None:
        self.eval(s.expr, f)

    def _for(self, s: For, f: Frame) -> None:
        start = self._index(s.start, f, "loop start")
        stop = self._index(s.stop, f, "loop stop")
        step = self._index(s.step, f, "loop step")
        if step == 0:
            raise fault(
                "BadLoopStep",
                faults.bad_loop_step(s.kind, start, stop),
                s.span,
                faults.BAD_LOOP_STEP_HELP,
            )
        carries = [self.eval(v, f) for v in s.init_values]
        names = [v.name for v in s.iter_args]
        env = f.env
        outer = outer_values(env, names)
        for n, v in zip(names, carries):
            env[n] = v
        if s.kind == "spmd":
            cut = tasks.phases(s.body)
            if len(cut) > 1:  # barriers (pl.system.syncall): every block, phase by phase
                tasks.run_phased(self.ctx, env, s.var.name, range(start, stop, step), cut,
                                 assigned_names(s.body), lambda k, ph: self.exec_block(ph, f))  # fmt: skip
                return
        self._loop(s, f, start, stop, step, carries, names, outer)

    def _loop(self, s: For, f: Frame, start, stop, step, carries, names, outer) -> None:
        env, var = f.env, s.var.name
        loop = _Loop()
        f.loops.append(loop)
        body = s.body
        if s.kind == "spmd":  # each block publishes its index (get_block_idx)
            indices = tasks.grid_blocks(self.ctx, start, stop, step)
        else:
            indices = range(start, stop, step)
        try:
            for i in indices:
                env[var] = i
                carries, broke = self._iteration(body, f, loop, carries, names)
                if broke:
                    break
        finally:
            f.loops.pop()
            if s.kind == "spmd":
                indices.close()  # restores the enclosing block's index now, even on a fault
        if names:
            restore_outer(env, outer)
            for y in self._loop_yields(s):
                for t, v in zip(y.targets, carries):
                    env[t.name] = v

    def _while(self, s: While, f: Frame) -> None:
        """The condition is read before every iteration; carries as in `_loop`."""
        env, names = f.env, [v.name for v in s.iter_args]
        carries = [self.eval(v, f) for v in s.init_values]
        outer = outer_values(env, names)
        for n, v in zip(names, carries):
            env[n] = v
        loop = _Loop()
        f.loops.append(loop)
        count = 0
        try:
            while self._condition(s, f):
                count += 1
                if count > faults.MAX_WHILE_ITERATIONS:
                    raise fault("WhileLimit", faults.while_limit(), s.span, faults.WHILE_LIMIT_HELP)
                carries, broke = self._iteration(s.body, f, loop, carries, names)
                if broke:
                    break
        finally:
            f.loops.pop()
        if names:
            restore_outer(env, outer)
            for y in self._loop_yields(s):
                for t, v in zip(y.targets, carries):
                    self._bind_name(f, t.name, v)

    def _iteration(self, body, f: Frame, loop: _Loop, carries, names) -> tuple[list, bool]:
        """One pass of a loop body (`_loop`, `_while`): the carries after it (a yield's values,
        bound to the carry names unless the body broke out), and whether it broke out."""
        loop.pending = None
        try:
            self.exec_block(body, f)
        except _Break:
            return (carries if loop.pending is None else loop.pending), True
        except _Continue:
            pass
        if loop.pending is not None:
            carries = loop.pending
            for n, v in zip(names, carries):
                f.env[n] = v
        return carries, False

    def _condition(self, s: While, f: Frame) -> bool:
        value = self.eval(s.cond, f)
        if not isinstance(value, (bool, np.bool_)):
            raise fault("TypeError", f"while condition must be a bool, got {value!r}", s.cond.span)
        return bool(value)

    def _loop_yields(self, s: For) -> list[Yield]:
        found = self._yields.get(id(s))
        if found is None:
            found = self._yields[id(s)] = list(own_yields(s.body))
        return found

    def _yield(self, s: Yield, f: Frame) -> None:
        values = [self.eval(v, f) for v in s.values]
        if f.loops:
            # a loop's yield: the next carries; its targets are bound once the loop ends
            # (PyPTO's return vars exist only after the loop)
            f.loops[-1].pending = values
            return
        for t, v in zip(s.targets, values):
            self._bind_name(f, t.name, v)

    def _if(self, s: If, f: Frame) -> None:
        body = s.then_body if bool(self.eval(s.cond, f)) else s.else_body
        phi = if_result(body)
        if phi is None:
            self.exec_block(body, f)
            return
        # SSA if-form: the branch's final yield binds the if's results
        self.exec_block(body[:-1], f)
        values = [self.eval(v, f) for v in phi.values]
        for t, v in zip(phi.targets, values):
            self._bind_name(f, t.name, v)

    def _scope(self, s: Scope, f: Frame) -> None:
        # Placement and task-graph regions: no numeric effect; a task's deps are checked.
        if s.deps:
            self.tasks.check_deps([self.eval(d, f) for d in s.deps], s.span)
        self.exec_block(s.body, f)
        if s.tid is not None:
            f.env[s.tid.name] = self.tasks.new_id()

    def _return(self, s: Return, f: Frame) -> None:
        raise _Return(tuple(self.eval(v, f) for v in s.values), s.span)

    def _break(self, s: Break, f: Frame) -> None:
        raise _Break()

    def _continue(self, s: Continue, f: Frame) -> None:
        raise _Continue()

    def _index(self, e, f: Frame, what: str) -> int:
        return as_index(self.eval(e, f), what, e.span)

    # ------------------------------------------------------------- expressions
    def eval(self, e, f: Frame) -> Any:
        return self._eval[type(e)](e, f)

    def _var(self, e: Var, f: Frame) -> Any:
        try:
            return f.env[e.name]
        except KeyError:
            raise fault(
                "UnboundVariable",
                faults.unbound_variable(e.name),
                e.span,
                faults.UNBOUND_VARIABLE_HELP,
            ) from None

    def _const(self, e: Const, f: Frame) -> Any:
        v = self._consts.get(id(e), _MISSING)
        if v is _MISSING:
            if e.dtype.is_float:
                v = self._round(float(e.value), e.dtype.name)
            elif e.dtype.is_bool:
                v = bool(e.value)
            else:
                v = scalar_from_int(int(e.value), e.dtype)
            self._consts[id(e)] = v
        return v

    def _round(self, value: float, dtype: str) -> Any:
        return numerics.cast(np.asarray(value, np.float64), dtype, "rint", self.ctx.precision)[()]

    def _binop(self, e: BinOp, f: Frame) -> Any:
        return self._binop_value(e, self.eval(e.lhs, f), self.eval(e.rhs, f))

    def _binop_value(self, e: BinOp, a: Any, b: Any) -> Any:
        a, b = py_scalar(a), py_scalar(b)
        op = e.op
        if op in COMPARISONS or op in ("and", "or"):
            return apply_scalar_binop(op, a, b)
        dtype = e.type.dtype
        if op in ("div", "floordiv", "mod") and b == 0:
            sym = {"div": "/", "floordiv": "//", "mod": "%"}[op]
            raise fault(
                "DivisionByZero",
                faults.division_by_zero(a, sym, b),
                e.span,
                faults.DIVISION_BY_ZERO_HELP,
            )
        if dtype.is_float:
            return self._round(float(apply_scalar_binop(op, float(a), float(b))), dtype.name)
        return scalar_from_int(int(apply_scalar_binop(op, int(a), int(b), e.type)), dtype)

    def _unary(self, e: UnaryOp, f: Frame) -> Any:
        return self._unary_value(e, self.eval(e.operand, f))

    def _unary_value(self, e: UnaryOp, v: Any) -> Any:
        v = py_scalar(v)
        if e.op == "not":
            return not v
        dtype = e.type.dtype
        if dtype.is_float:
            return self._round(-float(v), dtype.name)
        return scalar_from_int(-int(v), dtype)

    def _list(self, e: ListExpr, f: Frame) -> tuple[int, ...]:
        known = self._lists.get(id(e))
        if known:  # a list of constants: evaluated once
            return known
        items = tuple([int(py_scalar(self.eval(i, f))) for i in e.items])
        if known is None:
            self._lists[id(e)] = all(type(i) is Const for i in e.items) and items
        return items

    def _make_tuple(self, e: MakeTuple, f: Frame) -> tuple:
        return tuple(self.eval(i, f) for i in e.items)

    def _tuple_get(self, e: TupleGet, f: Frame) -> Any:
        return self.eval(e.value, f)[e.index]

    def _call(self, e: Call, f: Frame) -> Any:
        fn = self.functions.get(e.func)
        if fn is None:
            raise fault("UndefinedFunction", f"program has no function '{e.func}'", e.span)
        args = [self.eval(a, f) for a in e.args]
        return self.invoke(fn, args, e.span)[0]

    def _deferred_call(self, e: Call, f: Frame) -> DeferredCall:
        """A call given to a DEFERRED_OPS op: its arguments evaluated now, the call itself
        left to the op."""
        return DeferredCall(self, e, [self.eval(a, f) for a in e.args])

    def _prepare_op(self, e: OpCall) -> _Op:
        """What an OpCall node needs on every execution, resolved on its first one."""
        opdef = lookup(e.op)
        kernel = self.kernels.get(opdef.name) if opdef is not None else None
        if kernel is None:
            raise fault("UnknownOp", f"the interpreter has no kernel for {op_label(e.op)}", e.span)
        attrs = {p.name: e.attr(p.name) for p in opdef.static_params}
        rtype = getattr(getattr(e.type, "dtype", None), "name", None)
        args = tuple(
            (_eval_none, None)
            if a is None
            else (
                self._deferred_call
                if type(a) is Call and e.op in DEFERRED_OPS
                else self._eval[type(a)],
                a,
            )
            for a in e.args
        )
        call = functools.partial(kernel.fn, self.ctx, rtype, **attrs)
        label = op_label(opdef.name)
        op = self._ops[id(e)] = _Op(
            kernel, call, args, label, f"{label} result (line {e.span.line})"
        )
        return op

    def _opcall(self, e: OpCall, f: Frame) -> Any:
        op = self._ops.get(id(e)) or self._prepare_op(e)
        return self._run_op(e, op, [ev(a, f) for ev, a in op.args])

    def _run_op(self, e: OpCall, op: _Op, args: list) -> Any:
        trace = self.trace
        try:
            if trace is None:
                result = op.call(*args)
            else:
                t0 = trace.now()
                result = op.call(*args)
                t1 = trace.now()
                self._trace_op(e, op, args, result, t0, t1)
        except (OpFault, numerics.NumericsError) as x:
            raise op_fault(e, op, x) from None
        if isinstance(result, TensorValue) and result.buffer.name is None:
            result.buffer.name = op.result_name
        return result

    def _trace_op(self, e: OpCall, op: _Op, args, result, t0: int, t1: int) -> None:
        try:
            nbytes, flops = op.kernel.cost(args, result)
        except Exception:  # noqa: BLE001 - a cost estimate must never break a run
            nbytes, flops = 0, 0
        shapes, dtypes = shapes_dtypes(args, result)
        sp = e.span
        self.trace.add(
            Event(
                op.label,
                "op",
                sp.file,
                sp.line,
                sp.col,
                t0,
                t1 - t0,
                shapes,
                dtypes,
                int(nbytes),
                int(flops),
                self.depth,
            )
        )


_MISSING = object()


# Ops whose `Call` operands are passed unevaluated, as a DeferredCall (the op decides when
# the call runs): `pld.launch`, registered by pldsl.interpreter.dist_ops.
DEFERRED_OPS: set[str] = set()

# Called after every function call with (machine, finished normally); pldsl.interpreter.ranks
# registers the one that runs the ranks a host function launched.
AFTER_INVOKE: list[Callable[[Machine, bool], None]] = []

# Kernels that replace KERNELS' for one program's machines: each hook returns them, or None
# (pldsl.interpreter.dist_ops: a program using `pld` gets kernels that record a rank's window
# accesses; other programs keep the plain kernels, at no cost).
KERNEL_OVERLAYS: list[Callable[[Program], Mapping[str, Any] | None]] = []

# Predicates of those hooks: while any is true, loops run op by op (a batched loop bypasses
# the kernels).
PER_OP: list[Callable[[], bool]] = []


class DeferredCall:
    """A call whose arguments are evaluated and which has not run yet; `run()` runs it."""

    __slots__ = ("machine", "call", "args")

    def __init__(self, machine: Machine, call: Call, args: list) -> None:
        self.machine, self.call, self.args = machine, call, args

    def run(self) -> Any:
        fn = self.machine.functions.get(self.call.func)
        if fn is None:
            raise fault("UndefinedFunction", f"program has no function '{self.call.func}'",
                        self.call.span)  # fmt: skip
        return self.machine.invoke(fn, self.args, self.call.span)[0]


def op_fault(e: OpCall, op: _Op, x: Exception) -> RuntimeFault:
    """An op kernel's OpFault (or a numerics error) as a fault at the op's span."""
    if isinstance(x, OpFault):
        label = op.label
        return fault(
            x.rule,
            f"{label} {x.message}" if x.rule == "UndefinedRead" else f"{label}: {x.message}",
            e.span,
            x.help,
            x.notes,
        )
    return fault("NumericsError", f"{op.label}: {x}", e.span)


# ------------------------------------------------------------------ run


def run(
    program: Program,
    function_name: str,
    *args: Any,
    strict: bool = False,
    precision: str = "bf16",
    trace: str | os.PathLike | Trace | None = None,
    host: Mapping[str, Callable] | None = None,
    bounds_check: bool = True,
    fast: bool = True,
) -> Any:
    """Execute `program.function_name(*args)` on NumPy; returns what the function returns
    (a tuple for tuple returns) as NumPy arrays of the declared dtypes' storage types.

    Tensor arguments are NumPy arrays (BF16 as ml_dtypes.bfloat16, or float32 holding
    BF16-exact values); scalars are Python/NumPy numbers. Arrays of the storage dtype are
    used in place: Out/InOut parameters, and In parameters the kernel writes, are updated in
    the caller's array (converted arrays are written back exactly). An Out argument may be
    None: the interpreter allocates it when its dims are known from the other arguments.

    strict: undefined memory is poisoned and the first op reading it faults (UndefinedRead);
    Out elements never written fault at return (UnwrittenOutput).
    precision: "bf16" (the contract) or "fp32" (ideal precision: BF16/FP16 stored as float32,
    every rounding to them a no-op).
    trace: a path (Chrome trace JSON written there) or a `Trace` to fill.
    host: Python callables for HOST SubWorker stubs, by function name.
    bounds_check: False skips window checks (faster; out-of-bounds windows then misbehave).
    fast: True (default) runs the IR compiled once into closures (interpreter/compiler.py),
    bit-identical to the plain tree-walking path that fast=False keeps for differential tests.
    """
    return execute(
        program,
        function_name,
        args,
        strict=strict,
        precision=precision,
        trace=trace,
        host=host,
        bounds_check=bounds_check,
        fast=fast,
    ).value


def execute(
    program: Program,
    function_name: str,
    args: Sequence[Any],
    *,
    strict: bool = False,
    precision: str = "bf16",
    trace: str | os.PathLike | Trace | None = None,
    host: Mapping[str, Callable] | None = None,
    bounds_check: bool = True,
    fast: bool = True,
) -> RunResult:
    """`run`, returning a `RunResult` with the final argument arrays as well."""
    if not isinstance(program, Program):
        raise TypeError(f"expected a captured pl.program, got {type(program).__name__}")
    fn = program.functions.get(function_name)
    if fn is None:
        raise fault(
            "UnknownFunction",
            f"program '{program.name}' has no function '{function_name}'",
            program.span,
            f"functions: {', '.join(program.functions)}",
            cls=ArgumentError,
        )
    if precision not in numerics.PRECISIONS:
        raise fault(
            "BadOption", f"precision must be 'bf16' or 'fp32', got {precision!r}", cls=ArgumentError
        )
    ctx = Context(strict=bool(strict), precision=precision, bounds_check=bool(bounds_check),
                  f32_cache=bool(fast))  # fmt: skip
    tr = trace if isinstance(trace, Trace) else (Trace() if trace is not None else None)
    if tr is not None:
        tr.function = f"{program.name}.{fn.name}"
    values, originals = prepare_arguments(fn, args, ctx, written_params(program, fn))
    if fast:
        from pldsl.interpreter.compiler import compiled_machine  # the fast path builds on Machine

        machine = compiled_machine(program, ctx, host, tr)
    else:
        machine = Machine(program, ctx, host, tr)
    t0 = time.perf_counter_ns()
    try:
        with numerics.quiet(), machine:
            result, ret_span = machine.invoke(fn, values, NO_SPAN)
        if strict:
            check_outputs(fn, values, ret_span)
        out = export(result, ctx, ret_span)
    except RuntimeFault as err:
        raise with_note(err, partial_outputs(fn, values, originals)) from err.__cause__
    finally:
        if tr is not None:
            tr.wall_ns = time.perf_counter_ns() - t0
            if not isinstance(trace, Trace):
                tr.write(trace)
    written = {
        p.name
        for p, v in zip(fn.params, values)
        if isinstance(v, TensorValue) and (v.buffer.written or p.direction != "In")
    }
    return RunResult(out, write_back(fn, values, originals, written), written, tr)
