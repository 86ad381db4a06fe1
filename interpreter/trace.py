"""Execution traces: one event per executed op, Chrome trace export, per-line cost summary.

`Trace` collects `Event`s while `interpreter.run(..., trace=...)` executes. `to_chrome()`
gives the Chrome trace-event JSON object (complete events, "ph": "X", ts/dur in
microseconds) that chrome://tracing and https://ui.perfetto.dev open; `line_summary()` and
`format_summary()` aggregate by kernel source line (used by `pldsl run --profile`).
"""

from __future__ import annotations

import json
import linecache
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pldsl.execution.memory import TensorValue


@dataclass
class Event:
    name: str  # "pl.add", or "call f" for user-function calls
    kind: str  # "op" | "call"
    file: str
    line: int
    col: int
    start_ns: int  # relative to the trace's origin
    dur_ns: int
    shapes: tuple = ()  # input shapes, then the result's shape (last)
    dtypes: tuple = ()
    bytes: int = 0
    flops: int = 0
    depth: int = 0

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class LineStat:
    file: str
    line: int
    count: int = 0
    time_ns: int = 0
    bytes: int = 0
    flops: int = 0
    ops: dict = field(default_factory=dict)  # op name -> count

    @property
    def source(self) -> str:
        return linecache.getline(self.file, self.line).strip()


class Trace:
    """Collects events; `trace=` of `interpreter.run` accepts one (or a path to write)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.origin_ns = time.perf_counter_ns()
        self.wall_ns = 0
        self.function = ""

    def now(self) -> int:
        return time.perf_counter_ns() - self.origin_ns

    def add(self, event: Event) -> None:
        self.events.append(event)

    # ------------------------------------------------------------- Chrome trace
    def to_chrome(self) -> dict:
        events = [
            {
                "name": "process_name",
                "ph": "M",
                "pid": 1,
                "tid": 1,
                "args": {"name": f"pldsl interpreter: {self.function}"},
            }
        ]
        for e in self.events:
            events.append(
                {
                    "name": e.name,
                    "cat": e.kind,
                    "ph": "X",
                    "ts": e.start_ns / 1000.0,
                    "dur": e.dur_ns / 1000.0,
                    "pid": 1,
                    "tid": 1,
                    "args": {
                        "source": e.location,
                        "shapes": [list(s) for s in e.shapes],
                        "dtypes": list(e.dtypes),
                        "bytes": e.bytes,
                        "flops": e.flops,
                    },
                }
            )
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def write(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_chrome(), fh)

    # ------------------------------------------------------------- summaries
    def line_summary(self) -> list[LineStat]:
        """Op events aggregated by source line (calls excluded: they contain ops)."""
        stats: dict[tuple[str, int], LineStat] = {}
        for e in self.events:
            if e.kind != "op":
                continue
            s = stats.get((e.file, e.line))
            if s is None:
                s = stats[(e.file, e.line)] = LineStat(e.file, e.line)
            s.count += 1
            s.time_ns += e.dur_ns
            s.bytes += e.bytes
            s.flops += e.flops
            s.ops[e.name] = s.ops.get(e.name, 0) + 1
        return list(stats.values())

    def totals(self) -> tuple[int, int, int, int]:
        ops = [e for e in self.events if e.kind == "op"]
        return (
            len(ops),
            sum(e.dur_ns for e in ops),
            sum(e.bytes for e in ops),
            sum(e.flops for e in ops),
        )

    def format_summary(self, top: int = 10) -> str:
        lines = self.line_summary()
        n, t, b, f = self.totals()
        out = [
            f"profile of {self.function or 'run'}: {n} ops, op time {_ms(t)}, "
            f"wall {_ms(self.wall_ns)}, {_bytes(b)} moved, {_flops(f)}",
        ]
        for title, key in (("by time", lambda s: s.time_ns), ("by bytes", lambda s: s.bytes)):
            out.append("")
            out.append(f"top {min(top, len(lines))} source lines {title}:")
            out.append(f"  {'time':>10} {'%':>5} {'bytes':>10} {'FLOPs':>10} {'count':>7}  line")
            for s in sorted(lines, key=key, reverse=True)[:top]:
                pct = 100.0 * s.time_ns / t if t else 0.0
                where = f"{os.path.basename(s.file)}:{s.line}"
                ops = ",".join(sorted(s.ops))
                out.append(
                    f"  {_ms(s.time_ns):>10} {pct:5.1f} {_bytes(s.bytes):>10} "
                    f"{_flops(s.flops):>10} {s.count:>7}  {where}  {s.source[:60]}  [{ops}]"
                )
        return "\n".join(out)


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _flops(n: int) -> str:
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} FLOP"


def shapes_dtypes(values: Sequence, result) -> tuple[tuple, tuple]:
    """Shapes and dtypes of an op's tensor inputs, then of its result."""
    shapes, dtypes = [], []
    for v in [*values, result]:
        if isinstance(v, TensorValue):
            shapes.append(v.shape)
            dtypes.append(v.dtype)
    return tuple(shapes), tuple(dtypes)
