"""The interpreter's machine: walks a captured program's functions on NumPy.

Statements execute in program order with mutable bindings (non-SSA capture + in-place
buffers reproduce PyPTO semantics). `pl.at` scopes are no-ops; range/parallel/unroll/pipeline
loops run sequentially in index order (`chunk=` and `stage=` are ignored); loop carries
(`init_values` / `pl.yield_`) are explicit. Ops run through `interpreter.ops.KERNELS`; scalar
expressions follow PyPTO semantics (`//` floor, `%` floor-mod, `/` true division), with float
results rounded to their dtype through `interpreter.numerics`.

Every fault is a `RuntimeFault` carrying a `Diagnostic` with the kernel's source location.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pldsl.interpreter import numerics
from pldsl.interpreter.memory import Context, OpFault, TensorValue, wrap_array
from pldsl.interpreter.ops import KERNELS
from pldsl.interpreter.trace import Event, Trace, shapes_dtypes

from pldsl.diagnostics import NO_SPAN, Diagnostic, PldslError, RuntimeFault, Span
from pldsl.dtypes import DType
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
    OpCall,
    Program,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
)
from pldsl.ir.printer import format_type
from pldsl.ir.symbolic import Unbound, apply_scalar_binop, evaluate
from pldsl.ir.types import ScalarType, TensorType
from pldsl.ops import lookup

__all__ = ["ArgumentError", "Machine", "RunResult", "execute", "run"]


class ArgumentError(RuntimeFault):
    """The arguments of a run do not fit the function's parameters (bad input, not a kernel
    fault): wrong count, dtype, rank, static or dynamic dim, inexact BF16 values, ..."""


def fault(
    rule: str,
    message: str,
    span: Span = NO_SPAN,
    help: str | None = None,
    notes: Sequence[str] = (),
    cls: type = RuntimeFault,
) -> RuntimeFault:
    return cls(Diagnostic(rule, "error", message, span, help, tuple(notes)))


def _check_count(fn: Function, args: Sequence[Any], span: Span, cls: type) -> None:
    if len(args) != len(fn.params):
        raise fault(
            "ArgumentCount",
            f"'{fn.name}' takes {len(fn.params)} arguments "
            f"({', '.join(p.name for p in fn.params)}), got {len(args)}",
            span,
            cls=cls,
        )


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


# ------------------------------------------------------------------ scalars


def _py(v: Any) -> Any:
    """A scalar as a Python number for arithmetic."""
    if isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    return float(v)


def scalar_from_int(value: int, dtype: DType) -> Any:
    """An integer scalar result: INDEX a Python int, BOOL a bool, else wrapped into a NumPy
    scalar of the dtype (numerics.wrap_int)."""
    if dtype.name == "INDEX":
        return int(value)
    if dtype.is_bool:
        return bool(value)
    return numerics.storage_dtype(dtype.name).type(numerics.wrap_int(value, dtype.name))


# ------------------------------------------------------------------ the machine


class Machine:
    """Executes the functions of one program under one Context."""

    def __init__(
        self,
        program: Program,
        ctx: Context,
        host: Mapping[str, Callable] | None = None,
        trace: Trace | None = None,
    ):
        self.program = program
        self.functions = program.functions
        self.ctx = ctx
        self.host = dict(host or {})
        self.trace = trace
        self.depth = 0
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
        }
        self._exec = {
            Assign: self._assign,
            ExprStmt: self._expr_stmt,
            For: self._for,
            Yield: self._yield,
            If: self._if,
            Scope: self._scope,
            Return: self._return,
            Break: self._break,
            Continue: self._continue,
        }

    # ------------------------------------------------------------- functions
    def invoke(self, fn: Function, args: Sequence[Any], span: Span) -> tuple[Any, Span]:
        """Call `fn` with interpreter values; returns (result, span of the return)."""
        if fn.is_host_stub:
            return self.host_call(fn, args, span), span
        env = self.bind(fn, args, span)
        frame = Frame(fn, env)
        trace, t0 = self.trace, 0
        if trace is not None:
            t0 = trace.now()
        self.depth += 1
        if self.depth > 200:
            raise fault("RecursionLimit", f"call depth exceeds 200 at '{fn.name}'", span)
        try:
            self.exec_block(fn.body, frame)
            values, ret_span = (), fn.span
        except _Return as r:
            values, ret_span = r.values, r.span
        finally:
            self.depth -= 1
            if trace is not None:
                self._trace_call(f"call {fn.name}", fn.span, t0)
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

    def bind(self, fn: Function, args: Sequence[Any], span: Span, top: bool = False) -> dict:
        """Parameters -> values, dynamic dims bound from the argument shapes."""
        cls = ArgumentError if top else RuntimeFault
        _check_count(fn, args, span, cls)
        env: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for p, v in zip(fn.params, args):
            if isinstance(p.type, ScalarType):
                env[p.name] = coerce_scalar(v, p.type.dtype, self.ctx, p.name, span, cls)
                origin[p.name] = f"scalar argument '{p.name}'"
        for p, v in zip(fn.params, args):
            t = p.type
            if not isinstance(t, TensorType):
                if not isinstance(t, ScalarType):
                    raise fault(
                        "BadParameter", f"unsupported parameter type for '{p.name}'", span, cls=cls
                    )
                continue
            where = span if span.line else p.var.span
            if not isinstance(v, TensorValue):
                raise fault(
                    "ArgumentMismatch",
                    f"argument '{p.name}' of '{fn.name}' must be a tensor "
                    f"{format_type(t)}, got {type(v).__name__}",
                    where,
                    cls=cls,
                )
            if v.dtype != t.dtype.name:
                raise fault(
                    "ArgumentMismatch",
                    f"argument '{p.name}' of '{fn.name}' has dtype {v.dtype}, expected "
                    f"{t.dtype.name}",
                    where,
                    cls=cls,
                )
            if v.rank != t.rank:
                raise fault(
                    "ArgumentMismatch",
                    f"argument '{p.name}' of '{fn.name}' has rank {v.rank} (shape "
                    f"{list(v.shape)}), expected rank {t.rank} {format_type(t)}",
                    where,
                    cls=cls,
                )
            for axis, (d, actual) in enumerate(zip(t.shape, v.shape)):
                if isinstance(d, int):
                    if d != actual:
                        raise fault(
                            "ArgumentMismatch",
                            f"argument '{p.name}' of '{fn.name}': dim {axis} is {actual}, "
                            f"the declared static dim is {d} ({format_type(t)}, got shape "
                            f"{list(v.shape)})",
                            where,
                            cls=cls,
                        )
                elif isinstance(d, Var):
                    if d.name in env:
                        if _py(env[d.name]) != actual:
                            raise fault(
                                "DynamicDimMismatch",
                                f"argument '{p.name}' of '{fn.name}': dim {axis} ({d.name}) "
                                f"is {actual}, but {d.name} = {_py(env[d.name])} from "
                                f"{origin[d.name]}",
                                where,
                                "every use of a pl.dynamic dim must have the same extent",
                                cls=cls,
                            )
                    else:
                        env[d.name] = actual
                        origin[d.name] = f"argument '{p.name}' dim {axis}"
            env[p.name] = v
        # Composite dims (`N * 2`: only IR text has them) are checked once all dims bind.
        for p, v in zip(fn.params, args):
            for axis, d in enumerate(getattr(p.type, "shape", ())):
                if isinstance(d, (int, Var)):
                    continue
                want = _eval_shape((d,), env)
                if want is not None and want[0] != v.shape[axis]:
                    raise fault(
                        "DynamicDimMismatch",
                        f"argument '{p.name}' of '{fn.name}': dim {axis} is "
                        f"{v.shape[axis]}, expected {want[0]}",
                        span,
                        cls=cls,
                    )
        return env

    def bind_entry(self, fn: Function, values: Sequence[Any]) -> dict:
        """`bind` for the function a run calls (faults are ArgumentErrors); parameters
        annotated with a valid_shape then carry that valid region."""
        env = self.bind(fn, values, NO_SPAN, top=True)
        for p, v in zip(fn.params, values):
            t = p.type
            if isinstance(t, TensorType) and t.valid_shape is not None:
                valid = _eval_shape(t.valid_shape, env)
                if valid is not None:
                    v.valid = tuple(max(0, min(a, b)) for a, b in zip(valid, v.shape))
        return env

    def host_call(self, fn: Function, args: Sequence[Any], span: Span) -> Any:
        cb = self.host.get(fn.name)
        if cb is None:
            raise fault(
                "MissingHostFunction",
                f"'{fn.name}' is a HOST SubWorker stub and no Python function is bound to it",
                span,
                f"pass host={{'{fn.name}': callable}} to run (interpreter.run or CompiledProgram.run)",
            )
        env = self.bind(fn, args, span)
        arrays, views = [], {}
        for p, v in zip(fn.params, args):
            if isinstance(v, TensorValue):
                if p.direction != "Out":
                    try:
                        v.require(self.ctx, v.valid, p.name)
                    except OpFault as f:
                        raise fault(
                            f.rule, f"host call '{fn.name}' {f.message}", span, f.help, f.notes
                        ) from None
                a = v.view() if v.in_buffer() and v.fully_valid else v.materialize(self.ctx)
                if not a.flags.writeable:
                    a = a.copy()
                views[id(a)] = v
                arrays.append(a)
            else:
                arrays.append(v)
        trace, t0 = self.trace, 0
        if trace is not None:
            t0 = trace.now()
        try:
            out = cb(*arrays)
        except PldslError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: report it at the call site
            raise fault(
                "HostFunctionError",
                f"host function for '{fn.name}' raised {type(exc).__name__}: {exc}",
                span,
            ) from exc
        if trace is not None:
            self._trace_call(f"host {fn.name}", span, t0)
        for a, v in zip(arrays, args):
            if isinstance(v, TensorValue):
                if a.base is None or not np.shares_memory(a, v.buffer.data):
                    # A copy was handed over: bring the callee's writes back.
                    v.buffer.data[v.window()] = a[tuple(slice(0, n) for n in v.valid)]
                if v.buffer.defined is not None:
                    v.buffer.defined[v.window()] = True
                v.buffer.mark_written()
        results = out if fn.tuple_return else (out,)
        if fn.tuple_return and (
            not isinstance(out, (tuple, list)) or len(out) != len(fn.return_types)
        ):
            raise fault(
                "HostFunctionError",
                f"host function for '{fn.name}' must return a tuple of "
                f"{len(fn.return_types)} values, got {type(out).__name__}",
                span,
            )
        if not fn.return_types:
            return None
        converted = []
        for i, (r, t) in enumerate(zip(results, fn.return_types)):
            what = f"return value {i} of host function '{fn.name}'"
            if isinstance(t, TensorType):
                if isinstance(r, np.ndarray) and id(r) in views:
                    converted.append(views[id(r)])
                    continue
                arr, _ = coerce_array(r, t.dtype.name, self.ctx, what, span, RuntimeFault)
                shape = _eval_shape(t.shape, env)
                if shape is not None and tuple(arr.shape) != shape:
                    raise fault(
                        "HostFunctionError",
                        f"{what} has shape {list(arr.shape)}, declared {list(shape)}",
                        span,
                    )
                arr = arr.copy() if arr is r else arr
                val = wrap_array(self.ctx, arr, t.dtype.name, f"{fn.name}.return{i}")
                converted.append(val)
            else:
                converted.append(coerce_scalar(r, t.dtype, self.ctx, what, span, RuntimeFault))
        return tuple(converted) if fn.tuple_return else converted[0]

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
                f"pl.{s.kind} step is 0 (start {start}, stop {stop})",
                s.span,
                "a loop step must be a nonzero integer",
            )
        carries = [self.eval(v, f) for v in s.init_values]
        names = [v.name for v in s.iter_args]
        env, var = f.env, s.var.name
        for n, v in zip(names, carries):
            env[n] = v
        loop = _Loop()
        f.loops.append(loop)
        body, run = s.body, self.exec_block
        try:
            for i in range(start, stop, step):
                env[var] = i
                loop.pending = None
                try:
                    run(body, f)
                except _Break:
                    if loop.pending is not None:
                        carries = loop.pending
                    break
                except _Continue:
                    pass
                if loop.pending is not None:
                    carries = loop.pending
                    for n, v in zip(names, carries):
                        env[n] = v
        finally:
            f.loops.pop()
        if names:
            for y in self._loop_yields(s):
                for t, v in zip(y.targets, carries):
                    env[t.name] = v

    def _loop_yields(self, s: For) -> list[Yield]:
        found = self._yields.get(id(s))
        if found is None:
            found = []
            stack = list(s.body)
            while stack:
                n = stack.pop()
                if isinstance(n, Yield):
                    found.append(n)
                elif isinstance(n, For):
                    continue  # a nested loop owns its yields
                elif isinstance(n, If):
                    stack += [*n.then_body, *n.else_body]
                elif isinstance(n, Scope):
                    stack += list(n.body)
            self._yields[id(s)] = found
        return found

    def _yield(self, s: Yield, f: Frame) -> None:
        values = [self.eval(v, f) for v in s.values]
        if f.loops:
            f.loops[-1].pending = values
        for t, v in zip(s.targets, values):
            self._bind_name(f, t.name, v)

    def _if(self, s: If, f: Frame) -> None:
        if bool(self.eval(s.cond, f)):
            self.exec_block(s.then_body, f)
        else:
            self.exec_block(s.else_body, f)

    def _scope(self, s: Scope, f: Frame) -> None:
        self.exec_block(s.body, f)  # pl.at: placement only, no numeric effect

    def _return(self, s: Return, f: Frame) -> None:
        raise _Return(tuple(self.eval(v, f) for v in s.values), s.span)

    def _break(self, s: Break, f: Frame) -> None:
        raise _Break()

    def _continue(self, s: Continue, f: Frame) -> None:
        raise _Continue()

    def _index(self, e, f: Frame, what: str) -> int:
        v = self.eval(e, f)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise fault("TypeError", f"{what} must be an integer, got {v!r}", e.span)
        return int(v)

    # ------------------------------------------------------------- expressions
    def eval(self, e, f: Frame) -> Any:
        return self._eval[type(e)](e, f)

    def _var(self, e: Var, f: Frame) -> Any:
        try:
            return f.env[e.name]
        except KeyError:
            raise fault(
                "UnboundVariable",
                f"'{e.name}' has no value here",
                e.span,
                "it is assigned only on some paths (an if branch or a loop that ran zero "
                "times) before this use",
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
        a, b = _py(self.eval(e.lhs, f)), _py(self.eval(e.rhs, f))
        op = e.op
        if op in COMPARISONS or op in ("and", "or"):
            return apply_scalar_binop(op, a, b)
        dtype = e.type.dtype
        if op in ("div", "floordiv", "mod") and b == 0:
            sym = {"div": "/", "floordiv": "//", "mod": "%"}[op]
            raise fault(
                "DivisionByZero",
                f"scalar division by zero: {a} {sym} {b}",
                e.span,
                "guard the divisor, e.g. with pl.max(d, 1)",
            )
        if dtype.is_float:
            return self._round(float(apply_scalar_binop(op, float(a), float(b))), dtype.name)
        return scalar_from_int(int(apply_scalar_binop(op, int(a), int(b), e.type)), dtype)

    def _unary(self, e: UnaryOp, f: Frame) -> Any:
        v = _py(self.eval(e.operand, f))
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
        items = tuple([int(_py(self.eval(i, f))) for i in e.items])
        if known is None:
            self._lists[id(e)] = all(type(i) is Const for i in e.items) and items
        return items

    def _tuple_get(self, e: TupleGet, f: Frame) -> Any:
        return self.eval(e.value, f)[e.index]

    def _call(self, e: Call, f: Frame) -> Any:
        fn = self.functions.get(e.func)
        if fn is None:
            raise fault("UndefinedFunction", f"program has no function '{e.func}'", e.span)
        args = [self.eval(a, f) for a in e.args]
        return self.invoke(fn, args, e.span)[0]

    def _prepare_op(self, e: OpCall) -> _Op:
        """What an OpCall node needs on every execution, resolved on its first one."""
        opdef = lookup(e.op)
        kernel = KERNELS.get(opdef.name) if opdef is not None else None
        if kernel is None:
            raise fault("UnknownOp", f"the interpreter has no kernel for pl.{e.op}", e.span)
        attrs = {p.name: e.attr(p.name) for p in opdef.static_params}
        rtype = getattr(getattr(e.type, "dtype", None), "name", None)
        args = tuple((_eval_none, None) if a is None else (self._eval[type(a)], a) for a in e.args)
        call = functools.partial(kernel.fn, self.ctx, rtype, **attrs)
        label = f"pl.{opdef.name}"
        op = self._ops[id(e)] = _Op(
            kernel, call, args, label, f"{label} result (line {e.span.line})"
        )
        return op

    def _opcall(self, e: OpCall, f: Frame) -> Any:
        op = self._ops.get(id(e)) or self._prepare_op(e)
        args = [ev(a, f) for ev, a in op.args]
        trace = self.trace
        try:
            if trace is None:
                result = op.call(*args)
            else:
                t0 = trace.now()
                result = op.call(*args)
                t1 = trace.now()
                self._trace_op(e, op, args, result, t0, t1)
        except OpFault as x:
            label = op.label
            raise fault(
                x.rule,
                f"{label} {x.message}" if x.rule == "UndefinedRead" else f"{label}: {x.message}",
                e.span,
                x.help,
                x.notes,
            ) from None
        except numerics.NumericsError as x:
            raise fault("NumericsError", f"{op.label}: {x}", e.span) from None
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


def _eval_shape(shape, env: Mapping[str, Any]) -> tuple[int, ...] | None:
    try:
        scalars = {k: _py(v) for k, v in env.items() if not isinstance(v, (TensorValue, tuple))}
        return tuple(int(evaluate(d, scalars)) for d in shape)
    except (Unbound, TypeError, ValueError):
        return None


# ------------------------------------------------------------------ argument conversion


def coerce_array(
    value: Any, dtype: str, ctx: Context, what: str, span: Span, cls: type = ArgumentError
) -> tuple[np.ndarray, bool]:
    """An argument as an array of the storage dtype. Returns (array, converted): converted is
    False when `value` itself is used (in place). Conversions must be exact: a float32 array
    for a BF16 parameter must hold BF16 values (checked), an int64 array for INT32 must fit."""
    storage = ctx.storage(dtype)
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) or np.isscalar(value):
            value = np.asarray(value)
        else:
            raise fault(
                "ArgumentMismatch",
                f"{what} must be a NumPy array for a {dtype} tensor, got {type(value).__name__}",
                span,
                cls=cls,
            )
    if value.dtype == storage:
        return value, False
    src = value.dtype
    src_float = src.kind == "f" or src == numerics.storage_dtype("BF16")
    if dtype in numerics.FLOAT_DTYPES:
        if not src_float:
            raise fault(
                "ArgumentMismatch",
                f"{what} is a {src} array, expected {dtype} (stored as {storage})",
                span,
                f"convert it: x.astype({_np_spelling(storage)})",
                cls=cls,
            )
        converted = numerics.cast(value, dtype, "rint", ctx.precision)
        idx = _first_change(value, converted)
        if idx is not None:
            raise fault(
                "InexactArgument",
                f"{what} ({dtype}) holds values that are not exactly representable in "
                f"{dtype}: element {list(idx)} is {value[idx]!r}",
                span,
                f"round it first (e.g. x.astype({_np_spelling(storage)})), or pass precision='fp32'"
                if dtype in ("BF16", "FP16")
                else f"convert it first: x.astype({_np_spelling(storage)})",
                cls=cls,
            )
        return converted, True
    if dtype in numerics.INT_DTYPES:
        if src.kind not in "iub":
            raise fault(
                "ArgumentMismatch",
                f"{what} is a {src} array, expected {dtype} (stored as {storage})",
                span,
                f"convert it: x.astype({_np_spelling(storage)})",
                cls=cls,
            )
        converted = value.astype(storage)
        if _first_change(value, converted) is not None:
            raise fault(
                "InexactArgument", f"{what} has values that do not fit {dtype}", span, cls=cls
            )
        return converted, True
    if dtype == "BOOL":
        if src.kind != "b":
            raise fault(
                "ArgumentMismatch", f"{what} is a {src} array, expected BOOL", span, cls=cls
            )
        return value.astype(np.bool_), True
    raise fault("ArgumentMismatch", f"{what}: unsupported dtype {dtype}", span, cls=cls)


def _first_change(before: np.ndarray, after: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first element whose value a conversion changed (NaN stays NaN;
    NumPy compares mixed integer types exactly), else None."""
    with np.errstate(invalid="ignore"):
        changed = (before != after) & ~((before != before) & (after != after))
    if not changed.any():
        return None
    return tuple(int(i) for i in np.argwhere(changed)[0])


