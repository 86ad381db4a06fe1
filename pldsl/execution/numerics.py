"""Every rounding decision of the pldsl interpreter, in one place.

Dtype names are plain strings ("BF16", "FP32", "INT8", ...) so this module does not depend on
pldsl. The contract (what rounds where, and how exactly) is written up in docs/numerics.md.

Model: values live in their *storage* dtype (BF16 as ml_dtypes.bfloat16, FP32 as float32, ...).
Vector arithmetic widens float operands exactly to float32, computes once in float32 (IEEE,
round-to-nearest-even) and rounds the result once to the result dtype with RNE. Only ``cast``
uses the PyPTO cast modes. Matmul accumulates in float32 (int32 for integer operands).

Conversions are done on integer bit patterns: a value is decomposed into sign, integer
significand ``m`` and exponent ``e`` (value = m * 2**e, exact), rounded once to the target grid,
and re-encoded. That makes float64 -> BF16 a single rounding (ml_dtypes goes through float32
and can double-round) and lets every mode share one rounding kernel.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import ml_dtypes
import numpy as np

# NumPy's floating-point warnings are switched off around every computation here (IEEE specials
# propagate silently). Switching them per op costs more than many a small op; an executor runs
# a whole program inside `quiet()`, which switches them off once for everything inside.
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("pldsl_numerics_quiet", default=False)
_NOTHING = contextlib.nullcontext()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """NumPy floating-point warnings off for the block (once, instead of per op)."""
    with np.errstate(all="ignore"):
        token = _QUIET.set(True)
        try:
            yield
        finally:
            _QUIET.reset(token)


def _ignore() -> contextlib.AbstractContextManager:
    return _NOTHING if _QUIET.get() else np.errstate(all="ignore")


__all__ = [
    "ALL_DTYPES",
    "CAST_MODES",
    "CMP_OPS",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "NumericsError",
    "PRECISIONS",
    "argmax_last",
    "binary",
    "cast",
    "compare",
    "gamma",
    "is_poison",
    "matmul",
    "matmul_acc",
    "matmul_error_bound",
    "pad_value",
    "poison_value",
    "promote",
    "reduce",
    "reduce_error_bound",
    "storage_dtype",
    "unary",
    "wrap_int",
]


class NumericsError(ValueError):
    """A numeric request the interpreter refuses (bad dtype/mode, integer division by zero)."""


FLOAT_DTYPES = frozenset({"BF16", "FP16", "FP32"})
INT_DTYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "INDEX", "TASK_ID"}
)
ALL_DTYPES = FLOAT_DTYPES | INT_DTYPES | {"BOOL"}
# PyPTO's CastMode enum order: none 0, rint 1, round 2, floor 3, ceil 4, trunc 5, odd 6.
CAST_MODES = ("none", "rint", "round", "floor", "ceil", "trunc", "odd")
PRECISIONS = ("bf16", "fp32")

_BF16 = np.dtype(ml_dtypes.bfloat16)
_F32 = np.dtype(np.float32)
_STORAGE = {
    "BF16": _BF16,
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "INDEX": np.dtype(np.int64),
    "TASK_ID": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "BOOL": np.dtype(np.bool_),
}
_STORAGE_OF = {
    (n, p): np.dtype(np.float32) if p == "fp32" and n in ("BF16", "FP16") else dt
    for n, dt in _STORAGE.items()
    for p in PRECISIONS
}
# Bit widths used by promote(); BOOL is 1 bit as in PyPTO's DataType::GetBit.
_BITS = {"BOOL": 1, "INDEX": 64, "BF16": 16, "FP16": 16, "FP32": 32}

# Float formats: (precision p incl. hidden bit, emin, emax, total bits). Same table for sources
# (numpy dtypes) and targets (names).
_FMT_BY_DTYPE = {
    _BF16: (8, -126, 127, 16),
    np.dtype(np.float16): (11, -14, 15, 16),
    np.dtype(np.float32): (24, -126, 127, 32),
    np.dtype(np.float64): (53, -1022, 1023, 64),
}
_UINT_OF_WIDTH = {16: np.uint16, 32: np.uint32, 64: np.uint64}
_U64 = np.uint64


# --------------------------------------------------------------------------------------------
# dtype names
# --------------------------------------------------------------------------------------------


def _name(name: str) -> str:
    # already canonical (every op's common case): no string work
    if type(name) is str and name in ALL_DTYPES:
        return name
    n = str(name).upper()
    if n not in ALL_DTYPES:
        raise NumericsError(f"unknown dtype {name!r}; expected one of {sorted(ALL_DTYPES)}")
    return n


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise NumericsError(f"unknown precision {precision!r}; expected 'bf16' or 'fp32'")
    return precision


_MODE_OF_NAME = {m: "rint" if m == "none" else m for m in CAST_MODES}


def _mode(mode: str | int) -> str:
    if type(mode) is str and mode in _MODE_OF_NAME:  # a mode by name (the common case)
        return _MODE_OF_NAME[mode]
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode < len(CAST_MODES):
        mode = CAST_MODES[mode]
    if mode not in CAST_MODES:
        raise NumericsError(f"unknown cast mode {mode!r}; expected one of {CAST_MODES}")
    return "rint" if mode == "none" else mode  # PyPTO's 'none' is the hardware default, RNE


def storage_dtype(name: str, precision: str = "bf16") -> np.dtype:
    """NumPy dtype that holds a value of dtype `name`.

    precision="fp32" (ideal-precision mode) stores BF16/FP16 as float32, so every rounding
    point to them becomes a no-op and only the kernel's structure is being tested."""
    dt = _STORAGE_OF.get((name, precision))  # every op asks: one lookup for valid requests
    if dt is None:
        n = _name(name)
        dt = _STORAGE_OF[(n, _check_precision(precision))]
    return dt


