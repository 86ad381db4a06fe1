"""``qwen3_prefill_all``, ``qwen3_final_logits`` and ``host_orch``'s ``has_prefill`` step.

* tiling: the prefill token tile, and `TilingError` when it does not fit the KV block;
* the golden prefill (vectorised, plain NumPy) against the golden token-by-token decode;
* the kernel prefill (interpreter, strict mode, caches full of NaN outside the prompts) against
  the golden prefill, and prefill + final logits against token-by-token kernel decode, with
  ragged prompts that cross KV blocks and 1, 2, 4 and 5 query heads per KV head, at the decode
  tolerances (docs/qwen3.md);
* host_orch with has_prefill, DecodeSession and the CLI on the interpreter and the C backend.
"""

from __future__ import annotations

import numpy as np
import pytest
from pldsl.kernels.qwen3 import golden
from pldsl.kernels.qwen3.__main__ import main
from pldsl.kernels.qwen3.config import preset
from pldsl.kernels.qwen3.program import (
    FINAL_LOGITS_PARAM_NAMES,
    HOST_PARAM_NAMES,
    PREFILL_PARAM_NAMES,
    build_program,
    decode_args,
    final_logits_args,
    prefill_args,
)
from pldsl.kernels.qwen3.session import DecodeSession, RunOptions
from pldsl.kernels.qwen3.tiling import TilingError, derive_tiling
from pldsl.kernels.qwen3.weights import BF16, KVLayout, PageAllocator, random_weights

import pldsl as pl
from pldsl import interpreter

MAX_SEQ = 64
LENS = (37, 5, 16, 17)  # ragged: 3, 1, 1 and 2 blocks of 16; one prompt ends on a block edge

# 1, 2, 4 and 5 query heads per KV head (the last with query width 160 != hidden 128).
_Q5 = preset("tiny").replace(num_attention_heads=10, head_dim=16)
CONFIGS = {
    "q1": _Q5.replace(num_attention_heads=4, num_key_value_heads=4, head_dim=32),
    "q2": preset("tiny"),
    "q4": preset("tiny-gqa4"),
    "q5": _Q5,
}

# Hidden states / cache rows: max|diff| <= 2 BF16 ulps of the largest element, >= 90% bit-equal;
# logits: max|diff| <= 5e-3 of the largest logit (the decode tolerances, docs/qwen3.md).
BF16_REL = 2.0**-6
BF16_MIN_EQUAL = 0.9
LOGIT_REL = 5e-3
FP32_REL = 1e-5


def _f32(a) -> np.ndarray:
    return np.asarray(a).astype(np.float32)


def _assert_bf16_close(name, got, want):
    k, g = _f32(got), _f32(want)
    assert k.shape == g.shape and np.isfinite(k).all(), name
    diff = np.abs(k - g)
    assert diff.max() <= BF16_REL * np.abs(g).max(), (name, diff.max(), np.abs(g).max())
    assert np.mean(diff == 0) >= BF16_MIN_EQUAL, (name, np.mean(diff == 0))


