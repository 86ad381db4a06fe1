"""Symbolic dims: simplification, equality and evaluation of scalar expressions."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from typing import Any

from pldsl.dtypes import INDEX, INT64
from pldsl.ir.nodes import BinOp, Const, Expr, UnaryOp, Var, structural_equal, walk
from pldsl.ir.types import Dim, ScalarType, TensorType, TupleType, Type, memory_of

_INT_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "min": min,
    "max": max,
}
_ARITHMETIC = {**_INT_OPS, "div": operator.truediv}
_PREDICATES = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
    "and": lambda a, b: bool(a) and bool(b),
    "or": lambda a, b: bool(a) or bool(b),
}


def simplify_dim(d: Dim) -> Dim:
    """Fold constants and identities so equal shapes compare equal."""
    if isinstance(d, bool):
        return int(d)
    if isinstance(d, int):
        return d
    if isinstance(d, Const) and not isinstance(d.value, float):
        return int(d.value)
    if isinstance(d, BinOp) and d.op in _INT_OPS:
        lhs, rhs = simplify_dim(d.lhs), simplify_dim(d.rhs)
        if isinstance(lhs, int) and isinstance(rhs, int):
            if d.op in ("floordiv", "mod") and rhs == 0:
                return d
            return _INT_OPS[d.op](lhs, rhs)
        if d.op in ("add", "sub") and rhs == 0 or d.op in ("mul", "floordiv") and rhs == 1:
            return lhs
        if d.op == "add" and lhs == 0 or d.op == "mul" and lhs == 1:
            return rhs
        if d.op == "sub" and dims_equal(lhs, rhs):
            return 0
        return BinOp(d.op, _as_expr(lhs), _as_expr(rhs), d.type, d.span)
    return d


def _as_expr(d: Dim) -> Expr:
    return Const(d, INDEX) if isinstance(d, int) else d


def dims_equal(a: Dim, b: Dim) -> bool:
    a, b = simplify_dim(a), simplify_dim(b)
    if isinstance(a, int) or isinstance(b, int):
        return isinstance(a, int) and isinstance(b, int) and a == b
    return structural_equal(a, b)


def shapes_equal(a: tuple[Dim, ...] | None, b: tuple[Dim, ...] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(dims_equal(x, y) for x, y in zip(a, b))


def types_equal(a: object, b: object) -> bool:
    """Whether two value types are the same type: tensors by dtype, shape and valid_shape
    (compared after simplification), pad mode and memory space (a tile is not a tensor); INDEX and INT64 scalars count as one type."""
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        return (
            a.dtype == b.dtype
            and shapes_equal(a.shape, b.shape)
            and shapes_equal(a.effective_valid_shape, b.effective_valid_shape)
            and a.pad == b.pad
            and memory_of(a) == memory_of(b)
        )
    if isinstance(a, ScalarType) and isinstance(b, ScalarType):
        return a.dtype == b.dtype or {a.dtype, b.dtype} <= {INDEX, INT64}
    if isinstance(a, TupleType) and isinstance(b, TupleType):
        return len(a.items) == len(b.items) and all(
            types_equal(x, y) for x, y in zip(a.items, b.items)
        )
    return False


def shape_vars(t: object, valid_shape: bool = False) -> list[Var]:
    """The dynamic-dim Vars a tensor type's shape (and valid_shape) names, in order."""
    if not isinstance(t, TensorType):
        return []
    dims = t.shape + (t.valid_shape or ()) if valid_shape else t.shape
    return [n for d in dims if not isinstance(d, int) for n in walk(d) if isinstance(n, Var)]


def static_value(d: Dim) -> int | None:
    """The dim's integer value when it is known at capture time."""
    d = simplify_dim(d)
    return d if isinstance(d, int) else None


class Unbound(Exception):
    """Raised by `evaluate` when an expression needs a value not in the environment."""


def evaluate(e: Dim, env: Mapping[str, int | float | bool]) -> int | float | bool:
    """Evaluate a scalar expression over Python numbers (structure-only runs, binding)."""
    if isinstance(e, (int, float, bool)):
        return e
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Var):
        if e.name not in env:
            raise Unbound(e.name)
        return env[e.name]
    if isinstance(e, UnaryOp):
        v = evaluate(e.operand, env)
        return (not v) if e.op == "not" else -v
    if isinstance(e, BinOp):
        return apply_scalar_binop(e.op, evaluate(e.lhs, env), evaluate(e.rhs, env), e.type)
    raise Unbound(type(e).__name__)


def apply_scalar_binop(
    op: str, a: Any, b: Any, result_type: Type | None = None
) -> int | float | bool:
    """Scalar arithmetic with PyPTO semantics: // and % floor, / true division.

    Comparisons and logic give a truth value; arithmetic is truncated to int when
    `result_type` is an integer scalar type."""
    if op in _PREDICATES:
        return _PREDICATES[op](a, b)
    fn = _ARITHMETIC.get(op)
    if fn is None:
        raise ValueError(f"unknown scalar op {op}")
    r = fn(a, b)
    is_int = isinstance(result_type, ScalarType) and result_type.dtype.is_int
    return int(r) if is_int and not isinstance(r, bool) else r


def deduce_call_type(params: tuple, arg_types: tuple[Type, ...], declared: Type) -> Type:
    """The type of a call, as PyPTO deduces it: a dynamic dim of the callee's return type that
    one of its tensor parameters names is replaced by the argument's dim there.

    `def f(h: pl.Tensor[[T, 64], ...]) -> pl.Tensor[[T, 64], ...]` called with a [16, 64]
    tensor returns a [16, 64] tensor, so `w = f(w)` keeps `w`'s type. The first parameter
    naming a dim binds it; a dim no parameter names stays as declared."""
    binding: dict[str, Dim] = {}
    for p, a in zip(params, arg_types):
        if not (isinstance(p.type, TensorType) and isinstance(a, TensorType)):
            continue
        if p.type.rank != a.rank:
            continue
        for pd, ad in zip(p.type.shape, a.shape):
            if isinstance(pd, Var):
                binding.setdefault(pd.name, ad)
    if not binding:
        return declared
    return _substitute_type(declared, binding)


def _substitute_type(t: Type, binding: Mapping[str, Dim]) -> Type:
    if isinstance(t, TupleType):
        return TupleType(tuple(_substitute_type(i, binding) for i in t.items))
    if not isinstance(t, TensorType):
        return t
    shape = tuple(_substitute_dim(d, binding) for d in t.shape)
    valid = None
    if t.valid_shape is not None:
        valid = tuple(_substitute_dim(d, binding) for d in t.valid_shape)
    return dataclasses.replace(t, shape=shape, valid_shape=valid)


def _substitute_dim(d: Dim, binding: Mapping[str, Dim]) -> Dim:
    if isinstance(d, Var):
        return binding.get(d.name, d)
    if isinstance(d, BinOp):
        lhs, rhs = _substitute_dim(d.lhs, binding), _substitute_dim(d.rhs, binding)
        return simplify_dim(BinOp(d.op, _as_expr(lhs), _as_expr(rhs), d.type, d.span))
    if isinstance(d, UnaryOp):
        return UnaryOp(d.op, _as_expr(_substitute_dim(d.operand, binding)), d.type, d.span)
    return d
