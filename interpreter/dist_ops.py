"""The interpreter's kernels for the `pld` ops (pldsl/ops/table_distributed.py), over the
simulated ranks of pldsl.interpreter.ranks, and the hook around every other op's kernel that
records, on a rank, which window elements it reads and writes (for the WindowRace check).

Every kernel that touches another rank's memory or waits is a scheduling point: it hands the
turn to the scheduler first, so other ranks may run in between.
"""

from __future__ import annotations

import operator
import weakref
from typing import Any

import numpy as np

from pldsl.execution import numerics
from pldsl.execution.memory import Context, OpFault, TensorValue, fresh
from pldsl.ir.nodes import OpCall, Program
from pldsl.ir.opdefs import OPS
from pldsl.ir.traversal import iter_expr, iter_stmts, stmt_exprs
from pldsl.ir.types import DistributedTensorType

from . import ranks
from .machine import DEFERRED_OPS, KERNEL_OVERLAYS, PER_OP
from .ops import KERNELS, Kernel, _copy_cost, kernel
from .ranks import LOCAL, Blocker, WindowBuffer, WindowView, current_span, current_world, where

# ------------------------------------------------------------------ host side


@kernel("pld.world_size")
def world_size(opname, ctx: Context, rtype):
    return current_world().size


@kernel("pld.alloc_window_buffer")
def alloc_window_buffer(opname, ctx: Context, rtype, shape, dtype=None, name=""):
    w = current_world()
    name_ = "UINT8" if dtype is None else dtype.name  # no dtype: a size in bytes
    return WindowBuffer(w, tuple(shape), name_, ctx.storage(name_), name)


@kernel("pld.window")
def window(opname, ctx: Context, rtype, buf, shape, dtype=None):
    if not isinstance(buf, WindowBuffer):
        raise OpFault("NotAWindow", "takes a pld.alloc_window_buffer result")
    shape = tuple(shape)
    have = int(np.prod(buf.shape)) * np.dtype(ctx.storage(buf.dtype)).itemsize
    if int(np.prod(shape)) * np.dtype(ctx.storage(dtype.name)).itemsize > have:
        raise OpFault("WindowTooLarge", f"a {list(shape)} view is larger than its buffer "
                      f"{list(buf.shape)}")  # fmt: skip
    typed = buf.typed(shape, dtype.name, ctx.storage(dtype.name))
    return WindowView(typed, shape, dtype.name)


DEFERRED_OPS.add("pld.launch")  # its call runs on the rank, later: not as an operand


@kernel("pld.launch")
def launch(opname, ctx: Context, rtype, device, call):
    current_world().launch(int(device), call)


# ------------------------------------------------------------------ identity


@kernel("pld.get_comm_ctx")
def get_comm_ctx(opname, ctx: Context, rtype, t):
    current_world().window_of(t)
    return 0


@kernel("pld.rank")
def rank(opname, ctx: Context, rtype, handle):
    return np.int32(ranks.my_rank())


@kernel("pld.nranks")
def nranks(opname, ctx: Context, rtype, handle):
    return np.int32(current_world().size)


# ------------------------------------------------------------------ helpers


def _me() -> tuple[ranks.World, int]:
    me = ranks.my_rank()
    return LOCAL.world, me


def _peer(w: ranks.World, peer) -> int:
    p = int(peer)
    if not 0 <= p < w.size:
        raise OpFault(
            "BadPeer",
            f"peer {p} is not a rank (ranks 0..{w.size - 1})",
            "a peer index is usually taken modulo the rank count",
        )
    return p