def _assert_logits_close(got, want, vocab, rel=LOGIT_REL):
    g, w = _f32(got), _f32(want)
    assert np.isfinite(g).all()
    scale = np.abs(w).max()
    err = np.abs(g - w).max() / scale
    assert err <= rel, err
    top2 = np.sort(w[:, :vocab], axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * rel * scale
    assert np.array_equal(g[:, :vocab].argmax(1)[clear], w[:, :vocab].argmax(1)[clear])
    return err


class Prompts:
    """Ragged prompts with their pages, slots and prefill inputs (hidden [U, S, H])."""

    def __init__(self, cfg, weights, lens=LENS, block=16, seed=0):
        rng = np.random.default_rng(seed)
        self.cfg, self.w, self.lens, self.block = cfg, weights, list(lens), block
        self.tokens = [rng.integers(0, cfg.vocab_size, n).tolist() for n in lens]
        self.U, self.S = len(lens), max(lens)
        self.mb = -(-MAX_SEQ // block)
        self.layout = KVLayout(num_pages=self.U * self.mb, block_size=block)
        self.alloc = PageAllocator(self.layout, self.U, self.mb)
        self.hidden = np.zeros((self.U, self.S, cfg.hidden_size), BF16)
        self.slots = np.full(self.U * self.S, -1, np.int32)
        for b, (n, t) in enumerate(zip(lens, self.tokens)):
            self.alloc.reserve(b, n)
            self.hidden[b, :n] = weights.embed(t)
            self.slots[b * self.S : b * self.S + n] = self.alloc.slot_mapping([b] * n, range(n))
        self.seq_lens = np.asarray(lens, np.int32)

    def program(self, **kw):
        return build_program(
            self.cfg, max_seq=MAX_SEQ, block_size=self.block, num_pages=self.layout.num_pages,
            max_blocks_per_seq=self.mb, padded_vocab=self.w.padded_vocab, **kw,
        )  # fmt: skip

    def caches(self, fill=np.nan, dtype=BF16):
        shape = self.layout.cache_shape(self.cfg)
        return np.full(shape, fill, np.float32).astype(dtype), np.full(
            shape, fill, np.float32
        ).astype(dtype)

    def prompt_rows(self, out):
        return np.concatenate([np.asarray(out)[b, :n] for b, n in enumerate(self.lens)])

    def golden_prefill(self, precision="bf16"):
        dt = BF16 if precision == "bf16" else np.float32
        kc, vc = self.caches(0.0, dt)
        out = golden.prefill(
            self.w, self.cfg, self.hidden, self.seq_lens, self.alloc.block_table, self.slots,
            kc, vc, block_size=self.block, max_blocks_per_seq=self.mb, precision=precision,
        )  # fmt: skip
        return out, kc, vc

    def kernel_prefill(self, prog, precision="bf16", strict=True):
        dt = BF16 if precision == "bf16" else np.float32
        kc, vc = self.caches(np.nan, dt)  # garbage everywhere the prefill does not write
        args = prefill_args(
            self.w, self.hidden.astype(dt), self.seq_lens, self.alloc.block_table, self.slots,
            kc, vc, None,
        )  # fmt: skip
        out, _, _ = interpreter.run(
            prog, "qwen3_prefill_all", *args, strict=strict, precision=precision
        )
        return np.asarray(out), kc, vc

    def written(self, kc):
        return ~np.isnan(_f32(kc)).any(axis=1)


# ====================================================================== tiling, signatures


@pytest.mark.parametrize(
    ("block", "cap", "tile"), [(16, 64, 64), (48, 64, 48), (256, 64, 64), (32, 16, 16)]
)
def test_tok_tile_is_a_multiple_or_divisor_of_the_block(block, cap, tile):
    t = derive_tiling(
        preset("tiny"), block_size=block, max_blocks_per_seq=4, padded_vocab=1024,
        caps={"tok_tile": cap},
    )  # fmt: skip
    assert t.tok_tile == tile and t.query_block == min(tile, block)


def test_tok_tile_that_straddles_blocks_is_refused():
    cfg = preset("tiny")
    t = derive_tiling(cfg, block_size=32, max_blocks_per_seq=4, padded_vocab=1024)
    with pytest.raises(TilingError, match="tok_tile=48 must be a multiple or a divisor"):
        build_program(
            cfg, max_seq=64, block_size=32, num_pages=8, max_blocks_per_seq=4,
            padded_vocab=1024, tiling=t.replace(tok_tile=48),
        )  # fmt: skip


def test_prefill_signatures_and_checks():
    cfg = preset("tiny")
    prog = build_program(
        cfg, max_seq=64, block_size=16, num_pages=8, max_blocks_per_seq=4, padded_vocab=1024
    )
    assert tuple(p.name for p in prog.qwen3_prefill_all.params) == PREFILL_PARAM_NAMES
    assert tuple(p.name for p in prog.qwen3_final_logits.params) == FINAL_LOGITS_PARAM_NAMES
    assert tuple(p.name for p in prog.host_orch.params) == HOST_PARAM_NAMES
    # The prefill's cache writes are InOut (threaded by host_orch): no findings; the opt-in
    # InParamWritten finds only the decode step's three cache writes (PyPTO upgrades them).
    assert pl.check(prog) == []
    diags = pl.check(prog, enable=("InParamWritten",))
    assert [d.rule for d in diags] == ["InParamWritten"] * 3
    assert all("qwen3_decode_all" in d.message for d in diags)
    assert pl.print_ir(pl.parse_ir(pl.print_ir(prog))) == pl.print_ir(prog)


# ====================================================================== golden vs golden


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_golden_prefill_matches_golden_decode(name, precision):
    cfg = CONFIGS[name]
    w = random_weights(cfg, seed=3, max_seq=MAX_SEQ)
    p = Prompts(cfg, w)
    pre = golden.golden_prefill_logits(w, cfg, p.tokens, precision)
    dec = golden.golden_forward_logits(w, cfg, p.tokens, precision)
    assert np.array_equal(np.isnan(pre), np.isnan(dec))
    rows = ~np.isnan(dec[..., 0])
    rel = LOGIT_REL if precision == "bf16" else FP32_REL
    _assert_logits_close(pre[rows], dec[rows], cfg.vocab_size, rel)


def test_golden_prefill_checks_slots():
    cfg = preset("tiny")
    w = random_weights(cfg, seed=3, max_seq=MAX_SEQ)
    p = Prompts(cfg, w)
    kc, vc = p.caches(0.0)
    bad = p.slots.copy()
    bad[1] += 1
    with pytest.raises(ValueError, match="slot_mapping of sequence 0 disagrees"):
        golden.prefill(
            w, cfg, p.hidden, p.seq_lens, p.alloc.block_table, bad, kc, vc,
            block_size=16, max_blocks_per_seq=p.mb,
        )  # fmt: skip


# ====================================================================== kernel numerics


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request):
    cfg = CONFIGS[request.param]
    w = random_weights(cfg, seed=5, max_seq=MAX_SEQ)
    p = Prompts(cfg, w, seed=11)
    return request.param, p, p.program()


# The token-by-token reference costs one decode step per position: short ragged prompts
# (2, 1 and 2 blocks of 16), the q_per_kv = 1 and 4 configs in the slow run.
SHORT_LENS = (18, 3, 17)
DECODE_CASES = [
    pytest.param(name, marks=[pytest.mark.slow] if name in ("q1", "q4") else [])
    for name in sorted(CONFIGS)
]


def test_kernel_prefill_matches_golden_prefill(case):
    """Strict mode, caches NaN outside the prompts: out and every written K/V row agree with
    the golden; no other cache row changes; out is zero past each prompt."""
    name, p, prog = case
    out, kc, vc = p.kernel_prefill(prog)
    g_out, g_kc, g_vc = p.golden_prefill()
    for b, n in enumerate(p.lens):
        assert np.all(_f32(out[b, n:]) == 0)
    _assert_bf16_close("out", p.prompt_rows(out), p.prompt_rows(g_out))
    written = p.written(kc)
    assert written.sum() == sum(p.lens) * p.cfg.num_hidden_layers * p.cfg.num_key_value_heads
    assert np.array_equal(written, p.written(vc))
    _assert_bf16_close("k_cache", kc[written], g_kc[written])
    _assert_bf16_close("v_cache", vc[written], g_vc[written])


@pytest.mark.parametrize("name", DECODE_CASES)
def test_prefill_then_final_logits_match_token_by_token_decode(name):
    """Prefill + qwen3_final_logits against the same kernel fed one position per decode step
    (the token-by-token path), at the decode tolerances."""
    cfg = CONFIGS[name]
    w = random_weights(cfg, seed=5, max_seq=MAX_SEQ)
    p = Prompts(cfg, w, lens=SHORT_LENS, seed=12)
    prog = p.program()
    out, kc, _ = p.kernel_prefill(prog)
    _, logits = interpreter.run(
        prog, "qwen3_final_logits", *final_logits_args(p.w, p.prompt_rows(out), None, None),
        strict=True,
    )  # fmt: skip
    kd, vd = p.caches(0.0)
    want_out, want_logits = {}, {}
    for t in range(p.S):
        rows = [b for b in range(p.U) if t < p.lens[b]]
        args = decode_args(
            p.w, p.w.embed([p.tokens[b][t] for b in rows]), np.full(len(rows), t + 1, np.int32),
            p.alloc.block_table_for(rows), p.alloc.slot_mapping(rows, [t] * len(rows)),
            kd, vd, None, None, None,
        )  # fmt: skip
        o, _, lg = interpreter.run(prog, "qwen3_decode_all", *args)
        for i, b in enumerate(rows):
            want_out[b, t], want_logits[b, t] = np.asarray(o)[i], np.asarray(lg)[i]
    keys = [(b, t) for b in range(p.U) for t in range(p.lens[b])]
    _assert_bf16_close("out", p.prompt_rows(out), np.stack([want_out[k] for k in keys]))
    err = _assert_logits_close(logits, np.stack([want_logits[k] for k in keys]), p.cfg.vocab_size)
    written = p.written(kc)
    _assert_bf16_close("k_cache", kc[written], kd[written])
    print(f"\n[prefill vs decode] {name}: max|dlogit|/max|logit| = {err:.3g}")


@pytest.mark.parametrize("name", ["q2", "q4"])
def test_kernel_prefill_fp32(name):
    cfg = CONFIGS[name]
    w = random_weights(cfg, seed=5, max_seq=MAX_SEQ)
    p = Prompts(cfg, w, seed=2)
    out, kc, _ = p.kernel_prefill(p.program(), precision="fp32", strict=False)
    g_out, g_kc, _ = p.golden_prefill("fp32")
    k, g = p.prompt_rows(out), p.prompt_rows(g_out)
    assert np.abs(k - g).max() <= FP32_REL * np.abs(g).max()
    written = p.written(kc)
    assert np.abs(kc[written] - g_kc[written]).max() <= FP32_REL * np.abs(g_kc[written]).max()


@pytest.mark.parametrize(("block", "cap"), [(32, 16), (16, 16), (16, 32)])
def test_query_blocks_inside_and_equal_to_kv_blocks(block, cap):
    """Several token tiles per prompt: tiles smaller than a KV block (the seed's 64-in-256
    shape, here 16-in-32: the diagonal block's mask window shifts inside the block), equal to
    it, and two query blocks per tile."""
    cfg = CONFIGS["q4"]
    w = random_weights(cfg, seed=5, max_seq=MAX_SEQ)
    p = Prompts(cfg, w, block=block, seed=4)
    out, kc, _ = p.kernel_prefill(p.program(tile_caps={"tok_tile": cap}))
    g_out, g_kc, _ = p.golden_prefill()
    _assert_bf16_close("out", p.prompt_rows(out), p.prompt_rows(g_out))
    written = p.written(kc)
    _assert_bf16_close("k_cache", kc[written], g_kc[written])


@pytest.mark.slow
def test_c_backend_prefill_equals_interpreter():
    from pldsl.backends.c import compile as compile_c

    cfg = CONFIGS["q2"]
    w = random_weights(cfg, seed=5, max_seq=MAX_SEQ)
    p = Prompts(cfg, w, seed=8)
    prog = p.program()
    out_i, kc_i, vc_i = p.kernel_prefill(prog, strict=False)
    kc, vc = p.caches(np.nan)
    args = prefill_args(
        w, p.hidden, p.seq_lens, p.alloc.block_table, p.slots, kc, vc,
        np.empty(p.hidden.shape, BF16),
    )  # fmt: skip
    out_c = np.asarray(compile_c(prog).run("qwen3_prefill_all", *args)[0])
    _assert_bf16_close("out", p.prompt_rows(out_c), p.prompt_rows(out_i))
    written = p.written(kc_i)
    assert np.array_equal(written, p.written(kc))
    _assert_bf16_close("k_cache", kc[written], kc_i[written])
    _assert_bf16_close("v_cache", vc[written], vc_i[written])


# ====================================================================== host side


@pytest.mark.parametrize("backend", ["interpreter", "c"])
def test_generate_with_prefill_equals_golden_greedy(backend):
    cfg = preset("tiny")
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 3], [4, 2], [9]]
    w = random_weights(cfg, seed=1, max_seq=MAX_SEQ)
    want = golden.golden_greedy(w, cfg, prompts, 4)
    strict = backend == "interpreter"
    s = DecodeSession(cfg, w, 3, 24, 16, RunOptions(backend=backend, strict=strict), 4)
    assert s.generate(prompts) == want


