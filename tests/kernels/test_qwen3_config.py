"""Qwen3 config parsing, checkpoint loading into the stacked layout, RoPE tables, KV helpers."""

from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest
from pldsl.kernels.qwen3.config import PRESETS, ConfigError, Qwen3Config, preset, preset_names
from pldsl.kernels.qwen3.weights import (
    BF16,
    KERNEL_WEIGHT_NAMES,
    WEIGHT_NAMES,
    CheckpointError,
    KVLayout,
    PageAllocator,
    Qwen3Weights,
    blocks_needed,
    load_checkpoint,
    new_kv_cache,
    random_weights,
    read_safetensors_raw,
    rope_inv_freq,
    rope_tables,
    to_bf16_rne,
)
from safetensors.numpy import save_file

# ====================================================================== config


def _hf_dict(**over):
    """A config.json as transformers 5.x writes it for the tiny shape."""
    d = {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "head_dim": 32,
        "hidden_act": "silu",
        "hidden_size": 128,
        "intermediate_size": 256,
        "max_position_embeddings": 512,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": None,
        "vocab_size": 384,
        "dtype": "bfloat16",
    }
    d.update(over)
    return d


def test_from_dict_hf5_matches_tiny_preset():
    assert Qwen3Config.from_dict(_hf_dict()) == preset("tiny")


def test_legacy_top_level_rope_theta():
    d = _hf_dict(rope_theta=5e5, rope_scaling=None)
    del d["rope_parameters"]
    assert Qwen3Config.from_dict(d).rope_theta == 5e5


def test_rope_theta_defaults_like_transformers():
    d = _hf_dict()
    del d["rope_parameters"]
    assert Qwen3Config.from_dict(d).rope_theta == 10000.0
    # rope_parameters without a theta falls back to the top-level value
    d = _hf_dict(rope_parameters={"rope_type": "default"}, rope_theta=2e6)
    assert Qwen3Config.from_dict(d).rope_theta == 2e6
    # the dict value wins over the top-level one
    d = _hf_dict(rope_parameters={"rope_type": "default", "rope_theta": 3e6}, rope_theta=2e6)
    assert Qwen3Config.from_dict(d).rope_theta == 3e6


def test_rope_scaling_default_type_accepted_and_takes_priority():
    d = _hf_dict(rope_scaling={"type": "default", "rope_theta": 7e5})
    assert Qwen3Config.from_dict(d).rope_theta == 7e5


def test_nested_rope_parameters_per_layer_type():
    d = _hf_dict(rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 4e5}})
    assert Qwen3Config.from_dict(d).rope_theta == 4e5
    d = _hf_dict(
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 4e5},
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
        }
    )
    with pytest.raises(ConfigError, match="differ"):
        Qwen3Config.from_dict(d)


@pytest.mark.parametrize("field", ["rope_scaling", "rope_parameters"])
@pytest.mark.parametrize("rtype", ["yarn", "linear", "dynamic", "llama3", "longrope"])
def test_scaled_rope_rejected(field, rtype):
    d = _hf_dict(**{field: {"rope_type": rtype, "factor": 4.0, "rope_theta": 1e6}})
    with pytest.raises(ConfigError, match=rf"{field}.*{rtype}"):
        Qwen3Config.from_dict(d)
    d = _hf_dict(**{field: {"type": rtype, "factor": 4.0}})
    with pytest.raises(ConfigError, match=rtype):
        Qwen3Config.from_dict(d)


def test_partial_rotary_rejected():
    with pytest.raises(ConfigError, match="partial_rotary_factor"):
        Qwen3Config.from_dict(_hf_dict(partial_rotary_factor=0.5))
    d = _hf_dict(rope_parameters={"rope_type": "default", "partial_rotary_factor": 0.5})
    with pytest.raises(ConfigError, match="partial_rotary_factor"):
        Qwen3Config.from_dict(d)


@pytest.mark.parametrize(
    "field",
    [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "head_dim",
    ],
)
def test_missing_required_field_named(field):
    d = _hf_dict()
    del d[field]
    with pytest.raises(ConfigError, match=field):
        Qwen3Config.from_dict(d)


