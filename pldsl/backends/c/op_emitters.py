"""One C emitter per op of the op table (`OP_EMITTERS`, keyed by op name): each generates a
`static` kernel function per distinct (op, dtypes, rank) instance through `Emitter.kernel` and
the call to it; element expressions follow the numerics contract (`pldsl.execution.numerics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from pldsl.execution import faults
from pldsl.execution.memory import pad_name
from pldsl.ir.nodes import (
    OpCall,
)
from pldsl.ir.opdefs import op_label
from pldsl.ir.symbolic import static_value
from pldsl.ir.types import ScalarType

from .abi import (
    MAX_RANK,
    MODE_CODE,
    PAD_CODE,
    CVal,
    argname,
    unsupported,
)
from .ctypes_map import (
    Storage,
    scalar_ctype,
)

OP_EMITTERS: dict[str, Callable[[Emitter, OpCall, list], CVal]] = {}


def op(*names: str):
    def deco(fn):
        for n in names:
            OP_EMITTERS[n] = fn
        return fn

    return deco


if TYPE_CHECKING:
    from .lowering import Emitter

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
    "fmod": "fmodf({a}, {b})",
    "rhs": "({b})",
    "expdif": "pt_expf(({a}) - ({b}))",
    "cmp_eq": "(({a}) == ({b}) ? 1.0f : 0.0f)",
    "cmp_ne": "(({a}) != ({b}) ? 1.0f : 0.0f)",
    "cmp_lt": "(({a}) < ({b}) ? 1.0f : 0.0f)",
    "cmp_le": "(({a}) <= ({b}) ? 1.0f : 0.0f)",
    "cmp_gt": "(({a}) > ({b}) ? 1.0f : 0.0f)",
    "cmp_ge": "(({a}) >= ({b}) ? 1.0f : 0.0f)",
}
_C_CMP = {
    "cmp_eq": "==",
    "cmp_ne": "!=",
    "cmp_lt": "<",
    "cmp_le": "<=",
    "cmp_gt": ">",
    "cmp_ge": ">=",
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
    if op_name == "fmod":  # C remainder, sign of a; MIN % -1 is 0 (undefined in C)
        if rt.kind == "uint":
            return f"({ct})(({a}) % ({b}))"
        return f"(({b}) == -1 ? ({ct})0 : ({ct})(({a}) % ({b})))"
    if op_name == "rhs":
        return b
    if op_name in _C_CMP:
        return f"({ct})(({a}) {_C_CMP[op_name]} ({b}))"
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
    if op_name in ("div", "fmod") and rt.is_int:
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


def _binary_sites(em: Emitter, e: OpCall, word: str = "div") -> int:
    label = em.label(e)
    return em.sites_block(e.span, [
        ("ShapeMismatch", lambda v, lb=label: "{}: shapes {} and {} do not broadcast".format(lb, *_fail_shapes(v)),
         "the dynamic dims of the operands differ at run time"),
        _oom_entry(label),
        ("NumericsError", lambda v, lb=label: f"{lb}: integer division by zero in elementwise {word}", None),
    ])  # fmt: skip


@op("add", "sub", "mul", "div", "maximum", "minimum")
def _op_binary(em: Emitter, e: OpCall, args: list) -> CVal:
    return _emit_binary(em, e, args, e.op)


@op("cmp")
def _op_cmp(em: Emitter, e: OpCall, args: list) -> CVal:
    """1/0 in the promoted dtype: the comparison on the operands widened as `binary` does."""
    names = ("eq", "ne", "lt", "le", "gt", "ge")
    return _emit_binary(em, e, args, f"cmp_{names[e.attr('cmp_type') or 0]}")


@op("fmods")
def _op_fmods(em: Emitter, e: OpCall, args: list) -> CVal:
    return _emit_binary(em, e, args, "fmod", word="fmods")


def _emit_binary(em: Emitter, e: OpCall, args: list, op_name: str, word: str = "div") -> CVal:
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
    site = _binary_sites(em, e, word)
    out = em.ttemp()
    if rhs.kind == "t":
        bt = em.st(rhs.type.dtype)
        if res.is_int and (bt.is_float or at.is_float):
            return _numerics_fault(em, e, f"integer {e.op!r} needs integer operands")
        key = ("bin", op_name, at.name, bt.name, res.name, rank)
        name = em.kernel(key, lambda n: _binary_kernel(em, n, op_name, at, bt, None, res, rank))
        em.line(f"{name}(ctx, {site}, &{lhs.code}, &{rhs.code}, &{out});")
    else:
        sdt = e.args[1].type.dtype
        sk = "f" if sdt.is_float else "i"
        if res.is_int and (sk == "f" or at.is_float):
            return _numerics_fault(em, e, f"integer {e.op!r} needs integer operands")
        key = ("bins", op_name, at.name, sk, res.name, rank)
        name = em.kernel(key, lambda n: _binary_kernel(em, n, op_name, at, None, sk, res, rank))
        cast = "(double)" if sk == "f" else "(int64_t)"
        em.line(f"{name}(ctx, {site}, &{lhs.code}, {cast}({rhs.code}), &{out});")
    em.check()
    return CVal("t", out, rt_type, owned=True)


@op("row_expand_add", "row_expand_sub", "row_expand_mul", "row_expand_div", "row_expand",
    "col_expand_add", "col_expand_sub", "col_expand_mul", "col_expand_div", "col_expand",
    "col_expand_expdif")  # fmt: skip
def _op_expand(em: Emitter, e: OpCall, args: list) -> CVal:
    """x op v, v holding one value per row ([..., M, 1]) or column ([..., 1, N]): the broadcasting
    binary kernel after a run-time shape check; row_expand / col_expand copy v ("rhs")."""
    x, v = args
    parts = e.op.split("_")
    kind, fn = parts[0], (parts[2] if len(parts) == 3 else "rhs")
    at, bt = em.st(x.type.dtype), em.st(v.type.dtype)
    res = em.st(e.type.dtype)
    label = em.label(e)
    rank = x.type.rank
    _check_rank(e, rank)
    if v.type.rank < rank:  # fewer leading axes: they broadcast (a view with leading 1s)
        view = em.ttemp()
        em.line(f"pt_add_lead(&{v.code}, {rank - v.type.rank}, &{view});")
        lead = (1,) * (rank - v.type.rank)
        v = CVal(
            "t", view, replace(v.type, shape=lead + v.type.shape, valid_shape=None), owned=True
        )
    if v.type.rank != rank:
        raise unsupported(f"{e.op} operands of ranks {rank} and {v.type.rank}", e.span)
    sid = em.site(
        e.span, "ShapeMismatch",
        lambda vv, lb=label: f"{lb}: {e.op} operand 'v' does not fit x on axis {vv[0]}: {vv[1]} (x: {vv[2]})",
        "row_expand_* takes one value per row [..., M, 1]; col_expand_* one per column [..., 1, N]",
    )  # fmt: skip
    unit = rank - 1 if kind == "row" else rank - 2
    em.line(f"for (int d_ = 0; d_ < {rank}; d_++) {{")
    em.line(
        f"    int ok_ = d_ == {unit} ? {v.code}.shape[d_] == 1 : d_ == {2 * rank - 3 - unit} ? "
        f"{v.code}.shape[d_] == {x.code}.shape[d_] : ({v.code}.shape[d_] == 1 || {v.code}.shape[d_] == {x.code}.shape[d_]);"
    )
    em.line(
        f"    if (!ok_) {{ PT_FAIL(ctx, {sid}, d_, {v.code}.shape[d_], {x.code}.shape[d_], 0, 0, 0); goto {em.scope.fail_label}; }}"
    )
    em.line("}")
    if res.is_int and (at.is_float or bt.is_float):
        return _numerics_fault(em, e, f"integer {fn!r} needs integer operands")
    site = _binary_sites(em, e)
    out = em.ttemp()
    key = ("bin", fn, at.name, bt.name, res.name, rank)
    name = em.kernel(key, lambda n: _binary_kernel(em, n, fn, at, bt, None, res, rank))
    em.line(f"{name}(ctx, {site}, &{x.code}, &{v.code}, &{out});")
    em.check()
    return CVal("t", out, e.type, owned=True)


def _numerics_fault(em: Emitter, e: OpCall, message: str) -> CVal:
    sid = em.site(e.span, "NumericsError", lambda v, m=message, lb=em.label(e): f"{lb}: {m}")
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
    return em.site(e.span, *_oom_entry(em.label(e)))


def _rt_tile(em: Emitter, e: OpCall, call: str) -> CVal:
    """Emit `call` (a pldsl_rt.h call up to its last argument) writing a new owned tile, then
    the fault check: the shared tail of every op that is one runtime call."""
    out = em.ttemp()
    em.line(f"{call}, &{out});")
    em.check()
    return CVal("t", out, e.type, owned=True)


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
    x = args[0]  # args[1]: row reductions' tmp (PyPTO's scratch tile), unused
    kind, red = e.op.split("_")
    xt, rt = em.st(x.type.dtype), em.st(e.type.dtype)
    rank = x.type.rank
    _check_rank(e, rank)
    if kind == "col" and rank != 2:
        raise unsupported("column reductions need a 2-D tensor", e.span)
    if rt.kind == "bool" or xt.kind == "bool" or rt.is_float != xt.is_float:
        return _numerics_fault(em, e, f"integer {red!r} needs integer input and result")
    label = em.label(e)
    site = em.sites_block(e.span, [
        ("EmptyReduction", lambda v, lb=label, r=red, nm=argname(e.args[0]): f"{lb}: {r} over an empty axis of '{nm}' has no value", None),
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
    batched = any(t.type.rank != 2 for t in (lhs, rhs) + ((acc,) if acc else ()))
    if batched:  # leading axes all 1: the 2-D product of the operands' last two axes
        lhs, rhs = _as_2d(em, e, lhs), _as_2d(em, e, rhs)
        acc = _as_2d(em, e, acc) if acc else None
    at, bt = em.st(lhs.type.dtype), em.st(rhs.type.dtype)
    rt = em.st(e.type.dtype)
    label = em.label(e)
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
    if batched:  # the leading axes of 1 back on (a view)
        view = em.ttemp()
        em.line(f"pt_add_lead(&{out}, {e.type.rank - 2}, &{view});")
        out = view
    return CVal("t", out, e.type, owned=True)


def _as_2d(em: Emitter, e: OpCall, x: CVal) -> CVal:
    """A batched matmul operand with static leading axes of 1 as a view of its last two axes
    (its valid region kept, as the interpreter's operands keep theirs)."""
    if x.type.rank == 2:
        return x
    if any(static_value(d) != 1 for d in x.type.shape[:-2]):
        raise unsupported(
            f"{e.op} with batch axes {list(x.type.shape[:-2])} on the C backend (leading axes "
            "of 1 only)",
            e.span,
        )
    view = em.ttemp()
    em.line(f"pt_drop_lead(&{x.code}, {x.type.rank - 2}, {em.st(x.type.dtype).esize}, &{view});")
    return CVal("t", view, replace(x.type, shape=x.type.shape[-2:], valid_shape=None), owned=True)


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
    label = em.label(e)
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
    dims, init, valid = args[0], args[1], args[2]
    dtype = e.attr("dtype") or e.type.dtype
    st = em.st(dtype)
    if not 1 <= len(dims) <= MAX_RANK:
        raise unsupported(f"pl.create_tensor of rank {len(dims)}", e.span)
    out = _new_from_dims(em, e, dims, st, "pl.create_tensor shape")
    if init is None:
        em.line(f"memset({out}.base, 0, (size_t)(pt_numel({out}.rank, {out}.shape) * {st.esize}));")
    else:
        _fill(em, out, st, scalar_to_storage(em, init, e.args[1].type.dtype, st, "rint"))
    if valid is not None:
        label = em.label(e)
        sid = em.site(e.span, "BadValidShape",
                      lambda v, lb=label: f"{lb}: valid_shape does not fit the shape on axis {v[0]} ({v[1]} not in [0, {v[2]}])",
                      "valid extents must satisfy 0 <= valid <= shape")  # fmt: skip
        em.line("{")
        em.line(
            f"    int64_t vs_[{len(valid)}] = {{{', '.join(f'(int64_t)({d})' for d in valid)}}};"
        )
        em.line(f"    for (int d_ = 0; d_ < {len(valid)}; d_++) {{")
        em.line(
            f"        if (vs_[d_] < 0 || vs_[d_] > {out}.shape[d_]) {{ PT_FAIL(ctx, {sid}, d_, vs_[d_], {out}.shape[d_], 0, 0, 0); goto {em.scope.fail_label}; }}"
        )
        em.line(f"        {out}.valid[d_] = vs_[d_];")
        em.line("    }")
        em.line("}")
    return CVal("t", out, e.type, owned=True)


def _fill(em: Emitter, out: str, st: Storage, conv: str) -> None:
    em.line("{")
    em.line(f"    {st.ctype} fv_ = {conv}; uint64_t pat_ = 0; memcpy(&pat_, &fv_, sizeof(fv_));")
    em.line(f"    pt_fill_bytes({out}.base, pt_numel({out}.rank, {out}.shape), {st.esize}, pat_);")
    em.line("}")


@op("full")
def _op_full(em: Emitter, e: OpCall, args: list) -> CVal:
    dims, value = args[0], args[1]
    dtype = e.attr("dtype") or e.type.dtype
    st = em.st(dtype)
    if not 1 <= len(dims) <= MAX_RANK:
        raise unsupported(f"pl.full of rank {len(dims)}", e.span)
    out = _new_from_dims(em, e, dims, st, "pl.full shape")
    _fill(em, out, st, scalar_to_storage(em, value, e.args[1].type.dtype, st, "rint"))
    return CVal("t", out, e.type, owned=True)


def _window_sites(em: Emitter, e: OpCall, tname: str, label: str | None = None) -> None:
    """The three OutOfBounds sites of a window (pt_slice / pt_assemble: site + 0, 1, 2), in the
    fault catalogue's words (the interpreter's)."""
    lb = label or em.label(e)
    em.site(e.span, "OutOfBounds",
            lambda v: f"{lb}: {faults.window_negative_offset(v[0], v[1], tname)}",
            faults.WINDOW_NEGATIVE_HELP)  # fmt: skip
    em.site(e.span, "OutOfBounds",
            lambda v: f"{lb}: {faults.window_past_dim(v[0], v[1], v[2], v[3], tname)}",
            faults.WINDOW_PAST_DIM_HELP)  # fmt: skip
    em.site(e.span, "OutOfBounds",
            lambda v: f"{lb}: {faults.window_past_buffer(v[0], v[1], v[2], v[3], tname)}",
            faults.WINDOW_PAST_BUFFER_HELP)  # fmt: skip


@op("slice")
def _op_slice(em: Emitter, e: OpCall, args: list, label: str | None = None) -> CVal:
    """`label`: the op the faults name (gather_row's window is a slice)."""
    x, shape, offset, valid = args[0], args[1], args[2], args[3]
    pad = pad_name(e.attr("pad_value"))
    label = label or em.label(e)
    r = x.type.rank
    if len(shape) != r or len(offset) != r or (valid is not None and len(valid) != r):
        raise unsupported("slice rank mismatch", e.span)
    base = em.site(
        e.span,
        "BadShape",
        lambda v, lb=label: f"{lb}: the slice shape has a negative extent {v[1]} on axis {v[0]}",
    )
    em.site(e.span, "BadValidShape",
            lambda v, lb=label: f"{lb}: {faults.valid_shape_misfit(v[0], v[1], v[2])}",
            faults.VALID_SHAPE_HELP)  # fmt: skip
    _window_sites(em, e, argname(e.args[0]), label)
    out = em.ttemp()
    want = em.ilist(valid) if valid is not None else "NULL"
    em.line(
        f"pt_slice(ctx, {base}, &{x.code}, {em.ilist(shape)}, {em.ilist(offset)}, {want}, {PAD_CODE[pad]}, &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


@op("assemble")
def _op_assemble(em: Emitter, e: OpCall, args: list, label: str | None = None) -> CVal:
    target, source, offset = args
    st = em.st(target.type.dtype)
    extra = source.type.rank - target.type.rank
    if extra > 0:  # leading axes of 1 dropped (the type rule checked them): a view
        view = em.ttemp()
        em.line(f"pt_drop_lead(&{source.code}, {extra}, {st.esize}, &{view});")
        flat = replace(source.type, shape=source.type.shape[extra:], valid_shape=None)
        source = CVal("t", view, flat, owned=True)
    base = len(em.sites)
    _window_sites(em, e, argname(e.args[0]), label)
    _oom_site(em, e)
    atomic = e.attr("atomic")
    if atomic is not None and atomic.value == "add":
        em.line(
            f"pt_assemble_add(ctx, {base}, &{target.code}, &{source.code}, {em.ilist(offset)}, {st.code});"
        )
    else:
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
    label = em.label(e)
    nm = argname(e.args[0])
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
    label = em.label(e)
    nm = argname(e.args[0])
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


# ---------------------------------------------------------------- PyPTO's wider op set


@op("arange")
def _op_arange(em: Emitter, e: OpCall, args: list) -> CVal:
    """start +- j along the last axis, wrapped into the dtype (two's complement)."""
    start, dims = args[0], args[1]
    st = em.st(e.type.dtype)
    if not 1 <= len(dims) <= MAX_RANK:
        raise unsupported(f"pl.arange of rank {len(dims)}", e.span)
    label = em.label(e)
    sid = em.site(e.span, "BadShape",
                  lambda v, lb=label: f"{lb}: pl.arange fills only the first row; leading dimension {v[0]} is {v[1]}, not 1")  # fmt: skip
    for axis, d in enumerate(dims[:-1]):
        em.line(
            f"if (({d}) != 1) {{ PT_FAIL(ctx, {sid}, {axis}, ({d}), 0, 0, 0, 0); goto {em.scope.fail_label}; }}"
        )
    out = _new_from_dims(em, e, dims, st, "pl.arange shape")
    step = -1 if e.attr("descending") else 1
    em.line("{")
    em.line(f"    {st.ctype} *p_ = ({st.ctype} *){out}.base;")
    em.line(f"    const int64_t n_ = {out}.shape[{len(dims) - 1}], s_ = (int64_t)({start.code});")
    em.line(
        f"    for (int64_t j_ = 0; j_ < n_; j_++) p_[j_] = ({st.ctype})(uint64_t)(s_ + {step} * j_);"
    )
    em.line("}")
    return CVal("t", out, e.type, owned=True)


@op("set_validshape")
def _op_set_validshape(em: Emitter, e: OpCall, args: list) -> CVal:
    """A new view of the same buffer (retained) with the valid box replaced."""
    x, vr, vc = args
    label = em.label(e)
    nm = argname(e.args[0])
    sid = em.sites_block(e.span, [
        ("BadValidShape", lambda v, lb=label: f"{lb}: set_validshape: valid extent {v[1]} not in [0, {v[2]}] on axis {v[0]} of '{nm}'",
         "valid extents must satisfy 0 <= valid <= shape"),
        ("OutOfBounds", lambda v, lb=label: f"{lb}: set_validshape: '{nm}' lies past its buffer's end", None),
    ])  # fmt: skip
    out = em.ttemp()
    em.line("{")
    em.line(f"    int64_t v_[2] = {{(int64_t)({vr.code}), (int64_t)({vc.code})}};")
    em.line("    for (int d_ = 0; d_ < 2; d_++) {")
    em.line(
        f"        if (v_[d_] < 0 || v_[d_] > {x.code}.shape[d_]) {{ PT_FAIL(ctx, {sid}, d_, v_[d_], {x.code}.shape[d_], 0, 0, 0); goto {em.scope.fail_label}; }}"
    )
    em.line(
        f"        if (ctx->bounds_check && {x.code}.off[d_] + {x.code}.shape[d_] > {x.code}.bshape[d_]) {{ PT_FAIL0(ctx, {sid} + 1); goto {em.scope.fail_label}; }}"
    )
    em.line("    }")
    em.line(f"    {out} = {x.code}; pt_retain(&{out});")
    em.line(f"    {out}.valid[0] = v_[0]; {out}.valid[1] = v_[1];")
    em.line("}")
    return CVal("t", out, e.type, owned=True)


@op("transpose")
def _op_transpose(em: Emitter, e: OpCall, args: list) -> CVal:
    (x,) = args
    rank = x.type.rank
    _check_rank(e, rank)
    a, b = e.attr("axis1") % rank, e.attr("axis2") % rank
    st = em.st(x.type.dtype)
    site = _oom_site(em, e)
    return _rt_tile(em, e, f"pt_transpose(ctx, {site}, &{x.code}, {a}, {b}, {st.esize}")


@op("concat")
def _op_concat(em: Emitter, e: OpCall, args: list) -> CVal:
    x, y = args
    rank = x.type.rank
    _check_rank(e, rank)
    label = em.label(e)
    sid = em.site(e.span, "ShapeMismatch",
                  lambda v, lb=label: f"{lb}: concat operands differ on axis {v[0]} ({v[1]} vs {v[2]})",
                  "all but the last axis must match")  # fmt: skip
    for d in range(rank - 1):
        em.line(
            f"if ({x.code}.shape[{d}] != {y.code}.shape[{d}]) {{ PT_FAIL(ctx, {sid}, {d}, {x.code}.shape[{d}], {y.code}.shape[{d}], 0, 0, 0); goto {em.scope.fail_label}; }}"
        )
    st = em.st(x.type.dtype)
    site = _oom_site(em, e)
    return _rt_tile(em, e, f"pt_concat(ctx, {site}, &{x.code}, &{y.code}, {st.esize}")


@op("gather")
def _op_gather(em: Emitter, e: OpCall, args: list) -> CVal:
    x, idx = args[0], args[1]
    if e.attr("mask_pattern") is not None:
        return _gather_mask(em, e, x)
    if e.attr("cmp_mode") is not None:
        return _gather_compare(em, e, x, args[2])
    label = em.label(e)
    nm = argname(e.args[0])
    site = em.sites_block(e.span, [
        ("OutOfBounds", lambda v, lb=label: f"{lb}: gather: index[{v[0]}, {v[1]}] = {v[2]} is outside [0, {v[3]}) for '{nm}'",
         "gather indices must address a column of x"),
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: gather: index has {v[0]} valid rows, x only {v[1]}", None),
        _oom_entry(label),
    ])  # fmt: skip
    xt, it = em.st(x.type.dtype), em.st(idx.type.dtype)
    return _rt_tile(em, e, f"pt_gather(ctx, {site}, &{x.code}, {xt.code}, &{idx.code}, {it.code}")


def _gather_compare(em: Emitter, e: OpCall, x: CVal, k: CVal) -> CVal:
    """The compare form (pt_gather_cmp): a (dst, cdst) tuple of fresh tensors."""
    from pldsl.ops.gather_compare import CMP_MODES, cmp_mode_name

    label = em.label(e)
    nm = argname(e.args[0])
    site = em.sites_block(e.span, [
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: gather compare form: row {v[0]} of '{nm}' has {v[1]} matches, out_cols is {v[2]}",
         "PyPTO defines the result only when every row matches exactly out_cols elements"),
        _oom_entry(label),
    ])  # fmt: skip
    mode = CMP_MODES.index(cmp_mode_name(e.attr("cmp_mode")))
    is_float = int(x.type.dtype.is_float)
    kf, ki = (f"(double)({k.code})", "0") if is_float else ("0.0", f"(int64_t)({k.code})")
    dst_type, cdst_type = e.type.items
    dst, cdst = em.ttemp(), em.ttemp()
    xt, ct = em.st(x.type.dtype), em.st(cdst_type.dtype)
    em.line(
        f"pt_gather_cmp(ctx, {site}, &{x.code}, {xt.code}, {is_float}, {kf}, {ki}, {mode}, "
        f"{e.attr('out_cols')}, {ct.code}, &{dst}, &{cdst});"
    )
    em.check()
    return CVal("tuple", items=[
        CVal("t", dst, dst_type, owned=True), CVal("t", cdst, cdst_type, owned=True),
    ])  # fmt: skip


def _gather_mask(em: Emitter, e: OpCall, x: CVal) -> CVal:
    """The mask form: every stride-th column from offset, bits copied (output_dtype has the
    input's width); zero outside the result's valid box."""
    from pldsl.ops.table_more import MASK_STRIDE, mask_pattern_code

    stride, off = MASK_STRIDE[mask_pattern_code(e.attr("mask_pattern"))]
    xt, rt = em.st(x.type.dtype), em.st(e.type.dtype)
    if xt.esize != rt.esize:
        raise unsupported(
            f"gather output_dtype {e.type.dtype.name} reinterpreting {x.type.dtype.name} at "
            f"precision {em.precision}",
            e.span,
        )
    site = _oom_site(em, e)
    return _rt_tile(em, e, f"pt_gather_mask(ctx, {site}, &{x.code}, {xt.esize}, {stride}, {off}")


@op("row_argmax")
def _op_row_argmax(em: Emitter, e: OpCall, args: list) -> CVal:
    (x,) = args
    _check_rank(e, x.type.rank)
    label = em.label(e)
    nm = argname(e.args[0])
    site = em.sites_block(e.span, [
        ("EmptyReduction", lambda v, lb=label: f"{lb}: argmax over an empty axis of '{nm}' has no value", None),
        _oom_entry(label),
    ])  # fmt: skip
    return _rt_tile(em, e, f"pt_row_argmax(ctx, {site}, &{x.code}, {em.st(x.type.dtype).code}")


# ---------------------------------------------------------------- sorting


@op("sort32")
def _op_sort32(em: Emitter, e: OpCall, args: list) -> CVal:
    """Blocks of 32 sorted into (value, index bits) pairs (pt_sort32)."""
    src, idx = args
    _check_rank(e, src.type.rank)
    site = _oom_site(em, e)
    return _rt_tile(em, e, f"pt_sort32(ctx, {site}, &{src.code}, &{idx.code}")


@op("mrgsort")
def _op_mrgsort(em: Emitter, e: OpCall, args: list) -> CVal:
    """Format1 (block_len) merges groups of 4 runs; format2 merges 2-4 lists (literal merge)."""
    src0, src1, src2, src3, tmp, block_len = args
    _check_rank(e, src0.type.rank)
    label = em.label(e)
    out = em.ttemp()
    if block_len is not None:
        site = em.sites_block(e.span, [
            ("BadShape", lambda v, lb=label: f"{lb}: block_len {v[0]} is not a positive multiple of 64",
             "block_len counts columns (2 per pair): 64, 256, 1024, ..."),
            _oom_entry(label),
        ])  # fmt: skip
        em.line(f"pt_mrgsort1(ctx, {site}, &{src0.code}, (int64_t)({block_len.code}), &{out});")
        em.check()
        return CVal("t", out, e.type, owned=True)
    srcs = [x for x in (src0, src1, src2, src3) if x is not None]
    site = em.sites_block(e.span, [
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: list {v[0]} differs from list 0 on axis {v[1]} ({v[2]} vs {v[3]})",
         "all but the last axis must match"),
        _oom_entry(label),
    ])  # fmt: skip
    width = (
        f"{tmp.code}.shape[{tmp.type.rank - 1}]"
        if tmp is not None
        else " + ".join(f"{x.code}.shape[{x.type.rank - 1}]" for x in srcs)
    )
    lists = ", ".join(f"&{x.code}" for x in srcs)
    exhausted = 1 if e.attr("exhausted") else 0
    em.line("{")
    em.line(f"    const pt_tensor *l_[{len(srcs)}] = {{{lists}}};")
    em.line(
        f"    pt_mrgsort2(ctx, {site}, {len(srcs)}, l_, (int64_t)({width}), {exhausted}, &{out});"
    )
    em.line("}")
    em.check()
    return CVal("t", out, e.type, owned=True)


