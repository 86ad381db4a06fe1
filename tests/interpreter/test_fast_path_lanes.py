"""Batched loops whose body reads a buffer it writes (interpreter/batched.py, `Lanes.write`,
`Lanes.commit`): writes at rows taken from an index array, read back at rows from another.

The batched run applies writes at once, keeps what they overwrote, and commits only when no two
lanes wrote one row and no lane read a row another lane wrote; otherwise it restores the buffer
and the loop runs per tile. Goldens are plain NumPy (the iterations in order), never pldsl.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pldsl.interpreter import batched

import pldsl as pl
from pldsl import interpreter

SCATTER = """
    N = pl.dynamic("N")
    R = pl.dynamic("R")
    @pl.program
    class Scatter:
        @pl.function
        def main(self, x: pl.Tensor[[N, 4], pl.FP32], rows: pl.Tensor[[N], pl.INT32], reads: pl.Tensor[[N], pl.INT32], buf: pl.InOut[pl.Tensor[[R, 4], pl.FP32]], out: pl.InOut[pl.Tensor[[N, 4], pl.FP32]]) -> pl.Tensor[[N, 4], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            for i in pl.parallel(n):
                r = pl.cast(pl.tensor.read(rows, [i]), pl.INDEX)
                q = pl.cast(pl.tensor.read(reads, [i]), pl.INDEX)
                t = pl.slice(x, [1, 4], [i, 0])
                before = pl.mul(pl.slice(buf, [1, 4], [q, 0]), 1.0)
                buf = pl.assemble(buf, pl.mul(t, 2.0), [r, 0])
                after = pl.slice(buf, [1, 4], [q, 0])
                out = pl.assemble(out, pl.add(pl.add(before, after), t), [i, 0])
            return out
"""


def _program():
    return pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(SCATTER), "scatter.py")[0]


def _golden(x, rows, reads, buf, out):
    """The iterations one after another, in plain NumPy (FP32 throughout)."""
    buf, out = buf.copy(), out.copy()
    for i in range(len(x)):
        before = buf[reads[i]] * np.float32(1.0)
        buf[rows[i]] = x[i] * np.float32(2.0)
        after = buf[reads[i]]
        out[i] = (before + after) + x[i]
    return buf, out


def _batchable(rows, reads) -> bool:
    """What the commit check must accept: rows distinct, no lane reading another's row."""
    if len(set(rows)) < len(rows):
        return False
    return all(q == r or q not in set(rows) for q, r in zip(reads, rows))


def _run(prog, x, rows, reads, buf, out, fast: bool):
    buf, out = buf.copy(), out.copy()
    before = batched.STATS.get("batched", 0)
    interpreter.run(prog, "main", x, rows.astype(np.int32), reads.astype(np.int32), buf, out,
                    fast=fast)  # fmt: skip
    return buf, out, batched.STATS.get("batched", 0) - before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(2, 7), spare=st.integers(0, 4),
       distinct=st.booleans(), reads_kind=st.sampled_from(["own", "any", "untouched"]),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_index_scatter_then_read_back_agrees_with_the_iterations_in_order(
    data, n, spare, distinct, reads_kind, seed
):
    r_rows = n + spare
    if distinct:
        rows = data.draw(st.permutations(range(r_rows)))[:n]
    else:
        rows = data.draw(st.lists(st.integers(0, r_rows - 1), min_size=n, max_size=n))
    if reads_kind == "own":
        reads = list(rows)
    elif reads_kind == "untouched" and set(range(r_rows)) - set(rows):
        free = sorted(set(range(r_rows)) - set(rows))
        reads = data.draw(st.lists(st.sampled_from(free), min_size=n, max_size=n))
    else:
        reads = data.draw(st.lists(st.integers(0, r_rows - 1), min_size=n, max_size=n))
    rows, reads = np.array(rows), np.array(reads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    buf = rng.standard_normal((r_rows, 4)).astype(np.float32)
    out = rng.standard_normal((n, 4)).astype(np.float32)
    want_buf, want_out = _golden(x, rows, reads, buf, out)
    prog = _program()
    fast_buf, fast_out, ran = _run(prog, x, rows, reads, buf, out, fast=True)
    plain_buf, plain_out, _ = _run(prog, x, rows, reads, buf, out, fast=False)
    np.testing.assert_array_equal(fast_buf, want_buf)
    np.testing.assert_array_equal(fast_out, want_out)
    np.testing.assert_array_equal(plain_buf, want_buf)
    np.testing.assert_array_equal(plain_out, want_out)
    # batched exactly when the check can prove lockstep == in order (else restored, per tile)
    assert ran == (1 if _batchable(list(rows), list(reads)) else 0)


@pytest.mark.parametrize(
    "rows, reads",
    [
        ([0, 1, 1, 3], [0, 1, 2, 3]),  # two lanes write one row
        ([0, 1, 2, 3], [0, 2, 2, 3]),  # lane 1 reads the row lane 2 writes (after it in order)
        ([0, 1, 2, 3], [0, 1, 0, 3]),  # lane 2 reads the row lane 0 writes (before it)
    ],
)
def test_conflicting_lanes_fall_back_with_nothing_half_written(rows, reads):
    prog = _program()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    buf = rng.standard_normal((6, 4)).astype(np.float32)
    out = np.zeros((4, 4), np.float32)
    rows, reads = np.array(rows), np.array(reads)
    want_buf, want_out = _golden(x, rows, reads, buf, out)
    before = dict(batched.STATS)
    fast_buf, fast_out, ran = _run(prog, x, rows, reads, buf, out, fast=True)
    assert ran == 0
    fell = {k: v - before.get(k, 0) for k, v in batched.STATS.items() if k.startswith("fallback")}
    assert any(fell.values())  # tried batched, then restored and ran per tile
    np.testing.assert_array_equal(fast_buf, want_buf)
    np.testing.assert_array_equal(fast_out, want_out)


WRITE_THEN_FAULT = """
    N = pl.dynamic("N")
    R = pl.dynamic("R")
    @pl.program
    class WriteThenFault:
        @pl.function
        def main(self, x: pl.Tensor[[N, 4], pl.FP32], rows: pl.Tensor[[N], pl.INT32], reads: pl.Tensor[[N], pl.INT32], buf: pl.InOut[pl.Tensor[[R, 4], pl.FP32]], out: pl.InOut[pl.Tensor[[N, 4], pl.FP32]]) -> pl.Tensor[[N, 4], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            for i in pl.parallel(n):
                r = pl.cast(pl.tensor.read(rows, [i]), pl.INDEX)
                q = pl.cast(pl.tensor.read(reads, [i]), pl.INDEX)
                buf = pl.assemble(buf, pl.mul(pl.slice(x, [1, 4], [i, 0]), 2.0), [r, 0])
                out = pl.assemble(out, pl.slice(x, [1, 4], [q, 0]), [i, 0])
            return out
"""


def test_a_fault_in_one_lane_restores_and_faults_as_the_per_tile_path():
    """Every lane writes `buf`, then lane 2 reads past `x`: the batched run has applied all
    four lanes' writes when the read faults, restores them, and the per-tile path faults in
    iteration 2 after its own write, exactly as the plain path."""
    src = "import pldsl as pl\n" + inspect.cleandoc(WRITE_THEN_FAULT)
    prog = pl.capture_source(src, "write_then_fault.py")[0]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    buf = rng.standard_normal((5, 4)).astype(np.float32)
    out = np.zeros((4, 4), np.float32)
    rows, reads = np.array([0, 1, 2, 3], np.int32), np.array([0, 1, 9, 3], np.int32)
    # golden, in order: iterations 0 and 1 whole, iteration 2's write, then its fault
    want_buf, want_out = buf.copy(), out.copy()
    for i in range(3):
        want_buf[rows[i]] = x[i] * np.float32(2.0)
    want_out[:2] = x[reads[:2]]
    texts = []
    for fast in (True, False):
        b, o = buf.copy(), out.copy()
        with pytest.raises(pl.PldslError) as err:
            interpreter.run(prog, "main", x, rows, reads, b, o, fast=fast)
        texts.append(str(err.value))
        np.testing.assert_array_equal(b, want_buf)
        np.testing.assert_array_equal(o, want_out)
    assert texts[0] == texts[1]


# ------------------------------------------------------------------ lane-dependent trip counts

RAGGED = """
    N = pl.dynamic("N")
    M = pl.dynamic("M")
    @pl.program
    class Ragged:
        @pl.function
        def main(self, x: pl.Tensor[[{C}, 4], pl.FP32], counts: pl.Tensor[[N], pl.INT32], picks: pl.Tensor[[M], pl.INT32], buf: pl.InOut[pl.Tensor[[M, 4], pl.FP32]], out: pl.InOut[pl.Tensor[[N, 4], pl.FP32]]) -> pl.Tensor[[N, 4], pl.FP32]:
            n = pl.tensor.dim(counts, 0)
            for i in pl.parallel(n):
                k = pl.cast(pl.tensor.read(counts, [i]), pl.INDEX)
                acc = pl.full([1, 4], dtype=pl.FP32, value=0.5)
                for j in pl.range(k):
                    r = pl.cast(pl.tensor.read(picks, [i * {C} + j]), pl.INDEX)
                    acc = pl.add(pl.mul(acc, 0.75), pl.slice(x, [1, 4], [r, 0]))
                    buf = pl.assemble(buf, acc, [i * {C} + j, 0])
                out = pl.assemble(out, pl.exp(acc), [i, 0])
            return out
"""


def _ragged_golden(x, counts, picks, buf, out, c):
    buf, out = buf.copy(), out.copy()
    for i, k in enumerate(counts):
        acc = np.full(4, 0.5, np.float32)
        for j in range(k):
            acc = acc * np.float32(0.75) + x[picks[i * c + j]]
            buf[i * c + j] = acc
        out[i] = np.exp(acc)
    return buf, out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(2, 6), c=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_inner_loops_with_lane_dependent_trips_run_masked(data, n, c, seed):
    """Lane i runs its inner loop counts[i] times (0 included): lanes past their own end are
    masked off (no write, carries kept); the row indices they would read lie outside `x`
    (-7), which must not stop the batched run."""
    counts = np.array(data.draw(st.lists(st.integers(0, c), min_size=n, max_size=n)))
    rng = np.random.default_rng(seed)
    picks = np.full(n * c, -7)
    for i, k in enumerate(counts):
        picks[i * c : i * c + k] = rng.integers(0, c, size=k)
    x = rng.standard_normal((c, 4)).astype(np.float32)
    buf = rng.standard_normal((n * c, 4)).astype(np.float32)
    out = np.zeros((n, 4), np.float32)
    prog = pl.capture_source(
        "import pldsl as pl\n" + inspect.cleandoc(RAGGED.format(C=c)), "ragged.py"
    )[0]
    want_buf, want_out = _ragged_golden(x, counts, picks, buf, out, c)
    results = []
    for fast in (True, False):
        b, o = buf.copy(), out.copy()
        before = batched.STATS.get("batched", 0)
        interpreter.run(prog, "main", x, counts.astype(np.int32), picks.astype(np.int32), b, o,
                        fast=fast)  # fmt: skip
        results.append((b, o, batched.STATS.get("batched", 0) - before))
    (fb, fo, ran), (pb, po, _) = results
    np.testing.assert_array_equal(pb, want_buf)
    np.testing.assert_allclose(po, want_out, rtol=1e-6)  # NumPy's exp, not the contract's
    np.testing.assert_array_equal(fb, pb)
    np.testing.assert_array_equal(fo, po)  # the fast path: bit for bit the plain path
    assert ran == 1


# ------------------------------------------------------------------ gathered windows

GATHER = """
    N = pl.dynamic("N")
    @pl.program
    class Gather:
        @pl.function
        def main(self, x: pl.Tensor[[8, 6], pl.FP32], idx: pl.Tensor[[N, 4], pl.INT32], out: pl.InOut[pl.Tensor[[N, 4], pl.FP32]]) -> pl.Tensor[[N, 4], pl.FP32]:
            n = pl.tensor.dim(idx, 0)
            for i in pl.parallel(n):
                r = pl.cast(pl.tensor.read(idx, [i, 0]), pl.INDEX)
                c = pl.cast(pl.tensor.read(idx, [i, 1]), pl.INDEX)
                r2 = pl.cast(pl.tensor.read(idx, [i, 2]), pl.INDEX)
                c2 = pl.cast(pl.tensor.read(idx, [i, 3]), pl.INDEX)
                a = pl.slice(x, [2, 2], [r, 1])
                b = pl.slice(x, [2, 2], [1, c])
                d = pl.slice(x, [2, 2], [r, c])
                t = pl.mul(pl.slice(x, [4, 4], [i, 0]), 2.0)
                e = pl.slice(t, [2, 2], [r2, 1])
                f = pl.slice(t, [2, 2], [1, c2])
                s = pl.add(pl.add(a, b), pl.add(d, pl.add(e, f)))
                out = pl.assemble(out, pl.reshape(s, [1, 4]), [i, 0])
            return out
"""


def _gather_golden(x, idx):
    out = np.zeros((len(idx), 4), np.float32)
    for i, (r, c, r2, c2) in enumerate(idx):
        t = x[i : i + 4, 0:4] * np.float32(2.0)
        a, b, d = x[r : r + 2, 1:3], x[1:3, c : c + 2], x[r : r + 2, c : c + 2]
        s = (a + b) + (d + (t[r2 : r2 + 2, 1:3] + t[1:3, c2 : c2 + 2]))
        out[i] = s.reshape(4)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_windows_at_lane_offsets_gather_as_the_iterations_read_them(data, n, seed):
    """Windows whose offsets come from an index array (not affine in the lane, so no strided
    view): rows by lane (with a column range), columns by lane, both, from an argument and
    from a tile each lane computed (`Lanes._gather`)."""
    col = st.tuples(st.integers(0, 6), st.integers(0, 4), st.integers(0, 2), st.integers(0, 2))
    idx = np.array(data.draw(st.lists(col, min_size=n, max_size=n)), np.int32)
    x = np.random.default_rng(seed).standard_normal((8, 6)).astype(np.float32)
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(GATHER), "gather.py")[0]
    got = []
    for fast in (True, False):
        before = batched.STATS.get("batched", 0)
        out = interpreter.run(prog, "main", x, idx, np.zeros((n, 4), np.float32), fast=fast)
        got.append((np.asarray(out), batched.STATS.get("batched", 0) - before))
    (fast_out, ran), (plain_out, _) = got
    np.testing.assert_array_equal(plain_out, _gather_golden(x, idx))
    np.testing.assert_array_equal(fast_out, plain_out)
    assert ran == 1
