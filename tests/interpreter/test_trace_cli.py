"""Chrome traces, the per-line profile, and `pldsl run` (pldsl/cli_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from pldsl import interpreter
from pldsl.cli_run import main as cli_main
from pldsl.diagnostics import RuntimeFault

ROOT = Path(__file__).resolve().parents[2]

KERNEL = textwrap.dedent("""\
    import pldsl as pl

    N = pl.dynamic("N")
    K = 64


    @pl.program
    class Norm:
        @pl.function
        def main(self, x: pl.Tensor[[N, K], pl.BF16], scale: pl.Scalar[pl.FP32], out: pl.Out[pl.Tensor[[N, K], pl.FP32]]) -> pl.Tensor[[N, K], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            for r0 in pl.range(0, n, 16):
                valid = pl.min(16, n - r0)
                t = pl.slice(x, [16, K], [r0, 0], valid_shape=[valid, K])
                f = pl.cast(t, pl.FP32)
                s = pl.row_sum(pl.mul(f, f))
                y = pl.row_expand_mul(f, pl.mul(pl.rsqrt(pl.add(s, 1e-6)), scale))
                out = pl.assemble(out, y, [r0, 0])
            return out

        @pl.function
        def oob(self, x: pl.Tensor[[N, K], pl.BF16], scale: pl.Scalar[pl.FP32], out: pl.Out[pl.Tensor[[N, K], pl.FP32]]) -> pl.Tensor[[N, K], pl.FP32]:
            t = pl.slice(x, [16, K], [8, 0])
            out = pl.assemble(out, pl.cast(t, pl.FP32), [0, 0])
            return out
""")


def _golden(x: np.ndarray, scale: float) -> np.ndarray:
    f = x.astype(np.float32)
    s = (f * f).sum(1, keepdims=True)
    return f * ((np.float32(1) / np.sqrt(s + np.float32(1e-6))) * np.float32(scale))


@pytest.fixture
def kernel_file(tmp_path) -> Path:
    p = tmp_path / "norm.py"
    p.write_text(KERNEL)
    return p


@pytest.fixture
def program(kernel_file):
    import pldsl as pl

    return pl.capture_source(kernel_file.read_text(), str(kernel_file))[0]


def _x(n=20) -> np.ndarray:
    return np.random.default_rng(2).uniform(-1, 1, (n, 64)).astype(ml_dtypes.bfloat16)


# ------------------------------------------------------------------ trace


def test_chrome_trace_json(program, tmp_path):
    path = tmp_path / "t.json"
    x = _x()
    got = interpreter.run(program, "main", x, 0.5, None, trace=str(path))
    np.testing.assert_allclose(got, _golden(x, 0.5), rtol=2e-6, atol=1e-7)
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    ops = [e for e in events if e.get("cat") == "op"]
    # pl.dim once, then per tile (2 tiles): slice, cast, mul, row_sum, add, rsqrt, mul,
    # row_expand_mul, assemble; plus pl.min is scalar arithmetic (no event).
    assert len(ops) == 1 + 2 * 9
    for e in ops:
        assert e["ph"] == "X" and isinstance(e["ts"], float) and e["dur"] >= 0
        assert e["name"].startswith("pl.") and e["pid"] == 1 and e["tid"] == 1
        assert {"source", "shapes", "dtypes", "bytes", "flops"} <= set(e["args"])
    ts = [e["ts"] for e in ops]
    assert ts == sorted(ts)
    cast = next(e for e in ops if e["name"] == "pl.cast")
    assert cast["args"]["shapes"] == [[16, 64], [16, 64]]
    assert cast["args"]["dtypes"] == ["BF16", "FP32"]
    assert cast["args"]["bytes"] == 16 * 64 * (2 + 4)
    col = KERNEL.splitlines()[_line("f = pl.cast") - 1].index("pl.cast") + 1
    assert cast["args"]["source"].endswith(f"norm.py:{_line('f = pl.cast')}:{col}")
    rsum = next(e for e in ops if e["name"] == "pl.row_sum")
    assert rsum["args"]["flops"] == 16 * 64
    calls = [e for e in events if e.get("cat") == "call"]
    assert [c["name"] for c in calls] == ["call main"]


def _line(needle: str) -> int:
    return next(i for i, t in enumerate(KERNEL.splitlines(), 1) if needle in t)


def test_trace_object_and_line_summary(program):
    tr = interpreter.Trace()
    interpreter.run(program, "main", _x(40), 1.0, None, trace=tr)
    stats = {s.line: s for s in tr.line_summary()}
    assert stats[_line("f = pl.cast")].count == 3  # three tiles
    assert stats[_line("y = pl.row_expand_mul")].count == 3 * 4  # four ops on that line
    assert stats[_line("out = pl.assemble")].bytes == 2 * 40 * 64 * 4  # valid rows only
    text = tr.format_summary(top=3)
    assert "by time" in text and "by bytes" in text and "pl.row_expand_mul" in text
    n, t, b, f = tr.totals()
    assert n == 1 + 3 * 9 and t > 0 and b > 0 and f > 0


def test_trace_is_written_when_the_run_faults(program, tmp_path):
    path = tmp_path / "t.json"
    with pytest.raises(RuntimeFault):
        interpreter.run(program, "oob", _x(12), 1.0, None, trace=path)
    assert json.loads(path.read_text())["traceEvents"]


# ------------------------------------------------------------------ CLI


def test_cli_run_writes_outputs(kernel_file, tmp_path, capsys):
    x = _x()
    np.savez(tmp_path / "in.npz", x=x, scale=np.float32(0.5))  # BF16 saved as raw 2-byte
    rc = cli_main(
        [
            str(kernel_file),
            "main",
            "--inputs",
            str(tmp_path / "in.npz"),
            "--outputs",
            str(tmp_path / "out.npz"),
            "--strict",
            "--trace",
            str(tmp_path / "t.json"),
            "--profile",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    with np.load(tmp_path / "out.npz") as out:
        assert set(out.files) == {"return", "out"}
        np.testing.assert_allclose(out["return"], _golden(x, 0.5), rtol=2e-6, atol=1e-7)
        np.testing.assert_array_equal(out["out"], out["return"])
    assert "top" in captured.out and "norm.py" in captured.out
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


def test_cli_float32_inputs_and_program_dot_function(kernel_file, tmp_path, capsys):
    x = _x().astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, scale=np.float32(2.0))
    rc = cli_main(
        [str(kernel_file), "Norm.main", "--inputs", str(tmp_path / "in.npz"), "--precision", "fp32"]
    )
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "inputs,rc,words",
    [
        ({"scale": np.float32(1)}, 2, ["missing input(s) x"]),
        ({"x": None, "scale": np.float32(1), "bogus": np.zeros(2)}, 2, ["unknown name(s) bogus"]),
        ({"x": "f64", "scale": np.float32(1)}, 2, ["InexactArgument", "'x'"]),
        ({"x": None, "scale": np.zeros(3, np.float32)}, 2, ["'scale' is a scalar parameter"]),
    ],
)
def test_cli_bad_inputs(kernel_file, tmp_path, capsys, inputs, rc, words):
    arrays = {}
    for k, v in inputs.items():
        if v is None:
            v = _x()
        elif isinstance(v, str):
            v = np.random.default_rng(0).standard_normal((20, 64))
        arrays[k] = v
    np.savez(tmp_path / "in.npz", **arrays)
    got = cli_main([str(kernel_file), "main", "--inputs", str(tmp_path / "in.npz")])
    err = capsys.readouterr().err
    assert got == rc, err
    for w in words:
        assert w in err
    assert "Traceback" not in err


def test_cli_runtime_fault_and_missing_files(kernel_file, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=_x(12), scale=np.float32(1))
    rc = cli_main([str(kernel_file), "oob", "--inputs", str(tmp_path / "in.npz")])
    err = capsys.readouterr().err
    assert rc == 1 and "error[OutOfBounds]" in err and f"norm.py:{_line('[8, 0]')}" in err
    assert "Traceback" not in err
    assert cli_main([str(tmp_path / "nope.py"), "main", "--inputs", "x.npz"]) == 2
    assert cli_main([str(kernel_file), "main", "--inputs", str(tmp_path / "none.npz")]) == 2
    assert cli_main([str(kernel_file), "missing", "--inputs", str(tmp_path / "in.npz")]) == 2
    assert cli_main([str(kernel_file)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_trace_of_a_fault_is_written_a_refused_call_writes_none(kernel_file, tmp_path, capsys):
    trace = tmp_path / "t.json"
    np.savez(tmp_path / "bad.npz", x=_x(12)[:, :32], scale=np.float32(1))  # K is 64
    rc = cli_main(
        [str(kernel_file), "main", "--inputs", str(tmp_path / "bad.npz"), "--trace", str(trace)]
    )
    assert rc == 2 and "ArgumentMismatch" in capsys.readouterr().err
    assert not trace.exists()  # refused before any op ran: nothing written
    np.savez(tmp_path / "in.npz", x=_x(12), scale=np.float32(1))
    rc = cli_main(
        [str(kernel_file), "oob", "--inputs", str(tmp_path / "in.npz"), "--trace", str(trace)]
    )
    assert rc == 1 and json.loads(trace.read_text())["traceEvents"]  # shows where it stopped


def test_cli_outputs_and_trace_naming_one_file_by_two_paths(kernel_file, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=_x(12), scale=np.float32(1))
    same = [str(tmp_path / "o"), f"{tmp_path}/../{tmp_path.name}/o"]
    args = ["--inputs", str(tmp_path / "in.npz"), "--outputs", same[0], "--trace", same[1]]
    assert cli_main([str(kernel_file), "main", *args]) == 2
    assert "the same file" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_cli_capture_error_renders_a_diagnostic(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pldsl as pl\n\n@pl.program\nclass P:\n    @pl.function\n"
        "    def f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:\n"
        "        x += 1\n        return x\n"
    )
    np.savez(tmp_path / "in.npz", x=np.zeros(4, np.float32))
    rc = cli_main([str(bad), "f", "--inputs", str(tmp_path / "in.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "error[" in err and "Traceback" not in err


def test_pldsl_run_subprocess(kernel_file, tmp_path):
    np.savez(tmp_path / "in.npz", x=_x(), scale=np.float32(1))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pldsl.cli",
            "run",
            str(kernel_file),
            "main",
            "--inputs",
            str(tmp_path / "in.npz"),
            "--outputs",
            str(tmp_path / "o.npz"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "return: float32 [20, 64]" in proc.stdout


def test_run_backend_c_agrees_with_the_interpreter(tmp_path):
    """`pldsl run --backend c` computes what the interpreter computes (an RMSNorm tile loop)."""
    import ml_dtypes

    from pldsl.cli_run import main as run_main

    kernel = tmp_path / "k.py"
    kernel.write_text(
        "import pldsl as pl\n"
        "N = pl.dynamic('N')\n"
        "@pl.program\n"
        "class P:\n"
        "    @pl.function\n"
        "    def main(self, x: pl.Tensor[[N, 64], pl.BF16],\n"
        "             out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]) -> pl.Tensor[[N, 64], pl.FP32]:\n"
        "        n = pl.tensor.dim(x, 0)\n"
        "        for b0 in pl.parallel(0, n, 16):\n"
        "            rows = pl.min(16, n - b0)\n"
        "            t = pl.cast(pl.slice(x, [16, 64], [b0, 0], valid_shape=[rows, 64]), pl.FP32)\n"
        "            s = pl.row_sum(pl.mul(t, t))\n"
        "            r = pl.row_expand_mul(t, pl.rsqrt(pl.add(pl.mul(s, 0.015625), 1e-6)))\n"
        "            out = pl.assemble(out, r, [b0, 0])\n"
        "        return out\n"
    )
    x = np.random.default_rng(0).standard_normal((20, 64)).astype(ml_dtypes.bfloat16)
    np.savez(tmp_path / "in.npz", x=x.astype(np.float32))  # `out` is allocated by both
    results = {}
    for backend in ("interpreter", "c"):
        dest = tmp_path / f"{backend}.npz"
        argv = [str(kernel), "main", "--inputs", str(tmp_path / "in.npz"), "--outputs", str(dest)]
        assert run_main([*argv, "--backend", backend]) == 0
        results[backend] = np.load(dest)["out"]
    xf = x.astype(np.float64)
    want = xf / np.sqrt((xf * xf).mean(axis=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(results["interpreter"], want, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(results["c"], results["interpreter"])


# ------------------------------------------------------------------ CLI files (issue 13)


def _ok_inputs(tmp_path) -> Path:
    path = tmp_path / "in.npz"
    np.savez(path, x=_x(), scale=np.float32(0.5))
    return path


def _run(capsys, *argv):
    rc = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


@pytest.mark.parametrize("spelling", ["same", "dot", "link"])
def test_outputs_never_overwrite_the_inputs(kernel_file, tmp_path, capsys, spelling):
    inp = _ok_inputs(tmp_path)
    before = inp.read_bytes()
    target = {"same": inp, "dot": tmp_path / "." / "in.npz", "link": tmp_path / "alias.npz"}[
        spelling
    ]
    if spelling == "link":
        target.symlink_to(inp)
    rc, out, err = _run(capsys, kernel_file, "main", "--inputs", inp, "--outputs", target)
    assert rc == 2 and out == ""
    assert "is also an input" in err and err.count("\n") == 1
    assert inp.read_bytes() == before
    # nor the kernel file, through --outputs or --trace
    src = kernel_file.read_bytes()
    for flag in ("--outputs", "--trace"):
        rc, _, err = _run(capsys, kernel_file, "main", "--inputs", inp, flag, kernel_file)
        assert rc == 2 and "is also an input" in err
    assert kernel_file.read_bytes() == src


def test_directories_and_missing_folders_are_refused_before_running(kernel_file, tmp_path, capsys):
    inp = _ok_inputs(tmp_path)
    folder = tmp_path / "results"
    folder.mkdir()
    cases = [
        ("--outputs", folder, "is a directory"),
        ("--trace", folder, "is a directory"),
        ("--outputs", tmp_path / "nope" / "o.npz", "does not exist"),
        ("--trace", tmp_path / "nope" / "t.json", "does not exist"),
    ]
    for flag, path, words in cases:
        before = sorted(p.name for p in tmp_path.rglob("*"))
        rc, out, err = _run(capsys, kernel_file, "main", "--inputs", inp, flag, path)
        assert rc == 2, (flag, path)
        assert out == "" and "trace written" not in out + err  # refused before the run
        assert err.startswith(f"pldsl: error: {flag} ") and words in err, err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_the_path_printed_is_the_path_written(kernel_file, tmp_path, capsys):
    inp = _ok_inputs(tmp_path)
    out_path, trace_path = tmp_path / "result", tmp_path / "trace"  # no suffixes
    rc, out, _ = _run(
        capsys, kernel_file, "main", "--inputs", inp, "--outputs", out_path, "--trace", trace_path
    )
    assert rc == 0
    assert f"outputs written to {out_path}\n" in out
    assert f"trace written to {trace_path} " in out
    assert not (tmp_path / "result.npz").exists()
    with np.load(out_path) as data:
        np.testing.assert_allclose(data["return"], _golden(_x(), 0.5), rtol=2e-6, atol=1e-7)
    assert json.loads(trace_path.read_text())["traceEvents"]
    # an existing output file is replaced whole
    rc, _, _ = _run(capsys, kernel_file, "main", "--inputs", inp, "--outputs", out_path)
    assert rc == 0 and np.load(out_path)["return"].shape == (20, 64)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_write_that_fails_late_exits_2_and_leaves_nothing(kernel_file, tmp_path, capsys):
    """/proc passes the up-front checks as root but takes no new files: the run happens, the
    write fails, exit 2, no 'written' line."""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    inp = _ok_inputs(tmp_path)
    rc, out, err = _run(capsys, kernel_file, "main", "--inputs", inp, "--outputs", "/proc/o.npz")
    assert rc == 2
    assert "written" not in out and "--outputs /proc/o.npz" in err
    assert not Path("/proc/o.npz").exists()


@pytest.mark.parametrize(
    "content, words",
    [
        (b"x,scale\n1,2\n", "is not a .npz file"),
        (b"", "is not a .npz file"),
        ("npy", "is a single .npy array"),
        ("dir", "is a directory"),
    ],
)
def test_inputs_that_are_not_npz_files_say_what_they_are(
    kernel_file, tmp_path, capsys, content, words
):
    path = tmp_path / "in.txt"
    if content == "npy":
        np.save(tmp_path / "in.npy", _x())
        path = tmp_path / "in.npy"
    elif content == "dir":
        path = tmp_path
    else:
        path.write_bytes(content)
    rc, out, err = _run(capsys, kernel_file, "main", "--inputs", path)
    assert rc == 2 and out == ""
    assert words in err and "pickled" not in err and err.count("\n") == 1, err


def test_examples_select_by_distinct_program_names(tmp_path, capsys):
    """`pldsl_programs()` of an example names its two builds RMSNorm and RMSNorm_rows37:
    `Program.function` selects one; a bare ambiguous name lists names that each select."""
    example = ROOT / "kernels/examples/rms_norm.py"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 512), dtype=np.float32)
    gamma = rng.standard_normal((1, 512), dtype=np.float32)
    np.savez(tmp_path / "in.npz", x=x, gamma=gamma)
    rc, _, err = _run(capsys, example, "rms_norm", "--inputs", tmp_path / "in.npz")
    assert rc == 2
    assert "write one of RMSNorm.rms_norm, RMSNorm_rows37.rms_norm" in err
    for name in ("RMSNorm.rms_norm", "RMSNorm_rows37.rms_norm"):
        out = tmp_path / f"{name}.npz"
        rc, _, err = _run(
            capsys, example, name, "--inputs", tmp_path / "in.npz", "--outputs", out,
            "--precision", "fp32",
        )  # fmt: skip
        assert rc == 0, err
        y = x / np.sqrt((x.astype(np.float64) ** 2).mean(1, keepdims=True) + 1e-6) * gamma
        np.testing.assert_allclose(np.load(out)["return"], y, rtol=2e-5, atol=1e-6)
    # the static build takes exactly 37 rows: the name reached the program it names
    np.savez(tmp_path / "in40.npz", x=np.zeros((40, 512), np.float32), gamma=gamma)
    rc, _, err = _run(capsys, example, "RMSNorm_rows37.rms_norm", "--inputs", tmp_path / "in40.npz")
    assert rc == 2 and "37" in err
    rc, _, _ = _run(capsys, example, "RMSNorm.rms_norm", "--inputs", tmp_path / "in40.npz")
    assert rc == 0
