"""The fast path (IR compiled to closures, K-loops as one matmul) against the plain path.

Without a fused K-loop the two must agree bit for bit (same kernels, same order); a fused
K-loop's accumulator must lie within `numerics.matmul_error_bound` of the exact product of the
joined operands, as the contract allows for any summation order (docs/numerics.md).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pldsl.kernels.examples import EXAMPLES

import pldsl as pl
from pldsl import interpreter
from pldsl.differential import compare_fast
from pldsl.execution import numerics

EXAMPLE_KWARGS = {
    "elementwise_add": {"cols": 64, "row_tile": 16, "col_tile": 32},
    "matmul": {"k": 48, "n": 32, "m_tile": 16, "n_tile": 16},
    "gemm": {"k": 64, "n": 32, "m_tile": 16, "n_tile": 16, "k_tile": 16},
    "gemm_bf16": {"k": 64, "n": 32, "m_tile": 16, "n_tile": 16, "k_tile": 16},
    "rms_norm": {"hidden": 128, "row_tile": 16, "hidden_chunk": 32},
    "layer_norm": {"hidden": 64, "row_tile": 16},
    "softmax": {"cols": 64, "row_tile": 16},
    "rope": {"head_dim": 32, "row_tile": 16},
}


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("strict", [False, True])
def test_example_kernels_agree_bit_for_bit(name, strict):
    """The examples' K-loops choose between matmul and matmul_acc with an `if` inside the loop,
    which is not the fused shape: every example must be bit-exact on both paths."""
    mod = importlib.import_module(f"pldsl.kernels.examples.{name}")
    kwargs = EXAMPLE_KWARGS[name]
    prog = mod.build(**kwargs)
    fn = next(f for f in prog.function_list if not f.is_host_stub)
    sig = inspect.signature(mod.make_inputs)
    for rows in (37, 5):
        kw = {k: v for k, v in kwargs.items() if k in sig.parameters}
        kw.update({key: rows for key in ("rows", "m") if key in sig.parameters}, seed=rows)
        inputs = mod.make_inputs(**kw)
        args = [inputs.get(p.name) for p in fn.params]
        report = compare_fast(prog, fn.name, args, exact=True, strict=strict)
        assert report.ok, str(report)


# ------------------------------------------------------------------ K-loops

KLOOP = """
    @pl.program
    class K:
        @pl.function
        def main(self, a: pl.Tensor[[{m}, {ka}], pl.BF16], b: pl.Tensor[[{rb}, {cb}], pl.BF16], nk: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[{m}, {n}], pl.FP32]]) -> pl.Tensor[[{m}, {n}], pl.FP32]:
            a0 = pl.slice(a, [{m}, {k}], [0, 0])
            b0 = pl.slice(b, {bshape}, [0, 0])
            acc = pl.matmul(a0, b0, out_dtype=pl.FP32{trans})
            for kb in pl.range(1, nk):
                k0 = kb * {stride}
                a_i = pl.slice(a, [{m}, {k}], [0, k0]{valid})
                b_i = pl.slice(b, {bshape}, {boff})
                acc = pl.matmul_acc(acc, a_i, b_i{trans})
            out = pl.assemble(out, acc, [0, 0])
            return out
