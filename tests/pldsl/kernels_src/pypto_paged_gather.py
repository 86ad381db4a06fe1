"""PyPTO's kernel-driven paged gather: rows of a KV pool picked through a block table are
gathered into an on-chip accumulator (create_l1 + gather_row), then multiplied."""

import pldsl as pl

POOL = 64
ROWS = 16
HEAD = 32


@pl.program
class PagedGather:
    @pl.function(type=pl.FunctionType.Opaque)
    def scores(
        self,
        q: pl.Tensor[[4, HEAD], pl.BF16],
        pool: pl.Tensor[[POOL, HEAD], pl.BF16],
        table: pl.Tensor[[ROWS], pl.INT32],
        out: pl.Out[pl.Tensor[[4, ROWS], pl.FP32]],
    ) -> pl.Tensor[[4, ROWS], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            kv = pl.create_l1([ROWS, HEAD], pl.BF16)
            for r in pl.range(ROWS):
                phys = pl.cast(pl.read(table, [r]), pl.INDEX)
                kv = pl.gather_row(kv, pool, [r, 0], [phys, 0], [1, HEAD])
            s = pl.matmul(q, kv, b_trans=True, out_dtype=pl.FP32)
        out = pl.assemble(out, s, [0, 0])
        return out
