"""Source-level rewrites of a @pl.jit function before capture (positions are kept).

A jit body is PyPTO's `pl` plus a few things that only make sense once the call's arguments
are known; these rewrites turn it into an ordinary kernel body:

* `M = pl.dynamic("M")` in the body becomes a closure name; `x.bind_dynamic(axis, M)` is
  collected (it decides the parameter's type) and dropped.
* `x.shape`, `x.shape[i]`, `x.dtype` of a tensor parameter become constants (a dynamic dim
  becomes its `pl.dynamic` name); `K = x.shape[1]` and `M, N = x.shape` bind capture-time
  names instead of kernel variables.
* Rebinding is renamed as PyPTO's specializer does: a name assigned again at the scope depth
  of its first assignment becomes `name_v1`, `name_v2`, ... (so its type may change there);
  an assignment inside a deeper scope (loop, `with`, `if`) is a loop-carried update and keeps
  the name (same type). A loop whose body rebinds a same-depth name it also reads first gets a
  bridge `name_vN = name` before it; sibling loop bodies and `if` branches each bind their
  own locals afresh.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pldsl.dtypes import DType
from pldsl.ir.nodes import Var
from pldsl.ir.types import TensorType
from pldsl.types import DynVar


class RewriteError(Exception):
    """A jit-only construct used wrongly; `node` locates it."""

    def __init__(self, message: str, node: ast.AST, help: str = "") -> None:
        super().__init__(message)
        self.message, self.node, self.help = message, node, help


@dataclass
class BindDynamic:
    param: str
    axis: int
    dyn: DynVar
    node: ast.AST


@dataclass
class Prepared:
    """A jit function's AST after the argument-independent rewrites."""

    fdef: ast.FunctionDef
    binds: list[BindDynamic] = field(default_factory=list)


def _is_pl_dynamic(value: ast.expr, ns: Mapping[str, Any]) -> bool:
    import pldsl

    f = value.func if isinstance(value, ast.Call) else None
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "dynamic"
        and isinstance(f.value, ast.Name)
        and ns.get(f.value.id) is pldsl
    )


def prepare(
    fdef: ast.FunctionDef, ns: dict[str, Any], evaluate: Callable[[ast.expr], Any]
) -> Prepared:
    """Drop `pl.dynamic` assignments (binding them in `ns`) and `bind_dynamic` statements."""
    fdef = copy_tree(fdef)
    params = {a.arg for a in fdef.args.args}
    out = Prepared(fdef)

    def visit(stmts: list[ast.stmt]) -> list[ast.stmt]:
        kept: list[ast.stmt] = []
        for s in stmts:
            if (
                isinstance(s, ast.Assign)
                and len(s.targets) == 1
                and isinstance(s.targets[0], ast.Name)
                and _is_pl_dynamic(s.value, ns)
            ):
                ns[s.targets[0].id] = evaluate(s.value)
                continue
            call = s.value if isinstance(s, ast.Expr) else None
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "bind_dynamic"
            ):
                out.binds.append(_bind_dynamic(call, params, evaluate))
                continue
            _visit_children(s, visit)
            kept.append(s)
        return kept

    fdef.body = visit(fdef.body) or [ast.Pass()]
    return out


def copy_tree(node: ast.AST) -> ast.AST:
    """A copy of a syntax tree: new nodes and lists, the leaf values (names, constants,
    positions) shared. Three times faster than `copy.deepcopy`, which a big jit function
    (pypto-lib's MoE, thousands of nodes) pays on every specialisation."""
    new = type(node).__new__(type(node))
    for key, value in node.__dict__.items():
        if isinstance(value, ast.AST):
            value = copy_tree(value)
        elif isinstance(value, list):
            value = [copy_tree(v) if isinstance(v, ast.AST) else v for v in value]
        new.__dict__[key] = value
    return new


def _visit_children(s: ast.stmt, visit) -> None:
    """Apply a statement-list rewrite to the nested blocks of `s` (empty ones stay empty)."""
    for name in ("body", "orelse"):
        block = getattr(s, name, None)
        if isinstance(block, list) and block:
            setattr(s, name, visit(block) or [ast.Pass()])


def _bind_dynamic(call: ast.Call, params: set[str], evaluate) -> BindDynamic:
    target = call.func.value
    usage = "x.bind_dynamic(axis, pl.dynamic('N')) on a tensor parameter"
    if not isinstance(target, ast.Name) or target.id not in params:
        raise RewriteError("bind_dynamic() applies to a tensor parameter", call, usage)
    if len(call.args) != 2 or call.keywords:
        raise RewriteError("bind_dynamic() takes (axis, dynamic dim)", call, usage)
    axis, dyn = evaluate(call.args[0]), evaluate(call.args[1])
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise RewriteError("bind_dynamic()'s axis must be an integer constant", call.args[0], usage)
    if not isinstance(dyn, DynVar):
        raise RewriteError(
            "bind_dynamic()'s second argument must be a pl.dynamic(...) dim", call.args[1], usage
        )
    return BindDynamic(target.id, axis, dyn, call)


