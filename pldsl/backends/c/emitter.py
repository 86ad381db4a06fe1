"""IR -> one C translation unit per program.

Layout of the generated C:

* ``#include "pldsl_rt.h"`` (tensors, buffers, conversions, matmul);
* one ``static`` kernel function per distinct (op, dtypes, rank) instance, generated here;
* one ``static void pf_<name>(...)`` per program function: tensor parameters by pointer,
  scalars by value (``int64_t`` ints, ``int`` bools, ``double`` floats holding the value of
  their dtype), results through pointers;
* one exported ``int pldsl_entry_<name>(ctx, targs, iargs, fargs, trets, irets, frets)`` per
  function, called from Python through ctypes.

Memory: a tensor variable is a `pt_tensor` (buffer pointer, window, valid box, pad mode)
holding one reference to a reference-counted buffer. Computed tiles are fresh buffers;
`pl.slice`/`pl.reshape` (when NumPy would not copy) are views sharing the buffer;
`pl.assemble`/`pl.write` write in place. Temporaries of a statement are released at its end;
every tensor variable is released when the function (or a parallel iteration) ends.

Faults: every op that can fault has a *site* (an integer) that maps to the kernel's span and
a message renderer; the C code records the site and up to 16 integers and unwinds.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pldsl.diagnostics import NO_SPAN, CaptureError, Diagnostic, Span
from pldsl.dtypes import BOOL, INDEX
from pldsl.execution import numerics
from pldsl.execution.memory import pad_name
from pldsl.ir.analysis import ParallelAnalysis, maybe_unassigned_uses, own_yields
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
    Program,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
    walk,
)
from pldsl.ir.traversal import iter_stmts
from pldsl.ir.types import ScalarType, TensorType, TupleType

from .ctypes_map import (
    Storage,
    effective,
    float_literal,
    int_literal,
    round_scalar,
    scalar_ctype,
    storage,
)

MAX_RANK = 8
PAD_CODE = {"null": "PT_PAD_NULL", "zero": "PT_PAD_ZERO", "min": "PT_PAD_MIN", "max": "PT_PAD_MAX"}
MODE_CODE = {"none": "PT_M_NONE", "rint": "PT_M_RINT", "round": "PT_M_ROUND",
             "floor": "PT_M_FLOOR", "ceil": "PT_M_CEIL", "trunc": "PT_M_TRUNC", "odd": "PT_M_ODD"}  # fmt: skip


class CBackendError(CaptureError):
    """A construct the C backend cannot compile (reported like a capture error)."""


def unsupported(message: str, span: Span = NO_SPAN, help: str | None = None) -> CBackendError:
    return CBackendError(Diagnostic("CBackendUnsupported", "error", message, span, help))


# ------------------------------------------------------------------ results


@dataclass
class Site:
    span: Span
    rule: str
    render: Callable[[list[int]], str]
    help: str | None = None


@dataclass
class ParamABI:
    name: str
    kind: str  # "t" tensor, "i" int, "b" bool, "f" float
    type: Any
    direction: str
    slot: int  # index into targs / iargs / fargs


@dataclass
class FnABI:
    name: str
    params: list[ParamABI]
    rets: list[tuple[str, Any, int]]  # (kind, type, slot)
    tuple_return: bool
    host_stub: bool
    n_t: int = 0
    n_i: int = 0
    n_f: int = 0
    nr_t: int = 0
    nr_i: int = 0
    nr_f: int = 0


@dataclass
class Emitted:
    source: str
    sites: list[Site]
    line_spans: list[Span | None]
    functions: dict[str, FnABI]
    host_sites: dict[int, tuple[str, Span]]
    parallel_loops: dict[str, list[tuple[Span, bool, str]]] = field(default_factory=dict)
    profile_sites: list[tuple[str, Span]] = field(default_factory=list)
    # (preamble, kernel definitions, preamble + functions): pieces for a parallel build
    split: tuple[str, list[str], str] | None = None


@dataclass
class CVal:
    kind: str  # "t" tensor lvalue, "s" scalar expression, "tuple", "none"
    code: str = ""
    type: Any = None
    owned: bool = False
    items: list | None = None


def _cname(name: str) -> str:
    return "v_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _kind_of(t: Any) -> str:
    if isinstance(t, TensorType):
        return "t"
    if isinstance(t, ScalarType):
        if t.dtype.is_float:
            return "f"
        if t.dtype.is_bool:
            return "b"
        return "i"
    raise TypeError(t)


def _slots(types) -> tuple[list[tuple[str, int]], tuple[int, int, int]]:
    """(kind, slot) of each type: tensors, ints (and bools) and floats are numbered apart
    (the targs / iargs / fargs arrays of an entry); and the three counts."""
    count = {"t": 0, "i": 0, "f": 0}
    out = []
    for t in types:
        k = _kind_of(t)
        array = "i" if k == "b" else k
        out.append((k, count[array]))
        count[array] += 1
    return out, (count["t"], count["i"], count["f"])


# ------------------------------------------------------------------ scopes


class _Scope:
    def __init__(self, fail_label: str, indent: int):
        self.fail_label = fail_label
        self.decls: list[str] = []
        self.release: list[str] = []
        self.indent = indent
        self.free_t: list[str] = []
        self.n_t = 0
        self.n_s = 0
        self.declared: set[str] = set()


class Emitter:
    def __init__(self, program: Program, precision: str = "bf16", profile: bool = False):
        self.program = program
        self.precision = precision
        self.profile = profile
        self.prof_sites: list[tuple[str, Span]] = []
        self.sites: list[Site] = []
        self.kernels: dict[Any, str] = {}
        self.kernel_code: list[str] = []
        self.host_sites: dict[int, tuple[str, Span]] = {}
        self.functions = program.functions
        self.abis: dict[str, FnABI] = {}
        self.parallel_report: dict[str, list[tuple[Span, bool, str]]] = {}
        self._label = 0
        self._rets: dict[str, tuple[tuple, bool]] = {}
        self._stmt_temps: list[str] = []  # tensor temporaries of the current statement
        self._tensor_hidden: set[str] = set()  # hidden tensor variables (loop carries)

    # ------------------------------------------------------------- public
    def emit(self) -> Emitted:
        for fn in self.program.function_list:
            self.abis[fn.name] = self._abi(fn)
        bodies: list[list[tuple[str, Span | None]]] = []
        protos: list[str] = []
        for fn in self.program.function_list:
            protos.append(self._proto(fn) + ";")
            bodies.append(self._function(fn))
        out: list[tuple[str, Span | None]] = []

        def add(text: str, span: Span | None = None) -> None:
            for ln in text.split("\n"):
                out.append((ln, span))

        add(f"/* generated by pldsl.backends.c from program {self.program.name} */")
        add(f"/* precision={self.precision} */")
        add('#include "pldsl_rt.h"')
        add("")
        if self.profile:
            add("#include <time.h>")
            add("static double pt_prof_t[PT_PROF_N]; static int64_t pt_prof_n[PT_PROF_N];")
            add(
                "PT_INLINE double pt_now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }"
            )
            add(
                '__attribute__((visibility("default"))) int pldsl_profile(double *t, int64_t *n, int reset) {'
            )
            add(
                "    for (int i = 0; i < PT_PROF_N; i++) { t[i] = pt_prof_t[i]; n[i] = pt_prof_n[i]; if (reset) { pt_prof_t[i] = 0; pt_prof_n[i] = 0; } }"
            )
            add("    return PT_PROF_N;")
            add("}")
            add("")
        for p in protos:
            add(p)
        kprotos = [k.split("{", 1)[0].rstrip().replace("static void", "PT_KERNEL void", 1) + ";"
                   for k in self.kernel_code]  # fmt: skip
        for kp in kprotos:
            add(kp)
        add("")
        preamble_len = len(out)
        kdefs = [k.replace("static void", "PT_KERNEL void", 1) for k in self.kernel_code]
        for k in kdefs:
            add(k)
            add("")
        kernels_end = len(out)
        for b in bodies:
            out.extend(b)
            add("")
        for fn in self.program.function_list:
            add(self._entry(fn))
            add("")
        source = "\n".join(t for t, _ in out) + "\n"
        preamble = "\n".join(t for t, _ in out[:preamble_len]) + "\n"
        rest = "\n".join(t for t, _ in out[kernels_end:]) + "\n"
        spans = [s for _, s in out]
        prefix = ""
        if self.profile:
            prefix = f"#define PT_PROF_N {max(1, len(self.prof_sites))}\n"
            source = prefix + source
            spans = [None] + spans
        em = Emitted(source, self.sites, spans, self.abis, self.host_sites, self.parallel_report)
        em.profile_sites = self.prof_sites
        em.split = (prefix + preamble, kdefs, prefix + preamble + rest)
        return em

    # ------------------------------------------------------------- sites
    def site(self, span: Span, rule: str, render: Callable[[list[int]], str],
             help: str | None = None) -> int:  # fmt: skip
        self.sites.append(Site(span, rule, render, help))
        return len(self.sites) - 1

    def sites_block(self, span: Span, entries: list[tuple[str, Callable, str | None]]) -> int:
        base = len(self.sites)
        for rule, render, help in entries:
            self.site(span, rule, render, help)
        return base

    # ------------------------------------------------------------- ABI
    def rets(self, fn: Function) -> tuple[tuple, bool]:
        """(result types, tuple?) of a function. A function without a return annotation whose
        return value is a call of another unannotated function has no inferred types; the
        interpreter returns the value anyway, so take the callee's."""
        cache = self._rets
        if fn.name in cache:
            return cache[fn.name]
        cache[fn.name] = (tuple(fn.return_types), fn.tuple_return)
        if not fn.return_types:
            for st in iter_stmts(fn.body):
                if isinstance(st, Return) and st.values:
                    types: list = []
                    for v in st.values:
                        if isinstance(v, Call) and v.func in self.functions:
                            rt, tup = self.rets(self.functions[v.func])
                            types += (
                                list(rt)
                                if (tup and len(st.values) > 1)
                                else ([TupleType(rt)] if tup else list(rt[:1]))
                            )
                        else:
                            types.append(getattr(v, "type", None))
                    if types and all(isinstance(t, (TensorType, ScalarType)) for t in types):
                        cache[fn.name] = (tuple(types), fn.tuple_return)
                    elif len(types) == 1 and isinstance(types[0], TupleType):
                        cache[fn.name] = (tuple(types[0].items), True)
                    break
        return cache[fn.name]

    def _abi(self, fn: Function) -> FnABI:
        rtypes, tup = self.rets(fn)
        if any(isinstance(t, TupleType) for t in rtypes):
            raise unsupported("nested tuple returns are not supported", fn.span)
        params, (n_t, n_i, n_f) = _slots(p.type for p in fn.params)
        rets, (nr_t, nr_i, nr_f) = _slots(rtypes)
        return FnABI(
            fn.name,
            [ParamABI(p.name, k, p.type, p.direction, slot) for p, (k, slot) in zip(fn.params, params)],
            [(k, t, slot) for t, (k, slot) in zip(rtypes, rets)],
            tup, fn.is_host_stub, n_t, n_i, n_f, nr_t, nr_i, nr_f,
        )  # fmt: skip

    def _proto(self, fn: Function) -> str:
        parts = ["pt_ctx *ctx", "int depth"]
        for p in fn.params:
            k = _kind_of(p.type)
            if k == "t":
                parts.append(f"const pt_tensor *pa_{p.name}")
            else:
                parts.append(f"{scalar_ctype(p.type.dtype)} pa_{p.name}")
        for i, t in enumerate(self.rets(fn)[0]):
            k = _kind_of(t)
            parts.append(f"pt_tensor *pr_{i}" if k == "t" else f"{scalar_ctype(t.dtype)} *pr_{i}")
        return f"PT_ORCH static void pf_{fn.name}({', '.join(parts)})"

    def _entry(self, fn: Function) -> str:
        abi = self.abis[fn.name]
        lines = [
            f'__attribute__((visibility("default"))) int pldsl_entry_{fn.name}(pt_ctx *ctx, '
            "pt_tensor *targs, int64_t *iargs, double *fargs, pt_tensor *trets, int64_t *irets, "
            "double *frets) {"
        ]
        args = ["ctx", "0"]
        for p in abi.params:
            if p.kind == "t":
                args.append(f"&targs[{p.slot}]")
            elif p.kind == "f":
                args.append(f"fargs[{p.slot}]")
            elif p.kind == "b":
                args.append(f"(int)iargs[{p.slot}]")
            else:
                args.append(f"iargs[{p.slot}]")
        pre, post = [], []
        for i, (k, _t, slot) in enumerate(abi.rets):
            if k == "t":
                args.append(f"&trets[{slot}]")
            elif k == "f":
                args.append(f"&frets[{slot}]")
            elif k == "b":
                pre.append(f"    int rb_{i} = 0;")
                args.append(f"&rb_{i}")
                post.append(f"    irets[{slot}] = rb_{i};")
            else:
                args.append(f"&irets[{slot}]")
        lines += pre
        lines.append(f"    pf_{fn.name}({', '.join(args)});")
        lines += post
        lines.append("    return ctx->err;")
        lines.append("}")
        return "\n".join(lines)

    # ------------------------------------------------------------- function bodies
    def _function(self, fn: Function) -> list[tuple[str, Span | None]]:
        self.fn = fn
        self.lines: list[tuple[str, Span | None]] = []
        self.cur_span: Span | None = fn.span
        self.vartypes: dict[str, Any] = {}
        for n in walk(fn):
            if isinstance(n, Var):
                self.vartypes.setdefault(n.name, n.type)
        for p in fn.params:
            self.vartypes[p.name] = p.type
        for v in fn.dynamic_dims:
            self.vartypes.setdefault(v.name, ScalarType(INDEX))
        self.flagged = maybe_unassigned_uses(fn) if not fn.is_host_stub else set()
        self.par = ParallelAnalysis(fn) if not fn.is_host_stub else None
        self.loops: list[dict] = []
        report = self.parallel_report.setdefault(fn.name, [])
        header = self._proto(fn) + " {"
        root = _Scope("L_end", 1)
        self.scopes = [root]
        self.indent = 1
        if fn.is_host_stub:
            self._host_stub_body(fn)
        else:
            self._prologue(fn)
            self.block(fn.body)
        body = self.lines
        # declarations (all at the top, before any goto)
        decl: list[tuple[str, Span | None]] = [(header, fn.span)]
        for name, t in self.vartypes.items():
            self._declare_var(root, name, t)
        for d in root.decls:
            decl.append(("    " + d, None))
        tail = [("L_end:", None)]
        for r in root.release:
            tail.append((f"    pt_release(&{r});", None))
        tail.append(("    return;", None))
        tail.append(("}", None))
        if self.par:
            for s in iter_stmts(fn.body):
                plan = self.par.plans.get(id(s))
                if plan is not None:
                    report.append((s.span, plan.parallel, plan.reason))
        return decl + body + tail

    def _declare_var(self, scope: _Scope, name: str, t: Any) -> None:
        if name in scope.declared:
            return
        scope.declared.add(name)
        c = _cname(name)
        if isinstance(t, TensorType):
            scope.decls.append(f"pt_tensor {c} = PT_EMPTY;")
            scope.release.append(c)
        elif isinstance(t, ScalarType):
            scope.decls.append(f"{scalar_ctype(t.dtype)} {c} = 0;")
        elif isinstance(t, TupleType):
            for i, it in enumerate(t.items):
                self._declare_var(scope, f"{name}__{i}", it)
        if name in self.flagged:
            scope.decls.append(f"int d_{c} = 0;")

    def line(self, text: str) -> None:
        self.lines.append(("    " * self.indent + text, self.cur_span))

    @property
    def scope(self) -> _Scope:
        return self.scopes[-1]

    def check(self) -> None:
        self.line(f"if (PT_ERR(ctx)) goto {self.scope.fail_label};")

    def new_label(self, prefix: str) -> str:
        self._label += 1
        return f"{prefix}{self._label}"

    def ttemp(self) -> str:
        sc = self.scope
        if sc.free_t:
            name = sc.free_t.pop()
        else:
            sc.n_t += 1
            name = f"t{len(self.scopes)}_{sc.n_t}"
            sc.decls.append(f"pt_tensor {name} = PT_EMPTY;")
            sc.release.append(name)
        self._stmt_temps.append(name)
        return name

    def stemp(self, ctype: str) -> str:
        sc = self.scope
        sc.n_s += 1
        name = f"s{len(self.scopes)}_{sc.n_s}"
        sc.decls.append(f"{ctype} {name} = 0;")
        return name

    def begin_stmt(self) -> list[str]:
        saved = self._stmt_temps
        self._stmt_temps = []
        return saved

    def end_stmt(self, saved: list[str]) -> None:
        for t in self._stmt_temps:
            self.line(f"pt_release(&{t});")
            self.scope.free_t.append(t)
        self._stmt_temps = saved

    # ------------------------------------------------------------- prologue
    def _prologue(self, fn: Function) -> None:
        self.line("if (depth > 200) {")
        sid = self.site(
            fn.span, "RecursionLimit", lambda v, n=fn.name: f"call depth exceeds 200 at '{n}'"
        )
        self.line(f"    PT_FAIL0(ctx, {sid}); goto L_end;")
        self.line("}")
        bound: set[str] = set()
        for p in fn.params:
            c = _cname(p.name)
            if isinstance(p.type, TensorType):
                continue
            self.line(f"{c} = pa_{p.name};")
            bound.add(p.name)
            if p.name in self.flagged:
                self.line(f"d_{c} = 1;")
        for p in fn.params:
            c = _cname(p.name)
            if not isinstance(p.type, TensorType):
                continue
            self.line(f"{c} = *pa_{p.name}; pt_retain(&{c});")
            if p.name in self.flagged:
                self.line(f"d_{c} = 1;")
            for axis, d in enumerate(p.type.shape):
                if isinstance(d, Var) and d.name not in bound:
                    self.line(f"{_cname(d.name)} = {c}.shape[{axis}];")
                    if d.name in self.flagged:
                        self.line(f"d_{_cname(d.name)} = 1;")
                    bound.add(d.name)

    def _host_stub_body(self, fn: Function) -> None:
        """A HOST SubWorker stub called as an entry: forward to the Python callable."""
        args = [f"pa_{p.name}" for p in fn.params]
        outs = [f"pr_{i}" for i in range(len(self.rets(fn)[0]))]
        self._emit_host_call(fn, args, outs, fn.span)

    def _emit_host_call(self, fn: Function, args: list[str], outs: list[str], span: Span) -> None:
        """Pack arguments, call ctx->host (a ctypes callback into Python), unpack results.
        `args`: tensor pointers / scalar expressions; `outs`: result pointers."""
        abi = self.abis[fn.name]
        sid = self.site(
            span, "HostFunctionError", lambda v, n=fn.name: f"host function for '{n}' failed"
        )
        self.host_sites[sid] = (fn.name, span)
        nt, ni, nf = max(abi.n_t, 1), max(abi.n_i, 1), max(abi.n_f, 1)
        rt, ri, rf = max(abi.nr_t, 1), max(abi.nr_i, 1), max(abi.nr_f, 1)
        self.line("{")
        self.indent += 1
        self.line(
            f"pt_tensor ht_[{nt}], hrt_[{rt}]; int64_t hi_[{ni}], hri_[{ri}]; double hf_[{nf}], hrf_[{rf}];"
        )
        self.line("memset(ht_, 0, sizeof(ht_)); memset(hrt_, 0, sizeof(hrt_));")
        self.line("memset(hi_, 0, sizeof(hi_)); memset(hri_, 0, sizeof(hri_));")
        self.line("memset(hf_, 0, sizeof(hf_)); memset(hrf_, 0, sizeof(hrf_));")
        for p, a in zip(abi.params, args):
            if p.kind == "t":
                self.line(f"ht_[{p.slot}] = *({a});")
            elif p.kind == "f":
                self.line(f"hf_[{p.slot}] = (double)({a});")
            else:
                self.line(f"hi_[{p.slot}] = (int64_t)({a});")
        self.line(
            f"if (!ctx->host || ctx->host(ctx, {sid}, ht_, hi_, hf_, hrt_, hri_, hrf_) != 0) {{"
        )
        self.line(f"    for (int k_ = 0; k_ < {rt}; k_++) pt_release(&hrt_[k_]);")
        self.line(f"    PT_FAIL0(ctx, {sid}); goto {self.scope.fail_label};")
        self.line("}")
        for (k, _t, slot), o in zip(abi.rets, outs):
            if k == "t":
                self.line(f"pt_move({o}, &hrt_[{slot}]);")
            elif k == "f":
                self.line(f"*({o}) = hrf_[{slot}];")
            elif k == "b":
                self.line(f"*({o}) = (int)hri_[{slot}];")
            else:
                self.line(f"*({o}) = hri_[{slot}];")
        self.indent -= 1
        self.line("}")

    # ------------------------------------------------------------- statements
    def block(self, stmts) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s) -> None:
        old = self.cur_span
        self.cur_span = s.span
        self.line(f"/* {_span_text(s.span)} */")
        if isinstance(s, Assign):
            self.s_assign(s)
        elif isinstance(s, ExprStmt):
            saved = self.begin_stmt()
            self.expr(s.expr)
            self.end_stmt(saved)
        elif isinstance(s, For):
            if self.profile:
                self._profiled_for(s)
            else:
                self.s_for(s)
        elif isinstance(s, Yield):
            self.s_yield(s)
        elif isinstance(s, If):
            self.s_if(s)
        elif isinstance(s, Scope):
            self.block(s.body)
        elif isinstance(s, Return):
            self.s_return(s)
        elif isinstance(s, Break):
            self.s_break(s)
        elif isinstance(s, Continue):
            self.s_continue(s)
        else:
            raise unsupported(f"statement {type(s).__name__}", s.span)
        self.cur_span = old

    def _profiled_for(self, s: For) -> None:
        """A loop timed into pt_prof_t/pt_prof_n (PLDSL_C_PROFILE=1 builds)."""
        pid = len(self.prof_sites)
        self.prof_sites.append((f"{self.fn.name}: pl.{s.kind} loop", s.span))
        tv = self.stemp("double")
        self.line(f"{tv} = pt_now();")
        self.s_for(s)
        self.line(
            f"{{ double dt_ = pt_now() - {tv}; __atomic_fetch_add(&pt_prof_n[{pid}], 1, __ATOMIC_RELAXED);"
        )
        self.line(
            f"  double old_ = pt_prof_t[{pid}], new_; do {{ new_ = old_ + dt_; }} while (!__atomic_compare_exchange(&pt_prof_t[{pid}], &old_, &new_, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)); }}"
        )

    def bind(self, name: str, val: CVal) -> None:
        """name := val (tensor references moved/retained; scalars copied)."""
        t = self.vartypes.get(name)
        c = _cname(name)
        if isinstance(t, TupleType):
            if val.kind != "tuple":
                raise unsupported(f"cannot bind '{name}'", self.cur_span or NO_SPAN)
            for i, item in enumerate(val.items):
                self.bind(f"{name}__{i}", item)
            return
        if val.kind == "t":
            if val.owned:
                self.line(f"pt_move(&{c}, &{val.code});")
            elif val.code != c:
                self.line(f"pt_assign(&{c}, &{val.code});")
        elif val.kind == "s":
            self.line(f"{c} = {val.code};")
        elif val.kind == "none":
            self.line(f"/* '{name}' bound to None */")
        else:
            raise unsupported(f"cannot bind '{name}' to a tuple", self.cur_span or NO_SPAN)
        if name in self.flagged:
            self.line(f"d_{c} = 1;")

    def s_assign(self, s: Assign) -> None:
        saved = self.begin_stmt()
        val = self.expr(s.value)
        if len(s.targets) == 1:
            self.bind(s.targets[0].name, val)
        else:
            if val.kind != "tuple" or len(val.items) != len(s.targets):
                sid = self.site(s.span, "UnpackMismatch",
                                lambda v, n=len(s.targets): f"cannot unpack into {n} names")  # fmt: skip
                self.line(f"PT_FAIL0(ctx, {sid}); goto {self.scope.fail_label};")
            else:
                # values first (they may read the targets), then bind
                for t, item in zip(s.targets, val.items):
                    self.bind(t.name, item)
        self.end_stmt(saved)

    def s_yield(self, s: Yield) -> None:
        saved = self.begin_stmt()
        vals = [self.expr(v) for v in s.values]
        loop = self.loops[-1] if self.loops else None
        if loop is not None and loop["carries"]:
            for (pend, _), v in zip(loop["pending"], vals):
                if v.kind == "t":
                    self.line(f"pt_assign(&{pend}, &{v.code});")
                else:
                    self.line(f"{pend} = {v.code};")
            self.line(f"{loop['pflag']} = 1;")
        for t, v in zip(s.targets, vals):
            self.bind(t.name, v)
        self.end_stmt(saved)

    def s_if(self, s: If) -> None:
        saved = self.begin_stmt()
        cond = self.expr(s.cond)
        cname = self.stemp("int")
        self.line(f"{cname} = ({cond.code}) != 0;")
        self.end_stmt(saved)
        self.line(f"if ({cname}) {{")
        self.indent += 1
        self.block(s.then_body)
        self.indent -= 1
        if s.else_body:
            self.line("} else {")
            self.indent += 1
            self.block(s.else_body)
            self.indent -= 1
        self.line("}")

    def s_return(self, s: Return) -> None:
        saved = self.begin_stmt()
        vals = [self.expr(v) for v in s.values]
        nret = len(self.rets(self.fn)[0])
        if len(vals) == 1 and vals[0].kind == "tuple" and nret > 1:
            vals = list(vals[0].items)
        for i, v in enumerate(vals[:nret]):
            if v.kind == "t":
                self.line(f"pt_assign(pr_{i}, &{v.code});")
            elif v.kind == "s":
                self.line(f"*pr_{i} = {v.code};")
        self.end_stmt(saved)
        self.line(f"goto {self.scope.fail_label};")

    def s_break(self, s: Break) -> None:
        loop = self.loops[-1]
        if loop["carries"]:
            self.line(f"if ({loop['pflag']}) {{")
            for (cr, _), (pd, _) in zip(loop["carries"], loop["pending"]):
                self.line(f"    {self._copy_stmt(cr, pd)}")
            self.line("}")
        self.line("break;")

    def s_continue(self, s: Continue) -> None:
        self.line(f"goto {self.loops[-1]['cont']};")

    def _copy_stmt(self, dst: str, src: str, tensor: bool | None = None) -> str:
        if tensor is None:
            tensor = dst in self._tensor_hidden
        return f"pt_assign(&{dst}, &{src});" if tensor else f"{dst} = {src};"

    # ------------------------------------------------------------- loops
    def s_for(self, s: For) -> None:
        plan = self.par.plans.get(id(s)) if self.par else None
        if plan is not None and plan.parallel:
            self.s_parallel(s, plan)
            return
        saved = self.begin_stmt()
        lo, hi, st = self._loop_range(s)
        self._check_step(s, lo, hi, st)
        n = self.new_label("")
        carries, pending = [], []
        for k, (v, init) in enumerate(zip(s.iter_args, s.init_values)):
            ival = self.expr(init)
            is_t = isinstance(v.type, TensorType)
            cr = self._hidden(f"cr{n}_{k}", v.type)
            pd = self._hidden(f"pd{n}_{k}", v.type)
            carries.append((cr, is_t))
            pending.append((pd, is_t))
            if is_t:
                self.line(f"pt_assign(&{cr}, &{ival.code});")
            else:
                self.line(f"{cr} = {ival.code};")
        for (cr, is_t), v in zip(carries, s.iter_args):
            self.bind(v.name, CVal("t" if is_t else "s", cr, v.type))
        self.end_stmt(saved)
        pflag = self.stemp("int") if carries else ""
        it = self.stemp("int64_t")
        cont = f"L_cont{n}"
        const_step = s.step.value if isinstance(s.step, Const) else None
        if const_step is not None and const_step > 0:
            cond = f"{it} < {hi}"
        elif const_step is not None and const_step < 0:
            cond = f"{it} > {hi}"
        else:
            cond = f"({st} > 0 ? {it} < {hi} : {it} > {hi})"
        self.line(f"for ({it} = {lo}; {cond}; {it} += {st}) {{")
        self.indent += 1
        self.bind(s.var.name, CVal("s", it, s.var.type))
        if carries:
            self.line(f"{pflag} = 0;")
        self.loops.append({"carries": carries, "pending": pending, "pflag": pflag, "cont": cont})
        self.block(s.body)
        self.loops.pop()
        self.line(f"{cont}: ;")
        if carries:
            self.line(f"if ({pflag}) {{")
            for (cr, is_t), (pd, _), v in zip(carries, pending, s.iter_args):
                self.line("    " + self._copy_stmt(cr, pd, is_t))
                self.line("    " + self._copy_stmt(_cname(v.name), cr, is_t))
            self.line("}")
        self.indent -= 1
        self.line("}")
        if carries:
            for y in own_yields(s.body):
                for t, (cr, is_t) in zip(y.targets, carries):
                    self.bind(t.name, CVal("t" if is_t else "s", cr, t.type))

    def _loop_range(self, s: For) -> tuple[str, str, str]:
        """Evaluate start, stop and step once, into int64 temporaries."""
        names = tuple(self.stemp("int64_t") for _ in range(3))
        for name, e in zip(names, (s.start, s.stop, s.step)):
            self.line(f"{name} = {self.expr(e).code};")
        return names

    def _hidden(self, name: str, t: Any) -> str:
        sc = self.scope
        if isinstance(t, TensorType):
            sc.decls.append(f"pt_tensor {name} = PT_EMPTY;")
            sc.release.append(name)
            self._tensor_hidden.add(name)
        else:
            sc.decls.append(f"{scalar_ctype(t.dtype)} {name} = 0;")
        return name

    def _check_step(self, s: For, lo: str, hi: str, st: str) -> None:
        if isinstance(s.step, Const) and s.step.value != 0:
            return
        sid = self.site(
            s.span, "BadLoopStep",
            lambda v, k=s.kind: f"pl.{k} step is 0 (start {v[0]}, stop {v[1]})",
            "a loop step must be a nonzero integer",
        )  # fmt: skip
        self.line(
            f"if ({st} == 0) {{ PT_FAIL(ctx, {sid}, {lo}, {hi}, 0, 0, 0, 0); goto {self.scope.fail_label}; }}"
        )

    def s_parallel(self, s: For, plan) -> None:
        saved = self.begin_stmt()
        lo, hi, st = self._loop_range(s)
        nt = self.stemp("int64_t")
        self.end_stmt(saved)
        step = int(s.step.value)
        if step > 0:
            self.line(f"{nt} = {hi} > {lo} ? ({hi} - {lo} + {st} - 1) / {st} : 0;")
        else:
            self.line(f"{nt} = {lo} > {hi} ? ({lo} - {hi} - {st} - 1) / (-{st}) : 0;")
        n = self.new_label("")
        tv = f"pi{n}"
        cost = max(1, plan.cost)
        ch = self.stemp("int64_t")
        self.line(f"{ch} = {nt} / (8 * (int64_t)ctx->nthreads); if ({ch} < 1) {ch} = 1;")
        self.line(
            f"#pragma omp parallel for num_threads(ctx->nthreads) schedule(dynamic, {ch}) if({nt} > 1 && ctx->nthreads > 1 && "
            f"{nt} * (int64_t){cost} >= ctx->par_min_work)"
        )
        self.line(f"for (int64_t {tv} = 0; {tv} < {nt}; {tv}++) {{")
        self.indent += 1
        # the iteration body is its own scope: private variables and temporaries
        fail = f"L_it{n}"
        scope = _Scope(fail, self.indent)
        self.scopes.append(scope)
        saved_lines = self.lines
        self.lines = []
        self.line("if (PT_ERR(ctx)) continue;")
        self.bind(s.var.name, CVal("s", f"({lo} + {tv} * {st})", s.var.type))
        self.loops.append({"carries": [], "pending": [], "pflag": "", "cont": fail})
        self.block(s.body)
        self.loops.pop()
        body = self.lines
        self.lines = saved_lines
        for name in sorted(plan.private):
            t = self.vartypes.get(name)
            if t is not None:
                self._declare_var(scope, name, t)
        for d in scope.decls:
            self.line(d)
        self.lines.extend(body)
        self.indent -= 1
        self.line(f"{fail}: ;")
        self.indent += 1
        for r in scope.release:
            self.line(f"pt_release(&{r});")
        self.indent -= 1
        self.scopes.pop()
        self.line("}")
        self.check()
        # the loop variable keeps its last value (Python semantics)
        self.line(f"if ({nt} > 0) {{")
        self.indent += 1
        self.bind(s.var.name, CVal("s", f"({lo} + ({nt} - 1) * {st})", s.var.type))
        self.indent -= 1
        self.line("}")

    # ------------------------------------------------------------- expressions
    def expr(self, e) -> CVal:
        if isinstance(e, Var):
            return self.e_var(e)
        if isinstance(e, Const):
            return self.e_const(e)
        if isinstance(e, BinOp):
            return self.e_binop(e)
        if isinstance(e, UnaryOp):
            return self.e_unary(e)
        if isinstance(e, OpCall):
            return self.e_opcall(e)
        if isinstance(e, Call):
            return self.e_call(e)
        if isinstance(e, TupleGet):
            v = self.expr(e.value)
            if v.kind != "tuple":
                raise unsupported("tuple index of a non-tuple", e.span)
            return v.items[e.index]
        if isinstance(e, ListExpr):
            raise unsupported("a list outside an op argument", e.span)
        raise unsupported(f"expression {type(e).__name__}", getattr(e, "span", NO_SPAN))

    def e_var(self, e: Var) -> CVal:
        t = self.vartypes.get(e.name, e.type)
        c = _cname(e.name)
        if e.name in self.flagged:
            sid = self.site(
                e.span, "UnboundVariable", lambda v, n=e.name: f"'{n}' has no value here",
                "it is assigned only on some paths (an if branch or a loop that ran zero times) "
                "before this use",
            )  # fmt: skip
            self.line(f"if (!d_{c}) {{ PT_FAIL0(ctx, {sid}); goto {self.scope.fail_label}; }}")
        if isinstance(t, TupleType):
            return CVal("tuple", items=[
                CVal("t" if isinstance(it, TensorType) else "s", f"{c}__{i}", it)
                for i, it in enumerate(t.items)
            ])  # fmt: skip
        if isinstance(t, TensorType):
            return CVal("t", c, t)
        return CVal("s", c, t)

    def e_const(self, e: Const) -> CVal:
        d = e.dtype
        if d.is_float:
            v = round_scalar(float(e.value), d.name, self.precision)
            return CVal("s", float_literal(v), ScalarType(d))
        if d.is_bool:
            return CVal("s", "1" if e.value else "0", ScalarType(d))
        return CVal("s", int_literal(numerics.wrap_int(int(e.value), d.name)), ScalarType(d))

    def _scalar_round(self, code: str, dtype) -> str:
        eff = effective(dtype.name, self.precision)
        fn = {"FP32": "pt_rnd_f32", "BF16": "pt_rnd_bf16", "FP16": "pt_rnd_fp16"}[eff]
        return f"{fn}({code})"

    def _wrap(self, code: str, dtype) -> str:
        if dtype.name in ("INDEX", "INT64"):
            return code
        if dtype.is_bool:
            return f"(({code}) != 0)"
        st = storage(dtype.name, self.precision)
        if dtype.kind == "uint":
            if st.bits == 64:
                return code
            return f"(int64_t)({st.utype})({code})"
        return f"(int64_t)({st.ctype})({st.utype})({code})"

    def e_binop(self, e: BinOp) -> CVal:
        a, b = self.expr(e.lhs), self.expr(e.rhs)
        op = e.op
        cmp = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
        if op in cmp:
            return CVal("s", f"(({a.code}) {cmp[op]} ({b.code}))", ScalarType(BOOL))
        if op == "and":
            return CVal("s", f"((({a.code}) != 0) & (({b.code}) != 0))", ScalarType(BOOL))
        if op == "or":
            return CVal("s", f"((({a.code}) != 0) | (({b.code}) != 0))", ScalarType(BOOL))
        dtype = e.type.dtype
        if op in ("div", "floordiv", "mod"):
            sym = {"div": "/", "floordiv": "//", "mod": "%"}[op]
            sid = self.site(
                e.span, "DivisionByZero",
                lambda v, s=sym, f=dtype.is_float: f"scalar division by zero: {_num(v, 0, f)} {s} 0",
                "guard the divisor, e.g. with pl.max(d, 1)",
            )  # fmt: skip
            bt = self.stemp("double" if dtype.is_float else "int64_t")
            at = self.stemp("double" if dtype.is_float else "int64_t")
            self.line(f"{at} = {a.code}; {bt} = {b.code};")
            if dtype.is_float:
                self.line(
                    f"if ({bt} == 0) {{ int64_t bits_; double av_ = {at}; memcpy(&bits_, &av_, 8); "
                    f"PT_FAIL(ctx, {sid}, bits_, 0, 0, 0, 0, 0); goto {self.scope.fail_label}; }}"
                )
            else:
                self.line(
                    f"if ({bt} == 0) {{ PT_FAIL(ctx, {sid}, {at}, 0, 0, 0, 0, 0); goto {self.scope.fail_label}; }}"
                )
            a, b = CVal("s", at), CVal("s", bt)
        if dtype.is_float:
            x, y = f"(double)({a.code})", f"(double)({b.code})"
            code = {
                "add": f"({x} + {y})",
                "sub": f"({x} - {y})",
                "mul": f"({x} * {y})",
                "div": f"({x} / {y})",
                "floordiv": f"pt_floordiv_f({x}, {y})",
                "mod": f"pt_mod_f({x}, {y})",
                "min": f"pt_pymin_f({x}, {y})",
                "max": f"pt_pymax_f({x}, {y})",
            }[op]
            return CVal("s", self._scalar_round(code, dtype), ScalarType(dtype))
        x, y = f"(int64_t)({a.code})", f"(int64_t)({b.code})"
        code = {
            "add": f"(int64_t)((uint64_t){x} + (uint64_t){y})",
            "sub": f"(int64_t)((uint64_t){x} - (uint64_t){y})",
            "mul": f"(int64_t)((uint64_t){x} * (uint64_t){y})",
            "floordiv": f"pt_floordiv_i({x}, {y})",
            "mod": f"pt_mod_i({x}, {y})",
            "min": f"pt_pymin_i({x}, {y})",
            "max": f"pt_pymax_i({x}, {y})",
        }.get(op)
        if code is None:
            raise unsupported(f"scalar operator {op} on integers", e.span)
        return CVal("s", self._wrap(code, dtype), ScalarType(dtype))

    def e_unary(self, e: UnaryOp) -> CVal:
        v = self.expr(e.operand)
        if e.op == "not":
            return CVal("s", f"(!({v.code}))", ScalarType(BOOL))
        dtype = e.type.dtype
        if dtype.is_float:
            return CVal("s", self._scalar_round(f"(-(double)({v.code}))", dtype), ScalarType(dtype))
        return CVal(
            "s", self._wrap(f"(int64_t)(0 - (uint64_t)({v.code}))", dtype), ScalarType(dtype)
        )

    # ------------------------------------------------------------- calls
    def e_call(self, e: Call) -> CVal:
        fn = self.functions.get(e.func)
        if fn is None:
            raise unsupported(f"program has no function '{e.func}'", e.span)
        args = [self.expr(a) for a in e.args]
        if len(args) != len(fn.params):
            raise unsupported(f"'{fn.name}' takes {len(fn.params)} arguments", e.span)
        self._call_checks(fn, args, e)
        outs: list[CVal] = []
        call_args = ["ctx", "depth + 1"]
        for a, p in zip(args, fn.params):
            if isinstance(p.type, TensorType):
                call_args.append(f"&{a.code}")
            else:
                call_args.append(f"({scalar_ctype(p.type.dtype)})({a.code})")
        rtypes, tup = self.rets(fn)
        for t in rtypes:
            if isinstance(t, TensorType):
                tmp = self.ttemp()
                outs.append(CVal("t", tmp, t, owned=True))
                call_args.append(f"&{tmp}")
            else:
                tmp = self.stemp(scalar_ctype(t.dtype))
                outs.append(CVal("s", tmp, t))
                call_args.append(f"&{tmp}")
        if fn.is_host_stub:
            n_in = 2 + len(fn.params)
            self._emit_host_call(fn, call_args[2:n_in], call_args[n_in:], e.span)
        else:
            self.line(f"pf_{fn.name}({', '.join(call_args)});")
            self.check()
        if tup:
            return CVal("tuple", items=outs)
        if not outs:
            return CVal("none")
        return outs[0]

    def _call_checks(self, fn: Function, args: list[CVal], e: Call) -> None:
        """Machine.bind at a call: static dims and dynamic-dim consistency."""
        bound: dict[str, str] = {}
        for p, a in zip(fn.params, args):
            if isinstance(p.type, ScalarType):
                bound[p.name] = f"(int64_t)({a.code})"
        for p, a in zip(fn.params, args):
            t = p.type
            if not isinstance(t, TensorType):
                continue
            for axis, d in enumerate(t.shape):
                if isinstance(d, int):
                    sid = self.site(
                        e.span, "ArgumentMismatch",
                        lambda v, pn=p.name, fnn=fn.name, ax=axis, dd=d:
                        f"argument '{pn}' of '{fnn}': dim {ax} is {v[0]}, the declared static dim is {dd}",
                    )  # fmt: skip
                    self.line(
                        f"if ({a.code}.shape[{axis}] != {d}) {{ PT_FAIL(ctx, {sid}, {a.code}.shape[{axis}], 0, 0, 0, 0, 0); "
                        f"goto {self.scope.fail_label}; }}"
                    )
                elif isinstance(d, Var):
                    if d.name in bound:
                        sid = self.site(
                            e.span, "DynamicDimMismatch",
                            lambda v, pn=p.name, fnn=fn.name, ax=axis, dn=d.name:
                            f"argument '{pn}' of '{fnn}': dim {ax} ({dn}) is {v[0]}, but {dn} = {v[1]}",
                            "every use of a pl.dynamic dim must have the same extent",
                        )  # fmt: skip
                        self.line(
                            f"if ({a.code}.shape[{axis}] != {bound[d.name]}) {{ PT_FAIL(ctx, {sid}, "
                            f"{a.code}.shape[{axis}], {bound[d.name]}, 0, 0, 0, 0); goto {self.scope.fail_label}; }}"
                        )
                    else:
                        bound[d.name] = f"{a.code}.shape[{axis}]"

    # ------------------------------------------------------------- op calls
    def e_opcall(self, e: OpCall) -> CVal:
        handler = OP_EMITTERS.get(e.op)
        if handler is None:
            raise unsupported(f"the C backend has no implementation of pl.{e.op}", e.span)
        args = []
        for a in e.args:
            if a is None:
                args.append(None)
            elif isinstance(a, ListExpr):
                args.append([self.expr(i).code for i in a.items])
            else:
                args.append(self.expr(a))
        return handler(self, e, args)

    def st(self, dtype) -> Storage:
        return storage(dtype.name, self.precision)

    def kernel(self, key: Any, make: Callable[[str], str]) -> str:
        name = self.kernels.get(key)
        if name is None:
            name = f"k{len(self.kernels)}_{key[0]}"
            self.kernels[key] = name
            self.kernel_code.append(make(name))
        return name

    def ilist(self, items: list[str]) -> str:
        if not items:
            return "(int64_t[1]){0}"
        return "(int64_t[]){" + ", ".join(f"(int64_t)({x})" for x in items) + "}"

    @staticmethod
    def label(e: OpCall) -> str:
        return f"pl.{e.op}"


