"""The corpus report on a real pypto-lib (optional: set PLDSL_PYPTO_LIB to a checkout or a bare
git directory of hw-native-sys/pypto-lib)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIB = os.environ.get("PLDSL_PYPTO_LIB")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pypto_corpus.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LIB, reason="set PLDSL_PYPTO_LIB to a pypto-lib checkout or git dir"),
]


def corpus(*args, under="examples/"):
    cmd = [sys.executable, str(SCRIPT), "--pypto-lib", LIB, "--under", under, "--json", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r for r in rows if "file" in r]


@pytest.mark.parametrize("rev", ["HEAD", "60fcbc57"])
def test_every_example_runs_against_its_golden(rev):
    rows = corpus("--rev", rev)
    assert rows, "no example files found"
    for r in rows:  # topk.py (sort, gather, spmd) and allreduce.py (2 ranks) among them
        assert {"file", "status", "error", "feature", "seconds", "cpu"} <= set(r)
        assert r["status"] == "ran", r


# Captured model files that once drew false alarms (docs/pypto.md lists each): clean now.
@pytest.mark.parametrize(
    "path",
    [
        "models/deepseek_v4_pro/hc_post.py",  # a @pl.jit.inline helper called as a statement
        "models/deepseek_v4_flash_dspark/decode_metadata.py",  # the same, three Out tensors
        "models/deepseek_v4_pro/lm_head.py",  # a pld.tensor.put of the block's own row
    ],
)
def test_former_false_alarms_check_clean(path):
    rows = corpus("--rev", "HEAD", "--run-timeout", "1", under=path)
    assert [r["file"] for r in rows] == [path]
    assert rows[0]["status"] in ("checked", "ran"), rows[0]


def test_a_lower_rank_tile_past_the_axis_is_still_reported():
    # qwen3_32b/decode_4d.py:348: [8, 128] into [64, 1, 16, 128] at [q_base0, 0, b, 0] fills
    # axes 2 and 3 (PyPTO's trailing placement): rows b..b+7 of a 16-row axis
    path = "models/qwen3_32b/decode_4d.py"
    (row,) = corpus("--rev", "HEAD", "--run-timeout", "1", under=path)
    assert row["status"] == "captured" and "StaticOutOfBounds" in row["error"], row
    assert "decode_4d.py:348" in row["error"]


def _check_json(path: str, tmp_path: Path) -> list[dict]:
    """`pldsl check --format json` on one file of pypto-lib's HEAD, run from its own folder."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from pypto_corpus import checkout
    finally:
        sys.path.pop(0)
    root = checkout(Path(LIB), "HEAD", tmp_path)
    file = root / path
    cmd = [sys.executable, "-m", "pldsl", "check", "--format", "json", file.name]
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=file.parent, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr  # captured, no check error
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    "path, name",
    [
        # `cmp_kv_flat = helper(..., cmp_kv_flat, ...)`: the helper returns the buffer it was given
        ("models/deepseek_v4_flash_mtp/prefill_cp_hca.py", "cmp_kv_flat"),
        # `ffn_out, tid = pl.spmd_submit(self.shared_routed, ..., ffn_out, ...)`
        ("models/deepseek_v4_pro/moe.py", "ffn_out_v1"),
    ],
)
def test_a_call_threading_a_buffer_is_no_unused_value(path, name, tmp_path):
    found = _check_json(path, tmp_path)
    assert not [d for d in found if d["rule"] == "UnusedValue" and f"'{name}'" in d["message"]]
