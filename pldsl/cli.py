"""`pldsl` command line: check | ir | run | emit | demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pldsl.diagnostics import Diagnostic, PldslError

EXIT_CLEAN, EXIT_ERRORS, EXIT_CANNOT_RUN = 0, 1, 2


class LoadError(Exception):
    """A kernel file that cannot be read or imported (reported in one line, exit 2)."""


def load_programs(path: str, shapes: list[str] | None = None):
    """Capture every program in a Python file.

    Top-level `@pl.program` classes are captured from the source without running it.
    A file with none (kernels built by a function of a config) is imported as a module
    and provides its programs through `pldsl_programs() -> list[Program]`, or as
    module-level Program values.

    Raises `LoadError` for a path that is not a readable UTF-8 file or a module that fails
    to import, and `PldslError` for a kernel that does not capture (SyntaxError included).
    """
    from pldsl.surface import capture_source

    file = Path(path)
    if file.is_dir():
        raise LoadError(f"{path} is a directory, not a Python file")
    if not file.is_file():
        raise LoadError(f"no such file: {path}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    programs = capture_source(text, str(file))
    from pldsl.jit import loader  # @pl.jit files and files importing pypto

    if not programs and loader.needs_loader(text):
        try:
            return loader.file_programs(file, shapes)
        except (loader.ImportFailure, loader.ShapeOptionError) as exc:
            raise LoadError(str(exc)) from None
    return programs or _programs_from_module(file)


def _programs_from_module(file: Path):
    import importlib.util

    from pldsl.ir.nodes import Program

    try:
        module_name = _module_name(file)
        if module_name is not None:
            module = importlib.import_module(module_name)
        else:
            name = f"_pldsl_user_{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            module = importlib.util.module_from_spec(spec)
            # registered first: capturing a class defined in it reads its source through
            # sys.modules[cls.__module__] (inspect.getsource)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        factory = getattr(module, "pldsl_programs", None)
        programs = (
            list(factory())
            if callable(factory)
            else [v for v in vars(module).values() if isinstance(v, Program)]
        )
    except PldslError:
        raise
    except Exception as exc:  # the user's module code: report it, never a traceback
        raise LoadError(
            f"{file}: importing it to find its programs failed: {type(exc).__name__}: {exc}"
        ) from None
    bad = [p for p in programs if not isinstance(p, Program)]
    if bad:
        raise LoadError(
            f"{file}: pldsl_programs() returned a {type(bad[0]).__name__}, not a pl.Program"
        )
    return programs


def _module_name(file: Path) -> str | None:
    """`pkg/sub/mod.py` -> `pkg.sub.mod` when it is inside a package (the checkout's kernels/ -> `pldsl.kernels`)."""
    parts = [file.stem]
    folder = file.resolve().parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return None
    package_of_pldsl = _checkout_package(folder / parts[0])
    if package_of_pldsl is not None:  # kernels/ or interpreter/ of this pldsl's own checkout
        return ".".join([package_of_pldsl, *parts[1:]])
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ".".join(parts)


def _checkout_package(folder: Path) -> str | None:
    """`pldsl.kernels` for this pldsl checkout's top-level kernels/ folder (same for interpreter/)."""
    import pldsl

    checkout = Path(pldsl.__file__).resolve().parent.parent
    if folder.parent == checkout and folder.name in ("kernels", "interpreter"):
        return f"pldsl.{folder.name}"
    return None


def _fail(message: str) -> int:
    print(f"pldsl: error: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


# ------------------------------------------------------------------ check


def cmd_check(args: argparse.Namespace) -> int:
    from pldsl.checks import RULES, run_checks

    for flag, names in (("--disable", args.disable), ("--enable", args.enable)):
        unknown = [r for r in names if r not in RULES]
        if unknown:
            return _fail(
                f"unknown rule(s) for {flag}: {', '.join(unknown)} (known: {', '.join(sorted(RULES))})"
            )
    diagnostics: list[Diagnostic] = []
    status = EXIT_CLEAN
    checked = 0
    for path in args.files:
        try:
            programs = load_programs(path, args.shape)
        except LoadError as exc:
            print(f"pldsl: error: {exc}", file=sys.stderr)
            status = EXIT_CANNOT_RUN
            continue
        except PldslError as exc:
            if exc.diagnostic.rule == "SyntaxError":
                print(exc.diagnostic.render(), file=sys.stderr)
                status = EXIT_CANNOT_RUN
                continue
            diagnostics.append(exc.diagnostic)  # a kernel that does not capture is an error
            continue
        if not programs:
            print(f"pldsl: note: no @pl.program or pldsl_programs() in {path}", file=sys.stderr)
        checked += len(programs)
        for program in programs:
            diagnostics += run_checks(
                program,
                disable=tuple(args.disable),
                warnings_as_errors=args.warnings_as_errors,
                enable=tuple(args.enable),
            )
    _print_diagnostics(diagnostics, args.format, checked)
    if status == EXIT_CANNOT_RUN:
        return status
    return EXIT_ERRORS if any(d.is_error for d in diagnostics) else EXIT_CLEAN


def _print_diagnostics(diagnostics: list[Diagnostic], fmt: str, checked: int) -> None:
    if fmt == "json":
        for d in diagnostics:
            print(d.to_json())
    elif fmt == "sarif":
        print(json.dumps(to_sarif(diagnostics), indent=2))
    else:
        for d in diagnostics:
            print(d.render())
            print()
        errors = sum(d.is_error for d in diagnostics)
        warnings = sum(d.severity == "warning" for d in diagnostics)
        print(f"{checked} program(s) checked: {errors} error(s), {warnings} warning(s)")


def to_sarif(diagnostics: list[Diagnostic]) -> dict:
    """SARIF 2.1.0, the format code-scanning UIs read."""
    from pldsl.checks import RULES

    rules = sorted({d.rule for d in diagnostics})
    results = []
    for d in diagnostics:
        results.append(
            {
                "ruleId": d.rule,
                "level": d.severity,  # error | warning | note, as SARIF spells them
                "message": {"text": d.message + (f" (help: {d.help})" if d.help else "")},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": d.span.file},
                            "region": {
                                "startLine": max(d.span.line, 1),
                                "startColumn": max(d.span.col, 1),
                            },
                        }
                    }
                ],
            }
        )
    driver_rules = [
        {"id": r, "shortDescription": {"text": RULES[r].doc if r in RULES else r}} for r in rules
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "pldsl", "rules": driver_rules}}, "results": results}
        ],
    }


