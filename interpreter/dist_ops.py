"""The interpreter's kernels for the `pld` ops (pldsl/ops/table_distributed.py), over the
simulated ranks of pldsl.interpreter.ranks, and the write hook that tracks which rank wrote
which window element (for the WindowRace check).

Every kernel that touches another rank's memory or waits is a scheduling point: it hands the
turn to the scheduler first, so other ranks may run in between.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from pldsl.execution import numerics
from pldsl.execution.memory import Context, OpFault, TensorValue, fresh
from pldsl.ir.opdefs import OPS

from . import ranks
from .machine import DEFERRED_OPS
from .ops import KERNELS, Kernel, _copy_cost, kernel
from .ranks import LOCAL, Blocker, WindowBuffer, WindowView, current_span, current_world, where

# ------------------------------------------------------------------ host side


@kernel("pld.world_size")
def world_size(opname, ctx: Context, rtype):
    return current_world("pld.world_size()").size


@kernel("pld.alloc_window_buffer")
def alloc_window_buffer(opname, ctx: Context, rtype, shape, dtype=None, name=""):
    w = current_world("pld.alloc_window_buffer")
    name_ = "UINT8" if dtype is None else dtype.name  # no dtype: a size in bytes
    return WindowBuffer(w, tuple(shape), name_, ctx.storage(name_), name)


@kernel("pld.window")
def window(opname, ctx: Context, rtype, buf, shape, dtype=None):
    if not isinstance(buf, WindowBuffer):
        raise OpFault("NotAWindow", "pld.window takes a pld.alloc_window_buffer result")
    shape = tuple(shape)
    have = int(np.prod(buf.shape)) * np.dtype(ctx.storage(buf.dtype)).itemsize
    if int(np.prod(shape)) * np.dtype(ctx.storage(dtype.name)).itemsize > have:
        raise OpFault("WindowTooLarge", f"pld.window {list(shape)} is larger than its buffer "
                      f"{list(buf.shape)}")  # fmt: skip
    typed = buf.typed(shape, dtype.name, ctx.storage(dtype.name))
    return WindowView(typed, shape, dtype.name)


DEFERRED_OPS.add("pld.launch")  # its call runs on the rank, later: not as an operand


@kernel("pld.launch")
def launch(opname, ctx: Context, rtype, device, call):
    current_world("a launch with device=").launch(int(device), call)


# ------------------------------------------------------------------ identity


@kernel("pld.get_comm_ctx")
def get_comm_ctx(opname, ctx: Context, rtype, t):
    current_world("pld.get_comm_ctx").window_of(t, "pld.get_comm_ctx")
    return 0


@kernel("pld.rank")
def rank(opname, ctx: Context, rtype, handle):
    return np.int32(ranks.my_rank("pld.rank"))


@kernel("pld.nranks")
def nranks(opname, ctx: Context, rtype, handle):
    return np.int32(current_world("pld.nranks").size)


# ------------------------------------------------------------------ helpers


def _me(what: str) -> tuple[ranks.World, int]:
    me = ranks.my_rank(what)
    return LOCAL.world, me


def _peer(w: ranks.World, peer, what: str) -> int:
    p = int(peer)
    if not 0 <= p < w.size:
        raise OpFault(
            "BadPeer",
            f"{what}: peer {p} is not a rank (ranks 0..{w.size - 1})",
            "a peer index is usually taken modulo the rank count",
        )
    return p


def _box(t: TensorValue, offsets, shape, what: str, peer: int | None = None) -> tuple:
    """The buffer index of [offsets, offsets+shape) of `t`; a fault when it leaves `t`."""
    offsets, shape = tuple(int(o) for o in offsets), tuple(int(s) for s in shape)
    bad = [i for i, (o, s, d) in enumerate(zip(offsets, shape, t.shape)) if o < 0 or o + s > d]
    if len(offsets) != t.rank or len(shape) != t.rank or bad:
        whose = f"rank {peer}'s " if peer is not None else ""
        raise OpFault(
            "RemoteOutOfWindow",
            f"{'the source ' if 'source' in what else ''}region offsets {list(offsets)} shape "
            f"{list(shape)} lies outside "
            f"{whose}window '{t.name.split('@')[0]}' of shape {list(t.shape)}",
            "remote accesses must stay inside the window: check the offsets and the shape",
        )
    return tuple(slice(o + b, o + b + s) for o, b, s in zip(t.offset, offsets, shape))


def _slot(w: ranks.World, t: TensorValue, rank: int, what: str) -> tuple[WindowBuffer, Any]:
    wb, _ = w.window_of(t, what)
    return wb, wb.slots[rank]


# ------------------------------------------------------------------ signals

_CMP = {"Eq": operator.eq, "Ne": operator.ne, "Gt": operator.gt, "Ge": operator.ge,
        "Lt": operator.lt, "Le": operator.le}  # fmt: skip


@kernel("pld.system.notify")
def notify(opname, ctx: Context, rtype, target, peer, offsets, value, op=None):
    mode = op
    w, me = _me("pld.system.notify")
    span = current_span()
    w.point()
    p = _peer(w, peer, "pld.system.notify")
    box = _box(target, offsets, (1,) * target.rank, "pld.system.notify", p)
    wb, slot = _slot(w, target, p, "pld.system.notify")
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
    w, me = _me("pld.system.wait")
    span = current_span()
    box = _box(signal, offsets, (1,) * signal.rank, "pld.system.wait")
    wb, slot = _slot(w, signal, me, "pld.system.wait")
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
    from pldsl.ir.nodes import OpCall
    from pldsl.ir.traversal import iter_expr, iter_stmts, stmt_exprs

    return sorted({e.span.line for f in machine.functions.values() for s in iter_stmts(f.body)
                   for root in stmt_exprs(s) for e in iter_expr(root)
                   if isinstance(e, OpCall) and e.op == "pld.system.notify"})  # fmt: skip


# ------------------------------------------------------------------ remote access


@kernel("pld.tile.remote_load", cost=_copy_cost)
def remote_load(opname, ctx: Context, rtype, target, peer, offsets, shape, valid_shape=None):
    w, me = _me("pld.tile.remote_load")
    w.point()
    p = _peer(w, peer, "pld.tile.remote_load")
    box = _box(target, offsets, shape, "pld.tile.remote_load", p)
    _, slot = _slot(w, target, p, "pld.tile.remote_load")
    data = slot.data[box].copy()
    valid = None if valid_shape is None else tuple(int(v) for v in valid_shape)
    return fresh(ctx, data, target.dtype, valid)


def _write_remote(w, me, p, target, box, data, atomic, what: str) -> None:
    wb, slot = _slot(w, target, p, what)
    w.wrote(me, wb, p, box, current_span())
    if getattr(atomic, "name", "None_") == "Add":
        wide = slot.data[box].astype(np.float64) + np.asarray(data, np.float64)
        slot.data[box] = wide.astype(slot.data.dtype)
    else:
        slot.data[box] = data
    slot.written = True


@kernel("pld.tile.remote_store", cost=_copy_cost)
def remote_store(opname, ctx: Context, rtype, src, target, peer, offsets, atomic=None):
    w, me = _me("pld.tile.remote_store")
    w.point()
    p = _peer(w, peer, "pld.tile.remote_store")
    box = _box(target, offsets, src.valid, "pld.tile.remote_store", p)
    _write_remote(w, me, p, target, box, src.materialize(ctx)[tuple(slice(0, v) for v in src.valid)],
                  atomic, "pld.tile.remote_store")  # fmt: skip
    return target


def _regions(dst, src, dst_offsets, src_offsets, shape):
    dst_offsets = (0,) * dst.rank if dst_offsets is None else dst_offsets
    src_offsets = (0,) * src.rank if src_offsets is None else src_offsets
    shape = src.shape if shape is None else shape
    return dst_offsets, src_offsets, shape


@kernel("pld.tensor.put", cost=_copy_cost)
def put(opname, ctx: Context, rtype, dst, peer, src, dst_offsets=None, src_offsets=None, shape=None,
        atomic=None, chunk_rows=0, chunk_cols=0, pipeline=False):  # fmt: skip
    w, me = _me("pld.tensor.put")
    w.point()
    p = _peer(w, peer, "pld.tensor.put")
    dst_off, src_off, shape = _regions(dst, src, dst_offsets, src_offsets, shape)
    sbox = _box(src, src_off, shape, "pld.tensor.put (source)")
    dbox = _box(dst, dst_off, shape, "pld.tensor.put", p)
    data = src.buffer.data[sbox].copy()
    _write_remote(w, me, p, dst, dbox, data, atomic, "pld.tensor.put")
    return dst


@kernel("pld.tensor.get", cost=_copy_cost)
def get(opname, ctx: Context, rtype, dst, peer, src, dst_offsets=None, src_offsets=None, shape=None,
        chunk_rows=0, chunk_cols=0, pipeline=False):  # fmt: skip
    w, me = _me("pld.tensor.get")
    w.point()
    p = _peer(w, peer, "pld.tensor.get")
    dst_off, src_off, shape = _regions(dst, src, dst_offsets, src_offsets, shape)
    sbox = _box(src, src_off, shape, "pld.tensor.get", p)
    _, slot = _slot(w, src, p, "pld.tensor.get")
    data = slot.data[sbox].copy()
    dbox = _box(dst, dst_off, shape, "pld.tensor.get (destination)")
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
    finished, every rank's result at once. `payload(t, i)` is what a rank contributes,
    `compute(t, all_, me, n)` its (box, data) result or None."""
    if LOCAL.rank is None:
        return _host_collective(kind, target, input_, payload, compute)
    w, me = _me(kind)
    w.window_of(target, kind)
    c = _collective(kind, me, w, payload(target, input_))
    span = c.arrived[me][0]
    _same_shapes(kind, [c.arrived[r][1] for r in range(w.size)])
    result = compute(target, [c.arrived[r][1] for r in range(w.size)], me, w.size)
    if result is not None:
        box, data = result
        _store_result(w, me, target, box, data, span)
    _finish(w, me, c, span)
    return target


