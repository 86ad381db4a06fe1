"""Helpers of the check tests: capture kernels from text, locate marked lines."""

from __future__ import annotations

import itertools
import textwrap

import pldsl as pl
from pldsl.checks import RULES

_ids = itertools.count()


class Kernel:
    """A captured program plus its source text (for line lookups)."""

    def __init__(self, src: str):
        self.text = textwrap.dedent(src).lstrip("\n")
        self.file = f"<checks-test-{next(_ids)}>.py"
        self.program = pl.capture_source(self.text, self.file)[0]

    def line(self, marker: str) -> int:
        """1-based line of the only line carrying `# <marker>` (markers end the line)."""
        hits = [
            i + 1
            for i, text in enumerate(self.text.splitlines())
            if text.rstrip().endswith(f"# {marker}")
        ]
        assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
        return hits[0]

    def rule(self, rule: str):
        """Only the given rule's findings (the rule run alone)."""
        return RULES[rule].check(self.program)


def kernel(src: str) -> Kernel:
    return Kernel(src)


def lines(diags) -> list[int]:
    return sorted(d.span.line for d in diags)
