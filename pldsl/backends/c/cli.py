"""`pldsl emit --backend c FILE.py [-o out.c]`: the C translation unit of a program.

    pldsl emit --backend c kernels/examples/softmax.py -o softmax.c
    pldsl emit --backend c my_kernels.py --program Demo --precision fp32
    pldsl emit --backend c my_kernels.py --build     # also compile (cached); prints the .so path

Exit status: 0 written, 1 the file's kernels do not capture / compile, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pldsl.cli import LoadError, load_programs
from pldsl.diagnostics import PldslError

from . import build as _build
from .lowering import emit_program

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pldsl emit",
        description="Write the C source the C backend generates for a program.",
    )
    p.add_argument("file", help="Python file holding @pl.program kernels")
    p.add_argument("--backend", default="c", choices=("c",), help="code generator (only c)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("--program", help="program to emit when the file holds several")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument(
        "--build", action="store_true", help="also compile it (cached) and print the .so"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        programs = load_programs(args.file)
    except LoadError as exc:
        print(f"pldsl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_ERRORS
    if not programs:
        print(f"pldsl: error: no @pl.program found in {args.file}", file=sys.stderr)
        return EXIT_USAGE
    if args.program:
        chosen = [p for p in programs if p.name == args.program]
        if not chosen:
            names = ", ".join(p.name for p in programs)
            print(f"pldsl: error: no program '{args.program}' in {args.file} (has: {names})",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
    elif len(programs) > 1:
        names = ", ".join(p.name for p in programs)
        print(f"pldsl: error: {args.file} holds several programs ({names}); pick one with "
              "--program", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    else:
        chosen = programs
    program = chosen[0]
    try:
        emitted = emit_program(program, args.precision)
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_ERRORS
    if args.output:
        Path(args.output).write_text(emitted.source)
    else:
        sys.stdout.write(emitted.source)
    if args.build:
        try:
            so = _build.build(emitted.source, emitted.line_spans, program.name)
        except PldslError as exc:
            print(exc.diagnostic.render(), file=sys.stderr)
            return EXIT_ERRORS
        print(f"built {so}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