def _span_text(span: Span) -> str:
    if span is None or span.line <= 0:
        return "?"
    f = span.file.replace("*/", "* /")
    return f"{f}:{span.line}:{span.col}"


def _num(v: list[int], i: int, is_float: bool):
    """Fault value i: an int, or a double passed as its bits."""
    if is_float:
        return struct.unpack("<d", struct.pack("<q", v[i]))[0]
    return v[i]


def _argname(e: Any) -> str:
    return e.name if isinstance(e, Var) else "<tensor>"


# ====================================================================== op emitters

OP_EMITTERS: dict[str, Callable[[Emitter, OpCall, list], CVal]] = {}


def op(*names: str):
    def deco(fn):
        for n in names:
            OP_EMITTERS[n] = fn
        return fn

    return deco


# ---------------------------------------------------------------- element expressions


def load_f32(st: Storage, x: str) -> str:
    """An element of storage `st` widened to float32 as numerics._f32 does."""
    if st.kind == "f32":
        return x
    if st.kind == "bf16":
        return f"pt_bf2f({x})"
    if st.kind == "fp16":
        return f"pt_h2f({x})"
    return f"(float)({x})"


def store_from_f32(st: Storage, v: str) -> str:
    """A float32 result rounded RNE to the result storage."""
    if st.kind == "f32":
        return v
    if st.kind == "bf16":
        return f"pt_f2bf_rint({v})"
    if st.kind == "fp16":
        return f"pt_f2h_rint({v})"
    raise TypeError(st)


