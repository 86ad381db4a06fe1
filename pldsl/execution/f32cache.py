"""FP32 copies of BF16 arrays that a kernel only reads, kept across runs and re-validated.

A matmul widens its BF16 operands to FP32 (exactly) on every tile read; for weights, that is
every element on every step. The cache keeps, per caller array, the widened FP32 copy and a
copy of the BF16 bits it was made from. On its first use in a run, an entry is checked bit for
bit against the array (one compare of 2-byte patterns, much cheaper than widening again): the
caller may have written the array between runs. Within a run the array cannot change: only
parameters the kernel never writes (`pldsl.ir.analysis.written_params`) are cached.

Widening is exact (NaNs keep their payload and become quiet, as `numerics.cast` does), so a
result computed from the cached copy is bit-identical to one computed from the BF16 tiles.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from pldsl.execution import numerics

__all__ = ["MIN_ELEMENTS", "widened"]

MIN_ELEMENTS = 1 << 16  # smaller arrays widen faster than a cache entry is checked

_U16 = np.uint16


class _Entry:
    __slots__ = ("ref", "shape", "strides", "bits", "f32")

    def __init__(self, arr: np.ndarray):
        self.ref = weakref.ref(arr)
        self.shape, self.strides = arr.shape, arr.strides
        self.bits = arr.view(_U16).copy()
        self.f32 = numerics.cast(arr, "FP32", "rint")

    def valid_for(self, arr: np.ndarray) -> bool:
        return (
            self.ref() is arr
            and arr.shape == self.shape
            and arr.strides == self.strides
            and np.array_equal(arr.view(_U16), self.bits)
        )


_CACHE: dict[int, _Entry] = {}
_LOCK = threading.Lock()


def _forget(key: int) -> None:
    with _LOCK:
        _CACHE.pop(key, None)


def widened(arr: np.ndarray) -> np.ndarray:
    """The FP32 copy of a BF16 array (from the cache when its bits are unchanged)."""
    key = id(arr)
    with _LOCK:
        entry = _CACHE.get(key)
    if entry is not None and entry.valid_for(arr):
        return entry.f32
    entry = _Entry(arr)
    with _LOCK:
        _CACHE[key] = entry
    weakref.finalize(arr, _forget, key)
    return entry.f32
