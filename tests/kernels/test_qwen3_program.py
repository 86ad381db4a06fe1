"""The Qwen3 ``qwen3_decode_all`` DSL program (kernels/qwen3/program.py) and its tiling.

* capture, print_ir / parse_ir round trip, static checks (no errors) for several configs;
* tiling: derived tiles, and `TilingError` naming the dimension and the divisor;
* numerics (interpreter vs the independent NumPy golden, kernels/qwen3/golden.py) for the
  ``tiny`` and ``tiny-gqa4`` presets (and a q_per_kv=5, query-width != hidden variant) at batch
  1, 16, 17 (33 is marked slow), contexts spread over 1-3 KV blocks of 16 tokens:
  ``precision="bf16"`` within the tolerances justified in docs/qwen3.md, ``precision="fp32"``
  within 1e-5 of max|logit|, and the KV-cache rows the step writes.
"""

from __future__ import annotations

import numpy as np
import pytest
from pldsl.kernels.qwen3 import golden
from pldsl.kernels.qwen3.config import Qwen3Config, preset
from pldsl.kernels.qwen3.program import (
    DECODE_OUTPUT_NAMES,
    DECODE_PARAM_NAMES,
    HOST_PARAM_NAMES,
    build_program,
    decode_args,
    host_orch_args,
)
from pldsl.kernels.qwen3.tiling import DEFAULT_CAPS, TilingError, derive_tiling, largest_tile
from pldsl.kernels.qwen3.weights import BF16, KVLayout, PageAllocator, random_weights

import pldsl as pl
from pldsl import interpreter

BLOCK = 16  # small KV pages so short contexts span several blocks
MAX_BLOCKS = 4
MAX_SEQ = MAX_BLOCKS * BLOCK

# A q_per_kv = 5 config (the seed's Qwen3-14B grouping) whose query width (10*16 = 160)
# differs from hidden (128), like Qwen3-32B.
TINY_Q5 = preset("tiny").replace(num_attention_heads=10, head_dim=16)


# Small tiles so every K loop has several chunks (matmul_acc, chunked RMS sums), and one head
# per q/k-norm step as in the seed: the default tiles give the tiny configs one chunk each.
CHUNKED_CAPS = {
    "k_chunk_in": 32,
    "q_out_chunk": 32,
    "kv_out_chunk": 32,
    "o_k_chunk": 32,
    "o_out_chunk": 32,
    "k_chunk": 32,
    "mlp_chunk": 64,
    "down_out_chunk": 32,
    "vocab_chunk": 64,
}


# More query-heads-per-KV-head ratios (1, 8 and 20: the last needs a 32-row padded Q tile).
EXTRA_CONFIGS = {
    "tiny-q5": TINY_Q5,
    "tiny-q1": TINY_Q5.replace(num_attention_heads=4, num_key_value_heads=4, head_dim=32),
    "tiny-q8": TINY_Q5.replace(num_attention_heads=16, num_key_value_heads=2),
    "tiny-q20": TINY_Q5.replace(num_attention_heads=20, num_key_value_heads=1),
}


def _cfg(name: str) -> Qwen3Config:
    name = name.split("/")[0]
    return EXTRA_CONFIGS[name] if name in EXTRA_CONFIGS else preset(name)


def _chunked_tiling(cfg: Qwen3Config):
    t = derive_tiling(
        cfg,
        block_size=BLOCK,
        max_blocks_per_seq=MAX_BLOCKS,
        padded_vocab=cfg.padded_vocab(64),
        caps=CHUNKED_CAPS,
    )
    return t.replace(q_norm_heads=1, k_norm_heads=1)


def _build(cfg: Qwen3Config, batch_pages: int = 64, **kw) -> pl.Program:
    return build_program(
        cfg,
        max_seq=MAX_SEQ,
        block_size=BLOCK,
        num_pages=batch_pages,
        max_blocks_per_seq=MAX_BLOCKS,
        padded_vocab=cfg.padded_vocab(64),
        **kw,
    )


# ====================================================================== capture, IR, checks


@pytest.mark.parametrize("name", ["tiny", "tiny-gqa4", "tiny-q5", "qwen3-14b", "qwen3-32b"])
def test_capture_and_ir_round_trip(name):
    cfg = _cfg(name)
    prog = _build(cfg)
    assert [f.name for f in prog.function_list] == [
        "qwen3_prefill_all",
        "qwen3_decode_all",
        "qwen3_final_logits",
        "sample_and_prepare",
        "host_orch",
    ]
    text = pl.print_ir(prog)
    again = pl.parse_ir(text)
    assert pl.structural_equal(prog, again)
    assert pl.print_ir(again) == text


