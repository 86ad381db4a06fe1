"""Hypothesis property tests, one (or a family) per op of the op table.

Every case runs the op through the whole path: a `@pl.program` source string -> capture ->
`interpreter.run(..., precision="bf16")`, and compares the result with an oracle written here in
plain NumPy + ml_dtypes + exact rationals (`fractions.Fraction`). The oracles never call
`interpreter.numerics`; they follow docs/numerics.md:

* casts: bit-exact in every mode. FP32 -> BF16 has its own oracle on the float32 bit patterns
  (integer manipulation); every other pair rounds the exact rational value once.
* elementwise arithmetic: operands widened to float32 (ints: RNE), one IEEE float32 op, one RNE
  rounding to the result dtype. The float32 op is computed here as float64 + one rounding to
  float32, which is the correctly rounded float32 result for + - * / sqrt (53 >= 2*24 + 2).
  exp/log: float64 libm (Python's `math`), then RNE to float32, then RNE to the result dtype.
* reductions and matmul: within the documented error bounds of the exact (rational) result.
* expand ops, data ops: exact.

Values include random float bit patterns (NaN, +-inf, +-0, subnormals), exact BF16/FP16 ties
and small-grid values whose sums and products tie; every elementwise op and cast also runs once
on the full cross product of special values (`*_specials_exhaustive`). Captured programs are
cached per source text. `test_every_op_of_the_table_has_a_property_test` fails when an op of
`pldsl.ops.OPS` has no test here (tests register their ops with `@covers`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from new_ops_checks import NEW_OPS

import pldsl as pl
from pldsl import interpreter
from pldsl.ops import OPS

# The interpreter promises that no NumPy warning escapes (numerics.md); the oracles below
# silence their own with np.errstate.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

PROPS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- dtypes (local)

BF16_NP = np.dtype(ml_dtypes.bfloat16)
NP = {
    "FP32": np.dtype(np.float32),
    "BF16": BF16_NP,
    "FP16": np.dtype(np.float16),
    "INT32": np.dtype(np.int32),
    "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8),
}
FLOATS = ("FP32", "BF16", "FP16")
INTS = {"INT32": (32, True), "INT8": (8, True), "UINT8": (8, False), "INDEX": (64, True)}
BITS_OF = {"FP32": np.uint32, "BF16": np.uint16, "FP16": np.uint16}
# (precision p incl. the hidden bit, emin, emax)
FMT = {"FP32": (24, -126, 127), "BF16": (8, -126, 127), "FP16": (11, -14, 15)}
WIDTH = {"FP32": 32, "BF16": 16, "FP16": 16, "INT32": 32, "INT8": 8, "UINT8": 8, "INDEX": 64}
U32 = Fraction(1, 2**24)  # unit roundoff of FP32


def max_finite(dt: str) -> Fraction:
    p, _, emax = FMT[dt]
    return Fraction(2**p - 1) * Fraction(2) ** (emax - p + 1)


def unit_out(dt: str) -> Fraction:
    """Unit roundoff of the final rounding from float32 to dt (0 for FP32)."""
    return Fraction(0) if dt == "FP32" else Fraction(1, 2 ** FMT[dt][0])


def half_subnormal(dt: str) -> Fraction:
    if dt == "FP32":
        return Fraction(0)
    p, emin, _ = FMT[dt]
    return Fraction(2) ** (emin - p)


def gamma(n: int) -> Fraction:
    return n * U32 / (1 - n * U32)


def promote(a: str, b: str) -> str:
    """PyPTO PromoteDataTypes for the dtypes used here (see numerics.md)."""
    if a == b:
        return a
    if (a in FLOATS) != (b in FLOATS):
        return a if a in FLOATS else b
    if WIDTH[a] != WIDTH[b]:
        return a if WIDTH[a] > WIDTH[b] else b
    if a in INTS and b in INTS and INTS[a][1] != INTS[b][1]:
        return a if INTS[a][1] else b
    return a


def wrap(v: int, dt: str) -> int:
    bits, signed = INTS[dt]
    v %= 2**bits
    return v - 2**bits if signed and v >= 2 ** (bits - 1) else v


def int_range(dt: str) -> tuple[int, int]:
    bits, signed = INTS[dt]
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


# --------------------------------------------------------------------------- widening


@np.errstate(all="ignore")
def to_f64(x: np.ndarray, dt: str) -> np.ndarray:
    """Exact float64 values of a float array (BF16 through its bit pattern, not ml_dtypes)."""
    x = np.asarray(x)
    if dt == "BF16":
        return (x.view(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return x.astype(np.float64)


@np.errstate(all="ignore")
def operand_f32(x: np.ndarray, dt: str) -> np.ndarray:
    """An operand as the vector unit sees it: float32 (exact widening; ints round RNE)."""
    if dt in FLOATS:
        return to_f64(x, dt).astype(np.float32)
    flat = [round_to_float(int(v), "FP32", "rint") for v in np.asarray(x).ravel()]
    return np.array(flat, np.float64).astype(np.float32).reshape(np.shape(x))


# --------------------------------------------------------------------------- rounding oracles


def bf16_bits_from_f32_bits(bits: np.ndarray, mode: str) -> np.ndarray:
    """FP32 bit patterns -> BF16 bit patterns in a PyPTO cast mode, by integer manipulation.

    Incrementing the truncated magnitude carries across binades, from subnormal to normal and
    from the largest finite value to inf, exactly as the IEEE encoding is laid out."""
    b = np.asarray(bits, np.uint32).astype(np.int64)
    sign = b >> 31
    mag = b & 0x7FFFFFFF
    hi, lo = mag >> 16, mag & 0xFFFF
    inexact = lo != 0
    mode = "rint" if mode == "none" else mode
    if mode == "rint":
        up = (lo > 0x8000) | ((lo == 0x8000) & ((hi & 1) == 1))
    elif mode == "round":
        up = lo >= 0x8000
    elif mode == "floor":
        up = inexact & (sign == 1)
    elif mode == "ceil":
        up = inexact & (sign == 0)
    elif mode == "trunc":
        up = np.zeros_like(inexact)
    elif mode == "odd":
        hi = hi | inexact.astype(np.int64)
        up = np.zeros_like(inexact)
    else:
        raise AssertionError(mode)
    r = hi + up.astype(np.int64)
    r = np.where(mag > 0x7F800000, (mag >> 16) | 0x0040, r)  # NaN: quiet, top payload kept
    r = np.where(mag == 0x7F800000, 0x7F80, r)
    return ((sign << 15) | r).astype(np.uint16)


def round_to_float(value, dt: str, mode: str) -> float:
    """Round an exact value (float64 incl. specials, int or Fraction) once to dt per mode.
    Returns a Python float exactly representable in dt (or +-inf / NaN)."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return value
        neg = math.copysign(1.0, value) < 0
    else:
        neg = value < 0
    mag = abs(Fraction(value))
    if mag == 0:
        return -0.0 if neg else 0.0
    mode = "rint" if mode == "none" else mode
    p, emin, emax = FMT[dt]
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** e > mag:
        e -= 1
    elif Fraction(2) ** (e + 1) <= mag:
        e += 1
    e = max(e, emin)
    q = Fraction(2) ** (e - p + 1)
    m = mag / q
    fl = m.numerator // m.denominator
    frac = m - fl
    half = Fraction(1, 2)
    if frac == 0:
        r = fl
    elif mode == "rint":
        r = fl + (frac > half or (frac == half and fl % 2 == 1))
    elif mode == "round":
        r = fl + (frac >= half)
    elif mode == "trunc":
        r = fl
    elif mode == "floor":
        r = fl + neg
    elif mode == "ceil":
        r = fl + (not neg)
    elif mode == "odd":
        r = fl | 1
    else:
        raise AssertionError(mode)
    res = r * q
    if res > max_finite(dt):
        to_inf = {
            "rint": True,
            "round": True,
            "floor": neg,
            "ceil": not neg,
            "trunc": False,
            "odd": False,
        }[mode]
        out = math.inf if to_inf else float(max_finite(dt))
    else:
        out = float(res)
    return -out if neg else out


def round_to_int(value, dt: str, mode: str) -> int:
    """Float/int value -> integer dtype: float rounds per mode and saturates (NaN -> 0); an
    integer source wraps (two's complement)."""
    lo, hi = int_range(dt)
    if isinstance(value, int):
        return wrap(value, dt)
    if math.isnan(value):
        return 0
    if math.isinf(value):
        return hi if value > 0 else lo
    v = Fraction(value)
    mode = "rint" if mode == "none" else mode
    if mode == "rint":
        r = round(v)  # half to even
    elif mode == "round":
        r = int(math.floor(abs(v) + Fraction(1, 2))) * (1 if v >= 0 else -1)
    elif mode == "floor":
        r = math.floor(v)
    elif mode == "ceil":
        r = math.ceil(v)
    elif mode == "trunc":
        r = int(v)
    elif mode == "odd":
        t = int(v)
        r = t if t == v else (abs(t) | 1) * (1 if v > 0 else -1)
    else:
        raise AssertionError(mode)
    return min(max(r, lo), hi)


@np.errstate(all="ignore")
def rne_from_f32(r32: np.ndarray, dt: str) -> np.ndarray:
    """float32 results -> float64 values of dt after one RNE rounding (the vector unit's
    narrowing). BF16 through the bit oracle, FP16 through NumPy's float16 conversion."""
    r32 = np.asarray(r32, np.float32)
    if dt == "FP32":
        return r32.astype(np.float64)
    if dt == "BF16":
        return to_f64(bf16_bits_from_f32_bits(r32.view(np.uint32), "rint").view(BF16_NP), "BF16")
    return r32.astype(np.float16).astype(np.float64)


# --------------------------------------------------------------------------- comparison


