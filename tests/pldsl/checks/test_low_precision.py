"""LowPrecisionArith (warning): vector math on BF16/FP16, or on mixed dtypes."""

from checkutil import kernel

RULE = "LowPrecisionArith"

SRC = """
import pldsl as pl

K = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def rms(
        self,
        x: pl.Tensor[[16, K], pl.BF16],
        gamma: pl.Tensor[[1, K], pl.FP32],
        out: pl.Out[pl.Tensor[[16, K], pl.BF16]],
    ) -> pl.Tensor[[16, K], pl.BF16]:
        BODY
        return out
"""

GOOD = """xf = pl.cast(x, pl.FP32)
        sq = pl.row_sum(pl.mul(xf, xf))
        inv = pl.rsqrt(pl.add(pl.mul(sq, 0.0078125), 1e-6))
        normed = pl.col_expand_mul(pl.row_expand_mul(xf, inv), gamma)
        out = pl.assemble(out, pl.cast(normed, pl.BF16), [0, 0])"""


def k(body: str):
    return kernel(SRC.replace("BODY", body))


def test_bf16_vector_math_is_flagged():
    kk = k(
        "sq = pl.row_sum(pl.mul(x, x))  # bf16\n"
        "        out = pl.assemble(out, pl.cast(pl.col_expand_mul(pl.cast(x, pl.FP32), gamma), pl.BF16), [0, 0])"
    )
    found = kk.rule(RULE)
    assert {d.span.line for d in found} == {kk.line("bf16")}
    assert {d.message.split()[0] for d in found} == {"pl.row_sum", "pl.mul"}
    assert all(d.severity == "warning" and "BF16" in d.message for d in found)


def test_mixed_dtypes_are_flagged():
    kk = k(
        "xf = pl.cast(x, pl.FP32)\n"
        "        g = pl.cast(gamma, pl.BF16)\n"
        "        normed = pl.col_expand_mul(xf, g)  # mixed\n"
        "        out = pl.assemble(out, pl.cast(normed, pl.BF16), [0, 0])"
    )
    found = kk.rule(RULE)
    assert [d.span.line for d in found] == [kk.line("mixed")]
    assert "mixes operand dtypes (BF16, FP32)" in found[0].message


def test_fp32_math_with_bf16_casts_and_matmul_is_clean():
    assert k(GOOD).rule(RULE) == []


def test_fp16_and_column_sums_are_low_precision_math():
    kk = k(
        "h = pl.cast(x, pl.FP16)\n"
        "        y = pl.add(h, h)  # fp16\n"
        "        c = pl.col_sum(x)  # colsum\n"
        "        out = pl.assemble(out, pl.cast(pl.add(pl.cast(y, pl.FP32), pl.cast(c, pl.FP32)), pl.BF16), [0, 0])"
    )
    found = {d.span.line: d.message for d in kk.rule(RULE)}
    assert set(found) == {kk.line("fp16"), kk.line("colsum")}
    assert found[kk.line("fp16")].startswith("pl.add computes on FP16 operands")
    assert found[kk.line("colsum")].startswith("pl.col_sum computes on BF16 operands")


def test_scalars_mix_only_across_kinds_and_literals_never():
    # a FP32 scalar on a BF16 tile is low-precision math, not a mix of kinds; a literal of
    # another kind (the int 2) is not a mix either
    kk = k(
        "s = pl.read(gamma, [0, 0])\n"
        "        y = pl.mul(x, s)  # low\n"
        "        xf = pl.cast(x, pl.FP32)\n"
        "        z = pl.mul(xf, 2)\n"
        "        out = pl.assemble(out, pl.cast(pl.add(pl.cast(y, pl.FP32), z), pl.BF16), [0, 0])"
    )
    found = kk.rule(RULE)
    assert [d.span.line for d in found] == [kk.line("low")]
    assert found[0].message.startswith("pl.mul computes on BF16 operands")
