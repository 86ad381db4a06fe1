"""Enumerations of the `pl` surface, spelled as PyPTO spells them."""

from __future__ import annotations

from enum import Enum, IntEnum


class FunctionType(Enum):
    Opaque = "Opaque"
    Orchestration = "Orchestration"
    InCore = "InCore"
    AIC = "AIC"
    AIV = "AIV"
    Group = "Group"
    Spmd = "Spmd"
    Inline = "Inline"


class Level(IntEnum):
    AIV = 0
    AIC = 1
    CORE_GROUP = 2
    CHIP_DIE = 3
    L2CACHE = 3
    CHIP = 4
    PROCESSOR = 4
    UMA = 4
    HOST = 5
    NODE = 5
    CLUSTER_0 = 6
    POD = 6
    CLUSTER_1 = 7
    CLOS1 = 7
    CLUSTER_2 = 8
    CLOS2 = 8
    GLOBAL = 9


class Role(Enum):
    Orchestrator = "Orchestrator"
    SubWorker = "SubWorker"


class PadValue(Enum):
    null = "null"
    zero = "zero"
    min = "min"
    max = "max"


class AtomicType(Enum):
    """pl.assemble's combine mode (PyPTO's AtomicType): None_ overwrites, Add adds into the
    target."""

    None_ = "none"
    Add = "add"


class MemorySpace(Enum):
    """Where a value lives: DDR is global memory (every `pl.Tensor`); the rest are the on-chip
    buffers of the tile level (a `pl.Tile` is in one of them, `Vec` by default)."""

    DDR = "DDR"
    Vec = "Vec"
    Mat = "Mat"
    Left = "Left"
    Right = "Right"
    Acc = "Acc"
    Bias = "Bias"


class MaskPattern(IntEnum):
    """PyPTO's `pl.tile.MaskPattern`: which columns a mask gather keeps (bit 0 = the first
    column of each group): P0101 the even ones, P1010 the odd ones, P0001..P1000 one of every
    four, P1111 all."""

    P0101 = 1
    P1010 = 2
    P0001 = 3
    P0010 = 4
    P0100 = 5
    P1000 = 6
    P1111 = 7


class Optimizer(Enum):
    """Historical scheduling hints (no numeric effect): accepted, recorded, printed."""

    chunked_loop_optimizer = "chunked_loop_optimizer"
    auto_chunk = "auto_chunk"


class NotifyOp(Enum):
    """`pld.system.notify`: how the value lands in the peer's signal cell."""

    AtomicAdd = "AtomicAdd"
    Set = "Set"


class WaitCmp(Enum):
    """`pld.system.wait`: how the local signal cell is compared with `expected`."""

    Eq = "Eq"
    Ne = "Ne"
    Gt = "Gt"
    Ge = "Ge"
    Lt = "Lt"
    Le = "Le"


class ReduceOp(Enum):
    """The element-wise reduction of a `pld` collective."""

    Sum = "Sum"
    Max = "Max"
    Min = "Min"
    Prod = "Prod"


ENUMS: dict[str, type[Enum]] = {
    "FunctionType": FunctionType,
    "Level": Level,
    "Role": Role,
    "PadValue": PadValue,
    "AtomicType": AtomicType,
    "MemorySpace": MemorySpace,
    "MaskPattern": MaskPattern,
    "NotifyOp": NotifyOp,
    "WaitCmp": WaitCmp,
    "ReduceOp": ReduceOp,
}
