"""Property tests of the ops of issue 10, shared by both engines.

`make_tests(run)` returns the test functions for one engine: `run(program, *args)` runs the
captured kernel `k` (tests/interpreter/test_new_ops.py: the interpreter;
tests/backends/test_new_ops_c.py: the C backend). Every expected value comes from an oracle
here written in plain NumPy + ml_dtypes, following docs/numerics.md; none calls pldsl.
`NEW_OPS` lists the ops covered (the op-table enumeration tests read it).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sort_ops_checks import SORT_OPS, make_sort_tests

import pldsl as pl

NEW_OPS = (
    "arange",
    "set_validshape",
    "row_expand",
    "col_expand",
    "transpose",
    "concat",
    "gather",
    "cmp",
    "fmods",
    "row_argmax",
    "col_expand_expdif",
    "tile.gather",
    "tile.arange",
    "create_l1",
    "gather_row",
    "scatter",
    "tile.transpose_view",
    *SORT_OPS,
)
# gather's compare form (kvalue=, cmp_mode=, out_cols=) is tested here too, in every mode
GATHER_CMP_MODES = ("eq", "ne", "lt", "le", "gt", "ge")
# keywords of existing ops tested here: rsqrt(high_precision=), row_sum/row_max(x, tmp),
# create_tensor(init_value=, valid_shape=), assemble(atomic=)

PROPS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

BF16 = np.dtype(ml_dtypes.bfloat16)
NP = {
    "FP32": np.dtype(np.float32),
    "BF16": BF16,
    "FP16": np.dtype(np.float16),
    "INT32": np.dtype(np.int32),
    "INT16": np.dtype(np.int16),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
}
FLOATS = ("FP32", "BF16", "FP16")

# ------------------------------------------------------------------ harness


def source(params: list[str], body: list[str]) -> str:
    lines = ["import pldsl as pl", "@pl.program", "class P:", "    @pl.function",
             f"    def k(self, {', '.join(params)}):"]  # fmt: skip
    return "\n".join(lines + [f"        {b}" for b in body]) + "\n"


@functools.cache
def program(text: str) -> pl.Program:
    name = f"new_ops_{hashlib.sha1(text.encode()).hexdigest()[:12]}.py"
    (prog,) = pl.capture_source(text, name)
    return prog


def T(shape, dt: str) -> str:
    return f"pl.Tensor[[{', '.join(map(str, shape))}], pl.{dt}]"


def values(rng: np.random.Generator, shape, dt: str, special: bool = False) -> np.ndarray:
    if dt in FLOATS:
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        if special and x.size:
            flat = x.reshape(-1)
            picks = [np.nan, np.inf, -np.inf, 0.0, -0.0, 2.5, -2.5]
            for i in rng.choice(flat.size, size=min(flat.size, 3), replace=False):
                flat[i] = picks[int(rng.integers(len(picks)))]
        return x.astype(NP[dt])  # FP32 -> BF16/FP16: RNE (ml_dtypes / NumPy)
    info = np.iinfo(NP[dt])
    return rng.integers(max(info.min, -1000), min(info.max, 1000) + 1, shape).astype(NP[dt])


def same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f" or want.dtype == BF16:
        g, w = got.astype(np.float32), want.astype(np.float32)
        both_nan = np.isnan(g) & np.isnan(w)
        ok = both_nan | ((g == w) & (np.signbit(g) == np.signbit(w)))
        assert ok.all(), (
            f"{what}: first mismatch at {np.argwhere(~ok)[0]}: {g[~ok][0]} vs {w[~ok][0]}"
        )
    else:
        assert np.array_equal(got, want), f"{what}: {got} != {want}"


def round_to(x32: np.ndarray, dt: str) -> np.ndarray:
    """float32 values rounded once, to nearest even, to dt."""
    with np.errstate(over="ignore"):
        return np.asarray(x32, np.float32).astype(NP[dt])


shapes2 = st.tuples(st.integers(1, 6), st.integers(1, 20))
seeds = st.integers(0, 2**32 - 1)


def fault_rule(fn: Callable[[], object]) -> str:
    with pytest.raises(pl.RuntimeFault) as e:
        fn()
    return e.value.diagnostic.rule


# ------------------------------------------------------------------ the tests


def make_tests(run: Callable) -> dict[str, Callable]:
    """The property tests of NEW_OPS for one engine (`run(program, *args)`)."""
    tests: dict[str, Callable] = {}

    def add(fn: Callable) -> Callable:
        tests[fn.__name__] = fn
        return fn

    @add
    @PROPS
    @given(
        n=st.integers(2, 40),
        start=st.integers(-70000, 70000),
        dt=st.sampled_from(["INT32", "INT16", "UINT16", "UINT32"]),
        descending=st.booleans(),
        rank1=st.booleans(),
    )
    def test_arange(n, start, dt, descending, rank1):
        """start +- j along the last axis, wrapped (two's complement) into the dtype."""
        shape = [n] if rank1 else [1, n]
        text = source(
            [],
            [f"a = pl.arange({start}, {shape}, dtype=pl.{dt}, descending={descending})",
             "return a"],
        )  # fmt: skip
        step = -1 if descending else 1
        bits = NP[dt].itemsize * 8
        raw = [(start + step * j) % (1 << bits) for j in range(n)]
        if NP[dt].kind == "i":
            raw = [v - (1 << bits) if v >= 1 << (bits - 1) else v for v in raw]
        want = np.array(raw, NP[dt]).reshape(shape)
        same_bits(run(program(text)), want, f"arange({start}, {shape}, {dt}, {descending})")

    @add
    @PROPS
    @given(shape=shapes2, dt=st.sampled_from(["FP32", "BF16", "INT32"]), seed=seeds,
           data=st.data())  # fmt: skip
    def test_set_validshape(shape, dt, seed, data):
        """Only metadata changes: narrowing hides data, widening a sliced view reveals the
        buffer underneath (fillpad makes the region visible in the result)."""
        m, n = shape
        rng = np.random.default_rng(seed)
        x = values(rng, (m + 2, n + 3), dt)
        v0 = (data.draw(st.integers(0, m)), data.draw(st.integers(0, n)))
        vr, vc = data.draw(st.integers(1, m)), data.draw(st.integers(1, n))
        text = source(
            [f"x: {T((m + 2, n + 3), dt)}", "vr: pl.Scalar[pl.INDEX]", "vc: pl.Scalar[pl.INDEX]"],
            [f"w = pl.slice(x, [{m}, {n}], [1, 2], valid_shape=[{v0[0]}, {v0[1]}])",
             "s = pl.set_validshape(w, vr, vc)",
             "f = pl.fillpad(s)",
             "return f"],
        )  # fmt: skip
        want = np.zeros((m, n), NP[dt])
        want[:vr, :vc] = x[1 : 1 + vr, 2 : 2 + vc]
        same_bits(run(program(text), x, vr, vc), want, "set_validshape")

    @add
    def test_set_validshape_rejects_extent_past_the_shape():
        text = source(
            [f"x: {T((4, 8), 'FP32')}", "vr: pl.Scalar[pl.INDEX]"],
            ["s = pl.set_validshape(x, vr, 8)", "f = pl.fillpad(s)", "return f"],
        )
        x = np.ones((4, 8), np.float32)
        assert fault_rule(lambda: run(program(text), x, 5)) == "BadValidShape"
        same_bits(run(program(text), x, 4), x, "set_validshape at the edge")

    @add
    @PROPS
    @given(
        lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
        m=st.integers(1, 6),
        n=st.integers(1, 12),
        axis=st.sampled_from(["row", "col"]),
        fn=st.sampled_from(["", "_add", "_sub", "_mul", "_div", "_expdif"]),
        dts=st.sampled_from([("FP32", "FP32"), ("BF16", "BF16"), ("FP32", "BF16"),
                             ("FP16", "FP16"), ("INT32", "INT32")]),
        seed=seeds,
        data=st.data(),
    )  # fmt: skip
    def test_expand(lead, m, n, axis, fn, dts, seed, data):
        """row_expand* / col_expand* at any rank >= 2: v ([..., M, 1] / [..., 1, N], leading
        axes equal or 1, possibly fewer of them: right-aligned, as PyPTO's rule checks only the
        last two) broadcast over x; one float32 op rounded once (RNE) to the result."""
        xdt, vdt = dts
        if fn == "_div" and xdt == "INT32":
            fn = "_sub"
        if fn == "_expdif":  # col only, floats only
            axis = "col"
            if xdt == "INT32":
                fn = "_add"
        rng = np.random.default_rng(seed)
        vlead = [d if data.draw(st.booleans()) else 1 for d in lead]
        vlead = vlead[data.draw(st.integers(0, len(vlead))) :]  # v may have fewer leading axes
        xs = (*lead, m, n)
        vs = (*vlead, m, 1) if axis == "row" else (*vlead, 1, n)
        x, v = values(rng, xs, xdt, special=True), values(rng, vs, vdt, special=True)
        text = source(
            [f"x: {T(xs, xdt)}", f"v: {T(vs, vdt)}"],
            [f"r = pl.{axis}_expand{fn}(x, v)", "return r"],
        )
        res = xdt  # the pairs above promote to x's dtype
        vb = np.broadcast_to(v, xs)
        if fn == "":
            want = vb.astype(NP[res])
        elif res in FLOATS:
            a32, b32 = x.astype(np.float32), vb.astype(np.float32)
            with np.errstate(all="ignore"):
                if fn == "_expdif":  # float32 difference, exp in float64, RNE to float32
                    r32 = np.exp((a32 - b32).astype(np.float64)).astype(np.float32)
                else:
                    r32 = {"_add": a32 + b32, "_sub": a32 - b32, "_mul": a32 * b32,
                           "_div": a32 / b32}[fn]  # fmt: skip
            want = round_to(r32, res)
        else:
            a64, b64 = x.astype(np.int64), vb.astype(np.int64)
            r = {"_add": a64 + b64, "_sub": a64 - b64, "_mul": a64 * b64}[fn]
            want = r.astype(np.int32)  # wraps
        same_bits(run(program(text), x, v), want, f"{axis}_expand{fn} {xs} {vs}")

    @add
    @PROPS
    @given(
        shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
        dt=st.sampled_from(["FP32", "BF16", "INT16"]),
        seed=seeds,
        data=st.data(),
    )
    def test_transpose(shape, dt, seed, data):
        """Axes swapped (negative axes count from the end); a partial valid region swaps too
        (fillpad shows it)."""
        rank = len(shape)
        a = data.draw(st.integers(-rank, rank - 1))
        b = data.draw(st.integers(-rank, rank - 1))
        valid = [data.draw(st.integers(0, d)) for d in shape]
        x = values(np.random.default_rng(seed), shape, dt, special=True)
        dims = ", ".join(map(str, shape))
        text = source(
            [f"x: {T(shape, dt)}"],
            [f"w = pl.slice(x, [{dims}], [{', '.join('0' * rank)}], valid_shape={valid})",
             f"t = pl.transpose(w, {a}, {b})",
             "f = pl.fillpad(t)",
             "return f"],
        )  # fmt: skip
        masked = np.zeros_like(x)
        box = tuple(slice(0, v) for v in valid)
        masked[box] = x[box]
        same_bits(run(program(text), x), np.swapaxes(masked, a, b), f"transpose {a} {b}")

    @add
    @PROPS
    @given(
        m=st.integers(1, 5),
        n0=st.integers(1, 12),
        n1=st.integers(1, 12),
        dt=st.sampled_from(["FP32", "BF16", "INT32"]),
        seed=seeds,
        data=st.data(),
    )
    def test_concat(m, n0, n1, dt, seed, data):
        """Columns joined; valid: the smaller valid rows, src0's valid columns, then src1's
        only when src0 is valid to its last column."""
        rng = np.random.default_rng(seed)
        x, y = values(rng, (m, n0), dt), values(rng, (m, n1), dt)
        vx = (
            data.draw(st.integers(0, m)),
            data.draw(st.sampled_from([n0, data.draw(st.integers(0, n0))])),
        )
        vy = (data.draw(st.integers(0, m)), data.draw(st.integers(0, n1)))
        text = source(
            [f"x: {T((m, n0), dt)}", f"y: {T((m, n1), dt)}"],
            [f"a = pl.slice(x, [{m}, {n0}], [0, 0], valid_shape=[{vx[0]}, {vx[1]}])",
             f"b = pl.slice(y, [{m}, {n1}], [0, 0], valid_shape=[{vy[0]}, {vy[1]}])",
             "c = pl.concat(a, b)",
             "f = pl.fillpad(c)",
             "return f"],
        )  # fmt: skip
        rows = min(vx[0], vy[0])
        cols = n0 + vy[1] if vx[1] == n0 else vx[1]
        full = np.concatenate([x, y], axis=1)
        want = np.zeros_like(full)
        want[:rows, :cols] = full[:rows, :cols]
        same_bits(run(program(text), x, y), want, f"concat valid {vx} {vy}")

    @add
    @PROPS
    @given(
        m=st.integers(1, 5),
        n=st.integers(1, 16),
        k=st.integers(1, 10),
        dt=st.sampled_from(["FP32", "BF16", "INT32", "FP16"]),
        seed=seeds,
    )
    def test_gather(m, n, k, dt, seed):
        """out[b, j] = x[b, index[b, j]] (index form, dim=-1)."""
        rng = np.random.default_rng(seed)
        x = values(rng, (m, n), dt, special=True)
        idt = "INT16" if dt in ("FP16", "BF16") and seed % 2 else "INT32"
        index = rng.integers(0, n, (m, k)).astype(NP[idt])
        text = source(
            [f"x: {T((m, n), dt)}", f"i: {T((m, k), idt)}"],
            ["g = pl.gather(x, dim=-1, index=i)", "return g"],
        )
        want = np.empty((m, k), NP[dt])
        for b in range(m):
            for j in range(k):
                want[b, j] = x[b, int(index[b, j])]
        same_bits(run(program(text), x, index), want, "gather")

    @add
    def test_gather_index_out_of_range_faults():
        text = source(
            [f"x: {T((2, 4), 'FP32')}", f"i: {T((2, 3), 'INT32')}"],
            ["g = pl.gather(x, dim=-1, index=i)", "return g"],
        )
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        edge = np.array([[0, 3, 3], [1, 2, 0]], np.int32)  # the last column: fine
        same_bits(run(program(text), x, edge), np.array([[0, 3, 3], [5, 6, 4]], np.float32), "edge")
        for bad in (4, -1):
            idx = edge.copy()
            idx[1, 2] = bad
            assert fault_rule(lambda idx=idx: run(program(text), x, idx)) == "OutOfBounds"

    @add
    @PROPS
    @given(
        m=st.integers(1, 5),
        q=st.integers(1, 6),
        pattern=st.integers(1, 7),
        dts=st.sampled_from([("FP32", None), ("FP32", "INT32"), ("FP32", "UINT32"),
                             ("BF16", None), ("INT32", "FP32")]),
        seed=seeds,
        data=st.data(),
    )  # fmt: skip
    def test_gather_mask_form(m, q, pattern, dts, seed, data):
        """Mask form: pattern 1 (P0101) keeps the even columns, 2 (P1010) the odd ones, 3..6
        (P0001..P1000) column 0..3 of every four, 7 (P1111) all; output_dtype reinterprets
        the bits; valid: x's valid rows and the kept columns below its valid columns."""
        stride, off = {1: (2, 0), 2: (2, 1), 3: (4, 0), 4: (4, 1), 5: (4, 2), 6: (4, 3),
                       7: (1, 0)}[pattern]  # fmt: skip
        n = q * 4
        dt, out_dt = dts
        x = values(np.random.default_rng(seed), (m, n), dt, special=True)
        vr, vc = data.draw(st.integers(1, m)), data.draw(st.integers(1, n))
        kw = f", output_dtype=pl.{out_dt}" if out_dt else ""
        text = source(
            [f"x: {T((m, n), dt)}"],
            [f"w = pl.slice(x, [{m}, {n}], [0, 0], valid_shape=[{vr}, {vc}])",
             f"g = pl.gather(w, mask_pattern={pattern}{kw})",
             "f = pl.fillpad(g)",
             "return f"],
        )  # fmt: skip
        res = NP[out_dt or dt]
        kept = [j for j in range(n) if j % stride == off]
        want = np.zeros((m, n // stride), res)
        for k, j in enumerate(kept):
            if j < vc:
                want[:vr, k] = x[:vr, j].view(res)
        same_bits(run(program(text), x), want, f"gather mask {pattern} valid {(vr, vc)}")

    @add
    @PROPS
    @given(
        shape=shapes2,
        cmp_type=st.integers(0, 5),
        dt=st.sampled_from(["FP32", "BF16", "INT32"]),
        scalar=st.booleans(),
        seed=seeds,
    )
    def test_cmp(shape, cmp_type, dt, scalar, seed):
        """1 where lhs <cmp> rhs else 0, in the operands' dtype; NaN compares unequal to
        everything, -0 == +0."""
        rng = np.random.default_rng(seed)
        x = values(rng, shape, dt, special=True)
        y = x.copy() if seed % 3 == 0 else values(rng, shape, dt, special=True)
        y.reshape(-1)[::2] = x.reshape(-1)[::2]  # ties
        lit = "0.5" if dt in FLOATS else "3"
        # a float literal is FP32: BF16 lhs promotes to FP32 (as pl.add does)
        res = "FP32" if scalar and dt == "BF16" else dt
        rhs = lit if scalar else "y"
        text = source(
            [f"x: {T(shape, dt)}", f"y: {T(shape, dt)}"],
            [f"c = pl.cmp(x, {rhs}, cmp_type={cmp_type})", "return c"],
        )
        ops = [np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal]
        if dt in FLOATS:
            a = x.astype(np.float32)
            b = np.float32(float(lit)) if scalar else y.astype(np.float32)
        else:
            a = x.astype(np.int64)
            b = int(lit) if scalar else y.astype(np.int64)
        with np.errstate(all="ignore"):
            want = ops[cmp_type](a, b).astype(NP[res])
        same_bits(run(program(text), x, y), want, f"cmp {cmp_type}")

    @add
    @PROPS
    @given(
        shape=shapes2,
        dt=st.sampled_from(["FP32", "BF16", "FP16", "INT32"]),
        div=st.sampled_from([0.75, -3.0, 1.5, 7, -2, 3]),
        seed=seeds,
    )
    def test_fmods(shape, dt, div, seed):
        """C fmod (sign of the dividend): exact in float32, rounded once to lhs's dtype;
        integers: truncating remainder."""
        if dt == "INT32":
            div = int(div) or 3
        x = values(np.random.default_rng(seed), shape, dt, special=dt in FLOATS)
        text = source([f"x: {T(shape, dt)}"], [f"r = pl.fmods(x, {div!r})", "return r"])
        if dt in FLOATS:
            with np.errstate(all="ignore"):
                r = np.fmod(x.astype(np.float64), float(np.float32(div)))  # exact
            want = round_to(r.astype(np.float32), dt)
        else:
            a = x.astype(np.int64)
            q = np.trunc(a / div).astype(np.int64)
            want = (a - q * div).astype(np.int32)
        same_bits(run(program(text), x), want, f"fmods {div}")

    @add
    @PROPS
    @given(
        lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
        n=st.integers(1, 20),
        dt=st.sampled_from(["FP32", "BF16", "INT32"]),
        seed=seeds,
    )
    def test_row_argmax(lead, n, dt, seed):
        """INT32 index of the first maximum per row; the first NaN wins; -0 and +0 tie."""
        rng = np.random.default_rng(seed)
        shape = (*lead, n)
        x = values(rng, shape, dt, special=True)
        if dt != "INT32":
            x.reshape(-1)[::3] = x.reshape(-1)[0]  # ties
        text = source([f"x: {T(shape, dt)}"], ["r = pl.row_argmax(x)", "return r"])
        flat = x.reshape(-1, n).astype(np.float64)
        best = []
        for row in flat:
            i = 0
            for j in range(n):
                if np.isnan(row[i]):
                    break
                if np.isnan(row[j]) or row[j] > row[i]:
                    i = j
            best.append(i)
        want = np.array(best, np.int32).reshape(*lead, 1)
        same_bits(run(program(text), x), want, "row_argmax")

    @add
    @PROPS
    @given(shape=shapes2, seed=seeds, dt=st.sampled_from(["FP32", "BF16"]))
    def test_keywords_change_nothing(shape, seed, dt):
        """rsqrt(high_precision=True) and the tile forms row_max(x, tmp) / row_sum(x, tmp)
        give the results of the plain forms (oracles: 1/sqrt as two correctly rounded
        float32 ops; max exact; sum within the float32 bound)."""
        x = np.abs(values(np.random.default_rng(seed), shape, dt))
        m, n = shape
        text = source(
            [f"x: {T(shape, dt)}", f"tmp: {T(shape, dt)}"],
            ["a = pl.rsqrt(x, high_precision=True)", "b = pl.row_max(x, tmp)",
             "c = pl.row_sum(x, tmp)", "return a, b, c"],
        )  # fmt: skip
        a, b, c = run(program(text), x, np.zeros(shape, NP[dt]))
        x32 = x.astype(np.float32)
        with np.errstate(all="ignore"):
            same_bits(a, round_to(np.float32(1) / np.sqrt(x32), dt), "rsqrt")
        same_bits(b, x32.max(axis=1, keepdims=True).astype(NP[dt]), "row_max(x, tmp)")
        exact = x32.astype(np.float64).sum(axis=1, keepdims=True)
        u_out = 0.0 if dt == "FP32" else 2.0**-8
        bound = (n * 2.0**-24 * 1.01 + u_out * 1.01) * np.abs(x32).astype(np.float64).sum(
            axis=1, keepdims=True
        ) + 1e-38
        assert np.all(np.abs(c.astype(np.float64) - exact) <= bound), "row_sum(x, tmp)"

    @add
    @PROPS
    @given(shape=shapes2, dt=st.sampled_from(["FP32", "BF16", "INT32"]), data=st.data())
    def test_create_tensor_init_value_and_valid_shape(shape, dt, data):
        """create_tensor(init_value=v) holds v (RNE to the dtype) everywhere; valid_shape
        narrows its valid region (fillpad shows it)."""
        m, n = shape
        v = data.draw(st.sampled_from([0, 3, -7, 1.5, -0.25]))
        if dt == "INT32":
            v = int(v)
        vr, vc = data.draw(st.integers(1, m)), data.draw(st.integers(1, n))
        text = source(
            [],
            [f"t = pl.create_tensor([{m}, {n}], dtype=pl.{dt}, init_value={v!r}, "
             f"valid_shape=[{vr}, {vc}])",
             "f = pl.fillpad(t)", "return f"],
        )  # fmt: skip
        want = np.zeros(shape, NP[dt])
        want[:vr, :vc] = np.array(v, np.float32).astype(NP[dt]) if dt in FLOATS else v
        same_bits(run(program(text)), want, f"create_tensor init {v}")

    @add
    @PROPS
    @given(
        m=st.integers(1, 5),
        n=st.integers(1, 12),
        dt=st.sampled_from(["FP32", "BF16", "INT32"]),
        low_rank=st.booleans(),
        seed=seeds,
        data=st.data(),
    )
    def test_assemble_atomic_add(m, n, dt, low_rank, seed, data):
        """assemble(atomic=pl.AtomicType.Add): target[window] += source's valid region, each
        element one float32 add rounded (RNE) to the dtype (ints wrap); the rest untouched.
        Two adds into one window accumulate."""
        rng = np.random.default_rng(seed)
        t = values(rng, (3, m + 2, n + 1), dt)
        s = values(rng, (m, n), dt)
        vr, vc = data.draw(st.integers(1, m)), data.draw(st.integers(1, n))
        b, r0, c0 = (
            data.draw(st.integers(0, 2)),
            data.draw(st.integers(0, 2)),
            data.draw(st.integers(0, 1)),
        )
        src = f"pl.slice(s, [{m}, {n}], [0, 0], valid_shape=[{vr}, {vc}])"
        if not low_rank and (vr, vc) == (m, n):  # a source of the target's rank
            src = f"pl.reshape({src}, [1, {m}, {n}])"
        text = source(
            [f"t: pl.InOut[{T((3, m + 2, n + 1), dt)}]", f"s: {T((m, n), dt)}"],
            [f"w = {src}",
             f"t = pl.assemble(t, w, [{b}, {r0}, {c0}], atomic=pl.AtomicType.Add)",
             f"t = pl.assemble(t, w, [{b}, {r0}, {c0}], atomic=pl.AtomicType.Add)",
             "return t"],
        )  # fmt: skip
        want = t.copy()
        region = (b, slice(r0, r0 + vr), slice(c0, c0 + vc))
        for _ in range(2):
            cur, add_ = want[region], s[:vr, :vc]
            if dt in FLOATS:
                with np.errstate(all="ignore"):
                    want[region] = round_to(cur.astype(np.float32) + add_.astype(np.float32), dt)
            else:
                want[region] = (cur.astype(np.int64) + add_.astype(np.int64)).astype(np.int32)
        got = run(program(text), t.copy(), s)
        same_bits(got, want, "assemble atomic add")

    @add
    @PROPS
    @given(
        lead=st.sampled_from([(0, 1), (1, 0), (1, 1), (2, 2)]),
        a_trans=st.booleans(),
        b_trans=st.booleans(),
        acc=st.booleans(),
        seed=seeds,
    )
    def test_batched_matmul_with_unit_batch(lead, a_trans, b_trans, acc, seed):
        """PyPTO's batched matmul: operands of rank > 2 multiply their last two axes, the
        leading axes broadcast ([M, K] x [1, N, K]^T -> [1, M, N]); matmul_acc takes an
        accumulator of the product's shape; assemble writes a [1, M, N] result into a 2-D
        target (leading axes of 1 dropped). Small integers: every sum is exact in FP32."""
        m, k, n = 5, 12, 7
        rng = np.random.default_rng(seed)
        a = rng.integers(-4, 5, (m, k)).astype(np.float32)
        b = rng.integers(-4, 5, (k, n)).astype(np.float32)
        a_in = np.ascontiguousarray(a.T if a_trans else a)
        b_in = np.ascontiguousarray(b.T if b_trans else b)
        a_in = a_in.reshape((1,) * lead[0] + a_in.shape)
        b_in = b_in.reshape((1,) * lead[1] + b_in.shape)
        flags = f"a_trans={a_trans}, b_trans={b_trans}"
        body = [f"p = pl.matmul(a, b, out_dtype=pl.FP32, {flags})"]
        if acc:
            body.append(f"p = pl.matmul_acc(p, a, b, {flags})")
        body += ["o = pl.assemble(o, p, [1, 2])", "return o"]
        text = source(
            [f"a: {T(a_in.shape, 'FP32')}", f"b: {T(b_in.shape, 'FP32')}",
             f"o: pl.InOut[{T((m + 2, n + 3), 'FP32')}]"],
            body,
        )  # fmt: skip
        want = np.zeros((m + 2, n + 3), np.float32)
        want[1 : 1 + m, 2 : 2 + n] = (a @ b) * (2 if acc else 1)
        out = np.zeros((m + 2, n + 3), np.float32)
        run(program(text), a_in, b_in, out)
        same_bits(out, want, f"batched matmul {lead} {flags} acc={acc}")

    @add
    @PROPS
    @given(m=st.integers(1, 4), n=st.integers(1, 24), k=st.integers(1, 12),
           dt=st.sampled_from(["FP32", "INT32", "FP16"]), seed=seeds)  # fmt: skip
    def test_tile_gather_flat_index(m, n, k, dt, seed):
        """pl.tile.gather(src, indices, tmp): dst[i, j] = src at flat offset indices[i, j]
        (row * cols + col) of the tile; tmp is scratch; pl.tile.arange makes a Vec tile."""
        rng = np.random.default_rng(seed)
        x = values(rng, (m, n), dt)
        idx = rng.integers(0, m * n, (m, k)).astype(np.int32)
        text = source(
            [f"x: {T((m, n), dt)}", f"i: {T((m, k), 'INT32')}",
             f"o: pl.Out[{T((m, k), dt)}]", f"r: pl.Out[{T((1, n + 1), 'INT32')}]"],
            [f"t = pl.load(x, [0, 0], [{m}, {n}])",
             f"j = pl.load(i, [0, 0], [{m}, {k}])",
             f"tmp = pl.create_tile([{m}, {k}], dtype=pl.INT32)",
             "g = pl.tile.gather(t, j, tmp)",
             "o = pl.store(g, [0, 0], o)",
             f"a = pl.tile.arange(5, [1, {n + 1}], dtype=pl.INT32)",
             "r = pl.store(a, [0, 0], r)",
             "return o, r"],
        )  # fmt: skip
        o = np.zeros((m, k), NP[dt])
        r = np.zeros((1, n + 1), np.int32)
        run(program(text), x, idx, o, r)
        same_bits(o, x.reshape(-1)[idx], f"tile.gather {dt}")
        same_bits(r, np.arange(5, n + 6, dtype=np.int32)[None], "tile.arange")

    @add
    def test_tile_gather_offset_outside_the_tile_faults():
        text = source(
            [f"x: {T((2, 4), 'FP32')}", f"i: {T((2, 2), 'INT32')}"],
            ["t = pl.load(x, [0, 0], [2, 4])",
             "j = pl.load(i, [0, 0], [2, 2])",
             "g = pl.tile.gather(t, j, j)",
             "return g"],
        )  # fmt: skip
        x = np.zeros((2, 4), np.float32)
        bad = np.array([[0, 1], [8, 2]], np.int32)
        assert fault_rule(lambda: run(program(text), x, bad)) == "OutOfBounds"
        assert fault_rule(lambda: run(program(text), x, -bad)) == "OutOfBounds"

    @add
    @PROPS
    @given(rows=st.integers(1, 4), width=st.integers(1, 9), transpose=st.booleans(),
           dt=st.sampled_from(["BF16", "FP32", "INT32"]), seed=seeds, data=st.data())  # fmt: skip
    def test_create_l1_and_gather_row(rows, width, transpose, dt, seed, data):
        """gather_row copies src's [1, width] window at a runtime row into acc's slot (as a
        column [width, 1] when transposed), in place; create_l1 allocates acc."""
        n_src = 6
        rng = np.random.default_rng(seed)
        src = values(rng, (n_src, width + 2), dt)
        pick = [data.draw(st.integers(0, n_src - 1)) for _ in range(rows)]
        col = data.draw(st.integers(0, 2))
        acc_shape = [width, rows] if transpose else [rows, width]
        dst = "[0, r]" if transpose else "[r, 0]"
        text = source(
            [f"s: {T((n_src, width + 2), dt)}", f"p: {T((rows,), 'INT32')}"],
            [f"acc = pl.create_l1({acc_shape}, pl.{dt}, transpose={transpose})",
             f"for r in pl.range({rows}):",
             "    row = pl.cast(pl.read(p, [r]), pl.INDEX)",
             f"    acc = pl.gather_row(acc, s, {dst}, [row, {col}], [1, {width}], "
             f"transpose={transpose})",
             "return acc"],
        )  # fmt: skip
        want = src[pick, col : col + width]
        if transpose:
            want = want.T
        got = run(program(text), src, np.array(pick, np.int32))
        same_bits(got, np.ascontiguousarray(want), f"gather_row transpose={transpose}")

    @add
    def test_gather_row_valid_shape_moves_part_of_the_window():
        """valid_shape narrows the transfer: only its columns land in acc (the rest keeps what
        acc held)."""
        text = source(
            [f"s: {T((3, 8), 'FP32')}", "n: pl.Scalar[pl.INDEX]"],
            ["acc = pl.create_l1([2, 8], pl.FP32)",
             "acc = pl.gather_row(acc, s, [0, 0], [1, 0], [1, 8])",
             "acc = pl.gather_row(acc, s, [1, 0], [2, 0], [1, 8])",
             "acc = pl.gather_row(acc, s, [0, 0], [0, 0], [1, 8], valid_shape=[1, n])",
             "return acc"],
        )  # fmt: skip
        src = np.arange(24, dtype=np.float32).reshape(3, 8)
        want = src[1:3].copy()
        want[0, :5] = src[0, :5]
        same_bits(run(program(text), src, 5), want, "gather_row valid_shape")

    @add
    @PROPS
    @given(m=st.integers(1, 4), n=st.integers(1, 12),
           dts=st.sampled_from([("FP32", "INT32"), ("BF16", "INT16"), ("INT32", "INT32")]),
           seed=seeds, data=st.data())  # fmt: skip
    def test_scatter_index_form(m, n, dts, seed, data):
        """out = input with out[b, index[b, k]] = src[b, k], k in order (a repeated column
        keeps the last); input itself is unchanged; src has at most input's columns."""
        dt, it = dts
        k = data.draw(st.integers(1, n))
        rng = np.random.default_rng(seed)
        x, src = values(rng, (m, n), dt), values(rng, (m, k), dt)
        idx = rng.integers(0, n, (m, k)).astype(NP[it])  # repeats on purpose
        text = source(
            [f"x: {T((m, n), dt)}", f"i: {T((m, k), it)}", f"s: {T((m, k), dt)}"],
            ["r = pl.scatter(x, dim=-1, index=i, src=s)", "return r"],
        )
        want = x.copy()
        for b in range(m):
            for j in range(k):
                want[b, idx[b, j]] = src[b, j]
        x_before = x.copy()
        same_bits(run(program(text), x, idx, src), want, f"scatter {dt}")
        same_bits(x, x_before, "scatter leaves input alone")
        bad = idx.copy()
        bad[data.draw(st.integers(0, m - 1)), data.draw(st.integers(0, k - 1))] = n
        assert fault_rule(lambda: run(program(text), x, bad, src)) == "OutOfBounds"

    @add
    @PROPS
    @given(vr=st.integers(0, 3), vc=st.integers(0, 4), seed=seeds)
    def test_scatter_reads_src_pad_past_its_valid_region(vr, vc, seed):
        """index's valid region decides what is written; a src element past src's valid
        region reads src's pad value (the C backend once wrote the raw data there)."""
        rng = np.random.default_rng(seed)
        x, src = values(rng, (3, 8), "FP32"), values(rng, (3, 4), "FP32")
        idx = np.stack([rng.permutation(8)[:4] for _ in range(3)]).astype(np.int32)
        text = source(
            [f"x: {T((3, 8), 'FP32')}", f"i: {T((3, 4), 'INT32')}", f"s: {T((3, 4), 'FP32')}"],
            [f"w = pl.slice(s, [3, 4], [0, 0], valid_shape=[{vr}, {vc}], "
             "pad_value=pl.PadValue.max)",
             "r = pl.scatter(x, dim=-1, index=i, src=w)", "return r"],
        )  # fmt: skip
        want = x.copy()
        for b in range(3):
            for j in range(4):
                want[b, idx[b, j]] = src[b, j] if b < vr and j < vc else np.inf
        same_bits(run(program(text), x, idx, src), want, f"scatter src valid {[vr, vc]}")

    @add
    @PROPS
    @given(m=st.integers(1, 4), n=st.integers(1, 6), pattern=st.integers(1, 7),
           dt=st.sampled_from(["FP32", "BF16", "INT32", "INT16", "FP16"]), seed=seeds,
           data=st.data())  # fmt: skip
    def test_scatter_mask_form(m, n, pattern, dt, seed, data):
        """PyPTO's tensor.scatter_mask: a copy of dst with out[b, off + k * stride] =
        input[b, k] over input's valid region (1=P0101 even columns, 2=P1010 odd, 3..6 one
        of four from offset 0..3, 7=P1111 all); dst and input are unchanged."""
        stride, off = {1: (2, 0), 2: (2, 1), 3: (4, 0), 4: (4, 1), 5: (4, 2), 6: (4, 3),
                       7: (1, 0)}[pattern]  # fmt: skip
        name = ("P0101", "P1010", "P0001", "P0010", "P0100", "P1000", "P1111")[pattern - 1]
        vr, vc = data.draw(st.integers(0, m)), data.draw(st.integers(0, n))
        rng = np.random.default_rng(seed)
        x, d = values(rng, (m, n), dt), values(rng, (m, n * stride), dt)
        text = source(
            [f"x: {T((m, n), dt)}", f"d: {T((m, n * stride), dt)}"],
            [f"w = pl.slice(x, [{m}, {n}], [0, 0], valid_shape=[{vr}, {vc}])",
             f"r = pl.tensor.scatter(w, mask_pattern=pl.tile.MaskPattern.{name}, dst=d)",
             "return r"],
        )  # fmt: skip
        want = d.copy()
        for b in range(vr):
            for k in range(vc):
                want[b, off + k * stride] = x[b, k]
        x_before, d_before = x.copy(), d.copy()
        same_bits(run(program(text), x, d), want, f"scatter mask {pattern} {dt}")
        same_bits(x, x_before, "scatter mask leaves input alone")
        same_bits(d, d_before, "scatter mask leaves dst alone")

    @add
    def test_scatter_mask_rows_past_dst_are_a_fault():
        """With a dynamic row count the type rule cannot compare rows: a run whose input has
        exactly dst's rows is clean (the edge), one row more is a ShapeMismatch fault, not a
        write past dst."""
        text = (
            'import pldsl as pl\nM = pl.dynamic("M")\n@pl.program\nclass P:\n'
            "    @pl.function\n"
            "    def k(self, x: pl.Tensor[[M, 4], pl.FP32], d: pl.Tensor[[3, 8], pl.FP32]):\n"
            "        r = pl.tensor.scatter(x, mask_pattern=pl.tile.MaskPattern.P1010, dst=d)\n"
            "        return r\n"
        )
        d = np.full((3, 8), -1.0, np.float32)
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        want = d.copy()
        want[:, 1::2] = x
        same_bits(run(program(text), x, d), want, "scatter mask, input rows == dst rows")
        more = np.ones((4, 4), np.float32)
        assert fault_rule(lambda: run(program(text), more, d)) == "ShapeMismatch"

    @add
    @PROPS
    @given(seed=seeds)
    def test_scatter_mask_inverts_gather_mask(seed):
        """dspark_attention.py's RoPE form: even and odd columns gathered apart, then
        scattered back into a zero tile, give the input again (P0101 even, P1010 odd)."""
        rng = np.random.default_rng(seed)
        x = values(rng, (4, 16), "FP32")
        text = source(
            [f"x: {T((4, 16), 'FP32')}"],
            ["ev = pl.gather(x, mask_pattern=pl.tile.MaskPattern.P0101)",
             "od = pl.gather(x, mask_pattern=pl.tile.MaskPattern.P1010)",
             "r = pl.full([4, 16], dtype=pl.FP32, value=0.0)",
             "r = pl.tensor.scatter(ev, mask_pattern=pl.tile.MaskPattern.P0101, dst=r)",
             "r = pl.tensor.scatter(od, mask_pattern=pl.tile.MaskPattern.P1010, dst=r)",
             "return r"],
        )  # fmt: skip
        same_bits(run(program(text), x), x, "gather then scatter by the same masks")

    @add
    @PROPS
    @given(m=st.integers(1, 6), n=st.integers(1, 12), data=st.data(),
           dt=st.sampled_from(["FP32", "BF16", "INT32", "INT16"]), seed=seeds)  # fmt: skip
    def test_tile_transpose_view(m, n, data, dt, seed):
        """pl.tile.transpose_view: the last two axes swapped, valid region with them; twice is
        the identity."""
        vr, vc = data.draw(st.integers(1, m)), data.draw(st.integers(1, n))
        rng = np.random.default_rng(seed)
        x = values(rng, (m, n), dt)
        text = source(
            [f"x: {T((m, n), dt)}", f"o: pl.InOut[{T((n, m), dt)}]", f"p: pl.InOut[{T((m, n), dt)}]"],
            [f"t = pl.load(x, [0, 0], [{m}, {n}], valid_shape=[{vr}, {vc}])",
             "v = pl.tile.transpose_view(t)",
             "o = pl.store(v, [0, 0], o)",
             "p = pl.store(pl.tile.transpose_view(v), [0, 0], p)",
             "return o, p"],
        )  # fmt: skip
        o, p = np.full((n, m), 7, NP[dt]), np.full((m, n), 7, NP[dt])
        run(program(text), x, o, p)
        # outside the valid region a tile is undefined (pad), so only the region is compared
        same_bits(o[:vc, :vr], x[:vr, :vc].T, f"transpose_view {dt}")
        same_bits(p[:vr, :vc], x[:vr, :vc], f"transpose_view twice {dt}")

    @add
    @PROPS
    @given(m=st.integers(1, 8), k=st.integers(1, 16), n=st.integers(1, 8), seed=seeds)
    def test_tile_transpose_view_feeds_matmul(m, k, n, seed):
        """PyPTO's use: one Mat load of b [n, k] read as b^T [k, n] for a matmul. Small
        integers, so every product and sum is exact in FP32 whatever the order."""
        rng = np.random.default_rng(seed)
        a = rng.integers(-4, 5, (m, k)).astype(BF16)
        b = rng.integers(-4, 5, (n, k)).astype(BF16)
        text = source(
            [f"a: {T((m, k), 'BF16')}", f"b: {T((n, k), 'BF16')}",
             f"o: pl.Out[{T((m, n), 'FP32')}]"],
            [f"am = pl.load(a, [0, 0], [{m}, {k}], target_memory=pl.MemorySpace.Mat)",
             f"bm = pl.load(b, [0, 0], [{n}, {k}], target_memory=pl.MemorySpace.Mat)",
             "bt = pl.tile.transpose_view(bm)",
             "c = pl.tile.matmul(pl.move(am, target_memory=pl.MemorySpace.Left),"
             " pl.move(bt, target_memory=pl.MemorySpace.Right))",
             "o = pl.store(c, [0, 0], o)",
             "return o"],
        )  # fmt: skip
        o = np.zeros((m, n), np.float32)
        run(program(text), a, b, o)
        same_bits(o, a.astype(np.float32) @ b.astype(np.float32).T, "a @ transpose_view(b)")

    # values for each mode's hits and misses against the threshold 10 (NaN only ever in ne)
    cmp_pools = {
        "eq": ([10], [5, 15, np.nan]), "ne": ([5, 15, np.nan], [10]),
        "lt": ([5], [10, 15, np.nan]), "le": ([5, 10], [15, np.nan]),
        "gt": ([15], [5, 10, np.nan]), "ge": ([10, 15], [5, np.nan]),
    }  # fmt: skip
    cmp_np = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
              "gt": np.greater, "ge": np.greater_equal}  # fmt: skip

    @add
    @PROPS
    @given(m=st.integers(1, 5), n=st.integers(1, 16), data=st.data(),
           dt=st.sampled_from(["FP32", "INT32", "FP16", "INT16"]), count=st.sampled_from(["INT32", "UINT32"]),
           mode=st.sampled_from(GATHER_CMP_MODES), as_code=st.booleans(), seed=seeds)  # fmt: skip
    def test_gather_compare_form(m, n, data, dt, count, mode, as_code, seed):
        """pl.gather(x, kvalue=k, cmp_mode=c, out_cols=C): per row, the ascending column
        indices j with x[b, j] <c> k, and the per-row count; every row has exactly C matches
        (the only case PyPTO states). cmp_mode by name or by PyPTO's code 0..5."""
        cols = data.draw(st.integers(1, n))
        rng = np.random.default_rng(seed)
        hit_vals, miss_vals = cmp_pools[mode]
        if dt in ("INT32", "INT16"):  # no NaN among integers
            hit_vals = [v for v in hit_vals if v == v]
            miss_vals = [v for v in miss_vals if v == v]
        x = np.empty((m, n), np.float64)
        for b in range(m):
            hit = np.zeros(n, bool)
            hit[rng.choice(n, size=cols, replace=False)] = True
            x[b] = np.where(hit, rng.choice(hit_vals, n), rng.choice(miss_vals, n))
        x = x.astype(NP[dt])
        code = GATHER_CMP_MODES.index(mode) if as_code else repr(mode)
        text = source(
            [f"x: {T((m, n), dt)}", f"k: pl.Scalar[pl.{dt}]",
             f"o: pl.Out[{T((m, cols), 'INT32')}]", f"c: pl.Out[{T((1, m), count)}]"],
            [f"d, n = pl.gather(x, kvalue=k, cmp_mode={code}, out_cols={cols}, "
             f"count_dtype=pl.{count})",
             "o = pl.assemble(o, d, [0, 0])",
             "c = pl.assemble(c, n, [0, 0])",
             "return o, c"],
        )  # fmt: skip
        o, c = np.zeros((m, cols), np.int32), np.zeros((1, m), NP[count])
        run(program(text), x, 10, o, c)
        hits = cmp_np[mode](x.astype(np.float64), 10.0)
        want = np.stack([np.flatnonzero(h) for h in hits]).astype(np.int32)
        same_bits(o, want, f"gather compare {mode} {dt}")
        same_bits(c, np.full((1, m), cols, NP[count]), f"gather compare counts {mode}")

    @add
    def test_gather_compare_other_counts_fault():
        """A row with fewer or more matches than out_cols is refused at run time (PyPTO does
        not state that result); exactly out_cols in every row is fine."""
        text = source(
            [f"x: {T((2, 4), 'INT32')}", "k: pl.Scalar[pl.INT32]",
             f"o: pl.Out[{T((2, 2), 'INT32')}]"],
            ["d, n = pl.gather(x, kvalue=k, cmp_mode='eq', out_cols=2)",
             "o = pl.assemble(o, d, [0, 0])",
             "return o"],
        )  # fmt: skip
        ok = np.array([[1, 0, 1, 0], [0, 1, 1, 0]], np.int32)
        o = np.zeros((2, 2), np.int32)
        run(program(text), ok, 1, o)
        same_bits(o, np.array([[0, 2], [1, 2]], np.int32), "gather compare eq")
        for bad in ([[1, 0, 1, 0], [0, 1, 1, 1]], [[1, 0, 0, 0], [0, 1, 1, 0]]):
            x = np.array(bad, np.int32)
            assert fault_rule(lambda x=x: run(program(text), x, 1, np.zeros((2, 2), np.int32))) == (
                "ShapeMismatch"
            )

    tests.update(make_sort_tests(run, PROPS, source, program, T, same_bits, seeds, fault_rule))
    return tests