def test_optional_fields_default():
    d = _hf_dict()
    for k in (
        "num_key_value_heads",
        "rms_norm_eps",
        "max_position_embeddings",
        "tie_word_embeddings",
    ):
        del d[k]
    c = Qwen3Config.from_dict(d)
    assert c.num_key_value_heads == c.num_attention_heads == 4
    assert c.rms_norm_eps == 1e-6
    assert c.max_position_embeddings == 32768
    assert c.tie_word_embeddings is False
    assert Qwen3Config.from_dict(_hf_dict(num_key_value_heads=None)).q_per_kv == 1


@pytest.mark.parametrize(
    "over, match",
    [
        ({"model_type": "llama"}, "model_type"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"attention_bias": True}, "attention_bias"),
        ({"use_sliding_window": True}, "use_sliding_window"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": 128.0}, "hidden_size"),
        ({"head_dim": 33}, "head_dim"),
        ({"rms_norm_eps": -1.0}, "rms_norm_eps"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": -5}}, "rope_theta"),
    ],
)
def test_invalid_configs(over, match):
    with pytest.raises(ConfigError, match=match):
        Qwen3Config.from_dict(_hf_dict(**over))


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        Qwen3Config.from_dict([1, 2])


def test_from_json_file_and_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(_hf_dict()))
    assert Qwen3Config.from_json(tmp_path) == preset("tiny")
    assert Qwen3Config.from_json(tmp_path / "config.json") == preset("tiny")
    assert Qwen3Config.from_json(str(tmp_path)) == preset("tiny")


def test_from_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Qwen3Config.from_json(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        Qwen3Config.from_json(tmp_path)
    d = _hf_dict()
    del d["vocab_size"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="vocab_size"):
        Qwen3Config.from_json(tmp_path)


def test_to_dict_round_trip():
    for name in preset_names():
        c = preset(name)
        assert Qwen3Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c


# Numbers of the Qwen/Qwen3-* config.json files (hub), checked field by field.
_HUB = {
    "qwen3-0.6b": (1024, 3072, 28, 16, 8, True),
    "qwen3-8b": (4096, 12288, 36, 32, 8, False),
    "qwen3-14b": (5120, 17408, 40, 40, 8, False),
    "qwen3-32b": (5120, 25600, 64, 64, 8, False),
}


@pytest.mark.parametrize("name", sorted(_HUB))
def test_real_presets(name):
    c = preset(name)
    hidden, inter, layers, heads, kv, tied = _HUB[name]
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers) == (hidden, inter, layers)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (heads, kv, 128)
    assert c.tie_word_embeddings is tied
    assert c.vocab_size == 151936
    assert c.rms_norm_eps == 1e-6 and c.rope_theta == 1e6
    assert c.max_position_embeddings == 40960
    assert c.q_width == heads * 128 and c.kv_width == kv * 128 and c.q_per_kv == heads // kv


def test_derived_sizes():
    assert preset("qwen3-32b").q_width == 8192 != preset("qwen3-32b").hidden_size
    assert preset("qwen3-14b").q_per_kv == 5
    assert preset("qwen3-8b").q_per_kv == 4
    assert preset("qwen3-14b").padded_vocab(512) == 152064
    assert preset("qwen3-14b").padded_vocab() == 151936
    assert preset("tiny").padded_vocab(100) == 400
    t4 = preset("tiny-gqa4")
    assert (t4.num_attention_heads, t4.num_key_value_heads, t4.head_dim) == (8, 2, 16)
    assert t4.q_width == 128 == t4.hidden_size and t4.q_per_kv == 4
    t = preset("tiny")
    assert (t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.vocab_size) == (
        128,
        256,
        2,
        384,
    )
    assert (t.q_per_kv, t.kv_width, t.max_position_embeddings) == (2, 64, 512)
    assert not t.tie_word_embeddings


def test_preset_lookup():
    assert preset("Qwen3_14B") is PRESETS["qwen3-14b"]
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("qwen3-999b")


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        preset("tiny").hidden_size = 3  # type: ignore[misc]
    assert preset("tiny").replace(vocab_size=500).vocab_size == 500


# ====================================================================== RoPE tables


