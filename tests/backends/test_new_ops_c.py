"""The ops of issue 10 on the C backend against the same NumPy oracles as the interpreter
(tests/new_ops_checks.py). Each distinct kernel compiles once."""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from new_ops_checks import T, make_tests, program, same_bits, source

from pldsl import interpreter
from pldsl.backends import c


@functools.cache
def _compiled(program):
    return c.compile(program)


def _run(program, *args):
    return _compiled(program).run("k", *args)


globals().update(make_tests(_run))


@settings(max_examples=25, deadline=None)
@given(
    vm=st.integers(0, 5), vn=st.integers(0, 7), acc=st.booleans(), seed=st.integers(0, 2**32 - 1)
)
def test_batched_matmul_of_partial_views(vm, vn, acc, seed):
    """[1, M, K] and [1, K, N] operands with partial valid regions multiply as their 2-D
    windows do, the part past the valid region read as the pad (zero), on both engines (the
    C backend once refused these with a PartialReshape fault; the strict interpreter faults
    on the undefined read, so this is not among the shared checks)."""
    m, k, n = 5, 6, 7
    rng = np.random.default_rng(seed)
    a = rng.integers(-4, 5, (1, m, k)).astype(np.float32)
    b = rng.integers(-4, 5, (1, k, n)).astype(np.float32)
    body = [f"x = pl.slice(a, [1, {m}, {k}], [0, 0, 0], valid_shape=[1, {vm}, {k}])",
            f"y = pl.slice(b, [1, {k}, {n}], [0, 0, 0], valid_shape=[1, {k}, {vn}])",
            "p = pl.matmul(x, y, out_dtype=pl.FP32)"]  # fmt: skip
    if acc:
        body.append("p = pl.matmul_acc(p, x, y)")
    text = source([f"a: {T((1, m, k), 'FP32')}", f"b: {T((1, k, n), 'FP32')}"],
                  body + ["return p"])  # fmt: skip
    a0, b0 = a[0].copy(), b[0].copy()
    a0[vm:], b0[:, vn:] = 0, 0
    want = ((a0 @ b0) * (2 if acc else 1))[None]
    same_bits(np.asarray(_run(program(text), a, b)), want, f"C: partial views {vm} {vn}")
    got = interpreter.run(program(text), "k", a, b, precision="bf16")
    same_bits(np.asarray(got), want, f"interpreter: partial views {vm} {vn}")
