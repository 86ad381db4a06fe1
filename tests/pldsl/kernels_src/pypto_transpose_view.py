"""PyPTO's zero-copy tile.transpose_view: one Mat load of a key block [K_TILE, DIM] read as
[DIM, K_TILE] for q @ k^T, as pypto-lib's DeepSeek sparse attention scores its keys."""

import pldsl as pl

Q_ROWS = 16
K_TILE = 32
DIM = 64


@pl.program
class TransposeView:
    @pl.function(type=pl.FunctionType.InCore)
    def scores(
        self,
        q: pl.Tensor[[Q_ROWS, DIM], pl.BF16],
        kv: pl.Tensor[[K_TILE, DIM], pl.BF16],
        out: pl.Out[pl.Tensor[[Q_ROWS, K_TILE], pl.FP32]],
    ) -> pl.Tensor[[Q_ROWS, K_TILE], pl.FP32]:
        qm = pl.load(q, [0, 0], [Q_ROWS, DIM], target_memory=pl.MemorySpace.Mat)
        km = pl.load(kv, [0, 0], [K_TILE, DIM], target_memory=pl.MemorySpace.Mat)
        kt = pl.tile.transpose_view(km)
        s = pl.tile.matmul(
            pl.move(qm, target_memory=pl.MemorySpace.Left),
            pl.move(kt, target_memory=pl.MemorySpace.Right),
        )
        out = pl.store(s, [0, 0], out)
        return out
