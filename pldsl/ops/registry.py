"""The op table's schema under its historical name: it lives in `pldsl.ir.opdefs` (the IR reads
op facts, and must not import the op table)."""

from pldsl.ir.opdefs import ALIASES, OPS, REQUIRED, OpDef, OpParam, TypeRuleError, lookup, register

__all__ = ["ALIASES", "OPS", "REQUIRED", "OpDef", "OpParam", "TypeRuleError", "lookup", "register"]
