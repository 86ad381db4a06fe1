"""Host side of Qwen3 decode: KV pages, step inputs, and running the DSL program.

A `DecodeSession` owns the program (built for one config and cache geometry), the weights,
the paged KV cache and its allocator, and runs `qwen3_prefill_all` (every prompt position at
once), `qwen3_decode_all` (one position per sequence per step), `qwen3_final_logits` (logits of
prefilled positions) or `host_orch` (prefill, then greedy generation with `sample_and_prepare`
bound to Python) on the interpreter or the C backend.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import Qwen3Config
from .program import build_program, decode_args, final_logits_args, host_orch_args, prefill_args
from .weights import BF16, KVLayout, PageAllocator, Qwen3Weights, new_kv_cache

BACKENDS = ("interpreter", "c")


@dataclass
class RunOptions:
    backend: str = "interpreter"
    precision: str = "bf16"
    strict: bool = False
    trace: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"unknown precision {self.precision!r}; choose bf16 or fp32")
        if self.backend != "interpreter" and (self.strict or self.trace):
            raise ValueError("--strict and --trace need the interpreter backend")

    @property
    def storage(self) -> np.dtype:
        """The NumPy dtype of BF16 tensors (hidden states, KV caches): BF16, or FP32 when
        ``precision="fp32"`` (every rounding point a no-op)."""
        return np.dtype(np.float32) if self.precision == "fp32" else BF16


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot be loaded in this installation."""


def make_runner(program, options: RunOptions) -> Callable:
    """`runner(fn_name, *args, host=None)` on the chosen backend."""
    if options.backend == "c":
        try:
            from pldsl.backends.c import compile as compile_c
        except ImportError as exc:
            raise BackendUnavailable(f"the C backend is not available: {exc}") from None

        compiled = compile_c(program, precision=options.precision)
        return lambda fn, *args, host=None: compiled.run(fn, *args, host=host)
    from pldsl import interpreter

    def run(fn: str, *args, host=None):
        return interpreter.run(
            program,
            fn,
            *args,
            strict=options.strict,
            precision=options.precision,
            trace=options.trace,
            host=host,
        )

    return run


