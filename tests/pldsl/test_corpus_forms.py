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
