"""interpreter.run: argument binding, in-place updates, host callables, calls, control flow,
ideal-precision mode."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from pldsl.interpreter.machine import ArgumentError

import pldsl as pl
from pldsl import interpreter

BF = np.dtype(ml_dtypes.bfloat16)


def _fault(fn, *args, **kw) -> pl.Diagnostic:
    with pytest.raises(pl.RuntimeFault) as e:
        fn(*args, **kw)
    return e.value.diagnostic


# ------------------------------------------------------------------ in-place updates

CACHE = """
    @pl.program
    class P:
        @pl.function
        def step(self, x: pl.Tensor[[1, 8], pl.BF16], pos: pl.Scalar[pl.INDEX], cache: pl.InOut[pl.Tensor[[4, 8], pl.BF16]], seen: pl.Tensor[[4, 1], pl.INT32], out: pl.Out[pl.Tensor[[1, 8], pl.FP32]]) -> pl.Tensor[[1, 8], pl.FP32]:
            cache = pl.assemble(cache, x, [pos, 0])
            seen = pl.write(seen, [pos, 0], pl.cast(pos + 1, pl.INT32))
            hist = pl.cast(cache, pl.FP32)
            total = pl.col_sum(hist)
            out = pl.assemble(out, total, [0, 0])
            return out
"""


def test_out_inout_and_written_in_arguments_persist_across_calls(capture):
    """A decode-step pattern: the KV cache (InOut) and a bookkeeping array declared In but
    written by the kernel (decision 11) keep their updates across calls; Out is written."""
    prog = capture(CACHE)
    cache = np.zeros((4, 8), BF)
    seen = np.zeros((4, 1), np.int32)
    out = np.zeros((1, 8), np.float32)
    x0 = np.arange(8, dtype=np.float32).reshape(1, 8).astype(BF)
    x1 = (np.arange(8, dtype=np.float32) * 2).reshape(1, 8).astype(BF)
    r0 = interpreter.run(prog, "step", x0, 0, cache, seen, out)
    np.testing.assert_array_equal(out, x0.astype(np.float32))
    r1 = interpreter.run(prog, "step", x1, 1, cache, seen, out)
    np.testing.assert_array_equal(cache[0], x0[0])
    np.testing.assert_array_equal(cache[1], x1[0])
    np.testing.assert_array_equal(cache[2:].astype(np.float32), 0.0)
    np.testing.assert_array_equal(seen[:, 0], [1, 2, 0, 0])
    np.testing.assert_array_equal(out, (x0.astype(np.float32) + x1.astype(np.float32)))
    np.testing.assert_array_equal(r1, out)
    assert r1 is not out and r0 is not r1  # returned arrays are fresh copies


def test_float32_arrays_for_bf16_parameters(capture):
    prog = capture(CACHE)
    cache = np.zeros((4, 8), np.float32)  # BF16-exact float32: accepted, written back
    seen = np.zeros((4, 1), np.int64)  # int64 for INT32: accepted when the values fit
    out = np.zeros((1, 8), np.float32)
    x = np.full((1, 8), 1.5, np.float32)
    interpreter.run(prog, "step", x, 2, cache, seen, out)
    np.testing.assert_array_equal(cache[2], 1.5)
    assert seen[2, 0] == 3
    bad = np.full((1, 8), 0.1, np.float32)
    d = _fault(interpreter.run, prog, "step", bad, 0, cache, seen, out)
    assert d.rule == "InexactArgument" and "'x'" in d.message and "BF16" in d.message
    assert d.help and "bfloat16" in d.help
    with pytest.raises(ArgumentError):
        interpreter.run(prog, "step", bad, 0, cache, seen, out)


def test_out_argument_may_be_none(capture):
    prog = capture("""
        N = pl.dynamic("N")
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[N, 4], pl.FP32], out: pl.Out[pl.Tensor[[N, 4], pl.FP32]]) -> pl.Tensor[[N, 4], pl.FP32]:
                out = pl.assemble(out, pl.mul(x, 3.0), [0, 0])
                return out
    """)
    x = np.ones((5, 4), np.float32)
    np.testing.assert_array_equal(interpreter.run(prog, "k", x, None), 3.0)
    result = interpreter.execute(prog, "k", [x, None])
    assert result.arrays["out"].shape == (5, 4) and "out" in result.written


# ------------------------------------------------------------------ binding errors

DYN = """
    N = pl.dynamic("N")
    @pl.program
    class P:
        @pl.function
        def k(self, x: pl.Tensor[[N, 16], pl.FP32], y: pl.Tensor[[N, 8], pl.BF16], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[N, 16], pl.FP32]:
            z = pl.add(x, 1.0)
            return z