@np.errstate(all="ignore")
def check_float(got, want64, dt: str, what: str, nan_sign: bool = False, zero_sign: bool = True):
    """Bit equality of non-NaN values (via exact float64 widening + sign of zero); NaN as NaN."""
    got = np.asarray(got)
    assert got.dtype == NP[dt], f"{what}: dtype {got.dtype}, expected {dt}"
    want64 = np.asarray(want64, np.float64)
    assert got.shape == want64.shape, f"{what}: shape {got.shape}, expected {want64.shape}"
    g = to_f64(got, dt)
    gn, wn = np.isnan(g), np.isnan(want64)
    same = (g == want64) & ((np.signbit(g) == np.signbit(want64)) | (not zero_sign))
    if nan_sign:
        ok = np.where(wn, gn & (np.signbit(g) == np.signbit(want64)), same)
    else:
        ok = np.where(wn, gn, same)
    if not ok.all():
        idx = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise AssertionError(
            f"{what}: at {list(idx)} got {g[idx]!r} ({_hex(got[idx], dt)}), expected "
            f"{want64[idx]!r}; {int((~ok).sum())} of {ok.size} elements differ"
        )


def check_int(got, want, dt: str, what: str):
    got = np.asarray(got)
    assert got.dtype == NP[dt], f"{what}: dtype {got.dtype}, expected {dt}"
    want = np.asarray(want, np.int64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    ok = got.astype(np.int64) == want
    if not ok.all():
        idx = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise AssertionError(f"{what}: at {list(idx)} got {got[idx]}, expected {want[idx]}")


def check(got, want, dt: str, what: str, **kw):
    if dt in FLOATS:
        check_float(got, want, dt, what, **kw)
    else:
        check_int(got, want, dt, what)


def _hex(v, dt: str) -> str:
    return hex(int(np.asarray(v).view(BITS_OF[dt]))) if dt in FLOATS else str(v)


def hexdump(x: np.ndarray, dt: str) -> str:
    if dt in FLOATS:
        return str([hex(int(b)) for b in np.asarray(x).view(BITS_OF[dt]).ravel()])
    return str(np.asarray(x).ravel().tolist())


# --------------------------------------------------------------------------- kernels


def ttype(shape, dt: str) -> str:
    return f"pl.Tensor[[{', '.join(str(d) for d in shape)}], pl.{dt}]"


def source(params: list[str], ret: str, body: list[str], header: str = "") -> str:
    lines = [
        "import pldsl as pl",
        header,
        "@pl.program",
        "class P:",
        "    @pl.function",
        f"    def k(self, {', '.join(params)}) -> {ret}:",
    ]
    lines += [f"        {b}" for b in body]
    return "\n".join(lines) + "\n"


@functools.cache
def program(text: str) -> pl.Program:
    name = f"op_properties_{hashlib.sha1(text.encode()).hexdigest()[:12]}.py"
    programs = pl.capture_source(text, name)
    assert len(programs) == 1
    return programs[0]


def run_to_out(params, body, result, out_shape, out_dt, *args, strict=False, header=""):
    """Run a kernel whose `result` variable is assembled into an Out parameter; returns the
    returned array after checking that the caller's Out array was updated in place."""
    zeros = ", ".join("0" for _ in out_shape)
    text = source(
        params + [f"out: pl.Out[{ttype(out_shape, out_dt)}]"],
        ttype(out_shape, out_dt),
        body + [f"out = pl.assemble(out, {result}, [{zeros}])", "return out"],
        header,
    )
    out = np.ones(out_shape, NP[out_dt])
    got = interpreter.run(program(text), "k", *args, out, strict=strict, precision="bf16")
    assert np.array_equal(got.view(np.uint8), out.view(np.uint8)), "Out not updated in place"
    return got


# --------------------------------------------------------------------------- strategies


def _f32b(v: float) -> int:
    return int(np.array(v, np.float32).view(np.uint32))


# fmt: off
SPECIAL_BITS = {
    "FP32": [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # +-0, +-inf
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFA00000, 0x7FC0DEAD,  # NaNs, signalling too
        0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,  # subnormals, smallest normal
        0x00008000, 0x80008000, 0x00018000,  # halfway to BF16 subnormals
        0x3F800000, 0xBF800000, 0x3F808000, 0xBF808000, 0x3F818000, 0x3F800001, 0x3F7FFFFF,
        0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0xFF7F8000, 0x7F7F7FFF,  # BF16 overflow edge
        _f32b(65520.0), _f32b(65504.0), _f32b(2.0**-25), _f32b(1023.5 * 2.0**-24),  # FP16
        _f32b(2.5), _f32b(-2.5), _f32b(0.5), _f32b(-0.5), _f32b(-0.6), _f32b(300.0),
        _f32b(16777216.0), _f32b(2.0**31), _f32b(-(2.0**31)), _f32b(3e9),  # int edges
    ],
    "BF16": [
        0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81, 0xFFA0, 0x7FDE,
        0x0001, 0x8001, 0x007F, 0x0080, 0x3F80, 0xBF80, 0x3F81, 0x7F7F, 0xFF7F,
        0x4000, 0x3F00, 0x4020, 0xC020, 0x4B80, 0x4F00,
    ],
    "FP16": [
        0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7EDE,
        0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3C01, 0x7BFF, 0xFBFF,
        0x4100, 0xC100, 0x3800, 0xB800,
    ],
}
INT32_SPECIAL = [
    0, 1, -1, 2, -2, 7, -7, 3, -3, 2**31 - 1, -(2**31), -(2**31) + 1, 2**24 + 1,
    -(2**24) - 1, 2**24 + 3, 65520, 65519, 70000, 300, 2**30, 255, 256, 257,
]
CORE_BITS = {  # +-0, +-inf, +-NaN, +-1, +-smallest subnormal: drawn often, so they collide
    "FP32": [0x0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x3F800000,
             0xBF800000, 0x1, 0x80000001],
    "BF16": [0x0, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x3F80, 0xBF80, 0x1, 0x8001],
    "FP16": [0x0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x3C00, 0xBC00, 0x1, 0x8001],
}
# fmt: on


def _grid_value(dt: str, sign: int, k: int, e: int) -> int:
    """Bits of (-1)**sign * k * 2**e (exact in dt: k < 2**p and the exponent is in range)."""
    v = (-1) ** sign * k * 2.0**e
    if dt == "BF16":
        return int(np.float32(v).view(np.uint32)) >> 16  # low half is zero: exact
    return int(np.array(v, NP[dt]).view(BITS_OF[dt]))


def _tie_bits(src: str, target: str, r: int, qlo: int, qhi: int) -> int:
    """Bits (in src) of +-(2k + 1) * 2**(q - 1), exactly halfway between two neighbours k * 2**q
    and (k + 1) * 2**q of `target`'s grid (q in [qlo, qhi]), or one src ulp next to it."""
    k = (r >> 3) % 2 ** FMT[target][0]
    q = (r >> 24) % (qhi - qlo + 1) + qlo
    v = (2 * k + 1) * 2.0 ** (q - 1) * (-1 if r & 1 else 1)
    if src == "FP16":
        bits = int(np.array(v, np.float16).view(np.uint16))
    else:
        bits = int(np.array(v, np.float32).view(np.uint32))
    nudge = (r >> 1) & 1
    return bits + nudge if (r >> 2) & 1 else bits - nudge


@functools.cache
def float_decoder(dt: str, moderate: bool = False):
    """(kind 0..4, 32-bit payload) -> a bit pattern of dt. A (0, 0) shrinks to +0.

    0: any bit pattern (moderate=True: a random significand with a moderate exponent, so that
       matmul products rarely overflow); 1: a special value (+-0, +-inf, NaNs, subnormals,
       ties, extremes); 2: one of a few core specials (+-0, +-inf, +-NaN, +-1, +-tiny), so that
       they meet each other; 3: a grid value k * 2**e near 1 with few significant bits, whose
       sums and products often land exactly on ties; 4: an exact tie (or one ulp off) of a
       narrower format: FP32 -> BF16 / FP16, FP16 -> BF16; BF16: another grid value."""
    w, (p, _, _) = WIDTH[dt], FMT[dt]
    mbits = p - 1
    bias = 2 ** (w - 1 - mbits - 1) - 1
    specials, core = SPECIAL_BITS[dt], CORE_BITS[dt]
    elo, ehi = (-8, 6) if dt == "FP16" else (-20, 19)

    def grid(r: int) -> int:
        k = (r >> 1) % (2**p - 1) + 1
        e = (r >> 26) % (p + 4) - p - 2
        return _grid_value(dt, r & 1, k, e)

    def decode(v: tuple[int, int]) -> int:
        kind, r = v
        if moderate and kind in (1, 2) and r % 4:
            kind = 0  # fewer NaN/inf/extremes: most matmul/reduction lanes stay finite
        if kind == 0:
            if not moderate:
                return r & (2**w - 1)
            e = (r >> 1) % (ehi - elo + 1) + elo
            mant = (r >> 8) & (2**mbits - 1)
            return ((r & 1) << (w - 1)) | ((e + bias) << mbits) | mant
        if kind == 1:
            return specials[r % len(specials)]
        if kind == 2:
            return core[r % len(core)]
        if kind == 4 and dt == "FP32" and r >> 31:  # FP16 grid: q from subnormal to max
            return _tie_bits(dt, "FP16", r, -24, 5)
        if kind == 4 and dt == "FP32":
            return _tie_bits(dt, "BF16", r, -133, 120)
        if kind == 4 and dt == "FP16":
            return _tie_bits(dt, "BF16", r, -14, 7)
        return grid(r)

    return decode


@functools.cache
def int_decoder(dt: str):
    """(kind 0..4, 32-bit payload) -> an integer of dt: any value, a special one, an extreme, a small one, or an
    exact tie of FP32/BF16/FP16 ((2m + 1) * 2**s)."""
    lo, hi = int_range(dt)
    specials = [v for v in INT32_SPECIAL if lo <= v <= hi]
    core = [lo, hi, 0, 1, -1 if lo < 0 else 2, lo + 1]

    def decode(v: tuple[int, int]) -> int:
        kind, r = v
        if kind == 0:
            return lo + r % (hi - lo + 1)
        if kind == 1:
            return specials[r % len(specials)]
        if kind == 2:
            return core[r % len(core)]
        if kind == 3:
            return max(lo, min(hi, r % 601 - 300))
        bits = (r >> 6) % 25 + 1
        m = (r >> 11) % 2**bits
        t = (2 * m + 1) << (r % 8)
        return wrap(-t if r & 32 else t, dt) if dt != "INDEX" else t

    return decode


_MASK = [(i + 1) * 0x9E3779B9 % 2**32 for i in range(4096)]
_KIND_PAYLOAD = st.tuples(st.integers(0, 4), st.integers(0, 2**32 - 1))


def float_bits(dt: str, moderate: bool = False):
    """One bit pattern of dt (see float_decoder)."""
    return _KIND_PAYLOAD.map(float_decoder(dt, moderate))


def int_values(dt: str):
    """One integer of dt (see int_decoder)."""
    return _KIND_PAYLOAD.map(int_decoder(dt))


@st.composite
def arrays(draw, dt: str, shape, moderate: bool = False, elements=None):
    """An array of dt. Kinds and payloads of all elements come from two byte-string draws
    (one draw per element would dominate the run time)."""
    n = math.prod(shape)
    if elements is None:
        decode = float_decoder(dt, moderate) if dt in FLOATS else int_decoder(dt)
        kinds = draw(st.binary(min_size=n, max_size=n))
        payload = draw(st.binary(min_size=4 * n, max_size=4 * n))
        # Hypothesis favours zero bytes; a fixed per-element mask keeps zero payloads varied.
        vals = [
            decode((kinds[i] % 5, int.from_bytes(payload[4 * i : 4 * i + 4], "little") ^ _MASK[i]))
            for i in range(n)
        ]
    else:
        vals = draw(st.lists(elements, min_size=n, max_size=n))
    if dt in FLOATS:
        return np.array(vals, BITS_OF[dt]).view(NP[dt]).reshape(shape)
    return np.array(vals, np.int64).astype(NP[dt]).reshape(shape)


dims = st.integers(1, 8)
shapes2 = st.tuples(dims, dims)
shapes_any = st.one_of(
    shapes2, shapes2, shapes2, st.tuples(dims), st.tuples(st.integers(1, 3), dims, dims)
)
float_dt = st.sampled_from(FLOATS)
num_dt = st.sampled_from((*FLOATS, "INT32"))


def scalar_of(dt: str, value):
    """A host scalar of dt (NumPy scalar of the storage dtype; Python int for INDEX)."""
    if dt == "INDEX":
        return int(value)
    if dt in FLOATS:
        return np.array(value, BITS_OF[dt]).view(NP[dt])[()]
    return NP[dt].type(value)


COVERED: set[str] = set()


def covers(*ops: str):
    """Record the ops a property test exercises (checked against the op table below)."""

    def mark(fn):
        COVERED.update(ops)
        return fn

    return mark


# --------------------------------------------------------------------------- elementwise oracle

BINARY = ("add", "sub", "mul", "div", "maximum", "minimum")
UNARY_FLOAT = ("exp", "log", "sqrt", "rsqrt", "recip")
UNARY_ANY = ("neg", "abs", "relu")


@np.errstate(all="ignore")
def ieee_maxmin(a: np.ndarray, b: np.ndarray, is_max: bool) -> np.ndarray:
    """IEEE 754-2019 maximum/minimum on float64 values: NaN propagates, -0 < +0."""
    a, b = np.broadcast_arrays(a, b)
    pick_a = (a > b) if is_max else (a < b)
    r = np.where(pick_a, a, b)
    zz = (a == 0) & (b == 0)
    neg0 = (np.signbit(a) & np.signbit(b)) if is_max else (np.signbit(a) | np.signbit(b))
    r = np.where(zz, np.where(neg0, -0.0, 0.0), r)
    return np.where(np.isnan(a) | np.isnan(b), np.nan, r)


@np.errstate(all="ignore")
def float_binary_f32(op: str, a32: np.ndarray, b32: np.ndarray) -> np.ndarray:
    """The correctly rounded float32 result of one IEEE op (float64 then one rounding)."""
    a, b = a32.astype(np.float64), b32.astype(np.float64)
    with np.errstate(all="ignore"):
        if op in ("maximum", "minimum"):
            return ieee_maxmin(a, b, op == "maximum").astype(np.float32)
        r = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op](a, b)
    return r.astype(np.float32)


