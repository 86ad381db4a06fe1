"""PyPTO's wider op set in one kernel (issue 10): a RoPE-style half swap by index (arange,
gather), a row argmax, a column-joined pair and its transpose, a compare mask and a remainder."""

import pldsl as pl

ROWS = 16
HEAD = 64
HALF = 32


@pl.program
class MoreOps:
    @pl.function(type=pl.FunctionType.Opaque)
    def more_ops(
        self,
        x: pl.Tensor[[ROWS, HEAD], pl.FP32],
        swap: pl.Tensor[[ROWS, HEAD], pl.INT32],
        bias: pl.Tensor[[ROWS, 1], pl.FP32],
        n: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[ROWS, HEAD], pl.FP32]],
        best: pl.Out[pl.Tensor[[ROWS, 1], pl.INT32]],
    ) -> pl.Tensor[[ROWS, HEAD], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            cols = pl.cast(pl.arange(0, [1, HEAD], dtype=pl.INT32), pl.FP32)
            pos = pl.col_expand(x, cols)
            soft = pl.col_expand_expdif(x, pl.col_max(x))
            swapped = pl.gather(x, dim=-1, index=swap)
            mask = pl.cmp(pos, HALF, cmp_type=2)
            phase = pl.fmods(pl.add(pos, pl.row_expand(x, bias)), 4.0)
            y = pl.add(pl.mul(swapped, mask), pl.add(phase, soft))
            pair = pl.concat(
                pl.slice(y, [ROWS, HALF], [0, 0]), pl.slice(y, [ROWS, HALF], [0, HALF])
            )
            t = pl.transpose(pl.transpose(pair, 0, 1), 0, 1)
            part = pl.fillpad(pl.set_validshape(t, n, HEAD))
            idx = pl.row_argmax(part)
        best = pl.assemble(best, idx, [0, 0])
        out = pl.assemble(out, part, [0, 0])
        return out
