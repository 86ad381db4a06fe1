"""The FP32 weight cache notices any changed bit between runs, on the memcmp and NumPy paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pldsl import interpreter
from pldsl.execution import f32cache, numerics

BF16 = numerics.storage_dtype("BF16")

MATMUL = """
    @pl.program
    class MM:
        @pl.function
        def main(self, x: pl.Tensor[[4, 256], pl.BF16], w: pl.Tensor[[256, 256], pl.BF16], out: pl.Out[pl.Tensor[[4, 256], pl.FP32]]) -> pl.Tensor[[4, 256], pl.FP32]:
            for j in pl.range(0, 256, 64):
                wj = pl.slice(w, [256, 64], [0, j])
                out = pl.assemble(out, pl.matmul(x, wj, out_dtype=pl.FP32), [0, j])
            return out
"""


@pytest.fixture(params=["memcmp", "numpy"])
def compare_path(request, monkeypatch):
    """Run a test once with libc's memcmp and once with the chunked NumPy compare."""
    if request.param == "memcmp":
        if f32cache._MEMCMP is None:
            pytest.skip("memcmp cannot be loaded here")
    else:
        monkeypatch.setattr(f32cache, "_MEMCMP", None)
    return request.param


def _flip(arr: np.ndarray, byte: int, bit: int) -> None:
    arr.reshape(-1).view(np.uint8)[byte] ^= np.uint8(1 << bit)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300_000),
    where=st.floats(0, 1, exclude_max=True),
    bit=st.integers(0, 7),
)
def test_same_bits_notices_one_flipped_bit_anywhere(n, where, bit):
    for path in ("memcmp", "numpy"):
        saved = f32cache._MEMCMP
        if path == "numpy":
            f32cache._MEMCMP = None
        try:
            a = np.arange(n, dtype=np.uint16).view(BF16)
            b = a.copy()
            assert f32cache.same_bits(a, b)
            byte = min(int(where * a.nbytes), a.nbytes - 1)
            _flip(b, byte, bit)
            # the golden: Python bytes, independent of the code under test
            assert a.tobytes() != b.tobytes()
            assert not f32cache.same_bits(a, b)
        finally:
            f32cache._MEMCMP = saved


def test_same_bits_on_strided_arrays_and_shapes(compare_path):
    a = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).view(BF16)
    t = a.T  # not contiguous: compared element by element
    assert f32cache.same_bits(t, a.copy().T)
    c = a.copy()
    _flip(c, 2 * (5 * 64 + 9) + 1, 3)
    assert not f32cache.same_bits(t, c.T)
    assert not f32cache.same_bits(a, a.reshape(32, 128))  # same bytes, another shape


@pytest.mark.parametrize("byte", [0, 2 * 256 * 256 - 1, 2 * (100 * 256 + 130)])
def test_a_single_changed_bit_between_runs_changes_the_result(capture, compare_path, byte):
    prog = capture(MATMUL)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 256)).astype(np.float32).astype(BF16)
    w = rng.standard_normal((256, 256)).astype(np.float32).astype(BF16)
    first = interpreter.run(prog, "main", x, w, None)
    assert id(w) in f32cache._CACHE  # the weight went through the cache
    w_before = w.astype(np.float32)
    _flip(w, byte, 0 if byte % 2 else 6)  # low byte: a mantissa bit; high byte: an exponent bit
    second = interpreter.run(prog, "main", x, w, None)
    # golden: FP32 products of the exactly widened BF16 values, plain NumPy
    xf = x.astype(np.float32)
    row, col = divmod(byte // 2, 256)
    delta = (w.astype(np.float32) - w_before)[row, col]
    assert delta != 0
    changed = np.flatnonzero((second != first).any(axis=0))
    assert set(changed) <= {col}
    expected = xf @ w.astype(np.float32)
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-5)
    assert second.tobytes() == interpreter.run(prog, "main", x, w, None, fast=False).tobytes()
    if np.any(xf[:, row] != 0):
        assert col in changed