@pytest.mark.parametrize("head_dim, theta", [(32, 1e6), (16, 1e6), (128, 1e6), (64, 1e4)])
def test_rope_tables_vs_formula(head_dim, theta):
    max_seq = 300
    cos, sin = rope_tables(max_seq, head_dim, theta)
    assert cos.shape == sin.shape == (max_seq, head_dim)
    assert cos.dtype == sin.dtype == np.float32
    half = head_dim // 2
    np.testing.assert_array_equal(cos[:, :half], cos[:, half:])
    np.testing.assert_array_equal(sin[:, :half], sin[:, half:])
    np.testing.assert_array_equal(cos[0], 1.0)
    np.testing.assert_array_equal(sin[0], 0.0)
    # float64 formula: angle(p, i) = p * theta^(-2i/D)
    i = np.arange(half, dtype=np.float64)
    ang = np.arange(max_seq, dtype=np.float64)[:, None] * theta ** (-2 * i / head_dim)[None, :]
    # FP32 inv_freq / FP32 product: angle error ~ p * 2^-23, i.e. < 1e-4 rad up to p=300
    np.testing.assert_allclose(cos[:, :half], np.cos(ang), atol=1e-4, rtol=0)
    np.testing.assert_allclose(sin[:, :half], np.sin(ang), atol=1e-4, rtol=0)
    # inv_freq is FP32 and close to the exact value
    inv = rope_inv_freq(head_dim, theta)
    assert inv.dtype == np.float32
    np.testing.assert_allclose(inv, theta ** (-2 * i / head_dim), rtol=3e-7)
    # the table is built from the FP32 angle p*inv_freq
    p = 123
    np.testing.assert_allclose(
        cos[p, :half], np.cos((np.float32(p) * inv).astype(np.float64)), rtol=0, atol=1e-7
    )


# ====================================================================== checkpoint round trip


def _random_hf_tensors(cfg: Qwen3Config, rng, dtype, tied: bool) -> dict[str, np.ndarray]:
    H, Im, D = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim

    def t(*shape, mean=0.0, std=0.05):
        a = (mean + std * rng.standard_normal(shape)).astype(np.float32)
        return a.astype(dtype) if dtype != np.float32 else a

    out = {
        "model.embed_tokens.weight": t(cfg.vocab_size, H, std=1.0),
        "model.norm.weight": t(H, mean=1.0),
    }
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = t(H, mean=1.0, std=0.1)
        out[p + "post_attention_layernorm.weight"] = t(H, mean=1.0, std=0.1)
        out[p + "self_attn.q_proj.weight"] = t(cfg.q_width, H)
        out[p + "self_attn.k_proj.weight"] = t(cfg.kv_width, H)
        out[p + "self_attn.v_proj.weight"] = t(cfg.kv_width, H)
        out[p + "self_attn.o_proj.weight"] = t(H, cfg.q_width)
        out[p + "self_attn.q_norm.weight"] = t(D, mean=1.0, std=0.1)
        out[p + "self_attn.k_norm.weight"] = t(D, mean=1.0, std=0.1)
        out[p + "mlp.gate_proj.weight"] = t(Im, H)
        out[p + "mlp.up_proj.weight"] = t(Im, H)
        out[p + "mlp.down_proj.weight"] = t(H, Im)
    if not tied:
        out["lm_head.weight"] = t(cfg.vocab_size, H)
    return out


def _write_checkpoint(path, cfg: Qwen3Config, tensors: dict, shards: int, index: bool = True):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg.to_dict()))
    names = sorted(tensors)
    if shards == 1:
        save_file(tensors, str(path / "model.safetensors"))
        return
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        save_file(part, str(path / fname))
        weight_map.update({n: fname for n in part})
    if index:
        idx = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(idx))


