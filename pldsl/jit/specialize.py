"""Specialisation: a @pl.jit entry and its dependencies, for given parameter types -> Program.

Unlike PyPTO, which rewrites the source into `@pl.program` text and parses that again, pldsl
rewrites the function's AST in place (pldsl.jit.rewrite, positions kept) and captures it with
the ordinary frontend, giving each bare `pl.Tensor` parameter the type of its argument. A
dependency (a `@pl.jit.incore` / `.inline` / `.opaque` / `.host` function, or another jit
entry, called by its bare name) is specialised when capture reaches its call, from the types
of the arguments there; one callee called with two different types gets two functions
(`f`, `f_2`).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import TYPE_CHECKING, Any

from pldsl.diagnostics import CaptureError, Diagnostic, Span
from pldsl.dtypes import INDEX, DType
from pldsl.enums import FunctionType, Level, Role
from pldsl.frontend.capture import ProgramBuilder, SourceMap, _parse, _source_of, fail
from pldsl.ir.nodes import Call, Function, Param, Program, Return, Signature, Var
from pldsl.ir.printer import format_type
from pldsl.ir.symbolic import deduce_call_type
from pldsl.ir.types import ScalarType, TensorType, Type
from pldsl.jit import rewrite
from pldsl.types import (
    DirectionAnnotation,
    DynVar,
    ScalarAnnotation,
    TensorAnnotation,
    is_bare_tensor,
)

if TYPE_CHECKING:
    from pldsl.jit.function import JITFunction

FLAVOURS: dict[str, dict[str, Any]] = {
    "orchestration": {"type": FunctionType.Orchestration},
    "incore": {"type": FunctionType.InCore},
    "inline": {"type": FunctionType.Inline},
    "opaque": {"type": FunctionType.Opaque},
    "host": {"type": FunctionType.Opaque, "level": Level.HOST, "role": Role.Orchestrator},
    "extern": {"type": FunctionType.Opaque, "external": True},
}


@dataclasses.dataclass(frozen=True)
class Given:
    """What a call supplies for one parameter: a tensor type, or a scalar of some dtype."""

    type: Type
    span: Span | None = None  # where the argument is written (a call inside a kernel)


@dataclasses.dataclass
class Source:
    """A jit function's parsed source, shared by all its specialisations."""

    fdef: ast.FunctionDef
    smap: SourceMap
    ns: dict[str, Any]


def load_source(jf: JITFunction) -> Source:
    lines, start, file = _source_of(jf.func)
    text = "".join(lines)
    indented = text[:1] in (" ", "\t")
    offset = start - 1 - (1 if indented else 0)
    tree = _parse("if 1:\n" + text if indented else text, file, offset)
    node = tree.body[0].body[0] if indented else tree.body[0]
    smap = SourceMap(file, offset, 0, ("if 1:\n" + text if indented else text).splitlines())
    return Source(node, smap, _namespace(jf.func))


def _namespace(func: Any) -> dict[str, Any]:
    """The names a jit body sees: its module's globals, then its closure cells."""
    ns = dict(func.__globals__)
    code = func.__code__
    for name, cell in zip(code.co_freevars, func.__closure__ or ()):
        try:
            ns[name] = cell.cell_contents
        except ValueError:  # an empty cell: defined later in the enclosing function
            pass
    return ns


