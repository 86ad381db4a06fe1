"""BF16 rounding for the goldens, in plain NumPy.

PyPTO's default cast mode ``round`` rounds to the nearest BF16 value with ties away from zero,
which is not what ``ml_dtypes`` (round-to-nearest-even) does.  Both goldens
(`kernels.examples.goldens` and `kernels.qwen3.golden`) round with `round_bf16_f32`, written here
from the bit layout of FP32 and independent of pldsl and the interpreter: this module imports
nothing but NumPy (a test enforces it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["round_bf16_f32"]


def round_bf16_f32(x: np.ndarray) -> np.ndarray:
    """Round FP32 values to the nearest BF16 value, ties away from zero; result stays FP32.

    Bit trick: add half a BF16 ulp (``0x8000``) to the magnitude bits and clear the low 16 bits.
    Because FP32 is sign-magnitude, this rounds ties away from zero; a carry out of the mantissa
    bumps the exponent (and overflows to infinity past the BF16 range), as it should.  NaN stays
    a (quiet) NaN with its sign.  Other dtypes are converted to FP32 first.
    """
    a = np.ascontiguousarray(x, dtype=np.float32)
    u = a.view(np.uint32)
    sign = u & np.uint32(0x80000000)
    mag = u & np.uint32(0x7FFFFFFF)
    rounded = (mag + np.uint32(0x8000)) & np.uint32(0xFFFF0000)
    rounded = np.where(mag > np.uint32(0x7F800000), np.uint32(0x7FC00000), rounded)
    return (sign | rounded).view(np.float32)
