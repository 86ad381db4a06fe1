"""RankDependentCollective (warning): a branch on the rank id runs a different sequence of
`pld` collectives in its two arms, so the ranks that take one arm wait in a collective the
others never call (a hang on the device; a CollectiveSkipped fault on pldsl's simulated ranks).

Rank-dependent values: the result of `pld.rank(...)`, anything computed from one, and the
parameters a host launch (`f(..., device=r)`) binds from the launch loop's `r` (followed through
calls into callees). A collective reached through a call counts as called by the caller.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Assign, Call, For, If, OpCall, Program, Stmt, Var
from pldsl.ir.traversal import child_bodies, iter_expr, iter_stmts, read_names, stmt_exprs
from pldsl.ops.table_distributed import COLLECTIVES

RULE = "RankDependentCollective"
SEVERITY = "warning"
DOC = "a branch on the rank id calls different pld collectives in its two arms"


def check(program: Program) -> list[Diagnostic]:
    fns = {f.name: f for f in program.function_list}
    if not any(_ops(f.body) & ({"pld.launch", "pld.rank"} | COLLECTIVES) for f in fns.values()):
        return []
    tainted = _tainted_params(fns)
    found: list[Diagnostic] = []
    for f in fns.values():
        names = _propagate(f.body, tainted.get(f.name, set()))
        for s in iter_stmts(f.body):
            if not isinstance(s, If) or not (read_names(s.cond) & names):
                continue
            then, other = _sequence(s.then_body, fns), _sequence(s.else_body, fns)
            if [k for k, _ in then] != [k for k, _ in other]:
                longer = then if len(then) >= len(other) else other
                kind, span = next(
                    ((k, sp) for i, (k, sp) in enumerate(longer)
                     if i >= len(then) or i >= len(other) or then[i][0] != other[i][0]),
                    longer[0],
                )  # fmt: skip
                found.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"{kind} runs on only some ranks: the `if` at line {s.span.line} depends "
                        "on the rank id and its arms call different collectives",
                        span,
                        "call every collective on every rank, outside rank-dependent branches",
                        (f"the branch is at {s.span}",),
                    )
                )
    return found


def _ops(body) -> set[str]:
    return {e.op for s in iter_stmts(body) for r in stmt_exprs(s) for e in iter_expr(r)
            if isinstance(e, OpCall)}  # fmt: skip


def _tainted_params(fns: dict) -> dict[str, set[str]]:
    """Callee parameters bound from a launch's rank (or from a tainted value), to a fixpoint."""
    tainted: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for f in fns.values():
            names = _propagate(f.body, tainted.get(f.name, set()))
            for s in iter_stmts(f.body):
                for root in stmt_exprs(s):
                    for e in iter_expr(root):
                        seeds = set(names)
                        if isinstance(e, OpCall) and e.op == "pld.launch":
                            seeds |= read_names(e.args[0])
                            e = e.args[1]
                        if not isinstance(e, Call) or e.func not in fns:
                            continue
                        params = fns[e.func].params
                        hit = {p.name for p, a in zip(params, e.args) if read_names(a) & seeds}
                        if hit - tainted.get(e.func, set()):
                            tainted.setdefault(e.func, set()).update(hit)
                            changed = True
    return tainted


def _propagate(body, seeds: set[str]) -> set[str]:
    names = set(seeds)
    changed = True
    while changed:
        changed = False
        for s in iter_stmts(body):
            if isinstance(s, Assign):
                ranked = any(
                    isinstance(e, OpCall) and e.op == "pld.rank" for e in iter_expr(s.value)
                )
                if ranked or read_names(s.value) & names:
                    new = {t.name for t in s.targets} - names
                    if new:
                        names |= new
                        changed = True
            elif isinstance(s, For) and isinstance(s.var, Var):
                if (read_names(s.start) | read_names(s.stop)) & names and s.var.name not in names:
                    names.add(s.var.name)
                    changed = True
    return names


def _sequence(body: tuple[Stmt, ...], fns: dict, depth: int = 0) -> list[tuple]:
    """The collectives a body calls, in order (calls followed a few levels)."""
    out: list[tuple] = []
    for s in body:
        for root in stmt_exprs(s):
            for e in iter_expr(root):
                if isinstance(e, OpCall) and e.op in COLLECTIVES:
                    out.append((e.op, e.span))
                elif isinstance(e, Call) and e.func in fns and depth < 8:
                    out.extend(_sequence(fns[e.func].body, fns, depth + 1))
        for inner in child_bodies(s):
            out.extend(_sequence(inner, fns, depth))
    return out