def _same_shapes(kind: str, payloads: list) -> None:
    shapes = {tuple(np.shape(p)) for p in payloads if p is not None}
    if len(shapes) > 1:
        raise OpFault("CollectiveMismatch", f"{kind}: ranks pass differently shaped tensors "
                      f"{sorted(shapes)}")  # fmt: skip


def _host_collective(kind: str, target, input_, payload, compute):
    if not isinstance(target, WindowView):
        raise OpFault("NotAWindow", f"{kind} on the host takes pld.window(...) views")
    w = current_world(kind)
    if w.pending:
        w.run()  # the ranks launched before the collective finish first
    on = [(target.on(r), input_.on(r) if isinstance(input_, WindowView) else input_)
          for r in range(w.size)]  # fmt: skip
    payloads = [payload(t, i) for t, i in on]
    _same_shapes(kind, payloads)
    results = [compute(t, payloads, r, w.size) for r, (t, _) in enumerate(on)]
    for (t, _), result in zip(on, results):
        if result is not None:
            box, data = result
            t.buffer.data[box] = data
            t.buffer.written = True
    w.sync_all()
    return target


def _chunks(t: TensorValue, n: int, kind: str) -> int:
    rows = t.shape[0]
    if rows % n:
        raise OpFault("CollectiveShape", f"{kind}: the target's first dim {rows} is not a "
                      f"multiple of the rank count {n}")  # fmt: skip
    return rows // n