def _is_float_np(dt: np.dtype) -> bool:
    return dt in _FMT_BY_DTYPE


def promote(a: str, b: str) -> str:
    """PyPTO PromoteDataTypes: equal -> same; float beats int; wider wins; at equal width a
    signed int beats an unsigned one; otherwise lhs (so BF16 + FP16 -> BF16, INDEX + INT64 ->
    INDEX, INT64 + INDEX -> INT64). INDEX is a signed 64-bit integer."""
    a, b = _name(a), _name(b)
    if a == b:
        return a
    fa, fb = a in FLOAT_DTYPES, b in FLOAT_DTYPES
    if fa != fb:
        return a if fa else b
    ba, bb = _bits(a), _bits(b)
    if ba != bb:
        return a if ba > bb else b
    for d in (a, b):
        if d in INT_DTYPES and not d.startswith("U"):
            return d
    return a


def _bits(name: str) -> int:
    return _BITS.get(name) or _STORAGE[name].itemsize * 8


# --------------------------------------------------------------------------------------------
# the rounding kernel: value = m * 2**e (m uint64, e int64) -> n * 2**q, rounded per mode
# --------------------------------------------------------------------------------------------


def _bit_length(m: np.ndarray) -> np.ndarray:
    """Exact bit length of uint64 values. frexp of the float64 value is exact below 2**53;
    above, the conversion may round up to the next power of two, which the check undoes."""
    bl = np.frexp(m.astype(np.float64))[1].astype(np.int64)
    bl = np.minimum(bl, 64)
    over = (bl > 53) & (m < (_U64(1) << np.maximum(bl - 1, 0).astype(_U64)))
    return bl - over


