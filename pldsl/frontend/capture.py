"""AST -> IR: capture `@pl.program` classes and `@pl.function` methods from source."""

from __future__ import annotations

import ast
import inspect
import linecache
from collections.abc import Mapping
from enum import Enum
from typing import Any

from pldsl.diagnostics import CaptureError, Diagnostic, Span, register_source
from pldsl.dtypes import INDEX, DType
from pldsl.enums import FunctionType, Level, PadValue, Role
from pldsl.frontend.static_eval import NotStatic, StaticEvaluator
from pldsl.ir.nodes import Function, Param, Program, Signature, Var
from pldsl.ir.symbolic import shape_vars
from pldsl.ir.types import ScalarType, TensorType, TileType, Type
from pldsl.types import (
    AnnotationError,
    DirectionAnnotation,
    DynVar,
    ScalarAnnotation,
    TensorAnnotation,
    TileAnnotation,
    TupleAnnotation,
    is_bare_tensor,
)

PROGRAM_KWARGS = ("strict_ssa", "name")
FUNCTION_KWARGS = ("type", "level", "role", "strict_ssa", "auto_scope", "attrs", "external_source")


class SourceMap:
    """Maps AST positions of a parsed snippet back to the file.

    `line_offset` is added to AST line numbers; AST columns are UTF-8 byte offsets and are
    converted to 1-based character columns using the parsed text's lines.
    """

    def __init__(
        self, file: str, line_offset: int, col_offset: int, lines: list[str] | None = None
    ):
        self.file, self.line_offset, self.col_offset = file, line_offset, col_offset
        self.lines = lines or []

    def _char_col(self, line: int, byte_col: int) -> int:
        if 0 < line <= len(self.lines):
            text = self.lines[line - 1]
            if not text.isascii():
                return len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))
        return byte_col

    def span(self, node: ast.AST) -> Span:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0) or 0
        end_line = getattr(node, "end_lineno", line) or line
        end_col = getattr(node, "end_col_offset", col) or col
        if not line:
            return Span(self.file)
        return Span(
            self.file,
            line + self.line_offset,
            self._char_col(line, col) + self.col_offset + 1,
            end_line + self.line_offset,
            self._char_col(end_line, end_col) + self.col_offset + 1,
        )


def fail(
    rule: str,
    message: str,
    span: Span,
    help: str | None = None,
    notes: tuple[str, ...] = (),
) -> CaptureError:
    return CaptureError(Diagnostic(rule, "error", message, span, help, tuple(notes)))


# --------------------------------------------------------------------- entry points


