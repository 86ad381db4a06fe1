"""The fast path's K-loop shortcut: a `matmul_acc` loop over adjacent windows as one matmul.

The loop shape (decided from the IR by `k_loop_shape`)::

    for kb in pl.range(lo, hi):            # no carries; step 1 at run time
        k0 = kb * K                        # scalar statements
        a_i = pl.slice(A, [M, K], [r, k0]) # slices (views: no side effect)
        b_i = pl.slice(B, [K, N], [k0, c])
        acc = pl.matmul_acc(acc, a_i, b_i) # the last statement; acc read nowhere else

Nothing the body binds but `acc` is live after the loop, so only `acc` and the loop variable
are observable. At run time every iteration's scalar and slice statements still run, in order
(bounds checks and their faults unchanged); the products are deferred while the operand
windows join up (same buffers, adjacent along K, fully valid, inside their buffers, in strict
mode fully defined, an FP32 accumulator of the product's shape). Then `acc + A[:, k_lo:k_hi] @ B[k_lo:k_hi, :]` is one
`numerics.matmul_acc`: one float32 BLAS product over the joined K plus one float32 add, within
`numerics.matmul_error_bound` of the joined operands (docs/numerics.md). At the first pair that
does not join, the deferred products run one by one as on the plain path and the rest of the
loop runs plainly, so faults and their order are those of the plain path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pldsl.interpreter.ops import operand

from pldsl.execution import numerics
from pldsl.execution.memory import TensorValue, fresh
from pldsl.ir.nodes import Assign, Call, For, OpCall, Var, walk
from pldsl.ir.types import ScalarType, TensorType
from pldsl.ops import lookup

if TYPE_CHECKING:
    from pldsl.interpreter.compiler import FastMachine

__all__ = ["KLoop", "k_loop_shape", "run_k_loop"]


@dataclass(frozen=True)
class KLoop:
    acc: str  # the accumulator's name
    prefix: tuple  # the scalar and slice statements before the matmul_acc
    call: OpCall  # the matmul_acc
    lhs: Any  # its operand expressions (a Var or a slice)
    rhs: Any
    b_trans: bool


def _op_name(e: Any) -> str | None:
    if not isinstance(e, OpCall):
        return None
    d = lookup(e.op)
    return d.name if d is not None else None


def _nested_ops(e: Any) -> int:
    return sum(1 for n in walk(e) if isinstance(n, (OpCall, Call)))


def _pure_slice(e: Any) -> bool:
    """A `pl.slice` whose arguments compute nothing (names and index expressions)."""
    return _op_name(e) == "slice" and _nested_ops(e) == 1


def k_loop_shape(s: For, live_after: frozenset[str]) -> KLoop | None:
    """The K-loop parts of `s`, or None when `s` does not have that shape."""
    if s.iter_args or not s.body:
        return None
    last = s.body[-1]
    if not (isinstance(last, Assign) and len(last.targets) == 1):
        return None
    call = last.value
    if _op_name(call) != "matmul_acc" or len(call.args) != 3 or call.attr("a_trans"):
        return None
    acc = last.targets[0].name
    if not (isinstance(call.args[0], Var) and call.args[0].name == acc):
        return None
    if getattr(getattr(call.type, "dtype", None), "name", None) != "FP32":
        return None
    prefix = s.body[:-1]
    bound: set[str] = set()
    for st in prefix:
        if not (isinstance(st, Assign) and len(st.targets) == 1):
            return None
        v, t = st.value, st.targets[0]
        scalar = isinstance(t.type, ScalarType) and _nested_ops(v) == 0
        view = isinstance(t.type, TensorType) and _pure_slice(v)
        if not (scalar or view) or t.name == acc:
            return None
        if any(isinstance(n, Var) and n.name == acc for n in walk(v)):
            return None
        bound.add(t.name)
    lhs, rhs = call.args[1], call.args[2]
    for arg in (lhs, rhs):
        if not (isinstance(arg, Var) or _pure_slice(arg)):
            return None
        if any(isinstance(n, Var) and n.name == acc for n in walk(arg)):
            return None
    if bound & live_after or s.var.name == acc:
        return None  # something besides acc would be observable after the loop
    return KLoop(acc, prefix, call, lhs, rhs, bool(call.attr("b_trans")))


def _defined(v: TensorValue) -> bool:
    """Strict mode: every element of the (fully valid) window was written."""
    mask = v.buffer.defined
    return mask is None or bool(mask[v.window(v.shape)].all())


def _fits(ctx: Any, acc: TensorValue, a: Any, b: Any, b_trans: bool) -> bool:
    """One product that may be deferred: 2-D views, fully valid, inside their buffers, the
    contraction and the accumulator's shape right, in strict mode fully defined (else the
    plain op reports it, with the plain path's fault)."""
    if type(a) is not TensorValue or type(b) is not TensorValue:
        return False
    if ctx.strict and not (_defined(a) and _defined(b)):
        return False
    if a.rank != 2 or b.rank != 2 or a.valid != a.shape or b.valid != b.shape:
        return False
    if not (a.in_buffer() and b.in_buffer()):
        return False
    k_b, n = (b.shape[1], b.shape[0]) if b_trans else b.shape
    return a.shape[1] == k_b and acc.shape == (a.shape[0], n)