# ------------------------------------------------------------------ ir


def cmd_ir(args: argparse.Namespace) -> int:
    from pldsl.ir.printer import print_ir

    try:
        programs = load_programs(args.file, args.shape)
    except LoadError as exc:
        return _fail(str(exc))
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_CANNOT_RUN if exc.diagnostic.rule == "SyntaxError" else EXIT_ERRORS
    if not programs:
        return _fail(f"no @pl.program or @pl.function found in {args.file}")
    if args.upgraded:
        from pldsl.checks import upgrade_param_directions

        programs = [upgrade_param_directions(p) for p in programs]
    print("\n\n".join(print_ir(p) for p in programs), end="")
    return EXIT_CLEAN


# ------------------------------------------------------------------ run / emit / demo


def cmd_run(argv: list[str]) -> int:
    from pldsl.interpreter.cli import main as run_main

    return run_main(argv)


def cmd_emit(argv: list[str]) -> int:
    try:
        from pldsl.backends.c.cli import main as emit_main
    except ImportError:
        return _fail("the C backend is not available in this build")
    return emit_main(argv)


def cmd_demo(argv: list[str]) -> int:
    from pldsl.kernels.qwen3.demo import main as demo_main

    return demo_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pldsl",
        description="Capture, check, interpret and compile PyPTO-style tile kernels.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="static checks, reported like a compiler")
    check.add_argument("files", nargs="+", help="Python files holding @pl.program kernels")
    check.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    check.add_argument(
        "-W", dest="werror", choices=("error",), help="-W error: warnings become errors"
    )
    check.add_argument(
        "--disable", action="append", default=[], metavar="RULE", help="turn one rule off"
    )
    check.add_argument(
        "--enable", action="append", default=[], metavar="RULE", help="turn an opt-in rule on"
    )
    ir = sub.add_parser("ir", help="print the textual IR of every program in a file")
    ir.add_argument("file")
    ir.add_argument(
        "--upgraded",
        action="store_true",
        help="written In tensor parameters shown as Out/InOut, as PyPTO's compiler makes them",
    )
    for p in (check, ir):  # @pl.jit entries: parameter shapes when build_specs() has none
        p.add_argument("--shape", action="append", default=[], metavar="NAME=16x128:bf16")
    for name, text in (
        ("run", "run a kernel function on the NumPy interpreter"),
        ("emit", "write the C source of a program (--backend c)"),
        ("demo", "Qwen3 fused decode on a small random model, checked and interpreted"),
        ("pypto", "run a PyPTO / pypto-lib file unchanged against its own golden"),
    ):
        sub.add_parser(name, help=text, add_help=False)
    return parser


def cmd_pypto(argv: list[str]) -> int:
    from pldsl.pypto.cli import main as pypto_main

    return pypto_main(argv)


PASSTHROUGH = {"run": cmd_run, "emit": cmd_emit, "demo": cmd_demo, "pypto": cmd_pypto}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_CANNOT_RUN if exc.code else EXIT_CLEAN
    if args.command == "check":
        args.warnings_as_errors = args.werror == "error"
        return cmd_check(args)
    return cmd_ir(args)


if __name__ == "__main__":
    sys.exit(main())
