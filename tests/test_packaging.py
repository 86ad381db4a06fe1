"""Packaging: every package folder is listed in pyproject, and pldsl owns no top-level name but
its own (kernels/ and interpreter/ install as pldsl.kernels and pldsl.interpreter)."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PREFIX = {"pldsl": "pldsl", "interpreter": "pldsl.interpreter", "kernels": "pldsl.kernels"}


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    on_disk = set()
    for folder, prefix in PREFIX.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            on_disk.add(".".join((prefix, *rel)))
    assert on_disk == set(_config()["packages"])


def test_only_pldsl_is_a_top_level_name():
    config = _config()
    assert {p.split(".")[0] for p in config["packages"]} == {"pldsl"}
    assert config["package-dir"] == {
        "pldsl": "pldsl",
        "pldsl.kernels": "kernels",
        "pldsl.interpreter": "interpreter",
    }
