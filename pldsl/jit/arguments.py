"""The arguments of a @pl.jit call: NumPy arrays, torch CPU tensors and Python scalars.

Each argument becomes a `Arg`: what specialisation reads (shape, dtype) and what the executor
receives (a NumPy array sharing the caller's memory wherever possible, so Out arguments are
written in place as PyPTO writes them on the device). torch is never imported here unless the
caller passed a torch tensor.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from pldsl import dtypes as D
from pldsl.dtypes import DType

_NUMPY_DTYPES: dict[str, DType] = {
    "float32": D.FP32,
    "float16": D.FP16,
    "bfloat16": D.BF16,
    "int8": D.INT8,
    "int16": D.INT16,
    "int32": D.INT32,
    "int64": D.INT64,
    "uint8": D.UINT8,
    "uint16": D.UINT16,
    "uint32": D.UINT32,
    "uint64": D.UINT64,
    "bool": D.BOOL,
}
_TORCH_DTYPES: dict[str, DType] = {
    "torch.float32": D.FP32,
    "torch.float16": D.FP16,
    "torch.bfloat16": D.BF16,
    "torch.int8": D.INT8,
    "torch.int16": D.INT16,
    "torch.int32": D.INT32,
    "torch.int64": D.INT64,
    "torch.uint8": D.UINT8,
    "torch.bool": D.BOOL,
}


class ArgumentTypeError(TypeError):
    """An argument the jit runner cannot pass to a kernel."""


@dataclass
class Arg:
    """One call argument: `array` for tensors (shape/dtype from it), else `scalar`."""

    array: np.ndarray | None = None
    dtype: DType | None = None
    scalar: Any = None
    # torch tensor whose memory could not be shared: copied back after the run
    copy_back: Any = None

    @property
    def is_tensor(self) -> bool:
        return self.array is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape) if self.array is not None else ()

    def finish(self) -> None:
        """Copy results back into a torch tensor whose memory was not shared."""
        if self.copy_back is not None:
            self.copy_back.copy_(_torch_from_numpy(self.array, self.copy_back.dtype))


def is_torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def classify(value: Any, name: str) -> Arg:
    """Turn one call argument into an `Arg` (raises ArgumentTypeError)."""
    if is_torch_tensor(value):
        if value.ndim == 0:
            return Arg(scalar=value.item())
        return _from_torch(value, name)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return Arg(scalar=value.item())
        dtype = _NUMPY_DTYPES.get(value.dtype.name)
        if dtype is None:
            raise ArgumentTypeError(f"argument '{name}': NumPy dtype {value.dtype} has no pl dtype")
        return Arg(array=value, dtype=dtype)
    if isinstance(value, np.generic):
        return Arg(scalar=value.item())
    if isinstance(value, (bool, int, float)):
        return Arg(scalar=value)
    raise ArgumentTypeError(
        f"argument '{name}' is a {type(value).__name__}: pass NumPy arrays, torch CPU tensors "
        "or Python numbers"
    )


def _from_torch(t: Any, name: str) -> Arg:
    dtype = _TORCH_DTYPES.get(str(t.dtype))
    if dtype is None:
        raise ArgumentTypeError(f"argument '{name}': torch dtype {t.dtype} has no pl dtype")
    if t.device.type != "cpu":
        raise ArgumentTypeError(f"argument '{name}' lives on {t.device}; pass a CPU tensor")
    if t.requires_grad:
        t = t.detach()
    if t.is_contiguous():
        return Arg(array=_numpy_view(t), dtype=dtype)
    array = _numpy_view(t.contiguous())
    return Arg(array=array, dtype=dtype, copy_back=t)


def _numpy_view(t: Any) -> np.ndarray:
    """A NumPy array sharing the tensor's memory (bf16 through its bit pattern)."""
    import torch

    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _torch_from_numpy(a: np.ndarray, dtype: Any) -> Any:
    import torch

    if dtype == torch.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


def scalar_dtype(value: Any) -> DType:
    """The pl dtype an unannotated scalar argument gets (PyPTO's defaults)."""
    if isinstance(value, bool):
        return D.BOOL
    if isinstance(value, int):
        return D.INDEX
    return D.FP32
