"""Installing pldsl next to anything (issue 13, item 3): slow, builds real environments.

pldsl installs one top-level import name, `pldsl`; the repository's kernels/ and interpreter/
folders install as `pldsl.kernels` and `pldsl.interpreter` (pyproject's package-dir). These tests
build the wheel from a copy of the checkout, install it into fresh virtual environments and run
the commands from a folder outside the checkout:

* beside transformers (the `oracle` extra, whose `kernels` dependency is Hugging Face's own
  top-level `kernels` package): both work in one process, and `pip uninstall pldsl` leaves
  transformers and its `kernels` importable;
* editable (`pip install -e`), without the extra.

They need the package index (numpy, transformers, ...); `pip install torch==2.13.0` may take a
local file where the machine provides one. Run them with `pytest -m slow tests/test_install.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _sh(*cmd, cwd: Path, timeout: int = 1200, env: dict | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _clean_env() -> dict:
    """No PYTHONPATH (the checkout must not leak in); pip quiet about its own version."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _copy_checkout(dest: Path) -> Path:
    """The tracked source (building in place would leave build/ and *.egg-info behind)."""
    ignore = shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path / "bin" / "python"


def _wheel(tmp_path: Path) -> Path:
    src = _copy_checkout(tmp_path / "src")
    out = tmp_path / "wheelhouse"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, src]
    try:
        import setuptools

        if int(setuptools.__version__.split(".")[0]) >= 68:
            cmd.insert(4, "--no-build-isolation")  # the build backend is here already
    except ImportError:
        pass
    _sh(*cmd, cwd=tmp_path, env=_clean_env())
    (wheel,) = out.glob("pldsl-*.whl")
    return wheel


def _top_level_names(python: Path, cwd: Path) -> list[str]:
    """The top-level import names pldsl's installed files provide (from its RECORD)."""
    code = textwrap.dedent("""
        import importlib.metadata as md
        names = set()
        for f in md.distribution("pldsl").files:
            top = f.parts[0]
            if top.endswith((".dist-info", ".egg-info")) or top == ".." or top.startswith("__"):
                continue
            if top.endswith(".py"):
                top = top[:-3]
            names.add(top)
        print(" ".join(sorted(names)))
    """)
    return _sh(python, "-c", code, cwd=cwd, env=_clean_env()).split()


# Runs inside the test venv, outside the checkout: transformers (and HF's `kernels`, which it
# imports) and pldsl in one process.
BOTH_WORK = textwrap.dedent("""
    import kernels, transformers, torch
    import pldsl as pl
    from pldsl import interpreter
    from pldsl.kernels.qwen3.config import preset
    from pldsl.kernels.examples import rms_norm
    import pathlib, site

    site_dirs = [pathlib.Path(p).resolve() for p in site.getsitepackages()]
    for module in (kernels, pl, interpreter, rms_norm):
        where = pathlib.Path(module.__file__).resolve()
        assert any(d in where.parents for d in site_dirs), (module.__name__, where)
    assert hasattr(kernels, "CUDAProperties"), "not Hugging Face's kernels package"
    assert pathlib.Path(rms_norm.__file__).parent.parent.parent == pathlib.Path(pl.__file__).parent
    import importlib.util
    assert importlib.util.find_spec("interpreter") is None  # pldsl installs no such name

    c = preset("tiny")
    cfg = transformers.Qwen3Config(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=1, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
    )
    model = transformers.Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, c.vocab_size)
    y, golden = rms_norm.run(rows=5, precision="fp32")
    assert abs(y - golden).max() <= 1e-4
    print("both work")
""")

TRANSFORMERS_ALONE = textwrap.dedent("""
    import kernels, transformers
    from transformers.integrations import hub_kernels  # imports names from HF's kernels
    assert hasattr(kernels, "CUDAProperties")
    print("transformers works")
""")


def test_wheel_beside_transformers_and_uninstall_leaves_it_intact(tmp_path):
    wheel = _wheel(tmp_path)
    python = _venv(tmp_path / "venv")
    bin_dir = python.parent
    work = tmp_path / "elsewhere"  # not the checkout: nothing can come from a source folder
    work.mkdir()
    env = _clean_env()
    # transformers first, then pldsl over it (the order that used to overwrite HF's kernels)
    _sh(python, "-m", "pip", "install", "-q", "torch==2.13.0", "transformers", cwd=work, env=env)
    kernels_init = Path(
        _sh(python, "-c", "import kernels; print(kernels.__file__)", cwd=work, env=env).strip()
    )
    hf_bytes = kernels_init.read_bytes()
    _sh(python, "-m", "pip", "install", "-q", f"{wheel}[oracle]", cwd=work, env=env)
    assert kernels_init.read_bytes() == hf_bytes  # pldsl wrote nothing over HF's package
    assert _top_level_names(python, work) == ["pldsl"]
    assert "both work" in _sh(python, "-c", BOTH_WORK, cwd=work, env=env)
    demo = _sh(bin_dir / "pldsl", "demo", "--batch", "2", "--new-tokens", "1", cwd=work, env=env)
    assert demo.rstrip().endswith("result    OK")
    gen = _sh(
        python, "-m", "pldsl.kernels.qwen3", "generate", "--random", "tiny", "--prompt-ids",
        "1,2;3", "--max-new-tokens", "2", "--json", cwd=work, env=env,
    )  # fmt: skip
    assert '"generated"' in gen
    example = Path(_sh(python, "-c", "import pldsl.kernels.examples.softmax as m; print(m.__file__)",
                       cwd=work, env=env).strip())  # fmt: skip
    check = _sh(bin_dir / "pldsl", "check", example, cwd=work, env=env)
    assert "0 error(s)" in check
    _sh(python, "-m", "pip", "uninstall", "-y", "-q", "pldsl", cwd=work, env=env)
    assert kernels_init.read_bytes() == hf_bytes
    assert "transformers works" in _sh(python, "-c", TRANSFORMERS_ALONE, cwd=work, env=env)
    assert not (bin_dir / "pldsl").exists()


def test_editable_install_without_the_extra_works_from_any_folder(tmp_path):
    src = _copy_checkout(tmp_path / "src")
    python = _venv(tmp_path / "venv")
    bin_dir = python.parent
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env()
    _sh(python, "-m", "pip", "install", "-q", "-e", src, cwd=work, env=env)
    where = _sh(
        python, "-c",
        "import pldsl.kernels as k, pldsl.interpreter as i; print(k.__file__); print(i.__file__)",
        cwd=work, env=env,
    ).split()  # fmt: skip
    assert where == [str(src / "kernels" / "__init__.py"), str(src / "interpreter" / "__init__.py")]
    out = _sh(python, "-m", "pldsl.kernels.examples.rms_norm", "--rows", "9", cwd=work, env=env)
    assert out.rstrip().endswith("PASS")
    check = _sh(bin_dir / "pldsl", "check", src / "kernels/examples/rms_norm.py", cwd=work, env=env)
    assert "0 error(s)" in check
    demo = _sh(bin_dir / "pldsl", "demo", "--batch", "1", "--new-tokens", "1", cwd=work, env=env)
    assert demo.rstrip().endswith("result    OK")
    # from the checkout's own root too (its kernels/ folder must not become a top-level name)
    code = "import importlib.util as u, pldsl; print(u.find_spec('kernels'))"
    assert _sh(python, "-c", code, cwd=src, env=env).strip() == "None"
