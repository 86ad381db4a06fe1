"""`pl.prefetch.*`: PyPTO's asynchronous GM -> L2 prefetch, a latency hint.

PyPTO documents that a prefetch changes no tensor value (a kernel is numerically identical with
or without it), so capture checks the calls and emits nothing:

* `ctx = pl.prefetch.make_context()` -> `ctx` names a prefetch context (no IR value);
* `evt = pl.prefetch.async_prefetch(t, ctx)` -> checks `t` (a tensor whose dims are static and
  all 1 but the last, as PyPTO's verifier requires) and `ctx`; `evt` names an event;
* `s = pl.prefetch.session(ctx)` -> `s` names the context's session;
* `done = pl.prefetch.wait(evt, s)` -> `True` (sequentially, a prefetch has always landed).

A handle name is no kernel value: using it anywhere else is an error.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from pldsl.dtypes import BOOL
from pldsl.frontend.capture import fail
from pldsl.ir.nodes import Const, Expr
from pldsl.ir.printer import format_type
from pldsl.ir.traversal import read_names
from pldsl.ir.types import TensorType

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder

# op -> (the kinds of handle its arguments must be, the kind of handle it returns)
_SIGNATURES = {
    "make_context": ((), "context"),
    "async_prefetch": (("tensor", "context"), "event"),
    "session": (("context",), "session"),
    "wait": (("event", "session"), None),
}


def is_prefetch(name: str | None) -> bool:
    return name is not None and name.startswith("prefetch.")


def prefetch_call(b: BodyBuilder, call: ast.Call, target: ast.expr | None) -> Expr | None:
    """Checks one `pl.prefetch.X(...)` call; binds `target` to its handle. Returns the value
    of `wait` (True), else None (no IR)."""
    op = b._pl_name(call.func).split(".", 1)[1]
    if op not in _SIGNATURES:
        raise fail(
            "UnknownOp",
            f"pl.prefetch.{op} is not a supported op",
            b.span(call.func),
            f"pl.prefetch has {', '.join(_SIGNATURES)}",
        )
    kinds, returns = _SIGNATURES[op]
    if call.keywords or len(call.args) != len(kinds):
        raise fail(
            "TypeError",
            f"pl.prefetch.{op} takes {len(kinds)} positional argument(s)",
            b.span(call),
            "e.g. evt = pl.prefetch.async_prefetch(flat_weight, ctx)",
        )
    for arg, kind in zip(call.args, kinds):
        if kind == "tensor":
            _check_source(b, arg, op)
        elif not (isinstance(arg, ast.Name) and b.handles.get(arg.id) == kind):
            raise fail(
                "TypeError",
                f"argument of pl.prefetch.{op} must be a prefetch {kind}",
                b.span(arg),
                "ctx = pl.prefetch.make_context(); evt = pl.prefetch.async_prefetch(t, ctx); "
                "s = pl.prefetch.session(ctx); pl.prefetch.wait(evt, s)",
            )
    if returns is None:
        return Const(True, BOOL, b.span(call))
    if isinstance(target, ast.Name):
        b.handles[target.id] = returns
    elif target is not None:
        raise fail("UnsupportedFeature", "bind a prefetch handle to one name", b.span(target))
    return None


def _check_source(b: BodyBuilder, node: ast.expr, op: str) -> None:
    source = b.expr(node)
    b.capture_reads |= read_names(source)  # the hint reads it, though no IR is emitted
    t = source.type
    ok = isinstance(t, TensorType) and all(isinstance(d, int) for d in t.shape)
    if ok and any(d != 1 for d in t.shape[:-1]):
        ok = False
    if not ok:
        raise fail(
            "TypeError",
            f"pl.prefetch.{op} needs a flat tensor with a static shape whose dims are all 1 "
            f"but the last, got {format_type(t)}",
            b.span(node),
            "reshape it first: pl.reshape(w, [rows * cols])",
        )
