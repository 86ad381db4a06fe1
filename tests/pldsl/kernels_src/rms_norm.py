"""RMSNorm over row tiles with a partial last tile (valid_shape), PyPTO style."""

import pldsl as pl

ROWS = pl.dynamic("ROWS")
HIDDEN = 256
TILE = 16
CHUNK = 64
EPS = 1e-6


@pl.program
class RmsNorm:
    @pl.function(type=pl.FunctionType.Opaque)
    def rms_norm(
        self,
        x: pl.Tensor[[ROWS, HIDDEN], pl.BF16],
        gamma: pl.Tensor[[1, HIDDEN], pl.FP32],
        out: pl.Out[pl.Tensor[[ROWS, HIDDEN], pl.BF16]],
    ) -> pl.Tensor[[ROWS, HIDDEN], pl.BF16]:
        rows = pl.tensor.dim(x, 0)
        for r0 in pl.parallel(0, rows, TILE):
            valid = pl.min(TILE, rows - r0)
            with pl.at(level=pl.Level.CORE_GROUP):
                sq = pl.full([TILE, 1], dtype=pl.FP32, value=0.0)
                for c in pl.range(HIDDEN // CHUNK):
                    xs = pl.cast(
                        pl.slice(x, [TILE, CHUNK], [r0, c * CHUNK], valid_shape=[valid, CHUNK]),
                        pl.FP32,
                    )
                    sq = pl.add(sq, pl.fillpad(pl.row_sum(pl.mul(xs, xs))))
                inv = pl.rsqrt(pl.add(pl.mul(sq, 1.0 / HIDDEN), EPS))
                for c in pl.range(HIDDEN // CHUNK):
                    xs = pl.cast(
                        pl.slice(x, [TILE, CHUNK], [r0, c * CHUNK], valid_shape=[valid, CHUNK]),
                        pl.FP32,
                    )
                    g = pl.slice(gamma, [1, CHUNK], [0, c * CHUNK])
                    y = pl.cast(
                        pl.col_expand_mul(pl.row_expand_mul(xs, inv), g), pl.BF16, mode="rint"
                    )
                    out = pl.assemble(out, y, [r0, c * CHUNK])
        return out
