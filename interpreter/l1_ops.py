"""NumPy kernels of the paged-gather ops (`pldsl/ops/table_l1.py`): `create_l1` is a fresh
buffer, `gather_row` a window copy (slice, optional transpose, assemble) into it in place."""

from __future__ import annotations

from pldsl.execution.memory import Context, TensorValue

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