_F_BIN = {
    "add": "({a} + {b})",
    "sub": "({a} - {b})",
    "mul": "({a} * {b})",
    "div": "({a} / {b})",
    "maximum": "pt_fmax({a}, {b})",
    "minimum": "pt_fmin({a}, {b})",
}


def _int_bin(op_name: str, rt: Storage, a: str, b: str) -> str:
    ct, u = rt.ctype, "uint64_t"
    if op_name == "add":
        return f"({ct})(({u})({a}) + ({u})({b}))"
    if op_name == "sub":
        return f"({ct})(({u})({a}) - ({u})({b}))"
    if op_name == "mul":
        return f"({ct})(({u})({a}) * ({u})({b}))"
    if op_name == "maximum":
        return f"(({a}) > ({b}) ? ({a}) : ({b}))"
    if op_name == "minimum":
        return f"(({a}) < ({b}) ? ({a}) : ({b}))"
    if op_name == "div":
        if rt.kind == "uint":
            return f"({ct})(({a}) / ({b}))"
        return f"(({b}) == -1 ? ({ct})(0 - ({u})({a})) : ({ct})(({a}) / ({b})))"
    raise TypeError(op_name)


def _ew_expr(op_name: str, at: Storage, bt: Storage | str, rt: Storage, a: str, b: str) -> str:
    """Element expression of a binary op. bt is a Storage, or "f"/"i" for a scalar (already
    converted to the compute type by the kernel)."""
    if rt.is_float:
        la = load_f32(at, a)
        lb = b if isinstance(bt, str) else load_f32(bt, b)
        return store_from_f32(rt, _F_BIN[op_name].format(a=la, b=lb))
    if rt.kind == "bool":
        raise TypeError("bool arithmetic")
    ca = f"({rt.ctype})({a})"
    cb = b if isinstance(bt, str) else f"({rt.ctype})({b})"
    return _int_bin(op_name, rt, ca, cb)


