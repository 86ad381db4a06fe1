"""Shapes a jit function takes from its call site rather than its annotations, as PyPTO's jit
does. A jit dependency called with an argument whose static dims differ from its annotation is
specialised at the argument's shape, as PyPTO's jit takes a dependency's shapes from the call
site (pypto-lib's prefill_cp_layer.py passes a [32, 128, 1, 512] cache to a helper annotated
[32, 1, 1, 512]); its own `pl.dynamic` dims would stay symbolic. An entry's argument must still
agree with its annotation, and a dtype or rank difference stays an error."""

import numpy as np
import pytest

import pldsl as pl


@pl.jit.inline
def double_rows(x: pl.Tensor[[4, 8], pl.FP32], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
    y[0:4, 0:8] = pl.add(x[0:4, 0:8], x[0:4, 0:8])  # the annotated window of a wider tensor
    return y


@pl.jit
def wider(x: pl.Tensor[[4, 16], pl.FP32], y: pl.Out[pl.Tensor[[4, 16], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = double_rows(x, y)
    return y


@pl.jit
def other_dtype(x: pl.Tensor[[4, 8], pl.BF16], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = double_rows(x, y)
    return y


def test_dependency_takes_the_arguments_static_dims():
    x = np.arange(64, dtype=np.float32).reshape(4, 16)
    y = np.zeros_like(x)
    wider(x, y)
    want = np.zeros_like(x)
    want[:, :8] = 2 * x[:, :8]
    np.testing.assert_array_equal(y, want)
    text = pl.print_ir(wider.specialize(x, y))
    assert "def double_rows(self, x: pl.Tensor[[4, 16], pl.FP32]" in text


def test_a_dtype_difference_is_still_an_error():
    import ml_dtypes

    x = np.zeros((4, 8), ml_dtypes.bfloat16)
    with pytest.raises(pl.CaptureError) as e:
        other_dtype(x, np.zeros((4, 8), np.float32))
    assert "the annotation says pl.Tensor[[4, 8], pl.FP32]" in e.value.diagnostic.message


@pl.jit
def returns_its_out(
    x: pl.Tensor[[4, 8], pl.FP32], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]
) -> (
    pl.Tensor[[4, 2, 8], pl.FP32]  # pypto-lib's decode_mtp.py declares another shape
):
    with pl.at(level=pl.Level.CORE_GROUP):
        y[0:4, 0:8] = pl.exp(x)
    return y


def test_one_returned_tensor_takes_its_own_type():
    # PyPTO's jit infers a single returned tensor's type from the tensor (only tuple and
    # scalar return annotations are kept)
    x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
    y = np.zeros_like(x)
    returns_its_out(x, y)
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)
    text = pl.print_ir(returns_its_out.specialize(x, y))
    assert "-> pl.Tensor[[4, 8], pl.FP32]:" in text