"""


def _kloop(m, k, nk, n, b_trans, gap, tail):
    stride = k + gap  # gap > 0: windows that do not join (must fall back)
    ka = stride * (nk - 1) + k
    src = KLOOP.format(
        m=m, k=k, n=n, ka=ka, stride=stride,
        rb=n if b_trans else ka, cb=ka if b_trans else n,
        bshape=f"[{n}, {k}]" if b_trans else f"[{k}, {n}]",
        boff="[0, k0]" if b_trans else "[k0, 0]",
        trans=", b_trans=True" if b_trans else "",
        valid=f", valid_shape=[{m}, {k - 1}]" if tail else "",
    )  # fmt: skip
    progs = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "kloop.py")
    return progs[0], ka


def _kloop_args(m, ka, n, nk, b_trans, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, ka)).astype(np.float32).astype(numerics.storage_dtype("BF16"))
    shape = (n, ka) if b_trans else (ka, n)
    b = rng.standard_normal(shape).astype(np.float32).astype(numerics.storage_dtype("BF16"))
    return a, b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 6),
    k=st.integers(2, 9),
    nk=st.integers(1, 5),
    n=st.integers(1, 7),
    b_trans=st.booleans(),
    gap=st.sampled_from([0, 0, 1]),
    tail=st.sampled_from([False, False, True]),
    run_nk=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_k_loops_fuse_within_the_matmul_bound_and_fall_back_exactly(
    m, k, nk, n, b_trans, gap, tail, run_nk, seed
):
    prog, ka = _kloop(m, k, nk, n, b_trans, gap, tail)
    a, b = _kloop_args(m, ka, n, nk, b_trans, seed)
    run_nk = min(run_nk, nk)  # a dynamic trip count: 0 or 1 products run no loop at all
    plain = interpreter.run(prog, "main", a, b, run_nk, None, fast=False)
    fast = interpreter.run(prog, "main", a, b, run_nk, None)
    fuses = gap == 0 and not tail and run_nk >= 3
    if not fuses:  # the plain products, in order
        np.testing.assert_array_equal(fast, plain)
        return
    stride = k + gap
    used = stride * (run_nk - 1) + k
    aa = a[:, :used]
    bb = b[:, :used] if b_trans else b[:used]
    exact = aa.astype(np.float64) @ (bb.T if b_trans else bb).astype(np.float64)
    bound = numerics.matmul_error_bound(aa, bb, "FP32", b_trans=b_trans)
    assert np.all(np.abs(fast.astype(np.float64) - exact) <= bound)
    assert np.all(np.abs(plain.astype(np.float64) - exact) <= bound)


def test_a_k_loop_fuses_into_one_product(capture, monkeypatch):
    """The shortcut is taken (one numerics.matmul_acc for the loop), in strict mode too (so
    strict and default runs agree bit for bit), but not while a trace records every op."""
    prog, ka = _kloop(4, 8, 6, 5, False, 0, False)
    a, b = _kloop_args(4, ka, 5, 6, False, 1)
    calls = []
    real = numerics.matmul_acc
    monkeypatch.setattr(numerics, "matmul_acc", lambda *x, **kw: calls.append(1) or real(*x, **kw))
    interpreter.run(prog, "main", a, b, 6, None)
    assert len(calls) == 1
    calls.clear()
    interpreter.run(prog, "main", a, b, 6, None, strict=True)
    assert len(calls) == 1
    calls.clear()
    interpreter.run(prog, "main", a, b, 6, None, trace=interpreter.Trace())
    assert len(calls) == 5


def test_an_out_of_bounds_window_faults_the_same_way(capture):
    prog, ka = _kloop(2, 4, 3, 3, False, 0, False)
    a, b = _kloop_args(2, ka, 3, 3, False, 2)
    for fast in (False, True):
        with pytest.raises(pl.RuntimeFault) as e:
            interpreter.run(prog, "main", a, b, 4, None, fast=fast)  # one block too many
        assert e.value.diagnostic.rule == "OutOfBounds"


# ------------------------------------------------------------------ loop nests

NEST = """
    N = pl.dynamic("N")
    @pl.program
    class L:
        @pl.function
        def main(self, x: pl.Tensor[[N, {w}], pl.FP32], s: pl.Scalar[pl.FP32], out: pl.InOut[pl.Tensor[[N, {w}], pl.FP32]]) -> pl.Tensor[[N, {w}], pl.FP32]:
            rows = pl.tensor.dim(x, 0)
            for i in pl.{kind}(0, rows, {t}):
                valid = pl.min({t}, rows - i)
                tile = pl.slice(x, [{t}, {w}], [i, 0], valid_shape=[valid, {w}])
                for j in pl.{inner}(0, {w}, {cw}):
                    part = pl.slice(tile, [{t}, {cw}], [0, j], valid_shape=[valid, {cw}])
                    y = pl.mul(pl.add(part, s), s)
                    out = pl.assemble(out, y, [i, j])
            return out