def _round_sig(
    m: np.ndarray, e: np.ndarray, q: np.ndarray, neg: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Round m * 2**(e-q) to an integer n per `mode` (sign given by `neg`).

    Returns (n, inexact). Callers choose q so that an exact left shift cannot overflow."""
    s = q - e  # right-shift amount; <= 0 means the value is already on the grid
    left = np.clip(-s, 0, 63).astype(_U64)
    sr = np.clip(s, 0, 64)
    sr63 = np.minimum(sr, 63).astype(_U64)
    n = np.where(sr >= 64, _U64(0), m >> sr63)
    low = np.where(sr >= 64, ~_U64(0), (_U64(1) << sr63) - _U64(1))
    rem = m & low
    half = _U64(1) << np.clip(sr - 1, 0, 63).astype(_U64)
    # For s > 64, half = 2**(s-1) exceeds any remainder: never a tie, never above half.
    in_range = (s > 0) & (s <= 64)
    above, tie = in_range & (rem > half), in_range & (rem == half)
    inexact = (s > 0) & (rem != 0)
    if mode == "rint":
        up = above | (tie & ((n & _U64(1)) == 1))
    elif mode == "round":
        up = above | tie
    elif mode == "floor":
        up = inexact & neg
    elif mode == "ceil":
        up = inexact & ~neg
    else:  # trunc, odd
        up = np.zeros_like(inexact)
    n = n + up.astype(_U64)
    if mode == "odd":  # truncate, then force the last bit when anything was dropped
        n = n | inexact.astype(_U64)
    return np.where(s <= 0, m << left, n), inexact


def _decompose_float(x: np.ndarray):
    """Split a float array into (neg, m, e, is_nan, is_inf, mantissa field, mantissa bits)."""
    p, emin, _, width = _FMT_BY_DTYPE[x.dtype]
    mbits, bias = p - 1, 1 - emin
    bits = x.view(_UINT_OF_WIDTH[width]).astype(_U64)
    neg = (bits >> _U64(width - 1)) == 1
    expf = ((bits >> _U64(mbits)) & _U64((1 << (width - 1 - mbits)) - 1)).astype(np.int64)
    mant = bits & _U64((1 << mbits) - 1)
    top = (1 << (width - 1 - mbits)) - 1
    is_special = expf == top
    normal = expf > 0
    m = np.where(normal, mant | _U64(1 << mbits), mant)
    e = np.where(normal, expf, 1) - bias - mbits
    m = np.where(is_special, _U64(0), m)
    return neg, m, e, is_special & (mant != 0), is_special & (mant == 0), mant, mbits


def _decompose_int(x: np.ndarray):
    """(neg, |x| as uint64, e=0) for any integer/bool array; |INT64_MIN| = 2**63 fits."""
    if x.dtype.kind == "u" or x.dtype == np.bool_:
        return np.zeros(x.shape, bool), x.astype(_U64), np.zeros(x.shape, np.int64)
    u = x.astype(np.int64).view(_U64)
    neg = x < 0
    return neg, np.where(neg, ~u + _U64(1), u), np.zeros(x.shape, np.int64)


# --------------------------------------------------------------------------------------------
# cast
# --------------------------------------------------------------------------------------------


def cast(
    values: np.ndarray, dst: str, mode: str | int = "round", precision: str = "bf16"
) -> np.ndarray:
    """Convert `values` to dtype `dst` (stored as storage_dtype(dst, precision)).

    mode (PyPTO pl.cast): round = nearest, ties away from zero (PyPTO default); rint/none =
    nearest even; floor; ceil; trunc; odd (truncate, set the last bit if inexact). One rounding
    from the exact input value. Details and edge cases: docs/numerics.md."""
    x = np.asarray(values)
    out_dt = storage_dtype(dst, precision)
    mode = _mode(mode)
    if out_dt is _BF16 and x.dtype is _F32:  # the common narrowing: straight to its kernel
        return _f32_to_bf16(x.reshape(-1), mode).reshape(x.shape)
    if x.dtype == out_dt:
        return x.copy()
    if x.dtype.kind not in "biuf" and not _is_float_np(x.dtype):
        raise NumericsError(f"cannot cast values of numpy dtype {x.dtype}")
    if x.ndim and _is_float_np(out_dt) and _is_float_np(x.dtype) and _widens(x.dtype, out_dt):
        return _widen(x, out_dt)  # exact, any shape: no 1-D copy of a strided view first
    # Work on 1-D arrays: NumPy scalars (0-d results) warn on the intended uint64 wrap-around.
    return _cast_1d(x.reshape(-1), out_dt, mode).reshape(x.shape)


def _cast_1d(x: np.ndarray, out_dt: np.dtype, mode: str) -> np.ndarray:
    if out_dt == np.bool_:
        return x != 0  # nonzero (NaN included) -> True
    if _is_float_np(out_dt) and _is_float_np(x.dtype) and _widens(x.dtype, out_dt):
        return _widen(x, out_dt)
    if out_dt == _BF16 and x.dtype == np.float32:
        return _f32_to_bf16(x, mode)
    if _is_float_np(out_dt):
        return _to_float(x, out_dt, mode)
    if _is_float_np(x.dtype):
        return _float_to_int(x, out_dt, mode)
    return x.astype(out_dt)  # int -> int wraps (two's complement), as C/torch do


def _widens(src: np.dtype, dst: np.dtype) -> bool:
    ps, emin_s, emax_s, _ = _FMT_BY_DTYPE[src]
    pd, emin_d, emax_d, _ = _FMT_BY_DTYPE[dst]
    return ps <= pd and emin_s - ps >= emin_d - pd and emax_s <= emax_d


def _widen(x: np.ndarray, out_dt: np.dtype) -> np.ndarray:
    """Exact widening via NumPy/ml_dtypes; NaNs keep their payload and become quiet."""
    if x.dtype is _BF16 and out_dt is _F32:  # BF16 is FP32's top half: one shift (no rounding)
        y = np.left_shift(x.view(np.uint16), np.uint32(16), dtype=np.uint32).view(np.float32)
    else:
        with _ignore():
            y = x.astype(out_dt)
    nan = np.isnan(y)
    if nan.any():
        p, _, _, width = _FMT_BY_DTYPE[out_dt]
        u = y.view(_UINT_OF_WIDTH[width])
        u[nan] |= 1 << (p - 2)
    return y


def _f32_to_bf16(x: np.ndarray, mode: str) -> np.ndarray:
    """float32 -> BF16 fast path: same exponent range, so rounding is an integer add on the
    low 16 bits; a carry ripples into the exponent, and out of the largest binade into inf.
    NaNs (their bits are patched afterwards) are looked for once; the low half and the sign
    are computed only for the modes that need them."""
    bits = x.view(np.uint32)
    if mode == "rint":  # +0x7FFF, +1 more when the kept half is odd: ties go to even
        r = bits + ((bits >> np.uint32(16)) & np.uint32(1))
        r += np.uint32(0x7FFF)
        r >>= np.uint32(16)
    elif mode == "round":  # +half: ties carry, i.e. away from zero in magnitude
        r = bits + np.uint32(0x8000)
        r >>= np.uint32(16)
    else:
        hi = bits >> np.uint32(16)
        low = bits & np.uint32(0xFFFF)
        if mode in ("floor", "ceil"):
            neg = (bits >> np.uint32(31)) == 1
            r = hi + ((low != 0) & (neg if mode == "floor" else ~neg))
        elif mode == "odd":
            r = hi | (low != 0)
        else:
            r = hi
    nan = np.isnan(x)
    if nan.any():  # quiet NaN, top payload bits kept
        r = np.where(nan, (bits >> np.uint32(16)) | np.uint32(0x40), r)
    return r.astype(np.uint16).view(_BF16)


def _to_float(x: np.ndarray, out_dt: np.dtype, mode: str) -> np.ndarray:
    p, emin, emax, width = _FMT_BY_DTYPE[out_dt]
    mbits, bias = p - 1, 1 - emin
    if _is_float_np(x.dtype):
        neg, m, e, is_nan, is_inf, mant, src_mbits = _decompose_float(x)
    else:
        neg, m, e = _decompose_int(x)
        is_nan = is_inf = np.zeros(x.shape, bool)
    big_e = _bit_length(m) - 1 + e  # exponent of the leading bit
    q = np.maximum(big_e, emin) - (p - 1)  # quantum of the target grid at this magnitude
    n, _ = _round_sig(m, e, q, neg, mode)
    # (q + p - 2 + bias) << mbits, plus n, encodes normals, subnormals and a carry into the
    # next binade alike (n carries the hidden bit, which bumps the exponent field by one).
    bits = ((q + p - 2 + bias) << mbits) + n.astype(np.int64)
    bits = np.where(n == 0, 0, bits)
    inf_bits = ((1 << (width - 1 - mbits)) - 1) << mbits
    overflow = bits >= inf_bits
    # Directed modes only reach infinity when they round away from zero (IEEE 754 7.4).
    to_inf = {"rint": True, "round": True, "trunc": False, "odd": False}.get(mode)
    if to_inf is None:
        to_inf = neg if mode == "floor" else ~neg
    bits = np.where(overflow, np.where(to_inf, inf_bits, inf_bits - 1), bits)
    bits = np.where(is_inf, inf_bits, bits)
    if is_nan.any():
        bits = np.where(is_nan, _nan_bits(mant, src_mbits, mbits, inf_bits), bits)
    bits = bits.astype(_U64) | (neg.astype(_U64) << _U64(width - 1))
    return bits.astype(_UINT_OF_WIDTH[width]).view(out_dt)


def _nan_bits(mant: np.ndarray, src_mbits: int, mbits: int, inf_bits: int) -> np.ndarray:
    """Quiet NaN keeping the top payload bits (what hardware converters do)."""
    if src_mbits >= mbits:
        payload = mant >> _U64(src_mbits - mbits)
    else:
        payload = mant << _U64(mbits - src_mbits)
    return inf_bits | (1 << (mbits - 1)) | payload.astype(np.int64)


def _float_to_int(x: np.ndarray, out_dt: np.dtype, mode: str) -> np.ndarray:
    """Round to an integer per mode, then saturate; NaN -> 0, ±inf -> the range ends."""
    neg, m, e, is_nan, is_inf, _, _ = _decompose_float(x)
    huge = is_inf | (_bit_length(m) - 1 + e >= 64)
    m = np.where(huge, _U64(0), m)
    n, _ = _round_sig(m, e, np.zeros_like(e), neg, mode)
    info = np.iinfo(out_dt)
    pos_max, neg_max = _U64(info.max), _U64(-info.min)
    n = np.where(neg, np.minimum(n, neg_max), np.minimum(n, pos_max))
    n = np.where(huge, np.where(neg, neg_max, pos_max), n)
    n = np.where(is_nan, _U64(0), n)
    signed = np.where(neg, ~n + _U64(1), n)  # two's complement; in range by construction
    if out_dt.kind == "u":
        return signed.astype(out_dt)
    return signed.view(np.int64).astype(out_dt)


# --------------------------------------------------------------------------------------------
# elementwise
# --------------------------------------------------------------------------------------------


def _f32(x: np.ndarray) -> np.ndarray:
    """Widen to float32 (exact for BF16/FP16; ints and float64 round to nearest even)."""
    x = np.asarray(x)
    dt = x.dtype
    if dt is _F32 or dt == np.float32:
        return x
    if dt is _BF16 and x.ndim:  # the common widening, exact: straight to its kernel
        return _widen(x, _F32)
    return cast(x, "FP32", "rint")


def _round_result(r: np.ndarray, result: str, precision: str) -> np.ndarray:
    """A freshly computed float32 (or int32 matmul) result, rounded once (RNE) to `result`
    (C-contiguous, as `cast` returns). Nothing else holds `r`, so when it is already stored as
    `result` it is returned without the copy `cast` would make."""
    r = np.asarray(r)
    if r.dtype == storage_dtype(result, precision) and r.flags.c_contiguous:
        return r
    return cast(r, result, "rint", precision)


def _ieee_max(a: np.ndarray, b: np.ndarray, is_max: bool) -> np.ndarray:
    """IEEE 754-2019 maximum/minimum: NaN propagates and -0 < +0 (NumPy leaves the sign of
    max(+0, -0) to operand order)."""
    r = np.maximum(a, b) if is_max else np.minimum(a, b)
    zz = (a == 0) & (b == 0)
    if zz.any():
        sa, sb = np.signbit(a), np.signbit(b)
        # two zeros of one sign: NumPy returns one of them, already right
        if (zz & (sa != sb)).any():
            neg_zero = (sa & sb) if is_max else (sa | sb)
            r = np.where(zz, np.where(neg_zero, -np.float32(0), np.float32(0)), r)
    return r.astype(np.float32)


_F_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "maximum": lambda a, b: _ieee_max(a, b, True),
    "minimum": lambda a, b: _ieee_max(a, b, False),
    # C fmodf: exact in float32 (the remainder of two floats is representable), sign of a.
    "fmod": np.fmod,
    # exp(a - b) (col_expand_expdif): the float32 difference, then exp as `unary` computes it.
    "expdif": lambda a, b: np.exp((a - b).astype(np.float64)).astype(np.float32),
    # b broadcast over a's shape (row_expand / col_expand): only the RNE rounding to `result`.
    "rhs": lambda a, b: np.array(np.broadcast_arrays(a, b)[1]),
}
_F_UNARY = {
    "neg": np.negative,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "recip": lambda x: np.float32(1) / x,
    # rsqrt is two correctly rounded float32 ops, 1/sqrt(x): not a fused rsqrt.
    "rsqrt": lambda x: np.float32(1) / np.sqrt(x),
    # NumPy's float32 exp/log are SIMD code whose last bit differs between CPUs; float64 then
    # one RNE rounding gives the correctly rounded float32 result, the same on every machine
    # except for inputs (~2**-28) whose float64 value sits within an ulp of a float32 tie.
    "exp": lambda x: np.exp(x.astype(np.float64)).astype(np.float32),
    "log": lambda x: np.log(x.astype(np.float64)).astype(np.float32),
    "relu": lambda x: np.where(np.isnan(x) | (x > 0), x, np.float32(0)),
}


def binary(
    op: str, a: np.ndarray, b: np.ndarray, result: str, precision: str = "bf16"
) -> np.ndarray:
    """Elementwise a `op` b (NumPy broadcasting) with result dtype `result`.

    Float result: operands widened to float32, one IEEE float32 op, one RNE rounding to
    `result`. Integer result: two's-complement wrap-around; div truncates toward zero."""
    res = _name(result)
    a, b = np.asarray(a), np.asarray(b)
    if res in FLOAT_DTYPES:
        if op not in _F_BINARY:
            raise NumericsError(f"unknown binary op {op!r}; expected one of {sorted(_F_BINARY)}")
        with _ignore():
            r = _F_BINARY[op](_f32(a), _f32(b))
        return _round_result(np.asarray(r, np.float32), res, precision)
    return _int_binary(op, a, b, res)


def _int_binary(op: str, a: np.ndarray, b: np.ndarray, res: str) -> np.ndarray:
    if res == "BOOL" or _is_float_np(a.dtype) or _is_float_np(b.dtype):
        raise NumericsError(
            f"integer {op!r} needs integer operands and an integer result, got "
            f"{a.dtype}, {b.dtype} -> {res}"
        )
    dt = _STORAGE[res]
    ai, bi = a.astype(dt), b.astype(dt)  # wrap into the result type first
    with _ignore():
        if op == "add":
            return ai + bi
        if op == "sub":
            return ai - bi
        if op == "mul":
            return ai * bi
        if op == "maximum":
            return np.maximum(ai, bi)
        if op == "minimum":
            return np.minimum(ai, bi)
        if op == "div":
            return _int_div_trunc(ai, bi)
        if op == "fmod":
            return _int_fmod(ai, bi)
        if op == "rhs":
            return np.broadcast_arrays(ai, bi)[1].copy()
    raise NumericsError(f"unknown binary op {op!r}; expected one of {sorted(_F_BINARY)}")


def _int_div_trunc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C-style division (toward zero); MIN / -1 wraps to MIN; x / 0 is an error."""
    if np.any(b == 0):
        raise NumericsError("integer division by zero in elementwise div")
    q = np.floor_divide(a, b)
    fix = (a - q * b != 0) & ((a < 0) != (b < 0))
    return (q + fix.astype(q.dtype)).astype(a.dtype)


def _int_fmod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C-style remainder (sign of the dividend); x % 0 is an error; MIN % -1 = 0."""
    if np.any(b == 0):
        raise NumericsError("integer division by zero in elementwise fmods")
    r = np.fmod(a.astype(np.int64), b.astype(np.int64))
    return r.astype(a.dtype)


CMP_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
_CMP = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}


