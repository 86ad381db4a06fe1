"""Independent NumPy goldens for the example kernels.

Written in plain NumPy from the mathematical definition of each kernel, never from the
kernel's tiling: this module imports nothing but NumPy and the BF16 rounding helper
`kernels.bf16` (itself NumPy only, shared with the Qwen3 golden), never pldsl or the
interpreter (a test enforces it). FP32 kernels are compared against float64 results; the BF16
GEMM golden rounds exactly where the kernel's BF16 cast sits (once, after the whole K
reduction).
"""

from __future__ import annotations

import numpy as np

from ..bf16 import round_bf16_f32

__all__ = [
    "elementwise_add_golden",
    "gemm_bf16_golden",
    "gemm_golden",
    "layer_norm_golden",
    "matmul_golden",
    "rms_norm_golden",
    "rope_golden",
    "softmax_golden",
]


def _f64(x) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def elementwise_add_golden(x, a) -> np.ndarray:
    """y = x + a."""
    return _f64(x) + float(a)


def matmul_golden(a, b) -> np.ndarray:
    """C = A @ B in float64."""
    return _f64(a) @ _f64(b)


gemm_golden = matmul_golden  # the K tiling does not change the mathematical result


def gemm_bf16_golden(a, b) -> np.ndarray:
    """C = bf16(A @ B): BF16 inputs (exact in float64), the float64 product stored as FP32 (the
    accumulator's precision), then one rounding to BF16 with ties away from zero, as the
    kernel's single final ``pl.cast``. Returns float64 (BF16-representable) values."""
    product = (_f64(a) @ _f64(b)).astype(np.float32)
    return round_bf16_f32(product).astype(np.float64)


def rms_norm_golden(x, gamma, eps: float = 1e-6) -> np.ndarray:
    """y = x / sqrt(mean(x**2, axis=-1) + eps) * gamma."""
    x = _f64(x)
    rms = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x / rms * _f64(gamma).reshape(1, -1)


def layer_norm_golden(x, gamma, beta, eps: float = 1e-5) -> np.ndarray:
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, biased (population) variance."""
    x = _f64(x)
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * _f64(gamma).reshape(1, -1) + _f64(beta).reshape(1, -1)


def softmax_golden(x) -> np.ndarray:
    """Row softmax: exp(x - max) / sum(exp(x - max))."""
    x = _f64(x)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def rope_golden(x, cos, sin) -> np.ndarray:
    """Half-split (rotate_half) RoPE with one cos/sin row shared by every row of x:
    y = x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x_hi, x_lo)."""
    x = _f64(x)
    cos = _f64(cos).reshape(1, -1)
    sin = _f64(sin).reshape(1, -1)
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[:, half:], x[:, :half]], axis=-1)
    return x * cos + rotated * sin
