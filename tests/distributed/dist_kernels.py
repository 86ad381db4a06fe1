"""Small distributed kernels for the tests: each `make_*` builds a host function that
launches an in-core kernel on every rank. The rank count is `NR` (a dynamic dim, bound by the
host's arguments) or, where a tile needs it static, the factory's `n` (read in the body, so
it is a closure constant). No `from __future__ import annotations`: annotations are read as
objects."""

import pldsl as pl
import pldsl.distributed as pld

SIZE = 64
NR = pl.dynamic("NR")


def _host(step):
    """The host both one-row collectives share: a [1, SIZE] data window and an [NR, 1]
    signal window on every rank, then `step` launched on each."""

    @pl.jit.host
    def host(x: pl.Tensor[[NR, 1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]]):
        data_buf = pld.alloc_window_buffer([1, SIZE], dtype=pl.FP32)
        signal_buf = pld.alloc_window_buffer([NR, 1], dtype=pl.INT32)
        for r in pl.range(pld.world_size()):
            data = pld.window(data_buf, [1, SIZE], dtype=pl.FP32)
            signal = pld.window(signal_buf, [NR, 1], dtype=pl.INT32)
            step(x[r], y[r], data, signal, device=r)

    return host


def make_allreduce(how=pld.ReduceOp.Sum):
    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        t = pl.load(x, [0, 0], [1, SIZE])
        data = pl.store(t, [0, 0], data)
        data = pld.tensor.allreduce(data, signal, op=how)
        back = pl.load(data, [0, 0], [1, SIZE])
        y = pl.store(back, [0, 0], y)
        return y

    return _host(step)


def make_broadcast(root: int):
    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        t = pl.load(x, [0, 0], [1, SIZE])
        data = pl.store(t, [0, 0], data)
        data = pld.tensor.broadcast(data, signal, root=root)
        back = pl.load(data, [0, 0], [1, SIZE])
        y = pl.store(back, [0, 0], y)
        return y

    return _host(step)


