"""Capture, check, print and parse times of the Qwen3 decode program (best of N runs).

    python benchmarks/static_tools.py [--config qwen3-14b] [--repeat 5]

Issue targets: `pl.check` of the Qwen3 decode program under one second; the text format
parsing thousands of lines in well under a second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pldsl.kernels.qwen3.config import preset, preset_names  # noqa: E402
from pldsl.kernels.qwen3.program import build_program  # noqa: E402

import pldsl as pl  # noqa: E402


def best_of(repeat: int, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=preset_names(), default="qwen3-14b")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cfg = preset(args.config)

    def build():
        return build_program(
            cfg,
            max_seq=4096,
            block_size=256,
            num_pages=256,
            max_blocks_per_seq=16,
            padded_vocab=cfg.padded_vocab(),
        )

    t_capture, program = best_of(args.repeat, build)
    t_check, diags = best_of(args.repeat, lambda: pl.check(program))
    t_print, text = best_of(args.repeat, lambda: pl.print_ir(program))
    pl.parse_ir(text)  # build the parser once
    t_parse, parsed = best_of(args.repeat, lambda: pl.parse_ir(text))
    assert pl.structural_equal(parsed, program)
    lines = text.count("\n")
    print(f"{args.config}: {lines} IR lines, {len(diags)} finding(s)")
    for name, t in (
        ("capture", t_capture),
        ("check", t_check),
        ("print", t_print),
        ("parse", t_parse),
    ):
        print(f"  {name:8s} {1000 * t:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