def int_binary(op: str, a: np.ndarray, b: np.ndarray, dt: str) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    out = np.empty(a.shape, np.int64)
    for idx in np.ndindex(a.shape):
        x, y = int(wrap(int(a[idx]), dt)), int(wrap(int(b[idx]), dt))
        if op == "add":
            v = x + y
        elif op == "sub":
            v = x - y
        elif op == "mul":
            v = x * y
        elif op == "div":
            q = abs(x) // abs(y)
            v = q if (x < 0) == (y < 0) else -q
        elif op == "maximum":
            v = max(x, y)
        else:
            v = min(x, y)
        out[idx] = wrap(v, dt)
    return out


@np.errstate(all="ignore")
def binary_oracle(op, a, adt, b, bdt, rdt):
    """Elementwise a op b (broadcasting) with result dtype rdt, per numerics.md."""
    if rdt in FLOATS:
        return rne_from_f32(float_binary_f32(op, operand_f32(a, adt), operand_f32(b, bdt)), rdt)
    return int_binary(op, a, b, rdt)


def _libm(op: str, x: float) -> float:
    if math.isnan(x):
        return math.nan
    if op == "exp":
        if math.isinf(x):
            return math.inf if x > 0 else 0.0
        try:
            return math.exp(x)
        except OverflowError:
            return math.inf
    if x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    return math.log(x)  # log(inf) = inf


@np.errstate(all="ignore")
def _near_f32_tie(v: float, w: np.float32):
    """If the float64 value v lies within a few float64 ulps of a float32 rounding boundary
    next to w, the float32 value on the other side (libm results may differ there)."""
    if not math.isfinite(v) or v == 0 or not np.isfinite(w):
        return None
    for other in (np.nextafter(w, np.float32(np.inf)), np.nextafter(w, np.float32(-np.inf))):
        if not np.isfinite(other):
            continue
        mid = (float(w) + float(other)) / 2  # exact in float64
        if abs(v - mid) <= 2.0**-48 * abs(v):
            return other
    return None


@np.errstate(all="ignore")
def float_unary_candidates(op: str, x32: np.ndarray, rdt: str):
    """(want, alt) float64 arrays; alt differs from want only where exp/log sit on a tie."""
    x = x32.astype(np.float64)
    if op == "exp" or op == "log":
        want32 = np.empty(x.shape, np.float32)
        alt32 = np.empty(x.shape, np.float32)
        for idx in np.ndindex(x.shape):
            v = _libm(op, float(x[idx]))
            w = np.float32(v)
            other = _near_f32_tie(v, w)
            want32[idx] = w
            alt32[idx] = w if other is None else other
        return rne_from_f32(want32, rdt), rne_from_f32(alt32, rdt)
    with np.errstate(all="ignore"):
        if op == "neg":
            r = -x
        elif op == "abs":
            r = np.abs(x)
        elif op == "relu":
            r = np.where(np.isnan(x), np.nan, np.where(x > 0, x, 0.0))
        elif op == "sqrt":
            r = np.sqrt(x)
        elif op == "recip":
            r = 1.0 / x
        elif op == "rsqrt":  # two correctly rounded float32 ops: sqrt, then 1/x
            r = 1.0 / np.sqrt(x).astype(np.float32).astype(np.float64)
        else:
            raise AssertionError(op)
    w = rne_from_f32(r.astype(np.float32), rdt)
    return w, w


# --------------------------------------------------------------------------- elementwise tests


@st.composite
def broadcast_pair(draw):
    """(lhs_shape, rhs_shape, result_shape): mostly equal, sometimes broadcasting either side."""
    base = draw(shapes_any)

    def thin(shape, p):
        return tuple(1 if draw(st.integers(0, 99)) < p else d for d in shape)

    mode = draw(st.integers(0, 9))
    lhs = base if mode < 8 else thin(base, 40)
    rhs = base if mode < 5 else thin(base, 50)
    res = tuple(max(x, y) for x, y in zip(lhs, rhs))
    return lhs, rhs, res


@st.composite
def dtype_pair(draw, allow_int: bool = True):
    pool = (*FLOATS, "INT32") if allow_int else FLOATS
    a = draw(st.sampled_from(pool))
    b = a if draw(st.booleans()) else draw(st.sampled_from(pool))
    return a, b


@pytest.mark.parametrize("op", BINARY)
@covers(*BINARY)
@PROPS
@given(data=st.data())
def test_binary_tensor_tensor(op, data):
    (ls, rs, res), (adt, bdt) = data.draw(broadcast_pair()), data.draw(dtype_pair())
    a, b = data.draw(arrays(adt, ls), "a"), data.draw(arrays(bdt, rs), "b")
    if ls == rs and adt == bdt and adt in FLOATS and data.draw(st.integers(0, 3)) == 0:
        # b = a with random signs: x - x, x + -x, max(+0, -0), equal operands...
        flips = data.draw(arrays("INT8", ls, elements=st.sampled_from([0, 1])), "flips")
        sign = np.array(0x8000_0000 if adt == "FP32" else 0x8000, BITS_OF[adt])
        b = (a.view(BITS_OF[adt]) ^ (flips.astype(BITS_OF[adt]) * sign)).view(NP[adt])
    rdt = promote(adt, bdt)
    if rdt not in FLOATS and op == "div":
        b = np.where(b == 0, 3, b).astype(b.dtype) if data.draw(st.integers(0, 9)) else b
    params = [f"a: {ttype(ls, adt)}", f"b: {ttype(rs, bdt)}"]
    body = [f"y = pl.{op}(a, b)"]
    strict = data.draw(st.booleans(), "strict")
    if rdt not in FLOATS and op == "div" and (b == 0).any():
        with pytest.raises(pl.RuntimeFault, match="integer division by zero"):
            run_to_out(params, body, "y", res, rdt, a, b, strict=strict)
        return
    got = run_to_out(params, body, "y", res, rdt, a, b, strict=strict)
    want = binary_oracle(op, a, adt, b, bdt, rdt)
    check(got, want, rdt, f"{op}({adt}{list(ls)}, {bdt}{list(rs)}) -> {rdt}")