def compare(op: str, a: np.ndarray, b: np.ndarray, result: str, precision: str = "bf16"):
    """1 where `a op b` holds, else 0, in dtype `result` (NumPy broadcasting).

    Float result: operands widened to float32 as in `binary`, IEEE comparison (NaN: only
    `ne` holds; -0 == +0). Integer result: operands wrapped into `result` first, exact."""
    res = _name(result)
    if op not in _CMP:
        raise NumericsError(f"unknown comparison {op!r}; expected one of {list(CMP_OPS)}")
    a, b = np.asarray(a), np.asarray(b)
    if res in FLOAT_DTYPES:
        with np.errstate(all="ignore"):
            hit = _CMP[op](_f32(a), _f32(b))
    else:
        dt = _STORAGE[res]
        hit = _CMP[op](a.astype(dt), b.astype(dt))
    return hit.astype(storage_dtype(res, precision))


def argmax_last(a: np.ndarray) -> np.ndarray:
    """INT32 index of the first maximum along the last axis, kept as an axis of size 1. NaN
    counts as the maximum (the first NaN wins); -0 and +0 tie (the first wins)."""
    a = np.asarray(a)
    if _is_float_np(a.dtype):
        a = _f32(a)
    return np.argmax(a, axis=-1).astype(np.int32)[..., None]