def test_decode_signature():
    cfg = preset("tiny")
    fn = _build(cfg).qwen3_decode_all
    assert fn.func_type == pl.FunctionType.Opaque
    assert tuple(p.name for p in fn.params) == DECODE_PARAM_NAMES
    directions = {p.name: p.direction for p in fn.params}
    assert [n for n, d in directions.items() if d == "Out"] == list(DECODE_OUTPUT_NAMES)
    # The caches are written in place but declared In (see docs/qwen3.md: InOut would force
    # host_orch to thread them, and the spec fixes the return to the 3-tuple).
    assert directions["k_cache"] == directions["v_cache"] == "In"
    assert fn.tuple_return and len(fn.return_types) == 3
    # Outputs are sized to the (dynamic) batch, not to one batch tile.
    for p in fn.params:
        if p.name in ("hidden_states", "out", "rms_normed", "logits", "seq_lens", "slot_mapping"):
            assert p.type.shape[0].name == "USER_BATCH", p.name
    host = _build(cfg).host_orch
    assert tuple(p.name for p in host.params) == HOST_PARAM_NAMES
    assert host.level == pl.Level.HOST and host.role == pl.Role.Orchestrator
    sub = _build(cfg).sample_and_prepare
    assert sub.is_host_stub and sub.role == pl.Role.SubWorker


@pytest.mark.parametrize(
    "name",
    ["tiny", "tiny-gqa4", "tiny-q5", pytest.param("qwen3-14b", marks=pytest.mark.slow)],
)
def test_static_checks_report_no_errors(name):
    diags = pl.check(_build(_cfg(name)))
    errors = [d for d in diags if d.severity == "error"]
    assert not errors, "\n".join(d.render() if hasattr(d, "render") else str(d) for d in errors)
    # No warnings: the KV caches, declared In, are written (decision 11, as in the seed), which
    # PyPTO upgrades to InOut; the opt-in InParamWritten rule still points at the writes.
    assert diags == [], sorted({d.rule for d in diags})
    diags = pl.check(_build(_cfg(name)), enable=("InParamWritten",))
    messages = [d.message for d in diags if d.rule == "InParamWritten"]
    assert len(messages) == len(diags) == 3  # the two K halves and the V row
    assert all("k_cache" in m or "v_cache" in m for m in messages)


def test_inout_caches_would_violate_inout_use_discipline():
    """Why the caches stay `In`: as InOut, host_orch would read them after passing them."""
    cfg = preset("tiny")
    text = pl.print_ir(_build(cfg, batch_pages=64))
    rows = cfg.num_hidden_layers * 64 * cfg.num_key_value_heads * BLOCK
    cache_type = f"pl.Tensor[[{rows}, {cfg.head_dim}], pl.BF16]"
    head, sep, rest = text.partition("def qwen3_decode_all(")
    sig, close, body = rest.partition(") ->")
    for name in ("k_cache", "v_cache"):
        assert f"{name}: {cache_type}" in sig
        sig = sig.replace(f"{name}: {cache_type}", f"{name}: pl.InOut[{cache_type}]")
    prog = pl.parse_ir(head + sep + sig + close + body)
    assert prog.qwen3_decode_all.param("k_cache").direction == "InOut"
    diags = pl.check(prog)
    flagged = [d for d in diags if d.rule == "InOutUseDiscipline"]
    assert flagged and any("k_cache" in d.message for d in flagged)


# ====================================================================== tiling


def test_tiling_reproduces_the_seed_for_qwen3_14b():
    cfg = preset("qwen3-14b")
    t = derive_tiling(cfg, block_size=256, max_blocks_per_seq=16, padded_vocab=152064)
    assert (t.k_chunk_in, t.q_out_chunk, t.kv_out_chunk) == (512, 64, 64)
    assert (t.o_k_chunk, t.o_out_chunk, t.k_chunk) == (128, 64, 128)
    assert (t.mlp_chunk, t.down_out_chunk, t.vocab_chunk) == (256, 128, 64)
    assert (t.q_per_kv, t.q_head_pad, t.batch_tile) == (5, 16, 16)


