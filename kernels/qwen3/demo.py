"""`pldsl demo`: the Qwen3 fused decode on a small random model, checked and interpreted.

Captures the DSL program, runs the static checks, generates a few tokens for a batch of 17
(two batch tiles) through `host_orch`, and compares every step's logits with the plain-NumPy
golden (`kernels/qwen3/golden.py`, which never imports pldsl).

Exit status: 0 result OK, 1 MISMATCH (or a runtime fault of the kernel), 2 refused before any
work: a bad argument (batch or new tokens below 1, a negative seed) or a run whose buffers
would not fit in the available memory (the estimate is printed).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import pldsl as pl

from . import golden
from .__main__ import UsageError, check_memory, check_seed, estimate_bytes
from .config import preset
from .session import BACKENDS, DecodeSession, RunOptions
from .weights import random_weights

MAX_PROMPT = 18
"""Prompts are 1..MAX_PROMPT tokens long."""

LOGIT_TOL = 5e-3
"""`result OK` needs max |logit error| <= LOGIT_TOL * max |logit| (docs/qwen3.md, tolerances)."""


def run_demo(
    batch: int = 17,
    new_tokens: int = 4,
    preset_name: str = "tiny",
    backend: str = "interpreter",
    seed: int = 0,
) -> dict:
    """Random prompts of 1-18 tokens for `batch` sequences; every prompt token but the last is
    decoded one position per step, then `host_orch` generates `new_tokens` tokens per sequence.
    Every step's logits are compared with the golden's for the same inputs."""
    t0 = time.perf_counter()
    cfg = preset(preset_name)
    rng = np.random.default_rng(seed)
    prompts = [
        rng.integers(0, cfg.vocab_size, size=int(n)).tolist()
        for n in rng.integers(1, MAX_PROMPT + 1, size=batch)
    ]
    max_len = max(len(p) for p in prompts) + new_tokens
    weights = random_weights(cfg, seed=seed, max_seq=max_len)
    block = 16  # the smallest KV page the tiling allows; long prompts cross it
    session = DecodeSession(
        cfg, weights, batch, max_len, block, RunOptions(backend=backend), new_tokens
    )
    t_capture = time.perf_counter() - t0
    diagnostics = pl.check(session.program)
    t_check = time.perf_counter() - t0 - t_capture

    gk, gv = np.zeros_like(session.k_cache), np.zeros_like(session.v_cache)
    kernel_logits: list[np.ndarray] = []
    golden_logits: list[np.ndarray] = []

    def compare(logits, hidden, seq_lens, block_table, slots):
        kernel_logits.append(np.array(logits))
        golden_logits.append(
            golden.decode_step(
                weights, cfg, hidden, seq_lens, block_table, slots, gk, gv,
                block_size=block, max_blocks_per_seq=session.max_blocks,
            )[2]
        )  # fmt: skip

    # Prompt tokens but the last, one position per step (ragged rows drop out).
    for t, rows, logits in session.prefill_by_decode(prompts, lambda b: len(prompts[b]) - 1):
        tokens = [prompts[b][t] for b in rows]
        compare(logits, *session.step_inputs(rows, [t] * len(rows), tokens))

    def on_step(step, logits, ctx):
        compare(logits, ctx["hidden"], ctx["seq_lens"], ctx["block_table"], ctx["slot_mapping"])

    generated = session.generate(prompts, on_step=on_step, prefill=False)
    t_run = time.perf_counter() - t0 - t_capture - t_check
    agreement = golden.compare_logits(
        np.concatenate(kernel_logits), np.concatenate(golden_logits), vocab=cfg.vocab_size
    )
    errors = sum(d.is_error for d in diagnostics)
    return {
        "config": preset_name,
        "batch": batch,
        "backend": backend,
        "errors": errors,
        "warnings": sum(d.severity == "warning" for d in diagnostics),
        "warning_rules": sorted({d.rule for d in diagnostics if d.severity == "warning"}),
        "steps": len(kernel_logits),
        "max_rel_error": agreement.rel_error,
        "bit_equal": agreement.bit_equal,
        "argmax_equal": agreement.argmax_equal,
        "ok": errors == 0 and agreement.rel_error <= LOGIT_TOL,
        "prompts": prompts,
        "tokens": generated,
        "time_capture": t_capture,
        "time_check": t_check,
        "time_run": t_run,
        "time_total": time.perf_counter() - t0,
    }


def report(r: dict) -> str:
    lines = [
        f"pldsl demo: Qwen3 qwen3_decode_all + fused RMSNorm/LM head, '{r['config']}' random model, batch {r['batch']}",
        f"  capture   {r['time_capture']:.2f} s",
        f"  checks    {r['errors']} error(s), {r['warnings']} warning(s)"
        + (f" [{', '.join(r['warning_rules'])}]" if r["warning_rules"] else "")
        + f"  ({r['time_check']:.2f} s)",
        f"  decode    {r['steps']} steps on the {r['backend']} backend in {r['time_run']:.1f} s",
        f"  golden    max |logit error| / max |logit| = {r['max_rel_error']:.2e}; "
        f"{100 * r['bit_equal']:.1f}% logits bit-equal; argmax agrees on {100 * r['argmax_equal']:.1f}% of rows",
    ]
    for b in sorted({0, 1, len(r["tokens"]) - 1} & set(range(len(r["tokens"])))):
        lines.append(f"  tokens[{b:2d}] {r['tokens'][b]}")
    lines.append(f"  total     {r['time_total']:.1f} s")
    lines.append("  result    " + ("OK" if r["ok"] else "MISMATCH"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pldsl demo", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=17, help="sequences (default 17)")
    parser.add_argument(
        "--new-tokens", type=int, default=4, help="tokens generated per sequence (default 4)"
    )
    parser.add_argument("--config", default="tiny", choices=("tiny", "tiny-gqa4"))
    parser.add_argument("--backend", default="interpreter", choices=BACKENDS)
    parser.add_argument("--seed", type=int, default=0, help="prompts and random weights")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.batch < 1 or args.new_tokens < 1:
        print("error: --batch and --new-tokens must be at least 1", file=sys.stderr)
        return 2
    try:
        check_seed(args.seed)
        # prompts of up to 18 tokens, then new_tokens; every step's logits kept twice (kernel
        # and golden), and the golden's own K/V caches
        max_len = MAX_PROMPT + args.new_tokens
        need = 2 * estimate_bytes(preset(args.config), args.batch, max_len, 16, "bf16", max_len)
        check_memory(need, f"--batch {args.batch} --new-tokens {args.new_tokens}")
        r = run_demo(args.batch, args.new_tokens, args.config, args.backend, args.seed)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except pl.PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return 1
    print(report(r))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
