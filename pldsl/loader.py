"""The one loader of the command line: the programs of a Python file, each under a distinct,
stable name, and the selection of a program or a function among them.

`pldsl check | ir | run | emit` all read files through `load_programs`; `select_program` and
`select_function` pick what `--program P` and `run FILE P.f` name. A file provides programs in
one of three ways (the first that yields any wins):

1. top-level `@pl.program` classes, captured from the source without running it;
2. `pldsl_programs()`, returning a list of programs or a dict `{name: program}` (a key renames
   its program, so one builder called twice gives two names, e.g. `RMSNorm` and `RMSNorm_rows37`);
3. module-level `Program` values.

Names stay distinct: when two programs of a file still share a name, the second is renamed
`Name_2`, the third `Name_3`, ... in the order the file gives them (so the names are stable).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path

from pldsl.ir.nodes import Function, Program


class LoadError(Exception):
    """A file that cannot be read or imported, or a name that selects nothing (one line, exit 2)."""


def load_programs(
    path: str, shapes: list[str] | None = None, missing: list | None = None
) -> list[Program]:
    """Every program of a Python file, under distinct names (see the module doc).

    `@pl.jit` files (and files importing `pypto`) are specialised through `pldsl.pypto.files`:
    parameter shapes from the file's `build_specs()`, or from `shapes` (`NAME=16x128:bf16`).

    Raises `LoadError` for a path that is not a readable UTF-8 file or a module that fails
    to import, and `PldslError` for a kernel that does not capture (SyntaxError included).
    With a `missing` list, a jit entry without shapes adds its MissingShape diagnostic there
    instead and the file's other programs are returned.
    """
    from pldsl.surface import capture_source

    file = Path(path)
    if file.is_dir():
        raise LoadError(f"{path} is a directory, not a Python file")
    if not file.exists():
        raise LoadError(f"no such file: {path}")
    if not file.is_file():
        raise LoadError(f"{path} is not a regular file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    named = [(p.name, p) for p in capture_source(text, str(file))]
    if named:
        return distinct_names(named)
    from pldsl.pypto import files as jit_loader

    if not jit_loader.needs_loader(text):
        return distinct_names(_programs_from_module(file))
    try:
        found = jit_loader.file_programs(file, shapes, missing=missing)
    except (jit_loader.ImportFailure, jit_loader.ShapeOptionError) as exc:
        raise LoadError(str(exc)) from None
    # every entry may be in `missing` (no shapes): the file was still read, through the loader
    # that maps `pypto`, so importing it again without that mapping would only fail
    return distinct_names([(p.name, p) for p in found])


def distinct_names(named: list[tuple[str, Program]]) -> list[Program]:
    """Programs renamed to their given names, later duplicates suffixed `_2`, `_3`, ..."""
    taken = {name for name, _ in named}
    seen: dict[str, int] = {}
    out = []
    for name, program in named:
        if name in seen:
            k = seen[name] + 1
            while f"{name}_{k}" in taken:
                k += 1
            seen[name] = k
            new = f"{name}_{k}"
            taken.add(new)
            name = new
        else:
            seen[name] = 1
        out.append(program if program.name == name else dataclasses.replace(program, name=name))
    return out


def select_program(programs: list[Program], wanted: str | None, path: str) -> Program:
    """The program called `wanted`, or the only one when `wanted` is None."""
    names = ", ".join(p.name for p in programs)
    if not programs:
        raise LoadError(f"no @pl.program found in {path}")
    if wanted is None:
        if len(programs) > 1:
            raise LoadError(f"{path} holds several programs ({names}); pick one with --program")
        return programs[0]
    for p in programs:
        if p.name == wanted:
            return p
    raise LoadError(f"no program '{wanted}' in {path} (programs: {names})")


def select_function(programs: list[Program], wanted: str, path: str) -> tuple[Program, Function]:
    """`NAME` or `Program.NAME` -> (program, function); an ambiguous or unknown name lists
    every `Program.function` of the file (all distinct, so each one selects)."""
    if not programs:
        raise LoadError(f"no @pl.program found in {path}")
    prog_name, _, fn_name = wanted.rpartition(".")
    hits = [
        (p, p.functions[fn_name])
        for p in programs
        if fn_name in p.functions and (not prog_name or p.name == prog_name)
    ]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = ", ".join(f"{p.name}.{f}" for p in programs for f in p.functions)
        raise LoadError(f"no function '{wanted}' in {path} (functions: {known})")
    names = ", ".join(f"{p.name}.{fn_name}" for p, _ in hits)
    raise LoadError(f"'{wanted}' is ambiguous in {path}: write one of {names}")


# ------------------------------------------------------------------ importing the module


def _programs_from_module(file: Path) -> list[tuple[str, Program]]:
    from pldsl.diagnostics import PldslError

    try:
        module = _import(file)
        factory = getattr(module, "pldsl_programs", None)
        if callable(factory):
            found = factory()
            named = list(found.items()) if isinstance(found, dict) else [(None, p) for p in found]
        else:
            named = [(None, v) for v in vars(module).values() if isinstance(v, Program)]
    except PldslError:
        raise
    except Exception as exc:  # the user's module code: report it, never a traceback
        raise LoadError(
            f"{file}: importing it to find its programs failed: {type(exc).__name__}: {exc}"
        ) from None
    for name, p in named:
        if not isinstance(p, Program):
            raise LoadError(
                f"{file}: pldsl_programs() returned a {type(p).__name__}, not a pl.Program"
            )
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise LoadError(f"{file}: pldsl_programs() named a program {name!r}, not an identifier")
    return [(name or p.name, p) for name, p in named]


def _import(file: Path):
    module_name = _module_name(file)
    if module_name is not None:
        return importlib.import_module(module_name)
    return _exec_module(f"_pldsl_user_{file.stem}", file)


def _exec_module(name: str, location: Path, search: list[str] | None = None):
    """Execute the file `location` as the module `name`, registered in `sys.modules` first
    (capturing a class defined in it reads its source through sys.modules[cls.__module__])
    and removed again when it fails."""
    spec = importlib.util.spec_from_file_location(name, location, submodule_search_locations=search)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _module_name(file: Path) -> str | None:
    """`pkg/sub/mod.py` -> `pkg.sub.mod` when it is inside a package (this checkout's kernels/
    -> `pldsl.kernels`). A package whose name another module already holds (Hugging Face's
    `kernels`, say) is imported under a private alias, never over it."""
    parts = [file.stem]
    folder = file.resolve().parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return None
    package_of_pldsl = _checkout_package(folder / parts[0])
    if package_of_pldsl is not None:
        return ".".join([package_of_pldsl, *parts[1:]])
    top = folder / parts[0]
    held = sys.modules.get(parts[0])
    if held is not None:
        origin = getattr(held, "__file__", None)
    else:
        spec = importlib.util.find_spec(parts[0])
        if spec is None:  # the name is free: import the package from its folder
            sys.path.insert(0, str(folder))
            return ".".join(parts)
        origin = spec.origin
    if origin is None or Path(origin).resolve().parent != top:
        parts[0] = _alias_package(top)
    return ".".join(parts)


def _alias_package(top: Path) -> str:
    """Import the package folder `top` as `_pldsl_user_pkg_<name>` (its relative imports work)."""
    alias = f"_pldsl_user_pkg_{top.name}"
    if alias not in sys.modules:
        _exec_module(alias, top / "__init__.py", [str(top)])
    return alias


def _checkout_package(folder: Path) -> str | None:
    """`pldsl.kernels` for this pldsl checkout's top-level kernels/ folder (same for interpreter/)."""
    import pldsl
    from pldsl._source_layout import _FOLDERS

    checkout = Path(pldsl.__file__).resolve().parent.parent
    if folder.parent == checkout and folder.name in _FOLDERS.values():
        return f"pldsl.{folder.name}"
    return None
