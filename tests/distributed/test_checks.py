"""The checks the simulated ranks make, each finding a planted bug with its lines and ranks
and staying quiet on the correct version; and notify/wait ordering under seeded
interleavings."""

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import check_kernels as C  # noqa: E402
from pldsl.interpreter.ranks import world  # noqa: E402

from pldsl.diagnostics import PldslError  # noqa: E402

SOURCE = Path(C.__file__).read_text().splitlines()


def line_of(text: str, after: int = 0) -> int:
    """The 1-based line of the first source line containing `text` (after line `after`)."""
    return next(i + 1 for i, s in enumerate(SOURCE) if i + 1 > after and text in s)


def func_line(name: str) -> int:
    return next(
        n.lineno for n in ast.parse("\n".join(SOURCE)).body if getattr(n, "name", "") == name
    )


def inputs(n: int) -> np.ndarray:
    return np.arange(n * C.SIZE, dtype=np.float32).reshape(n, 1, C.SIZE)


def run(make, bug: int, n: int = 3, seed=None) -> np.ndarray:
    x = inputs(n)
    y = np.zeros_like(x)
    with world(n, seed):
        make(bug)(x, y)
    return y


def fails(make, bug: int, n: int = 3, seed=None):
    with pytest.raises(PldslError) as err:
        run(make, bug, n, seed)
    return err.value.diagnostic


def test_deadlock_names_the_wait_the_ranks_and_the_notifies():
    d = fails(C.ring, 1)
    start = func_line("ring")
    wait, notify = line_of("expected=2", start), line_of("pld.system.notify", start)
    assert d.rule == "Deadlock" and d.span.line == wait
    assert "rank(s) 0, 1, 2 wait forever" in d.message
    text = " ".join(d.notes)
    assert f"waits at line {wait}" in text and f"came from lines [{notify}]" in text
    assert "the cell holds 1" in text


def test_a_wait_on_the_wrong_cell_is_a_deadlock_showing_where_notifies_went():
    d = fails(C.ring, 2, n=2)
    assert d.rule == "Deadlock" and d.span.line == line_of("offsets=[1, 0], expected=1")
    assert "window[1, 0] Ge 1; the cell holds 0" in d.notes[0]
    assert "cell [0, 0]" in d.notes[0]


def race_lines(d, read: int, write: int) -> str:
    """Which side the race was found on; asserts the diagnostic names both lines: the span at
    one access, the message the other's line."""
    assert d.rule == "WindowRace"
    if d.span.line == read:
        assert f"wrote at line {write} with nothing ordering the write before the read" in d.message
        return "read"
    assert d.span.line == write
    assert f"read at line {read} with nothing ordering the read before the write" in d.message
    return "write"


def test_a_missing_wait_before_a_local_read_is_a_race_in_every_interleaving():
    start = func_line("ring")
    read, write = line_of("back = pl.load(data", start), line_of("remote_store(t, data", start)
    found = {race_lines(fails(C.ring, 3, n, seed), read, write)
             for n in (2, 3) for seed in (None, 0, 1, 2, 3)}  # fmt: skip
    assert found == {"read", "write"}  # seen from both sides, depending on the order


def test_the_read_race_names_the_ranks_and_the_element():
    d = fails(C.ring, 3, n=3)  # the fixed order: rank 2 stores into rank 0's slot first
    assert "pl.load: rank 0 reads window[0, 0] of its own window, which rank 2 wrote" in d.message
    assert "32 element(s) of this read race with rank 2's write" in d.notes
    assert "on rank 0" in d.notes


@pytest.mark.parametrize("make, bug", [(C.neighbour_load, 2), (C.neighbour_get, 1)])
def test_a_remote_read_without_ordering_is_a_race(make, bug):
    start = func_line(make.__name__)
    write = line_of("data = pl.store(", start)
    read = line_of(
        "pld.tile.remote_load(" if make is C.neighbour_load else "pld.tensor.get(", start
    )
    found = {race_lines(fails(make, bug, 3, seed), read, write) for seed in (None, 0, 1, 2)}
    assert found == {"read", "write"}
    d = fails(make, bug, 3)
    op = "pld.tile.remote_load" if make is C.neighbour_load else "pld.tensor.get"
    assert (
        d.message.startswith(f"{op}: rank 0 reads window[0, ") and "of rank 1's window" in d.message
    )


