"""NoNestedInCore (error): an InCore scope inside another InCore scope.

PyPTO's structural verifier of the same name, same message. An InCore scope
(`with pl.at(level=pl.Level.CORE_GROUP):`, `with pl.incore():`) is outlined into one InCore
kernel; a second one inside it has no kernel to become, and PyPTO rejects the program. Other
scopes (`pl.auto_incore()`, `pl.scope()`, `pl.manual_scope()`, `pl.at` at another level) are
no InCore scopes and may hold them. Loops and `if`s in between do not matter.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.enums import Level
from pldsl.ir.nodes import Program, Scope, Stmt
from pldsl.ir.traversal import child_bodies

RULE = "NoNestedInCore"
SEVERITY = "error"
DOC = "an InCore scope (pl.at(level=CORE_GROUP), pl.incore()) must not hold another"


def is_incore_scope(s: Stmt) -> bool:
    if not isinstance(s, Scope):
        return False
    return s.kind == "incore" or (s.kind == "at" and s.attr("level") == Level.CORE_GROUP)


def _nested(body: tuple[Stmt, ...], outer: Scope | None, out: list[Diagnostic]) -> None:
    for s in body:
        inner = outer
        if is_incore_scope(s):
            if outer is not None:
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        "Nested InCore scope detected — InCore scopes must not contain other "
                        "InCore scopes",
                        s.span,
                        f"drop the inner scope: the one at {outer.span} already makes its body "
                        "one InCore kernel",
                    )
                )
            else:
                inner = s
        for b in child_bodies(s):
            _nested(b, inner, out)


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        _nested(func.body, None, out)
    return out