def _box(t: TensorValue, offsets, shape, peer: int | None = None, part: str = "") -> tuple:
    """The buffer index of [offsets, offsets+shape) of `t`; a fault when it leaves `t`."""
    offsets, shape = tuple(int(o) for o in offsets), tuple(int(s) for s in shape)
    bad = [i for i, (o, s, d) in enumerate(zip(offsets, shape, t.shape)) if o < 0 or o + s > d]
    if len(offsets) != t.rank or len(shape) != t.rank or bad:
        whose = f"rank {peer}'s " if peer is not None else ""
        raise OpFault(
            "RemoteOutOfWindow",
            f"{part}region offsets {list(offsets)} shape "
            f"{list(shape)} lies outside "
            f"{whose}window '{t.name.split('@')[0]}' of shape {list(t.shape)}",
            "remote accesses must stay inside the window: check the offsets and the shape",
        )
    return tuple(slice(o + b, o + b + s) for o, b, s in zip(t.offset, offsets, shape))


def _slot(w: ranks.World, t: TensorValue, rank: int) -> tuple[WindowBuffer, Any]:
    wb, _ = w.window_of(t)
    return wb, wb.slots[rank]


# ------------------------------------------------------------------ signals

_CMP = {"Eq": operator.eq, "Ne": operator.ne, "Gt": operator.gt, "Ge": operator.ge,
        "Lt": operator.lt, "Le": operator.le}  # fmt: skip


@kernel("pld.system.notify")
def notify(opname, ctx: Context, rtype, target, peer, offsets, value, op=None):
    mode = op
    w, me = _me()
    span = current_span()
    w.point()
    p = _peer(w, peer)
    box = _box(target, offsets, (1,) * target.rank, p)
    wb, slot = _slot(w, target, p)
    cell = slot.data[box]
    if getattr(mode, "name", mode) == "Set":
        cell[...] = int(value)
    else:
        cell[...] = cell + int(value)
    key = (id(wb), p, tuple(b.start for b in box))
    sent = w.release(me)
    old = w.cell_clock.get(key)
    w.cell_clock[key] = sent if old is None else np.maximum(old, sent)
    w.notifies.append((me, p, wb, key[2], span))
    return target


@kernel("pld.system.wait")
def wait(opname, ctx: Context, rtype, signal, offsets, expected, cmp=None):
    w, me = _me()
    span = current_span()
    box = _box(signal, offsets, (1,) * signal.rank)
    wb, slot = _slot(w, signal, me)
    test = _CMP[getattr(cmp, "name", "Ge")]
    index = tuple(b.start for b in box)
    want = int(expected)

    def ready() -> bool:
        return bool(test(int(slot.data[index]), want))

    def describe() -> str:
        sent = [f"line {s.line} (rank {a} -> rank {b}, cell {list(i)})"
                for a, b, buf, i, s in w.notifies if buf is wb]  # fmt: skip
        lines = sorted({s.line for a, b, buf, i, s in w.notifies if buf is wb})
        text = (f"waits at {where(span)} for {wb.name}{list(index)} "
                f"{getattr(cmp, 'name', 'Ge')} {want}; the cell holds {int(slot.data[index])} "
                f"and no notify from any rank can change it")  # fmt: skip
        static = _notify_lines(w.state(me).call.machine)
        where_ = f"; the program's notify calls are at lines {static}" if static else \
            "; the program has no notify call"  # fmt: skip
        if not sent:
            return text + f" (no notify reached {wb.name} at all{where_})"
        return (text + f"; notifies on {wb.name} came from lines {lines}: " + "; ".join(sent[:6])
                + where_)  # fmt: skip

    w.block_until(Blocker(ready, describe, span, "wait"))
    clock = w.cell_clock.get((id(wb), me, index))
    if clock is not None:
        w.acquire(me, clock)
    return signal


def _notify_lines(machine) -> list[int]:
    """The lines of the program's `pld.system.notify` calls (executed or not)."""
    return sorted({e.span.line for f in machine.functions.values() for s in iter_stmts(f.body)
                   for root in stmt_exprs(s) for e in iter_expr(root)
                   if isinstance(e, OpCall) and e.op == "pld.system.notify"})  # fmt: skip


# ------------------------------------------------------------------ remote access