def _fail_shapes(v: list[int]) -> tuple[list[int], list[int]]:
    r = v[0]
    return v[1 : 1 + r], v[1 + r : 1 + 2 * r]


# ---------------------------------------------------------------- binary / expand


def _binary_kernel(em: Emitter, name: str, op_name: str, at: Storage, bt: Storage | None,
                   scalar_kind: str | None, rt: Storage, rank: int) -> str:  # fmt: skip
    R = rank
    lines = []
    if bt is not None:
        sig = f"static void {name}(pt_ctx *ctx, int site, const pt_tensor *a, const pt_tensor *b_in, pt_tensor *r)"
    else:
        sig = f"static void {name}(pt_ctx *ctx, int site, const pt_tensor *a, {'double' if scalar_kind == 'f' else 'int64_t'} bs, pt_tensor *r)"
    lines.append(sig + " {")
    lines.append(f"    int64_t shape[{R}], valid[{R}], sa[{R}], sb[{R}];")
    if bt is not None:
        lines.append("    const pt_tensor *b = b_in;")
        lines.append("    pt_tensor bm = PT_EMPTY;")
        lines.append(f"    for (int d = 0; d < {R}; d++) {{")
        lines.append("        int64_t x = a->shape[d], y = b->shape[d];")
        lines.append("        if (x == y || y == 1) shape[d] = x; else if (x == 1) shape[d] = y;")
        lines.append("        else {")
        lines.append(f"            int64_t v[16] = {{{R}}};")
        lines.append(
            f"            for (int k = 0; k < {R}; k++) {{ v[1 + k] = a->shape[k]; v[1 + {R} + k] = b->shape[k]; }}"
        )
        lines.append(f"            pt_failv(ctx, site, {1 + 2 * R}, v); return;")
        lines.append("        }")
        lines.append("    }")
    else:
        lines.append(f"    for (int d = 0; d < {R}; d++) shape[d] = a->shape[d];")
    lines.append(
        f"    for (int d = 0; d < {R}; d++) valid[d] = a->shape[d] == shape[d] ? a->valid[d] : (a->valid[d] > 0 ? shape[d] : 0);"
    )
    if bt is not None:
        lines.append(f"    int64_t need[{R}];")
        lines.append(
            f"    for (int d = 0; d < {R}; d++) need[d] = b->shape[d] == shape[d] ? valid[d] : (valid[d] < 1 ? valid[d] : 1);"
        )
        lines.append("    if (!pt_covers(b, need)) {")
        lines.append(
            f"        if (!pt_materialize(ctx, site + 1, b, {bt.esize}, pt_pad_bits({bt.code}, b->pad), &bm)) return;"
        )
        lines.append("        b = &bm;")
        lines.append("    }")
    if op_name == "div" and rt.is_int:
        # numerics: any zero in the materialized divisor is an error
        if bt is not None:
            lines.append("    {")
            lines.append("        int zero = 0;")
            lines.append(
                f"        if (!pt_fully_valid(b) && pt_pad_bits({bt.code}, b->pad) == 0) {{"
            )
            lines.append("            int64_t nv = 1, nw = 1;")
            lines.append(
                f"            for (int d = 0; d < {R}; d++) {{ nv *= b->valid[d] < b->shape[d] ? b->valid[d] : b->shape[d]; nw *= b->shape[d]; }}"
            )
            lines.append("            if (nw > nv) zero = 1;")
            lines.append("        }")
            lines.append(
                f"        const {bt.ctype} *bz = (const {bt.ctype} *)pt_origin(b, {bt.esize});"
            )
            lines.append(f"        PT_FOR_ROWS({R}, b->valid, idx, {{")
            lines.append("            int64_t o = 0;")
            lines.append(
                f"            for (int d = 0; d < {R} - 1; d++) o += idx[d] * b->bstride[d];"
            )
            lines.append(
                f"            for (int64_t j = 0; j < b->valid[{R} - 1]; j++) if (bz[o + j * b->bstride[{R} - 1]] == 0) zero = 1;"
            )
            lines.append("        });")
            lines.append("        if (zero) { PT_FAIL0(ctx, site + 2); pt_release(&bm); return; }")
            lines.append("    }")
        else:
            lines.append("    if (bs == 0) { PT_FAIL0(ctx, site + 2); return; }")
    lines.append(
        f"    if (!pt_new(ctx, site + 1, r, {R}, shape, {rt.esize})) {{ {'pt_release(&bm); ' if bt is not None else ''}return; }}"
    )
    lines.append(
        f"    for (int d = 0; d < {R}; d++) sa[d] = (a->shape[d] == 1 && shape[d] != 1) ? 0 : a->bstride[d];"
    )
    if bt is not None:
        lines.append(
            f"    for (int d = 0; d < {R}; d++) sb[d] = (b->shape[d] == 1 && shape[d] != 1) ? 0 : b->bstride[d];"
        )
        lines.append(f"    const {bt.ctype} *bo = (const {bt.ctype} *)pt_origin(b, {bt.esize});")
    else:
        lines.append(f"    for (int d = 0; d < {R}; d++) sb[d] = 0;")
        if rt.is_float:
            lines.append("    const float y = (float)bs;")
        else:
            lines.append(f"    const {rt.ctype} y = ({rt.ctype})bs;")
    lines.append(f"    const {at.ctype} *ao = (const {at.ctype} *)pt_origin(a, {at.esize});")
    lines.append(f"    {rt.ctype} *ro = ({rt.ctype} *)r->base;")
    lines.append(f"    PT_FOR_ROWS({R}, valid, idx, {{")
    lines.append("        int64_t oa = 0, ob = 0, orr = 0;")
    lines.append(
        f"        for (int d = 0; d < {R} - 1; d++) {{ oa += idx[d] * sa[d]; ob += idx[d] * sb[d]; orr += idx[d] * r->bstride[d]; }}"
    )
    lines.append("        (void)ob;")
    lines.append(f"        const {at.ctype} *pa = ao + oa;")
    lines.append(f"        {rt.ctype} *pr = ro + orr;")
    lines.append(f"        const int64_t n = valid[{R} - 1], ia = sa[{R} - 1];")
    if bt is not None:
        lines.append(f"        const {bt.ctype} *pb = bo + ob;")
        lines.append(f"        const int64_t ib = sb[{R} - 1];")

        def ex(x, y):
            return _ew_expr(op_name, at, bt, rt, x, y)

        lines.append(
            f"        if (ia == 1 && ib == 1) {{ for (int64_t j = 0; j < n; j++) pr[j] = {ex('pa[j]', 'pb[j]')}; }}"
        )
        lines.append(
            f"        else if (ia == 1 && ib == 0) {{ const {bt.ctype} yb = pb[0]; for (int64_t j = 0; j < n; j++) pr[j] = {ex('pa[j]', 'yb')}; }}"
        )
        lines.append(
            f"        else if (ia == 0 && ib == 1) {{ const {at.ctype} xa = pa[0]; for (int64_t j = 0; j < n; j++) pr[j] = {ex('xa', 'pb[j]')}; }}"
        )
        lines.append(
            f"        else {{ for (int64_t j = 0; j < n; j++) pr[j] = {ex('pa[j * ia]', 'pb[j * ib]')}; }}"
        )
    else:
        sk = "f" if rt.is_float else "i"

        def ex(x):
            return _ew_expr(op_name, at, sk, rt, x, "y")

        lines.append(
            f"        if (ia == 1) {{ for (int64_t j = 0; j < n; j++) pr[j] = {ex('pa[j]')}; }}"
        )
        lines.append(
            f"        else {{ for (int64_t j = 0; j < n; j++) pr[j] = {ex('pa[j * ia]')}; }}"
        )
    lines.append("    });")
    lines.append(f"    pt_fill_outside(r, valid, {rt.esize}, 0);")
    if bt is not None:
        lines.append("    pt_release(&bm);")
    lines.append("}")
    return "\n".join(lines)


