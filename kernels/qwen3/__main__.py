"""`python -m pldsl.kernels.qwen3`: logits and greedy generation with the DSL decode kernel.

python -m pldsl.kernels.qwen3 logits --checkpoint DIR --token-ids "1,2,3;4,5" --out logits.npy
python -m pldsl.kernels.qwen3 generate --random tiny --prompt-ids "1,2,3;4" --max-new-tokens 8
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .config import preset, preset_names
from .session import BACKENDS, BackendUnavailable, DecodeSession, RunOptions, progress
from .weights import load_checkpoint, random_weights

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    pass


def parse_token_ids(text: str, what: str) -> list[list[int]]:
    """ "1,2,3;4,5" -> [[1, 2, 3], [4, 5]] (sequences separated by ';')."""
    sequences = []
    for i, part in enumerate(text.split(";")):
        try:
            ids = [int(t) for t in part.replace(" ", "").split(",") if t != ""]
        except ValueError:
            raise UsageError(
                f"{what}: sequence {i} is not a comma-separated list of integers: {part!r}"
            ) from None
        if not ids:
            raise UsageError(f"{what}: sequence {i} is empty")
        if min(ids) < 0:
            raise UsageError(f"{what}: negative token id in sequence {i}")
        sequences.append(ids)
    return sequences


def load_model(args: argparse.Namespace, max_len: int):
    if args.checkpoint:
        return load_checkpoint(args.checkpoint, max_seq=max_len)
    cfg = preset(args.random)
    return cfg, random_weights(cfg, seed=args.seed, max_seq=max_len)


def check_ids(sequences: list[list[int]], vocab: int, what: str) -> None:
    for i, seq in enumerate(sequences):
        bad = [t for t in seq if t >= vocab]
        if bad:
            raise UsageError(
                f"{what}: token id {bad[0]} in sequence {i} is outside the vocabulary ({vocab})"
            )


def cmd_logits(args: argparse.Namespace) -> int:
    sequences = parse_token_ids(args.token_ids, "--token-ids")
    max_len = max(len(s) for s in sequences)
    cfg, weights = load_model(args, max_len)
    check_ids(sequences, cfg.vocab_size, "--token-ids")
    session = DecodeSession(cfg, weights, len(sequences), max_len, args.block_size, _options(args))
    if not args.token_by_token:
        result = session.prompt_logits(sequences)
    else:
        result = np.full((len(sequences), max_len, cfg.vocab_size), np.nan, dtype=np.float32)
        show = progress(max_len, "logits")
        for t, rows, logits in session.prefill_by_decode(sequences, lambda b: len(sequences[b])):
            result[rows, t, :] = np.asarray(logits)[:, : cfg.vocab_size]
            show(t + 1)
    np.save(args.out, result)
    print(f"saved logits {result.shape} to {args.out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    prompts = parse_token_ids(args.prompt_ids, "--prompt-ids")
    if args.max_new_tokens < 1:
        raise UsageError("--max-new-tokens must be at least 1")
    max_len = max(len(p) for p in prompts) + args.max_new_tokens
    cfg, weights = load_model(args, max_len)
    check_ids(prompts, cfg.vocab_size, "--prompt-ids")
    session = DecodeSession(
        cfg, weights, len(prompts), max_len, args.block_size, _options(args), args.max_new_tokens
    )
    show = progress(args.max_new_tokens, "generate")
    tokens = session.generate(
        prompts,
        on_step=lambda step, logits, ctx: show(step + 1),
        eos_id=args.eos_id,
        token_by_token=args.token_by_token,
    )
    if args.json:
        print(json.dumps({"prompts": prompts, "generated": tokens}))
    else:
        for i, seq in enumerate(tokens):
            print(f"sequence {i}: {' '.join(map(str, seq))}")
    return 0


def _options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        backend=args.backend, precision=args.precision, strict=args.strict, trace=args.trace
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pldsl.kernels.qwen3", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("logits", "generate"):
        p = sub.add_parser(name)
        model = p.add_mutually_exclusive_group(required=True)
        model.add_argument("--checkpoint", metavar="DIR", help="Hugging Face Qwen3 directory")
        model.add_argument("--random", choices=preset_names(), help="seeded random weights")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
        p.add_argument("--backend", choices=BACKENDS, default="interpreter")
        p.add_argument("--strict", action="store_true", help="interpreter strict mode")
        p.add_argument("--trace", metavar="FILE", help="Chrome trace of the (last) run")
        p.add_argument("--block-size", type=int, default=16, help="KV page size")
        p.add_argument(
            "--token-by-token",
            action="store_true",
            help="feed prompts one decode step per position instead of one prefill",
        )
        if name == "logits":
            p.add_argument("--token-ids", required=True, help='e.g. "1,2,3;4,5"')
            p.add_argument("--out", required=True, metavar="FILE.npy")
        else:
            p.add_argument("--prompt-ids", required=True, help='e.g. "1,2,3;4,5"')
            p.add_argument("--max-new-tokens", type=int, default=8)
            p.add_argument("--eos-id", type=int, default=None)
            p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from pldsl.diagnostics import PldslError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_INPUT if exc.code else 0
    try:
        return cmd_logits(args) if args.command == "logits" else cmd_generate(args)
    # ValueError includes ConfigError, CheckpointError and TilingError.
    except (UsageError, ValueError, OSError, BackendUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
