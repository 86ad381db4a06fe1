"""The objects of the `pld` surface: enums, the `pld.DistributedTensor[...]` annotation and
the op placeholders (captured, never called)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pldsl.diagnostics import CaptureError, Diagnostic, Span
from pldsl.ir.types import DistributedTensorType
from pldsl.types import AnnotationError, Tensor, TensorAnnotation


class CommCtx:
    """The communication-group handle `pld.get_comm_ctx` returns (a scalar in pldsl's IR)."""


CommCtxType = CommCtx


@dataclass(frozen=True)
class DistributedTensorAnnotation(TensorAnnotation):
    """`pld.DistributedTensor[[dims], dtype]`: a tensor bound to a rank's window slice."""

    @property
    def ir_type(self) -> type:
        return DistributedTensorType


class _DistributedTensorFactory:
    def __getitem__(self, item: Any) -> DistributedTensorAnnotation:
        if not isinstance(item, tuple) or len(item) != 2:
            raise AnnotationError("pld.DistributedTensor takes [[dims...], dtype]")
        base = Tensor[item[0], item[1]]
        return DistributedTensorAnnotation(base.shape, base.dtype)

    def __repr__(self) -> str:
        return "pld.DistributedTensor"


DistributedTensor = _DistributedTensorFactory()


def _kernel_only(name: str) -> Any:
    def placeholder(*args: Any, **kwargs: Any) -> Any:
        raise CaptureError(
            Diagnostic(
                "NotInKernel",
                "error",
                f"pld.{name} can only be used inside a kernel body",
                Span("<python>"),
                "kernel bodies are captured, not executed",
            )
        )

    placeholder.__name__ = placeholder.__qualname__ = name.rsplit(".", 1)[-1]
    return placeholder


class namespace:  # noqa: N801 - reads like a module at the use site
    """`pld.system`, `pld.tensor`, `pld.tile` (and the top level): placeholders by name."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _kernel_only(f"{self._prefix}.{name}" if self._prefix else name)

    def __repr__(self) -> str:
        return f"pld.{self._prefix}"
