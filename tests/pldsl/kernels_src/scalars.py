"""Scalar control: reads, writes, dims, pl.min/pl.max, comparisons, if/else, unroll, break."""

import pldsl as pl

L = pl.dynamic("L")
CAP = 8


@pl.program
class Scalars:
    @pl.function(type=pl.FunctionType.Orchestration)
    def pick(
        self,
        lens: pl.Tensor[[L], pl.INT32],
        table: pl.InOut[pl.Tensor[[L, CAP], pl.INT64]],
        enabled: pl.Scalar[pl.BOOL],
    ) -> pl.Tensor[[L, CAP], pl.INT64]:
        n = pl.tensor.dim(lens, 0)
        for i in pl.range(n):
            ln = pl.cast(pl.tensor.read(lens, [i]), pl.INDEX)
            hi = pl.max(pl.min(ln, CAP), 0)
            if enabled and hi > 0:
                for j in pl.range(CAP):
                    if j >= hi:
                        break
                    table = pl.tensor.write(table, [i, j], pl.const(1, pl.INT64))
            else:
                for j in pl.unroll(2):
                    table = pl.write(table, [i, j], pl.const(0, pl.INT64))
        return table
