"""One Qwen3 decode step (``qwen3_decode_all``) on the C backend, the interpreter and plain NumPy.

    python benchmarks/decode_step.py                      # 0.6B width, 2 layers, batch 16
    python benchmarks/decode_step.py --config 14b         # 14B width, 1 layer + LM head
    python benchmarks/decode_step.py --config all         # tiny, 0.6b and 14b (docs/performance.md)

Side by side in one process, same inputs (random weights, batch 16, every user at context 256 =
255 cached positions + the new token, KV pages of 64 tokens):

* ``c``: the DSL program compiled by pldsl.backends.c (weights BF16 in memory);
* ``interp``: the same program on the NumPy interpreter (its fast path: closures, joined K-loops,
  batched independent loops);
* ``interp-plain``: the interpreter's plain tree-walking path (``fast=False``; tiny and 0.6b);
* ``numpy-bf16w``: kernels/qwen3/golden.py ``decode_step`` with the weights BF16 in memory (the
  golden converts them to FP32 inside every step);
* ``numpy-f32w``: the same golden with FP32 copies of the weights made once beforehand (2x the
  weight memory; what shared/spec/performance.md calls the hand-written NumPy step).

Each engine runs in its own blocks (two alternating rounds, each after a pause and a discarded
warm-up); a line is the median of the clean runs (other processes below 0.15 cores), or of all
runs when fewer than 3 are clean. ``oth`` is the CPU other processes used during the runs, in
cores (the VM is shared; see performance.md section 1). Ratios are ``time / c`` and
``time / numpy-f32w`` (the issue-12 target: interpreter / hand-written NumPy). Every config also
reports the capture time (building the program) and the ``pl.check`` time.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pldsl.kernels.qwen3 import golden  # noqa: E402
from pldsl.kernels.qwen3.config import preset  # noqa: E402
from pldsl.kernels.qwen3.program import build_program, decode_args  # noqa: E402
from pldsl.kernels.qwen3.weights import BF16, KVLayout, PageAllocator, random_weights  # noqa: E402

CONFIGS = {
    "tiny": ("tiny", None),
    "0.6b": ("qwen3-0.6b", 2),
    "14b": ("qwen3-14b", 1),
}


class CpuMeter:
    """Busy CPU of other processes during a block, in cores (from /proc/stat and /proc/self)."""

    def __init__(self) -> None:
        self.oth = float("nan")

    @staticmethod
    def _total_busy() -> float:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        vals = [float(x) for x in parts]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
        return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _self_busy() -> float:
        t = os.times()
        return t.user + t.system

    def __enter__(self):
        try:
            self.b0, self.s0 = self._total_busy(), self._self_busy()
        except OSError:
            self.b0 = None
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        if self.b0 is not None and wall > 0:
            other = (self._total_busy() - self.b0) - (self._self_busy() - self.s0)
            self.oth = max(0.0, other / wall)
        return False


def run_once(fn) -> tuple[float, float]:
    gc.collect()
    with CpuMeter() as m:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
    return dt, m.oth


CLEAN = 0.15  # a run counts as clean when other processes used less than this many cores


def summarize(runs: list[tuple[float, float]]) -> tuple[float, list[float], float, int]:
    """(median over clean runs, or over all when fewer than 3 are clean; times; mean oth;
    number of clean runs)."""
    clean = [t for t, o in runs if o < CLEAN]
    use = clean if len(clean) >= 3 else [t for t, _ in runs]
    return (
        statistics.median(use),
        [t for t, _ in runs],
        statistics.mean(o for _, o in runs),
        len(clean),
    )


WAIT_QUIET = 0.0  # seconds a block may wait for other processes to go idle (--wait-quiet)


def wait_quiet(limit: float) -> None:
    """Sleep until other processes use < CLEAN cores (sampled over 0.5 s), at most `limit` s."""
    t_end = time.perf_counter() + limit
    while time.perf_counter() < t_end:
        with CpuMeter() as m:
            time.sleep(0.5)
        if m.oth < CLEAN:
            return


def blocks(fns: dict, repeat: int, rounds: int = 2) -> dict:
    """Time each engine in its own block of runs (after a pause and a discarded warm-up), in
    `rounds` alternating rounds. Blocks, not round-robin: OpenBLAS and OpenMP worker threads
    keep spinning for a while after a call and would slow whichever engine runs next."""
    runs: dict[str, list] = {k: [] for k in fns}
    per_round = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for k, fn in fns.items():
            time.sleep(0.3)
            fn()
            for _ in range(per_round):
                if WAIT_QUIET:
                    wait_quiet(WAIT_QUIET)
                runs[k].append(run_once(fn))
    return {k: summarize(v) for k, v in runs.items()}


def setup(name: str, batch: int, ctx: int, block: int):
    preset_name, layers = CONFIGS[name]
    cfg = preset(preset_name)
    if layers is not None:
        cfg = dataclasses.replace(cfg, num_hidden_layers=layers)
    max_blocks = -(-ctx // block)
    t0 = time.perf_counter()
    weights = random_weights(cfg, seed=0, max_seq=max_blocks * block)
    t_weights = time.perf_counter() - t0
    num_pages = batch * max_blocks
    t0 = time.perf_counter()
    prog = build_program(cfg, max_seq=max_blocks * block, block_size=block, num_pages=num_pages,
                         max_blocks_per_seq=max_blocks, padded_vocab=weights.padded_vocab)  # fmt: skip
    t_capture = time.perf_counter() - t0
    import pldsl as pl

    t0 = time.perf_counter()
    findings = pl.check(prog)
    t_check = time.perf_counter() - t0
    layout = KVLayout(num_pages=num_pages, block_size=block)
    alloc = PageAllocator(layout, batch, max_blocks)
    lens = np.full(batch, ctx, np.int32)
    for b in range(batch):
        alloc.reserve(b, ctx)
    slots = alloc.slot_mapping(range(batch), [ctx - 1] * batch)
    rng = np.random.default_rng(0)
    kc = rng.standard_normal(layout.cache_shape(cfg), dtype=np.float32).astype(BF16)
    vc = rng.standard_normal(layout.cache_shape(cfg), dtype=np.float32).astype(BF16)
    hidden = weights.embed(rng.integers(0, cfg.vocab_size, size=batch))
    return (
        cfg,
        weights,
        prog,
        alloc.block_table.copy(),
        slots,
        lens,
        kc,
        vc,
        hidden,
        max_blocks,
        (t_weights, t_capture, t_check, len(findings)),
    )


def bench(name: str, batch: int, ctx: int, block: int, repeat: int, skip: set[str]) -> None:
    from pldsl.backends import c

    cfg, w, prog, table, slots, lens, kc, vc, hidden, mb, times = setup(name, batch, ctx, block)
    t_w, t_capture, t_check, n_findings = times
    H, PV = cfg.hidden_size, w.padded_vocab
    print(f"\n== {name}: hidden {H}, intermediate {cfg.intermediate_size}, layers "
          f"{cfg.num_hidden_layers}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}, "
          f"vocab {PV}; batch {batch}, context {ctx}, KV page {block}  (weights {t_w:.1f} s)")  # fmt: skip
    print(f"   capture (build_program): {t_capture:.2f} s, pl.check: {t_check:.2f} s "
          f"({n_findings} findings)")  # fmt: skip

    def outs():
        return [np.zeros((batch, H), BF16), np.zeros((batch, H), BF16),
                np.zeros((batch, PV), np.float32)]  # fmt: skip

    fns, res_c = {}, None
    if "c" not in skip:
        t0 = time.perf_counter()
        compiled = c.compile(prog)
        print(f"   compile (or cache hit): {time.perf_counter() - t0:.2f} s")
        args_c = decode_args(w, hidden, lens, table, slots, kc.copy(), vc.copy(), *outs())
        res_c = compiled.run("qwen3_decode_all", *args_c)
        fns["c"] = lambda: compiled.run("qwen3_decode_all", *args_c)
    f32 = None
    if "numpy" not in skip:
        f32 = golden._F32Weights.of(w)

        def np_step(f32w):
            return golden.decode_step(w, cfg, hidden, lens, table, slots, kc.copy(), vc.copy(),
                                      block_size=block, max_blocks_per_seq=mb, _f32=f32w)  # fmt: skip

        res_np = np_step(f32)
        if res_c is not None:
            rel = float(np.max(np.abs(res_c[2] - res_np[2])) / np.max(np.abs(res_np[2])))
            eq = float(np.mean(res_c[0].astype(np.float32) == res_np[0].astype(np.float32)))
            print(f"   C vs golden: logits max|d| = {rel:.2e} of max|logit|, hidden out "
                  f"{eq * 100:.1f}% bit-equal")  # fmt: skip
        fns["numpy-f32w"] = lambda: np_step(f32)
    if "interp" not in skip:
        from pldsl import interpreter

        args_i = decode_args(w, hidden, lens, table, slots, kc.copy(), vc.copy(), *outs())
        fns["interp"] = lambda: interpreter.run(prog, "qwen3_decode_all", *args_i)
        if "plain" not in skip:
            args_p = decode_args(w, hidden, lens, table, slots, kc.copy(), vc.copy(), *outs())
            fns["interp-plain"] = lambda: interpreter.run(
                prog, "qwen3_decode_all", *args_p, fast=False
            )
    slow = {k: fns.pop(k) for k in ("interp", "interp-plain") if k in fns}
    results = blocks(fns, repeat)
    results.update(blocks(slow, 3, rounds=1))  # seconds per step: 3 runs each
    if f32 is not None and "bf16w" not in skip:
        del f32, fns["numpy-f32w"]
        gc.collect()
        results.update(blocks({"numpy-bf16w": lambda: np_step(None)}, 3, rounds=1))
    base = results["c"][0] if "c" in results else None
    ref = results["numpy-f32w"][0] if "numpy-f32w" in results else None
    print(f"   {'engine':<13} {'median':>10}  {'runs (ms)':<40} {'oth':>5} clean  "
          f"{'/ c':>6} {'/ numpy':>8}")  # fmt: skip
    for key, (med, times, oth, nclean) in results.items():
        runs = " ".join(f"{t * 1e3:.1f}" for t in times[:8])
        vs_c = f"{med / base:5.2f}x" if base else "     -"
        vs_np = f"{med / ref:7.2f}x" if ref else "       -"
        print(
            f"   {key:<13} {med * 1e3:8.1f} ms  {runs:<40} {oth:5.2f} {nclean:3d}/{len(times):<3d} "
            f"{vs_c} {vs_np}"
        )
    if ref and base:
        print(f"   => C is {ref / base:.2f}x as fast as the hand-written NumPy step (f32 weights)")
    if ref and "interp" in results:
        print(f"   => interpreter / hand-written NumPy = {results['interp'][0] / ref:.2f}x "
              f"(target: <= 3 tiny, <= 1.5 at 0.6b and 14b widths)")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", choices=[*CONFIGS, "all"], default="0.6b")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--skip", action="append", default=[],
                    choices=["interp", "plain", "numpy", "bf16w", "c"],
                    help="leave an engine out (plain: the interpreter's fast=False path)")  # fmt: skip
    ap.add_argument("--mallopt", action="store_true",
                    help="raise glibc's mmap/trim thresholds first (performance.md 2.4)")  # fmt: skip
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each timed run wait up to S seconds for other processes to idle")  # fmt: skip
    args = ap.parse_args(argv)
    global WAIT_QUIET
    WAIT_QUIET = args.wait_quiet
    if args.mallopt:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)
        libc.mallopt(-1, 1 << 30)
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(default)')}, "
          f"cpus {os.cpu_count()}, mallopt {'on' if args.mallopt else 'off'}")  # fmt: skip
    names = list(CONFIGS) if args.config == "all" else [args.config]
    skip = set(args.skip)
    for name in names:
        sk = set(skip)
        if name == "14b":
            sk.add("plain")  # the plain path takes minutes per 14B-width step
        bench(name, args.batch, args.ctx, args.block, args.repeat, sk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
