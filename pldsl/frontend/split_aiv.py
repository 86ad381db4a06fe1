"""PyPTO's AIV-split regions: `for aiv_id in pl.split_aiv(n, mode=pl.SplitMode.X)`.

On the device the body runs once on each of the `n` vector lanes of a core, `aiv_id` the lane.
Its sequential meaning here: the lanes run one after another, lane 0 first, so the region is
captured as `For(kind="range")` over 0..n-1 carrying the attr `split_aiv=<mode>` (a hint: the
loop's values do not depend on it). The crossings name what each lane sees of a value made
outside the region:

* `pl.aiv_shard(x)` (cube -> vector): with `UP_DOWN` the lane's band of rows, with
  `LEFT_RIGHT` its band of columns (`x`'s extent on that axis divided by `n`, at
  `aiv_id * band`), captured as that `pl.slice`; with `NONE` all of `x`.
* `pl.aic_gather(x)` (vector -> cube): with `NONE` the value itself (PyPTO: only a value every
  lane holds alike is well defined); the rejoining of lane halves in the data-parallel modes is
  not supported (it needs every lane's value at once).

In a data-parallel region PyPTO also halves the region's other vector work between the lanes;
here every lane runs the body on the shapes written, which gives the same values when what the
lanes write does not depend on how many times it is written (the crossings above, stores of
the same values); a body that accumulates (an atomic add, a notify) counts once per lane.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pldsl.dtypes import INDEX
from pldsl.frontend.capture import fail
from pldsl.ir.nodes import BinOp, Const, Expr, For, ListExpr, Var
from pldsl.ir.printer import format_type
from pldsl.ir.symbolic import static_value, types_equal
from pldsl.ir.types import ScalarType, TensorType
from pldsl.ops import lookup
from pldsl.types import SplitMode

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder

_USAGE = "for aiv_id in pl.split_aiv(2, mode=pl.SplitMode.UP_DOWN):"


@dataclass(frozen=True)
class Region:
    lane: Var
    lanes: int
    mode: SplitMode


def for_split_aiv(b: BodyBuilder, s: ast.For) -> For:
    """The region as a loop over its lanes (see the module docstring)."""
    call = s.iter
    assert isinstance(call, ast.Call)
    if len(call.args) != 1 or [kw.arg for kw in call.keywords] != ["mode"]:
        raise fail(
            "TypeError",
            "pl.split_aiv takes the lane count and mode=: pl.split_aiv(n, mode=pl.SplitMode.X)",
            b.span(call),
            _USAGE,
        )
    lanes = b.static_value(call.args[0], "the lane count of pl.split_aiv")
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise fail(
            "TypeError",
            f"the lane count of pl.split_aiv must be a positive integer constant, got {lanes!r}",
            b.span(call.args[0]),
            _USAGE,
        )
    mode = b.static_value(call.keywords[0].value, "mode= of pl.split_aiv")
    if not isinstance(mode, SplitMode):
        raise fail(
            "TypeError",
            "mode= of pl.split_aiv must be a pl.SplitMode",
            b.span(call.keywords[0].value),
            _USAGE,
        )
    if not isinstance(s.target, ast.Name):
        raise fail(
            "UnsupportedFeature",
            "the target of a pl.split_aiv loop is one name (the lane index)",
            b.span(s.target),
            _USAGE,
        )
    if s.orelse:
        raise fail("UnsupportedFeature", "for/else is not supported", b.span(s.orelse[0]))
    lane = _lane_var(b, s.target)
    b.aiv_regions.append(Region(lane, lanes, mode))
    b.loop_kinds.append("split_aiv")
    b.contexts.append("loop")
    try:
        body = b.block(s.body)
    finally:
        b.contexts.pop()
        b.loop_kinds.pop()
        b.aiv_regions.pop()
    zero, one = Const(0, INDEX), Const(1, INDEX)
    stop = Const(lanes, INDEX)
    return For(
        lane, "range", zero, stop, one, body, attrs=(("split_aiv", mode.value),), span=b.span(s)
    )


def _lane_var(b: BodyBuilder, node: ast.Name) -> Var:
    """The lane index: an INDEX loop variable, defined afresh as a loop's (frontend/body.py)."""
    old = b.vars.get(node.id)
    if old is not None and not b.strict_ssa and not types_equal(old.type, ScalarType(INDEX)):
        return b._fresh_var(node.id, ScalarType(INDEX), node)
    return b.bind(node.id, ScalarType(INDEX), node)


def crossing(b: BodyBuilder, name: str, node: ast.Call) -> Expr:
    """`pl.aiv_shard(x)` / `pl.aic_gather(x)` in the innermost region."""
    short = name.rsplit(".", 1)[-1]
    if not b.aiv_regions:
        raise fail(
            "UnsupportedFeature",
            f"pl.{short} must be used inside a 'for aiv_id in pl.split_aiv(...)' loop, which "
            "supplies the split mode",
            b.span(node),
            _USAGE,
        )
    if len(node.args) != 1 or node.keywords:
        raise fail("TypeError", f"pl.{short} takes one operand", b.span(node), f"pl.{short}(x)")
    x = b.expr(node.args[0])
    region = b.aiv_regions[-1]
    if not isinstance(x.type, TensorType) or x.type.rank != 2:
        got = format_type(x.type)
        raise fail(
            "TypeError",
            f"pl.{short} takes a 2-D tile or tensor, got {got}",
            b.span(node.args[0]),
            "pass the 2-D value that crosses between the cube and the vector lanes",
        )
    if region.mode is SplitMode.NONE:
        return x  # no split axis: the value crosses whole
    if short == "aic_gather":
        raise fail(
            "UnsupportedFeature",
            f"pl.aic_gather in a {region.mode.value} region (rejoining the lanes' halves) is "
            "not supported: the lanes run one after another here",
            b.span(node),
            "gather out of a mode=pl.SplitMode.NONE region, or store each lane's half to a "
            "tensor at its lane offset",
        )
    return _lane_band(b, x, region, node)


def _lane_band(b: BodyBuilder, x: Expr, region: Region, node: ast.Call) -> Expr:
    from pldsl.frontend.body import checked_op_call

    axis = 0 if region.mode is SplitMode.UP_DOWN else 1
    extent = static_value(x.type.shape[axis])
    if extent is None or extent % region.lanes:
        raise fail(
            "TypeError",
            f"pl.aiv_shard in a {region.mode.value} region splits axis {axis} of "
            f"{format_type(x.type)} into {region.lanes} equal bands: it must be a constant "
            f"multiple of {region.lanes}",
            b.span(node.args[0]),
            "pad the operand's split axis to a multiple of the lane count",
        )
    band = extent // region.lanes
    span = b.span(node)
    start = BinOp("mul", region.lane, Const(band, INDEX), ScalarType(INDEX), span)
    shape = [Const(band, INDEX) if a == axis else _dim(d) for a, d in enumerate(x.type.shape)]
    offset = [start if a == axis else Const(0, INDEX) for a in range(2)]
    keywords = {
        "x": x,
        "shape": ListExpr(tuple(shape), span),
        "offset": ListExpr(tuple(offset), span),
    }
    return checked_op_call(lookup("slice"), keywords, span, " (from pl.aiv_shard)")


def _dim(d) -> Expr:
    return Const(d, INDEX) if isinstance(d, int) else d
