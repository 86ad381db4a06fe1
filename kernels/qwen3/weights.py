"""Qwen3 weights in the stacked layout the ``qwen3_decode_all`` kernel takes, plus KV-cache helpers.

Weight layout (a contract between the host, the DSL kernel and the golden; ``L`` = layers,
``H`` = hidden, ``I`` = intermediate, ``Qw`` = heads*head_dim, ``KVw`` = kv_heads*head_dim,
``D`` = head_dim).  BF16 arrays are NumPy arrays of dtype ``ml_dtypes.bfloat16`` (all of them
``float32`` instead for a checkpoint loaded with ``precision="fp32"``, see Rounding below):

==================== ====================== ====== =============================================
name                 shape                  dtype  meaning
==================== ====================== ====== =============================================
embed_tokens         [vocab, H]             BF16   token embedding (host only, not a kernel arg)
input_rms_weight     [L, H]                 FP32   ``input_layernorm.weight`` per layer
wq                   [L*H, Qw]              BF16   ``q_proj.weight`` transposed to [in, out]
wk, wv               [L*H, KVw]             BF16   ``k_proj`` / ``v_proj`` transposed
q_norm_weight        [L, D]                 FP32   ``self_attn.q_norm.weight``
k_norm_weight        [L, D]                 FP32   ``self_attn.k_norm.weight``
wo                   [L*Qw, H]              BF16   ``o_proj.weight`` transposed
post_rms_weight      [L, H]                 FP32   ``post_attention_layernorm.weight``
w_gate, w_up         [L*H, I]               BF16   ``gate_proj`` / ``up_proj`` transposed
w_down               [L*I, H]               BF16   ``down_proj`` transposed
final_norm_weight    [1, H]                 FP32   ``model.norm.weight``
lm_head_weight       [padded_vocab, H]      BF16   ``lm_head.weight`` in HF [vocab, H] row layout
                                                   (NOT transposed; the kernel uses b_trans).
                                                   Rows >= vocab are copies of row 0, so padded
                                                   logits are finite (they duplicate logit 0).
rope_cos, rope_sin   [max_seq, D]           FP32   RoPE tables, halves duplicated (§2.5)
==================== ====================== ====== =============================================

Layer ``l`` of a flat-stacked matrix occupies rows ``[l*in, (l+1)*in)``.  ``padded_vocab`` is
``vocab`` rounded up to ``vocab_pad`` (default 64).  The container is the `Qwen3Weights`
dataclass (it carries ``cfg``; `Qwen3Weights.arrays` gives the name -> array dict).

Rounding: with ``precision="bf16"`` (the default), FP32 (or FP16) checkpoint tensors that land in
BF16 slots are rounded to BF16 with round-to-nearest-even, which is what
``torch.Tensor.to(torch.bfloat16)`` does, so a FP32 checkpoint loads to the same BF16 weights as
``from_pretrained(dtype=torch.bfloat16)``.  With ``precision="fp32"`` the BF16 slots hold
``float32`` arrays instead, with the checkpoint's values unchanged (BF16 and FP16 widen exactly):
the kernel run with ``precision="fp32"`` then computes with the very weights an FP32
transformers model uses.  Norm weights are kept FP32 in both modes.

KV cache (seed layout §2.6): ``k_cache``/``v_cache`` are ``[L*num_pages*kv_heads*block, D]``
(BF16, zero-initialised), row ``((layer*num_pages + page)*kv_heads + kvh)*block + tok``.
``block_table`` is a flat ``[batch*max_blocks_per_seq]`` INT32 array filled with -1, row ``b``
holding sequence ``b``'s page ids; `PageAllocator` hands out pages the way the seed's allocator
does (free list ``[N-1 .. 0]``, a request takes the lowest ids in descending order), so the
paging is never the identity.  ``slot_for(b, pos) = page_ids[pos // block]*block + pos % block``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import ml_dtypes
import numpy as np

from .config import Qwen3Config

__all__ = [
    "BF16",
    "CheckpointError",
    "KVLayout",
    "PageAllocator",
    "Qwen3Weights",
    "WEIGHT_NAMES",
    "KERNEL_WEIGHT_NAMES",
    "blocks_needed",
    "load_checkpoint",
    "new_kv_cache",
    "random_weights",
    "read_safetensors_raw",
    "rope_inv_freq",
    "rope_tables",
    "stack_hf_tensors",
    "to_bf16_rne",
]

BF16 = np.dtype(ml_dtypes.bfloat16)
FP32 = np.dtype(np.float32)


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, incomplete or does not match its config."""


