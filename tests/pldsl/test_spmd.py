"""`pl.spmd` (for- and with-forms): capture, text round trip, and the sequential meaning
(blocks 0..n-1 in increasing order) on the interpreter and the C backend, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from irutil import compile_c, orchestration_capture_error, round_trip

import pldsl as pl
from pldsl import interpreter
from pldsl.diagnostics import CaptureError
from pldsl.ir.nodes import For, Scope, walk

ROWS, COLS, BLOCKS = 64, 16, 4
SLAB = ROWS // BLOCKS


@pl.program
class Spmd:
    @pl.function(type=pl.FunctionType.Orchestration)
    def scale_rows(
        self,
        a: pl.Tensor[[ROWS, COLS], pl.FP32],
        out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        # block b scales its slab by b + 1
        for b in pl.spmd(BLOCKS, name_hint="slabs"):
            slab = pl.slice(a, [SLAB, COLS], [b * SLAB, 0])
            f = pl.cast(b + 1, pl.FP32)
            out = pl.assemble(out, pl.mul(slab, f), [b * SLAB, 0])
        return out

    @pl.function(type=pl.FunctionType.Orchestration)
    def running_sum(
        self,
        a: pl.Tensor[[ROWS, COLS], pl.FP32],
        out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        # block b adds block b-1's result: right only when blocks run in increasing order
        out = pl.assemble(out, pl.slice(a, [SLAB, COLS], [0, 0]), [0, 0])
        with pl.spmd(BLOCKS - 1, allow_early_resolve=True):
            k = pl.tile.get_block_idx() + 1
            prev = pl.slice(out, [SLAB, COLS], [(k - 1) * SLAB, 0])
            mine = pl.slice(a, [SLAB, COLS], [k * SLAB, 0])
            out = pl.assemble(out, pl.add(prev, mine), [k * SLAB, 0])
        return out

    @pl.function(type=pl.FunctionType.Orchestration)
    def nested(
        self,
        a: pl.Tensor[[ROWS, COLS], pl.FP32],
        out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        # get_block_idx() reads the innermost grid: rows (2 * i + j) * 8 get factor j + 1
        for i in pl.spmd(BLOCKS * 2):
            with pl.spmd(2):
                j = pl.tile.get_block_idx()
                r = (i * 2 + j) * (SLAB // 4)
                win = pl.slice(a, [SLAB // 4, COLS], [r, 0])
                out = pl.assemble(out, pl.mul(win, pl.cast(j + 1, pl.FP32)), [r, 0])
        return out

    @pl.function(type=pl.FunctionType.Orchestration)
    def empty_grid(
        self,
        a: pl.Tensor[[ROWS, COLS], pl.FP32],
        n: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        out = pl.assemble(out, a, [0, 0])
        for b in pl.spmd(n):
            out = pl.assemble(
                out, pl.mul(pl.slice(a, [SLAB, COLS], [b * SLAB, 0]), 0.0), [b * SLAB, 0]
            )
        return out


def _oracles(a: np.ndarray) -> dict[str, np.ndarray]:
    """Plain NumPy, written from the statement of each kernel (never from pldsl)."""
    slabs = a.reshape(BLOCKS, SLAB, COLS)
    scale = (slabs * np.arange(1, BLOCKS + 1, dtype=np.float32)[:, None, None]).reshape(ROWS, COLS)
    running = np.cumsum(slabs, axis=0, dtype=np.float32).reshape(ROWS, COLS)
    quarter = a.reshape(-1, SLAB // 4, COLS)
    factors = np.tile(np.array([1.0, 2.0], dtype=np.float32), quarter.shape[0] // 2)
    nested = (quarter * factors[:, None, None]).reshape(ROWS, COLS)
    return {"scale_rows": scale, "running_sum": running, "nested": nested}


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((ROWS, COLS)).astype(np.float32)


@pytest.fixture(scope="module")
def c_program():
    return compile_c(Spmd)


@pytest.mark.parametrize("name", ["scale_rows", "running_sum", "nested"])
@pytest.mark.parametrize("fast", [True, False])
def test_interpreter_matches_numpy(data, name, fast):
    got = interpreter.run(Spmd, name, data, np.zeros_like(data), fast=fast)
    np.testing.assert_allclose(got, _oracles(data)[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["scale_rows", "running_sum", "nested"])
def test_c_backend_matches_numpy(data, c_program, name):
    got = c_program.run(name, data, np.zeros_like(data))
    np.testing.assert_allclose(got, _oracles(data)[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n", [0, 1, BLOCKS])
def test_block_count_is_a_runtime_value(data, c_program, n):
    want = data.copy()
    want[: n * SLAB] = 0.0
    for run in (
        lambda: interpreter.run(Spmd, "empty_grid", data, n, np.zeros_like(data)),
        lambda: c_program.run("empty_grid", data, n, np.zeros_like(data)),
    ):
        np.testing.assert_array_equal(run(), want)


def test_spmd_is_captured_and_round_trips():
    loops = [n for n in walk(Spmd) if isinstance(n, For) and n.kind == "spmd"]
    assert len(loops) == 5
    with_form = [lp for lp in loops if lp.attrs and ("form", "with") in lp.attrs]
    assert len(with_form) == 2
    assert ("allow_early_resolve", True) in with_form[0].attrs
    assert not any(isinstance(n, Scope) for n in walk(Spmd))
    round_trip(Spmd)


@pl.program
class Dispatched:
    """A function called from a grid reads its block with pl.tile.get_block_idx(): the one
    block index the executor keeps (Context.block_idx), set per block, restored after."""

    @pl.function(type=pl.FunctionType.InCore)
    def slab(
        self, a: pl.Tensor[[ROWS, COLS], pl.FP32], out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]]
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        b = pl.tile.get_block_idx()
        win = pl.slice(a, [SLAB, COLS], [b * SLAB, 0])
        out = pl.assemble(out, pl.mul(win, pl.cast(b + 1, pl.FP32)), [b * SLAB, 0])
        return out

    @pl.function(type=pl.FunctionType.Orchestration)
    def f(
        self, a: pl.Tensor[[ROWS, COLS], pl.FP32], out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]]
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        for _b in pl.spmd(BLOCKS):
            out = self.slab(a, out)
        # outside the grid the block index is 0 again: slab 0 scaled by 1 once more
        out = self.slab(out, out)
        return out


def test_a_dispatched_function_reads_its_block_on_every_engine(data):
    want = _oracles(data)["scale_rows"]  # slab b scaled by b + 1; slab 0 by 1 again: the same
    runs = {
        "fast": lambda: interpreter.run(Dispatched, "f", data, np.zeros_like(data), fast=True),
        "slow": lambda: interpreter.run(Dispatched, "f", data, np.zeros_like(data), fast=False),
        "c": lambda: compile_c(Dispatched).run("f", data, np.zeros_like(data)),
    }
    for engine, run in runs.items():
        np.testing.assert_allclose(run(), want, rtol=1e-6, err_msg=engine)


def _capture_error(body: str) -> CaptureError:
    return orchestration_capture_error(body, "<spmd>")


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("for i in pl.spmd(2, 4):\n    pass", "only positional argument"),
        ("for i in pl.spmd(2, deps=[]):\n    pass", "only on the `with pl.spmd(...) as tid:`"),
        (
            'for i in pl.spmd(2, name_hint="has space"):\n    pass',
            "must be a valid non-keyword identifier, got 'has space'",
        ),
        ("for i in pl.spmd(2, sync=True):\n    pass", "Unknown keyword argument 'sync'"),
        ("for i in pl.spmd(-1):\n    pass", "non-negative"),
        ("for i, j in pl.spmd(2):\n    pass", "one name"),
        ("for i in pl.spmd(2):\n    break", "only allowed in pl.range"),
        ("with pl.spmd(2, deps=[]):\n    pass", "only with `as tid`"),
        ("for i in pl.spmd(2, sync_start=1):\n    pass", "True or False"),
        ("pl.system.syncall()", "must be a statement of a pl.spmd body"),
        (
            "for i in pl.spmd(2):\n    if i == 0:\n        pl.system.syncall()",
            "not inside a branch",
        ),
        (
            'for i in pl.spmd(2):\n    pl.system.syncall(core_type="all")',
            "core_type must be one of",
        ),
        ('for i in pl.spmd(2):\n    pl.system.syncall(mode="soft")', "is not supported"),
    ],
)
def test_spmd_capture_errors(body, fragment):
    err = _capture_error(body)
    assert fragment in err.diagnostic.message, err.diagnostic.render()
    assert err.diagnostic.span.line >= 7


@pl.program
class Barrier:
    """Phase 1: block b writes its slab of `mid` (a * (b + 1)). Barrier. Phase 2: block b
    writes slab b of `out` from the *next* block's slab of `mid` (wrapping), plus its own
    phase-1 scalar: only right when every block finished phase 1 first."""

    @pl.function(type=pl.FunctionType.Orchestration)
    def f(
        self,
        a: pl.Tensor[[ROWS, COLS], pl.FP32],
        mid: pl.InOut[pl.Tensor[[ROWS, COLS], pl.FP32]],
        out: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        with pl.spmd(BLOCKS, sync_start=True):
            b = pl.tile.get_block_idx()
            k = pl.cast(b + 1, pl.FP32)
            slab = pl.slice(a, [SLAB, COLS], [b * SLAB, 0])
            mid = pl.assemble(mid, pl.mul(slab, k), [b * SLAB, 0])
            pl.system.syncall(core_type="mix")
            nxt = (b + 1) % BLOCKS
            theirs = pl.slice(mid, [SLAB, COLS], [nxt * SLAB, 0])
            out = pl.assemble(out, pl.add(theirs, k), [b * SLAB, 0])
        return out


def _barrier_oracle(a: np.ndarray) -> np.ndarray:
    slabs = a.reshape(BLOCKS, SLAB, COLS)
    mid = slabs * np.arange(1, BLOCKS + 1, dtype=np.float32)[:, None, None]
    out = np.roll(mid, -1, axis=0) + np.arange(1, BLOCKS + 1, dtype=np.float32)[:, None, None]
    return out.reshape(ROWS, COLS).astype(np.float32)


@pytest.mark.parametrize("fast", [True, False])
def test_syncall_runs_the_grid_phase_by_phase(data, fast):
    got = interpreter.run(Barrier, "f", data, np.zeros_like(data), np.zeros_like(data), fast=fast)
    np.testing.assert_allclose(got, _barrier_oracle(data), rtol=1e-6)


def test_syncall_is_captured_checked_and_refused_by_the_c_backend():
    from pldsl.diagnostics import PldslError

    scopes = [n for n in walk(Barrier) if isinstance(n, Scope)]
    assert [(s.kind, s.attrs) for s in scopes] == [("syncall", (("core_type", "mix"),))]
    round_trip(Barrier)
    # phase 2 reads the next block's phase-1 rows: no race across the barrier
    assert not [d for d in pl.check(Barrier) if d.rule == "SpmdBlockRace"]
    with pytest.raises(PldslError) as info:
        compile_c(Barrier)
    assert "pl.system.syncall" in info.value.diagnostic.message


def test_without_the_barrier_the_read_is_a_race():
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.Orchestration)\n"
        "    def f(self, a: pl.Tensor[[16, 4], pl.FP32], out: pl.Out[pl.Tensor[[16, 4], pl.FP32]]\n"
        "          ) -> pl.Tensor[[16, 4], pl.FP32]:\n"
        "        for b in pl.spmd(4):\n"
        "            out = pl.assemble(out, pl.slice(a, [4, 4], [b * 4, 0]), [b * 4, 0])\n"
        "            SYNC\n"
        "            t = pl.slice(out, [4, 4], [((b + 1) % 4) * 4, 0])\n"
        "        return out\n"
    )
    (with_barrier,) = pl.capture_source(src.replace("SYNC", "pl.system.syncall()"), "<s>")
    (without,) = pl.capture_source(src.replace("SYNC", "pass"), "<s>")
    assert not [d for d in pl.check(with_barrier) if d.rule == "SpmdBlockRace"]
    assert [d.span.line for d in pl.check(without) if d.rule == "SpmdBlockRace"] == [11]