@st.composite
def float_literal(draw, dt: str | None = None):
    """A finite float64 written as a Python literal; often at or next to a tie of dt."""
    dt = dt or draw(float_dt)
    p = FMT[dt][0]
    kind = draw(st.integers(0, 3))
    if kind == 0:
        v = draw(st.floats(allow_nan=False, allow_infinity=False))
    elif kind == 1:
        v = draw(st.sampled_from([0.0, -0.0, 0.1, -2.5, 1e300, -1e300, 1e-300, 65520.0, 3.0]))
    else:  # a tie of dt, or a float64 hair next to it (one rounding, not two)
        k = draw(st.integers(2 ** (p - 1), 2**p - 1))
        e = draw(st.integers(-p - 4, 4 - p))
        tie = (2 * k + 1) * 2.0 ** (e - 1)
        off = draw(st.sampled_from([0, 1, -1])) * 2.0 ** (e - 1 - 26)
        v = (tie + off) * draw(st.sampled_from([1, -1]))
    return v


@pytest.mark.parametrize("op", BINARY)
@covers(*BINARY)
@PROPS
@given(data=st.data())
def test_binary_tensor_scalar(op, data):
    """Tensor op scalar: a Scalar parameter promotes; an integer literal takes the tensor's
    dtype; a float literal is an FP32 constant (its float64 value rounds RNE to float32)."""
    shape = data.draw(shapes_any)
    adt = data.draw(num_dt)
    a = data.draw(arrays(adt, shape), "a")
    kind = data.draw(st.sampled_from(["param", "int_literal", "float_literal"]))
    params = [f"a: {ttype(shape, adt)}"]
    args = [a]
    if kind == "param":
        sdt = data.draw(st.sampled_from([*FLOATS, "INT32"] + (["INDEX"] if adt in FLOATS else [])))
        if sdt in FLOATS:
            bits = data.draw(float_bits(sdt))
            s = scalar_of(sdt, bits)
            sval = np.array(bits, BITS_OF[sdt]).view(NP[sdt])
        else:
            iv = data.draw(int_values("INT32") if sdt == "INT32" else st.integers(-(2**62), 2**62))
            s = scalar_of(sdt, iv)
            sval = np.array(iv, np.int64)
        params.append(f"s: pl.Scalar[pl.{sdt}]")
        args.append(s)
        rhs, rdt = "s", promote(adt, sdt)
    elif kind == "int_literal":
        iv = data.draw(st.integers(-70000, 70000) | st.sampled_from([0, 1, -1, 2**24 + 1]))
        sdt, sval, rhs, rdt = "INDEX", np.array(iv, np.int64), str(iv), adt
    else:
        fv = data.draw(float_literal())
        sdt, rhs, rdt = "FP32", repr(fv), promote(adt, "FP32")
        sval = np.array(round_to_float(fv, "FP32", "rint"), np.float64).astype(np.float32)
    if rdt not in FLOATS and op == "div" and int(sval) == 0:
        sval = np.array(5, np.int64)
        if kind == "param":
            args[-1] = scalar_of(sdt, 5)
        else:
            rhs = "5"
    body = [f"y = pl.{op}(a, {rhs})"]
    got = run_to_out(params, body, "y", shape, rdt, *args)
    want = binary_oracle(op, a, adt, sval, sdt if sdt in FLOATS else "INT32", rdt)
    check(got, want, rdt, f"{op}({adt}{list(shape)}, {kind} {rhs}={sval!r}) -> {rdt}")


@pytest.mark.parametrize("op", UNARY_FLOAT + UNARY_ANY)
@covers(*UNARY_FLOAT, *UNARY_ANY)
@PROPS
@given(data=st.data())
def test_unary(op, data):
    shape = data.draw(shapes_any)
    dt = data.draw(num_dt if op in UNARY_ANY else float_dt)
    a = data.draw(arrays(dt, shape), "a")
    got = run_to_out(
        [f"a: {ttype(shape, dt)}"],
        [f"y = pl.{op}(a)"],
        "y",
        shape,
        dt,
        a,
        strict=data.draw(st.booleans()),
    )
    what = f"{op}({dt}{list(shape)}) a={hexdump(a, dt)}"
    if dt not in FLOATS:
        x = a.astype(np.int64)
        want = {"neg": -x, "abs": np.abs(x), "relu": np.maximum(x, 0)}[op]
        check_int(got, np.vectorize(lambda v: wrap(int(v), dt))(want), dt, what)
        return
    want, alt = float_unary_candidates(op, operand_f32(a, dt), dt)
    g = to_f64(got, dt)
    pick = np.where((g == alt) & (np.signbit(g) == np.signbit(alt)), alt, want)
    check_float(got, pick, dt, what)


def _specials(dt: str) -> np.ndarray:
    if dt in FLOATS:
        bits = sorted(set(SPECIAL_BITS[dt]) | set(CORE_BITS[dt]))
        return np.array(bits, BITS_OF[dt]).view(NP[dt])
    lo, hi = int_range(dt)
    return np.array(sorted(set(INT32_SPECIAL) | {lo, hi, lo + 1, hi - 1, 0, -1}), NP[dt])


@pytest.mark.parametrize("dt", (*FLOATS, "INT32"))
@pytest.mark.parametrize("op", BINARY)
@covers(*BINARY)
def test_binary_specials_exhaustive(op, dt):
    """Every pair of special values (+-0 both ways round, +-inf, NaNs, subnormals, ties,
    extremes; INT32: MIN, MAX, -1, ...): a [n, 1] column against a [1, n] row."""
    v = _specials(dt)
    if dt not in FLOATS and op == "div":
        v = v[v != 0]
    n = len(v)
    got = run_to_out(
        [f"a: {ttype((n, 1), dt)}", f"b: {ttype((1, n), dt)}"],
        [f"y = pl.{op}(a, b)"],
        "y",
        (n, n),
        dt,
        v.reshape(n, 1),
        v.reshape(1, n),
    )
    check(got, binary_oracle(op, v.reshape(n, 1), dt, v.reshape(1, n), dt, dt), dt, f"{op} {dt}")


@pytest.mark.parametrize("dt", (*FLOATS, "INT32"))
@pytest.mark.parametrize("op", UNARY_FLOAT + UNARY_ANY)
@covers(*UNARY_FLOAT, *UNARY_ANY)
def test_unary_specials_exhaustive(op, dt):
    v = _specials(dt)
    if dt not in FLOATS and op not in UNARY_ANY:  # the type rule refuses integer tensors
        with pytest.raises(pl.CaptureError, match="floating-point"):
            run_to_out([f"a: {ttype(v.shape, dt)}"], [f"y = pl.{op}(a)"], "y", v.shape, dt, v)
        return
    got = run_to_out([f"a: {ttype(v.shape, dt)}"], [f"y = pl.{op}(a)"], "y", v.shape, dt, v)
    if dt not in FLOATS:
        x = v.astype(np.int64)
        want = {"neg": -x, "abs": np.abs(x), "relu": np.maximum(x, 0)}[op]
        check_int(got, [wrap(int(w), dt) for w in want], dt, f"{op} {dt}")
        return
    want, alt = float_unary_candidates(op, operand_f32(v, dt), dt)
    g = to_f64(got, dt)
    pick = np.where((g == alt) & (np.signbit(g) == np.signbit(alt)), alt, want)
    check_float(got, pick, dt, f"{op} {dt} on {hexdump(v, dt)}")


# --------------------------------------------------------------------------- expand ops

EXPAND = tuple(f"{k}_expand_{f}" for k in ("row", "col") for f in ("add", "sub", "mul", "div"))


@pytest.mark.parametrize("op", EXPAND)
@covers(*EXPAND)
@PROPS
@given(data=st.data())
def test_expand(op, data):
    kind, _, fn = op.split("_")
    m, n = data.draw(shapes2)
    xdt, vdt = data.draw(dtype_pair())
    vshape = (m, 1) if kind == "row" else (1, n)
    x, v = data.draw(arrays(xdt, (m, n)), "x"), data.draw(arrays(vdt, vshape), "v")
    rdt = promote(xdt, vdt)
    if rdt not in FLOATS and fn == "div":
        v = np.where(v == 0, -3, v).astype(v.dtype)
    got = run_to_out(
        [f"x: {ttype((m, n), xdt)}", f"v: {ttype(vshape, vdt)}"],
        [f"y = pl.{op}(x, v)"],
        "y",
        (m, n),
        rdt,
        x,
        v,
        strict=data.draw(st.booleans()),
    )
    vb = np.repeat(v, n, axis=1) if kind == "row" else np.repeat(v, m, axis=0)
    check(got, binary_oracle(fn, x, xdt, vb, vdt, rdt), rdt, f"{op}({xdt}, {vdt}) -> {rdt}")


# --------------------------------------------------------------------------- reductions

REDUCTIONS = tuple(f"{k}_{r}" for k in ("row", "col") for r in ("sum", "max", "min"))