@kernel("pld.tile.remote_load", cost=_copy_cost)
def remote_load(opname, ctx: Context, rtype, target, peer, offsets, shape, valid_shape=None):
    w, me = _me()
    w.point()
    p = _peer(w, peer)
    box = _box(target, offsets, shape, p)
    wb, slot = _slot(w, target, p)
    _read(w, me, wb, p, slot.data, slot.data[box])
    data = slot.data[box].copy()
    valid = None if valid_shape is None else tuple(int(v) for v in valid_shape)
    return fresh(ctx, data, target.dtype, valid)


def _read(w: ranks.World, me: int, wb: WindowBuffer, owner: int, slot: np.ndarray,
          view: np.ndarray) -> None:  # fmt: skip
    """Record (and race-check) this rank's read of `view`, a window of `owner`'s slot."""
    w.read(me, wb, owner, ranks.flat_indices(slot, view), current_span())


def _read_local(w: ranks.World, me: int, t: TensorValue, view: np.ndarray) -> None:
    """The same for a read of `view`, a window of `t`, when `t` is bound to a window slot."""
    found = w.slot_of.get(id(t.buffer.root))
    if found is not None:
        wb, owner = found
        _read(w, me, wb, owner, wb.slots[owner].data, view)


def _write_remote(w, me, p, target, box, data, atomic) -> None:
    wb, slot = _slot(w, target, p)
    w.wrote(me, wb, p, box, current_span())
    if getattr(atomic, "name", "None_") == "Add":
        wide = slot.data[box].astype(np.float64) + np.asarray(data, np.float64)
        slot.data[box] = wide.astype(slot.data.dtype)
    else:
        slot.data[box] = data
    slot.written = True


@kernel("pld.tile.remote_store", cost=_copy_cost)
def remote_store(opname, ctx: Context, rtype, src, target, peer, offsets, atomic=None):
    w, me = _me()
    w.point()
    p = _peer(w, peer)
    box = _box(target, offsets, src.valid, p)
    data = src.materialize(ctx)[tuple(slice(0, v) for v in src.valid)]
    _write_remote(w, me, p, target, box, data, atomic)
    return target


def _regions(dst, src, dst_offsets, src_offsets, shape):
    dst_offsets = (0,) * dst.rank if dst_offsets is None else dst_offsets
    src_offsets = (0,) * src.rank if src_offsets is None else src_offsets
    shape = src.shape if shape is None else shape
    return dst_offsets, src_offsets, shape


@kernel("pld.tensor.put", cost=_copy_cost)
def put(opname, ctx: Context, rtype, dst, peer, src, dst_offsets=None, src_offsets=None, shape=None,
        atomic=None, chunk_rows=0, chunk_cols=0, pipeline=False):  # fmt: skip
    w, me = _me()
    w.point()
    p = _peer(w, peer)
    dst_off, src_off, shape = _regions(dst, src, dst_offsets, src_offsets, shape)
    sbox = _box(src, src_off, shape, part="the source ")
    dbox = _box(dst, dst_off, shape, p)
    _read_local(w, me, src, src.buffer.data[sbox])
    data = src.buffer.data[sbox].copy()
    _write_remote(w, me, p, dst, dbox, data, atomic)
    return dst


@kernel("pld.tensor.get", cost=_copy_cost)
def get(opname, ctx: Context, rtype, dst, peer, src, dst_offsets=None, src_offsets=None, shape=None,
        chunk_rows=0, chunk_cols=0, pipeline=False):  # fmt: skip
    w, me = _me()
    w.point()
    p = _peer(w, peer)
    dst_off, src_off, shape = _regions(dst, src, dst_offsets, src_offsets, shape)
    sbox = _box(src, src_off, shape, p)
    wb, slot = _slot(w, src, p)
    _read(w, me, wb, p, slot.data, slot.data[sbox])
    data = slot.data[sbox].copy()
    dbox = _box(dst, dst_off, shape, part="the destination ")
    found = w.slot_of.get(id(dst.buffer.root))
    if found is not None:
        w.wrote(me, found[0], found[1], dbox, current_span())
    dst.buffer.data[dbox] = data
    dst.buffer.written = True
    return dst