@dataclass
class DecodeSession:
    """Decode state for up to `batch` sequences of at most `max_len` tokens each."""

    cfg: Qwen3Config
    weights: Qwen3Weights
    batch: int
    max_len: int
    block_size: int = 16
    options: RunOptions = field(default_factory=RunOptions)
    max_new_tokens: int = 4

    def __post_init__(self) -> None:
        for name in ("batch", "max_len", "block_size", "max_new_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.max_len > self.weights.max_seq:
            raise ValueError(
                f"sequences of {self.max_len} tokens need RoPE tables of that many rows; "
                f"the weights have max_seq={self.weights.max_seq}"
            )
        self.max_blocks = math.ceil(self.max_len / self.block_size)
        self.layout = KVLayout(self.batch * self.max_blocks, self.block_size)
        self.allocator = PageAllocator(self.layout, self.batch, self.max_blocks)
        self.k_cache, self.v_cache = new_kv_cache(self.cfg, self.layout, self.options.storage)
        self.program = build_program(
            self.cfg,
            max_seq=self.weights.max_seq,
            block_size=self.block_size,
            num_pages=self.layout.num_pages,
            max_blocks_per_seq=self.max_blocks,
            padded_vocab=self.weights.padded_vocab,
            max_new_tokens=self.max_new_tokens,
        )
        self.run = make_runner(self.program, self.options)
        for b in range(self.batch):
            self.allocator.reserve(b, self.max_len)

    # ----------------------------------------------------------------- inputs
    def hidden_for(self, token_ids: Sequence[int]) -> np.ndarray:
        return self.weights.embed(token_ids).astype(self.options.storage, copy=False)

    def step_inputs(self, rows: Sequence[int], positions: Sequence[int], token_ids: Sequence[int]):
        """hidden_states, seq_lens, block_table, slot_mapping for one decode step of `rows`."""
        hidden = self.hidden_for(token_ids)
        seq_lens = np.asarray([p + 1 for p in positions], dtype=np.int32)
        block_table = self.allocator.block_table_for(rows)
        slots = self.allocator.slot_mapping(rows, positions)
        return hidden, seq_lens, block_table, slots

    def _outputs(self, n: int):
        """Buffers for (out, rms_normed, logits) of `n` rows."""
        dt, H, pv = self.options.storage, self.cfg.hidden_size, self.weights.padded_vocab
        return np.empty((n, H), dt), np.empty((n, H), dt), np.empty((n, pv), np.float32)

    # ----------------------------------------------------------------- steps
    def decode(self, rows: Sequence[int], positions: Sequence[int], token_ids: Sequence[int]):
        """One `qwen3_decode_all` step; returns (out, rms_normed, logits) for `rows`."""
        inputs = self.step_inputs(rows, positions, token_ids)
        args = decode_args(
            self.weights, *inputs, self.k_cache, self.v_cache, *self._outputs(len(rows))
        )
        return self.run("qwen3_decode_all", *args)

    def prefill_inputs(self, prompts: Sequence[Sequence[int]]):
        """hidden_states [U, S, H], seq_lens, block_table, slot_mapping [U*S] of a prefill of
        ``prompts`` (S = the longest prompt; rows and slots past a prompt are 0 / -1)."""
        lens = [len(p) for p in prompts]
        S, H = max(lens), self.cfg.hidden_size
        hidden = np.zeros((len(prompts), S, H), self.options.storage)
        slots = np.full(len(prompts) * S, -1, np.int32)
        for b, p in enumerate(prompts):
            hidden[b, : len(p)] = self.hidden_for(p)
            slots[b * S : b * S + len(p)] = self.allocator.slot_mapping([b] * len(p), range(len(p)))
        block_table = self.allocator.block_table_for(range(len(prompts)))
        return hidden, np.asarray(lens, np.int32), block_table, slots

    def prefill(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """`qwen3_prefill_all` over every position of every prompt (sequence ``b`` = row ``b``);
        writes their K/V and returns ``out [U, S, H]``, the last layer's output per position."""
        self.check_prompts(prompts)
        inputs = self.prefill_inputs(prompts)
        out = np.empty(inputs[0].shape, self.options.storage)
        args = prefill_args(self.weights, *inputs, self.k_cache, self.v_cache, out)
        return np.asarray(self.run("qwen3_prefill_all", *args)[0])

    def final_logits(self, hidden_rows: np.ndarray) -> np.ndarray:
        """`qwen3_final_logits` of final hidden states ``[R, H]``: logits ``[R, padded_vocab]``."""
        n, dt = len(hidden_rows), self.options.storage
        rms_normed = np.empty((n, self.cfg.hidden_size), dt)
        logits = np.empty((n, self.weights.padded_vocab), np.float32)
        args = final_logits_args(self.weights, hidden_rows, rms_normed, logits)
        return np.asarray(self.run("qwen3_final_logits", *args)[1])

    def prompt_logits(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits at every prompt position, ``[U, max_len, vocab]`` FP32 with NaN past each
        prompt: one prefill, then the final RMSNorm + LM head over the prompt rows."""
        out = self.prefill(prompts)
        lens = [len(p) for p in prompts]
        logits = self.final_logits(np.concatenate([out[b, :n] for b, n in enumerate(lens)]))
        result = np.full((len(prompts), max(lens), self.cfg.vocab_size), np.nan, np.float32)
        start = 0
        for b, n in enumerate(lens):
            result[b, :n] = logits[start : start + n, : self.cfg.vocab_size]
            start += n
        return result

    def check_prompts(self, prompts: Sequence[Sequence[int]]) -> None:
        """ValueError unless there are 1..`batch` non-empty prompts of at most `max_len` tokens."""
        if not 1 <= len(prompts) <= self.batch:
            raise ValueError(
                f"{len(prompts)} prompts for a session of batch {self.batch} (need 1..{self.batch})"
            )
        for b, p in enumerate(prompts):
            if len(p) == 0:
                raise ValueError("every prompt needs at least one token")
            if len(p) > self.max_len:
                raise ValueError(
                    f"prompt {b} has {len(p)} tokens; this session holds at most "
                    f"max_len={self.max_len} per sequence"
                )

    def prefill_by_decode(self, prompts: Sequence[Sequence[int]], upto: Callable[[int], int]):
        """Feed positions [0, upto(b)) of each prompt one step at a time (ragged batches).

        Yields (step, rows, logits) after each step.
        """
        self.check_prompts(prompts)
        longest = max((upto(b) for b in range(len(prompts))), default=0)
        for t in range(longest):
            rows = [b for b in range(len(prompts)) if t < upto(b)]
            tokens = [prompts[b][t] for b in rows]
            _, _, logits = self.decode(rows, [t] * len(rows), tokens)
            yield t, rows, logits

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        on_step: Callable[[int, np.ndarray, dict], None] | None = None,
        eos_id: int | None = None,
        prefill: bool = True,
        token_by_token: bool = False,
    ) -> list[list[int]]:
        """Greedy generation of `max_new_tokens` tokens per prompt through `host_orch`.

        `host_orch` runs `qwen3_prefill_all` over every prompt position (``has_prefill``), then
        re-decodes the last prompt token and runs the sample/decode chain on the backend, with
        `sample_and_prepare` bound to a Python callable. ``token_by_token=True`` instead decodes
        every prompt token but the last one position per step before `host_orch` (no prefill);
        ``prefill=False`` skips the prompt entirely, for a caller that has decoded the prompt
        prefixes itself.
        """
        self.check_prompts(prompts)
        use_prefill = prefill and not token_by_token
        if prefill and token_by_token:
            for _ in self.prefill_by_decode(prompts, lambda b: len(prompts[b]) - 1):
                pass
        rows = list(range(len(prompts)))
        positions = [len(p) - 1 for p in prompts]
        hidden, seq_lens, block_table, slots = self.step_inputs(
            rows, positions, [p[-1] for p in prompts]
        )
        generated: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        vocab = self.cfg.vocab_size
        step = 0  # sample calls so far (a row's list stops growing once that row is done)

        def sample_and_prepare(logits, seq_lens_buf, slot_buf, hidden_buf):
            nonlocal step
            context = {
                "hidden": np.array(hidden_buf),
                "seq_lens": seq_lens_buf.copy(),
                "slot_mapping": slot_buf.copy(),
                "block_table": block_table,
            }
            if on_step is not None:
                on_step(step, np.asarray(logits), context)
            step += 1
            tokens = np.argmax(np.asarray(logits)[:, :vocab], axis=1)
            for b, tok in enumerate(tokens):
                if done[b]:
                    continue
                generated[b].append(int(tok))
                if eos_id is not None and tok == eos_id:
                    done[b] = True
                    continue
                pos = int(seq_lens_buf[b])  # next position
                if pos < self.max_len:
                    seq_lens_buf[b] = pos + 1
                    slot_buf[b] = self.allocator.slot_for(b, pos)
                    hidden_buf[b] = self.hidden_for([int(tok)])[0]
                else:
                    done[b] = True
            return hidden_buf

        if use_prefill:
            p_hidden, p_lens, _, p_slots = self.prefill_inputs(prompts)
        else:  # not read: has_prefill is False
            p_hidden = np.zeros((len(prompts), 1, self.cfg.hidden_size), self.options.storage)
            p_lens, p_slots = seq_lens.copy(), np.zeros(len(prompts), np.int32)
        args = host_orch_args(
            self.weights, p_hidden, p_lens, p_slots, hidden, seq_lens, slots, block_table,
            self.k_cache, self.v_cache, use_prefill, np.zeros_like(p_hidden),
            *self._outputs(len(prompts)),
        )  # fmt: skip
        self.run("host_orch", *args, host={"sample_and_prepare": sample_and_prepare})
        return generated


def progress(total: int, label: str = "decode") -> Callable[[int], None]:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        return lambda done: None

    def show(done: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