@np.errstate(all="ignore")
def accumulation_check(got: float, terms: list[float], n: int, dt: str) -> str | None:
    """None if `got` is an acceptable float32 accumulation of `terms` (exact float64 values:
    summands, or exact products a_ik * b_kj plus acc), rounded once to dt; else the problem.

    A NaN term (NaN input, inf * 0), or +inf and -inf terms: NaN. One infinity: that infinity,
    unless the finite terms may overflow float32 the other way, e.g. a product beyond FP32's
    range (then NaN is acceptable too: with an FMA such a product need not overflow on its
    own, without one it does). Finite: |got - exact| <= (gamma_n + u_out (1 + gamma_n)) *
    sum|t| + n * 2**-149 + half a subnormal of dt, when nothing can overflow."""
    finite = [Fraction(t) for t in terms if math.isfinite(t)]
    mag = sum((abs(f) for f in finite), Fraction(0))
    g = gamma(n)
    close_to = 1 - Fraction(1, 2**12)
    may_overflow32 = (1 + g) * mag >= max_finite("FP32") * close_to
    may_overflow = may_overflow32 or (1 + g) * mag >= max_finite(dt) * close_to
    if any(math.isnan(v) for v in terms) or (math.inf in terms and -math.inf in terms):
        return None if math.isnan(got) else f"expected NaN, got {got!r}"
    if math.inf in terms or -math.inf in terms:
        want = math.inf if math.inf in terms else -math.inf
        if got == want or (may_overflow32 and math.isnan(got)):
            return None
        return f"expected {want}, got {got!r}"
    if may_overflow:
        return None  # a partial sum or the final rounding may overflow: no claim
    if not math.isfinite(got):
        return f"expected a finite result, got {got!r}"
    exact = sum(finite, Fraction(0))
    bound = (g + unit_out(dt) * (1 + g)) * mag + n * Fraction(1, 2**149) + half_subnormal(dt)
    err = abs(Fraction(got) - exact)
    return None if err <= bound else f"|{got!r} - {float(exact)!r}| = {float(err)} > {float(bound)}"


def maxmin_ref(xs: list[float], is_max: bool) -> float:
    if any(math.isnan(x) for x in xs):
        return math.nan
    best = max(xs) if is_max else min(xs)
    if best == 0:
        signs = [math.copysign(1.0, x) < 0 for x in xs if x == 0]
        neg = all(signs) if is_max else any(signs)
        return -0.0 if neg else 0.0
    return best


def reduction_lanes(x: np.ndarray, kind: str):
    """(index into the result, lane values) for each reduced lane."""
    if kind == "row":
        for idx in np.ndindex(x.shape[:-1]):
            yield (*idx, 0), x[idx]
    else:
        for j in range(x.shape[1]):
            yield (0, j), x[:, j]


@st.composite
def swamped(draw, dt: str, shape):
    """Many copies of a small value s with a few big values b just large enough that s is
    below half an ulp of b in dt: an accumulation narrower than FP32 loses every s."""
    p = FMT[dt][0]
    e = draw(st.integers(-6, 3))
    k = draw(st.integers(2 ** (p - 1), 2**p - 1))
    s = _grid_value(dt, draw(st.integers(0, 1)), k, e - p + 1)  # in [2**e, 2**(e + 1))
    big = _grid_value(dt, draw(st.integers(0, 1)), 1, e + p + 1)  # half an ulp: 2**(e + 1)
    where = draw(arrays("INT8", shape, elements=st.sampled_from([0, 0, 0, 1])))
    return np.where(where == 1, big, s).astype(BITS_OF[dt]).view(NP[dt])


@pytest.mark.parametrize("op", REDUCTIONS)
@covers(*REDUCTIONS)
@PROPS
@given(data=st.data())
def test_reduction(op, data):
    kind, red = op.split("_")
    shape = data.draw(shapes_any if kind == "row" else shapes2)
    dt = data.draw(num_dt)
    x = data.draw(arrays(dt, shape, moderate=data.draw(st.booleans())), "x")
    if dt in FLOATS and red == "sum" and data.draw(st.integers(0, 2)) == 0:
        x = data.draw(swamped(dt, shape), "x")
    rshape = shape[:-1] + (1,) if kind == "row" else (1, shape[1])
    got = run_to_out(
        [f"x: {ttype(shape, dt)}"],
        [f"y = pl.{op}(x)"],
        "y",
        rshape,
        dt,
        x,
        strict=data.draw(st.booleans()),
    )
    assert got.shape == rshape and got.dtype == NP[dt]
    what = f"{op}({dt}{list(shape)}) x={hexdump(x, dt)}"
    if dt not in FLOATS:
        f = {"sum": sum, "max": max, "min": min}[red]
        want = np.zeros(rshape, np.int64)
        for idx, lane in reduction_lanes(x, kind):
            want[idx] = wrap(f(int(v) for v in lane), dt)
        check_int(got, want, dt, what)
        return
    xf, gf = to_f64(x, dt), to_f64(got, dt)
    if red == "sum":
        for idx, lane in reduction_lanes(xf, kind):
            problem = accumulation_check(float(gf[idx]), [float(v) for v in lane], len(lane), dt)
            assert problem is None, f"{what} lane {idx}: {problem}"
        return
    want = np.zeros(rshape, np.float64)
    for idx, lane in reduction_lanes(xf, kind):
        want[idx] = maxmin_ref([float(v) for v in lane], red == "max")
    check_float(got, want, dt, what)


@covers("row_max", "col_min")
def test_reduce_maxmin_zero_sign():
    """max/min reductions order zeros as IEEE 754-2019 does (-0 < +0), like the elementwise
    maximum/minimum, whatever the element order (np.max alone would not)."""
    text = source(
        [f"x: {ttype((2, 2), 'FP32')}"],
        f"tuple[{ttype((2, 1), 'FP32')}, {ttype((1, 2), 'FP32')}]",
        ["a = pl.row_max(x)", "b = pl.col_min(x)", "return a, b"],
    )
    x = np.array([[-0.0, 0.0], [0.0, -0.0]], np.float32)
    a, b = interpreter.run(program(text), "k", x, precision="bf16")
    assert not np.signbit(a).any(), f"row_max of +-0 gave {a.ravel()}"  # IEEE maximum: +0
    assert np.signbit(b).all(), f"col_min of +-0 gave {b.ravel()}"  # IEEE minimum: -0


# --------------------------------------------------------------------------- matmul


@st.composite
def matmul_case(draw, with_acc: bool):
    m, k, n = draw(dims), draw(dims), draw(dims)
    a_trans, b_trans = draw(st.booleans()), draw(st.booleans())
    integer = draw(st.integers(0, 5)) == 0
    if integer:
        adt, bdt = (
            draw(st.sampled_from(["INT8", "INT32"])),
            draw(st.sampled_from(["INT8", "INT32"])),
        )
    else:
        adt, bdt = draw(dtype_pair(allow_int=False))
    ashape = (k, m) if a_trans else (m, k)
    bshape = (n, k) if b_trans else (k, n)
    moderate = draw(st.integers(0, 3)) > 0
    a = draw(arrays(adt, ashape, moderate=moderate), "a")
    b = draw(arrays(bdt, bshape, moderate=moderate), "b")
    return m, k, n, a_trans, b_trans, integer, adt, bdt, a, b


@covers("matmul")
@PROPS
@given(case=matmul_case(False), data=st.data())
def test_matmul(case, data):
    m, k, n, a_trans, b_trans, integer, adt, bdt, a, b = case
    choices = [None, "INT32"] if integer else [None, *FLOATS]
    out_dt = data.draw(st.sampled_from(choices), "out_dtype")
    rdt = out_dt or promote(adt, bdt)
    attrs = f", a_trans={a_trans}, b_trans={b_trans}"
    if out_dt:
        attrs = f", out_dtype=pl.{out_dt}" + attrs
    got = run_to_out(
        [f"a: {ttype(a.shape, adt)}", f"b: {ttype(b.shape, bdt)}"],
        [f"y = pl.matmul(a, b{attrs})"],
        "y",
        (m, n),
        rdt,
        a,
        b,
        strict=data.draw(st.booleans()),
    )
    A = a.T if a_trans else a
    B = b.T if b_trans else b
    what = f"matmul({adt}{list(a.shape)}, {bdt}{list(b.shape)}{attrs}) -> {rdt}"
    if integer:
        want = [[wrap(wrap(sum(int(A[i, t]) * int(B[t, j]) for t in range(k)), "INT32"), rdt)
                 for j in range(n)] for i in range(m)]  # fmt: skip
        check_int(got, want, rdt, what)
        return
    A64, B64, g64 = to_f64(A, adt), to_f64(B, bdt), to_f64(got, rdt)
    for i in range(m):
        for j in range(n):
            with np.errstate(all="ignore"):
                terms = [float(A64[i, t] * B64[t, j]) for t in range(k)]  # exact in float64
            problem = accumulation_check(float(g64[i, j]), terms, k, rdt)
            assert problem is None, f"{what} [{i},{j}]: {problem}\nA={A64}\nB={B64}"


@covers("matmul_acc")
@PROPS
@given(case=matmul_case(True), data=st.data())
def test_matmul_acc(case, data):
    m, k, n, a_trans, b_trans, integer, adt, bdt, a, b = case
    acc_dt = "INT32" if integer else "FP32"
    acc = data.draw(arrays(acc_dt, (m, n), moderate=True), "acc")
    attrs = f", a_trans={a_trans}, b_trans={b_trans}"
    got = run_to_out(
        [f"acc: {ttype((m, n), acc_dt)}", f"a: {ttype(a.shape, adt)}", f"b: {ttype(b.shape, bdt)}"],
        [f"y = pl.matmul_acc(acc, a, b{attrs})"],
        "y",
        (m, n),
        acc_dt,
        acc,
        a,
        b,
        strict=data.draw(st.booleans()),
    )
    A = a.T if a_trans else a
    B = b.T if b_trans else b
    what = f"matmul_acc(FP32 acc, {adt}{list(a.shape)}, {bdt}{list(b.shape)}{attrs})"
    if integer:
        want = [[wrap(int(acc[i, j]) + sum(int(A[i, t]) * int(B[t, j]) for t in range(k)), "INT32")
                 for j in range(n)] for i in range(m)]  # fmt: skip
        check_int(got, want, "INT32", what)
        return
    A64, B64, g64 = to_f64(A, adt), to_f64(B, bdt), got.astype(np.float64)
    for i in range(m):
        for j in range(n):
            with np.errstate(all="ignore"):
                terms = [float(A64[i, t] * B64[t, j]) for t in range(k)] + [float(acc[i, j])]
            problem = accumulation_check(float(g64[i, j]), terms, k + 1, "FP32")
            assert problem is None, f"{what} [{i},{j}]: {problem}"


