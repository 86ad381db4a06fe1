"""Run from a source checkout: `pldsl.kernels` and `pldsl.interpreter` live in the top-level
folders kernels/ and interpreter/ beside pldsl/ (an installed wheel or editable install maps them
under pldsl/ through pyproject's package-dir). Nothing is installed under the names `kernels` or
`interpreter`: this only makes the two subpackages importable from the folders they sit in."""

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


def install(package_dir: Path) -> None:
    """Add the finder when pldsl/ is a source checkout (its siblings hold the two packages)."""
    if (package_dir / "interpreter").is_dir():  # installed: the subpackages are inside pldsl/
        return
    checkout = package_dir.parent
    if all((checkout / f / "__init__.py").is_file() for f in _FOLDERS.values()):
        if not any(isinstance(f, _SourceCheckoutFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceCheckoutFinder(checkout))


install(Path(__file__).resolve().parent)
