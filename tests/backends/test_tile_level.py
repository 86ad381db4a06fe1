"""The tile level's own ops against an independent NumPy oracle, on the interpreter and on the
C backend: pl.load (windows, valid_shape, clamp, Mat), pl.store, pl.create_tile,
pl.tile.full, pl.tile.set_validshape, pl.tile.move, pl.tile.get_block_idx, and unified ops on
tiles. The oracle below never imports pldsl. Shapes, offsets and valid extents vary
(hypothesis); the programs take them as scalars, so each engine compiles once.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pldsl as pl
from pldsl.diagnostics import RuntimeFault

SOURCE = """
import pldsl as pl

H = pl.dynamic("H")
W = pl.dynamic("W")


@pl.program
class TileLevel:
    @pl.function(type=pl.FunctionType.InCore)
    def load_store(self, x: pl.Tensor[[H, W], pl.FP32], r: pl.Scalar[pl.INDEX],
                   c: pl.Scalar[pl.INDEX], o0: pl.Scalar[pl.INDEX], o1: pl.Scalar[pl.INDEX],
                   v0: pl.Scalar[pl.INDEX], v1: pl.Scalar[pl.INDEX],
                   out: pl.InOut[pl.Tensor[[H, W], pl.FP32]]):
        t = pl.load(x, [o0, o1], [r, c], valid_shape=[v0, v1])
        out = pl.store(t, [0, 0], out)
        return out, t

    @pl.function(type=pl.FunctionType.InCore)
    def load_clamped(self, x: pl.Tensor[[H, W], pl.FP32], r: pl.Scalar[pl.INDEX],
                     c: pl.Scalar[pl.INDEX], o0: pl.Scalar[pl.INDEX], o1: pl.Scalar[pl.INDEX],
                     out: pl.InOut[pl.Tensor[[H, W], pl.FP32]]):
        t = pl.load(x, [o0, o1], [r, c], target_memory=pl.MemorySpace.Mat, clamp=True)
        out = pl.store(t, [0, 0], out)
        return out, t

    @pl.function(type=pl.FunctionType.InCore)
    def compute(self, x: pl.Tensor[[16, 32], pl.BF16], v: pl.Scalar[pl.INDEX],
                w: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[16, 32], pl.BF16]]):
        b = pl.tile.get_block_idx()
        t = pl.load(x, [b * 8, 0], [8, 32])
        f = pl.tile.full([8, 32], dtype=pl.BF16, value=0.5)
        s = pl.tile.add(pl.tile.mul(t, f), t)
        p = pl.tile.fillpad(pl.tile.set_validshape(s, v, w), pad_value=pl.PadValue.min)
        m = pl.tile.move(p, target_memory=pl.MemorySpace.Vec)
        out = pl.store(m, [8, 0], out)
        ct = pl.create_tile([8, 32], dtype=pl.BF16)
        ct = pl.tile.assemble(ct, t, [0, 0])
        out = pl.store(ct, [0, 0], out)
        return out

    @pl.function(type=pl.FunctionType.InCore)
    def acc_store(self, a: pl.Tensor[[16, 32], pl.BF16], b: pl.Tensor[[32, 16], pl.BF16],
                  out: pl.Out[pl.Tensor[[16, 16], pl.BF16]]):
        am = pl.load(a, [0, 0], [16, 32], target_memory=pl.Mem.Mat)
        bm = pl.load(b, [0, 0], [32, 16], target_memory=pl.Mem.Mat)
        c = pl.tile.matmul(pl.tile.move(am, target_memory=pl.Mem.Left),
                           pl.tile.move(bm, target_memory=pl.Mem.Right))
        out = pl.store(c, [0, 0], out)
        return out

    @pl.function(type=pl.FunctionType.InCore)
    def unified(self, x: pl.Tensor[[8, 16], pl.FP32], i: pl.Scalar[pl.INDEX],
                out: pl.Out[pl.Tensor[[4, 32], pl.BF16]]):
        t = pl.tile.load(x, [0, 0], [8, 16])
        r = pl.tile.reshape(t, [4, 32])
        s = pl.tile.slice(r, [4, 8], [0, 8])
        rs = pl.tile.row_sum(s)
        m = pl.tile.row_expand_mul(r, rs)
        m = pl.tile.write(m, [0, 0], pl.tile.read(t, [1, i]))
        c = pl.tile.cast(m, target_type=pl.BF16)
        out = pl.tile.store(c, [0, 0], out)
        return out