def _np_spelling(dt: np.dtype) -> str:
    return "ml_dtypes.bfloat16" if dt == numerics.storage_dtype("BF16") else f"np.{dt}"


def coerce_scalar(
    value: Any, dtype: DType, ctx: Context, what: str, span: Span, cls: type = ArgumentError
) -> Any:
    """A scalar argument in the interpreter's representation (int for INDEX, bool for BOOL,
    else a NumPy scalar of the storage dtype). Floats round to FP32 (RNE); BF16/FP16
    scalars must be exact."""
    if isinstance(value, TensorValue):
        raise fault("ArgumentMismatch", f"{what} must be a scalar, got a tensor", span, cls=cls)
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise fault(
                "ArgumentMismatch",
                f"{what} must be a scalar, got an array of shape {list(value.shape)}",
                span,
                cls=cls,
            )
        value = value[()]
    name = dtype.name
    if dtype.is_bool:
        if not isinstance(value, (bool, np.bool_)):
            raise fault("ArgumentMismatch", f"{what} must be a bool, got {value!r}", span, cls=cls)
        return bool(value)
    if dtype.is_int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            if isinstance(value, (float, np.floating)) and float(value).is_integer():
                value = int(value)
            else:
                raise fault(
                    "ArgumentMismatch",
                    f"{what} must be an integer ({name}), got {value!r}",
                    span,
                    cls=cls,
                )
        v = int(value)
        if name != "INDEX":
            info = np.iinfo(numerics.storage_dtype(name))
            if not info.min <= v <= info.max:
                raise fault("InexactArgument", f"{what} = {v} does not fit {name}", span, cls=cls)
            return numerics.storage_dtype(name).type(v)
        return v
    if not isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, np.generic) and value.dtype == numerics.storage_dtype("BF16")
    ):
        raise fault(
            "ArgumentMismatch", f"{what} must be a number ({name}), got {value!r}", span, cls=cls
        )
    src = np.asarray(value)
    if src.dtype.kind in "iub":
        src = src.astype(np.float64)
    out = numerics.cast(src, name, "rint", ctx.precision)
    if name in ("BF16", "FP16") and not (
        float(out) == float(src) or (math.isnan(float(out)) and math.isnan(float(src)))
    ):
        raise fault(
            "InexactArgument",
            f"{what} = {value!r} is not exactly representable in {name}",
            span,
            cls=cls,
        )
    return out[()]