# ------------------------------------------------------------------ collectives


def _reduce(kind: str, arrays: list[np.ndarray], storage: np.dtype, dtype: str, ctx) -> np.ndarray:
    """The element-wise reduction in rank order 0, 1, ...: FP32 accumulation for floats
    (rounded once to the target dtype), exact wrap-around for integers."""
    is_float = np.issubdtype(np.dtype(storage), np.floating) or dtype in ("BF16", "FP16")
    acc = arrays[0].astype(np.float32 if is_float else np.int64)
    fn = {"Sum": np.add, "Max": np.maximum, "Min": np.minimum, "Prod": np.multiply}[kind]
    for a in arrays[1:]:
        acc = fn(acc, a.astype(acc.dtype))
    if is_float:
        return numerics.cast(acc, dtype, "rint", ctx.precision)
    return acc.astype(storage)


def _collective(kind: str, me: int, w: ranks.World, payload) -> ranks.Collective:
    """Arrive at this rank's next collective; returns it once every rank has arrived."""
    span = current_span()
    w.point()
    k = w.next_collective[me]
    w.next_collective[me] += 1
    if k == len(w.collectives):
        w.collectives.append(ranks.Collective(kind, span))
    c = w.collectives[k]
    if c.kind != kind:
        other = next(iter(c.arrived.values()))[0]
        raise OpFault("CollectiveMismatch", f"rank {me} calls {kind} at {where(span)} where "
                      f"another rank called {c.kind} at {where(other)} (collective #{k + 1})",
                      "every rank must call the same collectives in the same order")  # fmt: skip
    c.arrived[me] = (span, payload)

    def describe() -> str:
        missing = [r for r in range(w.size) if r not in c.arrived]
        return f"waits in {kind} at {where(span)} for rank(s) {ranks._ranks(missing)}"

    w.block_until(Blocker(lambda: len(c.arrived) == w.size, describe, span, "collective"))
    return c


def _finish(w: ranks.World, me: int, c: ranks.Collective, span) -> None:
    """Every rank's clock joins every other's; wait until all have taken their result."""
    for r in range(w.size):
        w.acquire(me, w.clock[r])
    c.done.add(me)
    w.block_until(
        Blocker(
            lambda: len(c.done) == w.size,
            lambda: f"leaves {c.kind} at {where(span)}",
            span,
            "collective",
        )
    )
    w.release(me)


def _whole(t: TensorValue) -> tuple:
    return tuple(slice(o, o + s) for o, s in zip(t.offset, t.shape))


def _store_result(w, me, t: TensorValue, box, data, span) -> None:
    found = w.slot_of.get(id(t.buffer.root))
    if found is not None:
        w.wrote(me, found[0], found[1], box, span)
    t.buffer.data[box] = data
    t.buffer.written = True


def _run_collective(kind: str, target, input_, payload, compute):
    """A collective: on a rank, arrive, wait for all, take this rank's result; on the host
    (PyPTO's host builtins, over pld.window views), once the ranks launched so far have
    finished, every rank's result at once. `input_`: the operands besides the target (one, a
    tuple, or None); `payload(t, i)` is what a rank contributes, `compute(t, i, all_, me, n)`
    the writes that make its result, [(tensor, box, data), ...]."""
    if LOCAL.rank is None:
        return _host_collective(kind, target, input_, payload, compute)
    w, me = _me()
    w.window_of(target)
    c = _collective(kind, me, w, payload(target, input_))
    span = c.arrived[me][0]
    all_ = [c.arrived[r][1] for r in range(w.size)]
    _same_shapes(all_)
    for t, box, data in compute(target, input_, all_, me, w.size):
        _store_result(w, me, t, box, data, span)
    _finish(w, me, c, span)
    return target


