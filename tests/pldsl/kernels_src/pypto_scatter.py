"""PyPTO's column scatter, the inverse of the index gather: each row's top values written back
to their columns of a zeroed row (a sparse mask of the kept logits)."""

import pldsl as pl

ROWS = 4
N = 64
K = 8


@pl.program
class Scatter:
    @pl.function(type=pl.FunctionType.Opaque)
    def keep_topk(
        self,
        vals: pl.Tensor[[ROWS, K], pl.FP32],
        cols: pl.Tensor[[ROWS, K], pl.INT32],
        out: pl.Out[pl.Tensor[[ROWS, N], pl.FP32]],
    ) -> pl.Tensor[[ROWS, N], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            zero = pl.full([ROWS, N], dtype=pl.FP32, value=0.0)
            kept = pl.scatter(zero, dim=-1, index=cols, src=vals)
        out = pl.assemble(out, kept, [0, 0])
        return out
