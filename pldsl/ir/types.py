"""Types carried by every IR value: tensors, tiles, scalars, tuples.

Dimensions are `int` when static, or a scalar IR expression (a dynamic dim
`Var`, or arithmetic over them) when symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from pldsl.dtypes import DType
from pldsl.enums import MemorySpace, PadValue

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
class TileType(TensorType):
    """A tensor that lives in an on-chip buffer (`pl.Tile`): every op that reads tensors reads
    tiles too, but a tile is never a tensor in global memory (see `memory_of`)."""

    memory: MemorySpace = MemorySpace.Vec


@dataclass(frozen=True, eq=False)
class DistributedTensorType(TensorType):
    """`pld.DistributedTensor[...]`: a tensor in a rank's slice of a window buffer (global
    memory every rank of the group can reach by rank id)."""


@dataclass(frozen=True, eq=False)
class WindowBufferType(TensorType):
    """What `pld.alloc_window_buffer` returns on the host: one slot of this shape per rank,
    reached through `pld.window` views."""


def memory_of(t: object) -> MemorySpace | None:
    """The memory space of a tensor-like type: DDR for a tensor, the tile's space for a tile,
    None for anything else."""
    if isinstance(t, TileType):
        return t.memory
    if isinstance(t, TensorType):
        return MemorySpace.DDR
    return None


@dataclass(frozen=True, eq=False)
class ScalarType:
    dtype: DType


@dataclass(frozen=True, eq=False)
class TupleType:
    items: tuple[Type, ...]


Type = Union[TensorType, TileType, ScalarType, TupleType]