# ---------------------------------------------------------------- paged gather into L1


@op("create_l1")
def _op_create_l1(em: Emitter, e: OpCall, args: list) -> CVal:
    return OP_EMITTERS["create_tensor"](em, e, [args[0], None, None])  # no init value, all valid


@op("gather_row")
def _op_gather_row(em: Emitter, e: OpCall, args: list) -> CVal:
    """slice (+ transpose) + assemble into acc, in place."""
    from pldsl.ir.symbolic import simplify_dim

    acc, src, dst_off, src_off, shapes, valid = args
    shape_expr = e.args[4]
    dims = tuple(simplify_dim(i) for i in shape_expr.items)
    wtype = replace(e.args[1].type, shape=dims, valid_shape=None, pad=None)
    label = em.label(e)  # the faults name gather_row, as the interpreter's do
    window = _op_slice(
        em, OpCall("slice", (e.args[1],), (), wtype, e.span), [src, shapes, src_off, valid], label
    )
    if e.attr("transpose"):
        ttype = replace(wtype, shape=dims[::-1])
        call = OpCall("transpose", (e.args[1],), (("axis1", 0), ("axis2", 1)), ttype, e.span)
        window = OP_EMITTERS["transpose"](em, call, [window])
    call = OpCall("assemble", (e.args[0], e.args[1]), (), e.type, e.span)
    return _op_assemble(em, call, [acc, window, dst_off], label)


