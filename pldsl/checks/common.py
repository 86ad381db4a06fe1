"""Shared helpers of the static checks: traversal, access windows, buffer aliases, liveness.

Names, not `Var` objects, identify variables: the frontend keeps one name per variable
(non-SSA rebinding) and builds a fresh `Var` node for every use and every binding, so each
carries its own span (a finding about an assignment points at its target).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from pldsl.enums import FunctionType

# Re-exported for the rules: the analyses live once, in pldsl.ir.analysis.
from pldsl.ir.analysis import OUT_DIRECTIONS, Aliases, Liveness, callee, returned_params  # noqa: E402, F401
from pldsl.ir.nodes import (
    Expr,
    Function,
    OpCall,
)
from pldsl.ir.types import TensorType

WRAPPER_TYPES = (FunctionType.Group, FunctionType.Spmd)


# ------------------------------------------------------------------ ops


def dim_extent(call: OpCall) -> object:
    """The shape entry (int or expression) a `pl.tensor.dim(x, axis)` call reads."""
    return call.args[0].type.shape[call.attr("axis")]


@dataclass(frozen=True)
class Window:
    """What an access touches: a box (offsets + extents) or one element (indices)."""

    tensor: Expr  # the tensor read or written
    offsets: tuple[Expr, ...]
    extents: tuple[object, ...] | None  # Dims (int or Expr); None for element accesses


_WINDOWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def access_window(call: OpCall) -> Window | None:
    """The window of a slice / assemble / read / write / load / store op call (None for other
    ops); cached,
    since IR nodes are immutable and structure-only runs ask for the same window often."""
    try:
        return _WINDOWS[call]
    except KeyError:
        w = _WINDOWS[call] = _window(call)
        return w


def _window(call: OpCall) -> Window | None:
    op = call.op
    if op == "slice":
        extents = call.arg("valid_shape") or call.arg("shape")  # a trimmed tile reads less
        return Window(call.arg("x"), call.arg("offset").items, extents.items)
    if op in ("read", "write"):
        return Window(call.arg("x"), call.arg("indices").items, None)
    if op == "assemble":
        source = call.arg("source").type.effective_valid_shape
        offsets = call.arg("offset").items
        return Window(call.arg("target"), offsets, _trailing(source, len(offsets)))
    if op == "load" and not call.attr("clamp"):  # a clamped load reads at most to the edge
        extents = call.arg("valid_shape") or call.arg("shapes")
        return Window(call.arg("tensor"), call.arg("offsets").items, extents.items)
    if op == "store":  # the tile level's assemble: the tile's valid region, in place
        source = call.arg("tile").type.effective_valid_shape
        offsets = call.arg("offsets").items
        return Window(call.arg("output_tensor"), offsets, _trailing(source, len(offsets)))
    return None


def _trailing(extents: tuple, rank: int) -> tuple:
    """The source's extents on the target's `rank` axes: a lower-rank source fills the
    trailing axes (leading extents 1); a higher-rank one drops its leading axes of 1 (a batched
    matmul's [1, M, N] result)."""
    extents = tuple(extents)
    if len(extents) > rank:
        return extents[len(extents) - rank :]
    return (1,) * (rank - len(extents)) + extents


# ------------------------------------------------------------------ functions


def out_params(func: Function) -> dict[str, str]:
    """Out/InOut tensor parameters: name -> direction."""
    return {
        p.name: p.direction
        for p in func.params
        if p.direction in OUT_DIRECTIONS and isinstance(p.type, TensorType)
    }
