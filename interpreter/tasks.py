"""The sequential meaning of `pl.spmd` blocks and manual task dependencies on the interpreter.

* SPMD: the blocks of `pl.spmd(n)` run one after another, block 0 first, in increasing index
  order. While block `b` runs, `current_block_index()` returns `b` (the innermost grid's index
  when grids nest): an op kernel such as `pl.tile.get_block_idx()` in a function dispatched
  from the grid reads it from here. (Inside the grid's own body the frontend reads the block
  variable directly.)
* Tasks: every `Scope` with `as tid` is a task; its id is 1, 2, ... in the order tasks finish
  (program order), bound to `tid` once its body has run. 0 or less is "no producer" (PyPTO's
  invalid TaskId) and is skipped as a dependency. Program order runs every producer before its
  consumer, so each dependency is satisfied by construction; `check_deps` verifies that each one
  names a task that has finished (an id from an uninitialised array slot, or a made-up one, is
  a fault, not silently ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from pldsl.diagnostics import Span
from pldsl.execution.faults import fault
from pldsl.execution.memory import TensorValue

_BLOCKS: ContextVar[tuple[int, ...]] = ContextVar("pldsl_spmd_blocks", default=())


def current_block_index() -> int:
    """The index of the SPMD block running now (innermost grid); 0 outside any grid, as a
    kernel launched on one block sees."""
    blocks = _BLOCKS.get()
    return blocks[-1] if blocks else 0


@contextmanager
def in_grid() -> Iterator[None]:
    """A grid level for the duration of a `pl.spmd` loop (`enter_block` says which block)."""
    token = _BLOCKS.set(_BLOCKS.get() + (0,))
    try:
        yield
    finally:
        _BLOCKS.reset(token)


def enter_block(index: int) -> None:
    """Marks block `index` of the innermost grid as running."""
    blocks = _BLOCKS.get()
    _BLOCKS.set(blocks[:-1] + (index,))


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