def _whole_copy(t: TensorValue, i) -> np.ndarray:
    return t.buffer.data[_whole(t)].copy()


def _input_copy(ctx):
    return lambda t, i: i.materialize(ctx).copy()


@kernel("pld.tensor.allreduce")
def allreduce(opname, ctx: Context, rtype, target, signal=None, op=None, mode="mesh",
              core_num=1):  # fmt: skip
    how = getattr(op, "name", "Sum")

    def compute(t, all_, me, n):
        return _whole(t), _reduce(how, all_, t.buffer.data.dtype, t.dtype, ctx)

    return _run_collective("pld.tensor.allreduce", target, None, _whole_copy, compute)


@kernel("pld.tensor.reduce_scatter")
def reduce_scatter(opname, ctx: Context, rtype, target, signal, op=None):
    how = getattr(op, "name", "Sum")

    def compute(t, all_, me, n):
        k = _chunks(t, n, "pld.tensor.reduce_scatter")
        part = _reduce(how, [a[me * k:(me + 1) * k] for a in all_], t.buffer.data.dtype,
                       t.dtype, ctx)  # fmt: skip
        box = _whole(t)
        box = (slice(box[0].start + me * k, box[0].start + (me + 1) * k), *box[1:])
        return box, part

    return _run_collective("pld.tensor.reduce_scatter", target, None, _whole_copy, compute)


