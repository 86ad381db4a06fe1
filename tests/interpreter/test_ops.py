"""Per-op tests: each op of the op table run through a captured kernel on the interpreter,
against goldens written here in plain NumPy (ml_dtypes only as the BF16 storage type and for
its round-to-nearest-even float32 -> BF16 conversion)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from pldsl.interpreter.ops import KERNELS

import pldsl as pl
from pldsl import interpreter
from pldsl.execution.memory import Context, OpFault, TensorValue, wrap_array
from pldsl.ops import OPS

BF = np.dtype(ml_dtypes.bfloat16)
RNG = np.random.default_rng(20260821)


def bf16(x) -> np.ndarray:
    """float32 -> BF16 with round-to-nearest-even (ml_dtypes), the golden's rounding."""
    return np.asarray(x, np.float32).astype(BF)


def rand_bf16(*shape, lo=-2.0, hi=2.0) -> np.ndarray:
    return bf16(RNG.uniform(lo, hi, shape).astype(np.float32))


def f32(x) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


# ------------------------------------------------------------------ the registry


def test_every_op_of_the_table_has_a_kernel():
    missing = sorted(set(OPS) - set(KERNELS))
    assert not missing, f"ops without an interpreter kernel: {missing}"
    extra = sorted(set(KERNELS) - set(OPS))
    assert not extra, f"kernels for ops the table does not define: {extra}"
    for name, k in KERNELS.items():
        assert k.name == name and callable(k.fn) and callable(k.cost)


def test_kernels_run_without_the_machine():
    """The calling convention (ctx, rtype, *args, **attrs) needs no IR: a fast path can call
    kernels directly."""
    ctx = Context()
    a = wrap_array(ctx, f32([[1, 2], [3, 4]]), "FP32", "a")
    r = KERNELS["row_sum"].fn(ctx, None, a)
    assert isinstance(r, TensorValue) and r.shape == (2, 1)
    np.testing.assert_array_equal(r.materialize(ctx), f32([[3], [7]]))
    m = KERNELS["add"].fn(ctx, None, a, 2)  # INDEX scalar keeps the tensor dtype
    assert m.dtype == "FP32"
    np.testing.assert_array_equal(m.materialize(ctx), f32([[3, 4], [5, 6]]))
    with pytest.raises(OpFault) as e:
        KERNELS["reshape"].fn(ctx, None, a, (3,))
    assert e.value.rule == "ShapeMismatch"


# ------------------------------------------------------------------ elementwise

BINARY_NP = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


@pytest.mark.parametrize("op", sorted(BINARY_NP))
def test_binary_bf16(capture, op):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[16, 64], pl.BF16], b: pl.Tensor[[16, 64], pl.BF16]) -> pl.Tensor[[16, 64], pl.BF16]:
                y = pl.{op}(a, b)
                return y
    """)
    a, b = rand_bf16(16, 64), rand_bf16(16, 64, lo=0.5, hi=3.0)
    got = interpreter.run(prog, "k", a, b)
    assert got.dtype == BF
    want = bf16(BINARY_NP[op](f32(a), f32(b)))  # one FP32 op, one RNE rounding
    np.testing.assert_array_equal(f32(got), f32(want))


@pytest.mark.parametrize("op", sorted(BINARY_NP))
def test_binary_fp32_broadcast(capture, op):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[8, 32], pl.FP32], r: pl.Tensor[[8, 1], pl.FP32], c: pl.Tensor[[1, 32], pl.FP32]) -> pl.Tensor[[8, 32], pl.FP32]:
                y = pl.{op}(pl.{op}(a, r), c)
                return y
    """)
    a = RNG.uniform(-2, 2, (8, 32)).astype(np.float32)
    r = RNG.uniform(0.5, 2, (8, 1)).astype(np.float32)
    c = RNG.uniform(0.5, 2, (1, 32)).astype(np.float32)
    got = interpreter.run(prog, "k", a, r, c)
    f = BINARY_NP[op]
    np.testing.assert_array_equal(got, f(f(a, r), c))


