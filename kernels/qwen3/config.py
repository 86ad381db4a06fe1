"""Qwen3 model configuration (Hugging Face ``config.json`` field names).

`Qwen3Config` is a frozen dataclass holding exactly the numbers the decode kernel and its golden
need.  It is built from a checkpoint's ``config.json`` (`Qwen3Config.from_json`), from a plain
dict (`Qwen3Config.from_dict`), or from a named preset (`preset`).

Parsing rules (they follow transformers 5.x so that a ``config.json`` means the same here as in
``Qwen3ForCausalLM``):

* Required: ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``,
  ``num_attention_heads``, ``vocab_size`` and ``head_dim``.  ``head_dim`` is required because
  transformers' ``Qwen3Config`` silently defaults it to 128 (not ``hidden/heads``); every real
  Qwen3 ``config.json`` carries it.
* Optional with the transformers defaults: ``num_key_value_heads`` (= ``num_attention_heads``),
  ``rms_norm_eps`` (1e-6), ``max_position_embeddings`` (32768), ``tie_word_embeddings`` (False),
  and the RoPE base (10000.0 -- note that real Qwen3 checkpoints say 1e6).
* RoPE base: ``rope_scaling`` (legacy name) takes priority over ``rope_parameters`` (the 5.x
  name); inside the dict ``rope_theta`` wins over the top-level ``rope_theta``.  Only the plain
  (``"default"``) RoPE type is supported: ``yarn``, ``linear``, ``dynamic``, ``llama3``, ... and a
  ``partial_rotary_factor`` other than 1 raise `ConfigError`.
* ``model_type``, when present, must be ``"qwen3"``; ``hidden_act`` must be ``"silu"``;
  ``attention_bias`` and ``use_sliding_window`` must be false.

All errors are `ConfigError` (a ``ValueError``) and name the offending field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "Qwen3Config", "PRESETS", "preset", "preset_names"]


class ConfigError(ValueError):
    """A Qwen3 configuration that is missing, malformed or unsupported."""


_REQUIRED_INT_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "head_dim",
)

_DEFAULT_ROPE_THETA = 10000.0  # transformers' default_theta when no RoPE base is given
_SUPPORTED_ROPE_TYPES = ("default",)


@dataclass(frozen=True)
class Qwen3Config:
    """Shape and numeric hyper-parameters of a Qwen3 decoder (Hugging Face field names).

    Derived sizes: `q_width` (= heads * head_dim, the Q projection width; differs from
    ``hidden_size`` for Qwen3-32B), `kv_width` (= kv heads * head_dim) and `q_per_kv`
    (query heads sharing one KV head; query head ``h`` attends with KV head ``h // q_per_kv``).
    """

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = _DEFAULT_ROPE_THETA
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        for name in (
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "vocab_size",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an int, got {value!r}")
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even for half-split RoPE, got {self.head_dim}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ConfigError(
                f"tie_word_embeddings must be a bool, got {self.tie_word_embeddings!r}"
            )
        # Normalise numbers to float so equal configs compare equal.
        object.__setattr__(self, "rms_norm_eps", float(self.rms_norm_eps))
        object.__setattr__(self, "rope_theta", float(self.rope_theta))

    # ------------------------------------------------------------------ derived sizes
    @property
    def q_width(self) -> int:
        """Width of the Q projection output: ``num_attention_heads * head_dim``."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        """Width of the K and V projection outputs: ``num_key_value_heads * head_dim``."""
        return self.num_key_value_heads * self.head_dim

    @property
    def q_per_kv(self) -> int:
        """Query heads per KV head (grouped-query attention factor)."""
        return self.num_attention_heads // self.num_key_value_heads

    def padded_vocab(self, multiple: int = 64) -> int:
        """``vocab_size`` rounded up to a multiple of ``multiple``."""
        if multiple <= 0:
            raise ConfigError(f"vocab pad multiple must be positive, got {multiple}")
        return -(-self.vocab_size // multiple) * multiple

    def replace(self, **changes: Any) -> Qwen3Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a ``config.json``-style dict (``model_type`` included)."""
        d = dataclasses.asdict(self)
        d["model_type"] = "qwen3"
        return d

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Qwen3Config:
        """Build from a ``config.json``-style mapping; see the module docstring for the rules."""
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object, got {type(d).__name__}")
        model_type = d.get("model_type")
        if model_type is not None and model_type != "qwen3":
            raise ConfigError(f"model_type must be 'qwen3', got {model_type!r}")
        # A Qwen3 config nested under text_config (multimodal wrappers) is not unwrapped: the
        # weights would carry other prefixes too.
        for name in _REQUIRED_INT_FIELDS:
            if name not in d or d[name] is None:
                raise ConfigError(f"missing required field {name!r}")

        hidden_act = d.get("hidden_act", "silu")
        if hidden_act != "silu":
            raise ConfigError(f"hidden_act must be 'silu', got {hidden_act!r}")
        if d.get("attention_bias", False):
            raise ConfigError("attention_bias=true is not supported (Qwen3 has no QKV bias)")
        if d.get("use_sliding_window", False):
            raise ConfigError("use_sliding_window=true is not supported")

        kv_heads = d.get("num_key_value_heads")
        if kv_heads is None:
            kv_heads = d["num_attention_heads"]
        kwargs: dict[str, Any] = {name: d[name] for name in _REQUIRED_INT_FIELDS}
        kwargs["num_key_value_heads"] = kv_heads
        if d.get("rms_norm_eps") is not None:
            kwargs["rms_norm_eps"] = d["rms_norm_eps"]
        if d.get("max_position_embeddings") is not None:
            kwargs["max_position_embeddings"] = d["max_position_embeddings"]
        if d.get("tie_word_embeddings") is not None:
            kwargs["tie_word_embeddings"] = d["tie_word_embeddings"]
        kwargs["rope_theta"] = _parse_rope_theta(d)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Qwen3Config:
        """Read ``config.json`` (``path`` is the file or the checkpoint directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: invalid JSON: {e}") from e
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from e


def _parse_rope_theta(d: dict[str, Any]) -> float:
    """The RoPE base, following transformers' priority rules; rejects scaled RoPE."""
    top_theta = d.get("rope_theta")
    if "partial_rotary_factor" in d and d["partial_rotary_factor"] not in (None, 1, 1.0):
        raise ConfigError(
            f"partial_rotary_factor={d['partial_rotary_factor']!r} is not supported (must be 1)"
        )
    field = "rope_scaling" if d.get("rope_scaling") else "rope_parameters"
    params = d.get(field)
    if not params:
        theta = top_theta if top_theta is not None else _DEFAULT_ROPE_THETA
        return _check_theta(theta, "rope_theta")
    if not isinstance(params, dict):
        raise ConfigError(f"{field} must be an object, got {params!r}")
    # transformers 5.x may nest the parameters per layer type ({"full_attention": {...}}).
    if params and all(isinstance(v, dict) for v in params.values()):
        distinct = {json.dumps(v, sort_keys=True) for v in params.values()}
        if len(distinct) != 1:
            raise ConfigError(f"{field}: per-layer-type RoPE parameters differ: {params!r}")
        params = next(iter(params.values()))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in _SUPPORTED_ROPE_TYPES:
        raise ConfigError(
            f"{field}: unsupported RoPE scaling type {rope_type!r} "
            f"(only plain RoPE, rope_type='default', is supported)"
        )
    prf = params.get("partial_rotary_factor")
    if prf not in (None, 1, 1.0):
        raise ConfigError(f"{field}: partial_rotary_factor={prf!r} is not supported (must be 1)")
    theta = params.get("rope_theta")
    if theta is None:
        theta = top_theta if top_theta is not None else _DEFAULT_ROPE_THETA
        return _check_theta(theta, "rope_theta")
    return _check_theta(theta, f"{field}.rope_theta")


def _check_theta(theta: Any, name: str) -> float:
    if isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise ConfigError(f"{name} must be a number, got {theta!r}")
    if not math.isfinite(theta) or theta <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {theta!r}")
    return float(theta)


# ---------------------------------------------------------------------- presets
def _hub_model(hidden: int, intermediate: int, layers: int, heads: int, tied: bool) -> Qwen3Config:
    """A Qwen/Qwen3-* model: the fields of its config.json that differ between the sizes; all of
    them have 8 KV heads, vocab 151936, head_dim 128, rms_norm_eps 1e-6, rope_theta 1e6 and
    max_position_embeddings 40960."""
    return Qwen3Config(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        max_position_embeddings=40960,
        tie_word_embeddings=tied,
    )


# Small shapes for tests and demos (not real models): q_per_kv 2 and 4.
_TINY = Qwen3Config(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    vocab_size=384,
    rms_norm_eps=1e-6,
    rope_theta=1_000_000.0,
    max_position_embeddings=512,
    tie_word_embeddings=False,
)

PRESETS: dict[str, Qwen3Config] = {
    "qwen3-0.6b": _hub_model(1024, 3072, layers=28, heads=16, tied=True),
    "qwen3-8b": _hub_model(4096, 12288, layers=36, heads=32, tied=False),
    "qwen3-14b": _hub_model(5120, 17408, layers=40, heads=40, tied=False),
    "qwen3-32b": _hub_model(5120, 25600, layers=64, heads=64, tied=False),
    "tiny": _TINY,
    "tiny-gqa4": _TINY.replace(num_attention_heads=8, head_dim=16),
}


def preset_names() -> list[str]:
    """Names accepted by `preset`."""
    return sorted(PRESETS)


def preset(name: str) -> Qwen3Config:
    """A named configuration (case-insensitive; ``_`` and ``-`` are interchangeable)."""
    key = name.lower().replace("_", "-")
    try:
        return PRESETS[key]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; known presets: {', '.join(preset_names())}"
        ) from None
