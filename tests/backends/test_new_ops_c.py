"""The ops of issue 10 on the C backend against the same NumPy oracles as the interpreter
(tests/new_ops_checks.py). Each distinct kernel compiles once."""

from __future__ import annotations

import functools

from new_ops_checks import make_tests

from pldsl.backends import c


@functools.cache
def _compiled(program):
    return c.compile(program)


def _run(program, *args):
    return _compiled(program).run("k", *args)


globals().update(make_tests(_run))