# ------------------------------------------------------------------ shapes and dtypes


def substitute_shapes(
    fdef: ast.FunctionDef, tensors: Mapping[str, TensorType], ns: dict[str, Any]
) -> None:
    """`x.shape` / `x.shape[i]` / `x.dtype` of tensor parameters -> constants (in place)."""
    assigned = _assignment_counts(fdef)

    def dim_node(d: Any, like: ast.AST) -> ast.expr:
        if isinstance(d, Var):
            if not isinstance(ns.get(d.name), DynVar):
                ns[d.name] = DynVar(d.name)
            node: ast.expr = ast.Name(d.name, ast.Load())
        else:
            node = ast.Constant(d)
        node._pl_from_shape = True  # type: ignore[attr-defined]
        return ast.copy_location(node, like)

    class Shapes(ast.NodeTransformer):
        def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
            base = node.value
            if isinstance(base, ast.Name) and base.id in tensors:
                t = tensors[base.id]
                if node.attr == "shape":
                    elts = [dim_node(d, node) for d in t.shape]
                    return ast.copy_location(ast.Tuple(elts, ast.Load()), node)
                if node.attr == "dtype":
                    key = f"__pl_dtype_{t.dtype.name}"
                    ns[key] = t.dtype
                    return ast.copy_location(ast.Name(key, ast.Load()), node)
            return self.generic_visit(node)

        def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
            node = self.generic_visit(node)
            if isinstance(node.value, ast.Tuple) and isinstance(node.slice, ast.Constant):
                i = node.slice.value
                if isinstance(i, int) and -len(node.value.elts) <= i < len(node.value.elts):
                    return node.value.elts[i]
            return node

    Shapes().visit(fdef)
    _fold_shape_assignments(fdef, ns, assigned)


def _fold_shape_assignments(fdef: ast.FunctionDef, ns: dict[str, Any], assigned) -> None:
    """`K = 128` / `M, N = (M, 128)` left by the shape rewrite -> closure names, when each
    name is assigned only there (so it is a constant of the function, as PyPTO inlines it)."""

    def static(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and isinstance(ns.get(node.id), (DynVar, DType)):
            return ns[node.id]
        return None

    def visit(stmts: list[ast.stmt]) -> list[ast.stmt]:
        kept = []
        for s in stmts:
            if isinstance(s, ast.Assign) and len(s.targets) == 1:
                pairs = _shape_pairs(s.targets[0], s.value)
                if pairs and all(
                    assigned.get(t.id) == 1 and static(v) is not None for t, v in pairs
                ):
                    for t, v in pairs:
                        if t.id != getattr(v, "id", None):
                            ns[t.id] = static(v)
                    continue
            _visit_children(s, visit)
            kept.append(s)
        return kept

    fdef.body = visit(fdef.body) or [ast.Pass()]


def _shape_pairs(target: ast.expr, value: ast.expr) -> list[tuple[ast.Name, ast.expr]] | None:
    if isinstance(target, ast.Name) and isinstance(value, (ast.Constant, ast.Name)):
        return [(target, value)] if _from_shape(value) else None
    if (
        isinstance(target, ast.Tuple)
        and isinstance(value, ast.Tuple)
        and len(target.elts) == len(value.elts)
        and all(isinstance(t, ast.Name) for t in target.elts)
        and all(_from_shape(v) for v in value.elts)
    ):
        return list(zip(target.elts, value.elts))
    return None


def _from_shape(node: ast.expr) -> bool:
    # Only values the shape rewrite made are folded, never literals the user wrote.
    return getattr(node, "_pl_from_shape", False)


def _assignment_counts(fdef: ast.FunctionDef) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in ast.walk(fdef):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.For)):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    counts[n.id] = counts.get(n.id, 0) + 1
    return counts


# ------------------------------------------------------------------ rebinding


