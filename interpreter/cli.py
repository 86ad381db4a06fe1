"""`pldsl run FILE.py FUNCTION --inputs data.npz [...]`: run a kernel on the interpreter
(or, with `--backend c`, on the C backend through `CompiledProgram.execute`).

`main(argv)` takes the arguments after `run`. Exit status: 0 success, 1 runtime fault of
the kernel (bounds, undefined read, ...), 2 bad input (file, program, npz, arguments).
Errors print the Diagnostic rendering to stderr, never a traceback.

Inputs bind to parameters by name from the .npz; scalars are 0-d arrays. BF16 inputs may be
stored as float32 holding BF16 values, or as raw 2-byte BF16 (what `np.savez` writes for
`ml_dtypes.bfloat16` arrays). `Out` parameters may be omitted (they are allocated). Outputs
(`--outputs`): the returned values as `return` (or `return_0`, `return_1`, ...) and the final
state of every `Out`/`InOut` parameter and every `In` parameter the kernel wrote; BF16 arrays
are saved as float32 (exact), so any NumPy can read them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

EXIT_OK, EXIT_FAULT, EXIT_BAD_INPUT = 0, 1, 2


class _BadInput(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pldsl run",
        description="Run one function of a pl program on the NumPy interpreter.",
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
        choices=("interpreter", "c"),
        default="interpreter",
        help="run on the NumPy interpreter (default) or the C backend",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    try:
        return _run(args)
    except _BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    from pldsl.interpreter.machine import ArgumentError, execute
    from pldsl.interpreter.trace import Trace

    from pldsl.diagnostics import PldslError

    try:
        programs = _load(args.file)
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    program, fn = _pick(programs, args.function, args.file)
    values = _bind_inputs(fn, args.inputs)
    trace = Trace() if (args.trace or args.profile) else None
    if args.backend == "c" and (args.strict or trace is not None):
        raise _BadInput("--strict, --trace and --profile need the interpreter backend")
    try:
        if args.backend == "c":
            result = _execute_c(program, fn, values, args)
        else:
            result = execute(
                program,
                fn.name,
                values,
                strict=args.strict,
                precision=args.precision,
                trace=trace,
                bounds_check=not args.no_bounds_check,
            )
    except ArgumentError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except PldslError as exc:  # a RuntimeFault of the kernel, or another checked error
        print(exc.diagnostic.render(), file=sys.stderr)
        return EXIT_FAULT
    finally:
        if trace is not None and args.trace:
            try:
                trace.write(args.trace)
            except OSError as exc:
                print(f"error: cannot write the trace: {exc}", file=sys.stderr)
    outputs = _collect_outputs(fn, result)
    for name, arr in outputs.items():
        print(f"{name}: {arr.dtype} {list(arr.shape)}")
    if args.outputs:
        try:
            np.savez(args.outputs, **outputs)
        except OSError as exc:
            print(f"error: cannot write {args.outputs}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.trace:
        print(f"trace written to {args.trace} (open it in https://ui.perfetto.dev)")
    if args.profile:
        print(trace.format_summary())
    return EXIT_OK


def _execute_c(program, fn, values: list, args: argparse.Namespace):
    """`execute` on the C backend: the same argument handling and `RunResult`."""
    from pldsl.backends.c import compile as compile_c

    compiled = compile_c(program, bounds_check=not args.no_bounds_check, precision=args.precision)
    return compiled.execute(fn.name, values)


def _load(path: str):
    from pldsl.cli import LoadError, load_programs

    try:
        return load_programs(path)
    except LoadError as exc:
        raise _BadInput(str(exc)) from None


def _pick(programs, wanted: str, path: str):
    if not programs:
        raise _BadInput(f"{path} defines no @pl.program")
    prog_name, _, fn_name = wanted.rpartition(".")
    hits = [
        (p, p.functions[fn_name])
        for p in programs
        if fn_name in p.functions and (not prog_name or p.name == prog_name)
    ]
    if not hits:
        known = ", ".join(f"{p.name}.{f}" for p in programs for f in p.functions)
        raise _BadInput(f"no function '{wanted}' in {path} (functions: {known})")
    if len(hits) > 1:
        names = ", ".join(f"{p.name}.{fn_name}" for p, _ in hits)
        raise _BadInput(f"'{wanted}' is ambiguous in {path}: {names}; write Program.{fn_name}")
    return hits[0]


def _bind_inputs(fn, path: str) -> list:
    import ml_dtypes

    from pldsl.ir.types import ScalarType

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise _BadInput(f"no such file: {path}") from None
    except Exception as exc:  # noqa: BLE001 - np.load raises many kinds for bad files
        raise _BadInput(f"cannot read {path} as .npz: {exc}") from None
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
    a = np.asarray(v)
    if a.dtype.kind == "V" or a.dtype.name == "bfloat16":
        from pldsl.execution import numerics

        return numerics.cast(a, "FP32")
    return a


if __name__ == "__main__":
    sys.exit(main())