def _joins(first: tuple, prev: tuple, a: TensorValue, b: TensorValue, b_trans: bool) -> bool:
    """`a`/`b` continue the windows of the deferred products along K."""
    a0, b0 = first
    ap, bp = prev
    if a.buffer is not a0.buffer or b.buffer is not b0.buffer or a.dtype != a0.dtype:
        return False
    if a.offset[0] != a0.offset[0] or a.shape[0] != a0.shape[0]:
        return False
    if a.offset[1] != ap.offset[1] + ap.shape[1]:
        return False
    k, other = (1, 0) if b_trans else (0, 1)
    if b.offset[other] != b0.offset[other] or b.shape[other] != b0.shape[other]:
        return False
    return b.offset[k] == bp.offset[k] + bp.shape[k]


def _joined(pairs: Sequence[tuple], b_trans: bool) -> tuple[TensorValue, TensorValue]:
    (a0, b0), (an, _) = pairs[0], pairs[-1]
    ka = an.offset[1] + an.shape[1] - a0.offset[1]
    a = TensorValue(a0.buffer, a0.offset, (a0.shape[0], ka))
    if b_trans:
        b = TensorValue(b0.buffer, b0.offset, (b0.shape[0], ka))
    else:
        b = TensorValue(b0.buffer, b0.offset, (ka, b0.shape[1]))
    return a, b


def run_k_loop(
    m: FastMachine,
    s: For,
    shape: KLoop,
    plain: Callable,
    prefix: tuple,
    lhs: Callable,
    rhs: Callable,
    op: Any,
    bounds: tuple,
) -> Callable:
    """The closure running loop `s` with its products joined (plain: the loop as compiled
    without the shortcut; prefix/lhs/rhs: compiled statements and operands)."""
    ctx, name, var, b_trans, call = m.ctx, shape.acc, s.var.name, shape.b_trans, shape.call
    run_op, body = m._run_op, m.block(s.body)
    start, stop, step = bounds

    def flush(acc: Any, pairs: list) -> Any:
        for a, b in pairs:  # the plain path's products, in order
            acc = run_op(call, op, [acc, a, b])
        return acc

    def k_loop(f: Any) -> None:
        lo, hi, st = start(f), stop(f), step(f)
        env = f.env
        acc = env.get(name)
        if st != 1 or hi - lo < 2 or type(acc) is not TensorValue or acc.dtype != "FP32":
            return plain(f)
        if acc.valid != acc.shape or (ctx.strict and not _defined(acc)):
            return plain(f)
        pairs: list[tuple] = []
        for i in range(lo, hi):
            env[var] = i
            for c in prefix:
                c(f)
            a, b = lhs(f), rhs(f)
            if _fits(ctx, acc, a, b, b_trans) and (
                not pairs or _joins(pairs[0], pairs[-1], a, b, b_trans)
            ):
                pairs.append((a, b))
                continue
            acc = flush(acc, pairs)  # not joinable: finish like the plain path
            env[name] = run_op(call, op, [acc, a, b])
            for j in range(i + 1, hi):
                env[var] = j
                body(f)
            return None
        ja, jb = _joined(pairs, b_trans)
        r = numerics.matmul_acc(
            acc.materialize(ctx),
            operand(ctx, ja),
            operand(ctx, jb),
            "FP32",
            False,
            b_trans,
            ctx.precision,
        )
        out = fresh(ctx, r, "FP32")
        out.buffer.name, out.buffer.auto_named = name, False  # as the plain assignment names it
        env[name] = out
        return None

    return k_loop
