"""The C backend's runtime behaviour: control flow, calls, host callbacks, faults with kernel
spans, argument handling, parallel-loop decisions, build errors, cache, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import pldsl as pl
from pldsl import interpreter
from pldsl.backends import c
from pldsl.diagnostics import RuntimeFault
from pldsl.differential import compare

BF16 = np.dtype(ml_dtypes.bfloat16)
ROOT = Path(__file__).resolve().parents[2]


def capture(src: str, name: str = "<test>"):
    (prog,) = pl.capture_source(src, name)
    return prog


# ============================================================================ control flow

CONTROL = """
import pldsl as pl

N = pl.dynamic("N")


@pl.program
class Control:
    @pl.function(type=pl.FunctionType.InCore)
    def scale(self, t: pl.Tensor[[4, 8], pl.FP32], s: pl.Scalar[pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
        return pl.mul(t, s)

    @pl.function(type=pl.FunctionType.InCore)
    def pair(self, t: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tuple[pl.Tensor[[4, 8], pl.FP32], pl.Scalar[pl.INDEX]]:
        return pl.add(t, 1.0), 7

    @pl.function(type=pl.FunctionType.Opaque)
    def main(self, x: pl.Tensor[[N, 8], pl.FP32], k: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[N, 8], pl.FP32]]):
        n = pl.tensor.dim(x, 0)
        acc0 = pl.full([4, 8], pl.FP32, 0.0)
        total = 0
        for i, (acc,) in pl.range(0, n, 4, init_values=(acc0,)):
            v = pl.min(4, n - i)
            t = pl.fillpad(pl.slice(x, [4, 8], [i, 0], valid_shape=[v, 8]))
            if i == 4:
                continue
            if i > k:
                break
            total = total + i // 3 - (i % 5)
            acc2 = pl.add(acc, self.scale(t, 0.5))
            acc_next = pl.yield_(acc2)
        for j in pl.range(n - 1, -1, -4):
            total = total + j
        for u in pl.unroll(0, 2, 1):
            total = total * 2 + u
        b, c7 = self.pair(acc_next)
        w = pl.write(b, [0, 0], pl.cast(total, pl.FP32))
        w = pl.write(w, [1, 1], pl.cast(c7, pl.FP32))
        out = pl.assemble(out, w, [0, 0])
        return out, total, acc_next
"""


@pytest.fixture(scope="module")
def control():
    prog = capture(CONTROL, "<control>")
    return prog, c.compile(prog)


@pytest.mark.parametrize("n,k", [(4, 100), (13, 100), (13, 6), (16, 0), (9, 8)])
def test_control_flow_matches_interpreter(control, n, k):
    prog, compiled = control
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    report = compare(prog, "main", [x, k, np.zeros((n, 8), np.float32)], compiled=compiled)
    report.check()
    assert report.bit_exact


def test_return_kinds(control):
    prog, compiled = control
    x = np.ones((8, 8), np.float32)
    ri = interpreter.run(prog, "main", x, 100, np.zeros((8, 8), np.float32))
    rc = compiled.run("main", x, 100, np.zeros((8, 8), np.float32))
    assert type(rc) is tuple and len(rc) == 3
    assert type(rc[1]) is type(ri[1]) and rc[1] == ri[1]
    assert rc[0].dtype == ri[0].dtype and rc[2].shape == ri[2].shape


# ============================================================================ faults

FAULTS = """
import pldsl as pl


@pl.program
class Faults:
    @pl.function(type=pl.FunctionType.Opaque)
    def slice_oob(self, x: pl.Tensor[[8, 8], pl.FP32], o: pl.Scalar[pl.INDEX]):
        t = pl.slice(x, [4, 8], [o, 0])
        return pl.add(t, 1.0)

    @pl.function(type=pl.FunctionType.Opaque)
    def assemble_oob(self, x: pl.Tensor[[8, 8], pl.FP32], o: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[8, 8], pl.FP32]]):
        out = pl.assemble(out, pl.slice(x, [4, 8], [0, 0]), [o, 0])
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def read_oob(self, x: pl.Tensor[[8, 8], pl.FP32], i: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[1], pl.FP32]]):
        v = pl.tensor.read(x, [i, 2])
        out = pl.write(out, [0], v)
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def int_div(self, x: pl.Tensor[[4, 4], pl.INT32], y: pl.Tensor[[4, 4], pl.INT32]):
        return pl.div(x, y)

    @pl.function(type=pl.FunctionType.Opaque)
    def scalar_div(self, a: pl.Scalar[pl.INDEX], b: pl.Scalar[pl.INDEX]):
        return a // b

    @pl.function(type=pl.FunctionType.Opaque)
    def reshape_bad(self, x: pl.Tensor[[8, 8], pl.FP32], m: pl.Scalar[pl.INDEX]):
        return pl.reshape(x, [m, 4])

    @pl.function(type=pl.FunctionType.Opaque)
    def unbound(self, x: pl.Tensor[[8, 8], pl.FP32], k: pl.Scalar[pl.INDEX]):
        if k > 0:
            y = pl.add(x, 1.0)
        return pl.mul(y, 2.0)

    @pl.function(type=pl.FunctionType.Opaque)
    def bad_step(self, s: pl.Scalar[pl.INDEX]):
        total = 0
        for i in pl.range(0, 10, s):
            total = total + i
        return total