class Specializer:
    """Builds one Program from an entry and the types of its arguments."""

    def __init__(self) -> None:
        self.functions: list[Function] = []
        self.signatures: dict[str, Signature] = {}
        self.built: dict[tuple[int, tuple], str] = {}
        self.in_progress: set[int] = set()
        self.aliases: dict[str, str] = {}

    # ------------------------------------------------------------- entry
    def program(self, entry: JITFunction, given: list[Given]) -> Program:
        name = self.specialise(entry, given, None)
        fns = sorted(self.functions, key=lambda f: f.name != name)
        src = entry.source()
        return Program(name, tuple(fns), src.smap.span(src.fdef), src.smap.file)

    # ------------------------------------------------------------- one function
    def specialise(self, jf: JITFunction, given: list[Given], call_span: Span | None) -> str:
        key = (id(jf.func), tuple(g.type for g in given))
        for (fid, types), name in self.built.items():
            if fid == key[0] and _same_types(types, key[1]):
                return name
        if id(jf.func) in self.in_progress:
            raise fail(
                "UnsupportedFeature",
                f"'{jf.__name__}' calls itself: recursive jit functions are not supported",
                call_span or Span("<jit>"),
                help="write the recursion as a pl.range loop",
            )
        src = jf.source()
        pb = ProgramBuilder(src.fdef, src.smap, src.ns, {})
        prepared = _rewrite_step(lambda: rewrite.prepare(src.fdef, pb.ns, pb.static.eval), src.smap)
        fdef = prepared.fdef
        fdef.name = self._fresh_name(jf.__name__)
        sig = self._signature(pb, jf, fdef, prepared.binds, given, call_span)
        if jf.flavour == "extern":
            sig = _extern_signature(sig)
        if jf.flavour == "inline":
            sig = _inline_signature(sig)
        tensors = {p.name: p.type for p in sig.params if isinstance(p.type, TensorType)}
        _rewrite_step(lambda: rewrite.substitute_shapes(fdef, tensors, pb.ns), src.smap)
        aliases = rewrite.rename_rebindings(fdef)
        self.aliases.update(aliases)
        pb.call_hook = self._call_hook
        options = {"type": FunctionType.Opaque, "level": None, "role": None, "strict_ssa": False}
        options.update(FLAVOURS[jf.flavour])
        self.signatures[fdef.name] = sig
        self.built[key] = fdef.name
        self.in_progress.add(id(jf.func))
        try:
            from pldsl.frontend.body import BodyBuilder

            fn = BodyBuilder(pb, fdef, self.signatures, options).build()
        except CaptureError as exc:
            raise _unalias(exc, aliases) from None
        finally:
            self.in_progress.discard(id(jf.func))
        self.signatures[fdef.name] = Signature(sig.params, fn.return_types, fn.tuple_return)
        self.functions.append(fn)
        return fdef.name

    def _fresh_name(self, base: str) -> str:
        name, n = base, 1
        while name in self.signatures:
            n += 1
            name = f"{base}_{n}"
        return name

    # ------------------------------------------------------------- parameters
    def _signature(
        self,
        pb: ProgramBuilder,
        jf: JITFunction,
        fdef: ast.FunctionDef,
        binds: list[rewrite.BindDynamic],
        given: list[Given],
        call_span: Span | None,
    ) -> Signature:
        args = fdef.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            raise fail(
                "UnsupportedFeature",
                "jit functions take plain positional parameters (no *args, **kwargs, keyword-only)",
                pb.smap.span(fdef),
                help="declare each parameter by name",
            )
        params = [a for a in args.args if a.arg != "self"]
        if len(given) != len(params):
            raise fail(
                "TypeError",
                f"{jf.__name__}() takes {len(params)} arguments, got {len(given)}",
                call_span or pb.smap.span(fdef),
                help="pass one argument per parameter",
            )
        dyn = {(b.param, b.axis): b for b in binds}
        built = []
        for a, g in zip(params, given):
            direction, t = self._param_type(pb, jf, a, g, call_span)
            if isinstance(t, TensorType):
                t = _apply_binds(pb, a.arg, t, dyn)
            built.append(Param(Var(a.arg, t, pb.smap.span(a)), direction))
        for (p, _axis), b in dyn.items():
            if p not in {x.name for x in built if isinstance(x.type, TensorType)}:
                raise fail(
                    "TypeError",
                    f"bind_dynamic() on '{p}', which is not a tensor parameter",
                    pb.smap.span(b.node),
                    help="bind dynamic dims of tensor parameters only",
                )
        returns: tuple[Type, ...] = ()
        tuple_return = False
        if fdef.returns is not None:
            ann = pb.annotation(fdef.returns)
            items = getattr(ann, "items", None)
            if items is not None and any(is_bare_tensor(i) for i in items):
                tuple_return = True  # `tuple[pl.Tensor, ...]`: the body's return gives the types
            elif items is not None:
                returns, tuple_return = tuple(pb.type_of(i, fdef.returns) for i in items), True
            elif isinstance(ann, TensorAnnotation) and not is_bare_tensor(ann):
                pass  # PyPTO's jit takes one returned tensor's type from the tensor itself
            elif ann is not None and not is_bare_tensor(ann):
                returns = (pb.type_of(ann, fdef.returns),)
        return Signature(tuple(built), returns, tuple_return)

    def _param_type(self, pb, jf, a: ast.arg, g: Given, call_span) -> tuple[str, Type]:
        where = g.span or call_span
        ann = pb.annotation(a.annotation) if a.annotation is not None else None
        direction = "In"
        if isinstance(ann, DirectionAnnotation):
            direction, ann = ann.direction, ann.inner
        if ann is None or is_bare_tensor(ann):
            if ann is not None and not isinstance(g.type, TensorType):
                raise _mismatch(pb, jf, a, "a tensor", g, where)
            t = g.type
            if isinstance(t, TensorType):
                t = TensorType(t.shape, t.dtype)  # the callee sees a fully valid tensor
            return direction, t
        if isinstance(ann, TensorAnnotation):
            t = pb.type_of(ann, a.annotation)
            if not _fits(t, g.type) and call_span is not None and _same_kind(t, g.type):
                # a dependency: PyPTO's jit takes its shapes from the call-site argument,
                # keeping only its own pl.dynamic dims (the annotation's static dims yield)
                shape = tuple(
                    gd if isinstance(d, int) else d for d, gd in zip(t.shape, g.type.shape)
                )
                return direction, dataclasses.replace(t, shape=shape)
            if not _fits(t, g.type):
                raise _mismatch(pb, jf, a, format_type(t), g, where)
            return direction, t
        if isinstance(ann, (ScalarAnnotation, DType)):
            dtype = ann.dtype if isinstance(ann, ScalarAnnotation) else ann
            if not isinstance(g.type, ScalarType):
                raise _mismatch(pb, jf, a, f"a scalar ({dtype.name})", g, where)
            return direction, ScalarType(dtype)
        return direction, pb.type_of(ann, a.annotation)  # reports the bad annotation

    # ------------------------------------------------------------- calls to dependencies
    def _call_hook(self, builder: Any, target: Any, node: ast.Call) -> Any:
        from pldsl.frontend.body import call_compatible
        from pldsl.jit.function import JITFunction

        if not isinstance(target, JITFunction):
            return None
        src = target.source()
        names = [a.arg for a in src.fdef.args.args if a.arg != "self"]
        ordered: list[ast.expr | None] = list(node.args) + [None] * (len(names) - len(node.args))
        if len(node.args) > len(names):
            raise fail(
                "TypeError",
                f"{target.__name__}() takes {len(names)} arguments, got {len(node.args)}",
                builder.span(node),
                help="pass one argument per parameter",
            )
        device = next((kw for kw in node.keywords if kw.arg == "device"), None)
        for kw in node.keywords:
            if kw is device and "device" not in names:
                continue  # `f(..., device=r)`: a launch on rank r (pldsl.distributed)
            if kw.arg not in names or ordered[names.index(kw.arg)] is not None:
                raise fail(
                    "TypeError",
                    f"{target.__name__}() got an unexpected or repeated argument '{kw.arg}'",
                    builder.span(kw),
                    help=f"parameters: {', '.join(names)}",
                )
            ordered[names.index(kw.arg)] = kw.value
        missing = [n for n, v in zip(names, ordered) if v is None]
        if missing:
            raise fail(
                "TypeError",
                f"{target.__name__}() is missing argument '{missing[0]}'",
                builder.span(node),
                help=f"parameters: {', '.join(names)}",
            )
        args = tuple(builder.expr(a) for a in ordered)
        given = [Given(e.type, builder.span(a)) for e, a in zip(args, ordered)]
        name = self.specialise(target, given, builder.span(node))
        sig = self.signatures[name]
        for e, p in zip(args, sig.params):
            if not call_compatible(p.type, e.type):
                raise fail(
                    "TypeError",
                    f"argument for '{p.name}' of {target.__name__}() has type "
                    f"{format_type(e.type)}, expected {format_type(p.type)}",
                    builder.span(node),
                    "arguments must match the parameter's dtype, rank and static dims",
                )
        call_type = deduce_call_type(sig.params, tuple(e.type for e in args), sig.call_type)
        call = Call(name, args, call_type, builder.span(node))
        if device is not None and "device" not in names:
            # `f(args, device=r)` (pldsl.distributed): `pl.pld.launch(r, self.f(args))`
            from pldsl.frontend.body import checked_op_call
            from pldsl.ops import lookup

            rank = builder.expr(device.value)
            return checked_op_call(lookup("pld.launch"), {"device": rank, "call": call}, call.span)
        return call


