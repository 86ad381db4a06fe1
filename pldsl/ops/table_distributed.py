"""The ops of the `pld` surface (PyPTO's pypto.language.distributed), one row each, named
`pld.<name>` as written (`pld.system.notify`, `pld.tensor.allreduce`, ...).

Window memory: `pld.alloc_window_buffer` (host) gives a WindowBuffer, one slot of its shape per
rank; `pld.window` views a slot as a DistributedTensor, which every tensor op reads and writes
like any global tensor; the `pld` ops reach other ranks' slots by rank id. Signals are INT32
DistributedTensors. `pld.launch` is the capture of `f(..., device=r)` in a host function.
"""

from __future__ import annotations

from pldsl.dtypes import BF16, FP16, FP32, INDEX, INT32, UINT8
from pldsl.enums import AtomicType, NotifyOp, ReduceOp, WaitCmp
from pldsl.ir.nodes import Call
from pldsl.ir.opdefs import OpDef, OpParam, TypeRuleError, register
from pldsl.ir.printer import describe_type, format_dims
from pldsl.ir.symbolic import static_value
from pldsl.ir.types import (
    DistributedTensorType,
    ScalarType,
    TensorType,
    TileType,
    WindowBufferType,
)
from pldsl.ops.table import _dims, _tensor

P = OpParam


COLLECTIVES = frozenset(
    (
        "pld.tensor.allreduce",
        "pld.tensor.allgather",
        "pld.tensor.reduce_scatter",
        "pld.tensor.broadcast",
        "pld.tensor.all_to_all",
        "pld.tensor.all_to_all_v",
        "pld.tensor.barrier",
    )
)
REDUCIBLE = (FP32, FP16, BF16, INT32)


def _dist(args: dict, name: str, op: str) -> DistributedTensorType:
    t = getattr(args[name], "type", None)
    if not isinstance(t, DistributedTensorType):
        raise TypeRuleError(
            f"'{name}' must be a window-bound pld.DistributedTensor, got {describe_type(t)}",
            "pass a pld.window(...) view (a parameter annotated pld.DistributedTensor[...])",
        )
    return t


def _scalar_int(args: dict, name: str, op: str) -> None:
    t = getattr(args[name], "type", None)
    if not isinstance(t, ScalarType) or not t.dtype.is_int:
        raise TypeRuleError(f"'{name}' must be an integer scalar, got {describe_type(t)}")


def _offsets(args: dict, name: str, t: TensorType, op: str) -> tuple:
    offsets = _dims(args, name)
    if len(offsets) != t.rank:
        raise TypeRuleError(f"{name} needs {t.rank} entries for a rank-{t.rank} tensor, got "
                            f"{len(offsets)}")  # fmt: skip
    return offsets


def _signal(args: dict, name: str, op: str) -> DistributedTensorType:
    t = _dist(args, name, op)
    if t.dtype != INT32:
        raise TypeRuleError(f"'{name}' must be an INT32 signal, got {t.dtype.name}")
    return t


def row(name: str, params: tuple, infer, doc: str, *, writes: int | None = None,
        category: str = "data", aliases: tuple[str, ...] = ()) -> None:  # fmt: skip
    register(OpDef(name, params, infer, doc, category=category, writes_arg=writes,
                   aliases=aliases, memory="own"))  # fmt: skip


# ------------------------------------------------------------------ host side


def _infer_alloc(args: dict, attrs: dict) -> WindowBufferType:
    shape = _dims(args, "shape")
    if not shape or any(static_value(d) == 0 for d in shape):
        raise TypeRuleError("pld.alloc_window_buffer needs a non-empty shape of positive dims")
    if attrs.get("dtype") is None:
        if len(shape) != 1:
            raise TypeRuleError("pld.alloc_window_buffer requires dtype= with a shape",
                                "pld.alloc_window_buffer([rows, cols], dtype=pl.FP32)")  # fmt: skip
        return WindowBufferType(shape, UINT8)  # a byte size: pld.window gives it a type
    return WindowBufferType(shape, attrs["dtype"])