# ------------------------------------------------------------------ run


@dataclass
class RunResult:
    """What `execute` returns: the function's result, and the final state of every tensor
    argument (the caller's arrays where they were used in place)."""

    value: Any
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    trace: Trace | None = None


def run(
    program: Program,
    function_name: str,
    *args: Any,
    strict: bool = False,
    precision: str = "bf16",
    trace: str | os.PathLike | Trace | None = None,
    host: Mapping[str, Callable] | None = None,
    bounds_check: bool = True,
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
    ctx = Context(strict=bool(strict), precision=precision, bounds_check=bool(bounds_check))
    tr = trace if isinstance(trace, Trace) else (Trace() if trace is not None else None)
    if tr is not None:
        tr.function = f"{program.name}.{fn.name}"
    values, originals = prepare_arguments(fn, args, ctx)
    machine = Machine(program, ctx, host, tr)
    machine.bind_entry(fn, values)
    t0 = time.perf_counter_ns()
    try:
        result, ret_span = machine.invoke(fn, values, NO_SPAN)
        if strict:
            _check_outputs(fn, values, ret_span)
        out = _export(result, ctx, ret_span)
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


def prepare_arguments(
    fn: Function, args: Sequence[Any], ctx: Context
) -> tuple[list[Any], dict[str, tuple[Any, np.ndarray]]]:
    """The arguments of a run as interpreter values (shared with the C backend).

    Scalars are coerced; arrays of the storage dtype are used in place, others converted
    exactly (`originals`: parameter name -> (the caller's value, the converted array)); Out
    arrays arrive undefined: zero-filled, or poisoned in strict mode; Out arguments given as
    None are allocated once the dynamic dims are known from the other arguments."""
    _check_count(fn, args, fn.span, ArgumentError)
    values: list[Any] = [None] * len(args)
    originals: dict[str, tuple[Any, np.ndarray]] = {}
    # Scalars first: a Scalar[INDEX] parameter named like a dynamic dim binds it.
    env: dict[str, Any] = {}
    for i, (p, a) in enumerate(zip(fn.params, args)):
        if isinstance(p.type, ScalarType):
            values[i] = env[p.name] = coerce_scalar(
                a, p.type.dtype, ctx, f"argument '{p.name}'", p.var.span
            )
    missing = []
    for i, (p, a) in enumerate(zip(fn.params, args)):
        t = p.type
        if isinstance(t, ScalarType):
            continue
        if not isinstance(t, TensorType):
            raise fault(
                "BadParameter",
                f"unsupported parameter type of '{p.name}'",
                p.var.span,
                cls=ArgumentError,
            )
        if a is None:
            missing.append(i)
            continue
        arr, converted = coerce_array(a, t.dtype.name, ctx, f"argument '{p.name}'", p.var.span)
        if not converted and not arr.flags.writeable:
            arr, converted = arr.copy(), True
        if converted:
            originals[p.name] = (a, arr)
        out = p.direction == "Out"
        if out:
            arr[...] = _undefined_fill(t.dtype.name, ctx)
        values[i] = wrap_array(ctx, arr, t.dtype.name, p.name, defined=not out)
        for d, n in zip(t.shape, arr.shape):
            if isinstance(d, Var):
                env.setdefault(d.name, n)
    for i in missing:
        p = fn.params[i]
        shape = _eval_shape(p.type.shape, env) if p.direction == "Out" else None
        if shape is None:
            raise fault(
                "MissingArgument",
                f"argument '{p.name}' is None"
                + (
                    ", and its dims are not known from the other arguments"
                    if p.direction == "Out"
                    else f" but it is an {p.direction} tensor"
                ),
                p.var.span,
                "pass a NumPy array",
                cls=ArgumentError,
            )
        dtype = p.type.dtype.name
        data = np.full(shape, _undefined_fill(dtype, ctx), ctx.storage(dtype))
        values[i] = wrap_array(ctx, data, dtype, p.name, defined=False)
    return values, originals


def _undefined_fill(dtype: str, ctx: Context) -> np.generic:
    """What an Out parameter holds on entry: zero (default mode) or poison (strict)."""
    if ctx.strict:
        return numerics.poison_value(dtype, ctx.precision)
    return numerics.pad_value("zero", dtype, ctx.precision)


def write_back(
    fn: Function,
    values: Sequence[Any],
    originals: Mapping[str, tuple[Any, np.ndarray]],
    written: set[str],
) -> dict[str, np.ndarray]:
    """After a run: converted arguments the kernel wrote are written back exactly into the
    caller's (writable) arrays. Returns the final array of every tensor parameter."""
    arrays: dict[str, np.ndarray] = {}
    for p, v in zip(fn.params, values):
        if not isinstance(v, TensorValue):
            continue
        arrays[p.name] = v.buffer.data
        if p.name in originals:
            user, data = originals[p.name]
            if p.name in written and isinstance(user, np.ndarray) and user.flags.writeable:
                _write_back(user, data, p)
                arrays[p.name] = user
    return arrays


def _write_back(user: np.ndarray, data: np.ndarray, p) -> None:
    back = data.astype(user.dtype)
    idx = _first_change(data, back)
    if idx is not None:
        raise fault(
            "LossyWriteBack",
            f"the kernel wrote '{p.name}', but its new value at {list(idx)} "
            f"({data[idx]!r}) does not fit the caller's {user.dtype} array exactly",
            p.var.span,
            "pass float32 arrays for BF16/FP16 parameters the kernel writes when precision='fp32'"
            if data.dtype == np.float32 and user.dtype != np.float32
            else "pass an array of the storage dtype to have it updated in place",
            cls=ArgumentError,
        )
    user[...] = back


def _check_outputs(fn: Function, values: Sequence[Any], span: Span) -> None:
    """Strict mode: every element of every Out parameter must have been written."""
    for p, v in zip(fn.params, values):
        if p.direction != "Out" or not isinstance(v, TensorValue):
            continue
        mask = v.buffer.defined
        if mask is None or mask.all():
            continue
        idx = tuple(int(i) for i in np.argwhere(~mask)[0])
        missing = int((~mask).sum())
        ps = p.var.span
        raise fault(
            "UnwrittenOutput",
            f"Out parameter '{p.name}' element {list(idx)} was never written "
            f"({missing} of {mask.size} elements unwritten) when '{fn.name}' returned",
            span if span.line else fn.span,
            "write every element of an Out parameter, or declare it InOut if it keeps the "
            "caller's data",
            (f"'{p.name}' is declared at {ps}",),
        )


def _export(value: Any, ctx: Context, span: Span) -> Any:
    """Interpreter values -> NumPy (fresh arrays for tensors)."""
    if isinstance(value, tuple):
        return tuple(_export(v, ctx, span) for v in value)
    if isinstance(value, TensorValue):
        if ctx.strict:
            try:
                value.require(ctx, value.valid, "return value")
            except OpFault as f:
                raise fault(f.rule, f"return {f.message}", span, f.help, f.notes) from None
        return np.array(value.materialize(ctx), copy=True)
    return value