@op("scatter")
def _op_scatter(em: Emitter, e: OpCall, args: list) -> CVal:
    """The index form (pt_scatter): a copy of input with src's columns written at index."""
    if e.attr("mask_pattern") is not None:
        return _scatter_mask(em, e, args[0], args[3])
    x, idx, src = args[0], args[1], args[2]
    label = em.label(e)
    nm = argname(e.args[0])
    site = em.sites_block(e.span, [
        ("OutOfBounds", lambda v, lb=label: f"{lb}: scatter: index[{v[0]}, {v[1]}] = {v[2]} is outside [0, {v[3]}) for '{nm}'",
         "scatter indices must address a column of input"),
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: scatter: index's valid region [{v[0]}, {v[1]}] exceeds src or input", None),
        _oom_entry(label),
    ])  # fmt: skip
    out = em.ttemp()
    xt, it = em.st(x.type.dtype), em.st(idx.type.dtype)
    em.line(
        f"pt_scatter(ctx, {site}, &{x.code}, {xt.code}, &{idx.code}, {it.code}, &{src.code}, &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


def _scatter_mask(em: Emitter, e: OpCall, x: CVal, dst: CVal) -> CVal:
    """The mask form (pt_scatter_mask): a copy of dst with x's columns spread at the mask
    pattern's stride and offset."""
    from pldsl.ops.table_more import MASK_STRIDE, mask_pattern_code

    stride, off = MASK_STRIDE[mask_pattern_code(e.attr("mask_pattern"))]
    label = em.label(e)
    nm = argname(e.args[3])
    site = em.sites_block(e.span, [
        ("ShapeMismatch", lambda v, lb=label: f"{lb}: scatter mask form: input's valid region [{v[0]}, {v[1]}] does not fit dst '{nm}' [{v[2]}, {v[3]}] at stride {v[4]}", None),
        _oom_entry(label),
    ])  # fmt: skip
    out = em.ttemp()
    dt = em.st(x.type.dtype)
    em.line(
        f"pt_scatter_mask(ctx, {site}, &{x.code}, &{dst.code}, {dt.code}, {stride}, {off}, &{out});"
    )
    em.check()
    return CVal("t", out, e.type, owned=True)


from . import tile_emitters  # noqa: E402, F401  (the tile level's emitters register themselves)


def _distributed(em: Emitter, e: OpCall, args: list) -> CVal:
    """The `pld` ops need several ranks: the interpreter simulates them, C does not."""
    raise unsupported(
        f"{op_label(e.op)} is a distributed (pld) op: the C backend runs one rank; run distributed "
        "kernels on the interpreter, which simulates the ranks (pldsl pypto --ranks N)",
        e.span,
    )


from pldsl.ops import OPS as _OPS  # noqa: E402

for _name in [n for n in _OPS if n.startswith("pld.")]:
    OP_EMITTERS[_name] = _distributed
