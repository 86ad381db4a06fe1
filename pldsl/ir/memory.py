"""Memory spaces as a checked property of types.

A `pl.Tensor` lives in global memory (DDR); a `pl.Tile` lives in one on-chip buffer (Vec, Mat,
Left, Right, Acc, Bias). Ops that do not place their result themselves (`OpDef.memory ==
"follow"`) obey one rule, applied after their type rule by `bind_op_call`:

* operands all in global memory -> the result is a tensor (the type rule's answer);
* operands all tiles -> the result is a tile, in the first tile operand's space (a matmul's in
  Acc, where the cube unit writes it, as FP32 for float operands and INT32 for integers);
* tiles mixed with global tensors -> a type error: a tile is not a tensor in global memory.
"""

from __future__ import annotations

from dataclasses import fields

from pldsl.dtypes import FP32, INT32
from pldsl.enums import MemorySpace
from pldsl.ir.opdefs import OpDef, TypeRuleError
from pldsl.ir.types import TensorType, TileType, TupleType, Type

# Ops whose tile result lands in a fixed space whatever their operands' spaces.
RESULT_SPACE = {"matmul": MemorySpace.Acc, "matmul_acc": MemorySpace.Acc}

MOVE_HINT = (
    "pl.load(tensor, offsets, shapes) brings a window of a tensor on chip as a tile; "
    "pl.store(tile, offsets, tensor) writes a tile back to global memory"
)


def where(t: TensorType) -> str:
    """`a pl.Tile in Vec` / `a tensor in global memory (DDR)`: a value's place, for messages."""
    if isinstance(t, TileType):
        return f"a pl.Tile in {t.memory.name}"
    return "a tensor in global memory (DDR)"


def memory_hint(expected: object, got: object) -> str | None:
    """A help line when a value is in the wrong memory (a tile where a tensor is expected, or
    the reverse), else None."""
    if not (isinstance(expected, TensorType) and isinstance(got, TensorType)):
        return None
    if isinstance(expected, TileType) == isinstance(got, TileType):
        if isinstance(got, TileType) and expected.memory != got.memory:
            return f"pl.tile.move(tile, target_memory=pl.MemorySpace.{expected.memory.name})"
        return None
    return f"{where(got)} is not {where(expected)}: {MOVE_HINT}"


def as_tile(t: Type, memory: MemorySpace) -> Type:
    """The tile form of a tensor result (tuples item by item); tiles and scalars unchanged."""
    if isinstance(t, TupleType):
        return TupleType(tuple(as_tile(i, memory) for i in t.items))
    if isinstance(t, TensorType) and not isinstance(t, TileType):
        values = {f.name: getattr(t, f.name) for f in fields(TensorType)}
        return TileType(**values, memory=memory)
    return t


def mixed_operands(opdef: OpDef, runtime: dict) -> TypeRuleError | None:
    """The error for an op reading tiles and global tensors together, else None."""
    tiles, tensors = [], []
    for name, value in runtime.items():
        t = getattr(value, "type", None)
        if isinstance(t, TileType):
            tiles.append((name, t))
        elif isinstance(t, TensorType):
            tensors.append((name, t))
    if not tiles or not tensors:
        return None
    (tname, tile), (gname, tensor) = tiles[0], tensors[0]
    return TypeRuleError(
        f"argument '{gname}' is {where(tensor)} but '{tname}' is "
        f"{where(tile)}; an op reads either tiles or tensors, not both",
        MOVE_HINT,
    )


def apply_memory_rule(opdef: OpDef, runtime: dict, result: Type) -> Type:
    """`result` (the type rule's answer) placed in memory by the generic rule."""
    if opdef.memory != "follow":
        return result
    error = mixed_operands(opdef, runtime)
    if error is not None:
        raise error
    tiles = [v.type for v in runtime.values() if isinstance(getattr(v, "type", None), TileType)]
    if not tiles:
        return result
    if opdef.name == "matmul" and isinstance(result, TensorType):
        # the cube unit writes its accumulator type: FP32 for float operands, INT32 for ints
        acc = FP32 if result.dtype.is_float else INT32
        result = TensorType(result.shape, acc, result.valid_shape, result.pad)
    return as_tile(result, RESULT_SPACE.get(opdef.name, tiles[0].memory))


def tile_namespace_error(opdef: OpDef, args: tuple) -> TypeRuleError | None:
    """`pl.tile.X(...)` names the tile form: a global tensor operand is an error there
    (ops that place their own operands, like pl.tile.load, check themselves)."""
    if opdef.memory != "follow":
        return None
    for param, value in zip(opdef.runtime_params, args):
        name = param.name
        t = getattr(value, "type", None)
        if isinstance(t, TensorType) and not isinstance(t, TileType):
            return TypeRuleError(
                f"pl.tile.{opdef.name}: argument '{name}' is {where(t)}, not a pl.Tile",
                f"use pl.{opdef.name} for tensors, or {MOVE_HINT}",
            )
    return None
