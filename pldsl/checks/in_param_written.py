"""InParamWritten (warning): an in-place write to a buffer declared `In`.

`pl.assemble` / `pl.write` mutate their target in place. When the target is an `In` parameter
(directly, or through a name it was passed on to: `kc = pl.assemble(k_cache, ...)` then
`pl.assemble(kc, ...)`), the caller's array changes although the signature promises a
read-only input: the runtime builds its task graph from directions, so a reader scheduled
after this function may or may not see the write. The seed Qwen3 decode writes its KV cache
this way; pldsl's interpreter applies such writes to the caller's array as device memory
would. Declare the buffer `pl.InOut[...]` and return it, or keep it `In` and document why.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Program
from pldsl.ir.traversal import iter_opcalls, write_target
from pldsl.ir.types import TensorType

from .common import Aliases

RULE = "InParamWritten"
SEVERITY = "warning"
DOC = "pl.assemble / pl.write into a parameter declared In (read-only)"


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        ins = {
            p.name for p in func.params if p.direction == "In" and isinstance(p.type, TensorType)
        }
        if not ins:
            continue
        aliases: Aliases | None = None
        for e in iter_opcalls(func.body):
            target = write_target(e)
            if target is None:
                continue
            if aliases is None:
                aliases = Aliases(program, func)
            roots = aliases.expr_roots(target)[0]
            via = getattr(target, "name", None)
            for param in sorted(roots & ins):
                through = f" (through '{via}')" if via and via != param else ""
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"pl.{e.op} at line {e.span.line} writes '{param}', an In "
                        f"parameter of '{func.name}'{through}: the caller's buffer changes in "
                        "place",
                        e.span,
                        f"declare '{param}' as pl.InOut[...] and return it, or keep it In and "
                        "document the in-place update",
                    )
                )
    return out
