"""`pldsl pypto FILE`: pypto-lib-style files written here run unchanged against their own
golden; a wrong golden fails; the import hook leaves nothing behind; check / ir on jit files."""

import sys
from pathlib import Path

import pytest
from toolchain import have_c_compiler

from pldsl.cli import main

FILES = Path(__file__).parent / "files"


def pypto(*args):
    return main(["pypto", *map(str, args)])


def test_a_jit_file_runs_against_its_own_golden(capsys):
    assert pypto(FILES / "add_rows.py", "-p", "a2a3sim") == 0
    out, err = capsys.readouterr()
    assert "add_rows  y" in out and "PASS" in out and "1/1 run(s) passed" in out
    assert "-p a2a3sim accepted and ignored" in err


def test_a_deliberately_wrong_golden_fails(capsys, tmp_path):
    # add_rows.py with the bias counted twice in its golden: the run must fail.
    right = (FILES / "add_rows.py").read_text()
    wrong = right.replace("GOLDEN_BIAS_SCALE = 1.0", "GOLDEN_BIAS_SCALE = 2.0")
    assert wrong != right
    (tmp_path / "add_rows_wrong_golden.py").write_text(wrong)
    assert pypto(tmp_path / "add_rows_wrong_golden.py") == 1
    out, _ = capsys.readouterr()
    assert "FAIL (512/512)" in out and "0/1 run(s) passed" in out


def test_a_seed_era_program_file_with_run_config(capsys):
    assert pypto(FILES / "program_style.py") == 0
    assert "Square  y" in capsys.readouterr().out


@pytest.mark.parametrize("opts", [["--precision", "fp32"], ["--strict"], ["--check"]])
def test_execution_options(capsys, opts):
    assert pypto(*opts, FILES / "add_rows.py") == 0
    assert "1/1 run(s) passed" in capsys.readouterr().out


@pytest.mark.skipif(not have_c_compiler(), reason="no C compiler")
def test_the_c_backend(capsys):
    assert pypto("--backend", "c", FILES / "add_rows.py") == 0
    assert "1/1 run(s) passed" in capsys.readouterr().out


def test_the_hook_leaves_no_pypto_or_golden_behind():
    finders = list(sys.meta_path)
    assert pypto(FILES / "add_rows.py") == 0
    assert not [m for m in sys.modules if m.split(".")[0] in ("pypto", "golden")]
    assert sys.meta_path == finders
    try:  # with tests/ on sys.path, this folder itself is a namespace package `pypto`
        found = __import__("pypto")
    except ImportError:
        found = None
    finally:
        sys.modules.pop("pypto", None)
    assert found is None or not hasattr(found, "language")  # never pldsl's stand-in


def test_a_missing_pypto_module_names_its_feature(capsys):
    assert pypto(FILES / "distributed.py") == 2
    err = capsys.readouterr().err
    assert "pypto.runtime.DistributedWorker is not provided by pldsl" in err
    assert "distributed.py" in err


def test_a_torch_golden():
    pytest.importorskip("torch")
    assert pypto(FILES / "torch_golden.py") == 0


def test_check_and_ir_read_shapes_from_build_specs(capsys):
    assert main(["check", str(FILES / "add_rows.py")]) == 0
    assert "1 program(s) checked: 0 error(s)" in capsys.readouterr().out
    assert main(["ir", str(FILES / "add_rows.py")]) == 0
    assert "x: pl.Tensor[[32, 16], pl.FP32]" in capsys.readouterr().out


def test_check_and_ir_take_shapes_from_the_command_line(capsys):
    file = str(FILES / "bare_tensor.py")
    assert main(["ir", file, "--shape", "x=4x8:bf16", "--shape", "y=4x8:bf16"]) == 0
    assert "y: pl.Out[pl.Tensor[[4, 8], pl.BF16]]" in capsys.readouterr().out
    assert main(["check", file]) == 1
    out = capsys.readouterr().out
    assert "error[MissingShape]" in out and "--shape" in out
    assert main(["ir", file, "--shape", "x=4by8"]) == 2
    assert "expected NAME=16x128:bf16" in capsys.readouterr().err


def test_a_file_that_calls_its_kernel_and_compile_itself(capsys):
    assert pypto(FILES / "asserts_itself.py") == 0
    out = capsys.readouterr().out
    assert "OK" in out and "ran to completion" in out


def test_a_file_needing_torch_says_how_to_get_it(tmp_path, capsys):
    # as a fresh install without the `pypto` extra sees it (torch may be installed here)
    script = tmp_path / "needs_torch.py"
    script.write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    assert pypto(script) == 2
    err = capsys.readouterr().err
    assert "raised ModuleNotFoundError" in err and "pip install 'pldsl[pypto]'" in err


HARNESS = FILES / "shapes_from_harness" / "layer.py"