def _binary_sites(em: Emitter, e: OpCall) -> int:
    label = Emitter.label(e)
    return em.sites_block(e.span, [
        ("ShapeMismatch", lambda v, lb=label: "{}: shapes {} and {} do not broadcast".format(lb, *_fail_shapes(v)),
         "the dynamic dims of the operands differ at run time"),
        _oom_entry(label),
        ("NumericsError", lambda v, lb=label: f"{lb}: integer division by zero in elementwise div", None),
    ])  # fmt: skip


@op("add", "sub", "mul", "div", "maximum", "minimum")
def _op_binary(em: Emitter, e: OpCall, args: list) -> CVal:
    lhs, rhs = args
    lt = e.args[0].type
    rt_type = e.type
    at = em.st(lt.dtype)
    res = em.st(rt_type.dtype)
    if res.kind == "bool":
        return _numerics_fault(
            em, e, f"integer {e.op!r} needs integer operands and an integer result"
        )
    rank = lt.rank
    _check_rank(e, rank)
    site = _binary_sites(em, e)
    out = em.ttemp()
    if rhs.kind == "t":
        bt = em.st(rhs.type.dtype)
        if res.is_int and (bt.is_float or at.is_float):
            return _numerics_fault(em, e, f"integer {e.op!r} needs integer operands")
        key = ("bin", e.op, at.name, bt.name, res.name, rank)
        name = em.kernel(key, lambda n: _binary_kernel(em, n, e.op, at, bt, None, res, rank))
        em.line(f"{name}(ctx, {site}, &{lhs.code}, &{rhs.code}, &{out});")
    else:
        sdt = e.args[1].type.dtype
        sk = "f" if sdt.is_float else "i"
        if res.is_int and (sk == "f" or at.is_float):
            return _numerics_fault(em, e, f"integer {e.op!r} needs integer operands")
        key = ("bins", e.op, at.name, sk, res.name, rank)
        name = em.kernel(key, lambda n: _binary_kernel(em, n, e.op, at, None, sk, res, rank))
        cast = "(double)" if sk == "f" else "(int64_t)"
        em.line(f"{name}(ctx, {site}, &{lhs.code}, {cast}({rhs.code}), &{out});")
    em.check()
    return CVal("t", out, rt_type, owned=True)


@op("row_expand_add", "row_expand_sub", "row_expand_mul", "row_expand_div",
    "col_expand_add", "col_expand_sub", "col_expand_mul", "col_expand_div")  # fmt: skip