def test_binary_scalar_operands(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[4, 8], pl.BF16], s: pl.Scalar[pl.FP32]) -> tuple[pl.Tensor[[4, 8], pl.BF16], pl.Tensor[[4, 8], pl.FP32], pl.Tensor[[4, 8], pl.FP32]]:
                i = pl.add(a, 3)
                f = pl.mul(a, 0.1)
                g = pl.sub(a, s)
                return i, f, g
    """)
    a = rand_bf16(4, 8)
    i, f, g = interpreter.run(prog, "k", a, 0.25)
    # An integer literal is re-stamped to the tensor dtype: BF16 result.
    assert i.dtype == BF
    np.testing.assert_array_equal(f32(i), f32(bf16(f32(a) + np.float32(3))))
    # A float literal is an FP32 constant: BF16 * FP32 promotes to FP32.
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, f32(a) * np.float32(0.1))
    np.testing.assert_array_equal(g, f32(a) - np.float32(0.25))


def test_binary_integer(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[6], pl.INT32], b: pl.Tensor[[6], pl.INT32]) -> tuple[pl.Tensor[[6], pl.INT32], pl.Tensor[[6], pl.INT32]]:
                d = pl.div(a, b)
                m = pl.mul(a, b)
                return d, m
    """)
    a = np.array([7, -7, 7, -7, 2**30, 5], np.int32)
    b = np.array([2, 2, -2, -2, 4, 5], np.int32)
    d, m = interpreter.run(prog, "k", a, b)
    np.testing.assert_array_equal(d, [3, -3, -3, 3, 2**28, 1])  # C division: toward zero
    np.testing.assert_array_equal(m, (a.astype(np.int64) * b).astype(np.int32))


UNARY_NP = {
    "exp": lambda x: np.exp(x.astype(np.float64)).astype(np.float32),
    "log": lambda x: np.log(x.astype(np.float64)).astype(np.float32),
    "sqrt": np.sqrt,
    "rsqrt": lambda x: np.float32(1) / np.sqrt(x),
    "recip": lambda x: np.float32(1) / x,
    "neg": np.negative,
    "abs": np.abs,
    "relu": lambda x: np.maximum(x, np.float32(0)),
}


@pytest.mark.parametrize("op", sorted(UNARY_NP))
@pytest.mark.parametrize("dtype", ["FP32", "BF16"])
def test_unary(capture, op, dtype):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[8, 64], pl.{dtype}]) -> pl.Tensor[[8, 64], pl.{dtype}]:
                y = pl.{op}(a)
                return y
    """)
    positive = op in ("log", "sqrt", "rsqrt")
    a = RNG.uniform(0.01 if positive else -3, 3, (8, 64)).astype(np.float32)
    if dtype == "BF16":
        a = bf16(a)
    got = interpreter.run(prog, "k", a)
    want = UNARY_NP[op](f32(a))
    if dtype == "BF16":
        assert got.dtype == BF
        np.testing.assert_array_equal(f32(got), f32(bf16(want)))
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op,want", [("neg", [3, -4, 0]), ("abs", [3, 4, 0]), ("relu", [0, 4, 0])])
def test_unary_integer(capture, op, want):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[3], pl.INT32]) -> pl.Tensor[[3], pl.INT32]:
                y = pl.{op}(a)
                return y
    """)
    got = interpreter.run(prog, "k", np.array([-3, 4, 0], np.int32))
    np.testing.assert_array_equal(got, want)