def _same_shapes(payloads: list) -> None:
    shapes = {_shape(p) for p in payloads if p is not None}
    if len(shapes) > 1:
        raise OpFault("CollectiveMismatch", "the ranks pass differently shaped tensors "
                      f"{sorted(shapes)}")  # fmt: skip


def _shape(p) -> tuple:
    return tuple(_shape(x) for x in p) if isinstance(p, tuple) else tuple(np.shape(p))


def _on(operand, rank: int):
    """A host operand as rank `rank` sees it (pld.window views are bound to its slot)."""
    if isinstance(operand, tuple):
        return tuple(_on(x, rank) for x in operand)
    return operand.on(rank) if isinstance(operand, WindowView) else operand


def _host_collective(kind: str, target, input_, payload, compute):
    if not isinstance(target, WindowView):
        raise OpFault("NotAWindow", "on the host, a collective takes pld.window(...) views")
    w = current_world()
    if w.pending:
        w.run()  # the ranks launched before the collective finish first
    on = [(target.on(r), _on(input_, r)) for r in range(w.size)]
    payloads = [payload(t, i) for t, i in on]
    _same_shapes(payloads)
    writes = [compute(t, i, payloads, r, w.size) for r, (t, i) in enumerate(on)]
    for t, box, data in (x for rank in writes for x in rank):
        t.buffer.data[box] = data
        t.buffer.written = True
    w.sync_all()
    return target


def _chunks(t: TensorValue, n: int) -> int:
    rows = t.shape[0]
    if rows % n:
        raise OpFault("CollectiveShape", f"the target's first dim {rows} is not a "
                      f"multiple of the rank count {n}")  # fmt: skip
    return rows // n


def _snapshot(v: TensorValue, ctx: Context | None = None) -> np.ndarray:
    """A copy of what `v` holds, as a rank contributes it to a collective on arrival: on a
    rank, a read of its window (checked against unordered writes like any other read)."""
    if LOCAL.rank is not None:
        _read_local(LOCAL.world, LOCAL.rank, v, v.buffer.data[_whole(v)])
    return (v.buffer.data[_whole(v)] if ctx is None else v.materialize(ctx)).copy()


def _whole_copy(t: TensorValue, i) -> np.ndarray:
    return _snapshot(t)


def _input_copy(ctx):
    return lambda t, i: _snapshot(i, ctx)


@kernel("pld.tensor.allreduce")
def allreduce(opname, ctx: Context, rtype, target, signal=None, op=None, mode="mesh",
              core_num=1):  # fmt: skip
    how = getattr(op, "name", "Sum")

    def compute(t, i, all_, me, n):
        return [(t, _whole(t), _reduce(how, all_, t.buffer.data.dtype, t.dtype, ctx))]

    return _run_collective("pld.tensor.allreduce", target, None, _whole_copy, compute)


@kernel("pld.tensor.reduce_scatter")
def reduce_scatter(opname, ctx: Context, rtype, target, signal, op=None):
    how = getattr(op, "name", "Sum")

    def compute(t, i, all_, me, n):
        k = _chunks(t, n)
        part = _reduce(how, [a[me * k:(me + 1) * k] for a in all_], t.buffer.data.dtype,
                       t.dtype, ctx)  # fmt: skip
        box = _whole(t)
        box = (slice(box[0].start + me * k, box[0].start + (me + 1) * k), *box[1:])
        return [(t, box, part)]

    return _run_collective("pld.tensor.reduce_scatter", target, None, _whole_copy, compute)


@kernel("pld.tensor.broadcast")
def broadcast(opname, ctx: Context, rtype, target, signal, root=0):
    def compute(t, i, all_, me, n):
        if not 0 <= int(root) < n:
            raise OpFault("BadPeer", f"root={root} is not a rank (ranks 0..{n - 1})")
        return [(t, _whole(t), all_[int(root)])]

    return _run_collective("pld.tensor.broadcast", target, None, _whole_copy, compute)


