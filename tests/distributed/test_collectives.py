"""Each collective on N simulated ranks against a plain-NumPy oracle (which never imports
pldsl), in the fixed interleaving and in seeded ones; and the IR text round trip."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import dist_kernels as K  # noqa: E402
from pldsl.interpreter.ranks import world  # noqa: E402

import pldsl as pl  # noqa: E402
import pldsl.distributed as pld  # noqa: E402

SEEDS = [None, 0, 7]


def inputs(n: int, rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-8, 8, size=(n, rows, K.SIZE)).astype(np.float32)  # sums are exact


def run(host, x, y, n, seed=None):
    with world(n, seed):
        host(x, y)
    return y


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("seed", SEEDS)
def test_allreduce_sum(n, seed):
    x = inputs(n, 1)
    y = run(K.make_allreduce(), x, np.zeros_like(x), n, seed)
    want = np.broadcast_to(x.sum(axis=0), x.shape)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("how,oracle", [(pld.ReduceOp.Max, np.max), (pld.ReduceOp.Min, np.min)])
def test_allreduce_max_min(how, oracle):
    x = inputs(3, 1, seed=1)
    y = run(K.make_allreduce(how), x, np.zeros_like(x), 3)
    np.testing.assert_array_equal(y, np.broadcast_to(oracle(x, axis=0), x.shape))


@pytest.mark.parametrize("n,root", [(2, 1), (4, 2)])
def test_broadcast(n, root):
    x = inputs(n, 1, seed=2)
    y = run(K.make_broadcast(root), x, np.zeros_like(x), n, seed=3)
    np.testing.assert_array_equal(y, np.broadcast_to(x[root], x.shape))


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("seed", SEEDS)
def test_allgather(n, seed):
    x = inputs(n, 1, seed=4)
    y = run(K.make_gather(n, "allgather"), x, np.zeros((n, n, K.SIZE), np.float32), n, seed)
    gathered = x[:, 0, :]  # row s of every rank's result is rank s's input
    np.testing.assert_array_equal(y, np.broadcast_to(gathered, (n, n, K.SIZE)))


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("seed", SEEDS)
def test_all_to_all(n, seed):
    x = inputs(n, n, seed=5)
    y = run(K.make_gather(n, "all_to_all"), x, np.zeros((n, n, K.SIZE), np.float32), n, seed)
    for r in range(n):
        for s in range(n):  # chunk s of rank r's result is chunk r of rank s's input
            np.testing.assert_array_equal(y[r, s], x[s, r])


@pytest.mark.parametrize("n", [2, 4])
def test_reduce_scatter(n):
    x = inputs(n, n, seed=6)
    y = run(K.make_gather(n, "reduce_scatter"), x, np.zeros((n, n, K.SIZE), np.float32), n, 1)
    for r in range(n):
        want = x[r].copy()  # the other chunks keep what the rank staged
        want[r] = x[:, r, :].sum(axis=0)
        np.testing.assert_array_equal(y[r], want)


def all_to_all_v_case(n: int, cap: int, seed: int):
    x = inputs(n, n * cap, seed)
    counts = np.random.default_rng(seed).integers(0, cap + 3, size=(n, n)).astype(np.int32)
    counts[0, -1] = 0  # an empty block; others exceed cap (clamped)
    want_y = np.zeros_like(x)
    want_got = np.zeros((n, n, 1), np.int32)
    for r in range(n):  # receiver
        for s in range(n):  # sender: its block r lands in r's block s, whatever the count
            want_y[r, s * cap : (s + 1) * cap] = x[s, r * cap : (r + 1) * cap]
            want_got[r, s, 0] = min(counts[s, r], cap)
    return x, counts, want_y, want_got


@pytest.mark.parametrize("n,cap", [(2, 3), (3, 2), (4, 1)])
@pytest.mark.parametrize("seed", SEEDS)
def test_all_to_all_v(n, cap, seed):
    x, counts, want_y, want_got = all_to_all_v_case(n, cap, 12 + n)
    y, got = np.zeros_like(x), np.zeros((n, n, 1), np.int32)
    with world(n, seed):
        K.make_all_to_all_v(n, cap)(x, counts, y, got)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(got, want_got)


@pytest.mark.parametrize("seed", SEEDS)
def test_all_to_all_v_as_a_host_builtin(seed):
    n, cap = 3, 2
    x, counts, want_y, want_got = all_to_all_v_case(n, cap, 20)
    y, got = np.zeros_like(x), np.zeros((n, n, 1), np.int32)
    with world(n, seed):
        K.make_host_all_to_all_v(n, cap)(x, counts[..., None], y, got)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(got, want_got)


def test_all_to_all_v_rejects_a_negative_count():
    from pldsl.diagnostics import PldslError

    x, counts, _, _ = all_to_all_v_case(2, 2, 21)
    counts[1, 0] = -3
    with pytest.raises(PldslError) as err, world(2):
        K.make_all_to_all_v(2, 2)(x, counts, np.zeros_like(x), np.zeros((2, 2, 1), np.int32))
    d = err.value.diagnostic
    assert d.rule == "BadCount" and "on rank 1" in d.notes
    assert d.message == (
        "pld.tensor.all_to_all_v: send_counts[0] is -3 on rank 1: a row count cannot be negative"
    )


def test_all_to_all_v_type_rule():
    from pldsl.diagnostics import PldslError

    @pl.jit.incore
    def step(
        x: pl.Tensor[[4, K.SIZE], pl.FP32],
        counts: pl.Tensor[[2], pl.FP32],
        data: pld.DistributedTensor[[4, K.SIZE], pl.FP32],
        signal: pld.DistributedTensor[[2, 1], pl.INT32],
        recv: pld.DistributedTensor[[2, 1], pl.INT32],
    ):
        data = pld.tensor.all_to_all_v(x, data, signal, counts, recv)
        return data

    with pytest.raises(PldslError) as err:
        step.specialize(*[np.zeros(s, d) for s, d in [((4, K.SIZE), np.float32), ((2,), np.float32),
                          ((4, K.SIZE), np.float32), ((2, 1), np.int32), ((2, 1), np.int32)]])  # fmt: skip
    d = err.value.diagnostic
    assert d.rule == "TypeError"
    assert "send_counts is an INT32 [nranks] or [nranks, 1] tensor, got" in d.message


def test_the_c_backend_refuses_all_to_all_v():
    from pldsl.backends.c import emit_c
    from pldsl.diagnostics import PldslError

    @pl.jit.incore
    def step(
        x: pl.Tensor[[4, K.SIZE], pl.FP32],
        counts: pl.Tensor[[2, 1], pl.INT32],
        data: pld.DistributedTensor[[4, K.SIZE], pl.FP32],
        signal: pld.DistributedTensor[[2, 1], pl.INT32],
        recv: pld.DistributedTensor[[2, 1], pl.INT32],
    ):
        data = pld.tensor.all_to_all_v(x, data, signal, counts, recv)
        return data

    args = [np.zeros((4, K.SIZE), np.float32), np.zeros((2, 1), np.int32),
            np.zeros((4, K.SIZE), np.float32), np.zeros((2, 1), np.int32),
            np.zeros((2, 1), np.int32)]  # fmt: skip
    with pytest.raises(PldslError) as err:
        emit_c(step.specialize(*args))
    d = err.value.diagnostic
    assert d.rule == "CBackendUnsupported"
    assert d.message.startswith("pld.tensor.all_to_all_v is a distributed (pld) op")


def test_ir_text_round_trip():
    x1, x2 = inputs(2, 1), inputs(2, 2)
    programs = [
        K.make_allreduce(pld.ReduceOp.Max).specialize(x1, np.zeros_like(x1)),
        K.make_gather(2, "all_to_all").specialize(x2, np.zeros_like(x2)),
    ]
    for program in programs:
        text = pl.print_ir(program)
        assert "pld.DistributedTensor[[" in text and "pl.pld.launch(r, self.step(" in text
        assert pl.structural_equal(program, pl.parse_ir(text))


def test_no_rank_count_is_a_diagnostic():
    from pldsl.diagnostics import PldslError

    x = inputs(2, 1)
    with pytest.raises(PldslError) as err:
        K.make_allreduce()(x, np.zeros_like(x))
    assert err.value.diagnostic.rule == "NoRanks"


def test_byte_size_window_buffers():
    x = inputs(3, 1, seed=8)
    y = run(K.make_allreduce_bytes(), x, np.zeros_like(x), 3)
    np.testing.assert_array_equal(y, np.broadcast_to(x.sum(axis=0), x.shape))
    program = K.make_allreduce_bytes().specialize(x, np.zeros_like(x))
    text = pl.print_ir(program)
    assert "pld.WindowBuffer[[256], pl.UINT8]" in text
    assert pl.structural_equal(program, pl.parse_ir(text))


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_put_and_get_rings(n, seed):
    x = inputs(n, 1, seed=9)
    np.testing.assert_array_equal(run(K.make_ring(0), x, np.zeros_like(x), n, seed),
                                  np.roll(x, 1, axis=0))  # fmt: skip
    np.testing.assert_array_equal(run(K.make_ring(1), x, np.zeros_like(x), n, seed),
                                  np.roll(x, -1, axis=0))  # fmt: skip


def test_every_pld_op_is_captured_and_round_trips_here():
    """The op-table-wide tests of tests/pldsl leave the pld ops to this directory."""
    import check_kernels as C

    from pldsl.ir.traversal import iter_expr, iter_stmts, stmt_exprs
    from pldsl.ops import OPS

    x1, xn = inputs(2, 1), inputs(2, 2)
    programs = [
        K.make_allreduce().specialize(x1, np.zeros_like(x1)),
        K.make_broadcast(0).specialize(x1, np.zeros_like(x1)),
        K.make_ring(0).specialize(x1, np.zeros_like(x1)),
        K.make_ring(1).specialize(x1, np.zeros_like(x1)),
        K.make_gather(2, "allgather").specialize(x1, np.zeros((2, 2, K.SIZE), np.float32)),
        K.make_gather(2, "all_to_all").specialize(xn, np.zeros_like(xn)),
        K.make_gather(2, "reduce_scatter").specialize(xn, np.zeros_like(xn)),
        K.make_all_to_all_v(2, 1).specialize(
            xn, np.zeros((2, 2), np.int32), np.zeros_like(xn), np.zeros((2, 2, 1), np.int32)
        ),
    ]
    xc = np.zeros((2, 1, C.SIZE), np.float32)
    programs += [make(0).specialize(xc, np.zeros_like(xc)) for make in (C.neighbour_load, C.ring)]
    used = set()
    for p in programs:
        assert pl.structural_equal(p, pl.parse_ir(pl.print_ir(p)))
        for f in p.function_list:
            for s in iter_stmts(f.body):
                for root in stmt_exprs(s):
                    used |= {e.op for e in iter_expr(root) if hasattr(e, "op") and
                             isinstance(e.op, str)}  # fmt: skip
    pld_ops = {n for n in OPS if n.startswith("pld.")}
    assert sorted(pld_ops - used) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_host_collective_between_two_launch_loops(seed):
    x = inputs(3, 1, seed=10)
    y = run(K.make_host_allreduce(), x, np.zeros_like(x), 3, seed)
    np.testing.assert_array_equal(y, np.broadcast_to(x.max(axis=0), x.shape))


def test_the_python_api_runs_a_program_on_ranks():
    from pldsl.interpreter import ranks

    x = inputs(4, 1, seed=11)
    y = np.zeros_like(x)
    program = K.make_allreduce().specialize(x, y)
    ranks.run(program, "host", x, y, ranks=4, seed=5)
    np.testing.assert_array_equal(y, np.broadcast_to(x.sum(axis=0), x.shape))