def _check_stacked(cfg: Qwen3Config, w: Qwen3Weights, src: dict, vocab_pad: int):
    """Element-by-element check of the stacked layout against the HF tensors."""
    H, Im, Qw = cfg.hidden_size, cfg.intermediate_size, cfg.q_width

    def bf(a):
        return np.asarray(a).astype(np.float32).astype(BF16)  # RNE, like torch .to(bf16)

    def f32(a):
        return np.asarray(a).astype(np.float32)

    def eq(a, b):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(
            a.view(np.uint16) if a.dtype == BF16 else a, b.view(np.uint16) if b.dtype == BF16 else b
        )

    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        eq(w.input_rms_weight[i], f32(src[p + "input_layernorm.weight"]))
        eq(w.post_rms_weight[i], f32(src[p + "post_attention_layernorm.weight"]))
        eq(w.q_norm_weight[i], f32(src[p + "self_attn.q_norm.weight"]))
        eq(w.k_norm_weight[i], f32(src[p + "self_attn.k_norm.weight"]))
        for r in range(H):  # row r of layer i = input feature r: column r of HF [out, in]
            eq(w.wq[i * H + r], bf(src[p + "self_attn.q_proj.weight"][:, r]))
            eq(w.wk[i * H + r], bf(src[p + "self_attn.k_proj.weight"][:, r]))
            eq(w.wv[i * H + r], bf(src[p + "self_attn.v_proj.weight"][:, r]))
            eq(w.w_gate[i * H + r], bf(src[p + "mlp.gate_proj.weight"][:, r]))
            eq(w.w_up[i * H + r], bf(src[p + "mlp.up_proj.weight"][:, r]))
        for r in range(Qw):
            eq(w.wo[i * Qw + r], bf(src[p + "self_attn.o_proj.weight"][:, r]))
        for r in range(Im):
            eq(w.w_down[i * Im + r], bf(src[p + "mlp.down_proj.weight"][:, r]))
    eq(w.final_norm_weight[0], f32(src["model.norm.weight"]))
    eq(w.embed_tokens, bf(src["model.embed_tokens.weight"]))
    lm_src = src["model.embed_tokens.weight"] if cfg.tie_word_embeddings else src["lm_head.weight"]
    V = cfg.vocab_size
    assert w.padded_vocab == -(-V // vocab_pad) * vocab_pad
    eq(w.lm_head_weight[:V], bf(lm_src))
    for r in range(V, w.padded_vocab):
        eq(w.lm_head_weight[r], bf(lm_src[0]))


@pytest.mark.parametrize(
    "dtype, shards, tied, vocab_pad",
    [
        (ml_dtypes.bfloat16, 1, False, 64),
        (np.float32, 1, True, 64),
        (ml_dtypes.bfloat16, 3, True, 100),
        (np.float32, 2, False, 512),
    ],
)
def test_checkpoint_round_trip(tmp_path, dtype, shards, tied, vocab_pad):
    cfg = preset("tiny").replace(tie_word_embeddings=tied, vocab_size=300, intermediate_size=192)
    src = _random_hf_tensors(cfg, np.random.default_rng(7), dtype, tied)
    _write_checkpoint(tmp_path / "ck", cfg, src, shards)
    cfg2, w = load_checkpoint(tmp_path / "ck", max_seq=64, vocab_pad=vocab_pad)
    assert cfg2 == cfg and w.cfg == cfg
    _check_stacked(cfg, w, src, vocab_pad)
    assert w.max_seq == 64
    cos, sin = rope_tables(64, cfg.head_dim, cfg.rope_theta)
    np.testing.assert_array_equal(w.rope_cos, cos)
    np.testing.assert_array_equal(w.rope_sin, sin)
    assert not np.shares_memory(w.lm_head_weight, w.embed_tokens)


def test_checkpoint_sharded_without_index(tmp_path):
    cfg = preset("tiny-gqa4")
    src = _random_hf_tensors(cfg, np.random.default_rng(3), ml_dtypes.bfloat16, False)
    _write_checkpoint(tmp_path, cfg, src, shards=2, index=False)
    _, w = load_checkpoint(tmp_path, max_seq=16)
    _check_stacked(cfg, w, src, 64)


def test_checkpoint_q_width_not_hidden(tmp_path):
    cfg = Qwen3Config(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=100,
    )
    assert cfg.q_width == 96 != cfg.hidden_size
    src = _random_hf_tensors(cfg, np.random.default_rng(4), np.float32, False)
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    _, w = load_checkpoint(tmp_path, max_seq=8)
    assert w.wq.shape == (2 * 64, 96) and w.wo.shape == (2 * 96, 64)
    _check_stacked(cfg, w, src, 64)


def test_fp32_to_bf16_is_round_to_nearest_even(tmp_path):
    cfg = preset("tiny")
    src = _random_hf_tensors(cfg, np.random.default_rng(5), np.float32, False)
    q = src["model.layers.0.self_attn.q_proj.weight"]
    ulp = 2.0**-7  # BF16 ulp in [1, 2)
    q[0, 0] = 1.0 + ulp / 2  # tie -> even (1.0); ties-away would give 1 + ulp
    q[1, 0] = 1.0 + 3 * ulp / 2  # tie -> even (1 + 2 ulp)
    q[2, 0] = -(1.0 + ulp / 2)  # tie -> -1.0
    q[3, 0] = 1.0 + ulp / 2 + 2.0**-20  # above the tie -> 1 + ulp
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    _, w = load_checkpoint(tmp_path, max_seq=8)
    got = w.wq[0, :4].astype(np.float32)
    np.testing.assert_array_equal(got, [1.0, 1.0 + 2 * ulp, -1.0, 1.0 + ulp])


def test_read_safetensors_raw_matches_safetensors(tmp_path):
    rng = np.random.default_rng(0)
    t = {
        "a": rng.standard_normal((3, 5)).astype(np.float32).astype(ml_dtypes.bfloat16),
        "b": rng.standard_normal((7,)).astype(np.float32),
        "c": rng.standard_normal((2, 2, 2)).astype(np.float16),
    }
    save_file(t, str(tmp_path / "x.safetensors"), metadata={"format": "np"})
    got = read_safetensors_raw(tmp_path / "x.safetensors")
    assert set(got) == set(t)
    for k in t:
        assert got[k].dtype == t[k].dtype and got[k].shape == t[k].shape
        np.testing.assert_array_equal(got[k].view(np.uint8), t[k].view(np.uint8))
    only = read_safetensors_raw(tmp_path / "x.safetensors", ["b"])
    assert list(only) == ["b"]


def _good_ckpt(tmp_path, tied=False):
    cfg = preset("tiny").replace(tie_word_embeddings=tied)
    src = _random_hf_tensors(cfg, np.random.default_rng(9), ml_dtypes.bfloat16, tied)
    return cfg, src


def test_checkpoint_errors_paths(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path)
    cfg, _ = _good_ckpt(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg.to_dict(), "model_type": "llama"}))
    with pytest.raises(ConfigError, match="model_type"):
        load_checkpoint(tmp_path)


