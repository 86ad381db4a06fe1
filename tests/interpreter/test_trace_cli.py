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
    with pytest.raises(interpreter.machine.RuntimeFault):
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
