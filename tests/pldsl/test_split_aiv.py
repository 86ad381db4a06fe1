"""`for aiv_id in pl.split_aiv(n, mode=...)` regions and their crossings (pl.aiv_shard,
pl.aic_gather): the lanes run one after another, each seeing its band of an aiv_shard operand.
Values are checked against plain NumPy."""

import numpy as np
import pytest

import pldsl as pl
from pldsl.diagnostics import CaptureError


@pl.jit
def up_down(x: pl.Tensor[[8, 16], pl.FP32], y: pl.Out[pl.Tensor[[8, 16], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        a = pl.add(x, 1.0)
        for aiv_id in pl.split_aiv(2, mode=pl.SplitMode.UP_DOWN):
            band = pl.aiv_shard(a)
            y[aiv_id * 4 : aiv_id * 4 + 4, :] = pl.mul(band, pl.add(band, 0.0))
    return y


@pl.jit
def left_right(x: pl.Tensor[[4, 12], pl.FP32], y: pl.Out[pl.Tensor[[4, 12], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        a = pl.exp(x)
        for lane in pl.split_aiv(3, mode=pl.SplitMode.LEFT_RIGHT):
            band = pl.aiv_shard(a)
            y[:, lane * 4 : lane * 4 + 4] = pl.sub(band, pl.cast(lane, pl.FP32))
    return y


@pl.jit
def task_parallel(
    x: pl.Tensor[[4, 8], pl.FP32],
    y: pl.Out[pl.Tensor[[4, 8], pl.FP32]],
    owner: pl.Out[pl.Tensor[[2, 8], pl.INT32]],
):
    with pl.at(level=pl.Level.CORE_GROUP):
        a = pl.neg(x)
        for aiv_id in pl.split_aiv(2, mode=pl.SplitMode.NONE):
            whole = pl.aiv_shard(a)  # NONE: no split axis, the value crosses whole
            y[:, :] = pl.aic_gather(whole)
            for j in pl.range(aiv_id, 8, 2):  # disjoint work dispatched by the lane index
                pl.write(owner, [aiv_id, j], pl.cast(j + 1, pl.INT32))
    return y


def test_up_down_lane_takes_its_row_band():
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    y = np.zeros_like(x)
    up_down(x, y)
    a = x + np.float32(1)
    np.testing.assert_array_equal(y, a * a)


def test_left_right_lane_takes_its_column_band():
    x = np.random.default_rng(1).standard_normal((4, 12)).astype(np.float32)
    y = np.zeros_like(x)
    left_right(x, y)
    want = np.exp(x) - np.repeat(np.arange(3, dtype=np.float32), 4)[None, :]
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)  # exp: within an ulp


def test_none_mode_runs_the_whole_body_on_each_lane():
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    y = np.zeros_like(x)
    owner = np.zeros((2, 8), np.int32)
    task_parallel(x, y, owner)
    np.testing.assert_array_equal(y, -x)
    want = np.zeros((2, 8), np.int32)
    for lane in range(2):
        want[lane, lane::2] = np.arange(lane, 8, 2) + 1
    np.testing.assert_array_equal(owner, want)


def test_region_round_trips_through_the_ir_text():
    x = np.zeros((8, 16), np.float32)
    p = up_down.specialize(x, x.copy())
    text = pl.print_ir(p)
    assert "pl.range(0, 2, 1, split_aiv='UP_DOWN')" in text
    assert "pl.slice(a, [4, 16], [aiv_id * 4, 0])" in text
    assert pl.structural_equal(pl.parse_ir(text), p)
    assert [d for d in pl.check(p) if d.is_error] == []


SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, x: pl.Tensor[[6, 16], pl.FP32]) -> pl.Tensor[[6, 16], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            BODY
        return x
"""


@pytest.mark.parametrize(
    "body, message",
    [
        ("t = pl.aiv_shard(x)", "pl.aiv_shard must be used inside a 'for aiv_id in pl.split_aiv"),
        (
            "for i in pl.split_aiv(4, mode=pl.SplitMode.UP_DOWN):\n"
            "                t = pl.aiv_shard(x)",
            "splits axis 0 of pl.Tensor[[6, 16], pl.FP32] into 4 equal bands",
        ),
        (
            "for i in pl.split_aiv(2, mode=pl.SplitMode.UP_DOWN):\n"
            "                t = pl.aic_gather(x)",
            "pl.aic_gather in a UP_DOWN region (rejoining the lanes' halves) is not supported",
        ),
        ("for i in pl.split_aiv(2):\n                t = x", "pl.split_aiv takes the lane count"),
        (
            "for i in pl.split_aiv(0, mode=pl.SplitMode.NONE):\n                t = x",
            "must be a positive integer constant",
        ),
        (
            "for i in pl.split_aiv(2, mode=2):\n                t = x",
            "mode= of pl.split_aiv must be a pl.SplitMode",
        ),
    ],
)
def test_misuse_is_one_located_diagnostic(body, message):
    with pytest.raises(CaptureError) as err:
        pl.capture_source(SRC.replace("BODY", body), "<split-aiv>.py")
    d = err.value.diagnostic
    assert message in d.message
    assert d.span.line > 0
