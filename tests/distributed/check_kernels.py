"""Small distributed kernels with planted bugs (`bug` > 0) and their correct versions
(`bug` == 0), for the checks the simulated ranks make. `bug` is read in the kernel body, so it
is a capture-time constant that selects the branch."""

import pldsl as pl
import pldsl.distributed as pld

SIZE = 32
NR = pl.dynamic("NR")


def _host(step, rows: int):
    @pl.jit.host
    def host(x: pl.Tensor[[NR, 1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]]):
        data_buf = pld.alloc_window_buffer([rows, SIZE], dtype=pl.FP32)
        signal_buf = pld.alloc_window_buffer([NR, 1], dtype=pl.INT32)
        for r in pl.range(pld.world_size()):
            data = pld.window(data_buf, [rows, SIZE], dtype=pl.FP32)
            signal = pld.window(signal_buf, [NR, 1], dtype=pl.INT32)
            step(x[r], y[r], data, signal, device=r)

    return host


def ring(bug: int):
    """Each rank puts its row into the next rank's window, notifies it, waits for its own
    notify, then reads its window: y[r] = x[r-1]. bug 1: waits for 2 notifies (deadlock);
    bug 2: waits on the wrong cell; bug 3: no wait at all (a race seeds can expose)."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        n = pld.nranks(pld.get_comm_ctx(data))
        nxt = (me + 1) % n
        t = pl.load(x, [0, 0], [1, SIZE])
        pld.tile.remote_store(t, data, peer=nxt, offsets=[0, 0])
        pld.system.notify(signal, peer=nxt, offsets=[0, 0], value=1, op=pld.NotifyOp.AtomicAdd)
        if bug == 1:
            pld.system.wait(signal, offsets=[0, 0], expected=2, cmp=pld.WaitCmp.Ge)
        elif bug == 2:
            pld.system.wait(signal, offsets=[1, 0], expected=1, cmp=pld.WaitCmp.Ge)
        elif bug == 0:
            pld.system.wait(signal, offsets=[0, 0], expected=1, cmp=pld.WaitCmp.Ge)
        back = pl.load(data, [0, 0], [1, SIZE])
        y = pl.store(back, [0, 0], y)
        return y

    return _host(step, 1)


def shared_row(bug: int):
    """Every rank writes its row into rank 0's window and rank 0 reads the last row written.
    bug 1: all ranks write row 0 with nothing ordering them (a race); bug 0: rank r writes
    row r; bug 2 (also correct): the writes to row 0 are chained by notify/wait."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[4, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        n = pld.nranks(pld.get_comm_ctx(data))
        t = pl.load(x, [0, 0], [1, SIZE])
        if bug == 1:
            pld.tile.remote_store(t, data, peer=0, offsets=[0, 0])
        elif bug == 0:
            pld.tile.remote_store(t, data, peer=0, offsets=[me, 0])
        else:
            if me > 0:
                pld.system.wait(signal, offsets=[0, 0], expected=1, cmp=pld.WaitCmp.Ge)
            pld.tile.remote_store(t, data, peer=0, offsets=[0, 0])
            if me + 1 < n:
                pld.system.notify(signal, peer=me + 1, offsets=[0, 0], value=1,
                                  op=pld.NotifyOp.AtomicAdd)  # fmt: skip
        y = pl.store(t, [0, 0], y)
        return y

    return _host(step, 4)


def neighbour_load(bug: int):
    """Each rank reads the next rank's window after a barrier. bug 1: the region starts at
    column SIZE/2, so it runs past the window's end; bug 2: no barrier, so the read races
    with the next rank's store."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        n = pld.nranks(pld.get_comm_ctx(data))
        t = pl.load(x, [0, 0], [1, SIZE])
        data = pl.store(t, [0, 0], data)
        if bug != 2:
            signal = pld.tensor.barrier(signal)
        col = (bug % 2) * (SIZE // 2)
        back = pld.tile.remote_load(data, peer=(me + 1) % n, offsets=[0, col], shape=[1, SIZE])
        y = pl.store(back, [0, 0], y)
        return y

    return _host(step, 1)


def neighbour_get(bug: int):
    """Each rank copies the next rank's window into its output with pld.tensor.get once the
    next rank has stored its row and notified. bug 1: the wait is missing (a read race)."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        n = pld.nranks(pld.get_comm_ctx(data))
        data = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], data)
        pld.system.notify(signal, peer=(me + n - 1) % n, offsets=[0, 0], value=1,
                          op=pld.NotifyOp.AtomicAdd)  # fmt: skip
        if bug == 0:
            pld.system.wait(signal, offsets=[0, 0], expected=1, cmp=pld.WaitCmp.Ge)
        y = pld.tensor.get(y, peer=(me + 1) % n, src=data)
        return y

    return _host(step, 1)


