"""The seed's own file (pypto-lib 60fcbc57 `models/qwen3/14b/qwen3_14b_l3_generate.py`) captures
unchanged, and its `qwen3_decode_all` at a reduced configuration (2 layers, hidden 2560, 20/4
heads of 128, 3 sequences crossing a KV page) agrees with pldsl's own NumPy golden of the
decode step for the same weights and caches (optional: PLDSL_PYPTO_LIB)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LIB = os.environ.get("PLDSL_PYPTO_LIB")
FILE = "models/qwen3/14b/qwen3_14b_l3_generate.py"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LIB, reason="set PLDSL_PYPTO_LIB to a pypto-lib checkout or git dir"),
]
L, H, NH, NKV, D, INTER, VOCAB, MAX_SEQ, BATCH, PAGE = 2, 2560, 20, 4, 128, 2048, 256, 512, 16, 256


def seed_module(tmp_path: Path):
    from pldsl.pypto.hook import pypto_modules

    text = subprocess.run(["git", "-C", LIB, "show", f"60fcbc57:{FILE}"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    path = tmp_path / "qwen3_14b_l3_generate.py"
    path.write_text(text)
    with pypto_modules():
        spec = importlib.util.spec_from_file_location("seed_l3_generate", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        program = module.build_qwen3_14b_l3_generate_program(
            num_layers=L, batch=BATCH, max_seq=MAX_SEQ, hidden_size=H, intermediate_size=INTER,
            num_heads=NH, num_kv_heads=NKV, head_dim=D, max_new_tokens=2, padded_vocab=VOCAB,
        )  # fmt: skip
    return program


def test_the_seeds_decode_agrees_with_the_golden(tmp_path):
    from pldsl.kernels.qwen3.config import Qwen3Config
    from pldsl.kernels.qwen3.golden import decode_step
    from pldsl.kernels.qwen3.weights import (
        BF16,
        KVLayout,
        PageAllocator,
        new_kv_cache,
        random_weights,
    )

    from pldsl import interpreter

    program = seed_module(tmp_path)
    cfg = Qwen3Config(hidden_size=H, intermediate_size=INTER, num_hidden_layers=L,
                      num_attention_heads=NH, num_key_value_heads=NKV, head_dim=D, vocab_size=VOCAB)  # fmt: skip
    w = random_weights(cfg, seed=3, max_seq=MAX_SEQ, vocab_pad=64)
    pages = MAX_SEQ // PAGE
    layout = KVLayout(num_pages=BATCH * pages, block_size=PAGE)
    alloc = PageAllocator(layout, BATCH, pages)
    seq = [5, 260, 17]  # the second context spans two pages
    for b, n in enumerate(seq):
        alloc.reserve(b, n)
    rng = np.random.default_rng(0)
    k_cache, v_cache = new_kv_cache(cfg, layout)
    k_cache[:] = (rng.standard_normal(k_cache.shape) * 0.5).astype(BF16)
    v_cache[:] = (rng.standard_normal(v_cache.shape) * 0.5).astype(BF16)
    hidden = rng.standard_normal((len(seq), H)).astype(BF16)
    seq_lens = np.array(seq, np.int32)
    slots = alloc.slot_mapping(range(len(seq)), [n - 1 for n in seq]).astype(np.int32)
    table = alloc.block_table.copy()
    k_gold, v_gold = k_cache.copy(), v_cache.copy()
    before = {"k": k_cache.copy(), "v": v_cache.copy()}
    g_out, g_rms, g_logits = decode_step(w, cfg, hidden, seq_lens, table, slots, k_gold, v_gold,
                                         block_size=PAGE, max_blocks_per_seq=pages)  # fmt: skip

    given = {
        "hidden_states": hidden, "seq_lens": seq_lens, "block_table": table, "slot_mapping": slots,
        "k_cache_all": k_cache, "v_cache_all": v_cache, "lm_head_weight_t": w.lm_head_weight,
        "out": np.zeros((len(seq), H), BF16), "rms_normed": np.zeros((BATCH, H), BF16),
        "logits_padded": np.zeros((BATCH, w.padded_vocab), np.float32),
    }  # fmt: skip
    fn = program.functions["qwen3_decode_all"]
    interpreter.run(
        program, fn.name, *[given.get(p.name, getattr(w, p.name, None)) for p in fn.params]
    )

    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    n = len(seq)
    for got, want in ((given["out"], g_out), (given["rms_normed"][:n], g_rms)):
        assert np.abs(f32(got) - f32(want)).max() <= 2**-6 * np.abs(f32(want)).max()
    logits = given["logits_padded"][:n]
    assert np.abs(logits - g_logits).max() <= 1e-2 * np.abs(g_logits).max()
    assert (logits.argmax(1) == g_logits.argmax(1)).all()
    for got, want, old in ((k_cache, k_gold, before["k"]), (v_cache, v_gold, before["v"])):
        rows = np.where((f32(want) != f32(old)).any(1))[0]
        assert len(rows) == L * NKV * n  # one row per layer, KV head and sequence
        assert (
            np.abs(f32(got[rows]) - f32(want[rows])).max() <= 2**-6 * np.abs(f32(want[rows])).max()
        )
