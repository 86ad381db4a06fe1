"""Batched tile loops (interpreter/batched.py) against the plain path, on generated loop nests.

Elementwise ops, casts, reductions and fills must agree bit for bit with the plain path;
matmuls within `numerics.matmul_error_bound` of the exact product (docs/numerics.md). Each
case also checks whether the loop ran batched or fell back, so a batched form that silently
never runs (or runs where it must not) fails here.
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
from pldsl.execution import numerics

BF16 = numerics.storage_dtype("BF16")

# Tile bodies: each rewrites `t` ([T, C] FP32, fully valid after the fillpad) from `t`, `yt`
# (another [T, C] tile) and `g` ([1, C], the same in every iteration).
BODIES = [
    "t = pl.add(t, yt)",
    "t = pl.mul(t, 1.5)",
    "t = pl.exp(pl.mul(t, 0.25))",
    "t = pl.row_expand_sub(t, pl.row_max(t))",
    "t = pl.row_expand_mul(t, pl.row_sum(t))",
    "t = pl.cast(pl.cast(t, pl.BF16), pl.FP32)",
    "t = pl.maximum(t, yt)",
    "t = pl.col_expand_mul(t, g)",
    "t = pl.reshape(pl.reshape(t, [{T2}, {C2}]), [{T}, {C}])",
    "t = pl.recip(pl.add(pl.abs(t), 1.0))",
]

# An inner loop carrying an accumulator over column chunks (a nested serial loop).
INNER = """
                acc = pl.full([{T}, 1], dtype=pl.FP32, value=0.0)
                for k in pl.range(0, {C}, {CK}):
                    acc = pl.add(acc, pl.row_sum(pl.slice(t, [{T}, {CK}], [0, k])))
                t = pl.row_expand_add(t, acc)"""

NEST = """
    N = pl.dynamic("N")
    @pl.program
    class Nest:
        @pl.function
        def main(self, x: pl.Tensor[[N, {C}], pl.FP32], y: pl.Tensor[[N, {C}], pl.BF16], g: pl.Tensor[[1, {C}], pl.FP32], out: pl.Out[pl.Tensor[[N, {C}], pl.FP32]]) -> pl.Tensor[[N, {C}], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            for i in pl.{KIND}(0, (n + {T} - 1) // {T}):
                r0 = i * {T}
                valid = pl.min({T}, n - r0)
                t = pl.fillpad(pl.slice(x, [{T}, {C}], [r0, 0], valid_shape=[valid, {C}]), pad_value=pl.PadValue.zero)
                yt = pl.cast(pl.fillpad(pl.slice(y, [{T}, {C}], [r0, 0], valid_shape=[valid, {C}]), pad_value=pl.PadValue.min), pl.FP32)
{BODY}
                out = pl.assemble(out, pl.slice(t, [{T}, {C}], [0, 0], valid_shape=[valid, {C}]), [r0, 0])
            return out
"""


def _nest(kind: str, t: int, c: int, ck: int, body: list[str], inner: bool, read_out: str):
    even = c % 2 == 0
    consts = {"T": t, "C": c, "CK": ck, "T2": t * 2 if even else t, "C2": c // 2 if even else c}
    lines = [" " * 16 + b.format(**consts) for b in body]
    if inner:
        lines.append(INNER.strip("\n").format(**consts))
    if read_out == "own":  # the iteration reads back its own window of `out` (no other's)
        lines.append(" " * 16 + "t = pl.add(t, pl.slice(out, [{T}, {C}], [r0, 0], "
                     "valid_shape=[valid, {C}]))".format(**consts))  # fmt: skip
    src = inspect.cleandoc(NEST.format(KIND=kind, BODY="\n".join(lines), **consts))
    return pl.capture_source("import pldsl as pl\n" + src, "nest.py")[0]


def _args(n: int, c: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c)).astype(np.float32)
    y = rng.standard_normal((n, c)).astype(np.float32).astype(BF16)
    g = rng.standard_normal((1, c)).astype(np.float32)
    return x, y, g


def _runs(prog, args):
    before = dict(batched.STATS)
    fast = interpreter.run(prog, "main", *args, None)
    ran = batched.STATS.get("batched", 0) - before.get("batched", 0)
    plain = interpreter.run(prog, "main", *args, None, fast=False)
    return fast, plain, ran


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["parallel", "range"]),
    t=st.sampled_from([1, 2, 4]),
    c=st.sampled_from([4, 6, 8]),
    n=st.integers(1, 13),
    body=st.lists(st.sampled_from(BODIES), min_size=1, max_size=4),
    inner=st.booleans(),
    read_out=st.sampled_from(["no", "no", "own"]),
    seed=st.integers(0, 2**16),
)
def test_batched_loop_nests_agree_bit_for_bit(kind, t, c, n, body, inner, read_out, seed):
    ck = 2 if c % 2 == 0 else c
    prog = _nest(kind, t, c, ck, body, inner, read_out)
    fast, plain, ran = _runs(prog, _args(n, c, seed))
    assert fast.tobytes() == plain.tobytes()
    trips = -(-n // t)
    if trips < 2:
        assert ran == 0  # one iteration: the per-tile path ran
    else:  # reading back its own window of `out` batches too (the read check passes)
        assert ran >= 1


OVERLAP = """
    @pl.program
    class Overlap:
        @pl.function
        def main(self, x: pl.Tensor[[16, 4], pl.FP32], out: pl.Out[pl.Tensor[[18, 4], pl.FP32]]) -> pl.Tensor[[18, 4], pl.FP32]:
            for i in pl.parallel(0, 8):
                t = pl.mul(pl.slice(x, [2, 4], [i * 2, 0]), 2.0)
                out = pl.assemble(out, t, [i * STRIDE, 0])
            return out
"""


@pytest.mark.parametrize("stride,batches", [(2, True), (1, False)])
def test_overlapping_windows_are_not_batched(stride, batches):
    """Windows one row apart overlap between iterations: the proof fails, the per-tile path
    runs (last iteration wins, as written)."""
    src = OVERLAP.replace("STRIDE", str(stride))
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "ov.py")[0]
    x = np.arange(64, dtype=np.float32).reshape(16, 4)
    before = batched.STATS.get("batched", 0)
    fast = interpreter.run(prog, "main", x, np.zeros((18, 4), np.float32))
    ran = batched.STATS.get("batched", 0) - before
    plain = interpreter.run(prog, "main", x, np.zeros((18, 4), np.float32), fast=False)
    assert fast.tobytes() == plain.tobytes()
    assert ran == (1 if batches else 0)
    expected = np.zeros((18, 4), np.float32)
    for i in range(8):
        expected[i * stride : i * stride + 2] = x[i * 2 : i * 2 + 2] * 2
    np.testing.assert_array_equal(fast, expected)


ALIAS = """
    @pl.program
    class Alias:
        @pl.function
        def main(self, x: pl.Tensor[[8, 4], pl.FP32], out: pl.InOut[pl.Tensor[[8, 4], pl.FP32]]) -> pl.Tensor[[8, 4], pl.FP32]:
            view = pl.reshape(out, [4, 8])
            for i in pl.parallel(0, 4):
                prev = pl.reshape(pl.slice(view, [1, 8], [ROW, 0]), [2, 4])
                t = pl.add(pl.add(pl.slice(x, [2, 4], [i * 2, 0]), prev), 1.0)
                out = pl.assemble(out, t, [i * 2, 0])
            return out
"""

INDEPENDENT = """
    @pl.program
    class Independent:
        @pl.function
        def main(self, x: pl.Tensor[[8, 4], pl.FP32], out: pl.Out[pl.Tensor[[8, 4], pl.FP32]]) -> pl.Tensor[[8, 4], pl.FP32]:
            for i in pl.parallel(0, 4):
                t = pl.add(pl.slice(x, [2, 4], [i * 2, 0]), 1.0)
                out = pl.assemble(out, t, [i * 2, 0])
            return out
"""


@pytest.mark.parametrize("row", ["i", "3 - i"])
def test_aliasing_views_fall_back(row):
    """`view` is `out` seen through a reshape: iteration i reads a row of `out` (its own, or
    one an earlier iteration wrote) and writes `out`. Neither runs batched."""
    src = ALIAS.replace("ROW", row)
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "alias.py")[0]
    x = np.arange(32, dtype=np.float32).reshape(8, 4)
    a = np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4)
    b = a.copy()
    before = batched.STATS.get("batched", 0)
    interpreter.run(prog, "main", x, a)
    assert batched.STATS.get("batched", 0) == before
    interpreter.run(prog, "main", x, b, fast=False)
    assert a.tobytes() == b.tobytes()
    # golden: the iterations in order, plain NumPy (row k of the [4, 8] view is out[2k:2k+2])
    want = np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4)
    for i in range(4):
        k = i if row == "i" else 3 - i
        prev = want[2 * k : 2 * k + 2].copy()
        want[2 * i : 2 * i + 2] = x[2 * i : 2 * i + 2] + prev + np.float32(1)
    np.testing.assert_array_equal(a, want)


FAULT = """
    @pl.program
    class Fault:
        @pl.function
        def main(self, x: pl.Tensor[[8, 4], pl.FP32], n: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[8, 4], pl.FP32]]) -> pl.Tensor[[8, 4], pl.FP32]:
            for i in pl.parallel(0, n):
                t = pl.add(pl.slice(x, [2, 4], [i * 2, 0]), 1.0)
                out = pl.assemble(out, t, [i * 2, 0])
            return out
