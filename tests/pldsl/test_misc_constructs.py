"""Smaller PyPTO constructs: `pl.add` etc. on scalars, `pl.read(t, i)` with one index, a
standalone `@pl.function` called by its bare name; against NumPy on both executors."""

from __future__ import annotations

import numpy as np
import pytest
from irutil import compile_c

import pldsl as pl
from pldsl import interpreter
from pldsl.diagnostics import CaptureError


@pl.function(type=pl.FunctionType.InCore)
def doubled(x: pl.Tensor[[8, 8], pl.FP32]) -> pl.Tensor[[8, 8], pl.FP32]:
    return pl.mul(x, 2.0)


@pl.program
class Misc:
    @pl.function(type=pl.FunctionType.Orchestration)
    def main(
        self,
        a: pl.Tensor[[8, 8], pl.FP32],
        v: pl.Tensor[[8], pl.FP32],
        i: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[8, 8], pl.FP32]],
    ) -> pl.Tensor[[8, 8], pl.FP32]:
        s = pl.add(pl.read(v, i), pl.read(v, 1))  # scalar + scalar
        t = pl.mul(s, 3.0)
        u = pl.maximum(t, pl.sub(pl.read(v, [2]), 100.0))
        d = doubled(a)
        with pl.at(level=pl.Level.CORE_GROUP):
            out = pl.assemble(out, pl.add(d, u), [0, 0])
        return out


def _oracle(a, v, i):
    s = np.float32(v[i]) + np.float32(v[1])
    u = max(np.float32(s * np.float32(3.0)), np.float32(v[2] - np.float32(100.0)))
    return (a * np.float32(2.0) + u).astype(np.float32)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(11)
    return rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)


@pytest.mark.parametrize("i", [0, 5, 7])
def test_interpreter(inputs, i):
    a, v = inputs
    got = interpreter.run(Misc, "main", a, v, i, np.zeros_like(a))
    np.testing.assert_allclose(got, _oracle(a, v, i), rtol=1e-6)


def test_c_backend(inputs):
    prog = compile_c(Misc)
    a, v = inputs
    for i in (0, 7):
        np.testing.assert_allclose(
            prog.run("main", a, v, i, np.zeros_like(a)), _oracle(a, v, i), rtol=1e-6
        )


def test_capture_shape():
    assert [f.name for f in Misc.function_list] == ["main", "doubled"]
    text = pl.print_ir(Misc)
    assert "self.doubled(a)" in text and "pl.read(v, [i])" in text
    assert "pl.read(v, [i]) + pl.read(v, [1])" in text  # scalar dispatch: a BinOp, no tensor op
    pl.parse_ir(text)


twice = doubled


def test_external_function_name_clash():
    with pytest.raises(CaptureError) as info:

        @pl.program
        class Clash:
            @pl.function(type=pl.FunctionType.InCore)
            def doubled(self, x: pl.Tensor[[8, 8], pl.FP32]) -> pl.Tensor[[8, 8], pl.FP32]:
                return x

            @pl.function(type=pl.FunctionType.Orchestration)
            def g(self, x: pl.Tensor[[8, 8], pl.FP32]) -> pl.Tensor[[8, 8], pl.FP32]:
                return twice(x)  # the external `doubled`, under another name

    assert info.value.diagnostic.rule == "DuplicateFunction", info.value.diagnostic.render()
    assert "clashes with a function of the program" in info.value.diagnostic.message


def test_a_capture_time_if_captures_only_the_taken_branch():
    src = (
        "import pldsl as pl\nA = 4\nB = 4\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.InCore)\n"
        "    def f(self, x: pl.Tensor[[8, 8], pl.FP32]) -> pl.Tensor[[8, 8], pl.FP32]:\n"
        "        if A > B:\n"
        "            x[0:8, B:A] = pl.full([8, A - B], dtype=pl.FP32, value=0.0)\n"
        "        else:\n"
        "            x = pl.add(x, 1.0)\n"
        "        return x\n"
    )
    (prog,) = pl.capture_source(src, "<static-if>")
    got = interpreter.run(prog, "f", np.ones((8, 8), np.float32))
    np.testing.assert_array_equal(got, np.full((8, 8), 2.0, np.float32))
    with pytest.raises(CaptureError):  # the same branch taken is still checked
        pl.capture_source(
            src.replace("B = 4", "B = 3").replace("A > B", "A >= B").replace("B:A", "A:B"), "<x>"
        )


@pytest.mark.parametrize(
    "attrs",
    ['{"split": pl.SplitMode.UP_DOWN, "core_num": 4}', "None", "ATTRS", '{"names": ["a", "b"]}'],
)
def test_function_attrs_that_pypto_accepts(attrs):
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        f"    @pl.function(type=pl.FunctionType.InCore, attrs={attrs})\n"
        "    def f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:\n"
        "        return x\n"
    )
    (prog,) = pl.capture_source(src, "<attrs>", namespace={"ATTRS": {"core_num": 2}})
    assert [f.name for f in prog.function_list] == ["f"]
