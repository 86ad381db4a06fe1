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