def _infer_window(args: dict, attrs: dict) -> DistributedTensorType:
    buf = getattr(args["buf"], "type", None)
    if not isinstance(buf, WindowBufferType):
        raise TypeRuleError(f"pld.window expects a pld.alloc_window_buffer result, got "
                            f"{describe_type(buf)}")  # fmt: skip
    shape, dtype = _dims(args, "shape"), attrs["dtype"]
    have, want = _elements(buf.shape), _elements(shape)
    if have is not None and want is not None and want * dtype.bits > have * buf.dtype.bits:
        raise TypeRuleError(
            f"pld.window {format_dims(shape)} {dtype.name} is larger than its buffer "
            f"{format_dims(buf.shape)} {buf.dtype.name}"
        )
    return DistributedTensorType(shape, dtype)


def _elements(shape: tuple) -> int | None:
    n = 1
    for d in shape:
        v = static_value(d)
        if v is None:
            return None
        n *= v
    return n


def _infer_launch(args: dict, attrs: dict):
    _scalar_int(args, "device", "device=")
    call = args["call"]
    if not isinstance(call, Call):
        raise TypeRuleError("device= dispatches a call of a jit function")
    return call.type


row("pld.alloc_window_buffer", (P("shape", "dims"), P("dtype", "dtype", None),
    P("name", "attr", "")), _infer_alloc,
    "Host: a window buffer, one zero-filled slot of this shape and dtype per rank.",
    aliases=("pld.tensor.alloc_window_buffer",))  # fmt: skip
row("pld.window", (P("buf", "tensor"), P("shape", "dims"), P("dtype", "dtype")), _infer_window,
    "Host: a rank's view of a window buffer slot; bound to rank r by the call's device=r.",
    aliases=("pld.tensor.window",))  # fmt: skip
row("pld.world_size", (), lambda args, attrs: ScalarType(INDEX),
    "The number of ranks the program runs on.")  # fmt: skip
row("pld.launch", (P("device", "scalar"), P("call", "value")), _infer_launch,
    "Host: `f(..., device=r)`: run the call on rank r (all launched ranks run concurrently; "
    "the host function returns once every rank has finished).")  # fmt: skip

# ------------------------------------------------------------------ rank identity


def _infer_ctx(args: dict, attrs: dict) -> ScalarType:
    _dist(args, "dist_tensor", "pld.get_comm_ctx")
    return ScalarType(INDEX)


def _infer_rank(args: dict, attrs: dict) -> ScalarType:
    _scalar_int(args, "ctx", "pld.rank")
    return ScalarType(INT32)


row(
    "pld.get_comm_ctx",
    (P("dist_tensor", "tensor"),),
    _infer_ctx,
    "The communication group of a window-bound tensor (pldsl: the world, as a scalar handle).",
)
row("pld.rank", (P("ctx", "scalar"),), _infer_rank, "This rank's id in the group (INT32).")
row("pld.nranks", (P("ctx", "scalar"),), _infer_rank, "The group's rank count (INT32).")

# ------------------------------------------------------------------ signals


def _infer_notify(args: dict, attrs: dict) -> DistributedTensorType:
    t = _signal(args, "target", "pld.system.notify")
    _scalar_int(args, "peer", "pld.system.notify")
    _scalar_int(args, "value", "pld.system.notify")
    _offsets(args, "offsets", t, "pld.system.notify")
    return t


def _infer_wait(args: dict, attrs: dict) -> DistributedTensorType:
    t = _signal(args, "signal", "pld.system.wait")
    _scalar_int(args, "expected", "pld.system.wait")
    _offsets(args, "offsets", t, "pld.system.wait")
    return t


row(
    "pld.system.notify",
    (
        P("target", "tensor"),
        P("peer", "scalar"),
        P("offsets", "dims"),
        P("value", "scalar"),
        P("op", "attr", NotifyOp.AtomicAdd),
    ),
    _infer_notify,
    "Deposit value in the cell at offsets of peer's slot of target (AtomicAdd or Set).",
)
row("pld.system.wait", (P("signal", "tensor"), P("offsets", "dims"), P("expected", "scalar"),
    P("cmp", "attr", WaitCmp.Ge)), _infer_wait,
    "Block until this rank's cell at offsets compares cmp to expected.",
    aliases=("pld.system.defer_wait",))  # fmt: skip

# ------------------------------------------------------------------ remote access


