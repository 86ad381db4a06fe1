"""Data types of the `pl` language (PyPTO's DataType subset pldsl implements)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """An element type. `kind` is one of float, int, uint, bool, index."""

    name: str
    bits: int
    kind: str

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "uint", "index")

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    def get_byte(self) -> int:
        return max(1, (self.bits + 7) // 8)

    def __repr__(self) -> str:
        return f"pl.{self.name}"


BOOL = DType("BOOL", 8, "bool")
INT8 = DType("INT8", 8, "int")
INT16 = DType("INT16", 16, "int")
INT32 = DType("INT32", 32, "int")
INT64 = DType("INT64", 64, "int")
UINT8 = DType("UINT8", 8, "uint")
UINT16 = DType("UINT16", 16, "uint")
UINT32 = DType("UINT32", 32, "uint")
UINT64 = DType("UINT64", 64, "uint")
FP16 = DType("FP16", 16, "float")
BF16 = DType("BF16", 16, "float")
FP32 = DType("FP32", 32, "float")
INDEX = DType("INDEX", 64, "index")
# A task's id (`with pl.at(...) as tid`, `pl.system.task_dummy`): an integer handle, 1, 2, ...
# in creation order; 0 (or less) means "no producer" and is skipped as a dependency.
TASK_ID = DType("TASK_ID", 64, "index")

ALL_DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        BOOL,
        INT8,
        INT16,
        INT32,
        INT64,
        UINT8,
        UINT16,
        UINT32,
        UINT64,
        FP16,
        BF16,
        FP32,
        INDEX,
        TASK_ID,
    )
}

CAST_MODES = ("none", "rint", "round", "floor", "ceil", "trunc", "odd")


def promote(a: DType, b: DType) -> DType:
    """PyPTO's PromoteDataTypes: equal -> same; float beats int; wider wins;
    same width: signed beats unsigned; otherwise the left operand."""
    if a == b:
        return a
    if a.is_float != b.is_float:
        return a if a.is_float else b
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    if a.kind == "uint" and b.kind in ("int", "index"):
        return b
    return a


def same_category(a: DType, b: DType) -> bool:
    """Scalar arithmetic needs both operands int-like or both float."""
    return a.is_float == b.is_float and not a.is_bool and not b.is_bool