# --------------------------------------------------------------------------- cast

MODES = ("none", "rint", "round", "floor", "ceil", "trunc", "odd")


def cast_kernel(shape, src: str, dst: str, mode: str | None) -> pl.Program:
    extra = "" if mode is None else f', mode="{mode}"'
    text = source(
        [f"a: {ttype(shape, src)}"],
        ttype(shape, dst),
        [f"y = pl.cast(a, pl.{dst}{extra})", "return y"],
    )
    return program(text)


@np.errstate(all="ignore")
def cast_oracle(a: np.ndarray, src: str, dst: str, mode: str) -> np.ndarray:
    vals = to_f64(a, src).ravel().tolist() if src in FLOATS else [int(v) for v in a.ravel()]
    if dst in FLOATS:
        out = [round_to_float(v, dst, mode) for v in vals]
        return np.array(out, np.float64).reshape(a.shape)
    return np.array([round_to_int(v, dst, mode) for v in vals], np.int64).reshape(a.shape)


# numerics.md, "Worked examples": FP32 bits -> BF16 bits in modes round, rint, floor, ceil,
# trunc, odd.
WORKED = {
    0x3F808000: (0x3F81, 0x3F80, 0x3F80, 0x3F81, 0x3F80, 0x3F81),
    0xBF808000: (0xBF81, 0xBF80, 0xBF81, 0xBF80, 0xBF80, 0xBF81),
    0x3F818000: (0x3F82, 0x3F82, 0x3F81, 0x3F82, 0x3F81, 0x3F81),
    0x3F800001: (0x3F80, 0x3F80, 0x3F80, 0x3F81, 0x3F80, 0x3F81),
    0x7F7FFFFF: (0x7F80, 0x7F80, 0x7F7F, 0x7F80, 0x7F7F, 0x7F7F),
    0x00008000: (0x0001, 0x0000, 0x0000, 0x0001, 0x0000, 0x0001),
}
WORKED_MODES = ("round", "rint", "floor", "ceil", "trunc", "odd")


@covers("cast")
def test_worked_examples_of_numerics_md():
    """The oracles and the interpreter reproduce the hand-worked examples of numerics.md."""
    bits = np.array(sorted(WORKED), np.uint32)
    results = interpreter.run(
        cast_all_modes_kernel(bits.shape, "FP32", "BF16"), "k", bits.view(np.float32)
    )
    by_mode = dict(zip(("default", *MODES), results))
    assert by_mode["default"].view(np.uint16).tolist() == [WORKED[b][0] for b in bits.tolist()]
    for j, mode in enumerate(WORKED_MODES):
        want = [WORKED[b][j] for b in bits.tolist()]
        assert bf16_bits_from_f32_bits(bits, mode).tolist() == want, mode
        rational = [round_to_float(float(v), "BF16", mode) for v in bits.view(np.float32)]
        assert rational == to_f64(np.array(want, np.uint16).view(BF16_NP), "BF16").tolist(), mode
        assert by_mode[mode].view(np.uint16).tolist() == want, mode
    assert bf16_bits_from_f32_bits(np.array([0x7F800001, 0xFFA00000]), "rint").tolist() == [
        0x7FC0,
        0xFFE0,
    ]
    # "More:" one rounding from float64; FP16 overflow and subnormals; ints.
    assert round_to_float(1 + 2**-8 + 2**-40, "BF16", "rint") == 1 + 2**-7
    for mode, want in [("rint", math.inf), ("round", math.inf), ("trunc", 65504.0),
                       ("odd", 65504.0), ("floor", 65504.0)]:  # fmt: skip
        assert round_to_float(65520.0, "FP16", mode) == want, mode
    assert round_to_float(2.0**-25, "FP16", "rint") == 0.0
    assert round_to_float(2.0**-25, "FP16", "round") == 2.0**-24
    assert round_to_float(1023.5 * 2.0**-24, "FP16", "rint") == 2.0**-14
    assert round_to_float(16777217, "FP32", "round") == 16777218.0
    assert round_to_float(16777217, "FP32", "rint") == 16777216.0
    assert round_to_float(1e6, "FP16", "trunc") == 65504.0
    assert round_to_float(2**63 - 1, "FP32", "round") == 2.0**63
    assert round_to_float(2**63 - 1, "FP32", "trunc") == 2.0**63 - 2.0**39
    assert [round_to_int(v, "INT32", "round") for v in (2.5, -2.5)] == [3, -3]
    assert round_to_int(2.5, "INT32", "rint") == 2
    assert round_to_int(300.0, "INT8", "round") == 127
    assert round_to_int(-0.6, "UINT8", "round") == 0
    assert round_to_int(math.nan, "INT32", "round") == 0
    assert round_to_int(-math.inf, "INT8", "trunc") == -128
    assert round_to_int(300, "INT8", "round") == 44


@pytest.mark.parametrize("mode", MODES)
@covers("cast")
@PROPS
@given(data=st.data())
def test_cast_fp32_to_bf16_bits(mode, data):
    """FP32 -> BF16 is bit-exact in every mode, NaN payloads included (quiet, sign and top
    payload bits kept), against the integer bit-manipulation oracle."""
    shape = data.draw(shapes2)
    a = data.draw(arrays("FP32", shape), "a")
    got = interpreter.run(cast_kernel(shape, "FP32", "BF16", mode), "k", a, precision="bf16")
    assert got.dtype == BF16_NP and got.shape == shape
    bits = a.view(np.uint32)
    want = bf16_bits_from_f32_bits(bits, mode)
    bad = got.view(np.uint16) != want
    assert not bad.any(), (
        f"cast FP32->BF16 mode={mode}: inputs {hexdump(a[bad], 'FP32')} gave "
        f"{hexdump(got[bad], 'BF16')}, expected {[hex(int(w)) for w in want[bad]]}"
    )
    # The bit oracle agrees with the rational one, and rint with ml_dtypes (NaN as NaN).
    check_float(got, cast_oracle(a, "FP32", "BF16", mode), "BF16", "rational oracle", True)
    if mode in ("rint", "none"):
        with np.errstate(invalid="ignore"):
            via_ml_dtypes = a.astype(BF16_NP)
        check_float(got, to_f64(via_ml_dtypes, "BF16"), "BF16", "ml_dtypes astype")


def cast_all_modes_kernel(shape, src: str, dst: str) -> pl.Program:
    """One kernel casting its input with every mode (and the default) -> a tuple of 8."""
    body = [f"d = pl.cast(a, pl.{dst})"]
    body += [f'm{i} = pl.cast(a, pl.{dst}, mode="{m}")' for i, m in enumerate(MODES)]
    body.append("return d, " + ", ".join(f"m{i}" for i in range(len(MODES))))
    ret = f"tuple[{', '.join([ttype(shape, dst)] * (len(MODES) + 1))}]"
    return program(source([f"a: {ttype(shape, src)}"], ret, body))


@pytest.mark.parametrize("dst", ("FP32", "BF16", "FP16", "INT32", "INT8", "UINT8"))
@pytest.mark.parametrize("src", ("FP32", "BF16", "FP16", "INT32"))
@covers("cast")
@settings(PROPS, max_examples=25)
@given(data=st.data())
def test_cast_any(src, dst, data):
    """Every (src, dst, mode): one rounding of the exact value; overflow per IEEE 754 §7.4;
    float -> int saturates (NaN -> 0); int -> int wraps; NaN keeps its sign. The default
    mode is round (ties away from zero)."""
    shape = data.draw(shapes_any)
    a = data.draw(arrays(src, shape), "a")
    results = interpreter.run(cast_all_modes_kernel(shape, src, dst), "k", a, precision="bf16")
    for mode, got in zip(("round", *MODES), results):
        want = cast_oracle(a, src, dst, mode)
        check(got, want, dst, f"cast {src}->{dst} mode={mode} a={hexdump(a, src)}", nan_sign=True)


@pytest.mark.parametrize("dst", ("FP32", "BF16", "FP16", "INT32", "INT8", "UINT8"))
@pytest.mark.parametrize("src", ("FP32", "BF16", "FP16", "INT32"))
@covers("cast")
def test_cast_specials_exhaustive(src, dst):
    """All special values of src, every mode, including the worked examples of numerics.md."""
    v = _specials(src)
    results = interpreter.run(cast_all_modes_kernel(v.shape, src, dst), "k", v, precision="bf16")
    for mode, got in zip(("round", *MODES), results):
        want = cast_oracle(v, src, dst, mode)
        check(got, want, dst, f"cast {src}->{dst} mode={mode} a={hexdump(v, src)}", nan_sign=True)


@covers("cast", "read")
@PROPS
@given(data=st.data())
def test_cast_scalar(data):
    """Scalar casts (default mode only: ties away) through pl.read of a tensor element."""
    src = data.draw(st.sampled_from(("FP32", "BF16", "FP16", "INT32")))
    dst = data.draw(st.sampled_from(("FP32", "BF16", "FP16", "INT32")))
    a = data.draw(arrays(src, (1,)), "a")
    text = source(
        [f"a: {ttype((1,), src)}"],
        f"pl.Scalar[pl.{dst}]",
        [f"s = pl.cast(pl.read(a, [0]), pl.{dst})", "return s"],
    )
    got = interpreter.run(program(text), "k", a, precision="bf16")
    want = cast_oracle(a, src, dst, "round")
    check(np.asarray(got).reshape(1), want, dst, f"scalar cast {src}->{dst} {hexdump(a, src)}")


# --------------------------------------------------------------------------- data ops

PADS = {"zero": (0.0, 0), "null": (0.0, 0), "min": (-math.inf, None), "max": (math.inf, None)}


def pad_of(pad: str, dt: str):
    lo, hi = int_range(dt) if dt in INTS else (None, None)
    if dt in FLOATS:
        return PADS[pad][0]
    return {"zero": 0, "null": 0, "min": lo, "max": hi}[pad]


