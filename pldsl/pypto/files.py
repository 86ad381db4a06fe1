"""Programs of a file written with @pl.jit, for `pldsl check` / `pldsl ir` and the corpus.

A jit entry has no types until it is called: they come from `--shape NAME=16x128:bf16`
options, else from the file's own `build_specs()` (pypto-lib's TensorSpec / ScalarSpec
lists), else from full annotations. A file importing `pypto` is imported under the pypto
hook (pldsl.pypto.hook).
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from pldsl import dtypes
from pldsl.diagnostics import CaptureError, Diagnostic, Span
from pldsl.ir.nodes import Program
from pldsl.ir.types import ScalarType, TensorType, Type
from pldsl.jit.arguments import _TORCH_DTYPES
from pldsl.jit.function import JITFunction
from pldsl.jit.specialize import annotation_types

SHAPE_RE = re.compile(r"^(\w+)=((?:\d+x)*\d+)(?::(\w+))?$")


class ShapeOptionError(ValueError):
    """A malformed --shape option."""


class ImportFailure(Exception):
    """The kernel file itself failed to import or to build its programs (one line)."""


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
    """Types named by the file's `build_*specs()` functions (called with their defaults)."""
    out: dict[str, Type] = {}
    for name, fn in vars(module).items():
        if not (callable(fn) and re.fullmatch(r"build_\w*specs", name)):
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


def specialise(entry: JITFunction, named: dict[str, Type]) -> Program:
    """The entry's Program for the named types, else for its annotations."""
    params = [a.arg for a in entry.source().fdef.args.args if a.arg != "self"]
    if params and all(p in named for p in params):
        return entry.specialize_types([named[p] for p in params])
    if any(p in named for p in params):
        missing = [p for p in params if p not in named]
        declared = _declared_types(entry)  # e.g. pld.DistributedTensor windows: not in specs
        if declared is not None:
            return entry.specialize_types(declared)  # the specs do not describe this entry
        src = entry.source()
        raise CaptureError(
            Diagnostic(
                "MissingShape",
                "error",
                f"no shape for parameter '{missing[0]}' of {entry.__name__}()",
                src.smap.span(src.fdef),
                f"add --shape {missing[0]}=16x128:bf16 (or NAME=:int32 for a scalar)",
            )
        )
    return entry.specialize_types(annotation_types(entry))


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


def file_programs(file: Path, shapes: list[str] | None = None, built: bool = True) -> list[Program]:
    """The programs of a file: its jit entries (specialised), and with `built` its Program
    values and what its `build_*program*()` functions return with their defaults.

    Raises PldslError (a kernel that does not capture), ShapeOptionError, ImportFailure."""
    from pldsl.diagnostics import PldslError

    named = parse_shapes(shapes or [])
    with hook_for(file):
        try:
            module = import_file(file)
        except PldslError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's module code, reported in one line
            raise ImportFailure(
                f"{file}: importing it failed: {type(exc).__name__}: {exc}"
            ) from None
        programs = built_programs(module) if built else []
        entries = jit_entries(module)
        if entries:
            types = {**spec_types(module), **named}
            programs += [specialise(e, types) for e in entries]
        return programs


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
                raise ImportFailure(f"{name}() failed: {type(exc).__name__}: {exc}") from None
            if isinstance(value, Program):
                programs.append(value)
    return programs


__all__ = ["ShapeOptionError", "jit_programs", "parse_shapes", "uses_jit", "Span"]