def wrap_int(value: int, dtype: str) -> int:
    """A Python int wrapped (two's complement) into integer dtype `dtype`, as scalar
    arithmetic on integer Scalars does; INDEX is not wrapped, BOOL is 0/1."""
    n = _name(dtype)
    if n == "INDEX":
        return int(value)
    if n == "BOOL":
        return int(bool(value))
    if n not in INT_DTYPES:
        raise NumericsError(f"wrap_int needs an integer dtype, got {dtype!r}")
    bits = _bits(n)
    value = int(value) % (1 << bits)
    return value - (1 << bits) if not n.startswith("U") and value >> (bits - 1) else value


def unary(op: str, a: np.ndarray, result: str, precision: str = "bf16") -> np.ndarray:
    """Elementwise op(a): float32 compute, one RNE rounding to `result` (see binary).

    Integer results support neg, abs (wrapping: abs(MIN) = MIN) and relu only."""
    res = _name(result)
    a = np.asarray(a)
    if res in FLOAT_DTYPES:
        if op not in _F_UNARY:
            raise NumericsError(f"unknown unary op {op!r}; expected one of {sorted(_F_UNARY)}")
        with _ignore():
            r = _F_UNARY[op](_f32(a))
        return _round_result(np.asarray(r, np.float32), res, precision)
    if res == "BOOL" or _is_float_np(a.dtype) or op not in ("neg", "abs", "relu"):
        raise NumericsError(f"unary {op!r} is not defined for {a.dtype} -> {res}")
    ai = a.astype(_STORAGE[res])
    with _ignore():
        if op == "neg":
            return -ai
        if op == "abs":
            return np.where(ai < 0, -ai, ai)
        return np.maximum(ai, ai.dtype.type(0))


