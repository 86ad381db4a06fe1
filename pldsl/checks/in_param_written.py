"""InParamWritten (warning, opt-in): an in-place write to a tensor parameter declared `In`.

Off by default: PyPTO upgrades a written `In` parameter to `Out` / `InOut` in a compiler pass
(`UpgradeWrittenTensorParamDirections`, modelled in `param_directions`), so the write is
legal PyPTO and the runtime orders later readers after it. Enable the rule
(`--enable InParamWritten`, `run_checks(..., enable=("InParamWritten",))`) to have every such
write pointed at, e.g. to make signatures say what the compiler will make of them. Each
`pl.assemble` / `pl.write` whose target may be the parameter's buffer (directly, through a
view, or through a name it was passed on to: `kc = pl.assemble(k_cache, ...)`, then
`pl.write(kc, ...)`) is reported with the direction PyPTO gives the parameter.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Program, Var
from pldsl.ir.opdefs import op_label
from pldsl.ir.traversal import write_target

from .param_directions import written_in_params

RULE = "InParamWritten"
SEVERITY = "warning"
DEFAULT = False
DOC = "pl.assemble / pl.write into a parameter declared In (opt-in: PyPTO upgrades its direction)"


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        for param, (direction, writes) in written_in_params(program, func).items():
            for e in writes:
                target = write_target(e)
                via = target.name if isinstance(target, Var) and target.name != param else None
                through = f" (through '{via}')" if via else ""
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"{op_label(e.op)} at line {e.span.line} writes '{param}', an In parameter of "
                        f"'{func.name}'{through}: PyPTO upgrades it to {direction} "
                        "(UpgradeWrittenTensorParamDirections)",
                        e.span,
                        f"declare '{param}' as pl.{direction}[...] so that the signature says so",
                    )
                )
    return out