"""


def test_dynamic_dims_bind_from_arguments(capture):
    prog = capture(DYN)
    got = interpreter.run(prog, "k", np.zeros((3, 16), np.float32), np.zeros((3, 8), BF), 3)
    assert got.shape == (3, 16)


@pytest.mark.parametrize(
    "x,y,rule,words",
    [
        ((3, 16), (4, 8), "DynamicDimMismatch", ["'y'", "dim 0 (N) is 4", "N = 3", "'x' dim 0"]),
        ((3, 15), (3, 8), "ArgumentMismatch", ["'x'", "dim 1 is 15", "static dim is 16"]),
        ((3, 16, 1), (3, 8), "ArgumentMismatch", ["'x'", "rank 3"]),
    ],
)
def test_dynamic_dim_binding_errors(capture, x, y, rule, words):
    prog = capture(DYN)
    d = _fault(interpreter.run, prog, "k", np.zeros(x, np.float32), np.zeros(y, BF), 3)
    assert d.rule == rule, d.render()
    for w in words:
        assert w in d.message, d.message
    assert d.span.line > 0  # points at the parameter


def test_other_argument_errors(capture):
    prog = capture(DYN)
    x, y = np.zeros((3, 16), np.float32), np.zeros((3, 8), BF)
    d = _fault(interpreter.run, prog, "k", x, y)
    assert d.rule == "ArgumentCount"
    d = _fault(interpreter.run, prog, "k", x.astype(np.int32), y, 3)
    assert d.rule == "ArgumentMismatch" and "'x'" in d.message
    d = _fault(interpreter.run, prog, "k", x, y, 2.5)
    assert d.rule == "ArgumentMismatch" and "'n'" in d.message
    d = _fault(interpreter.run, prog, "nope", x, y, 3)
    assert d.rule == "UnknownFunction"
    # A Scalar[INDEX] parameter named like the dynamic dim is that dim.
    prog2 = capture("""
        N = pl.dynamic("N")
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[N, 4], pl.FP32], N: pl.Scalar[pl.INDEX]) -> pl.Tensor[[N, 4], pl.FP32]:
                return x
    """)
    d = _fault(interpreter.run, prog2, "k", np.zeros((3, 4), np.float32), 5)
    assert d.rule == "DynamicDimMismatch" and "scalar argument 'N'" in d.message


def test_integer_arrays_must_fit_exactly(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[2], pl.INT64]) -> pl.Tensor[[2], pl.INT64]:
                return x
    """)
    ok = interpreter.run(prog, "k", np.array([1, 2**63 - 1], np.uint64))
    assert ok.dtype == np.int64 and ok.tolist() == [1, 2**63 - 1]
    d = _fault(interpreter.run, prog, "k", np.array([1, 2**64 - 1], np.uint64))
    assert d.rule == "InexactArgument" and "'x'" in d.message


