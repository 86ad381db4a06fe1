"""N simulated ranks in one process: window memory, notify/wait, collectives, and the checks
that need the ranks' interleaving (deadlock, unordered window writes, skipped collectives).

How a distributed program runs here:

* A host function allocates window buffers (`pld.alloc_window_buffer`: one zero-filled slot per
  rank) and launches calls on ranks (`f(..., device=r)`, captured as `pld.launch`). A launch
  evaluates its arguments at once and queues the call; when the host function returns, every
  queued rank runs to completion (`World.run`), then the host function's caller continues.
* Each rank runs in its own thread, but only one thread runs at a time: a rank runs until it
  reaches a scheduling point (every `pld` op: notify, wait, remote access, collective), then the
  scheduler picks the next rank. `order="fixed"` (the default) takes the ranks round-robin
  from the one after the last, so a run is reproducible; `seed=N` picks at random with that
  seed, exploring other interleavings.
* A wait no rank can satisfy any more, or a collective some rank never reaches, is a
  `Deadlock` / `CollectiveSkipped` fault naming lines and ranks. Two ranks writing the same
  window element, or one writing an element another reads, with no notify/wait or collective
  between them is a `WindowRace` fault (vector clocks: a notify carries the writer's clock to
  the signal cell, a successful wait takes it; a collective joins every rank's clock). Every
  element records its last writer and, per rank, that rank's last read (its clock then and
  the line); signal cells touched by notify and wait are synchronisation, not data.

The options come from `world(size, seed=...)` (a context manager), `run(...)` below,
`pldsl pypto --ranks N --seed S`, or a PyPTO `DistributedConfig(device_ids=[...])`.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pldsl.diagnostics import NO_SPAN, Span
from pldsl.execution import numerics
from pldsl.execution.faults import RuntimeFault, fault
from pldsl.execution.memory import Buffer, OpFault, TensorValue

MAX_SWITCHES = 200_000  # scheduling points in one run before a livelock is reported


@dataclass(frozen=True)
class Options:
    size: int | None = None
    seed: int | None = None  # None: the fixed round-robin order
    forced: bool = False  # the size was given from outside (`--ranks N`): files cannot change it


_OPTIONS: ContextVar[Options] = ContextVar("pldsl_ranks", default=Options())  # noqa: B039 (frozen)
_HOST: ContextVar[World | None] = ContextVar("pldsl_ranks_world", default=None)


@contextlib.contextmanager
def world(size: int | None = None, seed: int | None = None, forced: bool = False
          ) -> Iterator[Options]:  # fmt: skip
    """Distributed programs run inside the block on `size` ranks (a given size wins over an
    outer one; None keeps it), interleaved in the fixed order or by `seed`. `forced`: inner
    blocks (a file's own DistributedConfig) keep this size."""
    outer = _OPTIONS.get()
    if outer.forced:
        size = None
    opts = Options(size if size is not None else outer.size,
                   seed if seed is not None else outer.seed, forced or outer.forced)  # fmt: skip
    token = _OPTIONS.set(opts)
    try:
        yield opts
    finally:
        _OPTIONS.reset(token)


def options() -> Options:
    return _OPTIONS.get()


def run(program: Any, entry: str, *args: Any, ranks: int, seed: int | None = None,
        **kw: Any) -> Any:  # fmt: skip
    """`interpreter.run` of a host entry whose launches run on `ranks` simulated ranks."""
    from pldsl import interpreter

    with world(ranks, seed):
        return interpreter.run(program, entry, *args, **kw)


# ------------------------------------------------------------------ rank-side state


class _Local(threading.local):
    rank: int | None = None
    world: World | None = None


LOCAL = _Local()


def current_world() -> World:
    """The world of the running rank, or of the host function (created on first use). Its
    faults are raised inside op kernels, which prefix the op's name."""
    w = LOCAL.world or _HOST.get()
    if w is None:
        size = _OPTIONS.get().size
        if size is None:
            raise OpFault(
                "NoRanks",
                "no rank count was given",
                "pass --ranks N to pldsl pypto, DistributedConfig(device_ids=[...]) to "
                "compile(), or run inside pldsl.interpreter.ranks.world(N)",
            )
        w = World(size, _OPTIONS.get().seed)
        _HOST.set(w)
    return w


def my_rank() -> int:
    if LOCAL.rank is None:
        raise OpFault("NotOnRank", "runs only inside a rank's program (a call with device=r)")
    return LOCAL.rank


def current_span() -> Span:
    """The source span of the op running now (read from the interpreter's frames: both the
    plain path and the compiled closures hold the OpCall node as `e`)."""
    from pldsl.ir.nodes import OpCall

    f = sys._getframe(1)
    while f is not None:
        e = f.f_locals.get("e")
        if isinstance(e, OpCall):
            return e.span
        f = f.f_back
    return NO_SPAN


def where(span: Span) -> str:
    return f"line {span.line}" if span.line else "an unknown line"


# ------------------------------------------------------------------ windows


class WindowBuffer:
    """`pld.alloc_window_buffer`: one slot per rank, with who last wrote each element."""

    def __init__(self, world: World, shape: tuple, dtype: str, storage: np.dtype, name: str):
        self.shape, self.dtype, self.name = tuple(shape), dtype, name or "window"
        self.slots = [Buffer(np.zeros(self.shape, storage), dtype, f"{self.name}@rank{r}")
                      for r in range(world.size)]  # fmt: skip
        self.writer = [np.full(self.shape, -1, np.int32) for _ in range(world.size)]
        self.epoch = [np.zeros(self.shape, np.int64) for _ in range(world.size)]
        self.line = [np.zeros(self.shape, np.int32) for _ in range(world.size)]
        # (owner, reader) -> (the reader's epoch at its last read of each element, 0: never;
        # that read's line), made on the reader's first read of the owner's slot
        self.reads: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.world, self.views = world, {}
        for r, b in enumerate(self.slots):
            world.slot_of[id(b)] = (self, r)

    def typed(self, shape: tuple, dtype: str, storage: np.dtype) -> WindowBuffer:
        """This buffer seen as `shape` of `dtype`: itself, or (a byte buffer, PyPTO's
        `alloc_window_buffer(nbytes)`) one typed buffer made on its first view."""
        if (tuple(shape), dtype) == (self.shape, self.dtype):
            return self
        if self.dtype != "UINT8" or (self.views and (tuple(shape), dtype) not in self.views):
            raise OpFault("WindowView", f"a {list(shape)} {dtype} view of a {list(self.shape)} "
                          f"{self.dtype} buffer: the simulator views a buffer with its own shape "
                          "and dtype (a byte buffer: with one shape and dtype)")  # fmt: skip
        key = (tuple(shape), dtype)
        if key not in self.views:
            self.views[key] = WindowBuffer(self.world, shape, dtype, storage, self.name)
        return self.views[key]

    def read_record(self, owner: int, reader: int) -> tuple[np.ndarray, np.ndarray]:
        got = self.reads.get((owner, reader))
        if got is None:
            got = self.reads[(owner, reader)] = (np.zeros(self.shape, np.int64),
                                                 np.zeros(self.shape, np.int32))  # fmt: skip
        return got

    def element(self, flat: int) -> list[int]:
        return [int(i) for i in np.unravel_index(flat, self.shape)]


@dataclass
class WindowView:
    """`pld.window(buf, shape, dtype)` on the host: bound to a rank's slot by `device=r`."""

    buffer: WindowBuffer
    shape: tuple
    dtype: str

    def on(self, rank: int) -> TensorValue:
        return TensorValue(self.buffer.slots[rank], (0,) * len(self.shape), self.shape)


# ------------------------------------------------------------------ scheduling


@dataclass
class Blocker:
    """Why a rank cannot run: a predicate over shared state, and how to describe it."""

    ready: Callable[[], bool]
    describe: Callable[[], str]
    span: Span
    kind: str  # "wait" | "collective"


@dataclass
class RankState:
    rank: int
    call: Any  # a DeferredCall
    state: str = "ready"  # ready | blocked | done
    blocker: Blocker | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None


class _Abort(BaseException):
    """Unwinds a rank's thread when the run is abandoned."""


@dataclass
class Collective:
    kind: str
    span: Span
    arrived: dict = field(default_factory=dict)  # rank -> (span, payload)
    done: set = field(default_factory=set)


class World:
    """The ranks of one host function call, their window memory and their clocks."""

    def __init__(self, size: int, seed: int | None) -> None:
        if size < 1:
            raise OpFault("NoRanks", f"the rank count must be at least 1, got {size}")
        self.size, self.seed = size, seed
        self.rng = random.Random(seed) if seed is not None else None
        self.slot_of: dict[int, tuple[WindowBuffer, int]] = {}
        self.pending: list[tuple[int, Any]] = []
        self.launch_depth: int | None = None
        self.ranks: list[RankState] = []
        self.cv = threading.Condition()
        self.turn: int | None = None
        self.abort = False
        self.clock = [np.zeros(size, np.int64) for _ in range(size)]
        for r in range(size):
            self.clock[r][r] = 1
        self.cell_clock: dict[tuple, np.ndarray] = {}
        self.notifies: list[tuple[int, int, WindowBuffer, tuple, Span]] = []
        self.collectives: list[Collective] = []
        self.next_collective = [0] * size
        self.switches = 0

    # ------------------------------------------------------------- launching
    def launch(self, rank: int, call: Any) -> None:
        if not 0 <= rank < self.size:
            raise OpFault("BadDevice", f"device={rank} is not a rank of this run "
                          f"(ranks 0..{self.size - 1})")  # fmt: skip
        if any(r == rank for r, _ in self.pending):
            raise OpFault(
                "BadDevice",
                f"rank {rank} is launched twice by one host call",
                "launch each rank once: for r in pl.range(pld.world_size())",
            )
        call.args = [a.on(rank) if isinstance(a, WindowView) else a for a in call.args]
        if self.launch_depth is None:
            self.launch_depth = call.machine.depth
        self.pending.append((rank, call))

    def window_of(self, t: TensorValue) -> tuple[WindowBuffer, int]:
        found = self.slot_of.get(id(t.buffer.root))
        if found is None:
            raise OpFault(
                "NotAWindow",
                f"'{t.name}' is not bound to a window buffer",
                "pass the pld.window(...) view the host launched this rank with",
            )
        return found

    # ------------------------------------------------------------- running
    def state(self, rank: int) -> RankState:
        return next(s for s in self.ranks if s.rank == rank)

    def sync_all(self) -> None:
        """Everything any rank did so far happens before what comes next (the host waited for
        all ranks: a new batch of launches, a host collective)."""
        joined = np.maximum.reduce(self.clock)
        for r in range(self.size):
            self.clock[r] = joined.copy()
            self.clock[r][r] += 1

    def run(self) -> None:
        """Run every launched rank to completion, interleaved at scheduling points."""
        self.sync_all()
        self.abort, self.turn = False, None  # a host function may run several batches
        self.ranks = [RankState(r, c) for r, c in sorted(self.pending, key=lambda p: p[0])]
        self.pending = []
        for st in self.ranks:
            st.thread = threading.Thread(target=self._body, args=(st,), daemon=True,
                                         name=f"pldsl-rank-{st.rank}")  # fmt: skip
            st.thread.start()
        last = -1
        try:
            while True:
                live = [s for s in self.ranks if s.state != "done"]
                if not live:
                    return
                ready = [s for s in live if s.state == "ready" or s.blocker.ready()]
                if not ready:
                    raise self._stuck(live)
                st = self._pick(ready, last)
                last = st.rank
                self.switches += 1
                if self.switches > MAX_SWITCHES:
                    raise fault(
                        "Livelock",
                        f"the ranks passed {MAX_SWITCHES} scheduling points without finishing",
                        st.blocker.span if st.blocker else NO_SPAN,
                    )
                self._resume(st)
                if st.error is not None:
                    raise st.error
        finally:
            self._stop()

    def _pick(self, ready: list[RankState], last: int) -> RankState:
        if self.rng is not None:
            return self.rng.choice(ready)
        return min(ready, key=lambda s: (s.rank - last - 1) % self.size)

    def _resume(self, st: RankState) -> None:
        with self.cv:
            st.state, st.blocker = "running", None
            self.turn = st.rank
            self.cv.notify_all()
            while self.turn is not None:
                self.cv.wait()

    def _body(self, st: RankState) -> None:
        LOCAL.rank, LOCAL.world = st.rank, self
        try:
            self._await_turn(st)
            with numerics.quiet():  # NumPy's error state is per thread
                st.call.run()
        except _Abort:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the host thread
            st.error = _on_rank(exc, st.rank)
        finally:
            with self.cv:
                st.state = "done"
                self.turn = None
                self.cv.notify_all()

    def _await_turn(self, st: RankState) -> None:
        with self.cv:
            while self.turn != st.rank and not self.abort:
                self.cv.wait()
        if self.abort:
            raise _Abort()

    def point(self, blocker: Blocker | None = None) -> None:
        """A scheduling point of the running rank: hand the turn back, wait for it again."""
        st = self.state(LOCAL.rank)
        with self.cv:
            st.state, st.blocker = ("blocked", blocker) if blocker else ("ready", None)
            self.turn = None
            self.cv.notify_all()
        self._await_turn(st)

    def block_until(self, blocker: Blocker) -> None:
        self.point(None)
        while not blocker.ready():
            self.point(blocker)

    def _stop(self) -> None:
        with self.cv:
            self.abort = True
            self.cv.notify_all()
        for st in self.ranks:
            if st.thread is not None:
                st.thread.join()

    # ------------------------------------------------------------- diagnostics
    def _stuck(self, live: list[RankState]) -> RuntimeFault:
        done = [s.rank for s in self.ranks if s.state == "done"]
        coll = [s for s in live if s.blocker.kind == "collective"]
        if coll and done:
            c = self.collectives[self.next_collective[coll[0].rank] - 1]
            waiting = sorted(c.arrived)
            skipped = [r for r in range(self.size) if r not in c.arrived and r in done]
            notes = [f"rank {r} finished its program without calling it" for r in skipped]
            branch = _enclosing_if(self.state(waiting[0]).call.machine, c.span)
            if branch is not None:
                notes.append(
                    f"the call is inside the `if` at line {branch.line}: its condition "
                    "differs across ranks, so some ranks skip the collective"
                )
            return fault(
                "CollectiveSkipped",
                f"{c.kind} at {where(c.span)} is called by rank(s) {_ranks(waiting)} but never "
                f"by rank(s) {_ranks(skipped)}: the callers wait forever",
                c.span,
                "every rank must call the same collectives in the same order",
                notes,
            )
        first = live[0]
        notes = [f"rank {s.rank}: {s.blocker.describe()}" for s in live]
        if done:
            notes.append(f"rank(s) {_ranks(done)} finished")
        return fault(
            "Deadlock",
            f"no rank can make progress: rank(s) {_ranks([s.rank for s in live])} wait "
            f"forever ({first.blocker.kind} at {where(first.blocker.span)})",
            first.blocker.span,
            "every wait needs a matching notify (same cell, enough value) from some rank",
            notes,
        )

    # ------------------------------------------------------------- clocks and races
    def release(self, rank: int) -> np.ndarray:
        """This rank's clock as a notify publishes it (then its own epoch moves on)."""
        sent = self.clock[rank].copy()
        self.clock[rank][rank] += 1
        return sent

    def acquire(self, rank: int, clock: np.ndarray) -> None:
        np.maximum(self.clock[rank], clock, out=self.clock[rank])

    def wrote(self, writer: int, wb: WindowBuffer, owner: int, box: tuple, span: Span,
              mask: np.ndarray | None = None) -> None:  # fmt: skip
        """Record that `writer` wrote `box` of `owner`'s slot; a WindowRace fault when another
        rank wrote or read an element of it with no ordering (notify/wait, collective) between."""
        who, epoch, line = wb.writer[owner][box], wb.epoch[owner][box], wb.line[owner][box]
        sel = np.ones(who.shape, bool) if mask is None else mask
        clock = self.clock[writer]
        prior = sel & (who >= 0) & (who != writer)
        if prior.any():
            unordered = prior & (clock[np.where(prior, who, 0)] < epoch)
            if unordered.any():
                idx, elem = _first_element(unordered, box)
                other, other_line = int(who[idx]), int(line[idx])
                raise OpFault(
                    "WindowRace",
                    f"rank {writer} writes {wb.name}{elem} of {_whose(owner, writer)} window, "
                    f"which rank {other} wrote at line {other_line} with nothing ordering the "
                    "two writes",
                    "order them: the first writer notifies, the second waits on that signal "
                    "(or a barrier between them)",
                    (f"{int(unordered.sum())} element(s) of this write race with rank {other}",),
                )
        for (slot, reader), (seen, at) in wb.reads.items():
            if slot != owner or reader == writer:
                continue
            unordered = sel & (seen[box] > clock[reader])
            if unordered.any():
                idx, elem = _first_element(unordered, box)
                raise OpFault(
                    "WindowRace",
                    f"rank {writer} writes {wb.name}{elem} of {_whose(owner, writer)} window, "
                    f"which rank {reader} read at line {int(at[box][idx])} with nothing "
                    "ordering the read before the write",
                    "order them: the reader notifies after its read, the writer waits on that "
                    "signal before writing (or a barrier between them)",
                    (
                        f"{int(unordered.sum())} element(s) of this write race with rank "
                        f"{reader}'s read",
                    ),  # fmt: skip
                )
        who[sel] = writer
        epoch[sel] = clock[writer]
        line[sel] = span.line or 0

    def read(self, reader: int, wb: WindowBuffer, owner: int, flat: np.ndarray,
             span: Span) -> None:  # fmt: skip
        """Record that `reader` read the elements `flat` (flat indices) of `owner`'s slot; a
        WindowRace fault when another rank wrote one of them with nothing ordering that write
        before this read."""
        if flat.size == 0:
            return
        who = wb.writer[owner].reshape(-1)[flat]
        prior = (who >= 0) & (who != reader)
        if prior.any():
            epoch = wb.epoch[owner].reshape(-1)[flat]
            unordered = prior & (self.clock[reader][np.where(prior, who, 0)] < epoch)
            if unordered.any():
                k = int(np.argmax(unordered))
                other = int(who[k])
                other_line = int(wb.line[owner].reshape(-1)[flat[k]])
                raise OpFault(
                    "WindowRace",
                    f"rank {reader} reads {wb.name}{wb.element(int(flat[k]))} of "
                    f"{_whose(owner, reader)} window, which rank {other} wrote at line "
                    f"{other_line} with nothing ordering the write before the read",
                    "order them: the writer notifies after its write, the reader waits on "
                    "that signal before reading (or a barrier between them)",
                    (
                        f"{int(unordered.sum())} element(s) of this read race with rank "
                        f"{other}'s write",
                    ),  # fmt: skip
                )
        seen, at = wb.read_record(owner, reader)
        seen.reshape(-1)[flat] = self.clock[reader][reader]
        at.reshape(-1)[flat] = span.line or 0


def _whose(owner: int, rank: int) -> str:
    return "its own" if owner == rank else f"rank {owner}'s"


def flat_indices(slot: np.ndarray, view: np.ndarray) -> np.ndarray:
    """The flat indices into `slot` (a C-contiguous array) of the elements of `view`, an
    array sharing its memory (a window of it, or of a reshaped view of it)."""
    item = slot.itemsize
    start = (view.__array_interface__["data"][0] - slot.__array_interface__["data"][0]) // item
    flat = np.full(view.shape, start, np.int64)
    for k, (n, stride) in enumerate(zip(view.shape, view.strides)):
        axis = [1] * view.ndim
        axis[k] = n
        flat += (np.arange(n, dtype=np.int64) * (stride // item)).reshape(axis)
    return flat.reshape(-1)


def _ranks(rs: list[int]) -> str:
    return ", ".join(str(r) for r in rs) or "none"


def _on_rank(exc: BaseException, rank: int) -> BaseException:
    if isinstance(exc, RuntimeFault):
        from pldsl.execution.faults import with_note

        return with_note(exc, f"on rank {rank}")
    return exc


def _enclosing_if(machine: Any, span: Span) -> Span | None:
    """The innermost `if` statement whose branches hold the op at `span`, if any."""
    from pldsl.ir.nodes import If
    from pldsl.ir.traversal import child_bodies, iter_expr, iter_stmts, stmt_exprs

    def holds(stmts) -> bool:
        return any(getattr(e, "span", None) == span
                   for s in iter_stmts(stmts) for root in stmt_exprs(s)
                   for e in iter_expr(root))  # fmt: skip

    def search(stmts) -> Span | None:
        for s in stmts:
            for body in child_bodies(s):
                if holds(body):
                    return search(body) or (s.span if isinstance(s, If) else None)
        return None

    for fn in machine.functions.values():
        found = search(fn.body)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ the host side


def _after_invoke(machine: Any, ok: bool) -> None:
    w = _HOST.get()
    if w is None or w.launch_depth is None or machine.depth >= w.launch_depth:
        if w is not None and machine.depth == 0 and LOCAL.world is None:
            _HOST.set(None)  # the outermost call is over: the next run starts afresh
        return
    _HOST.set(None)
    if ok and w.pending:
        w.run()


def _first_element(found: np.ndarray, box: tuple[slice, ...]) -> tuple[tuple[int, ...], list[int]]:
    """The first True entry of `found` (a mask over the window `box`): its index in the mask and
    its element of the whole window, for a race message."""
    idx = tuple(int(i[0]) for i in np.nonzero(found))
    return idx, [b.start + i for b, i in zip(box, idx)]
