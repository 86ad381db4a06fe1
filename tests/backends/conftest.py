"""Fixtures of the C backend tests: skip everything when no C compiler is available."""

from __future__ import annotations

import pytest
from toolchain import have_c_compiler


def pytest_collection_modifyitems(config, items):
    if have_c_compiler():
        return
    skip = pytest.mark.skip(reason="no C compiler (cc / $CC) on this machine")
    for item in items:
        if "tests/backends" in str(item.fspath) and "no_compiler" not in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "no_compiler: runs even where no C compiler is found")
