"""NumPy kernels of the paged-gather ops (`pldsl/ops/table_l1.py`): `create_l1` is a fresh
buffer, `gather_row` a window copy (slice, optional transpose, assemble) into it in place; and
of the column `scatter` (`pldsl/ops/table_scatter.py`)."""

from __future__ import annotations

import numpy as np

from pldsl.execution.memory import Context, OpFault, TensorValue, fresh

from .ops import KERNELS, _alloc_cost, _assemble_cost, kernel


@kernel("create_l1", cost=_alloc_cost)
def create_l1(op, ctx: Context, rtype, shape, dtype=None, transpose=False):
    """A fresh accumulator, undefined until written."""
    return KERNELS["create_tensor"].fn(ctx, rtype, shape, dtype=dtype)


@kernel("gather_row", cost=_assemble_cost)
def gather_row(op, ctx: Context, rtype, acc: TensorValue, src: TensorValue, dst_offset,
               src_offset, shapes, valid_shape=None, transpose=False):  # fmt: skip
    """acc[dst_offset + window] = src's window (transposed when asked); returns acc."""
    window = KERNELS["slice"].fn(ctx, None, src, shapes, src_offset, valid_shape, None)
    if transpose:
        window = KERNELS["transpose"].fn(ctx, None, window, axis1=0, axis2=1)
    return KERNELS["assemble"].fn(ctx, None, acc, window, dst_offset)


@kernel("scatter", cost=_assemble_cost)
def scatter(op, ctx: Context, rtype, input: TensorValue, index=None, src=None, dst=None,
            dim=-1, mask_pattern=None):  # fmt: skip
    """A copy of input with out[b, index[b, k]] = src[b, k] over index's valid region, in k
    order (a repeated column keeps the last); the mask form is `_scatter_mask`."""
    if mask_pattern is not None:
        return _scatter_mask(ctx, input, dst, mask_pattern)
    rows, cols = index.valid
    if rows > input.shape[0] or rows > src.shape[0] or cols > src.shape[1]:
        raise OpFault(
            "ShapeMismatch",
            f"scatter: index's valid region {[rows, cols]} exceeds src {list(src.shape)} or "
            f"input {list(input.shape)}",
        )
    index.require(ctx, index.valid, "index")
    src.require(ctx, (rows, cols), "src")
    idx = np.asarray(index.materialize(ctx))[:rows, :cols].astype(np.int64)
    bad = (idx < 0) | (idx >= input.shape[1])
    if bad.any():
        b, k = (int(i) for i in np.argwhere(bad)[0])
        raise OpFault(
            "OutOfBounds",
            f"scatter: index[{b}, {k}] = {idx[b, k]} is outside [0, {input.shape[1]}) for "
            f"'{input.name}' {list(input.shape)}",
            "scatter indices must address a column of input",
        )
    out = np.array(input.materialize(ctx))
    values = np.asarray(src.materialize(ctx))
    for k in range(cols):  # in k order: a repeated column keeps the last
        out[np.arange(rows), idx[:, k]] = values[:rows, k]
    return fresh(ctx, out, input.dtype, input.valid)


def _scatter_mask(ctx: Context, input: TensorValue, dst: TensorValue, mask_pattern) -> TensorValue:
    """A copy of dst with out[b, off + k * stride] = input[b, k] over input's valid region
    (stride and offset of the MaskPattern, as the mask gather reads them)."""
    from pldsl.ops.table_more import MASK_STRIDE, mask_pattern_code

    stride, off = MASK_STRIDE[mask_pattern_code(mask_pattern)]
    rows, cols = input.valid
    if rows > dst.shape[0] or off + (cols - 1) * stride >= dst.shape[1] and cols > 0:
        raise OpFault(
            "ShapeMismatch",
            f"scatter mask form: input's valid region {[rows, cols]} does not fit dst "
            f"'{dst.name}' {list(dst.shape)} at stride {stride}",
        )
    input.require(ctx, (rows, cols), "input")
    out = np.array(dst.materialize(ctx))
    values = np.asarray(input.materialize(ctx))
    out[:rows, off : off + cols * stride : stride] = values[:rows, :cols]
    return fresh(ctx, out, dst.dtype, dst.valid)
