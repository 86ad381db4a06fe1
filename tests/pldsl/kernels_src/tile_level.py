"""The tile level: tiles in Vec, Mat, Left, Right and Acc; a matmul on the cube path
(load to Mat, move to Left / Right, matmul into Acc, store) and a masked row max on the vector
path (full, set_validshape, fillpad), one block per SPMD index."""

import pldsl as pl

M, K, N = 16, 32, 16


@pl.program
class TileLevel:
    @pl.function(type=pl.FunctionType.InCore)
    def cube(
        self,
        a: pl.Tensor[[M, K], pl.BF16],
        b: pl.Tensor[[K, N], pl.BF16],
        out: pl.Out[pl.Tensor[[M, N], pl.FP32]],
    ) -> pl.Tensor[[M, N], pl.FP32]:
        a_mat = pl.load(a, [0, 0], [M, K], target_memory=pl.MemorySpace.Mat)
        b_mat = pl.load(b, [0, 0], [K, N], target_memory=pl.Mem.Mat)
        a_left = pl.tile.move(a_mat, target_memory=pl.MemorySpace.Left)
        b_right = pl.tile.move(b_mat, target_memory=pl.MemorySpace.Right)
        acc = pl.tile.matmul(a_left, b_right)
        acc = pl.tile.matmul_acc(acc, a_left, b_right)
        out = pl.store(acc, [0, 0], out)
        return out

    @pl.function(type=pl.FunctionType.InCore)
    def vector(
        self,
        x: pl.Tensor[[4 * M, N], pl.FP32],
        valid_cols: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[4 * M, 1], pl.FP32]],
    ) -> pl.Tensor[[4 * M, 1], pl.FP32]:
        block = pl.tile.get_block_idx()
        t = pl.load(x, [block * M, 0], [M, N])
        bias = pl.tile.full([M, N], dtype=pl.FP32, value=0.25)
        shifted = pl.tile.add(t, bias)
        part = pl.tile.set_validshape(shifted, M, valid_cols)
        masked = pl.tile.fillpad(part, pad_value=pl.PadValue.min)
        mx = pl.row_max(masked)
        staged = pl.create_tile([M, 1], dtype=pl.FP32)
        staged = pl.tile.assemble(staged, mx, [0, 0])
        out = pl.store(staged, [block * M, 0], out)
        return out