@kernel("pld.tensor.broadcast")
def broadcast(opname, ctx: Context, rtype, target, signal, root=0):
    def compute(t, all_, me, n):
        if not 0 <= int(root) < n:
            raise OpFault("BadPeer", f"pld.tensor.broadcast root={root} is not a rank")
        return _whole(t), all_[int(root)]

    return _run_collective("pld.tensor.broadcast", target, None, _whole_copy, compute)


@kernel("pld.tensor.allgather")
def allgather(opname, ctx: Context, rtype, input, target, signal):
    def compute(t, all_, me, n):
        k = _chunks(t, n, "pld.tensor.allgather")
        if all_[me].shape[0] != k or all_[me].shape[1:] != t.shape[1:]:
            raise OpFault(
                "CollectiveShape",
                f"pld.tensor.allgather: input {list(all_[me].shape)} "
                f"is not one of {n} chunks of the target {list(t.shape)}",
            )
        return _whole(t), np.concatenate(all_, axis=0)

    return _run_collective("pld.tensor.allgather", target, input, _input_copy(ctx), compute)


@kernel("pld.tensor.all_to_all")
def all_to_all(opname, ctx: Context, rtype, input, target, signal):
    def compute(t, all_, me, n):
        k = _chunks(t, n, "pld.tensor.all_to_all")
        if all_[me].shape != tuple(t.shape):
            raise OpFault(
                "CollectiveShape",
                f"pld.tensor.all_to_all: input {list(all_[me].shape)} "
                f"and target {list(t.shape)} differ",
            )
        return _whole(t), np.concatenate([a[me * k : (me + 1) * k] for a in all_], axis=0)

    return _run_collective("pld.tensor.all_to_all", target, input, _input_copy(ctx), compute)


@kernel("pld.tensor.barrier")
def barrier(opname, ctx: Context, rtype, signal):
    return _run_collective("pld.tensor.barrier", signal, None, lambda t, i: None,
                           lambda t, all_, me, n: None)  # fmt: skip


# ------------------------------------------------------------------ window write tracking


def _changed(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Elements whose bits differ (NaN stays NaN: not a write)."""
    bits = np.dtype(f"u{old.dtype.itemsize}")
    return old.view(bits) != new.view(bits)


def _track_writes(name: str, inner) -> Kernel:
    """Wrap a kernel that writes a tensor in place: on a rank, writes into window slots are
    recorded (and checked for races) by comparing the slot before and after."""

    def fn(ctx, rtype, *args, **attrs):
        w = LOCAL.world
        if w is None:
            return inner.fn(ctx, rtype, *args, **attrs)
        slots = [w.slot_of[id(a.buffer.root)] for a in args
                 if isinstance(a, TensorValue) and id(a.buffer.root) in w.slot_of]  # fmt: skip
        before = [(wb, r, wb.slots[r].data.copy()) for wb, r in slots]
        out = inner.fn(ctx, rtype, *args, **attrs)
        for wb, r, old in before:
            new = wb.slots[r].data
            changed = _changed(old, new)
            if changed.any():
                box = tuple(slice(0, d) for d in new.shape)
                w.wrote(LOCAL.rank, wb, r, box, current_span(), changed)
        return out

    return Kernel(name, fn, inner.cost)


for _name, _op in list(OPS.items()):
    if _op.writes_arg is not None and not _name.startswith("pld.") and _name in KERNELS:
        KERNELS[_name] = _track_writes(_name, KERNELS[_name])
