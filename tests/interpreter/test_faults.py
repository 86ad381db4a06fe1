"""Runtime faults with locations: bounds, scalar division by zero, loop steps, and strict
mode (undefined reads, unwritten outputs), planted in small kernels."""

from __future__ import annotations

import numpy as np
import pytest

import pldsl as pl
from pldsl import interpreter

# A tiled row-scaling kernel with a correct tail: the clean reference for strict mode.
TILED = """
    N = pl.dynamic("N")
    @pl.program
    class P:
        @pl.function
        def main(self, x: pl.Tensor[[N, 64], pl.FP32], out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]) -> pl.Tensor[[N, 64], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            for r0 in pl.range(0, n, 16):
                valid = pl.min(16, n - r0)
                t = pl.slice(x, [16, 64], [r0, 0], valid_shape=[valid, 64])
                s = pl.row_sum(t)
                y = pl.row_expand_div(t, pl.add(s, 1.0))
                out = pl.assemble(out, y, [r0, 0])
            return out
"""


def _fault(fn, *args, **kw) -> pl.Diagnostic:
    with pytest.raises(pl.RuntimeFault) as e:
        fn(*args, **kw)
    return e.value.diagnostic


# ------------------------------------------------------------------ bounds


@pytest.mark.parametrize("strict", [False, True])
def test_correct_tiled_kernel_is_silent(capture, strict):
    prog = capture(TILED)
    x = np.random.default_rng(1).uniform(1, 2, (37, 64)).astype(np.float32)
    out = np.zeros((37, 64), np.float32)
    got = interpreter.run(prog, "main", x, out, strict=strict)
    want = x / (x.sum(1, keepdims=True) + np.float32(1))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(got, out)


def test_slice_window_out_of_bounds(capture, line):
    prog = capture("""
        N = pl.dynamic("N")
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[N, 64], pl.FP32], out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]) -> pl.Tensor[[N, 64], pl.FP32]:
                n = pl.tensor.dim(x, 0)
                for r0 in pl.range(0, n, 16):
                    t = pl.slice(x, [16, 64], [r0, 0])
                    out = pl.assemble(out, t, [r0, 0])
                return out
    """)
    x = np.zeros((40, 64), np.float32)
    d = _fault(interpreter.run, prog, "main", x, np.zeros_like(x))
    assert d.rule == "OutOfBounds" and d.severity == "error"
    assert d.span.line == line(prog, "t = pl.slice") and d.span.col > 1
    assert "axis 0" in d.message and "32 + extent 16 = 48 > 40" in d.message
    assert "'x'" in d.message and d.help
    rendered = d.render()
    assert "error[OutOfBounds]" in rendered and "t = pl.slice(x" in rendered
    # The same kernel is fine when the tile divides N.
    interpreter.run(prog, "main", np.zeros((48, 64), np.float32), np.zeros((48, 64), np.float32))


def test_assemble_window_out_of_bounds(capture, line):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[8, 8], pl.FP32], out: pl.InOut[pl.Tensor[[8, 8], pl.FP32]], c: pl.Scalar[pl.INDEX]) -> pl.Tensor[[8, 8], pl.FP32]:
                t = pl.slice(x, [4, 4], [0, 0])
                out = pl.assemble(out, t, [2, c])
                return out
    """)
    x = np.ones((8, 8), np.float32)
    out = np.zeros((8, 8), np.float32)
    interpreter.run(prog, "main", x, out, 4)  # columns 4..8: inside
    d = _fault(interpreter.run, prog, "main", x, out, 5)
    assert d.rule == "OutOfBounds" and d.span.line == line(prog, "pl.assemble")
    assert "axis 1" in d.message and "5 + extent 4 = 9 > 8" in d.message
    d = _fault(interpreter.run, prog, "main", x, out, -1)
    assert d.rule == "OutOfBounds" and "negative offset -1" in d.message


def test_read_and_write_out_of_bounds(capture, line):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.InOut[pl.Tensor[[4, 4], pl.FP32]], i: pl.Scalar[pl.INDEX], j: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4, 4], pl.FP32]:
                v = pl.read(x, [i, 0])
                x = pl.write(x, [0, j], v)
                return x
    """)
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    d = _fault(interpreter.run, prog, "main", x, 4, 0)
    assert d.rule == "OutOfBounds" and d.span.line == line(prog, "pl.read")
    assert "4 not in [0, 4)" in d.message
    d = _fault(interpreter.run, prog, "main", x, 1, 7)
    assert d.rule == "OutOfBounds" and d.span.line == line(prog, "pl.write")
    interpreter.run(prog, "main", x, 3, 3)
    assert x[0, 3] == 12.0


