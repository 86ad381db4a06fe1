"""Forms today's pypto-lib kernels use that have no numeric effect or that only change what
capture accepts: `pl.split(mode, slot_num=)`, `pl.cross_core_slot(slot_num=)`, a `@pl.jit`
return annotation `tuple[pl.Tensor, ...]` (NumPy goldens worked by hand, and the errors)."""

import textwrap

import numpy as np
import pytest

import pldsl as pl
from pldsl import interpreter


def capture(src: str) -> pl.Program:
    (program,) = pl.capture_source("import pldsl as pl\n" + textwrap.dedent(src), "<forms>")
    return program


@pytest.mark.parametrize(
    "hint",
    [
        "pl.split(pl.SplitMode.NONE, slot_num=2)",
        "pl.cross_core_slot(slot_num=4)",
        "pl.split(pl.SplitMode.UP_DOWN), pl.cross_core_slot(slot_num=1)",
    ],
)
def test_placement_hints_have_no_numeric_effect(hint):
    p = capture(f"""
        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4, 4], pl.FP32]):
                with pl.at(level=pl.Level.CORE_GROUP, optimizations=[{hint}]):
                    y = pl.add(x, 1.0)
                return y
    """)
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(interpreter.run(p, "f", x), x + 1.0)
    assert "slot" not in pl.print_ir(p)  # placement only: nothing recorded


@pytest.mark.parametrize(
    "hint, fragment",
    [
        ("pl.split(pl.SplitMode.NONE, slot_num=0)", "pl.split slot_num must be a positive"),
        ("pl.cross_core_slot(slot_num=True)", "pl.cross_core_slot slot_num must be a positive"),
        ("pl.cross_core_slot(slot_num=-2)", "got -2"),
    ],
)
def test_slot_num_must_be_a_positive_integer(hint, fragment):
    with pytest.raises(pl.CaptureError) as info:
        capture(f"""
            @pl.program
            class P:
                @pl.function
                def f(self, x: pl.Tensor[[4, 4], pl.FP32]):
                    with pl.at(level=pl.Level.CORE_GROUP, optimizations=[{hint}]):
                        y = pl.add(x, 1.0)
                    return y
        """)
    assert fragment in info.value.diagnostic.message, info.value.diagnostic.render()


DIM_SRC = """
T = pl.dynamic("T")

@pl.program
class P:
    @pl.function(type=pl.FunctionType.FTYPE)
    def f(self, x: pl.Tensor[[T, 8], pl.FP32], out: pl.Out[pl.Tensor[[T, 8], pl.FP32]]
          ) -> pl.Tensor[[T, 8], pl.FP32]:
        n = pl.tensor.dim(x, 0)
        cur = pl.create_tensor([n, 8], dtype=pl.FP32)
        cur = pl.add(x, 1.0)
        out = pl.assemble(out, cur, [0, 0])
        return out
"""


def test_tensor_dim_of_a_dynamic_parameter_extent_is_its_symbol():
    # PyPTO folds pl.tensor.dim(x, 0) onto x's dim symbol T in orchestration: [n, 8] is
    # [T, 8], so the rebinding of `cur` keeps its type
    p = capture(DIM_SRC.replace("FTYPE", "Orchestration"))
    text = pl.print_ir(p)
    assert "pl.create_tensor([T, 8], pl.FP32)" in text and "dim(" not in text
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    np.testing.assert_array_equal(interpreter.run(p, "f", x, np.zeros_like(x)), x + 1.0)


def test_tensor_dim_stays_a_runtime_read_outside_orchestration():
    with pytest.raises(pl.CaptureError) as info:
        capture(DIM_SRC.replace("FTYPE", "InCore"))
    assert "Cannot reassign 'cur' with a different type" in info.value.diagnostic.message


def test_a_name_bound_to_a_dim_symbol_may_be_rebound():
    p = capture("""
        T = pl.dynamic("T")

        @pl.program
        class P:
            @pl.function(type=pl.FunctionType.Orchestration)
            def f(self, x: pl.Tensor[[T, 8], pl.FP32]) -> pl.Scalar[pl.INDEX]:
                n = pl.tensor.dim(x, 0)
                m = n * 2
                n = pl.tensor.dim(x, 1)
                return m + n
    """)
    x = np.zeros((5, 8), np.float32)
    assert interpreter.run(p, "f", x) == 5 * 2 + 8  # by hand: T = 5, then n = 8


PREFETCH = """
@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, w: pl.Tensor[[4, 8], pl.FP32], x: pl.Tensor[[4, 8], pl.FP32]
          ) -> pl.Tensor[[4, 8], pl.FP32]:
        flat = pl.reshape(w, [32])
        BODY
        with pl.at(level=pl.Level.CORE_GROUP):
            y = pl.add(x, w)
        return y
"""


def test_prefetch_is_checked_and_changes_no_value():
    body = (
        "ctx = pl.prefetch.make_context()\n"
        "        evt = pl.prefetch.async_prefetch(flat, ctx)\n"
        "        pl.prefetch.async_prefetch(flat, ctx)\n"
        "        s = pl.prefetch.session(ctx)\n"
        "        done = pl.prefetch.wait(evt, s)"
    )
    p = capture(PREFETCH.replace("BODY", body))
    assert "prefetch" not in pl.print_ir(p)
    w, x = np.full((4, 8), 2.0, np.float32), np.arange(32, dtype=np.float32).reshape(4, 8)
    np.testing.assert_array_equal(interpreter.run(p, "f", w, x), x + 2.0)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("evt = pl.prefetch.async_prefetch(flat, flat)", "must be a prefetch context"),
        (
            "c = pl.prefetch.make_context()\n        e = pl.prefetch.async_prefetch(w, c)",
            "dims are all 1 but the last, got pl.Tensor[[4, 8], pl.FP32]",
        ),
        ("c = pl.prefetch.make_context(1)", "takes 0 positional argument"),
        ("c = pl.prefetch.flush()", "pl.prefetch.flush is not a supported op"),
        ("c = pl.prefetch.make_context()\n        z = pl.add(c, 1.0)", "undefined variable 'c'"),
    ],
)
def test_prefetch_errors(body, fragment):
    with pytest.raises(pl.CaptureError) as info:
        capture(PREFETCH.replace("BODY", body))
    assert fragment in info.value.diagnostic.message, info.value.diagnostic.render()
