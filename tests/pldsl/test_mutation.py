"""Mutation testing of capture: a mutated kernel source is either captured or rejected with a
pl.CaptureError, never any other exception (a traceback from inside pldsl on user input is a
bug). Mutations: drop / duplicate / swap lines, change int and float literals, rename
identifiers, change dtype names, swap op names, drop call arguments."""

from __future__ import annotations

import io
import keyword
import tokenize

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irutil import KERNELS_SRC, round_trip

import pldsl as pl
from pldsl.ops import OPS

SMALL_KERNEL = """\
import pldsl as pl

R = pl.dynamic("R")
C = 64
T = 16


@pl.program
class Small:
    @pl.function(type=pl.FunctionType.InCore)
    def tile(self, x: pl.Tensor[[T, C], pl.FP32], k: pl.Scalar[pl.INDEX]) -> pl.Tensor[[T, C], pl.FP32]:
        y = pl.exp(pl.neg(x))
        s = pl.row_sum(y)
        z = pl.row_expand_div(y, s)
        for i, (acc,) in pl.range(0, 4, 1, init_values=(z,)):
            nxt = pl.add(acc, pl.mul(x, 0.5))
            out = pl.yield_(nxt)
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def main(self, x: pl.Tensor[[R, C], pl.FP32], flag: pl.Scalar[pl.BOOL], o: pl.Out[pl.Tensor[[R, C], pl.FP32]]) -> pl.Tensor[[R, C], pl.FP32]:
        n = pl.tensor.dim(x, 0)
        for r0 in pl.parallel(0, n, T, chunk=2):
            valid = pl.min(T, n - r0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                t = pl.slice(x, [T, C], [r0, 0], valid_shape=[valid, C])
                f = pl.fillpad(t, pad_value=pl.PadValue.min)
                g = self.tile(f, valid)
                if flag and valid > 2:
                    g = pl.maximum(g, 0.0)
                o = pl.assemble(o, g, [r0, 0])
        v = pl.tensor.read(x, [0, 0])
        o = pl.tensor.write(o, [0, 0], v)
        return o
"""

SEEDS = [SMALL_KERNEL] + [p.read_text() for p in sorted(KERNELS_SRC.glob("*.py"))]

DTYPE_NAMES = [
    "BF16", "FP16", "FP32", "INT8", "INT16", "INT32", "INT64", "UINT8", "INDEX", "BOOL",
    "FP33", "Tensor", "Scalar",
]  # fmt: skip
OP_NAMES = sorted(OPS) + ["range", "parallel", "unroll", "pipeline", "at", "yield_", "min",
                          "max", "const", "dynamic", "tensor", "nope"]  # fmt: skip
INTS = [0, 1, 2, 3, -1, -16, 7, 16, 63, 64, 65, 128, 1000, 2**31, 2**63, 2**70, 10**30]
FLOATS = ["0.0", "-0.0", "1e-6", "0.5", "-1e30", "1e400", "-1e400", "2.5", "1e-320"]


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _replace(text: str, tok: tokenize.TokenInfo, new: str) -> str:
    lines = text.splitlines(keepends=True)
    (row, col), (erow, ecol) = tok.start, tok.end
    if row != erow:
        return text
    line = lines[row - 1]
    lines[row - 1] = line[:col] + new + line[ecol:]
    return "".join(lines)


@st.composite
def mutation(draw, text: str) -> str:
    kind = draw(
        st.sampled_from(
            ["drop", "dup", "swap", "int", "float", "rename", "dtype", "op", "droparg", "keyword"]
        )
    )
    lines = text.splitlines(keepends=True)
    if kind in ("drop", "dup", "swap"):
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        return "".join(lines)
    toks = _tokens(text)
    if kind == "int":
        cands = [
            t
            for t in toks
            if t.type == tokenize.NUMBER and "." not in t.string and "e" not in t.string
        ]
        if cands:
            tok = draw(st.sampled_from(cands))
            value = draw(st.one_of(st.sampled_from(INTS), st.integers(-300, 300)))
            return _replace(text, tok, str(value) if value >= 0 else f"({value})")
    if kind == "float":
        cands = [t for t in toks if t.type == tokenize.NUMBER]
        if cands:
            tok = draw(st.sampled_from(cands))
            return _replace(text, tok, draw(st.sampled_from(FLOATS)))
    names = [t for t in toks if t.type == tokenize.NAME and not keyword.iskeyword(t.string)]
    if kind == "rename" and names:
        tok = draw(st.sampled_from(names))
        pool = sorted({t.string for t in names}) + ["zz", "self", "pl", "x", "None", "True"]
        return _replace(text, tok, draw(st.sampled_from(pool)))
    if kind == "dtype":
        cands = [t for t in names if t.string in DTYPE_NAMES]
        if cands:
            tok = draw(st.sampled_from(cands))
            return _replace(text, tok, draw(st.sampled_from(DTYPE_NAMES)))
    if kind == "op":
        cands = [t for t in names if t.string in OPS or t.string in OP_NAMES]
        if cands:
            tok = draw(st.sampled_from(cands))
            return _replace(text, tok, draw(st.sampled_from(OP_NAMES)))
    if kind == "keyword":
        cands = [t for t in names if t.string in ("valid_shape", "pad_value", "out_dtype", "b_trans",
                                                   "a_trans", "mode", "target_type", "level",
                                                   "optimization", "chunk", "init_values", "dtype",
                                                   "value", "type", "role")]  # fmt: skip
        if cands:
            tok = draw(st.sampled_from(cands))
            pool = ["valid_shape", "pad_value", "out_dtype", "b_trans", "mode", "chunk", "stage",
                    "optimizations", "shape", "offset", "level", "bogus"]  # fmt: skip
            return _replace(text, tok, draw(st.sampled_from(pool)))
    if kind == "droparg":
        commas = [t for t in toks if t.type == tokenize.OP and t.string == ","]
        if commas:
            tok = draw(st.sampled_from(commas))
            lines = text.splitlines(keepends=True)
            row, col = tok.start
            line = lines[row - 1]
            # drop the comma and the next argument up to the following comma or bracket
            rest = line[col + 1 :]
            depth, cut = 0, len(rest)
            for k, ch in enumerate(rest):
                if ch in "([{":
                    depth += 1
                elif ch in ")]}":
                    if depth == 0:
                        cut = k
                        break
                    depth -= 1
                elif ch == "," and depth == 0:
                    cut = k
                    break
            lines[row - 1] = line[:col] + rest[cut:]
            return "".join(lines)
    return text


@st.composite
def mutant(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        text = draw(mutation(text))
    return text


def capture_or_reject(text: str) -> list[pl.Program] | None:
    """Capture a mutant; a captured program must also survive print_ir -> parse_ir."""
    try:
        programs = pl.capture_source(text, "<mutant>")
    except pl.CaptureError as exc:
        d = exc.diagnostic
        assert d.severity == "error" and d.rule and d.message
        assert d.rule != "InternalError", d.render()  # a crashing op type rule
        assert d.span.file == "<mutant>"
        d.render()  # rendering never fails either
        return None
    for program in programs:
        round_trip(program)
    return programs


def test_seeds_capture_cleanly():
    for text in SEEDS:
        assert pl.capture_source(text, "<seed>")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutant())
def test_mutated_sources_capture_or_raise_capture_error(text):
    capture_or_reject(text)


@pytest.mark.slow
@settings(
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutant())
def test_mutated_sources_many_random(text):
    capture_or_reject(text)
