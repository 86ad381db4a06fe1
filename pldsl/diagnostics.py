"""One Diagnostic type for capture errors, check findings and runtime faults."""

from __future__ import annotations

import json
import linecache
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A source location: 1-based line, 1-based column (characters)."""

    file: str = "<unknown>"
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def source_line(self) -> str | None:
        if self.line <= 0:
            return None
        text = linecache.getline(self.file, self.line)
        return text.rstrip("\n") if text else None


NO_SPAN = Span()


def register_source(name: str, text: str) -> None:
    """Make `text` visible to the renderer under the pseudo-file `name`."""
    lines = text.splitlines(keepends=True)
    linecache.cache[name] = (len(text), None, lines, name)


@dataclass(frozen=True)
class Diagnostic:
    rule: str
    severity: str  # "error" | "warning" | "note"
    message: str
    span: Span = NO_SPAN
    help: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def render(self) -> str:
        """`error[Rule]: message` / `  --> file:line:col` / source + caret / `= help: ...`."""
        out = [f"{self.severity}[{self.rule}]: {self.message}"]
        if self.span.line > 0:
            out.append(f"  --> {self.span}")
            src = self.span.source_line()
            if src is not None:
                gutter = str(self.span.line)
                pad = " " * len(gutter)
                width = 1
                if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
                    width = self.span.end_col - self.span.col
                caret = " " * max(self.span.col - 1, 0) + "^" * width
                out += [f"{pad} |", f"{gutter} | {src}", f"{pad} | {caret}"]
        for note in self.notes:
            out.append(f"   = note: {note}")
        if self.help:
            out.append(f"   = help: {self.help}")
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.col,
            "help": self.help,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        return self.render()


class PldslError(Exception):
    """Base of every error pldsl raises on user input; carries one Diagnostic."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.render())
        self.diagnostic = diagnostic


class CaptureError(PldslError):
    """A kernel the frontend cannot accept (unsupported construct, type error)."""


class IRParseError(PldslError):
    """Malformed textual IR."""


class RuntimeFault(PldslError):
    """A fault found while executing a kernel (bounds, undefined reads, bad arguments)."""
