"""`pldsl` command line: `ir` and `check` (exit codes, text/json/sarif output, -W error,
--disable, kernels built by functions) and bad input that must never end in a traceback.

Most tests call `pldsl.cli.main(argv)` in-process; one runs `python -m pldsl.cli` as a
subprocess (the console script `pldsl = pldsl.cli:main`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from toolchain import have_c_compiler

import pldsl as pl
from pldsl.checks import RULES
from pldsl.cli import main

ROOT = Path(__file__).resolve().parents[2]

CLEAN = """
import pldsl as pl


@pl.program
class Scale:
    @pl.function(type=pl.FunctionType.Opaque)
    def main(
        self,
        x: pl.Tensor[[64, 64], pl.FP32],
        out: pl.Out[pl.Tensor[[64, 64], pl.FP32]],
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            t = pl.slice(x, [64, 64], [0, 0])
            y = pl.add(t, t)
            out = pl.assemble(out, y, [0, 0])
        return out
"""

# `x` is read after being passed to an InOut parameter: PyPTO's InOutUseDiscipline.
INOUT = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def mutate(self, t: pl.InOut[pl.Tensor[[64], pl.FP32]]) -> pl.Tensor[[64], pl.FP32]:
        r = pl.add(t, t)
        return r

    @pl.function(type=pl.FunctionType.Opaque)
    def main(self, x: pl.InOut[pl.Tensor[[64], pl.FP32]]) -> pl.Tensor[[64], pl.FP32]:
        y = self.mutate(x)
        z = pl.add(x, y)
        return z
"""

# Legal, but `unused` is never read: an UnusedValue warning and nothing else.
WARN = """
import pldsl as pl


@pl.program
class W:
    @pl.function(type=pl.FunctionType.Opaque)
    def main(
        self,
        x: pl.Tensor[[64, 64], pl.FP32],
        out: pl.Out[pl.Tensor[[64, 64], pl.FP32]],
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            t = pl.slice(x, [64, 64], [0, 0])
            unused = pl.mul(t, t)
            y = pl.add(t, t)
            out = pl.assemble(out, y, [0, 0])
        return out
"""

SYNTAX = """
import pldsl as pl


@pl.program
class Broken:
    def main(self x):
        pass
"""

# No top-level @pl.program: the kernel is built by a function, exposed by pldsl_programs().
HOOKED = """
import pldsl as pl


def build(n):
    @pl.program
    class Built:
        @pl.function(type=pl.FunctionType.InCore)
        def mutate(self, t: pl.InOut[pl.Tensor[[n], pl.FP32]]) -> pl.Tensor[[n], pl.FP32]:
            r = pl.add(t, t)
            return r

        @pl.function(type=pl.FunctionType.Opaque)
        def main(self, x: pl.InOut[pl.Tensor[[n], pl.FP32]]) -> pl.Tensor[[n], pl.FP32]:
            y = self.mutate(x)
            z = pl.add(x, y)
            return z

    return Built


def pldsl_programs():
    return [build(64), build(128)]
"""

JSON_KEYS = {"rule", "severity", "message", "file", "line", "column", "help"}


def _write(tmp_path: Path, name: str, src: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(src).lstrip("\n"), encoding="utf-8")
    return str(path)


def _line_col(path: str, line_text: str, token: str) -> tuple[int, int]:
    """1-based (line, column) of `token` on the only line containing `line_text`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    hits = [i for i, text in enumerate(lines) if line_text in text]
    assert len(hits) == 1, hits
    return hits[0] + 1, lines[hits[0]].index(token, lines[hits[0]].index(line_text)) + 1


@pytest.fixture
def files(tmp_path):
    return {
        name: _write(tmp_path, f"{name}.py", src)
        for name, src in (
            ("clean", CLEAN),
            ("inout", INOUT),
            ("warn", WARN),
            ("syntax", SYNTAX),
            ("hooked", HOOKED),
        )
    }


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_rules_under_test_exist():
    assert RULES["InOutUseDiscipline"].severity == "error"
    assert RULES["UnusedValue"].severity == "warning"
    assert RULES["InParamWritten"].severity == "warning"


# ------------------------------------------------------------------ ir


def _split_programs(text: str) -> list[str]:
    """`pldsl ir` output -> one chunk per program (each starts with its `# pldsl.program:`)."""
    starts = [m.start() for m in re.finditer(r"^# pldsl\.program: ", text, re.M)]
    return [text[a:b].rstrip("\n") + "\n" for a, b in zip(starts, starts[1:] + [len(text)])]


def test_ir_prints_every_program_and_parses_back(tmp_path, capsys):
    path = _write(tmp_path, "two.py", CLEAN + "\n" + WARN)
    rc, out, err = run_cli(capsys, "ir", path)
    assert (rc, err) == (0, "")
    fresh = pl.capture_source(Path(path).read_text(encoding="utf-8"), path)
    assert [p.name for p in fresh] == ["Scale", "W"]
    chunks = _split_programs(out)
    assert len(chunks) == 2
    for chunk, program in zip(chunks, fresh):
        assert chunk == pl.print_ir(program)
        assert pl.structural_equal(pl.parse_ir(chunk), program)


def test_ir_of_a_module_with_a_pldsl_programs_hook(capsys):
    from pldsl.kernels.examples import softmax

    rc, out, _ = run_cli(capsys, "ir", str(ROOT / "kernels/examples/softmax.py"))
    assert rc == 0
    named = softmax.pldsl_programs()  # {name: program}: the key names the program
    assert list(named) == ["Softmax", "Softmax_rows37"]
    expected = [dataclasses.replace(p, name=name) for name, p in named.items()]
    chunks = _split_programs(out)
    assert len(chunks) == len(expected) == 2
    for chunk, program in zip(chunks, expected):
        assert pl.structural_equal(pl.parse_ir(chunk), program)
    # the two variants differ (dynamic vs static rows): the comparison can tell them apart
    assert not pl.structural_equal(
        pl.parse_ir(chunks[0]), dataclasses.replace(expected[1], name="Softmax")
    )


# ------------------------------------------------------------------ check: exit codes, text


def test_clean_file_exits_0(files, capsys):
    rc, out, err = run_cli(capsys, "check", files["clean"])
    assert rc == 0
    assert out.strip() == "1 program(s) checked: 0 error(s), 0 warning(s)"
    assert err == ""


def test_error_is_rendered_with_location_and_caret(files, capsys):
    rc, out, _ = run_cli(capsys, "check", files["inout"])
    assert rc == 1
    line, col = _line_col(files["inout"], "z = pl.add(x, y)", "x")
    lines = out.splitlines()
    head = lines.index(next(s for s in lines if s.startswith("error[InOutUseDiscipline]: ")))
    assert "variable 'x' was passed as InOut/Out" in lines[head]
    assert lines[head + 1] == f"  --> {files['inout']}:{line}:{col}"
    src_line = next(s for s in lines if s.startswith(f"{line} | "))
    assert src_line == f"{line} | " + Path(files["inout"]).read_text().splitlines()[line - 1]
    caret = lines[lines.index(src_line) + 1]
    gutter = len(f"{line} | ")
    assert caret.index("^") - gutter == col - 1
    assert out.rstrip().endswith("1 program(s) checked: 1 error(s), 0 warning(s)")


def test_warning_only_file_exits_0_and_w_error_makes_it_1(files, capsys):
    rc, out, _ = run_cli(capsys, "check", files["warn"])
    assert rc == 0
    assert "warning[UnusedValue]: the value assigned to 'unused' is never read" in out
    assert out.rstrip().endswith("0 error(s), 1 warning(s)")
    rc, out, _ = run_cli(capsys, "check", "-W", "error", files["warn"])
    assert rc == 1
    assert "error[UnusedValue]" in out and "warning[" not in out
    assert out.rstrip().endswith("1 error(s), 0 warning(s)")


def test_syntax_error_exits_2_with_located_diagnostic(files, capsys):
    rc, _, err = run_cli(capsys, "check", files["syntax"])
    assert rc == 2
    line, col = _line_col(files["syntax"], "def main(self x):", "x")
    assert err.startswith("error[SyntaxError]")
    assert f"  --> {files['syntax']}:{line}:{col}" in err.splitlines()


def test_cannot_run_wins_over_findings(files, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "check", files["inout"], str(tmp_path / "missing.py"))
    assert rc == 2
    assert "error[InOutUseDiscipline]" in out  # the readable file is still checked
    assert err == f"pldsl: error: no such file: {tmp_path / 'missing.py'}\n"


# ------------------------------------------------------------------ check: json, sarif


def test_json_format_one_object_per_line(files, capsys):
    rc, out, _ = run_cli(capsys, "check", "--format", "json", files["inout"], files["warn"])
    assert rc == 1
    found = json_lines(out)
    assert [set(d) for d in found] == [JSON_KEYS, JSON_KEYS]
    by_rule = {d["rule"]: d for d in found}
    err = by_rule["InOutUseDiscipline"]
    line, col = _line_col(files["inout"], "z = pl.add(x, y)", "x")
    assert (err["severity"], err["file"], err["line"], err["column"]) == (
        "error",
        files["inout"],
        line,
        col,
    )
    assert err["help"] and "variable 'x'" in err["message"]
    warn = by_rule["UnusedValue"]
    line, col = _line_col(files["warn"], "unused = pl.mul(t, t)", "unused")
    assert (warn["severity"], warn["file"], warn["line"], warn["column"]) == (
        "warning",
        files["warn"],
        line,
        col,
    )
    assert warn["message"] == "the value assigned to 'unused' is never read"


def test_json_format_with_w_error(files, capsys):
    rc, out, _ = run_cli(capsys, "check", "--format", "json", "-W", "error", files["warn"])
    assert rc == 1
    assert [(d["rule"], d["severity"]) for d in json_lines(out)] == [("UnusedValue", "error")]


def test_sarif_2_1_0_structure(files, capsys):
    rc, out, _ = run_cli(capsys, "check", "--format", "sarif", files["inout"], files["warn"])
    assert rc == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    assert "sarif" in log["$schema"] and "2.1.0" in log["$schema"]
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "pldsl"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert sorted(rule_ids) == ["InOutUseDiscipline", "UnusedValue"]
    for r in driver["rules"]:
        assert r["shortDescription"]["text"] == RULES[r["id"]].doc
    levels = {}
    for res in run["results"]:
        assert res["ruleId"] in rule_ids
        assert res["level"] in ("error", "warning", "note")
        assert res["message"]["text"]
        (loc,) = res["locations"]
        phys = loc["physicalLocation"]
        region = phys["region"]
        assert isinstance(region["startLine"], int) and region["startLine"] >= 1
        assert isinstance(region["startColumn"], int) and region["startColumn"] >= 1
        levels[res["ruleId"]] = (res["level"], phys["artifactLocation"]["uri"], region)
    line, col = _line_col(files["inout"], "z = pl.add(x, y)", "x")
    assert levels["InOutUseDiscipline"] == (
        "error",
        files["inout"],
        {"startLine": line, "startColumn": col},
    )
    line, col = _line_col(files["warn"], "unused = pl.mul(t, t)", "unused")
    assert levels["UnusedValue"] == (
        "warning",
        files["warn"],
        {"startLine": line, "startColumn": col},
    )


def test_sarif_of_a_clean_file_has_no_results(files, capsys):
    rc, out, _ = run_cli(capsys, "check", "--format", "sarif", files["clean"])
    assert rc == 0
    run = json.loads(out)["runs"][0]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []


# ------------------------------------------------------------------ check: --disable


def test_disable_removes_that_rules_findings(files, capsys):
    rc, out, _ = run_cli(
        capsys, "check", "--format", "json", "--disable", "UnusedValue", files["warn"]
    )
    assert (rc, json_lines(out)) == (0, [])
    rc, out, _ = run_cli(
        capsys, "check", "--format", "json", "--disable", "InOutUseDiscipline", files["inout"]
    )
    assert rc == 0
    assert all(d["rule"] != "InOutUseDiscipline" for d in json_lines(out))
    # disabling a different rule leaves the error in place
    rc, out, _ = run_cli(
        capsys, "check", "--format", "json", "--disable", "UnusedValue", files["inout"]
    )
    assert rc == 1
    assert [d["rule"] for d in json_lines(out)] == ["InOutUseDiscipline"]


def test_disable_unknown_rule_exits_2(files, capsys):
    rc, out, err = run_cli(capsys, "check", "--disable", "NoSuchRule", files["inout"])
    assert rc == 2
    assert out == ""
    assert err.startswith("pldsl: error: unknown rule(s) for --disable: NoSuchRule")
    assert "InOutUseDiscipline" in err  # lists the known rules
    assert err.count("\n") == 1


# ------------------------------------------------------------------ check: programs built by code


def test_pldsl_programs_hook_is_checked(files, capsys):
    assert pl.capture_source(Path(files["hooked"]).read_text(), files["hooked"]) == []
    rc, out, _ = run_cli(capsys, "check", "--format", "json", files["hooked"])
    assert rc == 1
    found = json_lines(out)
    line, col = _line_col(files["hooked"], "z = pl.add(x, y)", "x")
    # both built programs find the violation at the same source location, with the same
    # message: docs/checks.md, identical findings are reported once
    assert [(d["rule"], d["file"], d["line"], d["column"]) for d in found] == [
        ("InOutUseDiscipline", files["hooked"], line, col)
    ]
    rc, out, _ = run_cli(capsys, "check", files["hooked"])
    assert rc == 1
    assert out.count("error[InOutUseDiscipline]") == 1
    assert out.strip().splitlines()[-1] == "2 program(s) checked: 1 error(s), 0 warning(s)"


def test_module_level_program_values_are_checked(tmp_path, capsys):
    src = HOOKED.replace(
        "def pldsl_programs():\n    return [build(64), build(128)]", "P64 = build(64)"
    )
    path = _write(tmp_path, "values.py", src)
    rc, out, _ = run_cli(capsys, "check", path)
    assert rc == 1
    assert "1 program(s) checked: 1 error(s), 0 warning(s)" in out


def test_file_without_programs_is_noted(tmp_path, capsys):
    path = _write(tmp_path, "plain.py", "X = 1\n")
    rc, out, err = run_cli(capsys, "check", path)
    assert rc == 0
    assert "0 program(s) checked" in out
    assert f"no @pl.program or pldsl_programs() in {path}" in err


def test_examples_report_no_errors(capsys):
    paths = sorted(str(p) for p in (ROOT / "kernels/examples").glob("*.py"))
    expected = 0
    for p in paths:
        name = Path(p).stem
        module = importlib.import_module(f"pldsl.kernels.examples.{name}")
        if hasattr(module, "build"):  # every kernel module exposes its programs
            assert callable(getattr(module, "pldsl_programs", None)), name
            expected += len(module.pldsl_programs())
    assert expected >= 16
    rc, out, _ = run_cli(capsys, "check", *paths)
    assert rc == 0
    assert (
        out.strip().splitlines()[-1] == f"{expected} program(s) checked: 0 error(s), 0 warning(s)"
    )


def test_qwen3_program_reports_no_errors(capsys):
    from pldsl.kernels.qwen3 import program

    assert callable(getattr(program, "pldsl_programs", None)), (
        "kernels/qwen3/program.py needs a pldsl_programs() hook"
    )
    n = len(program.pldsl_programs())
    assert n >= 1
    rc, out, _ = run_cli(
        capsys, "check", "--format", "json", str(ROOT / "kernels/qwen3/program.py")
    )
    assert rc == 0
    found = json_lines(out)
    # docs/qwen3.md: no findings (PyPTO upgrades the written In caches to InOut); the opt-in
    # InParamWritten points at the three K/V cache writes per program
    assert found == []
    rc, out, _ = run_cli(
        capsys,
        "check",
        "--format",
        "json",
        "--enable",
        "InParamWritten",
        str(ROOT / "kernels/qwen3/program.py"),
    )
    found = json_lines(out)
    assert rc == 0
    # every program built from the file finds them at the same lines: reported once, in line order
    assert [(d["rule"], d["severity"]) for d in found] == [("InParamWritten", "warning")] * 3
    assert {d["file"] for d in found} == {str(ROOT / "kernels/qwen3/program.py")}
    lines = [(d["line"], d["column"]) for d in found]
    assert lines == sorted(lines) and len(set(lines)) == 3
    rc, out, _ = run_cli(capsys, "check", str(ROOT / "kernels/qwen3/program.py"))
    assert out.strip().splitlines()[-1] == f"{n} program(s) checked: 0 error(s), 0 warning(s)"


# ------------------------------------------------------------------ bad input: no tracebacks


@pytest.mark.parametrize("command", ["check", "ir"])
def test_bad_paths_exit_2_with_one_line(tmp_path, capsys, command):
    (tmp_path / "latin1.py").write_bytes(b"# caf\xe9\nX = 1\n")
    (tmp_path / "boom.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "badhook.py").write_text("def pldsl_programs():\n    return [1]\n")
    cases = {
        "missing.py": "no such file",
        "": "is a directory",
        "latin1.py": "is not UTF-8 text",
        "boom.py": "RuntimeError: boom at import",
        "badhook.py": "returned a int, not a pl.Program",
    }
    for name, message in cases.items():
        path = str(tmp_path / name) if name else str(tmp_path)
        rc, _, err = run_cli(capsys, command, path)
        assert rc == 2, name
        assert err.startswith("pldsl: error: ") and message in err, (name, err)
        assert err.count("\n") == 1, err


def test_ir_of_file_without_programs_exits_2(tmp_path, capsys):
    path = _write(tmp_path, "plain.py", "X = 1\n")
    rc, out, err = run_cli(capsys, "ir", path)
    assert (rc, out) == (2, "")
    assert err == f"pldsl: error: no @pl.program or @pl.function found in {path}\n"


def test_ir_of_syntax_error_exits_2(files, capsys):
    rc, out, err = run_cli(capsys, "ir", files["syntax"])
    assert (rc, out) == (2, "")
    assert err.startswith("error[SyntaxError]")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["check"],
        ["bogus"],
        ["check", "--format", "xml", "x.py"],
        ["check", "-W", "all", "x.py"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 2
    assert "usage: pldsl" in err and "Traceback" not in err


# ------------------------------------------------------------------ the console script


def test_console_script_subprocess(files, tmp_path):
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pldsl"] == "pldsl.cli:main"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    missing = str(tmp_path / "missing.py")
    proc = subprocess.run(
        [sys.executable, "-m", "pldsl", "check", "--format", "json", files["inout"], missing],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert [d["rule"] for d in json_lines(proc.stdout)] == ["InOutUseDiscipline"]
    assert proc.stderr == f"pldsl: error: no such file: {missing}\n"


# ------------------------------------------------------------------ program names (issue 13)

TWO_BUILDS = """
import pldsl as pl


def build(n):
    @pl.program
    class Twice:
        @pl.function(type=pl.FunctionType.Opaque)
        def main(self, x: pl.Tensor[[n], pl.FP32], y: pl.Out[pl.Tensor[[n], pl.FP32]]) -> pl.Tensor[[n], pl.FP32]:
            y = pl.add(x, x)
            return y

    return Twice


def pldsl_programs():
    return HOOK
"""


def _two_builds(tmp_path, hook: str) -> str:
    return _write(tmp_path, "twice.py", TWO_BUILDS.replace("HOOK", hook))


def test_programs_of_one_name_get_distinct_stable_names(tmp_path, capsys):
    from pldsl.loader import load_programs

    path = _two_builds(tmp_path, "[build(8), build(16), build(32)]")
    assert [p.name for p in load_programs(path)] == ["Twice", "Twice_2", "Twice_3"]
    # a dict names them itself
    path = _two_builds(tmp_path, "{'Twice8': build(8), 'Twice16': build(16)}")
    programs = load_programs(path)
    assert [p.name for p in programs] == ["Twice8", "Twice16"]
    assert [p.main.params[0].type.shape[0] for p in programs] == [8, 16]
    rc, out, _ = run_cli(capsys, "ir", path)
    assert rc == 0 and [c.splitlines()[0] for c in _split_programs(out)] == [
        "# pldsl.program: Twice8",
        "# pldsl.program: Twice16",
    ]
    path = _two_builds(tmp_path, "{'not a name': build(8)}")
    rc, _, err = run_cli(capsys, "ir", path)
    assert rc == 2 and "named a program 'not a name', not an identifier" in err


def test_emit_program_selects_by_distinct_name(tmp_path, capsys):
    """`pldsl emit --program RMSNorm` used to pick one of two programs called RMSNorm."""
    example = str(ROOT / "kernels/examples/rms_norm.py")
    outputs = {}
    for name in ("RMSNorm", "RMSNorm_rows37"):
        target = tmp_path / f"{name}.c"
        rc, _, err = run_cli(capsys, "emit", example, "--program", name, "-o", str(target))
        assert rc == 0, err
        outputs[name] = target.read_text()
    assert outputs["RMSNorm"] != outputs["RMSNorm_rows37"]
    rc, _, err = run_cli(capsys, "emit", example)
    assert rc == 2 and "holds several programs (RMSNorm, RMSNorm_rows37)" in err
    rc, _, err = run_cli(capsys, "emit", example, "--program", "Nope")
    assert rc == 2 and "no program 'Nope'" in err and "RMSNorm_rows37" in err


def test_check_sorts_findings_by_file_and_line_across_files(files, capsys):
    rc, out, _ = run_cli(
        capsys, "check", "--format", "json", files["warn"], files["inout"], files["warn"]
    )
    found = [(d["file"], d["line"], d["column"]) for d in json_lines(out)]
    assert found == sorted(set(found))  # files given twice or out of order: once, in order
    assert {f for f, _, _ in found} == {files["warn"], files["inout"]}


# ------------------------------------------------------------------ emit files (issue 13)


def test_emit_output_is_checked_before_anything_is_written(files, tmp_path, capsys):
    kernel = files["clean"]
    src = Path(kernel).read_bytes()
    cases = [
        (kernel, "is also an input"),
        (str(tmp_path), "is a directory"),
        (str(tmp_path / "no" / "k.c"), "does not exist"),
    ]
    for target, words in cases:
        rc, out, err = run_cli(capsys, "emit", kernel, "-o", target)
        assert rc == 2 and out == "" and words in err, err
    assert Path(kernel).read_bytes() == src
    target = tmp_path / "kernel"  # no suffix: written exactly there
    rc, out, _ = run_cli(capsys, "emit", kernel, "-o", str(target))
    assert rc == 0 and out == "" and target.read_text().startswith("/*")


# ------------------------------------------------------------------ C build setup errors


@pytest.mark.parametrize(
    "env, words",
    [
        ({"PLDSL_CACHE_DIR": "/proc/no/such/cache"}, "error[CacheDirError]: cannot use the build cache"),
        ({"PLDSL_CFLAGS": "-fno-such-flag-pldsl"}, "error[BadCFlags]: the C compiler rejects $PLDSL_CFLAGS"),
        ({"PLDSL_CFLAGS": "-DX='unbalanced"}, "error[BadCFlags]: $PLDSL_CFLAGS cannot be split"),
    ],
)  # fmt: skip
def test_an_unusable_c_setup_is_a_user_error(files, tmp_path, monkeypatch, capsys, env, words):
    """Exit 2 with what to fix, never 'this is a bug in the C backend' or a traceback."""
    if not have_c_compiler():
        pytest.skip("no C compiler")
    monkeypatch.setenv("PLDSL_CACHE_DIR", str(tmp_path / "cache"))  # a fresh cache: it compiles
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rc, _, err = run_cli(capsys, "emit", files["clean"], "--build", "-o", str(tmp_path / "k.c"))
    assert rc == 2, err
    assert not (tmp_path / "k.c").exists()
    assert words in err and "bug in the C backend" not in err, err
    np_in = tmp_path / "in.npz"
    import numpy as np

    np.savez(np_in, x=np.zeros((64, 64), np.float32))
    rc, _, err = run_cli(
        capsys, "run", files["clean"], "main", "--inputs", str(np_in), "--backend", "c"
    )
    assert rc == 2 and words in err, err


# ------------------------------------------------------------------ import structure (issue 12)


def _imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_cli_is_the_top_floor_without_circles():
    """Nothing imports `pldsl.cli` back (but its `python -m pldsl` entry, pldsl/__main__.py);
    the commands read programs through pldsl.loader; the
    interpreter and the C backend hold no CLI of the other; `pldsl.cli` names its commands in
    one table and imports none of them at module level."""
    modules = [*(ROOT / "pldsl").rglob("*.py"), *(ROOT / "interpreter").rglob("*.py")]
    for path in modules:
        if path.name in ("cli.py", "__main__.py") and path.parent.name == "pldsl":
            continue
        assert "pldsl.cli" not in _imports(path), path
    assert not (ROOT / "interpreter" / "cli.py").exists()
    emit = _imports(ROOT / "pldsl/cli_emit.py")
    assert "pldsl.loader" in emit and not any("interpreter" in m for m in emit)
    assert "pldsl.loader" in _imports(ROOT / "pldsl/cli_run.py")
    top_level = {m for m in _imports(ROOT / "pldsl/cli.py")}
    assert not any(
        m.startswith(("pldsl.interpreter", "pldsl.backends", "pldsl.kernels")) for m in top_level
    )
    code = subprocess.run(
        [sys.executable, "-c", "import sys, pldsl.cli; print(sorted(m for m in sys.modules if m.startswith(('pldsl.interpreter', 'pldsl.backends', 'pldsl.kernels'))))"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert code.returncode == 0 and code.stdout.strip() == "[]", code.stdout + code.stderr


def test_emit_writes_through_links_and_into_fifos_without_replacing_them(files, tmp_path, capsys):
    import threading

    real = tmp_path / "real.c"
    real.write_text("old")
    link = tmp_path / "link.c"
    link.symlink_to(real)
    rc, _, err = run_cli(capsys, "emit", files["clean"], "-o", str(link))
    assert rc == 0, err
    assert link.is_symlink() and real.read_text().startswith("/*")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    rc, _, err = run_cli(capsys, "emit", files["clean"], "-o", str(fifo))
    reader.join(timeout=60)
    assert rc == 0, err
    assert fifo.is_fifo() and got and got[0].startswith(b"/*")