def test_composite_dims_of_ir_text_are_checked(capture):
    """IR text may declare a dim as arithmetic over dynamic dims (`N * 2`)."""
    same = capture("""
        N = pl.dynamic("N")
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[N, 4], pl.FP32], y: pl.Tensor[[N, 4], pl.FP32]) -> pl.Tensor[[N, 4], pl.FP32]:
                return x
    """)
    text = pl.print_ir(same).replace("y: pl.Tensor[[N, 4]", "y: pl.Tensor[[N * 2, 4]")
    prog = pl.parse_ir(text)
    x = np.zeros((3, 4), np.float32)
    interpreter.run(prog, "k", x, np.zeros((6, 4), np.float32))
    d = _fault(interpreter.run, prog, "k", x, np.zeros((5, 4), np.float32))
    assert d.rule == "DynamicDimMismatch" and "dim 0 is 5, expected 6" in d.message


def test_scalar_arithmetic_wraps_and_rounds_to_the_result_dtype(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Scalar[pl.INT8], b: pl.Scalar[pl.UINT8], c: pl.Scalar[pl.BF16], d: pl.Scalar[pl.BF16]) -> tuple[pl.Scalar[pl.INT8], pl.Scalar[pl.UINT8], pl.Scalar[pl.BF16]]:
                return a + a, b - b - b, c / d
    """)
    s, u, q = interpreter.run(prog, "k", 100, 10, 1.0, 3.0)
    assert s == -56 and s.dtype == np.int8  # 200 wraps
    assert u == 246 and u.dtype == np.uint8  # -10 wraps
    assert q.dtype == BF and float(q) == 0.333984375  # 1/3 rounded once to BF16 (0x3EAB)


# ------------------------------------------------------------------ calls, host callables

CALLS = """
    N = pl.dynamic("N")
    @pl.program
    class P:
        @pl.function(type=pl.FunctionType.InCore)
        def tile(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[N, 8], pl.FP32]], r0: pl.Scalar[pl.INDEX]) -> pl.Tensor[[N, 8], pl.FP32]:
            out = pl.assemble(out, pl.exp(x), [r0, 0])
            return out

        @pl.function(type=pl.FunctionType.InCore)
        def pair(self, x: pl.Tensor[[4, 8], pl.FP32]) -> tuple[pl.Tensor[[4, 8], pl.FP32], pl.Tensor[[4, 1], pl.FP32]]:
            return pl.neg(x), pl.row_max(x)

        @pl.function(type=pl.FunctionType.Orchestration)
        def main(self, x: pl.Tensor[[N, 8], pl.FP32], out: pl.Out[pl.Tensor[[N, 8], pl.FP32]], m: pl.Out[pl.Tensor[[N, 1], pl.FP32]]) -> tuple[pl.Tensor[[N, 8], pl.FP32], pl.Tensor[[N, 1], pl.FP32]]:
            n = pl.tensor.dim(x, 0)
            for r0 in pl.range(0, n, 4):
                t = pl.slice(x, [4, 8], [r0, 0])
                out = self.tile(t, out, r0)
                a, b = self.pair(t)
                m = pl.assemble(m, b, [r0, 0])
            return out, m
"""


def test_calls_pass_buffers_by_reference(capture):
    prog = capture(CALLS)
    x = np.random.default_rng(3).uniform(-1, 1, (12, 8)).astype(np.float32)
    out, m = np.zeros((12, 8), np.float32), np.zeros((12, 1), np.float32)
    r_out, r_m = interpreter.run(prog, "main", x, out, m, strict=True)
    want = np.exp(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(out, want)  # written by the callee through the alias
    np.testing.assert_array_equal(r_out, want)
    np.testing.assert_array_equal(m, x.max(1, keepdims=True))


HOST = """
    @pl.program
    class P:
        @pl.function(type=pl.FunctionType.Opaque, level=pl.Level.HOST, role=pl.Role.SubWorker)
        def sample(self, logits: pl.Tensor[[3, 5], pl.FP32], lens: pl.Tensor[[3], pl.INT32]) -> tuple[pl.Tensor[[3, 1], pl.INT32], pl.Scalar[pl.INDEX]]:
            ...

        @pl.function(type=pl.FunctionType.Opaque, level=pl.Level.HOST, role=pl.Role.Orchestrator)
        def main(self, logits: pl.Tensor[[3, 5], pl.FP32], lens: pl.Tensor[[3], pl.INT32]) -> tuple[pl.Tensor[[3, 1], pl.INT32], pl.Scalar[pl.INDEX]]:
            tok, k = self.sample(logits, lens)
            return tok, k * 10
