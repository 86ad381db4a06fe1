"""`pldsl` command line: check | ir | run | emit | demo.

The top floor: `check` and `ir` live here; every other command is a module named in
`SUBCOMMANDS` with its own `main(argv)`, imported only when that command runs (so the CLI
imports each backend, and the kernels' demo, without any of them importing the CLI back).
Programs are read through one loader, pldsl/loader.py.
"""

from __future__ import annotations

import argparse
import json
import sys

from pldsl.diagnostics import Diagnostic, PldslError
from pldsl.loader import LoadError, load_programs

EXIT_CLEAN, EXIT_ERRORS, EXIT_CANNOT_RUN = 0, 1, 2


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
        reported = len(diagnostics)
        try:
            programs = load_programs(path, args.shape, missing=diagnostics)
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
        if not programs and len(diagnostics) == reported:  # (jit entries without shapes: said)
            print(f"pldsl: note: no @pl.program or pldsl_programs() in {path}", file=sys.stderr)
        checked += len(programs)
        for program in programs:
            diagnostics += run_checks(
                program,
                disable=tuple(args.disable),
                warnings_as_errors=args.warnings_as_errors,
                enable=tuple(args.enable),
            )
    diagnostics = unique_sorted(diagnostics)
    _print_diagnostics(diagnostics, args.format, checked)
    if status == EXIT_CANNOT_RUN:
        return status
    return EXIT_ERRORS if any(d.is_error for d in diagnostics) else EXIT_CLEAN


def unique_sorted(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Identical findings once (several programs built from one source report the same lines),
    sorted by file, line and column, then rule and message, as docs/checks.md says."""
    found: dict[tuple, Diagnostic] = {}
    for d in diagnostics:
        key = (d.span.file, d.span.line, d.span.col, d.rule, d.message, d.severity, d.help, d.notes)
        found.setdefault(key, d)
    return sorted(
        found.values(), key=lambda d: (d.span.file, d.span.line, d.span.col, d.rule, d.message)
    )


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


# ------------------------------------------------------------------ other commands

# name -> (module with `main(argv) -> int`, one-line help). A new command is one line here.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("pldsl.cli_run", "run a kernel function on the NumPy interpreter or the C backend"),
    "emit": ("pldsl.cli_emit", "write the C source of a program (--backend c)"),
    "demo": (
        "pldsl.kernels.qwen3.demo",
        "Qwen3 fused decode on a small random model, checked and interpreted",
    ),
    "pypto": ("pldsl.pypto.cli", "run a PyPTO / pypto-lib file unchanged against its own golden"),
}


def run_subcommand(name: str, argv: list[str]) -> int:
    import importlib

    module_name = SUBCOMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return _fail(f"'pldsl {name}' is not available in this installation ({exc})")
    return module.main(argv)


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
    for name, (_, text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:])
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
