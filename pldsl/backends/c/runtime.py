"""`CompiledProgram`: run a compiled program through ctypes with `interpreter.run`'s interface.

Arguments are checked and converted exactly as the interpreter does (its own
`coerce_array`/`coerce_scalar`/`Machine.bind` are reused), then handed to C as `pt_tensor`
structs that point into the NumPy arrays (used in place). Faults come back as a site id plus
integers and are raised as `RuntimeFault` with the kernel's span. HOST SubWorker stubs call back
into Python through a ctypes callback.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from interpreter import numerics
from interpreter.machine import ArgumentError, Machine, coerce_array, coerce_scalar, fault
from interpreter.memory import Context, TensorValue, wrap_array
from pldsl.diagnostics import NO_SPAN, Diagnostic, PldslError, RuntimeFault
from pldsl.ir.nodes import Program, Var
from pldsl.ir.symbolic import Unbound, evaluate
from pldsl.ir.types import ScalarType, TensorType

from . import build as _build
from .emitter import Emitted, emit_program

MAXRANK = 8
I64x8 = ctypes.c_int64 * MAXRANK
PAD_NUM = {None: 0, "null": 0, "zero": 1, "min": 2, "max": 3}
PAD_NAME = {0: "null", 1: "zero", 2: "min", 3: "max"}


class PtBuf(ctypes.Structure):
    _fields_ = [
        ("refcnt", ctypes.c_int64),
        ("written", ctypes.c_int32),
        ("unused_", ctypes.c_int32),
        ("nbytes", ctypes.c_size_t),
        ("pad_", ctypes.c_int64 * 5),
    ]


class PtTensor(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_void_p),
        ("buf", ctypes.c_void_p),
        ("rank", ctypes.c_int32),
        ("pad", ctypes.c_int32),
        ("bshape", I64x8),
        ("bstride", I64x8),
        ("off", I64x8),
        ("shape", I64x8),
        ("valid", I64x8),
    ]


HOSTFN = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_int32,
    ctypes.POINTER(PtTensor),
    ctypes.POINTER(ctypes.c_int64),
    ctypes.POINTER(ctypes.c_double),
    ctypes.POINTER(PtTensor),
    ctypes.POINTER(ctypes.c_int64),
    ctypes.POINTER(ctypes.c_double),
)


class PtCtx(ctypes.Structure):
    _fields_ = [
        ("err", ctypes.c_int32),
        ("site", ctypes.c_int32),
        ("vals", ctypes.c_int64 * 16),
        ("bounds_check", ctypes.c_int32),
        ("nthreads", ctypes.c_int32),
        ("host", HOSTFN),
        ("par_min_work", ctypes.c_int64),
    ]


DEFAULT_PAR_MIN_WORK = 100_000  # ~100 us of estimated work (analysis.work_estimate units: ns)


class _Variant:
    """One compiled shared object (one precision)."""

    def __init__(self, program: Program, precision: str, profile: bool = False):
        self.precision = precision
        self.profile = profile
        self.emitted: Emitted = emit_program(program, precision, profile)
        self.path = _build.build(self.emitted.source, self.emitted.line_spans, program.name,
                                 self.emitted.split)  # fmt: skip
        self.lib = _build.load(self.path)
        self.lib.pldsl_buf_alloc.restype = ctypes.c_void_p
        self.lib.pldsl_buf_alloc.argtypes = [ctypes.c_size_t]
        self.lib.pldsl_retain.argtypes = [ctypes.POINTER(PtTensor)]
        self.lib.pldsl_release.argtypes = [ctypes.POINTER(PtTensor)]
        self.lib.pldsl_export.argtypes = [ctypes.POINTER(PtTensor), ctypes.c_void_p, ctypes.c_int,
                                          ctypes.c_uint64]  # fmt: skip
        self.lib.pldsl_import_valid.argtypes = [ctypes.POINTER(PtTensor), ctypes.c_void_p,
                                                ctypes.c_int]  # fmt: skip
        self.entries: dict[str, Any] = {}
        for name in self.emitted.functions:
            f = getattr(self.lib, f"pldsl_entry_{name}")
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.POINTER(PtCtx), ctypes.POINTER(PtTensor),
                          ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                          ctypes.POINTER(PtTensor), ctypes.POINTER(ctypes.c_int64),
                          ctypes.POINTER(ctypes.c_double)]  # fmt: skip
            self.entries[name] = f
        if profile:
            self.lib.pldsl_profile.restype = ctypes.c_int


def _storage(dtype: str, precision: str) -> np.dtype:
    return numerics.storage_dtype(dtype, precision)


def _pattern(pad: str | None, dtype: str, precision: str) -> int:
    v = numerics.pad_value(pad or "null", dtype, precision)
    arr = np.array(v, dtype=_storage(dtype, precision))
    raw = arr.tobytes()
    return int.from_bytes(raw.ljust(8, b"\0"), "little")


def _external_tensor(arr: np.ndarray, keep: list) -> PtTensor:
    t = PtTensor()
    buf = PtBuf()
    buf.refcnt = -1
    buf.written = 0
    buf.nbytes = arr.nbytes
    keep.append(buf)
    item = arr.itemsize
    t.base = arr.ctypes.data
    t.buf = ctypes.addressof(buf)
    t.rank = arr.ndim
    t.pad = 0
    for d in range(arr.ndim):
        t.bshape[d] = t.shape[d] = t.valid[d] = arr.shape[d]
        t.bstride[d] = arr.strides[d] // item
        t.off[d] = 0
    return t


def _usable_in_place(arr: np.ndarray) -> bool:
    """C needs element strides (multiples of the item size), positive, and a contiguous last
    axis (or a last axis of extent <= 1)."""
    if arr.ndim == 0 or arr.ndim > MAXRANK:
        return False
    item = arr.itemsize
    for _d, (n, s) in enumerate(zip(arr.shape, arr.strides)):
        if n > 1 and (s % item != 0 or s <= 0):
            return False
    if arr.shape[-1] > 1 and arr.strides[-1] != item:
        return False
    return arr.flags.writeable


def _c_view(t: PtTensor, dtype: np.dtype) -> np.ndarray:
    """A writable NumPy view of a tensor's window (window inside its buffer)."""
    item = dtype.itemsize
    r = t.rank
    shape = tuple(t.shape[d] for d in range(r))
    strides = tuple(t.bstride[d] * item for d in range(r))
    origin = t.base + sum(t.off[d] * t.bstride[d] for d in range(r)) * item
    if any(n == 0 for n in shape):
        return np.zeros(shape, dtype)
    span = sum((n - 1) * s for n, s in zip(shape, strides)) + item
    raw = (ctypes.c_char * span).from_address(origin)
    flat = np.frombuffer(raw, dtype=dtype)
    return np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides, writeable=True)