def _op_expand(em: Emitter, e: OpCall, args: list) -> CVal:
    x, v = args
    kind, _, fn = e.op.split("_")
    at, bt = em.st(x.type.dtype), em.st(v.type.dtype)
    res = em.st(e.type.dtype)
    label = Emitter.label(e)
    if x.type.rank != 2 or v.type.rank != 2:
        raise unsupported(f"{e.op} needs 2-D operands", e.span)
    sid = em.site(
        e.span, "ShapeMismatch",
        lambda vv, lb=label: f"{lb}: {e.op} operand 'v' has shape [{vv[0]}, {vv[1]}], expected [{vv[2]}, {vv[3]}]",
        "row_expand_* takes one value per row [M,1]; col_expand_* one per column [1,N]",
    )  # fmt: skip
    if kind == "row":
        want0, want1 = f"{x.code}.shape[0]", "1"
    else:
        want0, want1 = "1", f"{x.code}.shape[1]"
    em.line(
        f"if ({v.code}.shape[0] != {want0} || {v.code}.shape[1] != {want1}) {{ "
        f"PT_FAIL(ctx, {sid}, {v.code}.shape[0], {v.code}.shape[1], {want0}, {want1}, 0, 0); goto {em.scope.fail_label}; }}"
    )
    if res.is_int and (at.is_float or bt.is_float):
        return _numerics_fault(em, e, f"integer {fn!r} needs integer operands")
    site = _binary_sites(em, e)
    out = em.ttemp()
    key = ("bin", fn, at.name, bt.name, res.name, 2)
    name = em.kernel(key, lambda n: _binary_kernel(em, n, fn, at, bt, None, res, 2))
    em.line(f"{name}(ctx, {site}, &{x.code}, &{v.code}, &{out});")
    em.check()
    return CVal("t", out, e.type, owned=True)


def _numerics_fault(em: Emitter, e: OpCall, message: str) -> CVal:
    sid = em.site(e.span, "NumericsError", lambda v, m=message, lb=Emitter.label(e): f"{lb}: {m}")
    em.line(f"PT_FAIL0(ctx, {sid}); goto {em.scope.fail_label};")
    out = em.ttemp()
    return CVal("t", out, e.type, owned=True)


def _check_rank(e: OpCall, rank: int) -> None:
    if rank < 1 or rank > MAX_RANK:
        raise unsupported(
            f"pl.{e.op} on a rank-{rank} tensor (the C backend supports ranks 1..{MAX_RANK})",
            e.span,
        )


# ---------------------------------------------------------------- unary


_F_UNARY = {
    "exp": "pt_expf({x})",
    "log": "pt_logf({x})",
    "sqrt": "sqrtf({x})",
    "rsqrt": "pt_rsqrtf({x})",
    "recip": "(1.0f / {x})",
    "neg": "(-{x})",
    "abs": "fabsf({x})",
    "relu": "pt_relu({x})",
}


def _unary_expr(op_name: str, xt: Storage, rt: Storage, x: str) -> str:
    if rt.is_float:
        return store_from_f32(rt, _F_UNARY[op_name].format(x=load_f32(xt, x)))
    ct = rt.ctype
    cx = f"({ct})({x})"
    if op_name == "neg":
        return f"({ct})(0 - (uint64_t){cx})"
    if op_name == "abs":
        if rt.kind == "uint":
            return cx
        return f"({cx} < 0 ? ({ct})(0 - (uint64_t){cx}) : {cx})"
    if op_name == "relu":
        return f"({cx} > 0 ? {cx} : ({ct})0)"
    raise TypeError(op_name)


def _rows_kernel(name: str, xt: Storage, rt: Storage, rank: int, setup: list[str],
                 row: list[str], fill: str, extra: str = "", keep_pad: bool = False) -> str:  # fmt: skip
    """A kernel r = f(x) over x's valid region, row by row (`row`: C lines with `px`/`pr` the
    row of x/r and `n` the valid row length, after `setup`); outside: `fill` (a C expression
    giving the bit pattern, may use x->pad). `extra`: more parameters (e.g. ", int mode")."""
    R = rank
    lines = [
        f"static void {name}(pt_ctx *ctx, int site, const pt_tensor *x, pt_tensor *r{extra}) {{",
        f"    int64_t valid[{R}];",
        f"    for (int d = 0; d < {R}; d++) valid[d] = x->valid[d] < x->shape[d] ? x->valid[d] : x->shape[d];",
        f"    if (!pt_new(ctx, site, r, {R}, x->shape, {rt.esize})) return;",
        *setup,
        f"    const {xt.ctype} *xo = (const {xt.ctype} *)pt_origin(x, {xt.esize});",
        f"    {rt.ctype} *ro = ({rt.ctype} *)r->base;",
        f"    PT_FOR_ROWS({R}, valid, idx, {{",
        "        int64_t ox = 0, orr = 0;",
        f"        for (int d = 0; d < {R} - 1; d++) {{ ox += idx[d] * x->bstride[d]; orr += idx[d] * r->bstride[d]; }}",
        f"        const {xt.ctype} *px = xo + ox;",
        f"        {rt.ctype} *pr = ro + orr;",
        *row,
        "    });",
        f"    pt_fill_outside(r, valid, {rt.esize}, {fill});",
    ]  # fmt: skip
    if keep_pad:
        lines.append("    r->pad = x->pad;")
    lines.append("}")
    return "\n".join(lines)


def _map_kernel(name: str, xt: Storage, rt: Storage, rank: int, expr: Callable[[str], str],
                fill: str = "0", extra: str = "", keep_pad: bool = False) -> str:  # fmt: skip
    """r = expr(x) elementwise (see _rows_kernel)."""
    R = rank
    return _rows_kernel(name, xt, rt, rank, [], [
        f"        const int64_t n = valid[{R} - 1], ix = x->bstride[{R} - 1];",
        f"        if (ix == 1 || n <= 1) {{ for (int64_t j = 0; j < n; j++) pr[j] = {expr('px[j]')}; }}",
        f"        else {{ for (int64_t j = 0; j < n; j++) pr[j] = {expr('px[j * ix]')}; }}",
    ], fill, extra, keep_pad)  # fmt: skip


def _exp_kernel(name: str, xt: Storage, rt: Storage, rank: int) -> str:
    """exp row by row through the runtime's vectorised pt_vexpf (double precision, one
    rounding to float32), then rounded RNE to the result dtype."""
    R = rank
    return _rows_kernel(name, xt, rt, rank, [
        f"    const int64_t n = valid[{R} - 1];",
        "    float *tmp = pt_scratch(3, (size_t)(n > 0 ? n : 1));",
        "    if (!tmp) { PT_FAIL(ctx, site, n * 4, 0, 0, 0, 0, 0); return; }",
    ], [
        f"        const int64_t ix = x->bstride[{R} - 1];",
        f"        for (int64_t j = 0; j < n; j++) tmp[j] = {load_f32(xt, 'px[j * ix]')};",
        "        pt_vexpf(tmp, n);",
        f"        for (int64_t j = 0; j < n; j++) pr[j] = {store_from_f32(rt, 'tmp[j]')};",
    ], "0")  # fmt: skip


def _oom_entry(label: str) -> tuple[str, Callable, None]:
    """The out-of-memory fault site of an op (a sites_block entry): v[0] = bytes asked for."""
    return ("OutOfMemory", lambda v: f"{label}: cannot allocate {v[0]} bytes", None)


def _oom_site(em: Emitter, e: OpCall) -> int:
    return em.site(e.span, *_oom_entry(Emitter.label(e)))


@op("exp", "sqrt", "rsqrt", "recip", "log", "neg", "abs", "relu")
def _op_unary(em: Emitter, e: OpCall, args: list) -> CVal:
    (x,) = args
    xt, rt = em.st(x.type.dtype), em.st(e.type.dtype)
    rank = x.type.rank
    _check_rank(e, rank)
    if (
        rt.is_float != xt.is_float
        or rt.kind == "bool"
        or (rt.is_int and e.op not in ("neg", "abs", "relu"))
    ):
        return _numerics_fault(
            em, e, f"unary {e.op!r} is not defined for {x.type.dtype.name} -> {e.type.dtype.name}"
        )
    site = _oom_site(em, e)
    out = em.ttemp()
    key = ("un", e.op, xt.name, rt.name, rank)
    if e.op == "exp" and rt.is_float:
        name = em.kernel(key, lambda n: _exp_kernel(n, xt, rt, rank))
    else:
        name = em.kernel(
            key, lambda n: _map_kernel(n, xt, rt, rank, lambda v: _unary_expr(e.op, xt, rt, v))
        )
    em.line(f"{name}(ctx, {site}, &{x.code}, &{out});")
    em.check()
    return CVal("t", out, e.type, owned=True)


# ---------------------------------------------------------------- cast


def cast_expr(src: Storage, dst: Storage, mode: str, x: str) -> str:
    """Element conversion per numerics.cast (on storage dtypes). mode "*": the kernel's
    runtime `mode` argument."""
    m = "mode" if mode == "*" else MODE_CODE[mode]
    if src.name == dst.name:
        return x
    if dst.kind == "bool":
        if src.is_float:
            return f"(uint8_t)({load_f32(src, x)} != 0.0f)"
        return f"(uint8_t)(({x}) != 0)"
    if src.is_float and dst.is_float:
        if dst.kind == "f32" and src.kind == "bf16":
            return f"pt_bf2f({x})"
        if dst.kind == "f32" and src.kind == "fp16":
            return f"pt_h2f({x})"
        if src.kind == "f32" and dst.kind == "bf16":
            return f"pt_f2bf_mode({x}, {m})"
        bits = f"pt_f2u({x})" if src.kind == "f32" else f"(uint64_t)({x})"
        conv = f"pt_fconv({bits}, {src.fmt}, {dst.fmt}, {m})"
        return f"pt_u2f((uint32_t){conv})" if dst.kind == "f32" else f"(uint16_t){conv}"
    if src.is_float:  # -> int
        bits = f"pt_f2u({x})" if src.kind == "f32" else f"(uint64_t)({x})"
        pos = f"pt_imax[{dst.code}]"
        neg = f"pt_inegmax[{dst.code}]"
        return f"({dst.ctype})pt_f2ibits({bits}, {src.fmt}, {m}, {pos}, {neg})"
    # int / bool source
    if dst.is_float:
        unsigned = src.kind in ("uint", "bool")
        if dst.kind == "f32":
            if mode in ("rint", "none"):
                return f"(float)({x})"
            fn = "pt_u2f_mode" if unsigned else "pt_i2f_mode"
            cast = "(uint64_t)" if unsigned else "(int64_t)"
            return f"{fn}({cast}({x}), {m})"
        fn = "pt_u2fbits" if unsigned else "pt_i2fbits"
        cast = "(uint64_t)" if unsigned else "(int64_t)"
        return f"(uint16_t){fn}({cast}({x}), {dst.fmt}, {m})"
    return f"({dst.ctype})({x})"


@op("cast")
def _op_cast(em: Emitter, e: OpCall, args: list) -> CVal:
    x = args[0]
    mode = e.attr("mode") or "round"
    target = e.attr("target_type")
    if x.kind == "s":
        return _scalar_cast(em, e, x, target, mode)
    xt, rt = em.st(x.type.dtype), em.st(target)
    rank = x.type.rank
    _check_rank(e, rank)
    site = _oom_site(em, e)
    out = em.ttemp()
    # the default modes get their own kernels; the directed ones share one per dtype pair
    kmode = mode if mode in ("round", "rint", "none") else "*"
    key = ("cast", xt.name, rt.name, kmode, rank)
    name = em.kernel(key, lambda n: _map_kernel(
        n, xt, rt, rank, lambda v: cast_expr(xt, rt, kmode, v), f"pt_pad_bits({rt.code}, x->pad)",
        ", int mode" if kmode == "*" else "", keep_pad=True))  # fmt: skip
    extra = f", {MODE_CODE[mode]}" if kmode == "*" else ""
    em.line(f"{name}(ctx, {site}, &{x.code}, &{out}{extra});")
    em.check()
    return CVal("t", out, e.type, owned=True)


