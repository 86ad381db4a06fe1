"""Programs of a file written with @pl.jit, for `pldsl check` / `pldsl ir` and the corpus.

A jit entry has no types until it is called: they come from `--shape NAME=16x128:bf16`
options, else from the file's own `build_specs()` (pypto-lib's TensorSpec / ScalarSpec
lists), else from full annotations. A file importing `pypto` is imported under the pypto
hook (pldsl.pypto.hook).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import re
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

from pldsl import dtypes
from pldsl.diagnostics import CaptureError, Diagnostic, Span
from pldsl.ir.nodes import Program
from pldsl.ir.symbolic import types_equal
from pldsl.ir.types import ScalarType, TensorType, Type
from pldsl.jit.arguments import _TORCH_DTYPES
from pldsl.jit.function import JITFunction
from pldsl.jit.specialize import annotation_types, bare_params

SHAPE_RE = re.compile(r"^(\w+)=((?:\d+x)*\d+)(?::(\w+))?$")


class ShapeOptionError(ValueError):
    """A malformed --shape option."""


class ImportFailure(Exception):
    """The kernel file itself failed to import or to build its programs (one line).

    `cause` is the exception raised and `where` the file of the innermost frame that raised
    it (the kernel file's own code, a module it imports, or pldsl's pypto stand-in)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        frames = traceback.extract_tb(cause.__traceback__) if cause is not None else []
        self.where = frames[-1].filename if frames else ""


def parse_shapes(options: list[str]) -> dict[str, Type]:
    """`NAME=16x128:bf16` (tensor; dtype defaults to fp32) or `NAME=:int32` (scalar)."""
    out: dict[str, Type] = {}
    for opt in options:
        scalar = re.match(r"^(\w+)=:(\w+)$", opt)
        if scalar:
            out[scalar.group(1)] = ScalarType(_dtype(scalar.group(2), opt))
            continue
        m = SHAPE_RE.match(opt)
        if not m:
            raise ShapeOptionError(
                f"--shape {opt!r}: expected NAME=16x128:bf16 (tensor) or NAME=:int32 (scalar)"
            )
        dims = tuple(int(d) for d in m.group(2).split("x"))
        out[m.group(1)] = TensorType(dims, _dtype(m.group(3) or "fp32", opt))
    return out


def _dtype(name: str, opt: str) -> dtypes.DType:
    value = getattr(dtypes, name.upper(), None)
    if not isinstance(value, dtypes.DType):
        raise ShapeOptionError(f"--shape {opt!r}: unknown dtype {name!r}")
    return value


def uses_jit(text: str) -> bool:
    return re.search(r"@\s*\w+\.jit\b", text) is not None


def import_file(file: Path) -> Any:
    """Import a kernel file as a module (call inside `hook_for(file)`)."""
    name = f"_pldsl_jit_{file.stem}_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def hook_for(file: Path) -> contextlib.AbstractContextManager:
    """The pypto hook when the file imports pypto or golden, else nothing."""
    text = file.read_text(encoding="utf-8")
    if re.search(r"^\s*(import|from)\s+(pypto|golden)\b", text, re.M):
        from pldsl.pypto.hook import pypto_modules

        return pypto_modules()
    return contextlib.nullcontext()


def jit_entries(module: Any) -> list[JITFunction]:
    """The module's own @pl.jit entries (dependencies are reached through them); a file with
    none but `@pl.jit.host` functions (a distributed program) has those as its entries."""
    own = [
        v
        for v in vars(module).values()
        if isinstance(v, JITFunction) and v.func.__module__ == module.__name__
    ]
    return [v for v in own if v.flavour == "orchestration"] or [
        v for v in own if v.flavour == "host"
    ]


