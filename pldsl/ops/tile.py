"""The tile level's own ops: moving data between global memory and on-chip tiles, allocating
tiles, and tile metadata. One entry per op, as in `pldsl.ops.table`; every other op serves
tiles through the generic memory rule (`pldsl.ir.memory`), and `pl.tile.X` names it too.

A tile's memory space is part of its type (`TileType.memory`): these rules check that what
must be a tensor in global memory is one, and what must be a tile is one.
"""

from __future__ import annotations

from pldsl.dtypes import INDEX, INT32
from pldsl.enums import MemorySpace
from pldsl.ir.memory import MOVE_HINT, where
from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import describe_type, format_dims
from pldsl.ir.symbolic import simplify_dim, static_value
from pldsl.ir.types import Dim, ScalarType, TensorType, TileType
from pldsl.ops.table import _dims, _infer_full

P = OpParam
LOADABLE = (MemorySpace.Vec, MemorySpace.Mat)  # a DDR-facing load lands only here


def _global(args: dict, name: str) -> TensorType:
    t = getattr(args[name], "type", None)
    if isinstance(t, TileType):
        raise TypeRuleError(
            f"'{name}' must be a tensor in global memory, got {where(t)}",
            "a tile is already on chip: use it directly, pl.tile.slice a window of it, "
            "or pl.tile.assemble it into another tile",
        )
    if not isinstance(t, TensorType):
        raise TypeRuleError(f"'{name}' must be a tensor, got {describe_type(t)}")
    return t


def _tile(args: dict, name: str) -> TileType:
    t = getattr(args[name], "type", None)
    if isinstance(t, TileType):
        return t
    if isinstance(t, TensorType):
        raise TypeRuleError(f"'{name}' must be a pl.Tile, got {where(t)}", MOVE_HINT)
    raise TypeRuleError(f"'{name}' must be a pl.Tile, got {describe_type(t)}")


def _space(attrs: dict, allowed: tuple[MemorySpace, ...]) -> MemorySpace:
    space = attrs["target_memory"]
    if not isinstance(space, MemorySpace):
        raise TypeRuleError(f"target_memory must be a pl.MemorySpace, got {space!r}")
    if space not in allowed:
        names = ", ".join(s.name for s in allowed)
        raise TypeRuleError(
            f"cannot place a tile in {space.name} (allowed: {names})",
            "Left, Right and Bias are reached by pl.tile.move from Mat; Acc by pl.matmul; "
            "DDR is where a pl.Tensor lives",
        )
    return space


def _narrowing(valid: tuple[Dim, ...], shape: tuple[Dim, ...]) -> None:
    for axis, (v, s) in enumerate(zip(valid, shape)):
        sv, ss = static_value(v), static_value(s)
        if sv is not None and ss is not None and sv > ss:
            raise TypeRuleError(
                f"valid_shape {format_dims(valid)} is wider than the tile {format_dims(shape)} "
                f"on axis {axis}",
                "a valid extent is at most the tile's extent",
            )


# ------------------------------------------------------------------ load / store


def _infer_load(args: dict, attrs: dict) -> TileType:
    src = _global(args, "tensor")
    offsets, shapes = _dims(args, "offsets"), _dims(args, "shapes")
    if len(offsets) != src.rank or len(shapes) != src.rank:
        raise TypeRuleError(
            f"pl.load of a rank-{src.rank} tensor needs {src.rank} offsets and {src.rank} "
            f"shapes, got {len(offsets)} and {len(shapes)}",
            "pl.load(tensor, offsets, shapes): both in the tensor's coordinates",
        )
    if args.get("valid_shapes") is not None:
        if args.get("valid_shape") is not None:
            raise TypeRuleError("valid_shape and valid_shapes are one argument, given twice",
                                "valid_shapes is the older spelling: keep valid_shape")  # fmt: skip
        args = {**args, "valid_shape": args["valid_shapes"]}
    valid = _dims(args, "valid_shape") if args.get("valid_shape") is not None else None
    if valid is not None:
        if len(valid) != len(shapes):
            raise TypeRuleError(f"valid_shape has {len(valid)} dims, the tile {len(shapes)}")
        _narrowing(valid, shapes)
    space = _space(attrs, LOADABLE)
    return TileType(shapes, src.dtype, valid, None, space)


