"""Qwen3 prompt processing: ``qwen3_prefill_all`` against the token-by-token decode path and a
hand-written NumPy prefill, on the C backend and the interpreter.

    python benchmarks/prefill.py                       # 1x512 and 16x128 prompts, 0.6B widths
    python benchmarks/prefill.py --cases 16x128 --repeat 5
    python benchmarks/prefill.py --engines c-prefill,numpy-prefill

Side by side in one process, same inputs: Qwen3-0.6B widths (hidden 1024, 16/8 heads of 128,
intermediate 3072) with 2 layers and a 4096-token vocabulary (the decode path computes logits at
every step; the prefill computes none), random weights, KV pages of 64 tokens.  Engines:

* ``c-prefill`` / ``interp-prefill``: one ``qwen3_prefill_all`` call over every prompt
  position (pldsl.backends.c / the NumPy interpreter);
* ``numpy-prefill``: kernels/qwen3/golden.py ``prefill``, the hand-written NumPy prefill, with
  FP32 copies of the weights made once beforehand;
* ``c-decode`` / ``interp-decode``: the token-by-token path, one ``qwen3_decode_all`` step per
  prompt position (all sequences of the batch in each step).

Each engine runs in its own block: ``--warmup`` discarded runs (default 1), then ``--repeat``
runs (default 3); the token-by-token paths run ``--decode-repeat`` times (default 1) without
warm-up: one run is hundreds of decode steps, minutes on this machine.  A line gives the median time, prompt tokens per
second, and ``oth``, the CPU other processes used meanwhile, in cores (the machine is shared, so
the numbers move with its load; compare lines of one run).

BLAS runs single-threaded by default (``--blas-threads``): the interpreter issues thousands of
small tile matmuls, and with OpenBLAS's default threads on a shared, oversubscribed machine each
call waits for its worker threads -- measured 13x slower for the interpreter's prefill here (a
1x128, 1-layer prefill: 40.9 s with the default threads, 3.0 s with one).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import sys
import time
from pathlib import Path


def _blas_threads(argv: list[str]) -> str:
    """``--blas-threads N`` (default 1), applied before NumPy loads OpenBLAS."""
    for i, a in enumerate(argv):
        if a.startswith("--blas-threads"):
            return a.split("=", 1)[1] if "=" in a else argv[i + 1]
    return "1"


if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _blas_threads(sys.argv[1:])

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pldsl.kernels.qwen3 import golden  # noqa: E402
from pldsl.kernels.qwen3.config import preset  # noqa: E402
from pldsl.kernels.qwen3.program import build_program, decode_args, prefill_args  # noqa: E402
from pldsl.kernels.qwen3.weights import BF16, KVLayout, PageAllocator, random_weights  # noqa: E402

ENGINES = ("c-prefill", "interp-prefill", "numpy-prefill", "c-decode", "interp-decode")
CASES = {"1x512": (1, 512), "16x128": (16, 128)}


def _busy_other() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, of this process) from /proc/stat and os.times."""
    with open("/proc/stat") as f:
        vals = [float(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    t = os.times()
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def timed(fn) -> tuple[float, float]:
    """(wall seconds of fn(), cores used by other processes meanwhile)."""
    gc.collect()
    b0, s0 = _busy_other()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    b1, s1 = _busy_other()
    return dt, max(0.0, ((b1 - b0) - (s1 - s0)) / dt)


@dataclasses.dataclass
class Case:
    """Prompts of one shape with their pages, slots and prefill inputs."""

    batch: int
    length: int
    cfg: object
    weights: object
    block: int

    def __post_init__(self) -> None:
        U, S, cfg, w = self.batch, self.length, self.cfg, self.weights
        self.mb = -(-S // self.block)
        self.layout = KVLayout(num_pages=U * self.mb, block_size=self.block)
        alloc = PageAllocator(self.layout, U, self.mb)
        rng = np.random.default_rng(0)
        self.tokens = rng.integers(0, cfg.vocab_size, size=(U, S))
        self.hidden = np.stack([w.embed(t) for t in self.tokens])
        self.seq_lens = np.full(U, S, np.int32)
        for b in range(U):
            alloc.reserve(b, S)
        self.slots = np.concatenate([alloc.slot_mapping([b] * S, range(S)) for b in range(U)])
        self.alloc = alloc
        self.table = alloc.block_table.copy()
        shape = self.layout.cache_shape(cfg)
        self.k_cache, self.v_cache = np.zeros(shape, BF16), np.zeros(shape, BF16)
        self.program = build_program(
            cfg, max_seq=self.mb * self.block, block_size=self.block,
            num_pages=self.layout.num_pages, max_blocks_per_seq=self.mb,
            padded_vocab=w.padded_vocab,
        )  # fmt: skip

    def prefill_args(self) -> list:
        out = np.empty(self.hidden.shape, BF16)
        return prefill_args(
            self.weights, self.hidden, self.seq_lens, self.table, self.slots,
            self.k_cache, self.v_cache, out,
        )  # fmt: skip

    def decode_steps(self, run) -> None:
        """The token-by-token path: position t of every sequence in step t."""
        U, H, PV = self.batch, self.cfg.hidden_size, self.weights.padded_vocab
        outs = np.empty((U, H), BF16), np.empty((U, H), BF16), np.empty((U, PV), np.float32)
        rows = range(U)
        for t in range(self.length):
            args = decode_args(
                self.weights, self.hidden[:, t], np.full(U, t + 1, np.int32), self.table,
                self.alloc.slot_mapping(rows, [t] * U), self.k_cache, self.v_cache, *outs,
            )  # fmt: skip
            run("qwen3_decode_all", *args)


def engines(case: Case, wanted: list[str]) -> dict:
    from pldsl import interpreter
    from pldsl.backends import c

    fns = {}
    if {"c-prefill", "c-decode"} & set(wanted):
        t0 = time.perf_counter()
        compiled = c.compile(case.program)
        print(f"   C compile (or cache hit): {time.perf_counter() - t0:.1f} s")
    if "c-prefill" in wanted:
        args = case.prefill_args()
        fns["c-prefill"] = lambda: compiled.run("qwen3_prefill_all", *args)
    if "interp-prefill" in wanted:
        args_i = case.prefill_args()
        fns["interp-prefill"] = lambda: interpreter.run(case.program, "qwen3_prefill_all", *args_i)
    if "numpy-prefill" in wanted:
        f32 = golden._F32Weights.of(case.weights)  # FP32 weight copies, made once
        kc, vc = case.k_cache.copy(), case.v_cache.copy()
        fns["numpy-prefill"] = lambda: golden.prefill(
            case.weights, case.cfg, case.hidden, case.seq_lens, case.table, case.slots, kc, vc,
            block_size=case.block, max_blocks_per_seq=case.mb, _f32=f32,
        )  # fmt: skip
    if "c-decode" in wanted:
        fns["c-decode"] = lambda: case.decode_steps(compiled.run)
    if "interp-decode" in wanted:
        fns["interp-decode"] = lambda: case.decode_steps(
            lambda fn, *a: interpreter.run(case.program, fn, *a)
        )
    return fns


def bench(
    name: str,
    layers: int,
    vocab: int,
    block: int,
    repeat: int,
    warmup: int,
    decode_repeat: int,
    wanted: list[str],
):
    U, S = CASES[name]
    cfg = dataclasses.replace(preset("qwen3-0.6b"), num_hidden_layers=layers, vocab_size=vocab)
    weights = random_weights(cfg, seed=0, max_seq=-(-S // block) * block)
    case = Case(U, S, cfg, weights, block)
    tokens = U * S
    print(f"\n== {name}: {U} prompt(s) x {S} tokens = {tokens}; hidden {cfg.hidden_size}, "
          f"intermediate {cfg.intermediate_size}, heads {cfg.num_attention_heads}/"
          f"{cfg.num_key_value_heads}, layers {layers}, vocab {vocab}, KV page {block}")  # fmt: skip
    results = {}
    for eng, fn in engines(case, wanted).items():
        decode = eng.endswith("-decode")
        n = decode_repeat if decode else repeat
        for _ in range(0 if decode else warmup):
            fn()  # warm-up (the interpreter's and BLAS's first-call costs)
        runs = [timed(fn) for _ in range(n)]
        t = statistics.median(r[0] for r in runs)
        oth = statistics.mean(r[1] for r in runs)
        results[eng] = t
        times = " ".join(f"{r[0]:.3g}" for r in runs)
        print(f"   {eng:15s} {t:9.3f} s  {tokens / t:10.1f} tok/s   oth {oth:.2f}   [{times}]")
    if "c-prefill" in results:
        base = results["c-prefill"]
        print(
            "   time / c-prefill: " + ", ".join(f"{k} {v / base:.2f}" for k, v in results.items())
        )
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="1x512,16x128", help=f"comma list of {sorted(CASES)}")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma list of {ENGINES}")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="discarded runs before timing")
    ap.add_argument("--decode-repeat", type=int, default=1, help="runs of the token-by-token paths")
    ap.add_argument(
        "--blas-threads", default="1", help="OpenBLAS/OpenMP threads (set before NumPy loads)"
    )
    args = ap.parse_args(argv)
    wanted = [e for e in args.engines.split(",") if e]
    bad = [e for e in wanted if e not in ENGINES] + [
        c for c in args.cases.split(",") if c not in CASES
    ]
    if bad:
        ap.error(f"unknown engine/case {bad}")
    print(
        f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, "
        f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
    )
    for name in args.cases.split(","):
        bench(
            name, args.layers, args.vocab, args.block_size, args.repeat, args.warmup,
            args.decode_repeat, wanted,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