def spec_types(module: Any) -> dict[str, Type]:
    """Types named by the file's `build_*specs()` functions (called with their defaults).

    A builder whose `TensorSpec(name, shape, dtype)` / `ScalarSpec(name, dtype, ...)` calls
    read only module constants is read without being run: pypto-lib's builders generate
    real-size weights (minutes of torch work) that capture does not need. The others are run
    only when some jit entry needs them: not when every entry annotates each parameter with a
    shape (the annotations then type it; a builder would only make weights of those shapes,
    and a `pl.dynamic` dim stays symbolic whatever size a spec gives it)."""
    out: dict[str, Type] = {}
    run = None  # whether builders that cannot be read must run: decided on the first one
    for name, fn in vars(module).items():
        if not (callable(fn) and re.fullmatch(r"build_\w*specs", name)):
            continue
        read = _read_specs(fn, module)
        if read is not None:
            for spec_name, t in read:
                out.setdefault(spec_name, t)
            continue
        if run is None:
            run = not all(_fully_annotated(e) for e in jit_entries(module))
        if not run:
            continue
        try:
            specs = fn()
        except TypeError:
            continue  # needs arguments: not a defaults-only spec builder
        for s in specs or ():
            t = _spec_type(s)
            if t is not None:
                out.setdefault(s.name, t)
    return out


def _fully_annotated(entry: JITFunction) -> bool:
    """Every parameter annotated with a shape (static or `pl.dynamic` dims): the types a spec
    builder gives would change nothing, as PyPTO keeps a dynamic dim symbolic whatever the
    tensor it is called with."""
    return _declared_types(entry) is not None


class _Spec:
    def __init__(self, name: Any, dtype: Any, shape: Any = None) -> None:
        self.name, self.dtype = name, dtype
        if shape is not None:
            self.shape = shape


_SPEC_ARGS = {"TensorSpec": ("name", "shape", "dtype"), "ScalarSpec": ("name", "dtype")}


