"""MisplacedComputeOp (error): a tensor compute op outside a `pl.at` scope in orchestration code.

Orchestration code only allocates, views, reads, writes and dispatches; arithmetic runs in
InCore kernels, i.e. inside `with pl.at(level=...)` blocks. PyPTO rejects a compute op there
only at code generation (`Misplaced tensor op ... in Orchestration function`); pldsl reports it
at check time. The rule applies to Orchestration functions (and `role=pl.Role.Orchestrator`
host functions), and to Opaque functions that
contain at least one `pl.at` scope (PyPTO promotes those to Orchestration). An Opaque function
without any `pl.at` scope is a kernel as a whole and may compute anywhere. Data ops
(create_tensor, full, slice, reshape, assemble, read, write, dim) and scalar arithmetic are
allowed everywhere; the op table's `category` says which ops are compute.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.enums import FunctionType, Role
from pldsl.ir.nodes import Function, Program, Scope

from .common import diag, iter_opcalls_with_scope, iter_stmts, op_def, op_name

RULE = "MisplacedComputeOp"
SEVERITY = "error"
DOC = "compute ops must run inside a pl.at scope in Orchestration (or promoted Opaque) functions"


def is_orchestration(func: Function) -> tuple[bool, str]:
    if func.func_type == FunctionType.Orchestration:
        return True, "Orchestration function"
    if func.role == Role.Orchestrator:
        return True, "Orchestrator function"
    if func.func_type == FunctionType.Opaque and any(
        isinstance(s, Scope) for s in iter_stmts(func.body)
    ):
        return True, "Opaque function with pl.at scopes (promoted to Orchestration)"
    return False, ""


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        orch, what = is_orchestration(func)
        if not orch:
            continue
        for call, in_scope in iter_opcalls_with_scope(func.body):
            d = op_def(call)
            if in_scope or d is None or d.category != "compute":
                continue
            out.append(
                diag(
                    RULE,
                    SEVERITY,
                    f"Misplaced tensor op 'pl.{op_name(call)}' in {what} '{func.name}' "
                    "(should be inside a pl.at block)",
                    call.span,
                    "wrap the computation in `with pl.at(level=pl.Level.CORE_GROUP):`",
                )
            )
    return out
