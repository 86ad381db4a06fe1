"""The IR: a small set of immutable nodes. Every node has a span; every value a type.

Expressions: Var, Const, BinOp, UnaryOp, OpCall (builtin op from the op table),
Call (user function), TupleGet, MakeTuple, ListExpr (shape/offset lists inside op calls).
Statements: Assign, ExprStmt, For, While, Yield, If, Scope, Return, Break, Continue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Union

from pldsl.diagnostics import NO_SPAN, Diagnostic, PldslError, Span
from pldsl.dtypes import DType
from pldsl.enums import FunctionType, Level, Role
from pldsl.ir.types import ScalarType, TupleType, Type

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, eq=False)
class Var:
    name: str
    type: Type
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class Const:
    value: int | float | bool
    dtype: DType
    span: Span = NO_SPAN

    @property
    def type(self) -> ScalarType:
        return ScalarType(self.dtype)


SCALAR_BINOPS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "floordiv": "//",
    "mod": "%",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
    "and": "and",
    "or": "or",
    "min": "pl.min",
    "max": "pl.max",
}
COMPARISONS = {"lt", "le", "gt", "ge", "eq", "ne"}


@dataclass(frozen=True, eq=False)
class BinOp:
    """Scalar binary operation (tensors never take Python operators)."""

    op: str
    lhs: Expr
    rhs: Expr
    type: Type
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class UnaryOp:
    op: str  # "neg" | "not"
    operand: Expr
    type: Type
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class ListExpr:
    """A list of scalar expressions: a shape, an offset or indices."""

    items: tuple[Expr, ...]
    span: Span = NO_SPAN
    type: Type | None = None


@dataclass(frozen=True, eq=False)
class OpCall:
    """A builtin op, named by its entry in the op table (pldsl/ops)."""

    op: str
    args: tuple[Expr | None, ...]
    attrs: tuple[tuple[str, Any], ...]
    type: Type
    span: Span = NO_SPAN

    def attr(self, name: str, default: Any = None) -> Any:
        """A static attribute, falling back to the op table's default."""
        for key, value in self.attrs:
            if key == name:
                return value
        from pldsl.ir.opdefs import lookup

        param = lookup(self.op).param(name)
        return param.default if param is not None and not param.required else default

    def arg(self, name: str) -> Expr | None:
        """A runtime argument by its parameter name."""
        from pldsl.ir.opdefs import lookup

        names = [p.name for p in lookup(self.op).runtime_params]
        return self.args[names.index(name)]


@dataclass(frozen=True, eq=False)
class Call:
    """A call to a user function of the same program (`self.f(...)`)."""

    func: str
    args: tuple[Expr, ...]
    type: Type
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class TupleGet:
    value: Expr
    index: int
    type: Type
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class MakeTuple:
    """`(a, b)`: a tuple value (PyPTO's MakeTuple), of type pl.Tuple[...] of its items."""

    items: tuple[Expr, ...]
    type: Type
    span: Span = NO_SPAN


Expr = Union[Var, Const, BinOp, UnaryOp, ListExpr, OpCall, Call, TupleGet, MakeTuple]

# ----------------------------------------------------------------- statements