def _read_specs(fn: Any, module: Any) -> list[tuple[str, Type]] | None:
    """(name, type) of each spec call in `fn`'s source, evaluated against the module's names
    (and `fn`'s defaults); None when any of them needs more (a local, a loop variable), when
    `fn` takes a required argument, or when one name gets two types."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        sig = inspect.signature(fn)
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    if any(p.default is inspect.Parameter.empty for p in sig.parameters.values()):
        return None
    torch = sys.modules.get("torch") or _TorchDtypes()
    env = {**vars(module), "torch": torch, **{k: p.default for k, p in sig.parameters.items()}}
    found: dict[str, Type] = {}
    for node in ast.walk(tree):
        kind = _spec_kind(node)
        if kind is None:
            continue
        fields = dict(zip(_SPEC_ARGS[kind], node.args))
        fields.update((kw.arg, kw.value) for kw in node.keywords if kw.arg in _SPEC_ARGS[kind])
        if set(fields) != set(_SPEC_ARGS[kind]):
            return None
        try:
            values = {
                k: eval(compile(ast.Expression(v), "<spec>", "eval"), env)
                for k, v in fields.items()
            }  # noqa: S307 - the file's own expressions, as importing it runs them
        except Exception:  # noqa: BLE001 - needs a local: run the builder instead
            return None
        t = _spec_type(_Spec(**values))
        if t is None or not isinstance(values["name"], str):
            return None
        if not types_equal(found.setdefault(values["name"], t), t):
            return None
    return list(found.items()) or None


class _TorchDtypes:
    """`torch` while spec calls are read, when nothing imported it yet: its dtype names only
    (`torch.bfloat16`), which is all a spec call's name, shape and dtype use. Importing torch
    takes seconds; anything else of it fails the read, and the builder is run instead."""

    _ALIASES = {"float": "float32", "half": "float16", "int": "int32", "long": "int64"}

    def __getattr__(self, name: str) -> str:
        full = f"torch.{self._ALIASES.get(name, name)}"
        if full not in _TORCH_DTYPES:
            raise AttributeError(f"module 'torch' has no dtype {name!r} known to pldsl")
        return full


def _spec_kind(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    f = node.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    return name if name in _SPEC_ARGS else None


def _spec_type(spec: Any) -> Type | None:
    dtype = _TORCH_DTYPES.get(str(getattr(spec, "dtype", None)))
    if dtype is None:
        try:
            import numpy as np

            from pldsl.jit.arguments import _NUMPY_DTYPES

            dtype = _NUMPY_DTYPES.get(np.dtype(spec.dtype).name)
        except TypeError:
            return None
    if dtype is None:
        return None
    if hasattr(spec, "shape"):
        return TensorType(tuple(int(d) for d in spec.shape), dtype)
    return ScalarType(dtype)


def specialise(entry: JITFunction, named: dict[str, Type], text: str = "") -> Program:
    """The entry's Program for the named types, else for its annotations.

    An entry with a bare `pl.Tensor` parameter that neither annotations, specs nor --shape
    describe raises MissingShape naming every such parameter (PyPTO too takes their shapes
    from a call; `text`, the file's source, tells whether the file itself makes one)."""
    params = [a.arg for a in entry.source().fdef.args.args if a.arg != "self"]
    if params and all(p in named for p in params):
        return entry.specialize_types([named[p] for p in params])
    try:
        # Full annotations (dynamic dims included) need no specs: the specs the file builds
        # may name another entry's parameters (several entries share one file).
        return entry.specialize_types(annotation_types(entry))
    except CaptureError as exc:
        if exc.diagnostic.rule != "MissingShape":
            raise
        if any(p in named for p in params):
            declared = _declared_types(entry)  # e.g. pld.DistributedTensor windows: no specs
            if declared is not None:
                return entry.specialize_types(declared)  # the specs do not describe this entry
        raise CaptureError(_needs_shapes(entry, named, exc.diagnostic, text)) from None


def _needs_shapes(entry: JITFunction, named: dict[str, Type], first: Diagnostic, text: str):
    """MissingShape for a jit entry: which parameters need a shape, and where to get them."""
    src = entry.source()
    try:
        bare = [p for p in bare_params(entry) if p not in named]
    except CaptureError:  # an annotation that does not read: the first diagnostic says it
        return first
    if not bare:
        return first
    name = entry.__name__
    shown = ", ".join(bare[:4]) + (f", ... ({len(bare)} in all)" if len(bare) > 4 else "")
    calls = re.search(rf"(?<![\w.]){re.escape(name)}\s*(\.\s*(lower|compile)\s*)?\(|(?<![\w.])fn\s*=\s*"
                      rf"{re.escape(name)}\b", _without_def(text, name))  # fmt: skip
    if calls:
        where = (
            "; or run the file's own harness, which calls it with its shapes: "
            "`pldsl pypto FILE --check [its arguments, e.g. -p a2a3sim]`"
        )
    else:
        where = "; this file never calls it (its shapes come from another module)"
    return Diagnostic(
        "MissingShape",
        "error",
        f"jit entry {name}() has no shapes in this file: {len(bare)} bare pl.Tensor "
        f"parameter(s) ({shown}) take theirs from a call, as in PyPTO",
        src.smap.span(src.fdef),
        f"give each with --shape NAME=16x128:bf16 (NAME=:int32 for a scalar) or a "
        f"build_specs() in the file{where}",
    )


def _without_def(text: str, name: str) -> str:
    """The file's text without the `def name(` line (a call is any other mention)."""
    return re.sub(rf"^\s*def\s+{re.escape(name)}\s*\(", "", text, flags=re.M)


def _declared_types(entry: JITFunction) -> list[Type] | None:
    """The parameter types the annotations give, when every one is shaped; else None."""
    try:
        return annotation_types(entry)
    except CaptureError:
        return None


def needs_loader(text: str) -> bool:
    """Files the plain loader cannot read: @pl.jit kernels, or files importing pypto."""
    return uses_jit(text) or re.search(r"^\s*(import|from)\s+pypto\b", text, re.M) is not None


def jit_programs(file: Path, shapes: list[str] | None = None) -> list[Program]:
    """Every jit entry of a file, specialised (raises PldslError / ShapeOptionError)."""
    return file_programs(file, shapes, built=False)


def file_programs(
    file: Path,
    shapes: list[str] | None = None,
    built: bool = True,
    missing: list[Diagnostic] | None = None,
) -> list[Program]:
    """The programs of a file: its jit entries (specialised), and with `built` its Program
    values and what its `build_*program*()` functions return with their defaults.

    The file imports as when run from its checkout: its folder and the checkout root (the
    folder above holding `.git` or `golden/`) on the path. With a `missing` list, a jit entry
    that has no shapes (MissingShape) adds its diagnostic there and the other entries are
    still returned; without one it is raised.

    Raises PldslError (a kernel that does not capture), ShapeOptionError, ImportFailure."""
    named = parse_shapes(shapes or [])
    with hook_for(file), _importing_from(file):
        module = _import_module(file)
        programs = built_programs(module) if built else []
        entries = jit_entries(module)
        if entries:
            types = {**spec_types(module), **named}
            text = file.read_text(encoding="utf-8", errors="replace")
            for e in entries:
                try:
                    programs.append(specialise(e, types, text))
                except CaptureError as exc:
                    if missing is None or exc.diagnostic.rule != "MissingShape":
                        raise
                    missing.append(exc.diagnostic)
        return programs


def search_paths(file: Path) -> list[str]:
    """The file's folder and the checkout root above it (pypto-lib files import siblings and
    the root's packages, as its CI's PYTHONPATH has them)."""
    paths = [str(file.resolve().parent)]
    for folder in file.resolve().parents:
        if (folder / ".git").exists() or (folder / "golden").is_dir():
            paths.append(str(folder))
            break
    return paths


@contextlib.contextmanager
def _importing_from(file: Path):
    """The file's search paths first while it is read; afterwards the path as it was, and the
    sibling modules it imported forgotten (the next file's folder may hold its own
    `config.py`, as each pypto-lib model folder does)."""
    saved, before = list(sys.path), set(sys.modules)
    sys.path[:0] = [p for p in search_paths(file) if p not in sys.path]
    folder = file.resolve().parent
    try:
        yield
    finally:
        sys.path[:] = saved
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules.get(name), "__file__", None) or ""
            if origin and Path(origin).resolve().parent == folder:
                del sys.modules[name]