def test_check_reports_each_entry_without_shapes_and_checks_the_others(capsys, monkeypatch):
    # run from elsewhere: the file's sibling module (sizes.py) still imports
    monkeypatch.chdir(Path(__file__).parents[2] / "docs")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["check", str(HARNESS)]) == 1
    out = capsys.readouterr().out
    assert "1 program(s) checked: 2 error(s)" in out  # fixed() checked clean
    assert out.count("error[MissingShape]") == 2
    assert (
        "jit entry scaled() has no shapes in this file: 2 bare pl.Tensor parameter(s) (x, y)" in out
    )
    assert "run the file's own harness" in out  # scaled() is lowered by it
    assert "jit entry unused() has no shapes" in out and "this file never calls it" in out
    assert "layer.py:13:1" in out and "layer.py:20:1" in out  # each entry's own line


def test_check_on_a_file_whose_every_entry_lacks_shapes(tmp_path, capsys, monkeypatch):
    # pypto-lib's decode_layer_a8w8.py form, without the fully annotated entry: the file is read
    # once, through the loader that maps `pypto` (no second plain import that fails on it)
    monkeypatch.setattr(sys, "path", list(sys.path))
    text = HARNESS.read_text()
    start, end = text.index("@pl.jit\ndef fixed"), text.index('if __name__ == "__main__"')
    (tmp_path / "layer.py").write_text(text[:start] + text[end:])
    (tmp_path / "sizes.py").write_text((HARNESS.parent / "sizes.py").read_text())
    assert main(["check", str(tmp_path / "layer.py")]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("error[MissingShape]") == 2
    assert "0 program(s) checked: 2 error(s)" in captured.out
    assert "importing it" not in captured.out + captured.err
    assert "no @pl.program" not in captured.out + captured.err


def test_shapes_from_the_command_line_complete_an_entry(capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    args = ["check", str(HARNESS), "--shape", "x=8x16", "--shape", "y=8x16", "--shape", "w=8x16"]
    assert main(args) == 0
    assert "3 program(s) checked: 0 error(s)" in capsys.readouterr().out


def test_lower_in_the_files_own_harness_is_a_checked_compile_only_row(capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert pypto("--check", HARNESS, "-p", "a2a3sim") == 0
    out = capsys.readouterr().out
    assert "Lowered 1 function(s)." in out
    assert "scaled  -       -            -            compile only  PASS" in out


def test_lower_returns_the_specialised_program_and_reads_annotations_without_arguments():
    import numpy as np

    from pldsl.pypto.files import hook_for, import_file

    with hook_for(HARNESS):
        sys.path.insert(0, str(HARNESS.parent))
        try:
            module = import_file(HARNESS)
        finally:
            sys.path.remove(str(HARNESS.parent))
    x = np.zeros((4, 6), np.float32)
    entry = module.scaled.lower(x, x).functions["scaled"]
    assert [p.type.shape for p in entry.params] == [(4, 6), (4, 6)]
    assert module.fixed.lower().functions["fixed"].params[0].type.shape == (8, 16)
    compiled = module.fixed.compile()  # signature mode too; the program runs as compiled
    y = np.zeros((8, 16), np.float32)
    compiled(np.full((8, 16), 2.0, np.float32), y)
    np.testing.assert_array_equal(y, np.full((8, 16), 3.0, np.float32))
    from pldsl.diagnostics import CaptureError

    with pytest.raises(CaptureError) as info:
        module.scaled.lower()  # signature mode: a bare pl.Tensor has no shape to read
    assert info.value.diagnostic.rule == "MissingShape"


def test_two_files_with_same_named_siblings_check_in_one_run(tmp_path, capsys, monkeypatch):
    # each pypto-lib model folder has its own config.py: the second file must see its own
    monkeypatch.setattr(sys, "path", list(sys.path))
    kernel = (
        "import pypto.language as pl\nfrom config import ROWS\n\n\n@pl.jit\n"
        "def k(x: pl.Tensor[[ROWS, 8], pl.FP32], y: pl.Out[pl.Tensor[[ROWS, 8], pl.FP32]]):\n"
        "    with pl.at(level=pl.Level.CORE_GROUP):\n"
        "        y = pl.assemble(y, pl.add(x, x), [0, 0])\n"
        "    return y\n"
    )
    files = []
    for name, text, names in (
        ("a", "ROWS = 4\n", "ROWS"),
        ("b", "COLS = 8\nROWS = 6\n", "ROWS, COLS"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.py").write_text(text)
        (tmp_path / name / "kernel.py").write_text(kernel.replace("ROWS\n", f"{names}\n", 1))
        files.append(str(tmp_path / name / "kernel.py"))
    assert main(["ir", files[1]]) == 0 and "[[6, 8], pl.FP32]" in capsys.readouterr().out
    assert main(["check", *files]) == 0
    assert "2 program(s) checked: 0 error(s)" in capsys.readouterr().out
    assert "config" not in sys.modules  # the siblings it imported are forgotten