"""


def test_a_fault_in_a_batched_loop_is_the_per_tile_fault():
    """One iteration too many: the batched attempt falls back before writing anything, and the
    per-tile path raises its own fault after writing the iterations before it."""
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(FAULT), "fault.py")[0]
    x = np.arange(32, dtype=np.float32).reshape(8, 4)
    texts, outs = [], []
    for fast in (True, False):
        out = np.zeros((8, 4), np.float32)
        with pytest.raises(pl.PldslError) as err:
            interpreter.run(prog, "main", x, 5, out, fast=fast)
        texts.append(str(err.value))
        outs.append(out)
    assert texts[0] == texts[1]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], x + 1)  # the four iterations before the fault


MM = """
    @pl.program
    class MM:
        @pl.function
        def main(self, x: pl.Tensor[[M, K], pl.BF16], w: pl.Tensor[[K, NW], pl.BF16], out: pl.Out[pl.Tensor[[M, NW], pl.FP32]]) -> pl.Tensor[[M, NW], pl.FP32]:
            for j in pl.parallel(0, NB):
                wj = pl.slice(w, [K, NT], [0, j * NT])
                out = pl.assemble(out, pl.matmul(x, wj, out_dtype=pl.FP32), [0, j * NT])
            return out
"""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 5), k=st.integers(1, 40), nt=st.integers(1, 9), nb=st.integers(2, 5),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_batched_matmuls_stay_within_the_matmul_bound(m, k, nt, nb, seed):
    nw = nt * nb
    src = MM.replace("NW", str(nw)).replace("NB", str(nb)).replace("NT", str(nt))
    src = src.replace("[M,", f"[{m},").replace(", K]", f", {k}]").replace("[K,", f"[{k},")
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "mm.py")[0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32).astype(BF16)
    w = rng.standard_normal((k, nw)).astype(np.float32).astype(BF16)
    before = batched.STATS.get("batched", 0)
    fast = interpreter.run(prog, "main", x, w, None)
    assert batched.STATS.get("batched", 0) == before + 1
    exact = x.astype(np.float64) @ w.astype(np.float64)
    bound = numerics.matmul_error_bound(x, w, "FP32")
    assert np.all(np.abs(fast.astype(np.float64) - exact) <= bound)


def test_strict_mode_and_traces_keep_the_per_tile_path():
    src = inspect.cleandoc(INDEPENDENT)
    prog = pl.capture_source("import pldsl as pl\n" + src, "independent.py")[0]
    a = np.arange(32, dtype=np.float32).reshape(8, 4)
    before = batched.STATS.get("batched", 0)
    interpreter.run(prog, "main", a, None, strict=True)
    assert batched.STATS.get("batched", 0) == before
    interpreter.run(prog, "main", a, None)
    assert batched.STATS.get("batched", 0) == before + 1


KMM = """
    @pl.program
    class KMM:
        @pl.function
        def main(self, x: pl.Tensor[[{m}, {ka}], pl.BF16], w: pl.Tensor[[{wr}, {wc}], pl.BF16], out: pl.Out[pl.Tensor[[{m}, {nw}], pl.FP32]]) -> pl.Tensor[[{m}, {nw}], pl.FP32]:
            for j in pl.parallel(0, {nb}):
                acc = pl.matmul(pl.slice(x, [{m}, {k}], [0, 0]), pl.slice(w, {wshape}, {off0}), out_dtype=pl.FP32{trans})
                for kb in pl.range(1, {nk}):
                    k0 = kb * {k}
                    a_i = pl.slice(x, [{m}, {k}], [0, k0])
                    w_i = pl.slice(w, {wshape}, {offk})
                    acc = pl.matmul_acc(acc, a_i, w_i{trans})
                out = pl.assemble(out, acc, [0, j * {nt}])
            return out