def test_elementwise_keeps_the_valid_region(capture):
    """Result valid = lhs valid. Outside it the value is undefined; the default mode reads it
    as the pad value (zero), which a column sum over all rows shows (exp(0 + 1) would not)."""
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[16, 32], pl.FP32], v: pl.Scalar[pl.INDEX]) -> tuple[pl.Tensor[[1, 32], pl.FP32], pl.Tensor[[8, 32], pl.FP32]]:
                t = pl.slice(x, [8, 32], [4, 0], valid_shape=[v, 32])
                y = pl.exp(pl.add(t, 1.0))
                s = pl.col_sum(y)
                z = pl.fillpad(y)
                return s, z
    """)
    x = RNG.uniform(-1, 1, (16, 32)).astype(np.float32)
    s, z = interpreter.run(prog, "k", x, 5)
    want = np.zeros((8, 32), np.float32)
    want[:5] = UNARY_NP["exp"](x[4:9] + np.float32(1))
    np.testing.assert_array_equal(z, want)
    np.testing.assert_allclose(s, want.astype(np.float64).sum(0, keepdims=True), rtol=1e-6)


# ------------------------------------------------------------------ reductions


@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_row_and_col_reductions(capture, op):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[16, 96], pl.FP32]) -> tuple[pl.Tensor[[16, 1], pl.FP32], pl.Tensor[[1, 96], pl.FP32]]:
                r = pl.row_{op}(a)
                c = pl.col_{op}(a)
                return r, c
    """)
    a = RNG.uniform(-2, 2, (16, 96)).astype(np.float32)
    r, c = interpreter.run(prog, "k", a)
    assert r.shape == (16, 1) and c.shape == (1, 96)
    ref = {"sum": np.sum, "max": np.max, "min": np.min}[op]
    want_r = ref(a.astype(np.float64), axis=1, keepdims=True)
    want_c = ref(a.astype(np.float64), axis=0, keepdims=True)
    if op == "sum":  # FP32 accumulation in some order: within n * 2**-24 * sum|a|
        bound_r = 96 * 2.0**-24 * np.abs(a).astype(np.float64).sum(1, keepdims=True)
        bound_c = 16 * 2.0**-24 * np.abs(a).astype(np.float64).sum(0, keepdims=True)
        assert np.all(np.abs(r - want_r) <= bound_r)
        assert np.all(np.abs(c - want_c) <= bound_c)
    else:
        np.testing.assert_array_equal(r, want_r.astype(np.float32))
        np.testing.assert_array_equal(c, want_c.astype(np.float32))