def capture_class(
    cls: type, namespace: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> Program:
    """Capture a class decorated with `@pl.program` from its source file."""
    lines, start, file = _source_of(cls)
    class_ns = {k: v for k, v in vars(cls).items() if not k.startswith("__")}
    return _capture_snippet("".join(lines), file, start - 1, namespace, options or {}, class_ns)


def capture_function_object(fn: Any, namespace: Mapping[str, Any]) -> Program:
    """Capture a standalone `@pl.function` as a one-function program."""
    lines, start, file = _source_of(fn)
    return _capture_snippet("".join(lines), file, start - 1, namespace, {})


def _source_of(obj: Any) -> tuple[list[str], int, str]:
    try:
        lines, start = inspect.getsourcelines(obj)
        file = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (OSError, TypeError) as exc:
        raise fail(
            "NoSource",
            f"cannot read the source of '{getattr(obj, '__name__', obj)}': {exc}",
            Span("<unknown>"),
            "define kernels in a .py file, or use pl.capture_source(text)",
        ) from None
    return lines, start, file


def capture_source(
    text: str, filename: str = "<string>", namespace: Mapping[str, Any] | None = None
) -> list[Program]:
    """Capture every `@pl.program` class (and standalone `@pl.function`) in a source text.

    Module-level constants of the text (`NAME = <constant expr>`, `pl.dynamic(...)`,
    dtypes and enums) resolve as closure names; nothing else in the text is run.
    `namespace` supplies further closure names.
    """
    if not isinstance(text, str):
        raise TypeError("capture_source takes the source text as a str")
    register_source(filename, text)
    tree = _parse(text, filename, 0)
    ns = _module_constants(tree, dict(namespace or {}))
    smap = SourceMap(filename, 0, 0, text.splitlines())
    programs = []
    _inline_templates(tree, smap, ns)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and _has_decorator(node, "program"):
            programs.append(
                ProgramBuilder(node, smap, ns, _program_options(node, smap, ns)).build()
            )
        elif isinstance(node, ast.FunctionDef) and _has_decorator(node, "function"):
            programs.append(ProgramBuilder(node, smap, ns, {}).build_standalone())
    return programs


def _inline_templates(tree: ast.Module, smap: SourceMap, ns: dict[str, Any]) -> None:
    """Module-level `@pl.inline` functions of a source text become closure names."""
    from pldsl.frontend.inline import InlineFunction, check_definition

    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and _has_decorator(node, "inline"):
            ns[node.name] = check_definition(InlineFunction(node.name, node, smap, ns))


def _attr_value_ok(value: Any) -> bool:
    """A function attr value: a constant, an enum member, or a list/tuple of them."""
    if isinstance(value, (list, tuple)):
        return all(_attr_value_ok(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, Enum))


def _parse(text: str, file: str, line_offset: int) -> ast.Module:
    try:
        return ast.parse(text, file)
    except SyntaxError as exc:
        line = (exc.lineno or 0) + line_offset if exc.lineno else 0
        raise fail(
            "SyntaxError",
            exc.msg or "invalid syntax",
            Span(file, line, exc.offset or 0),
            "fix the Python syntax",
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise fail(
            "SyntaxError",
            f"cannot parse the source: {exc}",
            Span(file),
            help="pass valid Python source text",
        ) from None


def _program_options(node: ast.ClassDef, smap: SourceMap, ns: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of `@pl.program(...)` written in the source (capture_source)."""
    deco = next(d for d in node.decorator_list if _decorator_name(d) == "program")
    if not isinstance(deco, ast.Call):
        return {}
    if deco.args:
        raise fail(
            "BadDecorator",
            "@pl.program takes keyword arguments only",
            smap.span(deco),
            help="@pl.program or @pl.program(strict_ssa=True)",
        )
    options: dict[str, Any] = {}
    for kw in deco.keywords:
        if kw.arg not in PROGRAM_KWARGS:
            raise fail(
                "BadDecorator",
                f"unknown keyword argument '{kw.arg}' in @pl.program()",
                smap.span(kw.value if kw.arg is None else kw),
                f"accepted: {', '.join(PROGRAM_KWARGS)}",
            )
        value = StaticEvaluator(ns, lambda _: False).try_eval(kw.value)
        if value is NotStatic:
            raise fail(
                "BadDecorator",
                f"'{kw.arg}=' must be a capture-time constant",
                smap.span(kw.value),
                help="use a literal or a closure constant here, not a kernel value",
            )
        options[kw.arg] = value
    return options


def _module_constants(tree: ast.Module, ns: dict[str, Any]) -> dict[str, Any]:
    import pldsl

    ns.setdefault("pl", pldsl)
    evaluator = StaticEvaluator(ns, lambda _: False)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            _bind_import(node, ns)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = evaluator.try_eval(node.value)
            if value is NotStatic:
                continue
            for target in targets:
                _bind_target(target, value, ns)
    return ns


def _bind_target(target: ast.expr, value: Any, ns: dict[str, Any]) -> None:
    """`A = v` and `A, B = (v1, v2)` at module or class level."""
    if isinstance(target, ast.Name):
        ns[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (tuple, list)):
        if len(target.elts) == len(value):
            for t, v in zip(target.elts, value):
                _bind_target(t, v, ns)


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
    src: str,
    file: str,
    line_offset: int,
    ns: Mapping[str, Any],
    options: Mapping[str, Any],
    class_ns: Mapping[str, Any] | None = None,
) -> Program:
    """Parse the source of one decorated class or function, keeping file positions.

    An indented snippet (a class defined inside a function) is parsed under `if 1:` so
    columns stay those of the file and no dedent is needed.
    """
    if file not in linecache.cache and not file.startswith("<"):
        linecache.checkcache(file)
    indented = src[:1] in (" ", "\t")
    text = "if 1:\n" + src if indented else src
    tree = _parse(text, file, line_offset - (1 if indented else 0))
    node = tree.body[0].body[0] if indented else tree.body[0]
    smap = SourceMap(file, line_offset - (1 if indented else 0), 0, text.splitlines())
    if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        raise fail(
            "NoSource",
            "the captured source is not a class or a function",
            smap.span(node),
            help="decorate a class with @pl.program",
        )
    builder = ProgramBuilder(node, smap, ns, options, class_ns)
    return builder.build() if isinstance(node, ast.ClassDef) else builder.build_standalone()


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


class ProgramBuilder:
    def __init__(
        self,
        node: ast.ClassDef | ast.FunctionDef,
        smap: SourceMap,
        ns: Mapping[str, Any],
        options: Mapping[str, Any] | None = None,
        class_ns: Mapping[str, Any] | None = None,
    ):
        self.node, self.smap = node, smap
        self.ns = dict(ns)
        # A decorated class gives its real attributes; source text gets them evaluated.
        self.class_ns_given = class_ns is not None
        self.ns.update(class_ns or {})
        self.options = dict(options or {})
        self.static = StaticEvaluator(self.ns, lambda _: False)
        self.dynvars: dict[str, DynVar] = {}
        # @pl.jit: resolves a call to a bare closure name (a jit dependency) to an IR call.
        self.call_hook: Any = None
        self.external: dict[str, Function] = {}  # external @pl.function called by bare name
        strict = self.options.get("strict_ssa", False)
        if not isinstance(strict, bool):
            raise fail(
                "BadDecorator",
                "'strict_ssa=' must be True or False",
                smap.span(node),
                help="strict_ssa=True",
            )
        name = self.options.get("name")
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise fail(
                "BadDecorator",
                "'name=' must be an identifier string",
                smap.span(node),
                help='name="MyProgram"',
            )

    def build(self) -> Program:
        methods = [n for n in self.node.body if isinstance(n, ast.FunctionDef)]
        for stmt in self.node.body:
            if not isinstance(
                stmt, (ast.FunctionDef, ast.Pass, ast.Expr, ast.Assign, ast.AnnAssign)
            ):
                raise fail(
                    "UnsupportedFeature",
                    f"unsupported statement in a @pl.program class: {type(stmt).__name__}",
                    self.smap.span(stmt),
                    "a program class holds @pl.function methods and constants only",
                )
            if (
                isinstance(stmt, (ast.Assign, ast.AnnAssign))
                and stmt.value is not None
                and not self.class_ns_given
            ):
                # Class-level constants are closure names of the methods.
                value = self.static.try_eval(stmt.value)
                if value is not NotStatic:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    for target in targets:
                        _bind_target(target, value, self.ns)
        for m in methods:
            if not _has_decorator(m, "function"):
                raise fail(
                    "MissingDecorator",
                    f"method '{m.name}' of a @pl.program class must be decorated with @pl.function",
                    self.smap.span(m),
                    "decorate it with @pl.function(type=...)",
                )
        if not methods:
            raise fail(
                "EmptyProgram",
                f"program '{self.node.name}' has no @pl.function",
                self.smap.span(self.node),
                "add at least one @pl.function method",
            )
        return self._build_functions(
            self.options.get("name") or self.node.name, methods, is_method=True
        )

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
                    "DuplicateFunction",
                    f"function '{m.name}' is defined twice",
                    self.smap.span(m),
                    help="rename one of the functions",
                )
            seen[m.name] = m
        signatures = {m.name: self._signature(m, is_method) for m in methods}
        functions = []
        for m in methods:
            options = self._decorator_options(m)
            fn = BodyBuilder(self, m, signatures, options).build()
            functions.append(fn)
            sig = signatures[m.name]
            if not sig.returns and fn.return_types:
                # no return annotation: later callers see the types the body returns
                signatures[m.name] = Signature(sig.params, fn.return_types, fn.tuple_return)
        functions += self.external.values()  # added once, after the program's own functions
        return Program(name, tuple(functions), self.smap.span(self.node), self.smap.file)

    # ------------------------------------------------------------- decorator
    def _decorator_options(self, m: ast.FunctionDef) -> dict[str, Any]:
        deco = next(d for d in m.decorator_list if _decorator_name(d) == "function")
        options: dict[str, Any] = {
            "type": FunctionType.Opaque,
            "level": None,
            "role": None,
            "strict_ssa": bool(self.options.get("strict_ssa", False)),
        }
        if not isinstance(deco, ast.Call):
            return options
        if deco.args:
            raise fail(
                "BadDecorator",
                "@pl.function takes keyword arguments only",
                self.smap.span(deco.args[0]),
                "e.g. @pl.function(type=pl.FunctionType.InCore)",
            )
        for kw in deco.keywords:
            if kw.arg not in FUNCTION_KWARGS:
                raise fail(
                    "BadDecorator",
                    f"unknown keyword argument '{kw.arg}' in @pl.function()"
                    if kw.arg
                    else "**kwargs are not accepted in @pl.function()",
                    self.smap.span(kw if kw.arg else kw.value),
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
            if kw.arg in ("strict_ssa", "auto_scope") and not isinstance(value, bool):
                raise fail(
                    "BadDecorator",
                    f"'{kw.arg}=' must be True or False",
                    self.smap.span(kw.value),
                    help="write True or False",
                )
            if kw.arg == "attrs":
                self._check_attrs(kw.value, m)
            options[kw.arg] = value
        return options

    def _check_attrs(self, node: ast.expr, m: ast.FunctionDef) -> None:
        """`attrs=` (recorded nowhere, a scheduling hint) must be what PyPTO accepts: None or
        a dict with string keys whose values are capture-time constants (not the function's
        parameters, which a decorator cannot see)."""
        span, params = self.smap.span, {a.arg for a in m.args.args}

        def bad(message: str, where: ast.AST, hint: str) -> Exception:
            return fail("BadDecorator", message, span(where), hint)

        if isinstance(node, ast.Constant) and node.value is None:
            return
        if not isinstance(node, ast.Dict):
            value = self.static.try_eval(node)
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                return
            got = (
                type(value).__name__
                if value is not NotStatic
                else f"{ast.unparse(node)}, not a capture-time value"
            )
            raise bad(
                f"`@pl.function(attrs=...)` must be a dict, got {got}"
                if not isinstance(value, dict)
                else "`@pl.function(attrs=...)` keys must be strings",
                node,
                'Use a dict, e.g. attrs={"split": pl.SplitMode.UP_DOWN}.',
            )
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise bad(
                    "Unsupported `**` unpacking in `@pl.function(attrs={...})`",
                    v,
                    "Use only string literal keys in the attrs dict.",
                )
            key = self.static.try_eval(k)
            if not isinstance(key, str):
                raise bad(
                    f"`@pl.function(attrs=...)` keys must be strings, got {ast.unparse(k)}",
                    k,
                    'Use string keys, e.g. attrs={"core_num": 8}.',
                )
            names = {n.id for n in ast.walk(v) if isinstance(n, ast.Name)}
            if names & params:
                raise bad(
                    f"@pl.function attr '{key}' references a variable, which a function attr "
                    "cannot carry",
                    v,
                    "declare it in the body instead: pl.func_attr({...}) as the first statement",
                )
            value = self.static.try_eval(v)
            if not _attr_value_ok(value):
                raise bad(
                    f"Unsupported value for @pl.function attr '{key}': {ast.unparse(v)}",
                    v,
                    "Use a scalar literal, a pl.SplitMode value, or a closure constant.",
                )

    # ------------------------------------------------------------- signature
    def _signature(self, m: ast.FunctionDef, is_method: bool) -> Signature:
        args = m.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
            raise fail(
                "UnsupportedFeature",
                "kernel functions take plain positional parameters only (no defaults, *args, **kwargs)",
                self.smap.span(m),
                help="declare every parameter with a type annotation and no default",
            )
        params = list(args.args)
        if is_method and params and params[0].arg == "self":
            # PyPTO strips a leading `self` and never requires it; calls stay `self.f(...)`.
            params = params[1:]
        built = []
        seen_names: set[str] = set()
        for a in params:
            if a.arg in seen_names or a.arg in ("pl", "self"):
                raise fail(
                    "DuplicateParameter" if a.arg in seen_names else "BadParameter",
                    f"parameter '{a.arg}' is declared twice"
                    if a.arg in seen_names
                    else f"'{a.arg}' cannot be a parameter name",
                    self.smap.span(a),
                    "give every parameter its own name",
                )
            seen_names.add(a.arg)
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
        names = {p.name: p for p in built}
        for p in built:
            for d in shape_vars(p.type, valid_shape=True):
                other = names.get(d.name)
                if other is not None and not (
                    isinstance(other.type, ScalarType) and other.type.dtype.is_int
                ):
                    raise fail(
                        "BadParameter",
                        f"parameter '{d.name}' has the name of a dynamic dimension but is not an "
                        "integer scalar",
                        other.var.span,
                        f"rename it, or declare it {d.name}: pl.Scalar[pl.INDEX]",
                    )
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
        return Signature(tuple(built), returns, tuple_return)

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
        except AnnotationError as exc:
            raise fail(
                "BadAnnotation",
                f"invalid annotation: {exc}",
                self.smap.span(node),
                help="write pl.Tensor[[dims...], pl.DTYPE], pl.Scalar[pl.DTYPE], pl.Out[...], pl.InOut[...]",
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure of a closure expression
            raise fail(
                "BadAnnotation",
                f"invalid annotation: {type(exc).__name__}: {exc}",
                self.smap.span(node),
                "write pl.Tensor[[dims...], pl.DTYPE], pl.Scalar[pl.DTYPE], pl.Out[...], pl.InOut[...]",
            ) from None

    def type_of(self, ann: Any, node: ast.expr) -> Type:
        if isinstance(ann, TensorAnnotation):
            shape = tuple(self.dim(d, node) for d in ann.shape)
            valid = pad = None
            if ann.view is not None:
                if ann.view.valid_shape is not None:
                    if not isinstance(ann.view.valid_shape, (list, tuple)):
                        raise fail(
                            "BadAnnotation",
                            "valid_shape must be a list of dims",
                            self.smap.span(node),
                            help="pl.TensorView(valid_shape=[rows, cols])",
                        )
                    valid = tuple(self.dim(d, node) for d in ann.view.valid_shape)
                    if len(valid) != len(shape):
                        raise fail(
                            "BadAnnotation",
                            f"valid_shape has {len(valid)} dims, the tensor {len(shape)}",
                            self.smap.span(node),
                            help="give one valid extent per dim",
                        )
                    for v, d in zip(valid, shape):
                        if isinstance(v, int) and isinstance(d, int) and v > d:
                            raise fail(
                                "BadAnnotation",
                                f"valid_shape dim {v} exceeds the tensor dim {d}",
                                self.smap.span(node),
                                help="a valid extent is at most the dim",
                            )
                pad = ann.view.pad
                if pad is not None and not isinstance(pad, PadValue):
                    raise fail(
                        "BadAnnotation",
                        "pad= must be a pl.PadValue member",
                        self.smap.span(node),
                        help="pad=pl.PadValue.zero",
                    )
                if ann.view.stride is not None or ann.view.layout is not None:
                    raise fail(
                        "UnsupportedFeature",
                        "strides and layouts in pl.TensorView are not supported",
                        self.smap.span(node),
                        "pldsl tensors are row-major (ND); use a_trans/b_trans for transposes",
                    )
            if isinstance(ann, TileAnnotation):
                return TileType(shape, ann.dtype, valid, pad, ann.memory)
            return getattr(ann, "ir_type", TensorType)(shape, ann.dtype, valid, pad)
        if isinstance(ann, ScalarAnnotation):
            return ScalarType(ann.dtype)
        if is_bare_tensor(ann):
            raise fail(
                "BadAnnotation",
                "a bare pl.Tensor (no shape, no dtype) is only allowed in @pl.jit functions",
                self.smap.span(node),
                help="write pl.Tensor[[dims...], pl.DTYPE], or make the function @pl.jit",
            )
        if isinstance(ann, DType):
            return ScalarType(ann)
        raise fail(
            "BadAnnotation",
            f"expected pl.Tensor[...], pl.Scalar[...], pl.Out[...] or pl.InOut[...], got {ann!r}",
            self.smap.span(node),
            help="annotate parameters with pl.Tensor[[dims], dtype] or pl.Scalar[dtype]",
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
                raise fail(
                    "BadAnnotation",
                    f"negative dim {d}",
                    self.smap.span(node),
                    help="dims are non-negative",
                )
            if d >= 2**63:
                raise fail(
                    "BadAnnotation",
                    f"dim {d} does not fit in 64 bits",
                    self.smap.span(node),
                    help="dims are 64-bit",
                )
            return d
        raise fail(
            "BadAnnotation",
            f"invalid dim {d!r}",
            self.smap.span(node),
            "dims must be ints, closure constants or pl.dynamic(...) values",
        )