"""

ENGINES = [pytest.param("interp", marks=pytest.mark.no_compiler), "c"]


@pytest.fixture(scope="module")
def program():
    (prog,) = pl.capture_source(SOURCE, "<tile-level>")
    return prog


@pytest.fixture(scope="module")
def engines(program):
    from pldsl import interpreter

    made = {"interp": lambda fn, *a: interpreter.run(program, fn, *a)}

    def c_run(fn, *a):
        if "c" not in made:
            from pldsl.backends import c

            made["c_prog"] = c.compile(program)
            made["c"] = True
        return made["c_prog"].run(fn, *a)

    made["cfn"] = c_run
    return made


def run(engines, engine: str, fn: str, *args):
    return engines["interp"](fn, *args) if engine == "interp" else engines["cfn"](fn, *args)


# ------------------------------------------------------------------ the oracle (plain NumPy)


def oracle_load(x, offsets, shape, want):
    """A tile of `shape` whose leading `want` box holds x's window at `offsets`, zeros
    elsewhere (the default mode fills an undefined region with zeros)."""
    tile = np.zeros(shape, x.dtype)
    o0, o1 = offsets
    w0, w1 = want
    tile[:w0, :w1] = x[o0 : o0 + w0, o1 : o1 + w1]
    return tile


def oracle_store(out, tile, want):
    out = out.copy()
    out[: want[0], : want[1]] = tile[: want[0], : want[1]]
    return out


def to_f32(a):
    return np.asarray(a).astype(np.float32)


# ------------------------------------------------------------------ load / store


windows = st.tuples(
    st.integers(1, 9), st.integers(1, 9),  # tensor H, W
    st.integers(1, 6), st.integers(1, 6),  # tile r, c
    st.integers(0, 9), st.integers(0, 9),  # offsets
    st.integers(0, 6), st.integers(0, 6),  # valid extents
)  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=40, deadline=None)
@given(win=windows, seed=st.integers(0, 2**16))
def test_load_store_window(engines, engine, win, seed):
    h, w, r, c, o0, o1, v0, v1 = win
    v0, v1 = min(v0, r), min(v1, c)
    x = np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32)
    out0 = np.full((h, w), 7.0, np.float32)
    inside = o0 + v0 <= h and o1 + v1 <= w
    if not inside:  # the accessed extent leaves the tensor: a fault, never a wrong answer
        with pytest.raises(RuntimeFault) as e:
            run(engines, engine, "load_store", x, r, c, o0, o1, v0, v1, out0.copy())
        assert e.value.diagnostic.rule == "OutOfBounds"
        return
    if r > h or c > w:  # the store of the tile's valid part must fit too
        v0, v1 = min(v0, h), min(v1, w)
    args = (x, r, c, o0, o1, v0, v1, out0.copy())
    out, tile = run(engines, engine, "load_store", *args)
    want_tile = oracle_load(x, (o0, o1), (r, c), (v0, v1))
    np.testing.assert_array_equal(to_f32(tile), want_tile)
    np.testing.assert_array_equal(to_f32(out), oracle_store(out0, want_tile, (v0, v1)))


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=40, deadline=None)
@given(win=windows, seed=st.integers(0, 2**16))
def test_load_clamp_cuts_at_the_edge(engines, engine, win, seed):
    h, w, r, c, o0, o1, _, _ = win
    r, c = min(r, h), min(c, w)  # the tile itself fits the output tensor
    x = np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32)
    out0 = np.full((h, w), 7.0, np.float32)
    if o0 > h or o1 > w:  # clamping cuts the extent, never an offset past the edge
        with pytest.raises(RuntimeFault) as e:
            run(engines, engine, "load_clamped", x, r, c, o0, o1, out0.copy())
        assert e.value.diagnostic.rule == "OutOfBounds"
        return
    out, tile = run(engines, engine, "load_clamped", x, r, c, o0, o1, out0.copy())
    want = (max(0, min(r, h - o0)), max(0, min(c, w - o1)))
    want_tile = oracle_load(x, (o0, o1), (r, c), want)
    np.testing.assert_array_equal(to_f32(tile), want_tile)
    np.testing.assert_array_equal(to_f32(out), oracle_store(out0, want_tile, want))


@pytest.mark.parametrize("engine", ENGINES)
def test_load_window_edges(engines, engine):
    """A window ending exactly at the tensor's edge loads; one element further faults."""
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    out0 = np.zeros((4, 5), np.float32)
    out, tile = run(engines, engine, "load_store", x, 2, 3, 2, 2, 2, 3, out0.copy())
    np.testing.assert_array_equal(to_f32(tile), x[2:4, 2:5])
    with pytest.raises(RuntimeFault):
        run(engines, engine, "load_store", x, 2, 3, 2, 3, 2, 3, out0.copy())
    with pytest.raises(RuntimeFault):
        run(engines, engine, "load_store", x, 2, 3, 3, 2, 2, 3, out0.copy())


# ------------------------------------------------------------------ tile compute


def oracle_compute(x, v, w):
    import ml_dtypes

    bf = ml_dtypes.bfloat16
    xf = x.astype(np.float32)
    out = np.zeros((16, 32), np.float32)
    t = xf[0:8]  # block 0
    s = (t * np.float32(0.5)).astype(bf).astype(np.float32)  # each op rounds to BF16
    s = (s + t).astype(bf).astype(np.float32)
    p = np.full((8, 32), -np.inf, np.float32)
    p[:v, :w] = s[:v, :w]
    out[8:16] = p
    out[0:8] = t
    return out


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=20, deadline=None)
@given(v=st.integers(0, 8), w=st.integers(0, 32), seed=st.integers(0, 2**16))
def test_tile_compute_matches_oracle(engines, engine, v, w, seed):
    import ml_dtypes

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((16, 32)) * 4).astype(ml_dtypes.bfloat16)
    out = run(engines, engine, "compute", x, v, w, np.zeros((16, 32), ml_dtypes.bfloat16))
    np.testing.assert_array_equal(to_f32(out), oracle_compute(x, v, w))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("i", [0, 15])
