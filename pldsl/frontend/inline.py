"""`@pl.inline` (PyPTO's InlineFunction, docs/en/dev/language/03-functions.md): a function
template whose body is expanded at each call site, by bare name (`y = normalize(x)`); no
function is added to the program.

An expansion is built in the caller's BodyBuilder, with the inline function's own file
positions and closure names (the caller's closure names win, as PyPTO merges them). Every name
the expansion binds gets a prefix unique to that expansion (`normalize_1_x`), so expansions
never collide with each other or with the caller's variables; the parameters are bound to the
argument values first (an alias of the same buffer for a tensor, as PyPTO substitutes the
argument; a literal argument stays a capture-time constant, as PyPTO substitutes it). The
expansion's statements are hoisted in front of the statement that holds the
call, and the call's value is the returned value.

pldsl is stricter than PyPTO in two ways, and says so: an inline body sees only its parameters
and closure names (PyPTO also resolves the caller's local variables), and its locals do not
leak into the caller. `return` must be the last statement of an inline body, and there only.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pldsl.dtypes import BOOL, FP32, INDEX
from pldsl.frontend.capture import SourceMap, fail
from pldsl.ir.nodes import Assign, Const, Expr, Var

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder

MAX_INLINE_DEPTH = 32


@dataclass(eq=False)
class InlineFunction:
    """A `@pl.inline` template: the function's AST, where it is, and its closure names."""

    name: str
    node: ast.FunctionDef
    smap: SourceMap
    ns: dict[str, Any] = field(repr=False)

    @property
    def param_names(self) -> list[str]:
        return [a.arg for a in self.node.args.args if a.arg != "self"]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise fail(
            "NotInKernel",
            f"'{self.name}' is a @pl.inline template: it is expanded where a kernel calls it",
            self.smap.span(self.node),
            "call it by its name inside a @pl.function body",
        )


def from_function(fn: Any, ns: dict[str, Any]) -> InlineFunction:
    """`@pl.inline` on a Python function: read its source (positions kept)."""
    from pldsl.frontend.capture import _parse, _source_of

    lines, start, file = _source_of(fn)
    src = "".join(lines)
    indented = src[:1] in (" ", "\t")
    text = "if 1:\n" + src if indented else src
    offset = start - 1 - (1 if indented else 0)
    tree = _parse(text, file, offset)
    node = tree.body[0].body[0] if indented else tree.body[0]
    return check_definition(
        InlineFunction(node.name, node, SourceMap(file, offset, 0, text.splitlines()), ns)
    )


def check_definition(inl: InlineFunction) -> InlineFunction:
    """The template's shape: positional parameters only; one `return`, the last statement."""
    node, span = inl.node, inl.smap.span
    a = node.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
        raise fail(
            "BadParameter",
            f"inline function '{inl.name}' takes plain positional parameters only",
            span(node),
            "def f(x, y): no defaults, *args, **kwargs or keyword-only parameters",
        )
    body = _body(node)
    final = body[-1] if body and isinstance(body[-1], ast.Return) else None
    for sub in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(sub, ast.Return) and sub is not final:
            raise fail(
                "UnsupportedFeature",
                f"inline function '{inl.name}' may return only at the end of its body",
                span(sub),
                "compute the value, then return it as the last statement",
            )
    return inl


def _body(node: ast.FunctionDef) -> list[ast.stmt]:
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # docstring
    return body


