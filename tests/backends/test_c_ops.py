"""Every op of the op table on the C backend against the interpreter, op by op.

One generated program holds one function per (op, dtypes, variant) case, so the whole file
compiles once. Inputs mix ordinary values with NaN, +-inf, +-0, subnormals and rounding ties;
operands are windows with partial valid regions (so padding and the fill of invalid regions
are compared too: the returned tiles include their invalid part). Bit-exact ops must agree bit
for bit; matmul and sums within twice the contract bound (numerics.*_error_bound).
"""

from __future__ import annotations

import re
import zlib

import ml_dtypes
import numpy as np
import pytest
from new_ops_checks import NEW_OPS

import pldsl as pl
from pldsl.backends import c
from pldsl.differential import compare
from pldsl.execution import numerics
from pldsl.ops import OPS

BF16 = np.dtype(ml_dtypes.bfloat16)
NP = {
    "FP32": np.dtype(np.float32),
    "BF16": BF16,
    "FP16": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT32": np.dtype(np.uint32),
    "BOOL": np.dtype(np.bool_),
    "INDEX": np.dtype(np.int64),
}
FLOATS = ("FP32", "BF16", "FP16")
R, C = 8, 24  # tile shape


# ---------------------------------------------------------------------------- data


def data(rng: np.random.Generator, shape, dtype: str, special: bool = True, positive=False,
         nonzero=False, scale: float = 3.0) -> np.ndarray:  # fmt: skip
    if dtype in FLOATS:
        x = rng.standard_normal(shape) * scale
        if special:
            flat = x.reshape(-1)
            n = flat.size
            picks = rng.choice(n, size=max(1, n // 12), replace=False)
            specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -3e-39, 1.0 + 2**-8,
                        -(1.0 + 3 * 2**-8), 65504.0, 3.4e38, 1e-7, 2.5, -2.5]  # fmt: skip
            for i, p in enumerate(picks):
                flat[p] = specials[i % len(specials)]
        if positive:
            x = np.abs(x)
        if nonzero:
            x = np.where(x == 0, 1.0, x)
        x32 = x.astype(np.float32)
        if dtype == "FP32":
            return x32
        return numerics.cast(x32, dtype, "rint")
    if dtype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    info = np.iinfo(NP[dtype])
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    if positive:
        lo = 0
    x = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    if nonzero:
        x = np.where(x == 0, 1, x)
    if special and x.size > 4:
        x.reshape(-1)[:2] = [info.max, info.min]
        if nonzero and info.min == 0:
            x.reshape(-1)[1] = 1
    return x.astype(NP[dtype])


# ---------------------------------------------------------------------------- cases

CASES: dict[str, dict] = {}
SOURCE: list[str] = []


def case(name: str, params: str, ret: str, body: str, make, bounded=None) -> None:
    """One kernel function `name` with parameters `params` and body lines `body` (`ret`
    documents the result; return types are inferred so valid regions may vary)."""
    lines = ["    @pl.function(type=pl.FunctionType.Opaque)",
             f"    def {name}(self, {params}):"]  # fmt: skip
    for ln in body.strip("\n").splitlines():
        lines.append("        " + ln.strip())
    SOURCE.append("\n".join(lines))
    CASES[name] = {"make": make, "bounded": bounded}


def T(dt: str, shape: str = f"[M, {C}]") -> str:
    return f"pl.Tensor[{shape}, pl.{dt}]"


# ---- elementwise binary, tensor and scalar operands, broadcasting, valid regions
BINARY_DTYPES = [("FP32", "FP32"), ("BF16", "BF16"), ("BF16", "FP32"), ("FP16", "FP16"),
                 ("INT32", "INT32"), ("INT8", "INT8"), ("UINT8", "UINT8")]  # fmt: skip
for opname in ("add", "sub", "mul", "div", "maximum", "minimum"):
    for a, b in BINARY_DTYPES:
        res = a if a == b else "FP32"
        nonzero = opname == "div" and a not in FLOATS

        def mk(rng, a=a, b=b, nz=nonzero):
            return [data(rng, (R + 3, C), a), data(rng, (R + 3, C), b, nonzero=nz),
                    data(rng, (R, 1), b, nonzero=nz), int(rng.integers(1, R + 1))]  # fmt: skip

        # the divisor windows are fully valid for integer div (a zero pad would fault)
        vb = "R_" if nonzero else "v"
        case(
            f"bin_{opname}_{a}_{b}",
            f"x: {T(a)}, y: {T(b)}, col: {T(b, f'[{R}, 1]')}, v: pl.Scalar[pl.INDEX]",
            f"pl.Tuple[{T(res, f'[{R}, {C}]')}, {T(res, f'[{R}, {C}]')}]",
            f"""
            R_ = {R}
            xa = pl.slice(x, [{R}, {C}], [1, 0], valid_shape=[v, {C}])
            yb = pl.slice(y, [{R}, {C}], [2, 0], valid_shape=[{vb}, {C}])
            r1 = pl.{opname}(xa, yb)
            r2 = pl.{opname}(xa, col)
            return r1, r2
            """,
            mk,
        )
    for a, lit in (("FP32", "1.5"), ("BF16", "0.3"), ("INT32", "7"), ("FP16", "3"), ("BF16", "2")):
        res = "FP32" if ("." in lit and a != "FP32") else a

        def mk(rng, a=a):
            return [data(rng, (R, C), a), int(rng.integers(0, R + 1))]

        case(
            f"bins_{opname}_{a}_{lit.replace('.', 'p')}",
            f"x: {T(a)}, v: pl.Scalar[pl.INDEX]",
            T(res, f"[{R}, {C}]"),
            f"""
            xa = pl.slice(x, [{R}, {C}], [0, 0], valid_shape=[v, {C}])
            return pl.{opname}(xa, {lit})
            """,
            mk,
        )
    case(
        f"binsp_{opname}",
        f"x: {T('FP32')}, s: pl.Scalar[pl.FP32], b: {T('BF16')}, t: pl.Scalar[pl.BF16]",
        f"pl.Tuple[{T('FP32')}, {T('BF16')}]",
        f"""
        return pl.{opname}(x, s), pl.{opname}(b, t)
        """,
        lambda rng: [
            data(rng, (R, C), "FP32"),
            np.float32(0.7),
            data(rng, (R, C), "BF16"),
            ml_dtypes.bfloat16(-1.25),
        ],  # fmt: skip
    )

# ---- unary
for opname in ("exp", "sqrt", "rsqrt", "recip", "log", "neg", "abs", "relu"):
    dts = list(FLOATS) + (["INT32", "INT8"] if opname in ("neg", "abs", "relu") else [])
    for a in dts:
        case(
            f"un_{opname}_{a}",
            f"x: {T(a)}, v: pl.Scalar[pl.INDEX]",
            T(a, f"[{R}, {C}]"),
            f"""
            xa = pl.slice(x, [{R}, {C}], [0, 0], valid_shape=[v, {C}])
            return pl.{opname}(xa)
            """,
            lambda rng, a=a: [data(rng, (R, C), a), int(rng.integers(0, R + 1))],
        )

# ---- reductions (partially valid inputs: the reduced axis reads the pad value)
for red in ("sum", "max", "min"):
    for a in ("FP32", "BF16", "INT32", "FP16"):
        for pad in ("", ", pad_value=pl.PadValue.min", ", pad_value=pl.PadValue.max"):
            tag = {
                "": "null",
                ", pad_value=pl.PadValue.min": "min",
                ", pad_value=pl.PadValue.max": "max",
            }[pad]

            def mk(rng, a=a):
                return [
                    data(rng, (R, C), a),
                    int(rng.integers(1, R + 1)),
                    int(rng.integers(1, C + 1)),
                ]

            case(
                f"red_{red}_{a}_{tag}",
                f"x: {T(a)}, v: pl.Scalar[pl.INDEX], w: pl.Scalar[pl.INDEX]",
                f"pl.Tuple[{T(a, f'[{R}, 1]')}, {T(a, f'[1, {C}]')}]",
                f"""
                xa = pl.slice(x, [{R}, {C}], [0, 0], valid_shape=[v, w]{pad})
                return pl.row_{red}(xa), pl.col_{red}(xa)
                """,
                mk,
                bounded="sum" if red == "sum" else None,
            )
case(
    "red_rank3",
    "x: pl.Tensor[[2, 5, 40], pl.FP32], y: pl.Tensor[[2, 5, 200], pl.BF16]",
    "pl.Tuple[pl.Tensor[[2, 5, 1], pl.FP32], pl.Tensor[[2, 5, 1], pl.BF16], pl.Tensor[[2, 5, 1], pl.FP32]]",
    """
    return pl.row_sum(x), pl.row_sum(y), pl.row_max(x)
    """,
    lambda rng: [
        data(rng, (2, 5, 40), "FP32", special=False),
        data(rng, (2, 5, 200), "BF16", special=False),
    ],
    bounded="sum",
)

# ---- row/col expand
for kind in ("row", "col"):
    for fn in ("add", "sub", "mul", "div"):
        for a, b in (("FP32", "FP32"), ("BF16", "BF16"), ("BF16", "FP32"), ("INT32", "INT32")):
            vshape = f"[{R}, 1]" if kind == "row" else f"[1, {C}]"
            res = a if a == b else "FP32"
            nz = fn == "div" and a not in FLOATS
            case(
                f"exp_{kind}_{fn}_{a}_{b}",
                f"x: {T(a)}, y: {T(b, vshape)}, v: pl.Scalar[pl.INDEX]",
                T(res, f"[{R}, {C}]"),
                f"""
                xa = pl.slice(x, [{R}, {C}], [0, 0], valid_shape=[v, {C}])
                return pl.{kind}_expand_{fn}(xa, y)
                """,
                lambda rng, a=a, b=b, vs=vshape, nz=nz: [
                    data(rng, (R, C), a),
                    data(rng, eval(vs), b, nonzero=nz),
                    int(rng.integers(0, R + 1)),
                ],  # fmt: skip
            )

# ---- matmul / matmul_acc
MM = [
    ("mm_bf16_f32", "BF16", "BF16", ", out_dtype=pl.FP32", "FP32", False, False),
    ("mm_bf16_bf16", "BF16", "BF16", "", "BF16", False, False),
    ("mm_f32", "FP32", "FP32", "", "FP32", False, False),
    ("mm_bf16_bt", "BF16", "BF16", ", out_dtype=pl.FP32, b_trans=True", "FP32", False, True),
    ("mm_f32_at", "FP32", "FP32", ", a_trans=True", "FP32", True, False),
    ("mm_f16", "FP16", "FP16", ", out_dtype=pl.FP32", "FP32", False, False),
    ("mm_i8", "INT8", "INT8", ", out_dtype=pl.INT32", "INT32", False, False),
    ("mm_mixed", "BF16", "FP32", "", "FP32", False, False),
]
MK, MN, MM_ = 40, 72, 12  # K, N, M
for name, a, b, kw, res, at, bt in MM:
    ashape = f"[{MK}, {MM_}]" if at else f"[{MM_}, {MK}]"
    bshape = f"[{MN}, {MK}]" if bt else f"[{MK}, {MN}]"
    acc = "FP32" if res != "INT32" else "INT32"
    kw_acc = ", ".join(p for p in kw.split(", ") if "trans" in p)
    kw_acc = (", " + kw_acc) if kw_acc else ""
    case(
        name,
        f"a: {T(a, ashape)}, b: {T(b, bshape)}, c0: {T(acc, f'[{MM_}, {MN}]')}, v: pl.Scalar[pl.INDEX]",
        f"pl.Tuple[{T(res, f'[{MM_}, {MN}]')}, {T(acc, f'[{MM_}, {MN}]')}, {T(res, f'[{MM_}, {MN}]')}]",
        f"""
        r1 = pl.matmul(a, b{kw})
        r2 = pl.matmul_acc(c0, a, b{kw_acc})
        av = pl.slice(a, {ashape}, [0, 0], valid_shape=[v, {MK if not at else MM_}])
        r3 = pl.matmul(av, b{kw})
        return r1, r2, r3
        """,
        lambda rng, a=a, b=b, acc=acc, ash=ashape, bsh=bshape: [
            data(rng, eval(ash), a, special=False, scale=1.0),
            data(rng, eval(bsh), b, special=False, scale=1.0),
            data(rng, (MM_, MN), acc, special=False),
            int(rng.integers(0, (MK if "[40" in ash else MM_) + 1)),
        ],  # fmt: skip
        bounded="matmul",
    )

# ---- b_trans shapes that hit the specialised small-M kernels (K in {32, 64, 128, 256})
for m_, k_, n_ in ((16, 128, 64), (3, 64, 40), (16, 32, 17), (1, 256, 16), (20, 128, 33)):
    case(
        f"mmbt_{m_}_{k_}_{n_}",
        f"a: {T('BF16', f'[{m_}, {k_}]')}, b: {T('BF16', f'[{n_}, {k_}]')}, c0: {T('FP32', f'[{m_}, {n_}]')}",
        "",
        """
        r1 = pl.matmul(a, b, out_dtype=pl.FP32, b_trans=True)
        r2 = pl.matmul_acc(c0, a, b, b_trans=True)
        return r1, r2
        """,
        lambda rng, m_=m_, k_=k_, n_=n_: [
            data(rng, (m_, k_), "BF16", special=False, scale=1.0),
            data(rng, (n_, k_), "BF16", special=False, scale=1.0),
            data(rng, (m_, n_), "FP32", special=False),
        ],
        bounded="matmul_bt",
    )

# ---- cast
CAST_DTS = ("FP32", "BF16", "FP16", "INT8", "INT32", "UINT8", "INT64", "BOOL")
ALL_MODE_PAIRS = {("FP32", "BF16"), ("FP32", "FP16"), ("BF16", "FP16"), ("FP16", "BF16"),
                  ("FP32", "INT32"), ("BF16", "INT8"), ("FP16", "UINT8"), ("INT32", "FP32"),
                  ("INT64", "BF16"), ("INT8", "FP16")}  # fmt: skip
for src in CAST_DTS:
    for dst in CAST_DTS:
        # every mode on the pairs kernels use; round (default) and rint on the others (the
        # exhaustive tests below cover every mode on more patterns)
        if (src, dst) in ALL_MODE_PAIRS:
            modes = ("round", "rint", "floor", "ceil", "trunc", "odd")
        elif src != dst and (src in FLOATS or dst in FLOATS):
            modes = ("round", "rint")
        else:
            modes = ("round",)
        body = "\n".join(f'r_{m} = pl.cast(xa, pl.{dst}, mode="{m}")' for m in modes)
        rets = ", ".join(f"r_{m}" for m in modes)
        rtype = ", ".join(T(dst, f"[{R}, {C}]") for _ in modes)
        case(
            f"cast_{src}_{dst}",
            f"x: {T(src)}, v: pl.Scalar[pl.INDEX]",
            f"pl.Tuple[{rtype}]",
            f"""
            xa = pl.slice(x, [{R}, {C}], [0, 0], valid_shape=[v, {C}], pad_value=pl.PadValue.min)
            {body}
            return {rets}
            """,
            lambda rng, s=src: [
                data(rng, (R, C), s, scale=300.0 if s in FLOATS else 3.0),
                int(rng.integers(0, R + 1)),
            ],  # fmt: skip
        )
case(
    "cast_scalar",
    "x: pl.Tensor[[4], pl.FP32], i: pl.Scalar[pl.INT32], out: pl.Out[pl.Tensor[[6], pl.FP32]]",
    "pl.Tensor[[6], pl.FP32]",
    """
    a = pl.tensor.read(x, [0])
    n = pl.cast(a, pl.INDEX)
    b = pl.cast(i, pl.FP32)
    h = pl.cast(a, pl.BF16)
    out = pl.write(out, [0], pl.cast(n, pl.FP32))
    out = pl.write(out, [1], b)
    out = pl.write(out, [2], pl.cast(h, pl.FP32))
    out = pl.write(out, [3], pl.cast(pl.cast(i, pl.INT8), pl.FP32))
    return out
    """,
    lambda rng: [
        np.array([-2.5, 1e10, 3.0, -0.5], np.float32),
        np.int32(-300),
        np.zeros(6, np.float32),
    ],
)

# ---- data ops
case(
    "data_views",
    f"x: {T('FP32')}, v: pl.Scalar[pl.INDEX], w: pl.Scalar[pl.INDEX], out: pl.Out[{T('FP32')}]",
    f"pl.Tuple[{T('FP32')}, {T('FP32', f'[{R}, {C}]')}, {T('FP32', f'[{R}, {C}]')}, {T('FP32', '[4, 6]')}, {T('FP32', f'[{R}, {C}]')}, {T('FP32', f'[{R // 2}, {C * 2}]')}]",
    f"""
    n = pl.tensor.dim(x, 0)
    t = pl.slice(x, [{R}, {C}], [1, 0], valid_shape=[v, w])
    zero = pl.fillpad(t)
    lo = pl.fillpad(t, pad_value=pl.PadValue.min)
    hi = pl.fillpad(t, pad_value=pl.PadValue.max)
    out = pl.assemble(out, t, [n - {R}, 0])
    f = pl.full([4, 6], pl.FP32, 2.5)
    ct = pl.create_tensor([{R}, {C}], dtype=pl.FP32)
    ct = pl.assemble(ct, pl.slice(x, [2, 3], [0, 0]), [3, 5])
    rs = pl.reshape(lo, [{R // 2}, {C * 2}])
    return out, zero, hi, f, ct, rs
    """,
    lambda rng: [
        data(rng, (R + 5, C), "FP32"),
        int(rng.integers(0, R + 1)),
        int(rng.integers(0, C + 1)),
        np.zeros((R + 5, C), np.float32),
    ],  # fmt: skip
)
case(
    "data_read_write",
    f"x: {T('BF16')}, i: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[8], pl.FP32]]",
    "pl.Tensor[[8], pl.FP32]",
    f"""
    t = pl.slice(x, [{R}, {C}], [0, 0], valid_shape=[2, 3], pad_value=pl.PadValue.max)
    a = pl.tensor.read(t, [1, 2])
    b = pl.tensor.read(t, [5, 5])
    c = pl.tensor.read(x, [i])
    out = pl.write(out, [0], pl.cast(a, pl.FP32))
    out = pl.write(out, [1], pl.cast(b, pl.FP32))
    out = pl.write(out, [2], pl.cast(c, pl.FP32))
    out = pl.write(out, [3], 0.1)
    x = pl.write(x, [0, 1], a)
    return out
    """,
    lambda rng: [
        data(rng, (R, C), "BF16", special=False),
        int(rng.integers(0, R * C)),
        np.zeros(8, np.float32),
    ],  # fmt: skip
)
case(
    "data_reshape",
    "x: pl.Tensor[[12, 32], pl.FP32], v: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[12, 32], pl.FP32]]",
    "pl.Tuple[pl.Tensor[[4, 16], pl.FP32], pl.Tensor[[1, 64], pl.FP32], pl.Tensor[[4, 2, 8], pl.FP32]]",
    """
    w = pl.slice(x, [4, 16], [2, 8])
    a = pl.reshape(w, [4, 2, 8])
    a = pl.assemble(a, pl.full([1, 1, 8], pl.FP32, 9.0), [1, 1, 0])
    rows = pl.slice(x, [2, 32], [6, 0])
    flat = pl.reshape(rows, [1, 64])
    flat = pl.assemble(flat, pl.full([1, 4], pl.FP32, -1.0), [0, 30])
    col = pl.slice(x, [8, 1], [0, 3], valid_shape=[v, 1])
    rc = pl.reshape(col, [1, 8])
    out = pl.assemble(out, pl.reshape(pl.fillpad(rc), [8, 1]), [0, 0])
    return w, flat, a
    """,
    lambda rng: [
        data(rng, (12, 32), "FP32", special=False),
        int(rng.integers(0, 9)),
        np.zeros((12, 32), np.float32),
    ],  # fmt: skip
)
# ---- the tile level: load (valid_shape, clamp, Mat), move, store, create_tile, tile.full,
# set_validshape, get_block_idx; tiles returned whole, invalid part included
case(
    "tile_level",
    f"x: {T('BF16')}, v: pl.Scalar[pl.INDEX], w: pl.Scalar[pl.INDEX], out: pl.Out[{T('BF16')}]",
    f"pl.Tuple[{T('BF16')}, ...]",
    f"""
    n = pl.tensor.dim(x, 0)
    t = pl.load(x, [1, 0], [{R}, {C}], valid_shape=[v, {C}])
    e = pl.tile.exp(t)
    m = pl.tile.move(e, target_memory=pl.MemorySpace.Mat)
    k = pl.load(x, [n - 3, 0], [{R}, {C}], target_memory=pl.Mem.Mat, clamp=True)
    f = pl.tile.full([{R}, {C}], dtype=pl.BF16, value=1.5)
    s = pl.tile.set_validshape(f, v, w)
    ct = pl.create_tile([{R}, {C}], dtype=pl.BF16)
    ct = pl.tile.assemble(ct, s, [0, 0])
    b = pl.tile.get_block_idx()
    out = pl.store(s, [b, 0], out)
    out = pl.store(k, [n - {R}, 0], out)
    old = pl.load(x, [0, 0], [{R}, {C}], valid_shapes=[v, w])
    return out, m, k, pl.tile.set_validshape(ct, v, w), old
    """,
    lambda rng: [
        data(rng, (R + 5, C), "BF16"),
        int(rng.integers(0, R + 1)),
        int(rng.integers(0, C + 1)),
        np.zeros((R + 5, C), BF16),
    ],  # fmt: skip
)

PROGRAM_SOURCE = (
    'import pldsl as pl\n\nM = pl.dynamic("M")\n\n\n@pl.program\nclass OpCases:\n'
    + "\n\n".join(SOURCE)
    + "\n"
)


@pytest.fixture(scope="module")
def program():
    (prog,) = pl.capture_source(PROGRAM_SOURCE, "<op-cases>")
    return prog


@pytest.fixture(scope="module")
def compiled(program):
    return c.compile(program)


def _materialized(x: np.ndarray, valid) -> np.ndarray:
    out = np.zeros_like(x)
    sl = tuple(slice(0, v) for v in valid)
    out[sl] = x[sl]
    return out


def _bounds(name: str, kind: str, args) -> dict:
    """Twice the contract bound per output (each engine is within the bound of the exact
    result)."""
    if kind == "sum":
        if name == "red_rank3":
            x, y = args
            return {
                "return[0]": 2 * numerics.reduce_error_bound("sum", x, 2, "FP32"),
                "return[1]": 2 * numerics.reduce_error_bound("sum", y, 2, "BF16"),
            }
        x, v, w = args
        dt = name.split("_")[2]
        if dt == "INT32":
            return {}
        pad = name.split("_")[3]
        fill = {"null": 0.0, "min": -np.inf, "max": np.inf}[pad]
        m = np.full(x.shape, fill, np.float64)
        m[:v, :w] = x[:v, :w].astype(np.float64)
        return {
            "return[0]": 2 * numerics.reduce_error_bound("sum", m, 1, dt) + 1e-30,
            "return[1]": 2 * numerics.reduce_error_bound("sum", m, 0, dt) + 1e-30,
        }
    if kind == "matmul_bt":
        a, b, c0 = args
        return {
            "return[0]": 2 * numerics.matmul_error_bound(a, b, "FP32", False, True),
            "return[1]": 2 * numerics.matmul_error_bound(a, b, "FP32", False, True, acc=c0),
        }
    a, b, c0, v = args
    spec = next(s for s in MM if s[0] == name)
    _, adt, bdt, kw, res, at, bt = spec
    if res == "INT32":
        return {}
    ab = 2 * numerics.matmul_error_bound(a, b, res, at, bt)
    acc = 2 * numerics.matmul_error_bound(a, b, "FP32", at, bt, acc=c0)
    valid = (v, a.shape[1]) if not at else (a.shape[0], v)
    av = _materialized(a, valid)
    ab3 = 2 * numerics.matmul_error_bound(av, b, res, at, bt)
    return {"return[0]": ab, "return[1]": acc, "return[2]": ab3}


def test_every_op_has_a_c_implementation():
    missing = sorted(set(OPS) - set(c.OP_EMITTERS))
    assert not missing, f"the C backend lacks: {missing}"


def test_every_op_is_exercised_here():
    used = set(NEW_OPS)  # issue 10's ops: tests/backends/test_new_ops_c.py
    for src in SOURCE:
        used |= set(re.findall(r"pl\.(?:tensor\.)?((?:tile\.)?\w+)\(", src))
        used |= {n.split(".", 1)[1] for n in used if n.startswith("tile.")}  # pl.tile.exp: exp
    # the distributed (pld) ops are refused by C; tests/distributed exercises them
    missing = sorted(n for n in set(OPS) - used if not n.startswith("pld."))
    assert not missing, f"no test case uses: {missing}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_case(name, program, compiled):
    spec = CASES[name]
    for seed in (0, 1):
        rng = np.random.default_rng([zlib.crc32(name.encode()), seed])  # same data every run
        args = spec["make"](rng)
        bounds = _bounds(name, spec["bounded"], args) if spec["bounded"] else None
        report = compare(program, name, args, compiled=compiled, bounds=bounds,
                         exact=spec["bounded"] is None or (bounds == {}))  # fmt: skip
        report.check()


def test_casts_exhaustive_bf16_patterns(compiled, program):
    """Every BF16 bit pattern through casts to every other float format and back."""
    src = """
import pldsl as pl

@pl.program
class AllBF16:
    @pl.function(type=pl.FunctionType.Opaque)
    def f(self, x: pl.Tensor[[256, 256], pl.BF16]) -> pl.Tuple[pl.Tensor[[256, 256], pl.FP32], pl.Tensor[[256, 256], pl.FP16], pl.Tensor[[256, 256], pl.INT32], pl.Tensor[[256, 256], pl.BF16]]:
        a = pl.cast(x, pl.FP32)
        h = pl.cast(x, pl.FP16, mode="odd")
        i = pl.cast(x, pl.INT32, mode="floor")
        back = pl.cast(pl.cast(h, pl.FP32), pl.BF16, mode="ceil")
        return a, h, i, back
"""
    (prog,) = pl.capture_source(src, "<all-bf16>")
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(BF16).reshape(256, 256)
    compare(prog, "f", [x]).check()


def test_casts_fp32_to_bf16_all_modes_random_patterns():
    src = """
import pldsl as pl

@pl.program
class F2B:
    @pl.function(type=pl.FunctionType.Opaque)
    def f(self, x: pl.Tensor[[512, 512], pl.FP32]) -> pl.Tuple[pl.Tensor[[512, 512], pl.BF16], pl.Tensor[[512, 512], pl.BF16], pl.Tensor[[512, 512], pl.BF16], pl.Tensor[[512, 512], pl.BF16], pl.Tensor[[512, 512], pl.BF16], pl.Tensor[[512, 512], pl.BF16], pl.Tensor[[512, 512], pl.FP16], pl.Tensor[[512, 512], pl.INT8]]:
        return pl.cast(x, pl.BF16), pl.cast(x, pl.BF16, mode="rint"), pl.cast(x, pl.BF16, mode="floor"), pl.cast(x, pl.BF16, mode="ceil"), pl.cast(x, pl.BF16, mode="trunc"), pl.cast(x, pl.BF16, mode="odd"), pl.cast(x, pl.FP16, mode="round"), pl.cast(x, pl.INT8, mode="round")
"""
    (prog,) = pl.capture_source(src, "<f2b>")
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=(512, 512), dtype=np.uint64).astype(np.uint32)
    bits[:4, :8] = [[0x3F808000, 0xBF808000, 0x3F818000, 0x3F800001, 0x7F7FFFFF, 0x00008000,
                     0x7F800001, 0xFFFFFFFF]] * 4  # fmt: skip
    bits[4, :] = (bits[4, :] & 0xFFFF0000) | 0x8000  # ties
    x = bits.view(np.float32)
    compare(prog, "f", [x]).check()
