"""NumPy kernels of the sorting ops (`pldsl/ops/table_sort.py`): `sort32` and `mrgsort`.

A sorted row is a run of (value, index) pairs: FP32 columns, each value followed by the raw
bits of its UINT32 index. The merge is defined by its literal procedure (the hardware's): take
the head with the strictly greatest value, the earliest run on a tie; NaN is never greater, so a
NaN head is taken only when it is the first run's. When every run is sorted and NaN-free that
procedure is a stable descending sort of the runs laid end to end, which is the fast path here;
anything else takes the literal loop (tests hold the two against each other).
"""

from __future__ import annotations

import numpy as np

from pldsl.execution.memory import Context, OpFault, TensorValue, fresh

from .ops import _copy_cost, kernel

BLOCK = 32
WAYS = 4


# ------------------------------------------------------------------ sort32


def _sort_block(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Order (along the last axis) of each block: value descending, NaN first, ties by index
    ascending."""
    nan = np.isnan(v)
    key = np.where(nan, 0.0, -v.astype(np.float64))
    return np.lexsort((i, key, ~nan), axis=-1)


def sort32_rows(values: np.ndarray, index: np.ndarray, cols: int) -> np.ndarray:
    """[R, C] FP32 values and UINT32 indices -> [R, 2C] pairs, the first `cols` columns sorted
    in blocks of 32 (a last partial block sorts alone); pairs beyond 2*cols are zero."""
    rows, width = values.shape
    out = np.zeros((rows, 2 * width), np.float32)
    bits = out.view(np.uint32)
    for start in range(0, cols, BLOCK):
        stop = min(start + BLOCK, cols)
        v, i = values[:, start:stop], index[:, start:stop]
        order = _sort_block(v, i)
        out[:, 2 * start : 2 * stop : 2] = np.take_along_axis(v, order, axis=-1)
        bits[:, 2 * start + 1 : 2 * stop : 2] = np.take_along_axis(i, order, axis=-1)
    return out


@kernel("sort32", cost=_copy_cost)
def sort32(op, ctx: Context, rtype, src: TensorValue, idx: TensorValue):
    """Blocks of 32 along the last axis sorted into pairs; valid: src's rows, twice its
    valid columns."""
    if src.shape != idx.shape:
        raise OpFault(
            "ShapeMismatch", f"sort32: idx {list(idx.shape)} does not match src {list(src.shape)}"
        )
    src.require(ctx, src.valid, "src")
    idx.require(ctx, src.valid, "idx")
    lead, width = src.shape[:-1], src.shape[-1]
    values = np.asarray(src.materialize(ctx), np.float32).reshape(-1, width)
    index = np.asarray(idx.materialize(ctx)).astype(np.uint32).reshape(-1, width)
    out = sort32_rows(values, index, src.valid[-1]).reshape(lead + (2 * width,))
    return fresh(ctx, out, "FP32", src.valid[:-1] + (2 * src.valid[-1],))


# ------------------------------------------------------------------ merging


def merge_order(runs: list[np.ndarray], exhausted: bool = False) -> np.ndarray:
    """Positions (into the runs laid end to end) in the order the merge takes them; with
    `exhausted` it stops right after the first run runs out."""
    sizes = [len(r) for r in runs]
    joined = np.concatenate(runs) if runs else np.zeros(0, np.float32)
    sorted_runs = all(not np.any(r[1:] > r[:-1]) for r in runs)
    if not exhausted and sorted_runs and not np.isnan(joined).any():
        return np.argsort(-joined.astype(np.float64), kind="stable")
    return _merge_literal(runs, sizes, exhausted)


def _merge_literal(runs: list[np.ndarray], sizes: list[int], exhausted: bool) -> np.ndarray:
    starts = np.cumsum([0] + sizes[:-1])
    heads = [0] * len(runs)
    taken: list[int] = []
    while True:
        pick = -1
        for r, run in enumerate(runs):
            if heads[r] < sizes[r] and (pick < 0 or run[heads[r]] > runs[pick][heads[pick]]):
                pick = r
        if pick < 0:
            break
        taken.append(int(starts[pick]) + heads[pick])
        heads[pick] += 1
        if exhausted and heads[pick] == sizes[pick]:
            break
    return np.asarray(taken, np.int64)


def _pairs(a: np.ndarray) -> np.ndarray:
    """An FP32 row of 2n columns as n (value bits, index bits) pairs of uint32."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32).reshape(-1, 2)


def _values(pairs: np.ndarray) -> np.ndarray:
    return pairs[:, 0].view(np.float32)


def merge_groups(row: np.ndarray, block_len: int) -> tuple[np.ndarray, int]:
    """Format1 on one FP32 row: each group of 4 runs of block_len columns merged into one.
    Returns the new row and the number of columns the groups cover (the rest is undefined)."""
    group = WAYS * block_len
    covered = (len(row) // group) * group
    out = np.zeros(len(row), np.float32)
    bits = out.view(np.uint32)
    for g in range(0, covered, group):
        pairs = _pairs(row[g : g + group])
        vals = _values(pairs)
        run = block_len // 2
        order = merge_order([vals[k * run : (k + 1) * run] for k in range(WAYS)])
        bits[g : g + group] = pairs[order].reshape(-1)
    return out, covered


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])