"""


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(0, 9),
    t=st.integers(1, 4),
    cw=st.integers(1, 3),
    chunks=st.integers(1, 3),
    kind=st.sampled_from(["parallel", "range"]),
    inner=st.sampled_from(["parallel", "range"]),
    alias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_loop_nests_agree_bit_for_bit(rows, t, cw, chunks, kind, inner, alias, seed):
    w = cw * chunks
    src = NEST.format(w=w, t=t, cw=cw, kind=kind, inner=inner)
    prog = pl.capture_source("import pldsl as pl\n" + inspect.cleandoc(src), "nest.py")[0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, w)).astype(np.float32)
    out = rng.standard_normal((rows, w)).astype(np.float32)
    if alias and rows:  # one array as In and InOut: refused on both paths, nothing written
        for fast in (False, True):
            before = x.copy()
            with pytest.raises(pl.RuntimeFault) as e:
                interpreter.run(prog, "main", x, 1.5, x, fast=fast)
            assert e.value.diagnostic.rule == "ArgumentAliasing"
            np.testing.assert_array_equal(x, before)
        return
    report = compare_fast(prog, "main", [x, 1.5, out], exact=True)
    assert report.ok, str(report)
    report = compare_fast(prog, "main", [x, 1.5, out], exact=True, strict=True)
    assert report.ok, str(report)


# ------------------------------------------------------------------ Qwen3


def _qwen3_step(preset_name: str, layers: int | None, batch: int, ctx: int, block: int,
                same_context: bool = False):  # fmt: skip
    import dataclasses

    from pldsl.kernels.qwen3.config import preset
    from pldsl.kernels.qwen3.program import build_program, decode_args
    from pldsl.kernels.qwen3.weights import BF16, KVLayout, PageAllocator, random_weights

    cfg = preset(preset_name)
    if layers is not None:
        cfg = dataclasses.replace(cfg, num_hidden_layers=layers)
    max_blocks = -(-ctx // block)
    weights = random_weights(cfg, seed=0, max_seq=max_blocks * block)
    num_pages = batch * max_blocks
    prog = build_program(cfg, max_seq=max_blocks * block, block_size=block, num_pages=num_pages,
                         max_blocks_per_seq=max_blocks, padded_vocab=weights.padded_vocab)  # fmt: skip
    layout = KVLayout(num_pages=num_pages, block_size=block)
    alloc = PageAllocator(layout, batch, max_blocks)
    rng = np.random.default_rng(0)
    lens = rng.integers(1, ctx + 1, size=batch).astype(np.int32)
    if same_context:  # every user at `ctx`: the per-user attention loop runs batched
        lens[:] = ctx
    for b, n in enumerate(lens):
        alloc.reserve(b, int(n))
    slots = alloc.slot_mapping(range(batch), [int(n) - 1 for n in lens])
    kc = rng.standard_normal(layout.cache_shape(cfg), dtype=np.float32).astype(BF16)
    vc = rng.standard_normal(layout.cache_shape(cfg), dtype=np.float32).astype(BF16)
    hidden = weights.embed(rng.integers(0, cfg.vocab_size, size=batch))
    H, PV = cfg.hidden_size, weights.padded_vocab
    outs = [
        np.zeros((batch, H), BF16),
        np.zeros((batch, H), BF16),
        np.zeros((batch, PV), np.float32),
    ]
    args = decode_args(weights, hidden, lens, alloc.block_table.copy(), slots, kc, vc, *outs)
    return prog, args


def _check_qwen3(prog, args):
    # Only the fused K-loops' FP32 summation order differs (each product within the matmul
    # bound); a BF16 result may then round to the neighbouring value: within 2 BF16 ulps of
    # the largest magnitude of each output (rtol 2**-7), FP32 logits far inside that.
    report = compare_fast(prog, "qwen3_decode_all", args, exact=False, rtol=2.0**-7)
    assert report.ok, str(report)
    report = compare_fast(prog, "qwen3_decode_all", args, exact=False, rtol=2.0**-7, strict=True)
    assert report.ok, str(report)
    # strict mode takes the same shortcuts: strict and default fast runs agree bit for bit
    fn = "qwen3_decode_all"
    copies = [[np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
              for _ in range(2)]  # fmt: skip
    default = interpreter.execute(prog, fn, copies[0])
    strict = interpreter.execute(prog, fn, copies[1], strict=True)
    for name, arr in default.arrays.items():
        assert arr.tobytes() == strict.arrays[name].tobytes(), name


def test_qwen3_tiny_step():
    from pldsl.interpreter import batched

    before = batched.STATS.get("batched", 0)
    _check_qwen3(*_qwen3_step("tiny", None, batch=3, ctx=40, block=16))
    assert batched.STATS.get("batched", 0) > before  # its attention loops ran batched


def _spy_batched_loops(monkeypatch) -> list[str]:
    """The loop variables of the batched runs that committed, in order."""
    from pldsl.interpreter import batched

    loops: list[str] = []
    run = batched.BatchedLoop.run

    def spy(self, env, lo, hi, st, inner=None):
        run(self, env, lo, hi, st, inner)  # recorded only when it committed
        loops.append(self.loop.var.name)

    monkeypatch.setattr(batched.BatchedLoop, "run", spy)
    return loops


def test_qwen3_tiny_step_batched_over_users(monkeypatch):
    """Every user at one context length: the loop over users (KV-cache rows from
    slot_mapping, pages from block_table, read back in the same iteration) runs batched,
    checked at run time, and agrees with the plain path."""
    loops = _spy_batched_loops(monkeypatch)
    _check_qwen3(*_qwen3_step("tiny", None, batch=3, ctx=40, block=16, same_context=True))
    assert "b" in loops


def test_qwen3_tiny_step_batched_over_users_of_different_lengths(monkeypatch):
    """Users at different context lengths (1-3 KV blocks each): the loop over users runs
    batched with its block loops masked per user, and agrees with the plain path."""
    loops = _spy_batched_loops(monkeypatch)
    prog, args = _qwen3_step("tiny", None, batch=4, ctx=48, block=16)
    lens = args[[p.name for p in prog.functions["qwen3_decode_all"].params].index("seq_lens")]
    assert len({(int(n) + 15) // 16 for n in lens}) > 1  # the block counts differ
    _check_qwen3(prog, args)
    assert "b" in loops


@pytest.mark.slow
def test_qwen3_06b_width_step_batched_over_users(monkeypatch):
    loops = _spy_batched_loops(monkeypatch)  # 8 users: as many as KV heads, so it batches
    _check_qwen3(*_qwen3_step("qwen3-0.6b", 1, batch=8, ctx=128, block=64, same_context=True))
    assert "b" in loops


@pytest.mark.slow
def test_qwen3_06b_width_step():
    _check_qwen3(*_qwen3_step("qwen3-0.6b", 1, batch=2, ctx=64, block=64))


# ------------------------------------------------------------------ cached FP32 weights

MATMUL = """
    @pl.program
    class MM:
        @pl.function
        def main(self, x: pl.Tensor[[4, 256], pl.BF16], w: pl.Tensor[[256, 256], pl.BF16], out: pl.Out[pl.Tensor[[4, 256], pl.FP32]]) -> pl.Tensor[[4, 256], pl.FP32]:
            for j in pl.range(0, 256, 64):
                wj = pl.slice(w, [256, 64], [0, j])
                out = pl.assemble(out, pl.matmul(x, wj, out_dtype=pl.FP32), [0, j])
            return out
