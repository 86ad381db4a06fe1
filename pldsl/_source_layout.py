"""Run from a source checkout: `pldsl.kernels` and `pldsl.interpreter` live in the top-level
folders kernels/ and interpreter/ beside pldsl/ (an installed wheel or editable install maps them
under pldsl/ through pyproject's package-dir). Nothing is installed under the names `kernels` or
`interpreter`: this only makes the two subpackages importable from the folders they sit in.

A checkout root on `sys.path` (the current folder of `python -m ...`, pytest's rootdir) would
also expose those folders as top-level `kernels` and `interpreter`, shadowing installed packages
of the same names (transformers imports Hugging Face's `kernels`). `_NoShadow` resolves those two
top-level names past the checkout root, so `import kernels` gets the installed one, or fails."""

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


class _NoShadow(importlib.abc.MetaPathFinder):
    """Top-level `kernels` / `interpreter` from any `sys.path` entry but the checkout root."""

    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or fullname not in _FOLDERS.values():
            return None
        entries = [e for e in sys.path if not self._is_checkout(e)]
        spec = importlib.machinery.PathFinder.find_spec(fullname, entries)
        if spec is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (this checkout's {fullname}/ folder is "
                f"pldsl.{fullname})",
                name=fullname,
            )
        return spec

    def _is_checkout(self, entry: str) -> bool:
        try:
            return Path(entry or ".").resolve() == self.checkout
        except (OSError, RuntimeError):
            return False


def install(package_dir: Path) -> None:
    """Add the finder when pldsl/ is a source checkout (its siblings hold the two packages)."""
    if (package_dir / "interpreter").is_dir():  # installed: the subpackages are inside pldsl/
        return
    checkout = package_dir.parent
    if all((checkout / f / "__init__.py").is_file() for f in _FOLDERS.values()):
        if not any(isinstance(f, _SourceCheckoutFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceCheckoutFinder(checkout))
            sys.meta_path.insert(0, _NoShadow(checkout.resolve()))


install(Path(__file__).resolve().parent)
