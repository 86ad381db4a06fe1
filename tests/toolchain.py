"""What the tests may assume about this machine's toolchain (shared by every test folder)."""

from __future__ import annotations

import shutil

from pldsl.backends.c.build import compiler


def have_c_compiler() -> bool:
    """Whether the compiler the C backend would call (`$CC`, else `cc`) is on PATH."""
    cc = compiler()
    return bool(cc) and shutil.which(cc[0]) is not None
