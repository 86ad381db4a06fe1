"""`DecodeSession` (kernels/qwen3/session.py) against the independent NumPy golden.

The session runs the DSL program on the interpreter: ragged prefill one position per step
(`prefill_by_decode`) and greedy generation through `host_orch` (`generate`). References come
from `kernels.qwen3.golden.golden_forward_logits`, which never imports pldsl.

Tolerances (docs/qwen3.md, "Tolerances and measured agreement"): BF16 logits within
5e-3 of max|logit| with the argmax equal wherever the top-2 gap exceeds twice that; FP32 mode
within 1e-5 of max|logit|.
"""

from __future__ import annotations

import numpy as np
import pytest
from pldsl.kernels.qwen3.golden import compare_logits, golden_forward_logits, golden_greedy
from pldsl.kernels.qwen3.session import DecodeSession, RunOptions

BLOCK = 16
PREFILL_LENS = (20, 3, 11)  # ragged; the first crosses a KV page
BF16_TOL = 5e-3
FP32_TOL = 1e-5


def _prompts(cfg, lens, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, cfg.vocab_size, n).tolist() for n in lens]


def session_logits(session, prompts):
    """[batch, max_len, vocab] logits of `prefill_by_decode`, NaN past each end; rows per step."""
    vocab = session.cfg.vocab_size
    out = np.full((len(prompts), max(map(len, prompts)), vocab), np.nan, np.float32)
    steps = []
    for t, rows, logits in session.prefill_by_decode(prompts, lambda b: len(prompts[b])):
        logits = np.asarray(logits)
        assert logits.shape == (len(rows), session.weights.padded_vocab)
        out[rows, t] = logits[:, :vocab]
        steps.append(list(rows))
    return out, steps


def compare(got, ref):
    """(max |Δ| / max |ref|, bit-equal fraction, argmax mismatches where the top-2 gap is wide),
    after checking that `got` is NaN exactly where `ref` is and finite elsewhere."""
    valid = ~np.isnan(ref)
    assert np.array_equal(np.isnan(got), ~valid), "NaN pattern differs"
    assert np.isfinite(got[valid]).all()
    a = compare_logits(got, ref, gap=2 * BF16_TOL)
    return a.rel_error, a.bit_equal, a.clear_mismatches


@pytest.fixture(scope="module")
def prefill_prompts(tiny_cfg):
    return _prompts(tiny_cfg, PREFILL_LENS, seed=11)


# ---------------------------------------------------------------------- prefill logits


def test_prefill_by_decode_bf16_matches_golden(tiny_cfg, tiny_weights, prefill_prompts):
    session = DecodeSession(tiny_cfg, tiny_weights, 3, max(PREFILL_LENS), BLOCK)
    got, steps = session_logits(session, prefill_prompts)
    # ragged: a finished sequence leaves the batch
    assert steps == [[b for b, n in enumerate(PREFILL_LENS) if n > t] for t in range(20)]
    ref = golden_forward_logits(tiny_weights, tiny_cfg, prefill_prompts, "bf16", BLOCK)
    rel, bit_equal, mismatches = compare(got, ref)
    print(f"\n[session bf16] max|Δ|/max|logit| = {rel:.3g}, bit-equal {100 * bit_equal:.1f}%")
    assert rel <= BF16_TOL, rel
    assert mismatches == 0


def test_prefill_by_decode_fp32_matches_golden(tiny_cfg, tiny_weights, prefill_prompts):
    session = DecodeSession(
        tiny_cfg, tiny_weights, 3, max(PREFILL_LENS), BLOCK, RunOptions(precision="fp32")
    )
    assert session.k_cache.dtype == np.float32
    got, _ = session_logits(session, prefill_prompts)
    ref = golden_forward_logits(tiny_weights, tiny_cfg, prefill_prompts, "fp32", BLOCK)
    rel, bit_equal, _ = compare(got, ref)
    print(f"\n[session fp32] max|Δ|/max|logit| = {rel:.3g}, bit-equal {100 * bit_equal:.1f}%")
    assert rel <= FP32_TOL, rel
    # and fp32 really differs from bf16 (the precision option reaches the interpreter)
    bf16 = golden_forward_logits(tiny_weights, tiny_cfg, prefill_prompts, "bf16", BLOCK)
    valid = ~np.isnan(ref)
    assert np.abs(got[valid] - bf16[valid]).max() > 100 * FP32_TOL * np.abs(ref[valid]).max()


# ---------------------------------------------------------------------- generate


def test_generate_equals_golden_greedy_loop(tiny_cfg, tiny_weights):
    prompts = _prompts(tiny_cfg, (7, 1, 18), seed=5)
    n_new = 5
    session = DecodeSession(tiny_cfg, tiny_weights, 3, 18 + n_new, BLOCK, max_new_tokens=n_new)
    seen = []
    tokens = session.generate(prompts, on_step=lambda step, logits, ctx: seen.append(step))
    expected = golden_greedy(tiny_weights, tiny_cfg, prompts, n_new, block_size=BLOCK)
    print(f"\n[session generate] {tokens}")
    assert tokens == expected
    assert all(0 <= t < tiny_cfg.vocab_size for seq in tokens for t in seq)
    assert seen == list(range(n_new))


