"""Baseline timings of the NumPy interpreter (plain path, no fast path yet).

    python benchmarks/interpreter_baseline.py [--repeat 5] [--skip-qwen3]

1. `tiled_kernel`: a small tiled kernel (RMSNorm of 16-row tiles, then a K-chunked BF16
   matmul with matmul_acc, FP32 out, a tail tile), timed in default and strict mode, with the
   per-op overhead (wall time / executed ops) that a fast path would remove.
2. `qwen3_decode_step`: one decode step of the Qwen3 `tiny` config (kernels/qwen3/program.py),
   batch 17, BF16 -- skipped with a note if that kernel is not importable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
import time
from pathlib import Path

import ml_dtypes
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pldsl as pl  # noqa: E402
from pldsl import interpreter  # noqa: E402

BF16 = np.dtype(ml_dtypes.bfloat16)

TILED_SRC = textwrap.dedent("""\
    import pldsl as pl

    M = pl.dynamic("M")
    K = 512
    N = 256


    @pl.program
    class Tiled:
        @pl.function
        def norm_matmul(self, x: pl.Tensor[[M, K], pl.BF16], gamma: pl.Tensor[[1, K], pl.FP32], w: pl.Tensor[[K, N], pl.BF16], out: pl.Out[pl.Tensor[[M, N], pl.FP32]]) -> pl.Tensor[[M, N], pl.FP32]:
            m = pl.tensor.dim(x, 0)
            for r0 in pl.range(0, m, 16):
                with pl.at(level=pl.Level.CORE_GROUP):
                    valid = pl.min(16, m - r0)
                    t = pl.slice(x, [16, K], [r0, 0], valid_shape=[valid, K])
                    f = pl.fillpad(pl.cast(t, pl.FP32))
                    ss = pl.row_sum(pl.mul(f, f))
                    inv = pl.rsqrt(pl.add(pl.mul(ss, 1.0 / K), 1e-6))
                    h = pl.cast(pl.col_expand_mul(pl.row_expand_mul(f, inv), gamma), pl.BF16)
                    acc = pl.matmul(pl.slice(h, [16, 64], [0, 0]), pl.slice(w, [64, N], [0, 0]), out_dtype=pl.FP32)
                    for k0 in pl.range(64, K, 64):
                        a = pl.slice(h, [16, 64], [0, k0])
                        b = pl.slice(w, [64, N], [k0, 0])
                        acc = pl.matmul_acc(acc, a, b)
                    res = pl.slice(acc, [16, N], [0, 0], valid_shape=[valid, N])
                    out = pl.assemble(out, res, [r0, 0])
            return out
