"""Property tests of the sorting ops (`pl.sort32`, `pl.mrgsort`), shared by both engines
through `new_ops_checks.make_tests`.

The oracles are plain Python/NumPy written from PyPTO's definition (docs/numerics.md):
sort32 sorts each block of 32 values descending (NaN first, ties by the smaller index value)
into (value, index bits) pairs; mrgsort's merge takes the head with the strictly greatest value,
the earliest run on a tie. Nothing here calls pldsl except to run the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

SORT_OPS = ("sort32", "mrgsort")


# ------------------------------------------------------------------ oracles


def oracle_sort32(x: np.ndarray, idx: np.ndarray, valid_cols: int) -> np.ndarray:
    """[M, N] values, UINT32 indices -> [M, 2N] FP32 pairs; columns past 2*valid_cols zero."""
    m, n = x.shape
    out = np.zeros((m, 2 * n), np.uint32)
    for r in range(m):
        for b in range(0, valid_cols, 32):
            ks = range(b, min(b + 32, valid_cols))

            def key(k, r=r):
                v = float(x[r, k])
                return (0, 0.0, int(idx[r, k])) if math.isnan(v) else (1, -v, int(idx[r, k]))

            for j, k in enumerate(sorted(ks, key=key)):
                out[r, 2 * (b + j)] = np.float32(x[r, k]).view(np.uint32)
                out[r, 2 * (b + j) + 1] = idx[r, k]
    return out.view(np.float32)


def merge(runs: list[list[tuple[int, int]]], exhausted: bool = False) -> list[tuple[int, int]]:
    """The merge's definition over runs of (value bits, index bits) pairs."""

    def value(p):
        return float(np.uint32(p[0]).view(np.float32))

    heads, out = [0] * len(runs), []
    while True:
        pick = None
        for k, run in enumerate(runs):
            if heads[k] < len(run):
                if pick is None or value(run[heads[k]]) > value(runs[pick][heads[pick]]):
                    pick = k
        if pick is None:
            return out
        out.append(runs[pick][heads[pick]])
        heads[pick] += 1
        if exhausted and heads[pick] == len(runs[pick]):
            return out


def pairs_of(row: np.ndarray) -> list[tuple[int, int]]:
    bits = np.asarray(row, np.float32).view(np.uint32)
    return [(int(bits[2 * j]), int(bits[2 * j + 1])) for j in range(len(bits) // 2)]


def row_of(pairs: list[tuple[int, int]], width: int) -> np.ndarray:
    bits = np.zeros(width, np.uint32)
    for j, (v, i) in enumerate(pairs):
        bits[2 * j], bits[2 * j + 1] = v, i
    return bits.view(np.float32)


def oracle_format1(x: np.ndarray, block_len: int) -> np.ndarray:
    m, n = x.shape
    group = 4 * block_len
    out = np.zeros((m, n), np.float32)
    for r in range(m):
        for g in range(0, n - group + 1, group):
            runs = [pairs_of(x[r, g + k * block_len : g + (k + 1) * block_len]) for k in range(4)]
            out[r, g : g + group] = row_of(merge(runs), group)
    return out


# ------------------------------------------------------------------ inputs


def scores(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """kind: "normal"; "ties" (few distinct values, -0.0 and +0.0 among them); "special" (NaN,
    +-inf, zeros)."""
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":
        return rng.choice(np.array([1.5, -0.0, 0.0, -2.0, 3.0], np.float32), size=shape)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, size=min(flat.size, 6), replace=False):
        flat[i] = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32))
    return x


def sorted_pairs(rng: np.random.Generator, m: int, npairs: int, runs: int, kind: str,
                 sort_runs: bool) -> np.ndarray:  # fmt: skip
    """[m, 2*npairs] rows of pairs; each of `runs` equal runs sorted descending when asked."""
    vals = scores(rng, (m, npairs), kind)
    if sort_runs:
        per = npairs // runs
        for r in range(m):
            for k in range(runs):
                seg = vals[r, k * per : (k + 1) * per]
                vals[r, k * per : (k + 1) * per] = seg[np.argsort(-seg, kind="stable")]
    idx = rng.integers(0, 2**32, (m, npairs), dtype=np.uint32)
    out = np.zeros((m, 2 * npairs), np.uint32)
    out[:, 0::2], out[:, 1::2] = vals.view(np.uint32), idx
    return out.view(np.float32)