"""


def test_cached_fp32_weights_are_revalidated_between_runs(capture):
    from pldsl.execution import f32cache

    prog = capture(MATMUL)
    rng = np.random.default_rng(3)
    bf16 = numerics.storage_dtype("BF16")
    x = rng.standard_normal((4, 256)).astype(np.float32).astype(bf16)
    w = rng.standard_normal((256, 256)).astype(np.float32).astype(bf16)
    w[5, 7] = np.float32("nan")  # payloads survive the cached widening as the plain one
    for _ in range(2):
        fast = interpreter.run(prog, "main", x, w, None)
        plain = interpreter.run(prog, "main", x, w, None, fast=False)
        assert fast.tobytes() == plain.tobytes()
    assert id(w) in f32cache._CACHE  # the weight went through the cache
    w[:, 70] = w[:, 70] * bf16.type(2)  # the caller writes the array between runs
    fast = interpreter.run(prog, "main", x, w, None)
    plain = interpreter.run(prog, "main", x, w, None, fast=False)
    assert fast.tobytes() == plain.tobytes()


def test_the_ir_is_compiled_once_per_program_and_options(capture):
    import gc
    import weakref

    from pldsl.interpreter import compiler

    prog = capture(ROW_SCALE_SRC)
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    first = interpreter.run(prog, "main", x, None, 2.0)
    machines = dict(compiler._MACHINES[prog])
    second = interpreter.run(prog, "main", x, None, 2.0)
    assert second.tobytes() == first.tobytes()
    assert compiler._MACHINES[prog] == machines  # the same machine (closures) served both runs
    interpreter.run(prog, "main", x, None, 2.0, strict=True)
    assert len(compiler._MACHINES[prog]) == 2  # other options, another machine
    ref = weakref.ref(prog)
    del prog
    gc.collect()
    assert ref() is None  # the cache does not keep a program alive


ROW_SCALE_SRC = """
    N = pl.dynamic("N")
    @pl.program
    class RowScale:
        @pl.function
        def main(self, x: pl.Tensor[[N, 8], pl.FP32], out: pl.Out[pl.Tensor[[N, 8], pl.FP32]], s: pl.Scalar[pl.FP32]) -> pl.Tensor[[N, 8], pl.FP32]:
            for i in pl.range(0, N, 1):
                out = pl.assemble(out, pl.mul(pl.slice(x, [1, 8], [i, 0]), s), [i, 0])
            return out
"""
