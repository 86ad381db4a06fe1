"""NumPy kernels of the tile level's own ops (`pldsl/ops/tile.py`), registered into the same
table as every other kernel (`interpreter.ops.KERNELS`). A tile is a `TensorValue` like a
tensor; `load` and `move` copy into fresh buffers, `store` writes in place as assemble does.
"""

from __future__ import annotations

import numpy as np

from pldsl.execution import faults
from pldsl.execution.memory import Context, OpFault, TensorValue, fresh, undefined_fault

from .ops import KERNELS, _alloc_cost, _assemble_cost, _copy_cost, kernel


def _clamped(x: TensorValue, offsets: tuple, want: tuple) -> tuple:
    """`want` cut back at the tensor's edge (load's clamp=True)."""
    return tuple(max(0, min(w, d - o)) for w, d, o in zip(want, x.shape, offsets))


@kernel("load", cost=_copy_cost)
def load(op, ctx: Context, rtype, tensor: TensorValue, offsets, shapes, valid_shape=None,
         valid_shapes=None, target_memory=None, clamp=False):  # fmt: skip
    """Copy the window's valid part into a fresh tile; the rest of the tile is undefined."""
    offsets, shapes = tuple(offsets), tuple(shapes)
    valid_shape = valid_shapes if valid_shape is None else valid_shape
    want = shapes if valid_shape is None else tuple(valid_shape)
    if clamp and len(want) == len(offsets) == tensor.rank:
        want = _clamped(tensor, offsets, want)
    # the window as a view: the same bounds checks and valid-region rule as pl.slice
    view = KERNELS["slice"].fn(ctx, rtype, tensor, shapes, offsets, want, None)
    view.require(ctx, view.valid, "tensor")
    data = np.zeros(view.shape, dtype=view.buffer.data.dtype)
    data[tuple(slice(0, v) for v in view.valid)] = view.buffer.data[view.window()]
    return fresh(ctx, data, view.dtype, view.valid)


@kernel("store", cost=_assemble_cost)
def store(op, ctx: Context, rtype, tile: TensorValue, offsets, output_tensor: TensorValue,
          shapes=None):  # fmt: skip
    """Write the tile's valid region into the tensor at offsets, in place; returns it. An
    accumulator of another dtype is converted on the way (round to nearest even)."""
    if tile.dtype != output_tensor.dtype:
        tile = KERNELS["cast"].fn(ctx, None, tile, target_type=output_tensor.dtype, mode="rint")
    return KERNELS["assemble"].fn(ctx, rtype, output_tensor, tile, offsets)


@kernel("create_tile", cost=_alloc_cost)
def create_tile(op, ctx: Context, rtype, shape, dtype=None, target_memory=None):
    """A fresh tile, undefined until written (zero-filled in default mode)."""
    return KERNELS["create_tensor"].fn(ctx, rtype, shape, dtype=dtype)


@kernel("tile.full", cost=_alloc_cost)
def tile_full(op, ctx: Context, rtype, shape, value, dtype=None):
    """A tile filled with value (converted with round-to-nearest-even)."""
    return KERNELS["full"].fn(ctx, rtype, shape, value, dtype=dtype)


@kernel("tile.set_validshape")
def set_validshape(op, ctx: Context, rtype, tile: TensorValue, valid_rows, valid_cols):
    """The same buffer with the valid region [valid_rows, valid_cols] (no data moves)."""
    valid = (int(valid_rows), int(valid_cols))
    if tile.rank != 2:
        raise OpFault("ShapeMismatch", f"set_validshape of a rank-{tile.rank} tile")
    for axis, (v, s) in enumerate(zip(valid, tile.shape)):
        if not 0 <= v <= s:
            raise OpFault(
                "BadValidShape", faults.tile_valid_shape_misfit(axis, v, s), faults.VALID_SHAPE_HELP
            )
    return TensorValue(tile.buffer, tile.offset, tile.shape, valid, tile.pad)


@kernel("tile.move", cost=_copy_cost)
def move(op, ctx: Context, rtype, tile: TensorValue, target_memory=None):
    """A copy of the tile (another on-chip buffer): the same valid region and pad mode."""
    tile.require(ctx, tile.valid, "tile")
    data = np.zeros(tile.shape, dtype=tile.buffer.data.dtype)
    data[tuple(slice(0, v) for v in tile.valid)] = tile.buffer.data[tile.window()]
    return fresh(ctx, data, tile.dtype, tile.valid, tile.pad)


@kernel("tile.get_block_idx")
def get_block_idx(op, ctx: Context, rtype):
    """The SPMD block index the executor set on the context (0 outside pl.spmd)."""
    return int(ctx.block_idx)


@kernel("tile.arange", cost=_alloc_cost)
def tile_arange(op, ctx: Context, rtype, start, shape, dtype=None, descending=False):
    """A tile of start +- j along the last axis (as pl.arange)."""
    return KERNELS["arange"].fn(ctx, rtype, start, shape, dtype=dtype, descending=descending)


@kernel("tile.gather", cost=_copy_cost)
def tile_gather(op, ctx: Context, rtype, src: TensorValue, indices: TensorValue, tmp=None):
    """dst[i, j] = src.flat[indices[i, j]] over indices' valid region (flat = row-major over
    src's tile shape; outside src's valid region it reads the pad value, or is an undefined
    read in strict mode)."""
    rows, cols = indices.valid
    indices.require(ctx, indices.valid, "indices")
    idx = np.asarray(indices.materialize(ctx))[:rows, :cols].astype(np.int64)
    size = int(np.prod(src.shape))
    bad = (idx < 0) | (idx >= size)
    if bad.any():
        b, k = (int(i) for i in np.argwhere(bad)[0])
        raise OpFault(
            "OutOfBounds",
            f"tile.gather: indices[{b}, {k}] = {idx[b, k]} is outside [0, {size}) of the "
            f"{list(src.shape)} tile '{src.name}'",
            "the index form addresses src by flat offset: row * cols + col",
        )
    if ctx.strict:
        defined = src.defined_mask().reshape(-1)[idx]
        if not defined.all():
            b, k = (int(i) for i in np.argwhere(~defined)[0])
            flat = int(idx[b, k])
            raise undefined_fault(src, (flat // src.shape[1], flat % src.shape[1]), "src")
    flat = np.asarray(src.materialize(ctx)).reshape(-1)
    out = np.zeros(indices.shape, dtype=flat.dtype)
    out[:rows, :cols] = flat[idx]
    return fresh(ctx, out, src.dtype, (rows, cols))


@kernel("tile.transpose_view", cost=_copy_cost)
def transpose_view(op, ctx: Context, rtype, tile: TensorValue):
    """The tile with its last two axes swapped, pad mode kept. PyPTO's view aliases the bytes;
    pldsl values are immutable, so a transposed copy has the same meaning. Not a read: in
    strict mode undefined elements stay undefined (the mask is transposed with the data)."""
    data = np.ascontiguousarray(np.swapaxes(tile.materialize(ctx), -1, -2))
    valid = (*tile.valid[:-2], tile.valid[-1], tile.valid[-2])
    out = fresh(ctx, data, tile.dtype, valid, tile.pad)
    if ctx.strict:
        out.buffer.defined = np.ascontiguousarray(np.swapaxes(tile.defined_mask(), -1, -2))
    return out
