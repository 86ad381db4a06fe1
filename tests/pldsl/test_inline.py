"""`@pl.inline`: templates expanded at each call site by bare name (PyPTO's InlineFunction),
on both interpreter paths and the C backend against NumPy; errors with rule and location."""

from __future__ import annotations

import numpy as np
import pytest
from irutil import compile_c, round_trip

import pldsl as pl
from pldsl import interpreter
from pldsl.diagnostics import CaptureError

SCALE = 2.0


@pl.inline
def scaled(x):
    """x * SCALE + 1 (SCALE from this module's closure)."""
    y = pl.mul(x, SCALE)
    return pl.add(y, 1.0)


@pl.inline
def stats(x, bias):
    s = pl.row_sum(x)
    m = pl.row_max(x)
    return pl.add(s, bias), m


@pl.inline
def twice_scaled(x):
    return scaled(scaled(x))  # nested expansion


@pl.program
class Inl:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self, a: pl.Tensor[[4, 8], pl.FP32], b: pl.Tensor[[4, 8], pl.FP32]
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        y = scaled(a)  # a parameter of the template named like nothing here
        x = pl.add(scaled(b), scaled(a))  # two expansions in one statement
        z = twice_scaled(x)
        return pl.add(y, z)

    @pl.function(type=pl.FunctionType.InCore)
    def g(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 1], pl.FP32]:
        # the caller's `x` and `s` are not the template's: expansions are renamed
        s = pl.row_sum(x)
        t, m = stats(x, 3.0)
        for _i in pl.range(2):
            t = pl.add(t, scaled(m))
        return pl.add(t, s)


def _scaled(x):
    return x * np.float32(2) + np.float32(1)


A = np.arange(32, dtype=np.float32).reshape(4, 8) / 8
B = (np.arange(32, dtype=np.float32).reshape(4, 8) - 16) / 4


def _f(a, b):
    x = _scaled(b) + _scaled(a)
    return _scaled(a) + _scaled(_scaled(x))


def _g(x):
    s = x.sum(axis=1, keepdims=True)
    t = s + np.float32(3)
    m = x.max(axis=1, keepdims=True)
    for _ in range(2):
        t = t + _scaled(m)
    return t + s


@pytest.mark.parametrize("fast", [True, False])
def test_interpreter(fast):
    np.testing.assert_allclose(interpreter.run(Inl, "f", A, B, fast=fast), _f(A, B), rtol=1e-6)
    np.testing.assert_allclose(interpreter.run(Inl, "g", A, fast=fast), _g(A), rtol=1e-6)


def test_c_backend():
    prog = compile_c(Inl)
    np.testing.assert_allclose(prog.run("f", A, B), _f(A, B), rtol=1e-6)
    np.testing.assert_allclose(prog.run("g", A), _g(A), rtol=1e-6)


def test_no_function_is_added_and_round_trip():
    assert [f.name for f in Inl.function_list] == ["f", "g"]
    text = pl.print_ir(Inl)
    assert "scaled_1_y" in text and "scaled_1_x" in text  # the first expansion, renamed
    round_trip(Inl)


def test_calling_a_template_from_python_is_an_error():
    with pytest.raises(CaptureError) as info:
        scaled(A)
    assert info.value.diagnostic.rule == "NotInKernel"


HEAD = (
    "import pldsl as pl\n\n@pl.inline\ndef dbl(x):\n    return pl.add(x, x)\n\n"
    "@pl.program\nclass K:\n    @pl.function(type=pl.FunctionType.InCore)\n"
    "    def f(self, a: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:\n"
)


def test_capture_source_templates():
    (prog,) = pl.capture_source(HEAD + "        return dbl(dbl(a))\n", "<inl>")
    np.testing.assert_array_equal(interpreter.run(prog, "f", A), A * 4)