# --------------------------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------------------------

U_FP32 = 2.0**-24


def gamma(n: int, u: float = U_FP32) -> float:
    """Higham's gamma_n = n*u / (1 - n*u): bound on n chained float roundings."""
    return math.inf if n * u >= 1 else n * u / (1 - n * u)


_REDUCERS = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod}


def reduce(op: str, a: np.ndarray, axis: int, result: str, precision: str = "bf16") -> np.ndarray:
    """sum/max/min/prod over `axis` with keepdims=True.

    Floats: float32 accumulation in NumPy's order (pairwise along contiguous axes), then one
    RNE rounding to `result`. sum/prod are NOT bit-exact across implementations with another
    order; reduce_error_bound gives the bound. max/min are exact (NaN propagates) and, like
    the elementwise maximum/minimum, order zeros as IEEE 754-2019 does (-0 < +0).
    Integers: wrap-around in the result dtype."""
    res = _name(result)
    if op not in _REDUCERS:
        raise NumericsError(f"unknown reduction {op!r}; expected one of {sorted(_REDUCERS)}")
    a = np.asarray(a)
    if a.shape[axis] == 0 and op in ("max", "min"):
        raise NumericsError(f"{op} over an empty axis has no value")
    if res in FLOAT_DTYPES:
        x = _f32(a)
        with _ignore():
            r = _REDUCERS[op](x, axis=axis, keepdims=True)
        if op in ("max", "min"):
            r = _signed_zero_extreme(op, x, r, axis)
        return _round_result(np.asarray(r, np.float32), res, precision)
    if res == "BOOL" or _is_float_np(a.dtype):
        raise NumericsError(f"integer {op!r} needs integer input and result, got {a.dtype}")
    dt = _STORAGE[res]
    wide = np.uint64 if dt.kind == "u" else np.int64
    ai = a.astype(dt)
    with _ignore():
        if op in ("sum", "prod"):  # mod 2**64 then mod 2**bits == wrap in the result dtype
            return _REDUCERS[op](ai, axis=axis, keepdims=True, dtype=wide).astype(dt)
        return _REDUCERS[op](ai, axis=axis, keepdims=True)


