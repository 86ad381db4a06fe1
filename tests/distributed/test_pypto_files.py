"""`pldsl pypto FILE` on distributed files: one written here (always), and PyPTO's own
tutorials and pypto-lib's allreduce (optional: PLDSL_PYPTO / PLDSL_PYPTO_LIB name a checkout
or a bare git dir)."""

import os
import subprocess
from pathlib import Path

import pytest

from pldsl.pypto.cli import main

FILES = Path(__file__).parent / "files"
PYPTO, LIB = os.environ.get("PLDSL_PYPTO"), os.environ.get("PLDSL_PYPTO_LIB")
TUTORIALS = ["01_hello_rank", "02_programming_model", "03_window_buffer", "04_barrier",
             "05_remote_load_store", "06_put_get", "07_dynamic_rank_count"]  # fmt: skip


def source(root: str, path: str) -> str:
    if (Path(root) / path).is_file():
        return (Path(root) / path).read_text()
    return subprocess.run(["git", "-C", root, "show", f"HEAD:{path}"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip


@pytest.mark.parametrize("extra", [[], ["--seed", "11"]])
def test_a_distributed_file_written_here(extra, capsys):
    assert main([*extra, str(FILES / "mesh_allreduce.py")]) == 0
    assert "1/1 run(s) passed" in capsys.readouterr().out


def test_a_missing_wait_in_a_file_is_a_read_race(tmp_path, capsys):
    text = (FILES / "mesh_allreduce.py").read_text()
    wait = """    for src in pl.range(N):
        if src != me:
            pld.system.wait(signal, offsets=[src, 0], expected=1, cmp=pld.WaitCmp.Ge)
"""
    assert wait in text
    bad = text.replace(wait, "")
    (tmp_path / "mesh_allreduce.py").write_text(bad)
    lines = bad.splitlines()
    store = next(i + 1 for i, s in enumerate(lines) if "data = pl.store(" in s)
    load = next(i + 1 for i, s in enumerate(lines) if "pld.tile.remote_load(" in s)
    assert main([str(tmp_path / "mesh_allreduce.py")]) == 1
    out = capsys.readouterr().out
    assert (f"error[WindowRace]: pld.tile.remote_load: rank 0 reads window[0, 0] of rank 1's "
            f"window, which rank 1 wrote at line {store} with nothing ordering") in out  # fmt: skip
    assert f"mesh_allreduce.py:{load}:" in out


def test_ranks_must_be_positive(capsys):
    assert main(["--ranks", "0", str(FILES / "mesh_allreduce.py")]) == 2


def test_the_c_backend_refuses_distributed_kernels(capsys):
    assert main(["--backend", "c", str(FILES / "mesh_allreduce.py")]) == 1
    out = capsys.readouterr().out
    assert "error[CBackendUnsupported]: pld.alloc_window_buffer is a distributed (pld) op" in out
    assert "pl.pld." not in out


@pytest.mark.skipif(not PYPTO, reason="set PLDSL_PYPTO to a pypto checkout or git dir")
@pytest.mark.parametrize("name", TUTORIALS)
@pytest.mark.parametrize("args", [[], ["--mode", "other"], ["-d", "0,1,2,3"]])
@pytest.mark.parametrize("seed", [[], ["--seed", "3"]])
def test_pypto_tutorials(name, args, seed, tmp_path):
    pytest.importorskip("torch")
    text = source(PYPTO, f"examples/distributed/{name}.py")
    if args and args[0] == "--mode":
        modes = {
            "04_barrier": ["--use-builtin"],
            "05_remote_load_store": ["--mode", "store"],
            "06_put_get": ["--mode", "get"],
            "07_dynamic_rank_count": ["--mode", "get"],
        }
        if name not in modes:
            pytest.skip("one mode only")
        args = modes[name]  # fmt: skip
    if args and args[0] == "-d" and name != "07_dynamic_rank_count":
        pytest.skip("a fixed two-rank tutorial")
    (tmp_path / f"{name}.py").write_text(text)
    assert main([*seed, str(tmp_path / f"{name}.py"), *args]) == 0


@pytest.mark.skipif(not LIB, reason="set PLDSL_PYPTO_LIB to a pypto-lib checkout or git dir")
@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("seed", [[], ["--seed", "5"]])
def test_pypto_lib_allreduce(ranks, seed, tmp_path, capsys):
    """Unchanged but for N_RANKS (the file fixes P statically), with the file's own -d
    device ids naming the ranks; its golden covers every rank's output row."""
    pytest.importorskip("torch")
    text = source(LIB, "examples/advanced/allreduce.py")
    assert "N_RANKS = 2" in text
    text = text.replace("N_RANKS = 2", f"N_RANKS = {ranks}")
    (tmp_path / "allreduce.py").write_text(text)
    devices = ",".join(map(str, range(ranks)))
    assert main([*seed, str(tmp_path / "allreduce.py"), "-d", devices]) == 0
    assert "1/1 run(s) passed" in capsys.readouterr().out


def test_ranks_overrides_the_files_device_ids(capsys):
    assert main(["--ranks", "3", str(FILES / "mesh_allreduce.py")]) == 0
    capsys.readouterr()
    # the file's kernel loops over N = 3 peers: on 2 ranks peer 2 does not exist
    assert main(["--ranks", "2", str(FILES / "mesh_allreduce.py")]) == 1
    out = capsys.readouterr().out
    # the op is named once, as written (not `pl.pld.system.notify: pld.system.notify: ...`)
    assert "error[BadPeer]: pld.system.notify: peer 2 is not a rank (ranks 0..1)\n" in out
    assert "pl.pld." not in out


def test_check_and_ir_take_a_distributed_files_host_entry(capsys):
    from pldsl.cli import main as pldsl_main

    assert pldsl_main(["ir", str(FILES / "mesh_allreduce.py")]) == 0
    out = capsys.readouterr().out
    assert "signal: pld.DistributedTensor[[3, 1], pl.INT32]" in out
    assert "pl.pld.launch(r, self.reduce_step(" in out
    assert pldsl_main(["check", str(FILES / "mesh_allreduce.py")]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out  # no false UnwrittenOutput


def test_check_before_the_run_is_quiet_on_a_correct_file(capsys):
    assert main(["--check", str(FILES / "mesh_allreduce.py")]) == 0
    out = capsys.readouterr().out
    assert "warning[" not in out and "1/1 run(s) passed" in out