@kernel("pld.tensor.allgather")
def allgather(opname, ctx: Context, rtype, input, target, signal):
    def compute(t, i, all_, me, n):
        k = _chunks(t, n)
        if all_[me].shape[0] != k or all_[me].shape[1:] != t.shape[1:]:
            raise OpFault(
                "CollectiveShape",
                f"input {list(all_[me].shape)} "
                f"is not one of {n} chunks of the target {list(t.shape)}",
            )
        return [(t, _whole(t), np.concatenate(all_, axis=0))]

    return _run_collective("pld.tensor.allgather", target, input, _input_copy(ctx), compute)


@kernel("pld.tensor.all_to_all")
def all_to_all(opname, ctx: Context, rtype, input, target, signal):
    def compute(t, i, all_, me, n):
        k = _chunks(t, n)
        if all_[me].shape != tuple(t.shape):
            raise OpFault(
                "CollectiveShape",
                f"input {list(all_[me].shape)} and target {list(t.shape)} differ",
            )
        return [(t, _whole(t), np.concatenate([a[me * k : (me + 1) * k] for a in all_], axis=0))]

    return _run_collective("pld.tensor.all_to_all", target, input, _input_copy(ctx), compute)


@kernel("pld.tensor.all_to_all_v")
def all_to_all_v(opname, ctx: Context, rtype, input, target, signal, send_counts, recv_counts):
    """MPI_Alltoallv with fixed-capacity blocks (PyPTO's meaning): the targets are
    [n*cap, ...]; rank s's input rows [r*cap, (r+1)*cap) land in rank r's target rows
    [s*cap, (s+1)*cap), whatever the count, and rank r's recv_counts[s, 0] becomes
    min(send_counts[r] of rank s, cap). Rows past a count are sent too (stale, not zeroed)."""

    def payload(t, i):
        data, counts, _ = i
        return _snapshot(data, ctx), _snapshot(counts, ctx).reshape(-1)

    def compute(t, i, all_, me, n):
        cap = _chunks(t, n)
        data, counts = all_[me]
        if data.shape != tuple(t.shape):
            raise OpFault("CollectiveShape",
                          f"input {list(data.shape)} and target {list(t.shape)} differ")  # fmt: skip
        if counts.shape != (n,):
            raise OpFault("CollectiveShape", f"send_counts has {counts.size} entries for {n} "
                          "ranks (one per destination: [n] or [n, 1])")  # fmt: skip
        if (counts < 0).any():
            dest = int(np.argmax(counts < 0))
            raise OpFault("BadCount", f"send_counts[{dest}] is {int(counts[dest])} on rank {me}: "
                          "a row count cannot be negative")  # fmt: skip
        recv = i[2]
        if tuple(recv.shape) != (n, 1):
            raise OpFault("CollectiveShape", f"recv_counts is {list(recv.shape)}, not [{n}, 1]")
        got = np.concatenate([a[me * cap : (me + 1) * cap] for a, _ in all_], axis=0)
        sent = np.array([[min(int(c[me]), cap)] for _, c in all_], recv.buffer.data.dtype)
        return [(t, _whole(t), got), (recv, _whole(recv), sent)]

    return _run_collective("pld.tensor.all_to_all_v", target, (input, send_counts, recv_counts),
                           payload, compute)  # fmt: skip


@kernel("pld.tensor.barrier")
def barrier(opname, ctx: Context, rtype, signal):
    return _run_collective("pld.tensor.barrier", signal, None, lambda t, i: None,
                           lambda t, i, all_, me, n: [])  # fmt: skip


# ------------------------------------------------------------------ window access tracking