def _signed_zero_extreme(op: str, x: np.ndarray, r: np.ndarray, axis: int) -> np.ndarray:
    """np.max/np.min pick a zero's sign by element order; IEEE 754-2019 says max(-0, +0) = +0
    and min(-0, +0) = -0. A zero extreme is +0 for max if any +0 is in the lane, else -0."""
    zero = r == 0
    if not zero.any():  # no zero extreme (the common case): nothing to decide
        return r
    want_negative = op == "min"
    # np.max / np.min return one of the lane's elements, so a zero extreme of the sign IEEE
    # prefers (+0 for max, -0 for min) is in the lane and already the answer
    if not (zero & (np.signbit(r) != want_negative)).any():
        return r
    zeros_of_sign = (x == 0) & (np.signbit(x) == want_negative)
    has = np.any(zeros_of_sign, axis=axis, keepdims=True)
    sign = np.float32(-0.0) if want_negative else np.float32(0.0)
    other = np.float32(0.0) if want_negative else np.float32(-0.0)
    return np.where(r == 0, np.where(has, sign, other), r).astype(np.float32)


def reduce_error_bound(
    op: str, a: np.ndarray, axis: int, result: str = "FP32", precision: str = "bf16"
) -> np.ndarray:
    """Elementwise bound on |reduce(...) - exact| for float inputs (float64 array).

    sum: (gamma_n + u_out(1 + gamma_n)) * sum|x|  (any summation order, u = 2**-24);
    prod: the same with prod|x|; max/min: u_out * max|x|. Absolute terms cover float32
    underflow in sum and the result's subnormal spacing. Not valid if anything overflows, nor
    for prod when a partial product underflows."""
    x = np.abs(_f32(a).astype(np.float64))
    n = x.shape[axis]
    u_out, floor_out = _out_rounding(result, precision)
    g = gamma(n)
    if op == "sum":
        mag, g_op = np.sum(x, axis=axis, keepdims=True), g
    elif op == "prod":
        mag, g_op = np.prod(x, axis=axis, keepdims=True), g
    elif op in ("max", "min"):
        mag, g_op = np.max(x, axis=axis, keepdims=True), 0.0
    else:
        raise NumericsError(f"unknown reduction {op!r}")
    fp32_floor = n * 2.0**-149 if op == "sum" else 0.0
    return (g_op + u_out * (1 + g_op)) * mag * (1 + 2 * n * 2.0**-53) + fp32_floor + floor_out


def _out_rounding(result: str, precision: str) -> tuple[float, float]:
    """(relative, absolute) error of the final rounding from float32 to `result`: u of the
    format and half its smallest subnormal; (0, 0) when the result stays float32."""
    dt = storage_dtype(result, precision)
    if dt == np.float32 or not _is_float_np(dt):
        return 0.0, 0.0
    p, emin = _FMT_BY_DTYPE[dt][:2]
    return 2.0**-p, 2.0 ** (emin - p)


# --------------------------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------------------------


def _t(x: np.ndarray, trans: bool) -> np.ndarray:
    x = np.asarray(x)
    return np.swapaxes(x, -1, -2) if trans else x


def _is_int_operand(x: np.ndarray) -> bool:
    return x.dtype.kind in "iub"


