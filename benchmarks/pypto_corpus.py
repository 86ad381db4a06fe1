"""How much of pypto-lib pldsl captures, checks and runs against each file's own golden.

    python benchmarks/pypto_corpus.py --pypto-lib DIR [--rev REV] [--json] [--run-timeout S]
        [--file-timeout S] [--under PREFIX] [--files PATH ...]

DIR is a checkout or a bare git directory of hw-native-sys/pypto-lib; with --rev (or for a
bare directory) that revision is read from git into a temporary folder, deleted afterwards.
Nothing of pypto-lib is copied into this repository.

Every .py file under examples/ and models/ is examined in its own process:

* no-kernels  the file defines no kernel (a config module, a helper)
* defect      the file fails on pypto-lib's own code, as it would under PyPTO (an attribute
              its config lacks, a module it imports that does not exist): not a pldsl gap
* failed      the file does not import or its kernels do not capture: the first error
* needs-shapes a @pl.jit entry whose bare `pl.Tensor` parameters get shapes only from a call
              the file does not make at import (PyPTO needs the call too), and the file's own
              compile-only harness (`-p a2a3sim`, run as `pldsl pypto FILE --check -p a2a3sim`)
              does not specialise it either; its other kernels are still checked
* captured    every kernel captured; the static checks report an error
* checked     captured and checked clean; its golden run did not pass (or it has none)
* ran         its `__main__` harness ran under `pldsl pypto` and matched its own golden

`error` holds the first problem after the last stage reached, `feature` the PyPTO feature
it belongs to. --json prints one JSON object per file (with `seconds`, the wall time of
examining it, and `cpu`, the CPU seconds its processes used: on a shared machine the second is
the one to compare) and a totals object.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # a source checkout: import this pldsl
    sys.path.insert(0, str(REPO))
KERNEL_RE = re.compile(r"@\s*\w+\.(program|jit|function)\b|\w+\.jit\.\w+")


def helpers_only(text: str) -> bool:
    """Only jit helpers: no @pl.jit entry, no program, no function to capture."""
    entry = re.search(r"@\s*\w+\.(jit\s*(\(|$)|program\b|function\b)", text, re.M)
    return entry is None and re.search(r"@\s*\w+\.jit\.\w+", text) is not None


# First matching pattern names the feature an error belongs to.
FEATURES = [
    (r"distributed|DistributedConfig|DistributedWorker|\bpld\b", "distributed (pld)"),
    (r"spmd|get_block_idx|split_aiv", "pl.spmd / SPMD kernels"),
    (r"\bTile\b|pl\.tile|pl\.load|pl\.store|pl\.move|tile level", "tile level"),
    (r"submit|manual_scope|TaskId|TASK_ID|task ids|deps=|no_dep", "task dependencies"),
    (r"pl\.at\(\) .*'(\w+)'|Unknown keyword argument '(\w+)' in pl\.at", "pl.at options"),
    (r"cross_core_slot", "pl.cross_core_slot"),
    (r"pl\.([\w.]+) is not a supported op", "op pl.{0}"),
    (r"has no attribute '(\w+)'", "pl.{0}"),
    (r"pto_isa_include_dir|jit\.extern", "pl.jit.extern (external C++ kernels)"),
    (r"unknown keyword argument '(\w+)' in pl\.(\w+)\(\)", "pl.{1}({0}=)"),
    (r"needs? 2-D operands|requires second argument to have rank", "ops on tensors of rank > 2"),
    (r"MissingShape", "a jit entry whose shapes come only from the file's own test code"),
    (
        r"'\w+' object has no attribute|ModuleNotFoundError",
        "the file fails on its own (pypto-lib draft)",
    ),
    (r"this one is pl\.(\w+)", "with pl.{0}() scopes"),
    (r"with pl\.(\w+)|only `with pl\.at|`with` takes", "with-scopes other than pl.at"),
    (r"for loops must iterate", "loops over other iterators (pl.spmd, ...)"),
    (r"examining it timed out", "time limit (building the file's specs and kernels)"),
    (r"while", "while loops"),
    (r"Cannot reassign", "rebinding with another type"),
    (r"timed out", "run time (interpreter)"),
    (r"does not match golden|FAIL", "numerics vs golden"),
]


def feature_of(error: str) -> str:
    check = re.match(r"check (\w+):", error)
    if check:
        return f"pldsl check {check.group(1)}"
    if re.search(r"ModuleNotFoundError: No module named '(?!pypto|golden)", error):
        return "imports a module pypto-lib does not have"
    for pattern, name in FEATURES:
        m = re.search(pattern, error)
        if m:
            groups = [g for g in m.groups() if g] if m.groups() else []
            return name.format(*groups) if groups else name
    return "other"


# ------------------------------------------------------------------ one file (child process)


def examine(path: Path, root: Path, run_timeout: float) -> dict:
    rel = path.relative_to(root).as_posix()
    text = path.read_text(encoding="utf-8", errors="replace")
    if not KERNEL_RE.search(text):
        return {"file": rel, "status": "no-kernels", "error": "", "feature": ""}
    sys.path[:0] = [str(path.parent), str(root)]
    missing: list = []
    try:
        programs = _capture(path, missing)
    except Exception as exc:  # noqa: BLE001 - the first error of this file, whatever it is
        if pypto_lib_defect(exc, root):
            return {**_result(rel, "defect", _one_line(exc)), "feature": "pypto-lib defect"}
        return _result(rel, "failed", _one_line(exc))
    if missing:
        return _needs_shapes(rel, path, programs, missing, text)
    if not programs and helpers_only(text):
        note = "only @pl.jit helpers (.inline/.incore/...): specialised through their callers"
        return {"file": rel, "status": "no-kernels", "error": note, "feature": ""}
    if not programs:
        return _result(
            rel, "failed", "no kernel found (no Program, build_*program*() or @pl.jit entry)"
        )
    import pldsl as pl

    for p in programs:
        errors = [d for d in pl.check(p) if d.is_error]
        if errors:
            d = errors[0]
            return _result(rel, "captured", f"check {d.rule}: {d.message} ({d.span})")
    if "__main__" not in text or not re.search(r"\brun(_jit)?\(", text):
        return _result(rel, "checked", "no harness call (run_jit / run) to run")
    return _run(rel, path, run_timeout)


# Top-level modules a kernel file may import that pypto-lib does not ship.
PROVIDED = ("pypto", "golden", "torch", "pldsl", "numpy")


def pypto_lib_defect(exc: BaseException, root: Path) -> bool:
    """The file fails on pypto-lib's own code, as it would under PyPTO: an attribute its own
    objects lack (`Qwen3Config.batch`), a name its own module does not define, a module it
    imports that does not exist. An attribute or name missing from `pl` / `pypto.*` is a
    pldsl gap instead."""
    from pldsl.pypto.files import ImportFailure

    cause = exc.cause if isinstance(exc, ImportFailure) else None
    if cause is None:
        return False
    if isinstance(cause, ModuleNotFoundError):
        return (cause.name or "").split(".")[0] not in PROVIDED
    if isinstance(cause, ImportError):  # cannot import name X from a pypto-lib module
        return bool(cause.path) and _inside(Path(cause.path), root)
    if isinstance(cause, AttributeError):
        owner = getattr(cause, "obj", None)
        ours = getattr(owner, "__name__", "").split(".")[0] in PROVIDED
        return not ours and _inside(Path(exc.where), root)
    return False


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _capture(path: Path, missing: list) -> list:
    """The file's programs (a module shadowing a root package it imports, as
    `qwen3_14b/contract.py` does, is read as pypto-lib's registry loads it: pldsl.pypto.files);
    jit entries without shapes go to `missing`."""
    from pldsl.pypto.files import file_programs

    return file_programs(path, missing=missing)


ENTRY_RE = re.compile(r"jit entry (\w+)\(\)")


def _needs_shapes(rel: str, path: Path, programs: list, missing: list, text: str) -> dict:
    """Entries without shapes in the file: what the file's own compile-only harness
    specialises counts as captured (and checked); the rest need shapes from outside."""
    import pldsl as pl

    names = [m.group(1) for d in missing for m in [ENTRY_RE.search(d.message)] if m]
    through = _harness_compiles(path) if "a2a3sim" in text else {}
    left = [n for n in names if n not in through]
    for p in programs:
        errors = [d for d in pl.check(p) if d.is_error]
        if errors:
            d = errors[0]
            return _result(rel, "captured", f"check {d.rule}: {d.message} ({d.span})")
    failed = [n for n in names if through.get(n) is False]
    if left:
        note = "jit entries with shapes only from a call: " + ", ".join(f"{n}()" for n in left)
        if len(names) < len(missing):
            note = missing[0].message  # a MissingShape that names no entry
        done = [n for n in names if n in through]
        if done:
            note += f" (through its harness: {', '.join(done)})"
        return {"file": rel, "status": "needs-shapes", "error": note[:300],
                "feature": "shapes only from a call outside the file"}  # fmt: skip
    if failed:
        return _result(rel, "captured", f"check (harness --check): {', '.join(failed)}")
    return _result(rel, "checked", f"through its harness (-p a2a3sim): {', '.join(names)}")


def _harness_compiles(path: Path) -> dict[str, bool]:
    """`pldsl pypto FILE --check -p a2a3sim` (pypto-lib's compile-only run): kernel name ->
    whether its specialisation checked clean."""
    cmd = [sys.executable, "-m", "pldsl.cli", "pypto", "--check", str(path), "-p", "a2a3sim"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {}
    rows = re.findall(r"^(\w+)\s+-\s+-\s+-\s+compile only\s+(PASS|FAIL)", done.stdout, re.M)
    return {name: result == "PASS" for name, result in rows}


def _run(rel: str, path: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "pldsl.cli", "pypto", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return _result(rel, "checked", f"run: timed out after {timeout:g} s")
    if done.returncode == 0:
        return {"file": rel, "status": "ran", "error": "", "feature": ""}
    tail = done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["?"]
    lines = [ln for ln in (done.stdout + "\n" + done.stderr).splitlines() if ln.strip()]
    first = next((ln for ln in lines if ln.startswith(("error", "pldsl pypto: error"))), tail[-1])
    if "FAIL" in done.stdout:
        first = "golden: " + next(ln for ln in done.stdout.splitlines() if "FAIL" in ln).strip()
    return _result(rel, "checked", "run: " + first.strip())


def _result(rel: str, status: str, error: str) -> dict:
    return {"file": rel, "status": status, "error": error[:300], "feature": feature_of(error)}


def _one_line(exc: BaseException) -> str:
    from pldsl.diagnostics import PldslError

    if isinstance(exc, PldslError):
        d = exc.diagnostic
        return f"error[{d.rule}]: {d.message} ({d.span})"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


# ------------------------------------------------------------------ the corpus (parent)


def kernel_files(root: Path) -> list[Path]:
    return sorted(p for d in ("examples", "models") for p in (root / d).rglob("*.py"))


def checkout(lib: Path, rev: str | None, tmp: Path) -> Path:
    """A folder holding the revision's files (the directory itself for a plain checkout)."""
    bare = not (lib / "examples").is_dir()
    if rev is None and not bare:
        return lib
    archive = subprocess.run(
        ["git", "-C", str(lib), "archive", rev or "HEAD"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    return tmp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pypto-lib", required=True, type=Path, help="checkout or bare git dir")
    ap.add_argument("--rev", help="a git revision of pypto-lib (default: the checkout / HEAD)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--run-timeout", type=float, default=120.0, help="seconds per golden run")
    ap.add_argument("--file-timeout", type=float, default=300.0, help="seconds per file")
    ap.add_argument("--under", default="", help="only files whose path starts with this")
    ap.add_argument("--files", nargs="+", default=None, metavar="PATH",
                    help="only these files (paths inside pypto-lib, e.g. models/x/y.py)")  # fmt: skip
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # child process
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(examine(args.one, args.root, args.run_timeout)))
        return 0
    with tempfile.TemporaryDirectory(prefix="pypto_lib_") as tmp:
        root = checkout(args.pypto_lib, args.rev, Path(tmp))
        files = [
            f for f in kernel_files(root) if f.relative_to(root).as_posix().startswith(args.under)
        ]
        if args.files is not None:
            wanted = {Path(f).as_posix() for f in args.files}
            files = [f for f in files if f.relative_to(root).as_posix() in wanted]
        results = [_examine_in_child(f, root, args) for f in files]
    _report(results, args)
    return 0


def _examine_in_child(file: Path, root: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--pypto-lib", str(args.pypto_lib), "--one", str(file),
           "--root", str(root), "--run-timeout", str(args.run_timeout)]  # fmt: skip
    rel = file.relative_to(root).as_posix()
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.file_timeout, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        error = f"examining it timed out after {args.file_timeout:g} s"
        return {**_result(rel, "failed", error), "seconds": args.file_timeout}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        err = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return _result(rel, "failed", f"the examining process failed: {err}")
    result = json.loads(lines[-1])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["cpu"] = round(_children_cpu() - cpu0, 1)  # on a shared machine, less than seconds
    if not args.json:
        print(f"{result['status']:10s} {rel}", file=sys.stderr)
    return result


def _children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _report(results: list[dict], args) -> None:
    totals = Counter(r["status"] for r in results)
    kernels = len(results) - totals["no-kernels"]
    captured = totals["captured"] + totals["checked"] + totals["ran"]
    if args.json:
        for r in results:
            keys = ("file", "status", "error", "feature", "seconds", "cpu")
            print(json.dumps({k: r[k] for k in keys if k in r}))
        print(json.dumps({"totals": dict(totals), "kernel_files": kernels, "captured": captured,
                          "rev": args.rev}))  # fmt: skip
        return
    width = max((len(r["file"]) for r in results), default=10)
    for r in results:
        extra = f"  [{r['feature']}] {r['error']}" if r["error"] else ""
        print(f"{r['file']:{width}s}  {r['status']:10s}{extra}")
    print()
    print(f"kernel files: {kernels}   captured: {captured}   checked: "
          f"{totals['checked'] + totals['ran']}   ran against golden: {totals['ran']}   "
          f"failed: {totals['failed']}   needs shapes: {totals['needs-shapes']}   "
          f"pypto-lib defects: {totals['defect']}   "
          f"(no kernels: {totals['no-kernels']})")  # fmt: skip
    blockers = Counter(r["feature"] for r in results if r["status"] == "failed")
    if blockers:
        print("first blockers: " + ", ".join(f"{f} {n}" for f, n in blockers.most_common()))


if __name__ == "__main__":
    sys.exit(main())
