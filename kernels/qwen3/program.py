"""Qwen3 ``qwen3_decode_all`` in the ``pl`` DSL: every layer plus the fused final RMSNorm + LM head,
with the prompt prefill ``qwen3_prefill_all``.

`build_program` returns a ``pl.Program`` with five functions:

* ``qwen3_prefill_all`` (``FunctionType.Opaque``): every prompt position of ``U`` sequences
  (ragged lengths) through all layers, in token tiles per sequence, with causal attention over
  the KV pages written so far; writes K/V of every prompt position and returns
  ``(out [U,S,H] BF16, k_cache, v_cache)``.
* ``qwen3_decode_all`` (``FunctionType.Opaque``): one decode step for ``U`` sequences (``U`` =
  ``USER_BATCH``, dynamic) through all layers, writing the current token's K/V into the paged
  caches, and the fused tail: ``(out [U,H] BF16, rms_normed [U,H] BF16, logits [U,PV] FP32)``.
* ``qwen3_final_logits`` (``FunctionType.Opaque``): the fused tail alone, over any rows of final
  hidden states (the logits of prefilled positions).
* ``sample_and_prepare`` (HOST SubWorker, body ``...``): bound to a Python callable at run time.
* ``host_orch`` (HOST Orchestrator): the prefill when ``has_prefill``, decode step 0, then
  ``max_new_tokens - 1`` times decode + sample, threading the returned tuples
  (InOutUseDiscipline).

The kernel follows pypto-lib PR #295's seed (docs/qwen3.md walks through it stage by stage,
spec: shared/spec/qwen3-decode-all.md) with its bugs fixed: the tail covers every batch tile and
its outputs are sized to the batch; any ``q_per_kv`` (each KV head's query heads are packed into
one padded Q tile); query width independent of hidden; tiles derived from the config
(`kernels.qwen3.tiling`); no reliance on zero-initialised scratch.

Parameter orders: `PREFILL_PARAM_NAMES`, `DECODE_PARAM_NAMES`, `FINAL_LOGITS_PARAM_NAMES`,
`HOST_PARAM_NAMES`.
"""

from __future__ import annotations

import math

import pldsl as pl

from .config import Qwen3Config
from .tiling import DecodeTiling, TilingError, derive_tiling

__all__ = [
    "USER_BATCH",
    "BLOCK_TABLE_LEN",
    "PREFILL_LEN",
    "PREFILL_SLOTS",
    "LOGIT_ROWS",
    "DECODE_PARAM_NAMES",
    "PREFILL_PARAM_NAMES",
    "FINAL_LOGITS_PARAM_NAMES",
    "DECODE_OUTPUT_NAMES",
    "HOST_PARAM_NAMES",
    "build_program",
    "decode_args",
    "prefill_args",
    "final_logits_args",
    "host_orch_args",
]

USER_BATCH = pl.dynamic("USER_BATCH")
BLOCK_TABLE_LEN = pl.dynamic("BLOCK_TABLE_LEN")
PREFILL_LEN = pl.dynamic("PREFILL_LEN")  # token rows per sequence in a prefill (>= every prompt)
PREFILL_SLOTS = pl.dynamic("PREFILL_SLOTS")  # = USER_BATCH * PREFILL_LEN
LOGIT_ROWS = pl.dynamic("LOGIT_ROWS")

_F32_MAX = 3.4028234663852886e38  # the largest finite FP32 (kept columns of the causal mask)

DECODE_PARAM_NAMES: tuple[str, ...] = (
    "hidden_states",
    "input_rms_weight",
    "wq",
    "wk",
    "wv",
    "q_norm_weight",
    "k_norm_weight",
    "seq_lens",
    "block_table",
    "slot_mapping",
    "rope_cos",
    "rope_sin",
    "k_cache",
    "v_cache",
    "wo",
    "post_rms_weight",
    "w_gate",
    "w_up",
    "w_down",
    "final_norm_weight",
    "lm_head_weight",
    "out",
    "rms_normed",
    "logits",
)
"""Parameters of ``qwen3_decode_all``, in order (the seed's order, spec section 1.1)."""

DECODE_OUTPUT_NAMES: tuple[str, ...] = ("out", "rms_normed", "logits")

PREFILL_PARAM_NAMES: tuple[str, ...] = (
    "hidden_states",
    "seq_lens",
    "input_rms_weight",
    "wq",
    "wk",
    "wv",
    "q_norm_weight",
    "k_norm_weight",
    "rope_cos",
    "rope_sin",
    "block_table",
    "slot_mapping",
    "k_cache",
    "v_cache",
    "wo",
    "post_rms_weight",
    "w_gate",
    "w_up",
    "w_down",
    "out",
)
"""Parameters of ``qwen3_prefill_all``, in order (the seed's order, spec section 2.8)."""

FINAL_LOGITS_PARAM_NAMES: tuple[str, ...] = (
    "hidden_states",
    "final_norm_weight",
    "lm_head_weight",
    "rms_normed",
    "logits",
)
"""Parameters of ``qwen3_final_logits``, in order."""

