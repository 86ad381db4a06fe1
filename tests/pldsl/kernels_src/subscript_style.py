"""The same tiling written with PyPTO's subscript sugar (t[a:b, :], t[i, j], dst[...] = src)."""

import pldsl as pl

ROWS = pl.dynamic("ROWS")
HIDDEN = 128
TILE = 16
HALF = HIDDEN // 2


@pl.program
class SubscriptStyle:
    @pl.function(type=pl.FunctionType.Opaque)
    def rope_like(
        self,
        x: pl.Tensor[[ROWS, HIDDEN], pl.FP32],
        cos: pl.Tensor[[TILE, HALF], pl.FP32],
        scale: pl.Tensor[[ROWS], pl.FP32],
        out: pl.Out[pl.Tensor[[ROWS, HIDDEN], pl.FP32]],
    ) -> pl.Tensor[[ROWS, HIDDEN], pl.FP32]:
        rows = pl.tensor.dim(x, 0)
        for r0 in pl.parallel(0, rows, TILE):
            with pl.at(level=pl.Level.CORE_GROUP):
                lo = x[r0 : r0 + TILE, 0:HALF]
                hi = x[r0 : r0 + TILE, HALF:]
                rot_lo = pl.sub(pl.mul(lo, cos), pl.mul(hi, cos))
                rot_hi = pl.add(pl.mul(hi, cos), pl.mul(lo, cos))
                out[r0 : r0 + TILE, 0:HALF] = rot_lo
                out[r0 : r0 + TILE, HALF:] = rot_hi
                first = x[r0, 0]
                s = scale[r0]
                out = pl.write(out, [r0, 0], pl.max(first, s))
        return out
