"""FP32 copies of BF16 arrays that a kernel only reads, kept across runs and re-validated.

A matmul widens its BF16 operands to FP32 (exactly) on every tile read; for weights, that is
every element on every step. The cache keeps, per caller array, the widened FP32 copy and a
copy of the BF16 bits it was made from. On its first use in a run, an entry is checked bit for
bit against the array (`same_bits`: one `memcmp` of the two buffers through ctypes when both
are contiguous, no temporary arrays; else a chunked NumPy compare), much cheaper than widening
again: the caller may have written the array between runs, and NumPy cannot tell us whether it
did, so every run compares every byte. Within a run the array cannot change: only
parameters the kernel never writes (`pldsl.ir.analysis.written_params`) are cached.

Widening is exact (NaNs keep their payload and become quiet, as `numerics.cast` does), so a
result computed from the cached copy is bit-identical to one computed from the BF16 tiles.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import weakref

import numpy as np

from pldsl.execution import numerics

__all__ = ["MIN_ELEMENTS", "same_bits", "widened"]

MIN_ELEMENTS = 1 << 16  # smaller arrays widen faster than a cache entry is checked

_U16 = np.uint16
_CHUNK = 1 << 16  # bytes per step of the NumPy compare: its temporaries stay in cache


def _load_memcmp():  # noqa: ANN202 - a ctypes function or None
    """libc's memcmp (one pass, vectorised, no allocation), or None where it cannot be loaded."""
    try:
        lib = ctypes.cdll.msvcrt if sys.platform == "win32" else ctypes.CDLL(None)
        fn = lib.memcmp
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_MEMCMP = _load_memcmp()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one shape and item size (1, 2, 4 or 8 bytes) hold the same bytes,
    element for element."""
    if a.shape != b.shape or a.itemsize != b.itemsize:
        return False
    if not (a.flags.c_contiguous and b.flags.c_contiguous):  # rare: a strided argument
        bits = np.dtype(f"u{a.itemsize}")
        return bool(np.array_equal(a.view(bits), b.view(bits)))
    if _MEMCMP is not None:
        return a.nbytes == 0 or _MEMCMP(a.ctypes.data, b.ctypes.data, a.nbytes) == 0
    return _chunked_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


def _chunked_equal(x: np.ndarray, y: np.ndarray) -> bool:
    """Byte equality of two flat uint8 arrays, chunk by chunk (no array as large as the input)."""
    for i in range(0, x.size, _CHUNK):
        if not np.array_equal(x[i : i + _CHUNK], y[i : i + _CHUNK]):
            return False
    return True


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
            and same_bits(arr, self.bits)
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
