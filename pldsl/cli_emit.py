"""`pldsl emit --backend c FILE.py [-o out.c]`: the C translation unit of a program.

    pldsl emit --backend c kernels/examples/softmax.py --program Softmax -o softmax.c
    pldsl emit --backend c my_kernels.py --program Demo --precision fp32
    pldsl emit --backend c my_kernels.py --build     # also compile (cached); prints the .so path

Exit status: 0 written, 1 the file's kernels do not capture / compile, 2 bad usage (a file
that cannot be read or written, a program name that selects nothing or is needed, a C
toolchain or build cache that cannot be used). `-o` is checked before anything runs: never the
kernel file itself, never a directory, written whole to exactly that path.
"""

from __future__ import annotations

import argparse
import sys

from pldsl.backends.c import build as _build
from pldsl.backends.c.lowering import emit_program
from pldsl.cli_files import FileArgError, check_output, write_atomic
from pldsl.diagnostics import PldslError
from pldsl.loader import LoadError, load_programs, select_program

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
        return _emit(args)
    except (LoadError, FileArgError) as exc:
        print(f"pldsl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_USAGE if exc.diagnostic.rule in _build.SETUP_RULES else EXIT_ERRORS


def _emit(args: argparse.Namespace) -> int:
    target = check_output(args.output, "-o", [args.file]) if args.output else None
    program = select_program(load_programs(args.file), args.program, args.file)
    emitted = emit_program(program, args.precision)
    so = _build.build(emitted.source, emitted.line_spans, program.name) if args.build else None
    if target is not None:  # written only once everything asked for has worked
        write_atomic(target, "-o", lambda fh: fh.write(emitted.source.encode()))
    else:
        sys.stdout.write(emitted.source)
    if so is not None:
        print(f"built {so}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
