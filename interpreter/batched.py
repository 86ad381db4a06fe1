"""Batched tile loops: every iteration of a proven-independent loop at once, one NumPy op per IR op.

A `pl.parallel` or `pl.range` loop whose iterations the IR proves independent
(`pldsl.ir.analysis.ParallelAnalysis`: no carried values, no jumps or calls, writes to shared
buffers at affine windows that are disjoint between iterations) runs its body once over all of
its iterations ("lanes"): a scalar that differs between lanes is an int64 array, a tile that
differs is an array with a leading lane axis, and every op is one NumPy call over all lanes.
Values equal in every lane (a weight slice at a fixed offset, a constant) stay ordinary
interpreter values and run through the plain op kernels once.

A loop the proof rejects only for its writes (interpreter/compiler.py `_parallel_plan`,
"checked") runs the same way with `check_writes`: at commit the journaled windows of different
lanes must be disjoint (`Lanes._check_disjoint`), else `Fallback`. A checked nest ending in its
inner loop may run as one lane per (outer, inner) iteration pair (`BatchedLoop.run`, `flat`).

The lanes run in lockstep, op by op. Writes to buffers that exist before the loop are applied
at once, each lane's window, with what they overwrite kept in an undo log (`Lanes.write`), so a
lane's later reads see its own earlier writes as its iteration alone would. In a checked loop
every read of such a buffer is recorded too (window per lane; a proven loop's proof already
covers its reads). At the end `Lanes.commit` keeps the writes only when the lanes could not
have seen each other: in checked loops, no two lanes wrote one element and no lane read an
element another lane wrote (`Lanes._check_reads`, for buffers the body both reads and writes: the per-user attention loop of the Qwen3 decode step writes KV-cache
rows from `slot_mapping` and reads pages from `block_table`). Then lockstep order leaves what
the iterations one after another leave. Anything else (such a conflict, a lane-dependent loop
bound or branch, a fault, an out-of-bounds window, an op without a batched form, buffers
sharing memory) raises `Fallback`; `BatchedLoop.run` restores every overwritten element
(`Lanes.restore`) and the caller runs the loop one tile at a time on the plain closures
instead, so results, faults and their texts are exactly the per-tile path's. Strict mode and
traces never get here (interpreter/compiler.py keeps them per tile).

Per-element arithmetic is the per-tile kernels' (the same `pldsl.execution.numerics` calls on
arrays with one more axis), so elementwise ops, casts, reductions and fills are bit-identical;
matmuls of a lane stack are one `np.matmul` over the stack, within `matmul_error_bound`
(docs/numerics.md, "the fast path").
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from pldsl.interpreter.kloop import KLoop, k_loop_shape
from pldsl.interpreter.machine import outer_values, restore_outer
from pldsl.interpreter.ops import _atomic_add, _broadcast, _dtype_name, _scalar_dtype, _to_scalar

from pldsl.diagnostics import RuntimeFault
from pldsl.execution import f32cache, numerics
from pldsl.execution.arguments import py_scalar
from pldsl.execution.memory import Buffer, Context, OpFault, TensorValue, _fill_value
from pldsl.ir.analysis import if_result
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    ExprStmt,
    For,
    If,
    ListExpr,
    OpCall,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    While,
    Yield,
)
from pldsl.ir.traversal import assigned_names, walk, write_target
from pldsl.ops import lookup
from pldsl.ops.table import expand_shape, reshape_valid

__all__ = ["Fallback", "STATS", "batchable", "BatchedLoop"]


class Fallback(Exception):
    """The batched form cannot run this loop exactly; run it per tile."""


# Counters for tests and profiling (how often loops ran batched / fell back, and why).
STATS: dict[str, int] = {}


def _count(key: str) -> None:
    STATS[key] = STATS.get(key, 0) + 1


_LOOP_KINDS = ("parallel", "range")
_CAUGHT = (Fallback, OpFault, numerics.NumericsError, RuntimeFault, IndexError, ValueError,
           KeyError, TypeError, ZeroDivisionError, OverflowError)  # fmt: skip


def batchable(loop: For) -> str | None:
    """Why the IR of `loop` rules out the batched form (None: it may be tried). The
    independence proof itself is the caller's (ParallelAnalysis)."""
    if loop.kind not in _LOOP_KINDS:
        return f"{loop.kind} loop"
    has_tile_op = False
    for node in walk(loop):
        if node is loop:
            continue
        kind = type(node)
        if kind in (Call, Return, Break, Continue):
            return "call or jump in the body"
        if kind is While:  # its trip count may differ between iterations
            return "while loop in the body"
        if kind is For and node.kind == "spmd":
            return "pl.spmd in the body"
        if kind is Scope and (node.deps or node.tid is not None):
            return "task dependencies in the body"
        if kind is OpCall:
            target = write_target(node)
            if target is not None and node.op != "assemble":
                return f"pl.{node.op} in the body"
            if node.op not in ("dim", "read"):
                has_tile_op = True
    return None if has_tile_op else "no tile op in the body"


# ------------------------------------------------------------------ batched values


class BBuf:
    """Per-lane private memory (a buffer created inside the batched body): data (N, *shape)."""

    __slots__ = ("data", "dtype")

    def __init__(self, data: np.ndarray, dtype: str):
        self.data, self.dtype = data, dtype


class BView:
    """A per-lane window: onto a BBuf, or onto a shared Buffer at lane-dependent offsets.
    offset and valid items are ints (same in every lane) or int64 arrays of length N."""

    __slots__ = ("buf", "offset", "shape", "valid", "pad", "whole", "rank")

    def __init__(self, buf, offset: tuple, shape: tuple, valid: tuple, pad=None, whole=False):
        self.buf, self.offset, self.shape, self.valid, self.pad = buf, offset, shape, valid, pad
        self.whole = whole  # the whole of a BBuf (offsets 0, its shape)
        self.rank = len(shape)

    @property
    def dtype(self) -> str:
        return self.buf.dtype


def _lanes(v: Any) -> bool:
    return type(v) is np.ndarray


def _uniform(v: Any) -> Any:
    """`v` as one value for every lane (Fallback when lanes differ)."""
    if type(v) is np.ndarray:
        lst = v.tolist()
        if lst and lst.count(lst[0]) == len(lst):
            return lst[0]
        raise Fallback("lane-dependent value where one value is needed")
    return v


def _norm(v: Any) -> Any:
    """An int64 lane array collapsed to an int when every lane holds the same value."""
    if type(v) is np.ndarray:
        lst = v.tolist()
        if lst and lst.count(lst[0]) == len(lst):
            return lst[0]
    return v


def _lo_hi(v: Any, mask: np.ndarray | None = None) -> tuple[int, int]:
    """Smallest and largest value over the lanes (those in `mask` where one is given)."""
    if type(v) is np.ndarray:
        lst = (v if mask is None else v[mask]).tolist()
        return min(lst), max(lst)
    return v, v


def _uniform_in(v: Any, mask: np.ndarray | None) -> Any:
    """`v` as one value for the lanes in `mask` (all lanes where None), else Fallback. The
    other lanes then run with the same value: they take no effect (Lanes.mask)."""
    if mask is not None and type(v) is np.ndarray:
        return _uniform(v[mask])
    return _uniform(v)


def _is_tensor(v: Any) -> bool:
    return type(v) is BView or type(v) is TensorValue


def _ax(v: Any, axis: int, rank: int) -> Any:
    """A per-lane int (or array) shaped to broadcast against (N, *shape) along `axis`."""
    if type(v) is np.ndarray:
        return v.reshape((-1,) + (1,) * rank)
    return v


def _covers(valid: tuple, shape: tuple) -> bool:
    """Every lane's valid box is the whole of `shape` (valid items all ints, none short)."""
    for v, s in zip(valid, shape):
        if type(v) is np.ndarray or v < s:
            return False
    return True


def _ints(items: tuple) -> tuple | None:
    """`items` (a shape, offsets) as a tuple when every item is an int (the common case,
    which then needs no per-item normalising), else None."""
    for i in items:
        if type(i) is not int:
            return None
    return items if type(items) is tuple else tuple(items)