register(
    OpDef(
        "load",
        (
            P("tensor", "tensor"),
            P("offsets", "dims"),
            P("shapes", "dims"),
            P("valid_shape", "dims", None),
            P("target_memory", "attr", MemorySpace.Vec),
            P("clamp", "attr", False),
            P("valid_shapes", "dims", None),  # PyPTO's spelling before it became valid_shape
        ),
        _infer_load,
        "Copy the window [offsets, offsets+shapes) of a tensor into a fresh tile (Vec or Mat); "
        "the tile's valid region is the window's valid part, narrowed by valid_shape; "
        "clamp=True cuts a window that runs off the tensor's end instead of faulting "
        "(valid_shapes= is the seed-era spelling of valid_shape).",
        category="data",
        memory="own",
    )
)


def _infer_store(args: dict, attrs: dict) -> TensorType:
    tile = _tile(args, "tile")
    out = _global(args, "output_tensor")
    offsets = _dims(args, "offsets")
    if tile.rank > out.rank or len(offsets) != out.rank:
        raise TypeRuleError(
            f"pl.store of a rank-{tile.rank} tile into a rank-{out.rank} tensor "
            f"with {len(offsets)} offsets",
            "give one offset per tensor axis; a tile's rank is at most the tensor's",
        )
    if args.get("shapes") is not None and len(_dims(args, "shapes")) != out.rank:
        raise TypeRuleError(f"pl.store shapes needs {out.rank} dims, one per tensor axis")
    # The fix-pipe narrows an accumulator on its way out (FP32 Acc -> BF16 tensor); every
    # other space stores its own dtype.
    if tile.dtype != out.dtype and tile.memory is not MemorySpace.Acc:
        raise TypeRuleError(
            f"a {tile.dtype.name} tile in {tile.memory.name} cannot be stored into a "
            f"{out.dtype.name} tensor (only an Acc tile converts on its way out)",
            f"pl.cast(tile, pl.{out.dtype.name}) first",
        )
    return out


register(
    OpDef(
        "store",
        (
            P("tile", "tensor"),
            P("offsets", "dims"),
            P("output_tensor", "tensor"),
            P("shapes", "dims", None),
        ),
        _infer_store,
        "Write the tile's valid region into the tensor at offsets, in place; returns the tensor "
        "(an Acc tile is converted to the tensor's dtype, round to nearest even; shapes, a "
        "partition PyPTO's compiler may add, must have the tensor's rank).",
        category="data",
        writes_arg=2,
        memory="own",
    )
)

# ------------------------------------------------------------------ allocation


def _infer_create_tile(args: dict, attrs: dict) -> TileType:
    space = _space(attrs, tuple(s for s in MemorySpace if s != MemorySpace.DDR))
    return TileType(_dims(args, "shape"), attrs["dtype"], None, None, space)


register(
    OpDef(
        "create_tile",
        (P("shape", "dims"), P("dtype", "dtype"), P("target_memory", "attr", MemorySpace.Vec)),
        _infer_create_tile,
        "A fresh tile in target_memory; its contents are undefined until written.",
        category="data",
        aliases=("tile.create", "tile.create_tile"),
        memory="own",
    )
)


def _infer_tile_full(args: dict, attrs: dict) -> TileType:
    t = _infer_full(args, attrs)
    return TileType(t.shape, t.dtype, None, None, MemorySpace.Vec)


register(
    OpDef(
        "tile.full",
        (P("shape", "dims"), P("dtype", "dtype"), P("value", "scalar")),
        _infer_tile_full,
        "A Vec tile filled with value.",
        category="data",
        memory="own",
    )
)


def _infer_tile_arange(args: dict, attrs: dict) -> TileType:
    from pldsl.ops.table_more import _infer_arange  # the same rule as pl.arange

    t = _infer_arange(args, attrs)
    return TileType(t.shape, t.dtype, None, None, MemorySpace.Vec)


register(
    OpDef(
        "tile.arange",
        (
            P("start", "scalar"),
            P("shape", "dims"),
            P("dtype", "dtype", INT32),
            P("descending", "attr", False),
        ),
        _infer_tile_arange,
        "A Vec tile of start, start+1, ... (as pl.arange; PyPTO's tile.ci).",
        category="data",
        aliases=("tile.ci",),
        memory="own",
    )
)

_GATHER_SRC = ("FP16", "FP32", "INT16", "INT32")