"""


@pytest.fixture(scope="module")
def faults():
    prog = capture(FAULTS, "<faults>")
    return prog, c.compile(prog)


X8 = np.arange(64, dtype=np.float32).reshape(8, 8)


@pytest.mark.parametrize(
    "fn,args,rule",
    [
        ("slice_oob", [X8, 6], "OutOfBounds"),
        ("slice_oob", [X8, -1], "OutOfBounds"),
        ("assemble_oob", [X8, 5, None], "OutOfBounds"),
        ("read_oob", [X8, 9, None], "OutOfBounds"),
        ("int_div", [np.ones((4, 4), np.int32), np.eye(4, dtype=np.int32)], "NumericsError"),
        ("scalar_div", [7, 0], "DivisionByZero"),
        ("reshape_bad", [X8, 3], "ShapeMismatch"),
        ("unbound", [X8, 0], "UnboundVariable"),
        ("bad_step", [0], "BadLoopStep"),
    ],
)
def test_faults_carry_rule_and_kernel_line(faults, fn, args, rule):
    prog, compiled = faults
    report = compare(prog, fn, args, compiled=compiled)
    assert report.mode == "fault", str(report)
    report.check()
    d = report.fault_c.diagnostic
    assert d.rule == rule
    assert d.span.file == "<faults>" and d.span.line > 0
    assert "-->" in d.render()


def test_no_fault_paths_agree(faults):
    prog, compiled = faults
    compare(prog, "slice_oob", [X8, 4], compiled=compiled).check()
    compare(prog, "unbound", [X8, 3], compiled=compiled).check()
    compare(prog, "scalar_div", [-7, 2], compiled=compiled).check()
    compare(prog, "reshape_bad", [X8, 16], compiled=compiled).check()


@pytest.mark.parametrize("fn,args", [("read_oob", [X8, 9, None]), ("slice_oob", [X8, 6])])
def test_bounds_check_off_skips_window_checks(faults, fn, args):
    """Accesses the checks refuse (see above) run unchecked as in the interpreter: a read
    outside the window reads the pad value, a window past the buffer end keeps the valid part."""
    prog, compiled = faults
    report = compare(prog, fn, args, compiled=compiled, bounds_check=False)
    assert report.mode == "exact", str(report)
    report.check()


def test_strict_and_trace_are_refused(faults):
    prog, compiled = faults
    with pytest.raises(RuntimeFault) as e:
        compiled.run("scalar_div", 1, 1, strict=True)
    assert e.value.diagnostic.rule == "StrictNotSupported"
    assert "interpreter" in e.value.diagnostic.render()
    with pytest.raises(RuntimeFault) as e:
        compiled.run("scalar_div", 1, 1, trace="t.json")
    assert e.value.diagnostic.rule == "TraceNotSupported"


def test_argument_errors_match_interpreter(faults):
    prog, compiled = faults
    for args in ([X8[:4], 0], [X8.astype(np.float64) + 0.1, 0], [X8]):
        with pytest.raises(RuntimeFault) as ei:
            interpreter.run(prog, "slice_oob", *args)
        with pytest.raises(RuntimeFault) as ec:
            compiled.run("slice_oob", *args)
        assert ec.value.diagnostic.rule == ei.value.diagnostic.rule


# ============================================================================ arguments

ARGS = """
import pldsl as pl