# ---------------------------------------------------------------------- conversions
def to_bf16_rne(x: np.ndarray) -> np.ndarray:
    """Round to BF16 with round-to-nearest-even (torch ``.to(torch.bfloat16)`` semantics).

    BF16 input is returned as is (a contiguous copy is not forced); FP16/FP32 input is widened to
    FP32 exactly first, then rounded once.
    """
    a = np.asarray(x)
    if a.dtype == BF16:
        return a
    if a.dtype not in (np.float16, np.float32):
        raise TypeError(f"to_bf16_rne expects float16/float32/bfloat16, got {a.dtype}")
    return a.astype(np.float32).astype(BF16)


def _to_f32(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype not in (BF16, np.float16, np.float32):
        raise TypeError(f"expected float16/float32/bfloat16, got {a.dtype}")
    return a.astype(np.float32)


# ---------------------------------------------------------------------- RoPE
def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """``inv_freq`` as transformers computes it, in FP32 (never BF16).

    ``1.0 / (theta ** (arange(0, D, 2).float() / D))``: the even integers are exact in FP32 and
    the division by ``D`` is an FP32 division, as in ``compute_default_rope_parameters`` (HF keeps
    this buffer FP32 unless the model is moved with ``.to(bfloat16)``).  The power is the
    correctly rounded FP32 result (evaluated in float64, rounded once); NumPy's own FP32 ``**``
    is off by 1 ulp on ~20% of entries.  torch's CPU ``pow`` matches this on every entry except
    rare 1-ulp cases (measured: 1 of 64 for ``D=128, theta=1e6``; none for D=16/32/64).
    """
    exponent = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    power = (np.float64(theta) ** exponent.astype(np.float64)).astype(np.float32)
    return (np.float32(1.0) / power).astype(np.float32)


def rope_tables(max_seq: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(rope_cos, rope_sin)``, each ``[max_seq, head_dim]`` FP32 with duplicated halves.

    Row ``p`` is position ``p``: ``freqs = float32(p) * inv_freq`` (an FP32 product, as HF), and
    ``cos``/``sin`` are evaluated in float64 on those FP32 angles and rounded once to FP32.
    """
    if max_seq <= 0:
        raise ValueError(f"max_seq must be positive, got {max_seq}")
    inv_freq = rope_inv_freq(head_dim, theta)
    pos = np.arange(max_seq, dtype=np.int64).astype(np.float32)
    freqs = pos[:, None] * inv_freq[None, :]  # FP32 x FP32 -> FP32
    emb = np.concatenate([freqs, freqs], axis=1).astype(np.float64)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


# ---------------------------------------------------------------------- the container
WEIGHT_NAMES: tuple[str, ...] = (
    "embed_tokens",
    "input_rms_weight",
    "wq",
    "wk",
    "wv",
    "q_norm_weight",
    "k_norm_weight",
    "wo",
    "post_rms_weight",
    "w_gate",
    "w_up",
    "w_down",
    "final_norm_weight",
    "lm_head_weight",
    "rope_cos",
    "rope_sin",
)
"""All array fields of `Qwen3Weights`, in declaration order."""

KERNEL_WEIGHT_NAMES: tuple[str, ...] = WEIGHT_NAMES[1:]
"""The arrays the decode kernel takes (everything but the host-only ``embed_tokens``)."""


@dataclass
class Qwen3Weights:
    """Stacked Qwen3 weights (see the module docstring for the layout) plus their config.

    The constructor checks every shape and dtype against ``cfg``; ``lm_head_weight`` fixes
    ``padded_vocab`` and ``rope_cos`` fixes ``max_seq``.
    """

    cfg: Qwen3Config
    embed_tokens: np.ndarray
    input_rms_weight: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    q_norm_weight: np.ndarray
    k_norm_weight: np.ndarray
    wo: np.ndarray
    post_rms_weight: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    final_norm_weight: np.ndarray
    lm_head_weight: np.ndarray
    rope_cos: np.ndarray
    rope_sin: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.cfg, Qwen3Config):
            raise TypeError(f"cfg: expected a Qwen3Config, got {type(self.cfg).__name__}")
        for name in WEIGHT_NAMES:
            a = getattr(self, name)
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
        for name, (shape, dtype) in self.expected_shapes().items():
            a = getattr(self, name)
            if a.dtype != dtype:
                raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
            if a.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")

    @property
    def matrix_dtype(self) -> np.dtype:
        """The dtype of the BF16 slots (embedding, projections, LM head): BF16, or FP32 for a
        checkpoint loaded with ``precision="fp32"`` (see the module docstring)."""
        return self.wq.dtype

    @property
    def padded_vocab(self) -> int:
        """Rows of ``lm_head_weight`` (vocab rounded up to the pad multiple)."""
        return int(self.lm_head_weight.shape[0])

    @property
    def max_seq(self) -> int:
        """Rows of the RoPE tables: the largest context length the kernel can decode."""
        return int(self.rope_cos.shape[0])

    def expected_shapes(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """``{name: (shape, dtype)}`` this container must satisfy."""
        c = self.cfg
        L, H, Im, D = c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.head_dim
        pv = int(self.lm_head_weight.shape[0]) if self.lm_head_weight.ndim == 2 else -1
        if pv < c.vocab_size:
            raise ValueError(
                f"lm_head_weight: needs at least vocab_size={c.vocab_size} rows, got "
                f"shape {self.lm_head_weight.shape}"
            )
        ms = int(self.rope_cos.shape[0]) if self.rope_cos.ndim == 2 else -1
        # the BF16 slots: all BF16, or all FP32 (loaded with precision="fp32")
        M = self.wq.dtype if getattr(self.wq, "dtype", None) in (BF16, FP32) else BF16
        return {
            "embed_tokens": ((c.vocab_size, H), M),
            "input_rms_weight": ((L, H), FP32),
            "wq": ((L * H, c.q_width), M),
            "wk": ((L * H, c.kv_width), M),
            "wv": ((L * H, c.kv_width), M),
            "q_norm_weight": ((L, D), FP32),
            "k_norm_weight": ((L, D), FP32),
            "wo": ((L * c.q_width, H), M),
            "post_rms_weight": ((L, H), FP32),
            "w_gate": ((L * H, Im), M),
            "w_up": ((L * H, Im), M),
            "w_down": ((L * Im, H), M),
            "final_norm_weight": ((1, H), FP32),
            "lm_head_weight": ((pv, H), M),
            "rope_cos": ((ms, D), FP32),
            "rope_sin": ((ms, D), FP32),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """``{name: array}`` for every field but ``cfg`` (order: `WEIGHT_NAMES`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cfg"}

    def kernel_arrays(self) -> dict[str, np.ndarray]:
        """The arrays the kernel takes (`KERNEL_WEIGHT_NAMES`), without ``embed_tokens``."""
        return {name: getattr(self, name) for name in KERNEL_WEIGHT_NAMES}

    def embed(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Embedding rows ``[n, H]`` for ``token_ids`` (the decode input hidden states), in
        `matrix_dtype`."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.cfg.vocab_size):
            raise ValueError(f"token id out of range [0, {self.cfg.vocab_size}): {ids}")
        return self.embed_tokens[ids]

    def layer(self, layer: int) -> dict[str, np.ndarray]:
        """Views of one layer's slices in [in, out] orientation (for tests and debugging)."""
        c = self.cfg
        H, Im, Qw = c.hidden_size, c.intermediate_size, c.q_width
        if not 0 <= layer < c.num_hidden_layers:
            raise IndexError(f"layer {layer} out of range")
        h = slice(layer * H, (layer + 1) * H)
        return {
            "input_rms_weight": self.input_rms_weight[layer],
            "wq": self.wq[h],
            "wk": self.wk[h],
            "wv": self.wv[h],
            "q_norm_weight": self.q_norm_weight[layer],
            "k_norm_weight": self.k_norm_weight[layer],
            "wo": self.wo[layer * Qw : (layer + 1) * Qw],
            "post_rms_weight": self.post_rms_weight[layer],
            "w_gate": self.w_gate[h],
            "w_up": self.w_up[h],
            "w_down": self.w_down[layer * Im : (layer + 1) * Im],
        }


def _pad_lm_head(lm_head: np.ndarray, padded_vocab: int) -> np.ndarray:
    vocab = lm_head.shape[0]
    if padded_vocab == vocab:
        return np.array(lm_head, copy=True)  # never alias embed_tokens (tied models)
    out = np.empty((padded_vocab, lm_head.shape[1]), dtype=lm_head.dtype)
    out[:vocab] = lm_head
    out[vocab:] = lm_head[0]
    return out


def _check_vocab_pad(vocab_pad: int) -> None:
    if isinstance(vocab_pad, bool) or not isinstance(vocab_pad, int) or vocab_pad <= 0:
        raise ValueError(f"vocab_pad must be a positive int, got {vocab_pad!r}")


def _default_max_seq(cfg: Qwen3Config, max_seq: int | None) -> int:
    if max_seq is None:
        return cfg.max_position_embeddings
    if isinstance(max_seq, bool) or not isinstance(max_seq, int) or max_seq <= 0:
        raise ValueError(f"max_seq must be a positive int, got {max_seq!r}")
    return max_seq


def _finish_weights(
    cfg: Qwen3Config,
    arrays: dict[str, np.ndarray],
    lm_head: np.ndarray,
    max_seq: int,
    vocab_pad: int,
) -> Qwen3Weights:
    """`Qwen3Weights` from the stacked arrays, the unpadded ``[vocab, H]`` LM head (padded here
    to a multiple of ``vocab_pad`` rows) and RoPE tables of ``max_seq`` rows."""
    cos, sin = rope_tables(max_seq, cfg.head_dim, cfg.rope_theta)
    return Qwen3Weights(
        cfg=cfg,
        **arrays,
        lm_head_weight=_pad_lm_head(lm_head, cfg.padded_vocab(vocab_pad)),
        rope_cos=cos,
        rope_sin=sin,
    )


# ---------------------------------------------------------------------- stacking HF tensors
def _hf_shapes(cfg: Qwen3Config) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> expected shape (per-layer names use ``{i}``)."""
    H, Im, D = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    p = "model.layers.{i}."
    return {
        "model.embed_tokens.weight": (cfg.vocab_size, H),
        p + "input_layernorm.weight": (H,),
        p + "self_attn.q_proj.weight": (cfg.q_width, H),
        p + "self_attn.k_proj.weight": (cfg.kv_width, H),
        p + "self_attn.v_proj.weight": (cfg.kv_width, H),
        p + "self_attn.o_proj.weight": (H, cfg.q_width),
        p + "self_attn.q_norm.weight": (D,),
        p + "self_attn.k_norm.weight": (D,),
        p + "post_attention_layernorm.weight": (H,),
        p + "mlp.gate_proj.weight": (Im, H),
        p + "mlp.up_proj.weight": (Im, H),
        p + "mlp.down_proj.weight": (H, Im),
        "model.norm.weight": (H,),
        "lm_head.weight": (cfg.vocab_size, H),
    }


def stack_hf_tensors(
    cfg: Qwen3Config,
    get: Callable[[str], np.ndarray | None],
    *,
    max_seq: int | None = None,
    vocab_pad: int = 64,
    precision: str = "bf16",
) -> Qwen3Weights:
    """Stack per-layer Hugging Face tensors into the kernel layout.

    ``get(name)`` returns the tensor called ``name`` (HF ``[out, in]`` orientation, BF16/FP16/FP32)
    or ``None`` when absent.  ``lm_head.weight`` is read only when ``cfg.tie_word_embeddings`` is
    false; tied models use the embedding as the LM head, as transformers does.  ``precision``
    ("bf16" or "fp32") sets the dtype of the BF16 slots (see the module docstring).  Raises
    `CheckpointError` naming the tensor for a missing tensor, a wrong shape or a bad dtype.
    """
    _check_vocab_pad(vocab_pad)
    mat, M = _matrix_storage(precision)
    max_seq = _default_max_seq(cfg, max_seq)
    shapes = _hf_shapes(cfg)
    L, H, Im, D = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    Qw, KVw = cfg.q_width, cfg.kv_width

    def fetch(template: str, i: int | None = None) -> np.ndarray:
        name = template.format(i=i) if i is not None else template
        t = get(name)
        if t is None:
            raise CheckpointError(f"missing tensor {name!r}")
        t = np.asarray(t)
        want = shapes[template]
        if t.shape != want:
            raise CheckpointError(f"tensor {name!r}: expected shape {want}, got {t.shape}")
        if t.dtype not in (BF16, np.float16, np.float32):
            raise CheckpointError(
                f"tensor {name!r}: unsupported dtype {t.dtype} (need BF16, F16 or F32)"
            )
        return t

    p = "model.layers.{i}."
    embed = mat(fetch("model.embed_tokens.weight"))
    input_rms = np.empty((L, H), np.float32)
    post_rms = np.empty((L, H), np.float32)
    q_norm = np.empty((L, D), np.float32)
    k_norm = np.empty((L, D), np.float32)
    wq = np.empty((L * H, Qw), M)
    wk = np.empty((L * H, KVw), M)
    wv = np.empty((L * H, KVw), M)
    wo = np.empty((L * Qw, H), M)
    w_gate = np.empty((L * H, Im), M)
    w_up = np.empty((L * H, Im), M)
    w_down = np.empty((L * Im, H), M)
    for i in range(L):
        h = slice(i * H, (i + 1) * H)
        input_rms[i] = _to_f32(fetch(p + "input_layernorm.weight", i))
        post_rms[i] = _to_f32(fetch(p + "post_attention_layernorm.weight", i))
        q_norm[i] = _to_f32(fetch(p + "self_attn.q_norm.weight", i))
        k_norm[i] = _to_f32(fetch(p + "self_attn.k_norm.weight", i))
        wq[h] = mat(fetch(p + "self_attn.q_proj.weight", i)).T
        wk[h] = mat(fetch(p + "self_attn.k_proj.weight", i)).T
        wv[h] = mat(fetch(p + "self_attn.v_proj.weight", i)).T
        wo[i * Qw : (i + 1) * Qw] = mat(fetch(p + "self_attn.o_proj.weight", i)).T
        w_gate[h] = mat(fetch(p + "mlp.gate_proj.weight", i)).T
        w_up[h] = mat(fetch(p + "mlp.up_proj.weight", i)).T
        w_down[i * Im : (i + 1) * Im] = mat(fetch(p + "mlp.down_proj.weight", i)).T
    final_norm = _to_f32(fetch("model.norm.weight")).reshape(1, H)
    lm_head = embed if cfg.tie_word_embeddings else mat(fetch("lm_head.weight"))
    arrays = {
        "embed_tokens": np.ascontiguousarray(embed),
        "input_rms_weight": input_rms,
        "wq": wq,
        "wk": wk,
        "wv": wv,
        "q_norm_weight": q_norm,
        "k_norm_weight": k_norm,
        "wo": wo,
        "post_rms_weight": post_rms,
        "w_gate": w_gate,
        "w_up": w_up,
        "w_down": w_down,
        "final_norm_weight": final_norm,
    }
    return _finish_weights(cfg, arrays, lm_head, max_seq, vocab_pad)


def _matrix_storage(precision: str) -> tuple[Callable[[np.ndarray], np.ndarray], np.dtype]:
    """(conversion, dtype) of the BF16 slots: RNE to BF16, or the exact values as FP32."""
    if precision == "bf16":
        return to_bf16_rne, BF16
    if precision == "fp32":
        return _to_f32, FP32
    raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")


# ---------------------------------------------------------------------- safetensors reading
_ST_DTYPES = {"BF16": BF16, "F16": np.dtype("<f2"), "F32": np.dtype("<f4")}


def read_safetensors_raw(path: str | os.PathLike[str], names: Iterable[str] | None = None):
    """Read tensors from a ``.safetensors`` file by parsing its header (no safetensors package).

    Returns ``{name: array}`` for ``names`` (all tensors when ``None``).  Only BF16, F16 and F32
    tensors are supported.  This is the fallback for safetensors builds that cannot return BF16
    NumPy arrays (safetensors 0.8 can, via ml_dtypes).
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise CheckpointError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw_len)
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: bad safetensors header: {e}") from e
        data_start = 8 + n
        header.pop("__metadata__", None)
        wanted = header.keys() if names is None else list(names)
        out = {}
        for name in wanted:
            if name not in header:
                raise CheckpointError(f"{path}: no tensor {name!r}")
            info = header[name]
            dtype = _ST_DTYPES.get(info["dtype"])
            if dtype is None:
                raise CheckpointError(f"tensor {name!r}: unsupported dtype {info['dtype']}")
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            if end - begin != count * dtype.itemsize:
                raise CheckpointError(f"tensor {name!r}: data size does not match its shape")
            f.seek(data_start + begin)
            buf = f.read(end - begin)
            out[name] = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape).copy()
        return out


class _SafetensorsDir:
    """Name -> file index over the ``*.safetensors`` files of a checkpoint directory."""

    def __init__(self, ckpt_dir: Path):
        index_path = ckpt_dir / "model.safetensors.index.json"
        self._files: dict[str, Path] = {}
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index_path}: bad index file: {e}") from e
            for name, fname in weight_map.items():
                fp = ckpt_dir / fname
                if not fp.is_file():
                    raise CheckpointError(
                        f"{index_path}: shard {fname!r} (holding {name!r}) not found"
                    )
                self._files[name] = fp
        else:
            shards = sorted(ckpt_dir.glob("*.safetensors"))
            if not shards:
                raise CheckpointError(f"{ckpt_dir}: no *.safetensors files")
            for fp in shards:
                for name in self._keys(fp):
                    if name in self._files:
                        raise CheckpointError(
                            f"tensor {name!r} appears in both {self._files[name].name} "
                            f"and {fp.name}"
                        )
                    self._files[name] = fp
        self._open: dict[Path, object] = {}

    @staticmethod
    def _keys(fp: Path) -> list[str]:
        from safetensors import safe_open

        try:
            with safe_open(str(fp), framework="np") as h:
                return list(h.keys())
        except Exception as e:  # noqa: BLE001 - report any parse failure uniformly
            raise CheckpointError(f"{fp}: cannot read safetensors file: {e}") from e

    def names(self) -> list[str]:
        return list(self._files)

    def get(self, name: str) -> np.ndarray | None:
        fp = self._files.get(name)
        if fp is None:
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(fp), framework="np") as h:
                return h.get_tensor(name)
        except (TypeError, ValueError, KeyError):
            # Old safetensors builds cannot produce BF16 NumPy arrays: parse the file directly.
            return read_safetensors_raw(fp, [name])[name]


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    max_seq: int | None = None,
    vocab_pad: int = 64,
    precision: str = "bf16",
) -> tuple[Qwen3Config, Qwen3Weights]:
    """Load a Hugging Face Qwen3 checkpoint directory into the stacked kernel layout.

    ``path`` holds ``config.json`` and one or more ``*.safetensors`` files (sharded with
    ``model.safetensors.index.json`` or not).  Tensors may be BF16, FP16 or FP32; BF16 slots are
    filled with round-to-nearest-even, or with ``precision="fp32"`` hold the checkpoint's values
    as FP32 (see the module docstring).  ``max_seq`` sizes the RoPE
    tables (default ``cfg.max_position_embeddings``); ``vocab_pad`` is the LM-head row multiple.

    Raises `CheckpointError` (missing directory/files/tensors, shape or dtype mismatch, a QKV
    bias, or layers beyond ``num_hidden_layers``) or `ConfigError` (bad ``config.json``).
    """
    ckpt = Path(path)
    if not ckpt.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {ckpt}")
    if not (ckpt / "config.json").is_file():
        raise CheckpointError(f"{ckpt}: config.json not found")
    cfg = Qwen3Config.from_json(ckpt)
    st = _SafetensorsDir(ckpt)
    L = cfg.num_hidden_layers
    for name in st.names():
        if name.endswith(".bias"):
            raise CheckpointError(f"unexpected bias tensor {name!r} (Qwen3 has no biases)")
        if name.startswith("model.layers."):
            idx = name.split(".")[2]
            if idx.isdigit() and int(idx) >= L:
                raise CheckpointError(
                    f"tensor {name!r} is beyond num_hidden_layers={L} from config.json"
                )
    weights = stack_hf_tensors(
        cfg, st.get, max_seq=max_seq, vocab_pad=vocab_pad, precision=precision
    )
    return cfg, weights