def _inside(shape: tuple, valid: tuple) -> np.ndarray | None:
    """(N or 1, *shape) mask of the valid box per lane, or None when all of it is valid."""
    if valid is shape or _covers(valid, shape):
        return None
    rank = len(shape)
    mask = None
    for d, (s, v) in enumerate(zip(shape, valid)):
        if type(v) is not np.ndarray and v >= s:
            continue
        idx = np.arange(s).reshape((1,) + tuple(s if i == d else 1 for i in range(rank)))
        cond = idx < _ax(v, d, rank)
        mask = cond if mask is None else mask & cond
    return mask


_MAX_CHECKED = 2048  # journaled windows of one buffer the run-time overlap check compares
_MAX_PAIRS = 1 << 21  # (read window, write window) pairs of one buffer the read check compares


def _boxes(entries: list, n: int, every: int | None) -> tuple[np.ndarray, ...]:
    """Windows (buffer, offsets, extents, mask) as (lo, hi, lane) arrays: one row per lane
    (per active lane where a mask of the lanes that took the access is given), or, when
    `every` is an int and offsets and extents are the same in every lane, one row with lane
    `every` (a negative id standing for all lanes)."""
    rank = len(entries[0][1])
    plan = []  # (offsets, extents, mask or None, rows, one row for every lane)
    total = 0
    for _, offs, ext, mask in entries:
        one = every is not None and all(type(v) is not np.ndarray for v in offs + ext)
        rows = 1 if one else (n if mask is None else int(np.count_nonzero(mask)))
        plan.append((offs, ext, mask, rows, one))
        total += rows
    lo = np.empty((total, rank), np.int64)
    hi = np.empty((total, rank), np.int64)
    lane = np.empty(total, np.int64)
    every_lane = np.arange(n)
    i = 0
    for offs, ext, mask, rows, one in plan:
        part = slice(i, i + rows)
        for d in range(rank):  # one slice assignment per axis (no per-lane Python loop)
            o, e = offs[d], ext[d]
            if mask is not None:
                o = o[mask] if type(o) is np.ndarray else o
                e = e[mask] if type(e) is np.ndarray else e
            lo[part, d] = o
            hi[part, d] = e
        if one:
            lane[part] = every
        else:
            lane[part] = every_lane if mask is None else np.flatnonzero(mask)
        i += rows
    hi += lo
    return lo, hi, lane


