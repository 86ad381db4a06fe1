"""Capture of PyPTO's control-flow forms beyond `for` / plain `if` (PyPTO docs/en/user/language/
02-control-flow.md, docs/en/dev/language/01-statements.md):

* `while cond:` -> While without carries; the body rebinds outer names (as a plain `for`).
* `for (a, b) in pl.while_(init_values=(a0, b0)):` with `pl.cond(c)` first and
  `a2, b2 = pl.yield_(...)` last -> While with iter_args; `c` reads the carries.
* `if c: r = pl.yield_(x) else: r = pl.yield_(y)` (the SSA if-form) -> If whose two branches end
  with a Yield binding the same names; those names are defined after the if.
* loop-carry scoping: the names in a loop header are loop-local (PyPTO's iter args). After the
  loop such a name means what it meant before it (the executors restore the outer value, so
  reading it reads the initial value, as in PyPTO), or nothing when it was not bound before;
  the names the loop's yield binds hold the final values. A carry named like an outer variable
  of another type gets its own IR name (`acc__2`).

Functions take the BodyBuilder (`b`) and return IR statements.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from pldsl.dtypes import BOOL
from pldsl.frontend.capture import fail
from pldsl.ir.nodes import Expr, If, MakeTuple, Stmt, Var, While, Yield
from pldsl.ir.printer import format_type
from pldsl.ir.symbolic import types_equal
from pldsl.ir.types import ScalarType, TupleType

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder


# ------------------------------------------------------------------ loop-carry scoping


def bind_carries(
    b: BodyBuilder, names: list[ast.Name], inits: list[Expr]
) -> tuple[tuple[Var, ...], dict[str, Var | None]]:
    """Bind the carries of a loop header; returns them and the outer bindings they hide."""
    saved = {n.id: b.vars.get(n.id) for n in names}
    carries = []
    for n, v in zip(names, inits):
        outer = saved[n.id]
        if outer is not None and not types_equal(outer.type, v.type):
            b.vars.pop(n.id)
            var = b._fresh_var(n.id, v.type, n)
        else:
            var = b.bind(n.id, v.type, n)
        carries.append(var)
    return tuple(carries), saved


def end_carries(
    b: BodyBuilder, saved: dict[str, Var | None], body: tuple[Stmt, ...], src: list[ast.stmt]
) -> None:
    """After a loop: header names revert to what they were before it; the names the loop's
    yield (its last statement, `src[-1]`) binds are the ones that see the final values."""
    for name, var in saved.items():
        if var is None:
            b.vars.pop(name, None)
        else:
            b.vars[name] = var
    last = body[-1] if body else None
    if isinstance(last, Yield) and src and isinstance(src[-1], ast.Assign):
        target = src[-1].targets[0]
        names = target.elts if isinstance(target, ast.Tuple) else [target]
        for n, t in zip(names, last.targets):
            b.vars[n.id] = t


# ------------------------------------------------------------------ while loops


def _bool_cond(b: BodyBuilder, node: ast.expr, what: str) -> Expr:
    before = len(b.hoisted)
    cond = b.expr(node)
    if what == "while" and len(b.hoisted) != before:
        raise fail(
            "UnsupportedFeature",
            "a while condition cannot call an inline function (it is read before every "
            "iteration, the expansion would run once)",
            b.span(node),
            "compute the condition's inputs in the body, or inline the expression",
        )
    if not (isinstance(cond.type, ScalarType) and cond.type.dtype == BOOL):
        raise fail(
            "TypeError",
            f"{what} condition must be a Bool-typed scalar expression",
            b.span(node),
            "compare explicitly, e.g. while i < n:",
        )
    return cond


def _is_cond(b: BodyBuilder, s: ast.stmt) -> bool:
    return (
        isinstance(s, ast.Expr)
        and isinstance(s.value, ast.Call)
        and b._pl_name(s.value.func) == "cond"
    )


def _loop_body(b: BodyBuilder, stmts: list[ast.stmt], carries: tuple[Var, ...]) -> tuple:
    b.loop_kinds.append("while")
    b.carries.append(carries)
    b.contexts.append("loop")
    try:
        return b.block(stmts)
    finally:
        b.contexts.pop()
        b.carries.pop()
        b.loop_kinds.pop()


def _reject_stray_cond(b: BodyBuilder, stmts: list[ast.stmt]) -> None:
    for s in stmts:
        if _is_cond(b, s):
            raise fail(
                "SyntaxError",
                "pl.cond() can only be the first statement in a pl.while_() loop body",
                b.span(s),
                "remove this pl.cond(): the condition is already given at the start",
            )


def natural_while(b: BodyBuilder, s: ast.While) -> While:
    """`while cond:`; cond is re-read before every iteration, the body rebinds outer names."""
    if s.orelse:
        raise fail(
            "UnsupportedFeature",
            "while/else is not supported",
            b.span(s.orelse[0]),
            help="move the else block after the loop",
        )
    cond = _bool_cond(b, s.test, "while")
    _reject_stray_cond(b, s.body)
    if any(isinstance(st, (ast.Expr, ast.Assign)) and b._is_yield(st.value) for st in s.body):
        raise fail(
            "UnsupportedFeature",
            "pl.yield_ in a natural while loop (it has no carries)",
            b.span(s),
            "carry values with for (x,) in pl.while_(init_values=(x0,)):",
        )
    return While(cond, _loop_body(b, s.body, ()), (), (), b.span(s))


def ssa_while(b: BodyBuilder, s: ast.For, call: ast.Call) -> While:
    """`for (a, b) in pl.while_(init_values=(a0, b0)):` / `pl.cond(c)` / ... / `a2, b2 = pl.yield_(...)`."""
    if s.orelse:
        raise fail(
            "UnsupportedFeature",
            "for/else is not supported",
            b.span(s.orelse[0]),
            help="move the else block after the loop",
        )
    if call.args:
        raise fail(
            "TypeError",
            "pl.while_() takes init_values= only",
            b.span(call),
            "for (x,) in pl.while_(init_values=(x0,)):",
        )
    inits_node = None
    for kw in call.keywords:
        if kw.arg != "init_values":
            raise fail(
                "UnsupportedFeature",
                f"Unknown keyword argument '{kw.arg}' in pl.while_()"
                if kw.arg
                else "**kwargs are not accepted in pl.while_()",
                b.span(kw),
                "accepted: init_values",
            )
        inits_node = kw.value
    if inits_node is None or not (
        isinstance(inits_node, (ast.Tuple, ast.List)) and inits_node.elts
    ):
        raise fail(
            "SyntaxError",
            "pl.while_() requires init_values",
            b.span(call if inits_node is None else inits_node),
            "provide init_values: pl.while_(init_values=(val1, val2))",
        )
    inits = [b.expr(e) for e in inits_node.elts]
    target = s.target
    if not isinstance(target, ast.Tuple):
        raise fail(
            "SyntaxError",
            "While loop target must be a tuple for pl.while_()",
            b.span(target),
            "use: for (var1, var2) in pl.while_(init_values=(...,))",
        )
    if len(target.elts) != len(inits):
        raise fail(
            "SyntaxError",
            f"Mismatch: {len(target.elts)} iter_args but {len(inits)} init_values",
            b.span(target),
            f"provide exactly {len(inits)} iteration variable(s) to match init_values",
        )
    for e in target.elts:
        if not isinstance(e, ast.Name):
            raise fail(
                "SyntaxError",
                "Iter arg must be a simple name",
                b.span(e),
                "use simple variable names for iteration variables",
            )
    if len({e.id for e in target.elts}) != len(target.elts):
        raise fail(
            "TypeError",
            "the carried names must all differ",
            b.span(target),
            "for (a, b) in pl.while_(init_values=(a0, b0)):",
        )
    if not s.body or not _is_cond(b, s.body[0]):
        raise fail(
            "SyntaxError",
            "First statement in pl.while_() body must be pl.cond(condition)",
            b.span(s.body[0] if s.body else s),
            "add pl.cond(condition) as first statement",
        )
    cond_call = s.body[0].value
    if len(cond_call.args) != 1 or cond_call.keywords:
        raise fail(
            "TypeError",
            "pl.cond takes one condition",
            b.span(cond_call),
            "pl.cond(x < n)",
        )
    rest = s.body[1:]
    _reject_stray_cond(b, rest)
    carries, saved = bind_carries(b, list(target.elts), inits)
    try:
        cond = _bool_cond(b, cond_call.args[0], "while")
        if not rest:
            raise fail(
                "UnsupportedFeature",
                "a loop with init_values must end with `a, b = pl.yield_(...)`",
                b.span(s.iter),
                "the yielded values become the carries of the next iteration",
            )
        b._check_yield_placement(ast.For(body=rest, iter=s.iter), True)
        body = _loop_body(b, rest, carries)
    finally:
        end_carries(b, saved, (), [])
    end_carries(b, {}, body, rest)
    return While(cond, body, carries, tuple(inits), b.span(s))


# ------------------------------------------------------------------ the SSA if-form


def yield_of(b: BodyBuilder, s: ast.stmt) -> ast.Call | None:
    """The `pl.yield_(...)` call statement `s` is (bare or assigned), if it is one."""
    value = s.value if isinstance(s, (ast.Expr, ast.Assign)) else None
    return value if value is not None and b._is_yield(value) else None


def yield_values(b: BodyBuilder, call: ast.Call) -> tuple[Expr, ...]:
    """The values of `pl.yield_(...)` (a loop's carries or an if's results): one positional
    argument each, at least one. One check and one text for both forms."""
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args) or not call.args:
        raise fail(
            "TypeError",
            "pl.yield_ takes the yielded values as positional arguments",
            b.span(call),
            help="r1, r2 = pl.yield_(x, y)",
        )
    return tuple(b.expr(a) for a in call.args)


def yield_names(b: BodyBuilder, target: ast.expr, count: int, per: str) -> list[ast.Name]:
    """The names `r1, r2 = pl.yield_(...)` binds: one plain name per yielded value (`per`
    says what a value is: "carry", "result")."""
    elts = target.elts if isinstance(target, ast.Tuple) else [target]
    if not all(isinstance(e, ast.Name) for e in elts) or len(elts) != count:
        raise fail(
            "TypeError",
            f"pl.yield_ targets must be one name per {per}",
            b.span(target),
            help="r1, r2 = pl.yield_(x, y)",
        )
    return elts


def yielding_if(b: BodyBuilder, s: ast.If) -> bool:
    """Whether either branch of `s` yields (PyPTO's SSA if-form); checks the form's shape."""
    arms = [s.body, s.orelse]
    ends = [bool(arm) and yield_of(b, arm[-1]) is not None for arm in arms]
    for arm in arms:
        for st in arm[:-1]:
            if yield_of(b, st) is not None:
                raise fail(
                    "UnsupportedFeature",
                    "pl.yield_ must be the last statement of the if branch",
                    b.span(st),
                    help="move pl.yield_ to the end of the branch",
                )
    if not any(ends):
        return False
    if not all(ends):
        missing = s.orelse[-1] if ends[0] and s.orelse else s.body[-1] if ends[1] else s
        raise fail(
            "SyntaxError",
            "If one branch yields, the other must too: both branches of an if must yield the "
            "same variables",
            b.span(missing if s.orelse or ends[1] else s),
            "end both branches with r = pl.yield_(...), the same names in each",
        )
    for arm in arms:
        last = arm[-1]
        if not isinstance(last, ast.Assign):
            raise fail(
                "UnsupportedFeature",
                "an if that yields needs the assignment form r = pl.yield_(...)",
                b.span(last),
                "the names bound here hold the branch's values after the if",
            )
    return True


def if_yield(b: BodyBuilder, call: ast.Call, target: ast.expr | None) -> Yield:
    """`r = pl.yield_(v)` ending a branch of an SSA if: binds the if's result names."""
    values = yield_values(b, call)
    elts = yield_names(b, target, len(values), "result")
    first = b.if_yields[-1]
    names = [e.id for e in elts]
    if first is not None:
        want_names, want_types = first
        if names != want_names:
            raise fail(
                "TypeError",
                f"both branches of an if must yield the same variables: "
                f"({', '.join(want_names)}) and ({', '.join(names)})",
                b.span(target),
                "bind the same names, in the same order, in both branches",
            )
        for n, v, t in zip(names, values, want_types):
            if not types_equal(v.type, t):
                raise fail(
                    "TypeError",
                    f"'{n}' is yielded as {format_type(t)} in one branch and "
                    f"{format_type(v.type)} in the other",
                    b.span(call),
                    "yield values of one type for each result; pl.cast one of them",
                )
    else:
        b.if_yields[-1] = (names, [v.type for v in values])
    targets = tuple(b.bind(e.id, v.type, e) for e, v in zip(elts, values))
    return Yield(targets, values, b.span(call))


def build_yielding_if(b: BodyBuilder, cond: Expr, s: ast.If) -> If:
    b.if_yields.append(None)
    b.contexts.append("if_yield")
    try:
        then_body = b.block(s.body)
        else_body = b.block(s.orelse)
    finally:
        b.contexts.pop()
        b.if_yields.pop()
    return If(cond, then_body, else_body, b.span(s))


# ------------------------------------------------------------------ tuple values


def make_tuple(b: BodyBuilder, node: ast.Tuple) -> MakeTuple:
    """`(a, b)` assigned to a name or unpacked: PyPTO's MakeTuple of tensors and scalars."""
    if not node.elts or any(isinstance(e, ast.Starred) for e in node.elts):
        raise fail(
            "TypeError",
            "a tuple value needs one or more items and no *unpacking",
            b.span(node),
            "t = (a, b)",
        )
    items = tuple(b.expr(e) for e in node.elts)
    for e, item in zip(node.elts, items):
        if isinstance(item.type, TupleType):
            raise fail(
                "UnsupportedFeature",
                "a tuple inside a tuple value is not supported",
                b.span(e),
                "unpack the inner tuple first: a, b = inner",
            )
    return MakeTuple(items, TupleType(tuple(i.type for i in items)), b.span(node))


# ------------------------------------------------------------------ pl.func_attr placement


def check_func_attr_prologue(b: BodyBuilder, body: list[ast.stmt], func_name: str) -> None:
    """`pl.func_attr({...})` belongs to the prologue: before every other statement (a leading
    docstring aside), as PyPTO's parser requires."""
    index = (
        1
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        else 0
    )

    def is_attr(s: ast.stmt) -> bool:
        return (
            isinstance(s, ast.Expr)
            and isinstance(s.value, ast.Call)
            and b._pl_name(s.value.func) == "func_attr"
        )

    while index < len(body) and is_attr(body[index]):
        index += 1
    for top in body[index:]:
        for s in ast.walk(top):
            if isinstance(s, ast.stmt) and is_attr(s):
                raise fail(
                    "SyntaxError",
                    f"pl.func_attr() must appear before every other statement in '{func_name}'",
                    b.span(s),
                    "move the pl.func_attr(...) call to the top of the function body: a "
                    "function attribute describes the whole function",
                )


# ------------------------------------------------------------------ pl.static_print f-strings


def static_print_fstring(b: BodyBuilder, node: ast.JoinedStr) -> str:
    """`f"x = {x}"` in pl.static_print: plain `{expr}` placeholders only (PyPTO's rule), each
    shown as its capture-time value, or the type of a kernel value."""
    out = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(str(part.value))
            continue
        if part.conversion != -1 or part.format_spec is not None:
            raise fail(
                "UnsupportedFeature",
                "pl.static_print f-strings take plain {expr} placeholders (no !r/!s/!a, no "
                "format spec)",
                b.span(part),
                'write f"{x}"',
            )
        try:
            out.append(repr(b.static.eval(part.value)))
        except Exception:  # noqa: BLE001 - a kernel value: show its type
            out.append(format_type(b.expr(part.value).type))
    return "".join(out)
