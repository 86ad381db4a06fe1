"""AST -> IR: capture `@pl.program` classes and `@pl.function` methods from source."""

from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
from collections.abc import Mapping
from typing import Any

from pldsl.diagnostics import CaptureError, Diagnostic, Span, register_source
from pldsl.dtypes import BOOL, FP32, INDEX, DType, promote
from pldsl.enums import FunctionType, Level, Role
from pldsl.frontend.static_eval import NotStatic, StaticEvaluator
from pldsl.ir.nodes import Param, Program, Var
from pldsl.ir.types import ScalarType, TensorType, TupleType, Type
from pldsl.types import (
    AnnotationError,
    DirectionAnnotation,
    DynVar,
    ScalarAnnotation,
    TensorAnnotation,
    TupleAnnotation,
)

FUNCTION_KWARGS = ("type", "level", "role", "strict_ssa", "auto_scope", "attrs", "external_source")


class SourceMap:
    """Maps AST positions of a dedented snippet back to the file (1-based columns)."""

    def __init__(self, file: str, line_offset: int, col_offset: int):
        self.file, self.line_offset, self.col_offset = file, line_offset, col_offset

    def span(self, node: ast.AST) -> Span:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        end_line = getattr(node, "end_lineno", line) or line
        end_col = getattr(node, "end_col_offset", col) or col
        if not line:
            return Span(self.file)
        return Span(
            self.file,
            line + self.line_offset,
            col + self.col_offset + 1,
            end_line + self.line_offset,
            end_col + self.col_offset + 1,
        )


def fail(rule: str, message: str, span: Span, help: str | None = None) -> CaptureError:
    return CaptureError(Diagnostic(rule, "error", message, span, help))


# --------------------------------------------------------------------- entry points


def capture_class(cls: type, namespace: Mapping[str, Any]) -> Program:
    """Capture a class decorated with `@pl.program` from its source file."""
    try:
        lines, start = inspect.getsourcelines(cls)
        file = inspect.getsourcefile(cls) or "<unknown>"
    except (OSError, TypeError) as exc:
        raise fail(
            "NoSource",
            f"cannot read the source of '{cls.__name__}': {exc}",
            Span("<unknown>"),
            "define kernels in a .py file, or use pl.capture_source(text)",
        ) from None
    ns = dict(namespace)
    ns.update({k: v for k, v in vars(cls).items() if not k.startswith("__")})
    return _capture_snippet("".join(lines), file, start - 1, ns, want=cls.__name__)


def capture_function_object(fn: Any, namespace: Mapping[str, Any]) -> Program:
    """Capture a standalone `@pl.function` as a one-function program."""
    try:
        lines, start = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or "<unknown>"
    except (OSError, TypeError) as exc:
        raise fail(
            "NoSource", f"cannot read the source of '{fn.__name__}': {exc}", Span()
        ) from None
    return _capture_snippet("".join(lines), file, start - 1, namespace, want=fn.__name__)


def capture_source(
    text: str, filename: str = "<string>", namespace: Mapping[str, Any] | None = None
) -> list[Program]:
    """Capture every `@pl.program` class (and standalone `@pl.function`) in a source text.

    Module-level constants of the text (`NAME = <constant expr>` and
    `pl.dynamic(...)`) resolve as closure names; nothing else in the text is run.
    """
    register_source(filename, text)
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as exc:
        raise fail(
            "SyntaxError",
            exc.msg or "invalid syntax",
            Span(filename, exc.lineno or 0, exc.offset or 0),
        ) from None
    ns = _module_constants(tree, dict(namespace or {}))
    smap = SourceMap(filename, 0, 0)
    programs = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and _has_decorator(node, "program"):
            programs.append(ProgramBuilder(node, smap, ns).build())
        elif isinstance(node, ast.FunctionDef) and _has_decorator(node, "function"):
            programs.append(ProgramBuilder(node, smap, ns).build_standalone())
    return programs


def _module_constants(tree: ast.Module, ns: dict[str, Any]) -> dict[str, Any]:
    import pldsl

    ns.setdefault("pl", pldsl)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            _bind_import(node, ns)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                value = StaticEvaluator(ns, lambda _: False).try_eval(node.value)
                if value is not NotStatic:
                    ns[target.id] = value
    return ns


def _bind_import(node: ast.Import | ast.ImportFrom, ns: dict[str, Any]) -> None:
    """Make `import pypto.language as pl` / `import pldsl as pl` / `import math` resolve."""
    import math

    import pldsl

    modules = {"pldsl": pldsl, "pypto.language": pldsl, "math": math}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in modules:
                ns[alias.asname or alias.name] = modules[alias.name]
    elif node.module in modules:
        for alias in node.names:
            value = getattr(modules[node.module], alias.name, None)
            if value is not None:
                ns[alias.asname or alias.name] = value


