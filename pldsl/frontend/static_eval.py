"""Capture-time evaluation of closure expressions: names from the decorating frame,
annotations, decorator arguments and constant folding. Never runs kernel bodies."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from pldsl.dtypes import DType

_BIN = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_CMP = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
# Bounds that keep constant folding cheap: a mutated `2 ** 10**9` must not hang capture.
MAX_INT_BITS = 4096
MAX_RANGE = 1_000_000


def _safe_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise OverflowError(f"range of {len(r)} items is too long for a capture-time constant")
    return r


# Builtins a constant expression may call (PyPTO's expr_evaluator whitelist).
SAFE_BUILTINS: dict[str, Callable] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "sum": sum,
    "round": round,
    "int": int,
    "float": float,
    "range": _safe_range,
}
_NUMBER = (int, float, bool)


class NotStatic(Exception):
    """The expression depends on a kernel value; it is not a capture-time constant."""


class StaticEvaluator:
    def __init__(self, namespace: Mapping[str, Any], is_local: Callable[[str], bool]):
        self.namespace = namespace
        self.is_local = is_local

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise NotStatic(type(node).__name__)
        return method(node)

    def try_eval(self, node: ast.AST, default: Any = NotStatic) -> Any:
        try:
            return self.eval(node)
        except NotStatic:
            return default
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError, AttributeError):
            return default

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if self.is_local(node.id):
            raise NotStatic(node.id)
        if node.id in self.namespace:
            return self.namespace[node.id]
        if node.id in SAFE_BUILTINS:
            return SAFE_BUILTINS[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise NotStatic(node.id)

    def _Attribute(self, node: ast.Attribute) -> Any:
        base = self.eval(node.value)
        if not hasattr(base, node.attr):
            raise NotStatic(node.attr)
        return getattr(base, node.attr)

    def _Subscript(self, node: ast.Subscript) -> Any:
        return self.eval(node.value)[self.eval(node.slice)]

    def _Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.eval(e) for e in node.elts)

    def _List(self, node: ast.List) -> list:
        return [self.eval(e) for e in node.elts]

    def _BinOp(self, node: ast.BinOp) -> Any:
        fn = _BIN.get(type(node.op))
        lhs, rhs = self.eval(node.left), self.eval(node.right)
        if fn is None or not isinstance(lhs, _NUMBER) or not isinstance(rhs, _NUMBER):
            raise NotStatic("binop")
        _check_size(type(node.op), lhs, rhs)
        result = fn(lhs, rhs)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise OverflowError("integer constant too large")
        return result

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        v = self.eval(node.operand)
        if isinstance(node.op, ast.USub) and isinstance(v, _NUMBER):
            return -v
        if isinstance(node.op, ast.UAdd) and isinstance(v, _NUMBER):
            return +v
        if isinstance(node.op, ast.Not) and isinstance(v, _NUMBER):
            return not v
        raise NotStatic("unary")

    def _Compare(self, node: ast.Compare) -> Any:
        if len(node.ops) != 1:
            raise NotStatic("chained compare")
        lhs, rhs = self.eval(node.left), self.eval(node.comparators[0])
        if not isinstance(lhs, _NUMBER) or not isinstance(rhs, _NUMBER):
            raise NotStatic("compare")
        return _CMP[type(node.ops[0])](lhs, rhs)

    def _Call(self, node: ast.Call) -> Any:
        fn = self.eval(node.func)
        if not _callable_at_capture(fn):
            raise NotStatic("call")
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
        return fn(*args, **kwargs)


def _check_size(op: type, lhs: Any, rhs: Any) -> None:
    """Refuse constant operations whose result would be astronomically large."""
    if op is ast.Pow and isinstance(lhs, int) and isinstance(rhs, int) and abs(lhs) > 1:
        if rhs * max(abs(lhs).bit_length(), 1) > MAX_INT_BITS:
            raise OverflowError("integer constant too large")
    if op is ast.LShift and isinstance(rhs, int) and rhs > MAX_INT_BITS:
        raise OverflowError("shift count too large")
    if op is ast.Mult and isinstance(lhs, int) and isinstance(rhs, int):
        if lhs.bit_length() + rhs.bit_length() > MAX_INT_BITS + 64:
            raise OverflowError("integer constant too large")


def _callable_at_capture(fn: Any) -> bool:
    from pldsl import types as pl_types

    if fn in SAFE_BUILTINS.values():
        return True
    if fn in (pl_types.TensorView, pl_types.dynamic, pl_types.split, pl_types.cross_core_slot):
        return True
    # Methods of dtypes (pl.FP32.get_byte()) and math functions fold too.
    owner = getattr(fn, "__self__", None)
    return isinstance(owner, DType) or getattr(fn, "__module__", None) == "math"
