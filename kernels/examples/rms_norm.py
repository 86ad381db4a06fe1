"""rms_norm: RMSNorm with row tiles and a two-pass, column-chunked hidden dim
(pypto-lib intermediate/rms_norm).

    y[r, c] = x[r, c] / sqrt(mean(x[r, :]**2) + eps) * gamma[c]        eps = 1e-6

``x``/``y`` are FP32 ``[rows, hidden]``, ``gamma`` FP32 ``[1, hidden]``. Row tiles of
``row_tile`` rows run under ``pl.parallel``. Pass 1 walks ``hidden_chunk``-wide column chunks
with ``pl.range`` and accumulates ``row_sum(x*x)`` into a ``pl.full([1, row_tile], 0.0)``
accumulator (kept as a ``[1, row_tile]`` row, as upstream, via ``pl.reshape``); then
``inv_rms = rsqrt(sum * (1/hidden) + eps)`` is reshaped back to ``[row_tile, 1]``. Pass 2
walks the chunks again and stores ``col_expand_mul(row_expand_mul(x, inv_rms), gamma)``.
``rows`` is dynamic by default: the tail tile's chunks are ``pl.fillpad``-ed in pass 1 (so
the accumulator never takes undefined values) and stored with ``valid_shape`` in pass 2.
"""

from __future__ import annotations

import numpy as np

import pldsl as pl

from . import _harness
from .goldens import rms_norm_golden as golden

__all__ = [
    "ROWS",
    "HIDDEN",
    "ROW_TILE",
    "HIDDEN_CHUNK",
    "EPS",
    "build",
    "golden",
    "make_inputs",
    "run",
]

ROWS = 512
HIDDEN = 512
ROW_TILE = 64
HIDDEN_CHUNK = 64
EPS = 1e-6

# FP32 throughout; worst case ~gamma_hidden/2 + 5u relative (about 1.6e-5 for hidden=512,
# typical errors are ~1e-7). Upstream used 1e-2.
RTOL = 2e-5
ATOL = 1e-6


def build(
    hidden: int = HIDDEN,
    row_tile: int = ROW_TILE,
    hidden_chunk: int = HIDDEN_CHUNK,
    eps: float = EPS,
    rows: int | None = None,
) -> pl.Program:
    """The program ``RMSNorm`` with entry ``rms_norm(x, gamma, y)``.

    ``rows=None`` makes the row dim ``pl.dynamic("ROWS")``. ``hidden`` must be a multiple of
    ``hidden_chunk``.
    """
    if hidden % hidden_chunk:
        raise ValueError(f"hidden={hidden} must be a multiple of hidden_chunk={hidden_chunk}")
    hidden_blocks = hidden // hidden_chunk
    hidden_inv = 1.0 / hidden
    R = pl.dynamic("ROWS") if rows is None else rows

    @pl.program
    class RMSNorm:
        @pl.function(type=pl.FunctionType.Opaque)
        def rms_norm(
            self,
            x: pl.Tensor[[R, hidden], pl.FP32],
            gamma: pl.Tensor[[1, hidden], pl.FP32],
            y: pl.Out[pl.Tensor[[R, hidden], pl.FP32]],
        ) -> pl.Tensor[[R, hidden], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for r in pl.parallel(0, n, row_tile, chunk=1):
                    valid = pl.min(row_tile, n - r)
                    # Pass 1: sum(x^2) over hidden chunks, as a [1, row_tile] row.
                    sq_sum = pl.full([1, row_tile], dtype=pl.FP32, value=0.0)
                    for hb in pl.range(hidden_blocks):
                        h0 = hb * hidden_chunk
                        x_part = pl.slice(
                            x, [row_tile, hidden_chunk], [r, h0], valid_shape=[valid, hidden_chunk]
                        )
                        x_chunk = pl.fillpad(x_part)
                        rs = pl.row_sum(pl.mul(x_chunk, x_chunk))
                        sq_sum = pl.add(sq_sum, pl.reshape(rs, [1, row_tile]))
                    # inv_rms = 1 / sqrt(mean(x^2) + eps)
                    inv_rms_t = pl.rsqrt(pl.add(pl.mul(sq_sum, hidden_inv), eps))
                    inv_rms = pl.reshape(inv_rms_t, [row_tile, 1])
                    # Pass 2: normalise and apply gamma; only valid rows are stored.
                    for hb in pl.range(hidden_blocks):
                        h0 = hb * hidden_chunk
                        x_part = pl.slice(
                            x, [row_tile, hidden_chunk], [r, h0], valid_shape=[valid, hidden_chunk]
                        )
                        gamma_chunk = pl.slice(gamma, [1, hidden_chunk], [0, h0])
                        normed = pl.col_expand_mul(pl.row_expand_mul(x_part, inv_rms), gamma_chunk)
                        y = pl.assemble(y, normed, [r, h0])
            return y

    return RMSNorm


def pldsl_programs() -> dict[str, pl.Program]:
    """The programs `pldsl check | run | emit` see in this file, by name: the dynamic row count
    (``RMSNorm``) and a static one (``RMSNorm_rows37``)."""
    return {"RMSNorm": build(), "RMSNorm_rows37": build(rows=37)}


def make_inputs(rows: int = ROWS, hidden: int = HIDDEN, seed: int = 0) -> dict[str, np.ndarray]:
    """Random FP32 ``x`` ``[rows, hidden]`` and ``gamma`` ``[1, hidden]`` (standard normal)."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((rows, hidden), dtype=np.float32),
        "gamma": rng.standard_normal((1, hidden), dtype=np.float32),
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
        "rms_norm",
        [inp["x"], inp["gamma"]],
        y,
        strict=strict,
        precision=precision,
    )
    return out, golden(inp["x"], inp["gamma"], eps)


if __name__ == "__main__":
    raise SystemExit(_harness.main("rms_norm", run, RTOL, ATOL, ROWS))
