"""`pldsl pypto FILE [ARGS...]`: run a pypto-lib-style file unchanged on pldsl.

The file runs as `__main__` with ARGS as its own command line, `pypto.*` and `golden`
resolving to pldsl (pldsl.pypto.hook). Its harness calls run the kernel on the interpreter
(or the C backend) and compare with the file's own golden at its own tolerances; a pass/fail
table follows. Device flags the file accepts (`-p a2a3`, `-d 0`, ...) are passed to it and
have no effect here.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import traceback
from pathlib import Path

from pldsl.pypto import harness
from pldsl.pypto.files import search_paths

EXIT_PASS, EXIT_FAIL, EXIT_CANNOT_RUN = 0, 1, 2
DEVICE_FLAGS = ("-p", "--platform", "-d", "--device")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pldsl pypto",
        description="Run a PyPTO / pypto-lib file unchanged: its kernels on pldsl's interpreter, "
        "checked against the file's own golden.",
    )
    p.add_argument("--backend", choices=("interpreter", "c"), default="interpreter")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--strict", action="store_true", help="poison undefined memory, fault on reads")
    p.add_argument("--check", action="store_true", help="run the static checks before each run")
    p.add_argument("--ranks", type=int, default=None, metavar="N",
                   help="distributed kernels: simulate N ranks (default: the file's "
                   "DistributedConfig device ids)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="distributed kernels: interleave the ranks at random with seed S "
                   "(default: a fixed round-robin order)")  # fmt: skip
    p.add_argument("file", help="the Python file (pypto-lib style: run_jit/run with a golden)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the file's own arguments")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        opts = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_CANNOT_RUN if exc.code else EXIT_PASS
    file = Path(opts.file)
    if not file.is_file():
        print(f"pldsl pypto: error: no such file: {opts.file}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    _note_device_flags(opts.args)
    harness.OPTIONS = harness.Options(opts.backend, opts.strict, opts.precision, opts.check)
    harness.RESULTS.clear()
    if opts.ranks is not None and opts.ranks < 1:
        print("pldsl pypto: error: --ranks needs at least 1 rank", file=sys.stderr)
        return EXIT_CANNOT_RUN
    from pldsl.interpreter.ranks import world
    from pldsl.jit import function as jit_function

    jit_function.ON_COMPILE = harness.record_compile
    try:
        with world(opts.ranks, opts.seed, forced=opts.ranks is not None):
            status = run_file(file, opts.args)
    finally:
        jit_function.ON_COMPILE = None
    print_table(harness.RESULTS)
    if status is not None:
        return status
    if not harness.RESULTS:  # a file that tests itself (its own asserts) and finished
        print("pldsl pypto: note: the file made no run_jit/run call; it ran to completion")
        return EXIT_PASS
    return EXIT_PASS if all(r.passed for r in harness.RESULTS) else EXIT_FAIL


def _note_device_flags(args: list[str]) -> None:
    given = []
    for i, a in enumerate(args):
        if a.split("=")[0] in DEVICE_FLAGS:
            with_value = "=" not in a and i + 1 < len(args)
            given.append(f"{a} {args[i + 1]}" if with_value else a)
        elif a.startswith("--enable-"):
            given.append(a)
    if given:
        print(
            f"pldsl pypto: note: {' '.join(given)} accepted and ignored: "
            "the kernel runs on pldsl's "
            f"{harness.OPTIONS.backend if harness.OPTIONS.backend == 'c' else 'interpreter'}, "
            "no device"
            + (
                " (device ids a file gives DistributedConfig name simulated ranks)"
                if any(g.split("=")[0].split()[0] in ("-d", "--device") for g in given)
                else ""
            ),
            file=sys.stderr,
        )


def run_file(file: Path, args: list[str]) -> int | None:
    """Run the file as __main__ under the hook; an exit status when it did not finish cleanly."""
    from pldsl.diagnostics import PldslError
    from pldsl.pypto.hook import pypto_modules

    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(file), *args]
    sys.path[:0] = [p for p in search_paths(file) if p not in sys.path]
    try:
        with pypto_modules():
            runpy.run_path(str(file), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code not in (None, 0):
            return EXIT_FAIL if harness.RESULTS else EXIT_CANNOT_RUN
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # noqa: BLE001 - the user's file: report where it failed
        print(f"pldsl pypto: error: {file} raised {type(exc).__name__}: {exc}", file=sys.stderr)
        print(_user_frames(exc, file), file=sys.stderr)
        if isinstance(exc, ModuleNotFoundError) and exc.name == "torch":
            print("  = help: this file's specs or golden use torch: pip install 'pldsl[pypto]'",
                  file=sys.stderr)  # fmt: skip
        return EXIT_CANNOT_RUN
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return None


def _user_frames(exc: BaseException, file: Path) -> str:
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "pldsl" not in Path(f.filename).parts
    ]
    return "".join(traceback.format_list(frames[-3:])).rstrip()


def print_table(records: list[harness.Record]) -> None:
    if not records:
        return
    rows = [("kernel", "output", "max abs err", "max rel err", "rule", "result")]
    for r in records:
        if r.compile_only:
            rows.append((r.name, "-", "-", "-", "compile only", "PASS" if r.passed else "FAIL"))
        for o in r.outputs:
            rows.append((r.name, o.name, f"{o.max_abs:.3g}", f"{o.max_rel:.3g}", o.rule,
                         "PASS" if o.passed else f"FAIL ({o.mismatched}/{o.total})"))  # fmt: skip
        if r.error and not r.outputs and not r.compile_only:
            rows.append((r.name, "-", "-", "-", "-", "PASS (no golden)" if r.passed else "ERROR"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for r in records:
        if r.error and not r.passed:
            print(f"\n{r.name}: {r.error}")
    passed = sum(r.passed for r in records)
    print(f"\n{passed}/{len(records)} run(s) passed")


if __name__ == "__main__":
    sys.exit(main())
