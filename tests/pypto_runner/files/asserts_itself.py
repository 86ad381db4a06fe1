"""PyPTO-example style: the file calls its kernel (and fn.compile) and asserts by itself."""

import numpy as np
import pypto.language as pl
from pypto.runtime import RunConfig


@pl.jit
def tile_add(a: pl.Tensor, b: pl.Tensor, c: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        c = pl.assemble(c, pl.add(a, b), [0, 0])
    return c


if __name__ == "__main__":
    a = np.full((16, 16), 2.0, np.float32)
    b = np.full((16, 16), 3.0, np.float32)
    c = np.zeros((16, 16), np.float32)
    tile_add(a, b, c, config=RunConfig())
    assert np.allclose(c, a + b)
    compiled = tile_add.compile(a, b, c, config=RunConfig(platform="a2a3"))
    c[:] = 0
    compiled(a, b, c)
    assert np.allclose(c, a + b)
    print("OK")
