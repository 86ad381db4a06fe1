"""PyPTO's subscript sugar on tensors (pl-language.md 1.9), lowered to ordinary ops.

* `A[a:b, c:d]` -> `pl.slice(A, [b - a, d - c], [a, c])`; extents are folded to constants
  when the bounds differ by a constant (`A[k0:k0 + 64]` has extent 64) and kept symbolic
  otherwise; omitted bounds are 0 and the dim; fewer indices than the rank mean trailing `:`.
* A scalar index takes one row of that axis and drops the axis (numpy-style), through a
  `pl.reshape` of the slice: `A[i]` on `[M, N]` is `pl.reshape(pl.slice(A, [1, N], [i, 0]), [N])`.
* An all-scalar full-rank index reads one element: `A[i, j]` -> `pl.read(A, [i, j])`.
* `dst[a:b, :] = src` -> `dst = pl.assemble(dst, src, [a, 0])` (the source must fit the window;
  a source fills the axes not indexed by a scalar, and has exactly that rank); `arr[i] = v` on a
  `pl.array` -> `arr = pl.write(arr, [i], v)` (PyPTO takes element writes only on arrays).

No steps, negative indices, `...` or `None` (PyPTO rejects them too).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pldsl.dtypes import INDEX
from pldsl.frontend.capture import fail
from pldsl.ir.nodes import Assign, BinOp, Const, Expr, ListExpr, OpCall, UnaryOp, Var
from pldsl.ir.printer import format_expr, format_type
from pldsl.ir.symbolic import dims_equal, simplify_dim, static_value
from pldsl.ir.types import Dim, ScalarType, TensorType
from pldsl.ops import lookup

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder

_HELP = "subscripts take `a:b` slices and scalar indices, e.g. t[k0:k0 + 64, :] or t[i, j]"


@dataclass
class Window:
    offsets: list[Expr]
    extents: list[Expr]
    dropped: list[bool]  # axis indexed by a scalar (removed from the result)

    @property
    def all_scalar(self) -> bool:
        """A scalar index on every axis (omitted trailing axes count as `:`)."""
        return all(self.dropped)


def _const(value: int, node: ast.AST, b: BodyBuilder) -> Const:
    return Const(int(value), INDEX, b.span(node))


def _dim_expr(d: Dim, node: ast.AST, b: BodyBuilder) -> Expr:
    return _const(d, node, b) if isinstance(d, int) else d


def _linear(e: Expr) -> tuple[dict[str, int], dict[str, Expr], int] | None:
    """e as sum(coeff * atom) + const over INDEX atoms; None when not integer-linear."""
    if isinstance(e, Const):
        if isinstance(e.value, bool) or not isinstance(e.value, int):
            return None
        return {}, {}, e.value
    if isinstance(e, BinOp) and e.op in ("add", "sub"):
        lhs, rhs = _linear(e.lhs), _linear(e.rhs)
        if lhs is None or rhs is None:
            return None
        sign = 1 if e.op == "add" else -1
        coeffs, atoms = dict(lhs[0]), {**lhs[1], **rhs[1]}
        for k, c in rhs[0].items():
            coeffs[k] = coeffs.get(k, 0) + sign * c
        return coeffs, atoms, lhs[2] + sign * rhs[2]
    if isinstance(e, BinOp) and e.op == "mul":
        lhs, rhs = _linear(e.lhs), _linear(e.rhs)
        if lhs is None or rhs is None:
            return None
        for scalar, other in ((lhs, rhs), (rhs, lhs)):
            if not scalar[0]:
                k = scalar[2]
                return {a: c * k for a, c in other[0].items()}, other[1], other[2] * k
        return _atom(e)
    if isinstance(e, UnaryOp) and e.op == "neg":
        inner = _linear(e.operand)
        if inner is None:
            return None
        return {a: -c for a, c in inner[0].items()}, inner[1], -inner[2]
    return _atom(e)


def _atom(e: Expr) -> tuple[dict[str, int], dict[str, Expr], int] | None:
    t = getattr(e, "type", None)
    if not (isinstance(t, ScalarType) and t.dtype.is_int):
        return None
    key = e.name if isinstance(e, Var) else format_expr(e)
    return {key: 1}, {key: e}, 0


def extent(upper: Expr, lower: Expr, node: ast.AST, b: BodyBuilder) -> Expr:
    """upper - lower, folded to a constant or a single term when the bounds allow it."""
    if isinstance(lower, Const) and lower.value == 0:
        return upper
    hi, lo = _linear(upper), _linear(lower)
    if hi is not None and lo is not None:
        coeffs = dict(hi[0])
        for k, c in lo[0].items():
            coeffs[k] = coeffs.get(k, 0) - c
        coeffs = {k: c for k, c in coeffs.items() if c}
        const = hi[2] - lo[2]
        if not coeffs:
            return _const(const, node, b)
        if const == 0 and len(coeffs) == 1:
            (key, c), atoms = next(iter(coeffs.items())), {**hi[1], **lo[1]}
            if c == 1:
                return atoms[key]
    diff = simplify_dim(BinOp("sub", upper, lower, ScalarType(INDEX), b.span(node)))
    return _dim_expr(diff, node, b)


def _check_nonnegative(e: Expr, node: ast.AST, b: BodyBuilder, what: str) -> None:
    value = static_value(e)
    if value is not None and value < 0:
        raise fail(
            "UnsupportedFeature",
            f"negative {what} {value} in a tensor subscript",
            b.span(node),
            "negative indices are not supported; write the offset explicitly",
        )


def window(b: BodyBuilder, t: TensorType, node: ast.Subscript) -> Window:
    items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if len(items) > t.rank:
        raise fail(  # PyPTO's wording
            "TypeError",
            f"Tensor subscript has {len(items)} indices but the tensor is {t.rank}D",
            b.span(node.slice),
            f"Provide at most {t.rank} indices for a {t.rank}D tensor",
        )
    offsets, extents, dropped = [], [], []
    for axis, item in enumerate(items):
        dim = t.shape[axis]
        if isinstance(item, ast.Constant) and (item.value is Ellipsis or item.value is None):
            raise fail(
                "UnsupportedFeature",
                f"'{'...' if item.value is Ellipsis else 'None'}' is not supported in tensor subscripts",
                b.span(item),
                _HELP,
            )
        if isinstance(item, ast.Starred):
            raise fail("UnsupportedFeature", "*unpacking in a subscript", b.span(item), _HELP)
        if isinstance(item, ast.Slice):
            if item.step is not None:
                raise fail(
                    "UnsupportedFeature",
                    "slice steps are not supported",
                    b.span(item.step),
                    "take a contiguous window a:b",
                )
            lower = b.index_expr(item.lower) if item.lower is not None else _const(0, item, b)
            upper = b.index_expr(item.upper) if item.upper is not None else _dim_expr(dim, item, b)
            _check_nonnegative(lower, item.lower or item, b, "bound")
            _check_nonnegative(upper, item.upper or item, b, "bound")
            ext = extent(upper, lower, item, b)
            n, d = static_value(ext), static_value(dim)
            if n is not None and n <= 0:
                raise fail(
                    "ValueError",
                    f"empty or reversed slice (extent {n}) on axis {axis}",
                    b.span(item),
                    "the upper bound must exceed the lower bound",
                )
            hi = static_value(upper) if isinstance(upper, (Const, BinOp)) else None
            if hi is not None and d is not None and hi > d:
                raise fail(
                    "ValueError",
                    f"slice bound {hi} exceeds dim {d} on axis {axis}",
                    b.span(item),
                    "the window must lie inside the tensor",
                )
            offsets.append(lower)
            extents.append(ext)
            dropped.append(False)
        else:
            idx = b.index_expr(item)
            _check_nonnegative(idx, item, b, "index")
            i, d = static_value(idx) if isinstance(idx, Const) else None, static_value(dim)
            if i is not None and d is not None and i >= d:
                raise fail(
                    "ValueError",
                    f"index {i} out of range for dim {d} on axis {axis}",
                    b.span(item),
                    "indices run from 0 to dim - 1",
                )
            offsets.append(idx)
            extents.append(_const(1, item, b))
            dropped.append(True)
    for axis in range(len(items), t.rank):
        offsets.append(_const(0, node, b))
        extents.append(_dim_expr(t.shape[axis], node, b))
        dropped.append(False)
    return Window(offsets, extents, dropped)


def _op(b: BodyBuilder, name: str, node: ast.AST, **kwargs) -> OpCall:
    from pldsl.frontend.body import checked_op_call

    return checked_op_call(lookup(name), kwargs, b.span(node), " (from a subscript)")


def load(b: BodyBuilder, value: Expr, node: ast.Subscript) -> Expr:
    """`A[...]` in an expression."""
    t = value.type
    w = window(b, t, node)
    span = b.span(node)
    if w.all_scalar:
        return _op(b, "read", node, x=value, indices=ListExpr(tuple(w.offsets), span))
    sliced = _op(
        b,
        "slice",
        node,
        x=value,
        shape=ListExpr(tuple(w.extents), span),
        offset=ListExpr(tuple(w.offsets), span),
    )
    if not any(w.dropped):
        return sliced
    kept = tuple(e for e, d in zip(w.extents, w.dropped) if not d)
    return _op(b, "reshape", node, x=sliced, shape=ListExpr(kept, span))


def store(b: BodyBuilder, target: ast.Subscript, value_node: ast.expr, stmt: ast.stmt) -> Assign:
    """`dst[...] = src` as a statement."""
    if b.strict_ssa:
        raise fail(
            "UnsupportedFeature",
            "subscript assignment is disabled with strict_ssa=True",
            b.span(target),
            "write dst2 = pl.assemble(dst, src, [offsets])",
        )
    if not isinstance(target.value, ast.Name) or target.value.id not in b.vars:
        raise fail(
            "UnsupportedFeature",
            "subscript assignment needs a tensor variable on the left",
            b.span(target.value),
            "dst[a:b, :] = src where dst is a tensor name",
        )
    dst = b.name(target.value)
    t = dst.type
    if not isinstance(t, TensorType):
        raise fail(
            "TypeError",
            f"cannot assign into a subscript of {format_type(t)}",
            b.span(target.value),
            "only tensors take subscript assignment",
        )
    w = window(b, t, target)
    src = b.expr(value_node)
    span = b.span(stmt)
    if w.all_scalar and isinstance(src.type, ScalarType) and dst.name in b.arrays:
        have, want = src.type.dtype, t.dtype
        if have != want and INDEX in (have, want) and have.is_int and want.is_int:
            # PyPTO's array.update_element takes an INDEX value into any integer array (and
            # any integer into an INDEX one), converting it: `cursor[i] = cursor[i] + 1`
            src = _op(b, "cast", value_node, x=src, target_type=want)
        call = _op(b, "write", stmt, x=dst, indices=ListExpr(tuple(w.offsets), span), value=src)
        return Assign((b.bind(dst.name, call.type, target.value),), call, span)
    if not isinstance(src.type, TensorType):
        # PyPTO's wording: only arrays (pl.array.create, pl.Array) take element writes
        raise fail(
            "TypeError",
            f"Subscript-write source must also be a tensor, got {format_type(src.type)}",
            b.span(value_node),
            "write one element with pl.write(dst, [i, j], v) (or use a pl.array for scalars)",
        )
    kept = [(e, i) for i, (e, d) in enumerate(zip(w.extents, w.dropped)) if not d]
    if src.type.rank != len(kept):
        raise fail(  # PyPTO's wording
            "TypeError",
            f"Subscript-write source must be {len(kept)}D to match the rank-reduced tensor "
            f"window, got {src.type.rank}D",
            b.span(value_node),
            "A scalar index removes its axis from the lhs window; the rhs rank must match the "
            "remaining axes",
        )
    valid = src.type.effective_valid_shape
    for k, (ext, _axis) in enumerate(kept):
        sdim, svalid = src.type.shape[k], valid[k]
        if dims_equal(sdim, ext) or dims_equal(svalid, ext):
            continue
        if static_value(ext) is None or static_value(sdim) is None:
            continue  # as PyPTO: a runtime extent cannot be proven to mismatch
        if static_value(svalid) is None:
            continue  # a runtime valid_shape may match the window
        raise fail(  # PyPTO's wording
            "TypeError",
            f"Subscript-write shape mismatch on source axis {k}: window expects "
            f"{format_expr(ext)} elements, source has {format_expr(sdim)}",
            b.span(target),
            "slice the window to the source's shape (or give the source that valid_shape)",
        )
    if any(w.dropped):
        full, k = [], 0
        for d in w.dropped:
            if d:
                full.append(_const(1, stmt, b))
            else:
                full.append(_dim_expr(src.type.shape[k], stmt, b))
                k += 1
        src = _op(b, "reshape", value_node, x=src, shape=ListExpr(tuple(full), span))
    call = _op(b, "assemble", stmt, target=dst, source=src, offset=ListExpr(tuple(w.offsets), span))
    return Assign((b.bind(dst.name, call.type, target.value),), call, span)