N = pl.dynamic("N")


@pl.program
class Args:
    @pl.function(type=pl.FunctionType.Opaque)
    def touch(self, x: pl.Tensor[[N, 8], pl.BF16], y: pl.Tensor[[N, 8], pl.FP32]):
        x = pl.assemble(x, pl.cast(pl.full([1, 8], pl.FP32, 3.5), pl.BF16), [0, 0])
        return pl.add(y, 1.0)

    @pl.function(type=pl.FunctionType.Opaque)
    def inner(self, a: pl.Tensor[[N, 8], pl.FP32], b: pl.Tensor[[N, 8], pl.FP32]):
        return pl.add(a, b)

    @pl.function(type=pl.FunctionType.Opaque)
    def outer(self, a: pl.Tensor[[N, 8], pl.FP32], b: pl.Tensor[[4, 8], pl.FP32]):
        return self.inner(a, b)
"""


def test_in_param_written_in_place_and_converted_write_back():
    prog = capture(ARGS, "<args>")
    compiled = c.compile(prog)
    x = np.zeros((5, 8), BF16)
    yc = np.arange(40, dtype=np.float32).reshape(5, 8)[:, :]
    compiled.run("touch", x, yc)
    assert float(x[0, 3]) == 3.5 and float(x[1, 0]) == 0.0
    # a float32 array for a BF16 parameter is converted, then written back exactly
    xf = np.zeros((5, 8), np.float32)
    compiled.run("touch", xf, yc)
    assert xf[0, 0] == 3.5
    # non-contiguous inputs (a strided view) are accepted
    big = np.arange(160, dtype=np.float32).reshape(5, 32)
    r = compiled.run("touch", np.zeros((5, 8), BF16), big[:, ::4])
    np.testing.assert_array_equal(r, big[:, ::4] + 1)


def test_internal_call_dynamic_dim_mismatch():
    prog = capture(ARGS, "<args>")
    a = np.zeros((6, 8), np.float32)
    b = np.zeros((4, 8), np.float32)
    report = compare(prog, "outer", [a, b])
    assert report.mode == "fault" and report.ok, str(report)
    assert report.fault_c.diagnostic.rule == "DynamicDimMismatch"
    compare(prog, "outer", [np.ones((4, 8), np.float32), b]).check()


# ============================================================================ host callbacks

HOST = """
import pldsl as pl

N = pl.dynamic("N")


@pl.program
class Host:
    @pl.function(level=pl.Level.HOST, role=pl.Role.SubWorker)
    def sample(self, logits: pl.Tensor[[N, 16], pl.FP32], hidden: pl.Out[pl.Tensor[[N, 4], pl.BF16]]) -> pl.Tensor[[N, 4], pl.BF16]:
        ...

    @pl.function(level=pl.Level.HOST, role=pl.Role.SubWorker)
    def fresh(self, x: pl.Tensor[[N, 4], pl.BF16], k: pl.Scalar[pl.INDEX]) -> pl.Tuple[pl.Tensor[[N, 4], pl.FP32], pl.Scalar[pl.FP32]]:
        ...

    @pl.function(level=pl.Level.HOST, role=pl.Role.Orchestrator)
    def orch(self, logits: pl.Tensor[[N, 16], pl.FP32], hidden: pl.Out[pl.Tensor[[N, 4], pl.BF16]]) -> pl.Tensor[[N, 4], pl.FP32]:
        h = self.sample(logits, hidden)
        for i in pl.range(2):
            h = self.sample(pl.mul(logits, 2.0), h)
        f, s = self.fresh(h, 3)
        return pl.add(f, s)
"""


def _sample(logits, hidden):
    hidden[...] = np.argmax(logits, axis=1)[:, None].astype(np.float32) + np.arange(
        4, dtype=np.float32
    )
    return hidden


def _fresh(x, k):
    return x.astype(np.float32) * k, np.float32(0.25)


def test_host_callbacks_match_interpreter():
    prog = capture(HOST, "<host>")
    logits = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    host = {"sample": _sample, "fresh": _fresh}
    report = compare(prog, "orch", [logits, np.zeros((3, 4), BF16)], host=host)
    report.check()
    assert report.bit_exact


HOST_VIEWS = """
import pldsl as pl