@kernel("mrgsort", cost=_copy_cost)
def mrgsort(op, ctx: Context, rtype, src0: TensorValue, src1=None, src2=None, src3=None,
            tmp=None, block_len=None, exhausted=False):  # fmt: skip
    """Format1 (block_len) or format2 (2-4 lists), row by row."""
    if block_len is not None:
        return _format1(ctx, src0, int(block_len))
    return _format2(ctx, [s for s in (src0, src1, src2, src3) if s is not None], tmp, exhausted)


def _format1(ctx: Context, src: TensorValue, block_len: int) -> TensorValue:
    if block_len <= 0 or block_len % 64:
        raise OpFault(
            "BadShape",
            f"mrgsort: block_len {block_len} is not a positive multiple of 64",
            "block_len counts columns (2 per pair): 64, 256, 1024, ...",
        )
    width = src.shape[-1]
    covered = (width // (WAYS * block_len)) * WAYS * block_len
    src.require(ctx, src.valid[:-1] + (covered,), "src0")
    data = _rows(np.asarray(src.materialize(ctx)))
    out = np.stack([merge_groups(r, block_len)[0] for r in data]) if len(data) else data.copy()
    return fresh(ctx, out.reshape(src.shape), "FP32", src.valid[:-1] + (covered,))


def _format2(ctx: Context, srcs: list[TensorValue], tmp, exhausted: bool) -> TensorValue:
    lead = srcs[0].shape[:-1]
    for k, s in enumerate(srcs):
        if s.shape[:-1] != lead:
            raise OpFault(
                "ShapeMismatch",
                f"mrgsort: list {k} is {list(s.shape)}, list 0 {list(srcs[0].shape)}: all but "
                "the last axis must match",
            )
        s.require(ctx, s.valid, f"src{k}")
    width = tmp.shape[-1] if tmp is not None else sum(s.shape[-1] for s in srcs)
    if tmp is not None and tmp.shape[:-1] != lead:
        raise OpFault("ShapeMismatch", f"mrgsort: tmp {list(tmp.shape)} does not match the lists")
    rows = [_rows(np.asarray(s.materialize(ctx))) for s in srcs]
    out = np.zeros((len(rows[0]), width), np.float32)
    bits = out.view(np.uint32)
    taken = width // 2
    for r in range(len(out)):
        pairs = [_pairs(rows[k][r, : 2 * (s.valid[-1] // 2)]) for k, s in enumerate(srcs)]
        order = merge_order([_values(p) for p in pairs], exhausted)[: width // 2]
        taken = min(taken, len(order))
        bits[r, : 2 * len(order)] = np.concatenate(pairs)[order].reshape(-1)
    valid_rows = tuple(min(s.valid[d] for s in srcs) for d in range(len(lead)))
    return fresh(ctx, out.reshape(lead + (width,)), "FP32", valid_rows + (2 * taken,))
