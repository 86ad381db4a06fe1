"""Row-wise top-k with PyPTO's sorting ops: sort32 into (value, index) pairs, mrgsort's
format1 (block_len=) and format2 (two lists), then mask gathers split values and indices."""

import pldsl as pl

ROWS = 4
N = 256
K = 8


@pl.program
class SortOps:
    @pl.function(type=pl.FunctionType.Opaque)
    def topk(
        self,
        scores: pl.Tensor[[ROWS, N], pl.FP32],
        vals: pl.Out[pl.Tensor[[ROWS, K], pl.FP32]],
        idx: pl.Out[pl.Tensor[[ROWS, K], pl.INT32]],
    ) -> pl.Tensor[[ROWS, K], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            order = pl.arange(0, [1, N], dtype=pl.UINT32)
            for r in pl.range(ROWS):
                s = pl.sort32(scores[r : r + 1, :], order)
                s = pl.mrgsort(s, block_len=64)
                s = pl.mrgsort(s[:, 0:256], s[:, 256:512])
                top = s[:, 0 : 2 * K]
                vals[r : r + 1, :] = pl.gather(top, mask_pattern=pl.tile.MaskPattern.P0101)
                idx[r : r + 1, :] = pl.gather(
                    top, mask_pattern=pl.tile.MaskPattern.P1010, output_dtype=pl.INT32
                )
        return vals
