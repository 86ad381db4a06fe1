"""MisplacedComputeOp (error): a tensor compute op outside a `pl.at` scope in orchestration code.

Orchestration code only allocates, views, reads, writes and dispatches; arithmetic runs in
InCore kernels, i.e. inside `with pl.at(level=...)` blocks (or `pl.spmd` bodies, `pl.incore()` scopes). PyPTO rejects a compute op there
only at code generation (`Misplaced tensor op ... in Orchestration function`); pldsl reports it
at check time. The rule applies to Orchestration functions (and `role=pl.Role.Orchestrator`
host functions), and to Opaque functions that
contain at least one `pl.at` scope (PyPTO promotes those to Orchestration). An Opaque function
without any `pl.at` scope is a kernel as a whole and may compute anywhere. Data ops
(create_tensor, full, slice, reshape, assemble, read, write, dim) and scalar arithmetic are
allowed everywhere (a compute op whose result is a scalar, such as
`pl.cast(pl.tensor.read(t, [0]), pl.INDEX)`, is scalar arithmetic); the op table's `category` says which ops are compute.
"""

from __future__ import annotations

from collections.abc import Iterator

from pldsl.diagnostics import Diagnostic
from pldsl.enums import FunctionType, Role
from pldsl.ir.nodes import For, Function, OpCall, Program, Scope, Stmt
from pldsl.ir.traversal import child_bodies, iter_expr, iter_stmts, stmt_exprs
from pldsl.ir.types import ScalarType
from pldsl.ops import lookup

RULE = "MisplacedComputeOp"
SEVERITY = "error"
DOC = "compute ops must run inside a pl.at scope in Orchestration (or promoted Opaque) functions"


def is_device_region(s: Stmt) -> bool:
    """`pl.at`, `pl.incore`/`pl.auto_incore` and `pl.spmd` bodies are outlined to InCore kernels
    (`pl.scope`, `pl.manual_scope` and task wrappers only group tasks: not device code)."""
    if isinstance(s, Scope):
        return s.kind in ("at", "incore", "auto_incore")
    return isinstance(s, For) and s.kind == "spmd"


def orchestration_kind(func: Function) -> str | None:
    """How the function is orchestration code (for the message), None when it is not."""
    if func.func_type == FunctionType.Orchestration:
        return "Orchestration function"
    if func.role == Role.Orchestrator:
        return "Orchestrator function"
    if func.func_type == FunctionType.Opaque and any(
        is_device_region(s) for s in iter_stmts(func.body)
    ):
        return "Opaque function with pl.at scopes (promoted to Orchestration)"
    return None


def _calls_outside_scopes(body: tuple[Stmt, ...]) -> Iterator[OpCall]:
    for s in body:
        if is_device_region(s):
            continue
        for e in stmt_exprs(s):
            yield from (n for n in iter_expr(e) if isinstance(n, OpCall))
        for b in child_bodies(s):
            yield from _calls_outside_scopes(b)


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        what = orchestration_kind(func)
        if what is None:
            continue
        for call in _calls_outside_scopes(func.body):
            if lookup(call.op).category != "compute" or isinstance(call.type, ScalarType):
                continue  # scalar arithmetic (`pl.cast(pl.tensor.read(t, [0]), pl.INDEX)`) is not a tensor op
            out.append(
                Diagnostic(
                    RULE,
                    SEVERITY,
                    f"Misplaced tensor op 'pl.{call.op}' in {what} '{func.name}' "
                    "(should be inside a pl.at block)",
                    call.span,
                    "wrap the computation in `with pl.at(level=pl.Level.CORE_GROUP):`",
                )
            )
    return out