# Ops that look at a tensor's shape or make a view of it without reading its elements.
NO_READ = frozenset({"slice", "reshape", "dim", "set_validshape", "tile.set_validshape",
                     "tile.transpose_view"})  # fmt: skip


def _changed(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Elements whose bits differ (NaN stays NaN: not a write)."""
    bits = np.dtype(f"u{old.dtype.itemsize}")
    return old.view(bits) != new.view(bits)


def _read_window(name: str, t: TensorValue, named: dict) -> np.ndarray:
    """The elements of `t` an op reads: a load's window, a read's element, else `t`'s valid
    region (clipped to it: the op has run, so its arguments were in bounds)."""
    lo, ext = (0,) * t.rank, t.valid
    if name == "load":
        lo = tuple(int(o) for o in named["offsets"])
        want = named.get("valid_shape") or named.get("valid_shapes") or named["shapes"]
        ext = tuple(int(e) for e in want)
    elif name == "read":
        idx = tuple(int(i) for i in named["indices"])
        if len(idx) == 1 and t.rank > 1:
            idx = tuple(int(i) for i in np.unravel_index(idx[0], t.shape))
        lo, ext = idx, (1,) * t.rank
    box = []
    for o, start, n, v in zip(t.offset, lo, ext, t.valid):
        a = min(max(start, 0), v)
        box.append(slice(o + a, o + max(a, min(start + n, v))))
    return t.buffer.data[tuple(box)]


def _track(name: str, inner: Kernel) -> Kernel:
    """Wrap a kernel for the ranks' race checks: on a rank, the elements it reads of window
    slots are recorded (and checked against unordered writes), and its writes into slots are
    recorded (and checked) by comparing the slot before and after."""
    op = OPS[name]
    params = tuple(p.name for p in op.runtime_params)
    reads = name not in NO_READ

    def fn(ctx, rtype, *args, **attrs):
        w = LOCAL.world
        if w is None:
            return inner.fn(ctx, rtype, *args, **attrs)
        bound = [(i, a, w.slot_of[id(a.buffer.root)]) for i, a in enumerate(args)
                 if isinstance(a, TensorValue) and id(a.buffer.root) in w.slot_of]  # fmt: skip
        if not bound:
            return inner.fn(ctx, rtype, *args, **attrs)
        written = [(wb, r) for i, _, (wb, r) in bound if i == op.writes_arg]
        before = [(wb, r, wb.slots[r].data.copy()) for wb, r in written]
        out = inner.fn(ctx, rtype, *args, **attrs)
        if reads:
            named = dict(zip(params, args))
            for i, a, (wb, r) in bound:
                if i != op.writes_arg:
                    _read(w, LOCAL.rank, wb, r, wb.slots[r].data, _read_window(name, a, named))
        for wb, r, old in before:
            new = wb.slots[r].data
            changed = _changed(old, new)
            if changed.any():
                box = tuple(slice(0, d) for d in new.shape)
                w.wrote(LOCAL.rank, wb, r, box, current_span(), changed)
        return out

    return Kernel(name, fn, inner.cost)


TRACKED = {name: _track(name, KERNELS[name]) for name in OPS
           if not name.startswith("pld.") and name in KERNELS}  # fmt: skip
_USES_PLD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _uses_pld(program: Program) -> bool:
    """Whether a program can run on ranks: a window-bound parameter or a `pld` op anywhere."""
    got = _USES_PLD.get(program)
    if got is None:
        got = _USES_PLD[program] = any(
            any(isinstance(p.type, DistributedTensorType) for p in f.params)
            or any(isinstance(e, OpCall) and e.op.startswith("pld.")
                   for s in iter_stmts(f.body) for root in stmt_exprs(s) for e in iter_expr(root))
            for f in program.function_list
        )  # fmt: skip
    return got


KERNEL_OVERLAYS.append(lambda program: TRACKED if _uses_pld(program) else None)
PER_OP.append(lambda: LOCAL.world is not None)  # on a rank, every op's accesses are tracked