"""


def test_host_stub_binds_to_a_python_callable(capture):
    prog = capture(HOST)
    assert prog.functions["sample"].is_host_stub
    calls = []

    def sample(logits, lens):
        calls.append(logits.shape)
        lens += 1  # the callable may mutate its argument views in place
        return np.argmax(logits, axis=1).astype(np.int32).reshape(3, 1), 7

    logits = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    lens = np.array([4, 5, 6], np.int32)
    tok, k = interpreter.run(prog, "main", logits, lens, host={"sample": sample})
    np.testing.assert_array_equal(tok[:, 0], np.argmax(logits, axis=1))
    assert k == 70 and calls == [(3, 5)]
    np.testing.assert_array_equal(lens, [5, 6, 7])


def test_host_stub_errors(capture, line):
    prog = capture(HOST)
    logits, lens = np.zeros((3, 5), np.float32), np.zeros(3, np.int32)
    d = _fault(interpreter.run, prog, "main", logits, lens)
    assert d.rule == "MissingHostFunction" and d.span.line == line(prog, "self.sample(")

    def boom(logits, lens):
        raise ValueError("no tokens")

    d = _fault(interpreter.run, prog, "main", logits, lens, host={"sample": boom})
    assert d.rule == "HostFunctionError" and "no tokens" in d.message

    def wrong(logits, lens):
        return np.zeros((2, 1), np.int32), 1

    d = _fault(interpreter.run, prog, "main", logits, lens, host={"sample": wrong})
    assert d.rule == "HostFunctionError" and "[2, 1]" in d.message


# ------------------------------------------------------------------ control flow


def test_loop_carries_break_continue_and_if(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[4], pl.FP32], n: pl.Scalar[pl.INDEX]) -> tuple[pl.Tensor[[4], pl.FP32], pl.Tensor[[4], pl.FP32], pl.Scalar[pl.INDEX]]:
                for i, (acc,) in pl.range(0, n, 1, init_values=(x,)):
                    nxt = pl.add(acc, 1.0)
                    acc2 = pl.yield_(nxt)
                count = 0
                y = x
                for j in pl.range(0, 100, 1):
                    if j == 5:
                        break
                    if j % 2 == 1:
                        continue
                    count = count + 1
                    y = pl.mul(y, 2.0)
                for k2 in pl.unroll(0, 3, 1):
                    count = count + 10
                for k3 in pl.parallel(6, 0, -2, chunk=2):
                    count = count + 100
                return acc2, y, count
    """)
    x = np.arange(4, dtype=np.float32)
    acc, y, count = interpreter.run(prog, "k", x, 3)
    np.testing.assert_array_equal(acc, x + 3)
    np.testing.assert_array_equal(y, x * 8)  # j = 0, 2, 4
    assert count == 3 + 30 + 300
    acc0, _, _ = interpreter.run(prog, "k", x, 0)  # zero iterations: the init value
    np.testing.assert_array_equal(acc0, x)


