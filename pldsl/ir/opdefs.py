"""The op table's schema: one OpDef per builtin op, looked up by name.

It lives in the IR package (the IR reads op facts: defaults, which argument an op writes) and
imports nothing from pldsl; `pldsl.ops.table` fills it when `pldsl` is imported, so the op table
imports the IR and never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()

# Parameter kinds: how the frontend converts an argument and where it is stored.
#   tensor / value / scalar -> an IR expression in OpCall.args
#   dims                    -> a ListExpr of index expressions in OpCall.args
#   dtype / attr            -> a static Python value in OpCall.attrs
STATIC_KINDS = ("dtype", "attr")


@dataclass(frozen=True)
class OpParam:
    name: str
    kind: str
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def is_static(self) -> bool:
        return self.kind in STATIC_KINDS


class TypeRuleError(Exception):
    """Raised by a type rule; the frontend turns it into a located CaptureError."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class OpDef:
    name: str
    params: tuple[OpParam, ...]
    infer: Callable[..., Any]  # (args: dict[str, Expr|None], attrs: dict[str, Any]) -> Type
    doc: str
    # "data": allocation, views, reads and writes (legal in orchestration code);
    # "compute": arithmetic that must run inside a `pl.at` scope.
    category: str = "compute"
    # Index of the argument this op writes in place (assemble, write), else None.
    writes_arg: int | None = None
    aliases: tuple[str, ...] = field(default=())
    # Memory spaces (pldsl.ir.memory): "follow" = the generic rule (tile operands give a tile
    # result, tiles and global tensors never mix); "own" = the type rule places its result.
    memory: str = "follow"

    @property
    def runtime_params(self) -> tuple[OpParam, ...]:
        return tuple(p for p in self.params if not p.is_static)

    @property
    def static_params(self) -> tuple[OpParam, ...]:
        return tuple(p for p in self.params if p.is_static)

    def param(self, name: str) -> OpParam | None:
        return next((p for p in self.params if p.name == name), None)


OPS: dict[str, OpDef] = {}
ALIASES: dict[str, str] = {}


def register(op: OpDef) -> OpDef:
    OPS[op.name] = op
    for alias in op.aliases:
        ALIASES[alias] = op.name
    return op


def op_label(name: str) -> str:
    """An op as the user writes it, for messages: `pl.add`; the `pld` ops' names already
    carry their module (`pld.system.notify`)."""
    return name if name.startswith("pld.") else f"pl.{name}"


def lookup(name: str) -> OpDef | None:
    """Find an op by canonical name or alias (`tensor.read` -> `read`); `tile.X` falls back
    to `X`: the unified op serves tiles too (`pl.tile.add` is `pl.add` on tiles)."""
    found = OPS.get(name) or OPS.get(ALIASES.get(name, ""))
    if found is None and name.startswith("tile."):
        return lookup(name[len("tile.") :])
    return found