def _in_buffer(t: PtTensor) -> bool:
    return all(t.off[d] + t.shape[d] <= t.bshape[d] for d in range(t.rank))


def _fully_valid(t: PtTensor) -> bool:
    return all(t.valid[d] == t.shape[d] for d in range(t.rank))


def _eval_shape(shape, env: Mapping[str, Any]):
    try:
        return tuple(int(evaluate(d, env)) for d in shape)
    except (Unbound, TypeError, ValueError):
        return None


class CompiledProgram:
    """A program compiled to native code. `run(fn, *args, ...)` behaves like
    `interpreter.run(program, fn, *args, ...)` (strict mode and traces excepted)."""

    def __init__(self, program: Program, *, bounds_check: bool = True, precision: str = "bf16"):
        if not isinstance(program, Program):
            raise TypeError(f"expected a captured pl.program, got {type(program).__name__}")
        if precision not in numerics.PRECISIONS:
            raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")
        self.program = program
        self.bounds_check = bool(bounds_check)
        self.precision = precision
        self._variants: dict[str, _Variant] = {}
        self._lock = threading.Lock()
        self.par_min_work = DEFAULT_PAR_MIN_WORK
        import os

        self.profile = os.environ.get("PLDSL_C_PROFILE", "") not in ("", "0")
        self.variant(precision)

    # ------------------------------------------------------------- compilation
    def variant(self, precision: str) -> _Variant:
        with self._lock:
            v = self._variants.get(precision)
            if v is None:
                v = _Variant(self.program, precision, self.profile)
                self._variants[precision] = v
            return v

    def profile_report(self, reset: bool = True, precision: str | None = None) -> str:
        """Wall time per top-level loop (needs PLDSL_C_PROFILE=1 when compiling)."""
        v = self.variant(precision or self.precision)
        if not v.profile:
            return "profiling is off (set PLDSL_C_PROFILE=1 before compile())"
        n = max(1, len(v.emitted.profile_sites))
        t = (ctypes.c_double * n)()
        c = (ctypes.c_int64 * n)()
        v.lib.pldsl_profile(t, c, 1 if reset else 0)
        rows = sorted(((t[i], c[i], *v.emitted.profile_sites[i]) for i in range(len(v.emitted.profile_sites))),
                      key=lambda r: -r[0])  # fmt: skip
        out = [f"{'seconds':>10} {'entries':>8}  loop"]
        for sec, cnt, what, span in rows:
            out.append(f"{sec:10.4f} {cnt:8d}  {what} at {span.file}:{span.line}")
        return "\n".join(out)

    def c_source(self, precision: str | None = None) -> str:
        return self.variant(precision or self.precision).emitted.source

    @property
    def library_path(self) -> str:
        return str(self.variant(self.precision).path)

    def parallel_loops(self, precision: str | None = None):
        """{function: [(span, parallel?, reason-if-not)]} for every pl.parallel loop."""
        return self.variant(precision or self.precision).emitted.parallel_loops

    def num_threads(self) -> int:
        """Threads a parallel loop may use: $PLDSL_NUM_THREADS, else $OMP_NUM_THREADS, else
        the CPUs this process may run on."""
        import os

        for var in ("PLDSL_NUM_THREADS", "OMP_NUM_THREADS"):
            v = os.environ.get(var, "").split(",")[0].strip()
            if v.isdigit() and int(v) > 0:
                return int(v)
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)

    # ------------------------------------------------------------- running
    def run(
        self,
        function_name: str,
        *args: Any,
        strict: bool = False,
        precision: str | None = None,
        trace: Any = None,
        host: Mapping[str, Callable] | None = None,
        bounds_check: bool | None = None,
    ) -> Any:
        program = self.program
        precision = self.precision if precision is None else precision
        bounds_check = self.bounds_check if bounds_check is None else bool(bounds_check)
        fn = program.functions.get(function_name)
        if fn is None:
            raise fault("UnknownFunction",
                        f"program '{program.name}' has no function '{function_name}'",
                        program.span, f"functions: {', '.join(program.functions)}",
                        cls=ArgumentError)  # fmt: skip
        if strict:
            raise fault("StrictNotSupported",
                        "the C backend does not implement strict mode (poisoned undefined memory)",
                        fn.span, "run it on the interpreter: interpreter.run(program, fn, ..., strict=True)",
                        cls=ArgumentError)  # fmt: skip
        if trace is not None:
            raise fault("TraceNotSupported", "the C backend does not record traces", fn.span,
                        "use interpreter.run(..., trace=...) for a trace", cls=ArgumentError)  # fmt: skip
        if precision not in numerics.PRECISIONS:
            raise fault("BadOption", f"precision must be 'bf16' or 'fp32', got {precision!r}",
                        cls=ArgumentError)  # fmt: skip
        if len(args) != len(fn.params):
            raise fault(
                "ArgumentCount",
                f"'{fn.name}' takes {len(fn.params)} arguments "
                f"({', '.join(p.name for p in fn.params)}), got {len(args)}",
                fn.span,
                cls=ArgumentError,
            )
        var = self.variant(precision)
        ctx = Context(strict=False, precision=precision, bounds_check=bounds_check)
        values, originals = _coerce_args(fn, args, ctx, precision)
        machine = Machine(program, ctx, host)
        env = machine.bind(fn, values, NO_SPAN, top=True)
        for p, v in zip(fn.params, values):
            t = p.type
            if isinstance(t, TensorType) and t.valid_shape is not None:
                scal = {
                    k: _py(x) for k, x in env.items() if not isinstance(x, (TensorValue, tuple))
                }
                valid = _eval_shape(t.valid_shape, scal)
                if valid is not None:
                    v.valid = tuple(max(0, min(a, b)) for a, b in zip(valid, v.shape))
        call = _Call(self, var, fn, ctx, host)
        result = call.invoke(values)
        # write-back of converted arguments (as interpreter.execute does)
        for i, (p, v) in enumerate(zip(fn.params, values)):
            if not isinstance(v, TensorValue):
                continue
            written = call.written[i] or p.direction != "In"
            if p.name in originals:
                user, data = originals[p.name]
                if written and isinstance(user, np.ndarray) and user.flags.writeable:
                    _write_back(user, data, p)
        return result


