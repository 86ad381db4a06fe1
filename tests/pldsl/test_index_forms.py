"""Two forms of pypto-lib's DeepSeek-V4 MoE dispatch (models/deepseek_v4_flash_mtp/moe.py):

* `cursor[d] = cursor[d] + 1` on a `pl.array` of INT32: the sum is INDEX here, and PyPTO's
  array update takes an INDEX value into any integer array (and back), so the write converts
  it. A plain tensor write keeps PyPTO's strict dtype rule.
* `for slot in pl.range(n)` after `slot = arr[i]` (an INT32) in an earlier block: PyPTO defines
  the loop variable anew in the loop's scope, so the loop gets a fresh INDEX variable.

Values are checked against plain NumPy."""

import numpy as np
import pytest

import pldsl as pl
from pldsl.diagnostics import CaptureError


@pl.jit
def histogram(ids: pl.Tensor[[6, 2], pl.INT32], out: pl.Out[pl.Tensor[[1, 8], pl.INT32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        cursor = pl.array.create(8, pl.INT32)
        for d in pl.range(8):
            cursor[d] = 0
        for t in pl.range(6):
            for k in pl.range(2):
                e = pl.read(ids, [t, k])
                cursor[e] = cursor[e] + 1
        row = pl.tile.full([1, 8], dtype=pl.INT32, value=0)
        for d in pl.range(8):
            pl.tile.write(row, [0, d], cursor[d])
        out = pl.store(row, [0, 0], out)
    return out


@pl.jit
def reuse_as_loop_var(counts: pl.Tensor[[4], pl.INT32], out: pl.Out[pl.Tensor[[4, 8], pl.INT32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        ctr = pl.array.create(4, pl.INT32)
        for d in pl.range(4):
            ctr[d] = 0
        for i in pl.range(4):
            slot = ctr[i]  # an INT32 scalar
            ctr[i] = slot + pl.read(counts, [i])
    with pl.at(level=pl.Level.CORE_GROUP):
        for i in pl.range(4):
            n = pl.cast(pl.read(counts, [i]), pl.INDEX)
            for slot in pl.range(n):  # the same name, now the loop's INDEX variable
                pl.write(out, [i, slot], pl.cast(slot * 10 + i, pl.INT32))
    return out


def test_array_write_of_an_index_value_counts_like_numpy():
    ids = np.array([[0, 1], [1, 2], [7, 7], [3, 1], [0, 0], [5, 6]], np.int32)
    out = np.zeros((1, 8), np.int32)
    histogram(ids, out)
    np.testing.assert_array_equal(out[0], np.bincount(ids.ravel(), minlength=8))
    text = pl.print_ir(histogram.specialize(ids, out))
    assert "pl.write(cursor, [e], pl.cast(pl.read(cursor, [e]) + 1, pl.INT32))" in text


def test_loop_variable_over_an_int32_name_is_a_fresh_index():
    counts = np.array([2, 0, 3, 1], np.int32)
    out = np.zeros((4, 8), np.int32)
    reuse_as_loop_var(counts, out)
    want = np.zeros((4, 8), np.int32)
    for i, n in enumerate(counts):
        want[i, :n] = np.arange(n) * 10 + i
    np.testing.assert_array_equal(out, want)


SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, t: pl.Tensor[[8], pl.INT32], n: pl.Scalar[pl.INT32]) -> pl.Tensor[[8], pl.INT32]:
        BODY
        return t
"""


@pytest.mark.parametrize(
    "body, message",
    [
        # a tensor (not a pl.array) keeps PyPTO's strict tensor.write rule
        ("t[0] = pl.read(t, [1]) + 1", "Subscript-write source must also be a tensor"),
        ("t = pl.write(t, [0], pl.read(t, [1]) + 1)", "pl.write value dtype INDEX differs"),
        # an assignment (not a loop variable) still may not change a name's dtype
        ("k = n\n        k = pl.cast(n, pl.INDEX)", "Cannot reassign 'k' with a different type"),
    ],
)
def test_strict_forms_stay_errors(body, message):
    with pytest.raises(CaptureError) as err:
        pl.capture_source(SRC.replace("BODY", body), "<index-forms>.py")
    assert message in err.value.diagnostic.message


LOCAL_ANN = """
import pldsl as pl

ROWS = 4  # a module constant the body shadows with a runtime value, as prefill_fwd.py does
M = pl.dynamic("M")


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, x: pl.Tensor[[M, 8], pl.FP32]) -> pl.Tensor[[M, 8], pl.FP32]:
        ROWS = pl.tensor.dim(x, 0) // 2
        v: ANNOTATION = pl.slice(x, [ROWS, 8], [0, 0])
        return x
"""


@pytest.mark.parametrize(
    "annotation, message",
    [
        ("pl.Tensor[[ROWS, 8], pl.FP32]", None),  # the local, as PyPTO resolves it
        ("pl.Tensor[[ROWS, 8], pl.BF16]", "does not match the value's type"),  # dtype still
        ("pl.Tensor[[ROWS, 8, 1], pl.FP32]", "does not match the value's type"),  # and rank
        ("pl.Tensor[[4, 8], pl.FP32]", "does not match the value's type"),  # no local: strict
    ],
)
def test_annotation_naming_a_body_local(annotation, message):
    src = LOCAL_ANN.replace("ANNOTATION", annotation)
    if message is None:
        (p,) = pl.capture_source(src, "<local-ann>.py")
        assert "v: pl.Tensor[[" in pl.print_ir(p)
        return
    with pytest.raises(CaptureError) as err:
        pl.capture_source(src, "<local-ann>.py")
    assert message in err.value.diagnostic.message
