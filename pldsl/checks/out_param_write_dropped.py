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
from pldsl.ir.nodes import Assign, OpCall, Program, Yield

from .common import Aliases, diag, iter_stmts, op_name, out_params, target_span
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
            if isinstance(s, Assign):
                if len(s.targets) == 1:
                    pairs = [(s.targets[0], s.value, 0)]
                else:
                    pairs = [(t, s.value, i) for i, t in enumerate(s.targets)]
            elif isinstance(s, Yield):
                pairs = [(t, v, 0) for t, v in zip(s.targets, s.values)]
            else:
                continue
            for target, value, index in pairs:
                if target.name not in params:
                    continue
                if isinstance(value, OpCall) and op_name(value) in FRESH_OPS:
                    continue  # OutParamNotShadowed
                if aliases is None:
                    aliases = Aliases(program, func)
                items = aliases.expr_roots(value)
                roots = items[index] if index < len(items) else {Aliases.UNKNOWN}
                if target.name in roots or Aliases.UNKNOWN in roots:
                    continue
                kind = params[target.name]
                out.append(
                    diag(
                        RULE,
                        SEVERITY,
                        f"Assigning to {kind} parameter '{target.name}' in function "
                        f"'{func.name}' rebinds the name only — the caller's buffer is never "
                        "written",
                        target_span(target, s),
                        f"write through the parameter: `{target.name} = pl.assemble("
                        f"{target.name}, <value>, <offset>)` (or `pl.write` for one element)",
                    )
                )
    return out