def test_generate_stops_at_max_len(tiny_cfg, tiny_weights):
    prompts = _prompts(tiny_cfg, (8, 3), seed=6)
    session = DecodeSession(tiny_cfg, tiny_weights, 2, 8, BLOCK, max_new_tokens=4)
    tokens = session.generate(prompts)
    # a sequence's context never exceeds max_len: the 8-token prompt gets one token
    # (sampled from position 7), the 3-token prompt all four (positions 2..5)
    expected = golden_greedy(tiny_weights, tiny_cfg, prompts, 4, block_size=BLOCK)
    assert tokens == [expected[0][:1], expected[1]]


def test_eos_ends_one_row_only(tiny_cfg, tiny_weights):
    prompts = _prompts(tiny_cfg, (4, 9), seed=8)
    expected = golden_greedy(tiny_weights, tiny_cfg, prompts, 4, block_size=BLOCK)
    eos = expected[0][0]
    assert eos not in expected[1]  # the other row must not stop on it
    session = DecodeSession(tiny_cfg, tiny_weights, 2, 13, BLOCK, max_new_tokens=4)
    seen = []
    tokens = session.generate(
        prompts, on_step=lambda step, logits, ctx: seen.append(step), eos_id=eos
    )
    assert tokens == [[eos], expected[1]]
    assert seen == [0, 1, 2, 3]  # step numbers keep counting after row 0 finished


# ---------------------------------------------------------------------- KV pages


def test_sequences_never_share_kv_pages(tiny_cfg, tiny_weights):
    lens = (33, 17, 20)  # 3, 2 and 2 pages of 16 tokens
    prompts = _prompts(tiny_cfg, lens, seed=9)
    session = DecodeSession(tiny_cfg, tiny_weights, 3, max(lens), BLOCK)
    pages = session.allocator.page_ids
    assert [len(p) for p in pages] == [session.max_blocks] * 3 == [3, 3, 3]
    flat = [p for seq in pages for p in seq]
    assert len(set(flat)) == len(flat)
    assert all(0 <= p < session.layout.num_pages for p in flat)
    table = session.allocator.block_table.reshape(3, session.max_blocks)
    assert table.tolist() == pages
    together, _ = session_logits(session, prompts)

    # every written cache row lies in a page of the sequence that wrote it: pages of a
    # sequence hold nonzero rows only up to its length
    rows_per_page = tiny_cfg.num_key_value_heads * BLOCK
    for b, n in enumerate(lens):
        for blk, page in enumerate(pages[b]):
            used = min(max(n - blk * BLOCK, 0), BLOCK)
            for layer in range(tiny_cfg.num_hidden_layers):
                r0 = (layer * session.layout.num_pages + page) * rows_per_page
                block = session.k_cache[r0 : r0 + rows_per_page].astype(np.float32)
                block = block.reshape(tiny_cfg.num_key_value_heads, BLOCK, -1)
                written = np.any(block != 0, axis=(0, 2))
                assert written.tolist() == [True] * used + [False] * (BLOCK - used), (b, blk)

    # each sequence decoded alone gives bit-identical logits: nobody else's writes reach it
    for b, p in enumerate(prompts):
        alone = DecodeSession(tiny_cfg, tiny_weights, 1, len(p), BLOCK)
        single, _ = session_logits(alone, [p])
        np.testing.assert_array_equal(single[0], together[b, : len(p)])


# ---------------------------------------------------------------------- errors


def test_prompt_longer_than_max_len_is_refused(tiny_cfg, tiny_weights):
    session = DecodeSession(tiny_cfg, tiny_weights, 2, 5, BLOCK, max_new_tokens=2)
    with pytest.raises(ValueError, match=r"prompt 0 has 8 tokens; .*max_len=5"):
        session.generate([list(range(8)), [1]])
    with pytest.raises(ValueError, match=r"prompt 1 has 6 tokens"):
        list(session.prefill_by_decode([[1], list(range(6))], lambda b: 1))


def test_empty_prompt_is_refused(tiny_cfg, tiny_weights):
    session = DecodeSession(tiny_cfg, tiny_weights, 2, 8, BLOCK)
    with pytest.raises(ValueError, match="at least one token"):
        session.generate([[1, 2], []])


def test_more_prompts_than_batch_is_refused(tiny_cfg, tiny_weights):
    session = DecodeSession(tiny_cfg, tiny_weights, 2, 8, BLOCK)
    with pytest.raises(ValueError, match="3 prompts for a session of batch 2"):
        session.generate([[1], [2], [3]])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(backend="cuda"), "unknown backend 'cuda'; choose one of interpreter, c"),
        (dict(precision="fp16"), "unknown precision 'fp16'"),
        (dict(backend="c", trace="t.json"), "need the interpreter backend"),
    ],
)
def test_bad_run_options(options, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(**options)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block_size=0), "block_size must be a positive int, got 0"),
        (dict(batch=0), "batch must be a positive int"),
        (dict(max_len=300), "the weights have max_seq=256"),
    ],
)
def test_bad_session_geometry(tiny_cfg, tiny_weights, kwargs, message):
    args = dict(batch=1, max_len=8, block_size=BLOCK) | kwargs
    with pytest.raises(ValueError, match=message):
        DecodeSession(tiny_cfg, tiny_weights, **args)