@pytest.mark.parametrize("make", [C.ring, C.neighbour_load, C.neighbour_get])
@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3])
def test_ordered_reads_are_quiet(make, seed):
    shift = 1 if make is C.ring else -1  # the ring reads the previous rank's row
    np.testing.assert_array_equal(run(make, 0, 3, seed), np.roll(inputs(3), shift, axis=0))


def test_reads_in_a_loop_the_interpreter_batches_are_checked_too():
    start = func_line("parallel_read")
    read, write = line_of("pl.add(pl.slice(data", start), line_of("pld.tensor.put(", start)
    found = {race_lines(fails(C.parallel_read, 1, 3, seed), read, write)
             for seed in (None, 0, 1, 2, 3)}  # fmt: skip
    assert found == {"read", "write"}
    for seed in (None, 0, 1):
        got = run(C.parallel_read, 0, 3, seed)
        np.testing.assert_array_equal(got, np.roll(inputs(3), 1, axis=0) + 1)


def test_a_collective_reads_its_operand_on_arrival():
    start = func_line("push_then_allreduce")
    read = line_of("pld.tensor.allreduce(data", start)
    write = line_of("pld.tile.remote_store(t, data", start)
    found = {race_lines(fails(C.push_then_allreduce, 1, 3, seed), read, write)
             for seed in (None, 0, 1, 2, 3)}  # fmt: skip
    assert found == {"read", "write"}
    for seed in (None, 0, 1):
        got = run(C.push_then_allreduce, 0, 3, seed)
        np.testing.assert_array_equal(got, np.broadcast_to(inputs(3).sum(axis=0), got.shape))


def test_unordered_writes_to_one_window_region_are_a_race():
    d = fails(C.shared_row, 1)
    line = line_of("peer=0, offsets=[0, 0])", func_line("shared_row"))
    assert d.rule == "WindowRace" and d.span.line == line
    assert "rank 1 writes window[0, 0] of rank 0's window, which rank 0 wrote at line" in d.message
    assert "on rank 1" in d.notes


@pytest.mark.parametrize("bug", [0, 2])  # distinct rows; one row, writes chained by notify/wait
@pytest.mark.parametrize("seed", [None, 3, 4])
def test_ordered_or_disjoint_writes_are_quiet(bug, seed):
    np.testing.assert_array_equal(run(C.shared_row, bug, 3, seed), inputs(3))


def test_a_remote_load_outside_the_window():
    d = fails(C.neighbour_load, 1)
    assert d.rule == "RemoteOutOfWindow"
    assert d.span.line == line_of("pld.tile.remote_load(", func_line("neighbour_load"))
    assert "offsets [0, 16] shape [1, 32]" in d.message and "rank 1's window" in d.message
    assert "on rank 0" in d.notes


def test_a_remote_load_inside_the_window_is_quiet():
    np.testing.assert_array_equal(run(C.neighbour_load, 0), np.roll(inputs(3), -1, axis=0))


def test_a_rank_dependent_branch_that_skips_a_collective():
    d = fails(C.rank_branch, 1)
    start = func_line("rank_branch")
    barrier, branch = line_of("pld.tensor.barrier", start), line_of("if me == 0:", start)
    assert d.rule == "CollectiveSkipped" and d.span.line == barrier
    assert "called by rank(s) 0 but never by rank(s) 1, 2" in d.message
    assert any(f"inside the `if` at line {branch}" in n for n in d.notes)


def test_every_rank_reaching_the_collective_is_quiet():
    np.testing.assert_array_equal(run(C.rank_branch, 0), inputs(3))


def test_a_notify_on_a_tensor_outside_any_window_does_not_capture():
    d = fails(lambda bug: C.notify_on_plain_tensor(), 0)
    assert d.rule == "TypeError" and d.span.line == line_of("pld.system.notify(signal, peer=0")
    assert "'target' must be a window-bound pld.DistributedTensor" in d.message


