"""Plain-NumPy golden of ``qwen3_decode_all`` (all layers + fused final RMSNorm + LM head).

Independent of pldsl and of the interpreter: NumPy, plus ml_dtypes only as the BF16 storage type.
It also holds the greedy-generation reference (`golden_greedy`) and the logits comparison the
demo and the tests report (`compare_logits`).

`decode_step` follows the seed kernel stage by stage (spec §1.2-§1.16) and rounds to BF16 exactly
at the cast points of §1.17; everything else is FP32 (``np.float32`` elementwise math and FP32
matmuls):

1. input RMSNorm: ``inv = 1/sqrt(sum(x*x)*(1/H) + eps)`` (recip of sqrt), ``(x*inv)*gamma`` -> BF16
2. Q/K/V projections (FP32 accumulate); per-head q/k RMSNorm with ``rsqrt`` (stays FP32)
3. half-split RoPE in FP32 from ``rope_cos/sin[pos]``; rotated Q -> BF16; rotated K and raw V
   -> BF16 into the paged caches at ``slot_mapping[b]`` (written before attention reads them)
4. per KV block of ``block_size`` tokens read through ``block_table``: ``s = q @ k^T`` (FP32),
   masked to the valid length with the most negative FP32 (like ``fillpad(PadValue.min)``),
   then scaled by ``1/sqrt(head_dim)``; local max ``m``; ``p = exp(s - m)`` -> BF16;
   ``l = sum(float(p_bf16))``; ``o = p_bf16 @ v_bf16`` (FP32)
5. online merge over blocks in FP32 (``alpha = exp(mi - mi_new)``, ``beta = exp(cur_mi -
   mi_new)``, ``li = alpha*li + beta*cur_li``, ``oi = oi*alpha + o*beta``); ``ctx = oi/li``
   -> BF16.  Query head ``h`` uses KV head ``h // q_per_kv`` (any ``q_per_kv``).
6. O-projection + residual in FP32: ``resid1 = ctx @ wo + float(x_bf16)``
7. post RMSNorm (recip of sqrt) -> BF16; gate/up (FP32);
   ``silu = gate * (1/(exp(-gate)+1)) * up`` -> BF16
8. ``down + resid1`` (FP32) -> BF16: the next layer's input (BF16 carry)
9. final RMSNorm with ``rsqrt`` -> BF16 ``rms_normed``;
   ``logits = float32(rms_normed) @ float32(lm_head)^T`` (FP32, all ``padded_vocab`` columns)

BF16 rounding is round-half-AWAY-from-zero (PyPTO ``pl.cast`` default mode ``"round"``), done with
integer bit operations by `kernels.bf16.round_bf16_f32` (shared with the example goldens) -- not
ml_dtypes' round-to-nearest-even.

``precision="fp32"`` turns every rounding point into a no-op.  In that mode the KV caches must be
``np.float32`` arrays (the cache rows then hold unrounded FP32 K/V) and the hidden-state outputs
are ``np.float32`` too; the weights stay what they are (BF16 values, widened exactly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..bf16 import round_bf16_f32
from .config import Qwen3Config
from .weights import BF16, KVLayout, PageAllocator, Qwen3Weights, blocks_needed, new_kv_cache

__all__ = [
    "PRECISIONS",
    "LogitAgreement",
    "compare_logits",
    "decode_step",
    "final_logits",
    "golden_prefill_logits",
    "prefill",
    "golden_forward_logits",
    "golden_greedy",
    "round_bf16",
    "round_bf16_f32",
]

PRECISIONS = ("bf16", "fp32")
_F32_MIN = np.float32(np.finfo(np.float32).min)  # PadValue.min


# ---------------------------------------------------------------------- BF16 rounding
def round_bf16(x: np.ndarray) -> np.ndarray:
    """Round to BF16 (ties away from zero) and return an ``ml_dtypes.bfloat16`` array."""
    r = round_bf16_f32(x)
    return (r.view(np.uint32) >> np.uint32(16)).astype(np.uint16).view(BF16)


# ---------------------------------------------------------------------- helpers
@dataclass
class _F32Weights:
    """FP32 views of the weights (converted once per forward, not once per step)."""

    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    lm_head_t: np.ndarray  # [H, padded_vocab]

    @classmethod
    def of(cls, w: Qwen3Weights) -> _F32Weights:
        f = np.float32
        return cls(
            wq=w.wq.astype(f),
            wk=w.wk.astype(f),
            wv=w.wv.astype(f),
            wo=w.wo.astype(f),
            w_gate=w.w_gate.astype(f),
            w_up=w.w_up.astype(f),
            w_down=w.w_down.astype(f),
            lm_head_t=np.ascontiguousarray(w.lm_head_weight.astype(f).T),
        )


def _rounder(precision: str):
    if precision == "bf16":
        return round_bf16_f32
    if precision == "fp32":
        return lambda x: np.asarray(x, dtype=np.float32)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def _cache_dtype(precision: str) -> np.dtype:
    return BF16 if precision == "bf16" else np.dtype(np.float32)


def _rmsnorm(x: np.ndarray, gamma: np.ndarray, eps: np.float32, use_rsqrt: bool) -> np.ndarray:
    """Row RMSNorm in FP32: ``(x * inv) * gamma`` with ``inv`` from ``sum(x*x) * (1/n) + eps``.

    ``use_rsqrt`` picks ``rsqrt(v)`` (q/k norm, final norm) or ``recip(sqrt(v))`` (input and post
    norms); NumPy has no rsqrt, so both are ``1/sqrt`` in FP32 here, kept apart for fidelity.
    """
    n_inv = np.float32(1.0 / x.shape[-1])
    var = np.sum(x * x, axis=-1, keepdims=True, dtype=np.float32) * n_inv + eps
    if use_rsqrt:
        inv = np.float32(1.0) / np.sqrt(var)
    else:
        inv = np.reciprocal(np.sqrt(var))
    return (x * inv) * gamma


def _rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Half-split RoPE: ``[x_lo*cos_lo - x_hi*sin_lo, x_hi*cos_hi + x_lo*sin_hi]`` (FP32).

    ``x`` is ``[..., D]``; ``cos``/``sin`` broadcast against it.
    """
    half = x.shape[-1] // 2
    lo, hi = x[..., :half], x[..., half:]
    rot_lo = lo * cos[..., :half] - hi * sin[..., :half]
    rot_hi = hi * cos[..., half:] + lo * sin[..., half:]
    return np.concatenate([rot_lo, rot_hi], axis=-1)