# ---------------------------------------------------------------------- random weights
def random_weights(
    cfg: Qwen3Config,
    seed: int = 0,
    max_seq: int | None = None,
    *,
    vocab_pad: int = 64,
) -> Qwen3Weights:
    """Seeded random weights in the stacked layout, for demos and tests.

    Scales keep activations O(1) through any depth: embedding N(0, 1); Q/K/V/gate/up
    projections N(0, 1/fan_in) (``1/sqrt(5120) ~ 0.014`` for Qwen3-14B, i.e. the usual
    N(0, 0.02)-ish); O and down projections half that std so the residual grows slowly; all norm
    weights N(1, 0.1) so the gammas matter; LM head N(0, 1/H) (the embedding when tied).
    ``max_seq`` defaults to ``min(cfg.max_position_embeddings, 4096)``.
    """
    _check_vocab_pad(vocab_pad)
    if max_seq is None:
        max_seq = min(cfg.max_position_embeddings, 4096)
    max_seq = _default_max_seq(cfg, max_seq)
    rng = np.random.default_rng(seed)
    L, H, Im, D = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    Qw, KVw = cfg.q_width, cfg.kv_width

    def normal(shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(std)
        if mean:
            a += np.float32(mean)
        return a

    def mat(shape: tuple[int, ...], std: float) -> np.ndarray:
        return normal(shape, std).astype(BF16)

    def gamma(shape: tuple[int, ...]) -> np.ndarray:
        # Norm weights are BF16 values in real checkpoints; keep them BF16-representable.
        return normal(shape, 0.1, 1.0).astype(BF16).astype(np.float32)

    # Drawn in this order (the seeded values depend on it).
    arrays = {
        "embed_tokens": mat((cfg.vocab_size, H), 1.0),
        "wq": mat((L * H, Qw), H**-0.5),
        "wk": mat((L * H, KVw), H**-0.5),
        "wv": mat((L * H, KVw), H**-0.5),
        "wo": mat((L * Qw, H), 0.5 * Qw**-0.5),
        "w_gate": mat((L * H, Im), H**-0.5),
        "w_up": mat((L * H, Im), H**-0.5),
        "w_down": mat((L * Im, H), 0.5 * Im**-0.5),
        "input_rms_weight": gamma((L, H)),
        "post_rms_weight": gamma((L, H)),
        "q_norm_weight": gamma((L, D)),
        "k_norm_weight": gamma((L, D)),
        "final_norm_weight": gamma((1, H)),
    }
    if cfg.tie_word_embeddings:
        lm_head = arrays["embed_tokens"]
    else:
        lm_head = mat((cfg.vocab_size, H), H**-0.5)
    return _finish_weights(cfg, arrays, lm_head, max_seq, vocab_pad)


# ---------------------------------------------------------------------- KV cache
def blocks_needed(num_tokens: int, block_size: int) -> int:
    """Pages needed to hold ``num_tokens`` tokens (``ceil(num_tokens / block_size)``)."""
    return -(-int(num_tokens) // int(block_size))


@dataclass(frozen=True)
class KVLayout:
    """Paged KV pool geometry: ``num_pages`` pages per layer of ``block_size`` tokens each.

    The seed kernel uses ``block_size=256``; tests use small blocks (e.g. 16) so short contexts
    span several pages.
    """

    num_pages: int
    block_size: int = 256

    def __post_init__(self) -> None:
        for name in ("num_pages", "block_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

    def rows_per_layer(self, cfg: Qwen3Config) -> int:
        """Cache rows of one layer: ``num_pages * kv_heads * block_size``."""
        return self.num_pages * cfg.num_key_value_heads * self.block_size

    def cache_shape(self, cfg: Qwen3Config) -> tuple[int, int]:
        """``(L*num_pages*kv_heads*block_size, head_dim)``."""
        return (cfg.num_hidden_layers * self.rows_per_layer(cfg), cfg.head_dim)

    def row(self, cfg: Qwen3Config, layer: int, page: int, kv_head: int, tok: int) -> int:
        """Cache row ``((layer*num_pages + page)*kv_heads + kv_head)*block_size + tok``."""
        if not 0 <= page < self.num_pages:
            raise IndexError(f"page {page} out of range [0, {self.num_pages})")
        if not 0 <= tok < self.block_size:
            raise IndexError(f"token offset {tok} out of range [0, {self.block_size})")
        nkv = cfg.num_key_value_heads
        return ((layer * self.num_pages + page) * nkv + kv_head) * self.block_size + tok

    def slot_row(self, cfg: Qwen3Config, layer: int, slot: int, kv_head: int) -> int:
        """Cache row of ``slot`` (= page*block_size + offset) for one layer and KV head."""
        return self.row(cfg, layer, slot // self.block_size, kv_head, slot % self.block_size)


def new_kv_cache(
    cfg: Qwen3Config, layout: KVLayout, dtype: np.dtype | type = BF16
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-initialised ``(k_cache, v_cache)`` of `KVLayout.cache_shape` (BF16 by default; the
    golden's ``precision="fp32"`` mode wants ``np.float32``)."""
    shape = layout.cache_shape(cfg)
    return np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype)


class PageAllocator:
    """Host page allocator and flat block table for ``batch`` sequences.

    Like the seed's allocator, the free list starts as ``[N-1, ..., 0]`` and a request for ``k``
    pages takes its last ``k`` entries in list order, so the first request gets pages
    ``k-1, ..., 0`` (logical block 0 -> page ``k-1``): distinct pages per sequence, never the
    identity mapping.  Released pages go back on the free list.
    """

    def __init__(self, layout: KVLayout, batch: int, max_blocks_per_seq: int):
        if batch <= 0 or max_blocks_per_seq <= 0:
            raise ValueError("batch and max_blocks_per_seq must be positive")
        self.layout = layout
        self.batch = int(batch)
        self.max_blocks_per_seq = int(max_blocks_per_seq)
        self.free: list[int] = list(range(layout.num_pages - 1, -1, -1))
        self.page_ids: list[list[int]] = [[] for _ in range(self.batch)]
        self.block_table = np.full(self.batch * self.max_blocks_per_seq, -1, dtype=np.int32)

    @property
    def block_size(self) -> int:
        return self.layout.block_size

    def reserve(self, b: int, num_tokens: int) -> list[int]:
        """Make sequence ``b`` own enough pages for ``num_tokens`` tokens; returns its page ids."""
        need = blocks_needed(num_tokens, self.block_size)
        if need > self.max_blocks_per_seq:
            raise ValueError(
                f"sequence {b}: {num_tokens} tokens need {need} blocks > "
                f"max_blocks_per_seq={self.max_blocks_per_seq}"
            )
        have = self.page_ids[b]
        k = need - len(have)
        if k > 0:
            if k > len(self.free):
                raise ValueError(f"out of KV pages: need {k}, {len(self.free)} free")
            taken = self.free[-k:]
            del self.free[-k:]
            base = b * self.max_blocks_per_seq
            for j, page in enumerate(taken):
                self.block_table[base + len(have) + j] = page
            have.extend(taken)
        return list(have)

    def release(self, b: int) -> None:
        """Return sequence ``b``'s pages to the free list and clear its block-table row."""
        self.free.extend(reversed(self.page_ids[b]))
        self.page_ids[b] = []
        base = b * self.max_blocks_per_seq
        self.block_table[base : base + self.max_blocks_per_seq] = -1

    def slot_for(self, b: int, pos: int) -> int:
        """Slot of position ``pos`` of sequence ``b``: ``page*block_size + pos % block_size``."""
        blk, off = divmod(int(pos), self.block_size)
        pages = self.page_ids[b]
        if pos < 0 or blk >= len(pages):
            raise IndexError(f"sequence {b}: position {pos} has no page reserved")
        return pages[blk] * self.block_size + off

    def slot_mapping(self, rows: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """INT32 slots for (sequence ``rows[i]``, position ``positions[i]``)."""
        return np.array([self.slot_for(b, p) for b, p in zip(rows, positions)], dtype=np.int32)

    def block_table_for(self, rows: Sequence[int]) -> np.ndarray:
        """The flat block table restricted to ``rows`` (in that order), for a sub-batch."""
        table = self.block_table.reshape(self.batch, self.max_blocks_per_seq)
        return np.ascontiguousarray(table[list(rows)].reshape(-1))
