"""Binding an op call's arguments against its OpDef: it lives in `pldsl.ir.opbinding` (the text
parser needs it, and the IR must not import the op table); re-exported for the frontend."""

from pldsl.ir.opbinding import bind_op_call, scalar_binop_type, signature_hint

__all__ = ["bind_op_call", "scalar_binop_type", "signature_hint"]