"""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 4), k=st.integers(1, 8), nk=st.integers(2, 4), nt=st.integers(1, 6),
       nb=st.integers(2, 4), b_trans=st.booleans(), seed=st.integers(0, 2**16))  # fmt: skip
def test_k_loops_in_a_batched_loop_join_within_the_matmul_bound(m, k, nk, nt, nb, b_trans, seed):
    """Each iteration of the parallel loop runs a matmul_acc K-loop: batched, the K windows
    join per lane into one product (as the per-tile fast path joins them)."""
    ka, nw = k * nk, nt * nb
    src = KMM.format(
        m=m, k=k, ka=ka, nk=nk, nt=nt, nb=nb, nw=nw,
        wr=nw if b_trans else ka, wc=ka if b_trans else nw,
        wshape=f"[{nt}, {k}]" if b_trans else f"[{k}, {nt}]",
        off0=f"[j * {nt}, 0]" if b_trans else f"[0, j * {nt}]",
        offk=f"[j * {nt}, k0]" if b_trans else f"[k0, j * {nt}]",
        trans=", b_trans=True" if b_trans else "",
    )  # fmt: skip
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "kmm.py")[0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, ka)).astype(np.float32).astype(BF16)
    w = rng.standard_normal((nw, ka) if b_trans else (ka, nw)).astype(np.float32).astype(BF16)
    before = batched.STATS.get("batched", 0)
    fast = interpreter.run(prog, "main", x, w, None)
    assert batched.STATS.get("batched", 0) == before + 1
    plain = interpreter.run(prog, "main", x, w, None, fast=False)
    wf = w.T if b_trans else w
    exact = x.astype(np.float64) @ wf.astype(np.float64)
    bound = numerics.matmul_error_bound(x, wf, "FP32")
    assert np.all(np.abs(fast.astype(np.float64) - exact) <= bound)
    assert np.all(np.abs(plain.astype(np.float64) - exact) <= bound)


CARRIES = """
    @pl.program
    class Carries:
        @pl.function
        def main(self, x: pl.Tensor[[8, 4], pl.FP32], out: pl.Out[pl.Tensor[[8, 4], pl.FP32]]) -> pl.Tensor[[8, 4], pl.FP32]:
            for i in pl.parallel(0, 4):
                t = pl.slice(x, [2, 4], [i * 2, 0])
                y = pl.mul(t, 1.0)
                for k, (acc,) in pl.range(3, init_values=(t,)):
                    if k == 0:
                        step = pl.yield_(pl.mul(acc, 2.0))
                    else:
                        step = pl.yield_(pl.add(acc, 1.0))
                    both = pl.add(step, y)
                    y = pl.yield_(both)
                r = pl.add(y, t)
                out = pl.assemble(out, r, [i * 2, 0])
            return out
