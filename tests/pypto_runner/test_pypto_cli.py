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