def _infer_remote_load(args: dict, attrs: dict) -> TileType:
    t = _dist(args, "target", "pld.tile.remote_load")
    _scalar_int(args, "peer", "pld.tile.remote_load")
    _offsets(args, "offsets", t, "pld.tile.remote_load")
    shape = _offsets(args, "shape", t, "pld.tile.remote_load")
    valid = _dims(args, "valid_shape") if args.get("valid_shape") is not None else None
    return TileType(shape, t.dtype, valid)


def _infer_remote_store(args: dict, attrs: dict) -> DistributedTensorType:
    src = _tensor(args, "src")
    t = _dist(args, "target", "pld.tile.remote_store")
    _scalar_int(args, "peer", "pld.tile.remote_store")
    _offsets(args, "offsets", t, "pld.tile.remote_store")
    if src.dtype != t.dtype or src.rank != t.rank:
        raise TypeRuleError(f"pld.tile.remote_store of {describe_type(src)} into "
                            f"{describe_type(t)}: dtype and rank must match")  # fmt: skip
    return t


def _infer_transfer(args: dict, attrs: dict) -> TensorType:
    dst, src = _tensor(args, "dst"), _tensor(args, "src")
    _scalar_int(args, "peer", "pld.tensor.put/get")
    if dst.dtype != src.dtype:
        raise TypeRuleError(f"put/get between {dst.dtype.name} and {src.dtype.name}")
    for name, t in (("dst_offsets", dst), ("src_offsets", src)):
        if args.get(name) is not None:
            _offsets(args, name, t, "pld.tensor.put/get")
    if args.get("shape") is not None:
        _dims(args, "shape")
    return dst


row("pld.tile.remote_load", (P("target", "tensor"), P("peer", "scalar"), P("offsets", "dims"),
    P("shape", "dims"), P("valid_shape", "dims", None)), _infer_remote_load,
    "A tile loaded from the window [offsets, offsets+shape) of peer's slot of target.",
    aliases=("pld.remote_load",))  # fmt: skip
row("pld.tile.remote_store", (P("src", "tensor"), P("target", "tensor"), P("peer", "scalar"),
    P("offsets", "dims"), P("atomic", "attr", AtomicType.None_)), _infer_remote_store,
    "Write src into peer's slot of target at offsets (AtomicAdd: add to it).",
    writes=1, aliases=("pld.remote_store", "pld.tensor.remote_store"))  # fmt: skip
_TRANSFER = (P("dst", "tensor"), P("peer", "scalar"), P("src", "tensor"),
             P("dst_offsets", "dims", None), P("src_offsets", "dims", None),
             P("shape", "dims", None))  # fmt: skip
_CHUNKS = (P("chunk_rows", "attr", 0), P("chunk_cols", "attr", 0), P("pipeline", "attr", False))
row(
    "pld.tensor.put",
    (*_TRANSFER, P("atomic", "attr", AtomicType.None_), *_CHUNKS),
    _infer_transfer,
    "Copy this rank's src region into peer's slot of dst.",
    writes=0,
)
row(
    "pld.tensor.get",
    (*_TRANSFER, *_CHUNKS),
    _infer_transfer,
    "Copy peer's slot of src (a region of it) into this rank's dst.",
    writes=0,
)

# ------------------------------------------------------------------ collectives


def _collective_target(args: dict, op: str) -> DistributedTensorType:
    t = _dist(args, "target", op)
    if args.get("signal") is not None:
        _signal(args, "signal", op)
    return t


def _infer_allreduce(args: dict, attrs: dict) -> DistributedTensorType:
    t = _collective_target(args, "pld.tensor.allreduce")
    if t.dtype not in REDUCIBLE:
        raise TypeRuleError(f"pld.tensor.allreduce of {t.dtype.name}: FP32, FP16, BF16 or INT32")
    if attrs.get("mode", "mesh") not in ("mesh", "ring"):
        raise TypeRuleError('pld.tensor.allreduce mode must be "mesh" or "ring"')
    return t


def _infer_reduce_scatter(args: dict, attrs: dict) -> DistributedTensorType:
    return _collective_target(args, "pld.tensor.reduce_scatter")


def _infer_broadcast(args: dict, attrs: dict) -> DistributedTensorType:
    return _collective_target(args, "pld.tensor.broadcast")


