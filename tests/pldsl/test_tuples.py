"""Tuple values (PyPTO's MakeTuple / TupleGetItem): tuple literals bound to a name or
unpacked (`a, b = b, a` swaps), tuple-typed variables and `t[i]`, functions returning tuples;
both interpreter paths and the C backend against hand-worked values; round trip; errors."""

from __future__ import annotations

import numpy as np
import pytest
from irutil import compile_c, round_trip

import pldsl as pl
from pldsl import interpreter
from pldsl.diagnostics import CaptureError


@pl.program
class Tup:
    @pl.function(type=pl.FunctionType.InCore)
    def pair(
        self, x: pl.Tensor[[4, 8], pl.FP32], s: pl.Scalar[pl.FP32]
    ) -> pl.Tuple[pl.Tensor[[4, 8], pl.FP32], pl.Scalar[pl.FP32]]:
        t = (pl.mul(x, s), s + 1.0)  # a tuple-typed variable
        return t

    @pl.function(type=pl.FunctionType.InCore)
    def main(
        self, x: pl.Tensor[[4, 8], pl.FP32], y: pl.Tensor[[4, 8], pl.FP32]
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        a, b = x, y
        a, b = b, a  # swap: a = y, b = x
        t = self.pair(a, 2.0)  # (2y, 3.0)
        u = t[0]
        k = t[1]
        m, n = 1, 2  # scalars
        c = pl.add(pl.mul(u, k), b)  # 6y + x
        return pl.add(c, pl.cast(m + n, pl.FP32))  # + 3


X = np.arange(32, dtype=np.float32).reshape(4, 8)
Y = np.ones((4, 8), np.float32) * 0.5


@pytest.mark.parametrize("fast", [True, False])
def test_interpreter(fast):
    np.testing.assert_array_equal(interpreter.run(Tup, "main", X, Y, fast=fast), 6 * Y + X + 3)
    t, s = interpreter.run(Tup, "pair", X, 1.5, fast=fast)
    np.testing.assert_array_equal(t, X * np.float32(1.5))
    assert s == 2.5


def test_c_backend():
    prog = compile_c(Tup)
    np.testing.assert_array_equal(prog.run("main", X, Y), 6 * Y + X + 3)


def test_round_trip():
    text = pl.print_ir(Tup)
    assert "a, b = (b, a,)" in text
    round_trip(Tup)


@pytest.mark.parametrize(
    "body, rule, fragment",
    [
        ("t = ()", "TypeError", "one or more items"),
        ("t = (x, x)\nu = (x, t)", "UnsupportedFeature", "tuple inside a tuple"),
        ("a, b = x, x, x", "TypeError", "cannot unpack 3 values into 2 names"),
        ("t = (x, x)\nu = t[2]", "TypeError", "constant in range"),
    ],
)
def test_errors(body, rule, fragment):
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.InCore)\n"
        "    def f(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:\n"
        + "".join(f"        {line}\n" for line in body.splitlines())
        + "        return x\n"
    )
    with pytest.raises(CaptureError) as info:
        pl.capture_source(src, "<tup>")
    d = info.value.diagnostic
    assert d.rule == rule and fragment in d.message, d.render()
    assert d.span.line >= 7 and d.help


def test_writes_through_a_tuple_item_count_for_the_out_parameter():
    """`a, b = out, x` then a write through `a`: the checks see the write to `out` (no
    unwritten-output or dropped-write finding), and the run writes the caller's array."""
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.InCore)\n"
        "    def f(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]])"
        " -> pl.Tensor[[4, 8], pl.FP32]:\n"
        "        a, b = out, x\n"
        "        a = pl.assemble(a, pl.add(b, 1.0), [0, 0])\n"
        "        return a\n"
    )
    (prog,) = pl.capture_source(src, "<tuple-alias>")
    assert [d.rule for d in pl.check(prog) if d.severity != "note"] == []
    out = np.zeros((4, 8), np.float32)
    interpreter.run(prog, "f", X, out)
    np.testing.assert_array_equal(out, X + 1)
    out_c = np.zeros((4, 8), np.float32)
    compile_c(prog).run("f", X, out_c)
    np.testing.assert_array_equal(out_c, X + 1)
