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

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest


def _import_hub_kernels() -> None:
    """Import Hugging Face's ``kernels`` distribution (which transformers imports when it is
    installed) before the repository root on ``sys.path`` can shadow it with our ``kernels/``
    folder (imported as ``pldsl.kernels``, never as ``kernels``)."""
    root = Path(__file__).resolve().parents[2]
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if Path(p or ".").resolve() != root]
    try:
        importlib.import_module("kernels")
    except ImportError:
        pass  # not installed: transformers will not import it either
    finally:
        sys.path[:] = saved


_import_hub_kernels()
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_oracle import compare, hf_logits  # noqa: E402
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


def _hf_model(cfg, seed: int = 2024):
    """A transformers model of ``cfg`` with BF16-representable FP32 parameters (matrices
    0.05*randn, norm gammas 1 +- 0.1, embeddings randn)."""
    hf_cfg = transformers.Qwen3Config(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=False,
        attention_bias=False,
        hidden_act="silu",
    )
    hf_cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(hf_cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=[pytest.mark.slow] if name in ("q1", "q4") else [])
        for name in sorted(CONFIGS)
    ],
)
def oracle(request, tmp_path_factory):
    model = _hf_model(CONFIGS[request.param])
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
