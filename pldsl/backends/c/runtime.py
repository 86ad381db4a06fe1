"""`CompiledProgram`: run a compiled program through ctypes with `interpreter.run`'s interface.

Arguments are checked, converted and written back exactly as the interpreter does (the shared
`pldsl.execution` layer: `prepare_arguments`/`bind_entry`/`write_back`), and handed to C as `pt_tensor`
structs that point into the NumPy arrays (used in place). Faults come back as a site id plus
integers and are raised as `RuntimeFault` with the kernel's span. HOST SubWorker stubs call back
into Python through a ctypes callback, which runs the shared host call (`pldsl.execution.host`)
on values over C memory.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pldsl.diagnostics import NO_SPAN, Diagnostic, PldslError, RuntimeFault
from pldsl.execution import numerics
from pldsl.execution.arguments import (
    RunResult,
    partial_outputs,
    prepare_arguments,
    scalar_from_int,
    write_back,
)
from pldsl.execution.faults import ArgumentError, fault, with_note
from pldsl.execution.host import host_call
from pldsl.execution.memory import Buffer, Context, TensorValue, pad_name
from pldsl.ir.analysis import written_params
from pldsl.ir.nodes import Program
from pldsl.ir.types import TensorType

from . import build as _build
from .abi import Emitted
from .lowering import emit_program

MAXRANK = 8
I64x8 = ctypes.c_int64 * MAXRANK
PAD_NAME = ("null", "zero", "min", "max")  # pt_tensor.pad codes (PT_PAD_*)
PAD_NUM = {name: i for i, name in enumerate(PAD_NAME)}


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
        ("block_idx", ctypes.c_int64),
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


def _pattern(pad: int, dtype: str, precision: str) -> int:
    """The bit pattern of the pad value of pad code `pad` (what pldsl_export fills with)."""
    v = numerics.pad_value(PAD_NAME[pad], dtype, precision)
    raw = np.array(v, dtype=numerics.storage_dtype(dtype, precision)).tobytes()
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
    for n, s in zip(arr.shape, arr.strides):
        if n > 1 and (s % item != 0 or s <= 0):
            return False
    if arr.shape[-1] > 1 and arr.strides[-1] != item:
        return False
    return arr.flags.writeable


def _c_buffer(t: PtTensor, dtype: np.dtype) -> np.ndarray:
    """A writable NumPy view of a tensor's whole buffer (C memory)."""
    item = dtype.itemsize
    shape = tuple(t.bshape[: t.rank])
    strides = tuple(s * item for s in t.bstride[: t.rank])
    if any(n == 0 for n in shape):
        return np.zeros(shape, dtype)
    span = sum((n - 1) * s for n, s in zip(shape, strides)) + item
    flat = np.frombuffer((ctypes.c_char * span).from_address(t.base), dtype=dtype)
    return np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides, writeable=True)


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
        for var in ("PLDSL_NUM_THREADS", "OMP_NUM_THREADS"):
            v = os.environ.get(var, "").split(",")[0].strip()
            if v.isdigit() and int(v) > 0:
                return int(v)
        return _build.cpu_count()

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
        """`interpreter.run(program, function_name, *args, ...)` on native code."""
        return self.execute(function_name, args, strict=strict, precision=precision, trace=trace,
                            host=host, bounds_check=bounds_check).value  # fmt: skip

    def execute(
        self,
        function_name: str,
        args: Sequence[Any],
        *,
        strict: bool = False,
        precision: str | None = None,
        trace: Any = None,
        host: Mapping[str, Callable] | None = None,
        bounds_check: bool | None = None,
    ) -> RunResult:
        """`interpreter.execute` on native code: the result, the final array of every tensor
        argument and the names of those the kernel wrote (`trace` is always None)."""
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
        var = self.variant(precision)
        ctx = Context(strict=False, precision=precision, bounds_check=bounds_check)
        values, originals = prepare_arguments(fn, args, ctx, written_params(program, fn))
        try:
            result = _Call(self, var, fn, ctx, dict(host or {})).invoke(values)
        except RuntimeFault as err:
            raise with_note(err, partial_outputs(fn, values, originals)) from err.__cause__
        written = {
            p.name
            for p, v in zip(fn.params, values)
            if isinstance(v, TensorValue) and (v.buffer.written or p.direction != "In")
        }
        return RunResult(result, write_back(fn, values, originals, written), written)


