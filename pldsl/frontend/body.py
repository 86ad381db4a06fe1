"""Kernel bodies: Python statements and expressions -> typed IR (the body never runs)."""

from __future__ import annotations

import ast
import math
import sys
from enum import Enum
from typing import Any

from pldsl.diagnostics import PldslError
from pldsl.dtypes import BOOL, FP32, INDEX, DType, same_category
from pldsl.enums import Level, Optimizer, PadValue, Role
from pldsl.frontend import control, dims, inline, prefetch, scopes, split_aiv, submit, subscript
from pldsl.frontend.capture import ProgramBuilder, fail
from pldsl.frontend.static_eval import NotStatic, StaticEvaluator
from pldsl.ir.memory import memory_hint, tile_namespace_error
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    Expr,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    Return,
    Scope,
    Signature,
    Stmt,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
)
from pldsl.ir.opdefs import op_label
from pldsl.ir.printer import format_type
from pldsl.ir.symbolic import deduce_call_type, shape_vars, types_equal
from pldsl.ir.types import ScalarType, TensorType, TupleType, Type, memory_of
from pldsl.ops import TypeRuleError, lookup
from pldsl.ops.binding import bind_op_call, scalar_binop_type, signature_hint
from pldsl.types import DynVar, PlacementHint

_BINOPS = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.FloorDiv: "floordiv",
    ast.Mod: "mod",
}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
LOOP_KINDS = ("range", "parallel", "unroll", "pipeline")
INDEX_T = ScalarType(INDEX)
LOOP_KWARGS = ("init_values", "chunk", "chunk_policy", "stage")
CHUNK_POLICIES = ("guarded", "leading_full")
AT_KWARGS = (
    "level",
    "optimization",
    "optimizations",
    "name_hint",
    "allow_early_resolve",
    "deps",
    "no_dep_args",
)
# `pl.add(a, b)` on two scalars is `a + b` (PyPTO's scalar dispatch of the unified ops).
SCALAR_DISPATCH = {
    "add": "add",
    "sub": "sub",
    "mul": "mul",
    "div": "div",
    "maximum": "max",
    "minimum": "min",
}
_PAD_SUGAR = {0: PadValue.zero, math.inf: PadValue.max, -math.inf: PadValue.min}