N = pl.dynamic("N")


@pl.program
class HostViews:
    @pl.function(level=pl.Level.HOST, role=pl.Role.SubWorker)
    def bump(self, t: pl.Tensor[[4, 8], pl.FP32], k: pl.Scalar[pl.INT32]) -> pl.Tensor[[4, 8], pl.FP32]:
        ...

    @pl.function(level=pl.Level.HOST, role=pl.Role.Orchestrator)
    def orch(self, x: pl.Tensor[[N, 8], pl.FP32], v: pl.Scalar[pl.INDEX]) -> pl.Tensor[[4, 8], pl.FP32]:
        part = pl.slice(x, [4, 8], [2, 0], valid_shape=[v, 8], pad_value=pl.PadValue.min)
        r = self.bump(part, 3)
        whole = pl.slice(x, [4, 8], [0, 0])
        r2 = self.bump(whole, -2)
        return pl.add(r, pl.fillpad(r2))
"""


def _bump(t, k):
    t[...] = t * 2 + k
    return t if k > 0 else t.copy()  # the argument itself, or a new array


@pytest.mark.parametrize("v", [0, 1, 4])
def test_host_arguments_views_and_copies(v):
    """A partially valid window reaches the host as a copy whose valid part is written back,
    a fully valid one as a view of the kernel's buffer; returning the argument keeps its
    window (pad included)."""
    prog = capture(HOST_VIEWS, "<host-views>")
    x = np.arange(48, dtype=np.float32).reshape(6, 8)
    report = compare(prog, "orch", [x, v], host={"bump": _bump})
    report.check()
    assert report.bit_exact


def test_host_errors():
    prog = capture(HOST, "<host>")
    compiled = c.compile(prog)
    logits = np.zeros((3, 16), np.float32)
    with pytest.raises(RuntimeFault) as e:
        compiled.run("orch", logits, None, host={"sample": _sample})
    assert e.value.diagnostic.rule == "MissingHostFunction"

    def boom(logits, hidden):
        raise ValueError("no tokens left")

    with pytest.raises(RuntimeFault) as e:
        compiled.run("orch", logits, None, host={"sample": boom, "fresh": _fresh})
    d = e.value.diagnostic
    assert d.rule == "HostFunctionError" and "no tokens left" in d.message
    assert d.span.line > 0


# ============================================================================ parallel loops

PAR = """
import pldsl as pl

N = pl.dynamic("N")


@pl.program
class Par:
    @pl.function(type=pl.FunctionType.Opaque)
    def disjoint(self, x: pl.Tensor[[N, 64], pl.FP32], out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]):
        n = pl.tensor.dim(x, 0)
        for r in pl.parallel(0, n, 8):
            v = pl.min(8, n - r)
            for c in pl.parallel(0, 64, 16):
                t = pl.slice(x, [8, 16], [r, c], valid_shape=[v, 16])
                y = pl.exp(pl.mul(t, 0.5))
                out = pl.assemble(out, y, [r, c])
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def overlapping(self, x: pl.Tensor[[N, 64], pl.FP32], out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]):
        n = pl.tensor.dim(x, 0)
        for r in pl.parallel(0, n, 4):
            v = pl.min(8, n - r)
            t = pl.slice(x, [8, 64], [r, 0], valid_shape=[v, 64])
            out = pl.assemble(out, pl.add(t, 1.0), [r, 0])
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def carried(self, x: pl.Tensor[[N, 64], pl.FP32], out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]):
        n = pl.tensor.dim(x, 0)
        s = pl.full([8, 64], pl.FP32, 0.0)
        for r in pl.parallel(0, n, 8):
            v = pl.min(8, n - r)
            s = pl.add(s, pl.fillpad(pl.slice(x, [8, 64], [r, 0], valid_shape=[v, 64])))
        out = pl.assemble(out, s, [0, 0])
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def reads_written(self, x: pl.Tensor[[N, 64], pl.FP32], out: pl.Out[pl.Tensor[[N, 64], pl.FP32]]):
        n = pl.tensor.dim(x, 0)
        for r in pl.parallel(0, n, 8):
            v = pl.min(8, n - r)
            prev = pl.slice(out, [8, 64], [0, 0])
            t = pl.slice(x, [8, 64], [r, 0], valid_shape=[v, 64])
            out = pl.assemble(out, pl.add(t, prev), [r, 0])
        return out
