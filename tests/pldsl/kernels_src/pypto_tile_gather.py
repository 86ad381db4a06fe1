"""PyPTO's tile-level index gather (flat offsets into a tile) and tile.arange: a RoPE-style
interleave of a loaded tile, as pypto-lib's DeepSeek q/k RoPE prepares it."""

import pldsl as pl

ROWS = 8
DIM = 64


@pl.program
class TileGather:
    @pl.function(type=pl.FunctionType.InCore)
    def interleave(
        self,
        cos: pl.Tensor[[ROWS, DIM], pl.FP32],
        out: pl.Out[pl.Tensor[[ROWS, DIM], pl.FP32]],
    ) -> pl.Tensor[[ROWS, DIM], pl.FP32]:
        rows = pl.load(cos, [0, 0], [ROWS, DIM], target_memory=pl.MemorySpace.Vec)
        col = pl.cast(pl.tile.arange(0, [1, DIM], dtype=pl.INT32), target_type=pl.FP32)
        grid = pl.col_expand_mul(pl.tile.full([ROWS, DIM], dtype=pl.FP32, value=1.0), col)
        half = pl.cast(pl.cast(pl.mul(grid, 0.5), target_type=pl.INT32, mode="trunc"), pl.FP32)
        seed = pl.mul(pl.cast(pl.tile.arange(0, [1, ROWS], dtype=pl.INT32), pl.FP32), 64.0)
        offs = pl.transpose(
            pl.col_expand_mul(pl.tile.full([DIM, ROWS], dtype=pl.FP32, value=1.0), seed), 0, 1
        )
        flat = pl.cast(pl.add(half, offs), target_type=pl.INT32)
        tmp = pl.create_tile([ROWS, DIM], dtype=pl.INT32, target_memory=pl.MemorySpace.Vec)
        dup = pl.tile.gather(rows, flat, tmp)
        out = pl.store(dup, [0, 0], out)
        return out