def _import_module(file: Path) -> Any:
    """Import the file; a module whose own name shadows a package of the checkout root that
    it imports (`qwen3_14b/contract.py` importing the root's `contract` package, as
    pypto-lib's model registry loads it) is imported again with the root first."""
    try:
        return _import_once(file)
    except ImportFailure as exc:
        shadowed = f"'{file.stem}' is not a package"
        roots = search_paths(file)[1:] or _ancestors_on_path(file)
        if not roots or not isinstance(exc.cause, ModuleNotFoundError):
            raise
        if shadowed not in str(exc.cause):
            raise
    for name in [m for m in sys.modules if m == file.stem or m.startswith(file.stem + ".")]:
        del sys.modules[name]
    sys.path[:] = roots + [p for p in sys.path if p not in roots]
    return _import_once(file)


def _ancestors_on_path(file: Path) -> list[str]:
    """Folders above the file's own that are on the path (a checkout root put there)."""
    parent = file.resolve().parent
    return [p for p in sys.path if p and parent != Path(p).resolve() and parent.is_relative_to(p)][
        :1
    ]


def _import_once(file: Path) -> Any:
    from pldsl.diagnostics import PldslError

    try:
        return import_file(file)
    except PldslError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module code, reported in one line
        raise ImportFailure(
            f"{file}: importing it failed: {type(exc).__name__}: {exc}", exc
        ) from None


def built_programs(module: Any) -> list[Program]:
    """Program values of a module and the results of its `build_*program*()` functions."""
    from pldsl.diagnostics import PldslError

    programs = [v for v in vars(module).values() if isinstance(v, Program)]
    for name, fn in list(vars(module).items()):
        if callable(fn) and name.startswith("build_") and "program" in name:
            try:
                value = fn()
            except PldslError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's builder
                raise ImportFailure(f"{name}() failed: {type(exc).__name__}: {exc}", exc) from None
            if isinstance(value, Program):
                programs.append(value)
    return programs


__all__ = ["ShapeOptionError", "jit_programs", "parse_shapes", "uses_jit", "Span"]
