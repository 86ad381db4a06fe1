"""UnusedValue (warning): a value assigned to a name that nothing reads afterwards.

Backward liveness over the structured body: an assignment is reported when no path from it
reads the name before the name is bound again (or the function returns). `if` branches
join, loop bodies iterate to a fixed point (a value read by the next iteration is used), and
`break`/`continue` keep everything live that is live after the loop or at its next iteration.

Not reported: names starting with `_` (the usual "unused on purpose" spelling), loop
variables and carries, rebinding of Out/InOut parameters (`out = pl.assemble(out, ...)`
threads the caller's buffer; OutParamWriteDropped covers the bad cases), a name rebound
to an in-place write of itself (`x = pl.assemble(x, ...)`, `x = pl.write(x, ...)`) or to a
call that returns a buffer it was given under that name (`x = self.f(..., x, ...)` where `f`
returns that parameter: the call threads `x`, as PyPTO kernels write it) or a buffer of the
caller's (a parameter or a view of one, whatever the name: PyPTO's jit renames such a
rebinding `x_v1`),
whose effect is the write, the targets of a tuple unpacking (`y, tid = self.f(...)`: a caller takes
the results it needs, as Python linters allow), and names the source reads where capture
leaves no IR read (`Function.capture_reads`: a subscript write's window stop, a prefetch
source, a capture-time `if` branch not taken).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Assign, Call, Function, OpCall, Program, Var
from pldsl.ir.traversal import iter_stmts, read_names, write_target

from .common import Aliases, Liveness, callee, out_params, returned_params

RULE = "UnusedValue"
SEVERITY = "warning"
DOC = "a value assigned to a name that is never read afterwards"


def _exempt(t: Var, s: Assign, func: Function, aliases: Callable[[], Aliases]) -> bool:
    if t.name.startswith("_") or t.name in out_params(func) or t.name in func.capture_reads:
        return True
    if len(s.targets) > 1:  # tuple unpacking
        return True
    if isinstance(s.value, Call):
        return _threads(s.value, t.name, func, aliases())
    target = write_target(s.value) if isinstance(s.value, OpCall) else None
    return isinstance(target, Var) and target.name == t.name


def _threads(call: Call, name: str, func: Function, aliases: Aliases) -> bool:
    """Whether `call` returns a buffer it was given under `name`, or a buffer of the caller's
    (a parameter, or a view of one): the call's effect is its writes there."""
    f = callee(aliases.program, call)
    if f is None:
        return False
    returned = returned_params(aliases.program, f)[0]
    given = [call.args[i] for i in returned if isinstance(i, int) and i < len(call.args)]
    if any(isinstance(a, Var) and a.name == name for a in given):
        return True
    roots = aliases.expr_roots(call)[0]
    return bool(roots) and roots <= {p.name for p in func.params}  # ("?" is no parameter)


def check(program: Program) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for func in program.function_list:
        live_after = Liveness(func.body, read_names).live_after
        aliases = cache(partial(Aliases, program, func, views=True))
        for s in iter_stmts(func.body):
            if not isinstance(s, Assign):
                continue
            for t in s.targets:
                if t.name in live_after[id(s)] or _exempt(t, s, func, aliases):
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
