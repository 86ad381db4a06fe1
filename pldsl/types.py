"""Annotation objects of the `pl` surface: pl.Tensor[...], pl.Out[...], pl.dynamic(...).

These are plain Python values: capture evaluates a parameter's annotation against the
decorating frame and reads the resulting object (the function body is never run).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pldsl.dtypes import DType
from pldsl.enums import MemorySpace, PadValue


@dataclass(frozen=True, eq=False)
class DynVar:
    """A dynamic dimension; the same object means the same dim in every function."""

    name: str

    def __repr__(self) -> str:
        return f'pl.dynamic("{self.name}")'


def dynamic(name: str) -> DynVar:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"pl.dynamic needs an identifier name, got {name!r}")
    return DynVar(name)


@dataclass(frozen=True)
class TensorView:
    valid_shape: Any = None
    pad: PadValue | None = None
    stride: Any = None
    layout: Any = None


@dataclass(frozen=True)
class TensorAnnotation:
    shape: tuple
    dtype: DType
    view: TensorView | None = None


@dataclass(frozen=True)
class TileAnnotation(TensorAnnotation):
    """`pl.Tile[[r, c], dtype]` or `pl.Tile[[r, c], dtype, pl.Mem.Mat]`: an on-chip tile."""

    memory: MemorySpace = MemorySpace.Vec


@dataclass(frozen=True)
class ScalarAnnotation:
    dtype: DType


@dataclass(frozen=True)
class DirectionAnnotation:
    direction: str  # "Out" | "InOut"
    inner: Any


@dataclass(frozen=True)
class TupleAnnotation:
    items: tuple


class AnnotationError(TypeError):
    pass


class _TensorFactory:
    def __getitem__(self, item: Any) -> TensorAnnotation:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise AnnotationError("pl.Tensor takes [[dims...], dtype] (and an optional view)")
        shape, dtype = item[0], item[1]
        if not isinstance(shape, (list, tuple)):
            raise AnnotationError("pl.Tensor's first item must be a list of dims")
        if not isinstance(dtype, DType):
            raise AnnotationError(f"pl.Tensor's second item must be a dtype, got {dtype!r}")
        view = item[2] if len(item) == 3 else None
        if view is not None and not isinstance(view, TensorView):
            raise AnnotationError("pl.Tensor's third item must be a pl.TensorView(...)")
        for d in shape:
            if not isinstance(d, (int, DynVar)) or isinstance(d, bool):
                raise AnnotationError(f"tensor dims must be ints or pl.dynamic dims, got {d!r}")
        return TensorAnnotation(tuple(shape), dtype, view)

    def __repr__(self) -> str:
        return "pl.Tensor"


class _TileFactory:
    def __getitem__(self, item: Any) -> TileAnnotation:
        if not isinstance(item, tuple) or len(item) < 2:
            raise AnnotationError("pl.Tile takes [[dims...], dtype] (and an optional memory space)")
        memory, view = MemorySpace.Vec, None
        for extra in item[2:]:
            if isinstance(extra, MemorySpace):
                memory = extra
            elif isinstance(extra, TensorView):
                view = extra
            else:
                raise AnnotationError(
                    f"pl.Tile's extra items are a pl.MemorySpace and a pl.TileView, got {extra!r}"
                )
        if memory is MemorySpace.DDR:
            raise AnnotationError("a pl.Tile lives on chip: DDR is where a pl.Tensor lives")
        base = Tensor[item[0], item[1]]
        return TileAnnotation(base.shape, base.dtype, view, memory)

    def __repr__(self) -> str:
        return "pl.Tile"


def is_bare_tensor(ann: Any) -> bool:
    """`pl.Tensor` written without `[...]`: its shape and dtype come from a @pl.jit call."""
    return isinstance(ann, _TensorFactory)


class _ScalarFactory:
    def __getitem__(self, dtype: Any) -> ScalarAnnotation:
        if not isinstance(dtype, DType):
            raise AnnotationError(f"pl.Scalar takes a dtype, got {dtype!r}")
        return ScalarAnnotation(dtype)


class _DirectionFactory:
    def __init__(self, direction: str) -> None:
        self.direction = direction

    def __getitem__(self, inner: Any) -> DirectionAnnotation:
        # `pl.Out[pl.Tensor]`: a bare tensor, shaped from the call's argument (@pl.jit only)
        if not isinstance(inner, (TensorAnnotation, ScalarAnnotation, _TensorFactory)):
            raise AnnotationError(f"pl.{self.direction}[...] wraps a pl.Tensor[...]")
        if isinstance(inner, ScalarAnnotation) and self.direction == "InOut":
            raise AnnotationError("a Scalar parameter cannot be InOut")
        return DirectionAnnotation(self.direction, inner)


class _TupleFactory:
    def __getitem__(self, items: Any) -> TupleAnnotation:
        items = items if isinstance(items, tuple) else (items,)
        return TupleAnnotation(items)


class _ArrayFactory:
    """`pl.Array[extent, dtype]`: a small on-core 1-D array (task ids, counters), captured as a
    1-D tensor of `extent` elements."""

    def __getitem__(self, item: Any) -> TensorAnnotation:
        if not isinstance(item, tuple) or len(item) != 2:
            raise AnnotationError("pl.Array takes [extent, dtype]")
        extent, dtype = item
        if not isinstance(extent, int) or isinstance(extent, bool) or extent <= 0:
            raise AnnotationError(f"pl.Array's extent must be a positive int, got {extent!r}")
        if not isinstance(dtype, DType) or not dtype.is_int:
            raise AnnotationError(f"pl.Array holds integers or task ids, got {dtype!r}")
        return TensorAnnotation((extent,), dtype)

    def __repr__(self) -> str:
        return "pl.Array"


Tensor = _TensorFactory()
Array = _ArrayFactory()
Tile = _TileFactory()
TileView = TensorView  # PyPTO's name for a tile's view; the same fields
Scalar = _ScalarFactory()
Out = _DirectionFactory("Out")
InOut = _DirectionFactory("InOut")
Tuple = _TupleFactory()


class SplitMode(Enum):
    """How `pl.split(...)` divides an InCore scope between the two cores of a pair."""

    NONE = "NONE"
    UP_DOWN = "UP_DOWN"
    LEFT_RIGHT = "LEFT_RIGHT"


class PlacementHint:
    """An entry of `pl.at(optimizations=[...])` / `pl.spmd(optimizations=[...])` that places
    work on cores (no numeric effect): capture accepts it and records nothing."""


@dataclass(frozen=True)
class SplitHint(PlacementHint):
    """`pl.split(pl.SplitMode.X)`: splits a scope's data transfers over a core pair.
    `slot_num=` is PyPTO's deprecated spelling of `pl.cross_core_slot(slot_num=)`."""

    mode: SplitMode
    slot_num: int | None = None


@dataclass(frozen=True)
class CrossCoreSlot(PlacementHint):
    """`pl.cross_core_slot(slot_num=N)`: the ring depth of the cross-core pipe."""

    slot_num: int


def _check_slot_num(slot_num: object, api: str) -> None:
    if not isinstance(slot_num, int) or isinstance(slot_num, bool) or slot_num <= 0:
        raise ValueError(f"{api} slot_num must be a positive integer, got {slot_num!r}")


def split(mode: SplitMode, *, slot_num: int | None = None) -> SplitHint:
    if not isinstance(mode, SplitMode):
        raise ValueError(f"pl.split takes a pl.SplitMode member, got {mode!r}")
    if slot_num is not None:
        _check_slot_num(slot_num, "pl.split")
    return SplitHint(mode, slot_num)


def cross_core_slot(*, slot_num: int) -> CrossCoreSlot:
    _check_slot_num(slot_num, "pl.cross_core_slot")
    return CrossCoreSlot(slot_num)