def test_matmul_accumulation_idiom_with_if(capture):
    """The canonical `if k0 == 0: acc = matmul else: acc = matmul_acc(acc, ...)` loop."""
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, a: pl.Tensor[[8, 64], pl.BF16], b: pl.Tensor[[64, 16], pl.BF16]) -> pl.Tensor[[8, 16], pl.FP32]:
                acc = pl.create_tensor([8, 16], pl.FP32)
                for k0 in pl.range(0, 64, 16):
                    ta = pl.slice(a, [8, 16], [0, k0])
                    tb = pl.slice(b, [16, 16], [k0, 0])
                    if k0 == 0:
                        acc = pl.matmul(ta, tb, out_dtype=pl.FP32)
                    else:
                        acc = pl.matmul_acc(acc, ta, tb)
                return acc
    """)
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, (8, 64)).astype(np.float32).astype(BF)
    b = rng.uniform(-1, 1, (64, 16)).astype(np.float32).astype(BF)
    got = interpreter.run(prog, "k", a, b, strict=True)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = 64 * 2.0**-24 * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    assert np.all(np.abs(got - exact) <= bound)


# ------------------------------------------------------------------ precision


def test_fp32_precision_removes_bf16_rounding(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[64], pl.FP32], w: pl.Tensor[[64], pl.BF16]) -> tuple[pl.Tensor[[64], pl.FP32], pl.Tensor[[64], pl.BF16]]:
                b = pl.cast(x, pl.BF16)
                back = pl.cast(b, pl.FP32)
                p = pl.mul(w, w)
                return back, p
    """)
    x = np.random.default_rng(9).uniform(-1, 1, 64).astype(np.float32)
    w = np.random.default_rng(10).uniform(-1, 1, 64).astype(np.float32).astype(BF)
    back, p = interpreter.run(prog, "k", x, w)
    back32, p32 = interpreter.run(prog, "k", x, w, precision="fp32")
    # bf16: the cast rounds (ties away); fp32: it is a no-op.
    bits = x.view(np.uint32)
    want = ((bits + np.uint32(0x8000)) & np.uint32(0xFFFF0000)).view(np.float32)
    np.testing.assert_array_equal(back, want)
    np.testing.assert_array_equal(back32, x)
    assert not np.array_equal(back, back32)
    # BF16 values are stored as float32 in fp32 mode; w*w keeps all its bits there.
    assert p.dtype == BF and p32.dtype == np.float32
    w32 = w.astype(np.float32)
    np.testing.assert_array_equal(p32, w32 * w32)
    np.testing.assert_array_equal(p.astype(np.float32), (w32 * w32).astype(BF).astype(np.float32))


def test_fp32_precision_keeps_unrounded_values_in_float32_caches(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[1, 4], pl.FP32], cache: pl.InOut[pl.Tensor[[2, 4], pl.BF16]], pos: pl.Scalar[pl.INDEX]) -> pl.Tensor[[2, 4], pl.BF16]:
                cache = pl.assemble(cache, pl.cast(x, pl.BF16), [pos, 0])
                return cache
    """)
    cache = np.zeros((2, 4), np.float32)
    x = np.full((1, 4), 0.1, np.float32)
    interpreter.run(prog, "k", x, cache, 0, precision="fp32")
    assert cache.dtype == np.float32 and np.all(cache[0] == np.float32(0.1))
    interpreter.run(prog, "k", x, cache, 1, precision="fp32")  # no BF16 check in fp32 mode
    np.testing.assert_array_equal(cache, np.float32(0.1))
    d = _fault(interpreter.run, prog, "k", x, cache, 0, precision="fp16")
    assert d.rule == "BadOption"


def test_fp32_precision_refuses_lossy_write_back_into_bf16_arrays(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def k(self, x: pl.Tensor[[1, 4], pl.FP32], cache: pl.InOut[pl.Tensor[[2, 4], pl.BF16]]) -> pl.Tensor[[2, 4], pl.BF16]:
                cache = pl.assemble(cache, pl.cast(x, pl.BF16), [0, 0])
                return cache
    """)
    cache = np.zeros((2, 4), BF)
    d = _fault(
        interpreter.run, prog, "k", np.full((1, 4), 0.1, np.float32), cache, precision="fp32"
    )
    assert d.rule == "LossyWriteBack" and "'cache'" in d.message and "float32" in d.help
    # Values that fit are written back exactly.
    interpreter.run(prog, "k", np.full((1, 4), 0.5, np.float32), cache, precision="fp32")
    np.testing.assert_array_equal(cache[0].astype(np.float32), 0.5)