def expand(b: BodyBuilder, call: ast.Call, inl: InlineFunction) -> tuple[Expr, ...]:
    """Expand `inl` at `call`; returns the returned values (the statements are hoisted)."""
    if call.keywords or any(isinstance(x, ast.Starred) for x in call.args):
        raise fail(
            "TypeError",
            f"inline function '{inl.name}' takes positional arguments only",
            b.span(call),
            f"call it as {inl.name}({', '.join(inl.param_names)})",
        )
    params = inl.param_names
    if len(call.args) != len(params):
        raise fail(
            "TypeError",
            f"Inline function '{inl.name}' expects {len(params)} argument(s), got {len(call.args)}",
            b.span(call),
            f"Check the inline function's parameter list: {params}",
        )
    if len(b.inline_stack) >= MAX_INLINE_DEPTH or inl in b.inline_stack:
        raise fail(
            "UnsupportedFeature",
            f"inline function '{inl.name}' expands itself (recursion)",
            b.span(call),
            "inline functions are templates: they cannot call themselves",
        )
    key = (id(call), b.inline_prefix)
    if key in b.expanded:  # an argument evaluated twice by op binding: one expansion
        return b.expanded[key]
    args = [b.expr(x) for x in call.args]  # in the caller's context
    b.inline_count += 1
    prefix = f"{b.inline_prefix}{inl.name}_{b.inline_count}_"
    saved = (b.vars, b.smap, b.program.smap, b.inline_prefix, b.program.ns, b.static)
    # The template's body is a function body: the caller's loops and SSA ifs are not its own
    # (a `break` or `pl.yield_` there must not reach the caller's loop or if).
    nesting = (b.loop_kinds, b.carries, b.contexts, b.if_yields)
    b.loop_kinds, b.carries, b.contexts, b.if_yields = [], [], [], []
    b.vars = {}
    b.smap = b.program.smap = inl.smap
    b.inline_prefix = prefix
    ns = {**inl.ns, **saved[4]}
    # A literal argument (an int, float or bool, as PyPTO types literals) is substituted, as
    # PyPTO binds the parameter to the argument's expression: it stays a capture-time constant
    # in the expansion (`pl.slice(t, [rows, 64], ...)` with rows=16 has a static shape).
    static = {p: a.value for p, a in zip(params, args) if _literal(a)}
    ns.update(static)
    b.program.ns = ns
    b.static = type(b.static)(ns, lambda name: name in b.vars)
    b.inline_stack.append(inl)
    stmts = list(_body(inl.node))
    ret = stmts.pop() if stmts and isinstance(stmts[-1], ast.Return) else None
    try:
        for p, a in zip(params, args):
            if p not in static:
                b.hoisted.append(Assign((b.bind(p, a.type, call),), a, a.span))
        b.hoisted.extend(b.block(stmts))
        values = _returned(b, ret, inl)
        b.expanded[key] = values
    finally:
        b.inline_stack.pop()
        b.vars, b.smap, b.program.smap, b.inline_prefix, b.program.ns, b.static = saved
        b.loop_kinds, b.carries, b.contexts, b.if_yields = nesting
    return values


def _returned(b: BodyBuilder, ret: ast.Return | None, inl: InlineFunction) -> tuple[Expr, ...]:
    """The returned values, each bound to a name of the expansion (so later expansions of the
    same template cannot change what an earlier one returned)."""
    if ret is None or ret.value is None:
        raise fail(
            "TypeError",
            f"Inline function '{inl.name}' has no return value",
            b.span(ret if ret is not None else inl.node),
            "Inline functions used as expressions must return a value",
        )
    nodes = ret.value.elts if isinstance(ret.value, ast.Tuple) else [ret.value]
    out = []
    for i, node in enumerate(nodes):
        value = b.expr(node)
        if not isinstance(value, Var):
            var = b.bind(f"ret{i}" if len(nodes) > 1 else "ret", value.type, node)
            b.hoisted.append(Assign((var,), value, b.span(node)))
            value = Var(var.name, var.type, value.span)
        out.append(value)
    return tuple(out)


def _literal(e: Expr) -> bool:
    """A constant that folds back to itself: an INDEX int, an FP32 float or a BOOL."""
    return isinstance(e, Const) and (e.dtype, type(e.value)) in (
        (INDEX, int),
        (FP32, float),
        (BOOL, bool),
    )


def inline_of(b: BodyBuilder, func: ast.expr) -> InlineFunction | None:
    """The InlineFunction a bare-name call refers to, if any."""
    if isinstance(func, ast.Name) and func.id not in b.vars:
        value = b.program.ns.get(func.id)
        if isinstance(value, InlineFunction):
            return value
    return None
