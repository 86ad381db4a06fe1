"""`pl.tensor.dim(x, axis)` in an orchestration function, as PyPTO folds it.

A parameter's dynamic extent already has a name, the dim symbol of its annotation
(`x: pl.Tensor[[T, 8], ...]`). PyPTO's parser folds `pl.tensor.dim(x, 0)` onto that symbol in
orchestration bodies (where the symbol is a runtime value) instead of minting a second scalar
for the same extent, and `n = pl.tensor.dim(x, 0)` binds the name `n` to the symbol itself. So
a tensor created with `[n, 8]` has the same type as one annotated `[T, 8]`, and a value of one
may be rebound to the other. Elsewhere (an InCore or inline body, a tensor that is not a bare
name, an axis that is no constant, an extent that is not a parameter's symbol)
`pl.tensor.dim` stays a runtime read.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from pldsl.enums import FunctionType
from pldsl.ir.nodes import Expr, Var
from pldsl.ir.types import TensorType

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder


def fold_tensor_dim(b: BodyBuilder, call: ast.Call) -> Var | None:
    """The parameter dim symbol `pl.tensor.dim(x, axis)` reads, or None (a runtime read)."""
    if b.options["type"] != FunctionType.Orchestration:
        return None
    given = {kw.arg: kw.value for kw in call.keywords}
    if set(given) - {"tensor", "axis"}:
        return None
    args = list(call.args)
    tensor = given.get("tensor") or (args.pop(0) if args else None)
    axis_node = given.get("axis") or (args.pop(0) if args else None)
    if not isinstance(tensor, ast.Name) or axis_node is None or args:
        return None
    try:
        axis = b.static.eval(axis_node)
    except Exception:  # noqa: BLE001 - not a capture-time constant: a runtime read
        return None
    var = b.vars.get(tensor.id)
    if not isinstance(axis, int) or isinstance(axis, bool) or var is None:
        return None
    t = var.type
    if not isinstance(t, TensorType) or not -t.rank <= axis < t.rank:
        return None  # an out-of-range axis is the op's error to report
    extent = t.shape[axis]
    if isinstance(extent, Var) and extent.name in b.dim_names:
        return Var(extent.name, extent.type, b.span(call))
    return None


def alias_dim_symbol(b: BodyBuilder, target: ast.Name, value: Expr) -> bool:
    """`n = <a parameter's dim symbol>` binds `n` to the symbol itself (no new scalar)."""
    if not (isinstance(value, Var) and value.name in b.dim_names):
        return False
    old = b.vars.get(target.id)
    if old is not None and not is_alias(b, target.id, old):
        return False  # an ordinary variable: assigned as usual
    if b.strict_ssa or target.id in b.dim_names:
        return False
    b.vars[target.id] = Var(value.name, value.type, b.span(target))
    b.bound_in[target.id] = tuple(b.block_path)
    return True


def is_alias(b: BodyBuilder, name: str, var: Var) -> bool:
    """Whether `name` is bound to a dim symbol by `alias_dim_symbol` (a later assignment of
    another value gives the name a variable of its own)."""
    return var.name != name and var.name in b.dim_names