def _capture_snippet(
    src: str, file: str, line_offset: int, ns: Mapping[str, Any], want: str
) -> Program:
    dedented = textwrap.dedent(src)
    indent = _leading_indent(src) - _leading_indent(dedented)
    if file not in linecache.cache and not file.startswith("<"):
        linecache.checkcache(file)
    try:
        tree = ast.parse(dedented, file)
    except SyntaxError as exc:
        raise fail(
            "SyntaxError", exc.msg or "invalid syntax", Span(file, (exc.lineno or 0) + line_offset)
        ) from None
    node = tree.body[0]
    smap = SourceMap(file, line_offset, indent)
    builder = ProgramBuilder(node, smap, ns)
    return builder.build() if isinstance(node, ast.ClassDef) else builder.build_standalone()


def _leading_indent(text: str) -> int:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return len(first) - len(first.lstrip())


def _has_decorator(node: ast.ClassDef | ast.FunctionDef, name: str) -> bool:
    return any(_decorator_name(d) == name for d in node.decorator_list)


def _decorator_name(d: ast.expr) -> str | None:
    target = d.func if isinstance(d, ast.Call) else d
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Name):
        return target.id
    return None


# --------------------------------------------------------------------- program


class Signature:
    """A function's interface, collected before any body is built (forward calls)."""

    def __init__(
        self, name: str, params: tuple[Param, ...], returns: tuple[Type, ...], tuple_return: bool
    ):
        self.name, self.params, self.returns, self.tuple_return = (
            name,
            params,
            returns,
            tuple_return,
        )

    @property
    def call_type(self) -> Type | None:
        if self.tuple_return:
            return TupleType(self.returns)
        return self.returns[0] if self.returns else None