def _overlap(alo: np.ndarray, ahi: np.ndarray, blo: np.ndarray, bhi: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bools: box a[i] meets box b[j] (boxes [lo, hi) of one rank). One
    axis at a time: a reduction over a trailing axis of a few items costs NumPy far more."""
    hit = None
    for d in range(alo.shape[1]):
        h = (alo[:, None, d] < bhi[None, :, d]) & (blo[None, :, d] < ahi[:, None, d])
        hit = h if hit is None else hit & h
    if hit is None:  # rank 0: every box is the one element
        hit = np.ones((len(alo), len(blo)), bool)
    return hit


class Lanes:
    """The batched run of one loop: lane count, context, the shared buffers it reads and
    writes, and the undo log of its writes (see `write`, `commit`, `restore`)."""

    def __init__(self, ctx: Context, n: int, check_writes: bool = False):
        self.ctx, self.n = ctx, n
        self.check_writes = check_writes  # the IR did not prove the lanes' writes disjoint
        self.inner: set[int] = set()  # id()s of buffers the body computed (same in all lanes)
        self.storage: dict[str, np.dtype] = {}
        self.read_roots: dict[int, Buffer] = {}
        self.written_roots: dict[int, Buffer] = {}
        self.journal: list[tuple] = []  # (target, offsets, extents) of every shared write
        self.reads: list[tuple] = []  # (buffer, offsets, extents) of every shared read
        self.undo: list[tuple] = []  # (array, index, old contents) of every applied write
        self.snapshots: set[int] = set()  # roots a reshape copied (read early)
        # the lanes taking part now (None: all): inside a loop whose trip count differs
        # between lanes, a lane past its own last iteration has no effect (see for_)
        self.mask: np.ndarray | None = None

    # ------------------------------------------------------------ reading
    def note_root(self, buf: Buffer) -> None:
        """`buf` is viewed (no data read yet): its root takes part in the alias check."""
        root = buf.root
        self.read_roots[id(root)] = root

    def note_read(self, buf: Buffer, offs: tuple, ext: tuple) -> None:
        """The lanes read `buf` at [offs, offs + ext) (ints, or int64 arrays per lane); the
        commit check compares these windows with other lanes' writes."""
        root = buf.root
        self.read_roots[id(root)] = root
        if self.check_writes:  # (a proven loop: the IR's proof covers its reads too)
            self.reads.append((buf, offs, ext, self.mask))

    def raw(self, x: BView, data: np.ndarray | None = None) -> np.ndarray:
        """x's window per lane, (N, *shape), without pad fill (a view where it can be)."""
        if x.whole and data is None:
            out = x.buf.data.view()  # read-only: a result computed as this very array is copied
            out.flags.writeable = False
            return out
        buf = x.buf
        n, shape = self.n, x.shape
        batched = type(buf) is BBuf
        if data is None:
            data = buf.data
        offs = x.offset
        if not batched:
            self.note_read(buf, offs, shape)
        if all(type(o) is not np.ndarray for o in offs):
            if batched:
                return data[(slice(None),) + tuple(slice(o, o + s) for o, s in zip(offs, shape))]
            win = data[tuple(slice(o, o + s) for o, s in zip(offs, shape))]
            return np.broadcast_to(win, (n,) + shape)
        view = _strided(data, offs, shape, batched, n, False)
        if view is None:
            dims = data.shape[1:] if batched else data.shape
            return self._gather(data, offs, shape, dims, batched)
        return view

    def _gather(self, data, offs, shape, dims, batched) -> np.ndarray:
        n = self.n
        mask = self.mask
        sel = None if mask is None else np.flatnonzero(mask)  # gather the lanes taking part
        if sel is not None:
            offs = tuple(o[sel] if type(o) is np.ndarray else o for o in offs)
        out = _gather_rows(data, offs, shape, dims, batched, sel)
        if out is None:
            out = self._gather_all(data, offs, shape, dims, batched, sel)
        if sel is None:
            return out
        full = np.zeros((n,) + tuple(shape), data.dtype)  # lanes without effect: zeros
        full[sel] = np.broadcast_to(out, (len(sel),) + tuple(shape))
        return full

    def _gather_all(self, data, offs, shape, dims, batched, sel) -> np.ndarray:
        """Every axis's window gathered per lane (indices clipped into `data`)."""
        n, rank = self.n, len(shape)
        idx = []
        if batched:
            lane = np.arange(n) if sel is None else sel
            idx.append(lane.reshape((-1,) + (1,) * rank))
        for d, (o, s, dim) in enumerate(zip(offs, shape, dims)):
            shp = (1,) + tuple(s if i == d else 1 for i in range(rank))
            i = np.arange(s).reshape(shp) + _ax(o, d, rank)
            idx.append(np.clip(i, 0, dim - 1))  # only lanes without effect go outside
        out = data[tuple(idx)]
        if sel is None:
            return np.broadcast_to(out, (n,) + shape)
        return out

    def mat(self, x: Any) -> np.ndarray:
        """A tensor operand as an array: (N, *shape) for a BView (pad filled as
        TensorValue.materialize fills), the plain array for a TensorValue."""
        if type(x) is TensorValue:
            self.note_read(x.buffer, x.offset, x.shape)
            return x.materialize(self.ctx)
        if x.whole and x.valid is x.shape:  # a computed tile, all valid (most operands)
            out = x.buf.data.view()  # read-only, as `raw` gives it
            out.flags.writeable = False
            return out
        data = self.raw(x)
        mask = _inside(x.shape, x.valid)
        if mask is None:
            return data
        fill = _fill_value(self.ctx, x.pad, x.dtype)
        return np.where(mask, data, fill)

    def operand(self, x: Any) -> np.ndarray:
        """A matmul operand: from the FP32 cache of a BF16 argument where there is one."""
        if type(x) is TensorValue:
            w = x.widened()
            if w is not None:
                self.note_read(x.buffer, x.offset, x.shape)
                return w
            return self.mat(x)
        buf = x.buf
        if type(buf) is Buffer and buf.cached and _inside(x.shape, x.valid) is None:
            if buf.f32 is None:
                buf.f32 = f32cache.widened(buf.data)
            return self.raw(x, buf.f32)
        return self.mat(x)

    def fresh(self, data: np.ndarray, dtype: str, valid: tuple | None = None, pad=None) -> BView:
        """A computed (N, *shape) array as a per-lane tile (outside valid: the fill value,
        as memory.fresh fills it)."""
        storage = self.storage.get(dtype)
        if storage is None:
            storage = self.storage[dtype] = self.ctx.storage(dtype)
        if data.dtype is not storage and data.dtype != storage:
            raise Fallback(f"internal: {dtype} computed as {data.dtype}")
        if data.shape[0] != self.n:
            data = np.broadcast_to(data, (self.n,) + data.shape[1:])
        shape = data.shape[1:]
        if valid is None or _covers(valid, shape):
            valid = shape  # all of it valid: `_inside` then answers at once
        else:
            valid = tuple(_norm(np.minimum(v, s)) if type(v) is np.ndarray else min(v, s)
                          for v, s in zip(valid, shape))  # fmt: skip
            mask = _inside(shape, valid)
            if mask is not None:
                data = np.where(mask, data, _fill_value(self.ctx, pad, dtype))
        if not data.flags.writeable:
            data = np.array(data)
        return BView(BBuf(data, dtype), (0,) * len(shape), shape, valid, pad, True)

    # ------------------------------------------------------------ writing
    def write(self, target: TensorValue, offs: tuple, ext: tuple, src: np.ndarray) -> None:
        """Apply every lane's write of `src` ((N, *valid)) to a shared buffer at once, saving
        what it overwrites (`restore` puts it back), and journal the windows for `commit`'s
        checks. Lanes run in lockstep, so a lane's later reads see its own earlier writes, as
        its iteration alone would; whatever another lane's writes could change is ruled out at
        commit."""
        mask = self.mask
        self.journal.append((target, offs, ext, mask))
        data, undo = target.buffer.data, self.undo
        if mask is None and all(type(o) is not np.ndarray for o in offs + ext):
            win = tuple(slice(o, o + e) for o, e in zip(offs, ext))  # one window: last lane wins
            undo.append((data, win, data[win].copy()))
            data[win] = src[-1].reshape(ext)
            return
        if mask is None and all(type(e) is not np.ndarray for e in ext):
            self._scatter(data, offs, ext, src, batched=False)
            return
        # extents per lane, or some lanes only: one window each
        for lane in range(self.n) if mask is None else np.flatnonzero(mask).tolist():
            lo = [int(o[lane]) if type(o) is np.ndarray else o for o in offs]
            ex = [int(e[lane]) if type(e) is np.ndarray else e for e in ext]
            part = src[lane][tuple(slice(0, e) for e in ex[len(ex) - src.ndim + 1 :])]
            win = tuple(slice(o, o + e) for o, e in zip(lo, ex))
            undo.append((data, win, data[win].copy()))
            data[win] = part.reshape(ex)

    def restore(self) -> None:
        """Undo every applied write, last first: the shared buffers hold exactly what they
        held before the batched run (a window written twice gets its first old contents)."""
        for arr, idx, old in reversed(self.undo):
            arr[idx] = old
        self.undo.clear()

    def commit(self) -> None:
        """Keep the applied writes when the lanes could not see each other's effects (else
        Fallback; the caller then calls `restore`): buffers that may alias fall back, and
        without the IR's proof no two lanes' write windows may overlap; a buffer the body
        both reads and writes also needs every lane's read windows clear of the other
        lanes' write windows. Then lockstep order leaves what the iterations one after
        another leave: every element is written by at most one lane, in that lane's program
        order, and no lane reads an element another lane writes."""
        written = list(self.written_roots.values())
        if not written:
            return
        owners = {id(_owner(w.data)): w for w in written}
        if len(owners) < len(written):
            raise Fallback("written buffers may alias")
        for r in self.read_roots.values():
            w = owners.get(id(_owner(r.data)))
            if w is not None and w is not r:
                raise Fallback("a read buffer and a written one may alias")
        if self.snapshots & self.written_roots.keys():
            raise Fallback("a reshape copied a buffer the body writes")
        if self.check_writes:  # the IR proved neither the writes nor the reads disjoint
            self._check_disjoint()
            both = self.read_roots.keys() & self.written_roots.keys()
            if both:
                self._check_reads(both)
        for root in written:
            root.mark_written()
        self.undo.clear()

    def _check_reads(self, roots: set[int]) -> None:
        """Fallback unless no lane read an element of these buffers that another lane wrote
        (a read the same in every lane counts as every lane's)."""
        n = self.n
        writes: dict[int, list] = {}
        for target, offs, ext, mask in self.journal:
            buf = target.buffer
            if id(buf.root) in roots:
                writes.setdefault(id(buf.root), []).append((buf, offs, ext, mask))
        reads: dict[int, list] = {}
        for entry in self.reads:
            if id(entry[0].root) in roots:
                reads.setdefault(id(entry[0].root), []).append(entry)
        for key, wl in writes.items():
            rl = reads.get(key)
            if not rl:  # viewed, never read
                continue
            buf = wl[0][0]
            if any(e[0] is not buf for e in wl) or any(e[0] is not buf for e in rl):
                raise Fallback("reads and writes through two views of one buffer")
            # distinct ids for "every lane" on each side: a read and a write by every lane
            # always conflict (n >= 2), a lane's own read and write never do
            wlo, whi, wlane = _boxes(wl, n, -2)
            rlo, rhi, rlane = _boxes(rl, n, -1)
            rlo = np.minimum(rlo, np.asarray(buf.data.shape) - 1)  # gathers clamp indices
            if len(rlo) * len(wlo) > _MAX_PAIRS:
                raise Fallback("too many windows to check")
            hit = _overlap(rlo, rhi, wlo, whi)
            hit &= rlane[:, None] != wlane[None, :]
            if hit.any():
                raise Fallback("a lane reads what another lane writes")

    def _check_disjoint(self) -> None:
        """Fallback unless no two lanes write overlapping windows of one buffer (over every
        journaled write; lanes masked off at a write took no part in it): with the read
        check, lockstep order then leaves what the iterations one after another leave, since
        only one lane's writes touch any element and each lane's writes are applied in
        program order."""
        groups: dict[int, list] = {}
        views: dict[int, int] = {}  # root -> the one buffer (coordinate system) written
        for entry in self.journal:
            buf = entry[0].buffer
            if views.setdefault(id(buf.root), id(buf)) != id(buf):
                raise Fallback("writes through two views of one buffer")
            groups.setdefault(id(buf), []).append(entry)
        for entries in groups.values():
            if self.n * len(entries) > _MAX_CHECKED:
                raise Fallback("too many windows to check")
            lo, hi, lane = _boxes(entries, self.n, None)
            hit = _overlap(lo, hi, lo, hi)
            hit &= lane[:, None] != lane[None, :]
            if hit.any():
                raise Fallback("writes overlap between iterations")

    def _scatter(self, data, offs, ext, src, batched: bool) -> None:
        n, rank = self.n, len(ext)
        view = _strided(data, offs, ext, batched, n, True) if data.flags.writeable else None
        if view is not None:
            if not batched:  # a shared buffer: keep what the write overwrites
                self.undo.append((view, Ellipsis, view.copy()))
            view[...] = src.reshape((n,) + tuple(ext))
            return
        idx = []
        if batched:
            idx.append(np.arange(n).reshape((n,) + (1,) * rank))
        for d, (o, e) in enumerate(zip(offs, ext)):
            shp = (1,) + tuple(e if i == d else 1 for i in range(rank))
            idx.append(np.arange(e).reshape(shp) + _ax(o, d, rank))
        idx = tuple(idx)
        if not batched:
            self.undo.append((data, idx, data[idx]))  # a copy (fancy indexing)
        data[idx] = src.reshape((n,) + tuple(ext))


def _gather_rows(data, offs, shape, dims, batched: bool, sel) -> np.ndarray | None:
    """Lane windows whose first axis alone has lane-dependent offsets (rows of a page a
    block table names) as whole rows: one index array for that axis, plain slices for the
    others (a fraction of the NumPy work of one index array per axis); None for other
    windows, or when a fixed window on another axis is not inside `data`."""
    o0 = offs[0]
    if type(o0) is not np.ndarray:
        return None
    rest = []
    for o, s, dim in zip(offs[1:], shape[1:], dims[1:]):
        if type(o) is np.ndarray or o < 0 or o + s > dim:
            return None
        rest.append(slice(o, o + s))
    rows = np.clip(o0.reshape(-1, 1) + np.arange(shape[0]), 0, dims[0] - 1)  # as _gather_all
    if batched:
        lane = np.arange(len(o0)) if sel is None else sel
        return data[(lane.reshape(-1, 1), rows) + tuple(rest)]
    if all(r.start == 0 and r.stop == dim for r, dim in zip(rest, dims[1:])):
        return np.take(data, rows, axis=0)  # whole rows: the cheapest gather
    return data[(rows,) + tuple(rest)]


def _strided(data, offs, shape, batched: bool, n: int, disjoint: bool) -> np.ndarray | None:
    """The lane windows at offsets affine in the lane (o0 + lane * delta on each axis) as one
    strided view of `data` ((N, *shape)); None when they are not affine, not inside `data`,
    `data` is not contiguous, or (`disjoint`) two lanes' windows may overlap."""
    if not data.flags.c_contiguous:
        return None
    dims = data.shape[1:] if batched else data.shape
    strides = data.strides[1:] if batched else data.strides
    base, lane_stride = 0, data.strides[0] if batched else 0
    apart = batched
    for o, s, d, st in zip(offs, shape, dims, strides):
        if type(o) is np.ndarray:
            lst = o.tolist()
            o0 = lst[0]
            delta = lst[1] - o0 if len(lst) > 1 else 0
            last = o0 + (len(lst) - 1) * delta  # affine: the extremes are the first and last lane
            if delta:  # one list compare in C instead of a Python loop over the lanes
                affine = lst == list(range(o0, last + (1 if delta > 0 else -1), delta))
            else:
                affine = lst.count(o0) == len(lst)
            if not affine or min(o0, last) < 0 or max(o0, last) + s > d:
                return None
            lane_stride += delta * st
            apart = apart or abs(delta) >= s
        else:
            o0 = o
            if o < 0 or o + s > d:
                return None
        base += o0 * st
    if disjoint and not apart:
        return None
    out = np.ndarray((n,) + tuple(shape), data.dtype, buffer=data, offset=base,
                     strides=(lane_stride,) + strides)  # fmt: skip
    if not disjoint:
        out.flags.writeable = False
    return out


def _owner(a: np.ndarray) -> Any:
    """The object owning an array's memory (two buffers with one owner may alias)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


# ------------------------------------------------------------------ batched op kernels

BKERNELS: dict[str, Callable[..., Any]] = {}


def _bk(*names: str):
    def deco(fn):
        for name in names:
            BKERNELS[name] = fn
        return fn

    return deco


def _align(lanes: Lanes, x: Any, rank: int) -> Any:
    """An operand array ready to broadcast against (N, *out) with `rank` tile axes."""
    if type(x) is BView:
        a = lanes.mat(x)
        if x.rank < rank:
            a = a.reshape((a.shape[0],) + (1,) * (rank - x.rank) + a.shape[1:])
        return a
    if type(x) is TensorValue:
        return lanes.mat(x)
    if _lanes(x):
        raise Fallback("lane-dependent scalar operand")
    return np.asarray(x)


@_bk("add", "sub", "mul", "div", "maximum", "minimum")
def _binary(lanes: Lanes, op: str, rtype, attrs, lhs, rhs):
    if not _is_tensor(lhs):
        raise Fallback("scalar lhs")
    if _is_tensor(rhs):
        shape = lhs.shape if lhs.shape == rhs.shape else _broadcast(lhs.shape, rhs.shape)
        dtype = rtype or numerics.promote(lhs.dtype, rhs.dtype)
    else:
        if _lanes(rhs):
            raise Fallback("lane-dependent scalar operand")
        shape = lhs.shape
        dtype = rtype
        if dtype is None:
            s = _scalar_dtype(rhs)
            dtype = lhs.dtype if s == "INDEX" else numerics.promote(lhs.dtype, s)
    valid = lhs.valid
    if shape != lhs.shape:
        valid = tuple(v if s == r else (r if _uniform(v) > 0 else 0)
                      for s, r, v in zip(lhs.shape, shape, valid))  # fmt: skip
    rank = len(shape)
    r = numerics.binary(op, _align(lanes, lhs, rank), _align(lanes, rhs, rank), dtype,
                        lanes.ctx.precision)  # fmt: skip
    return lanes.fresh(r, dtype, valid)


@_bk("exp", "sqrt", "rsqrt", "recip", "log", "neg", "abs", "relu")
def _unary(lanes: Lanes, op: str, rtype, attrs, x):
    dtype = rtype or x.dtype
    return lanes.fresh(numerics.unary(op, lanes.mat(x), dtype, lanes.ctx.precision), dtype,
                       x.valid)  # fmt: skip


@_bk("row_sum", "row_max", "row_min", "col_sum", "col_max", "col_min")
def _reduction(lanes: Lanes, op: str, rtype, attrs, x, tmp=None):
    kind, red = op.split("_")
    dtype = rtype or x.dtype
    if kind == "row":
        if x.rank < 1:
            raise Fallback("rank")
        axis, valid = x.rank, x.valid[:-1] + (1,)
    else:
        if x.rank != 2:
            raise Fallback("rank")
        axis, valid = 1, (1, x.valid[1])
    if x.shape[axis - 1] == 0:
        raise Fallback("empty reduction")
    r = numerics.reduce(red, lanes.mat(x), axis, dtype, lanes.ctx.precision)
    return lanes.fresh(r, dtype, valid)


_EXPANDS: dict[tuple, bool] = {}  # (row/col, x shape, v shape) -> expand_shape allows it


@_bk("row_expand_add", "row_expand_sub", "row_expand_mul", "row_expand_div", "row_expand",
     "col_expand_add", "col_expand_sub", "col_expand_mul", "col_expand_div", "col_expand",
     "col_expand_expdif")  # fmt: skip
def _expand(lanes: Lanes, op: str, rtype, attrs, x, v):
    parts = op.split("_")
    kind, fn = parts[0], (parts[2] if len(parts) == 3 else "rhs")
    key = (kind, x.shape, v.shape)
    ok = _EXPANDS.get(key)
    if ok is None:  # the shape rule, once per pair of shapes (ints in a batched body)
        ok = _EXPANDS[key] = expand_shape(kind, x.shape, v.shape, op) is None
    if not ok:
        raise Fallback("shape")
    dtype = rtype or numerics.promote(x.dtype, v.dtype)
    rank = x.rank
    r = numerics.binary(fn, _align(lanes, x, rank), _align(lanes, v, rank), dtype,
                        lanes.ctx.precision)  # fmt: skip
    return lanes.fresh(r, dtype, x.valid)


def _mm_check(lhs, rhs, a_trans, b_trans) -> None:
    if lhs.rank != 2 or rhs.rank != 2:
        raise Fallback("rank")
    k1 = lhs.shape[0] if a_trans else lhs.shape[1]
    k2 = rhs.shape[1] if b_trans else rhs.shape[0]
    if k1 != k2:
        raise Fallback("shape")


@_bk("matmul")
def _matmul(lanes: Lanes, op: str, rtype, attrs, lhs, rhs):
    a_trans, b_trans = bool(attrs.get("a_trans")), bool(attrs.get("b_trans"))
    _mm_check(lhs, rhs, a_trans, b_trans)
    dtype = rtype or _dtype_name(attrs.get("out_dtype")) or numerics.promote(lhs.dtype, rhs.dtype)
    a, b = lanes.operand(lhs), lanes.operand(rhs)
    r = _masked(lanes, lambda *ops: numerics.matmul(*ops, dtype, a_trans, b_trans,
                                                    lanes.ctx.precision), a, b)  # fmt: skip
    return lanes.fresh(r, dtype)


def _masked(lanes: Lanes, fn: Callable[..., np.ndarray], *ops: np.ndarray) -> np.ndarray:
    """fn over lane stacks (2-D operands shared by every lane), computed for the lanes taking
    part only when some lanes are masked off (those get zeros: they take no effect)."""
    mask = lanes.mask
    if mask is None or all(o.ndim != 3 for o in ops):
        return fn(*ops)
    sel = np.flatnonzero(mask)
    part = fn(*(o[sel] if o.ndim == 3 else o for o in ops))
    full = np.zeros((lanes.n,) + part.shape[1:], part.dtype)
    full[sel] = part
    return full


@_bk("matmul_acc")
def _matmul_acc(lanes: Lanes, op: str, rtype, attrs, acc, lhs, rhs):
    a_trans, b_trans = bool(attrs.get("a_trans")), bool(attrs.get("b_trans"))
    _mm_check(lhs, rhs, a_trans, b_trans)
    m = lhs.shape[1] if a_trans else lhs.shape[0]
    n = rhs.shape[0] if b_trans else rhs.shape[1]
    if tuple(acc.shape) != (m, n):
        raise Fallback("shape")
    dtype = rtype or acc.dtype
    acc_arr = lanes.mat(acc)
    if acc_arr.ndim == 2:
        acc_arr = np.broadcast_to(acc_arr, (lanes.n,) + acc_arr.shape)
    a, b = lanes.operand(lhs), lanes.operand(rhs)
    r = _masked(lanes, lambda c, x, y: numerics.matmul_acc(c, x, y, dtype, a_trans, b_trans,
                                                           lanes.ctx.precision), acc_arr, a, b)  # fmt: skip
    return lanes.fresh(r, dtype)


# ------------------------------------------------------------------ K-loops over lanes


def _buf_of(v: Any) -> Any:
    return v.buffer if type(v) is TensorValue else v.buf


def _full(v: Any) -> bool:
    return _is_tensor(v) and v.rank == 2 and tuple(v.valid) == tuple(v.shape)


def _eq(x: Any, y: Any) -> bool:
    if type(x) is np.ndarray or type(y) is np.ndarray:
        return type(x) is type(y) and x.tolist() == y.tolist()
    return x == y


def _adjacent(first: Any, prev: Any, v: Any, k: int) -> bool:
    """`v` continues `prev` along axis k (same buffer, same window on the other axis)."""
    o = 1 - k
    if _buf_of(v) is not _buf_of(first) or not _full(v):
        return False
    if not _eq(v.offset[o], first.offset[o]) or v.shape[o] != first.shape[o]:
        return False
    return _eq(v.offset[k], _norm(prev.offset[k] + prev.shape[k]))


def _widen_view(first: Any, last: Any, k: int) -> Any:
    """The window from `first` to the end of `last` along axis k."""
    shape = list(first.shape)
    shape[k] = _uniform(last.offset[k] + last.shape[k] - first.offset[k])
    shape = tuple(shape)
    if type(first) is TensorValue:
        return TensorValue(first.buffer, first.offset, shape)
    return BView(first.buf, first.offset, shape, shape)


def join_k(pairs: list, b_trans: bool) -> tuple | None:
    """The (lhs, rhs) pairs of a K-loop joined into one pair of windows, or None when they do
    not join (interpreter/kloop.py's rule, per lane)."""
    (a0, b0) = pairs[0]
    kb = 1 if b_trans else 0
    if not (_full(a0) and _full(b0)):
        return None
    for (ap, bp), (a, b) in zip(pairs, pairs[1:]):
        if not (_adjacent(a0, ap, a, 1) and _adjacent(b0, bp, b, kb)):
            return None
    an, bn = pairs[-1]
    return _widen_view(a0, an, 1), _widen_view(b0, bn, kb)


@_bk("cast")
def _cast(lanes: Lanes, op: str, rtype, attrs, x):
    dst = _dtype_name(attrs.get("target_type")) or rtype
    mode = attrs.get("mode", "round")
    if _lanes(x):
        r = numerics.cast(x, dst, mode, lanes.ctx.precision)
        if dst in ("INDEX", "BOOL"):
            return _norm(r.astype(np.int64)) if dst == "INDEX" else r.astype(bool)
        raise Fallback("lane-dependent non-index scalar")
    r = numerics.cast(lanes.mat(x), dst, mode, lanes.ctx.precision)
    return lanes.fresh(r, dst, x.valid, x.pad)


@_bk("reshape")
def _reshape(lanes: Lanes, op: str, rtype, attrs, x, shape):
    shape = tuple(_uniform(s) for s in shape)
    if math.prod(shape) != math.prod(x.shape) or any(s < 0 for s in shape):
        raise Fallback("shape")
    valid = shape
    if tuple(x.valid) != tuple(x.shape):
        valid = reshape_valid(tuple(x.shape), tuple(_uniform(v) for v in x.valid), shape)
        if valid is None:
            valid = shape
    buf = x.buf
    if type(buf) is BBuf and all(type(o) is not np.ndarray for o in x.offset):
        win = buf.data[(slice(None),) + tuple(slice(o, o + s) for o, s in zip(x.offset, x.shape))]
        view = win.view()
        try:
            view.shape = (lanes.n,) + shape  # shares memory, as the per-tile reshape does
            return BView(BBuf(view, x.dtype), (0,) * len(shape), shape, valid, x.pad)
        except AttributeError:
            pass
    if type(buf) is BBuf:
        raise Fallback("reshape of a non-contiguous per-lane window")
    # a per-lane window of a shared buffer, copied: reads the same as the per-tile view
    # unless the body writes that buffer (then commit falls back)
    lanes.snapshots.add(id(buf.root))
    data = np.ascontiguousarray(lanes.mat(x)).reshape((lanes.n,) + shape)
    return BView(BBuf(data, x.dtype), (0,) * len(shape), shape, valid, x.pad)


@_bk("fillpad")
def _fillpad(lanes: Lanes, op: str, rtype, attrs, x):
    pad = attrs.get("pad_value")
    pad = "zero" if pad is None else pad
    data = lanes.raw(x)
    mask = _inside(x.shape, x.valid)
    if mask is not None:
        data = np.where(mask, data, numerics.pad_value(pad, x.dtype, lanes.ctx.precision))
    else:
        data = np.array(data)
    return lanes.fresh(data, x.dtype)


@_bk("create_tensor")
def _create(lanes: Lanes, op: str, rtype, attrs, shape, init_value=None, valid_shape=None):
    name = _dtype_name(attrs.get("dtype")) or rtype
    shape = tuple(_uniform(s) for s in shape)
    if any(s < 0 for s in shape):
        raise Fallback("shape")
    init_value = attrs.get("init_value", init_value)
    valid = shape
    if attrs.get("valid_shape", valid_shape) is not None:
        raise Fallback("create_tensor valid_shape")
    data = np.zeros((lanes.n,) + shape, dtype=lanes.ctx.storage(name))
    if init_value is not None:
        v = numerics.cast(np.asarray(init_value), name, "rint", lanes.ctx.precision)
        data[...] = v[()]
    return BView(BBuf(data, name), (0,) * len(shape), shape, valid, None, True)


def _check_box(lanes: Lanes, x, offset: tuple, extent: tuple) -> None:
    """Every lane's window [offset, offset+extent) inside x (and its buffer), else Fallback
    (the per-tile path words the fault)."""
    if len(offset) != x.rank or len(extent) != x.rank:
        raise Fallback("rank")
    if type(x) is TensorValue:
        dims = x.buffer.data.shape
    else:
        dims = x.buf.data.shape[1:] if type(x.buf) is BBuf else x.buf.data.shape
    mask = lanes.mask  # lanes past their own loop's end are not checked: they take no effect
    for o, e, d, b, bd in zip(offset, extent, x.shape, x.offset, dims):
        if type(o) is not np.ndarray and type(e) is not np.ndarray and type(b) is not np.ndarray:
            if o < 0 or o + e > d or (e > 0 and b + o + e > bd):
                raise Fallback("window out of bounds")
            continue
        if type(e) is not np.ndarray and type(b) is not np.ndarray:  # lane offsets only
            lo, hi = _lo_hi(o, mask)  # the same bounds as below, without NumPy arithmetic
            if lo < 0 or hi + e > d or (e > 0 and hi + e + b > bd):
                raise Fallback("window out of bounds")
            continue
        end = o + e
        if _lo_hi(o, mask)[0] < 0 or _lo_hi(end, mask)[1] > d:
            raise Fallback("window out of bounds")
        if _lo_hi(e, mask)[1] > 0 and _lo_hi(end + b, mask)[1] > bd:
            raise Fallback("window out of bounds")


@_bk("slice")
def _slice(lanes: Lanes, op: str, rtype, attrs, x, shape, offset, valid_shape=None):
    shape = _ints(shape) or tuple(_uniform(s) for s in shape)
    offset = _ints(offset) or tuple(_norm(o) for o in offset)
    valid_shape = attrs.get("valid_shape", valid_shape)
    pad = attrs.get("pad_value")
    if len(shape) != x.rank or len(offset) != x.rank or any(s < 0 for s in shape):
        raise Fallback("rank")
    want = shape if valid_shape is None else tuple(_norm(v) for v in valid_shape)
    if valid_shape is not None:
        for v, s in zip(want, shape):
            lo, hi = _lo_hi(v, lanes.mask)
            if lo < 0 or hi > s:
                raise Fallback("valid_shape")
    _check_box(lanes, x, offset, want)
    valid, offs = [], []
    for v, xv, o, a in zip(want, x.valid, offset, x.offset):
        if type(o) is np.ndarray:  # one pass over the lanes' offsets for both
            lst = o.tolist()
            if type(v) is np.ndarray or type(xv) is np.ndarray or xv - max(lst) < v:
                valid.append(_norm(np.maximum(0, np.minimum(v, xv - o))))
            else:  # every lane's window ends inside x's valid region
                valid.append(v)
            offs.append(_norm(a + o))
            continue
        if type(v) is np.ndarray or type(xv) is np.ndarray:
            valid.append(_norm(np.maximum(0, np.minimum(v, xv - o))))
        else:
            valid.append(max(0, min(v, xv - o)))
        offs.append(a + o if type(a) is int and type(o) is int else _norm(a + o))
    valid = shape if _covers(valid, shape) else tuple(valid)  # whole: `_inside` answers at once
    offs = tuple(offs)
    if type(x) is TensorValue:
        lanes.note_root(x.buffer)  # a view: its data is read (and recorded) when used
        return BView(x.buffer, offs, shape, valid, pad)
    return BView(x.buf, offs, shape, valid, pad)


@_bk("assemble")
def _assemble(lanes: Lanes, op: str, rtype, attrs, target, source, offset):
    if _atomic_add(attrs.get("atomic")):
        raise Fallback("atomic assemble")
    offset = _ints(offset) or tuple(_norm(o) for o in offset)
    if source.rank > target.rank:
        raise Fallback("rank")
    lead = target.rank - source.rank
    extents = (1,) * lead + tuple(source.valid)
    _check_box(lanes, target, offset, extents)
    svalid = source.valid
    if type(target) is TensorValue:
        root = target.buffer.root
        if id(root) in lanes.inner:
            raise Fallback("assemble into a tile the body computed")
        lanes.written_roots[id(root)] = root
        src = _source(lanes, source, svalid)
        offs = tuple(_norm(a + b) for a, b in zip(target.offset, offset))
        lanes.write(target, offs, extents, src)
        return target
    buf = target.buf
    if type(buf) is not BBuf:
        raise Fallback("assemble through a per-lane view of a shared buffer")
    mask = lanes.mask
    if (mask is None and type(source) is BView and _ints(extents) is not None
            and _ints(offset) is not None and _ints(target.offset) is not None):  # fmt: skip
        # the common case, one window in every lane: written straight from the source's
        # lanes, no copy in between (NumPy copies first where source and target overlap)
        src = lanes.raw(source)
        if source.shape != svalid:
            src = src[(slice(None),) + tuple(slice(0, v) for v in svalid)]
        win = tuple(slice(a + b, a + b + e) for a, b, e in zip(target.offset, offset, extents))
        buf.data[(slice(None),) + win] = src.reshape((lanes.n,) + extents)
        return target
    offs = tuple(_norm(a + b) for a, b in zip(target.offset, offset))
    src = _source(lanes, source, svalid)
    if all(type(e) is not np.ndarray for e in extents) and (
        mask is None or all(type(o) is not np.ndarray for o in offs)
    ):
        if all(type(o) is not np.ndarray for o in offs):
            win = tuple(slice(o, o + e) for o, e in zip(offs, extents))
            if mask is None:
                buf.data[(slice(None),) + win] = src.reshape((lanes.n,) + extents)
            else:  # the lanes taking part only
                sel = np.flatnonzero(mask)
                buf.data[(sel,) + win] = src[sel].reshape((len(sel),) + extents)
        else:
            lanes._scatter(buf.data, offs, extents, src, batched=True)
    else:
        for lane in range(lanes.n) if mask is None else np.flatnonzero(mask).tolist():
            lo = [int(o[lane]) if type(o) is np.ndarray else o for o in offs]
            ex = [int(e[lane]) if type(e) is np.ndarray else e for e in extents]
            part = src[lane][tuple(slice(0, e) for e in ex[lead:])]
            buf.data[(lane,) + tuple(slice(o, o + e) for o, e in zip(lo, ex))] = part.reshape(ex)
    return target


def _source(lanes: Lanes, source, svalid) -> np.ndarray:
    """The source's valid region as a copy, (N, *valid) (per-lane valid: the whole window,
    cut per lane when written); a uniform source is broadcast to every lane."""
    if type(source) is TensorValue:
        lanes.note_read(source.buffer, source.offset, source.shape)
        part = source.buffer.data[source.window()]
        return np.array(np.broadcast_to(part, (lanes.n,) + part.shape))
    data = lanes.raw(source)
    if all(type(v) is not np.ndarray for v in svalid):
        data = data[(slice(None),) + tuple(slice(0, v) for v in svalid)]
    return np.array(data)


@_bk("read")
def _read(lanes: Lanes, op: str, rtype, attrs, x, indices):
    if len(indices) != x.rank:
        raise Fallback("flat index")
    idx = _ints(indices) or tuple(_norm(i) for i in indices)
    mask = lanes.mask
    for i, s in zip(idx, x.shape):
        lo, hi = _lo_hi(i, mask)
        if lo < 0 or hi >= s:
            raise Fallback("index out of bounds")
    if type(x) is TensorValue:
        where = tuple(_norm(o + i) for o, i in zip(x.offset, idx))
        data = x.buffer.data
        bdims = data.shape
        if any(_lo_hi(w, mask)[1] >= d for w, d in zip(where, bdims)):
            raise Fallback("index past the buffer")
        if mask is not None:  # lanes without effect may index anywhere: keep them inside
            where = tuple(np.clip(w, 0, d - 1) if type(w) is np.ndarray else w
                          for w, d in zip(where, bdims))  # fmt: skip
        lanes.note_read(x.buffer, where, (1,) * len(where))
        if any(type(w) is np.ndarray for w in where):  # NumPy broadcasts the int indices
            vals = data[where]
        else:
            vals = data[tuple(np.broadcast_to(np.asarray(w), (lanes.n,)) for w in where)]
    else:
        raise Fallback("read of a per-lane tile")
    if not _below(idx, x.valid):  # some lane may read past the valid region: its fill value
        inside = np.ones(lanes.n, bool)
        for i, v in zip(idx, x.valid):
            inside &= np.asarray(i) < v
        if not inside.all():
            vals = np.where(inside, vals, x.fill_value(lanes.ctx))
    if x.dtype in ("INDEX", "BOOL"):
        if x.dtype == "BOOL":
            return vals.astype(bool)
        return vals.astype(np.int64)
    if not _lanes(vals):
        return _to_scalar(vals, x.dtype)
    return vals


def _below(idx: tuple, valid: tuple) -> bool:
    """Every lane's index below `valid` on every axis (valid items ints)."""
    for i, v in zip(idx, valid):
        if type(v) is np.ndarray or (max(i.tolist()) if type(i) is np.ndarray else i) >= v:
            return False
    return True


@_bk("dim")
def _dim(lanes: Lanes, op: str, rtype, attrs, x):
    axis = attrs.get("axis", 0)
    if not -x.rank <= axis < x.rank:
        raise Fallback("axis")
    return int(x.shape[axis])


# ------------------------------------------------------------------ the body, lane-vectorized

_UNSET = object()


def _trip_end(hi: Any, mask: np.ndarray | None, lo: Any, step: Any) -> tuple[Any, Any]:
    """A loop's stop as one int, and the per-lane stops (None when every lane taking part
    stops at the same place). Lane-dependent stops run to the largest with the lanes past
    their own stop masked off (ascending loops only; else Fallback)."""
    if type(hi) is not np.ndarray:
        return hi, None
    lst = (hi if mask is None else hi[mask]).tolist()
    if lst and lst.count(lst[0]) == len(lst):
        return lst[0], None
    if type(lo) is not int or type(step) is not int or step <= 0 or not lst:
        raise Fallback("lane-dependent loop bound")
    return max(lst), hi


def _keep(lanes: Lanes, env: dict, names: tuple, prev: list) -> None:
    """After a masked iteration: the lanes that did not take part get back their values of
    `names` from before it."""
    for n, old in zip(names, prev):
        new = env.get(n, _UNSET)
        if new is old:
            continue
        if old is _UNSET or new is _UNSET:
            raise Fallback("a loop with lane-dependent trips binds a name")
        env[n] = _select(lanes, new, old)


def _carry_data(lanes: Lanes, x: Any) -> np.ndarray:
    """A carried tile's data per lane, copied now (so a shared buffer it views counts as
    read early: commit falls back if the body writes it)."""
    if type(x) is TensorValue:
        lanes.snapshots.add(id(x.buffer.root))
        return lanes.mat(x)
    if type(x.buf) is Buffer:
        lanes.snapshots.add(id(x.buf.root))
    return lanes.raw(x)


def _select(lanes: Lanes, new: Any, old: Any) -> Any:
    """A loop carry after a masked iteration: `new` in the lanes taking part, `old` in the
    others (Fallback where the two cannot be merged exactly)."""
    if new is old:
        return new
    mask = lanes.mask
    tn, to = type(new), type(old)
    if (tn is int or tn is np.ndarray) and (to is int or to is np.ndarray):
        if (tn is np.ndarray and new.dtype.kind not in "iub") or (
            to is np.ndarray and old.dtype.kind not in "iub"
        ):
            raise Fallback("masked carry")
        return _norm(np.where(mask, new, old))
    if not _is_tensor(new) or not _is_tensor(old):
        raise Fallback("masked carry")
    if new.shape != old.shape or new.dtype != old.dtype or new.pad != old.pad:
        raise Fallback("masked carry")
    m = mask.reshape((-1,) + (1,) * new.rank)
    data = np.where(m, _carry_data(lanes, new), _carry_data(lanes, old))
    valid = tuple(
        a if a is b else _norm(np.where(mask, a, b)) for a, b in zip(new.valid, old.valid)
    )
    shape = tuple(new.shape)
    if all(type(v) is int for v in valid) and valid == shape:
        valid = shape
    return BView(BBuf(data, new.dtype), (0,) * len(shape), shape, valid, new.pad, True)


_INDEX_LANE_OPS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "min": np.minimum,
    "max": np.maximum,
    "floordiv": np.floor_divide,
    "mod": np.mod,
}
_CMP_LANE_OPS = {
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


class _State:
    """One batched run: the loop's environment (a copy), its lanes, the open loops' yields."""

    __slots__ = ("env", "lanes", "pending")

    def __init__(self, env: dict, lanes: Lanes):
        self.env, self.lanes, self.pending = env, lanes, []


Code = Callable[[_State], Any]


def in_order(codes: tuple[Callable[[Any], Any], ...]) -> Callable[[Any], Any]:
    """One closure running `codes` in turn on the same state (a block's statements); shared
    with the per-tile compiler (interpreter/compiler.py)."""
    if len(codes) == 1:
        return codes[0]

    def run(state: Any) -> None:
        for c in codes:
            c(state)

    return run


class BatchedLoop:
    """One loop's body compiled once into closures over all lanes (the per-node cost is paid
    once per batched run, not once per lane)."""

    def __init__(self, machine: Any, loop: For, check_writes: bool = False,
                 flat: For | None = None):  # fmt: skip
        self.m, self.loop, self.ctx = machine, loop, machine.ctx
        self.check_writes = check_writes or flat is not None
        self.flat = flat  # the loop ending the body, run as lanes too (see run)
        self.fails = 0
        live = machine._live
        self.kshapes = {}  # nested matmul_acc K-loops (interpreter/kloop.py's shape)
        if live is not None:
            for node in walk(loop):
                if type(node) is For and node is not loop:
                    after = live.live_after.get(id(node), frozenset())
                    self.kshapes[id(node)] = k_loop_shape(node, after)
        stmts = list(loop.body)
        self.body = self.block(stmts[:-1] + list(flat.body) if flat is not None else stmts)

    def run(self, env: dict, lo: int, hi: int, st: int, inner: range | None = None) -> None:
        """One batched run (raises Fallback with every shared buffer restored). With `flat`,
        one lane per (outer, inner) iteration pair: each lane runs the statements before the
        inner loop, then one inner iteration; the commit check (writes of different lanes
        disjoint, no lane reading what another wrote) makes that the nest's result,
        duplicated statements included (a duplicated write overlaps itself and falls back)."""
        lanes_idx = np.arange(lo, hi, st, dtype=np.int64)
        local = dict(env)
        if inner is None:
            local[self.loop.var.name] = lanes_idx
        else:
            inner_idx = np.arange(inner.start, inner.stop, inner.step, dtype=np.int64)
            local[self.loop.var.name] = np.repeat(lanes_idx, len(inner_idx))
            local[self.flat.var.name] = np.tile(inner_idx, len(lanes_idx))
        lanes = Lanes(self.ctx, len(local[self.loop.var.name]), self.check_writes)
        try:
            self.body(_State(local, lanes))
            lanes.commit()
        except BaseException:
            lanes.restore()  # shared buffers exactly as before; the caller runs it per tile
            raise
        env[self.loop.var.name] = int(lanes_idx[-1])
        if inner is not None:
            env[self.flat.var.name] = int(inner_idx[-1])

    # ------------------------------------------------------------ statements
    def block(self, stmts) -> Code:
        return in_order(tuple(self.stmt(s) for s in stmts))

    def branch(self, body) -> Code:
        """A branch of an If; one ending in a yield (SSA if-form) binds the if's results."""
        phi = if_result(body)
        if phi is None:
            return self.block(body)
        run, values = self.block(body[:-1]), tuple(self.expr(v) for v in phi.values)
        names = tuple(t.name for t in phi.targets)

        def branch(st: _State) -> None:
            run(st)
            got = [v(st) for v in values]
            for n, v in zip(names, got):
                st.env[n] = v

        return branch

    def stmt(self, s) -> Code:
        kind = type(s)
        if kind is Assign:
            value = self.expr(s.value)
            if len(s.targets) == 1:
                name = s.targets[0].name

                def assign(st: _State) -> None:
                    st.env[name] = value(st)

                return assign
            names = [t.name for t in s.targets]

            def unpack(st: _State) -> None:
                v = value(st)
                if not isinstance(v, tuple) or len(v) != len(names):
                    raise Fallback("unpack")
                for n, item in zip(names, v):
                    st.env[n] = item

            return unpack
        if kind is ExprStmt:
            return self.expr(s.expr)
        if kind is For:
            return self.for_(s)
        if kind is Yield:
            values = tuple(self.expr(v) for v in s.values)
            names = tuple(t.name for t in s.targets)

            def yield_(st: _State) -> None:
                got = [v(st) for v in values]
                if st.pending:  # a loop's yield: targets are bound when the loop ends
                    st.pending[-1][0] = got
                    return
                for n, v in zip(names, got):
                    st.env[n] = v

            return yield_
        if kind is If:
            cond, then, other = (
                self.expr(s.cond),
                self.branch(s.then_body),
                self.branch(s.else_body),
            )

            def if_(st: _State) -> None:
                if _uniform_in(cond(st), st.lanes.mask):
                    then(st)
                else:
                    other(st)

            return if_
        if kind is Scope and not s.deps and s.tid is None:
            return self.block(s.body)
        reason = f"{kind.__name__} in the body"

        def unsupported(st: _State) -> None:
            raise Fallback(reason)

        return unsupported

    def for_(self, s: For) -> Code:
        bounds = tuple(self.expr(e) for e in (s.start, s.stop, s.step))
        body = self.block(s.body)
        shape = self.kshapes.get(id(s))
        kloop = self.k_loop(s, shape) if shape is not None else None
        names = tuple(v.name for v in s.iter_args)
        inits = tuple(self.expr(v) for v in s.init_values)
        from pldsl.ir.analysis import own_yields

        yields = tuple(own_yields(s.body)) if names else ()
        var, spmd = s.var.name, s.kind == "spmd"
        # names a lane past its own last iteration must not change (see `ragged` below): the
        # body's names that are live after the loop, the loop variable included (a name the
        # body reads before it assigns it only feeds later iterations, which such a lane skips)
        live = self.m._live
        after = live.live_after.get(id(s)) if live is not None else None
        kept = (assigned_names(s.body) | {var}) - set(names)
        kept -= {t.name for y in yields for t in y.targets}  # bound from the merged carries
        if after is not None:
            kept &= set(after)
        kept = tuple(sorted(kept))

        def loop(st: _State) -> None:
            if spmd:
                raise Fallback("spmd")
            lanes = st.lanes
            mask = lanes.mask
            lo, step = _uniform_in(bounds[0](st), mask), _uniform_in(bounds[2](st), mask)
            hi, ragged = _trip_end(bounds[1](st), mask, lo, step)
            if type(lo) is not int or type(hi) is not int or type(step) is not int or step == 0:
                raise Fallback("loop bounds")
            if kloop is not None and ragged is None and step == 1 and hi - lo >= 2:
                return kloop(st, lo, hi)
            env = st.env
            carries = [c(st) for c in inits]
            outer = outer_values(env, names)
            for n, v in zip(names, carries):
                env[n] = v
            state = [None]
            st.pending.append(state)
            try:
                for i in range(lo, hi, step):
                    env[var] = i
                    state[0] = None
                    if ragged is not None:  # lanes whose own loop has ended take no effect
                        act = ragged > i if mask is None else (ragged > i) & mask
                        lanes.mask = None if mask is None and act.all() else act
                    prev = [env.get(n, _UNSET) for n in kept] if lanes.mask is not mask else None
                    body(st)
                    if prev is not None:
                        _keep(lanes, env, kept, prev)
                    if state[0] is not None:
                        carries = state[0]
                        if lanes.mask is not None:
                            carries = [_select(lanes, new, old) for new, old in
                                       zip(carries, [env[n] for n in names])]  # fmt: skip
                        for n, v in zip(names, carries):
                            env[n] = v
            finally:
                st.pending.pop()
                lanes.mask = mask
            restore_outer(env, outer)  # carry names are loop-local (PyPTO's iter args)
            for y in yields:
                for t, v in zip(y.targets, carries):
                    env[t.name] = v

        return loop

    def k_loop(self, s: For, shape: KLoop):
        """A matmul_acc K-loop: its windows joined into one product per lane where they join
        (as interpreter/kloop.py joins them per tile), else its products in order."""
        prefix = tuple(self.stmt(p) for p in shape.prefix)
        lhs, rhs = self.expr(shape.lhs), self.expr(shape.rhs)
        call = self.op_call(shape.call, None)
        var, acc_name, b_trans = s.var.name, shape.acc, shape.b_trans

        def k_loop(st: _State, lo: int, hi: int) -> None:
            env, pairs = st.env, []
            for i in range(lo, hi):
                env[var] = i
                for c in prefix:
                    c(st)
                pairs.append((lhs(st), rhs(st)))
            acc = env.get(acc_name)
            joined = None
            if _full(acc) and acc.dtype == "FP32":
                joined = join_k(pairs, b_trans)
            for a, b in [joined] if joined is not None else pairs:
                acc = call(st, [acc, a, b])
            env[acc_name] = acc

        return k_loop

    # ------------------------------------------------------------ expressions
    def expr(self, e) -> Code:
        kind = type(e)
        if e is None:
            return _none
        if kind is Var:
            name = e.name

            def var(st: _State) -> Any:
                try:
                    return st.env[name]
                except KeyError:
                    raise Fallback("unbound variable") from None

            return var
        if kind is Const:
            value = self.m._const(e, None)
            return lambda st: value
        if kind is BinOp:
            return self.binop(e)
        if kind is UnaryOp:
            operand, unary = self.expr(e.operand), self.m._unary_value
            neg = e.op == "neg"

            def unary_(st: _State) -> Any:
                v = operand(st)
                if type(v) is np.ndarray:
                    if neg and v.dtype.kind in "iu":
                        return -v
                    raise Fallback("lane-dependent unary")
                return unary(e, v)

            return unary_
        if kind is ListExpr:
            if all(type(i) is Const for i in e.items):
                items = tuple(int(py_scalar(self.m._const(i, None))) for i in e.items)
                return lambda st: items
            evs = tuple(self.expr(i) for i in e.items)

            def list_(st: _State) -> tuple:
                out = []
                for ev in evs:
                    v = ev(st)
                    out.append(v if type(v) is int or type(v) is np.ndarray
                               else int(py_scalar(v)))  # fmt: skip
                return tuple(out)

            return list_
        if kind is OpCall:
            args = tuple(self.expr(a) for a in e.args)
            call = self.op_call(e, args)
            if len(args) == 1:  # the common arities without a list comprehension
                (a0,) = args
                return lambda st: call(st, [a0(st)])
            if len(args) == 2:
                a0, a1 = args
                return lambda st: call(st, [a0(st), a1(st)])
            if len(args) == 3:
                a0, a1, a2 = args
                return lambda st: call(st, [a0(st), a1(st), a2(st)])
            return lambda st: call(st, [a(st) for a in args])
        if kind is TupleGet:
            value, index = self.expr(e.value), e.index
            return lambda st: value(st)[index]
        reason = f"{kind.__name__} expression"

        def unsupported(st: _State) -> Any:
            raise Fallback(reason)

        return unsupported

    def binop(self, e: BinOp) -> Code:
        lhs, rhs, op = self.expr(e.lhs), self.expr(e.rhs), e.op
        generic = self.m._binop_value
        dtype = getattr(e.type, "dtype", None)
        index = dtype is not None and dtype.name == "INDEX" and op in _INDEX_LANE_OPS
        fn = _INDEX_LANE_OPS.get(op) if index else _CMP_LANE_OPS.get(op)
        checked = op in ("floordiv", "mod")
        py = _INDEX_PY.get(op) if index else None

        def binop(st: _State) -> Any:
            a, b = lhs(st), rhs(st)
            ta, tb = type(a), type(b)
            if ta is not np.ndarray and tb is not np.ndarray:
                if py is not None and ta is int and tb is int and not (checked and b == 0):
                    return py(a, b)
                return generic(e, a, b)
            if fn is None:
                raise Fallback(f"lane-dependent {op}")
            if ta is not np.ndarray:
                a = py_scalar(a)
            if tb is not np.ndarray:
                b = py_scalar(b)
                if checked and b == 0:
                    raise Fallback("division by zero")
            elif checked:
                mask = st.lanes.mask
                if not (b.all() if mask is None else b[mask].all()):
                    raise Fallback("division by zero")
                if mask is not None:  # lanes without effect: any divisor but zero
                    b = np.where(mask, b, 1)
            return fn(a, b)

        return binop

    def op_call(self, e: OpCall, args) -> Callable[[_State, list], Any]:
        """The op, dispatched per run: the plain kernel once when every operand is the same in
        every lane, its batched form otherwise."""
        name = _canonical(e.op)
        fn = BKERNELS.get(name)
        attrs, rtype = _attrs(e), _rtype(e)
        always = name in ("create_tensor", "assemble")
        views = name in _VIEW_OPS
        m = self.m

        def call(st: _State, vals: list) -> Any:
            lanes = st.lanes
            if not always:
                for a in vals:
                    t = type(a)
                    if t is BView or t is np.ndarray:
                        break
                    if t is tuple and any(type(i) is np.ndarray for i in a):
                        break
                else:
                    op = m._ops.get(id(e)) or m._prepare_op(e)
                    for a in vals:
                        if type(a) is TensorValue:
                            if views:  # no data read: recorded where the view is used
                                lanes.note_root(a.buffer)
                            else:  # the whole window, as every lane's read
                                lanes.note_read(a.buffer, a.offset, a.shape)
                    r = op.call(*vals)
                    if type(r) is TensorValue and not views:  # a view keeps its root
                        lanes.inner.add(id(r.buffer.root))
                    return r
            if fn is None:
                raise Fallback(f"no batched pl.{name}")
            return fn(lanes, name, rtype, attrs, *vals)

        return call


# ops whose plain kernel makes a view of its tensor operand without reading its data
_VIEW_OPS = frozenset({"slice", "reshape", "dim"})

_INDEX_PY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "min": min,
    "max": max,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
}


def _none(st: _State) -> None:
    return None


_CANON: dict[str, str] = {}


def _canonical(name: str) -> str:
    c = _CANON.get(name)
    if c is None:
        opdef = lookup(name)
        c = _CANON[name] = opdef.name if opdef is not None else name
    return c


def _attrs(e: OpCall) -> dict:
    opdef = lookup(e.op)
    return {p.name: e.attr(p.name) for p in opdef.static_params} if opdef else {}


def _rtype(e: OpCall) -> str | None:
    return getattr(getattr(e.type, "dtype", None), "name", None)