# ---------------------------------------------------------------------- one decode step
def decode_step(
    weights: Qwen3Weights,
    cfg: Qwen3Config,
    hidden_states: np.ndarray,
    seq_lens: np.ndarray,
    block_table: np.ndarray,
    slot_mapping: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    *,
    block_size: int,
    max_blocks_per_seq: int,
    precision: str = "bf16",
    check_slots: bool = True,
    _f32: _F32Weights | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``qwen3_decode_all`` step for ``U`` sequences; updates ``k_cache``/``v_cache`` in place.

    Args:
        hidden_states: ``[U, H]`` BF16 (``precision="bf16"``) or FP32 input hidden states
            (the embeddings of the current tokens).
        seq_lens: ``[U]`` context lengths *including* the current token (``pos = seq_len - 1``).
        block_table: flat ``[U * max_blocks_per_seq]`` INT32 page ids (-1 = unused).
        slot_mapping: ``[U]`` INT32 cache slot of the current token
            (``page*block_size + pos % block_size``).
        k_cache, v_cache: ``[L*num_pages*kv_heads*block_size, head_dim]``, BF16 in ``"bf16"``
            mode and FP32 in ``"fp32"`` mode; the current token's K/V rows are written here.
            ``num_pages`` (pages per layer) is the row count divided by
            ``L*kv_heads*block_size``; layer ``l`` starts at row ``l*num_pages*kv_heads*block``.
        check_slots: raise if ``slot_mapping`` disagrees with ``block_table`` at ``pos`` (the
            kernel writes through the slot but reads through the table, so a mismatch would
            silently miss the current token).

    Returns ``(out [U,H], rms_normed [U,H], logits [U, padded_vocab] FP32)``; ``out`` and
    ``rms_normed`` are BF16 in ``"bf16"`` mode and FP32 in ``"fp32"`` mode.
    """
    if weights.cfg != cfg:
        raise ValueError("weights.cfg does not match cfg")
    rnd = _rounder(precision)
    c = cfg
    L, H, D = c.num_hidden_layers, c.hidden_size, c.head_dim
    nq, nkv, qpk = c.num_attention_heads, c.num_key_value_heads, c.q_per_kv
    Qw, Im = c.q_width, c.intermediate_size
    eps = np.float32(c.rms_norm_eps)
    bs = int(block_size)
    mb = int(max_blocks_per_seq)

    # ---- argument checks
    want_dt = _cache_dtype(precision)
    for name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        if cache.dtype != want_dt:
            raise TypeError(
                f"{name}: precision={precision!r} needs dtype {want_dt}, got {cache.dtype}"
            )
        if cache.ndim != 2 or cache.shape[1] != D:
            raise ValueError(f"{name}: expected [rows, {D}], got {cache.shape}")
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache {k_cache.shape} and v_cache {v_cache.shape} differ")
    rows = k_cache.shape[0]
    if rows % (L * nkv * bs):
        raise ValueError(f"cache rows {rows} not a multiple of L*kv_heads*block_size")
    num_pages = rows // (L * nkv * bs)
    layer_rows = num_pages * nkv * bs
    x_in = np.asarray(hidden_states)
    if x_in.ndim != 2 or x_in.shape[1] != H:
        raise ValueError(f"hidden_states: expected [U, {H}], got {x_in.shape}")
    U = x_in.shape[0]
    seq_lens = np.asarray(seq_lens).reshape(-1).astype(np.int64)
    slot_mapping = np.asarray(slot_mapping).reshape(-1).astype(np.int64)
    block_table = np.asarray(block_table).reshape(-1).astype(np.int64)
    if seq_lens.shape != (U,) or slot_mapping.shape != (U,):
        raise ValueError(f"seq_lens/slot_mapping must have {U} entries")
    if block_table.size < U * mb:
        raise ValueError(f"block_table has {block_table.size} entries < U*max_blocks={U * mb}")
    for b in range(U):
        n = int(seq_lens[b])
        if n < 1:
            raise ValueError(f"seq_lens[{b}]={n} must be >= 1")
        if n > weights.max_seq:
            raise ValueError(f"seq_lens[{b}]={n} exceeds the RoPE table length {weights.max_seq}")
        nblk = blocks_needed(n, bs)
        if nblk > mb:
            raise ValueError(f"seq_lens[{b}]={n} needs {nblk} blocks > max_blocks_per_seq={mb}")
        pages = block_table[b * mb : b * mb + nblk]
        if (pages < 0).any() or (pages >= num_pages).any():
            raise ValueError(f"block_table row {b} has invalid pages {pages.tolist()}")
        slot = int(slot_mapping[b])
        if not 0 <= slot < num_pages * bs:
            raise ValueError(f"slot_mapping[{b}]={slot} out of range")
        if check_slots:
            pos = n - 1
            expect = int(pages[pos // bs]) * bs + pos % bs
            if slot != expect:
                raise ValueError(
                    f"slot_mapping[{b}]={slot} disagrees with block_table ({expect}) at pos {pos}"
                )

    f32 = _f32 if _f32 is not None else _F32Weights.of(weights)
    store = (lambda a: round_bf16(a)) if precision == "bf16" else (lambda a: a.astype(np.float32))
    scale = np.float32(1.0 / math.sqrt(D))
    pos = seq_lens - 1
    cos = weights.rope_cos[pos][:, None, :]  # [U,1,D]
    sin = weights.rope_sin[pos][:, None, :]
    slot_page = slot_mapping // bs
    slot_off = slot_mapping % bs
    kv_idx = np.arange(nkv)

    x = rnd(x_in.astype(np.float32))  # current_hidden (BF16 carry)
    with np.errstate(over="ignore"):
        for layer in range(L):
            h = slice(layer * H, (layer + 1) * H)
            # 1a: input RMSNorm (recip(sqrt)) -> BF16
            normed = rnd(_rmsnorm(x, weights.input_rms_weight[layer], eps, use_rsqrt=False))
            # 1b: projections, FP32 accumulate
            q = normed @ f32.wq[h]
            k = normed @ f32.wk[h]
            v = normed @ f32.wv[h]
            # per-head q/k RMSNorm (rsqrt), FP32
            q = _rmsnorm(q.reshape(U, nq, D), weights.q_norm_weight[layer], eps, use_rsqrt=True)
            k = _rmsnorm(k.reshape(U, nkv, D), weights.k_norm_weight[layer], eps, use_rsqrt=True)
            v = v.reshape(U, nkv, D)
            # RoPE; Q -> BF16; K, V -> BF16 into the cache
            q_rot = rnd(_rope(q, cos, sin))  # [U, nq, D]
            k_rot = _rope(k, cos, sin)
            cache_rows = (
                layer * layer_rows
                + (slot_page[:, None] * nkv + kv_idx[None, :]) * bs
                + slot_off[:, None]
            )  # [U, nkv]
            k_cache[cache_rows.reshape(-1)] = store(k_rot.reshape(U * nkv, D))
            v_cache[cache_rows.reshape(-1)] = store(v.reshape(U * nkv, D))

            # 2: paged attention with per-block softmax + online merge
            attn = np.empty((U, Qw), np.float32)
            for b in range(U):
                ctx_len = int(seq_lens[b])
                qb = q_rot[b].reshape(nkv, qpk, D)
                mi = li = oi = None
                for sb in range(blocks_needed(ctx_len, bs)):
                    page = int(block_table[b * mb + sb])
                    r0 = layer * layer_rows + page * nkv * bs
                    k_t = k_cache[r0 : r0 + nkv * bs].astype(np.float32).reshape(nkv, bs, D)
                    v_t = v_cache[r0 : r0 + nkv * bs].astype(np.float32).reshape(nkv, bs, D)
                    s = qb @ k_t.transpose(0, 2, 1)  # [nkv, qpk, bs] FP32
                    valid = min(bs, ctx_len - sb * bs)
                    if valid < bs:
                        s[..., valid:] = _F32_MIN
                    s = s * scale
                    cur_mi = np.max(s, axis=-1, keepdims=True)
                    p = rnd(np.exp(s - cur_mi))
                    cur_li = np.sum(p, axis=-1, keepdims=True, dtype=np.float32)
                    o_tmp = p @ v_t  # [nkv, qpk, D] FP32
                    if mi is None:
                        mi, li, oi = cur_mi, cur_li, o_tmp
                    else:
                        mi_new = np.maximum(mi, cur_mi)
                        alpha = np.exp(mi - mi_new)
                        beta = np.exp(cur_mi - mi_new)
                        li = alpha * li + beta * cur_li
                        oi = oi * alpha + o_tmp * beta
                        mi = mi_new
                attn[b] = rnd(oi / li).reshape(Qw)

            # 3a: O-projection + residual (FP32)
            resid1 = attn @ f32.wo[layer * Qw : (layer + 1) * Qw] + x
            # post RMSNorm (recip(sqrt)) -> BF16
            post = rnd(_rmsnorm(resid1, weights.post_rms_weight[layer], eps, use_rsqrt=False))
            # SwiGLU
            gate = post @ f32.w_gate[h]
            up = post @ f32.w_up[h]
            sig = np.float32(1.0) / (np.exp(-gate) + np.float32(1.0))
            mlp = rnd(gate * sig * up)
            # down + residual -> BF16 carry
            x = rnd(mlp @ f32.w_down[layer * Im : (layer + 1) * Im] + resid1)

    rms, logits = _final_tail(weights, x, rnd, f32)
    if precision == "bf16":
        return round_bf16(x), round_bf16(rms), logits
    return x.astype(np.float32), rms.astype(np.float32), logits


def _final_tail(weights: Qwen3Weights, x: np.ndarray, rnd, f32: _F32Weights):
    """Fused tail: final RMSNorm (rsqrt) -> BF16, LM head in FP32; ``x`` FP32 rows."""
    eps = np.float32(weights.cfg.rms_norm_eps)
    rms = rnd(_rmsnorm(x, weights.final_norm_weight[0], eps, use_rsqrt=True))
    return rms, (rms @ f32.lm_head_t).astype(np.float32)


def final_logits(
    weights: Qwen3Weights, hidden_states: np.ndarray, precision: str = "bf16"
) -> tuple[np.ndarray, np.ndarray]:
    """``qwen3_final_logits``: the fused tail on rows ``[R, H]`` of final hidden states.

    Returns ``(rms_normed [R, H], logits [R, padded_vocab] FP32)``.
    """
    rnd = _rounder(precision)
    x = rnd(np.asarray(hidden_states).astype(np.float32))
    rms, logits = _final_tail(weights, x, rnd, _F32Weights.of(weights))
    return (round_bf16(rms) if precision == "bf16" else rms.astype(np.float32)), logits


# ---------------------------------------------------------------------- prefill
def prefill(
    weights: Qwen3Weights,
    cfg: Qwen3Config,
    hidden_states: np.ndarray,
    seq_lens: np.ndarray,
    block_table: np.ndarray,
    slot_mapping: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    *,
    block_size: int,
    max_blocks_per_seq: int,
    precision: str = "bf16",
    _f32: _F32Weights | None = None,
) -> np.ndarray:
    """``qwen3_prefill_all``: every prompt position of ``U`` sequences through all layers.

    Args:
        hidden_states: ``[U, S, H]``: row ``t`` of sequence ``b`` is the embedding of prompt
            token ``t`` for ``t < seq_lens[b]`` (later rows are ignored).
        seq_lens: ``[U]`` prompt lengths (``1 <= n <= S``).
        block_table: flat ``[U * max_blocks_per_seq]`` page ids.
        slot_mapping: flat ``[U * S]``: entry ``b*S + t`` is the cache slot of position ``t``
            (``page*block_size + t % block_size``); entries past a prompt are ignored.
        k_cache, v_cache: as in `decode_step`; K/V of every prompt position are written.

    Position ``t`` is computed exactly as `decode_step` computes it with ``seq_len = t + 1``
    after positions ``0..t-1``: the same rounding points, the same per-block softmax over the
    blocks ``0..t//block_size`` (keys past ``t`` masked with the most negative FP32 before the
    scale) and the same merge order; here every position of a sequence is one vectorised row.

    Returns ``out [U, S, H]`` (BF16, or FP32 in ``"fp32"`` mode): the last layer's output per
    position, zero past each prompt.
    """
    if weights.cfg != cfg:
        raise ValueError("weights.cfg does not match cfg")
    rnd = _rounder(precision)
    c = cfg
    L, H, D = c.num_hidden_layers, c.hidden_size, c.head_dim
    nq, nkv, qpk = c.num_attention_heads, c.num_key_value_heads, c.q_per_kv
    Qw, Im = c.q_width, c.intermediate_size
    eps = np.float32(c.rms_norm_eps)
    bs, mb = int(block_size), int(max_blocks_per_seq)
    x_in = np.asarray(hidden_states)
    if x_in.ndim != 3 or x_in.shape[2] != H:
        raise ValueError(f"hidden_states: expected [U, S, {H}], got {x_in.shape}")
    U, S = x_in.shape[:2]
    seq_lens = np.asarray(seq_lens).reshape(-1).astype(np.int64)
    block_table = np.asarray(block_table).reshape(-1).astype(np.int64)
    slot_mapping = np.asarray(slot_mapping).reshape(-1).astype(np.int64)
    if seq_lens.shape != (U,) or slot_mapping.shape != (U * S,):
        raise ValueError(f"seq_lens needs {U} entries and slot_mapping {U * S}")
    want_dt = _cache_dtype(precision)
    if k_cache.dtype != want_dt or v_cache.dtype != want_dt or k_cache.shape != v_cache.shape:
        raise TypeError(f"k_cache/v_cache must both be {want_dt} arrays of one shape")
    num_pages = k_cache.shape[0] // (L * nkv * bs)
    layer_rows = num_pages * nkv * bs
    for b in range(U):
        n = int(seq_lens[b])
        if not 1 <= n <= min(S, weights.max_seq, mb * bs):
            raise ValueError(f"seq_lens[{b}]={n} out of range")
        pages = block_table[b * mb : b * mb + blocks_needed(n, bs)]
        t = np.arange(n)
        expect = pages[t // bs] * bs + t % bs
        if (pages < 0).any() or (pages >= num_pages).any():
            raise ValueError(f"block_table row {b} has invalid pages {pages.tolist()}")
        if not np.array_equal(slot_mapping[b * S : b * S + n], expect):
            raise ValueError(f"slot_mapping of sequence {b} disagrees with block_table")

    f32 = _f32 if _f32 is not None else _F32Weights.of(weights)
    store = (lambda a: round_bf16(a)) if precision == "bf16" else (lambda a: a.astype(np.float32))
    scale = np.float32(1.0 / math.sqrt(D))
    out = np.zeros((U, S, H), np.float32)
    kv_idx = np.arange(nkv)
    with np.errstate(over="ignore"):
        for b in range(U):
            n = int(seq_lens[b])
            pos = np.arange(n)
            slots = slot_mapping[b * S : b * S + n]
            cos = weights.rope_cos[pos][:, None, :]  # [n, 1, D]
            sin = weights.rope_sin[pos][:, None, :]
            x = rnd(x_in[b, :n].astype(np.float32))
            for layer in range(L):
                h = slice(layer * H, (layer + 1) * H)
                normed = rnd(_rmsnorm(x, weights.input_rms_weight[layer], eps, use_rsqrt=False))
                q = normed @ f32.wq[h]
                k = normed @ f32.wk[h]
                v = (normed @ f32.wv[h]).reshape(n, nkv, D)
                q = _rmsnorm(q.reshape(n, nq, D), weights.q_norm_weight[layer], eps, True)
                k = _rmsnorm(k.reshape(n, nkv, D), weights.k_norm_weight[layer], eps, True)
                q_rot = rnd(_rope(q, cos, sin))  # [n, nq, D]
                rows = (
                    layer * layer_rows
                    + ((slots // bs)[:, None] * nkv + kv_idx[None, :]) * bs
                    + (slots % bs)[:, None]
                )
                k_cache[rows.reshape(-1)] = store(_rope(k, cos, sin).reshape(n * nkv, D))
                v_cache[rows.reshape(-1)] = store(v.reshape(n * nkv, D))
                attn = _causal_attention(
                    q_rot, k_cache, v_cache, block_table[b * mb : (b + 1) * mb],
                    layer * layer_rows, nkv, qpk, bs, scale, rnd,
                )  # fmt: skip
                resid1 = attn.reshape(n, Qw) @ f32.wo[layer * Qw : (layer + 1) * Qw] + x
                post = rnd(_rmsnorm(resid1, weights.post_rms_weight[layer], eps, use_rsqrt=False))
                gate = post @ f32.w_gate[h]
                up = post @ f32.w_up[h]
                sig = np.float32(1.0) / (np.exp(-gate) + np.float32(1.0))
                mlp = rnd(gate * sig * up)
                x = rnd(mlp @ f32.w_down[layer * Im : (layer + 1) * Im] + resid1)
            out[b, :n] = x
    return round_bf16(out) if precision == "bf16" else out


def _causal_attention(q_rot, k_cache, v_cache, pages, layer_row0, nkv, qpk, bs, scale, rnd):
    """Causal paged attention of ``n`` positions ``[n, nq, D]`` (rounded Q) of one sequence.

    Block ``sb`` is merged into the rows of the positions that reach it (``t // bs >= sb``);
    keys past each position are masked before the scale. Returns ctx ``[n, nq, D]`` rounded.
    """
    n, nq, D = q_rot.shape
    qg = q_rot.reshape(n, nkv, qpk, D).transpose(1, 2, 0, 3)  # [nkv, qpk, n, D]
    t = np.arange(n)
    mi = li = oi = None
    for sb in range(blocks_needed(n, bs)):
        r0 = layer_row0 + int(pages[sb]) * nkv * bs
        k_t = k_cache[r0 : r0 + nkv * bs].astype(np.float32).reshape(nkv, 1, bs, D)
        v_t = v_cache[r0 : r0 + nkv * bs].astype(np.float32).reshape(nkv, 1, bs, D)
        s = qg @ k_t.transpose(0, 1, 3, 2)  # [nkv, qpk, n, bs]
        future = sb * bs + np.arange(bs)[None, :] > t[:, None]  # [n, bs]
        s = np.where(future, _F32_MIN, s) * scale
        cur_mi = np.max(s, axis=-1, keepdims=True)
        p = rnd(np.exp(s - cur_mi))
        cur_li = np.sum(p, axis=-1, keepdims=True, dtype=np.float32)
        stale = (sb * bs + np.arange(bs) >= n)[:, None]  # cache rows past the prompt
        o_tmp = p @ np.where(stale, np.float32(0), v_t)  # [nkv, qpk, n, D]
        if mi is None:
            mi, li, oi = cur_mi, cur_li, o_tmp
            continue
        reach = (t // bs >= sb)[:, None]  # [n, 1]
        mi_new = np.maximum(mi, cur_mi)
        alpha = np.exp(mi - mi_new)
        beta = np.exp(cur_mi - mi_new)
        li = np.where(reach, alpha * li + beta * cur_li, li)
        oi = np.where(reach, oi * alpha + o_tmp * beta, oi)
        mi = np.where(reach, mi_new, mi)
    return rnd(oi / li).transpose(2, 0, 1, 3).reshape(n, nq, D)


# ---------------------------------------------------------------------- whole sequences
def golden_forward_logits(
    weights: Qwen3Weights,
    cfg: Qwen3Config,
    token_ids_per_seq: Sequence[Sequence[int]],
    precision: str = "bf16",
    block_size: int = 16,
) -> np.ndarray:
    """Teacher-forced logits of a ragged batch, decoded one position per step.

    Step ``t`` feeds token ``t`` of every sequence still running (longer than ``t``) through
    `decode_step` with ``seq_len = t + 1``; finished sequences drop out of the batch.  The input
    hidden states are the BF16 embedding rows.  Pages come from a `PageAllocator` (each sequence
    reserves its whole length up front), caches start zeroed.

    Returns FP32 ``[batch, max_len, vocab]`` (padded-vocab columns dropped) with NaN past each
    sequence's end.
    """
    seqs = [list(map(int, s)) for s in token_ids_per_seq]
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("need at least one sequence and no empty sequence")
    batch = len(seqs)
    lens = [len(s) for s in seqs]
    max_len = max(lens)
    if max_len > weights.max_seq:
        raise ValueError(f"sequence length {max_len} exceeds the RoPE table ({weights.max_seq})")
    _rounder(precision)  # validates precision
    mb = blocks_needed(max_len, block_size)
    layout = KVLayout(num_pages=batch * mb, block_size=block_size)
    alloc = PageAllocator(layout, batch, mb)
    for b, n in enumerate(lens):
        alloc.reserve(b, n)
    k_cache, v_cache = new_kv_cache(cfg, layout, dtype=_cache_dtype(precision))
    f32 = _F32Weights.of(weights)
    out = np.full((batch, max_len, cfg.vocab_size), np.nan, dtype=np.float32)
    for t in range(max_len):
        rows = [b for b in range(batch) if lens[b] > t]
        hidden = weights.embed([seqs[b][t] for b in rows])
        if precision == "fp32":
            hidden = hidden.astype(np.float32)
        _, _, logits = decode_step(
            weights,
            cfg,
            hidden,
            np.full(len(rows), t + 1, dtype=np.int32),
            alloc.block_table_for(rows),
            alloc.slot_mapping(rows, [t] * len(rows)),
            k_cache,
            v_cache,
            block_size=block_size,
            max_blocks_per_seq=mb,
            precision=precision,
            _f32=f32,
        )
        out[rows, t] = logits[:, : cfg.vocab_size]
    return out


def golden_greedy(
    weights: Qwen3Weights,
    cfg: Qwen3Config,
    prompts: Sequence[Sequence[int]],
    n_new: int,
    precision: str = "bf16",
    block_size: int = 16,
) -> list[list[int]]:
    """Greedy generation with the golden: ``n_new`` times, append every sequence's argmax over
    the vocabulary at its last position (`golden_forward_logits` of the whole sequence so far).
    Returns the generated tokens per prompt."""
    seqs = [list(map(int, p)) for p in prompts]
    for _ in range(n_new):
        logits = golden_forward_logits(weights, cfg, seqs, precision, block_size)
        for b, s in enumerate(seqs):
            s.append(int(np.argmax(logits[b, len(s) - 1])))
    return [s[len(p) :] for s, p in zip(seqs, prompts)]


def golden_prefill_logits(
    weights: Qwen3Weights,
    cfg: Qwen3Config,
    token_ids_per_seq: Sequence[Sequence[int]],
    precision: str = "bf16",
    block_size: int = 16,
) -> np.ndarray:
    """`golden_forward_logits` through `prefill` (all positions at once) and `final_logits`.

    Returns FP32 ``[batch, max_len, vocab]`` with NaN past each sequence's end.
    """
    seqs = [list(map(int, s)) for s in token_ids_per_seq]
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("need at least one sequence and no empty sequence")
    batch, lens = len(seqs), [len(s) for s in seqs]
    S = max(lens)
    mb = blocks_needed(S, block_size)
    layout = KVLayout(num_pages=batch * mb, block_size=block_size)
    alloc = PageAllocator(layout, batch, mb)
    hidden = np.zeros((batch, S, cfg.hidden_size), np.float32)
    slots = np.full(batch * S, -1, np.int64)
    for b, s in enumerate(seqs):
        alloc.reserve(b, len(s))
        hidden[b, : len(s)] = weights.embed(s).astype(np.float32)
        slots[b * S : b * S + len(s)] = alloc.slot_mapping([b] * len(s), range(len(s)))
    k_cache, v_cache = new_kv_cache(cfg, layout, dtype=_cache_dtype(precision))
    out = prefill(
        weights, cfg, hidden, np.asarray(lens), alloc.block_table, slots, k_cache, v_cache,
        block_size=block_size, max_blocks_per_seq=mb, precision=precision,
    )  # fmt: skip
    rows = np.concatenate([out[b, :n] for b, n in enumerate(lens)])
    _, logits = final_logits(weights, rows, precision)
    result = np.full((batch, S, cfg.vocab_size), np.nan, np.float32)
    starts = np.cumsum([0] + lens)
    for b, n in enumerate(lens):
        result[b, :n] = logits[starts[b] : starts[b] + n, : cfg.vocab_size]
    return result


# ---------------------------------------------------------------------- agreement
@dataclass(frozen=True)
class LogitAgreement:
    """How close logits are to reference logits, over the rows the reference defines."""

    rel_error: float  # max |got - ref| / max |ref|
    bit_equal: float  # fraction of bit-identical logits
    argmax_equal: float  # fraction of rows with the same argmax
    clear_rows: int  # rows whose reference top-2 gap exceeds gap * max |ref|
    clear_mismatches: int  # ... whose argmax differs nonetheless


def compare_logits(got, ref, *, vocab: int | None = None, gap: float = 0.0) -> LogitAgreement:
    """Compare logits ``[..., columns]`` with reference logits of the same shape.

    Rows whose reference holds NaN (past a sequence's end) are left out; ``vocab`` drops the
    padded-vocab columns.  ``gap`` picks the rows whose argmax is clear (`LogitAgreement`).
    """
    g = np.asarray(got, np.float32)[..., :vocab]
    r = np.asarray(ref, np.float32)[..., :vocab]
    if g.shape != r.shape:
        raise ValueError(f"logits {g.shape} and reference {r.shape} differ in shape")
    g, r = g.reshape(-1, g.shape[-1]), r.reshape(-1, r.shape[-1])
    defined = ~np.isnan(r).any(axis=1)
    g, r = g[defined], r[defined]
    scale = float(np.max(np.abs(r), initial=0.0)) or 1.0
    top2 = np.sort(r, axis=1)[:, -2:]
    clear = top2[:, -1] - top2[:, 0] > gap * scale
    same_argmax = np.argmax(g, axis=1) == np.argmax(r, axis=1)
    return LogitAgreement(
        rel_error=float(np.max(np.abs(g - r), initial=0.0)) / scale,
        bit_equal=float(np.mean(g.view(np.uint32) == r.view(np.uint32))),
        argmax_equal=float(np.mean(same_argmax)),
        clear_rows=int(np.sum(clear)),
        clear_mismatches=int(np.sum(clear & ~same_argmax)),
    )
