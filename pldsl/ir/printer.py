"""The textual IR: programs print as the `pl` DSL itself, with every assignment typed.

`parse_ir` (pldsl/ir/parser.py, grammar.lark) reads this text back.
"""

from __future__ import annotations

import math
from typing import Any

from pldsl.dtypes import FP32, INDEX, DType
from pldsl.enums import ENUMS, Optimizer
from pldsl.ir.nodes import (
    SCALAR_BINOPS,
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    MakeTuple,
    OpCall,
    Program,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    While,
    Yield,
    walk,
)
from pldsl.ir.symbolic import shape_vars
from pldsl.ir.traversal import assigned_names
from pldsl.ir.types import ScalarType, TensorType, TileType, TupleType

INDENT = "    "


def format_attr(value: Any) -> str:
    if isinstance(value, DType):
        return f"pl.{value.name}"
    if type(value) in ENUMS.values():
        return f"pl.{type(value).__name__}.{value.name}"
    if isinstance(value, Optimizer):
        return f"pl.{value.name}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, float):
        return _format_float(value)
    return repr(value)


def _format_float(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return f"pl.const({str(value)!r}, pl.FP32)"
    return repr(value)


def format_dims(dims) -> str:
    return "[" + ", ".join(format_expr(d) if not isinstance(d, int) else str(d) for d in dims) + "]"


# the distributed tensor kinds (pldsl.ir.types), printed with the `pld` surface's names
_DISTRIBUTED_KINDS = {
    "DistributedTensorType": "pld.DistributedTensor",
    "WindowBufferType": "pld.WindowBuffer",
}


def format_type(t: Any) -> str:
    if isinstance(t, TensorType):
        parts = [format_dims(t.shape), f"pl.{t.dtype.name}"]
        view = []
        if t.valid_shape is not None:
            view.append(f"valid_shape={format_dims(t.valid_shape)}")
        if t.pad is not None:
            view.append(f"pad={format_attr(t.pad)}")
        if isinstance(t, TileType):  # a tile always names its memory space
            parts.append(format_attr(t.memory))
            if view:
                parts.append(f"pl.TileView({', '.join(view)})")
            return f"pl.Tile[{', '.join(parts)}]"
        if view:
            parts.append(f"pl.TensorView({', '.join(view)})")
        kind = _DISTRIBUTED_KINDS.get(type(t).__name__, "pl.Tensor")
        return f"{kind}[{', '.join(parts)}]"
    if isinstance(t, ScalarType):
        return f"pl.Scalar[pl.{t.dtype.name}]"
    if isinstance(t, TupleType):
        return f"pl.Tuple[{', '.join(format_type(i) for i in t.items)}]"
    return "<untyped>"


def describe_type(t: Any) -> str:
    """A value's type for messages: its printed form, or "no value" for an untyped one."""
    return format_type(t) if t is not None else "no value"


def format_expr(e: Any, nested: bool = False) -> str:
    if isinstance(e, int) and not isinstance(e, bool):
        return str(e)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Const):
        return _format_const(e)
    if isinstance(e, BinOp):
        lhs, rhs = format_expr(e.lhs, True), format_expr(e.rhs, True)
        if e.op in ("min", "max"):
            return f"pl.{e.op}({lhs}, {rhs})"
        text = f"{lhs} {SCALAR_BINOPS[e.op]} {rhs}"
        return f"({text})" if nested else text
    if isinstance(e, UnaryOp):
        operand = format_expr(e.operand, True)
        if e.op == "neg" and isinstance(e.operand, Const):
            operand = f"({operand})"
        return f"(not {operand})" if e.op == "not" else f"(-{operand})"
    if isinstance(e, ListExpr):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]"
    if isinstance(e, OpCall):
        return f"pl.{e.op}({', '.join(_op_args(e))})"
    if isinstance(e, Call):
        return f"self.{e.func}({', '.join(format_expr(a) for a in e.args)})"
    if isinstance(e, TupleGet):
        return f"{format_expr(e.value, True)}[{e.index}]"
    if isinstance(e, MakeTuple):
        return "(" + ", ".join(format_expr(i) for i in e.items) + ",)"
    raise TypeError(f"cannot print {type(e).__name__}")


def _format_const(c: Const) -> str:
    if c.dtype.is_bool:
        return repr(bool(c.value))
    if c.dtype == INDEX and isinstance(c.value, int):
        return str(c.value) if c.value >= 0 else f"({c.value})"
    if c.dtype == FP32 and isinstance(c.value, float) and math.isfinite(c.value):
        return repr(c.value) if c.value >= 0 else f"({c.value!r})"
    value = str(c.value) if isinstance(c.value, float) and not math.isfinite(c.value) else c.value
    return f"pl.const({value!r}, pl.{c.dtype.name})"


def _op_args(call: OpCall) -> list[str]:
    from pldsl.ir.opdefs import lookup

    opdef = lookup(call.op)
    runtime = iter(call.args)
    attrs = dict(call.attrs)
    out = []
    for p in opdef.params:
        value = attrs.get(p.name, p.default) if p.is_static else next(runtime)
        if p.required:
            out.append(format_attr(value) if p.is_static else format_expr(value))
        elif value is not None and (not p.is_static or value != p.default):
            text = format_attr(value) if p.is_static else format_expr(value)
            out.append(f"{p.name}={text}")
    return out


# attrs naming variables of the function (printed bare, as PyPTO writes them)
NAME_LIST_ATTRS = ("no_dep_args",)


def _format_attrs(attrs) -> list[str]:
    return [
        f"{k}=[{', '.join(v)}]" if k in NAME_LIST_ATTRS else f"{k}={format_attr(v)}"
        for k, v in attrs
    ]