def parallel_read(bug: int):
    """Each rank puts its row into the next rank's window, then reads its own window in a
    pl.parallel loop the interpreter would run batched off the ranks (y[r] = x[r-1] + 1).
    bug 1: no barrier between the put and the reads."""

    @pl.jit
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        n = pld.nranks(pld.get_comm_ctx(data))
        pld.tensor.put(data, peer=(me + 1) % n, src=x)
        if bug == 0:
            signal = pld.tensor.barrier(signal)
        for c in pl.parallel(0, SIZE, 8):
            with pl.at(level=pl.Level.CORE_GROUP):
                part = pl.add(pl.slice(data, [1, 8], [0, c]), 1.0)
                y = pl.assemble(y, part, [0, c])
        return y

    return _host(step, 1)


def push_then_allreduce(bug: int):
    """Each rank stores its row in row 0 of its window and pushes it into row 1 of the next
    rank's, then all ranks allreduce the window: y[r] = row 1 = the sum of every x. bug 1: no
    notify/wait between the push and the next rank's allreduce, which reads row 1 on arrival."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[2, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        n = pld.nranks(pld.get_comm_ctx(data))
        t = pl.load(x, [0, 0], [1, SIZE])
        data = pl.store(t, [0, 0], data)
        pld.tile.remote_store(t, data, peer=(me + 1) % n, offsets=[1, 0])
        if bug == 0:
            pld.system.notify(signal, peer=(me + 1) % n, offsets=[0, 0], value=1)
            pld.system.wait(signal, offsets=[0, 0], expected=1)
        data = pld.tensor.allreduce(data, signal)
        y = pl.store(pl.load(data, [1, 0], [1, SIZE]), [0, 0], y)
        return y

    return _host(step, 2)


def rank_branch(bug: int):
    """A barrier every rank must reach. bug 1: only rank 0 calls it (inside an `if`)."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        t = pl.load(x, [0, 0], [1, SIZE])
        data = pl.store(t, [0, 0], data)
        if bug == 1:
            if me == 0:
                signal = pld.tensor.barrier(signal)
        else:
            signal = pld.tensor.barrier(signal)
        y = pl.store(t, [0, 0], y)
        return y

    return _host(step, 1)


def notify_on_plain_tensor():
    """A capture error: a notify on a tensor that is not window-bound."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pl.Tensor[[NR, 1], pl.INT32],
    ):
        pld.system.notify(signal, peer=0, offsets=[0, 0], value=1, op=pld.NotifyOp.AtomicAdd)
        y = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    return _host(step, 1)


def launch_twice():
    """A run-time fault: rank 0 launched twice by one host call."""

    @pl.jit.incore
    def step(x: pl.Tensor[[1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]]):
        y = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(x: pl.Tensor[[NR, 1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]]):
        for r in pl.range(pld.world_size()):
            step(x[r], y[r], device=0)

    return host


def skipped_notify(bug: int):
    """Rank 0 notifies rank 1, which waits. bug 1: the notify sits in a branch no rank takes."""

    @pl.jit.incore
    def step(
        x: pl.Tensor[[1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
        data: pld.DistributedTensor[[1, SIZE], pl.FP32],
        signal: pld.DistributedTensor[[NR, 1], pl.INT32],
    ):
        me = pld.rank(pld.get_comm_ctx(data))
        if me == bug * 5:
            pld.system.notify(signal, peer=1, offsets=[0, 0], value=1, op=pld.NotifyOp.Set)
        if me == 1:
            pld.system.wait(signal, offsets=[0, 0], expected=1, cmp=pld.WaitCmp.Eq)
        y = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    return _host(step, 1)


def half_written_host():
    """A host function whose loop over the ranks has each rank's kernel fill its row of y;
    z is never passed to a kernel: a real UnwrittenOutput (y is not one)."""

    @pl.jit.incore
    def step(x: pl.Tensor[[1, SIZE], pl.FP32], y: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]]):
        y = pl.store(pl.load(x, [0, 0], [1, SIZE]), [0, 0], y)
        return y

    @pl.jit.host
    def host(
        x: pl.Tensor[[NR, 1, SIZE], pl.FP32],
        y: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]],
        z: pl.Out[pl.Tensor[[NR, 1, SIZE], pl.FP32]],
    ):
        for r in pl.range(pld.world_size()):
            step(x[r], y[r], device=r)

    return host