def _py(v: Any) -> Any:
    if isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    return float(v)


def _write_back(user, data, p) -> None:
    from interpreter.machine import _write_back as wb

    wb(user, data, p)


def _coerce_args(fn, args, ctx: Context, precision: str):
    """interpreter.execute's argument handling: scalars, arrays (used in place when of the
    storage dtype), Out arrays zero-filled, Out arguments given as None allocated."""
    values: list[Any] = [None] * len(args)
    originals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    scalars: dict[str, Any] = {}
    for i, (p, a) in enumerate(zip(fn.params, args)):
        if isinstance(p.type, ScalarType):
            values[i] = coerce_scalar(a, p.type.dtype, ctx, f"argument '{p.name}'", p.var.span)
            scalars[p.name] = values[i]
    for i, (p, a) in enumerate(zip(fn.params, args)):
        t = p.type
        if isinstance(t, ScalarType):
            continue
        if not isinstance(t, TensorType):
            raise fault("BadParameter", f"unsupported parameter type of '{p.name}'", p.var.span,
                        cls=ArgumentError)  # fmt: skip
        if a is None:
            continue
        arr, converted = coerce_array(a, t.dtype.name, ctx, f"argument '{p.name}'", p.var.span)
        if not converted and not arr.flags.writeable:
            arr, converted = arr.copy(), True
        if converted:
            originals[p.name] = (a, arr)
        if p.direction == "Out":
            arr[...] = numerics.pad_value("zero", t.dtype.name, precision)
        values[i] = wrap_array(ctx, arr, t.dtype.name, p.name, defined=p.direction != "Out")
    missing = [i for i, v in enumerate(values)
               if v is None and not isinstance(fn.params[i].type, ScalarType)]  # fmt: skip
    if missing:
        env = {k: _py(v) for k, v in scalars.items()}
        for p, v in zip(fn.params, values):
            if isinstance(v, TensorValue):
                for d, n in zip(p.type.shape, v.shape):
                    if isinstance(d, Var):
                        env.setdefault(d.name, n)
        for i in missing:
            p = fn.params[i]
            shape = _eval_shape(p.type.shape, env) if p.direction == "Out" else None
            if shape is None:
                raise fault(
                    "MissingArgument",
                    f"argument '{p.name}' is None"
                    + ("" if p.direction == "Out" else f" but it is an {p.direction} tensor")
                    + (", and its dims are not known from the other arguments"
                       if p.direction == "Out" else ""),
                    p.var.span,
                    "pass a NumPy array",
                    cls=ArgumentError,
                )  # fmt: skip
            storage = ctx.storage(p.type.dtype.name)
            values[i] = wrap_array(ctx, np.zeros(shape, storage), p.type.dtype.name, p.name,
                                   defined=False)  # fmt: skip
    return values, originals


