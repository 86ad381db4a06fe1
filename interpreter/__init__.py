"""pldsl's NumPy interpreter: executes a captured `pl` program with a written BF16 contract.

    from pldsl import interpreter
    out = interpreter.run(program, "main", x, out, strict=True, trace="t.json")

See `interpreter.machine.run` for the options; `machine` is the plain tree-walking path,
`compiler` the fast path (the IR compiled once into closures) with `kloop` (matmul K-loops as
one product), `ops` one kernel per op of the op table, `trace` the Chrome-trace export and
per-line profile. What the interpreter shares with the C backend (the numerics contract,
buffers and views, argument binding, host calls, faults) is `pldsl.execution`.
"""

from pldsl.interpreter import dist_ops as _dist_ops  # noqa: F401  (the pld ops' kernels)
from pldsl.interpreter.machine import AFTER_INVOKE, ArgumentError, RunResult, execute, run
from pldsl.interpreter.ranks import _after_invoke
from pldsl.interpreter.trace import Trace

AFTER_INVOKE.append(_after_invoke)  # ranks launched by a host function run when it returns

__all__ = ["ArgumentError", "RunResult", "Trace", "execute", "run"]