def test_row_reduction_over_partial_columns_uses_the_pad(capture):
    """Default mode: the invalid columns read as the pad value (zero for null), so an
    all-negative row's max is 0; after fillpad(min) it is the true maximum."""
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[4, 64], pl.FP32], n: pl.Scalar[pl.INDEX]) -> tuple[pl.Tensor[[4, 1], pl.FP32], pl.Tensor[[4, 1], pl.FP32], pl.Tensor[[4, 1], pl.FP32]]:
                t = pl.slice(x, [4, 64], [0, 0], valid_shape=[4, n])
                raw = pl.row_max(t)
                padded = pl.fillpad(t, pad_value=pl.PadValue.min)
                good = pl.row_max(padded)
                s = pl.row_sum(t)
                return raw, good, s
    """)
    x = RNG.uniform(-5, -1, (4, 64)).astype(np.float32)
    raw, good, s = interpreter.run(prog, "k", x, 40)
    np.testing.assert_array_equal(raw, np.zeros((4, 1), np.float32))
    np.testing.assert_array_equal(good, x[:, :40].max(1, keepdims=True))
    np.testing.assert_allclose(s, x[:, :40].astype(np.float64).sum(1, keepdims=True), rtol=1e-6)


def test_row_reduction_keeps_valid_rows(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[16, 32], pl.FP32], out: pl.InOut[pl.Tensor[[16, 1], pl.FP32]], v: pl.Scalar[pl.INDEX]) -> pl.Tensor[[16, 1], pl.FP32]:
                t = pl.slice(x, [16, 32], [0, 0], valid_shape=[v, 32])
                s = pl.row_sum(t)
                out = pl.assemble(out, s, [0, 0])
                return out
    """)
    x = RNG.uniform(-1, 1, (16, 32)).astype(np.float32)
    out = np.full((16, 1), 7.0, np.float32)
    interpreter.run(prog, "k", x, out, 5)
    np.testing.assert_allclose(out[:5], x[:5].sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(out[5:], 7.0)  # only the valid rows were assembled


# ------------------------------------------------------------------ expand ops


@pytest.mark.parametrize("fn", ["add", "sub", "mul", "div"])
def test_row_and_col_expand(capture, fn):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[8, 32], pl.FP32], r: pl.Tensor[[8, 1], pl.FP32], c: pl.Tensor[[1, 32], pl.BF16]) -> tuple[pl.Tensor[[8, 32], pl.FP32], pl.Tensor[[8, 32], pl.FP32]]:
                a = pl.row_expand_{fn}(x, r)
                b = pl.col_expand_{fn}(x, c)
                return a, b
    """)
    x = RNG.uniform(-2, 2, (8, 32)).astype(np.float32)
    r = RNG.uniform(0.5, 2, (8, 1)).astype(np.float32)
    c = rand_bf16(1, 32, lo=0.5, hi=2)
    a, b = interpreter.run(prog, "k", x, r, c)
    f = BINARY_NP[fn]
    np.testing.assert_array_equal(a, f(x, np.repeat(r, 32, axis=1)))
    np.testing.assert_array_equal(b, f(x, np.repeat(f32(c), 8, axis=0)))


# ------------------------------------------------------------------ matmul


def _mm_bound(a, b, k):
    return k * 2.0**-24 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))


@pytest.mark.parametrize("a_trans,b_trans", [(False, False), (True, False), (False, True)])
def test_matmul_bf16_fp32_accumulation(capture, a_trans, b_trans):
    ashape = "[64, 16]" if a_trans else "[16, 64]"
    bshape = "[32, 64]" if b_trans else "[64, 32]"
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[{ashape}, pl.BF16], b: pl.Tensor[{bshape}, pl.BF16]) -> pl.Tensor[[16, 32], pl.FP32]:
                y = pl.matmul(a, b, out_dtype=pl.FP32, a_trans={a_trans}, b_trans={b_trans})
                return y
    """)
    a = rand_bf16(*(64, 16) if a_trans else (16, 64))
    b = rand_bf16(*(32, 64) if b_trans else (64, 32))
    got = interpreter.run(prog, "k", a, b)
    A = f32(a).T if a_trans else f32(a)
    B = f32(b).T if b_trans else f32(b)
    exact = A.astype(np.float64) @ B.astype(np.float64)  # BF16 products are exact
    assert got.dtype == np.float32 and got.shape == (16, 32)
    assert np.all(np.abs(got - exact) <= _mm_bound(A, B, 64))


def test_matmul_default_dtype_and_acc(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[8, 32], pl.BF16], b: pl.Tensor[[32, 16], pl.BF16], acc: pl.Tensor[[8, 16], pl.FP32]) -> tuple[pl.Tensor[[8, 16], pl.BF16], pl.Tensor[[8, 16], pl.FP32]]:
                y = pl.matmul(a, b)
                z = pl.matmul_acc(acc, a, b)
                return y, z
    """)
    a, b = rand_bf16(8, 32), rand_bf16(32, 16)
    acc = RNG.uniform(-1, 1, (8, 16)).astype(np.float32)
    y, z = interpreter.run(prog, "k", a, b, acc)
    exact = f32(a).astype(np.float64) @ f32(b).astype(np.float64)
    assert y.dtype == BF  # BF16 x BF16 without out_dtype: the promoted input dtype
    np.testing.assert_allclose(f32(y), exact, rtol=2.0**-8, atol=1e-6)
    bound = _mm_bound(f32(a), f32(b), 33) + 2.0**-24 * np.abs(acc)
    assert np.all(np.abs(z - (exact + acc)) <= bound)


def test_matmul_runtime_contraction_mismatch(capture, line):
    prog = capture("""
        N = pl.dynamic("N")
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[4, N], pl.FP32], b: pl.Tensor[[8, 4], pl.FP32]) -> pl.Tensor[[4, 4], pl.FP32]:
                y = pl.matmul(a, b)
                return y
    """)
    with pytest.raises(pl.RuntimeFault) as e:
        interpreter.run(prog, "k", np.ones((4, 6), np.float32), np.ones((8, 4), np.float32))
    d = e.value.diagnostic
    assert d.rule == "ShapeMismatch" and "K=6" in d.message
    assert d.span.line == line(prog, "pl.matmul")


# ------------------------------------------------------------------ cast


def _cast_prog(capture, src_dtype, dst_dtype, mode):
    return capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[8], pl.{src_dtype}]) -> pl.Tensor[[8], pl.{dst_dtype}]:
                y = pl.cast(a, pl.{dst_dtype}, mode="{mode}")
                return y
    """)


