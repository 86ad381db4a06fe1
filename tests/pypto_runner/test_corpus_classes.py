"""How the corpus report classifies a file that fails to import: on pypto-lib's own code (a
"pypto-lib defect", as it would fail under PyPTO) or on something pldsl lacks (a gap). Each
case is a tiny kernel file in a temporary pypto-lib-shaped tree."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pypto_corpus.py"

CONFIG = "class Config:\n    hidden = 64\n\nCFG = Config()\n"
KERNEL = """import pypto.language as pl
from config import CFG
{line}

@pl.program
class P:
    @pl.function
    def f(self, x: pl.Tensor[[4, 4], pl.FP32]) -> pl.Tensor[[4, 4], pl.FP32]:
        return pl.add(x, x)
"""


def corpus_module():
    spec = importlib.util.spec_from_file_location("pypto_corpus_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "line, status",
    [
        ("BATCH = CFG.batch", "defect"),  # the config object lacks it (PyPTO fails too)
        ("from config import MISSING", "defect"),  # its own module lacks the name
        ("import no_such_pypto_lib_module", "defect"),
        ("X = pl.no_such_op", "failed"),  # pl lacks it: a pldsl gap
        ("from pypto.language import no_such_name", "failed"),
        ("BATCH = CFG.hidden", "checked"),  # imports fine: captured and clean
    ],
)
def test_import_failures_are_classified(tmp_path, line, status, monkeypatch):
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "config.py").write_text(CONFIG)
    kernel = folder / "k.py"
    kernel.write_text(KERNEL.format(line=line))
    corpus = corpus_module()
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("config",):
        monkeypatch.delitem(sys.modules, name, raising=False)
    result = corpus.examine(kernel, tmp_path, 1.0)
    assert result["status"] == status, json.dumps(result)
    if status == "defect":
        assert result["feature"] == "pypto-lib defect"


def test_a_module_shadowing_a_root_package_is_read_as_its_loader_reads_it(tmp_path, monkeypatch):
    # models/m/pkg.py imports the repository's own `pkg` package: run as a script its own name
    # shadows it; pypto-lib's loader puts the root first, and so does the corpus on a retry
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "base.py").write_text("HIDDEN = 4\n")
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    kernel = folder / "pkg.py"
    kernel.write_text(
        KERNEL.format(line="from pkg.base import HIDDEN").replace("from config import CFG\n", "")
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
        monkeypatch.delitem(sys.modules, name)
    result = corpus_module().examine(kernel, tmp_path, 1.0)
    assert result["status"] == "checked", json.dumps(result)


def test_entries_without_shapes_are_counted_apart_and_the_harness_supplies_some(
    tmp_path, monkeypatch
):
    # an entry the file's compile-only harness (-p a2a3sim) lowers counts as captured; one no
    # code in the file calls needs shapes from outside: the file is `needs-shapes`, not failed
    files = Path(__file__).parent / "files" / "shapes_from_harness"
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    for name in ("layer.py", "sizes.py"):
        (folder / name).write_text((files / name).read_text())
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "sizes", raising=False)
    result = corpus_module().examine(folder / "layer.py", tmp_path, 1.0)
    assert result["status"] == "needs-shapes", json.dumps(result)
    assert "unused()" in result["error"] and "through its harness: scaled" in result["error"]
    # without the never-called entry, the harness covers every entry: captured and checked
    text = (files / "layer.py").read_text()
    start, end = text.index("@pl.jit\ndef unused"), text.index("@pl.jit\ndef fixed")
    (folder / "layer.py").write_text(text[:start] + text[end:])
    result = corpus_module().examine(folder / "layer.py", tmp_path, 1.0)
    assert result["status"] == "checked", json.dumps(result)
    assert "through its harness (-p a2a3sim): scaled" in result["error"]