class _Call:
    """One run: marshalling, the host callback, fault decoding."""

    def __init__(self, cp: CompiledProgram, var: _Variant, fn, ctx: Context, host: dict):
        self.cp, self.var, self.fn, self.ctx, self.host = cp, var, fn, ctx, host
        self.precision = self.ctx.precision
        self.pending: PldslError | None = None
        self.keep: list[Any] = []
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
        t.pad = PAD_NUM[pad_name(v.pad)]
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
        copies: dict[int, np.ndarray] = {}
        for p, v in zip(abi.params, values):
            if p.kind == "t":
                targs[p.slot], copy = self._tensor_in(v)
                if copy is not None:
                    copies[p.slot] = copy
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
        # what C wrote: the buffers' written flags (as the interpreter's), and copy-backs
        for p, v in zip(abi.params, values):
            if p.kind == "t" and PtBuf.from_address(targs[p.slot].buf).written:
                v.buffer.mark_written()
                if p.slot in copies:
                    v.buffer.data[...] = copies[p.slot]
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
                results.append(scalar_from_int(irets[slot], t.dtype))
        if abi.tuple_return:
            return tuple(results)
        if not results:
            return None
        return results[0]

    def _export(self, t: PtTensor, ttype: TensorType) -> np.ndarray | None:
        if not t.buf and not t.base:
            return None
        dtype = ttype.dtype.name
        st = numerics.storage_dtype(dtype, self.precision)
        shape = tuple(t.shape[d] for d in range(t.rank))
        out = np.empty(shape, st)
        pat = _pattern(t.pad, dtype, self.precision)
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
            self._host(fname, span, targs, iargs, fargs, trets, irets, frets)
            return 0
        except PldslError as exc:
            self.pending = exc
        except Exception as exc:  # noqa: BLE001 - a marshalling bug: report it at the call site
            self.pending = fault(
                "HostFunctionError",
                f"host function for '{fname}' raised {type(exc).__name__}: {exc}",
                span,
            )
        return 1

    def _host(self, fname, span, targs, iargs, fargs, trets, irets, frets) -> None:
        """The shared host call (`execution.host.host_call`: views or copies written back,
        argument checks, result conversion) on values over C memory; results go back to C."""
        fn = self.cp.program.functions[fname]
        abi = self.var.emitted.functions[fname]
        args: list[Any] = []
        slot_of: dict[int, int] = {}
        for p in abi.params:
            if p.kind == "t":
                v = self._value_of(targs[p.slot], p.type.dtype.name, p.name)
                slot_of[id(v)] = p.slot
                args.append(v)
            elif p.kind == "f":
                args.append(_float_scalar(fargs[p.slot], p.type.dtype.name, self.precision))
            else:
                args.append(scalar_from_int(iargs[p.slot], p.type.dtype))
        out = host_call(fn, args, span, self.ctx, self.host)
        for p in abi.params:
            if p.kind == "t" and targs[p.slot].buf:
                PtBuf.from_address(targs[p.slot].buf).written = 1
        results = out if fn.tuple_return else (out,)
        for (k, _t, slot), r in zip(abi.rets, results):
            if k == "t" and id(r) in slot_of:  # an argument returned: same window and buffer
                trets[slot] = targs[slot_of[id(r)]]
                self.var.lib.pldsl_retain(ctypes.byref(trets[slot]))
            elif k == "t":
                trets[slot] = self._new_c_tensor(np.ascontiguousarray(r.buffer.data))
            elif k == "f":
                frets[slot] = float(r)
            else:
                irets[slot] = int(r)

    def _value_of(self, t: PtTensor, dtype: str, name: str) -> TensorValue:
        """An executor value over a C tensor's memory."""
        r = t.rank
        data = _c_buffer(t, numerics.storage_dtype(dtype, self.precision))
        valid = tuple(min(v, n) for v, n in zip(t.valid[:r], t.shape[:r]))
        return TensorValue(Buffer(data, dtype, name), tuple(t.off[:r]), tuple(t.shape[:r]), valid,
                           PAD_NAME[t.pad])  # fmt: skip

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


def _float_scalar(v: float, dtype: str, precision: str):
    return numerics.storage_dtype(dtype, precision).type(v)