def scalar_to_storage(em: Emitter, val: CVal, src_dtype, dst: Storage, mode: str = "rint") -> str:
    """A scalar value (double / int64 / int) converted to a storage element, one rounding."""
    m = MODE_CODE[mode]
    if src_dtype.is_float:
        d = f"(double)({val.code})"
        if dst.kind == "f32":
            return f"pt_d2f_mode({d}, {m})"
        if dst.kind == "bf16":
            return f"pt_d2bf_mode({d}, {m})"
        if dst.kind == "fp16":
            return f"pt_d2h_mode({d}, {m})"
        if dst.kind == "bool":
            return f"(uint8_t)({d} != 0.0)"
        return f"({dst.ctype})pt_f2ibits(pt_d2u({d}), PT_FMT_FP64, {m}, pt_imax[{dst.code}], pt_inegmax[{dst.code}])"
    i = f"(int64_t)({val.code})"
    unsigned = src_dtype.kind == "uint" or src_dtype.is_bool
    if dst.is_float:
        fn = "pt_u2fbits" if unsigned else "pt_i2fbits"
        cast = "(uint64_t)" if unsigned else "(int64_t)"
        bits = f"{fn}({cast}{i}, {dst.fmt}, {m})"
        return f"pt_u2f((uint32_t){bits})" if dst.kind == "f32" else f"(uint16_t){bits}"
    if dst.kind == "bool":
        return f"(uint8_t)({i} != 0)"
    return f"({dst.ctype}){i}"


def _storage_to_scalar(st: Storage, dtype, code: str) -> str:
    """A storage element as the interpreter's scalar (double / int64 / int)."""
    if dtype.is_float:
        return f"(double){load_f32(st, code)}"
    if dtype.is_bool:
        return f"(int)(({code}) != 0)"
    return f"(int64_t)({code})"


def _scalar_cast(em: Emitter, e: OpCall, x: CVal, target, mode: str) -> CVal:
    src = e.args[0].type.dtype
    dst = em.st(target)
    conv = scalar_to_storage(em, x, src, dst, mode)
    tmp = em.stemp(dst.ctype)
    em.line(f"{tmp} = {conv};")
    return CVal("s", _storage_to_scalar(dst, target, tmp), ScalarType(target))


# ---------------------------------------------------------------- reductions


def _reduce_kernel(name: str, kind: str, red: str, xt: Storage, rt: Storage, rank: int) -> str:
    """row_* over the last axis (any rank) or col_* over axis 0 (rank 2) of x's whole extent
    along the reduced axis (its pad included; materialised when not covered)."""
    R = rank
    L = [
        f"static void {name}(pt_ctx *ctx, int site, const pt_tensor *x_in, pt_tensor *r) {{",
        "    const pt_tensor *x = x_in;",
        "    pt_tensor xm = PT_EMPTY;",
        f"    int64_t need[{R}], shape[{R}], valid[{R}];",
    ]
    if kind == "row":
        L += [
            f"    for (int d = 0; d < {R}; d++) {{ need[d] = x->valid[d]; shape[d] = x->shape[d]; valid[d] = x->valid[d] < x->shape[d] ? x->valid[d] : x->shape[d]; }}",
            f"    need[{R} - 1] = x->shape[{R} - 1]; shape[{R} - 1] = 1; valid[{R} - 1] = 1;",
            f"    const int64_t n = x->shape[{R} - 1];",
        ]  # fmt: skip
    else:
        L += [
            "    need[0] = x->shape[0]; need[1] = x->valid[1];",
            "    shape[0] = 1; shape[1] = x->shape[1];",
            "    valid[0] = 1; valid[1] = x->valid[1] < x->shape[1] ? x->valid[1] : x->shape[1];",
            "    const int64_t n = x->shape[0];",
        ]
    if red != "sum":
        L.append("    if (n == 0) { PT_FAIL0(ctx, site); return; }")
    L += [
        "    if (!pt_covers(x, need)) {",
        f"        if (!pt_materialize(ctx, site + 1, x, {xt.esize}, pt_pad_bits({xt.code}, x->pad), &xm)) return;",
        "        x = &xm;",
        "    }",
        f"    if (!pt_new(ctx, site + 1, r, {R}, shape, {rt.esize})) {{ pt_release(&xm); return; }}",
        f"    const {xt.ctype} *xo = (const {xt.ctype} *)pt_origin(x, {xt.esize});",
        f"    {rt.ctype} *ro = ({rt.ctype} *)r->base;",
    ]  # fmt: skip
    L += (_row_reduce if kind == "row" else _col_reduce)(red, xt, rt, R)
    L += [f"    pt_fill_outside(r, valid, {rt.esize}, 0);", "    pt_release(&xm);", "}"]
    return "\n".join(L)


def _reduce_load(xt: Storage, rt: Storage, v: str) -> str:
    """An element of x in the accumulation type: float32 for floats, the result type for ints."""
    return load_f32(xt, v) if rt.is_float else f"({rt.ctype})({v})"


def _reduce_store(rt: Storage, v: str) -> str:
    return store_from_f32(rt, v) if rt.is_float else f"({rt.ctype})({v})"


def _acc_type(red: str, rt: Storage) -> str:
    if rt.is_float:
        return "float"
    return "uint64_t" if red == "sum" else rt.ctype


def _row_reduce(red: str, xt: Storage, rt: Storage, R: int) -> list[str]:
    """Float rows: NumPy's pairwise sum / a vectorised max-min over a float32 row (BF16/FP16
    rows widened into scratch first); integer rows: sequential, wrapping."""
    fl = rt.is_float
    L = ["    float *tmp = NULL;"]
    if fl and xt.kind != "f32":
        L += [
            "    tmp = pt_scratch(3, (size_t)(n > 0 ? n : 1));",
            "    if (!tmp) { PT_FAIL(ctx, site + 1, n * 4, 0, 0, 0, 0, 0); pt_release(&xm); return; }",
        ]
    L += [
        "    (void)tmp;",
        f"    PT_FOR_ROWS({R}, valid, idx, {{",
        "        int64_t ox = 0, orr = 0;",
        f"        for (int d = 0; d < {R} - 1; d++) {{ ox += idx[d] * x->bstride[d]; orr += idx[d] * r->bstride[d]; }}",
        f"        const {xt.ctype} *px = xo + ox;",
        f"        const int64_t ix = x->bstride[{R} - 1];",
        f"        {_acc_type(red, rt)} acc;",
    ]  # fmt: skip
    elem = _reduce_load(xt, rt, "px[j * ix]")
    if fl:
        if red == "sum":
            whole = "0.0f + pt_pairwise_sum({}, n)"
        else:
            whole = "pt_vmaxminf({}, n, " + ("1" if red == "max" else "0") + ")"
        if xt.kind == "f32":
            L += [
                f"        if (ix == 1 || n <= 1) acc = {whole.format('px')};",
                "        else { float *t2 = pt_scratch(3, (size_t)(n > 0 ? n : 1)); for (int64_t j = 0; j < n; j++) t2[j] = px[j * ix]; acc = "
                + whole.format("t2") + "; }",
            ]  # fmt: skip
        else:
            L += [
                f"        for (int64_t j = 0; j < n; j++) tmp[j] = {elem};",
                f"        acc = {whole.format('tmp')};",
            ]
    elif red == "sum":
        L += [
            "        acc = 0;",
            f"        for (int64_t j = 0; j < n; j++) acc += (uint64_t){elem};",
        ]
    else:
        cmpop = ">" if red == "max" else "<"
        L += [
            f"        acc = {_reduce_load(xt, rt, 'px[0]')};",
            f"        for (int64_t j = 1; j < n; j++) {{ {rt.ctype} v_ = {elem}; if (v_ {cmpop} acc) acc = v_; }}",
        ]  # fmt: skip
    return L + [f"        ro[orr] = {_reduce_store(rt, 'acc')};", "    });"]


def _col_reduce(red: str, xt: Storage, rt: Storage, R: int) -> list[str]:
    """Columns: one accumulator per column, rows added in order."""
    acc_t = _acc_type(red, rt)
    elem = _reduce_load(xt, rt, "row[j * cs]")
    if red == "sum":
        init, first = "0", 0
        update = f"acc[j] += {'' if rt.is_float else '(uint64_t)'}{elem};"
    else:
        init, first = _reduce_load(xt, rt, "xo[j * cs]"), 1
        if rt.is_float:
            update = f"acc[j] = {'pt_fmax' if red == 'max' else 'pt_fmin'}(acc[j], {elem});"
        else:
            cmpop = ">" if red == "max" else "<"
            update = f"{{ {rt.ctype} v_ = {elem}; if (v_ {cmpop} acc[j]) acc[j] = v_; }}"
    return [
        "    const int64_t m = valid[1];",
        f"    {acc_t} *acc = ({acc_t} *)pt_scratch(3, (size_t)((m > 0 ? m : 1) * sizeof({acc_t}) / 4 + 2));",
        "    if (!acc) { PT_FAIL(ctx, site + 1, m * 8, 0, 0, 0, 0, 0); pt_release(&xm); return; }",
        "    const int64_t rs = x->bstride[0], cs = x->bstride[1];",
        f"    for (int64_t j = 0; j < m; j++) acc[j] = {init};",
        f"    for (int64_t i = {first}; i < n; i++) {{",
        f"        const {xt.ctype} *row = xo + i * rs;",
        f"        for (int64_t j = 0; j < m; j++) {update}",
        "    }",
        f"    for (int64_t j = 0; j < m; j++) ro[j] = {_reduce_store(rt, 'acc[j]')};",
    ]  # fmt: skip


@op("row_sum", "row_max", "row_min", "col_sum", "col_max", "col_min")
def _op_reduce(em: Emitter, e: OpCall, args: list) -> CVal:
    (x,) = args
    kind, red = e.op.split("_")
    xt, rt = em.st(x.type.dtype), em.st(e.type.dtype)
    rank = x.type.rank
    _check_rank(e, rank)
    if kind == "col" and rank != 2:
        raise unsupported("column reductions need a 2-D tensor", e.span)
    if rt.kind == "bool" or xt.kind == "bool" or rt.is_float != xt.is_float:
        return _numerics_fault(em, e, f"integer {red!r} needs integer input and result")
    label = Emitter.label(e)
    site = em.sites_block(e.span, [
        ("EmptyReduction", lambda v, lb=label, r=red, nm=_argname(e.args[0]): f"{lb}: {r} over an empty axis of '{nm}' has no value", None),
        _oom_entry(label),
    ])  # fmt: skip
    out = em.ttemp()
    key = ("red", kind, red, xt.name, rt.name, rank)
    name = em.kernel(key, lambda n: _reduce_kernel(n, kind, red, xt, rt, rank))
    em.line(f"{name}(ctx, {site}, &{x.code}, &{out});")
    em.check()
    return CVal("t", out, e.type, owned=True)


# ---------------------------------------------------------------- matmul