@pytest.mark.parametrize(
    "template, body, rule, line, col, fragment",
    [
        (
            "def dbl(x):\n    return pl.add(x, x)\n",
            "return dbl(a, a)",
            "TypeError",
            11,
            16,
            "expects 1 argument(s), got 2",
        ),
        (
            "def dbl(x):\n    return pl.add(x, x)\n",
            "return dbl(x=a)",
            "TypeError",
            11,
            16,
            "positional arguments only",
        ),
        (
            "def dbl(x):\n    y = pl.add(x, x)\n",
            "return dbl(a)",
            "TypeError",
            4,
            1,
            "has no return value",
        ),
        (
            "def dbl(x):\n    return dbl(x)\n",
            "return dbl(a)",
            "UnsupportedFeature",
            5,
            12,
            "recursion",
        ),
        (
            "def dbl(x):\n    if True:\n        return x\n    return x\n",
            "return dbl(a)",
            "UnsupportedFeature",
            6,
            9,
            "only at the end",
        ),
        (
            "def dbl(x, *r):\n    return x\n",
            "return dbl(a)",
            "BadParameter",
            4,
            1,
            "positional parameters only",
        ),
        (
            "def dbl(x):\n    return pl.add(x, a)\n",
            "return dbl(a)",
            "UndefinedVariable",
            5,
            22,
            "'a'",
        ),  # stricter than PyPTO: the template does not see the caller's locals
        (
            "def two(x):\n    return x, x\n",
            "return two(a)",
            "TypeError",
            11,
            16,
            "returns 2 values here",
        ),
        # the caller's loop and SSA if are not the template's: no break or yield reaches them
        (
            "def dbl(x):\n    break\n    return x\n",
            "for i in pl.range(3):\n            a = dbl(a)\n        return a",
            "SyntaxError",
            5,
            5,
            "'break' outside a loop",
        ),
        (
            "def dbl(x):\n    continue\n    return x\n",
            "for i in pl.range(3):\n            a = dbl(a)\n        return a",
            "SyntaxError",
            5,
            5,
            "'continue' outside a loop",
        ),
        (
            "def dbl(x):\n    y = pl.yield_(x)\n    return y\n",
            "for i in pl.range(2):\n            if i == 0:\n                r = pl.yield_(dbl(a))\n"
            "            else:\n                r = pl.yield_(a)\n            a = r\n        return a",
            "UnsupportedFeature",
            5,
            9,
            "outside a loop with init_values",
        ),
    ],
)
def test_errors(template, body, rule, line, col, fragment):
    src = (
        HEAD.replace("def dbl(x):\n    return pl.add(x, x)\n", template) + "        " + body + "\n"
    )
    with pytest.raises(CaptureError) as info:
        pl.capture_source(src, "<inl>")
    d = info.value.diagnostic
    assert d.rule == rule, d.render()
    assert fragment in d.message, d.render()
    assert (d.span.line, d.span.col) == (line, col), d.render()
    assert d.help


@pl.inline
def row_block(src, row0, rows):
    # rows is a literal at every call: a capture-time constant, so the window's shape is static
    return pl.add(pl.slice(src, [rows, 8], [row0, 0]), 1.0)


@pl.program
class Rows:
    @pl.function(type=pl.FunctionType.InCore)
    def f(self, a: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
        top = row_block(a, 0, 1)
        rest = row_block(a, 1, 3)
        out = pl.create_tensor([4, 8], dtype=pl.FP32)
        out = pl.assemble(out, top, [0, 0])
        out = pl.assemble(out, rest, [1, 0])
        return out


def test_literal_arguments_stay_constants():
    text = pl.print_ir(Rows)
    assert (
        "pl.Tensor[[1, 8], pl.FP32] = pl.add(pl.slice(row_block_1_src, [1, 8], [0, 0]), 1.0)"
        in text
    )
    assert "pl.Tensor[[3, 8], pl.FP32]" in text
    np.testing.assert_array_equal(interpreter.run(Rows, "f", A), A + 1)
    np.testing.assert_array_equal(compile_c(Rows).run("f", A), A + 1)
