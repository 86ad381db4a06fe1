"""Tile sizes of the ``qwen3_decode_all`` kernel, derived from the model config.

The seed kernel (pypto-lib PR #295) hard-codes its tiles for Qwen3-14B (``K_CHUNK=128``,
``SCOPE1_K_CHUNK=512``, ``Q_OUT_CHUNK=64``, ``MLP_OUT_CHUNK=256``, ``VOCAB_CHUNK=64``,
``Q_HEAD_BATCH=5``, ``Q_HEAD_PAD=16``, page 256) and silently computes garbage for configs those
numbers do not divide.  Here every tile is *derived*: for each tiled dimension we take the
largest multiple of ``align`` that divides the dimension and does not exceed a cap (the seed's
value by default), so Qwen3-14B gets exactly the seed's tiles and a small test config gets one
big tile per dimension.  A dimension that has no such divisor raises `TilingError` naming the
dimension, its value and the divisor it must be a multiple of.

All tiles are static (compile-time) numbers: the kernel is rebuilt per config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import Qwen3Config

__all__ = ["TilingError", "DecodeTiling", "DEFAULT_CAPS", "derive_tiling", "largest_tile"]


class TilingError(ValueError):
    """A model/runtime configuration the decode kernel cannot be tiled for."""


# Caps (largest tile tried) per tiled dimension; the seed's values for Qwen3-14B.
DEFAULT_CAPS: dict[str, int] = {
    "k_chunk_in": 512,  # SCOPE1_K_CHUNK: input RMSNorm chunks and the Q/K/V projection K tile
    "q_out_chunk": 64,  # Q_OUT_CHUNK: Q projection N tile
    "kv_out_chunk": 64,  # KV_OUT_CHUNK: K/V projection N tile
    "o_k_chunk": 128,  # K_CHUNK: O projection K tile (over the query width)
    "o_out_chunk": 64,  # Q_OUT_CHUNK: O projection N tile (over hidden)
    "k_chunk": 128,  # K_CHUNK: post/final RMSNorm chunks, gate/up K tile, LM-head K tile, copies
    "mlp_chunk": 256,  # MLP_OUT_CHUNK_DECODE: gate/up N tile, down K tile
    "down_out_chunk": 128,  # K_CHUNK: down projection N tile
    "vocab_chunk": 64,  # VOCAB_CHUNK: LM-head N tile
    "tok_tile": 64,  # TOK_TILE: prefill token tile (matmul M of qwen3_prefill_all)
}

# Per-step budget for the per-head q/k RMSNorm: heads are normalised `g` at a time on a
# [batch_tile * g, head_dim] FP32 tile (a row-major reshape of [batch_tile, g * head_dim]).
# 64 KiB gives 8 heads per step for head_dim 128 and batch tile 16 (the seed does one), and all
# heads at once for the small test configs.
QK_NORM_TILE_BYTES = 64 * 1024


def largest_tile(dim: int, cap: int, align: int) -> int | None:
    """The largest multiple of ``align`` that divides ``dim`` and is ``<= cap`` (None if none)."""
    t = min(cap, dim) // align * align
    while t >= align:
        if dim % t == 0:
            return t
        t -= align
    return None


def _tile(name: str, what: str, dim: int, cap: int, align: int) -> int:
    t = largest_tile(dim, cap, align)
    if t is None:
        if dim % align:
            raise TilingError(
                f"cannot tile {name}={dim} ({what}): it must be a multiple of {align} "
                f"(the matmul/vector tile alignment)"
            )
        raise TilingError(  # only reachable with cap < align
            f"cannot tile {name}={dim} ({what}): tile cap {cap} is below the alignment {align}"
        )
    return t


def _tok_tile(block_size: int, cap: int, align: int) -> int:
    """The prefill token tile: the largest multiple of ``block_size`` that is ``<= cap``, or,
    when the block is longer than ``cap``, the largest multiple of ``align`` dividing it
    (the seed: 64-token tiles inside 256-token blocks).  Either way a query block of
    ``min(tile, block_size)`` tokens never straddles two KV blocks."""
    if block_size <= cap:
        return cap // block_size * block_size
    t = largest_tile(block_size, cap, align)
    if t is None:
        raise TilingError(
            f"cannot tile the prefill tokens: tok_tile cap {cap} is below the alignment {align}"
        )
    return t


def _largest_divisor_at_most(n: int, limit: int) -> int:
    for g in range(max(1, min(n, limit)), 0, -1):
        if n % g == 0:
            return g
    return 1


@dataclass(frozen=True)
class DecodeTiling:
    """Every static size the kernel body uses (tile sizes and loop trip counts)."""

    batch_tile: int  # M tile: rows of every matmul and vector op over the batch
    block_size: int  # KV page size = attention block (SEQ_TILE)
    max_blocks_per_seq: int  # block-table stride and per-user score-scratch depth
    q_per_kv: int  # query heads per KV head (one attention group per KV head)
    q_head_pad: int  # rows of a padded Q group tile (q_per_kv rounded up to q_head_align)
    k_chunk_in: int
    q_out_chunk: int
    kv_out_chunk: int
    o_k_chunk: int
    o_out_chunk: int
    k_chunk: int
    mlp_chunk: int
    down_out_chunk: int
    vocab_chunk: int
    q_norm_heads: int  # heads normalised per step in the q RMSNorm
    k_norm_heads: int  # heads normalised per step in the k RMSNorm
    tok_tile: int = 64  # prefill token tile: a multiple or a divisor of block_size
    sb_chunk: int = 64  # chunk= hint of the per-block pl.parallel (SB_BATCH)

    @property
    def query_block(self) -> int:
        """Prefill attention query block: ``min(tok_tile, block_size)`` tokens, which always lie
        in one KV block (tok_tile is a multiple or a divisor of block_size)."""
        return min(self.tok_tile, self.block_size)

    def replace(self, **changes: int) -> DecodeTiling:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def derive_tiling(
    cfg: Qwen3Config,
    *,
    batch_tile: int = 16,
    block_size: int,
    max_blocks_per_seq: int,
    padded_vocab: int,
    align: int = 16,
    q_head_align: int = 16,
    caps: dict[str, int] | None = None,
) -> DecodeTiling:
    """Tile sizes for ``cfg``; raises `TilingError` when a dimension cannot be tiled.

    ``caps`` overrides entries of `DEFAULT_CAPS` (e.g. ``{"vocab_chunk": 512}``).
    ``align`` is the multiple every matmul/vector feature tile (and ``head_dim``,
    ``block_size``, ``batch_tile``) must be; ``q_head_align`` the one ``q_head_pad`` rounds to.
    """
    for name, v in (
        ("batch_tile", batch_tile),
        ("block_size", block_size),
        ("max_blocks_per_seq", max_blocks_per_seq),
        ("padded_vocab", padded_vocab),
        ("align", align),
        ("q_head_align", q_head_align),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise TilingError(f"{name} must be a positive int, got {v!r}")
    unknown = set(caps or {}) - set(DEFAULT_CAPS)
    if unknown:
        raise TilingError(f"unknown tile caps {sorted(unknown)}; known: {sorted(DEFAULT_CAPS)}")
    cap = {**DEFAULT_CAPS, **(caps or {})}

    c = cfg
    H, Im, D = c.hidden_size, c.intermediate_size, c.head_dim
    Qw, KVw = c.q_width, c.kv_width
    if padded_vocab < c.vocab_size:
        raise TilingError(f"padded_vocab={padded_vocab} is smaller than vocab_size={c.vocab_size}")
    for name, v in (("batch_tile", batch_tile), ("head_dim", D), ("block_size", block_size)):
        if v % align:
            raise TilingError(
                f"{name}={v} must be a multiple of {align} (the matmul tile alignment)"
            )
    if D % 2:
        raise TilingError(f"head_dim={D} must be even (half-split RoPE)")

    q_per_kv = c.q_per_kv
    q_head_pad = -(-q_per_kv // q_head_align) * q_head_align
    budget_rows = max(1, QK_NORM_TILE_BYTES // (batch_tile * D * 4))

    # tile -> (the dimension it tiles, named as in the error message; its size; what it tiles)
    tiled = {
        "k_chunk_in": ("hidden_size", H, "input-RMSNorm / QKV K chunk"),
        "q_out_chunk": ("num_attention_heads*head_dim", Qw, "Q projection N tile"),
        "kv_out_chunk": ("num_key_value_heads*head_dim", KVw, "K/V projection N tile"),
        "o_k_chunk": ("num_attention_heads*head_dim", Qw, "O projection K tile"),
        "o_out_chunk": ("hidden_size", H, "O projection N tile"),
        "k_chunk": ("hidden_size", H, "RMSNorm / gate-up / LM-head K chunk"),
        "mlp_chunk": ("intermediate_size", Im, "gate/up N tile and down K tile"),
        "down_out_chunk": ("hidden_size", H, "down projection N tile"),
        "vocab_chunk": ("padded_vocab", padded_vocab, "LM-head N tile"),
    }
    return DecodeTiling(
        batch_tile=batch_tile,
        block_size=block_size,
        max_blocks_per_seq=max_blocks_per_seq,
        q_per_kv=q_per_kv,
        q_head_pad=q_head_pad,
        **{
            tile: _tile(name, what, dim, cap[tile], align)
            for tile, (name, dim, what) in tiled.items()
        },
        tok_tile=_tok_tile(block_size, cap["tok_tile"], align),
        q_norm_heads=_largest_divisor_at_most(c.num_attention_heads, budget_rows),
        k_norm_heads=_largest_divisor_at_most(c.num_key_value_heads, budget_rows),
    )