@np.errstate(all="ignore")
def as_want(x: np.ndarray, dt: str) -> np.ndarray:
    return to_f64(x, dt) if dt in FLOATS else np.asarray(x, np.int64)


@st.composite
def window(draw):
    """A source shape, a window (shape, offset) and a valid region inside the source."""
    r, c = draw(shapes2)
    h, w = draw(shapes2)
    r0, c0 = draw(st.integers(0, r - 1)), draw(st.integers(0, c - 1))
    vh = draw(st.integers(0, min(h, r - r0)))
    vw = draw(st.integers(0, min(w, c - c0)))
    return (r, c), (h, w), (r0, c0), (vh, vw)


@covers("slice", "fillpad")
@PROPS
@given(win=window(), dt=num_dt, data=st.data())
def test_slice_valid_shape_and_fillpad(win, dt, data):
    """slice(valid_shape=...) then fillpad with each pad: the valid part of the window, the pad
    elsewhere (zero -> 0, min -> -inf / iinfo.min, max -> +inf / iinfo.max)."""
    (r, c), (h, w), (r0, c0), (vh, vw) = win
    x = data.draw(arrays(dt, (r, c)), "x")
    idx = ", ".join(f"{n}: pl.Scalar[pl.INDEX]" for n in ("r0", "c0", "vh", "vw"))
    pads = sorted(p for p in PADS if p != "null")  # PyPTO rejects fillpad(null)
    text = source(
        [f"x: {ttype((r, c), dt)}", idx],
        f"tuple[{', '.join([ttype((h, w), dt)] * (len(pads) + 1))}]",
        [f"t = pl.slice(x, [{h}, {w}], [r0, c0], valid_shape=[vh, vw])", "d = pl.fillpad(t)"]
        + [f"f{i} = pl.fillpad(t, pad_value=pl.PadValue.{p})" for i, p in enumerate(pads)]
        + ["return d, " + ", ".join(f"f{i}" for i in range(len(pads)))],
    )
    strict = data.draw(st.booleans())
    results = interpreter.run(program(text), "k", x, r0, c0, vh, vw, strict=strict)
    for pad, got in zip(("zero", *pads), results):
        want = np.full((h, w), pad_of(pad, dt), np.float64 if dt in FLOATS else np.int64)
        want[:vh, :vw] = as_want(x, dt)[r0 : r0 + vh, c0 : c0 + vw]
        check(got, want, dt, f"slice {win} fillpad {pad}")


@covers("slice", "fillpad")
@PROPS
@given(win=window(), dt=num_dt, data=st.data())
def test_slice_of_a_slice_intersects_valid_regions(win, dt, data):
    """A slice's valid region is its valid_shape cut by the source's valid region shifted by
    the offset (PyPTO's rule)."""
    (r, c), (h, w), (r0, c0), (vh, vw) = win
    h2, w2 = data.draw(shapes2)
    a0, b0 = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    # The accessed extent must fit the outer window and the buffer.
    vh2 = data.draw(st.integers(0, min(h2, h - a0, r - r0 - a0) if r - r0 - a0 > 0 else 0))
    vw2 = data.draw(st.integers(0, min(w2, w - b0, c - c0 - b0) if c - c0 - b0 > 0 else 0))
    x = data.draw(arrays(dt, (r, c)), "x")
    got = run_to_out(
        [f"x: {ttype((r, c), dt)}"],
        [
            f"t = pl.slice(x, [{h}, {w}], [{r0}, {c0}], valid_shape=[{vh}, {vw}])",
            f"u = pl.slice(t, [{h2}, {w2}], [{a0}, {b0}], valid_shape=[{vh2}, {vw2}])",
            "y = pl.fillpad(u, pad_value=pl.PadValue.max)",
        ],
        "y",
        (h2, w2),
        dt,
        x,
        strict=data.draw(st.booleans()),
    )
    eh, ew = max(0, min(vh2, vh - a0)), max(0, min(vw2, vw - b0))
    want = np.full((h2, w2), pad_of("max", dt), np.float64 if dt in FLOATS else np.int64)
    want[:eh, :ew] = as_want(x, dt)[r0 + a0 : r0 + a0 + eh, c0 + b0 : c0 + b0 + ew]
    check(got, want, dt, f"slice {win}, then [{h2},{w2}] at [{a0},{b0}] valid [{vh2},{vw2}]")


@covers("slice")
@PROPS
@given(shape=shapes2, sub=shapes2, dt=num_dt, data=st.data())
def test_slice_window(shape, sub, dt, data):
    """A slice without valid_shape is the plain window."""
    (r, c), (h, w) = shape, (min(sub[0], shape[0]), min(sub[1], shape[1]))
    r0, c0 = data.draw(st.integers(0, r - h)), data.draw(st.integers(0, c - w))
    x = data.draw(arrays(dt, (r, c)), "x")
    got = run_to_out(
        [f"x: {ttype((r, c), dt)}"],
        [f"t = pl.slice(x, [{h}, {w}], [{r0}, {c0}])"],
        "t",
        (h, w),
        dt,
        x,
        strict=data.draw(st.booleans()),
    )
    check(got, as_want(x, dt)[r0 : r0 + h, c0 : c0 + w], dt, f"slice [{h},{w}] at [{r0},{c0}]")


@covers("assemble", "slice")
@PROPS
@given(win=window(), dt=num_dt, data=st.data())
def test_assemble_writes_only_the_valid_region(win, dt, data):
    (r, c), (h, w), (r0, c0), (vh, vw) = win
    # Source: a [h, w] window of x with valid region [vh, vw]; target: T, at offset (o0, o1).
    tr, tc = data.draw(st.integers(max(1, vh), 8)), data.draw(st.integers(max(1, vw), 8))
    o0, o1 = data.draw(st.integers(0, tr - vh)), data.draw(st.integers(0, tc - vw))
    x = data.draw(arrays(dt, (r, c)), "x")
    target = data.draw(arrays(dt, (tr, tc)), "target")
    before = as_want(target, dt).copy()
    text = source(
        [f"x: {ttype((r, c), dt)}", f"t: pl.InOut[{ttype((tr, tc), dt)}]"],
        ttype((tr, tc), dt),
        [
            f"s = pl.slice(x, [{h}, {w}], [{r0}, {c0}], valid_shape=[{vh}, {vw}])",
            f"t = pl.assemble(t, s, [{o0}, {o1}])",
            "return t",
        ],
    )
    strict = data.draw(st.booleans())
    got = interpreter.run(program(text), "k", x, target, strict=strict, precision="bf16")
    want = before
    want[o0 : o0 + vh, o1 : o1 + vw] = as_want(x, dt)[r0 : r0 + vh, c0 : c0 + vw]
    check(got, want, dt, f"assemble {win} at [{o0},{o1}]")
    check(target, want, dt, "assemble (caller's InOut array, in place)")


@covers("create_tensor", "assemble")
@PROPS
@given(win=window(), dt=num_dt, data=st.data())
def test_create_tensor_and_assemble(win, dt, data):
    """A fresh tensor reads as zero in default mode; strict mode refuses to return it unless
    every element was written."""
    (r, c), (h, w), (r0, c0), (vh, vw) = win
    o0, o1 = data.draw(st.integers(0, r - vh)), data.draw(st.integers(0, c - vw))
    x = data.draw(arrays(dt, (r, c)), "x")
    text = source(
        [f"x: {ttype((r, c), dt)}"],
        ttype((r, c), dt),
        [
            f"t = pl.create_tensor([{r}, {c}], pl.{dt})",
            f"s = pl.slice(x, [{h}, {w}], [{r0}, {c0}], valid_shape=[{vh}, {vw}])",
            f"t = pl.assemble(t, s, [{o0}, {o1}])",
            "return t",
        ],
    )
    want = np.zeros((r, c), np.float64 if dt in FLOATS else np.int64)
    want[o0 : o0 + vh, o1 : o1 + vw] = as_want(x, dt)[r0 : r0 + vh, c0 : c0 + vw]
    got = interpreter.run(program(text), "k", x, precision="bf16")
    check(got, want, dt, f"create_tensor + assemble {win} at [{o0},{o1}]")
    if (vh, vw) == (r, c):
        check(interpreter.run(program(text), "k", x, strict=True), want, dt, "strict, full")
    else:
        with pytest.raises(pl.RuntimeFault, match="UndefinedRead|undefined"):
            interpreter.run(program(text), "k", x, strict=True)