def test_a_rank_launched_twice():
    d = fails(lambda bug: C.launch_twice(), 0, n=2)
    assert d.rule == "BadDevice" and "rank 0 is launched twice" in d.message
    assert d.span.line == line_of("step(x[r], y[r], device=0)")


def test_the_static_rule_finds_the_rank_dependent_collective():
    from pldsl.checks import run_checks

    x = inputs(2)
    bad = run_checks(C.rank_branch(1).specialize(x, np.zeros_like(x)))
    found = [d for d in bad if d.rule == "RankDependentCollective"]
    start = func_line("rank_branch")
    assert len(found) == 1 and found[0].span.line == line_of("pld.tensor.barrier", start)
    assert f"the `if` at line {line_of('if me == 0:', start)}" in found[0].message
    for make in (C.rank_branch, C.ring, C.shared_row, C.neighbour_load):
        good = run_checks(make(0).specialize(x, np.zeros_like(x)))
        assert not [d for d in good if d.rule == "RankDependentCollective"]


def test_a_notify_no_rank_executes_is_named_as_the_missing_one():
    d = fails(C.skipped_notify, 1, n=2)
    start = func_line("skipped_notify")
    assert d.rule == "Deadlock" and d.span.line == line_of("cmp=pld.WaitCmp.Eq", start)
    assert "rank(s) 1 wait forever" in d.message and "rank(s) 0 finished" in d.notes
    notify = line_of("op=pld.NotifyOp.Set", start)
    assert "no notify reached" in d.notes[0]
    assert f"the program's notify calls are at lines [{notify}]" in d.notes[0]
    np.testing.assert_array_equal(run(C.skipped_notify, 0, 2), inputs(2))


def test_unwritten_output_follows_launches_in_a_loop_over_the_ranks():
    """The host loop's bound, pld.world_size(), is unknown to the static check: what the
    launched kernels write (y's rows) is unknown, not unwritten; z, never passed, is reported."""
    from pldsl.checks import run_checks

    x = inputs(2)
    found = run_checks(C.half_written_host().specialize(x, np.zeros_like(x), np.zeros_like(x)))
    found = [d for d in found if d.rule == "UnwrittenOutput"]
    assert [d.message.split("'")[1] for d in found] == ["z"]
    assert "is never written" in found[0].message
    assert found[0].span.line == line_of("z: pl.Out[", func_line("half_written_host"))
    for make in (C.ring, C.shared_row, C.neighbour_load, C.neighbour_get, C.rank_branch):
        quiet = run_checks(make(0).specialize(x, np.zeros_like(x)))
        assert not [d for d in quiet if d.rule == "UnwrittenOutput"]


def test_only_programs_using_pld_get_the_tracking_kernels():
    """The access tracking wraps kernels only for programs that can run on ranks: others keep
    the plain kernels (no cost per op)."""
    from pldsl.interpreter.machine import Machine
    from pldsl.interpreter.ops import KERNELS

    import pldsl as pl
    from pldsl.execution.memory import Context

    @pl.jit.incore
    def plain(x: pl.Tensor[[1, C.SIZE], pl.FP32], y: pl.Out[pl.Tensor[[1, C.SIZE], pl.FP32]]):
        y = pl.store(pl.load(x, [0, 0], [1, C.SIZE]), [0, 0], y)
        return y

    x = np.zeros((1, C.SIZE), np.float32)
    assert Machine(plain.specialize(x, x), Context()).kernels is KERNELS
    xs = inputs(2)
    tracked = Machine(C.ring(0).specialize(xs, xs), Context()).kernels
    assert (
        tracked["load"] is not KERNELS["load"]
        and tracked["pld.system.wait"] is KERNELS["pld.system.wait"]
    )


def test_every_kernel_is_tracked_on_ranks():
    # the rank overlay wraps the kernel table as it stood at import: a kernel registered later
    # (a new op module) would run on ranks without its window accesses race-checked
    from pldsl.interpreter import dist_ops
    from pldsl.interpreter.ops import KERNELS

    plain = {name for name in KERNELS if not name.startswith("pld.")}
    assert plain and plain == set(dist_ops.TRACKED)
