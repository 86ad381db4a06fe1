"""A pypto-lib-style distributed file written here (NumPy specs, no torch): a hand-rolled mesh
all-reduce over notify/wait and remote loads, checked by run_jit against its golden. The rank
count is the DistributedConfig's device ids (three)."""

import numpy as np
import pypto.language as pl
import pypto.language.distributed as pld
from golden import TensorSpec, run_jit
from pypto.ir.distributed_compiled_program import DistributedConfig

N = 3
SIZE = 32


@pl.jit.incore
def reduce_step(
    inp: pl.Tensor[[1, SIZE], pl.FP32],
    out: pl.Out[pl.Tensor[[1, SIZE], pl.FP32]],
    data: pld.DistributedTensor[[1, SIZE], pl.FP32],
    signal: pld.DistributedTensor[[N, 1], pl.INT32],
):
    me = pld.rank(pld.get_comm_ctx(data))
    data = pl.store(pl.load(inp, [0, 0], [1, SIZE]), [0, 0], data)
    for peer in pl.range(N):
        if peer != me:
            pld.system.notify(
                signal, peer=peer, offsets=[me, 0], value=1, op=pld.NotifyOp.AtomicAdd
            )
    for src in pl.range(N):
        if src != me:
            pld.system.wait(signal, offsets=[src, 0], expected=1, cmp=pld.WaitCmp.Ge)
    acc = pl.load(data, [0, 0], [1, SIZE])
    for peer in pl.range(N):
        if peer != me:
            acc = pl.add(
                acc, pld.tile.remote_load(data, peer=peer, offsets=[0, 0], shape=[1, SIZE])
            )
    return pl.store(acc, [0, 0], out)


@pl.jit.host
def mesh(
    inputs: pl.Tensor[[N, 1, SIZE], pl.FP32], outputs: pl.Out[pl.Tensor[[N, 1, SIZE], pl.FP32]]
):
    data_buf = pld.alloc_window_buffer([1, SIZE], dtype=pl.FP32)
    signal_buf = pld.alloc_window_buffer([N, 1], dtype=pl.INT32)
    for r in pl.range(pld.world_size()):
        data = pld.window(data_buf, [1, SIZE], dtype=pl.FP32)
        signal = pld.window(signal_buf, [N, 1], dtype=pl.INT32)
        reduce_step(inputs[r], outputs[r], data, signal, device=r)


def golden(t):
    t["outputs"][:] = t["inputs"].sum(axis=0, keepdims=True)


if __name__ == "__main__":
    rows = np.arange(N * SIZE, dtype=np.float32).reshape(N, 1, SIZE)
    specs = [TensorSpec("inputs", [N, 1, SIZE], np.float32, init_value=rows),
             TensorSpec("outputs", [N, 1, SIZE], np.float32, is_output=True)]  # fmt: skip
    config = dict(distributed_config=DistributedConfig(device_ids=list(range(N))))
    result = run_jit(fn=mesh, specs=specs, golden_fn=golden, compile_cfg=config)
    raise SystemExit(0 if result.passed else 1)
