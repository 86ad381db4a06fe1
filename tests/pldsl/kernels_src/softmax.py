"""Row softmax with a masked tail: fillpad(min) before the max, as the seed's attention does."""

import pldsl as pl

COLS = 128
TILE = 8


@pl.program
class Softmax:
    @pl.function(type=pl.FunctionType.InCore)
    def softmax(
        self,
        x: pl.Tensor[[TILE, COLS], pl.FP32],
        valid_cols: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[TILE, COLS], pl.FP32]],
    ) -> pl.Tensor[[TILE, COLS], pl.FP32]:
        part = pl.slice(x, [TILE, COLS], [0, 0], valid_shape=[TILE, valid_cols])
        masked = pl.fillpad(part, pad_value=pl.PadValue.min)
        mx = pl.row_max(masked)
        e = pl.exp(pl.row_expand_sub(masked, mx))
        total = pl.row_sum(e)
        lowest = pl.row_min(e)
        probs = pl.row_expand_div(e, total)
        probs = pl.row_expand_add(probs, pl.mul(lowest, 0.0))
        out = pl.assemble(out, probs, [0, 0])
        return out

    @pl.function(type=pl.FunctionType.InCore)
    def col_stats(
        self, x: pl.Tensor[[TILE, COLS], pl.FP32]
    ) -> pl.Tuple[pl.Tensor[[1, COLS], pl.FP32], pl.Tensor[[TILE, COLS], pl.FP32]]:
        cs = pl.col_sum(x)
        cmx = pl.col_max(x)
        cmn = pl.col_min(x)
        centered = pl.col_expand_sub(x, pl.div(cs, 8.0))
        spread = pl.col_expand_div(centered, pl.sub(cmx, cmn))
        shifted = pl.col_expand_add(spread, cmn)
        clipped = pl.minimum(pl.maximum(shifted, -1.0), 1.0)
        return cs, clipped