def test_valid_region_may_end_inside_the_buffer_while_the_window_does_not(capture):
    """The tail idiom: a 16-row window at row 32 of a 37-row tensor with valid rows 5 reads
    and writes only rows 32..36."""
    prog = capture(TILED)
    x = np.ones((37, 64), np.float32)
    interpreter.run(prog, "main", x, np.zeros_like(x), strict=True)


def test_scalar_division_by_zero(capture, line):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[4, 4], pl.FP32], d: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4, 4], pl.FP32]:
                q = 8 // d
                y = pl.mul(x, 2.0)
                r = pl.slice(y, [4, 4], [0, q % 1])
                return r
    """)
    x = np.ones((4, 4), np.float32)
    d = _fault(interpreter.run, prog, "main", x, 0)
    assert d.rule == "DivisionByZero" and d.span.line == line(prog, "q = 8 // d")
    np.testing.assert_array_equal(interpreter.run(prog, "main", x, 3), 2 * x)


def test_scalar_floor_semantics(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, a: pl.Scalar[pl.INDEX], b: pl.Scalar[pl.INDEX]) -> tuple[pl.Scalar[pl.INDEX], pl.Scalar[pl.INDEX], pl.Scalar[pl.INDEX], pl.Scalar[pl.INDEX]]:
                return a // b, a % b, pl.min(a, b), pl.max(a, b)
    """)
    assert interpreter.run(prog, "main", -7, 2) == (-4, 1, -7, 2)
    assert interpreter.run(prog, "main", 7, -2) == (-4, -1, -2, 7)


def test_zero_loop_step(capture, line):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[4], pl.FP32], s: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4], pl.FP32]:
                for i in pl.range(0, 4, s):
                    x = pl.add(x, 1.0)
                return x
    """)
    d = _fault(interpreter.run, prog, "main", np.zeros(4, np.float32), 0)
    assert d.rule == "BadLoopStep" and d.span.line == line(prog, "for i in")


def test_bounds_check_can_be_disabled_for_trusted_kernels(capture):
    prog = capture(TILED)
    x = np.ones((32, 64), np.float32)
    got = interpreter.run(prog, "main", x, np.zeros_like(x), bounds_check=False)
    np.testing.assert_allclose(got, x / np.float32(65))


# ------------------------------------------------------------------ strict mode

SCRATCH = """
    @pl.program
    class P:
        @pl.function
        def main(self, x: pl.Tensor[[16, 32], pl.FP32], rows: pl.Scalar[pl.INDEX]) -> pl.Tensor[[16, 1], pl.FP32]:
            scratch = pl.create_tensor([16, 32], pl.FP32)
            for r in pl.range(0, rows, 1):
                row = pl.slice(x, [1, 32], [r, 0])
                scratch = pl.assemble(scratch, pl.mul(row, 2.0), [r, 0])
            s = pl.row_sum(scratch)
            return s