def test_unified_ops_on_tiles(engines, engine, i):
    import ml_dtypes

    x = np.random.default_rng(i).standard_normal((8, 16)).astype(np.float32)
    got = run(engines, engine, "unified", x, i, np.zeros((4, 32), ml_dtypes.bfloat16))
    r = x.reshape(4, 32)
    rs = r[:, 8:16].astype(np.float64).sum(axis=1, keepdims=True)
    want = r * rs.astype(np.float32)
    want[0, 0] = x[1, i]
    want = want.astype(ml_dtypes.bfloat16).astype(np.float32)
    # row_sum of 8 FP32 values: within the summation bound, then one rounding to BF16
    np.testing.assert_allclose(to_f32(got), want, rtol=2**-7, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_acc_tile_is_narrowed_on_store(engines, engine):
    """An FP32 Acc tile stored into a BF16 tensor is rounded to nearest even on the way. Small
    integers make the FP32 matmul exact, so the oracle is exact too."""
    import ml_dtypes

    rng = np.random.default_rng(3)
    a = rng.integers(-40, 41, (16, 32)).astype(ml_dtypes.bfloat16)
    b = rng.integers(-40, 41, (32, 16)).astype(ml_dtypes.bfloat16)
    got = run(engines, engine, "acc_store", a, b, np.zeros((16, 16), ml_dtypes.bfloat16))
    exact = a.astype(np.int64) @ b.astype(np.int64)  # |sum| < 2^24: exact in FP32
    want = exact.astype(np.float32).astype(ml_dtypes.bfloat16)  # RNE
    assert np.asarray(got).dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(to_f32(got), to_f32(want))
    assert not np.array_equal(to_f32(want), exact.astype(np.float32))  # rounding did happen


@pytest.mark.parametrize("engine", ENGINES)
def test_set_validshape_past_the_tile_faults(engines, engine):
    import ml_dtypes

    x = np.zeros((16, 32), ml_dtypes.bfloat16)
    with pytest.raises(RuntimeFault) as e:
        run(engines, engine, "compute", x, 9, 4, np.zeros((16, 32), ml_dtypes.bfloat16))
    assert e.value.diagnostic.rule == "BadValidShape"


@pytest.mark.no_compiler
def test_get_block_idx_reads_the_context():
    """The SPMD executor's interface: the block index is `Context.block_idx` (0 by default)."""
    from pldsl.interpreter.ops import KERNELS

    from pldsl.execution.memory import Context

    fn = KERNELS["tile.get_block_idx"].fn
    assert fn(Context(), None) == 0
    assert fn(Context(block_idx=5), None) == 5


# ------------------------------------------------------------------ a tile-level kernel file

KERNEL_FILE = __import__("pathlib").Path(__file__).parents[1] / "pldsl/kernels_src/tile_level.py"


@pytest.fixture(scope="module")
def kernel_file():
    (prog,) = pl.capture_source(KERNEL_FILE.read_text(), str(KERNEL_FILE))
    return prog


def _exec(prog, engine, fn, *args):
    if engine == "interp":
        from pldsl import interpreter

        return interpreter.run(prog, fn, *args)
    from pldsl.backends import c

    return c.compile(prog).run(fn, *args)


@pytest.mark.parametrize("engine", ENGINES)
def test_cube_path_matmul_into_acc(kernel_file, engine):
    """Mat -> Left / Right -> Acc: two accumulated BF16 matmuls in FP32, vs float64."""
    import ml_dtypes

    rng = np.random.default_rng(7)
    a = rng.standard_normal((16, 32)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((32, 16)).astype(ml_dtypes.bfloat16)
    out = _exec(kernel_file, engine, "cube", a, b, np.zeros((16, 16), np.float32))
    assert np.asarray(out).dtype == np.float32  # the accumulator's type, not BF16
    exact = 2 * (a.astype(np.float64) @ b.astype(np.float64))
    # FP32 accumulation: each sum of 32 products is within 64 ulps of sum |a||b|, twice
    bound = (
        2
        * 64
        * np.finfo(np.float32).eps
        * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    )
    assert np.all(np.abs(out - exact) <= bound)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("valid_cols", [0, 1, 7, 16])
def test_vector_path_masked_row_max(kernel_file, engine, valid_cols):
    x = np.random.default_rng(valid_cols).standard_normal((64, 16)).astype(np.float32)
    out = _exec(kernel_file, engine, "vector", x, valid_cols, np.zeros((64, 1), np.float32))
    want = np.full((16, 1), -np.inf, np.float32)
    if valid_cols:
        want[:, 0] = (x[:16, :valid_cols] + np.float32(0.25)).max(axis=1)
    np.testing.assert_array_equal(np.asarray(out)[:16], want)  # block 0 outside pl.spmd
