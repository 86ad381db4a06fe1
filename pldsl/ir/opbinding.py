"""Binding call arguments to an op's signature and typing scalar operators.

Shared by capture (pldsl/frontend) and the IR text parser, so both build identical OpCalls.
"""

from __future__ import annotations

from typing import Any

from pldsl.diagnostics import NO_SPAN, Span
from pldsl.dtypes import BOOL, FP32, DType, promote
from pldsl.ir.memory import apply_memory_rule
from pldsl.ir.nodes import COMPARISONS, OpCall
from pldsl.ir.opdefs import OpDef, TypeRuleError, op_label
from pldsl.ir.printer import describe_type
from pldsl.ir.types import ScalarType, Type


def scalar_binop_type(op: str, lhs: Type, rhs: Type) -> ScalarType:
    """Result type of a scalar operator (`BinOp.op` names, see nodes.SCALAR_BINOPS).

    Comparisons, `and`, `or` -> BOOL.  `div` is true division: the promoted dtype
    when that is a float, else FP32.  Everything else (add, sub, mul, floordiv,
    mod, min, max) -> `promote(lhs, rhs)`.  Raises TypeRuleError on non-scalars.
    """
    for side, t in (("left", lhs), ("right", rhs)):
        if not isinstance(t, ScalarType):
            raise TypeRuleError(
                f"the {side} operand of a scalar operator must be a scalar, got {describe_type(t)}",
                "tensors take pl.add / pl.sub / pl.mul / ... instead of Python operators",
            )
    if op in COMPARISONS or op in ("and", "or"):
        return ScalarType(BOOL)
    dtype = promote(lhs.dtype, rhs.dtype)
    if op == "div":
        return ScalarType(dtype if dtype.is_float else FP32)
    return ScalarType(dtype)


def static_attr_kept(param: Any, value: Any) -> bool:
    """Whether a static attribute given explicitly is stored in `OpCall.attrs`.

    Required ones always; optional ones unless None or equal to the default
    (mirrors the printer, which writes exactly these)."""
    if param.required:
        return True
    return value is not None and bool(value != param.default)


def bind_op_call(
    opdef: OpDef, positional: list[Any], keywords: dict[str, Any], span: Span = NO_SPAN
) -> OpCall:
    """Bind converted call arguments to `opdef`'s parameters and type the call.

    `positional`/`keywords` hold IR expressions for runtime parameters (tensor,
    value, scalar; a ListExpr for dims) and Python values for static ones (dtype,
    attr).  Raises TypeRuleError (bad arity, unknown keyword, type rule failure).
    """
    params = opdef.params
    if len(positional) > len(params):
        raise TypeRuleError(
            f"{op_label(opdef.name)} takes at most {len(params)} arguments, got {len(positional)}",
            signature_hint(opdef),
        )
    given: dict[str, Any] = {p.name: v for p, v in zip(params, positional)}
    for key, value in keywords.items():
        if opdef.param(key) is None:
            raise TypeRuleError(
                f"{op_label(opdef.name)}() has no parameter '{key}'", signature_hint(opdef)
            )
        if key in given:
            raise TypeRuleError(f"{op_label(opdef.name)}() got two values for '{key}'")
        given[key] = value
    args: list[Any] = []
    attrs: list[tuple[str, Any]] = []
    runtime: dict[str, Any] = {}
    all_attrs: dict[str, Any] = {}
    for p in params:
        if p.name not in given and p.required:
            raise TypeRuleError(
                f"{op_label(opdef.name)}() is missing argument '{p.name}'", signature_hint(opdef)
            )
        value = given[p.name] if p.name in given else p.default
        if p.is_static:
            if p.kind == "dtype" and value is not None and not isinstance(value, DType):
                raise TypeRuleError(
                    f"argument '{p.name}' of {op_label(opdef.name)} must be a dtype, got {value!r}",
                    "e.g. pl.FP32, pl.BF16, pl.INT32",
                )
            all_attrs[p.name] = value
            if p.name in given and static_attr_kept(p, value):
                attrs.append((p.name, value))
        else:
            runtime[p.name] = value
            args.append(value)
    result_type = apply_memory_rule(opdef, runtime, opdef.infer(runtime, all_attrs))
    return OpCall(opdef.name, tuple(args), tuple(attrs), result_type, span)


def signature_hint(opdef: OpDef) -> str:
    """`signature: pl.op(a, b, flag=False)`: the help line of a misbound op call."""
    parts = [p.name if p.required else f"{p.name}={p.default!r}" for p in opdef.params]
    return f"signature: {op_label(opdef.name)}({', '.join(parts)})"
