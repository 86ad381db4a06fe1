"""Tiled matmul with explicit loop carries (init_values / pl.yield_) and transposed operands."""

import pldsl as pl

M = 32
K = 64
N = 32
TM = 16
TK = 16


@pl.program
class MatmulTiled:
    @pl.function(type=pl.FunctionType.InCore)
    def gemm(
        self,
        a: pl.Tensor[[M, K], pl.BF16],
        b_t: pl.Tensor[[N, K], pl.BF16],
        c: pl.Out[pl.Tensor[[M, N], pl.FP32]],
    ) -> pl.Tensor[[M, N], pl.FP32]:
        for m0 in pl.range(0, M, TM):
            first = pl.matmul(
                pl.slice(a, [TM, TK], [m0, 0]), pl.slice(b_t, [N, TK], [0, 0]),
                b_trans=True, out_dtype=pl.FP32,
            )  # fmt: skip
            for k0, (acc,) in pl.range(TK, K, TK, init_values=(first,)):
                a_tile = pl.slice(a, [TM, TK], [m0, k0])
                b_tile = pl.slice(b_t, [N, TK], [0, k0])
                acc_next = pl.matmul_acc(acc, a_tile, b_tile, b_trans=True)
                total = pl.yield_(acc_next)
            c = pl.assemble(c, total, [m0, 0])
        return c

    @pl.function(type=pl.FunctionType.Orchestration)
    def main(
        self,
        a: pl.Tensor[[M, K], pl.BF16],
        b_t: pl.Tensor[[N, K], pl.BF16],
        c: pl.Out[pl.Tensor[[M, N], pl.FP32]],
    ) -> pl.Tensor[[M, N], pl.FP32]:
        c = self.gemm(a, b_t, c)
        return c
