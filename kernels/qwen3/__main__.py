"""`python -m pldsl.kernels.qwen3`: logits and greedy generation with the DSL decode kernel.

python -m pldsl.kernels.qwen3 logits --checkpoint DIR --token-ids "1,2,3;4,5" --out logits.npy
python -m pldsl.kernels.qwen3 generate --random tiny --prompt-ids "1,2,3;4" --max-new-tokens 8

Exit status: 0 done, 1 a runtime fault of the kernel, 2 refused before any work: a malformed id
list, a negative seed, a checkpoint that cannot be read, an --out/--trace that is a directory, an
input, or not writable (pldsl/cli_files.py: nothing is written, and the file written is exactly
the path given), or a run whose buffers would not fit in the available memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from pldsl.cli_files import FileArgError, check_output, write_atomic

from .config import preset, preset_names
from .session import BACKENDS, BackendUnavailable, DecodeSession, RunOptions, progress
from .weights import load_checkpoint, random_weights

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    pass


def parse_token_ids(text: str, what: str) -> list[list[int]]:
    """ "1,2,3;4,5" -> [[1, 2, 3], [4, 5]] (sequences separated by ';'; spaces are ignored,
    an empty item such as "1,,2" or "1,2," is an error)."""
    sequences = []
    for i, part in enumerate(text.split(";")):
        items = part.replace(" ", "").split(",")
        if items == [""]:
            raise UsageError(f"{what}: sequence {i} is empty")
        try:
            ids = [int(t) for t in items]
        except ValueError:
            raise UsageError(
                f"{what}: sequence {i} is not a comma-separated list of integers: {part!r}"
            ) from None
        if min(ids) < 0:
            raise UsageError(f"{what}: negative token id in sequence {i}")
        sequences.append(ids)
    return sequences


def load_model(args: argparse.Namespace, max_len: int):
    if args.checkpoint:
        return load_checkpoint(args.checkpoint, max_seq=max_len, precision=args.precision)
    cfg = preset(args.random)
    return cfg, random_weights(cfg, seed=args.seed, max_seq=max_len)


def model_config(args: argparse.Namespace):
    """The config alone (sizes the memory estimate before anything large is made)."""
    if args.checkpoint:
        from .config import Qwen3Config

        if not (Path(args.checkpoint) / "config.json").is_file():
            return None  # load_checkpoint says what is missing
        return Qwen3Config.from_json(Path(args.checkpoint))
    return preset(args.random)


def estimate_bytes(cfg, batch: int, max_len: int, block: int, precision: str, steps: int) -> int:
    """Bytes of what a decode session allocates for `batch` sequences of `max_len` tokens: the
    paged K/V caches, RoPE tables, the weights, `steps` logits rows per sequence and one step's
    activations; times 2 for the copies the runs make. An estimate to refuse hopeless runs up
    front, not an accounting."""
    item = 4 if precision == "fp32" else 2
    L, H, Im, D = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    pv = cfg.padded_vocab()
    pages = batch * -(-max_len // max(block, 1))
    kv = 2 * L * pages * cfg.num_key_value_heads * block * D * item
    rope = 2 * max_len * D * 4
    weights = (L * (H * (cfg.q_width + 2 * cfg.kv_width) + cfg.q_width * H + 3 * H * Im)) * item
    weights += 2 * cfg.vocab_size * H * item
    logits = steps * batch * pv * 4
    step = batch * (4 * H + 2 * Im + cfg.q_width + pv) * 4
    return 2 * (kv + rope + weights + logits + step)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else physical memory; None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(need: int, what: str) -> None:
    """UsageError when `need` bytes exceed the memory available now."""
    have = available_bytes()
    if have is not None and need > have:
        raise UsageError(
            f"{what} needs about {need / 2**30:.1f} GiB (KV caches, logits, weights); "
            f"{have / 2**30:.1f} GiB are available"
        )


def check_seed(seed: int) -> None:
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")


def _outputs(args: argparse.Namespace, out: str | None) -> tuple[Path | None, Path | None]:
    """--out and --trace, checked before anything runs (never a checkpoint file)."""
    inputs = []
    if args.checkpoint and Path(args.checkpoint).is_dir():
        inputs = [str(f) for f in Path(args.checkpoint).iterdir() if f.is_file()]
    out_path = check_output(out, "--out", inputs) if out else None
    trace_path = check_output(args.trace, "--trace", inputs) if args.trace else None
    if out_path is not None and trace_path is not None and out_path == trace_path:
        raise UsageError("--out and --trace name the same file")
    return out_path, trace_path


def check_ids(sequences: list[list[int]], vocab: int, what: str) -> None:
    for i, seq in enumerate(sequences):
        bad = [t for t in seq if t >= vocab]
        if bad:
            raise UsageError(
                f"{what}: token id {bad[0]} in sequence {i} is outside the vocabulary ({vocab})"
            )


def cmd_logits(args: argparse.Namespace) -> int:
    sequences = parse_token_ids(args.token_ids, "--token-ids")
    check_seed(args.seed)
    out_path, _ = _outputs(args, args.out)
    max_len = max(len(s) for s in sequences)
    cfg = model_config(args)
    if cfg is not None:
        need = estimate_bytes(
            cfg, len(sequences), max_len, args.block_size, args.precision, max_len
        )
        check_memory(need, f"{len(sequences)} sequences of up to {max_len} tokens")
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
    write_atomic(out_path, "--out", lambda fh: np.save(fh, result))
    print(f"saved logits {result.shape} to {out_path}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    prompts = parse_token_ids(args.prompt_ids, "--prompt-ids")
    if args.max_new_tokens < 1:
        raise UsageError("--max-new-tokens must be at least 1")
    check_seed(args.seed)
    _outputs(args, None)
    max_len = max(len(p) for p in prompts) + args.max_new_tokens
    cfg = model_config(args)
    if cfg is not None:
        need = estimate_bytes(cfg, len(prompts), max_len, args.block_size, args.precision, 1)
        check_memory(need, f"{len(prompts)} prompts with {args.max_new_tokens} new tokens")
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
    except (UsageError, FileArgError, ValueError, OSError, BackendUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PldslError as exc:
        print(exc.diagnostic.render(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
