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


# ------------------------------------------------------------------ edges: which axis is reduced

AXES = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self,
        a: pl.Tensor[[64, 64], pl.BF16],
        acc0: pl.Tensor[[64, 64], pl.FP32],
        n: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[64, 64], pl.FP32]],
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        rows = pl.slice(a, [64, 64], [0, 0], valid_shape=[n, 64])
        cols = pl.slice(a, [64, 64], [0, 0], valid_shape=[64, n])
        full = pl.slice(a, [64, 64], [0, 0])
        y = EXPR  # probe
        out = pl.assemble(out, pl.cast(y, pl.FP32), [0, 0])
        return out
"""


def flagged(expr: str) -> list[str]:
    kk = kernel(AXES.replace("EXPR", expr))
    found = kk.rule(RULE)
    assert all(d.span.line == kk.line("probe") for d in found)
    return [d.message.split("'")[1] for d in found]


def test_row_and_col_reductions_reduce_their_own_axis():
    for red in ("sum", "max", "min"):
        assert flagged(f"pl.row_{red}(cols)") == ["cols"], red
        assert flagged(f"pl.row_{red}(rows)") == [], red
        assert flagged(f"pl.col_{red}(rows)") == ["rows"], red
        assert flagged(f"pl.col_{red}(cols)") == [], red


def test_matmul_contraction_axis_follows_the_transpose_flags():
    assert flagged("pl.matmul(cols, full, out_dtype=pl.FP32)") == ["cols"]  # lhs K = axis 1
    assert flagged("pl.matmul(rows, full, out_dtype=pl.FP32)") == []
    assert flagged("pl.matmul(rows, full, a_trans=True, out_dtype=pl.FP32)") == ["rows"]
    assert flagged("pl.matmul(cols, full, a_trans=True, out_dtype=pl.FP32)") == []
    assert flagged("pl.matmul(full, rows, out_dtype=pl.FP32)") == ["rows"]  # rhs K = axis 0
    assert flagged("pl.matmul(full, cols, out_dtype=pl.FP32)") == []
    assert flagged("pl.matmul(full, cols, b_trans=True, out_dtype=pl.FP32)") == ["cols"]
    assert flagged("pl.matmul(full, rows, b_trans=True, out_dtype=pl.FP32)") == []


def test_matmul_acc_accumulator_is_not_reduced():
    acc = "pl.slice(acc0, [64, 64], [0, 0], valid_shape=[64, n])"
    assert flagged(f"pl.matmul_acc({acc}, full, full)") == []
    assert flagged(f"pl.matmul_acc({acc}, cols, full)") == ["cols"]


def test_a_pad_mode_makes_the_invalid_region_defined():
    padded = "pl.slice(a, [64, 64], [0, 0], valid_shape=[64, n], pad_value=pl.PadValue.zero)"
    assert flagged(f"pl.row_sum({padded})") == []