def _infer_barrier(args: dict, attrs: dict) -> DistributedTensorType:
    return _signal(args, "signal", "pld.tensor.barrier")


def _infer_gather(args: dict, attrs: dict) -> DistributedTensorType:
    op = "pld.tensor.allgather/all_to_all"
    src = _tensor(args, "input")
    t = _collective_target(args, op)
    if src.dtype != t.dtype:
        raise TypeRuleError(f"{op}: input {src.dtype.name} and target {t.dtype.name} differ")
    return t


def _infer_all_to_all_v(args: dict, attrs: dict) -> DistributedTensorType:
    op = "pld.tensor.all_to_all_v"
    t = _infer_gather(args, attrs)
    src = _tensor(args, "input")
    if src.rank != 2 or t.rank != 2:
        raise TypeRuleError(
            f"{op}: input and target are flat [nranks*max_recv, size] tensors, got "
            f"{describe_type(src)} and {describe_type(t)}"
        )
    for a, b in zip(src.shape, t.shape):
        if None not in (static_value(a), static_value(b)) and static_value(a) != static_value(b):
            raise TypeRuleError(f"{op}: input {format_dims(src.shape)} and target "
                                f"{format_dims(t.shape)} differ")  # fmt: skip
    counts = _tensor(args, "send_counts")
    if (
        counts.dtype != INT32
        or counts.rank not in (1, 2)
        or (counts.rank == 2 and static_value(counts.shape[1]) not in (None, 1))
    ):
        raise TypeRuleError(f"{op}: send_counts is an INT32 [nranks] or [nranks, 1] tensor, got "
                            f"{describe_type(counts)}")  # fmt: skip
    recv = _signal(args, "recv_counts", op)
    if recv.rank != 2 or static_value(recv.shape[1]) not in (None, 1):
        raise TypeRuleError(f"{op}: recv_counts is an INT32 [nranks, 1] window, got "
                            f"{describe_type(recv)}")  # fmt: skip
    return t


REDUCE = P("op", "attr", ReduceOp.Sum)
row(
    "pld.tensor.allreduce",
    (
        P("target", "tensor"),
        P("signal", "tensor", None),
        REDUCE,
        P("mode", "attr", "mesh"),
        P("core_num", "attr", 1),
    ),
    _infer_allreduce,
    "Every rank's target becomes the element-wise reduction of all ranks' targets.",
    writes=0,
)
row("pld.tensor.reduce_scatter", (P("target", "tensor"), P("signal", "tensor"), REDUCE),
    _infer_reduce_scatter,
    "target is [nranks*k, ...]: rank r's chunk r becomes the reduction of every rank's chunk r.",
    writes=0)  # fmt: skip
row(
    "pld.tensor.broadcast",
    (P("target", "tensor"), P("signal", "tensor"), P("root", "attr", 0)),
    _infer_broadcast,
    "Every rank's target becomes root's target.",
    writes=0,
)
row("pld.tensor.allgather", (P("input", "tensor"), P("target", "tensor"),
    P("signal", "tensor")), _infer_gather,
    "target is [nranks*k, ...]: chunk s of every rank's target becomes rank s's input.",
    writes=1)  # fmt: skip
row(
    "pld.tensor.all_to_all",
    (P("input", "tensor"), P("target", "tensor"), P("signal", "tensor")),
    _infer_gather,
    "Chunk s of rank r's target becomes chunk r of rank s's input.",
    writes=1,
)
row(
    "pld.tensor.all_to_all_v",
    (
        P("input", "tensor"),
        P("target", "tensor"),
        P("signal", "tensor"),
        P("send_counts", "tensor"),
        P("recv_counts", "tensor"),
    ),
    _infer_all_to_all_v,
    "MPI_Alltoallv in blocks of cap = rows / nranks: rank s's input rows [r*cap, (r+1)*cap) "
    "land in rank r's target rows [s*cap, ...) (the whole block, whatever the count) and rank "
    "r's recv_counts[s, 0] becomes min(send_counts[r] of rank s, cap).",
    writes=1,
)
row(
    "pld.tensor.barrier",
    (P("signal", "tensor"),),
    _infer_barrier,
    "Every rank waits until all ranks have arrived.",
    writes=0,
)
