"""Same-process A/B of the per-user attention loop batched over users (docs/performance.md).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/user_loop_ab.py --config tiny --repeat 7
    ... --config 0.6b --repeat 5 --ragged      # users at random context lengths (masked loops)

One process, the inputs of benchmarks/decode_step.py (batch 16, context 256, KV pages of 64;
with --ragged each user's context drawn from 1..256). Three lines, runs alternating, medians:
``new`` the interpreter's fast path as it is; ``old`` the same with the loop over users
(``for b in pl.parallel(...)``) left per tile, as before it could run batched (its other loops
still batch); ``numpy`` the hand-written NumPy step with FP32 weight copies. Also says whether
``new`` and ``old`` gave bit-identical outputs and left bit-identical arguments (the KV caches
the step writes in place).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from decode_step import setup  # noqa: E402
from pldsl.interpreter import compiler  # noqa: E402
from pldsl.kernels.qwen3 import golden  # noqa: E402
from pldsl.kernels.qwen3.program import decode_args  # noqa: E402
from pldsl.kernels.qwen3.weights import KVLayout, PageAllocator  # noqa: E402

from pldsl import interpreter  # noqa: E402

BATCH, CTX, BLOCK = 16, 256, 64


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", choices=["tiny", "0.6b", "14b"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ragged", action="store_true", help="users at random context lengths")
    args = ap.parse_args(argv)
    cfg, w, prog, table, slots, lens, kc, vc, hidden, mb, _ = setup(args.config, BATCH, CTX, BLOCK)
    if args.ragged:
        rng = np.random.default_rng(5)
        alloc = PageAllocator(KVLayout(num_pages=BATCH * mb, block_size=BLOCK), BATCH, mb)
        lens = rng.integers(1, CTX + 1, size=BATCH).astype(np.int32)
        for b, n in enumerate(lens):
            alloc.reserve(b, int(n))
        slots = alloc.slot_mapping(range(BATCH), [int(n) - 1 for n in lens])
        table = alloc.block_table.copy()
    print(f"{args.config}: context lengths {lens.tolist()}")
    bf16 = kc.dtype

    def step_args():
        outs = [np.zeros((BATCH, cfg.hidden_size), bf16), np.zeros((BATCH, cfg.hidden_size), bf16),
                np.zeros((BATCH, w.padded_vocab), np.float32)]  # fmt: skip
        return decode_args(w, hidden, lens, table, slots, kc.copy(), vc.copy(), *outs)

    plan = compiler._parallel_plan

    def users_per_tile(fn, loop):
        if loop.var.name == "b" and loop.kind == "parallel":
            return None
        return plan(fn, loop)

    machines = {}  # one compiled program per variant, swapped in for its runs
    try:
        for name, rule in (("new", plan), ("old", users_per_tile)):
            compiler._MACHINES.clear()
            compiler._parallel_plan = rule
            interpreter.run(prog, "qwen3_decode_all", *step_args())
            machines[name] = compiler._MACHINES[prog]
    finally:
        compiler._parallel_plan = plan
        compiler._MACHINES.clear()
    f32 = golden._F32Weights.of(w)

    def np_step():
        return golden.decode_step(w, cfg, hidden, lens, table, slots, kc.copy(), vc.copy(),
                                  block_size=BLOCK, max_blocks_per_seq=mb, _f32=f32)  # fmt: skip

    np_step()
    times: dict[str, list[float]] = {"new": [], "old": [], "numpy": []}
    outs = {}
    for _ in range(args.repeat):
        for name in times:
            if name == "numpy":
                t0 = time.perf_counter()
                np_step()
            else:
                compiler._MACHINES[prog] = machines[name]
                a = step_args()
                t0 = time.perf_counter()
                result = interpreter.run(prog, "qwen3_decode_all", *a)
            times[name].append(time.perf_counter() - t0)
            if name != "numpy":  # the results and every argument after the run (KV caches too)
                outs[name] = [*(result if isinstance(result, (tuple, list)) else (result,)), *a]
    compiler._MACHINES.clear()
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        runs = " ".join(f"{t * 1e3:.0f}" for t in v)
        print(f"  {k:6s} {med[k] * 1e3:8.1f} ms  {med[k] / med['numpy']:5.2f}x numpy  ({runs})")
    same = all(np.asarray(x).tobytes() == np.asarray(y).tobytes()
               for x, y in zip(outs["new"], outs["old"]))  # fmt: skip
    print(
        f"  new is {med['old'] / med['new']:.2f}x as fast as old; outputs and in-place "
        f"arguments (KV caches) bit-identical: {same}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
