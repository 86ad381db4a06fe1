"""Oracle for the PREFILL path: `DecodeSession.prompt_logits` (``qwen3_prefill_all`` +
``qwen3_final_logits`` on the interpreter) and the golden prefill against Hugging Face
transformers' ``Qwen3ForCausalLM`` on ragged prompts that cross KV blocks, with 1, 2, 4 and 5
query heads per KV head.

Skipped unless torch and transformers are installed (``pip install '.[oracle]'``). As in
`test_qwen3_oracle_kernel.py`, the random model's parameters are rounded to BF16-representable
values (kept FP32) and written with ``save_pretrained``; ``load_checkpoint`` reads them back.
``fp32`` must agree with the FP32 transformers model within 1e-4 of max|logit| (argmax equal
everywhere); ``bf16`` (rounding at the kernel's cast points) within 3e-2, argmax equal on at least
90% of positions. ``pytest -s`` prints the measured numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_oracle import compare, hf_logits, hf_model  # noqa: E402
from pldsl.kernels.qwen3.config import preset  # noqa: E402
from pldsl.kernels.qwen3.golden import golden_prefill_logits  # noqa: E402
from pldsl.kernels.qwen3.session import DecodeSession, RunOptions  # noqa: E402
from pldsl.kernels.qwen3.weights import load_checkpoint  # noqa: E402

LENS = (37, 20, 5)  # 3, 2 and 1 KV pages of 16 tokens
BLOCK = 16

_Q5 = preset("tiny").replace(num_attention_heads=10, head_dim=16)
CONFIGS = {
    "q1": _Q5.replace(num_attention_heads=4, num_key_value_heads=4, head_dim=32),
    "q2": preset("tiny"),
    "q4": preset("tiny-gqa4"),
    "q5": _Q5,
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=[pytest.mark.slow] if name in ("q1", "q4") else [])
        for name in sorted(CONFIGS)
    ],
)
def oracle(request, tmp_path_factory):
    model = hf_model(CONFIGS[request.param], tied=False, seed=2024)
    path = tmp_path_factory.mktemp("qwen3_prefill_ckpt")
    model.save_pretrained(path, safe_serialization=True)
    cfg, weights = load_checkpoint(path, max_seq=64)
    rng = np.random.default_rng(9)
    seqs = [rng.integers(0, cfg.vocab_size, n).tolist() for n in LENS]
    return request.param, cfg, weights, seqs, hf_logits(model, seqs)


@pytest.mark.parametrize(
    ("precision", "max_err", "min_agree"), [("fp32", 1e-4, 1.0), ("bf16", 3e-2, 0.9)]
)
def test_kernel_prefill_matches_transformers(oracle, precision, max_err, min_agree):
    name, cfg, weights, seqs, refs = oracle
    session = DecodeSession(
        cfg, weights, len(seqs), max(LENS), BLOCK, RunOptions(precision=precision)
    )
    got = session.prompt_logits(seqs)
    err, agree = compare(got, refs, seqs)
    print(f"\n[prefill oracle {name}] kernel {precision}: max rel {err:.3g}, argmax {agree:.3f}")
    assert err <= max_err, err
    assert agree >= min_agree, agree


@pytest.mark.parametrize(
    ("precision", "max_err", "min_agree"), [("fp32", 1e-4, 1.0), ("bf16", 3e-2, 0.9)]
)
def test_golden_prefill_matches_transformers(oracle, precision, max_err, min_agree):
    name, cfg, weights, seqs, refs = oracle
    got = golden_prefill_logits(weights, cfg, seqs, precision, BLOCK)
    err, agree = compare(got, refs, seqs)
    print(f"\n[prefill oracle {name}] golden {precision}: max rel {err:.3g}, argmax {agree:.3f}")
    assert err <= max_err, err
    assert agree >= min_agree, agree