class _Call:
    """One run: marshalling, the host callback, fault decoding."""

    def __init__(self, cp: CompiledProgram, var: _Variant, fn, ctx: Context, host):
        self.cp, self.var, self.fn, self.ctx = cp, var, fn, ctx
        self.host = dict(host or {})
        self.precision = ctx.precision
        self.pending: PldslError | None = None
        self.keep: list[Any] = []
        self.written: list[bool] = []
        self._cb = HOSTFN(self._host_cb)

    # ------------------------------------------------------------- marshalling
    def _tensor_in(self, v: TensorValue) -> tuple[PtTensor, np.ndarray | None]:
        """A pt_tensor over the value's buffer (a contiguous copy when C cannot use it)."""
        data = v.buffer.data
        copy_back = None
        if not _usable_in_place(data):
            copy = np.ascontiguousarray(data).copy()
            if copy.ndim == 0:
                raise fault("BadParameter", "rank-0 tensors are not supported by the C backend",
                            cls=ArgumentError)  # fmt: skip
            copy_back = copy
            data = copy
        self.keep.append(data)
        t = _external_tensor(data, self.keep)
        for d in range(v.rank):
            t.off[d] = v.offset[d]
            t.shape[d] = v.shape[d]
            t.valid[d] = v.valid[d]
        t.pad = PAD_NUM[_padname(v.pad)]
        return t, copy_back

    def invoke(self, values: Sequence[Any]) -> Any:
        var, fn = self.var, self.fn
        abi = var.emitted.functions[fn.name]
        targs = (PtTensor * max(abi.n_t, 1))()
        iargs = (ctypes.c_int64 * max(abi.n_i, 1))()
        fargs = (ctypes.c_double * max(abi.n_f, 1))()
        trets = (PtTensor * max(abi.nr_t, 1))()
        irets = (ctypes.c_int64 * max(abi.nr_i, 1))()
        frets = (ctypes.c_double * max(abi.nr_f, 1))()
        copies: list[tuple[int, np.ndarray, TensorValue]] = []
        bufs: list[int] = []
        for p, v in zip(abi.params, values):
            if p.kind == "t":
                t, copy = self._tensor_in(v)
                targs[p.slot] = t
                bufs.append(p.slot)
                if copy is not None:
                    copies.append((p.slot, copy, v))
            elif p.kind == "f":
                fargs[p.slot] = float(v)
            else:
                iargs[p.slot] = int(v)
        ctx = PtCtx()
        ctx.err = 0
        ctx.bounds_check = 1 if self.ctx.bounds_check else 0
        ctx.host = self._cb
        ctx.par_min_work = self.cp.par_min_work
        ctx.nthreads = self.cp.num_threads()
        rc = var.entries[fn.name](ctypes.byref(ctx), targs, iargs, fargs, trets, irets, frets)
        # written flags and copy-backs
        self.written = []
        slot_written = {}
        for slot in bufs:
            b = PtBuf.from_address(targs[slot].buf)
            slot_written[slot] = bool(b.written)
        for slot, copy, v in copies:
            if slot_written[slot]:
                v.buffer.data[...] = copy
        for p in abi.params:
            self.written.append(p.kind == "t" and slot_written.get(p.slot, False))
        if rc != 0 or ctx.err != 0:
            for i in range(abi.nr_t):
                var.lib.pldsl_release(ctypes.byref(trets[i]))
            if self.pending is not None:
                raise self.pending
            raise self._fault(ctx)
        results = []
        for k, t, slot in abi.rets:
            if k == "t":
                results.append(self._export(trets[slot], t))
            elif k == "f":
                results.append(_float_scalar(frets[slot], t.dtype.name, self.precision))
            else:
                results.append(_int_scalar(irets[slot], t.dtype))
        if abi.tuple_return:
            return tuple(results)
        if not results:
            return None
        return results[0]

    def _export(self, t: PtTensor, ttype: TensorType) -> np.ndarray | None:
        if not t.buf and not t.base:
            return None
        dtype = ttype.dtype.name
        st = _storage(dtype, self.precision)
        shape = tuple(t.shape[d] for d in range(t.rank))
        out = np.empty(shape, st)
        pat = _pattern(PAD_NAME.get(t.pad), dtype, self.precision)
        if out.size:
            self.var.lib.pldsl_export(ctypes.byref(t), out.ctypes.data, st.itemsize, pat)
        self.var.lib.pldsl_release(ctypes.byref(t))
        return out

    def _fault(self, ctx: PtCtx) -> RuntimeFault:
        sites = self.var.emitted.sites
        if 0 <= ctx.site < len(sites):
            s = sites[ctx.site]
            vals = list(ctx.vals)
            try:
                msg = s.render(vals)
            except Exception as exc:  # noqa: BLE001 - a message bug must not hide the fault
                msg = f"runtime fault ({exc})"
            return RuntimeFault(Diagnostic(s.rule, "error", msg, s.span, s.help))
        return RuntimeFault(
            Diagnostic("RuntimeFault", "error", f"fault at site {ctx.site}", NO_SPAN)
        )

    # ------------------------------------------------------------- host callback
    def _host_cb(self, ctx_p, site, targs, iargs, fargs, trets, irets, frets) -> int:
        fname, span = self.var.emitted.host_sites.get(site, (None, NO_SPAN))
        try:
            return self._host(fname, span, targs, iargs, fargs, trets, irets, frets)
        except PldslError as exc:
            self.pending = exc
        except Exception as exc:  # noqa: BLE001 - user code: report it at the call site
            self.pending = fault(
                "HostFunctionError",
                f"host function for '{fname}' raised {type(exc).__name__}: {exc}",
                span,
            )
        return 1

    def _host(self, fname, span, targs, iargs, fargs, trets, irets, frets) -> int:
        fn = self.cp.program.functions[fname]
        abi = self.var.emitted.functions[fname]
        cb = self.host.get(fname)
        if cb is None:
            raise fault(
                "MissingHostFunction",
                f"'{fname}' is a HOST SubWorker stub and no Python function is bound to it",
                span,
                f"pass host={{'{fname}': callable}} to run",
            )
        lib = self.var.lib
        arrays: list[Any] = []
        views: dict[int, int] = {}
        writebacks: list[tuple[np.ndarray, int]] = []
        env: dict[str, Any] = {}
        for p in abi.params:
            if p.kind == "t":
                t = targs[p.slot]
                dt = _storage(p.type.dtype.name, self.precision)
                if _in_buffer(t) and _fully_valid(t):
                    a = _c_view(t, dt)
                else:
                    a = np.empty(tuple(t.shape[d] for d in range(t.rank)), dt)
                    pat = _pattern(PAD_NAME.get(t.pad), p.type.dtype.name, self.precision)
                    if a.size:
                        lib.pldsl_export(ctypes.byref(t), a.ctypes.data, dt.itemsize, pat)
                    writebacks.append((a, p.slot))
                views[id(a)] = p.slot
                arrays.append(a)
                for d, n in zip(p.type.shape, a.shape):
                    if isinstance(d, Var):
                        env.setdefault(d.name, n)
            elif p.kind == "f":
                arrays.append(_float_scalar(fargs[p.slot], p.type.dtype.name, self.precision))
            else:
                arrays.append(_int_scalar(iargs[p.slot], p.type.dtype))
                env[p.name] = int(iargs[p.slot])
        out = cb(*arrays)
        for a, slot in writebacks:
            t = targs[slot]
            c = np.ascontiguousarray(a)
            if c.size:
                lib.pldsl_import_valid(ctypes.byref(t), c.ctypes.data, c.itemsize)
        for p in abi.params:
            if p.kind == "t" and targs[p.slot].buf:
                PtBuf.from_address(targs[p.slot].buf).written = 1
        if not fn.return_types:
            return 0
        results = out if fn.tuple_return else (out,)
        if fn.tuple_return and (
            not isinstance(out, (tuple, list)) or len(out) != len(fn.return_types)
        ):
            raise fault(
                "HostFunctionError",
                f"host function for '{fname}' must return a tuple of {len(fn.return_types)} "
                f"values, got {type(out).__name__}",
                span,
            )
        for i, ((k, t, slot), r) in enumerate(zip(abi.rets, results)):
            what = f"return value {i} of host function '{fname}'"
            if k == "t":
                if isinstance(r, np.ndarray) and id(r) in views:
                    src = targs[views[id(r)]]
                    ctypes.memmove(
                        ctypes.byref(trets[slot]), ctypes.byref(src), ctypes.sizeof(PtTensor)
                    )
                    lib.pldsl_retain(ctypes.byref(trets[slot]))
                    continue
                arr, _ = coerce_array(r, t.dtype.name, self.ctx, what, span, RuntimeFault)
                shape = _eval_shape(t.shape, env)
                if shape is not None and tuple(arr.shape) != shape:
                    raise fault("HostFunctionError",
                                f"{what} has shape {list(arr.shape)}, declared {list(shape)}", span)  # fmt: skip
                trets[slot] = self._new_c_tensor(np.ascontiguousarray(arr))
            elif k == "f":
                v = coerce_scalar(r, t.dtype, self.ctx, what, span, RuntimeFault)
                frets[slot] = float(v)
            else:
                v = coerce_scalar(r, t.dtype, self.ctx, what, span, RuntimeFault)
                irets[slot] = int(v)
        return 0

    def _new_c_tensor(self, arr: np.ndarray) -> PtTensor:
        lib = self.var.lib
        buf = lib.pldsl_buf_alloc(max(arr.nbytes, 1))
        if not buf:
            raise MemoryError("cannot allocate a C buffer")
        data = buf + 64
        if arr.nbytes:
            ctypes.memmove(data, arr.ctypes.data, arr.nbytes)
        t = PtTensor()
        t.base = data
        t.buf = buf
        t.rank = arr.ndim
        s = 1
        for d in range(arr.ndim - 1, -1, -1):
            t.bshape[d] = t.shape[d] = t.valid[d] = arr.shape[d]
            t.bstride[d] = s
            s *= max(arr.shape[d], 1)
        return t


def _padname(pad) -> str | None:
    if pad is None:
        return None
    return str(getattr(pad, "value", pad)).lower().rsplit(".", 1)[-1]


def _float_scalar(v: float, dtype: str, precision: str):
    return numerics.storage_dtype(dtype, precision).type(v)


def _int_scalar(v: int, dtype) -> Any:
    if dtype.name == "INDEX":
        return int(v)
    if dtype.is_bool:
        return bool(v)
    st = numerics.storage_dtype(dtype.name)
    if st.kind == "u":
        return st.type(int(v) % (1 << (8 * st.itemsize)))
    return st.type(int(v))