HOST_PARAM_NAMES: tuple[str, ...] = (
    "prefill_hidden",
    "prefill_seq_lens",
    "prefill_slot_mapping",
    "decode_hidden",
    "decode_seq_lens",
    "decode_slot_mapping",
    "input_rms_weight",
    "wq",
    "wk",
    "wv",
    "q_norm_weight",
    "k_norm_weight",
    "rope_cos",
    "rope_sin",
    "block_table",
    "k_cache",
    "v_cache",
    "wo",
    "post_rms_weight",
    "w_gate",
    "w_up",
    "w_down",
    "final_norm_weight",
    "lm_head_weight",
    "has_prefill",
    "prefill_out",
    "decode_out",
    "rms_normed",
    "logits",
)
"""Parameters of ``host_orch``, in order (spec section 2.1)."""


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def build_program(
    cfg: Qwen3Config,
    *,
    batch_tile: int = 16,
    max_seq: int,
    block_size: int,
    num_pages: int,
    max_blocks_per_seq: int,
    padded_vocab: int,
    max_new_tokens: int = 4,
    tiling: DecodeTiling | None = None,
    tile_caps: dict[str, int] | None = None,
) -> pl.Program:
    """Build the decode program for ``cfg``.

    Args:
        batch_tile: rows of every batch tile (matmul M); ``U`` is any positive number at run
            time, padded internally to a multiple of ``batch_tile``.
        max_seq: rows of ``rope_cos``/``rope_sin`` (largest context length).
        block_size: KV page size = attention block.
        num_pages: KV pages per layer; the caches have
            ``L * num_pages * num_key_value_heads * block_size`` rows.
        max_blocks_per_seq: the block-table stride (``block_table`` has ``U * max_blocks_per_seq``
            entries) and the most blocks one context may span.
        padded_vocab: rows of ``lm_head_weight`` and columns of ``logits`` (>= vocab_size).
        max_new_tokens: decode steps ``host_orch`` runs (compile time, as in the seed).
        tiling: explicit tile sizes (default: `derive_tiling` from the config).
        tile_caps: overrides of `kernels.qwen3.tiling.DEFAULT_CAPS` when deriving.

    Raises `TilingError` (a ``ValueError``) when the config cannot be tiled, ``ValueError`` for
    bad sizes.
    """
    if not isinstance(cfg, Qwen3Config):
        raise TypeError(f"cfg must be a Qwen3Config, got {type(cfg).__name__}")
    _positive("max_seq", max_seq)
    _positive("num_pages", num_pages)
    _positive("max_new_tokens", max_new_tokens)
    if tiling is None:
        tiling = derive_tiling(
            cfg,
            batch_tile=batch_tile,
            block_size=block_size,
            max_blocks_per_seq=max_blocks_per_seq,
            padded_vocab=padded_vocab,
            caps=tile_caps,
        )
    elif (tiling.batch_tile, tiling.block_size, tiling.max_blocks_per_seq) != (
        batch_tile,
        block_size,
        max_blocks_per_seq,
    ):
        raise TilingError(
            "tiling was derived for a different batch_tile/block_size/max_blocks_per_seq"
        )
    t = tiling
    if t.tok_tile % t.block_size and t.block_size % t.tok_tile:
        raise TilingError(
            f"tok_tile={t.tok_tile} must be a multiple or a divisor of block_size={t.block_size} "
            "(a prefill query block must lie in one KV block)"
        )

    # ---------------------------------------------------------------- closure constants
    L = cfg.num_hidden_layers
    H = cfg.hidden_size
    I = cfg.intermediate_size  # noqa: E741 - the usual name for the intermediate size
    D = cfg.head_dim
    HALF = D // 2
    NKV = cfg.num_key_value_heads
    QW = cfg.q_width  # query width: num_attention_heads * head_dim (may differ from H)
    KVW = cfg.kv_width
    QPK = t.q_per_kv  # query heads per KV head (= heads packed per attention group)
    QP = t.q_head_pad  # rows of a padded Q group tile
    QGW = QPK * D  # columns of one KV group's query heads in q_proj / attn_out
    BT = t.batch_tile
    BS = block_size
    MB = max_blocks_per_seq
    PV = padded_vocab
    MAX_SEQ = max_seq
    EPS = float(cfg.rms_norm_eps)
    HIDDEN_INV = 1.0 / H
    HEAD_DIM_INV = 1.0 / D
    ATTN_SCALE = 1.0 / math.sqrt(D)
    LAYER_CACHE_ROWS = num_pages * NKV * BS
    CACHE_ROWS = L * LAYER_CACHE_ROWS
    SROWS = NKV * MB * QP  # rows of the per-user score scratch: (group, block) slots of QP rows
    SB_CHUNK = t.sb_chunk

    KIN = t.k_chunk_in  # input RMSNorm chunk and Q/K/V projection K tile
    NKIN = H // KIN
    QC = t.q_out_chunk
    NQC = QW // QC
    KVC = t.kv_out_chunk
    NKVC = KVW // KVC
    OK = t.o_k_chunk  # O projection K tile over the query width
    NOK = QW // OK
    OC = t.o_out_chunk
    NOC = H // OC
    KC = t.k_chunk  # hidden chunk: post/final RMSNorm, gate/up K, LM-head K, copies
    NKC = H // KC
    MC = t.mlp_chunk
    NMC = I // MC
    DC = t.down_out_chunk
    NDC = H // DC
    VC = t.vocab_chunk
    NVC = PV // VC
    QNH = t.q_norm_heads  # heads per q-norm step
    NQN = cfg.num_attention_heads // QNH
    KNH = t.k_norm_heads
    NKN = NKV // KNH
    # prefill
    NQ = cfg.num_attention_heads
    TT = t.tok_tile  # token tile (matmul M) of qwen3_prefill_all
    QB = t.query_block  # tokens per attention query block (inside one KV block)
    QR = QB * QPK  # rows of a query block's group tile: token-major, QPK heads per token
    SROWS_P = NKV * MB * QR  # rows of the per-query-block score scratch
    F32_MAX = _F32_MAX

    # The RMSNorms the prefill and decode stages share, as @pl.inline templates (expanded at
    # each call; `rows` is TT in the prefill, BT in the decode: a literal, so shapes stay static).
    @pl.inline
    def input_rmsnorm(src, row0, rows, normed_tile, input_rms_weight, layer):
        """RMSNorm (recip of sqrt) of `rows` BF16 rows of `src` from `row0`, into BF16."""
        partial_sq = pl.full([1, rows], dtype=pl.FP32, value=0.0)
        for kb in pl.range(NKIN):
            k0 = kb * KIN
            x_chunk = pl.cast(pl.slice(src, [rows, KIN], [row0, k0]), pl.FP32)
            partial_sq = pl.add(
                partial_sq,
                pl.reshape(pl.row_sum(pl.mul(x_chunk, x_chunk)), [1, rows]),
            )
        variance = pl.reshape(pl.add(pl.mul(partial_sq, HIDDEN_INV), EPS), [rows, 1])
        inv_rms = pl.recip(pl.sqrt(variance))
        for kb in pl.range(NKIN):
            k0 = kb * KIN
            x_chunk = pl.cast(pl.slice(src, [rows, KIN], [row0, k0]), pl.FP32)
            gamma = pl.slice(input_rms_weight, [1, KIN], [layer, k0])
            normed = pl.col_expand_mul(pl.row_expand_mul(x_chunk, inv_rms), gamma)
            normed_tile = pl.assemble(normed_tile, pl.cast(normed, pl.BF16), [0, k0])
        return normed_tile

    @pl.inline
    def post_rmsnorm(resid1_tile, rows, post_norm_tile, post_rms_weight, layer):
        """RMSNorm of the `rows` FP32 rows of `resid1_tile` (after attention), into BF16."""
        sq_sum = pl.full([1, rows], dtype=pl.FP32, value=0.0)
        for kb in pl.range(NKC):
            k0 = kb * KC
            resid_chunk = pl.slice(resid1_tile, [rows, KC], [0, k0])
            sq_sum = pl.add(
                sq_sum,
                pl.reshape(pl.row_sum(pl.mul(resid_chunk, resid_chunk)), [1, rows]),
            )
        inv_rms_post = pl.recip(pl.sqrt(pl.add(pl.mul(sq_sum, HIDDEN_INV), EPS)))
        inv_rms_col = pl.reshape(inv_rms_post, [rows, 1])
        for kb in pl.range(NKC):
            k0 = kb * KC
            resid_chunk = pl.slice(resid1_tile, [rows, KC], [0, k0])
            post_gamma = pl.slice(post_rms_weight, [1, KC], [layer, k0])
            post_normed = pl.col_expand_mul(pl.row_expand_mul(resid_chunk, inv_rms_col), post_gamma)
            post_norm_tile = pl.assemble(post_norm_tile, pl.cast(post_normed, pl.BF16), [0, k0])
        return post_norm_tile

    @pl.inline
    def final_rows(src, b0, k0, cur_valid, padded):
        """A [BT, KC] chunk of `src` in FP32; with `padded` the rows past `cur_valid` as zeros."""
        if padded:
            part = pl.slice(src, [BT, KC], [b0, k0], valid_shape=[cur_valid, KC])
            x_rows = pl.fillpad(part, pad_value=pl.PadValue.zero)
        else:
            x_rows = pl.slice(src, [BT, KC], [b0, k0])
        return pl.cast(x_rows, pl.FP32)

    @pl.inline
    def final_rmsnorm(src, b0, cur_valid, padded, normed_tile, final_norm_weight):
        """The final RMSNorm (rsqrt) of the BT rows of `src` from `b0`, into BF16. With `padded`
        the rows past `cur_valid` read as zeros (`fillpad`): `qwen3_final_logits`' rows come
        from outside; the decode's own hidden state keeps its padding rows at zero."""
        sq_fin = pl.full([1, BT], dtype=pl.FP32, value=0.0)
        for kb in pl.range(NKC):
            k0 = kb * KC
            x_fin = final_rows(src, b0, k0, cur_valid, padded)
            sq_fin = pl.add(sq_fin, pl.reshape(pl.row_sum(pl.mul(x_fin, x_fin)), [1, BT]))
        inv_fin = pl.reshape(pl.rsqrt(pl.add(pl.mul(sq_fin, HIDDEN_INV), EPS)), [BT, 1])
        for kb in pl.range(NKC):
            k0 = kb * KC
            x_fin = final_rows(src, b0, k0, cur_valid, padded)
            gamma_fin = pl.slice(final_norm_weight, [1, KC], [0, k0])
            normed_fin = pl.col_expand_mul(pl.row_expand_mul(x_fin, inv_fin), gamma_fin)
            normed_tile = pl.assemble(normed_tile, pl.cast(normed_fin, pl.BF16), [0, k0])
        return normed_tile

    # The other stage bodies both functions share. Each template computes values; the loops
    # over users, heads and blocks, the `pl.at` scopes (their name hints differ) and the writes
    # to the functions' own buffers stay at the call sites: a buffer written through a template
    # parameter comes back under the expansion's name, so the loop around the call would carry
    # it (ParallelAnalysis then refuses the loop, and the fast path runs it tile by tile).
    @pl.inline
    def k_chain(a, a_row0, rows, kt, nk, w, w_row0, w_col0, cols):
        """FP32 [rows, cols] = a[a_row0:, :nk*kt] @ w[w_row0:, w_col0:]: one matmul, then
        `nk - 1` matmul_accs over K tiles of `kt` (the projections' K-loop)."""
        a_0 = pl.slice(a, [rows, kt], [a_row0, 0])
        w_0 = pl.slice(w, [kt, cols], [w_row0, w_col0])
        acc = pl.matmul(a_0, w_0, out_dtype=pl.FP32)
        for kb in pl.range(1, nk):
            k0 = kb * kt
            a_i = pl.slice(a, [rows, kt], [a_row0, k0])
            w_i = pl.slice(w, [kt, cols], [w_row0 + k0, w_col0])
            acc = pl.matmul_acc(acc, a_i, w_i)
        return acc

    @pl.inline
    def kv_chain(normed_tile, rows, wk, wv, layer_off_h, kv0):
        """The K and V projections of one KV column chunk, their K-loops interleaved."""
        tile_a = pl.slice(normed_tile, [rows, KIN], [0, 0])
        tile_wk = pl.slice(wk, [KIN, KVC], [layer_off_h, kv0])
        tile_wv = pl.slice(wv, [KIN, KVC], [layer_off_h, kv0])
        k_acc = pl.matmul(tile_a, tile_wk, out_dtype=pl.FP32)
        v_acc = pl.matmul(tile_a, tile_wv, out_dtype=pl.FP32)
        for kb in pl.range(1, NKIN):
            k0 = kb * KIN
            tile_a_i = pl.slice(normed_tile, [rows, KIN], [0, k0])
            tile_wk_i = pl.slice(wk, [KIN, KVC], [layer_off_h + k0, kv0])
            tile_wv_i = pl.slice(wv, [KIN, KVC], [layer_off_h + k0, kv0])
            k_acc = pl.matmul_acc(k_acc, tile_a_i, tile_wk_i)
            v_acc = pl.matmul_acc(v_acc, tile_a_i, tile_wv_i)
        return k_acc, v_acc

    @pl.inline
    def head_rmsnorm(proj, row0, col0, rows, heads, norm_w):
        """Per-head RMSNorm (rsqrt, FP32) of `heads` heads of `rows` rows, as the rows of a
        [rows*heads, D] tile (row-major reshape of [rows, heads*D])."""
        x = pl.reshape(pl.slice(proj, [rows, heads * D], [row0, col0]), [rows * heads, D])
        sq = pl.row_sum(pl.mul(x, x))
        inv = pl.rsqrt(pl.add(pl.mul(sq, HEAD_DIM_INV), EPS))
        normed = pl.col_expand_mul(pl.row_expand_mul(x, inv), norm_w)
        return pl.reshape(normed, [rows, heads * D])

    @pl.inline
    def rope_tile(src, col0, rows, cos_lo, cos_hi, sin_lo, sin_hi):
        """Half-split RoPE (FP32) of the head at column `col0` of `rows` tokens, each with its
        own cos/sin row (the prefill's per-token tiles)."""
        lo = pl.slice(src, [rows, HALF], [0, col0])
        hi = pl.slice(src, [rows, HALF], [0, col0 + HALF])
        rot_lo = pl.sub(pl.mul(lo, cos_lo), pl.mul(hi, sin_lo))
        rot_hi = pl.add(pl.mul(hi, cos_hi), pl.mul(lo, sin_hi))
        return rot_lo, rot_hi

    @pl.inline
    def rope_row(src, row0, col0, rows, cos_lo, cos_hi, sin_lo, sin_hi):
        """Half-split RoPE (FP32) of `rows` rows of a head at one position: one cos/sin row,
        broadcast over the rows (the decode's current token)."""
        lo = pl.slice(src, [rows, HALF], [row0, col0])
        hi = pl.slice(src, [rows, HALF], [row0, col0 + HALF])
        rot_lo = pl.sub(pl.col_expand_mul(lo, cos_lo), pl.col_expand_mul(hi, sin_lo))
        rot_hi = pl.add(pl.col_expand_mul(hi, cos_hi), pl.col_expand_mul(lo, sin_hi))
        return rot_lo, rot_hi

    @pl.inline
    def block_scores(q_tile, gi, sb, block_table, bt_base, k_cache, layer_off_cache):
        """S = Q K^T (BF16 operands, FP32 result) of KV group `gi` against context block `sb`."""
        pbid = pl.cast(pl.tensor.read(block_table, [bt_base + sb]), pl.INDEX)
        k_row0 = layer_off_cache + (pbid * NKV + gi) * BS
        k_tile = pl.slice(k_cache, [BS, D], [k_row0, 0])
        return pl.matmul(q_tile, k_tile, out_dtype=pl.FP32, b_trans=True)

    @pl.inline
    def block_softmax(scores):
        """One block's local softmax of the masked, scaled scores: max, BF16 P, and
        l = row_sum of the rounded P."""
        cur_mi = pl.row_max(scores)
        exp_scores = pl.exp(pl.row_expand_sub(scores, cur_mi))
        exp_bf16 = pl.cast(exp_scores, pl.BF16)
        cur_li = pl.row_sum(pl.cast(exp_bf16, pl.FP32))
        return exp_bf16, cur_mi, cur_li

    @pl.inline
    def block_values(all_exp_padded, s_row, rows, gi, sb, kv_len, block_table, bt_base, v_cache,
                     layer_off_cache):  # fmt: skip
        """O_blk = P V (FP32) of group `gi`, block `sb`; V rows past `kv_len` are zero-filled so
        stale (even non-finite) cache rows cannot leak through 0 * NaN."""
        valid_len = pl.min(BS, kv_len - sb * BS)
        pbid = pl.cast(pl.tensor.read(block_table, [bt_base + sb]), pl.INDEX)
        v_row0 = layer_off_cache + (pbid * NKV + gi) * BS
        exp_tile = pl.slice(all_exp_padded, [rows, BS], [s_row, 0])
        v_valid = pl.slice(v_cache, [BS, D], [v_row0, 0], valid_shape=[valid_len, D])
        v_tile = pl.fillpad(v_valid, pad_value=pl.PadValue.zero)
        return pl.matmul(exp_tile, v_tile, out_dtype=pl.FP32)

    @pl.inline
    def merge_blocks(all_oi_tmp, all_cur_mi, all_cur_li, gi, rows, ctx_blocks):
        """Online merge (FP32) of group `gi`'s blocks; the context rows in BF16."""
        base = gi * MB * rows
        oi = pl.slice(all_oi_tmp, [rows, D], [base, 0])
        mi = pl.slice(all_cur_mi, [rows, 1], [base, 0])
        li = pl.slice(all_cur_li, [rows, 1], [base, 0])
        for sb in pl.range(1, ctx_blocks):
            blk = base + sb * rows
            oi_blk = pl.slice(all_oi_tmp, [rows, D], [blk, 0])
            mi_blk = pl.slice(all_cur_mi, [rows, 1], [blk, 0])
            li_blk = pl.slice(all_cur_li, [rows, 1], [blk, 0])
            mi_new = pl.maximum(mi, mi_blk)
            alpha = pl.exp(pl.sub(mi, mi_new))
            beta = pl.exp(pl.sub(mi_blk, mi_new))
            li = pl.add(pl.mul(alpha, li), pl.mul(beta, li_blk))
            oi = pl.add(pl.row_expand_mul(oi, alpha), pl.row_expand_mul(oi_blk, beta))
            mi = mi_new
        return pl.cast(pl.row_expand_div(oi, li), pl.BF16)

    @pl.inline
    def swiglu(gate_acc, up_acc):
        """silu(gate) * up (FP32), as BF16."""
        sigmoid = pl.recip(pl.add(pl.exp(pl.neg(gate_acc)), 1.0))
        mlp_chunk = pl.mul(pl.mul(gate_acc, sigmoid), up_acc)
        return pl.cast(mlp_chunk, pl.BF16)

    @pl.inline
    def lm_head_chunk(final_normed, b0, lm_head_weight, v0):
        """FP32 logits [BT, VC] of vocabulary rows `v0..` (LM head, K-loop over the hidden)."""
        h_chunk_0 = pl.slice(final_normed, [BT, KC], [b0, 0])
        lm_w_0 = pl.slice(lm_head_weight, [VC, KC], [v0, 0])
        lm_acc = pl.matmul(h_chunk_0, lm_w_0, out_dtype=pl.FP32, b_trans=True)
        for kb in pl.range(1, NKC):
            k0 = kb * KC
            h_chunk = pl.slice(final_normed, [BT, KC], [b0, k0])
            lm_w = pl.slice(lm_head_weight, [VC, KC], [v0, k0])
            lm_acc = pl.matmul_acc(lm_acc, h_chunk, lm_w, b_trans=True)
        return lm_acc

    @pl.program
    class Qwen3DecodeAll:
        @pl.function(type=pl.FunctionType.Opaque)
        def qwen3_prefill_all(
            self,
            hidden_states: pl.Tensor[[USER_BATCH, PREFILL_LEN, H], pl.BF16],
            seq_lens: pl.Tensor[[USER_BATCH], pl.INT32],
            input_rms_weight: pl.Tensor[[L, H], pl.FP32],
            wq: pl.Tensor[[L * H, QW], pl.BF16],
            wk: pl.Tensor[[L * H, KVW], pl.BF16],
            wv: pl.Tensor[[L * H, KVW], pl.BF16],
            q_norm_weight: pl.Tensor[[L, D], pl.FP32],
            k_norm_weight: pl.Tensor[[L, D], pl.FP32],
            rope_cos: pl.Tensor[[MAX_SEQ, D], pl.FP32],
            rope_sin: pl.Tensor[[MAX_SEQ, D], pl.FP32],
            block_table: pl.Tensor[[BLOCK_TABLE_LEN], pl.INT32],
            slot_mapping: pl.Tensor[[PREFILL_SLOTS], pl.INT32],
            k_cache: pl.InOut[pl.Tensor[[CACHE_ROWS, D], pl.BF16]],
            v_cache: pl.InOut[pl.Tensor[[CACHE_ROWS, D], pl.BF16]],
            wo: pl.Tensor[[L * QW, H], pl.BF16],
            post_rms_weight: pl.Tensor[[L, H], pl.FP32],
            w_gate: pl.Tensor[[L * H, I], pl.BF16],
            w_up: pl.Tensor[[L * H, I], pl.BF16],
            w_down: pl.Tensor[[L * I, H], pl.BF16],
            out: pl.Out[pl.Tensor[[USER_BATCH, PREFILL_LEN, H], pl.BF16]],
        ) -> pl.Tuple[
            pl.Tensor[[USER_BATCH, PREFILL_LEN, H], pl.BF16],
            pl.Tensor[[CACHE_ROWS, D], pl.BF16],
            pl.Tensor[[CACHE_ROWS, D], pl.BF16],
        ]:
            user_batch = pl.tensor.dim(hidden_states, 0)
            seq_cap = pl.tensor.dim(hidden_states, 1)
            cap_tiles = (seq_cap + TT - 1) // TT

            # ---- causal mask for a query block of QB tokens x QPK heads (token-major rows
            # r = token*QPK + head): row r keeps columns c <= BS + r // QPK (+FP32 max) and masks
            # the rest (FP32 min). The window [off, off + BS) with off = BS - (q0 - sb*BS) is the
            # diagonal block's triangle; earlier blocks use off = 0 (nothing masked).
            causal_mask = pl.create_tensor([QR, 2 * BS], dtype=pl.FP32)
            with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_causal_mask"):
                keep_row = pl.full([1, 2 * BS], dtype=pl.FP32, value=F32_MAX)
                for r in pl.range(QR):
                    kept = pl.slice(
                        keep_row, [1, 2 * BS], [0, 0], valid_shape=[1, BS + r // QPK + 1]
                    )
                    causal_mask = pl.assemble(
                        causal_mask, pl.fillpad(kept, pad_value=pl.PadValue.min), [r, 0]
                    )

            # ---- copy-in: only the prompt rows; every later read is a valid_shape view that is
            # fillpad'ed, so rows past a prompt are never read.
            current_hidden = pl.create_tensor([user_batch, seq_cap, H], dtype=pl.BF16)
            for b in pl.parallel(user_batch):
                n_tok = pl.tensor.read(seq_lens, [b])
                for tile in pl.range((n_tok + TT - 1) // TT):
                    p0 = tile * TT
                    valid_tok = pl.min(TT, n_tok - p0)
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_copy_hidden"):
                        for kb in pl.range(NKC):
                            k0 = kb * KC
                            prompt_rows = pl.slice(
                                hidden_states,
                                [1, TT, KC],
                                [b, p0, k0],
                                valid_shape=[1, valid_tok, KC],
                            )
                            current_hidden = pl.assemble(current_hidden, prompt_rows, [b, p0, k0])

            for layer in pl.range(L):
                layer_off_h = layer * H
                layer_off_q = layer * QW
                layer_off_inter = layer * I
                layer_off_cache = layer * LAYER_CACHE_ROWS
                q_norm_w = pl.slice(q_norm_weight, [1, D], [layer, 0])
                k_norm_w = pl.slice(k_norm_weight, [1, D], [layer, 0])
                next_hidden = pl.create_tensor([user_batch, seq_cap, H], dtype=pl.BF16)

                for b in pl.parallel(user_batch):
                    n_tok = pl.tensor.read(seq_lens, [b])
                    bt_base = b * MB
                    slot_base = b * seq_cap
                    # Token tiles in order: tile t's attention reads the K/V that tiles < t wrote.
                    for tile in pl.range((n_tok + TT - 1) // TT):
                        p0 = tile * TT
                        valid_tok = pl.min(TT, n_tok - p0)
                        n_qblk = (valid_tok + QB - 1) // QB

                        # ---- the token tile [TT, H], rows past the prompt zero
                        x_tile = pl.create_tensor([TT, H], dtype=pl.BF16)
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_load_tile"):
                            for kb in pl.range(NKC):
                                k0 = kb * KC
                                tok_rows = pl.slice(
                                    current_hidden,
                                    [1, TT, KC],
                                    [b, p0, k0],
                                    valid_shape=[1, valid_tok, KC],
                                )
                                tok_full = pl.fillpad(tok_rows, pad_value=pl.PadValue.zero)
                                x_tile = pl.assemble(
                                    x_tile, pl.reshape(tok_full, [TT, KC]), [0, k0]
                                )

                        # ---- scope 1: input RMSNorm (recip of sqrt) -> BF16, Q/K/V projections
                        normed_tile = pl.create_tensor([TT, H], dtype=pl.BF16)
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_rmsnorm"):
                            normed_tile = input_rmsnorm(
                                x_tile, 0, TT, normed_tile, input_rms_weight, layer
                            )

                        q_proj = pl.create_tensor([TT, QW], dtype=pl.FP32)
                        with pl.at(
                            level=pl.Level.CORE_GROUP,
                            optimization=pl.chunked_loop_optimizer,
                            name_hint="prefill_q_proj",
                        ):
                            for ob in pl.parallel(NQC, chunk=4):
                                q0 = ob * QC
                                q_acc = k_chain(
                                    normed_tile, 0, TT, KIN, NKIN, wq, layer_off_h, q0, QC
                                )
                                q_proj = pl.assemble(q_proj, q_acc, [0, q0])

                        k_proj = pl.create_tensor([TT, KVW], dtype=pl.FP32)
                        v_proj = pl.create_tensor([TT, KVW], dtype=pl.FP32)
                        with pl.at(
                            level=pl.Level.CORE_GROUP,
                            optimization=pl.chunked_loop_optimizer,
                            name_hint="prefill_kv_proj",
                        ):
                            for ob in pl.parallel(NKVC, chunk=4):
                                kv0 = ob * KVC
                                k_acc, v_acc = kv_chain(normed_tile, TT, wk, wv, layer_off_h, kv0)
                                k_proj = pl.assemble(k_proj, k_acc, [0, kv0])
                                v_proj = pl.assemble(v_proj, v_acc, [0, kv0])

                        # ---- per-head q/k RMSNorm (rsqrt), FP32, QNH / KNH heads per step
                        q_proj_norm = pl.create_tensor([TT, QW], dtype=pl.FP32)
                        k_proj_norm = pl.create_tensor([TT, KVW], dtype=pl.FP32)
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_qk_norm"):
                            for hg in pl.range(NQN):
                                hq0 = hg * (QNH * D)
                                q_normed = head_rmsnorm(q_proj, 0, hq0, TT, QNH, q_norm_w)
                                q_proj_norm = pl.assemble(q_proj_norm, q_normed, [0, hq0])
                            for hg in pl.range(NKN):
                                hk0 = hg * (KNH * D)
                                k_normed = head_rmsnorm(k_proj, 0, hk0, TT, KNH, k_norm_w)
                                k_proj_norm = pl.assemble(k_proj_norm, k_normed, [0, hk0])

                        # ---- RoPE (half-split, FP32) with one cos/sin row per token; rotated
                        # Q and K -> BF16, V -> BF16
                        q_rot = pl.create_tensor([TT, QW], dtype=pl.BF16)
                        k_rot = pl.create_tensor([TT, KVW], dtype=pl.BF16)
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_rope"):
                            cos_rows = pl.slice(
                                rope_cos, [TT, D], [p0, 0], valid_shape=[valid_tok, D]
                            )
                            sin_rows = pl.slice(
                                rope_sin, [TT, D], [p0, 0], valid_shape=[valid_tok, D]
                            )
                            cos_t = pl.fillpad(cos_rows, pad_value=pl.PadValue.zero)
                            sin_t = pl.fillpad(sin_rows, pad_value=pl.PadValue.zero)
                            cos_lo = pl.slice(cos_t, [TT, HALF], [0, 0])
                            cos_hi = pl.slice(cos_t, [TT, HALF], [0, HALF])
                            sin_lo = pl.slice(sin_t, [TT, HALF], [0, 0])
                            sin_hi = pl.slice(sin_t, [TT, HALF], [0, HALF])
                            for h in pl.range(NQ):
                                q_rot_lo, q_rot_hi = rope_tile(
                                    q_proj_norm, h * D, TT, cos_lo, cos_hi, sin_lo, sin_hi
                                )
                                q_rot = pl.assemble(q_rot, pl.cast(q_rot_lo, pl.BF16), [0, h * D])
                                q_rot = pl.assemble(
                                    q_rot, pl.cast(q_rot_hi, pl.BF16), [0, h * D + HALF]
                                )
                            for ki in pl.range(NKV):
                                k_rot_lo, k_rot_hi = rope_tile(
                                    k_proj_norm, ki * D, TT, cos_lo, cos_hi, sin_lo, sin_hi
                                )
                                k_rot = pl.assemble(k_rot, pl.cast(k_rot_lo, pl.BF16), [0, ki * D])
                                k_rot = pl.assemble(
                                    k_rot, pl.cast(k_rot_hi, pl.BF16), [0, ki * D + HALF]
                                )
                            v_bf16 = pl.cast(v_proj, pl.BF16)

                        # ---- paged KV write: query block j's tokens are consecutive rows of one
                        # page per KV head, starting at the slot of its first token; only the
                        # prompt's rows are written.
                        with pl.at(
                            level=pl.Level.CORE_GROUP,
                            optimization=pl.chunked_loop_optimizer,
                            name_hint="prefill_kv_cache",
                        ):
                            for j in pl.range(n_qblk):
                                blk_valid = pl.min(QB, valid_tok - j * QB)
                                slot = pl.tensor.read(slot_mapping, [slot_base + p0 + j * QB])
                                slot_block = slot // BS
                                slot_offset = slot - slot_block * BS
                                for ki in pl.parallel(0, NKV, 1, chunk=8):
                                    cache_row = (
                                        layer_off_cache + (slot_block * NKV + ki) * BS + slot_offset
                                    )
                                    k_rows = pl.slice(
                                        k_rot, [QB, D], [j * QB, ki * D], valid_shape=[blk_valid, D]
                                    )
                                    k_cache = pl.assemble(k_cache, k_rows, [cache_row, 0])
                                    v_rows = pl.slice(
                                        v_bf16,
                                        [QB, D],
                                        [j * QB, ki * D],
                                        valid_shape=[blk_valid, D],
                                    )
                                    v_cache = pl.assemble(v_cache, v_rows, [cache_row, 0])

                        # ---- scope 2: causal attention, per query block of QB tokens and KV
                        # head gi (its QPK query heads as QR = QB*QPK rows), over the blocks
                        # 0..q0//BS, with the decode kernel's per-block softmax and merge.
                        attn_tile = pl.create_tensor([TT, QW], dtype=pl.BF16)
                        for j in pl.range(n_qblk):
                            q0 = p0 + j * QB
                            ctx_blocks = q0 // BS + 1
                            # Keys written so far: the prompt up to this query block's end (later
                            # rows of its KV block hold stale data; masked like decode's tail).
                            kv_end = pl.min(n_tok, q0 + QB)
                            all_raw_scores = pl.create_tensor([SROWS_P, BS], dtype=pl.FP32)
                            all_exp_padded = pl.create_tensor([SROWS_P, BS], dtype=pl.BF16)
                            all_oi_tmp = pl.create_tensor([SROWS_P, D], dtype=pl.FP32)
                            all_cur_mi = pl.create_tensor([SROWS_P, 1], dtype=pl.FP32)
                            all_cur_li = pl.create_tensor([SROWS_P, 1], dtype=pl.FP32)

                            # (a) raw scores S = Q K^T per block (BF16 operands, FP32 result)
                            with pl.at(
                                level=pl.Level.CORE_GROUP,
                                optimization=pl.chunked_loop_optimizer,
                                name_hint="prefill_qk_matmul",
                            ):
                                for gi in pl.range(NKV):
                                    q_tile = pl.reshape(
                                        pl.slice(q_rot, [QB, QGW], [j * QB, gi * QGW]), [QR, D]
                                    )
                                    for sb in pl.parallel(ctx_blocks, chunk=SB_CHUNK):
                                        raw_scores = block_scores(
                                            q_tile,
                                            gi,
                                            sb,
                                            block_table,
                                            bt_base,
                                            k_cache,
                                            layer_off_cache,
                                        )
                                        all_raw_scores = pl.assemble(
                                            all_raw_scores, raw_scores, [(gi * MB + sb) * QR, 0]
                                        )

                            # (b) per-block softmax: columns past the prompt -> min (fillpad),
                            # the causal triangle -> min (minimum with the mask window), then
                            # the scale; local max, BF16 P, l = row_sum of the rounded P
                            with pl.at(
                                level=pl.Level.CORE_GROUP,
                                optimization=pl.chunked_loop_optimizer,
                                name_hint="prefill_softmax",
                            ):
                                for gi in pl.range(NKV):
                                    for sb in pl.parallel(ctx_blocks, chunk=SB_CHUNK):
                                        s_row = (gi * MB + sb) * QR
                                        valid_len = pl.min(BS, kv_end - sb * BS)
                                        mask_off = pl.max(0, BS - (q0 - sb * BS))
                                        scores_valid = pl.slice(
                                            all_raw_scores,
                                            [QR, BS],
                                            [s_row, 0],
                                            valid_shape=[QR, valid_len],
                                        )
                                        scores_padded = pl.fillpad(
                                            scores_valid, pad_value=pl.PadValue.min
                                        )
                                        causal = pl.slice(causal_mask, [QR, BS], [0, mask_off])
                                        scores = pl.mul(
                                            pl.minimum(scores_padded, causal), ATTN_SCALE
                                        )
                                        exp_bf16, cur_mi, cur_li = block_softmax(scores)
                                        all_exp_padded = pl.assemble(
                                            all_exp_padded, exp_bf16, [s_row, 0]
                                        )
                                        all_cur_mi = pl.assemble(all_cur_mi, cur_mi, [s_row, 0])
                                        all_cur_li = pl.assemble(all_cur_li, cur_li, [s_row, 0])

                            # (c) O_blk = P V per block; V rows past the prompt zero-filled
                            with pl.at(
                                level=pl.Level.CORE_GROUP,
                                optimization=pl.chunked_loop_optimizer,
                                name_hint="prefill_sv_matmul",
                            ):
                                for gi in pl.range(NKV):
                                    for sb in pl.parallel(ctx_blocks, chunk=SB_CHUNK):
                                        s_row = (gi * MB + sb) * QR
                                        oi_tmp = block_values(
                                            all_exp_padded,
                                            s_row,
                                            QR,
                                            gi,
                                            sb,
                                            kv_end,
                                            block_table,
                                            bt_base,
                                            v_cache,
                                            layer_off_cache,
                                        )
                                        all_oi_tmp = pl.assemble(all_oi_tmp, oi_tmp, [s_row, 0])

                            # (d) online merge across blocks (FP32), ctx -> BF16, (e) the QPK
                            # heads of group gi back to [QB, QPK*D] columns of attn_tile
                            with pl.at(
                                level=pl.Level.CORE_GROUP, name_hint="prefill_online_softmax"
                            ):
                                for gi in pl.range(NKV):
                                    ctx = merge_blocks(
                                        all_oi_tmp, all_cur_mi, all_cur_li, gi, QR, ctx_blocks
                                    )
                                    attn_tile = pl.assemble(
                                        attn_tile, pl.reshape(ctx, [QB, QGW]), [j * QB, gi * QGW]
                                    )

                        # Rows past the prompt (and query blocks past it, never attended): zero.
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_attn_pad_rows"):
                            for kb in pl.range(NOK):
                                k0 = kb * OK
                                attn_rows = pl.slice(
                                    attn_tile, [TT, OK], [0, k0], valid_shape=[valid_tok, OK]
                                )
                                attn_tile = pl.assemble(
                                    attn_tile,
                                    pl.fillpad(attn_rows, pad_value=pl.PadValue.zero),
                                    [0, k0],
                                )

                        # ---- scope 3: O projection + residual (FP32), post RMSNorm, SwiGLU,
                        # down + residual -> BF16 rows of next_hidden
                        resid1_tile = pl.create_tensor([TT, H], dtype=pl.FP32)
                        for ob in pl.range(NOC):
                            o0 = ob * OC
                            with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_out_proj"):
                                o_acc = k_chain(attn_tile, 0, TT, OK, NOK, wo, layer_off_q, o0, OC)
                            with pl.at(
                                level=pl.Level.CORE_GROUP, name_hint="prefill_out_proj_residual"
                            ):
                                resid = pl.cast(pl.slice(x_tile, [TT, OC], [0, o0]), pl.FP32)
                                resid1_tile = pl.assemble(
                                    resid1_tile, pl.add(o_acc, resid), [0, o0]
                                )

                        post_norm_tile = pl.create_tensor([TT, H], dtype=pl.BF16)
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_post_rmsnorm"):
                            post_norm_tile = post_rmsnorm(
                                resid1_tile, TT, post_norm_tile, post_rms_weight, layer
                            )

                        mlp_tile = pl.create_tensor([TT, I], dtype=pl.BF16)
                        for ob in pl.range(NMC):
                            m0 = ob * MC
                            with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_gate_proj"):
                                gate_acc = k_chain(
                                    post_norm_tile, 0, TT, KC, NKC, w_gate, layer_off_h, m0, MC
                                )
                            with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_up_proj"):
                                up_acc = k_chain(
                                    post_norm_tile, 0, TT, KC, NKC, w_up, layer_off_h, m0, MC
                                )
                            with pl.at(
                                level=pl.Level.CORE_GROUP,
                                optimization=pl.chunked_loop_optimizer,
                                name_hint="prefill_silu",
                            ):
                                mlp_tile = pl.assemble(mlp_tile, swiglu(gate_acc, up_acc), [0, m0])

                        for dob in pl.range(NDC):
                            d0 = dob * DC
                            with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_down_proj"):
                                down_acc = k_chain(
                                    mlp_tile, 0, TT, MC, NMC, w_down, layer_off_inter, d0, DC
                                )
                            with pl.at(
                                level=pl.Level.CORE_GROUP, name_hint="prefill_down_proj_residual"
                            ):
                                layer_out = pl.add(
                                    down_acc, pl.slice(resid1_tile, [TT, DC], [0, d0])
                                )
                                out_rows = pl.reshape(pl.cast(layer_out, pl.BF16), [1, TT, DC])
                                prompt_out = pl.slice(
                                    out_rows, [1, TT, DC], [0, 0, 0], valid_shape=[1, valid_tok, DC]
                                )
                                next_hidden = pl.assemble(next_hidden, prompt_out, [b, p0, d0])

                current_hidden = next_hidden  # BF16 inter-layer carry

            # ---- copy-out: every row of `out`; rows past a prompt are zero
            for b in pl.parallel(user_batch):
                n_tok = pl.tensor.read(seq_lens, [b])
                for tile in pl.range(cap_tiles):
                    p0 = tile * TT
                    valid_tok = pl.max(0, pl.min(TT, n_tok - p0))
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="prefill_copy_out"):
                        for kb in pl.range(NKC):
                            k0 = kb * KC
                            prompt_rows = pl.slice(
                                current_hidden,
                                [1, TT, KC],
                                [b, p0, k0],
                                valid_shape=[1, valid_tok, KC],
                            )
                            rows_full = pl.fillpad(prompt_rows, pad_value=pl.PadValue.zero)
                            rows_in_out = pl.slice(
                                rows_full,
                                [1, TT, KC],
                                [0, 0, 0],
                                valid_shape=[1, pl.min(TT, seq_cap - p0), KC],
                            )
                            out = pl.assemble(out, rows_in_out, [b, p0, k0])

            return out, k_cache, v_cache

        @pl.function(type=pl.FunctionType.Opaque)
        def qwen3_decode_all(
            self,
            hidden_states: pl.Tensor[[USER_BATCH, H], pl.BF16],
            input_rms_weight: pl.Tensor[[L, H], pl.FP32],
            wq: pl.Tensor[[L * H, QW], pl.BF16],
            wk: pl.Tensor[[L * H, KVW], pl.BF16],
            wv: pl.Tensor[[L * H, KVW], pl.BF16],
            q_norm_weight: pl.Tensor[[L, D], pl.FP32],
            k_norm_weight: pl.Tensor[[L, D], pl.FP32],
            seq_lens: pl.Tensor[[USER_BATCH], pl.INT32],
            block_table: pl.Tensor[[BLOCK_TABLE_LEN], pl.INT32],
            slot_mapping: pl.Tensor[[USER_BATCH], pl.INT32],
            rope_cos: pl.Tensor[[MAX_SEQ, D], pl.FP32],
            rope_sin: pl.Tensor[[MAX_SEQ, D], pl.FP32],
            k_cache: pl.Tensor[[CACHE_ROWS, D], pl.BF16],
            v_cache: pl.Tensor[[CACHE_ROWS, D], pl.BF16],
            wo: pl.Tensor[[L * QW, H], pl.BF16],
            post_rms_weight: pl.Tensor[[L, H], pl.FP32],
            w_gate: pl.Tensor[[L * H, I], pl.BF16],
            w_up: pl.Tensor[[L * H, I], pl.BF16],
            w_down: pl.Tensor[[L * I, H], pl.BF16],
            final_norm_weight: pl.Tensor[[1, H], pl.FP32],
            lm_head_weight: pl.Tensor[[PV, H], pl.BF16],
            out: pl.Out[pl.Tensor[[USER_BATCH, H], pl.BF16]],
            rms_normed: pl.Out[pl.Tensor[[USER_BATCH, H], pl.BF16]],
            logits: pl.Out[pl.Tensor[[USER_BATCH, PV], pl.FP32]],
        ) -> pl.Tuple[
            pl.Tensor[[USER_BATCH, H], pl.BF16],
            pl.Tensor[[USER_BATCH, H], pl.BF16],
            pl.Tensor[[USER_BATCH, PV], pl.FP32],
        ]:
            user_batch = pl.tensor.dim(hidden_states, 0)
            batch_padded = (user_batch + BT - 1) // BT * BT
            last_b0 = batch_padded - BT
            last_valid = user_batch - last_b0

            # ---- copy-in: rows past U of the last tile are zero-filled (fillpad), so every
            # row of current_hidden is defined and padding rows stay exactly zero.
            current_hidden = pl.create_tensor([batch_padded, H], dtype=pl.BF16)
            for b0 in pl.parallel(0, batch_padded, BT):
                cur_valid = pl.min(BT, user_batch - b0)
                with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_copy_hidden"):
                    for kb in pl.range(NKC):
                        k0 = kb * KC
                        hidden_chunk = pl.slice(
                            hidden_states, [BT, KC], [b0, k0], valid_shape=[cur_valid, KC]
                        )
                        hidden_tile = pl.fillpad(hidden_chunk, pad_value=pl.PadValue.zero)
                        current_hidden = pl.assemble(current_hidden, hidden_tile, [b0, k0])

            for layer in pl.range(L):
                layer_off_h = layer * H
                layer_off_q = layer * QW
                layer_off_inter = layer * I
                layer_off_cache = layer * LAYER_CACHE_ROWS
                q_norm_w = pl.slice(q_norm_weight, [1, D], [layer, 0])
                k_norm_w = pl.slice(k_norm_weight, [1, D], [layer, 0])

                next_hidden = pl.create_tensor([batch_padded, H], dtype=pl.BF16)
                q_proj = pl.create_tensor([batch_padded, QW], dtype=pl.FP32)
                k_proj = pl.create_tensor([batch_padded, KVW], dtype=pl.FP32)
                v_proj = pl.create_tensor([batch_padded, KVW], dtype=pl.FP32)
                q_proj_norm = pl.create_tensor([batch_padded, QW], dtype=pl.FP32)
                k_proj_norm = pl.create_tensor([batch_padded, KVW], dtype=pl.FP32)

                # ---- scope 1: input RMSNorm (recip of sqrt) -> BF16, Q/K/V projections (FP32)
                for b0 in pl.parallel(0, batch_padded, BT):
                    normed_tile = pl.create_tensor([BT, H], dtype=pl.BF16)
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_rmsnorm"):
                        normed_tile = input_rmsnorm(
                            current_hidden, b0, BT, normed_tile, input_rms_weight, layer
                        )

                    with pl.at(
                        level=pl.Level.CORE_GROUP,
                        optimization=pl.chunked_loop_optimizer,
                        name_hint="decode_q_proj",
                    ):
                        for ob in pl.parallel(NQC, chunk=4):
                            q0 = ob * QC
                            q_acc = k_chain(normed_tile, 0, BT, KIN, NKIN, wq, layer_off_h, q0, QC)
                            q_proj = pl.assemble(q_proj, q_acc, [b0, q0])

                    with pl.at(
                        level=pl.Level.CORE_GROUP,
                        optimization=pl.chunked_loop_optimizer,
                        name_hint="decode_kv_proj",
                    ):
                        for ob in pl.parallel(NKVC, chunk=4):
                            kv0 = ob * KVC
                            k_acc, v_acc = kv_chain(normed_tile, BT, wk, wv, layer_off_h, kv0)
                            k_proj = pl.assemble(k_proj, k_acc, [b0, kv0])
                            v_proj = pl.assemble(v_proj, v_acc, [b0, kv0])

                # ---- per-head q/k RMSNorm (rsqrt), FP32; QNH heads per step as rows of a
                # [BT*QNH, D] tile (row-major reshape of [BT, QNH*D]).
                for b0 in pl.parallel(0, batch_padded, BT):
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_qk_norm"):
                        for hg in pl.range(NQN):
                            hq0 = hg * (QNH * D)
                            q_normed = head_rmsnorm(q_proj, b0, hq0, BT, QNH, q_norm_w)
                            q_proj_norm = pl.assemble(q_proj_norm, q_normed, [b0, hq0])
                        for hg in pl.range(NKN):
                            hk0 = hg * (KNH * D)
                            k_normed = head_rmsnorm(k_proj, b0, hk0, BT, KNH, k_norm_w)
                            k_proj_norm = pl.assemble(k_proj_norm, k_normed, [b0, hk0])

                # ---- scope 2: RoPE + paged KV write + grouped decode attention, per user
                attn_out = pl.create_tensor([batch_padded, QW], dtype=pl.BF16)
                for b in pl.parallel(user_batch):
                    ctx_len = pl.tensor.read(seq_lens, [b])
                    pos = ctx_len - 1
                    ctx_blocks = (ctx_len + BS - 1) // BS
                    bt_base = b * MB
                    slot = pl.tensor.read(slot_mapping, [b])
                    slot_block = slot // BS
                    slot_offset = slot - slot_block * BS
                    cos_row = pl.slice(rope_cos, [1, D], [pos, 0])
                    sin_row = pl.slice(rope_sin, [1, D], [pos, 0])
                    cos_lo = pl.slice(cos_row, [1, HALF], [0, 0])
                    cos_hi = pl.slice(cos_row, [1, HALF], [0, HALF])
                    sin_lo = pl.slice(sin_row, [1, HALF], [0, 0])
                    sin_hi = pl.slice(sin_row, [1, HALF], [0, HALF])

                    # Group ki = KV head ki: its QPK query heads, rotated, in rows
                    # [ki*QP, ki*QP + QPK); rows QPK..QP-1 are never written (fillpad on read).
                    q_padded = pl.create_tensor([NKV * QP, D], dtype=pl.BF16)
                    with pl.at(
                        level=pl.Level.CORE_GROUP,
                        optimization=pl.chunked_loop_optimizer,
                        name_hint="decode_rope_kv_cache",
                    ):
                        for ki in pl.parallel(0, NKV, 1, chunk=8):
                            kv_col = ki * D
                            cache_row = layer_off_cache + (slot_block * NKV + ki) * BS + slot_offset
                            k_rot_lo, k_rot_hi = rope_row(
                                k_proj_norm, b, kv_col, 1, cos_lo, cos_hi, sin_lo, sin_hi
                            )
                            k_cache = pl.assemble(
                                k_cache, pl.cast(k_rot_lo, pl.BF16), [cache_row, 0]
                            )
                            k_cache = pl.assemble(
                                k_cache, pl.cast(k_rot_hi, pl.BF16), [cache_row, HALF]
                            )
                            v_row = pl.slice(v_proj, [1, D], [b, kv_col])
                            v_cache = pl.assemble(v_cache, pl.cast(v_row, pl.BF16), [cache_row, 0])

                            q_group = pl.reshape(
                                pl.slice(q_proj_norm, [1, QGW], [b, ki * QGW]), [QPK, D]
                            )
                            q_rot_lo, q_rot_hi = rope_row(
                                q_group, 0, 0, QPK, cos_lo, cos_hi, sin_lo, sin_hi
                            )
                            q_padded = pl.assemble(
                                q_padded, pl.cast(q_rot_lo, pl.BF16), [ki * QP, 0]
                            )
                            q_padded = pl.assemble(
                                q_padded, pl.cast(q_rot_hi, pl.BF16), [ki * QP, HALF]
                            )

                    # Per-user scratch; slot (group gi, block sb) = rows (gi*MB + sb)*QP ..+QP.
                    all_raw_scores = pl.create_tensor([SROWS, BS], dtype=pl.FP32)
                    all_exp_padded = pl.create_tensor([SROWS, BS], dtype=pl.BF16)
                    all_oi_tmp = pl.create_tensor([SROWS, D], dtype=pl.FP32)
                    all_cur_mi = pl.create_tensor([SROWS, 1], dtype=pl.FP32)
                    all_cur_li = pl.create_tensor([SROWS, 1], dtype=pl.FP32)

                    # (a) raw scores S = Q K^T per block (BF16 operands, FP32 result)
                    with pl.at(
                        level=pl.Level.CORE_GROUP,
                        optimization=pl.chunked_loop_optimizer,
                        name_hint="decode_qk_matmul",
                    ):
                        for gi in pl.range(NKV):
                            q_group_rows = pl.slice(
                                q_padded, [QP, D], [gi * QP, 0], valid_shape=[QPK, D]
                            )
                            q_tile = pl.fillpad(q_group_rows, pad_value=pl.PadValue.zero)
                            for sb in pl.parallel(ctx_blocks, chunk=SB_CHUNK):
                                raw_scores = block_scores(
                                    q_tile, gi, sb, block_table, bt_base, k_cache, layer_off_cache
                                )
                                all_raw_scores = pl.assemble(
                                    all_raw_scores, raw_scores, [(gi * MB + sb) * QP, 0]
                                )

                    # (b) per-block softmax: mask (min) before scaling, local max, BF16 P,
                    # l = row_sum of the rounded P
                    with pl.at(
                        level=pl.Level.CORE_GROUP,
                        optimization=pl.chunked_loop_optimizer,
                        name_hint="decode_softmax",
                    ):
                        for gi in pl.range(NKV):
                            for sb in pl.parallel(ctx_blocks, chunk=SB_CHUNK):
                                s_row = (gi * MB + sb) * QP
                                valid_len = pl.min(BS, ctx_len - sb * BS)
                                scores_valid = pl.slice(
                                    all_raw_scores,
                                    [QP, BS],
                                    [s_row, 0],
                                    valid_shape=[QP, valid_len],
                                )
                                scores_padded = pl.fillpad(scores_valid, pad_value=pl.PadValue.min)
                                scores = pl.mul(scores_padded, ATTN_SCALE)
                                exp_bf16, cur_mi, cur_li = block_softmax(scores)
                                all_exp_padded = pl.assemble(all_exp_padded, exp_bf16, [s_row, 0])
                                all_cur_mi = pl.assemble(all_cur_mi, cur_mi, [s_row, 0])
                                all_cur_li = pl.assemble(all_cur_li, cur_li, [s_row, 0])

                    # (c) O_blk = P V per block; V rows past the context are zero-filled so
                    # stale (even non-finite) cache rows cannot leak through 0 * NaN.
                    with pl.at(
                        level=pl.Level.CORE_GROUP,
                        optimization=pl.chunked_loop_optimizer,
                        name_hint="decode_sv_matmul",
                    ):
                        for gi in pl.range(NKV):
                            for sb in pl.parallel(ctx_blocks, chunk=SB_CHUNK):
                                s_row = (gi * MB + sb) * QP
                                oi_tmp = block_values(
                                    all_exp_padded,
                                    s_row,
                                    QP,
                                    gi,
                                    sb,
                                    ctx_len,
                                    block_table,
                                    bt_base,
                                    v_cache,
                                    layer_off_cache,
                                )
                                all_oi_tmp = pl.assemble(all_oi_tmp, oi_tmp, [s_row, 0])

                    # (d) online merge across blocks (FP32), ctx -> BF16, (e) unpad the QPK
                    # heads of group gi into attn_out row b
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_online_softmax"):
                        for gi in pl.range(NKV):
                            ctx_bf16 = merge_blocks(
                                all_oi_tmp, all_cur_mi, all_cur_li, gi, QP, ctx_blocks
                            )
                            ctx_heads = pl.reshape(pl.slice(ctx_bf16, [QPK, D], [0, 0]), [1, QGW])
                            attn_out = pl.assemble(attn_out, ctx_heads, [b, gi * QGW])

                # Rows U..batch_padded-1 of attn_out were never written: zero them (fillpad of
                # the last tile) so the O projection reads defined data.
                with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_attn_pad_rows"):
                    for kb in pl.range(NOK):
                        k0 = kb * OK
                        attn_last = pl.slice(
                            attn_out, [BT, OK], [last_b0, k0], valid_shape=[last_valid, OK]
                        )
                        attn_out = pl.assemble(
                            attn_out,
                            pl.fillpad(attn_last, pad_value=pl.PadValue.zero),
                            [last_b0, k0],
                        )

                # ---- scope 3: O projection + residual (FP32), post RMSNorm, SwiGLU, down + residual
                for b0 in pl.parallel(0, batch_padded, BT):
                    resid1_tile = pl.create_tensor([BT, H], dtype=pl.FP32)
                    for ob in pl.range(NOC):
                        o0 = ob * OC
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_out_proj"):
                            o_acc = k_chain(attn_out, b0, BT, OK, NOK, wo, layer_off_q, o0, OC)
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_out_proj_residual"):
                            resid = pl.cast(pl.slice(current_hidden, [BT, OC], [b0, o0]), pl.FP32)
                            resid1_tile = pl.assemble(resid1_tile, pl.add(o_acc, resid), [0, o0])

                    post_norm_tile = pl.create_tensor([BT, H], dtype=pl.BF16)
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_post_rmsnorm"):
                        post_norm_tile = post_rmsnorm(
                            resid1_tile, BT, post_norm_tile, post_rms_weight, layer
                        )

                    mlp_tile = pl.create_tensor([BT, I], dtype=pl.BF16)
                    for ob in pl.range(NMC):
                        m0 = ob * MC
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_gate_proj"):
                            gate_acc = k_chain(
                                post_norm_tile, 0, BT, KC, NKC, w_gate, layer_off_h, m0, MC
                            )
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_up_proj"):
                            up_acc = k_chain(
                                post_norm_tile, 0, BT, KC, NKC, w_up, layer_off_h, m0, MC
                            )
                        with pl.at(
                            level=pl.Level.CORE_GROUP,
                            optimization=pl.chunked_loop_optimizer,
                            name_hint="decode_silu",
                        ):
                            mlp_tile = pl.assemble(mlp_tile, swiglu(gate_acc, up_acc), [0, m0])

                    for dob in pl.range(NDC):
                        d0 = dob * DC
                        with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_down_proj"):
                            down_acc = k_chain(
                                mlp_tile, 0, BT, MC, NMC, w_down, layer_off_inter, d0, DC
                            )
                        with pl.at(
                            level=pl.Level.CORE_GROUP, name_hint="decode_down_proj_residual"
                        ):
                            layer_out = pl.add(down_acc, pl.slice(resid1_tile, [BT, DC], [0, d0]))
                            next_hidden = pl.assemble(
                                next_hidden, pl.cast(layer_out, pl.BF16), [b0, d0]
                            )

                current_hidden = next_hidden  # BF16 inter-layer carry

            # ---- copy-out: only the U valid rows land in `out`
            for b0 in pl.parallel(0, batch_padded, BT):
                cur_valid = pl.min(BT, user_batch - b0)
                for kb in pl.range(NKC):
                    k0 = kb * KC
                    with pl.at(level=pl.Level.CORE_GROUP, name_hint="decode_copy_out"):
                        hidden_rows = pl.slice(
                            current_hidden, [BT, KC], [b0, k0], valid_shape=[cur_valid, KC]
                        )
                        out = pl.assemble(out, hidden_rows, [b0, k0])

            # ---- fused tail, every batch tile: final RMSNorm (rsqrt) -> BF16, LM head (FP32)
            final_normed = pl.create_tensor([batch_padded, H], dtype=pl.BF16)
            for b0 in pl.parallel(0, batch_padded, BT):
                cur_valid = pl.min(BT, user_batch - b0)
                normed_tile = pl.create_tensor([BT, H], dtype=pl.BF16)
                with pl.at(level=pl.Level.CORE_GROUP, name_hint="final_rmsnorm"):
                    normed_tile = final_rmsnorm(
                        current_hidden, b0, cur_valid, False, normed_tile, final_norm_weight
                    )
                    final_normed = pl.assemble(final_normed, normed_tile, [b0, 0])
                    normed_rows = pl.slice(normed_tile, [BT, H], [0, 0], valid_shape=[cur_valid, H])
                    rms_normed = pl.assemble(rms_normed, normed_rows, [b0, 0])

                with pl.at(
                    level=pl.Level.CORE_GROUP, optimizations=[pl.auto_chunk], name_hint="lm_head"
                ):
                    for ob in pl.parallel(NVC, chunk=8):
                        v0 = ob * VC
                        lm_acc = lm_head_chunk(final_normed, b0, lm_head_weight, v0)
                        logit_rows = pl.slice(lm_acc, [BT, VC], [0, 0], valid_shape=[cur_valid, VC])
                        logits = pl.assemble(logits, logit_rows, [b0, v0])

            return out, rms_normed, logits

        @pl.function(type=pl.FunctionType.Opaque)
        def qwen3_final_logits(
            self,
            hidden_states: pl.Tensor[[LOGIT_ROWS, H], pl.BF16],
            final_norm_weight: pl.Tensor[[1, H], pl.FP32],
            lm_head_weight: pl.Tensor[[PV, H], pl.BF16],
            rms_normed: pl.Out[pl.Tensor[[LOGIT_ROWS, H], pl.BF16]],
            logits: pl.Out[pl.Tensor[[LOGIT_ROWS, PV], pl.FP32]],
        ) -> pl.Tuple[
            pl.Tensor[[LOGIT_ROWS, H], pl.BF16],
            pl.Tensor[[LOGIT_ROWS, PV], pl.FP32],
        ]:
            """The fused tail of ``qwen3_decode_all`` on its own: final RMSNorm + LM head for
            any rows of final hidden states (``qwen3_prefill_all``'s ``out`` rows, for the
            logits of every prompt position)."""
            n_rows = pl.tensor.dim(hidden_states, 0)
            rows_padded = (n_rows + BT - 1) // BT * BT
            final_normed = pl.create_tensor([rows_padded, H], dtype=pl.BF16)
            for b0 in pl.parallel(0, rows_padded, BT):
                cur_valid = pl.min(BT, n_rows - b0)
                normed_tile = pl.create_tensor([BT, H], dtype=pl.BF16)
                with pl.at(level=pl.Level.CORE_GROUP, name_hint="rows_final_rmsnorm"):
                    normed_tile = final_rmsnorm(
                        hidden_states, b0, cur_valid, True, normed_tile, final_norm_weight
                    )
                    final_normed = pl.assemble(final_normed, normed_tile, [b0, 0])
                    normed_rows = pl.slice(normed_tile, [BT, H], [0, 0], valid_shape=[cur_valid, H])
                    rms_normed = pl.assemble(rms_normed, normed_rows, [b0, 0])

                with pl.at(
                    level=pl.Level.CORE_GROUP,
                    optimizations=[pl.auto_chunk],
                    name_hint="rows_lm_head",
                ):
                    for ob in pl.parallel(NVC, chunk=8):
                        v0 = ob * VC
                        lm_acc = lm_head_chunk(final_normed, b0, lm_head_weight, v0)
                        logit_rows = pl.slice(lm_acc, [BT, VC], [0, 0], valid_shape=[cur_valid, VC])
                        logits = pl.assemble(logits, logit_rows, [b0, v0])

            return rms_normed, logits

        @pl.function(level=pl.Level.HOST, role=pl.Role.SubWorker)
        def sample_and_prepare(
            self,
            logits: pl.Tensor[[USER_BATCH, PV], pl.FP32],
            seq_lens: pl.Tensor[[USER_BATCH], pl.INT32],
            slot_mapping: pl.Tensor[[USER_BATCH], pl.INT32],
            hidden: pl.Out[pl.Tensor[[USER_BATCH, H], pl.BF16]],
        ) -> pl.Tensor[[USER_BATCH, H], pl.BF16]:
            """Sample from `logits`, write the next tokens' embeddings into `hidden`, and advance
            `seq_lens`/`slot_mapping` in place (declared In, as in the seed, so the host call
            sites escape InOutUseDiscipline; the RAW edge comes from logits -> hidden)."""
            ...

        @pl.function(level=pl.Level.HOST, role=pl.Role.Orchestrator)
        def host_orch(
            self,
            prefill_hidden: pl.Tensor[[USER_BATCH, PREFILL_LEN, H], pl.BF16],
            prefill_seq_lens: pl.Tensor[[USER_BATCH], pl.INT32],
            prefill_slot_mapping: pl.Tensor[[PREFILL_SLOTS], pl.INT32],
            decode_hidden: pl.Tensor[[USER_BATCH, H], pl.BF16],
            decode_seq_lens: pl.Tensor[[USER_BATCH], pl.INT32],
            decode_slot_mapping: pl.Tensor[[USER_BATCH], pl.INT32],
            input_rms_weight: pl.Tensor[[L, H], pl.FP32],
            wq: pl.Tensor[[L * H, QW], pl.BF16],
            wk: pl.Tensor[[L * H, KVW], pl.BF16],
            wv: pl.Tensor[[L * H, KVW], pl.BF16],
            q_norm_weight: pl.Tensor[[L, D], pl.FP32],
            k_norm_weight: pl.Tensor[[L, D], pl.FP32],
            rope_cos: pl.Tensor[[MAX_SEQ, D], pl.FP32],
            rope_sin: pl.Tensor[[MAX_SEQ, D], pl.FP32],
            block_table: pl.Tensor[[BLOCK_TABLE_LEN], pl.INT32],
            k_cache: pl.Tensor[[CACHE_ROWS, D], pl.BF16],
            v_cache: pl.Tensor[[CACHE_ROWS, D], pl.BF16],
            wo: pl.Tensor[[L * QW, H], pl.BF16],
            post_rms_weight: pl.Tensor[[L, H], pl.FP32],
            w_gate: pl.Tensor[[L * H, I], pl.BF16],
            w_up: pl.Tensor[[L * H, I], pl.BF16],
            w_down: pl.Tensor[[L * I, H], pl.BF16],
            final_norm_weight: pl.Tensor[[1, H], pl.FP32],
            lm_head_weight: pl.Tensor[[PV, H], pl.BF16],
            has_prefill: pl.Scalar[pl.BOOL],
            prefill_out: pl.InOut[pl.Tensor[[USER_BATCH, PREFILL_LEN, H], pl.BF16]],
            decode_out: pl.Out[pl.Tensor[[USER_BATCH, H], pl.BF16]],
            rms_normed: pl.Out[pl.Tensor[[USER_BATCH, H], pl.BF16]],
            logits: pl.Out[pl.Tensor[[USER_BATCH, PV], pl.FP32]],
        ) -> pl.Tensor[[USER_BATCH, H], pl.BF16]:
            # Prefill (step 0 only): every prompt position of every sequence through all
            # layers, writing K/V for positions [0, prefill_seq_lens[b]).
            k_cache_d = k_cache
            v_cache_d = v_cache
            if has_prefill:
                _prefill_out, k_cache_d, v_cache_d = self.qwen3_prefill_all(
                    prefill_hidden,
                    prefill_seq_lens,
                    input_rms_weight,
                    wq,
                    wk,
                    wv,
                    q_norm_weight,
                    k_norm_weight,
                    rope_cos,
                    rope_sin,
                    block_table,
                    prefill_slot_mapping,
                    k_cache_d,
                    v_cache_d,
                    wo,
                    post_rms_weight,
                    w_gate,
                    w_up,
                    w_down,
                    prefill_out,
                )
            # Step 0: decode the current tokens (after a prefill: the last prompt token again,
            # spec 2.1), then sample. Every Out argument is read back only through the
            # returned values (InOutUseDiscipline).
            out_d, out_rms, out_lm = self.qwen3_decode_all(
                decode_hidden,
                input_rms_weight,
                wq,
                wk,
                wv,
                q_norm_weight,
                k_norm_weight,
                decode_seq_lens,
                block_table,
                decode_slot_mapping,
                rope_cos,
                rope_sin,
                k_cache_d,
                v_cache_d,
                wo,
                post_rms_weight,
                w_gate,
                w_up,
                w_down,
                final_norm_weight,
                lm_head_weight,
                decode_out,
                rms_normed,
                logits,
            )
            upd_hidden = self.sample_and_prepare(
                out_lm, decode_seq_lens, decode_slot_mapping, decode_hidden
            )
            # Steps 1..max_new_tokens-1: decode the sampled tokens, then sample again.
            for _ in pl.range(max_new_tokens - 1):
                out_d, out_rms, out_lm = self.qwen3_decode_all(
                    upd_hidden,
                    input_rms_weight,
                    wq,
                    wk,
                    wv,
                    q_norm_weight,
                    k_norm_weight,
                    decode_seq_lens,
                    block_table,
                    decode_slot_mapping,
                    rope_cos,
                    rope_sin,
                    k_cache_d,
                    v_cache_d,
                    wo,
                    post_rms_weight,
                    w_gate,
                    w_up,
                    w_down,
                    final_norm_weight,
                    lm_head_weight,
                    out_d,
                    out_rms,
                    out_lm,
                )
                upd_hidden = self.sample_and_prepare(
                    out_lm, decode_seq_lens, decode_slot_mapping, upd_hidden
                )
            return out_d

    return Qwen3DecodeAll


def _positional(names: tuple[str, ...], weights, given: dict) -> list:
    """Arguments in ``names`` order: ``given`` by name, the rest from ``weights`` (a
    `kernels.qwen3.weights.Qwen3Weights` or a name -> array mapping)."""
    get = weights.__getitem__ if isinstance(weights, dict) else lambda n: getattr(weights, n)
    return [given[n] if n in given else get(n) for n in names]


def decode_args(weights, hidden_states, seq_lens, block_table, slot_mapping, k_cache, v_cache,
                out, rms_normed, logits) -> list:  # fmt: skip
    """The positional arguments of ``qwen3_decode_all`` in `DECODE_PARAM_NAMES` order."""
    return _positional(
        DECODE_PARAM_NAMES,
        weights,
        {
            "hidden_states": hidden_states,
            "seq_lens": seq_lens,
            "block_table": block_table,
            "slot_mapping": slot_mapping,
            "k_cache": k_cache,
            "v_cache": v_cache,
            "out": out,
            "rms_normed": rms_normed,
            "logits": logits,
        },
    )


def prefill_args(weights, hidden_states, seq_lens, block_table, slot_mapping, k_cache, v_cache,
                 out) -> list:  # fmt: skip
    """The positional arguments of ``qwen3_prefill_all`` in `PREFILL_PARAM_NAMES` order."""
    return _positional(
        PREFILL_PARAM_NAMES,
        weights,
        {
            "hidden_states": hidden_states,
            "seq_lens": seq_lens,
            "block_table": block_table,
            "slot_mapping": slot_mapping,
            "k_cache": k_cache,
            "v_cache": v_cache,
            "out": out,
        },
    )


def final_logits_args(weights, hidden_states, rms_normed, logits) -> list:
    """The positional arguments of ``qwen3_final_logits`` in `FINAL_LOGITS_PARAM_NAMES` order."""
    given = {"hidden_states": hidden_states, "rms_normed": rms_normed, "logits": logits}
    return _positional(FINAL_LOGITS_PARAM_NAMES, weights, given)


def host_orch_args(weights, prefill_hidden, prefill_seq_lens, prefill_slot_mapping,
                   decode_hidden, decode_seq_lens, decode_slot_mapping, block_table,
                   k_cache, v_cache, has_prefill, prefill_out, decode_out, rms_normed,
                   logits) -> list:  # fmt: skip
    """The positional arguments of ``host_orch`` in `HOST_PARAM_NAMES` order."""
    return _positional(
        HOST_PARAM_NAMES,
        weights,
        {
            "prefill_hidden": prefill_hidden,
            "prefill_seq_lens": prefill_seq_lens,
            "prefill_slot_mapping": prefill_slot_mapping,
            "has_prefill": has_prefill,
            "prefill_out": prefill_out,
            "decode_hidden": decode_hidden,
            "decode_seq_lens": decode_seq_lens,
            "decode_slot_mapping": decode_slot_mapping,
            "block_table": block_table,
            "k_cache": k_cache,
            "v_cache": v_cache,
            "decode_out": decode_out,
            "rms_normed": rms_normed,
            "logits": logits,
        },
    )


def pldsl_programs() -> list[pl.Program]:
    """The programs `pldsl check kernels/qwen3/program.py` inspects: the tiny configs (MHA-like
    q_per_kv=2 and q_per_kv=4) and Qwen3-0.6B's widths, with small caches."""
    from .config import preset

    programs = []
    for name in ("tiny", "tiny-gqa4", "qwen3-0.6b"):
        cfg = preset(name)
        programs.append(
            build_program(
                cfg,
                max_seq=256,
                block_size=16,
                num_pages=32,
                max_blocks_per_seq=16,
                padded_vocab=cfg.padded_vocab(),
            )
        )
    return programs