def test_session_prompt_logits_and_kv(tiny_cfg, tiny_weights):
    """DecodeSession.prompt_logits (prefill + final logits) against the golden token-by-token
    logits; the prefill leaves the KV rows decode would have written."""
    prompts = [list(range(1, 21)), [7, 8, 9]]
    s = DecodeSession(tiny_cfg, tiny_weights, 2, 24, 16, RunOptions(strict=True))
    got = s.prompt_logits(prompts)
    want = golden.golden_forward_logits(tiny_weights, tiny_cfg, prompts)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    rows = ~np.isnan(want[..., 0])
    _assert_logits_close(got[rows], want[rows], tiny_cfg.vocab_size)
    t = DecodeSession(tiny_cfg, tiny_weights, 2, 24, 16)
    for _ in t.prefill_by_decode(prompts, lambda b: len(prompts[b])):
        pass
    _assert_bf16_close("k_cache", s.k_cache, t.k_cache)
    _assert_bf16_close("v_cache", s.v_cache, t.v_cache)


def test_cli_logits_prefill_and_token_by_token_agree(tmp_path, capsys):
    base = [
        "logits",
        "--random",
        "tiny-gqa4",
        "--token-ids",
        "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17;4,5",
    ]
    assert main([*base, "--out", str(tmp_path / "p.npy"), "--strict"]) == 0
    assert main([*base, "--out", str(tmp_path / "t.npy"), "--token-by-token"]) == 0
    got, want = np.load(tmp_path / "p.npy"), np.load(tmp_path / "t.npy")
    assert got.shape == want.shape == (2, 17, 384)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    rows = ~np.isnan(want[..., 0])
    _assert_logits_close(got[rows], want[rows], 384)


@pytest.mark.slow
def test_cli_generate_token_by_token_flag(capsys):
    base = [
        "generate",
        "--random",
        "tiny",
        "--prompt-ids",
        "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17;4",
        "--json",
    ]
    assert main([*base, "--max-new-tokens", "3"]) == 0
    prefill = capsys.readouterr().out
    assert main([*base, "--max-new-tokens", "3", "--token-by-token"]) == 0
    assert capsys.readouterr().out == prefill
