"""The sequential meaning of `pl.spmd` blocks and manual task dependencies on the interpreter.

* SPMD: the blocks of `pl.spmd(n)` run one after another, block 0 first, in increasing index
  order. While block `b` runs, the execution context's `block_idx` is `b` (the innermost
  grid's when grids nest; 0 outside any grid), restored when the grid ends: the one block
  index every engine keeps, read by `pl.tile.get_block_idx()` in a function dispatched from
  the grid (the C backend keeps the same field, `ctx->block_idx`). Inside the grid's own body
  the frontend reads the block variable directly. `grid_blocks` is that loop.
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
