"""Binding call arguments to an op's signature: shared by capture and the IR parser."""

from __future__ import annotations

from typing import Any

from pldsl.diagnostics import NO_SPAN, Span
from pldsl.ir.nodes import OpCall
from pldsl.ops.registry import OpDef, TypeRuleError


def bind_op_call(
    opdef: OpDef, positional: list[Any], keywords: dict[str, Any], span: Span = NO_SPAN
) -> OpCall:
    """Build a typed OpCall. Static attrs keep only the values given, in parameter order."""
    if len(positional) > len(opdef.params):
        raise TypeRuleError(
            f"pl.{opdef.name} takes at most {len(opdef.params)} arguments, got {len(positional)}",
            _signature_hint(opdef),
        )
    given: dict[str, Any] = {}
    for param, value in zip(opdef.params, positional):
        given[param.name] = value
    for key, value in keywords.items():
        if opdef.param(key) is None:
            raise TypeRuleError(
                f"unknown keyword argument '{key}' in pl.{opdef.name}()", _signature_hint(opdef)
            )
        if key in given:
            raise TypeRuleError(f"pl.{opdef.name}() got multiple values for '{key}'")
        given[key] = value
    args, attrs, all_attrs = [], [], {}
    for param in opdef.params:
        if param.name not in given and param.required:
            raise TypeRuleError(
                f"pl.{opdef.name}() is missing argument '{param.name}'", _signature_hint(opdef)
            )
        value = given.get(param.name, None if param.required else param.default)
        if param.is_static:
            all_attrs[param.name] = value
            if param.name in given:
                attrs.append((param.name, value))
        else:
            args.append(value)
    runtime = {p.name: a for p, a in zip(opdef.runtime_params, args)}
    result_type = opdef.infer(runtime, all_attrs)
    return OpCall(opdef.name, tuple(args), tuple(attrs), result_type, span)


def _signature_hint(opdef: OpDef) -> str:
    parts = [p.name if p.required else f"{p.name}={p.default!r}" for p in opdef.params]
    return f"signature: pl.{opdef.name}({', '.join(parts)})"