def _matmul_raw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 product (BLAS, order unspecified) or exact-then-wrapped int32 product."""
    if _is_int_operand(a) and _is_int_operand(b):
        # int64 products/sums wrap mod 2**64; the int32 view is then the wrapped int32 result.
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(np.int32)
    with _ignore():
        return np.matmul(_f32(a), _f32(b))


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    out_dtype: str,
    a_trans: bool = False,
    b_trans: bool = False,
    precision: str = "bf16",
) -> np.ndarray:
    """a @ b: operands widened exactly to float32 (BF16 products are exact in FP32), float32
    accumulation, one RNE rounding to out_dtype. Integer operands accumulate in int32."""
    raw = _matmul_raw(_t(a, a_trans), _t(b, b_trans))
    return _round_result(raw, out_dtype, precision)


def matmul_acc(
    acc: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    acc_dtype: str = "FP32",
    a_trans: bool = False,
    b_trans: bool = False,
    precision: str = "bf16",
) -> np.ndarray:
    """acc + a @ b: the float32 product plus acc in one more float32 add (hardware adds the
    products into L0C one by one; both are within matmul_error_bound(..., acc=acc)), then one
    RNE rounding to acc_dtype. Integer: int32 wrap-around."""
    raw = _matmul_raw(_t(a, a_trans), _t(b, b_trans))
    if raw.dtype == np.int32:
        with _ignore():
            total = np.asarray(acc).astype(np.int32) + raw
    else:
        with _ignore():
            total = _f32(acc) + raw
    return _round_result(total, acc_dtype, precision)


def matmul_error_bound(
    a: np.ndarray,
    b: np.ndarray,
    out_dtype: str = "FP32",
    a_trans: bool = False,
    b_trans: bool = False,
    precision: str = "bf16",
    acc: np.ndarray | None = None,
) -> np.ndarray:
    """Bound on |matmul(a, b) - exact a@b| (float64, elementwise), valid for any summation
    order: (gamma_K + u_out(1 + gamma_K)) * (|a| @ |b|) + underflow terms, where K is the
    contraction length (+1 with acc) and u_out the unit roundoff of out_dtype (0 for FP32)."""
    a64 = np.abs(_f32(_t(a, a_trans)).astype(np.float64))
    b64 = np.abs(_f32(_t(b, b_trans)).astype(np.float64))
    k = a64.shape[-1]
    with _ignore():  # inf operands give an inf (or NaN) bound, not a warning
        mag = a64 @ b64
    if acc is not None:
        k += 1
        mag = mag + np.abs(_f32(acc).astype(np.float64))
    u_out, floor_out = _out_rounding(out_dtype, precision)
    g = gamma(k)
    return (g + u_out * (1 + g)) * mag * (1 + 2 * k * 2.0**-53) + k * 2.0**-149 + floor_out


# --------------------------------------------------------------------------------------------
# padding, poison
# --------------------------------------------------------------------------------------------


def pad_value(pad: str, dtype: str, precision: str = "bf16") -> np.generic:
    """Fill value of a pad mode: zero/null -> 0, min -> -inf (floats) / iinfo.min (ints),
    max -> +inf / iinfo.max. BOOL: min -> False, max -> True."""
    dt = storage_dtype(dtype, precision)
    kind = str(pad).lower().rsplit(".", 1)[-1]  # accept "PadValue.min" spellings
    if kind in ("zero", "null"):
        return dt.type(0)
    if kind not in ("min", "max"):
        raise NumericsError(f"unknown pad value {pad!r}; expected zero, null, min or max")
    if dt == np.bool_:
        return np.bool_(kind == "max")
    if _is_float_np(dt):
        return dt.type(-np.inf if kind == "min" else np.inf)
    info = np.iinfo(dt)
    return dt.type(info.min if kind == "min" else info.max)


# Quiet NaNs with payloads that no arithmetic produces by default (default NaNs are 0x7FC0...
# / 0xFFC0...), so a poisoned value is recognisable in a dump.
_POISON_BITS = {np.dtype(np.float32): 0x7FC0DEAD, _BF16: 0x7FDE, np.dtype(np.float16): 0x7EDE}


def poison_value(dtype: str, precision: str = "bf16") -> np.generic:
    """Strict-mode filler for undefined memory: a NaN with a distinctive payload for floats
    (FP32 0x7FC0DEAD, BF16 0x7FDE, FP16 0x7EDE), iinfo.min for ints, True for BOOL. Only a
    marker: definedness itself is tracked with masks (pldsl/execution/memory.py)."""
    dt = storage_dtype(dtype, precision)
    if dt == np.bool_:
        return np.bool_(True)
    if _is_float_np(dt):
        width = _FMT_BY_DTYPE[dt][3]
        return np.array(_POISON_BITS[dt], _UINT_OF_WIDTH[width]).view(dt)[()]
    return dt.type(np.iinfo(dt).min)


def is_poison(values: np.ndarray, dtype: str, precision: str = "bf16") -> np.ndarray:
    """Elementwise: does the value carry poison_value's exact bit pattern?"""
    x = np.asarray(values)
    pv = poison_value(dtype, precision)
    if _is_float_np(x.dtype) and x.dtype == pv.dtype:
        width = _FMT_BY_DTYPE[x.dtype][3]
        u = _UINT_OF_WIDTH[width]
        return x.view(u) == np.array(pv).view(u)
    return x == pv