"""


def test_loop_carries_and_ssa_ifs_inside_a_batched_loop():
    """PyPTO's scoping inside a batched body: an SSA if's yield binds the if's result; a loop's
    yield target (`y`) is bound only when the loop ends, so every iteration reads the outer
    `y` (= t). By hand: acc = t -> 2t + t = 3t -> (3t + 1) + t = 4t + 1 -> (4t + 2) + t; after
    the loop y = 5t + 2, and r = y + t = 6t + 2."""
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(CARRIES), "carries.py")[0]
    x = np.linspace(-2, 2, 32, dtype=np.float32).reshape(8, 4)
    expected = x * np.float32(6) + np.float32(2)
    fast, plain = np.zeros_like(x), np.zeros_like(x)
    before = batched.STATS.get("batched", 0)
    interpreter.run(prog, "main", x, fast)
    assert batched.STATS.get("batched", 0) == before + 1
    interpreter.run(prog, "main", x, plain, fast=False)
    np.testing.assert_allclose(plain, expected, rtol=1e-6)
    assert fast.tobytes() == plain.tobytes()


# Group g writes blocks g*MB + sb for sb < nb, nb a run-time scalar: disjoint between groups
# only while nb <= MB, which the IR cannot prove (the qwen3 attention loops over KV heads have
# this shape). The batched run checks its journaled writes and falls back when they overlap.
CHECKED = """
    @pl.program
    class Checked:
        @pl.function
        def main(self, x: pl.Tensor[[64, 4], pl.FP32], nb: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[64, 4], pl.FP32]]) -> pl.Tensor[[64, 4], pl.FP32]:
            for g in pl.range(G):
                scale = pl.slice(x, [2, 4], [g * 2, 0])
                for sb in pl.parallel(nb):
                    row = (g * MB + sb) * 2
                    t = pl.add(pl.mul(pl.slice(x, [2, 4], [row, 0]), scale), 0.5)
                    out = pl.assemble(out, t, [row, 0])
            return out