# FP32 inputs around BF16 grid points (BF16 has 8 significand bits: ulp(1) = 2**-7).
_T = 2.0**-8  # half an ulp at 1: a tie
_CAST_IN = np.array(
    [1 + _T, -(1 + _T), 1 + 3 * _T, 1 + 3 * 2.0**-9, -(1 + 3 * 2.0**-9), 2.0, 1 + _T / 2, 0.0],
    np.float32,
)
_U = 2.0**-7
_CAST_WANT = {  # hand-worked
    "round": [1 + _U, -(1 + _U), 1 + 2 * _U, 1 + _U, -(1 + _U), 2.0, 1.0, 0.0],
    "rint": [1.0, -1.0, 1 + 2 * _U, 1 + _U, -(1 + _U), 2.0, 1.0, 0.0],
    "floor": [1.0, -(1 + _U), 1 + _U, 1.0, -(1 + _U), 2.0, 1.0, 0.0],
    "ceil": [1 + _U, -1.0, 1 + 2 * _U, 1 + _U, -1.0, 2.0, 1 + _U, 0.0],
    "trunc": [1.0, -1.0, 1 + _U, 1.0, -1.0, 2.0, 1.0, 0.0],
}


@pytest.mark.parametrize("mode", sorted(_CAST_WANT))
def test_cast_fp32_to_bf16_modes(capture, mode):
    got = interpreter.run(_cast_prog(capture, "FP32", "BF16", mode), "k", _CAST_IN)
    assert got.dtype == BF
    np.testing.assert_array_equal(f32(got), np.array(_CAST_WANT[mode], np.float32))


_INT_IN = np.array([2.5, -2.5, 3.5, -0.5, 1.2, -1.7, 7.0, 0.0], np.float32)
_INT_WANT = {
    "round": [3, -3, 4, -1, 1, -2, 7, 0],
    "rint": [2, -2, 4, 0, 1, -2, 7, 0],
    "floor": [2, -3, 3, -1, 1, -2, 7, 0],
    "ceil": [3, -2, 4, 0, 2, -1, 7, 0],
    "trunc": [2, -2, 3, 0, 1, -1, 7, 0],
}


@pytest.mark.parametrize("mode", sorted(_INT_WANT))
def test_cast_fp32_to_int32_modes(capture, mode):
    got = interpreter.run(_cast_prog(capture, "FP32", "INT32", mode), "k", _INT_IN)
    np.testing.assert_array_equal(got, _INT_WANT[mode])
    assert got.dtype == np.int32


