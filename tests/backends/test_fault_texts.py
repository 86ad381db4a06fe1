"""Both engines report a window fault in the same words (pldsl/execution/faults.py is the one
place for them): the same rule, message and help, and the op the kernel wrote in the label, also
for gather_row, whose C form is a slice and an assemble."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import pldsl as pl
from pldsl import interpreter
from pldsl.backends import c
from pldsl.diagnostics import RuntimeFault

SRC = """import pldsl as pl
@pl.program
class P:
    @pl.function
    def k(self, s: pl.Tensor[[3, 8], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[2, 8], pl.FP32]:
        acc = pl.create_l1([2, 8], pl.FP32)
        {body}
        return acc
"""

# (the kernel's statement, n, the message both engines give: worked out by hand)
CASES = {
    "gather_src_past": (
        "acc = pl.gather_row(acc, s, [0, 0], [n, 0], [1, 8])",
        5,
        "pl.gather_row: window out of bounds on axis 0: offset 5 + extent 1 = 6 > 3 (dim 0 of 's')",
    ),
    "gather_src_negative": (
        "acc = pl.gather_row(acc, s, [0, 0], [0, n - 3], [1, 8])",
        1,
        "pl.gather_row: window out of bounds on axis 1: negative offset -2 into 's'",
    ),
    "gather_dst_past": (
        "acc = pl.gather_row(acc, s, [n, 0], [0, 0], [1, 8])",
        2,
        "pl.gather_row: window out of bounds on axis 0: offset 2 + extent 1 = 3 > 2 "
        "(dim 0 of 'acc')",
    ),
    "gather_valid_shape": (
        "acc = pl.gather_row(acc, s, [0, 0], [0, 0], [1, 8], valid_shape=[1, n])",
        9,
        "pl.gather_row: valid_shape does not fit the window on axis 1 (9 not in [0, 8])",
    ),
    "load_valid_shape": (  # pl.load checks its window as pl.slice does
        "t = pl.load(s, [0, 0], [2, 8], valid_shape=[2, n])",
        9,
        "pl.load: valid_shape does not fit the window on axis 1 (9 not in [0, 8])",
    ),
    "set_validshape": (
        "t = pl.tile.set_validshape(pl.load(s, [0, 0], [2, 8]), 2, n)",
        9,
        "pl.tile.set_validshape: valid shape does not fit the tile on axis 1 (9 not in [0, 8])",
    ),
    "slice_past": (
        "acc = pl.slice(s, [2, 8], [n, 0])",
        2,
        "pl.slice: window out of bounds on axis 0: offset 2 + extent 2 = 4 > 3 (dim 0 of 's')",
    ),
}


@functools.cache
def _program(body: str) -> pl.Program:
    (prog,) = pl.capture_source(SRC.format(body=body), "fault_texts.py")
    return prog


def _fault(run, prog, n):
    src = np.arange(24, dtype=np.float32).reshape(3, 8)
    with pytest.raises(RuntimeFault) as e:
        run(prog, src, n)
    return e.value.diagnostic


@pytest.mark.parametrize("case", list(CASES))
def test_window_faults_read_the_same_on_both_engines(case):
    body, n, want = CASES[case]
    prog = _program(body)
    di = _fault(lambda p, *a: interpreter.run(p, "k", *a), prog, n)
    dc = _fault(lambda p, *a: c.compile(p).run("k", *a), prog, n)
    assert di.message == want
    assert (dc.rule, dc.message, dc.help, dc.span.line) == (di.rule, di.message, di.help, 7)