@st.composite
def reshape_target(draw, shape):
    n = math.prod(shape)
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    d = draw(st.sampled_from(divisors))
    last = shape[-1]
    return draw(
        st.sampled_from([(n,), (1, n), (n, 1), (d, n // d), (last, n // last), (1, d, n // d)])
    )


@covers("reshape", "assemble")
@PROPS
@given(shape=shapes_any, dt=num_dt, data=st.data())
def test_reshape(shape, dt, data):
    """reshape is row-major; a reshape of an Out parameter is a view that writes through."""
    new = data.draw(reshape_target(shape), "new_shape")
    x = data.draw(arrays(dt, shape), "x")
    zeros = ", ".join("0" for _ in shape)
    dims_ = ", ".join(map(str, new))
    text = source(
        [f"x: {ttype(shape, dt)}", f"out: pl.Out[{ttype(new, dt)}]"],
        f"tuple[{ttype(new, dt)}, {ttype(new, dt)}]",
        [
            f"r = pl.reshape(x, [{dims_}])",
            f"view = pl.reshape(out, [{', '.join(map(str, shape))}])",
            f"view = pl.assemble(view, x, [{zeros}])",
            "return r, out",
        ],
    )
    out = np.zeros(new, NP[dt])
    r, o = interpreter.run(program(text), "k", x, out, strict=data.draw(st.booleans()))
    want = as_want(x, dt).reshape(new)
    check(r, want, dt, f"reshape {shape} -> {new}")
    check(o, want, dt, "write-through of a reshaped Out")
    check(out, want, dt, "caller's Out array")


@covers("read")
@PROPS
@given(shape=shapes2, dt=num_dt, data=st.data())
def test_read(shape, dt, data):
    x = data.draw(arrays(dt, shape), "x")
    i, j = data.draw(st.integers(0, shape[0] - 1)), data.draw(st.integers(0, shape[1] - 1))
    f = data.draw(st.integers(0, math.prod(shape) - 1))
    text = source(
        [
            f"x: {ttype(shape, dt)}",
            "i: pl.Scalar[pl.INDEX]",
            "j: pl.Scalar[pl.INDEX]",
            "f: pl.Scalar[pl.INDEX]",
        ],
        f"tuple[pl.Scalar[pl.{dt}], pl.Scalar[pl.{dt}]]",
        ["a = pl.read(x, [i, j])", "b = pl.tensor.read(x, [f])", "return a, b"],
    )
    a, b = interpreter.run(program(text), "k", x, i, j, f, strict=data.draw(st.booleans()))
    assert isinstance(a, np.generic) and a.dtype == NP[dt]
    got = np.array([a, b], NP[dt])
    want = as_want(np.array([x[i, j], x.ravel()[f]], NP[dt]), dt)
    check(got, want, dt, f"read [{i},{j}] and flat [{f}]")


@covers("write")
@PROPS
@given(shape=shapes2, dt=num_dt, data=st.data())
def test_write(shape, dt, data):
    """write a Scalar parameter of the tensor's dtype (exact) at [i, j], then a literal at a
    flat index, converted with RNE. A float literal is an FP32 constant, so its float64 value
    rounds to FP32 first, then to a BF16/FP16 tensor's dtype."""
    x = data.draw(arrays(dt, shape), "x")
    before = as_want(x, dt).copy()
    i, j = data.draw(st.integers(0, shape[0] - 1)), data.draw(st.integers(0, shape[1] - 1))
    f = data.draw(st.integers(0, math.prod(shape) - 1))
    if dt in FLOATS:
        sbits = data.draw(float_bits(dt))
        s = scalar_of(dt, sbits)
        sval = float(to_f64(np.array(sbits, BITS_OF[dt]).view(NP[dt]), dt))
        lit = data.draw(float_literal(dt))
        # A float literal is an FP32 constant (RNE from its float64 value), then RNE to dt.
        lval = round_to_float(round_to_float(lit, "FP32", "rint"), dt, "rint")
    else:
        sval = data.draw(int_values(dt))
        s = scalar_of(dt, sval)
        lit = data.draw(st.integers(*int_range(dt)))
        lval = lit
    text = source(
        [f"x: pl.InOut[{ttype(shape, dt)}]", f"s: pl.Scalar[pl.{dt}]"],
        ttype(shape, dt),
        [f"x = pl.write(x, [{i}, {j}], s)", f"x = pl.tensor.write(x, [{f}], {lit!r})", "return x"],
    )
    got = interpreter.run(program(text), "k", x, s, strict=data.draw(st.booleans()))
    want = before
    want[i, j] = sval
    want.ravel()[f] = lval
    check(got, want, dt, f"write s={sval!r} at [{i},{j}], literal {lit!r} at flat {f}")
    check(x, want, dt, "write (caller's InOut array, in place)")


@covers("full")
@PROPS
@given(shape=shapes_any, dt=num_dt, data=st.data())
def test_full(shape, dt, data):
    """full converts its value with round-to-nearest-even (float -> int: rint, saturating)."""
    kind = data.draw(st.sampled_from(["float_literal", "int_literal", "fp32_param"]))
    dims_ = ", ".join(map(str, shape))
    params, args = [], []
    if kind == "float_literal":
        v = data.draw(float_literal(dt if dt in FLOATS else None))
        value, exact = repr(v), round_to_float(v, "FP32", "rint")  # an FP32 constant
    elif kind == "int_literal":
        v = data.draw(st.integers(-(2**40), 2**40) | st.sampled_from(INT32_SPECIAL))
        value, exact = str(v), v
    else:
        bits = data.draw(float_bits("FP32"))
        params, args = ["s: pl.Scalar[pl.FP32]"], [scalar_of("FP32", bits)]
        value = "s"
        exact = float(np.array(bits, np.uint32).view(np.float32))
    if dt in FLOATS:
        want = np.full(shape, round_to_float(exact, dt, "rint"))
    else:
        int_v = wrap(exact, dt) if isinstance(exact, int) else round_to_int(exact, dt, "rint")
        want = np.full(shape, int_v, np.int64)
    text = source(
        params, ttype(shape, dt), [f"y = pl.full([{dims_}], pl.{dt}, {value})", "return y"]
    )
    got = interpreter.run(program(text), "k", *args, strict=data.draw(st.booleans()))
    check(got, want, dt, f"full({list(shape)}, {dt}, {kind} {value} = {exact!r})")


@covers("dim")
@PROPS
@given(shape=shapes_any, dt=num_dt, data=st.data())
def test_dim(shape, dt, data):
    names = ["D0", "D1", "D2"][: len(shape)]
    header = "\n".join(f'{n} = pl.dynamic("{n}")' for n in names)
    axes = list(range(-len(shape), len(shape)))
    body = [f"a{i} = pl.dim(x, {ax})" for i, ax in enumerate(axes)]
    body.append(f"return {', '.join(f'a{i}' for i in range(len(axes)))}")
    ret = f"tuple[{', '.join('pl.Scalar[pl.INDEX]' for _ in axes)}]"
    text = source([f"x: {ttype(names, dt)}"], ret, body, header)
    x = data.draw(arrays(dt, shape), "x")
    got = interpreter.run(program(text), "k", x)
    got = got if isinstance(got, tuple) else (got,)
    assert list(got) == [shape[a] for a in axes], (shape, got)
    assert all(type(v) is int for v in got)


# --------------------------------------------------------------------------- the tile level


@covers("load", "store", "tile.set_validshape", "tile.move", "create_tile")
@PROPS
@given(win=window(), dt=num_dt, data=st.data())
def test_load_move_store_round_trip(win, dt, data):
    """load (valid_shape) -> move to Mat -> set_validshape -> assemble into a fresh tile ->
    store: the valid box arrives, the rest of the destination keeps what it held (strict mode
    included: only written, valid data is ever read)."""
    (r, c), (h, w), (r0, c0), (vh, vw) = win
    x = data.draw(arrays(dt, (r, c)), "x")
    init = data.draw(arrays(dt, (h, w)), "init")
    sh, sw = data.draw(st.integers(0, vh), "sh"), data.draw(st.integers(0, vw), "sw")
    idx = ", ".join(f"{n}: pl.Scalar[pl.INDEX]" for n in ("r0", "c0", "vh", "vw", "sh", "sw"))
    text = source(
        [f"x: {ttype((r, c), dt)}", f"dst: pl.InOut[{ttype((h, w), dt)}]", idx],
        ttype((h, w), dt),
        [
            f"t = pl.load(x, [r0, c0], [{h}, {w}], valid_shape=[vh, vw])",
            "m = pl.tile.move(t, target_memory=pl.MemorySpace.Mat)",
            "s = pl.tile.set_validshape(m, sh, sw)",
            f"e = pl.create_tile([{h}, {w}], dtype=pl.{dt})",
            "e = pl.tile.assemble(e, s, [0, 0])",
            "dst = pl.store(pl.tile.set_validshape(e, sh, sw), [0, 0], dst)",
            "return dst",
        ],
    )
    strict = data.draw(st.booleans())
    got = interpreter.run(program(text), "k", x, init.copy(), r0, c0, vh, vw, sh, sw,
                          strict=strict)  # fmt: skip
    want = as_want(init, dt).copy()
    want[:sh, :sw] = as_want(x, dt)[r0 : r0 + sh, c0 : c0 + sw]
    check(got, want, dt, f"load {win} set_validshape [{sh}, {sw}] store")


@covers("tile.full", "tile.get_block_idx")
@PROPS
@given(shape=shapes2, dt=num_dt, data=st.data())
def test_tile_full_and_block_index(shape, dt, data):
    """tile.full converts its value as pl.full does (round to nearest even); the block index
    is 0 outside pl.spmd, so the full tile lands at row 0."""
    value = data.draw(st.integers(-100, 100), "value") if dt == "INT32" else data.draw(
        st.floats(-1e4, 1e4, allow_nan=False, width=32), "value")  # fmt: skip
    lit = repr(int(value)) if dt == "INT32" else repr(float(value))
    h, w = shape
    text = source(
        [f"dst: pl.InOut[{ttype((h + 1, w), dt)}]"],
        ttype((h + 1, w), dt),
        [
            f"f = pl.tile.full([{h}, {w}], dtype=pl.{dt}, value={lit})",
            "b = pl.tile.get_block_idx()",
            "dst = pl.store(f, [b, 0], dst)",
            "return dst",
        ],
    )
    init = np.zeros((h + 1, w), NP[dt])
    got = interpreter.run(program(text), "k", init, strict=data.draw(st.booleans()))
    if dt == "INT32":
        v = float(value)
    else:  # the value rounded once to dt (RNE), as numerics.md says of full
        v = to_f64(np.array([np.float32(value)], np.float32).astype(NP[dt]), dt)[0]
    want = np.zeros((h + 1, w), np.float64 if dt in FLOATS else np.int64)
    want[:h] = v
    check(got, want, dt, f"tile.full {shape} {dt} {value}")


# --------------------------------------------------------------------------- the op table


# The ops of issue 10 have their property tests in tests/new_ops_checks.py (run by
# test_new_ops.py here and test_new_ops_c.py on the C backend).
COVERED.update(NEW_OPS)


def test_every_op_of_the_table_has_a_property_test():
    # the distributed (pld) ops are tested against NumPy oracles in tests/distributed
    missing = sorted(n for n in set(OPS) - COVERED if not n.startswith("pld."))
    assert not missing, f"ops of pldsl.ops.OPS without a property test here: {missing}"
    unknown = sorted(COVERED - set(OPS))
    assert not unknown, f"property tests name ops the table does not define: {unknown}"