def test_cast_default_mode_is_ties_away(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[8], pl.FP32]) -> pl.Tensor[[8], pl.BF16]:
                y = pl.cast(a, pl.BF16)
                return y
    """)
    got = interpreter.run(prog, "k", _CAST_IN)
    np.testing.assert_array_equal(f32(got), np.array(_CAST_WANT["round"], np.float32))


def test_cast_keeps_valid_region_and_scalar_cast(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[8, 16], pl.BF16], v: pl.Scalar[pl.INDEX]) -> tuple[pl.Tensor[[1, 16], pl.FP32], pl.Scalar[pl.INT32]]:
                t = pl.slice(x, [8, 16], [0, 0], valid_shape=[v, 16])
                f = pl.cast(t, pl.FP32)
                c = pl.col_sum(f)
                s = pl.cast(pl.read(f, [0, 0]), pl.INT32)
                return c, s
    """)
    x = rand_bf16(8, 16, lo=2, hi=9)
    c, s = interpreter.run(prog, "k", x, 3)
    np.testing.assert_allclose(c, f32(x[:3]).astype(np.float64).sum(0, keepdims=True), rtol=1e-6)
    v = float(f32(x[0, 0]))
    assert s == np.int32(np.floor(v + 0.5)) and isinstance(s, np.int32)  # ties away, v > 0


# ------------------------------------------------------------------ reshape, fillpad


def test_reshape_is_a_view_of_the_same_memory(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]]) -> tuple[pl.Tensor[[8, 4], pl.FP32], pl.Tensor[[4, 8], pl.FP32]]:
                r = pl.reshape(x, [8, 4])
                flat = pl.reshape(out, [32])
                src = pl.reshape(x, [32])
                flat = pl.assemble(flat, src, [0])
                return r, out
    """)
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    out = np.zeros((4, 8), np.float32)
    r, o = interpreter.run(prog, "k", x, out)
    np.testing.assert_array_equal(r, x.reshape(8, 4))
    np.testing.assert_array_equal(out, x)  # written through the reshaped view
    np.testing.assert_array_equal(o, x)


def test_reshape_maps_the_valid_region_of_unit_axes(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[1, 64], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[64, 1], pl.FP32]:
                t = pl.slice(x, [1, 64], [0, 0], valid_shape=[1, n])
                r = pl.reshape(t, [64, 1])
                y = pl.add(r, 1.0)
                z = pl.fillpad(y)
                return z
    """)
    x = RNG.uniform(1, 2, (1, 64)).astype(np.float32)
    got = interpreter.run(prog, "k", x, 10)
    want = np.zeros((64, 1), np.float32)
    want[:10, 0] = x[0, :10] + np.float32(1)  # valid region [10, 1] carried through
    np.testing.assert_array_equal(got, want)


def test_reshape_of_unmappable_partial_region_faults():
    ctx = Context()
    x = wrap_array(ctx, np.ones((4, 8), np.float32), "FP32", "x")
    x.valid = (2, 4)  # rows of 4 valid out of 8: scattered, no flat prefix
    with pytest.raises(OpFault) as e:
        KERNELS["reshape"].fn(ctx, None, x, (32,))
    assert e.value.rule == "PartialReshape" and "fillpad" in e.value.help


def test_reshape_maps_a_flat_prefix_region():
    # 2 full rows of 8 are the first 16 elements: [32] valid [16], [8, 4] valid [4, 4]
    ctx = Context()
    x = wrap_array(ctx, np.ones((4, 8), np.float32), "FP32", "x")
    x.valid = (2, 8)
    assert KERNELS["reshape"].fn(ctx, None, x, (32,)).valid == (16,)
    assert KERNELS["reshape"].fn(ctx, None, x, (8, 4)).valid == (4, 4)


@pytest.mark.parametrize("pad,fill", [("zero", 0.0), ("min", -np.inf), ("max", np.inf)])
def test_fillpad(capture, pad, fill):
    prog = capture(f"""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[8, 16], pl.BF16], r: pl.Scalar[pl.INDEX], c: pl.Scalar[pl.INDEX]) -> pl.Tensor[[8, 16], pl.BF16]:
                t = pl.slice(x, [8, 16], [0, 0], valid_shape=[r, c])
                y = pl.fillpad(t, pad_value=pl.PadValue.{pad})
                return y
    """)
    x = rand_bf16(8, 16)
    got = interpreter.run(prog, "k", x, 5, 11)
    want = np.full((8, 16), fill, np.float32)
    want[:5, :11] = f32(x[:5, :11])
    np.testing.assert_array_equal(f32(got), want)


