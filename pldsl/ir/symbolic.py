"""Symbolic dims: simplification, equality and evaluation of scalar expressions."""

from __future__ import annotations

import operator
from collections.abc import Mapping

from pldsl.dtypes import INDEX
from pldsl.ir.nodes import BinOp, Const, Expr, UnaryOp, Var, structural_equal
from pldsl.ir.types import Dim, ScalarType

_INT_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "min": min,
    "max": max,
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
        if d.op == "add" and rhs == 0 or d.op == "sub" and rhs == 0:
            return lhs
        if d.op == "add" and lhs == 0:
            return rhs
        if d.op == "mul" and (rhs == 1 or lhs == 1):
            return lhs if rhs == 1 else rhs
        if d.op in ("floordiv",) and rhs == 1:
            return lhs
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


def apply_scalar_binop(op: str, a, b, result_type=None):
    """Scalar arithmetic with PyPTO semantics: // and % floor, / true division."""
    is_int = isinstance(result_type, ScalarType) and result_type.dtype.is_int
    if op == "add":
        r = a + b
    elif op == "sub":
        r = a - b
    elif op == "mul":
        r = a * b
    elif op == "div":
        r = a / b
    elif op == "floordiv":
        r = a // b
    elif op == "mod":
        r = a % b
    elif op == "min":
        r = min(a, b)
    elif op == "max":
        r = max(a, b)
    elif op == "lt":
        return a < b
    elif op == "le":
        return a <= b
    elif op == "gt":
        return a > b
    elif op == "ge":
        return a >= b
    elif op == "eq":
        return a == b
    elif op == "ne":
        return a != b
    elif op == "and":
        return bool(a) and bool(b)
    elif op == "or":
        return bool(a) or bool(b)
    else:
        raise ValueError(f"unknown scalar op {op}")
    return int(r) if is_int and not isinstance(r, bool) else r