def _infer_tile_gather(args: dict, attrs: dict) -> TileType:
    op = "tile.gather"
    src, idx = _tile(args, "src"), _tile(args, "indices")
    _tile(args, "tmp")
    if src.dtype.name not in _GATHER_SRC:
        raise TypeRuleError(
            f"The operator {op} requires src dtype to be FP16, FP32, INT16, or INT32, but got "
            f"{src.dtype.name}"
        )
    sixteen = src.dtype.name in ("FP16", "INT16")
    if not (idx.dtype.name == "INT32" or (idx.dtype.name == "INT16" and sixteen)):
        raise TypeRuleError(
            f"The operator {op} requires indices dtype INT32 (any src), or INT16 with a 16-bit "
            f"src (FP16/INT16); got indices {idx.dtype.name} with src {src.dtype.name}"
        )
    if src.rank != 2 or idx.rank != 2:
        raise TypeRuleError(f"{op} needs 2-D tiles, got ranks {src.rank} and {idx.rank}")
    return TileType(idx.shape, src.dtype, idx.valid_shape, None, MemorySpace.Vec)


register(
    OpDef(
        "tile.gather",
        (P("src", "tensor"), P("indices", "tensor"), P("tmp", "tensor")),
        _infer_tile_gather,
        "dst[i, j] = src's element at flat (row-major) offset indices[i, j] of its tile shape "
        "(PyPTO's tile-level index form; tmp is its scratch tile, unused); an offset outside "
        "the tile is a runtime fault.",
        memory="own",
    )
)

# ------------------------------------------------------------------ metadata and movement


def _index(args: dict, name: str) -> Dim:
    t = getattr(args[name], "type", None)
    if not (isinstance(t, ScalarType) and t.dtype.is_int):
        raise TypeRuleError(f"'{name}' must be an integer scalar, got {describe_type(t)}")
    return simplify_dim(args[name])


def _infer_set_validshape(args: dict, attrs: dict) -> TileType:
    tile = _tile(args, "tile")
    if tile.rank != 2:
        raise TypeRuleError(f"pl.tile.set_validshape needs a 2-D tile, got rank {tile.rank}")
    valid = (_index(args, "valid_rows"), _index(args, "valid_cols"))
    for v, what in zip(valid, ("valid_rows", "valid_cols")):
        if static_value(v) is not None and static_value(v) < 0:
            raise TypeRuleError(f"'{what}' is negative ({static_value(v)})")
    _narrowing(valid, tile.shape)
    return TileType(tile.shape, tile.dtype, valid, tile.pad, tile.memory)


register(
    OpDef(
        "tile.set_validshape",
        (P("tile", "tensor"), P("valid_rows", "scalar"), P("valid_cols", "scalar")),
        _infer_set_validshape,
        "The same tile with its valid region set to [valid_rows, valid_cols] (no data moves; "
        "the region may grow back up to the tile's shape).",
        category="data",
        aliases=("set_validshape",),
        memory="own",
    )
)


def _infer_move(args: dict, attrs: dict) -> TileType:
    tile = _tile(args, "tile")
    on_chip = tuple(s for s in MemorySpace if s not in (MemorySpace.DDR, MemorySpace.Acc))
    space = _space(attrs, on_chip)
    return TileType(tile.shape, tile.dtype, tile.valid_shape, tile.pad, space)


register(
    OpDef(
        "tile.move",
        (P("tile", "tensor"), P("target_memory", "attr", MemorySpace.Vec)),
        _infer_move,
        "A copy of the tile in another on-chip space (the only way into Left, Right and Bias).",
        category="data",
        aliases=("move",),
        memory="own",
    )
)


def _infer_transpose_view(args: dict, attrs: dict) -> TileType:
    tile = _tile(args, "tile")
    if tile.rank < 2:
        raise TypeRuleError(
            f"tile.transpose_view requires at least 2 dimensions, but got {tile.rank}"
        )

    def swapped(dims: tuple) -> tuple:
        return (*dims[:-2], dims[-1], dims[-2])

    valid = None if tile.valid_shape is None else swapped(tile.valid_shape)
    return TileType(swapped(tile.shape), tile.dtype, valid, tile.pad, tile.memory)


register(
    OpDef(
        "tile.transpose_view",
        (P("tile", "tensor"),),
        _infer_transpose_view,
        "The tile with its last two axes swapped (shape and valid region), in the same space "
        "with the same pad mode. PyPTO reinterprets the bytes in place (a zero-copy layout "
        "view); as values are immutable in pldsl, the result is the transposed value.",
        category="data",
        memory="own",
    )
)


def _infer_block_idx(args: dict, attrs: dict) -> ScalarType:
    return ScalarType(INDEX)


register(
    OpDef(
        "tile.get_block_idx",
        (),
        _infer_block_idx,
        "The index of the SPMD block running this code, as Scalar[INDEX] (0 outside pl.spmd).",
        category="data",
        aliases=("get_block_idx",),
        memory="own",
    )
)