# ------------------------------------------------------------------ memory, views


def test_create_tensor_and_full(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self) -> tuple[pl.Tensor[[2, 3], pl.FP32], pl.Tensor[[2, 3], pl.BF16], pl.Tensor[[4], pl.INT32]]:
                z = pl.create_tensor([2, 3], pl.FP32)
                b = pl.full([2, 3], pl.BF16, 0.1)
                i = pl.full([4], pl.INT32, 7)
                return z, b, i
    """)
    z, b, i = interpreter.run(prog, "k")
    np.testing.assert_array_equal(z, np.zeros((2, 3), np.float32))  # default mode: zeroed
    np.testing.assert_array_equal(f32(b), np.full((2, 3), f32(bf16(np.float32(0.1)))))
    np.testing.assert_array_equal(i, [7, 7, 7, 7])
    assert b.dtype == BF and i.dtype == np.int32


def test_slice_is_a_view_and_assemble_writes_in_place(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.InOut[pl.Tensor[[16, 8], pl.FP32]]) -> pl.Tensor[[16, 8], pl.FP32]:
                win = pl.slice(out, [4, 8], [8, 0])
                win = pl.assemble(win, x, [0, 0])
                again = pl.slice(out, [2, 8], [9, 0])
                y = pl.mul(again, 2.0)
                out = pl.assemble(out, y, [0, 0])
                return out
    """)
    x = RNG.uniform(-1, 1, (4, 8)).astype(np.float32)
    out = np.full((16, 8), -1.0, np.float32)
    got = interpreter.run(prog, "k", x, out)
    want = np.full((16, 8), -1.0, np.float32)
    want[8:12] = x  # through the view of `out`
    want[0:2] = x[1:3] * np.float32(2)  # the later slice sees the earlier write
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(got, want)


def test_assemble_writes_only_the_valid_region(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[8, 8], pl.FP32], out: pl.InOut[pl.Tensor[[8, 8], pl.FP32]], r: pl.Scalar[pl.INDEX]) -> pl.Tensor[[8, 8], pl.FP32]:
                t = pl.slice(x, [4, 8], [0, 0], valid_shape=[r, 6])
                out = pl.assemble(out, t, [2, 1])
                return out
    """)
    x = RNG.uniform(-1, 1, (8, 8)).astype(np.float32)
    out = np.full((8, 8), 5.0, np.float32)
    interpreter.run(prog, "k", x, out, 3)
    want = np.full((8, 8), 5.0, np.float32)
    want[2:5, 1:7] = x[:3, :6]
    np.testing.assert_array_equal(out, want)


def test_read_write_dim(capture):
    prog = capture("""
        N = pl.dynamic("N")
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.InOut[pl.Tensor[[N, 4], pl.BF16]], i: pl.Scalar[pl.INDEX]) -> tuple[pl.Scalar[pl.BF16], pl.Scalar[pl.BF16], pl.Scalar[pl.INDEX], pl.Tensor[[N, 4], pl.BF16]]:
                a = pl.read(x, [i, 1])
                b = pl.read(x, [5])
                n = pl.tensor.dim(x, 0)
                m = pl.dim(x, -1)
                x = pl.write(x, [n - 1, 3], 0.1)
                return a, b, n * 100 + m, x
    """)
    x = rand_bf16(3, 4)
    orig = x.copy()
    a, b, nm, xr = interpreter.run(prog, "k", x, 2)
    assert a == orig[2, 1] and isinstance(a, np.generic) and a.dtype == BF
    assert b == orig[1, 1]  # flat index 5 of a [3, 4] tensor
    assert nm == 304
    assert x[2, 3] == bf16(np.float32(0.1))  # FP32 literal rounded (RNE) into BF16, in place
    np.testing.assert_array_equal(f32(xr), f32(x))
