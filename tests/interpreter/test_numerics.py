"""Tests for interpreter/numerics.py.

The oracles here are independent of numerics.py: exact rationals (fractions.Fraction) for
rounding, ml_dtypes / NumPy float16 conversions for round-to-nearest-even, plain np.float32
arithmetic for the elementwise contract and a float64 product for matmul.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pldsl.execution import numerics as N

BF16 = np.dtype(ml_dtypes.bfloat16)
MODES = ("round", "rint", "floor", "ceil", "trunc", "odd")
# precision p (with hidden bit), emin, emax
FMT = {"BF16": (8, -126, 127), "FP16": (11, -14, 15), "FP32": (24, -126, 127)}
NP_OF = {"BF16": BF16, "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32)}
UINT_OF = {2: np.uint16, 4: np.uint32, 8: np.uint64}
FAST = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------------------------------------
# independent oracles
# ---------------------------------------------------------------------------------------------


def p2(k: int) -> Fraction:
    return Fraction(2) ** k


def oracle_float(x: Fraction, fmt: str, mode: str):
    """Round the exact rational x into `fmt` per `mode`: returns a Fraction or ±math.inf."""
    if x == 0:
        return Fraction(0)
    p, emin, emax = FMT[fmt]
    sign = -1 if x < 0 else 1
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while p2(e) > a:
        e -= 1
    while p2(e + 1) <= a:
        e += 1
    q = max(e, emin) - p + 1  # spacing of representable values around a is 2**q
    scaled = a / p2(q)
    lo = math.floor(scaled)  # lo*2**q <= a < (lo+1)*2**q: the two neighbours
    frac = scaled - lo
    half = Fraction(1, 2)
    away_from_zero = {
        "trunc": False,
        "floor": frac != 0 and sign < 0,
        "ceil": frac != 0 and sign > 0,
        "rint": frac > half or (frac == half and lo % 2 == 1),
        "round": frac >= half,
        "odd": frac != 0 and lo % 2 == 0,
    }[mode]
    v = (lo + away_from_zero) * p2(q)
    max_finite = (2**p - 1) * p2(emax - p + 1)
    if v > max_finite:
        to_inf = mode in ("rint", "round") or (mode, sign) in (("floor", -1), ("ceil", 1))
        return sign * math.inf if to_inf else sign * max_finite
    return sign * v


def oracle_int(x: Fraction, mode: str) -> int:
    """Round a rational to an integer per mode, by hand with math.floor/ceil/trunc."""
    t = math.trunc(x)
    if mode == "floor":
        return math.floor(x)
    if mode == "ceil":
        return math.ceil(x)
    if mode == "trunc":
        return t
    if mode == "rint":
        return round(x)  # Fraction.__round__ is round-half-even
    if mode == "round":  # half away from zero
        f = math.floor(abs(x) + Fraction(1, 2))
        return f if x >= 0 else -f
    return t if t == x or t % 2 else t + (1 if x > 0 else -1)  # odd


def bits_of(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).view(UINT_OF[np.asarray(a).dtype.itemsize])


def from_bits(v: int, dtype) -> np.ndarray:
    dt = np.dtype(dtype)
    return np.array([v], UINT_OF[dt.itemsize]).view(dt)


def f32(v: int) -> np.ndarray:
    return from_bits(v, np.float32)


def check_against_oracle(src: np.ndarray, fmt: str, mode: str) -> None:
    out = N.cast(src, fmt, mode)
    assert out.dtype == NP_OF[fmt]
    for x, y in zip(src.ravel().tolist(), out.astype(np.float64).ravel().tolist()):
        expected = oracle_float(Fraction(x), fmt, mode)
        if isinstance(expected, float):
            assert y == expected, (x, fmt, mode, y, expected)
        else:
            assert Fraction(y) == expected, (x, fmt, mode, y, expected)
            assert math.copysign(1, y) == math.copysign(1, x), "sign (also of zero) is kept"


def check_nan(src: np.ndarray, out: np.ndarray) -> None:
    """NaN in, quiet NaN out, same sign."""
    nan = np.isnan(src)
    assert np.array_equal(np.isnan(out.astype(np.float32)), nan)
    o = bits_of(out)[nan].astype(np.uint64)
    width = out.dtype.itemsize * 8
    p = FMT[{BF16: "BF16", np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32"}[out.dtype]][
        0
    ]
    assert np.all((o >> (p - 2)) & 1 == 1), "quiet bit set"
    assert np.array_equal(o >> (width - 1) == 1, np.signbit(src[nan]))


# ---------------------------------------------------------------------------------------------
# storage, promotion
# ---------------------------------------------------------------------------------------------


def test_storage_dtypes():
    assert N.storage_dtype("BF16") == BF16
    assert N.storage_dtype("FP16") == np.float16
    assert N.storage_dtype("FP32") == np.float32
    assert N.storage_dtype("INDEX") == np.int64
    assert N.storage_dtype("UINT16") == np.uint16
    assert N.storage_dtype("BOOL") == np.bool_
    assert N.storage_dtype("BF16", "fp32") == np.float32
    assert N.storage_dtype("FP16", "fp32") == np.float32
    assert N.storage_dtype("INT8", "fp32") == np.int8
    assert N.FLOAT_DTYPES == {"BF16", "FP16", "FP32"}
    assert "INDEX" in N.INT_DTYPES and "BOOL" not in N.INT_DTYPES
    with pytest.raises(N.NumericsError):
        N.storage_dtype("FP8")
    with pytest.raises(N.NumericsError):
        N.storage_dtype("FP32", "fp64")
    with pytest.raises(N.NumericsError):
        N.cast(np.zeros(2, np.float32), "BF16", "nearest")


@pytest.mark.parametrize(
    "a,b,want",
    [
        ("FP32", "FP32", "FP32"),
        ("FP32", "INT32", "FP32"),
        ("INT32", "FP32", "FP32"),
        ("INT8", "BF16", "BF16"),
        ("INT32", "INT64", "INT64"),
        ("FP16", "FP32", "FP32"),
        ("BF16", "FP32", "FP32"),
        ("UINT32", "INT32", "INT32"),
        ("INT32", "UINT32", "INT32"),
        ("UINT8", "INT16", "INT16"),
        ("BF16", "FP16", "BF16"),  # same width floats: lhs, as PyPTO
        ("FP16", "BF16", "FP16"),
        ("INDEX", "INT32", "INDEX"),
        ("INDEX", "INT64", "INDEX"),
        ("INT64", "INDEX", "INT64"),
        ("UINT64", "INDEX", "INDEX"),
        ("BOOL", "INT8", "INT8"),
        ("BOOL", "FP32", "FP32"),
    ],
)
def test_promote(a, b, want):
    assert N.promote(a, b) == want


# ---------------------------------------------------------------------------------------------
# float -> float casts: hand-worked bit patterns
# ---------------------------------------------------------------------------------------------

# fp32 bits -> {mode: expected bf16 bits}
BF16_CASES = {
    # exactly halfway between 0x3F80 (1.0) and 0x3F81
    0x3F808000: dict(
        round=0x3F81, rint=0x3F80, floor=0x3F80, ceil=0x3F81, trunc=0x3F80, odd=0x3F81
    ),
    0xBF808000: dict(
        round=0xBF81, rint=0xBF80, floor=0xBF81, ceil=0xBF80, trunc=0xBF80, odd=0xBF81
    ),
    # halfway between 0x3F81 and 0x3F82: ties-away and ties-even agree
    0x3F818000: dict(
        round=0x3F82, rint=0x3F82, floor=0x3F81, ceil=0x3F82, trunc=0x3F81, odd=0x3F81
    ),
    0xBF818000: dict(
        round=0xBF82, rint=0xBF82, floor=0xBF82, ceil=0xBF81, trunc=0xBF81, odd=0xBF81
    ),
    # just above / below a tie
    0x3F808001: dict(
        round=0x3F81, rint=0x3F81, floor=0x3F80, ceil=0x3F81, trunc=0x3F80, odd=0x3F81
    ),
    0x3F807FFF: dict(
        round=0x3F80, rint=0x3F80, floor=0x3F80, ceil=0x3F81, trunc=0x3F80, odd=0x3F81
    ),
    # odd: inexact results take the odd neighbour; exact values stay
    0x3F800001: dict(
        round=0x3F80, rint=0x3F80, floor=0x3F80, ceil=0x3F81, trunc=0x3F80, odd=0x3F81
    ),
    0x3F810001: dict(
        round=0x3F81, rint=0x3F81, floor=0x3F81, ceil=0x3F82, trunc=0x3F81, odd=0x3F81
    ),
    0x3F800000: {m: 0x3F80 for m in MODES},
    # FP32 max: rounds to inf only where IEEE would (nearest modes, ceil); others saturate
    0x7F7FFFFF: dict(
        round=0x7F80, rint=0x7F80, floor=0x7F7F, ceil=0x7F80, trunc=0x7F7F, odd=0x7F7F
    ),
    0xFF7FFFFF: dict(
        round=0xFF80, rint=0xFF80, floor=0xFF80, ceil=0xFF7F, trunc=0xFF7F, odd=0xFF7F
    ),
    # largest BF16 + just under half an ulp: stays finite under nearest modes
    0x7F7F7FFF: dict(
        round=0x7F7F, rint=0x7F7F, floor=0x7F7F, ceil=0x7F80, trunc=0x7F7F, odd=0x7F7F
    ),
    0x7F7F8000: dict(
        round=0x7F80, rint=0x7F80, floor=0x7F7F, ceil=0x7F80, trunc=0x7F7F, odd=0x7F7F
    ),
    # FP32 subnormals map onto BF16 subnormals (same exponent range)
    0x00000001: dict(
        round=0x0000, rint=0x0000, floor=0x0000, ceil=0x0001, trunc=0x0000, odd=0x0001
    ),
    0x80000001: dict(
        round=0x8000, rint=0x8000, floor=0x8001, ceil=0x8000, trunc=0x8000, odd=0x8001
    ),
    0x00008000: dict(
        round=0x0001, rint=0x0000, floor=0x0000, ceil=0x0001, trunc=0x0000, odd=0x0001
    ),
    0x00018000: dict(
        round=0x0002, rint=0x0002, floor=0x0001, ceil=0x0002, trunc=0x0001, odd=0x0001
    ),
    0x00010000: {m: 0x0001 for m in MODES},
    # largest subnormal + half: carries into the smallest normal
    0x007F8000: dict(
        round=0x0080, rint=0x0080, floor=0x007F, ceil=0x0080, trunc=0x007F, odd=0x007F
    ),
    # specials
    0x00000000: {m: 0x0000 for m in MODES},
    0x80000000: {m: 0x8000 for m in MODES},
    0x7F800000: {m: 0x7F80 for m in MODES},
    0xFF800000: {m: 0xFF80 for m in MODES},
    0x7FC0DEAD: {m: 0x7FC0 for m in MODES},  # payload's top bits kept
    0x7F800001: {m: 0x7FC0 for m in MODES},  # signalling NaN becomes quiet
    0xFFA00000: {m: 0xFFE0 for m in MODES},  # sign and top payload bit kept, quiet bit set
}


@pytest.mark.parametrize("src", sorted(BF16_CASES))
def test_fp32_to_bf16_hand_worked(src):
    for mode, want in BF16_CASES[src].items():
        got = int(bits_of(N.cast(f32(src), "BF16", mode))[0])
        assert got == want, f"{src:#010x} {mode}: got {got:#06x}, want {want:#06x}"


def test_mode_aliases():
    x = f32(0x3F808000)
    assert bits_of(N.cast(x, "BF16", "none"))[0] == 0x3F80  # none == rint
    assert bits_of(N.cast(x, "BF16"))[0] == 0x3F81  # default is round (ties away)
    assert bits_of(N.cast(x, "BF16", 2))[0] == 0x3F81  # PyPTO's CastMode integers
    assert bits_of(N.cast(x, "BF16", 1))[0] == 0x3F80


FP16_CASES = [
    # (value, mode, expected float value)
    (65504.0, "rint", 65504.0),  # max finite
    (65519.99, "rint", 65504.0),  # below the max + half ulp
    (65520.0, "rint", math.inf),  # max + half ulp: ties go to even = inf
    (65520.0, "round", math.inf),
    (65520.0, "trunc", 65504.0),
    (65520.0, "odd", 65504.0),
    (1e6, "trunc", 65504.0),
    (1e6, "floor", 65504.0),
    (1e6, "ceil", math.inf),
    (-1e6, "floor", -math.inf),
    (-1e6, "ceil", -65504.0),
    (-1e6, "trunc", -65504.0),
    (2.0**-24, "rint", 2.0**-24),  # smallest subnormal, exact
    (2.0**-25, "rint", 0.0),  # tie between 0 and the smallest subnormal
    (2.0**-25, "round", 2.0**-24),
    (2.0**-25, "ceil", 2.0**-24),
    (2.0**-25, "odd", 2.0**-24),
    (3 * 2.0**-25, "rint", 2 * 2.0**-24),  # tie between subnormals 1 and 2
    (3 * 2.0**-25, "round", 2 * 2.0**-24),
    (5 * 2.0**-25, "rint", 2 * 2.0**-24),
    (5 * 2.0**-25, "round", 3 * 2.0**-24),
    ((1023.5) * 2.0**-24, "rint", 2.0**-14),  # carries into the smallest normal
    ((1023.5) * 2.0**-24, "trunc", 1023 * 2.0**-24),
    (1 + 2.0**-11, "rint", 1.0),  # FP16 tie at 1.0
    (1 + 2.0**-11, "round", 1 + 2.0**-10),
    (1e-10, "rint", 0.0),
    (-1e-10, "floor", -(2.0**-24)),
]


@pytest.mark.parametrize("value,mode,want", FP16_CASES)
@pytest.mark.parametrize("src_dtype", [np.float32, np.float64])
def test_to_fp16_hand_worked(value, mode, want, src_dtype):
    got = N.cast(np.array([value], src_dtype), "FP16", mode)
    assert got.dtype == np.float16
    assert float(got[0]) == want


def test_no_double_rounding_from_float64():
    # 1 + 2**-8 + 2**-40 lies just above the BF16 tie 1 + 2**-8: one rounding goes up.
    # (Going through float32 first would land exactly on the tie and round to even, down.)
    x = np.array([1 + 2.0**-8 + 2.0**-40, -(1 + 2.0**-8 + 2.0**-40)])
    assert bits_of(N.cast(x, "BF16", "rint")).tolist() == [0x3F81, 0xBF81]
    # float64 -> FP32 and FP16 likewise
    y = np.array([1 + 2.0**-24 + 2.0**-50])
    assert float(N.cast(y, "FP32", "rint")[0]) == 1 + 2.0**-23
    z = np.array([1 + 2.0**-11 + 2.0**-40])
    assert float(N.cast(z, "FP16", "rint")[0]) == 1 + 2.0**-10


def test_nan_inf_zero_everywhere():
    src64 = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0])
    for src in (src64, src64.astype(np.float32), src64.astype(BF16), src64.astype(np.float16)):
        for fmt in ("BF16", "FP16", "FP32"):
            for mode in MODES:
                out = N.cast(src, fmt, mode)
                check_nan(src.astype(np.float64), out)
                o = out.astype(np.float64)
                assert o[2] == np.inf and o[3] == -np.inf
                assert o[4] == 0 and not np.signbit(o[4])
                assert o[5] == 0 and np.signbit(o[5])


def test_nan_payload_and_fp16_nan():
    assert bits_of(N.cast(f32(0x7F800001), "FP16", "rint"))[0] == 0x7E00
    assert bits_of(N.cast(f32(0xFFC0DEAD), "FP16", "rint"))[0] == 0xFE06
    assert bits_of(N.cast(from_bits(0x7C01, np.float16), "FP32"))[0] == 0x7FC02000
    assert bits_of(N.cast(from_bits(0x7F81, BF16), "FP32"))[0] == 0x7FC10000


# ---------------------------------------------------------------------------------------------
# float -> float casts: against ml_dtypes / numpy (rint) and the exact oracle (all modes)
# ---------------------------------------------------------------------------------------------


def structured_fp32_bits() -> np.ndarray:
    """Every BF16 upper half with low halves at, around and away from the tie, plus random."""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    rnd = np.random.default_rng(1).integers(0, 1 << 32, 200_000, dtype=np.uint32)
    return np.concatenate([(hi[:, None] | lows[None, :]).ravel(), rnd])


def compare_rint(src: np.ndarray, fmt: str, reference: np.ndarray) -> None:
    out = N.cast(src, fmt, "rint")
    nan = np.isnan(src)
    assert np.array_equal(bits_of(out)[~nan], bits_of(reference)[~nan])
    with np.errstate(invalid="ignore"):  # signalling NaNs
        check_nan(src.astype(np.float64), out)


def test_rint_matches_ml_dtypes_bulk():
    src = structured_fp32_bits().view(np.float32)
    with np.errstate(all="ignore"):
        ref = src.astype(BF16)
    compare_rint(src, "BF16", ref)


def test_rint_matches_numpy_float16_bulk():
    rng = np.random.default_rng(2)
    rnd = rng.integers(0, 1 << 32, 300_000, dtype=np.uint32)
    # float32 exponents around the FP16 range (subnormals to overflow), ties at the 13th bit
    exp = rng.integers(95, 146, 200_000, dtype=np.uint32) << 23
    mant = rng.integers(0, 1 << 10, 200_000, dtype=np.uint32) << 13
    low = rng.choice(np.array([0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF], np.uint32), 200_000)
    sign = rng.integers(0, 2, 200_000, dtype=np.uint32) << 31
    src = np.concatenate([rnd, sign | exp | mant | low]).view(np.float32)
    with np.errstate(all="ignore"):
        ref = src.astype(np.float16)
    compare_rint(src, "FP16", ref)


@FAST
@given(st.integers(0, 2**32 - 1))
def test_rint_matches_references_per_pattern(b):
    src = f32(b)
    with np.errstate(all="ignore"):
        compare_rint(src, "BF16", src.astype(BF16))
        compare_rint(src, "FP16", src.astype(np.float16))


def finite(arr: np.ndarray) -> bool:
    return bool(np.isfinite(arr).all())


@FAST
@given(st.integers(0, 2**32 - 1))
def test_fp32_all_modes_match_oracle(b):
    src = f32(b)
    if finite(src):
        for fmt in ("BF16", "FP16"):
            for mode in MODES:
                check_against_oracle(src, fmt, mode)


@FAST
@given(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF]))
def test_fp32_ties_all_modes_match_oracle(hi, lo):
    src = f32((hi << 16) | lo)
    if finite(src):
        for mode in MODES:
            check_against_oracle(src, "BF16", mode)


@FAST
@given(st.integers(0, 2**64 - 1))
def test_fp64_all_modes_match_oracle(b):
    src = from_bits(b, np.float64)
    if finite(src):
        for fmt in ("BF16", "FP16", "FP32"):
            for mode in MODES:
                check_against_oracle(src, fmt, mode)


@FAST
@given(
    st.integers(-140, 130),
    st.integers(0, 2**52 - 1),
    st.booleans(),
)
def test_fp64_in_range_all_modes_match_oracle(exp, mant, neg):
    # float64 bit patterns mostly fall outside BF16/FP16 range; build in-range ones too.
    src = np.array([math.ldexp(1 + mant * 2.0**-52, exp) * (-1 if neg else 1)])
    for fmt in ("BF16", "FP16", "FP32"):
        for mode in MODES:
            check_against_oracle(src, fmt, mode)


def test_bulk_random_all_modes_match_oracle():
    rng = np.random.default_rng(3)
    src = (rng.standard_normal(300) * np.exp2(rng.integers(-30, 30, 300))).astype(np.float32)
    for fmt in ("BF16", "FP16"):
        for mode in MODES:
            check_against_oracle(src, fmt, mode)


def test_generic_path_agrees_with_bf16_fast_path():
    # float32 -> BF16 has a dedicated routine; float64 inputs holding the same values go
    # through the general one. Both must agree everywhere, for every mode.
    src = structured_fp32_bits().view(np.float32)
    nan = np.isnan(src)
    for mode in MODES:
        a = bits_of(N.cast(src, "BF16", mode))
        with np.errstate(all="ignore"):
            b = bits_of(N.cast(src.astype(np.float64), "BF16", mode))
        assert np.array_equal(a[~nan], b[~nan]), mode


def test_widening_is_exact():
    allbf = np.arange(1 << 16, dtype=np.uint16).view(BF16)
    out = N.cast(allbf, "FP32")
    nan = np.isnan(allbf.astype(np.float32))
    want = np.arange(1 << 16, dtype=np.uint32) << 16
    assert np.array_equal(bits_of(out)[~nan], want[~nan])
    with np.errstate(invalid="ignore"):
        check_nan(allbf.astype(np.float32).astype(np.float64), out)
    # round trip back is the identity for every mode
    for mode in MODES:
        assert np.array_equal(bits_of(N.cast(out, "BF16", mode))[~nan], bits_of(allbf)[~nan])
    allh = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    outh = N.cast(allh, "FP32")
    nanh = np.isnan(allh)
    assert np.array_equal(outh[~nanh], allh[~nanh].astype(np.float32))


def test_ideal_precision_mode():
    x = np.random.default_rng(4).standard_normal(100).astype(np.float32)
    for fmt in ("BF16", "FP16"):
        for mode in MODES:
            out = N.cast(x, fmt, mode, precision="fp32")
            assert out.dtype == np.float32 and np.array_equal(bits_of(out), bits_of(x))
    # a float64 value still rounds once, to float32
    y = np.array([1 + 2.0**-24 + 2.0**-50])
    assert float(N.cast(y, "BF16", "rint", precision="fp32")[0]) == 1 + 2.0**-23
    r = N.binary("add", x, x, "BF16", precision="fp32")
    assert r.dtype == np.float32 and np.array_equal(r, x + x)


# ---------------------------------------------------------------------------------------------
# float <-> int, int <-> int, bool
# ---------------------------------------------------------------------------------------------

INT_RANGES = {
    "INT8": (-128, 127),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "INDEX": (-(2**63), 2**63 - 1),
    "UINT8": (0, 255),
    "UINT64": (0, 2**64 - 1),
}


@pytest.mark.parametrize(
    "x,mode,want",
    [
        (2.5, "round", 3),
        (2.5, "rint", 2),
        (3.5, "rint", 4),
        (-2.5, "round", -3),
        (-2.5, "rint", -2),
        (0.5, "round", 1),
        (0.5, "rint", 0),
        (-0.5, "round", -1),
        (-0.5, "rint", 0),
        (-1.2, "floor", -2),
        (-1.2, "ceil", -1),
        (-1.7, "trunc", -1),
        (2.2, "odd", 3),
        (3.7, "odd", 3),
        (4.0, "odd", 4),
        (-2.2, "odd", -3),
        (300.0, "round", 127),
        (-300.0, "round", -128),
        (np.inf, "round", 127),
        (-np.inf, "trunc", -128),
        (np.nan, "round", 0),
    ],
)
def test_float_to_int8_hand_worked(x, mode, want):
    for src_dtype in (np.float32, np.float64, BF16):
        got = N.cast(np.array([x]).astype(src_dtype), "INT8", mode)
        assert got.dtype == np.int8 and int(got[0]) == want


def test_float_to_wide_int_saturation():
    big = np.array([2.0**63, -(2.0**63), 2.0**64, 1e19, -1.0, 1e300, -1e300])
    assert N.cast(big, "INT64").tolist() == [
        2**63 - 1,
        -(2**63),
        2**63 - 1,
        2**63 - 1,
        -1,
        2**63 - 1,
        -(2**63),
    ]
    assert N.cast(big, "UINT64").tolist() == [2**63, 0, 2**64 - 1, 10**19, 0, 2**64 - 1, 0]
    assert N.cast(np.array([-0.4, -0.6]), "UINT8", "round").tolist() == [0, 0]
    assert N.cast(np.array([-0.4]), "UINT8", "floor").tolist() == [0]


@FAST
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.floats(-1e4, 1e4).map(lambda v: round(v * 2) / 2),  # many exact .5 ties
    ),
    st.sampled_from(sorted(INT_RANGES)),
)
def test_float_to_int_matches_oracle(x, dst):
    lo, hi = INT_RANGES[dst]
    with np.errstate(over="ignore"):
        srcs = (np.array([x]), np.array([x], np.float32))
    for src in srcs:
        xv = float(src[0])
        if not math.isfinite(xv):
            continue
        for mode in MODES:
            want = min(max(oracle_int(Fraction(xv), mode), lo), hi)
            assert int(N.cast(src, dst, mode)[0]) == want, (xv, dst, mode)


@FAST
@given(st.integers(-(2**63), 2**64 - 1))
def test_int_to_float_matches_oracle(v):
    src = np.array([v], np.int64 if v < 2**63 else np.uint64)
    for fmt in ("BF16", "FP16", "FP32"):
        for mode in MODES:
            if v:
                check_against_oracle(src, fmt, mode)
            else:
                assert float(N.cast(src, fmt, mode)[0]) == 0.0


def test_int_to_float_hand_worked():
    x = np.array([16777217, -16777217, 16777219, 2**63 - 1, -(2**63)], np.int64)
    assert N.cast(x, "FP32", "round").tolist() == [
        16777218.0,
        -16777218.0,
        16777220.0,
        2.0**63,
        -(2.0**63),
    ]
    assert N.cast(x, "FP32", "rint").tolist()[:3] == [16777216.0, -16777216.0, 16777220.0]
    assert N.cast(x, "FP32", "trunc").tolist()[:4] == [
        16777216.0,
        -16777216.0,
        16777218.0,
        2.0**63 - 2**39,
    ]
    assert N.cast(np.array([70000], np.int32), "FP16", "rint")[0] == np.inf
    assert N.cast(np.array([70000], np.int32), "FP16", "trunc")[0] == 65504
    assert N.cast(np.array([0], np.int32), "BF16").view(np.uint16)[0] == 0


def test_int_to_int_wraps_and_bool():
    x = np.array([300, -129, 2**31], np.int64)
    assert N.cast(x, "INT8").tolist() == [44, 127, 0]
    assert N.cast(x, "UINT8").tolist() == [44, 127, 0]
    assert N.cast(np.array([-1], np.int32), "UINT32").tolist() == [2**32 - 1]
    assert N.cast(np.array([0.0, -0.0, 0.1, np.nan], np.float32), "BOOL").tolist() == [
        False,
        False,
        True,
        True,
    ]
    assert N.cast(np.array([0, 2], np.int8), "BOOL").tolist() == [False, True]
    b = np.array([True, False])
    assert N.cast(b, "FP32").tolist() == [1.0, 0.0]
    assert N.cast(b, "BF16").astype(np.float32).tolist() == [1.0, 0.0]
    assert N.cast(b, "INT32").tolist() == [1, 0]


# ---------------------------------------------------------------------------------------------
# elementwise
# ---------------------------------------------------------------------------------------------

F32_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


def round_like_hardware(r32: np.ndarray, fmt: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        return r32.astype(NP_OF[fmt])  # ml_dtypes / numpy: round to nearest even


def assert_same_values(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    g, w = bits_of(got), bits_of(want)
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(got.astype(np.float32)), nan)
    assert np.array_equal(g[~nan], w[~nan])


def random_f32_bits(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 1 << 32, n, dtype=np.uint32).view(np.float32)
    tame = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(np.float32)
    return np.concatenate([raw, tame])


@pytest.mark.parametrize("op", sorted(F32_OPS))
@pytest.mark.parametrize("fmt", ["BF16", "FP16", "FP32"])
def test_binary_float_bit_exact(op, fmt):
    a, b = random_f32_bits(20_000, 5), random_f32_bits(20_000, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the contract: no floating-point warnings escape
        got = N.binary(op, a, b, fmt)
    with np.errstate(all="ignore"):
        want = round_like_hardware(F32_OPS[op](a, b), fmt)
    assert_same_values(got, want)
    # BF16 operands: widened exactly, same contract
    ab, bb = round_like_hardware(a, "BF16"), round_like_hardware(b, "BF16")
    with np.errstate(all="ignore"):
        want = round_like_hardware(F32_OPS[op](ab.astype(np.float32), bb.astype(np.float32)), fmt)
    assert_same_values(N.binary(op, ab, bb, fmt), want)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.sampled_from(sorted(F32_OPS)))
def test_binary_float_bit_exact_per_pattern(x, y, op):
    a, b = f32(x), f32(y)
    with np.errstate(all="ignore"):
        r = F32_OPS[op](a, b)
    for fmt in ("BF16", "FP16", "FP32"):
        assert_same_values(N.binary(op, a, b, fmt), round_like_hardware(r, fmt))


def test_binary_ieee_specials():
    one, zero = np.float32([1.0]), np.float32([0.0])
    assert N.binary("div", one, zero, "FP32")[0] == np.inf
    assert N.binary("div", -one, zero, "FP32")[0] == -np.inf
    assert np.isnan(N.binary("div", zero, zero, "FP32")[0])
    assert np.isnan(N.binary("sub", np.float32([np.inf]), np.float32([np.inf]), "BF16")[0])
    big = np.float32([3e38])
    assert N.binary("add", big, big, "FP32")[0] == np.inf
    assert (
        N.binary("mul", np.float32([1e30]), np.float32([1e10]), "BF16").astype(float)[0] == np.inf
    )


def test_maximum_minimum():
    a = np.float32([1.0, np.nan, 2.0, 0.0, -0.0, -0.0, 0.0])
    b = np.float32([2.0, 1.0, np.nan, -0.0, 0.0, -0.0, 0.0])
    mx = N.binary("maximum", a, b, "FP32")
    mn = N.binary("minimum", a, b, "FP32")
    assert mx[0] == 2.0 and mn[0] == 1.0
    assert np.isnan(mx[1]) and np.isnan(mx[2]) and np.isnan(mn[1]) and np.isnan(mn[2])
    assert np.signbit(mx[3:]).tolist() == [False, False, True, False]  # -0 < +0
    assert np.signbit(mn[3:]).tolist() == [True, True, True, False]


UNARY_REF = {
    "neg": lambda x: -x,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "recip": lambda x: np.float32(1) / x,
    "rsqrt": lambda x: np.float32(1) / np.sqrt(x),
    "relu": lambda x: np.where(x > 0, x, np.where(np.isnan(x), x, np.float32(0))),
}


@pytest.mark.parametrize("op", sorted(UNARY_REF))
@pytest.mark.parametrize("fmt", ["BF16", "FP16", "FP32"])
def test_unary_float_bit_exact(op, fmt):
    x = random_f32_bits(20_000, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = N.unary(op, x, fmt)
    with np.errstate(all="ignore"):
        want = round_like_hardware(np.asarray(UNARY_REF[op](x), np.float32), fmt)
    assert_same_values(got, want)


def ulp32(v: float) -> Fraction:
    return Fraction(float(np.spacing(np.float32(abs(v)))))


@pytest.mark.parametrize("op,fn", [("exp", math.exp), ("log", math.log)])
def test_exp_log_correctly_rounded_float32(op, fn):
    rng = np.random.default_rng(8)
    x = rng.uniform(-80, 80, 2000) if op == "exp" else np.exp2(rng.uniform(-120, 120, 2000))
    x = x.astype(np.float32)
    got = N.unary(op, x, "FP32")
    for xi, gi in zip(x.tolist(), got.tolist()):
        ref = fn(xi)  # float64 libm, < 1 ulp of float64
        assert abs(Fraction(gi) - Fraction(ref)) <= ulp32(gi) / 2 + Fraction(abs(ref)) * p2(-51)
    # BF16 result: that float32 value rounded once more with RNE
    assert_same_values(N.unary(op, x, "BF16"), round_like_hardware(got, "BF16"))


def test_unary_specials():
    x = np.float32([-1.0, 0.0, -0.0, np.inf, -np.inf])
    assert np.isnan(N.unary("sqrt", x, "FP32")[0])
    assert N.unary("rsqrt", x, "FP32")[1] == np.inf
    assert N.unary("recip", x, "FP32")[2] == -np.inf
    assert N.unary("log", x, "FP32")[1] == -np.inf
    assert np.isnan(N.unary("log", x, "FP32")[0])
    assert N.unary("exp", x, "FP32")[3:].tolist() == [np.inf, 0.0]
    assert not np.signbit(N.unary("relu", np.float32([-0.0]), "FP32")[0])


def test_integer_elementwise():
    i8 = np.array([127, -128, 100], np.int8)
    one = np.array([1, 1, 2], np.int8)
    assert N.binary("add", i8, one, "INT8").tolist() == [-128, -127, 102]
    assert N.binary("sub", i8, one, "INT8").tolist() == [126, 127, 98]
    assert N.binary("mul", i8, one, "INT8").tolist() == [127, -128, -56]
    a = np.array([7, -7, 7, -7, -(2**31), 0], np.int32)
    b = np.array([2, 2, -2, -2, -1, 5], np.int32)
    assert N.binary("div", a, b, "INT32").tolist() == [3, -3, -3, 3, -(2**31), 0]
    assert N.unary("neg", np.array([-128], np.int8), "INT8").tolist() == [-128]
    assert N.unary("abs", np.array([-128, -3], np.int8), "INT8").tolist() == [-128, 3]
    assert N.unary("relu", np.array([-3, 4], np.int32), "INT32").tolist() == [0, 4]
    with pytest.raises(N.NumericsError, match="division by zero"):
        N.binary("div", a, np.zeros(6, np.int32), "INT32")
    with pytest.raises(N.NumericsError):
        N.unary("exp", a, "INT32")


@FAST
@given(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1).filter(bool),
    st.sampled_from(["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT32", "UINT64"]),
)
def test_integer_ops_wrap_like_twos_complement(x, y, dst):
    bits = np.dtype(N.storage_dtype(dst)).itemsize * 8
    signed = not dst.startswith("U")

    def wrap(v: int) -> int:
        v %= 2**bits
        return v - 2**bits if signed and v >= 2 ** (bits - 1) else v

    xa, ya = wrap(x), wrap(y)  # operands as stored in the result type
    a = np.array([x], np.int64).astype(N.storage_dtype(dst))
    b = np.array([y], np.int64).astype(N.storage_dtype(dst))
    assert int(N.binary("add", a, b, dst)[0]) == wrap(xa + ya)
    assert int(N.binary("mul", a, b, dst)[0]) == wrap(xa * ya)
    assert int(N.binary("sub", a, b, dst)[0]) == wrap(xa - ya)
    if ya:
        q = abs(xa) // abs(ya) * (1 if (xa < 0) == (ya < 0) else -1)  # toward zero
        assert int(N.binary("div", a, b, dst)[0]) == wrap(q)


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["BF16", "FP32"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reduce_sum_within_bound(fmt, axis):
    rng = np.random.default_rng(9)
    x = round_like_hardware((rng.standard_normal((64, 300)) * 10).astype(np.float32), "BF16")
    got = N.reduce("sum", x, axis, fmt)
    assert got.dtype == NP_OF[fmt] and got.shape == np.sum(x, axis=axis, keepdims=True).shape
    x64 = x.astype(np.float64)
    exact = np.apply_along_axis(math.fsum, axis, x64)
    exact = np.expand_dims(exact, axis)
    bound = N.reduce_error_bound("sum", x, axis, fmt)
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= bound)
    # and the bound is not vacuous: at most ~ (n u + u_out) sum|x|
    n = x.shape[axis]
    u_out = 0.0 if fmt == "FP32" else 2.0**-8
    mag = np.sum(np.abs(x64), axis=axis, keepdims=True)
    assert np.all(bound <= 1.01 * (n * 2.0**-24 + u_out) * mag + 1e-30)


def test_reduce_max_min_prod_and_ints():
    x = np.float32([[1.0, -3.0, 2.5], [np.nan, 1.0, 0.0]])
    assert N.reduce("max", x, 1, "FP32")[0, 0] == 2.5
    assert N.reduce("min", x, 1, "FP32")[0, 0] == -3.0
    assert np.isnan(N.reduce("max", x, 1, "FP32")[1, 0])
    assert N.reduce("prod", x, 1, "FP32")[0, 0] == -7.5
    assert N.reduce("sum", x, 0, "FP32").shape == (1, 3)
    i8 = np.array([[100, 100, 100]], np.int8)
    assert N.reduce("sum", i8, 1, "INT8").tolist() == [[44]]  # 300 wraps
    assert N.reduce("sum", i8, 1, "INT32").tolist() == [[300]]
    assert N.reduce("max", i8, 0, "INT8").tolist() == [[100, 100, 100]]
    rng = np.random.default_rng(10)
    y = rng.uniform(0.5, 2.0, (4, 50)).astype(np.float32)
    got = N.reduce("prod", y, 1, "FP32").astype(np.float64)
    exact = np.array([[float(math.prod(Fraction(v) for v in row))] for row in y.tolist()])
    assert np.all(np.abs(got - exact) <= N.reduce_error_bound("prod", y, 1, "FP32"))
    with pytest.raises(N.NumericsError):
        N.reduce("max", np.zeros((2, 0), np.float32), 1, "FP32")


def _ieee_extreme(vals: list, is_max: bool) -> tuple[bool, float, bool]:
    """(is NaN, value, sign bit) of IEEE 754-2019 maximum/minimum over `vals` (NaN wins;
    -0 < +0), from plain Python floats."""
    if any(math.isnan(v) for v in vals):
        return True, 0.0, False
    best = max(vals) if is_max else min(vals)
    if best == 0:  # the zero of the preferred sign when the row holds one
        want_neg = not is_max
        has = any(v == 0 and (math.copysign(1, v) < 0) == want_neg for v in vals)
        return False, 0.0, want_neg if has else not want_neg
    return False, best, best < 0


@FAST
@given(
    st.lists(
        st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, math.nan]), min_size=1, max_size=6),
        min_size=1,
        max_size=5,
    ).filter(lambda rows: len({len(r) for r in rows}) == 1)
)
def test_reduce_max_min_order_zeros_as_ieee(rows):
    x = np.array(rows, np.float32)
    for op in ("max", "min"):
        got = N.reduce(op, x, 1, "FP32")[:, 0]
        for row, g in zip(rows, got.tolist()):
            nan, value, neg = _ieee_extreme(row, op == "max")
            assert math.isnan(g) == nan, (op, row)
            if not nan:
                assert g == value and (math.copysign(1, g) < 0) == neg, (op, row, g)
    for op in ("maximum", "minimum"):  # elementwise, column 0 against column -1
        got = N.binary(op, x[:, 0], x[:, -1], "FP32").tolist()
        for row, g in zip(rows, got):
            nan, value, neg = _ieee_extreme([row[0], row[-1]], op == "maximum")
            assert math.isnan(g) == nan, (op, row)
            if not nan:
                assert g == value and (math.copysign(1, g) < 0) == neg, (op, row, g)


# ---------------------------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------------------------


def bf16_matrix(rng, shape) -> np.ndarray:
    return round_like_hardware(rng.standard_normal(shape).astype(np.float32), "BF16")


@pytest.mark.parametrize("out", ["FP32", "BF16", "FP16"])
@pytest.mark.parametrize("mkn", [(16, 64, 16), (33, 257, 7), (1, 1024, 64)])
def test_matmul_within_bound(out, mkn):
    m, k, n = mkn
    rng = np.random.default_rng(m * k * n)
    a, b = bf16_matrix(rng, (m, k)), bf16_matrix(rng, (k, n))
    got = N.matmul(a, b, out)
    assert got.dtype == NP_OF[out] and got.shape == (m, n)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    ref_err = 2 * k * 2.0**-53 * mag  # the float64 reference is not exact either
    bound = N.matmul_error_bound(a, b, out)
    assert np.all(np.abs(got.astype(np.float64) - ref) <= bound + ref_err)
    u_out = {"FP32": 0.0, "BF16": 2.0**-8, "FP16": 2.0**-11}[out]
    assert np.all(bound <= 1.01 * (k * 2.0**-24 + u_out) * mag + 1e-6)
    # result is the float32 product rounded once with RNE
    p32 = a.astype(np.float32) @ b.astype(np.float32)
    assert np.max(np.abs(got.astype(np.float64) - p32)) <= np.max(u_out * np.abs(p32)) + 1e-30


def test_matmul_transposes_and_precision():
    rng = np.random.default_rng(11)
    a, b = bf16_matrix(rng, (8, 32)), bf16_matrix(rng, (32, 5))
    base = N.matmul(a, b, "FP32")
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    assert np.allclose(N.matmul(at, b, "FP32", a_trans=True), base, rtol=1e-6, atol=1e-6)
    assert np.allclose(
        N.matmul(at, bt, "FP32", a_trans=True, b_trans=True), base, rtol=1e-6, atol=1e-6
    )
    ideal = N.matmul(a, b, "BF16", precision="fp32")
    assert ideal.dtype == np.float32 and np.array_equal(ideal, base)


def test_matmul_int8_exact():
    rng = np.random.default_rng(12)
    a = rng.integers(-128, 128, (6, 500), dtype=np.int8)
    b = rng.integers(-128, 128, (500, 4), dtype=np.int8)
    got = N.matmul(a, b, "INT32")
    want = [
        [sum(int(a[i, t]) * int(b[t, j]) for t in range(500)) for j in range(4)] for i in range(6)
    ]
    assert got.dtype == np.int32 and got.tolist() == want
    acc = np.full((6, 4), 7, np.int32)
    assert N.matmul_acc(acc, a, b, "INT32").tolist() == [[v + 7 for v in r] for r in want]


def test_matmul_acc_within_bound():
    rng = np.random.default_rng(13)
    a, b = bf16_matrix(rng, (16, 128)), bf16_matrix(rng, (128, 16))
    acc = rng.standard_normal((16, 16)).astype(np.float32) * 100
    got = N.matmul_acc(acc, a, b)
    assert got.dtype == np.float32
    ref = acc.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    bound = N.matmul_error_bound(a, b, "FP32", acc=acc)
    assert np.all(np.abs(got - ref) <= bound * 1.0001)


# ---------------------------------------------------------------------------------------------
# pad, poison
# ---------------------------------------------------------------------------------------------


def test_pad_values():
    assert N.pad_value("zero", "BF16") == 0 and N.pad_value("null", "INT8") == 0
    assert N.pad_value("min", "FP32") == -np.inf and N.pad_value("max", "BF16") == np.inf
    assert N.pad_value("min", "BF16").dtype == BF16
    assert N.pad_value("min", "INT32") == -(2**31) and N.pad_value("max", "UINT8") == 255
    assert N.pad_value("PadValue.max", "INDEX") == 2**63 - 1
    assert not N.pad_value("min", "BOOL") and N.pad_value("max", "BOOL")
    assert N.pad_value("min", "BF16", "fp32").dtype == np.float32
    with pytest.raises(N.NumericsError):
        N.pad_value("mean", "FP32")


def test_poison_values():
    p = N.poison_value("FP32")
    assert np.isnan(p) and np.array(p).view(np.uint32) == 0x7FC0DEAD
    q = N.poison_value("BF16")
    assert q.dtype == BF16 and np.array(q).view(np.uint16) == 0x7FDE
    h = N.poison_value("FP16")
    assert np.isnan(h) and np.array(h).view(np.uint16) == 0x7EDE
    assert N.poison_value("BF16", "fp32").dtype == np.float32
    assert N.poison_value("INT8") == -128 and N.poison_value("INDEX") == -(2**63)
    arr = np.array([p, np.nan, 1.0], np.float32)
    assert N.is_poison(arr, "FP32").tolist() == [True, False, False]
    assert N.is_poison(np.array([-128, 0], np.int8), "INT8").tolist() == [True, False]


def test_wrap_int():
    assert N.wrap_int(200, "INT8") == -56 and N.wrap_int(-129, "INT8") == 127
    assert N.wrap_int(-10, "UINT8") == 246 and N.wrap_int(2**32 + 7, "UINT32") == 7
    assert N.wrap_int(2**63, "INT64") == -(2**63) and N.wrap_int(2**70 + 5, "INT64") == 5
    assert N.wrap_int(2**70, "INDEX") == 2**70  # INDEX scalars are Python ints
    assert N.wrap_int(5, "BOOL") == 1 and N.wrap_int(0, "BOOL") == 0
    with pytest.raises(N.NumericsError):
        N.wrap_int(1, "FP32")


def test_results_are_fresh_c_contiguous_arrays():
    """Results already in the result dtype are returned without a copy; they must still be
    fresh (never an operand) and C-contiguous, as a cast's result is."""
    x = np.asfortranarray(np.float32([[1.0, -2.0, 4.0], [3.0, 0.5, 2.0]]))
    results = [N.binary(op, x, x, "FP32") for op in ("add", "maximum")]
    results += [N.unary(op, x, "FP32") for op in ("neg", "abs", "relu", "sqrt")]
    results += [N.reduce("max", x, 1, "FP32"), N.matmul(x, x.T, "FP32")]
    for r in results:
        assert r.dtype == np.float32 and r.flags.c_contiguous and r.flags.writeable
        assert not np.shares_memory(r, x)
