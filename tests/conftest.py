"""The one place the tests find pldsl: this checkout, importable without an install.

The repository root goes on `sys.path` (for `import pldsl`), and pldsl is imported at once: in a
source checkout it keeps the root's kernels/ and interpreter/ folders from shadowing installed
top-level packages of those names (pldsl/_source_layout.py), before any test imports
transformers (which imports Hugging Face's `kernels`). So `pytest` and `python -m pytest` work
from the root and from any other folder, with or without the oracle extra.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pldsl  # noqa: E402, F401  (installs the source-checkout import rules first)
