"""The `pld` surface: PyPTO's `pypto.language.distributed`, for kernels that run on several
ranks (`import pldsl.distributed as pld`; under `pldsl pypto`, `import
pypto.language.distributed as pld` gives this module).

    data_buf = pld.alloc_window_buffer([1, SIZE], dtype=pl.FP32)      # host: one slot per rank
    data = pld.window(data_buf, [1, SIZE], dtype=pl.FP32)             # a rank's view of it
    per_rank(x[r], y[r], data, device=r)                               # launch on rank r
    ...
    ctx = pld.get_comm_ctx(data); me = pld.rank(ctx)                   # inside a rank's kernel
    pld.system.notify(signal, peer=p, offsets=[me, 0], value=1, op=pld.NotifyOp.AtomicAdd)
    pld.system.wait(signal, offsets=[p, 0], expected=1, cmp=pld.WaitCmp.Ge)
    t = pld.tile.remote_load(data, peer=p, offsets=[0, 0], shape=[1, SIZE])
    data = pld.tensor.allreduce(data, signal, op=pld.ReduceOp.Sum)

Like `pl`, every op here is captured from source, never called: the names below are
placeholders the frontend resolves to op-table rows named `pld.<name>`
(pldsl/ops/table_distributed.py). How ranks execute is pldsl/interpreter/ranks.py.
"""

from __future__ import annotations

from pldsl.distributed.surface import CommCtx, CommCtxType, DistributedTensor, namespace
from pldsl.enums import AtomicType, NotifyOp, ReduceOp, WaitCmp

alloc_window_buffer = namespace("").alloc_window_buffer
window = namespace("").window
world_size = namespace("").world_size
get_comm_ctx = namespace("").get_comm_ctx
rank = namespace("").rank
nranks = namespace("").nranks
remote_load = namespace("").remote_load
remote_store = namespace("").remote_store
system = namespace("system")
tensor = namespace("tensor")
tile = namespace("tile")

__all__ = [
    "AtomicType",
    "CommCtx",
    "CommCtxType",
    "DistributedTensor",
    "NotifyOp",
    "ReduceOp",
    "WaitCmp",
    "alloc_window_buffer",
    "get_comm_ctx",
    "nranks",
    "rank",
    "remote_load",
    "remote_store",
    "system",
    "tensor",
    "tile",
    "window",
    "world_size",
]
