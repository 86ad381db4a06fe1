"""Types carried by every IR value: tensors, scalars, tuples.

Dimensions are `int` when static, or a scalar IR expression (a dynamic dim
`Var`, or arithmetic over them) when symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from pldsl.dtypes import DType
from pldsl.enums import PadValue

if TYPE_CHECKING:
    from pldsl.ir.nodes import Expr

Dim = Union[int, "Expr"]


@dataclass(frozen=True, eq=False)
class TensorType:
    shape: tuple[Dim, ...]
    dtype: DType
    valid_shape: tuple[Dim, ...] | None = None
    pad: PadValue | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def effective_valid_shape(self) -> tuple[Dim, ...]:
        return self.valid_shape if self.valid_shape is not None else self.shape


@dataclass(frozen=True, eq=False)
class ScalarType:
    dtype: DType


@dataclass(frozen=True, eq=False)
class TupleType:
    items: tuple[Type, ...]


Type = Union[TensorType, ScalarType, TupleType]