""")


def _time(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def tiled_kernel(repeat: int = 5, rows: int = 200) -> dict:
    """Time the tiled RMSNorm + matmul kernel on `rows` rows (13 tiles, the last partial)."""
    prog = pl.capture_source(TILED_SRC, "<benchmark:tiled>")[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 512), dtype=np.float32).astype(BF16)
    gamma = rng.uniform(0.5, 1.5, (1, 512)).astype(np.float32)
    w = (rng.standard_normal((512, 256), dtype=np.float32) * 0.05).astype(BF16)
    out = np.zeros((rows, 256), np.float32)
    tr = interpreter.Trace()
    interpreter.run(prog, "norm_matmul", x, gamma, w, out, trace=tr)
    n_ops, op_ns, moved, flops = tr.totals()
    results = {"ops": n_ops, "bytes": moved, "flops": flops, "op_time_s": op_ns / 1e9}
    for mode, strict in (("default", False), ("strict", True)):
        best, median = _time(
            lambda s=strict: interpreter.run(prog, "norm_matmul", x, gamma, w, out, strict=s),
            repeat,
        )
        results[f"{mode}_best_s"], results[f"{mode}_median_s"] = best, median
    # A NumPy reference of the same math, to show the interpreter's overhead.
    f = x.astype(np.float32)
    inv = 1 / np.sqrt((f * f).sum(1, keepdims=True) / 512 + 1e-6)
    h = (f * inv * gamma).astype(BF16).astype(np.float32)
    best_np, _ = _time(lambda: h @ w.astype(np.float32), repeat)
    results["numpy_matmul_only_s"] = best_np
    return results


def qwen3_decode_step(repeat: int = 3, batch: int = 17) -> dict | None:
    """One decode step of the tiny Qwen3 config (None if kernels/qwen3/program.py is absent)."""
    try:
        from pldsl.kernels.qwen3.config import preset
        from pldsl.kernels.qwen3.program import DECODE_OUTPUT_NAMES, build_program, decode_args
        from pldsl.kernels.qwen3.weights import KVLayout, PageAllocator, random_weights
    except ImportError as exc:  # the decode kernel is written elsewhere; time it when present
        print(f"qwen3 decode step: skipped ({exc})")
        return None
    block, max_blocks = 16, 4
    cfg = preset("tiny")
    weights = random_weights(cfg, seed=1234, max_seq=block * max_blocks)
    num_pages = batch * max_blocks + 3
    prog = build_program(
        cfg,
        max_seq=block * max_blocks,
        block_size=block,
        num_pages=num_pages,
        max_blocks_per_seq=max_blocks,
        padded_vocab=cfg.padded_vocab(64),
    )
    rng = np.random.default_rng(0)
    layout = KVLayout(num_pages=num_pages, block_size=block)
    alloc = PageAllocator(layout, batch, max_blocks)
    seq_lens = rng.integers(1, block * max_blocks, size=batch).astype(np.int32)
    for b, n in enumerate(seq_lens):
        alloc.reserve(b, int(n))
    slot_mapping = alloc.slot_mapping(range(batch), [int(n) - 1 for n in seq_lens])
    shape = layout.cache_shape(cfg)
    k_cache = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
    v_cache = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
    hidden = weights.embed(rng.integers(0, cfg.vocab_size, size=batch))
    H, PV = cfg.hidden_size, weights.padded_vocab

    def step(strict: bool = False, trace=None):
        args = decode_args(
            weights,
            hidden,
            seq_lens,
            alloc.block_table.copy(),
            slot_mapping,
            k_cache.copy(),
            v_cache.copy(),
            np.zeros((batch, H), BF16),
            np.zeros((batch, H), BF16),
            np.zeros((batch, PV), np.float32),
        )
        return interpreter.run(prog, "qwen3_decode_all", *args, strict=strict, trace=trace)

    tr = interpreter.Trace()
    outs = step(trace=tr)
    assert len(outs) == len(DECODE_OUTPUT_NAMES)
    n_ops, op_ns, moved, flops = tr.totals()
    best, median = _time(step, repeat)
    best_strict, _ = _time(lambda: step(strict=True), 1)
    return {
        "batch": batch,
        "layers": cfg.num_hidden_layers,
        "ops": n_ops,
        "bytes": moved,
        "flops": flops,
        "default_best_s": best,
        "default_median_s": median,
        "strict_s": best_strict,
        "top_lines": tr.format_summary(top=5),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-qwen3", action="store_true")
    args = ap.parse_args(argv)
    r = tiled_kernel(args.repeat)
    print("tiled RMSNorm + K-chunked matmul, [200, 512] x [512, 256], 16-row tiles:")
    print(
        f"  executed ops         {r['ops']}  ({r['bytes'] / 2**20:.1f} MiB, "
        f"{r['flops'] / 1e6:.1f} MFLOP)"
    )
    print(
        f"  default mode         {r['default_best_s'] * 1e3:8.2f} ms best, "
        f"{r['default_median_s'] * 1e3:8.2f} ms median"
    )
    print(f"  strict mode          {r['strict_best_s'] * 1e3:8.2f} ms best")
    print(f"  per executed op      {r['default_best_s'] / r['ops'] * 1e6:8.1f} us")
    print(f"  time inside kernels  {r['op_time_s'] * 1e3:8.2f} ms (traced run)")
    print(f"  NumPy matmul alone   {r['numpy_matmul_only_s'] * 1e3:8.2f} ms")
    if not args.skip_qwen3:
        q = qwen3_decode_step(max(1, args.repeat // 2))
        if q is not None:
            print(f"qwen3 tiny decode step, batch {q['batch']}, {q['layers']} layers:")
            print(
                f"  executed ops         {q['ops']}  ({q['bytes'] / 2**20:.1f} MiB, "
                f"{q['flops'] / 1e6:.1f} MFLOP)"
            )
            print(
                f"  default mode         {q['default_best_s'] * 1e3:8.2f} ms best, "
                f"{q['default_median_s'] * 1e3:8.2f} ms median"
            )
            print(f"  strict mode          {q['strict_s'] * 1e3:8.2f} ms")
            print(f"  per executed op      {q['default_best_s'] / q['ops'] * 1e6:8.1f} us")
            print(textwrap.indent(q["top_lines"], "  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
