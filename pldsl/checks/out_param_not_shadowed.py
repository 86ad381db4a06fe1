"""OutParamNotShadowed (error): an Out/InOut parameter rebound to a fresh allocation.

`out = pl.create_tensor(...)` or `out = pl.full(...)` where `out` is an `Out` or `InOut`
parameter makes the name point at a new buffer: every later write lands there and the
caller's buffer is never written. PyPTO's verifier of the same name rejects it
(`verify_out_param_pass.cpp`). Allocate scratch under another name and write the result
into the parameter with `out = pl.assemble(out, value, offset)`.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import OpCall, Program
from pldsl.ir.opdefs import op_label
from pldsl.ir.traversal import bindings, iter_stmts

from .common import out_params

RULE = "OutParamNotShadowed"
SEVERITY = "error"
DOC = "an Out/InOut parameter must not be rebound to pl.create_tensor / pl.full"
FRESH_OPS = ("create_tensor", "full")


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        params = out_params(func)
        if not params:
            continue
        for s in iter_stmts(func.body):
            for target, value, _ in bindings(s):
                if (
                    target.name not in params
                    or not isinstance(value, OpCall)
                    or value.op not in FRESH_OPS
                ):
                    continue
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"'{target.name}' is an {params[target.name]} parameter of "
                        f"'{func.name}' and cannot be reassigned via {op_label(value.op)}: the name would "
                        "refer to a fresh buffer and the caller's buffer would never be written",
                        target.span,
                        f"allocate scratch under another name and write the result with "
                        f"`{target.name} = pl.assemble({target.name}, value, offset)`",
                    )
                )
    return out