@pytest.mark.parametrize(
    ("heads", "kv_heads", "pad"),
    [(8, 8, 16), (8, 4, 16), (16, 4, 16), (40, 8, 16), (64, 8, 16), (40, 2, 32)],
)
def test_q_head_pad_rounds_q_per_kv_up(heads, kv_heads, pad):
    cfg = preset("tiny").replace(num_attention_heads=heads, num_key_value_heads=kv_heads)
    t = derive_tiling(cfg, block_size=16, max_blocks_per_seq=2, padded_vocab=384)
    assert t.q_per_kv == heads // kv_heads and t.q_head_pad == pad


def test_tiles_divide_their_dimensions():
    for name in ("tiny", "tiny-gqa4", "qwen3-0.6b", "qwen3-8b", "qwen3-14b", "qwen3-32b"):
        cfg = preset(name)
        pv = cfg.padded_vocab(64)
        t = derive_tiling(cfg, block_size=128, max_blocks_per_seq=8, padded_vocab=pv)
        H, Im, Qw, KVw = cfg.hidden_size, cfg.intermediate_size, cfg.q_width, cfg.kv_width
        for dim, tile in (
            (H, t.k_chunk_in), (Qw, t.q_out_chunk), (KVw, t.kv_out_chunk), (Qw, t.o_k_chunk),
            (H, t.o_out_chunk), (H, t.k_chunk), (Im, t.mlp_chunk), (H, t.down_out_chunk),
            (pv, t.vocab_chunk), (cfg.num_attention_heads, t.q_norm_heads),
            (cfg.num_key_value_heads, t.k_norm_heads),
        ):  # fmt: skip
            assert dim % tile == 0, (name, dim, tile)


def test_largest_tile():
    assert largest_tile(5120, 512, 16) == 512
    assert largest_tile(160, 64, 16) == 32
    assert largest_tile(384, 256, 16) == 192
    assert largest_tile(1000, 512, 16) is None


def test_tile_caps_override():
    cfg = preset("tiny")
    t = derive_tiling(
        cfg, block_size=16, max_blocks_per_seq=2, padded_vocab=384, caps={"vocab_chunk": 384}
    )
    assert t.vocab_chunk == 384
    with pytest.raises(TilingError, match="unknown tile caps"):
        derive_tiling(cfg, block_size=16, max_blocks_per_seq=2, padded_vocab=384, caps={"x": 1})


@pytest.mark.parametrize(
    ("change", "kw", "pattern"),
    [
        ({"hidden_size": 1000}, {}, r"hidden_size=1000 .*multiple of 16"),
        ({"intermediate_size": 1000}, {}, r"intermediate_size=1000 .*multiple of 16"),
        ({"num_attention_heads": 5, "num_key_value_heads": 5, "head_dim": 24}, {}, r"head_dim=24 must be a multiple of 16"),
        ({}, {"block_size": 24}, r"block_size=24 must be a multiple of 16"),
        ({}, {"batch_tile": 12}, r"batch_tile=12 must be a multiple of 16"),
        ({}, {"padded_vocab": 383}, r"padded_vocab=383 is smaller than vocab_size=384"),
        ({"vocab_size": 400}, {"padded_vocab": 440}, r"padded_vocab=440 .*multiple of 16"),
        ({}, {"block_size": 0}, r"block_size must be a positive int"),
    ],
)  # fmt: skip
def test_tiling_errors_name_the_dimension_and_divisor(change, kw, pattern):
    cfg = preset("tiny").replace(**change)
    args = {"block_size": 16, "max_blocks_per_seq": 2, "padded_vocab": max(384, cfg.vocab_size)}
    args.update(kw)
    with pytest.raises(TilingError, match=pattern):
        derive_tiling(cfg, **args)
    if "block_size" not in kw or kw["block_size"] > 0:
        with pytest.raises(TilingError, match=pattern):
            build_program(cfg, max_seq=64, num_pages=8, **{"max_blocks_per_seq": 2, **args})


def test_tiling_error_is_a_value_error():
    assert issubclass(TilingError, ValueError)
    assert set(DEFAULT_CAPS) >= {"k_chunk_in", "vocab_chunk"}


def test_build_rejects_bad_sizes():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match="num_pages"):
        build_program(
            cfg, max_seq=64, block_size=16, num_pages=0, max_blocks_per_seq=2, padded_vocab=384
        )
    with pytest.raises(TypeError):
        build_program(
            "tiny", max_seq=64, block_size=16, num_pages=4, max_blocks_per_seq=2, padded_vocab=384
        )  # type: ignore[arg-type]