class _Printer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append(INDENT * depth + text)

    def body(self, stmts, depth: int) -> None:
        if not stmts:
            self.emit(depth, "pass")
        for s in stmts:
            self.stmt(s, depth)

    def stmt(self, s: Any, depth: int) -> None:
        if isinstance(s, Assign):
            if len(s.targets) == 1:
                t = s.targets[0]
                self.emit(depth, f"{t.name}: {format_type(t.type)} = {format_expr(s.value)}")
            else:
                names = ", ".join(t.name for t in s.targets)
                self.emit(depth, f"{names} = {format_expr(s.value)}")
        elif isinstance(s, ExprStmt):
            self.emit(depth, format_expr(s.expr))
        elif isinstance(s, For):
            self.for_(s, depth)
        elif isinstance(s, While):
            self.while_(s, depth)
        elif isinstance(s, Yield):
            values = ", ".join(format_expr(v) for v in s.values)
            lhs = ", ".join(t.name for t in s.targets)
            self.emit(depth, f"{lhs} = pl.yield_({values})" if lhs else f"pl.yield_({values})")
        elif isinstance(s, If):
            self.emit(depth, f"if {format_expr(s.cond)}:")
            self.body(s.then_body, depth + 1)
            if s.else_body:
                self.emit(depth, "else:")
                self.body(s.else_body, depth + 1)
        elif isinstance(s, Scope):
            args = _format_attrs(s.attrs)
            if s.deps:
                args.append(f"deps=[{', '.join(format_expr(d) for d in s.deps)}]")
            tid = f" as {s.tid.name}" if s.tid is not None else ""
            self.emit(depth, f"with pl.{s.kind}({', '.join(args)}){tid}:")
            self.body(s.body, depth + 1)
        elif isinstance(s, Return):
            self.emit(depth, ("return " + ", ".join(format_expr(v) for v in s.values)).rstrip())
        elif isinstance(s, Break):
            self.emit(depth, "break")
        elif isinstance(s, Continue):
            self.emit(depth, "continue")
        else:
            raise TypeError(f"cannot print {type(s).__name__}")

    def for_(self, s: For, depth: int) -> None:
        bounds = [format_expr(s.start), format_expr(s.stop), format_expr(s.step)]
        extra = _format_attrs(s.attrs)
        target = s.var.name
        if s.iter_args:
            inits = ", ".join(format_expr(v) for v in s.init_values)
            extra.append(f"init_values=({inits},)")
            target += ", (" + ", ".join(f"{a.name}" for a in s.iter_args) + ",)"
        self.emit(depth, f"for {target} in pl.{s.kind}({', '.join(bounds + extra)}):")
        self.body(s.body, depth + 1)

    def while_(self, s: While, depth: int) -> None:
        if not s.iter_args:
            self.emit(depth, f"while {format_expr(s.cond)}:")
            self.body(s.body, depth + 1)
            return
        names = ", ".join(a.name for a in s.iter_args)
        inits = ", ".join(format_expr(v) for v in s.init_values)
        self.emit(depth, f"for ({names},) in pl.while_(init_values=({inits},)):")
        self.emit(depth + 1, f"pl.cond({format_expr(s.cond)})")
        for st in s.body:
            self.stmt(st, depth + 1)

    def function(self, f: Function) -> None:
        deco = [f"type={format_attr(f.func_type)}"]
        if f.level is not None:
            deco.append(f"level={format_attr(f.level)}")
        if f.role is not None:
            deco.append(f"role={format_attr(f.role)}")
        if f.external:
            deco.append("external=True")
        self.emit(1, f"@pl.function({', '.join(deco)})")
        params = ["self"] + [_format_param(p) for p in f.params]
        ret = ""
        if f.tuple_return:
            ret = f" -> pl.Tuple[{', '.join(format_type(t) for t in f.return_types)}]"
        elif f.return_types:
            ret = f" -> {format_type(f.return_types[0])}"
        self.emit(1, f"def {f.name}({', '.join(params)}){ret}:")
        if f.is_host_stub or f.external:  # no body in the IR: bound at run time / C++
            self.emit(2, "...")
        else:
            self.body(f.body, 2)


def _format_param(p) -> str:
    t = format_type(p.type)
    return f"{p.name}: {t}" if p.direction == "In" else f"{p.name}: pl.{p.direction}[{t}]"


def _type_vars(t: Any) -> list[Var]:
    if isinstance(t, TupleType):
        return [v for item in t.items for v in _type_vars(item)]
    return shape_vars(t, valid_shape=True)


def dynamic_dims(program: Program) -> list[Var]:
    """Every dynamic dim the program names: declared dynamic_dims first, then free names."""

    seen: dict[str, Var] = {}
    for f in program.function_list:
        for d in f.dynamic_dims:
            seen.setdefault(d.name, d)
    for f in program.function_list:
        bound = {p.name for p in f.params} | assigned_names(f.body)
        for node in walk(f):
            found = [node] if isinstance(node, Var) else []
            found += _type_vars(getattr(node, "type", None))
            for v in found:
                if v.name not in bound:
                    seen.setdefault(v.name, v)
        for t in f.return_types:
            for v in _type_vars(t):
                seen.setdefault(v.name, v)
    return list(seen.values())


def print_ir(program: Program) -> str:
    """The program as re-parseable DSL text."""
    p = _Printer()
    p.lines += [f"# pldsl.program: {program.name}", "import pldsl as pl", ""]
    for d in dynamic_dims(program):
        p.lines.append(f'{d.name} = pl.dynamic("{d.name}")')
    p.lines += ["", "", "@pl.program", f"class {program.name}:"]
    for i, f in enumerate(program.function_list):
        if i:
            p.lines.append("")
        p.function(f)
    return "\n".join(p.lines) + "\n"
