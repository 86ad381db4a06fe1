"""Shared plumbing of the example kernels: run one on the interpreter, compare, a tiny CLI.

Nothing here is kernel-specific; every example module provides ``build``, ``golden``,
``make_inputs`` and ``run`` and calls :func:`main` from its ``__main__`` block.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def new_output(shape: Sequence[int], dtype: str, precision: str = "bf16") -> np.ndarray:
    """A zeroed output buffer in the interpreter's storage dtype for ``dtype`` (``"FP32"`` or
    ``"BF16"``) under ``precision`` (``"fp32"`` stores BF16 as float32)."""
    if dtype == "BF16" and precision == "bf16":
        import ml_dtypes

        return np.zeros(shape, dtype=ml_dtypes.bfloat16)
    return np.zeros(shape, dtype=np.float32)


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round a float32 array to BF16 storage (RNE; for making BF16 test inputs only)."""
    import ml_dtypes

    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16)


def interpret(
    program: Any,
    entry: str,
    args: Sequence[Any],
    out: np.ndarray,
    *,
    strict: bool = False,
    precision: str = "bf16",
) -> np.ndarray:
    """Run ``entry`` on the interpreter. ``out`` (the kernel's Out parameter, passed last)
    is updated in place; the entry's returned tensor is returned as a NumPy array."""
    from pldsl import interpreter

    result = interpreter.run(program, entry, *args, out, strict=strict, precision=precision)
    if isinstance(result, (tuple, list)):
        result = result[0] if len(result) == 1 else result
    return np.asarray(result if result is not None else out)


def max_errors(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max absolute error, max relative error) of actual against expected (float64)."""
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected).astype(np.float64)
    err = np.abs(a - e)
    rel = err / np.maximum(np.abs(e), np.finfo(np.float64).tiny)
    return float(err.max(initial=0.0)), float(rel.max(initial=0.0))


def main(
    name: str,
    run: Callable[..., tuple[np.ndarray, np.ndarray]],
    rtol: float,
    atol: float,
    default_rows: int,
    argv: Sequence[str] | None = None,
) -> int:
    """``python -m pldsl.kernels.examples.<name> [--rows N] [--seed S] [--strict] [--precision P]``:
    run the kernel on random inputs, compare with its NumPy golden. Exit status: 0 PASS, 1 FAIL
    (or a runtime fault of the kernel, rendered), 2 a refused argument (rows below 1, a
    negative seed, a size the kernel does not take, inputs that do not fit in memory)."""
    parser = argparse.ArgumentParser(prog=f"python -m pldsl.kernels.examples.{name}")
    parser.add_argument("--rows", type=int, default=default_rows, help="rows (dynamic dim)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="poison undefined memory")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.rows < 1 or args.seed < 0:
        print("error: --rows must be at least 1 and --seed non-negative", file=sys.stderr)
        return 2
    from pldsl.diagnostics import PldslError

    try:
        actual, expected = run(
            rows=args.rows, seed=args.seed, strict=args.strict, precision=args.precision
        )
    except MemoryError:
        print(f"error: --rows {args.rows}: the inputs do not fit in memory", file=sys.stderr)
        return 2
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return 1
    except ValueError as exc:  # a size the kernel's builder refuses
        print(f"error: {exc}", file=sys.stderr)
        return 2
    abs_err, rel_err = max_errors(actual, expected)
    ok = np.allclose(
        np.asarray(actual).astype(np.float64), expected, rtol=rtol, atol=atol, equal_nan=False
    )
    print(
        f"{name}: rows={args.rows} shape={tuple(np.shape(actual))} max_abs_err={abs_err:.3e} "
        f"max_rel_err={rel_err:.3e} (rtol={rtol:g}, atol={atol:g}) -> "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1
