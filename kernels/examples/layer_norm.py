"""layer_norm: LayerNorm over the full hidden dim per row tile (pypto-lib
intermediate/layer_norm).

    y[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * gamma[c] + beta[c]    eps = 1e-5

``x``/``y`` FP32 ``[rows, hidden]``; ``gamma``/``beta`` FP32 ``[1, hidden]``; variance is the
biased (population) one. Written as upstream: the mean is ``row_sum(x * (1/hidden))``; the
centred tile comes from ``row_expand_sub``; ``var + eps`` is
``row_sum((centred**2 + eps) * (1/hidden))``; ``sqrt`` runs on the ``[1, row_tile]``
reshape and ``row_expand_div`` normalises; ``gamma`` is applied with ``col_expand_mul`` and
``beta`` through a ones tile (``x - x + 1``) with ``col_expand_mul`` as upstream does. Every
step is row-local, so the dynamic-row tail tile just carries ``valid_shape=[valid, hidden]``
from its slice to its store.
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import layer_norm_golden as golden

__all__ = ["ROWS", "HIDDEN", "ROW_TILE", "EPS", "build", "golden", "make_inputs", "run"]

ROWS = 512
HIDDEN = 256
ROW_TILE = 32
EPS = 1e-5

# FP32 throughout; the centring cancels, hence an absolute term. Upstream used 1e-2.
RTOL = ATOL = 2e-5


def build(
    hidden: int = HIDDEN,
    row_tile: int = ROW_TILE,
    eps: float = EPS,
    rows: int | None = None,
) -> pl.Program:
    """The program ``LayerNorm`` with entry ``layer_norm(x, gamma, beta, y)``.

    ``rows=None`` makes the row dim ``pl.dynamic("ROWS")``.
    """
    hidden_inv = 1.0 / hidden
    R = pl.dynamic("ROWS") if rows is None else rows

    @pl.program
    class LayerNorm:
        @pl.function(type=pl.FunctionType.Opaque)
        def layer_norm(
            self,
            x: pl.Tensor[[R, hidden], pl.FP32],
            gamma: pl.Tensor[[1, hidden], pl.FP32],
            beta: pl.Tensor[[1, hidden], pl.FP32],
            y: pl.Out[pl.Tensor[[R, hidden], pl.FP32]],
        ) -> pl.Tensor[[R, hidden], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for r in pl.parallel(0, n, row_tile, chunk=1):
                    valid = pl.min(row_tile, n - r)
                    tile_x = pl.slice(x, [row_tile, hidden], [r, 0], valid_shape=[valid, hidden])
                    gamma_tile = pl.slice(gamma, [1, hidden], [0, 0])
                    beta_tile = pl.slice(beta, [1, hidden], [0, 0])
                    # Row mean: pre-scale, then row_sum.
                    mean = pl.row_sum(pl.mul(tile_x, hidden_inv))
                    # Row variance + eps: eps and 1/hidden applied per element.
                    centred = pl.row_expand_sub(tile_x, mean)
                    var_eps = pl.row_sum(pl.mul(pl.add(pl.mul(centred, centred), eps), hidden_inv))
                    # sqrt on the [1, row_tile] layout, then back to [row_tile, 1].
                    std = pl.reshape(pl.sqrt(pl.reshape(var_eps, [1, row_tile])), [row_tile, 1])
                    normed = pl.row_expand_div(centred, std)
                    # gamma scale, beta offset (beta broadcast through a ones tile).
                    scaled = pl.col_expand_mul(normed, gamma_tile)
                    ones = pl.add(pl.sub(tile_x, tile_x), 1.0)
                    result = pl.add(scaled, pl.col_expand_mul(ones, beta_tile))
                    y = pl.assemble(y, result, [r, 0])
            return y

    return LayerNorm


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``LayerNorm``) and a static one (``LayerNorm_rows37``)."""
    return {"LayerNorm": build(), "LayerNorm_rows37": build(rows=37)}


def make_inputs(rows: int = ROWS, hidden: int = HIDDEN, seed: int = 0) -> dict[str, np.ndarray]:
    """Random FP32 ``x``, ``gamma``, ``beta`` (standard normal)."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((rows, hidden), dtype=np.float32),
        "gamma": rng.standard_normal((1, hidden), dtype=np.float32),
        "beta": rng.standard_normal((1, hidden), dtype=np.float32),
    }


def run(
    rows: int = ROWS, seed: int = 0, strict: bool = False, precision: str = "bf16", **build_kw
) -> tuple[np.ndarray, np.ndarray]:
    """Build, interpret on random inputs; returns (kernel output, golden)."""
    hidden, eps = build_kw.get("hidden", HIDDEN), build_kw.get("eps", EPS)
    inp = make_inputs(rows, hidden, seed)
    y = _harness.new_output((rows, hidden), "FP32")
    out = _harness.interpret(
        build(**build_kw),
        "layer_norm",
        [inp["x"], inp["gamma"], inp["beta"]],
        y,
        strict=strict,
        precision=precision,
    )
    return out, golden(inp["x"], inp["gamma"], inp["beta"], eps)


if __name__ == "__main__":
    raise SystemExit(_harness.main("layer_norm", run, RTOL, ATOL, ROWS))