def test_checkpoint_missing_tensor_named(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    del src["model.layers.1.mlp.up_proj.weight"]
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        load_checkpoint(tmp_path, max_seq=8)


def test_checkpoint_missing_lm_head_untied(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    del src["lm_head.weight"]
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        load_checkpoint(tmp_path, max_seq=8)


def test_checkpoint_shape_mismatch_named(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    name = "model.layers.0.self_attn.k_proj.weight"
    src[name] = src[name][:, :-1].copy()
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    with pytest.raises(CheckpointError, match=rf"{name}.*shape"):
        load_checkpoint(tmp_path, max_seq=8)


def test_checkpoint_bad_dtype_named(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    src["model.norm.weight"] = src["model.norm.weight"].astype(np.float64)
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    with pytest.raises(CheckpointError, match=r"model\.norm\.weight.*dtype"):
        load_checkpoint(tmp_path, max_seq=8)


def test_checkpoint_bias_and_extra_layer_rejected(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    src["model.layers.0.self_attn.q_proj.bias"] = np.zeros(cfg.q_width, np.float32)
    _write_checkpoint(tmp_path / "a", cfg, src, shards=1)
    with pytest.raises(CheckpointError, match="bias"):
        load_checkpoint(tmp_path / "a", max_seq=8)
    cfg, src = _good_ckpt(tmp_path)
    src["model.layers.2.input_layernorm.weight"] = np.ones(cfg.hidden_size, np.float32)
    _write_checkpoint(tmp_path / "b", cfg, src, shards=1)
    with pytest.raises(CheckpointError, match=r"model\.layers\.2.*num_hidden_layers"):
        load_checkpoint(tmp_path / "b", max_seq=8)


def test_checkpoint_index_names_missing_shard(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    _write_checkpoint(tmp_path, cfg, src, shards=2)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002"):
        load_checkpoint(tmp_path, max_seq=8)


def test_checkpoint_duplicate_tensor_across_files(tmp_path):
    cfg, src = _good_ckpt(tmp_path)
    _write_checkpoint(tmp_path, cfg, src, shards=1)
    save_file({"model.norm.weight": src["model.norm.weight"]}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.norm\.weight.*both"):
        load_checkpoint(tmp_path, max_seq=8)


# ====================================================================== random weights / container


@pytest.mark.parametrize("name", ["tiny", "tiny-gqa4"])
def test_random_weights_layout(name):
    cfg = preset(name)
    w = random_weights(cfg, seed=3, max_seq=40, vocab_pad=100)
    shapes = {
        "embed_tokens": (384, 128),
        "input_rms_weight": (2, 128),
        "wq": (256, cfg.q_width),
        "wk": (256, cfg.kv_width),
        "wv": (256, cfg.kv_width),
        "q_norm_weight": (2, cfg.head_dim),
        "k_norm_weight": (2, cfg.head_dim),
        "wo": (2 * cfg.q_width, 128),
        "post_rms_weight": (2, 128),
        "w_gate": (256, 256),
        "w_up": (256, 256),
        "w_down": (512, 128),
        "final_norm_weight": (1, 128),
        "lm_head_weight": (400, 128),
        "rope_cos": (40, cfg.head_dim),
        "rope_sin": (40, cfg.head_dim),
    }
    arrays = w.arrays()
    assert tuple(arrays) == WEIGHT_NAMES
    assert tuple(w.kernel_arrays()) == KERNEL_WEIGHT_NAMES
    for k, shape in shapes.items():
        assert arrays[k].shape == shape, k
        want = np.float32 if ("norm" in k or "rms" in k or "rope" in k) else BF16
        assert arrays[k].dtype == want, k
        assert np.isfinite(arrays[k].astype(np.float32)).all()
    np.testing.assert_array_equal(
        w.lm_head_weight[384:].view(np.uint16),
        np.broadcast_to(w.lm_head_weight[0].view(np.uint16), (16, 128)),
    )
    # seeded
    w2 = random_weights(cfg, seed=3, max_seq=40, vocab_pad=100)
    np.testing.assert_array_equal(w.wq.view(np.uint16), w2.wq.view(np.uint16))
    w3 = random_weights(cfg, seed=4, max_seq=40, vocab_pad=100)
    assert not np.array_equal(w.wq.view(np.uint16), w3.wq.view(np.uint16))
    # scales: projections ~ N(0, 1/H), norm weights ~ N(1, 0.1)
    assert abs(float(w.wq.astype(np.float32).std()) - 128**-0.5) < 0.01
    assert abs(float(w.input_rms_weight.mean()) - 1.0) < 0.03
    layer1 = w.layer(1)
    np.testing.assert_array_equal(layer1["wq"].view(np.uint16), w.wq[128:].view(np.uint16))


def test_random_weights_tied_uses_embedding():
    cfg = preset("tiny").replace(tie_word_embeddings=True)
    w = random_weights(cfg, seed=0, max_seq=8)
    np.testing.assert_array_equal(
        w.lm_head_weight[:384].view(np.uint16), w.embed_tokens.view(np.uint16)
    )


def test_weights_container_validates():
    cfg = preset("tiny")
    w = random_weights(cfg, seed=0, max_seq=8)
    arrays = w.arrays()
    with pytest.raises(ValueError, match="wk"):
        Qwen3Weights(cfg=cfg, **{**arrays, "wk": arrays["wk"][:-1]})
    with pytest.raises(TypeError, match="q_norm_weight"):
        Qwen3Weights(cfg=cfg, **{**arrays, "q_norm_weight": arrays["q_norm_weight"].astype(BF16)})
    with pytest.raises(ValueError, match="lm_head_weight"):
        Qwen3Weights(cfg=cfg, **{**arrays, "lm_head_weight": arrays["lm_head_weight"][:100]})
    with pytest.raises(ValueError, match="token id"):
        w.embed([384])
    assert w.embed([3, 5]).dtype == BF16


def test_to_bf16_rne():
    x = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, -(1.0 + 2.0**-8), 3.0], np.float32)
    np.testing.assert_array_equal(to_bf16_rne(x).astype(np.float32), [1.0, 1.0 + 2**-6, -1.0, 3.0])
    with pytest.raises(TypeError):
        to_bf16_rne(np.zeros(2, np.float64))


# ====================================================================== KV cache helpers


def test_kv_layout_rows_and_cache():
    cfg = preset("tiny")  # 2 layers, 2 kv heads, head_dim 32
    lay = KVLayout(num_pages=5, block_size=16)
    assert lay.cache_shape(cfg) == (2 * 5 * 2 * 16, 32)
    k, v = new_kv_cache(cfg, lay)
    assert k.dtype == v.dtype == BF16 and not k.any() and not np.shares_memory(k, v)
    seen = set()
    for layer in range(2):
        for page in range(5):
            for kvh in range(2):
                for tok in range(16):
                    r = lay.row(cfg, layer, page, kvh, tok)
                    assert r == ((layer * 5 + page) * 2 + kvh) * 16 + tok
                    seen.add(r)
    assert seen == set(range(lay.cache_shape(cfg)[0]))
    assert lay.slot_row(cfg, 1, 3 * 16 + 7, 1) == lay.row(cfg, 1, 3, 1, 7)
    with pytest.raises(IndexError):
        lay.row(cfg, 0, 5, 0, 0)
    k32, _ = new_kv_cache(cfg, lay, dtype=np.float32)
    assert k32.dtype == np.float32
    with pytest.raises(ValueError):
        KVLayout(num_pages=0, block_size=16)


def test_page_allocator_descending_not_identity():
    lay = KVLayout(num_pages=10, block_size=4)
    a = PageAllocator(lay, batch=3, max_blocks_per_seq=4)
    assert a.reserve(0, 10) == [2, 1, 0]  # 3 blocks: logical 0 -> page 2
    assert a.reserve(1, 4) == [3]
    assert a.reserve(2, 13) == [7, 6, 5, 4]
    table = a.block_table.reshape(3, 4)
    np.testing.assert_array_equal(table, [[2, 1, 0, -1], [3, -1, -1, -1], [7, 6, 5, 4]])
    assert a.block_table.dtype == np.int32
    # growing a sequence appends pages
    assert a.reserve(1, 6) == [3, 8]
    # slot = page_ids[pos // block] * block + pos % block
    assert a.slot_for(0, 0) == 2 * 4 and a.slot_for(0, 5) == 1 * 4 + 1 and a.slot_for(0, 9) == 0 + 1
    assert a.slot_for(2, 12) == 4 * 4
    np.testing.assert_array_equal(a.slot_mapping([2, 0], [12, 5]), [16, 5])
    np.testing.assert_array_equal(a.block_table_for([2, 0]), [7, 6, 5, 4, 2, 1, 0, -1])
    with pytest.raises(IndexError):
        a.slot_for(1, 8)
    with pytest.raises(ValueError, match="max_blocks_per_seq"):
        a.reserve(0, 17)
    a.release(2)
    assert a.block_table.reshape(3, 4)[2].tolist() == [-1] * 4
    assert sorted(a.free) == [4, 5, 6, 7, 9]
    small = PageAllocator(KVLayout(num_pages=2, block_size=4), batch=1, max_blocks_per_seq=4)
    with pytest.raises(ValueError, match="out of KV pages"):
        small.reserve(0, 12)
    assert blocks_needed(16, 16) == 1 and blocks_needed(17, 16) == 2 and blocks_needed(1, 256) == 1


def test_rope_in_weights_use_cfg_theta():
    cfg = preset("tiny").replace(rope_theta=12345.0)
    w = random_weights(cfg, 0, max_seq=9)
    cos, sin = rope_tables(9, cfg.head_dim, 12345.0)
    np.testing.assert_array_equal(w.rope_cos, cos)
    np.testing.assert_array_equal(w.rope_sin, sin)
    # column i of position 1 is cos(theta ** (-2i / head_dim)): column 1 depends on theta
    assert math.isclose(float(w.rope_cos[1, 1]), math.cos(12345.0 ** (-2 / 32)), rel_tol=1e-6)