def make_gather(n: int, which: str):
    """which: "allgather" (x: [1, SIZE] per rank), "all_to_all" or "reduce_scatter"
    (x: [n, SIZE] per rank); y is [n, SIZE] per rank."""
    rows = 1 if which == "allgather" else n
    mode = ("allgather", "all_to_all", "reduce_scatter").index(which)  # an int: a capture constant

    @pl.jit.incore
    def step(
        x: pl.Tensor[[rows, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[n, SIZE], pl.FP32]],
        stage: pld.DistributedTensor[[rows, SIZE], pl.FP32],
        data: pld.DistributedTensor[[n, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[n, 1], pl.INT32],
    ):
        t = pl.load(x, [0, 0], [rows, SIZE])
        if mode == 0:
            stage = pl.store(t, [0, 0], stage)
            data = pld.tensor.allgather(stage, data, signal)
        elif mode == 1:
            stage = pl.store(t, [0, 0], stage)
            data = pld.tensor.all_to_all(stage, data, signal)
        else:
            data = pl.store(t, [0, 0], data)
            data = pld.tensor.reduce_scatter(data, signal, op=pld.ReduceOp.Sum)
        back = pl.load(data, [0, 0], [n, SIZE])
        y = pl.store(back, [0, 0], y)
        return y

    @pl.jit.host
    def host(x: pl.Tensor[[n, rows, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[n, n, SIZE], pl.FP32]]):
        stage_buf = pld.alloc_window_buffer([rows, SIZE], dtype=pl.FP32)
        data_buf = pld.alloc_window_buffer([n, SIZE], dtype=pl.FP32)
        signal_buf = pld.alloc_window_buffer([n, 1], dtype=pl.INT32)
        for r in pl.range(pld.world_size()):
            stage = pld.window(stage_buf, [rows, SIZE], dtype=pl.FP32)
            data = pld.window(data_buf, [n, SIZE], dtype=pl.FP32)
            signal = pld.window(signal_buf, [n, 1], dtype=pl.INT32)
            step(x[r], y[r], stage, data, signal, device=r)

    return host


def make_allreduce_bytes():
    """make_allreduce with PyPTO's byte-size buffers: alloc_window_buffer(nbytes), typed by
    pld.window."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[4, 1], pl.INT32],
    ):
        data = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], data)
        data = pld.tensor.allreduce(data, signal)
        y = pl.store(pl.load(data, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(x: pl.Tensor[[NR, 1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]]):
        data_buf = pld.alloc_window_buffer(SIZE * 4)
        signal_buf = pld.alloc_window_buffer(4 * 4)
        for r in pl.range(pld.world_size()):
            data = pld.window(data_buf, [1, SIZE], dtype=pl.FP32)
            signal = pld.window(signal_buf, [4, 1], dtype=pl.INT32)
            step(x[r], y[r], data, signal, device=r)

    return host


def make_ring(mode: int):
    """mode 0: each rank puts its row into the next rank's dst (y[r] = x[r-1]); mode 1: each
    rank gets the next rank's src (y[r] = x[r+1]). A notify/wait pair orders each transfer."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        src: pld.DistributedTensor[[1, SIZE], pl.FP32],
        dst: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[1, 1], pl.INT32],
    ):
        ctx = pld.get_comm_ctx(src)
        me = pld.rank(ctx)
        n = pld.nranks(ctx)
        src = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], src)
        if mode == 0:
            pld.tensor.put(dst, peer=(me + 1) % n, src=src)
            pld.system.notify(signal, peer=(me + 1) % n, offsets=[0, 0], value=1)
            pld.system.wait(signal, offsets=[0, 0], expected=1)
        else:
            pld.system.notify(signal, peer=(me + n - 1) % n, offsets=[0, 0], value=1)
            pld.system.wait(signal, offsets=[0, 0], expected=1)
            pld.tensor.get(dst, peer=(me + 1) % n, src=src)
        y = pl.store(pl.load(dst, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(x: pl.Tensor[[NR, 1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]]):
        src_buf = pld.alloc_window_buffer([1, SIZE], dtype=pl.FP32)
        dst_buf = pld.alloc_window_buffer([1, SIZE], dtype=pl.FP32)
        signal_buf = pld.alloc_window_buffer([1, 1], dtype=pl.INT32)
        for r in pl.range(pld.world_size()):
            src = pld.window(src_buf, [1, SIZE], dtype=pl.FP32)
            dst = pld.window(dst_buf, [1, SIZE], dtype=pl.FP32)
            signal = pld.window(signal_buf, [1, 1], dtype=pl.INT32)
            step(x[r], y[r], src, dst, signal, device=r)

    return host


def make_host_allreduce():
    """PyPTO's host builtin: stage on every rank, allreduce on the host, read back per rank."""

    @pl.jit.incore
    def stage(x: pl.Tensor[[1, SIZE], pl.FP32], data: pld.DistributedTensor[[1, SIZE], pl.FP32]):
        data = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], data)
        return data

    @pl.jit.incore
    def readback(
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
    ):
        y = pl.store(pl.load(data, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(x: pl.Tensor[[NR, 1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]]):
        data_buf = pld.alloc_window_buffer([1, SIZE], dtype=pl.FP32)
        data = pld.window(data_buf, [1, SIZE], dtype=pl.FP32)
        for r in pl.range(pld.world_size()):
            stage(x[r], data, device=r)
        data = pld.tensor.allreduce(data, op=pld.ReduceOp.Max)
        for r in pl.range(pld.world_size()):
            readback(data, y[r], device=r)

    return host


def make_all_to_all_v(n: int, cap: int):
    """pld.tensor.all_to_all_v on the ranks: rank r stages x[r] ([n*cap, SIZE], block d for
    rank d) and sends counts[r] ([n] rows per destination); y[r] is its target after the
    exchange, got[r] its recv_counts."""
    rows = n * cap

    @pl.jit.incore
    def step(
        x: pl.Tensor[[rows, SIZE], pl.FP32],
        counts: pl.Tensor[[n], pl.INT32],
        y: pl.Out[pl.Tensor[[rows, SIZE], pl.FP32]],
        got: pl.Out[pl.Tensor[[n, 1], pl.INT32]],
        stage: pld.DistributedTensor[[rows, SIZE], pl.FP32],
        data: pld.DistributedTensor[[rows, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[n, 1], pl.INT32],
        recv: pld.DistributedTensor[[n, 1], pl.INT32],
    ):
        stage = pl.store(pl.load(x, [0, 0], [rows, SIZE]), [0, 0], stage)
        data = pld.tensor.all_to_all_v(stage, data, signal, counts, recv)
        got = pl.store(pl.load(recv, [0, 0], [n, 1]), [0, 0], got)
        y = pl.store(pl.load(data, [0, 0], [rows, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(
        x: pl.Tensor[[n, rows, SIZE], pl.FP32],
        counts: pl.Tensor[[n, n], pl.INT32],
        y: pl.Out[pl.Tensor[[n, rows, SIZE], pl.FP32]],
        got: pl.Out[pl.Tensor[[n, n, 1], pl.INT32]],
    ):
        stage_buf = pld.alloc_window_buffer([rows, SIZE], dtype=pl.FP32)
        data_buf = pld.alloc_window_buffer([rows, SIZE], dtype=pl.FP32)
        signal_buf = pld.alloc_window_buffer([n, 1], dtype=pl.INT32)
        recv_buf = pld.alloc_window_buffer([n, 1], dtype=pl.INT32)
        for r in pl.range(pld.world_size()):
            stage = pld.window(stage_buf, [rows, SIZE], dtype=pl.FP32)
            data = pld.window(data_buf, [rows, SIZE], dtype=pl.FP32)
            signal = pld.window(signal_buf, [n, 1], dtype=pl.INT32)
            recv = pld.window(recv_buf, [n, 1], dtype=pl.INT32)
            step(x[r], counts[r], y[r], got[r], stage, data, signal, recv, device=r)

    return host


def make_host_all_to_all_v(n: int, cap: int):
    """The same exchange as PyPTO's host builtin: every operand a pld.window view (the counts
    an [n, 1] window too), staged per rank, exchanged on the host, read back per rank."""
    rows = n * cap

    @pl.jit.incore
    def stage(
        x: pl.Tensor[[rows, SIZE], pl.FP32],
        counts: pl.Tensor[[n, 1], pl.INT32],
        src: pld.DistributedTensor[[rows, SIZE], pl.FP32],
        sent: pld.DistributedTensor[[n, 1], pl.INT32],
    ):
        src = pl.store(pl.load(x, [0, 0], [rows, SIZE]), [0, 0], src)
        sent = pl.store(pl.load(counts, [0, 0], [n, 1]), [0, 0], sent)
        return src

    @pl.jit.incore
    def readback(
        data: pld.DistributedTensor[[rows, SIZE], pl.FP32],
        recv: pld.DistributedTensor[[n, 1], pl.INT32],
        y: pl.Out[pl.Tensor[[rows, SIZE], pl.FP32]],
        got: pl.Out[pl.Tensor[[n, 1], pl.INT32]],
    ):
        got = pl.store(pl.load(recv, [0, 0], [n, 1]), [0, 0], got)
        y = pl.store(pl.load(data, [0, 0], [rows, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(
        x: pl.Tensor[[n, rows, SIZE], pl.FP32],
        counts: pl.Tensor[[n, n, 1], pl.INT32],
        y: pl.Out[pl.Tensor[[n, rows, SIZE], pl.FP32]],
        got: pl.Out[pl.Tensor[[n, n, 1], pl.INT32]],
    ):
        src_buf = pld.alloc_window_buffer([rows, SIZE], dtype=pl.FP32)
        data_buf = pld.alloc_window_buffer([rows, SIZE], dtype=pl.FP32)
        signal_buf = pld.alloc_window_buffer([n, 1], dtype=pl.INT32)
        sent_buf = pld.alloc_window_buffer([n, 1], dtype=pl.INT32)
        recv_buf = pld.alloc_window_buffer([n, 1], dtype=pl.INT32)
        src = pld.window(src_buf, [rows, SIZE], dtype=pl.FP32)
        data = pld.window(data_buf, [rows, SIZE], dtype=pl.FP32)
        signal = pld.window(signal_buf, [n, 1], dtype=pl.INT32)
        sent = pld.window(sent_buf, [n, 1], dtype=pl.INT32)
        recv = pld.window(recv_buf, [n, 1], dtype=pl.INT32)
        for r in pl.range(pld.world_size()):
            stage(x[r], counts[r], src, sent, device=r)
        data = pld.tensor.all_to_all_v(src, data, signal, sent, recv)
        for r in pl.range(pld.world_size()):
            readback(data, recv, y[r], got[r], device=r)

    return host
