"""Run from a source checkout: `pldsl.kernels` and `pldsl.interpreter` live in the top-level
folders kernels/ and interpreter/ beside pldsl/ (an installed wheel or editable install maps them
under pldsl/ through pyproject's package-dir). Nothing is installed under the names `kernels` or
`interpreter`: this only makes the two subpackages importable from the folders they sit in.

A checkout root on `sys.path` (the current folder of `python -m ...`, pytest's rootdir) would
also expose those folders as top-level `kernels` and `interpreter`, shadowing installed packages
of the same names (transformers imports Hugging Face's `kernels`). `_RootEntryFinder` resolves
those two top-level names past the checkout root, so `import kernels` gets the installed one, or
none."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

_FOLDERS = {"pldsl.kernels": "kernels", "pldsl.interpreter": "interpreter"}


class _SourceCheckoutFinder(importlib.abc.MetaPathFinder):
    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout

    def find_spec(self, fullname, path=None, target=None):
        folder = _FOLDERS.get(fullname)
        if folder is None:
            return None
        init = self.checkout / folder / "__init__.py"
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(init.parent)]
        )


class _RootEntryFinder:
    """The path-entry finder of the checkout root, minus the top-level `kernels` and
    `interpreter`: those names resolve from the other `sys.path` entries (or not at all, so
    `importlib.util.find_spec` answers None as for any missing module)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def find_spec(self, fullname, target=None):
        if fullname in _FOLDERS.values():
            return None
        return self._inner.find_spec(fullname, target)

    def __getattr__(self, name):  # invalidate_caches, iter_modules, ...
        return getattr(self._inner, name)


def _guard_root(checkout: Path) -> None:
    """Route the checkout root's `sys.path` entries ('' included) through `_RootEntryFinder`."""

    def is_root(entry) -> bool:
        try:
            return Path(entry or ".").resolve() == checkout
        except (OSError, RuntimeError, TypeError):
            return False

    def hook(entry):
        if not is_root(entry):
            raise ImportError("not this checkout's root")
        for other in sys.path_hooks:
            if other is hook:
                continue
            try:
                return _RootEntryFinder(other(entry))
            except ImportError:
                continue
        raise ImportError("no finder for this checkout's root")

    sys.path_hooks.insert(0, hook)
    for entry, finder in list(sys.path_importer_cache.items()):
        if finder is not None and not isinstance(finder, _RootEntryFinder) and is_root(entry):
            sys.path_importer_cache[entry] = _RootEntryFinder(finder)


def install(package_dir: Path) -> None:
    """Add the finder when pldsl/ is a source checkout (its siblings hold the two packages)."""
    if (package_dir / "interpreter").is_dir():  # installed: the subpackages are inside pldsl/
        return
    checkout = package_dir.parent
    if all((checkout / f / "__init__.py").is_file() for f in _FOLDERS.values()):
        if not any(isinstance(f, _SourceCheckoutFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceCheckoutFinder(checkout))
            _guard_root(checkout.resolve())


install(Path(__file__).resolve().parent)