"""


def _checked_plain(x: np.ndarray, nb: int, groups: int, mb: int) -> np.ndarray:
    """The loop by hand, iteration after iteration (later groups overwrite earlier ones)."""
    out = np.zeros_like(x)
    for g in range(groups):
        for sb in range(nb):
            row = (g * mb + sb) * 2
            out[row : row + 2] = x[row : row + 2] * x[g * 2 : g * 2 + 2] + np.float32(0.5)
    return out


@pytest.mark.parametrize(
    "groups,mb,nb,batches",
    [(4, 3, 3, True), (4, 3, 2, True), (6, 2, 2, True), (4, 2, 3, False), (6, 1, 2, False)],
)
def test_dynamic_bounds_batch_with_a_run_time_write_check(groups, mb, nb, batches):
    """The outer loop fails the static proof only on write disjointness: it runs batched when
    the journaled windows of different groups are disjoint at run time, and falls back to the
    per-tile path (which batches the inner loop) when they overlap."""
    src = CHECKED.replace("MB", str(mb)).replace("G)", f"{groups})")
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "checked.py")[0]
    x = np.linspace(-3, 3, 256, dtype=np.float32).reshape(64, 4)
    before = dict(batched.STATS)
    fast = interpreter.run(prog, "main", x, nb, np.zeros_like(x))

    def delta(key: str) -> int:
        return batched.STATS.get(key, 0) - before.get(key, 0)

    plain = interpreter.run(prog, "main", x, nb, np.zeros_like(x), fast=False)
    assert fast.tobytes() == plain.tobytes()
    np.testing.assert_array_equal(fast, _checked_plain(x, nb, groups, mb))
    overlapped = delta("fallback: writes overlap between iterations")
    if batches:
        assert delta("batched") == 1 and overlapped == 0  # the outer loop, once
    else:
        assert overlapped == 1  # then the per-tile path, whose inner loops batch
        assert delta("batched") == groups


def test_a_nest_ending_in_its_inner_loop_runs_as_one_set_of_lanes():
    """Two groups of four blocks, the inner loop last in the body with a bound known at entry:
    one batched run over the 8 (group, block) pairs, each lane computing `scale` itself."""
    src = CHECKED.replace("MB", "4").replace("G)", "2)")
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "checked.py")[0]
    x = np.linspace(-3, 3, 256, dtype=np.float32).reshape(64, 4)
    before = dict(batched.STATS)
    fast = interpreter.run(prog, "main", x, 4, np.zeros_like(x))
    assert batched.STATS.get("batched", 0) - before.get("batched", 0) == 1
    assert sum(batched.STATS.values()) - sum(before.values()) == 1  # and no fallback
    np.testing.assert_array_equal(fast, _checked_plain(x, 4, 2, 4))


def test_a_checked_loop_with_fewer_iterations_than_its_inner_loop_runs_per_tile():
    """A statement after the inner loop: the nest cannot become one set of lanes. Batching the
    inner loop (4 lanes, twice) beats batching the outer one (2 lanes, four serial steps), so
    the outer loop is not tried."""
    src = CHECKED.replace("MB", "4").replace("G)", "2)")
    src = src.replace("            return out", "                done = pl.add(scale, 1.0)\n"
                      "            return out")  # fmt: skip
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "checked.py")[0]
    x = np.linspace(-3, 3, 256, dtype=np.float32).reshape(64, 4)
    before = dict(batched.STATS)
    fast = interpreter.run(prog, "main", x, 4, np.zeros_like(x))
    assert batched.STATS.get("batched", 0) - before.get("batched", 0) == 2
    assert sum(batched.STATS.values()) - sum(before.values()) == 2  # no fallback either
    np.testing.assert_array_equal(fast, _checked_plain(x, 4, 2, 4))


TWO_VIEWS = """
    @pl.program
    class TwoViews:
        @pl.function
        def main(self, x: pl.Tensor[[16, 4], pl.FP32], nb: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[16, 4], pl.FP32]]) -> pl.Tensor[[16, 4], pl.FP32]:
            flat = pl.reshape(out, [8, 8])
            for g in pl.range(4):
                for sb in pl.parallel(nb):
                    t = pl.add(pl.slice(x, [2, 4], [(g * 2 + sb) * 2, 0]), 1.0)
                    out = pl.assemble(out, t, [(g * 2 + sb) * 2, 0])
                    flat = pl.assemble(flat, pl.full([1, 8], dtype=pl.FP32, value=7.0), [g * 2, 0])
            return out
"""


def test_writes_through_two_views_of_one_buffer_fall_back():
    """`flat` is `out` reshaped: the run-time write check cannot compare windows in two
    coordinate systems, so the checked loop falls back; results stay the per-tile path's."""
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(TWO_VIEWS), "tv.py")[0]
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(16, 4)
    before = dict(batched.STATS)
    fast = interpreter.run(prog, "main", x, 2, np.zeros_like(x))
    key = "fallback: writes through two views of one buffer"
    plain = interpreter.run(prog, "main", x, 2, np.zeros_like(x), fast=False)
    assert fast.tobytes() == plain.tobytes()
    # golden by hand: row 2g of `flat` is out[4g:4g+2], set to 7 after each write; the
    # rows 4g+2, 4g+3 (sb = 1) keep x + 1
    want = x + np.float32(1)
    for g in range(4):
        want[4 * g : 4 * g + 2] = 7.0
    np.testing.assert_array_equal(fast, want)
    assert batched.STATS.get(key, 0) - before.get(key, 0) >= 1  # the outer loop, the inner ones
    assert batched.STATS.get("batched", 0) == before.get("batched", 0)
