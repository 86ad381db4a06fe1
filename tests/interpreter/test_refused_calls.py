"""A refused call never damages the caller's data (interpreter and C backend alike).

Every check (arity, dtypes, dynamic dims, aliasing, writability) comes before the first write;
the caller's arrays are compared bit for bit before and after each refused call.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from toolchain import have_c_compiler

import pldsl as pl
from pldsl import interpreter
from pldsl.ir.analysis import written_params

BF = np.dtype(ml_dtypes.bfloat16)
HAVE_CC = have_c_compiler()

ROW_SCALE = """
    N = pl.dynamic("N")
    @pl.program
    class RowScale:
        @pl.function
        def main(self, x: pl.Tensor[[N, 8], pl.FP32], out: pl.Out[pl.Tensor[[N, 8], pl.FP32]], s: pl.Scalar[pl.FP32]) -> pl.Tensor[[N, 8], pl.FP32]:
            for i in pl.range(0, N, 1):
                row = pl.slice(x, [1, 8], [i, 0])
                out = pl.assemble(out, pl.mul(row, s), [i, 0])
            return out
"""

FAULTS_LATE = """
    @pl.program
    class Late:
        @pl.function
        def main(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]], k: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4, 8], pl.FP32]:
            out = pl.assemble(out, pl.add(x, 1.0), [0, 0])
            bad = pl.slice(x, [4, 8], [k, 0])
            out = pl.assemble(out, bad, [0, 0])
            return out
"""

WRITES_IN = """
    @pl.program
    class W:
        @pl.function
        def main(self, a: pl.Tensor[[4, 8], pl.FP32], b: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
            v = pl.slice(a, [1, 8], [0, 0])
            v = pl.assemble(v, pl.slice(b, [1, 8], [1, 0]), [0, 0])
            c = pl.add(b, 1.0)
            return c
"""


class _Interp:
    def __init__(self, prog):
        self.prog = prog

    def run(self, fn, *args):
        return interpreter.run(self.prog, fn, *args)


class _C:
    def __init__(self, prog):
        from pldsl.backends import c

        self.compiled = c.compile(prog)

    def run(self, fn, *args):
        return self.compiled.run(fn, *args)


ENGINES = [
    pytest.param(_Interp, id="interpreter"),
    pytest.param(_C, id="c", marks=pytest.mark.skipif(not HAVE_CC, reason="no C compiler")),
]


def _refused(engine, fn, *args) -> pl.Diagnostic:
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    with pytest.raises(pl.RuntimeFault) as e:
        engine.run(fn, *args)
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            assert a.tobytes() == b.tobytes(), "a refused call changed the caller's array"
    return e.value.diagnostic


def _random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_dynamic_dim_mismatch_leaves_out_untouched(capture, engine):
    eng = engine(capture(ROW_SCALE))
    x, out = _random((3, 8)), _random((5, 8), 1)
    d = _refused(eng, "main", x, out, 2.0)
    assert d.rule == "DynamicDimMismatch" and "'out'" in d.message


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bad_later_argument_leaves_out_untouched(capture, engine):
    eng = engine(capture(ROW_SCALE))
    x, out = _random((3, 8)), _random((3, 8), 1)
    d = _refused(eng, "main", x, out, "two")
    assert d.rule == "ArgumentMismatch" and "'s'" in d.message
    d = _refused(eng, "main", x, out)
    assert d.rule == "ArgumentCount"


@pytest.mark.parametrize("engine", ENGINES)
def test_one_array_as_in_and_out_is_refused(capture, engine):
    eng = engine(capture(ROW_SCALE))
    xa = _random((3, 8))
    d = _refused(eng, "main", xa, xa, 2.0)
    assert d.rule == "ArgumentAliasing"
    assert "'x'" in d.message and "'out'" in d.message and "share memory" in d.message
    assert "InOut" in d.help
    # overlapping views of one array are the same hazard
    big = _random((6, 8))
    d = _refused(eng, "main", big[:3], big[2:5], 2.0)
    assert d.rule == "ArgumentAliasing"
    # disjoint views of one array are fine, and the result is right
    eng.run("main", big[:3], big[3:6], 2.0)
    np.testing.assert_array_equal(big[3:6], big[:3] * np.float32(2.0))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_read_only_out_is_refused(capture, engine):
    eng = engine(capture(ROW_SCALE))
    x, out = _random((3, 8)), _random((3, 8), 1)
    out.flags.writeable = False
    d = _refused(eng, "main", x, out, 2.0)
    assert d.rule == "ReadOnlyArgument" and "'out'" in d.message
    # a read-only In array is fine: the kernel only reads it
    x.flags.writeable = False
    got = eng.run("main", x, None, 2.0)
    np.testing.assert_array_equal(got, x * np.float32(2.0))


@pytest.mark.parametrize("engine", ENGINES)
def test_an_in_array_the_kernel_writes_may_not_alias_another(capture, engine):
    prog = capture(WRITES_IN)
    assert written_params(prog, prog.functions["main"]) == {"a"}
    eng = engine(prog)
    a = _random((4, 8))
    d = _refused(eng, "main", a, a)
    assert d.rule == "ArgumentAliasing" and "'a'" in d.message


@pytest.mark.parametrize("engine", ENGINES)
def test_a_fault_mid_run_names_the_partial_outputs(capture, engine):
    eng = engine(capture(FAULTS_LATE))
    x, out = _random((4, 8)), _random((4, 8), 1)
    with pytest.raises(pl.RuntimeFault) as e:
        eng.run("main", x, out, 3)
    d = e.value.diagnostic
    assert d.rule == "OutOfBounds"
    assert any("partial outputs: 'out' (Out)" in n for n in d.notes), d.notes
    # what the note says: out holds the first assemble's result
    np.testing.assert_array_equal(out, x + np.float32(1.0))


def test_calling_a_captured_function_directly_says_how_to_run_it(capture):
    prog = capture(ROW_SCALE)
    with pytest.raises(pl.PldslError) as e:
        prog.main(_random((3, 8)), np.zeros((3, 8), np.float32), 2.0)
    d = e.value.diagnostic
    assert d.rule == "NotCallable" and "'main'" in d.message
    assert "interpreter.run(" in d.help and "compile(" in d.help


@pytest.mark.parametrize("engine", ENGINES)
def test_a_read_only_out_of_another_dtype_is_refused(capture, engine):
    # converted (float64 -> FP32) or not, the kernel's writes could not reach a read-only Out
    eng = engine(capture(ROW_SCALE))
    x, out = _random((3, 8)), np.zeros((3, 8), np.float64)
    out.flags.writeable = False
    d = _refused(eng, "main", x, out, 2.0)
    assert d.rule == "ReadOnlyArgument" and "'out'" in d.message
    assert not out.any()
