"""Host calls: running the Python function bound to a HOST SubWorker stub, for any executor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pldsl.diagnostics import PldslError, RuntimeFault, Span
from pldsl.execution.arguments import bind_params, coerce_array, coerce_scalar, eval_shape
from pldsl.execution.faults import fault
from pldsl.execution.memory import Context, OpFault, TensorValue, wrap_array
from pldsl.ir.nodes import Function
from pldsl.ir.types import TensorType

__all__ = ["host_call"]


def host_call(
    fn: Function,
    args: Sequence[Any],
    span: Span,
    ctx: Context,
    host: Mapping[str, Callable],
) -> Any:
    """Call the Python function bound to a HOST SubWorker stub: tensor arguments are handed
    over as arrays (views where possible, else copies whose writes are brought back), results
    are checked and converted to executor values."""
    cb = host.get(fn.name)
    if cb is None:
        raise fault(
            "MissingHostFunction",
            f"'{fn.name}' is a HOST SubWorker stub and no Python function is bound to it",
            span,
            f"pass host={{'{fn.name}': callable}} to run (interpreter.run or CompiledProgram.run)",
        )
    env = bind_params(fn, args, span, ctx)
    arrays, views = [], {}
    for p, v in zip(fn.params, args):
        if isinstance(v, TensorValue):
            if p.direction != "Out":
                try:
                    v.require(ctx, v.valid, p.name)
                except OpFault as f:
                    raise fault(
                        f.rule, f"host call '{fn.name}' {f.message}", span, f.help, f.notes
                    ) from None
            a = v.view() if v.in_buffer() and v.fully_valid else v.materialize(ctx)
            if not a.flags.writeable:
                a = a.copy()
            views[id(a)] = v
            arrays.append(a)
        else:
            arrays.append(v)
    try:
        out = cb(*arrays)
    except PldslError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: report it at the call site
        raise fault(
            "HostFunctionError",
            f"host function for '{fn.name}' raised {type(exc).__name__}: {exc}",
            span,
        ) from exc
    for a, v in zip(arrays, args):
        if isinstance(v, TensorValue):
            if a.base is None or not np.shares_memory(a, v.buffer.data):
                # A copy was handed over: bring the callee's writes back.
                v.buffer.data[v.window()] = a[tuple(slice(0, n) for n in v.valid)]
            if v.buffer.defined is not None:
                v.buffer.defined[v.window()] = True
            v.buffer.mark_written()
    results = out if fn.tuple_return else (out,)
    if fn.tuple_return and (not isinstance(out, (tuple, list)) or len(out) != len(fn.return_types)):
        raise fault(
            "HostFunctionError",
            f"host function for '{fn.name}' must return a tuple of "
            f"{len(fn.return_types)} values, got {type(out).__name__}",
            span,
        )
    if not fn.return_types:
        return None
    converted = []
    for i, (r, t) in enumerate(zip(results, fn.return_types)):
        what = f"return value {i} of host function '{fn.name}'"
        if isinstance(t, TensorType):
            if isinstance(r, np.ndarray) and id(r) in views:
                converted.append(views[id(r)])
                continue
            arr, _ = coerce_array(r, t.dtype.name, ctx, what, span, RuntimeFault)
            shape = eval_shape(t.shape, env)
            if shape is not None and tuple(arr.shape) != shape:
                raise fault(
                    "HostFunctionError",
                    f"{what} has shape {list(arr.shape)}, declared {list(shape)}",
                    span,
                )
            arr = arr.copy() if arr is r else arr
            val = wrap_array(ctx, arr, t.dtype.name, f"{fn.name}.return{i}")
            converted.append(val)
        else:
            converted.append(coerce_scalar(r, t.dtype, ctx, what, span, RuntimeFault))
    return tuple(converted) if fn.tuple_return else converted[0]