KINDS = st.sampled_from(["normal", "ties", "special"])


# ------------------------------------------------------------------ tests


def make_sort_tests(run: Callable, props, source, program, T, same_bits, seeds,
                    fault_rule) -> dict[str, Callable]:  # fmt: skip
    """The property tests of SORT_OPS for one engine."""
    tests: dict[str, Callable] = {}

    def add(fn: Callable) -> Callable:
        tests[fn.__name__] = fn
        return fn

    @add
    @props
    @given(m=st.integers(1, 3), blocks=st.sampled_from([1, 2, 3]), kind=KINDS, seed=seeds,
           data=st.data())  # fmt: skip
    def test_sort32(m, blocks, kind, seed, data):
        """Blocks of 32 sorted descending into (value, index bits) pairs; NaN first; ties go
        to the smaller index *value* (indices drawn with repeats and out of order); a partial
        valid region sorts its last block alone and leaves the rest undefined."""
        n = 32 * blocks
        rng = np.random.default_rng(seed)
        x = scores(rng, (m, n), kind)
        idx = rng.integers(0, 40, (m, n), dtype=np.uint32)  # repeats: ties on both keys
        vc = data.draw(st.sampled_from([n, n - 1, n - 17, 33 if n > 33 else n, 1]))
        text = source(
            [f"x: {T((m, n), 'FP32')}", f"i: {T((m, n), 'UINT32')}"],
            [f"w = pl.slice(x, [{m}, {n}], [0, 0], valid_shape=[{m}, {vc}])",
             "s = pl.sort32(w, i)",
             "f = pl.fillpad(s)",
             "return f"],
        )  # fmt: skip
        got = np.asarray(run(program(text), x, idx))
        same_bits(got.view(np.uint32), oracle_sort32(x, idx, vc).view(np.uint32), "sort32")

    @add
    @props
    @given(m=st.integers(1, 2), block_len=st.sampled_from([64, 128]),
           groups=st.integers(1, 2), extra=st.sampled_from([0, 64]), kind=KINDS,
           sort_runs=st.booleans(), seed=seeds)  # fmt: skip
    def test_mrgsort_format1(m, block_len, groups, extra, kind, sort_runs, seed):
        """Each group of 4 runs of block_len columns merged by the definition (sorted runs,
        and unsorted ones, where the merge is not a sort); columns past the last whole group
        are undefined (zero after fillpad)."""
        n = groups * 4 * block_len + extra
        x = sorted_pairs(np.random.default_rng(seed), m, n // 2, 4 * groups, kind, sort_runs)
        text = source(
            [f"x: {T((m, n), 'FP32')}"],
            [f"s = pl.mrgsort(x, block_len={block_len})", "f = pl.fillpad(s)", "return f"],
        )  # fmt: skip
        got = np.asarray(run(program(text), x))
        same_bits(got.view(np.uint32), oracle_format1(x, block_len).view(np.uint32), "format1")

    @add
    @props
    @given(ways=st.integers(2, 4), kind=KINDS, sort_runs=st.booleans(),
           exhausted=st.booleans(), seed=seeds, data=st.data())  # fmt: skip
    def test_mrgsort_format2(ways, kind, sort_runs, exhausted, seed, data):
        """2-4 lists merged into one (last dims added); a list's valid columns bound what it
        contributes; exhausted=True stops right after the first list runs out (the rest is
        undefined)."""
        rng = np.random.default_rng(seed)
        widths = [64, 32, 96, 64][:ways]
        lists = [sorted_pairs(rng, 1, w // 2, 1, kind, sort_runs) for w in widths]
        valid = [data.draw(st.sampled_from([w, w - 2, 0])) for w in widths]
        params = [f"x{k}: {T((1, w), 'FP32')}" for k, w in enumerate(widths)]
        views = [f"pl.slice(x{k}, [1, {w}], [0, 0], valid_shape=[1, {v}])"
                 for k, (w, v) in enumerate(zip(widths, valid))]  # fmt: skip
        text = source(
            params,
            [f"s = pl.mrgsort({', '.join(views)}, exhausted={exhausted})",
             "f = pl.fillpad(s)", "return f"],
        )  # fmt: skip
        got = np.asarray(run(program(text), *lists))
        runs = [pairs_of(a[0, :v]) for a, v in zip(lists, valid)]
        want = row_of(merge(runs, exhausted), sum(widths))[None]
        same_bits(got.view(np.uint32), want.view(np.uint32), f"format2 {valid} {exhausted}")

    @add
    @props
    @given(kind=st.sampled_from(["normal", "ties"]), seed=seeds, k=st.sampled_from([1, 16, 64]))
    def test_topk_pipeline(kind, seed, k):
        """sort32 + mrgsort(64) + mrgsort(256) sort a 512-wide row whole: the first k values
        and their positions are those of a stable descending sort (-0 and +0 tie). (With NaN
        the merges are no sort: a NaN head is taken only from the first run.)"""
        n = 512
        x = scores(np.random.default_rng(seed), (2, n), kind)
        text = source(
            [f"x: {T((2, n), 'FP32')}", f"v: {T((2, k), 'FP32')}", f"p: {T((2, k), 'INT32')}"],
            [f"order = pl.arange(0, [1, {n}], dtype=pl.UINT32)",
             "for r in pl.range(2):",
             f"    s = pl.sort32(pl.slice(x, [1, {n}], [r, 0]), order)",
             "    s = pl.mrgsort(s, block_len=64)",
             "    s = pl.mrgsort(s, block_len=256)",
             f"    top = pl.slice(s, [1, {2 * k}], [0, 0])",
             "    v = pl.assemble(v, pl.gather(top, mask_pattern=pl.tile.MaskPattern.P0101), [r, 0])",
             "    p = pl.assemble(p, pl.gather(top, mask_pattern=2, output_dtype=pl.INT32), [r, 0])",
             "return v, p"],
        )  # fmt: skip
        v = np.zeros((2, k), np.float32)
        p = np.zeros((2, k), np.int32)
        run(program(text), x, v, p)
        order = np.argsort(-x.astype(np.float64), axis=-1, kind="stable")[:, :k]
        same_bits(p, order.astype(np.int32), "top-k positions")
        same_bits(v, np.take_along_axis(x, order, axis=-1), "top-k values")

    @add
    @props
    @given(pad=st.sampled_from(["min", "max"]), seed=seeds)
    def test_sort_reads_pad_values_outside_valid_regions(pad, seed):
        """sort32's idx and mrgsort format1's src read past their valid columns see the pad
        value (the C backend once read zeros there): an idx pad is a UINT32 bound (0 or
        0xFFFFFFFF), a value pad an infinity."""
        rng = np.random.default_rng(seed)
        x = scores(rng, (2, 32), "ties")
        idx = rng.integers(0, 40, (2, 32), dtype=np.uint32)
        text = source(
            [f"x: {T((2, 32), 'FP32')}", f"i: {T((2, 32), 'UINT32')}"],
            [f"j = pl.slice(i, [2, 32], [0, 0], valid_shape=[2, 10], pad_value=pl.PadValue.{pad})",
             "s = pl.sort32(x, j)", "return s"],
        )  # fmt: skip
        padded = idx.copy()
        padded[:, 10:] = 0xFFFFFFFF if pad == "max" else 0
        got = np.asarray(run(program(text), x, idx))
        same_bits(got.view(np.uint32), oracle_sort32(x, padded, 32).view(np.uint32), "sort32")
        y = sorted_pairs(rng, 1, 128, 4, "normal", True)
        text = source(
            [f"y: {T((1, 256), 'FP32')}"],
            [f"w = pl.slice(y, [1, 256], [0, 0], valid_shape=[1, 200], pad_value=pl.PadValue.{pad})",
             "s = pl.mrgsort(w, block_len=64)", "return s"],
        )  # fmt: skip
        filled = y.copy()
        filled[:, 200:] = np.inf if pad == "max" else -np.inf
        got = np.asarray(run(program(text), y))
        same_bits(got.view(np.uint32), oracle_format1(filled, 64).view(np.uint32), "format1")

    @add
    def test_mrgsort_block_len_not_a_multiple_of_64_faults():
        """A block_len known only at run time is checked there (BadShape)."""
        text = source(
            [f"x: {T((1, 256), 'FP32')}", "b: pl.Scalar[pl.INDEX]"],
            ["s = pl.mrgsort(x, block_len=b)", "return s"],
        )
        x = np.zeros((1, 256), np.float32)
        assert fault_rule(lambda: run(program(text), x, 96)) == "BadShape"
        assert fault_rule(lambda: run(program(text), x, 0)) == "BadShape"
        got = np.asarray(run(program(text), x, 64))
        assert got.shape == (1, 256)

    return tests
