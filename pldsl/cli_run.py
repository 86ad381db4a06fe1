"""`pldsl run FILE.py FUNCTION --inputs data.npz [...]`: run a kernel on the NumPy interpreter
(default) or, with `--backend c`, on the C backend through `CompiledProgram.execute`.

`main(argv)` takes the arguments after `run`. Exit status: 0 success, 1 runtime fault of
the kernel (bounds, undefined read, ...) or generated C that does not compile, 2 bad input
(file, program, npz, arguments, a file that cannot be written, a C toolchain or build cache
that cannot be used). Errors print one line or a Diagnostic to stderr, never a traceback.

Inputs bind to parameters by name from the .npz; scalars are 0-d arrays. BF16 inputs may be
stored as float32 holding BF16 values, or as raw 2-byte BF16 (what `np.savez` writes for
`ml_dtypes.bfloat16` arrays). `Out` parameters may be omitted (they are allocated). Outputs
(`--outputs`): the returned values as `return` (or `return_0`, `return_1`, ...) and the final
state of every `Out`/`InOut` parameter and every `In` parameter the kernel wrote; BF16 arrays
are saved as float32 (exact), so any NumPy can read them. `--outputs` and `--trace` are checked
before the kernel runs (pldsl/cli_files.py): never an input, never a directory, written to
exactly the path given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from pldsl.cli_files import FileArgError, check_output, write_atomic
from pldsl.diagnostics import PldslError
from pldsl.loader import LoadError, load_programs, select_function

EXIT_OK, EXIT_FAULT, EXIT_BAD_INPUT = 0, 1, 2
BACKENDS = ("interpreter", "c")


class _BadInput(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pldsl run",
        description="Run one function of a pl program on the NumPy interpreter or the C backend.",
    )
    p.add_argument("file", help="Python file holding the @pl.program")
    p.add_argument("function", help="function to run (NAME or Program.NAME)")
    p.add_argument("--inputs", required=True, help=".npz with one array per parameter name")
    p.add_argument("--outputs", help="write returned values and Out/InOut params to this .npz")
    p.add_argument("--strict", action="store_true", help="poison undefined memory; fault on use")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--trace", help="write a Chrome/Perfetto trace JSON here")
    p.add_argument("--profile", action="store_true", help="print the top source lines")
    p.add_argument("--no-bounds-check", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="interpreter",
        help="run on the NumPy interpreter (default) or the C backend",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    try:
        return _run(args)
    except (_BadInput, LoadError, FileArgError) as exc:
        print(f"pldsl: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    if args.backend == "c" and (args.strict or args.trace or args.profile):
        raise _BadInput("--strict, --trace and --profile need the interpreter backend")
    sources = [args.inputs, args.file]
    outputs_path = check_output(args.outputs, "--outputs", sources) if args.outputs else None
    trace_path = check_output(args.trace, "--trace", sources) if args.trace else None
    if (
        outputs_path is not None
        and trace_path is not None
        and _same_target(outputs_path, trace_path)
    ):
        raise _BadInput("--outputs and --trace name the same file")
    try:
        programs = load_programs(args.file)
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    program, fn = select_function(programs, args.function, args.file)
    values = _bind_inputs(fn, args.inputs)
    trace = None
    if args.trace or args.profile:
        from pldsl.interpreter.trace import Trace

        trace = Trace()
    try:
        result = _execute(program, fn, values, args, trace)
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        status = _status_of(exc, args.backend)
        # The trace of a faulting run shows where it stopped; a refused call (exit 2: bad
        # arguments, unusable toolchain) writes nothing.
        if trace_path is not None and status == EXIT_FAULT:
            _write_trace(trace, trace_path)
        return status
    outputs = _collect_outputs(fn, result)
    for name, arr in outputs.items():
        print(f"{name}: {arr.dtype} {list(arr.shape)}")
    if outputs_path is not None:
        write_atomic(outputs_path, "--outputs", lambda fh: np.savez(fh, **outputs))
        print(f"outputs written to {outputs_path}")
    if trace_path is not None:
        _write_trace(trace, trace_path)
    if args.profile:
        print(trace.format_summary())
    return EXIT_OK


def _execute(program, fn, values: list, args: argparse.Namespace, trace):
    """The run on the chosen backend: the same argument handling and `RunResult`."""
    if args.backend == "c":
        from pldsl.backends.c import compile as compile_c

        compiled = compile_c(
            program, bounds_check=not args.no_bounds_check, precision=args.precision
        )
        return compiled.execute(fn.name, values)
    from pldsl.interpreter import execute

    return execute(
        program,
        fn.name,
        values,
        strict=args.strict,
        precision=args.precision,
        trace=trace,
        bounds_check=not args.no_bounds_check,
    )


def _status_of(exc: PldslError, args_backend: str) -> int:
    """2 for a refused call (arguments) or an unusable C toolchain/cache, 1 for a kernel fault
    or generated C that does not compile."""
    from pldsl.interpreter import ArgumentError

    if isinstance(exc, ArgumentError):
        return EXIT_BAD_INPUT
    if args_backend == "c":
        from pldsl.backends.c.build import SETUP_RULES

        if exc.diagnostic.rule in SETUP_RULES:
            return EXIT_BAD_INPUT
    return EXIT_FAULT


def _same_target(a: Path, b: Path) -> bool:
    """Whether two output paths name one file (through `..`, `./` or a link)."""
    return os.path.realpath(a) == os.path.realpath(b)


def _write_trace(trace, path) -> None:
    import json

    write_atomic(path, "--trace", lambda fh: fh.write(json.dumps(trace.to_chrome()).encode()))
    print(f"trace written to {path} (open it in https://ui.perfetto.dev)")


def _bind_inputs(fn, path: str) -> list:
    import ml_dtypes

    from pldsl.ir.types import ScalarType

    arrays = read_npz(path)
    names = [p.name for p in fn.params]
    extra = sorted(set(arrays) - set(names))
    missing = [p.name for p in fn.params if p.name not in arrays and p.direction != "Out"]
    if extra or missing:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown name(s) {', '.join(extra)}")
        raise _BadInput(
            f"{path}: {'; '.join(parts)} for '{fn.name}' (parameters: {', '.join(names)})"
        )
    values = []
    for p in fn.params:
        a = arrays.get(p.name)
        if a is None:
            values.append(None)
            continue
        if a.dtype.kind == "V" and a.dtype.itemsize == 2 and getattr(p.type, "dtype", None):
            if p.type.dtype.name == "BF16":
                a = a.view(ml_dtypes.bfloat16)
        if isinstance(p.type, ScalarType):
            if a.ndim != 0:
                raise _BadInput(
                    f"{path}: '{p.name}' is a scalar parameter; store it as a 0-d array, "
                    f"got shape {list(a.shape)}"
                )
            a = a[()]
        values.append(a)
    return values


_ZIP_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


def read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of a .npz file; `_BadInput` saying what the file is when it is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except FileNotFoundError:
        raise _BadInput(f"no such file: {path}") from None
    except IsADirectoryError:
        raise _BadInput(f"--inputs {path} is a directory; name a .npz file") from None
    except OSError as exc:
        raise _BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(_NPY_MAGIC):
        raise _BadInput(
            f"{path} is a single .npy array; --inputs takes a .npz with one array per "
            "parameter name (np.savez(path, x=x, ...))"
        )
    if not head.startswith(_ZIP_MAGIC):
        raise _BadInput(
            f"{path} is not a .npz file (NumPy's np.savez format: a zip of .npy arrays, one "
            "per parameter name)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickled" in str(exc):
            raise _BadInput(
                f"{path} holds object (pickled) arrays; store numeric arrays only"
            ) from None
        raise _BadInput(f"cannot read {path} as .npz: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises many kinds
        raise _BadInput(f"cannot read {path} as .npz: {exc}") from None


def _collect_outputs(fn, result) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    value = result.value
    if isinstance(value, tuple):
        for i, v in enumerate(value):
            out[f"return_{i}"] = _portable(v)
    elif value is not None:
        out["return"] = _portable(value)
    for p in fn.params:
        if p.name in result.written and p.name in result.arrays:
            out[p.name] = _portable(result.arrays[p.name])
    return out


def _portable(v) -> np.ndarray:
    """BF16 (and any non-NumPy float) as float32, exactly; everything else unchanged."""
    import ml_dtypes

    a = np.asarray(v)
    if a.dtype.kind == "V" and a.dtype.itemsize == 2:
        a = a.view(ml_dtypes.bfloat16)
    return a.astype(np.float32) if a.dtype == ml_dtypes.bfloat16 else a


if __name__ == "__main__":
    sys.exit(main())
