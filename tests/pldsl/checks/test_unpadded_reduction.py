"""UnpaddedReduction (warning): a reduction or matmul reads the invalid region of a value."""

from checkutil import kernel

RULE = "UnpaddedReduction"

# Qwen3's per-block softmax: the raw scores of the last KV block are valid only up to the
# context length, so the row max must read a fillpad(min)-ed tile.
SRC = """
import pldsl as pl

BLOCK = 64


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def block_softmax(
        self,
        scores: pl.Tensor[[16, BLOCK], pl.FP32],
        v: pl.Tensor[[BLOCK, 32], pl.BF16],
        valid_len: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[16, 32], pl.FP32]],
    ) -> pl.Tensor[[16, 32], pl.FP32]:
        raw = pl.slice(scores, [16, BLOCK], [0, 0], valid_shape=[16, valid_len])
        BODY
        return out
"""

GOOD = """s = pl.fillpad(raw, pad_value=pl.PadValue.min)
        mi = pl.row_max(s)
        p = pl.exp(pl.row_expand_sub(s, mi))
        pv = pl.matmul(pl.cast(p, pl.BF16), v, out_dtype=pl.FP32)
        out = pl.assemble(out, pv, [0, 0])"""


def k(body: str):
    return kernel(SRC.replace("BODY", body))


def test_row_max_over_a_partially_valid_row_is_flagged():
    kk = k(
        "mi = pl.row_max(raw)  # unpadded\n"
        "        p = pl.exp(pl.row_expand_sub(pl.fillpad(raw, pad_value=pl.PadValue.min), mi))\n"
        "        out = pl.assemble(out, pl.matmul(pl.cast(p, pl.BF16), v, out_dtype=pl.FP32), [0, 0])"
    )
    found = kk.rule(RULE)
    assert [d.span.line for d in found] == [kk.line("unpadded")]
    assert found[0].severity == "warning"
    assert "pl.row_max reduces over all of 'raw'" in found[0].message
    assert "[16, valid_len] is valid" in found[0].message
    assert "fillpad" in found[0].help


def test_matmul_over_a_partial_contraction_is_flagged():
    kk = k(
        "p = pl.cast(pl.exp(raw), pl.BF16)\n"
        "        pv = pl.matmul(p, v, out_dtype=pl.FP32)  # partial-k\n"
        "        out = pl.assemble(out, pv, [0, 0])"
    )
    found = kk.rule(RULE)
    assert [(d.span.line, d.message.split()[0]) for d in found] == [
        (kk.line("partial-k"), "pl.matmul")
    ]


def test_fillpadded_softmax_is_clean():
    assert k(GOOD).rule(RULE) == []


def test_invalid_rows_of_a_row_reduction_are_not_flagged():
    # A tail tile with fewer valid rows: each row's sum only feeds that row's result.
    src = SRC.replace("valid_shape=[16, valid_len]", "valid_shape=[valid_len, BLOCK]").replace(
        "BODY",
        "sq = pl.row_sum(pl.mul(raw, raw))\n"
        "        out = pl.assemble(out, pl.row_expand_mul(pl.slice(scores, [16, 32], [0, 0]), sq), [0, 0])",
    )
    assert kernel(src).rule(RULE) == []
