"""OutParamWriteDropped (warning): a rebinding of an Out/InOut parameter that writes nothing.

PyPTO's warning of the same name, same algorithm and message. `out = pl.add(a, b)` points
the parameter's variable at a freshly computed tensor; the caller's buffer is never written
(an `Out` buffer stays undefined, an `InOut` one keeps its input). Telling a dropped write
from a write-through needs data flow: each Out/InOut tensor parameter taints, forward through
the definitions of the function, every variable whose definition reads a tainted one
(assignments; a loop's carries and return variables take the union of its `init_values` and
of what its body yields; an `if`'s return variables what its branches yield). An assignment
to the parameter's variable is reported when its value reads nothing that parameter taints.

By design (PyPTO's), a value that merely *reads* the parameter counts as written through:
`out = pl.add(out, b)` is silent, and so is every write through a view
(`v = pl.reshape(out, ...)`, `v = pl.assemble(v, ...)`, `out = pl.reshape(v, ...)`).
Variables are PyPTO's (`pypto_vars`): a `pl.yield_` target and an assignment inside a loop
to a carry named like the parameter bind new variables and are not rebindings of it.
Rebinding to `pl.create_tensor` / `pl.full` is the error `OutParamNotShadowed` instead.
"""

from __future__ import annotations

from collections import defaultdict

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import Assign, For, Function, If, OpCall, Program, Var, While
from pldsl.ir.traversal import iter_expr, iter_stmts

from .common import out_params
from .out_param_not_shadowed import FRESH_OPS
from .pypto_vars import Bindings, Variable, own_yields

RULE = "OutParamWriteDropped"
SEVERITY = "warning"
DOC = "a bare `out = <expr>` rebinding of an Out/InOut parameter never writes the caller's buffer"


def _reads(names: Bindings, e: object) -> set[Variable]:
    return {names.of(n) for n in iter_expr(e) if isinstance(n, Var)}


def _yielded(names: Bindings, body: tuple) -> set[Variable]:
    """Variables read by the yields of a loop or `if` body, through nested ifs (a wider taint
    only silences), not into nested loops (they bind their own results)."""
    out: set[Variable] = set()
    for s in body:
        if isinstance(s, If):
            out |= _yielded(names, s.then_body) | _yielded(names, s.else_body)
    for y in own_yields(body):
        for v in y.values:
            out |= _reads(names, v)
    return out


def _definitions(func: Function, names: Bindings) -> dict[Variable, set[Variable]]:
    """Variable -> the variables its definitions read (the union over all of them)."""
    defined_by: dict[Variable, set[Variable]] = defaultdict(set)
    for s in iter_stmts(func.body):
        if isinstance(s, Assign):
            sources = _reads(names, s.value)
            for t in s.targets:
                defined_by[names.of(t)] |= sources
        elif isinstance(s, (For, While, If)):
            if isinstance(s, (For, While)):
                sources = _yielded(names, s.body)
                for e in s.init_values:
                    sources |= _reads(names, e)
                results = list(names.carries.get(id(s), ()))
            else:
                sources = _yielded(names, s.then_body) | _yielded(names, s.else_body)
                results = []
            results += names.results.get(id(s), ())
            for r in results:
                defined_by[r] |= sources
    return defined_by


def _tainted(root: Variable, defined_by: dict[Variable, set[Variable]]) -> set[Variable]:
    readers: dict[Variable, list[Variable]] = defaultdict(list)
    for v, sources in defined_by.items():
        for src in sources:
            readers[src].append(v)
    seen, todo = {root}, [root]
    while todo:
        for r in readers.get(todo.pop(), ()):
            if r not in seen:
                seen.add(r)
                todo.append(r)
    return seen


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        params = out_params(func)
        if not params:
            continue
        names = Bindings(func)
        rebinds = [
            (t, s.value)
            for s in iter_stmts(func.body)
            if isinstance(s, Assign)
            and not (isinstance(s.value, OpCall) and s.value.op in FRESH_OPS)  # NotShadowed
            for t in s.targets
            if names.of(t) == Bindings.param(t.name) and t.name in params
        ]
        if not rebinds:
            continue
        defined_by = _definitions(func, names)
        taint = {p: _tainted(Bindings.param(p), defined_by) for p in params}
        for target, value in rebinds:
            if _reads(names, value) & taint[target.name]:
                continue
            out.append(_diagnostic(target, params[target.name], func.name))
    return out


def _diagnostic(target: Var, direction: str, func: str) -> Diagnostic:
    name = target.name
    return Diagnostic(
        RULE,
        SEVERITY,
        f"Assigning to {direction} parameter '{name}' in function '{func}' rebinds the name "
        f"only — the caller's buffer is never written. Use '{name}[:] = <expr>' to write the "
        f"whole tensor, or '{name}[<slices>] = <expr>' for a sub-window.",
        target.span,
        f"write through the parameter: `{name}[:] = <expr>`, or `{name} = pl.assemble({name}, "
        "<value>, <offset>)` (`pl.write` for one element)",
    )