"""


def test_parallel_loop_decisions_and_results():
    prog = capture(PAR, "<par>")
    compiled = c.compile(prog)
    loops = compiled.parallel_loops()
    assert [p for _, p, _ in loops["disjoint"]] == [True, True]
    assert [p for _, p, _ in loops["overlapping"]] == [False]
    assert [p for _, p, _ in loops["carried"]] == [False]
    assert [p for _, p, _ in loops["reads_written"]] == [False]
    compiled.par_min_work = 0  # force the OpenMP path even for small trips
    x = np.random.default_rng(1).standard_normal((203, 64)).astype(np.float32)
    for fn in ("disjoint", "overlapping", "carried", "reads_written"):
        report = compare(prog, fn, [x, None], compiled=compiled)
        report.check()
        assert report.bit_exact


# ============================================================================ precision fp32


def test_precision_fp32_variant(control):
    prog, compiled = control
    x = np.random.default_rng(5).standard_normal((13, 8)).astype(np.float32)
    compare(prog, "main", [x, 100, None], compiled=compiled, precision="fp32").check()


# ============================================================================ build


def test_cache_hit_and_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PLDSL_CACHE_DIR", str(tmp_path))
    prog = capture(ARGS, "<args>")
    a = c.compile(prog)
    assert Path(a.library_path).parent == tmp_path
    b = c.compile(prog)
    assert a.library_path == b.library_path
    assert any(p.name.startswith("libpldsl_rt_") for p in tmp_path.iterdir())


def test_no_compiler_is_a_diagnostic(tmp_path, monkeypatch):
    monkeypatch.setenv("PLDSL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    prog = capture(ARGS, "<args>")
    with pytest.raises(c.CCompileError) as e:
        c.compile(prog)
    d = e.value.diagnostic
    assert d.rule == "NoCCompiler" and "interpreter" in (d.help or "")


def test_compile_error_points_at_the_kernel_line(tmp_path, monkeypatch):
    from pldsl.backends.c import lowering as em

    monkeypatch.setenv("PLDSL_CACHE_DIR", str(tmp_path))
    original = em.Emitter.s_assign

    def broken(self, s):
        if s.targets[0].name == "y":
            self.line("this is not C;")
        original(self, s)

    monkeypatch.setattr(em.Emitter, "s_assign", broken)
    prog = capture(FAULTS, "<faults>")
    with pytest.raises(c.CCompileError) as e:
        c.compile(prog)
    d = e.value.diagnostic
    assert d.rule == "CCompileError"
    assert d.span.file == "<faults>" and d.span.line == FAULTS.splitlines().index(
        "            y = pl.add(x, 1.0)") + 1  # fmt: skip
    assert any("this is not C" in n for n in d.notes)


def test_unsupported_construct_is_a_diagnostic():
    src = """
import pldsl as pl


@pl.program
class R0:
    @pl.function(type=pl.FunctionType.Opaque)
    def f(self, x: pl.Tensor[[2, 2, 2, 2, 2, 2, 2, 2, 2], pl.FP32]):
        return pl.add(x, 1.0)
"""
    prog = capture(src, "<r9>")
    with pytest.raises(c.CBackendError) as e:
        c.compile(prog)
    assert e.value.diagnostic.rule == "CBackendUnsupported"
    assert e.value.diagnostic.span.line > 0


# ============================================================================ CLI


def test_cli_emit_writes_c(tmp_path):
    from pldsl.cli_emit import main

    src = tmp_path / "k.py"
    src.write_text(CONTROL)
    out = tmp_path / "k.c"
    assert main([str(src), "-o", str(out)]) == 0
    text = out.read_text()
    assert '#include "pldsl_rt.h"' in text and "pldsl_entry_main" in text
    assert "k.py:" in text  # statements are annotated with their kernel line
    assert main([str(src), "--backend", "c", "--build", "-o", str(tmp_path / "k2.c")]) == 0
    assert main([str(tmp_path / "missing.py")]) == 2


def test_pldsl_emit_subcommand(tmp_path):
    src = tmp_path / "k.py"
    src.write_text(CONTROL)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pldsl.cli", "emit", "--backend", "c", str(src)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pldsl_entry_scale" in proc.stdout