@dataclass(frozen=True, eq=False)
class Assign:
    targets: tuple[Var, ...]
    value: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class ExprStmt:
    expr: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class For:
    """`for var in pl.<kind>(start, stop, step)`; kind: range|parallel|unroll|pipeline|spmd.

    kind "spmd" is `for b in pl.spmd(n)` (and `with pl.spmd(n)`, attrs has ("form", "with")):
    blocks 0..n-1 run one after another in increasing order, `var` is the block index.

    `iter_args`/`init_values` are PyPTO's explicit loop carries (SSA spelling).
    `attrs` holds hints with no numeric effect (chunk=, stage=).
    """

    var: Var
    kind: str
    start: Expr
    stop: Expr
    step: Expr
    body: tuple[Stmt, ...]
    iter_args: tuple[Var, ...] = ()
    init_values: tuple[Expr, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class While:
    """A while loop; `cond` is evaluated before every iteration (break/continue allowed).

    Natural form `while cond:` (no carries): the body rebinds outer names, as a plain `for`.
    PyPTO's SSA form `for (a, b) in pl.while_(init_values=(a0, b0)):` with `pl.cond(c)` as the
    first body statement: `iter_args` are the carries (loop-local names that `cond` reads) and
    the body ends with `a2, b2 = pl.yield_(...)`, whose targets hold the final values.
    """

    cond: Expr
    body: tuple[Stmt, ...]
    iter_args: tuple[Var, ...] = ()
    init_values: tuple[Expr, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class Yield:
    """`a, b = pl.yield_(x, y)`: next values of the loop carries; targets see the last.

    As the last statement of both branches of an `If` (PyPTO's SSA if-form), it binds the
    if's results instead: the targets (the same names in both branches) take the values of the
    branch that ran."""

    targets: tuple[Var, ...]
    values: tuple[Expr, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class If:
    cond: Expr
    then_body: tuple[Stmt, ...]
    else_body: tuple[Stmt, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class Scope:
    """A `with` region: `pl.at(...)` ("at"), `pl.scope()`, `pl.manual_scope()`, `pl.incore()`,
    `pl.auto_incore()`, or "task" (a task with manual dependencies that is no other scope: the
    `with pl.spmd(...) as tid` wrapper and `pl.system.task_dummy`).

    `tid` (`... as tid`) is bound to the task's id once the body has run; `deps` are the TaskIds
    (scalars, or 1-D arrays of them) the task waits on. Sequential execution satisfies every
    dependency; the interpreter checks each names a task that already exists.
    """

    kind: str
    attrs: tuple[tuple[str, Any], ...]
    body: tuple[Stmt, ...]
    span: Span = NO_SPAN
    tid: Var | None = None
    deps: tuple[Expr, ...] = ()

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default


@dataclass(frozen=True, eq=False)
class Return:
    values: tuple[Expr, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class Break:
    span: Span = NO_SPAN


@dataclass(frozen=True, eq=False)
class Continue:
    span: Span = NO_SPAN


Stmt = Union[Assign, ExprStmt, For, While, Yield, If, Scope, Return, Break, Continue]

# ------------------------------------------------------------------ functions


@dataclass(frozen=True, eq=False)
class Param:
    var: Var
    direction: str = "In"

    @property
    def name(self) -> str:
        return self.var.name

    @property
    def type(self) -> Type:
        return self.var.type


@dataclass(frozen=True, eq=False)
class Signature:
    """A function's interface, known before any body is built (so calls may come first)."""

    params: tuple[Param, ...]
    returns: tuple[Type, ...]
    tuple_return: bool

    @property
    def call_type(self) -> Type:
        """The type of a call: the one return type, else a tuple (empty when none)."""
        if self.tuple_return or len(self.returns) != 1:
            return TupleType(self.returns)
        return self.returns[0]


@dataclass(frozen=True, eq=False)
class Function:
    name: str
    params: tuple[Param, ...]
    return_types: tuple[Type, ...]
    body: tuple[Stmt, ...]
    func_type: FunctionType = FunctionType.Opaque
    level: Level | None = None
    role: Role | None = None
    # True for a HOST SubWorker whose body is `pass`/`...`: bound to a Python callable at run time.
    is_host_stub: bool = False
    tuple_return: bool = False
    dynamic_dims: tuple[Var, ...] = ()
    span: Span = NO_SPAN
    # An external C++ kernel (`@pl.jit.extern`): a declaration whose body is hand-written
    # device code; pldsl captures and checks calls to it but cannot run it.
    external: bool = False
    # Names the source reads where capture leaves no IR read: a subscript write's window stop
    # (`q[r, c0:c1] = v` keeps only the offsets), a `pl.prefetch.async_prefetch` tensor (a hint
    # with no IR), a branch of a capture-time `if` that was not taken. Only UnusedValue uses
    # them (such a value is used); not part of the IR text (a round trip drops them), so not
    # part of structural equality either.
    capture_reads: frozenset[str] = field(default=frozenset(), compare=False)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A captured function is IR, not Python: calling it says how to run it."""
        raise PldslError(
            Diagnostic(
                "NotCallable",
                "error",
                f"'{self.name}' is a captured pl function (IR); it cannot be called directly",
                self.span,
                f"run it: interpreter.run(Program, '{self.name}', *args) (from pldsl import "
                f"interpreter), or pldsl.backends.c.compile(Program).run('{self.name}', *args)",
            )
        )


@dataclass(frozen=True, eq=False)
class Program:
    name: str
    function_list: tuple[Function, ...]
    span: Span = NO_SPAN
    source_file: str = field(default="<unknown>")

    @property
    def functions(self) -> dict[str, Function]:
        return {f.name: f for f in self.function_list}

    def __getattr__(self, name: str) -> Function:
        if name.startswith("__"):
            raise AttributeError(name)
        for f in self.function_list:
            if f.name == name:
                return f
        raise AttributeError(f"program '{self.name}' has no function '{name}'")


# ------------------------------------------------------------------ utilities


NODE_TYPES = (
    Var, Const, BinOp, UnaryOp, ListExpr, OpCall, Call, TupleGet, MakeTuple,
    Assign, ExprStmt, For, While, Yield, If, Scope, Return, Break, Continue,
    Param, Function, Program,
)  # fmt: skip

_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    """Fields of a node class that can hold nodes (not spans, types or static attributes)."""
    names = _CHILD_FIELDS.get(cls)
    if names is None:
        skip = {"span", "type", "attrs", "name", "op", "func", "kind", "index", "value_type"}
        names = tuple(f.name for f in fields(cls) if f.name not in skip)
        _CHILD_FIELDS[cls] = names
    return names


def child_exprs(node: Any) -> Iterator[Any]:
    """Direct children (expressions, statements, params, functions) of a node, in field order."""
    for name in _child_fields(type(node)):
        yield from _flatten(getattr(node, name))


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, tuple):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, NODE_TYPES):
        yield value


def walk(node: Any) -> Iterator[Any]:
    """Pre-order walk over every node below (and including) `node`; types excluded."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(child_exprs(current))))


def structural_equal(a: Any, b: Any) -> bool:
    """Equality of IR trees ignoring spans (and source file names) and capture-only notes
    (fields declared `compare=False`)."""
    if is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return False
        for f in fields(a):
            if f.name in ("span", "source_file") or not f.compare:
                continue
            if not structural_equal(getattr(a, f.name), getattr(b, f.name)):
                return False
        return True
    if isinstance(a, (tuple, list)):
        if not isinstance(b, (tuple, list)) or len(a) != len(b):
            return False
        return all(structural_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN constants
    return type(a) is type(b) and a == b
