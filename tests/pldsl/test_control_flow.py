"""PyPTO's while loops (natural and `pl.while_`), the SSA if-form (`r = pl.yield_(v)` in both
branches) and loop-local carry names, on both interpreter paths and the C backend, against
hand-worked NumPy values; text round trips; the checks stay quiet on clean uses."""

from __future__ import annotations

import numpy as np
import pytest
from irutil import compile_c, round_trip

import pldsl as pl
from pldsl import interpreter
from pldsl.checks import run_checks
from pldsl.diagnostics import RuntimeFault

X = np.arange(32, dtype=np.float32).reshape(4, 8)


@pl.program
class Flow:
    @pl.function(type=pl.FunctionType.InCore)
    def natural(
        self, x: pl.Tensor[[4, 8], pl.FP32], n: pl.Scalar[pl.INDEX]
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        # y = x + n, counting up in a natural while loop that rebinds outer names
        i = 0
        y = pl.mul(x, 1.0)
        while i < n:
            y = pl.add(y, 1.0)
            i = i + 1
        return y

    @pl.function(type=pl.FunctionType.InCore)
    def ssa(
        self, x: pl.Tensor[[4, 8], pl.FP32], n: pl.Scalar[pl.INDEX]
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        # iteration k: acc * 2 when k is odd, acc + 10 when even; n iterations
        for k, acc in pl.while_(init_values=(0, x)):
            pl.cond(k < n)
            if k % 2 == 1:
                z = pl.yield_(pl.mul(acc, 2.0))
            else:
                z = pl.yield_(pl.add(acc, 10.0))
            k2, acc2 = pl.yield_(k + 1, z)
        return acc2

    @pl.function(type=pl.FunctionType.InCore)
    def early(
        self, x: pl.Tensor[[4, 8], pl.FP32], n: pl.Scalar[pl.INDEX]
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        # add 1 until 5 steps or n steps, whichever is first; `continue` skips even steps' add
        i = 0
        y = pl.mul(x, 1.0)
        while i < 100:
            i = i + 1
            if i > n:
                break
            if i % 2 == 0:
                continue
            y = pl.add(y, 1.0)
        return y

    @pl.function(type=pl.FunctionType.InCore)
    def select(
        self, x: pl.Tensor[[4, 8], pl.FP32], s: pl.Scalar[pl.FP32]
    ) -> pl.Tuple[pl.Tensor[[4, 8], pl.FP32], pl.Scalar[pl.FP32]]:
        # an if with two results, outside any loop
        if s > 0.0:
            t, u = pl.yield_(pl.mul(x, s), s + 1.0)
        else:
            t, u = pl.yield_(pl.neg(x), s - 1.0)
        return t, u

    @pl.function(type=pl.FunctionType.InCore)
    def shadow(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
        # the carry `acc` is loop-local: after the loop `acc` is the outer acc (x), `out` x + 3
        acc = pl.mul(x, 1.0)
        for i, (acc,) in pl.range(3, init_values=(acc,)):  # noqa: B007, B020 (the PyPTO pattern under test)
            nxt = pl.add(acc, 1.0)
            out = pl.yield_(nxt)
        r = pl.add(acc, out)
        return r

    @pl.function(type=pl.FunctionType.InCore)
    def outer_read(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
        # the yield target `y` is bound after the loop only: the body reads the outer y (x) in
        # every iteration, so the result is x + x
        y = pl.mul(x, 1.0)
        for i, (a,) in pl.range(3, init_values=(x,)):  # noqa: B007
            b = pl.add(y, x)
            y = pl.yield_(b)
        return y

    @pl.function(type=pl.FunctionType.InCore)
    def in_loop(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
        # an SSA if inside a for with carries: first iteration takes x, then adds 1.5
        for i, (prev,) in pl.range(4, init_values=(x,)):
            if i == 0:
                result = pl.yield_(x)
            else:
                result = pl.yield_(pl.add(prev, 1.5))
            out = pl.yield_(result)
        return out

    @pl.function(type=pl.FunctionType.InCore)
    def swap_if(
        self, x: pl.Tensor[[4, 8], pl.FP32], n: pl.Scalar[pl.INDEX]
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        # an SSA if whose results swap two names: a - b is x when n > 2, else -x
        a = pl.mul(x, 1.0)
        b = pl.mul(x, 2.0)
        if n > 2:
            a, b = pl.yield_(b, a)
        else:
            a, b = pl.yield_(a, b)
        return pl.sub(a, b)


def _ssa_oracle(x: np.ndarray, n: int) -> np.ndarray:
    acc = x.copy()
    for k in range(n):
        acc = acc * np.float32(2) if k % 2 == 1 else acc + np.float32(10)
    return acc


def _early_oracle(x: np.ndarray, n: int) -> np.ndarray:
    return x + np.float32(len([i for i in range(1, min(n, 100) + 1) if i % 2 == 1]))


CASES = [
    ("natural", (0,), lambda x: x),
    ("natural", (3,), lambda x: x + 3),
    ("ssa", (0,), lambda x: _ssa_oracle(x, 0)),
    ("ssa", (1,), lambda x: _ssa_oracle(x, 1)),
    ("ssa", (4,), lambda x: _ssa_oracle(x, 4)),
    ("early", (0,), lambda x: _early_oracle(x, 0)),
    ("early", (5,), lambda x: _early_oracle(x, 5)),
    ("early", (200,), lambda x: _early_oracle(x, 200)),
    ("shadow", (), lambda x: x + (x + 3)),
    ("outer_read", (), lambda x: x + x),
    ("in_loop", (), lambda x: x + np.float32(4.5)),
    ("swap_if", (5,), lambda x: x),
    ("swap_if", (0,), lambda x: -x),
]
IDS = [f"{c[0]}{c[1]}" for c in CASES]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name, args, oracle", CASES, ids=IDS)
def test_interpreter(name, args, oracle, fast):
    got = interpreter.run(Flow, name, X, *args, fast=fast)
    np.testing.assert_array_equal(got, oracle(X))


@pytest.mark.parametrize("s", [2.0, -1.0, 0.0])
@pytest.mark.parametrize("fast", [True, False])
def test_if_with_two_results(s, fast):
    t, u = interpreter.run(Flow, "select", X, s, fast=fast)
    np.testing.assert_array_equal(t, X * np.float32(s) if s > 0 else -X)
    assert u == (s + 1 if s > 0 else s - 1)


@pytest.fixture(scope="module")
def c_flow():
    return compile_c(Flow)


@pytest.mark.parametrize("name, args, oracle", CASES, ids=IDS)
def test_c_backend(c_flow, name, args, oracle):
    np.testing.assert_array_equal(c_flow.run(name, X, *args), oracle(X))


def test_c_backend_if_with_two_results(c_flow):
    for s in (2.0, -1.0):
        t, u = c_flow.run("select", X, s)
        np.testing.assert_array_equal(t, X * np.float32(s) if s > 0 else -X)
        assert u == (s + 1 if s > 0 else s - 1)


def test_round_trip_and_printed_forms():
    text = pl.print_ir(Flow)
    assert "        while i < n:\n" in text
    assert "for (k, acc,) in pl.while_(init_values=(0, x,)):\n            pl.cond(k < n)" in text
    assert "z = pl.yield_(pl.mul(acc, 2.0))" in text
    round_trip(Flow)


def test_checks_stay_quiet():
    assert [d for d in run_checks(Flow) if d.severity == "error"] == []


def test_parsed_text_while_scoping():
    """In the text IR too, the header names of pl.while_ are loop-local and the yield targets
    hold the final values."""
    text = pl.print_ir(Flow).replace("return acc2", "return acc")
    with pytest.raises(pl.PldslError) as info:
        pl.parse_ir(text)
    assert "unknown name 'acc'" in info.value.diagnostic.message


ENDLESS = (
    "import pldsl as pl\n\n@pl.program\nclass K:\n"
    "    @pl.function(type=pl.FunctionType.InCore)\n"
    "    def f(self, n: pl.Scalar[pl.INDEX]) -> pl.Scalar[pl.INDEX]:\n"
    "        i = 0\n"
    "        while i < n:\n"
    "            j = i + 1\n"
    "        return i\n"
)


@pytest.mark.parametrize("backend", ["interpreter", "c"])
def test_endless_while_is_a_fault(monkeypatch, backend):
    """The interpreter and the C backend both stop an endless while loop (no hang)."""
    from pldsl.execution import faults

    monkeypatch.setattr(faults, "MAX_WHILE_ITERATIONS", 50)
    (prog,) = pl.capture_source(ENDLESS, f"<endless-{backend}>")
    run = interpreter.run if backend == "interpreter" else compile_c(prog).run
    args = (prog, "f") if backend == "interpreter" else ("f",)
    assert run(*args, 0) == 0
    with pytest.raises(RuntimeFault) as info:
        run(*args, 1)
    d = info.value.diagnostic
    assert d.rule == "WhileLimit" and (d.span.line, d.span.col) == (8, 9), d.render()


WHILE_OOB = """
import pldsl as pl


@pl.program
class K:
    @pl.function(type=pl.FunctionType.InCore)
    def f(self, x: pl.Tensor[[16, 8], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[16, 8], pl.FP32]:
        i = 0
        while i < n:
            t = pl.slice(x, [4, 8], [EDGE, 0])
            x = pl.assemble(x, pl.add(t, 1.0), [0, 0])
            i = i + 1
        return x
"""


@pytest.mark.parametrize("edge, bad", [(12, False), (13, True)])
def test_checks_see_inside_while_bodies(edge, bad):
    """A window inside a while body ending exactly at the edge is clean; one row more is an
    error (the checks walk while bodies)."""
    (prog,) = pl.capture_source(WHILE_OOB.replace("EDGE", str(edge)), "<while-oob>")
    found = [d for d in run_checks(prog) if d.rule == "StaticOutOfBounds"]
    assert bool(found) == bad, [d.render() for d in found]
    if bad:
        assert found[0].span.line == 11


@pl.jit
def jit_while(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        i = 0
        y = pl.mul(x, 1.0)
        while i < 3:  # a loop-carried update keeps its name under the jit rename rule
            y = pl.add(y, 1.0)
            i = i + 1
        for j, acc in pl.while_(init_values=(0, y)):
            pl.cond(j < 2)
            j2, acc2 = pl.yield_(j + 1, pl.mul(acc, 2.0))
        out[:] = acc2
    return out


def test_while_in_a_jit_function():
    out = np.zeros_like(X)
    jit_while(X, out)
    np.testing.assert_array_equal(out, (X + 3) * 4)


@pytest.mark.parametrize(
    "old, new, fragment",
    [
        ("pl.while_(init_values=(0, x,))", "pl.while_(init_values=(0,))", "Mismatch: 2 iter_args"),
        ("pl.cond(k < n)", "pl.cond(k + n)", "while condition must be a Bool-typed"),
        ("while i < n:", "while i + n:", "while condition must be a Bool-typed"),
        # an SSA if's branches bind the same names and types; a loop yields its carries' types
        ("z = pl.yield_(pl.mul(acc, 2.0))", "q = pl.yield_(pl.mul(acc, 2.0))", "same names"),
        ("z = pl.yield_(pl.mul(acc, 2.0))", "z = pl.yield_(k)", "same names and types"),
        ("z = pl.yield_(pl.mul(acc, 2.0))", "pl.yield_(pl.mul(acc, 2.0))", "same names"),
        ("k2, acc2 = pl.yield_(k + 1, z)", "k2, acc2 = pl.yield_(k + 1, k)", "each carry's type"),
        ("out = pl.yield_(nxt)", "out = pl.yield_(i)", "each carry's type"),
    ],
)
def test_text_ir_errors(old, new, fragment):
    text = pl.print_ir(Flow)
    assert old in text
    with pytest.raises(pl.PldslError) as info:
        pl.parse_ir(text.replace(old, new, 1))
    assert fragment in info.value.diagnostic.message, info.value.diagnostic.render()


LOOP_VAR_SRC = """\
import pldsl as pl


@pl.program
class K:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, idx: pl.Tensor[[4], pl.INT32], out: pl.Out[pl.Tensor[[4], pl.INT32]]):
        ctr = pl.array.create(4, pl.INT32)
        for i in pl.range(4):
            slot = pl.read(idx, [i])
            ctr[i] = slot + 1
        for slot in pl.range(4):
            pl.write(out, [3 - slot], ctr[slot])
        return out
"""


def test_a_loop_variable_may_take_a_name_that_held_another_type():
    """PyPTO defines a loop variable afresh (deepseek_v4_flash_dspark/moe.py reuses `slot`,
    an INT32 counter in one block, as a pl.range loop variable in another): out is idx + 1
    reversed, on both engines; the INT32 `slot` and the loop's INDEX `slot` stay apart."""
    (prog,) = pl.capture_source(LOOP_VAR_SRC, "<loop_var>")
    round_trip(prog)
    idx = np.array([5, -6, 7, 1 << 20], np.int32)
    want = (idx + 1)[::-1]
    np.testing.assert_array_equal(interpreter.run(prog, "f", idx, np.zeros(4, np.int32)), want)
    np.testing.assert_array_equal(compile_c(prog).run("f", idx, np.zeros(4, np.int32)), want)


def test_a_loop_variable_rebinding_a_same_typed_name_is_the_same_variable():
    src = LOOP_VAR_SRC.replace(
        "slot = pl.read(idx, [i])", "slot = pl.cast(pl.read(idx, [i]), pl.INDEX)"
    )
    (prog,) = pl.capture_source(src, "<loop_var_same>")
    assert "for slot in pl.range" in pl.print_ir(prog)  # no renaming needed