def _annotations(jf: JITFunction) -> tuple[ProgramBuilder, list[tuple[ast.arg, Any]]]:
    """Each parameter and its annotation, the direction unwrapped (None: no shape to read,
    a missing annotation or a bare `pl.Tensor`)."""
    src = jf.source()
    pb = ProgramBuilder(src.fdef, src.smap, src.ns, {})
    out = []
    for a in (a for a in src.fdef.args.args if a.arg != "self"):
        ann = pb.annotation(a.annotation) if a.annotation is not None else None
        if isinstance(ann, DirectionAnnotation):
            ann = ann.inner
        out.append((a, None if ann is None or is_bare_tensor(ann) else ann))
    return pb, out


def bare_params(jf: JITFunction) -> list[str]:
    """The parameters whose annotations give no shape (they take theirs from a call)."""
    return [a.arg for a, ann in _annotations(jf)[1] if ann is None]


def annotation_types(jf: JITFunction) -> list[Type]:
    """Parameter types read from the annotations alone (PyPTO's `compile()` with no tensors);
    a bare `pl.Tensor` has no shape to read and is reported."""
    pb, anns = _annotations(jf)
    for a, ann in anns:
        if ann is None:
            raise fail(
                "MissingShape",
                f"parameter '{a.arg}' of {jf.__name__}() has no shape: it comes from the call",
                pb.smap.span(a),
                "give shapes with the file's build_specs() or --shape NAME=16x128:bf16",
            )
    return [pb.type_of(ann, a.annotation) for a, ann in anns]


