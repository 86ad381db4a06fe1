"""OutParamWriteDropped (warning): a bare rebinding of an Out/InOut parameter writes nothing.

`out = pl.add(a, b)` rebinds the *name* `out` to a new value; the caller's buffer behind the
parameter is never written (an `Out` buffer stays undefined, an `InOut` one keeps its input).
Only in-place writes reach the caller: `out = pl.assemble(out, value, offset)`,
`out = pl.write(out, [i, j], v)`, or a user call that writes the buffer and returns it
(`out = self.kernel(x, out)` where `kernel` returns its `Out` parameter). The check follows
values through names, loop carries and yields (data-flow, like PyPTO's diagnostic of the same
name), and stays quiet when it cannot tell. Rebinding to `pl.create_tensor` / `pl.full` is the
error `OutParamNotShadowed` instead.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import OpCall, Program
from pldsl.ir.traversal import bindings, iter_stmts

from .common import Aliases, out_params
from .out_param_not_shadowed import FRESH_OPS

RULE = "OutParamWriteDropped"
SEVERITY = "warning"
DOC = "a bare `out = <expr>` rebinding of an Out/InOut parameter never writes the caller's buffer"


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        params = out_params(func)
        if not params:
            continue
        aliases: Aliases | None = None
        for s in iter_stmts(func.body):
            for target, value, item in bindings(s):
                if target.name not in params:
                    continue
                if isinstance(value, OpCall) and value.op in FRESH_OPS:
                    continue  # OutParamNotShadowed
                if aliases is None:
                    aliases = Aliases(program, func)
                items = aliases.expr_roots(value)
                roots = items[item] if item < len(items) else {Aliases.UNKNOWN}
                if target.name in roots or Aliases.UNKNOWN in roots:
                    continue
                kind = params[target.name]
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"Assigning to {kind} parameter '{target.name}' in function "
                        f"'{func.name}' rebinds the name only — the caller's buffer is never "
                        "written",
                        target.span,
                        f"write through the parameter: `{target.name} = pl.assemble("
                        f"{target.name}, <value>, <offset>)` (or `pl.write` for one element)",
                    )
                )
    return out