class Renamer(ast.NodeTransformer):
    """PyPTO's rebinding rename (see the module docstring); `aliases` maps back for messages."""

    def __init__(self, params: list[str]) -> None:
        self.depth = 0
        self.count: dict[str, int] = {p: 1 for p in params}
        self.first_depth: dict[str, int] = {p: 0 for p in params}
        self.current: dict[str, str] = {}
        self.aliases: dict[str, str] = {}
        self.used: set[str] = set(params)

    def run(self, fdef: ast.FunctionDef) -> None:
        for node in ast.walk(fdef):
            if isinstance(node, ast.Name):
                self.used.add(node.id)
        fdef.body = self.block(fdef.body)

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            r = self.visit(s)
            out.extend(r if isinstance(r, list) else [r] if r is not None else [])
        return out or [ast.Pass()]

    def fresh(self, name: str) -> str:
        n = self.count[name]
        new = f"{name}_v{n}"
        while new in self.used:
            n += 1
            new = f"{name}_v{n}"
        self.count[name] = n + 1
        self.current[name] = new
        self.aliases[new] = name
        self.used.add(new)
        return new

    def forget(self, name: str) -> None:
        for d in (self.count, self.first_depth, self.current):
            d.pop(name, None)

    def store(self, target: ast.expr) -> None:
        """Rename the names a statement binds (after its value was visited)."""
        for n in ast.walk(target):
            if not (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)):
                continue
            if n.id not in self.count:
                self.count[n.id] = 1
                self.first_depth[n.id] = self.depth
                continue
            if self.first_depth[n.id] == self.depth:
                n.id = self.fresh(n.id)
            elif n.id in self.current:
                n.id = self.current[n.id]

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if isinstance(node.ctx, ast.Load) and node.id in self.current:
            node.id = self.current[node.id]
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        node.value = self.visit(node.value)
        for t in node.targets:
            if isinstance(t, (ast.Name, ast.Tuple)):
                self.store(t)
            else:
                self.visit(t)  # a subscript target reads its base
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:
        if node.value is not None:
            node.value = self.visit(node.value)
        self.store(node.target)
        return node

    def visit_For(self, node: ast.For) -> list[ast.stmt]:
        node.iter = self.visit(node.iter)
        self.depth += 1
        carried, fresh = self._sibling_collisions(node.body)
        self.depth -= 1
        bridges = []
        for name in carried:
            source = self.current.get(name, name)
            new = self.fresh(name)
            bridge = ast.Assign([ast.Name(new, ast.Store())], ast.Name(source, ast.Load()))
            bridges.append(ast.copy_location(bridge, node))
            ast.fix_missing_locations(bridge)
        for name in fresh:
            self.forget(name)
        self.depth += 1
        node.body = self.block(node.body)
        self.depth -= 1
        return [*bridges, node]

    def visit_If(self, node: ast.If) -> ast.stmt:
        node.test = self.visit(node.test)
        self.depth += 1
        before = set(self.count)
        node.body = self.block(node.body)
        if node.orelse:
            for name in set(self.count) - before:
                self.forget(name)
            node.orelse = self.block(node.orelse)
        self.depth -= 1
        return node

    def visit_While(self, node: ast.While) -> ast.stmt:
        node.test = self.visit(node.test)
        self.depth += 1
        node.body = self.block(node.body)
        self.depth -= 1
        return node

    def visit_With(self, node: ast.With) -> ast.stmt:
        node.items = [self.visit(i) for i in node.items]
        self.depth += 1
        node.body = self.block(node.body)
        self.depth -= 1
        return node

    def _sibling_collisions(self, body: list[ast.stmt]) -> tuple[list[str], list[str]]:
        """Names the loop body assigns that were first bound at the body's own depth (by a
        sibling scope): carried when the body reads them before writing, else fresh."""
        exposed = _read_before_write(body)
        carried: list[str] = []
        fresh: list[str] = []
        for s in body:
            targets = (
                s.targets
                if isinstance(s, ast.Assign)
                else [s.target]
                if isinstance(s, ast.AnnAssign)
                else []
            )
            for t in targets:
                for n in ast.walk(t):
                    if not (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)):
                        continue
                    if n.id in carried or n.id in fresh:
                        continue
                    if self.first_depth.get(n.id, -1) == self.depth:
                        (carried if n.id in exposed else fresh).append(n.id)
        return carried, fresh


def _names(node: ast.AST, ctx: type) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def _read_before_write(stmts: list[ast.stmt]) -> set[str]:
    exposed: set[str] = set()

    def walk(stmts: list[ast.stmt], written: set[str]) -> None:
        for s in stmts:
            if isinstance(s, (ast.Assign, ast.AnnAssign)):
                if s.value is not None:
                    exposed.update(_names(s.value, ast.Load) - written)
                for t in s.targets if isinstance(s, ast.Assign) else [s.target]:
                    exposed.update(_names(t, ast.Load) - written)
                    written |= _names(t, ast.Store)
            elif isinstance(s, ast.For):
                exposed.update(_names(s.iter, ast.Load) - written)
                written |= _names(s.target, ast.Store)
                walk(s.body, written)
            elif isinstance(s, ast.If):
                exposed.update(_names(s.test, ast.Load) - written)
                then_w, else_w = set(written), set(written)
                walk(s.body, then_w)
                walk(s.orelse, else_w)
                written |= then_w & else_w if s.orelse else set()
            elif isinstance(s, ast.With):
                for item in s.items:
                    exposed.update(_names(item.context_expr, ast.Load) - written)
                walk(s.body, written)
            else:
                exposed.update(_names(s, ast.Load) - written)

    walk(stmts, set())
    return exposed


def rename_rebindings(fdef: ast.FunctionDef) -> dict[str, str]:
    """Apply the rebinding rename in place; returns alias -> original name."""
    r = Renamer([a.arg for a in fdef.args.args])
    r.run(fdef)
    return r.aliases