def _rewrite_step(step, smap: SourceMap):
    try:
        return step()
    except rewrite.RewriteError as exc:
        raise fail("TypeError", exc.message, smap.span(exc.node), exc.help or None) from None
    except CaptureError:
        raise
    except Exception as exc:  # noqa: BLE001 - a closure expression that fails to evaluate
        raise fail("TypeError", f"cannot evaluate: {exc}", Span(smap.file)) from None


def _apply_binds(pb, pname: str, t: TensorType, dyn: dict) -> TensorType:
    shape = list(t.shape)
    for (p, axis), b in dyn.items():
        if p != pname:
            continue
        if not -len(shape) <= axis < len(shape):
            raise fail(
                "TypeError",
                f"bind_dynamic({axis}, ...) on '{p}', which has {len(shape)} dims",
                pb.smap.span(b.node),
                help="axis counts from 0",
            )
        shape[axis] = Var(b.dyn.name, ScalarType(INDEX))
    valid = t.valid_shape
    return type(t)(tuple(shape), t.dtype, valid, t.pad)  # a DistributedTensor stays one


def _fits(declared: Type, given: Type) -> bool:
    if not (isinstance(declared, TensorType) and isinstance(given, TensorType)):
        return False
    if declared.dtype != given.dtype or declared.rank != given.rank:
        return False
    return all(
        not (isinstance(d, int) and isinstance(g, int)) or d == g
        for d, g in zip(declared.shape, given.shape)
    )


def _same_kind(declared: Type, given: Type) -> bool:
    """Tensors of one dtype and rank (they may differ in static dims)."""
    return (
        isinstance(declared, TensorType)
        and isinstance(given, TensorType)
        and declared.dtype == given.dtype
        and declared.rank == given.rank
    )


def _mismatch(pb, jf, a: ast.arg, expected: str, g: Given, where: Span | None) -> CaptureError:
    return CaptureError(
        Diagnostic(
            "TypeError",
            "error",
            f"argument for '{a.arg}' of {jf.__name__}() is {format_type(g.type)}, "
            f"the annotation says {expected}",
            where or pb.smap.span(a),
            "pass an argument of the annotated shape and dtype, or annotate it pl.Tensor",
            (f"parameter declared at {pb.smap.span(a)}",) if where else (),
        )
    )


def _same_types(a: tuple, b: tuple) -> bool:
    from pldsl.ir.symbolic import types_equal

    return len(a) == len(b) and all(types_equal(x, y) for x, y in zip(a, b))


def _unalias(exc: CaptureError, aliases: dict[str, str]) -> CaptureError:
    """Messages speak of the names the author wrote, not `x_v1`."""
    if not aliases:
        return exc
    d = exc.diagnostic
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, aliases)) + r")\b")
    message = pattern.sub(lambda m: aliases[m.group(1)], d.message)
    return CaptureError(dataclasses.replace(d, message=message))


def returns_only_params(fn: Function, aliases: dict[str, str]) -> bool:
    """True when every `return` of the entry names parameters (the in-place style)."""
    names = {p.name for p in fn.params}
    for s in _walk(fn.body):
        if isinstance(s, Return) and not all(
            isinstance(v, Var) and aliases.get(v.name, v.name) in names for v in s.values
        ):
            return False
    return True


def _walk(stmts):
    for s in stmts:
        yield s
        for attr in ("body", "orelse", "then_body", "else_body"):
            inner = getattr(s, attr, None)
            if isinstance(inner, tuple):
                yield from _walk(inner)


def _inline_signature(sig: Signature) -> Signature:
    """A `@pl.jit.inline` helper's parameters are all `In`, whatever their annotation says.

    PyPTO's specializer drops `pl.Out` / `pl.InOut` from an inline helper's parameters (and
    warns that the wrapper is deprecated there): the body is spliced into the caller before SSA
    conversion, so a parameter is the caller's own variable, not a calling-convention boundary.
    Its verifier therefore never treats an argument of an inline-helper call as written, and
    `helper(x, y)` followed by a read of `y` is clean. `@pl.function(type=Inline)` inside a
    `@pl.program` keeps its declared directions (PyPTO's parser keeps them too).
    """
    params = tuple(dataclasses.replace(p, direction="In") for p in sig.params)
    return Signature(params, sig.returns, sig.tuple_return)


def _extern_signature(sig: Signature) -> Signature:
    """An extern's single result is its first Out/InOut parameter (PyPTO binds it so)."""
    if sig.returns or sig.tuple_return:
        return sig
    written = [p.type for p in sig.params if p.direction in ("Out", "InOut")]
    return Signature(sig.params, tuple(written[:1]), False)


__all__ = ["Given", "Specializer", "FLAVOURS", "DynVar"]