@op("matmul", "matmul_acc")
def _op_matmul(em: Emitter, e: OpCall, args: list) -> CVal:
    if e.op == "matmul":
        lhs, rhs = args[0], args[1]
        acc = None
    else:
        acc, lhs, rhs = args[0], args[1], args[2]
    a_trans = 1 if e.attr("a_trans") else 0
    b_trans = 1 if e.attr("b_trans") else 0
    for t in (lhs, rhs) + ((acc,) if acc else ()):
        if t.type.rank != 2:
            raise unsupported(f"{e.op} needs 2-D operands", e.span)
    at, bt = em.st(lhs.type.dtype), em.st(rhs.type.dtype)
    rt = em.st(e.type.dtype)
    label = Emitter.label(e)
    site = em.sites_block(e.span, [
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: {e.op} contraction dims differ at run time: lhs K={v[0]}, rhs K={v[1]}",
         "check a_trans/b_trans and the slice shapes"),
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: accumulator shape [{v[0]}, {v[1]}] does not match the product [{v[2]}, {v[3]}]", None),
        _oom_entry(label),
    ])  # fmt: skip
    out = em.ttemp()
    acc_arg = "NULL, 0" if acc is None else f"&{acc.code}, {em.st(acc.type.dtype).code}"
    em.line(
        f"pt_matmul(ctx, {site}, &{lhs.code}, {at.code}, &{rhs.code}, {bt.code}, {acc_arg}, {rt.code}, {a_trans}, {b_trans}, &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


# ---------------------------------------------------------------- data ops


@op("fillpad")
def _op_fillpad(em: Emitter, e: OpCall, args: list) -> CVal:
    (x,) = args
    attr = e.attr("pad_value")
    pad = "zero" if attr is None else pad_name(attr)
    xt = em.st(x.type.dtype)
    site = _oom_site(em, e)
    out = em.ttemp()
    em.line(
        f"pt_materialize(ctx, {site}, &{x.code}, {xt.esize}, pt_pad_bits({xt.code}, {PAD_CODE[pad]}), &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


def _shape_sites(em: Emitter, e: OpCall, what: str) -> int:
    label = Emitter.label(e)
    return em.sites_block(e.span, [
        ("BadShape", lambda v, lb=label: f"{lb}: {what} has a negative extent {v[1]} on axis {v[0]}", None),
        _oom_entry(label),
    ])  # fmt: skip


def _new_from_dims(em: Emitter, e: OpCall, dims: list[str], st: Storage, what: str) -> str:
    site = _shape_sites(em, e, what)
    out = em.ttemp()
    r = len(dims)
    em.line("{")
    em.line(
        f"    int64_t shp_[{max(r, 1)}] = {{{', '.join(f'(int64_t)({d})' for d in dims) or '0'}}};"
    )
    em.line(
        f"    for (int d_ = 0; d_ < {r}; d_++) if (shp_[d_] < 0) {{ PT_FAIL(ctx, {site}, d_, shp_[d_], 0, 0, 0, 0); goto {em.scope.fail_label}; }}"
    )
    em.line(
        f"    if (!pt_new(ctx, {site} + 1, &{out}, {r}, shp_, {st.esize})) goto {em.scope.fail_label};"
    )
    em.line("}")
    return out


@op("create_tensor")
def _op_create(em: Emitter, e: OpCall, args: list) -> CVal:
    dims = args[0]
    dtype = e.attr("dtype") or e.type.dtype
    st = em.st(dtype)
    if not 1 <= len(dims) <= MAX_RANK:
        raise unsupported(f"pl.create_tensor of rank {len(dims)}", e.span)
    out = _new_from_dims(em, e, dims, st, "pl.create_tensor shape")
    em.line(f"memset({out}.base, 0, (size_t)(pt_numel({out}.rank, {out}.shape) * {st.esize}));")
    return CVal("t", out, e.type, owned=True)


@op("full")
def _op_full(em: Emitter, e: OpCall, args: list) -> CVal:
    dims, value = args[0], args[1]
    dtype = e.attr("dtype") or e.type.dtype
    st = em.st(dtype)
    if not 1 <= len(dims) <= MAX_RANK:
        raise unsupported(f"pl.full of rank {len(dims)}", e.span)
    out = _new_from_dims(em, e, dims, st, "pl.full shape")
    vdt = e.args[1].type.dtype
    conv = scalar_to_storage(em, value, vdt, st, "rint")
    em.line("{")
    em.line(f"    {st.ctype} fv_ = {conv}; uint64_t pat_ = 0; memcpy(&pat_, &fv_, sizeof(fv_));")
    em.line(f"    pt_fill_bytes({out}.base, pt_numel({out}.rank, {out}.shape), {st.esize}, pat_);")
    em.line("}")
    return CVal("t", out, e.type, owned=True)


def _window_sites(em: Emitter, e: OpCall, what: str, tname: str) -> None:
    """The three OutOfBounds sites of a window (pt_slice / pt_assemble: site + 0, 1, 2)."""
    label = Emitter.label(e)
    em.site(e.span, "OutOfBounds",
            lambda v, lb=label: f"{lb}: {what} out of bounds on axis {v[0]}: negative offset {v[1]} into '{tname}'",
            "offsets must be >= 0")  # fmt: skip
    em.site(e.span, "OutOfBounds",
            lambda v, lb=label: f"{lb}: {what} out of bounds on axis {v[0]}: offset {v[1]} + extent {v[2]} = {v[1] + v[2]} > {v[3]} (dim {v[0]} of '{tname}')",
            "clip the window with valid_shape=[pl.min(tile, n - i), ...] or check the loop bounds and offsets")  # fmt: skip
    em.site(e.span, "OutOfBounds",
            lambda v, lb=label: f"{lb}: {what} out of bounds on axis {v[0]}: buffer offset {v[1]} + extent {v[2]} = {v[1] + v[2]} > {v[3]} (dim {v[0]} of buffer '{tname}')",
            "the window lies past the end of the underlying buffer")  # fmt: skip


@op("slice")
def _op_slice(em: Emitter, e: OpCall, args: list) -> CVal:
    x, shape, offset, valid = args[0], args[1], args[2], args[3]
    pad = pad_name(e.attr("pad_value"))
    label = Emitter.label(e)
    r = x.type.rank
    if len(shape) != r or len(offset) != r or (valid is not None and len(valid) != r):
        raise unsupported("slice rank mismatch", e.span)
    base = em.site(
        e.span,
        "BadShape",
        lambda v, lb=label: f"{lb}: the slice shape has a negative extent {v[1]} on axis {v[0]}",
    )
    em.site(e.span, "BadValidShape",
            lambda v, lb=label: f"{lb}: valid_shape does not fit the window on axis {v[0]} ({v[1]} not in [0, {v[2]}])",
            "valid extents must satisfy 0 <= valid <= shape")  # fmt: skip
    _window_sites(em, e, "pl.slice window", _argname(e.args[0]))
    out = em.ttemp()
    want = em.ilist(valid) if valid is not None else "NULL"
    em.line(
        f"pt_slice(ctx, {base}, &{x.code}, {em.ilist(shape)}, {em.ilist(offset)}, {want}, {PAD_CODE[pad]}, &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


@op("assemble")
def _op_assemble(em: Emitter, e: OpCall, args: list) -> CVal:
    target, source, offset = args
    st = em.st(target.type.dtype)
    base = len(em.sites)
    _window_sites(em, e, "pl.assemble window", _argname(e.args[0]))
    _oom_site(em, e)
    em.line(
        f"pt_assemble(ctx, {base}, &{target.code}, &{source.code}, {em.ilist(offset)}, {st.esize});"
    )
    em.check()
    return CVal("t", target.code, e.type)


def _begin_index(em: Emitter, e: OpCall, x: CVal, idx: list[str]) -> int:
    """Open a C block that locates element `idx` of `x`: `el_` (buffer element), `in_` (inside
    the valid region), `bi_` (buffer index); returns the first of its three fault sites."""
    base = _index_sites(em, e)
    em.line("{")
    em.line(f"    int64_t el_ = 0, bi_[{MAX_RANK}]; int in_ = 0;")
    em.line(
        f"    if (!pt_index(ctx, {base}, &{x.code}, {len(idx)}, {em.ilist(idx)}, &el_, &in_, bi_)) goto {em.scope.fail_label};"
    )
    return base


def _index_sites(em: Emitter, e: OpCall) -> int:
    label = Emitter.label(e)
    nm = _argname(e.args[0])
    base = em.site(e.span, "OutOfBounds",
                   lambda v, lb=label: f"{lb}: flat index {v[0]} out of bounds for '{nm}' ({v[1]} elements)",
                   "indices must satisfy 0 <= i < size")  # fmt: skip

    def msg(v, lb=label):
        axis, dim, r = v[0], v[1], v[2]
        idx = list(v[3 : 3 + r])
        return f"{lb}: index {idx} out of bounds on axis {axis}: {idx[axis]} not in [0, {dim}) for '{nm}'"

    em.site(e.span, "OutOfBounds", msg, "indices must satisfy 0 <= i < dim")
    em.site(e.span, "OutOfBounds",
            lambda v, lb=label: f"{lb}: index lies past the end of the buffer of '{nm}' (axis {v[0]}: {v[1]} >= {v[2]})")  # fmt: skip
    return base


@op("read")
def _op_read(em: Emitter, e: OpCall, args: list) -> CVal:
    x, idx = args
    st = em.st(x.type.dtype)
    dtype = e.type.dtype
    res = em.stemp(scalar_ctype(dtype))
    _begin_index(em, e, x, idx)
    em.line(
        f"    if (in_) {res} = {_storage_to_scalar(st, dtype, f'(({st.ctype} *){x.code}.base)[el_]')};"
    )
    em.line("    else {")
    em.line(
        f"        uint64_t pb_ = pt_pad_bits({st.code}, {x.code}.pad); {st.ctype} pv_; memcpy(&pv_, &pb_, sizeof(pv_));"
    )
    em.line(f"        {res} = {_storage_to_scalar(st, dtype, 'pv_')};")
    em.line("    }")
    em.line("}")
    return CVal("s", res, e.type)


@op("write")
def _op_write(em: Emitter, e: OpCall, args: list) -> CVal:
    x, idx, value = args
    st = em.st(x.type.dtype)
    conv = scalar_to_storage(em, value, e.args[2].type.dtype, st, "rint")
    r = x.type.rank
    base = _begin_index(em, e, x, idx)
    em.line("    if (ctx->bounds_check) {")
    em.line(
        f"        for (int d_ = 0; d_ < {r}; d_++) if (bi_[d_] >= {x.code}.bshape[d_]) {{ PT_FAIL(ctx, {base} + 2, d_, bi_[d_], {x.code}.bshape[d_], 0, 0, 0); goto {em.scope.fail_label}; }}"
    )
    em.line("    }")
    em.line(f"    (({st.ctype} *){x.code}.base)[el_] = {conv};")
    em.line(f"    if ({x.code}.buf) {x.code}.buf->written = 1;")
    em.line("}")
    return CVal("t", x.code, e.type)


@op("dim")
def _op_dim(em: Emitter, e: OpCall, args: list) -> CVal:
    (x,) = args
    axis = e.attr("axis")
    r = x.type.rank
    if axis < 0:
        axis += r
    return CVal("s", f"(int64_t){x.code}.shape[{axis}]", e.type)


@op("reshape")
def _op_reshape(em: Emitter, e: OpCall, args: list) -> CVal:
    x, shape = args
    st = em.st(x.type.dtype)
    label = Emitter.label(e)
    nm = _argname(e.args[0])
    base = em.sites_block(e.span, [
        ("BadShape", lambda v, lb=label: f"{lb}: the new shape has a negative extent {v[1]} on axis {v[0]}", None),
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: reshape changes the element count ({v[0]} -> {v[1]})", None),
        ("PartialReshape", lambda v, lb=label: f"{lb}: reshape of '{nm}' does not map its valid region", "pl.fillpad the value first"),
        _oom_entry(label),
    ])  # fmt: skip
    if not 1 <= len(shape) <= MAX_RANK:
        raise unsupported(f"reshape to rank {len(shape)}", e.span)
    out = em.ttemp()
    em.line(
        f"pt_reshape(ctx, {base}, &{x.code}, {len(shape)}, {em.ilist(shape)}, {st.esize}, pt_pad_bits({st.code}, {x.code}.pad), &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


def emit_program(program: Program, precision: str = "bf16", profile: bool = False) -> Emitted:
    return Emitter(program, precision, profile).emit()


__all__ = ["CBackendError", "Emitted", "Emitter", "OP_EMITTERS", "Site", "emit_program"]