class ProgramBuilder:
    def __init__(
        self, node: ast.ClassDef | ast.FunctionDef, smap: SourceMap, ns: Mapping[str, Any]
    ):
        self.node, self.smap, self.ns = node, smap, ns
        self.static = StaticEvaluator(ns, lambda _: False)
        self.dynvars: dict[str, DynVar] = {}

    def build(self) -> Program:
        methods = [n for n in self.node.body if isinstance(n, ast.FunctionDef)]
        for stmt in self.node.body:
            if not isinstance(stmt, (ast.FunctionDef, ast.Pass, ast.Expr, ast.Assign)):
                raise fail(
                    "UnsupportedFeature",
                    f"unsupported statement in a @pl.program class: {type(stmt).__name__}",
                    self.smap.span(stmt),
                )
        for m in methods:
            if not _has_decorator(m, "function"):
                raise fail(
                    "MissingDecorator",
                    f"method '{m.name}' of a @pl.program class must be decorated with @pl.function",
                    self.smap.span(m),
                )
        if not methods:
            raise fail(
                "EmptyProgram",
                f"program '{self.node.name}' has no @pl.function",
                self.smap.span(self.node),
            )
        return self._build_functions(self.node.name, methods, is_method=True)

    def build_standalone(self) -> Program:
        return self._build_functions(self.node.name, [self.node], is_method=False)

    def _build_functions(
        self, name: str, methods: list[ast.FunctionDef], is_method: bool
    ) -> Program:
        from pldsl.frontend.body import BodyBuilder

        seen: dict[str, ast.FunctionDef] = {}
        for m in methods:
            if m.name in seen:
                raise fail(
                    "DuplicateFunction", f"function '{m.name}' is defined twice", self.smap.span(m)
                )
            seen[m.name] = m
        signatures = {m.name: self._signature(m, is_method) for m in methods}
        functions = []
        for m in methods:
            options = self._decorator_options(m)
            body_builder = BodyBuilder(self, m, signatures, options)
            functions.append(body_builder.build())
        return Program(name, tuple(functions), self.smap.span(self.node), self.smap.file)

    # ------------------------------------------------------------- decorator
    def _decorator_options(self, m: ast.FunctionDef) -> dict[str, Any]:
        deco = next(d for d in m.decorator_list if _decorator_name(d) == "function")
        options: dict[str, Any] = {"type": FunctionType.Opaque, "level": None, "role": None}
        if not isinstance(deco, ast.Call):
            return options
        if deco.args:
            raise fail(
                "BadDecorator", "@pl.function takes keyword arguments only", self.smap.span(deco)
            )
        for kw in deco.keywords:
            if kw.arg not in FUNCTION_KWARGS:
                raise fail(
                    "BadDecorator",
                    f"unknown keyword argument '{kw.arg}' in @pl.function()",
                    self.smap.span(kw.value),
                    f"accepted: {', '.join(FUNCTION_KWARGS)}",
                )
            value = self.static.try_eval(kw.value)
            expected = {"type": FunctionType, "level": Level, "role": Role}.get(kw.arg)
            if expected is not None and not isinstance(value, expected):
                raise fail(
                    "BadDecorator",
                    f"'{kw.arg}=' must be a pl.{expected.__name__} member",
                    self.smap.span(kw.value),
                    f"spell it literally, e.g. pl.{expected.__name__}.{next(iter(expected)).name}",
                )
            options[kw.arg] = value
        return options

    # ------------------------------------------------------------- signature
    def _signature(self, m: ast.FunctionDef, is_method: bool) -> Signature:
        args = m.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
            raise fail(
                "UnsupportedFeature",
                "kernel functions take plain positional parameters only (no defaults, *args, **kwargs)",
                self.smap.span(m),
            )
        params = list(args.args)
        if is_method:
            if not params or params[0].arg != "self":
                raise fail(
                    "MissingSelf", f"method '{m.name}' must take 'self' first", self.smap.span(m)
                )
            params = params[1:]
        built = []
        for a in params:
            if a.annotation is None:
                raise fail(
                    "MissingAnnotation",
                    f"Parameter '{a.arg}' missing type annotation",
                    self.smap.span(a),
                    "annotate it, e.g. x: pl.Tensor[[16, 128], pl.FP32]",
                )
            ann = self.annotation(a.annotation)
            direction = "In"
            if isinstance(ann, DirectionAnnotation):
                direction, ann = ann.direction, ann.inner
            t = self.type_of(ann, a.annotation)
            built.append(Param(Var(a.arg, t, self.smap.span(a)), direction))
        returns: tuple[Type, ...] = ()
        tuple_return = False
        if m.returns is not None:
            ann = self.annotation(m.returns)
            if isinstance(ann, TupleAnnotation) or isinstance(ann, tuple):
                items = ann.items if isinstance(ann, TupleAnnotation) else ann
                returns = tuple(self.type_of(i, m.returns) for i in items)
                tuple_return = True
            elif ann is not None:
                returns = (self.type_of(ann, m.returns),)
        return Signature(m.name, tuple(built), returns, tuple_return)

    def annotation(self, node: ast.expr) -> Any:
        """Evaluate an annotation expression; `tuple[...]` also means a tuple return."""
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "tuple"
        ):
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return TupleAnnotation(tuple(self.annotation(i) for i in items))
        try:
            return self.static.eval(node)
        except NotStatic as exc:
            raise fail(
                "BadAnnotation",
                f"cannot resolve annotation: '{exc}' is not a capture-time name",
                self.smap.span(node),
                "dims must be ints, closure constants or pl.dynamic(...) values",
            ) from None
        except (AnnotationError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise fail(
                "BadAnnotation", f"invalid annotation: {exc}", self.smap.span(node)
            ) from None

    def type_of(self, ann: Any, node: ast.expr) -> Type:
        if isinstance(ann, TensorAnnotation):
            shape = tuple(self.dim(d, node) for d in ann.shape)
            valid = pad = None
            if ann.view is not None:
                if ann.view.valid_shape is not None:
                    valid = tuple(self.dim(d, node) for d in ann.view.valid_shape)
                pad = ann.view.pad
            return TensorType(shape, ann.dtype, valid, pad)
        if isinstance(ann, ScalarAnnotation):
            return ScalarType(ann.dtype)
        if isinstance(ann, DType):
            return ScalarType(ann)
        raise fail(
            "BadAnnotation",
            f"expected pl.Tensor[...], pl.Scalar[...], pl.Out[...] or pl.InOut[...], got {ann!r}",
            self.smap.span(node),
        )

    def dim(self, d: Any, node: ast.expr):
        if isinstance(d, DynVar):
            known = self.dynvars.setdefault(d.name, d)
            if known is not d:
                raise fail(
                    "DynVarClash",
                    f"two different pl.dynamic('{d.name}') objects are used in one program",
                    self.smap.span(node),
                    "create each dynamic dim once and reuse the object",
                )
            return Var(d.name, ScalarType(INDEX))
        if isinstance(d, int) and not isinstance(d, bool):
            if d < 0:
                raise fail("BadAnnotation", f"negative dim {d}", self.smap.span(node))
            return d
        raise fail("BadAnnotation", f"invalid dim {d!r}", self.smap.span(node))


def scalar_binop_type(op: str, lhs: ScalarType, rhs: ScalarType) -> ScalarType:
    """Result type of scalar arithmetic: comparisons and logic give BOOL; others promote."""
    if op in ("lt", "le", "gt", "ge", "eq", "ne", "and", "or"):
        return ScalarType(BOOL)
    if op == "div":
        return ScalarType(promote(lhs.dtype, rhs.dtype) if lhs.dtype.is_float else FP32)
    return ScalarType(promote(lhs.dtype, rhs.dtype))
