"""The sequential meaning of `pl.spmd` blocks and manual task dependencies on the interpreter.

* SPMD: the blocks of `pl.spmd(n)` run one after another, block 0 first, in increasing index
  order. While block `b` runs, the execution context's `block_idx` is `b` (the innermost
  grid's when grids nest; 0 outside any grid), restored when the grid ends: the one block
  index every engine keeps, read by `pl.tile.get_block_idx()` in a function dispatched from
  the grid (the C backend keeps the same field, `ctx->block_idx`). Inside the grid's own body
  the frontend reads the block variable directly. `grid_blocks` is that loop.
* Barriers: a grid body with `pl.system.syncall()` statements runs phase by phase: every block
  runs phase 1 (block 0 first), then every block phase 2, ...; each block's locals survive the
  barrier (`run_phased`), buffers are shared.
* Tasks: every `Scope` with `as tid` is a task; its id is 1, 2, ... in the order tasks finish
  (program order), bound to `tid` once its body has run. 0 or less is "no producer" (PyPTO's
  invalid TaskId) and is skipped as a dependency. Program order runs every producer before its
  consumer, so each dependency is satisfied by construction; `check_deps` verifies that each one
  names a task that has finished (an id from an uninitialised array slot, or a made-up one, is
  a fault, not silently ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from pldsl.diagnostics import Span
from pldsl.execution.faults import fault
from pldsl.execution.memory import Context, TensorValue


def grid_blocks(ctx: Context, start: int, stop: int, step: int = 1) -> Iterator[int]:
    """The block indices of a grid, in order, each published as `ctx.block_idx` while its
    block runs; the enclosing block's index is restored when the grid ends (or fails)."""
    outer = ctx.block_idx
    try:
        for i in range(start, stop, step):
            ctx.block_idx = i
            yield i
    finally:
        ctx.block_idx = outer


def phases(body: tuple) -> list[tuple]:
    """A grid body cut at its `pl.system.syncall` barriers (Scope kind "syncall")."""
    out: list[list] = [[]]
    for s in body:
        if getattr(s, "kind", None) == "syncall":
            out.append([])
        else:
            out[-1].append(s)
    return [tuple(p) for p in out]


def run_phased(
    ctx: Context, env: dict, var: str, indices: range, phases: list, names: set, run_phase: Any
) -> None:
    """A grid with barriers: every block runs phase 1, then every block phase 2, ... Each
    block keeps its own locals across the barrier (the values it bound before are restored
    before its next phase); buffers are shared, so what any block wrote before a barrier is
    what every block reads after it."""
    saved: dict[int, dict] = {}
    for k, phase in enumerate(phases):
        blocks = grid_blocks(ctx, indices.start, indices.stop, indices.step)
        try:
            for i in blocks:
                env.update(saved.get(i, {}))
                env[var] = i
                run_phase(k, phase)
                saved[i] = {n: env[n] for n in names if n in env}
        finally:
            blocks.close()


class TaskLog:
    """Ids of the tasks of one run, in the order they finished."""

    __slots__ = ("finished",)

    def __init__(self) -> None:
        self.finished = 0

    def new_id(self) -> int:
        self.finished += 1
        return self.finished

    def check_deps(self, values: list[Any], span: Span) -> None:
        for value in values:
            for tid in _task_ids(value):
                if tid > self.finished:
                    raise fault(
                        "UnknownTask",
                        f"a dependency names task {tid}, but only {self.finished} task(s) "
                        "have been created",
                        span,
                        "a dependency must be the id of a task created earlier (`as tid`, "
                        "pl.system.task_dummy), or None",
                    )


def _task_ids(value: Any) -> list[int]:
    if isinstance(value, TensorValue):
        return [int(v) for v in np.asarray(value.view()).ravel()]
    return [int(value)]
