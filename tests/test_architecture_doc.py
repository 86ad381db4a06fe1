"""docs/architecture.md's module table is true to the tree: every file it names exists, and every
module of the packages it maps is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
FILE = re.compile(r"`([A-Za-z0-9_./]+\.(?:py|lark|h))`")
PACKAGES = ("pldsl", "interpreter", "kernels")


def _rows() -> list[tuple[str, str]]:
    """(first cell, second cell) of each row of the "Where things live" table."""
    table = DOC.read_text().split("## Where things live", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) >= 2:
            rows.append((cells[0].lstrip("| "), cells[1]))
    return rows


def _named() -> dict[str, str]:
    """Every file the table names, as a path from the root -> the row that names it. A bare name
    in the second column is a file of the folder the first column names, or of a folder above
    it (`jit/specialize.py` in the `pldsl/distributed/` row)."""
    named = {}
    for first, second in _rows():
        folders = re.findall(r"`([A-Za-z0-9_./]+/)`", first)
        for name in FILE.findall(first):
            named[name] = first
        for name in FILE.findall(second):
            if (ROOT / name).exists() or not folders:
                named[name] = first
                continue
            bases = [Path(f) for f in folders] + [q for f in folders for q in Path(f).parents]
            hits = [(b / name).as_posix() for b in bases if (ROOT / b / name).exists()]
            named[hits[0] if hits else folders[0] + name] = first
    return named


def test_every_file_the_table_names_exists():
    missing = sorted(p for p in _named() if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_module_is_in_the_table():
    named = set(_named())
    modules = [
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    ]
    absent = sorted(m for m in modules if m not in named)
    assert not absent, f"modules docs/architecture.md does not name: {absent}"