"""


def test_strict_finds_read_of_uninitialised_scratch_row(capture, line):
    prog = capture(SCRATCH)
    x = np.ones((16, 32), np.float32)
    # Default mode: create_tensor is zero-filled, the bug is silent.
    got = interpreter.run(prog, "main", x, 15)
    assert got[15, 0] == 0.0 and got[0, 0] == 64.0
    d = _fault(interpreter.run, prog, "main", x, 15, strict=True)
    assert d.rule == "UndefinedRead"
    assert d.span.line == line(prog, "s = pl.row_sum")
    assert "pl.row_sum" in d.message and "'scratch'" in d.message
    assert "[15, 0]" in d.message and "never written" in d.message
    # Written completely: silent in strict mode too.
    np.testing.assert_array_equal(interpreter.run(prog, "main", x, 16, strict=True), 64.0)


UNWRITTEN = """
    N = pl.dynamic("N")
    @pl.program
    class P:
        @pl.function
        def main(self, x: pl.Tensor[[N, 8], pl.FP32], out: pl.Out[pl.Tensor[[N, 8], pl.FP32]]) -> pl.Tensor[[N, 8], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            for r in pl.range(0, n - 1, 1):
                row = pl.slice(x, [1, 8], [r, 0])
                out = pl.assemble(out, pl.neg(row), [r, 0])
            return out
"""


def test_strict_finds_planted_unwritten_output_row(capture, line):
    prog = capture(UNWRITTEN)
    x = np.ones((6, 8), np.float32)
    out = np.full((6, 8), 3.0, np.float32)
    got = interpreter.run(prog, "main", x, out)  # default: Out arrives zeroed, silent
    np.testing.assert_array_equal(got[5], 0.0)
    d = _fault(interpreter.run, prog, "main", x, out, strict=True)
    assert d.rule == "UnwrittenOutput"
    assert d.span.line == line(prog, "return out")
    assert "'out'" in d.message and "[5, 0]" in d.message and "8 of 48" in d.message
    assert any("declared at" in n for n in d.notes)


def test_strict_reports_reads_outside_the_valid_region(capture, line):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[4, 64], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4, 1], pl.FP32]:
                t = pl.slice(x, [4, 64], [0, 0], valid_shape=[4, n])
                e = pl.exp(t)
                m = pl.row_max(e)
                return m
    """)
    x = np.zeros((4, 64), np.float32)
    d = _fault(interpreter.run, prog, "main", x, 40, strict=True)
    assert d.rule == "UndefinedRead" and d.span.line == line(prog, "pl.row_max")
    assert "outside the valid region [4, 40]" in d.message and "[0, 40]" in d.message
    assert "fillpad" in d.help
    # exp over the partial tile is fine: its result keeps the valid region.
    fixed = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[4, 64], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4, 1], pl.FP32]:
                t = pl.slice(x, [4, 64], [0, 0], valid_shape=[4, n])
                e = pl.exp(pl.fillpad(t, pad_value=pl.PadValue.min))
                m = pl.row_sum(e)
                return m
    """)
    np.testing.assert_array_equal(interpreter.run(fixed, "main", x, 40, strict=True), 40.0)


def test_strict_pad_mode_defines_the_invalid_region(capture):
    """A slice with pad_value=... reads its invalid region as that value, even in strict."""
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, x: pl.Tensor[[2, 8], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[2, 1], pl.FP32]:
                t = pl.slice(x, [2, 8], [0, 0], valid_shape=[2, n], pad_value=pl.PadValue.min)
                m = pl.row_max(t)
                return m
    """)
    x = -np.arange(16, dtype=np.float32).reshape(2, 8) - 1
    got = interpreter.run(prog, "main", x, 3, strict=True)
    np.testing.assert_array_equal(got, [[-1.0], [-9.0]])


def test_strict_out_parameter_is_undefined_on_entry(capture, line):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, out: pl.Out[pl.Tensor[[4], pl.FP32]]) -> pl.Tensor[[4], pl.FP32]:
                y = pl.add(out, 1.0)
                out = pl.assemble(out, y, [0])
                return out
    """)
    out = np.ones(4, np.float32)
    np.testing.assert_array_equal(interpreter.run(prog, "main", out), 1.0)  # zeroed, +1
    d = _fault(interpreter.run, prog, "main", out, strict=True)
    assert d.rule == "UndefinedRead" and d.span.line == line(prog, "pl.add")
    assert "'out'" in d.message


def test_strict_is_silent_on_inout_and_full_write_patterns(capture):
    prog = capture("""
        @pl.program
        class P:
            @pl.function
            def main(self, acc: pl.InOut[pl.Tensor[[4, 4], pl.FP32]], out: pl.Out[pl.Tensor[[4, 4], pl.FP32]]) -> tuple[pl.Tensor[[4, 4], pl.FP32], pl.Tensor[[4, 4], pl.FP32]]:
                t = pl.create_tensor([4, 4], pl.FP32)
                for i in pl.range(4):
                    for j in pl.range(4):
                        t = pl.write(t, [i, j], pl.cast(i * 4 + j, pl.FP32))
                acc = pl.assemble(acc, pl.add(acc, t), [0, 0])
                out = pl.assemble(out, pl.matmul(t, acc), [0, 0])
                return acc, out
    """)
    acc = np.ones((4, 4), np.float32)
    t = np.arange(16, dtype=np.float32).reshape(4, 4)
    a, o = interpreter.run(prog, "main", acc, np.zeros((4, 4), np.float32), strict=True)
    np.testing.assert_array_equal(a, t + 1)
    np.testing.assert_array_equal(o, t @ (t + 1))