class BodyBuilder:
    def __init__(
        self,
        program: ProgramBuilder,
        node: ast.FunctionDef,
        signatures: dict[str, Signature],
        options: dict[str, Any],
    ):
        self.program, self.node, self.signatures, self.options = program, node, signatures, options
        self.smap = program.smap
        self.sig = signatures[node.name]
        self.vars: dict[str, Var] = {p.name: p.var for p in self.sig.params}
        self.static = StaticEvaluator(program.ns, lambda name: name in self.vars)
        self.loop_kinds: list[str] = []
        self.carries: list[tuple[Var, ...]] = []
        self.contexts: list[str] = []  # "loop" | "if" | "if_yield" | "at", innermost last
        self.if_yields: list = []  # per SSA if being built: the first branch's yield names/types
        # @pl.inline expansions (frontend/inline.py): statements to put before the statement
        # being built, the templates being expanded, and the name prefix of the innermost one.
        self.hoisted: list[Stmt] = []
        self.expanded: dict = {}  # (call node, prefix) -> values, per statement: expand once
        self.inline_stack: list = []
        self.inline_prefix = ""
        self.capture_reads: set[str] = set()  # see Function.capture_reads
        self.inline_count = 0
        self.spmd_blocks: list[Var] = []  # block index of each enclosing pl.spmd, innermost last
        self.aiv_regions: list = []  # enclosing pl.split_aiv regions (frontend/split_aiv.py)
        self.spmd_counter = 0  # names the block variable of each `with pl.spmd(...)` form
        self.handles: dict[str, str] = {}  # pl.prefetch handles by name (no IR value)
        # Names of pl.array values (pl.array.create, pl.Array parameters): element writes allowed.
        self.arrays: set[str] = {
            a.arg
            for a in node.args.args + node.args.kwonlyargs
            if a.annotation is not None and ".Array[" in ast.unparse(a.annotation)
        }
        # Without a return annotation, the types of the first `return` (later ones must agree).
        self.inferred_returns: tuple[Type, ...] | None = None
        self.has_return = False
        # Blocks being built (unique ids, outermost first) and where each name was bound, to
        # tell a name leaked from a finished sibling block from one still in scope.
        self.blocks_opened = 0
        self.block_path: list[int] = []
        self.bound_in: dict[str, tuple[int, ...]] = {}
        self.strict_ssa = bool(options.get("strict_ssa", False))
        self.dim_names = {v.name for p in self.sig.params for v in shape_vars(p.type)}
        for key, value in program.ns.items():
            if isinstance(value, DynVar):
                self.dim_names |= {key, value.name}

    def span(self, node: ast.AST):
        return self.smap.span(node)

    # ------------------------------------------------------------------ function
    def build(self) -> Function:
        stub = self._is_stub(self.node.body)
        role, level = self.options.get("role"), self.options.get("level")
        control.check_func_attr_prologue(self, self.node.body, self.node.name)
        body: tuple[Stmt, ...] = () if stub else self.block(self.node.body)
        if self.sig.returns and not stub and not self.has_return:
            raise fail(
                "MissingReturn",
                f"function '{self.node.name}' declares a return type but never returns",
                self.span(self.node),
                "end the body with `return ...`",
            )
        returns = self.sig.returns or self.inferred_returns or ()
        dyn: dict[str, Var] = {}
        for p in self.sig.params:
            for v in shape_vars(p.type):
                dyn.setdefault(v.name, v)
        return Function(
            name=self.node.name,
            params=self.sig.params,
            return_types=returns,
            body=body,
            func_type=self.options["type"],
            level=level,
            role=role,
            is_host_stub=stub and role == Role.SubWorker and level == Level.HOST,
            external=stub and bool(self.options.get("external")),
            tuple_return=self.sig.tuple_return or (not self.sig.returns and len(returns) > 1),
            dynamic_dims=tuple(dyn.values()),
            span=self.span(self.node),
            capture_reads=frozenset(self.capture_reads),
        )

    @staticmethod
    def _is_stub(body: list[ast.stmt]) -> bool:
        for s in body:
            if isinstance(s, ast.Pass):
                continue
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
                continue  # docstring or `...`
            return False
        return True

    # ------------------------------------------------------------------ statements
    def block(self, stmts: list[ast.stmt]) -> tuple[Stmt, ...]:
        self.blocks_opened += 1
        self.block_path.append(self.blocks_opened)
        out: list[Stmt] = []
        try:
            for s in stmts:
                saved = self.hoisted, self.expanded
                self.hoisted, self.expanded = [], {}
                try:
                    built = self.stmt(s)
                    out.extend(self.hoisted)  # expanded @pl.inline calls come first
                finally:
                    self.hoisted, self.expanded = saved
                if isinstance(built, tuple):  # one source statement, several IR statements
                    out.extend(built)
                elif built is not None:
                    out.append(built)
        finally:
            self.block_path.pop()
        return tuple(out)

    def stmt(self, s: ast.stmt) -> Stmt | None:
        if isinstance(s, ast.Assign):
            return self.assign(s)
        if isinstance(s, ast.AnnAssign):
            return self.ann_assign(s)
        if isinstance(s, ast.Expr):
            return self.expr_stmt(s)
        if isinstance(s, ast.For):
            return self.for_(s)
        if isinstance(s, ast.While):
            return control.natural_while(self, s)
        if isinstance(s, ast.If):
            return self.if_(s)
        if isinstance(s, ast.With):
            return self.with_(s)
        if isinstance(s, ast.Return):
            return self.return_(s)
        if isinstance(s, ast.Pass):
            return None
        if isinstance(s, (ast.Break, ast.Continue)):
            return self.jump(s)
        if isinstance(s, ast.AugAssign):
            raise fail(
                "UnsupportedFeature",
                "augmented assignment (+=, -=, ...) is not supported",
                self.span(s),
                "write it out: x = x + 1 for scalars, x = pl.add(x, y) for tensors",
            )
        raise fail(
            "UnsupportedFeature",
            f"Unsupported statement type: {type(s).__name__}",
            self.span(s),
            "kernel bodies accept assignments, pl loops, if, with pl.at, return and op calls",
        )

    def assign(self, s: ast.Assign) -> Stmt:
        if len(s.targets) != 1:
            raise fail(
                "UnsupportedFeature",
                "chained assignment (a = b = ...) is not supported",
                self.span(s),
                help="assign once per statement",
            )
        target = s.targets[0]
        if self._is_yield(s.value):
            return self.yield_(s.value, target)
        if isinstance(s.value, ast.Call) and self._pl_name(s.value.func) == "spmd_submit":
            return self.with_(submit.as_with_spmd(self, s))
        if (
            isinstance(s.value, ast.Call)
            and self._pl_name(s.value.func) == "system.task_dummy"
            and isinstance(target, (ast.Name, ast.Subscript))
        ):
            return scopes.task_dummy(self, s.value, target, s)
        value = None
        if isinstance(s.value, ast.Call) and prefetch.is_prefetch(self._pl_name(s.value.func)):
            value = prefetch.prefetch_call(self, s.value, target)
            if value is None:
                return None  # a prefetch handle: no IR value
        if isinstance(s.value, ast.Tuple):  # `t = (a, b)`, `a, b = b, a`: a tuple value
            value = control.make_tuple(self, s.value)
            if isinstance(target, ast.Name):
                return Assign((self.bind(target.id, value.type, target),), value, self.span(s))
        if isinstance(target, ast.Name):
            value = self.expr(s.value) if value is None else value
            if dims.alias_dim_symbol(self, target, value):
                return None
            if isinstance(s.value, ast.Call) and self._pl_name(s.value.func) == "array.create":
                self.arrays.add(target.id)
            return Assign((self.bind(target.id, value.type, target),), value, self.span(s))
        if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
            inl = inline.inline_of(self, s.value.func) if isinstance(s.value, ast.Call) else None
            if inl is not None:
                return self._unpack_inline(inl, s, target)
            if not isinstance(s.value, ast.Tuple):
                value = self.expr(s.value)
            if not isinstance(value.type, TupleType):
                raise fail(
                    "TypeError",
                    f"cannot unpack a value of type {format_type(value.type)}",
                    self.span(s.value),
                    "only calls returning pl.Tuple[...] can be unpacked",
                )
            if len(value.type.items) != len(target.elts):
                raise fail(
                    "TypeError",
                    f"cannot unpack {len(value.type.items)} values into {len(target.elts)} names",
                    self.span(target),
                    help="unpack as many names as the callee returns",
                )
            targets = tuple(self.bind(e.id, t, e) for e, t in zip(target.elts, value.type.items))
            return Assign(targets, value, self.span(s))
        if isinstance(target, ast.Subscript):
            return subscript.store(self, target, s.value, s)
        raise fail(
            "UnsupportedFeature",
            "unsupported assignment target",
            self.span(target),
            help="assign to a name, or unpack a call: a, b = self.f(...)",
        )

    def _unpack_inline(self, inl, s: ast.Assign, target: ast.Tuple) -> Stmt:
        """`a, b = f(...)` with `f` a @pl.inline returning two values: one binding each."""
        values = inline.expand(self, s.value, inl)
        if len(values) != len(target.elts):
            raise fail(
                "TypeError",
                f"cannot unpack {len(values)} values into {len(target.elts)} names",
                self.span(target),
                help=f"'{inl.name}' returns {len(values)} values",
            )
        binds = [
            Assign((self.bind(e.id, v.type, e),), v, self.span(s))
            for e, v in zip(target.elts, values)
        ]
        self.hoisted.extend(binds[:-1])
        return binds[-1]

    def ann_assign(self, s: ast.AnnAssign) -> Stmt:
        if not isinstance(s.target, ast.Name) or s.value is None:
            raise fail(
                "UnsupportedFeature",
                "annotated assignments need a name and a value",
                self.span(s),
                help="write name: pl.Tensor[...] = value",
            )
        value = self.expr(s.value)
        if self._names_a_local(s.annotation, value.type):
            return Assign((self.bind(s.target.id, value.type, s.target),), value, self.span(s))
        declared = self.program.type_of(self.program.annotation(s.annotation), s.annotation)
        if not types_equal(declared, value.type):
            raise fail(
                "TypeError",
                f"annotation {format_type(declared)} does not match the value's type {format_type(value.type)}",
                self.span(s.annotation),
                help="fix the annotation or the value; capture infers the value's type",
            )
        return Assign((self.bind(s.target.id, value.type, s.target),), value, self.span(s))

    def _names_a_local(self, annotation: ast.expr, t: Type) -> bool:
        """An annotation naming a variable of this body (`n = pl.tensor.dim(x, 0) // 4`, then
        `v: pl.Tensor[[n, 8], ...] = ...`): PyPTO resolves the name to that runtime value,
        which capture cannot evaluate, so the tensor value's own type stands (its dtype and
        rank still compared when the annotation also evaluates at module level)."""
        names = {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)}
        if not names & self.vars.keys() or not isinstance(t, TensorType):
            return False
        try:  # the same name at module level gives the dtype and rank to compare
            declared = self.program.type_of(self.program.annotation(annotation), annotation)
        except PldslError:
            return True  # the name is only this body's
        return isinstance(declared, TensorType) and (declared.dtype, declared.rank) == (
            t.dtype,
            t.rank,
        )

    def bind(self, name: str, t: Type, node: ast.AST) -> Var:
        """Non-SSA rebinding: a name keeps one Var; a new value must have the same type."""
        old = self.vars.get(name)
        if old is not None and dims.is_alias(self, name, old):
            old = None  # the name stood for a dim symbol: a variable of its own from here
        if old is not None:
            if self.strict_ssa:
                prev = old.span
                raise fail(
                    "SSAViolation",
                    f"'{name}' is assigned more than once (strict_ssa=True)",
                    self.span(node),
                    "use a new name for every value",
                    notes=(f"previous definition at {prev}",) if prev.line else (),
                )
            if not types_equal(old.type, t) and self._fresh_view_rebinding(name, old.type, t):
                return self._fresh_var(name, t, node)
            if not types_equal(old.type, t):
                raise fail(
                    "TypeError",
                    f"Cannot reassign '{name}' with a different type: was {format_type(old.type)}, got {format_type(t)}",
                    self.span(node),
                    "use a new name for a value of a different shape, dtype or valid_shape",
                )
            # Same variable (same name and type); the span is this binding's, so findings
            # about an assignment point at it rather than at the first definition. A renamed
            # variable (`acc__2`, a loop carry or a fresh view) keeps its IR name.
            return Var(old.name, old.type, self.span(node))
        if name in ("pl", "self"):
            raise fail(
                "TypeError",
                f"'{name}' cannot be rebound in a kernel body",
                self.span(node),
                help="choose another name",
            )
        if isinstance(t, TupleType) and not t.items:
            raise fail(
                "TypeError",
                f"the value assigned to '{name}' is nothing (the callee declares no return type)",
                self.span(node),
                "annotate the called function's return type (-> pl.Tensor[...])",
            )
        if name in self.dim_names:
            raise fail(
                "TypeError",
                f"'{name}' names a dynamic dimension of this function's parameters",
                self.span(node),
                "choose another name; read a runtime extent with pl.tensor.dim(t, axis)",
            )
        var = Var(self.inline_prefix + name, t, self.span(node))
        self.vars[name] = var
        self.bound_in[name] = tuple(self.block_path)
        return var

    def _fresh_view_rebinding(self, name: str, old: Type, new: Type) -> bool:
        """A historical rebinding: the name leaked from a finished sibling block and the new
        value differs only in its valid region (PyPTO before July 2026 dropped the valid
        region in reshape, and seed-era kernels reuse names on that basis)."""
        where = self.bound_in.get(name)
        if where is None or tuple(self.block_path[: len(where)]) == where:
            return False  # bound in an enclosing block: a real rebinding (maybe loop-carried)
        return (
            isinstance(old, TensorType)
            and isinstance(new, TensorType)
            and old.dtype == new.dtype
            and types_equal(TensorType(old.shape, old.dtype), TensorType(new.shape, new.dtype))
        )

    def _fresh_var(self, name: str, t: Type, node: ast.AST) -> Var:
        n = 2
        while f"{name}__{n}" in self.vars:
            n += 1
        var = Var(f"{self.inline_prefix}{name}__{n}", t, self.span(node))
        self.vars[name] = self.vars[var.name] = var
        self.bound_in[name] = tuple(self.block_path)
        return var

    def expr_stmt(self, s: ast.Expr) -> Stmt | None:
        if isinstance(s.value, ast.Constant):
            return None  # docstrings and `...`
        if not isinstance(s.value, ast.Call):
            raise fail(
                "UnsupportedFeature",
                "an expression statement must be a call",
                self.span(s),
                "assign the value to a name, or remove the statement",
            )
        if self._is_yield(s.value):
            return self.yield_(s.value, None)
        name = self._pl_name(s.value.func)
        if name == "static_print":
            scopes.static_print(self, s.value)
            return None
        if name == "static_assert":
            scopes.static_assert(self, s.value)
            return None
        if name == "func_attr":
            scopes.func_attr(self, s.value)
            return None
        if prefetch.is_prefetch(name):
            prefetch.prefetch_call(self, s.value, None)
            return None
        if name == "system.syncall":
            return scopes.syncall(self, s.value)
        return ExprStmt(self.expr(s.value), self.span(s))

    def _is_yield(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Call) and self._pl_name(node.func) == "yield_"

    def yield_(self, call: ast.Call, target: ast.expr | None) -> Stmt:
        if self.contexts and self.contexts[-1] == "if_yield":
            return control.if_yield(self, call, target)
        if not self.contexts or self.contexts[-1] != "loop" or not self.carries[-1]:
            inside = self.contexts[-1] if self.contexts else None
            raise fail(
                "UnsupportedFeature",
                "pl.yield_ here is not the last statement of an if branch (the SSA if-form)"
                if inside == "if"
                else "pl.yield_ outside a loop with init_values",
                self.span(call),
                "end both branches with r = pl.yield_(...), the same names in each"
                if inside == "if"
                else "declare carries: for i, (acc,) in pl.range(n, init_values=(acc0,)), "
                "and end the body with acc_out = pl.yield_(new_acc)",
            )
        values = control.yield_values(self, call)
        carries = self.carries[-1]
        if len(values) != len(carries):
            raise fail(
                "TypeError",
                f"pl.yield_ gives {len(values)} values for {len(carries)} loop carries",
                self.span(call),
                help="yield one value per name in init_values",
            )
        for v, c in zip(values, carries):
            if not types_equal(v.type, c.type):
                raise fail(
                    "TypeError",
                    f"yielded value of type {format_type(v.type)} for carry '{c.name}' of type {format_type(c.type)}",
                    self.span(call),
                    help="the next value of a carry must keep its type; pl.cast it",
                )
        if target is None:
            raise fail(
                "UnsupportedFeature",
                "a loop with init_values requires assignment-form pl.yield_",
                self.span(call),
                "a, b = pl.yield_(x, y): the names bound here hold the final values after the loop",
            )
        elts = control.yield_names(self, target, len(values), "carry")
        targets = tuple(self.bind(n.id, v.type, n) for n, v in zip(elts, values))
        return Yield(targets, values, self.span(call))

    def for_(self, s: ast.For) -> Stmt:
        if s.orelse:
            raise fail(
                "UnsupportedFeature",
                "for/else is not supported",
                self.span(s.orelse[0]),
                help="move the else block after the loop",
            )
        call = s.iter
        kind = self._pl_name(call.func) if isinstance(call, ast.Call) else None
        if kind == "spmd":
            return scopes.for_spmd(self, s)
        if kind == "while_":
            return control.ssa_while(self, s, call)
        if kind == "split_aiv":
            return split_aiv.for_split_aiv(self, s)
        if kind not in LOOP_KINDS:
            over = f" (this one iterates over {_source_text(call.func if isinstance(call, ast.Call) else call)})"
            raise fail(
                "UnsupportedFeature",
                "for loops must iterate over pl.range, pl.parallel, pl.unroll, pl.pipeline or "
                "pl.spmd" + over,
                self.span(s.iter),
                "e.g. for i in pl.range(0, n, 16):",
            )
        if not 1 <= len(call.args) <= 3 or any(isinstance(a, ast.Starred) for a in call.args):
            raise fail(
                "TypeError",
                f"pl.{kind} takes 1 to 3 bounds: (stop), (start, stop) or (start, stop, step)",
                self.span(call),
                help="e.g. pl.range(0, n, 16)",
            )
        bounds = [self.index_expr(a) for a in call.args]
        if len(bounds) == 1:
            bounds = [Const(0, INDEX), bounds[0]]
        if len(bounds) == 2:
            bounds.append(Const(1, INDEX))
        start, stop, step = bounds
        if isinstance(step, Const) and step.value == 0:
            raise fail(
                "ValueError",
                "loop step must not be zero",
                self.span(call.args[2]),
                help="use a positive or negative step",
            )
        attrs, inits = [], []
        for kw in call.keywords:
            if kw.arg not in LOOP_KWARGS or (kw.arg == "stage" and kind != "pipeline"):
                raise fail(
                    "UnsupportedFeature",
                    f"Unknown keyword argument '{kw.arg}' in pl.{kind}()"
                    if kw.arg
                    else f"**kwargs are not accepted in pl.{kind}()",
                    self.span(kw),
                    f"accepted: {', '.join(k for k in LOOP_KWARGS if k != 'stage' or kind == 'pipeline')}",
                )
            if kw.arg == "init_values":
                if kind == "unroll":
                    raise fail(
                        "UnsupportedFeature",
                        "pl.unroll loops cannot carry values (init_values)",
                        self.span(kw),
                        "use pl.range for a loop with carries",
                    )
                if not isinstance(kw.value, (ast.Tuple, ast.List)) or not kw.value.elts:
                    raise fail(
                        "TypeError",
                        "init_values must be a non-empty tuple like (acc0,)",
                        self.span(kw.value),
                        help="init_values=(acc0,)",
                    )
                inits = [self.expr(e) for e in kw.value.elts]
                continue
            value = self.static_value(kw.value, f"{kw.arg}=")
            if kw.arg in ("chunk", "stage") and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0
            ):
                raise fail(
                    "TypeError",
                    f"{kw.arg}= must be a positive integer constant",
                    self.span(kw.value),
                    help="e.g. chunk=4",
                )
            if kw.arg == "chunk_policy" and value not in CHUNK_POLICIES:
                raise fail(
                    "TypeError",
                    f"chunk_policy= must be one of {', '.join(map(repr, CHUNK_POLICIES))}",
                    self.span(kw.value),
                    help='chunk_policy="guarded"',
                )
            attrs.append((kw.arg, value))
        if kind == "pipeline" and not any(k == "stage" for k, _ in attrs):
            raise fail(
                "TypeError",
                "pl.pipeline needs stage=F",
                self.span(call),
                "e.g. pl.pipeline(n, stage=2)",
            )
        if kind == "unroll" and not all(isinstance(b, Const) for b in (start, stop, step)):
            raise fail(
                "TypeError",
                "pl.unroll bounds must be constants",
                self.span(call),
                help="use pl.range for runtime bounds",
            )
        loop_var, carry_names = self._loop_targets(s.target, len(inits))
        header = [loop_var.id] + [n.id for n in carry_names]
        if len(set(header)) != len(header):
            raise fail(
                "TypeError",
                "the loop variable and the carried names must all differ",
                self.span(s.target),
                "for i, (a, b) in pl.range(n, init_values=(a0, b0)):",
            )
        old = self.vars.get(loop_var.id)
        if old is not None and not self.strict_ssa and not types_equal(old.type, INDEX_T):
            # PyPTO defines the loop variable afresh (a redefinition is allowed): a name that
            # held another type (an INT32 scalar `slot`) becomes the INDEX loop variable
            var = self._fresh_var(loop_var.id, INDEX_T, loop_var)
        else:
            var = self.bind(loop_var.id, INDEX_T, loop_var)
        self._check_yield_placement(s, bool(inits))
        carries, saved = control.bind_carries(self, carry_names, inits)
        self.loop_kinds.append(kind)
        self.carries.append(carries)
        self.contexts.append("loop")
        try:
            body = self.block(s.body)
        finally:
            self.contexts.pop()
            self.carries.pop()
            self.loop_kinds.pop()
            control.end_carries(self, saved, (), [])
        control.end_carries(self, {}, body, s.body)
        return For(
            var, kind, start, stop, step, body, carries, tuple(inits), tuple(attrs), self.span(s)
        )

    def _check_yield_placement(self, s: ast.For, has_carries: bool) -> None:
        """`pl.yield_` is the last statement of a loop with carries, and only there."""
        for stmt in s.body[:-1]:
            if control.yield_of(self, stmt) is not None:
                raise fail(
                    "UnsupportedFeature",
                    "pl.yield_ must be the last statement of the loop body",
                    self.span(stmt),
                    help="move pl.yield_ to the end of the loop body",
                )
        last = s.body[-1]
        if has_carries and isinstance(last, ast.Expr) and self._is_yield(last.value):
            raise fail(
                "UnsupportedFeature",
                "a loop with init_values requires assignment-form pl.yield_",
                self.span(last),
                "a, b = pl.yield_(x, y): the names bound here hold the final values after the loop",
            )
        if has_carries and not (isinstance(last, ast.Assign) and self._is_yield(last.value)):
            raise fail(
                "UnsupportedFeature",
                "a loop with init_values must end with `a, b = pl.yield_(...)`",
                self.span(s.iter),
                "the yielded values become the carries of the next iteration",
            )

    def _loop_targets(self, target: ast.expr, n_inits: int) -> tuple[ast.Name, list[ast.Name]]:
        if isinstance(target, ast.Name) and n_inits == 0:
            return target, []
        if (
            isinstance(target, ast.Tuple)
            and len(target.elts) == 2
            and isinstance(target.elts[0], ast.Name)
            and isinstance(target.elts[1], (ast.Tuple, ast.List))
            and all(isinstance(e, ast.Name) for e in target.elts[1].elts)
            and len(target.elts[1].elts) == n_inits
        ):
            return target.elts[0], list(target.elts[1].elts)
        raise fail(
            "UnsupportedFeature",
            "loop target must be a name, or `i, (a, b)` matching init_values",
            self.span(target),
            help="for i in pl.range(n): or for i, (acc,) in pl.range(n, init_values=(acc0,)):",
        )

    def if_(self, s: ast.If) -> Stmt:
        static = self.static.try_eval(s.test)
        if isinstance(static, bool):
            # A capture-time condition (`if PADDED > TOPK:` over closure constants): as PyPTO,
            # only the taken branch is captured; the other may not even be valid for these sizes.
            yielding = control.yielding_if(self, s)
            if yielding:
                self.if_yields.append(None)
            self.contexts.append("if_yield" if yielding else "if")
            try:
                taken = self.block(s.body if static else s.orelse)
            finally:
                if self.contexts.pop() == "if_yield":
                    self.if_yields.pop()
            self.note_source_reads(s.orelse if static else s.body)
            return If(Const(True, BOOL, self.span(s.test)), taken, (), self.span(s))
        cond = self.expr(s.test)
        if not (isinstance(cond.type, ScalarType) and cond.type.dtype == BOOL):
            raise fail(
                "TypeError",
                "if condition must be a Bool-typed scalar expression",
                self.span(s.test),
                "compare explicitly, e.g. if k == 0:",
            )
        if control.yielding_if(self, s):
            return control.build_yielding_if(self, cond, s)
        self.contexts.append("if")
        try:
            then_body, else_body = self.block(s.body), self.block(s.orelse)
        finally:
            self.contexts.pop()
        return If(cond, then_body, else_body, self.span(s))

    def with_(self, s: ast.With) -> Stmt:
        if len(s.items) != 1:
            raise fail(
                "UnsupportedFeature",
                "use one `with pl.at(...):` per block",
                self.span(s.items[1].context_expr),
                help="nest the scopes, one `with` each",
            )
        call = s.items[0].context_expr
        kind = self._pl_name(call.func) if isinstance(call, ast.Call) else None
        if kind == "spmd":
            return scopes.with_spmd(self, s, call)
        if kind in scopes.PLAIN_SCOPES:
            return scopes.with_plain(self, s, call, kind)
        if kind != "at":
            raise fail(
                "UnsupportedFeature",
                "`with` takes pl.at, pl.spmd, pl.scope, pl.manual_scope, pl.incore or "
                "pl.auto_incore",
                self.span(call),
                "with pl.at(level=pl.Level.CORE_GROUP):",
            )
        if len(call.args) > 1 or any(isinstance(a, ast.Starred) for a in call.args):
            raise fail(
                "TypeError",
                "pl.at takes the level as its only positional argument",
                self.span(call),
                "with pl.at(level=pl.Level.CORE_GROUP, optimization=...):",
            )
        given: list[tuple[str, ast.expr]] = [("level", a) for a in call.args]
        for kw in call.keywords:
            if kw.arg not in AT_KWARGS:
                raise fail(
                    "UnsupportedFeature",
                    f"Unknown keyword argument '{kw.arg}' in pl.at()"
                    if kw.arg
                    else "**kwargs are not accepted in pl.at()",
                    self.span(kw),
                    f"accepted: {', '.join(AT_KWARGS)}",
                )
            if any(name == kw.arg for name, _ in given):
                raise fail(
                    "TypeError",
                    f"pl.at() got multiple values for '{kw.arg}'",
                    self.span(kw),
                    help="give each argument once",
                )
            given.append((kw.arg, kw.value))
        attrs, deps = [], None
        for name, node in given:
            if name == "deps":
                deps = scopes.deps_list(self, node)
                continue
            if name == "no_dep_args":
                attrs.append((name, scopes.no_dep_tensors(self, node)))
                continue
            value = self.static_value(node, f"{name}=")
            if name == "level" and not isinstance(value, Level):
                raise fail(
                    "TypeError",
                    "level= must be a pl.Level member",
                    self.span(node),
                    "e.g. level=pl.Level.CORE_GROUP",
                )
            if name == "optimization" and value is not Optimizer.chunked_loop_optimizer:
                raise fail(
                    "TypeError",
                    "optimization= must be pl.chunked_loop_optimizer",
                    self.span(node),
                    "or write optimizations=[pl.auto_chunk]",
                )
            if name == "optimizations":
                if not isinstance(node, ast.List):
                    raise fail(
                        "TypeError",
                        "optimizations= must be an inline list literal",
                        self.span(node),
                        "e.g. optimizations=[pl.auto_chunk]",
                    )
                if not all(isinstance(v, (Optimizer, PlacementHint)) for v in value):
                    raise fail(
                        "UnsupportedFeature",
                        "optimizations= accepts pl.auto_chunk, pl.chunked_loop_optimizer, "
                        "pl.split(pl.SplitMode...) and pl.cross_core_slot(slot_num=) only",
                        self.span(node),
                        "e.g. optimizations=[pl.split(pl.SplitMode.UP_DOWN)]",
                    )
                # pl.split / pl.cross_core_slot place work on cores: no numeric effect, not recorded.
                value = tuple(v for v in value if isinstance(v, Optimizer))
                if not value:
                    continue
            if name == "name_hint":
                scopes.check_name_hint(self, value, node, "pl.at()")
            if name == "allow_early_resolve" and not isinstance(value, bool):
                raise fail(
                    "TypeError",
                    "allow_early_resolve= must be True or False",
                    self.span(node),
                    help="allow_early_resolve=True",
                )
            attrs.append((name, value))
        if not any(name == "level" for name, _ in attrs):
            raise fail(
                "TypeError",
                "pl.at() needs a level",
                self.span(call),
                "with pl.at(level=pl.Level.CORE_GROUP):",
            )
        # deps= without `as tid`: PyPTO gives the task an unused id; it still waits on deps.
        target = s.items[0].optional_vars
        self.contexts.append("at")
        try:
            body = self.block(s.body)
        finally:
            self.contexts.pop()
        tid = scopes.bind_tid(self, target) if target is not None else None
        return Scope("at", tuple(attrs), body, self.span(s), tid, deps or ())

    def return_(self, s: ast.Return) -> Stmt:
        self.has_return = True
        if "loop" in self.contexts or "at" in self.contexts:
            inside = "a loop" if "loop" in self.contexts else "a pl.at scope"
            raise fail(
                "UnsupportedFeature",
                f"return inside {inside} is not supported",
                self.span(s),
                "return at the function level, after the loop or scope",
            )
        if s.value is None:
            values: tuple[Expr, ...] = ()
        elif isinstance(s.value, ast.Tuple):
            values = tuple(self.expr(e) for e in s.value.elts)
        else:
            values = (self.expr(s.value),)
        got = tuple(v.type for v in values)
        want = self.sig.returns
        if not want and len(got) == 1 and isinstance(got[0], TupleType):
            got = got[0].items
        if not want and self.inferred_returns is not None:
            want = self.inferred_returns
            if len(got) != len(want) or not all(types_equal(a, b) for a, b in zip(got, want)):
                raise fail(
                    "TypeError",
                    f"return type ({', '.join(format_type(t) for t in got)}) differs from an "
                    f"earlier return ({', '.join(format_type(t) for t in want)})",
                    self.span(s),
                    "every return of a function must return the same types; annotate -> ...",
                )
        elif want:
            if len(got) == 1 and isinstance(got[0], TupleType) and len(want) > 1:
                got = got[0].items
            if len(got) != len(want) or not all(types_equal(a, b) for a, b in zip(got, want)):
                raise fail(
                    "TypeError",
                    f"return type ({', '.join(format_type(t) for t in got)}) does not match the declared "
                    f"({', '.join(format_type(t) for t in want)})",
                    self.span(s),
                    help="return values of the declared types (or fix the -> annotation)",
                )
        else:
            self.inferred_returns = got
        return Return(values, self.span(s))

    def jump(self, s: ast.stmt) -> Stmt:
        word = "break" if isinstance(s, ast.Break) else "continue"
        if not self.loop_kinds:
            raise fail(
                "SyntaxError",
                f"'{word}' outside a loop",
                self.span(s),
                help="break and continue belong inside a pl.range loop",
            )
        if self.loop_kinds[-1] not in ("range", "while"):
            raise fail(
                "UnsupportedFeature",
                f"'{word}' is only allowed in pl.range and while loops "
                f"(not pl.{self.loop_kinds[-1]})",
                self.span(s),
                help="use pl.range for a loop that breaks early",
            )
        return Break(self.span(s)) if word == "break" else Continue(self.span(s))

    # ------------------------------------------------------------------ expressions
    def static_value(self, node: ast.expr, what: str) -> Any:
        try:
            return self.static.eval(node)
        except NotStatic:
            raise fail(
                "TypeError",
                f"{what} must be a capture-time constant",
                self.span(node),
                help="use a literal or a closure constant here, not a kernel value",
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure of a closure expression
            raise fail(
                "TypeError",
                f"cannot evaluate {what}: {exc}",
                self.span(node),
                help="the expression is evaluated at capture time and must succeed",
            ) from None

    def index_expr(self, node: ast.expr) -> Expr:
        e = self.expr(node)
        if not (isinstance(e.type, ScalarType) and e.type.dtype.is_int):
            raise fail(
                "TypeError",
                f"expected an integer scalar, got {format_type(e.type)}",
                self.span(node),
                help="bounds, shapes and offsets are INDEX/INT scalars; pl.cast(x, pl.INDEX)",
            )
        return e

    def expr(self, node: ast.expr) -> Expr:
        folded = self._fold(node)
        if folded is not None:
            return folded
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            raise fail(
                "TypeError",
                "a list or tuple is only allowed as an op argument (shape, offset) or a return",
                self.span(node),
                help="pass lists directly as op arguments, e.g. pl.slice(t, [16, 64], [0, k])",
            )
        raise fail(
            "UnsupportedFeature",
            f"unsupported expression: {type(node).__name__}",
            self.span(node),
            _EXPR_HINTS.get(
                type(node).__name__, "see docs/language.md for the supported expressions"
            ),
        )

    def _fold(self, node: ast.expr) -> Expr | None:
        """Constant-fold closure expressions (ints, floats, bools, DynVars) into IR leaves.

        Returns None when the expression depends on a kernel value."""
        if isinstance(node, (ast.List, ast.Tuple)):
            return None
        try:
            value = self.static.eval(node)
        except NotStatic:
            return None
        except Exception as exc:  # noqa: BLE001 - the closure expression itself fails
            raise fail(
                "ConstantError",
                f"cannot evaluate the constant expression: {type(exc).__name__}: {exc}",
                self.span(node),
                "closure expressions are folded at capture time and must evaluate",
            ) from None
        if isinstance(value, DynVar):
            return self.dyn_var(value, node)
        folded = self.const(value, node)
        if folded is None:
            raise fail(
                "TypeError",
                f"'{_source_text(node)}' is a {_describe_value(value)} at capture time, not a kernel value",
                self.span(node),
                "closure names used as values must be ints, floats, bools or pl.dynamic dims",
            )
        return folded

    def dyn_var(self, value: DynVar, node: ast.AST) -> Expr:
        """A closure pl.dynamic dim used as a value: it must be a dim of this function."""
        params_dims = {v.name for p in self.sig.params for v in shape_vars(p.type)}
        params_dims |= {p.name for p in self.sig.params if isinstance(p.type, ScalarType)}
        if value.name not in params_dims:
            raise fail(
                "TypeError",
                f"pl.dynamic('{value.name}') is not a dimension of this function's parameters",
                self.span(node),
                "a dynamic dim has a value only through a parameter shape; "
                "read it with pl.tensor.dim(t, axis)",
            )
        return Var(value.name, ScalarType(INDEX), self.span(node))

    def const(self, value: Any, node: ast.AST) -> Expr | None:
        span = self.span(node)
        if isinstance(value, Enum):
            return None  # pl.Level.X etc. are not kernel values (IntEnum is an int)
        if isinstance(value, bool):
            return Const(value, BOOL, span)
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise fail(
                    "ConstantError",
                    f"integer constant {value} does not fit in 64 bits",
                    span,
                    "INDEX and INT64 values are 64-bit",
                )
            return Const(value, INDEX, span)
        if isinstance(value, float):
            return Const(value, FP32, span)
        return None

    def note_source_reads(self, stmts: list[ast.stmt]) -> None:
        """The variables a branch that is not captured reads (Function.capture_reads)."""
        for s in stmts:
            for node in ast.walk(s):
                read = isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
                if read and node.id in self.vars:  # (a name the branch only assigns is no read)
                    self.capture_reads.add(self.vars[node.id].name)

    def name(self, node: ast.Name) -> Expr:
        var = self.vars.get(node.id)
        if var is not None:
            return Var(var.name, var.type, self.span(node))
        if node.id in self.program.ns or node.id in ("pl",):
            raise fail(
                "TypeError",
                f"'{node.id}' is a {type(self.program.ns.get(node.id)).__name__}, not a kernel value",
                self.span(node),
                "closure names must be ints, floats, bools or pl.dynamic dims",
            )
        raise fail(
            "UndefinedVariable",
            f"undefined variable '{node.id}'",
            self.span(node),
            "define it before use, or pass it as a parameter",
        )

    def _scalar_operands(self, node: ast.AST, lhs: Expr, rhs: Expr, what: str) -> None:
        for operand in (lhs, rhs):
            if isinstance(operand.type, TensorType):
                raise fail(
                    "UnsupportedFeature",
                    f"Python operator '{what}' on a tensor is not supported",
                    self.span(node),
                    "use pl.add / pl.sub / pl.mul / pl.div / pl.maximum ... on tensors",
                )
            if not isinstance(operand.type, ScalarType):
                raise fail(
                    "TypeError",
                    f"operator '{what}' needs scalars",
                    self.span(node),
                    help="Python operators act on scalars only",
                )

    def binop(self, node: ast.BinOp) -> Expr:
        op = _BINOPS.get(type(node.op))
        symbol = type(node.op).__name__
        if op is None:
            raise fail(
                "UnsupportedFeature",
                f"operator {symbol} is not supported on kernel values",
                self.span(node),
                "supported scalar operators: + - * / // %",
            )
        lhs, rhs = self.expr(node.left), self.expr(node.right)
        self._scalar_operands(node, lhs, rhs, symbol)
        return self.scalar_binop(op, lhs, rhs, node)

    def scalar_binop(self, op: str, lhs: Expr, rhs: Expr, node: ast.AST) -> Expr:
        lt, rt = lhs.type, rhs.type
        both_bool = lt.dtype == BOOL and rt.dtype == BOOL
        if not (op in ("eq", "ne") and both_bool) and not same_category(lt.dtype, rt.dtype):
            raise fail(
                "TypeError",
                f"scalar operation requires same numeric dtype category, got {lt.dtype.name} and {rt.dtype.name}",
                self.span(node),
                "pl.cast one operand first",
            )
        if op == "div" and lt.dtype.is_int:
            raise fail(
                "TypeError",
                "'/' on integer scalars is not supported",
                self.span(node),
                "use // for integer division",
            )
        if op in ("div", "floordiv", "mod") and isinstance(rhs, Const) and rhs.value == 0:
            raise fail(
                "ConstantError",
                "division by a constant zero",
                self.span(node),
                "the divisor of / // % must not be 0",
            )
        return BinOp(op, lhs, rhs, scalar_binop_type(op, lt, rt), self.span(node))

    def unary(self, node: ast.UnaryOp) -> Expr:
        operand = self.expr(node.operand)
        if isinstance(operand.type, TensorType):
            raise fail(
                "UnsupportedFeature",
                "Python unary operators on tensors are not supported",
                self.span(node),
                "use pl.neg(x)",
            )
        if not isinstance(operand.type, ScalarType):
            raise fail(
                "TypeError",
                f"unary operator needs a scalar, got {format_type(operand.type)}",
                self.span(node),
                help="unary operators apply to scalars",
            )
        if isinstance(node.op, ast.UAdd):
            if operand.type.dtype == BOOL:
                raise fail(
                    "TypeError",
                    "unary '+' needs a number, got BOOL",
                    self.span(node),
                    help="unary operators apply to numbers",
                )
            return operand
        if isinstance(node.op, ast.USub):
            if operand.type.dtype == BOOL:
                raise fail(
                    "TypeError", "unary '-' needs a number, got BOOL", self.span(node), "use not"
                )
            return UnaryOp("neg", operand, operand.type, self.span(node))
        if isinstance(node.op, ast.Not):
            if operand.type.dtype != BOOL:
                raise fail(
                    "TypeError",
                    f"'not' needs a BOOL scalar, got {operand.type.dtype.name}",
                    self.span(node),
                    "compare explicitly, e.g. not (k == 0)",
                )
            return UnaryOp("not", operand, ScalarType(BOOL), self.span(node))
        raise fail(
            "UnsupportedFeature",
            "operator ~ is not supported on kernel values",
            self.span(node),
            "supported scalar operators: + - * / // % and comparisons",
        )

    def compare(self, node: ast.Compare) -> Expr:
        if len(node.ops) != 1:
            raise fail(
                "UnsupportedFeature",
                "Only simple comparisons supported",
                self.span(node),
                "split a < b < c into (a < b) and (b < c)",
            )
        op = _CMPOPS.get(type(node.ops[0]))
        if op is None:
            raise fail(
                "UnsupportedFeature",
                f"comparison {type(node.ops[0]).__name__} is not supported",
                self.span(node),
                help="supported comparisons: < <= > >= == !=",
            )
        lhs, rhs = self.expr(node.left), self.expr(node.comparators[0])
        self._scalar_operands(node, lhs, rhs, op)
        return self.scalar_binop(op, lhs, rhs, node)

    def boolop(self, node: ast.BoolOp) -> Expr:
        op = "and" if isinstance(node.op, ast.And) else "or"
        values = [self.expr(v) for v in node.values]
        for v in values:
            if not (isinstance(v.type, ScalarType) and v.type.dtype == BOOL):
                raise fail(
                    "TypeError",
                    f"'{op}' needs BOOL scalars",
                    self.span(node),
                    help="compare explicitly, e.g. (n > 0) and flag",
                )
        out = values[0]
        for v in values[1:]:
            out = BinOp(op, out, v, ScalarType(BOOL), self.span(node))
        return out

    def subscript(self, node: ast.Subscript) -> Expr:
        value = self.expr(node.value)
        if isinstance(value.type, TupleType):
            index = self.static.try_eval(node.slice)
            if (
                not isinstance(index, int)
                or isinstance(index, bool)
                or not 0 <= index < len(value.type.items)
            ):
                raise fail(
                    "TypeError",
                    "tuple index must be a constant in range",
                    self.span(node.slice),
                    help="index a tuple with a literal: t[0]",
                )
            return TupleGet(value, index, value.type.items[index], self.span(node))
        if isinstance(value.type, TensorType):
            return subscript.load(self, value, node)
        raise fail(
            "TypeError",
            f"cannot subscript a value of type {format_type(value.type)}",
            self.span(node),
            "subscripts apply to tensors (t[a:b, i]) and tuples (t[0])",
        )

    # ------------------------------------------------------------------ calls
    def _pl_name(self, func: ast.expr) -> str | None:
        """`pl.x` / `pl.tensor.x` -> "x" or "tensor.x", when the root resolves to the pl module."""
        import pldsl

        parts = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name) or func.id in self.vars:
            return None
        root = self.program.ns.get(func.id)
        if root is sys.modules.get("pldsl.distributed") and parts:  # `pld.x`: op "pld.x"
            return ".".join(["pld", *reversed(parts)])
        if root is not pldsl:
            return None
        return ".".join(reversed(parts)) or None

    def call(self, node: ast.Call) -> Expr:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "self"
            and "self" not in self.vars
        ):
            return self.user_call(node, func.attr)
        inl = inline.inline_of(self, func)
        if inl is not None:
            values = inline.expand(self, node, inl)
            if len(values) != 1:
                raise fail(
                    "TypeError",
                    f"inline function '{inl.name}' returns {len(values)} values here",
                    self.span(node),
                    f"unpack them: a, b = {inl.name}(...)",
                )
            return values[0]
        hook = self.program.call_hook
        if hook is not None and isinstance(func, ast.Name) and func.id not in self.vars:
            target = self.program.ns.get(func.id)
            if target is not None:
                built = hook(self, target, node)
                if built is not None:
                    return built
        name = self._pl_name(func)
        if name is None and isinstance(func, ast.Name) and func.id not in self.vars:
            external = _external_function(self.program.ns.get(func.id))
            if external is not None:
                return self.external_call(node, external)
        if name is None and isinstance(func, ast.Name) and func.id not in self.vars:
            if func.id in self.program.ns and self.program.ns[func.id] is None:
                raise fail(
                    "UnsupportedFeature",
                    f"call to '{func.id}': the name is None when the kernel is captured (a "
                    "function the module binds later, at run time)",
                    self.span(node),
                    f"bind '{func.id}' to a @pl.jit function before the kernel is captured (a "
                    "module whose runner binds its kernels at run time compiles through it)",
                )
        if name is None:
            raise fail(
                "UnsupportedFeature",
                f"call to '{_source_text(func)}': calls to arbitrary Python functions are not "
                "supported in kernel bodies",
                self.span(node),
                _CALL_HINTS.get(
                    _source_text(func),
                    "call pl ops (pl.add, pl.matmul, ...) or program functions (self.f(...))",
                ),
            )
        if name.startswith("tensor.") and lookup(name) is None:
            name = name.split(".", 1)[1]
        if name in ("dim", "tensor.dim"):
            folded = dims.fold_tensor_dim(self, node)
            if folded is not None:
                return folded
        if name in ("min", "max"):
            return self.scalar_minmax(node, name)
        if name == "tile.get_block_idx":
            built = scopes.block_index(self, node)
            if built is not None:
                return built
        if name == "array.create":
            return scopes.array_create(self, node)
        if name in ("aiv_shard", "aic_gather", "tile.aiv_shard", "tile.aic_gather"):
            return split_aiv.crossing(self, name, node)
        if name == "const":
            return self.const_call(node)
        if name in LOOP_KINDS:
            raise fail(
                "UnsupportedFeature",
                f"pl.{name}(...) can only be the iterator of a for loop",
                self.span(node),
                f"for i in pl.{name}(...):",
            )
        if name in ("at", "yield_"):
            where = (
                "with pl.at(...):"
                if name == "at"
                else "a, b = pl.yield_(x, y) at the end of a loop"
            )
            raise fail(
                "UnsupportedFeature",
                f"pl.{name}(...) cannot be used inside an expression",
                self.span(node),
                f"write {where}",
            )
        opdef = lookup(name)
        if opdef is None:
            raise fail(
                "UnknownOp",
                f"pl.{name} is not a supported op",
                self.span(node.func),
                "see docs/language.md for the supported ops",
            )
        call = self.op_call(opdef, node)
        if name.startswith("tile."):  # the tile form of a unified op takes tiles only
            error = tile_namespace_error(opdef, call.args)
            if error is not None:
                raise fail("TypeError", error.message, self.span(node), error.hint)
        return call

    def op_call(self, opdef, node: ast.Call) -> Expr:
        scalar = self._scalar_dispatch(opdef, node)
        if scalar is not None:
            return scalar
        params = list(opdef.params)
        if len(node.args) > len(params):
            raise fail(
                "TypeError",
                f"{op_label(opdef.name)} takes at most {len(params)} arguments, got {len(node.args)}",
                self.span(node),
                signature_hint(opdef),
            )
        given: dict[str, ast.expr] = {}
        for p, a in zip(params, node.args):
            if isinstance(a, ast.Starred):
                raise fail(
                    "UnsupportedFeature",
                    "*args are not supported",
                    self.span(a),
                    "pass each argument explicitly",
                )
            given[p.name] = a
        for kw in node.keywords:
            if kw.arg is None:
                raise fail(
                    "UnsupportedFeature",
                    "**kwargs are not supported",
                    self.span(kw.value),
                    "pass each keyword explicitly",
                )
            if kw.arg == "manual_dep" and opdef.name == "create_tensor":
                # a task-graph hint (the tensor's producers are tracked by deps= by hand)
                if not isinstance(self.static_value(kw.value, "manual_dep="), bool):
                    raise fail("TypeError", "manual_dep= must be True or False", self.span(kw))
                continue
            if opdef.param(kw.arg) is None:
                raise fail(
                    "TypeError",
                    f"unknown keyword argument '{kw.arg}' in {op_label(opdef.name)}()",
                    self.span(kw),
                    signature_hint(opdef),
                )
            if kw.arg in given:
                raise fail(
                    "TypeError",
                    f"{op_label(opdef.name)}() got multiple values for '{kw.arg}'",
                    self.span(kw),
                    signature_hint(opdef),
                )
            given[kw.arg] = kw.value
        keywords: dict[str, Any] = {}
        for p in params:
            if p.name not in given:
                if p.required:
                    raise fail(
                        "TypeError",
                        f"{op_label(opdef.name)}() is missing argument '{p.name}'",
                        self.span(node),
                        signature_hint(opdef),
                    )
                continue
            # A static default written out is dropped by bind_op_call: the IR does not record it.
            keywords[p.name] = self.op_arg(p, given[p.name], opdef)
        return checked_op_call(opdef, keywords, self.span(node))

    def _scalar_dispatch(self, opdef, node: ast.Call) -> Expr | None:
        """PyPTO's scalar dispatch: `pl.add(a, b)` etc. on two scalars is scalar arithmetic;
        any other tensor op given a scalar operand is PyPTO's "expected Tensor or Tile"."""
        plain = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        if not plain:
            return None
        if opdef.name in SCALAR_DISPATCH and len(node.args) == 2:
            values = [self.expr(a) for a in node.args]
            if all(isinstance(v.type, ScalarType) for v in values):
                return self.scalar_binop(SCALAR_DISPATCH[opdef.name], *values, node)
        # the positional arguments given for tensor parameters (which need not come first:
        # pl.store(tile, offsets, out))
        tensor_args = [a for p, a in zip(opdef.params, node.args) if p.kind == "tensor"]
        if not tensor_args or len(tensor_args) != sum(p.kind == "tensor" for p in opdef.params):
            return None
        values = [self.expr(a) for a in tensor_args]
        if not any(isinstance(v.type, ScalarType) for v in values):
            return None
        got = ", ".join(format_type(v.type) for v in values)
        raise fail(  # PyPTO's wording (unified ops)
            "TypeError",
            f"{op_label(opdef.name)}: expected Tensor or Tile, got Scalar ({got})",
            self.span(node),
            "for scalar arithmetic use Python operators (+, -, *, /) or pl.min / pl.max",
        )

    def op_arg(self, p, node: ast.expr, opdef) -> Any:
        kind, pname = p.kind, p.name
        optional_none = not p.required and p.default is None
        if kind == "dims":
            if isinstance(node, ast.expr) and (opdef.name, pname) in (
                ("read", "indices"),
                ("write", "indices"),
                ("pld.alloc_window_buffer", "shape"),
            ):
                value = self.static.try_eval(node)
                if not isinstance(node, (ast.List, ast.Tuple)) and (
                    value is NotStatic or (isinstance(value, int) and not isinstance(value, bool))
                ):
                    # `pl.read(t, i)`: one index on a 1-D tensor (PyPTO accepts a bare index)
                    return ListExpr((self.index_expr(node),), self.span(node))
            if isinstance(node, ast.Constant) and node.value is None and optional_none:
                return None
            if isinstance(node, (ast.List, ast.Tuple)):
                return ListExpr(tuple(self.index_expr(e) for e in node.elts), self.span(node))
            value = self.static.try_eval(node)
            if isinstance(value, (list, tuple)):
                items = []
                for v in value:
                    c = (
                        self.const(v, node)
                        if isinstance(v, int) and not isinstance(v, bool)
                        else None
                    )
                    if c is None and isinstance(v, DynVar):
                        c = self.dyn_var(v, node)
                    if c is None:
                        raise fail(
                            "TypeError",
                            f"'{pname}' entries must be integers, got {v!r}",
                            self.span(node),
                            help="shapes and offsets are integers",
                        )
                    items.append(c)
                return ListExpr(tuple(items), self.span(node))
            raise fail(
                "TypeError",
                f"'{pname}' of {op_label(opdef.name)} must be a list like [16, 128]",
                self.span(node),
                signature_hint(opdef),
            )
        if kind == "dtype":
            value = self.static_value(node, f"'{pname}'")
            if not isinstance(value, DType) and not (value is None and optional_none):
                raise fail(
                    "TypeError",
                    f"'{pname}' of {op_label(opdef.name)} must be a dtype such as pl.FP32, got {_describe_value(value)}",
                    self.span(node),
                    help="e.g. pl.cast(x, pl.BF16)",
                )
            return value
        if kind == "attr":
            value = self.static_value(node, f"'{pname}'")
            if pname == "pad_value" and not isinstance(value, PadValue) and value is not None:
                if (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and value in _PAD_SUGAR
                ):
                    return _PAD_SUGAR[value]
                raise fail(
                    "TypeError",
                    "pad_value must be a pl.PadValue (or 0, math.inf, -math.inf)",
                    self.span(node),
                    "e.g. pad_value=pl.PadValue.min",
                )
            self._check_attr(p, value, node, opdef)
            return value
        return self.expr(node)

    def _check_attr(self, p, value: Any, node: ast.expr, opdef) -> None:
        """Static attributes are plain values the IR printer can write back."""
        default = None if p.required else p.default
        if value is None and default is None:
            return
        if isinstance(default, bool) and not isinstance(value, bool):
            raise fail(
                "TypeError",
                f"'{p.name}' of {op_label(opdef.name)} must be True or False, got {_describe_value(value)}",
                self.span(node),
                help="write True or False",
            )
        if isinstance(default, str) and not isinstance(value, str):
            raise fail(
                "TypeError",
                f"'{p.name}' of {op_label(opdef.name)} must be a string, got {_describe_value(value)}",
                self.span(node),
                help='e.g. mode="rint"',
            )
        if isinstance(default, Enum) and not isinstance(value, type(default)):
            raise fail(
                "TypeError",
                f"'{p.name}' of {op_label(opdef.name)} must be a pl.{type(default).__name__} member",
                self.span(node),
                help="spell the enum member, e.g. pl.PadValue.zero",
            )
        if default is None and (
            isinstance(value, bool) or not isinstance(value, (int, float, str, Enum, DType))
        ):
            raise fail(
                "TypeError",
                f"'{p.name}' of {op_label(opdef.name)} must be a constant number, got {_describe_value(value)}",
                self.span(node),
                help="static attributes are capture-time constants",
            )

    def scalar_minmax(self, node: ast.Call, name: str) -> Expr:
        if len(node.args) != 2 or node.keywords:
            raise fail(
                "TypeError",
                f"pl.{name} takes two scalars",
                self.span(node),
                help="pl.min(a, b) / pl.max(a, b) on scalars",
            )
        lhs, rhs = self.expr(node.args[0]), self.expr(node.args[1])
        for operand in (lhs, rhs):
            if not isinstance(operand.type, ScalarType):
                raise fail(
                    "TypeError",
                    f"pl.{name} takes scalars, got {format_type(operand.type)}",
                    self.span(node),
                    f"use pl.{name}imum(a, b) for elementwise {name}imum of tensors",
                )
        return self.scalar_binop(name, lhs, rhs, node)

    def const_call(self, node: ast.Call) -> Expr:
        if len(node.args) != 2 or node.keywords:
            raise fail(
                "TypeError",
                "pl.const takes (value, dtype)",
                self.span(node),
                "pl.const(1, pl.INT32)",
            )
        value = self.static_value(node.args[0], "pl.const value")
        dtype = self.static_value(node.args[1], "pl.const dtype")
        if not isinstance(dtype, DType):
            raise fail(
                "TypeError",
                "pl.const needs a dtype such as pl.INT32",
                self.span(node.args[1]),
                help="pl.const(1, pl.INT32)",
            )
        try:
            if isinstance(value, str):
                value = float(value)  # "inf", "-inf", "nan" as printed by print_ir
            if not isinstance(value, (int, float)):
                raise TypeError(f"expected a number, got {type(value).__name__}")
            if dtype.is_float:
                value = float(value)
            elif dtype.is_bool:
                value = bool(value)
            else:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(f"{value} is not an integer")
                value = int(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise fail(
                "TypeError",
                f"pl.const value is not a {dtype.name}: {exc}",
                self.span(node.args[0]),
                help="pl.const(value, dtype) takes a number",
            ) from None
        if not dtype.is_float and not dtype.is_bool:
            lo, hi = _int_range(dtype)
            if not lo <= value <= hi:
                raise fail(
                    "ConstantError",
                    f"{value} does not fit in {dtype.name}",
                    self.span(node.args[0]),
                    help="choose a wider dtype",
                )
        return Const(value, dtype, self.span(node))

    def external_call(self, node: ast.Call, fn: Function) -> Expr:
        """`helper(x)`: a standalone `@pl.function` defined outside the program, called by its
        bare name; it joins the program once (a clash with another function is an error)."""
        known = self.program.external.get(fn.name)
        if known is None:
            if fn.name in self.signatures:
                raise fail(
                    "DuplicateFunction",
                    f"external function '{fn.name}' clashes with a function of the program",
                    self.span(node.func),
                    "rename one of them",
                )
            self.program.external[fn.name] = fn
            self.signatures[fn.name] = Signature(fn.params, fn.return_types, fn.tuple_return)
        elif known is not fn:
            raise fail(
                "DuplicateFunction",
                f"two different external functions are named '{fn.name}'",
                self.span(node.func),
                "rename one of them",
            )
        return self.user_call(node, fn.name)

    def user_call(self, node: ast.Call, name: str) -> Expr:
        sig = self.signatures.get(name)
        if sig is None:
            raise fail(
                "UndefinedFunction",
                f"program has no function '{name}'",
                self.span(node.func),
                f"known: {', '.join(sorted(self.signatures))}",
            )
        if node.keywords:
            raise fail(
                "UnsupportedFeature",
                "calls to program functions take positional arguments",
                self.span(node),
                help="pass arguments in parameter order: self.f(a, b)",
            )
        args = tuple(self.expr(a) for a in node.args)
        if len(args) != len(sig.params):
            raise fail(
                "TypeError",
                f"self.{name}() takes {len(sig.params)} arguments, got {len(args)}",
                self.span(node),
                help="pass one argument per parameter",
            )
        for a, p in zip(args, sig.params):
            if not call_compatible(p.type, a.type):
                raise fail(
                    "TypeError",
                    f"argument for '{p.name}' of self.{name}() has type {format_type(a.type)}, "
                    f"expected {format_type(p.type)}",
                    self.span(node),
                    memory_hint(p.type, a.type)
                    or "arguments must match the parameter's dtype, rank and static dims",
                )
        call_type = deduce_call_type(sig.params, tuple(a.type for a in args), sig.call_type)
        return Call(name, args, call_type, self.span(node))


_EXPR_HINTS = {
    "Lambda": "lambdas are not supported in kernels",
    "ListComp": "comprehensions are not supported; use a pl.range loop",
    "GeneratorExp": "comprehensions are not supported; use a pl.range loop",
    "DictComp": "comprehensions are not supported",
    "SetComp": "comprehensions are not supported",
    "IfExp": "conditional expressions are not supported; use an if statement",
    "JoinedStr": "f-strings are not supported in kernels",
    "NamedExpr": "the walrus operator is not supported",
    "Attribute": "attributes of kernel values are not supported; use pl.tensor.dim(t, axis) for extents",
    "Starred": "unpacking with * is not supported",
    "Dict": "dicts are not supported in kernels",
    "Set": "sets are not supported in kernels",
    "Slice": "slices are only allowed inside tensor subscripts",
    "Await": "await is not supported in kernels",
    "Yield": "generators are not supported; use pl.yield_ for loop carries",
    "YieldFrom": "generators are not supported",
}


_CALL_HINTS = {
    "min": "use pl.min(a, b) on scalars",
    "max": "use pl.max(a, b) on scalars",
    "abs": "use pl.abs(t) on tensors",
    "range": "loops iterate over pl.range(...)",
    "len": "use pl.tensor.dim(t, axis) for a runtime extent",
    "print": "kernel bodies are captured, not run; trace with the interpreter instead",
}


def _external_function(value: Any) -> Function | None:
    """A captured standalone `@pl.function` (a one-function Program) or a Function."""
    from pldsl.ir.nodes import Program

    if isinstance(value, Function):
        return value
    if isinstance(value, Program) and len(value.function_list) == 1:
        return value.function_list[0]
    return None


def checked_op_call(opdef, keywords: dict[str, Any], span, origin: str = "") -> Expr:
    """Bind and type an op call; a type rule's complaint is a located CaptureError.

    A type rule that crashes (a bug in pldsl, not in the kernel) is reported as an
    `InternalError` diagnostic at the call instead of a traceback."""
    try:
        return bind_op_call(opdef, [], keywords, span)
    except TypeRuleError as exc:
        raise fail(
            "TypeError",
            f"{op_label(opdef.name)}{origin}: {exc.message}",
            span,
            exc.hint or signature_hint(opdef),
        ) from None
    except Exception as exc:  # noqa: BLE001 - a crashing type rule is a pldsl bug
        raise fail(
            "InternalError",
            f"the type rule of {op_label(opdef.name)} failed: {type(exc).__name__}: {exc}",
            span,
            "this is a bug in pldsl's op table, not in your kernel; please report it",
        ) from None


def _int_range(dtype: DType) -> tuple[int, int]:
    if dtype.kind == "uint":
        return 0, 2**dtype.bits - 1
    return -(2 ** (dtype.bits - 1)), 2 ** (dtype.bits - 1) - 1


def _source_text(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only used for messages
        return type(node).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _describe_value(value: Any) -> str:
    if isinstance(value, DType):
        return f"dtype (pl.{value.name})"
    if isinstance(value, Enum):
        return f"{type(value).__name__} member"
    if value is None:
        return "None"
    return type(value).__name__


def call_compatible(param: Type, arg: Type) -> bool:
    """An argument fits a parameter when kind, dtype and static dims agree (dynamic dims bind)."""
    if isinstance(param, TensorType) and isinstance(arg, TensorType):
        if param.dtype != arg.dtype or param.rank != arg.rank or memory_of(param) != memory_of(arg):
            return False
        for p, a in zip(param.shape, arg.shape):
            if isinstance(p, int) and isinstance(a, int) and p != a:
                return False
        return True
    if isinstance(param, ScalarType) and isinstance(arg, ScalarType):
        return param.dtype == arg.dtype or (param.dtype.is_int and arg.dtype.is_int)
    return False