# ====================================================================== numerics


def _seq_lens(batch: int, rng: np.random.Generator) -> np.ndarray:
    """Context lengths (incl. the current token) over 1..48: 1-3 blocks of 16, with the block
    edges (1, 16, 17, 32, 33, 48) always present when the batch is large enough."""
    edges = [17, 33, 1, 48, 16, 32, 2, 47]
    lens = edges[:batch] + list(rng.integers(1, 3 * BLOCK + 1, size=max(0, batch - len(edges))))
    return np.array(lens[:batch], dtype=np.int32)


class Case:
    """Inputs of one decode step (identical copies for the kernel and the golden)."""

    def __init__(self, cfg: Qwen3Config, weights, batch: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.cfg, self.weights, self.batch = cfg, weights, batch
        self.num_pages = batch * MAX_BLOCKS + 3  # a few pages nobody owns
        self.layout = KVLayout(num_pages=self.num_pages, block_size=BLOCK)
        alloc = PageAllocator(self.layout, batch, MAX_BLOCKS)
        self.seq_lens = _seq_lens(batch, rng)
        for b, n in enumerate(self.seq_lens):
            alloc.reserve(b, int(n))
        self.block_table = alloc.block_table.copy()
        self.slot_mapping = alloc.slot_mapping(range(batch), [int(n) - 1 for n in self.seq_lens])
        shape = self.layout.cache_shape(cfg)
        # Every cache row holds data: earlier positions (the context) and garbage everywhere
        # else (the current slot, positions past the context, pages nobody owns). Masking must
        # make the garbage irrelevant.
        self.k_cache = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
        self.v_cache = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
        tokens = rng.integers(0, cfg.vocab_size, size=batch)
        self.hidden = weights.embed(tokens)

    def golden(self, precision: str):
        f32 = precision == "fp32"
        kc = self.k_cache.astype(np.float32) if f32 else self.k_cache.copy()
        vc = self.v_cache.astype(np.float32) if f32 else self.v_cache.copy()
        hidden = self.hidden.astype(np.float32) if f32 else self.hidden
        out, rms, logits = golden.decode_step(
            self.weights, self.cfg, hidden, self.seq_lens, self.block_table, self.slot_mapping,
            kc, vc, block_size=BLOCK, max_blocks_per_seq=MAX_BLOCKS, precision=precision,
        )  # fmt: skip
        return {"out": out, "rms_normed": rms, "logits": logits, "k_cache": kc, "v_cache": vc}

    def kernel(self, prog, precision: str, strict: bool = False, k_cache=None, v_cache=None):
        f32 = precision == "fp32"
        kc = (self.k_cache if k_cache is None else k_cache).copy()
        vc = (self.v_cache if v_cache is None else v_cache).copy()
        if f32:
            kc, vc = kc.astype(np.float32), vc.astype(np.float32)
        H, PV = self.cfg.hidden_size, self.weights.padded_vocab
        hdt = np.float32 if f32 else BF16
        outs = {
            "out": np.zeros((self.batch, H), hdt),
            "rms_normed": np.zeros((self.batch, H), hdt),
            "logits": np.zeros((self.batch, PV), np.float32),
        }
        args = decode_args(
            self.weights, self.hidden.astype(hdt), self.seq_lens, self.block_table,
            self.slot_mapping, kc, vc, outs["out"], outs["rms_normed"], outs["logits"],
        )  # fmt: skip
        result = interpreter.run(
            prog, "qwen3_decode_all", *args, precision=precision, strict=strict
        )
        res = {"k_cache": kc, "v_cache": vc}
        for name, value in zip(DECODE_OUTPUT_NAMES, result):
            res[name] = np.asarray(value)
        return res

    def written_rows(self) -> np.ndarray:
        """Cache rows the step writes: (layer, user, kv head) at the user's slot."""
        cfg, lay = self.cfg, self.layout
        return np.array(
            sorted(
                lay.slot_row(cfg, layer, int(s), kvh)
                for layer in range(cfg.num_hidden_layers)
                for s in self.slot_mapping
                for kvh in range(cfg.num_key_value_heads)
            )
        )


_WEIGHTS: dict[str, object] = {}
_PROGRAMS: dict[tuple, pl.Program] = {}


def _weights(name: str):
    name = name.split("/")[0]
    if name not in _WEIGHTS:
        _WEIGHTS[name] = random_weights(_cfg(name), seed=1234, max_seq=MAX_SEQ)
    return _WEIGHTS[name]


def _program(name: str, num_pages: int) -> pl.Program:
    """The program for config `name` ("tiny", ..., or "tiny/chunked" for small tiles)."""
    key = (name, num_pages)
    if key not in _PROGRAMS:
        cfg = _cfg(name)
        kw = {"tiling": _chunked_tiling(cfg)} if name.endswith("/chunked") else {}
        _PROGRAMS[key] = _build(cfg, batch_pages=num_pages, **kw)
    return _PROGRAMS[key]


def _f32(a) -> np.ndarray:
    return np.asarray(a).astype(np.float32)


# Tolerances (justified in docs/qwen3.md, "Tolerances and measured agreement"). The kernel and
# the golden round at the same points, so they differ only by FP32 accumulation order (chunked
# matmul_acc / row sums vs whole-K NumPy), which now and then flips one BF16 rounding; a flip
# moves that element by one ulp and its consumers by a fraction of one.
BF16_REL = 2.0**-6  # out / rms_normed / cache rows: max|diff| <= 2 ulps of the largest element
BF16_ELEM_TOL = 1e-2  # ... and at most 1% of elements outside atol = rtol = 1e-2
BF16_MIN_EQUAL = 0.9  # ... and at least 90% bit-equal
LOGIT_REL = 5e-3  # bf16 logits: max|diff| <= 5e-3 * max|logit|
FP32_REL = 1e-5  # fp32 mode: every output within 1e-5 of its max magnitude


def _agreement(res, gold) -> dict[str, float]:
    stats = {}
    for name in ("out", "rms_normed", "logits"):
        k, g = _f32(res[name]), _f32(gold[name])
        stats[f"{name}_equal"] = float(np.mean(k == g))
        stats[f"{name}_rel"] = float(np.max(np.abs(k - g)) / np.max(np.abs(g)))
    return stats


def _assert_bf16_tensor(name, got, want):
    k, g = _f32(got), _f32(want)
    assert k.shape == g.shape, name
    assert np.all(np.isfinite(k)), name
    diff = np.abs(k - g)
    assert diff.max() <= BF16_REL * np.abs(g).max(), (name, diff.max(), np.abs(g).max())
    outside = np.mean(diff > BF16_ELEM_TOL * (1 + np.abs(g)))
    assert outside <= 0.01, (name, outside)
    assert np.mean(diff == 0) >= BF16_MIN_EQUAL, (name, np.mean(diff == 0))


def _assert_bf16_close(case: Case, res, gold):
    for name in ("out", "rms_normed"):
        _assert_bf16_tensor(name, res[name], gold[name])
    lk, lg = res["logits"], gold["logits"]
    assert lk.shape == lg.shape == (case.batch, case.weights.padded_vocab)
    assert np.all(np.isfinite(lk))
    rel = np.max(np.abs(lk - lg)) / np.max(np.abs(lg))
    assert rel <= LOGIT_REL, rel
    # Greedy tokens agree wherever the golden's top-2 gap is clearly above the tolerance.
    top2 = np.sort(lg[:, : case.cfg.vocab_size], axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * LOGIT_REL * np.max(np.abs(lg))
    vocab = case.cfg.vocab_size
    assert np.array_equal(np.argmax(lk[:, :vocab], 1)[clear], np.argmax(lg[:, :vocab], 1)[clear])
    # KV cache: the rows the step writes agree like the hidden states; every other row is
    # untouched.
    rows = case.written_rows()
    for name, before in (("k_cache", case.k_cache), ("v_cache", case.v_cache)):
        got, want = res[name], gold[name]
        other = np.ones(len(before), bool)
        other[rows] = False
        assert np.array_equal(_f32(got)[other], _f32(before)[other]), name
        _assert_bf16_tensor(name, got[rows], want[rows])


def _assert_fp32_close(case: Case, res, gold):
    for name in ("out", "rms_normed", "logits"):
        k, g = _f32(res[name]), _f32(gold[name])
        assert k.shape == g.shape
        err = np.max(np.abs(k - g)) / np.max(np.abs(g))
        assert err <= FP32_REL, (name, err)
    rows = case.written_rows()
    for name in ("k_cache", "v_cache"):
        k, g = _f32(res[name][rows]), _f32(gold[name][rows])
        assert np.max(np.abs(k - g)) <= FP32_REL * np.max(np.abs(g)), name


CASES = [
    pytest.param(name, batch, marks=[pytest.mark.slow] if batch == 33 else [])
    for name in ("tiny", "tiny-gqa4")
    for batch in (1, 16, 17, 33)
] + [
    pytest.param("tiny-q5", 17),
    pytest.param("tiny-q1", 17),
    pytest.param("tiny-q8", 17),
    pytest.param("tiny-q20", 17),
    pytest.param("tiny/chunked", 17),
    pytest.param("tiny-gqa4/chunked", 17),
]


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
@pytest.mark.parametrize(("name", "batch"), CASES)
def test_decode_step_matches_golden(name, batch, precision):
    """One decode step against the golden within the precision's tolerances; `pytest -s`
    prints the agreement quoted in docs/qwen3.md."""
    case = Case(_cfg(name), _weights(name), batch, seed=batch)
    res = case.kernel(_program(name, case.num_pages), precision)
    gold = case.golden(precision)
    stats = ", ".join(f"{k}={v:.4g}" for k, v in _agreement(res, gold).items())
    print(f"\n[qwen3] {name} b{batch} {precision}: {stats}")
    (_assert_bf16_close if precision == "bf16" else _assert_fp32_close)(case, res, gold)


@pytest.mark.slow
def test_decode_step_real_widths_bf16():
    """Qwen3-0.6B widths (hidden 1024, 16 x 128 query heads over 8 KV heads, intermediate
    3072: several K chunks per matmul), 2 layers, vocabulary cut to 4096, batch 17."""
    cfg = preset("qwen3-0.6b").replace(num_hidden_layers=2, vocab_size=4096)
    w = random_weights(cfg, seed=1, max_seq=MAX_SEQ)
    case = Case(cfg, w, 17, seed=3)
    prog = _build(cfg, batch_pages=case.num_pages)
    _assert_bf16_close(case, case.kernel(prog, "bf16"), case.golden("bf16"))
    _assert_fp32_close(case, case.kernel(prog, "fp32"), case.golden("fp32"))


@pytest.mark.parametrize(
    ("name", "batch"), [("tiny", 17), ("tiny-gqa4", 1), ("tiny", 16), ("tiny/chunked", 17)]
)
def test_strict_mode_reads_nothing_undefined(name, batch):
    """Strict mode poisons undefined memory (create_tensor, Out params, padding outside
    valid regions) and faults on a read: the kernel never relies on zero-initialised scratch,
    and every element of the three outputs is written."""
    case = Case(_cfg(name), _weights(name), batch, seed=3)
    prog = _program(name, case.num_pages)
    strict = case.kernel(prog, "bf16", strict=True)
    plain = case.kernel(prog, "bf16")
    for name in ("out", "rms_normed", "logits", "k_cache", "v_cache"):
        assert np.array_equal(_f32(strict[name]), _f32(plain[name])), name


def test_rows_do_not_depend_on_the_rest_of_the_batch():
    """Every row is computed independently: decoding users 0..15 alone (one full tile) or user
    16 alone (a tile of 1 valid row + 15 padding rows) gives bit-identical rows to the batch-17
    run, so padding rows never leak into valid outputs and the tail covers the last tile."""
    case = Case(preset("tiny"), _weights("tiny"), 17, seed=11)
    prog = _program("tiny", case.num_pages)
    full = case.kernel(prog, "bf16")
    for rows in (slice(0, 16), slice(16, 17), slice(5, 6)):
        sub = Case.__new__(Case)
        sub.__dict__.update(case.__dict__)
        n = rows.stop - rows.start
        sub.batch = n
        sub.hidden = case.hidden[rows]
        sub.seq_lens = case.seq_lens[rows]
        sub.slot_mapping = case.slot_mapping[rows]
        sub.block_table = case.block_table[rows.start * MAX_BLOCKS : rows.stop * MAX_BLOCKS]
        part = sub.kernel(prog, "bf16")
        for name in ("out", "rms_normed", "logits"):
            assert np.array_equal(_f32(part[name]), _f32(full[name][rows])), (rows, name)


def test_non_finite_garbage_in_unused_cache_rows_does_not_leak():
    """NaN/Inf in cache rows outside the contexts (past the current token, other pages) are
    masked: scores by fillpad(min), V rows by fillpad(zero) before the P.V matmul."""
    case = Case(preset("tiny"), _weights("tiny"), 17, seed=5)
    prog = _program("tiny", case.num_pages)
    base = case.kernel(prog, "bf16")
    cfg, lay = case.cfg, case.layout
    used = np.zeros(len(case.k_cache), bool)
    for layer in range(cfg.num_hidden_layers):
        for b, n in enumerate(case.seq_lens):
            for pos in range(int(n) - 1):  # the context before the current token
                page = case.block_table[b * MAX_BLOCKS + pos // BLOCK]
                for kvh in range(cfg.num_key_value_heads):
                    used[lay.row(cfg, layer, int(page), kvh, pos % BLOCK)] = True
    k, v = case.k_cache.copy(), case.v_cache.copy()
    k[~used] = np.array(np.nan, np.float32).astype(BF16)
    v[~used] = np.array(np.inf, np.float32).astype(BF16)
    dirty = case.kernel(prog, "bf16", k_cache=k, v_cache=v)
    for name in ("out", "rms_normed", "logits"):
        assert np.array_equal(_f32(dirty[name]), _f32(base[name])), name


def test_host_orch_chains_decode_steps():
    """host_orch: decode step 0 then (max_new_tokens - 1) x (decode + sample), with a Python
    sample_and_prepare (greedy argmax, embed, advance seq_lens and slots in place); the tokens
    equal those of the golden run step by step."""
    cfg, w = preset("tiny"), _weights("tiny")
    batch, steps = 3, 3
    rng = np.random.default_rng(7)
    lens0 = np.array([14, 16, 30], np.int32)  # crosses a block edge while generating
    layout = KVLayout(num_pages=batch * MAX_BLOCKS, block_size=BLOCK)
    alloc = PageAllocator(layout, batch, MAX_BLOCKS)
    for b, n in enumerate(lens0):
        alloc.reserve(b, int(n) + steps)
    shape = layout.cache_shape(cfg)
    k0 = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
    v0 = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
    tokens0 = rng.integers(0, cfg.vocab_size, size=batch)

    # golden: step by step
    kc, vc, lens, tokens, want = k0.copy(), v0.copy(), lens0.copy(), tokens0, []
    for _ in range(steps):
        slots = alloc.slot_mapping(range(batch), [int(n) - 1 for n in lens])
        _, _, logits = golden.decode_step(
            w, cfg, w.embed(tokens), lens, alloc.block_table, slots, kc, vc,
            block_size=BLOCK, max_blocks_per_seq=MAX_BLOCKS,
        )  # fmt: skip
        tokens = np.argmax(logits[:, : cfg.vocab_size], axis=1)
        want.append(tokens)
        lens = lens + 1

    got = []

    def sample_and_prepare(logits, seq_lens, slot_mapping, hidden):
        tok = np.argmax(np.asarray(logits)[:, : cfg.vocab_size], axis=1)
        got.append(tok)
        hidden[...] = w.embed(tok).astype(hidden.dtype)
        seq_lens += 1
        slot_mapping[...] = alloc.slot_mapping(range(batch), [int(n) - 1 for n in seq_lens])
        return hidden

    prog = build_program(
        cfg, max_seq=MAX_SEQ, block_size=BLOCK, num_pages=layout.num_pages,
        max_blocks_per_seq=MAX_BLOCKS, padded_vocab=w.padded_vocab, max_new_tokens=steps,
    )  # fmt: skip
    lens = lens0.copy()
    slots = alloc.slot_mapping(range(batch), [int(n) - 1 for n in lens])
    no_prompt = np.zeros((batch, 1, cfg.hidden_size), BF16)  # has_prefill=False: not read
    args = host_orch_args(
        w, no_prompt, lens.copy(), np.zeros(batch, np.int32),
        w.embed(tokens0), lens, slots, alloc.block_table.copy(), k0.copy(), v0.copy(),
        False, no_prompt.copy(),
        np.zeros((batch, cfg.hidden_size), BF16), np.zeros((batch, cfg.hidden_size), BF16),
        np.zeros((batch, w.padded_vocab), np.float32),
    )  # fmt: skip
    interpreter.run(prog, "host_orch", *args, host={"sample_and_prepare": sample_and_prepare})
    assert len(got) == steps
    for g, wnt in zip(got, want):
        assert np.array_equal(g, wnt)
    assert np.array_equal(lens, lens0 + steps)
