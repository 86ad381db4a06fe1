"""A tiny random transformers Qwen3 model, shared by the oracle tests (needs torch)."""

from __future__ import annotations

import numpy as np
import torch
import transformers
from pldsl.kernels.qwen3.config import preset


def hf_model(preset_name, tied: bool, seed: int = 1234):
    """`Qwen3ForCausalLM` with the shapes of ``preset_name`` (a preset name or a `Qwen3Config`);
    parameters BF16-representable, kept FP32."""
    c = preset(preset_name) if isinstance(preset_name, str) else preset_name
    hf_cfg = transformers.Qwen3Config(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads,
        head_dim=c.head_dim,
        rms_norm_eps=c.rms_norm_eps,
        # transformers 5.x defaults rope_theta to 1e4; real Qwen3 uses 1e6
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        max_position_embeddings=c.max_position_embeddings,
        tie_word_embeddings=tied,
        attention_bias=False,
        hidden_act="silu",
    )
    hf_cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(hf_cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # all four RMSNorm kinds: gammas 1 +- 0.1
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))  # BF16-representable, stays FP32
    return model


def hf_logits(model, seqs):
    """Per sequence, transformers' float32 logits [len, vocab]."""
    out = []
    with torch.no_grad():
        for s in seqs:
            out.append(model(torch.tensor([s])).logits[0].float().numpy())
    return out


def compare(got, refs, seqs):
    """(max over sequences of max |Δ| / max |ref|, argmax agreement over all positions) of
    logits ``got [batch, max_len, vocab]`` against ``refs`` (one ``[len, vocab]`` per sequence);
    ``got`` must be finite up to each sequence's end and NaN past it."""
    err = agree = n = 0.0
    for b, (s, ref) in enumerate(zip(seqs, refs)):
        g = got[b, : len(s)]
        assert np.isfinite(g).all() and np.isnan(got[b, len(s) :]).all()
        err = max(err, float(np.abs(g - ref).max() / np.abs(ref).max()))
        agree += float((g.argmax(-1) == ref.argmax(-1)).sum())
        n += len(s)
    return err, agree / n
