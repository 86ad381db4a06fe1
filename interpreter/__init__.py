"""pldsl's NumPy interpreter: executes a captured `pl` program with a written BF16 contract.

    from pldsl import interpreter
    out = interpreter.run(program, "main", x, out, strict=True, trace="t.json")

See `interpreter.machine.run` for the options; `numerics` holds every rounding decision,
`memory` the buffers and views, `ops` one kernel per op of the op table, `trace` the
Chrome-trace export and per-line profile.
"""

from pldsl.interpreter.machine import ArgumentError, RunResult, execute, run
from pldsl.interpreter.trace import Trace

__all__ = ["ArgumentError", "RunResult", "Trace", "execute", "run"]
