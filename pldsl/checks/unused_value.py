"""UnusedValue (warning): a value assigned to a name that nothing reads afterwards.

Backward liveness over the structured body: an assignment is reported when no path from it
reads the name before the name is bound again (or the function returns). `if` branches
join, loop bodies iterate to a fixed point (a value read by the next iteration is used), and
`break`/`continue` keep everything live that is live after the loop or at its next iteration.

Not reported: names starting with `_` (the usual "unused on purpose" spelling), loop
variables and carries, rebinding of Out/InOut parameters (`out = pl.assemble(out, ...)`
threads the caller's buffer; OutParamWriteDropped covers the bad cases), a name rebound
to an in-place write of itself (`x = pl.assemble(x, ...)`, `x = pl.write(x, ...)`), whose
effect is the write, the targets of a tuple unpacking (`y, tid = self.f(...)`: a caller takes
the results it needs, as Python linters allow), and names the source reads where capture
leaves no IR read (`Function.capture_reads`: a subscript write's window stop, a prefetch
source, a capture-time `if` branch not taken).
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Assign, OpCall, Program, Var
from pldsl.ir.traversal import iter_stmts, read_names, write_target

from .common import Liveness, out_params

RULE = "UnusedValue"
SEVERITY = "warning"
DOC = "a value assigned to a name that is never read afterwards"


def _exempt(t: Var, s: Assign, out: dict[str, str], capture_reads: frozenset[str]) -> bool:
    if t.name.startswith("_") or t.name in out or t.name in capture_reads:
        return True
    if len(s.targets) > 1:  # tuple unpacking
        return True
    target = write_target(s.value) if isinstance(s.value, OpCall) else None
    return isinstance(target, Var) and target.name == t.name


def check(program: Program) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for func in program.function_list:
        out = out_params(func)
        live_after = Liveness(func.body, read_names).live_after
        for s in iter_stmts(func.body):
            if not isinstance(s, Assign):
                continue
            for t in s.targets:
                if t.name in live_after[id(s)] or _exempt(t, s, out, func.capture_reads):
                    continue
                diags.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"the value assigned to '{t.name}' is never read",
                        t.span,
                        f"remove the assignment, or name it '_{t.name}' if it is unused on purpose",
                    )
                )
    return diags
