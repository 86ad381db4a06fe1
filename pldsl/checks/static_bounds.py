"""StaticOutOfBounds (error): a slice / assemble / read / write window that provably leaves its tensor.

Windows: `pl.slice(x, shape, offset, valid_shape=...)` covers `[offset, offset + extent)` of
`x` per axis, where the extent is `valid_shape` when given (a trimmed edge tile reads only its
valid rows) and `shape` otherwise; `pl.assemble(target, src, offset)` writes the source's
valid region; `pl.read` / `pl.write` touch one element.

Only what is provable is reported, in two ways:

1. *Every execution*: interval reasoning over affine expressions of the dynamic dims
   (assumed >= 1), where a loop variable of `pl.range(start, stop, step)` ranges over
   `[start, stop - 1]`, scalars assigned once are substituted, `pl.min`/`pl.max`/`//`/`%`
   are bounded, and `pl.tensor.dim` reads the type's shape. A window `[16, K]` on a
   `[1, K]` tensor is out of bounds whatever `K` is.
2. *Some iteration*: loops with constant bounds (after substituting outer loop values) that
   reach the access unconditionally (no `if` between the loop and the access, no
   `break`/`continue` in the loop) are enumerated (extreme iterations of long loops), and an
   iteration whose window leaves the tensor is a witness, named in the message.

Values read from tensors (`pl.read`) and scalars rebound several times are unknowns: nothing
that depends on them is reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Break,
    Const,
    Continue,
    Expr,
    For,
    Function,
    If,
    OpCall,
    Program,
    Scope,
    Stmt,
    UnaryOp,
    Var,
    While,
    Yield,
)
from pldsl.ir.opdefs import op_label
from pldsl.ir.printer import format_dims, format_expr
from pldsl.ir.traversal import iter_expr, iter_stmts, stmt_exprs
from pldsl.ir.types import ScalarType

from .common import access_window, dim_extent

RULE = "StaticOutOfBounds"
SEVERITY = "error"
DOC = "a slice/assemble/read/write window that provably leaves its tensor"

SAMPLE_EDGE = 3  # iterations kept at each end of a long loop
MAX_COMBOS = 512

# ------------------------------------------------------------------ affine values
# An affine value: (constant, ((symbol, coefficient), ...)) with integer coefficients.
# Symbols are dynamic dims (assumed >= 1) or opaque scalars (any value).


def _lin(const: int, terms: dict[str, int] | None = None) -> tuple:
    items = tuple(sorted((k, v) for k, v in (terms or {}).items() if v != 0))
    return (const, items)


def _add(a: tuple, b: tuple, sign: int = 1) -> tuple:
    terms = dict(a[1])
    for k, v in b[1]:
        terms[k] = terms.get(k, 0) + sign * v
    return _lin(a[0] + sign * b[0], terms)


def _scale(a: tuple, c: int) -> tuple:
    return _lin(a[0] * c, {k: v * c for k, v in a[1]})


def _const_of(a: tuple | None) -> int | None:
    return a[0] if a is not None and not a[1] else None


class _Ctx:
    def __init__(self, func: Function):
        self.func = func
        counts: dict[str, int] = {}
        defs: dict[str, Expr] = {}
        self.loop_vars: dict[str, For] = {}
        for s in iter_stmts(func.body):
            if isinstance(s, Assign):
                for t in s.targets:
                    counts[t.name] = counts.get(t.name, 0) + 1
                    if len(s.targets) == 1 and isinstance(t.type, ScalarType):
                        defs[t.name] = s.value
            elif isinstance(s, Yield):
                for t in s.targets:
                    counts[t.name] = counts.get(t.name, 0) + 2
            elif isinstance(s, For):
                counts[s.var.name] = counts.get(s.var.name, 0) + 2
                self.loop_vars[s.var.name] = s
                for ia in s.iter_args:
                    counts[ia.name] = counts.get(ia.name, 0) + 2
            elif isinstance(s, While):
                for ia in s.iter_args:
                    counts[ia.name] = counts.get(ia.name, 0) + 2
        params = {p.name for p in func.params}
        self.defs = {k: v for k, v in defs.items() if counts.get(k) == 1 and k not in params}
        # rebound names have no single value to reason about
        self.rebound = {k for k in counts if k not in self.defs}
        self.dims = {d.name for d in func.dynamic_dims}

    # ---------------------------------------------------------------- evaluation
    def interval(
        self, e: object, env: dict[str, int], active: dict[str, For], depth: int = 0
    ) -> tuple[tuple | None, tuple | None]:
        """Sound (lo, hi) bounds of an integer expression; None = unbounded."""
        if depth > 40:
            return None, None
        if isinstance(e, bool):
            return _lin(int(e)), _lin(int(e))
        if isinstance(e, int):
            return _lin(e), _lin(e)
        if isinstance(e, Const):
            if isinstance(e.value, (int, bool)):
                return _lin(int(e.value)), _lin(int(e.value))
            return None, None
        if isinstance(e, Var):
            name = e.name
            if name in env:
                return _lin(env[name]), _lin(env[name])
            if name in active:
                return self._loop_bounds(active[name], env, active, depth)
            if name in self.loop_vars:
                return None, None  # a loop variable read after its loop
            if name in self.defs:
                return self.interval(self.defs[name], env, active, depth + 1)
            if name in self.rebound:
                return None, None
            if name in self.dims:
                sym = _lin(0, {"d:" + name: 1})  # a dynamic dim, >= 1
                return sym, sym
            if isinstance(e.type, ScalarType) and e.type.dtype.is_int:
                sym = _lin(0, {"o:" + name: 1})  # an opaque scalar: any value
                return sym, sym
            return None, None
        if isinstance(e, UnaryOp) and e.op == "neg":
            lo, hi = self.interval(e.operand, env, active, depth + 1)
            return (_scale(hi, -1) if hi else None), (_scale(lo, -1) if lo else None)
        if isinstance(e, BinOp):
            return self._binop(e, env, active, depth)
        if isinstance(e, OpCall) and e.op == "dim":
            return self.interval(dim_extent(e), env, active, depth + 1)
        return None, None

    def _loop_bounds(self, loop: For, env, active, depth):
        step = self.interval(loop.step, env, active, depth + 1)
        c = _const_of(step[0]) if step[0] == step[1] else None
        if c is None or c == 0:
            return None, None
        start = self.interval(loop.start, env, active, depth + 1)
        stop = self.interval(loop.stop, env, active, depth + 1)
        if c > 0:
            hi = _add(stop[1], _lin(1), -1) if stop[1] is not None else None
            return start[0], hi
        lo = _add(stop[0], _lin(1)) if stop[0] is not None else None
        return lo, start[1]

    def never_runs(self, loop: For, active: dict[str, For]) -> bool:
        """The loop provably runs no iteration (`pl.range(32, 32, 32)`): nothing in its body
        executes, so the bounds of its variable say nothing."""
        step = self.interval(loop.step, {}, active)
        c = _const_of(step[0]) if step[0] == step[1] else None
        if not c:
            return False
        start = self.interval(loop.start, {}, active)
        stop = self.interval(loop.stop, {}, active)
        if c > 0:
            return provably_le(stop[1], start[0])
        return provably_le(start[1], stop[0])

    def _binop(self, e: BinOp, env, active, depth):
        a = self.interval(e.lhs, env, active, depth + 1)
        b = self.interval(e.rhs, env, active, depth + 1)
        op = e.op
        if op == "add":
            return _opt2(_add, a[0], b[0]), _opt2(_add, a[1], b[1])
        if op == "sub":
            return (
                _opt2(lambda x, y: _add(x, y, -1), a[0], b[1]),
                _opt2(lambda x, y: _add(x, y, -1), a[1], b[0]),
            )
        if op == "mul":
            for x, y in ((a, b), (b, a)):
                c = _const_of(y[0]) if y[0] == y[1] else None
                if c is not None:
                    if c >= 0:
                        return (_scale(x[0], c) if x[0] else None), (
                            _scale(x[1], c) if x[1] else None
                        )
                    return (_scale(x[1], c) if x[1] else None), (_scale(x[0], c) if x[0] else None)
            return None, None
        if op in ("floordiv", "mod"):
            c = _const_of(b[0]) if b[0] == b[1] else None
            if c is None or c <= 0:
                return None, None
            if op == "mod":
                return _lin(0), _lin(c - 1)
            lo, hi = _const_of(a[0]), _const_of(a[1])
            return (
                _lin(lo // c) if lo is not None else None,
                _lin(hi // c) if hi is not None else None,
            )
        if op == "min":
            return _pick(a[0], b[0], lower=True, want_min=True), _pick(
                a[1], b[1], lower=False, want_min=True
            )
        if op == "max":
            return _pick(a[0], b[0], lower=True, want_min=False), _pick(
                a[1], b[1], lower=False, want_min=False
            )
        return None, None


def _opt2(fn, x, y):
    return fn(x, y) if x is not None and y is not None else None


def provably_le(a: tuple | None, b: tuple | None) -> bool:
    """a <= b for every value of the dims (>= 1); opaque symbols must cancel."""
    if a is None or b is None:
        return False
    d = _add(b, a, -1)
    total = d[0]
    for _, coeff in d[1]:
        if coeff < 0:
            return False
        total += coeff  # dims >= 1
    return total >= 0 and all(k.startswith("d:") for k, _ in d[1])


def _pick(x, y, lower: bool, want_min: bool):
    """Bound of min/max(a, b) from the operands' bounds of the same side."""
    if want_min:
        if lower:  # lo(min) = min(lo a, lo b): needs comparable bounds
            if x is None or y is None:
                return None
            return x if provably_le(x, y) else y if provably_le(y, x) else None
        # hi(min) <= either hi
        if x is None:
            return y
        if y is None:
            return x
        return x if provably_le(x, y) else y if provably_le(y, x) else x
    if lower:  # lo(max) >= either lo
        if x is None:
            return y
        if y is None:
            return x
        return y if provably_le(x, y) else x
    if x is None or y is None:
        return None
    return y if provably_le(x, y) else x if provably_le(y, x) else None


# ------------------------------------------------------------------ walking


def _accesses(
    body: tuple[Stmt, ...], loops: list[tuple[For, bool]]
) -> Iterator[tuple[OpCall, list[tuple[For, bool]]]]:
    """(op call with a window, enclosing loops with "reaches every iteration" flags)."""
    for s in body:
        for e in stmt_exprs(s):
            for node in iter_expr(e):
                if isinstance(node, OpCall) and access_window(node) is not None:
                    yield node, loops
        if isinstance(s, For):
            jumps = any(isinstance(x, (Break, Continue)) for x in iter_stmts(s.body))
            yield from _accesses(s.body, loops + [(s, not jumps)])
        elif isinstance(s, If):
            guarded = [(loop, False) for loop, _ in loops]
            yield from _accesses(s.then_body, guarded)
            yield from _accesses(s.else_body, guarded)
        elif isinstance(s, While):  # may run zero times: no enclosing iteration is certain
            yield from _accesses(s.body, [(loop, False) for loop, _ in loops])
        elif isinstance(s, Scope):
            yield from _accesses(s.body, loops)


def _deps(ctx: _Ctx, exprs: list[object]) -> set[str]:
    """Names the expressions depend on, through scalars assigned once."""
    seen: set[str] = set()
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if isinstance(e, int) or e is None:
            continue
        for node in iter_expr(e):
            if isinstance(node, Var) and node.name not in seen:
                seen.add(node.name)
                if node.name in ctx.defs:
                    stack.append(ctx.defs[node.name])
            elif isinstance(node, OpCall) and node.op == "dim":
                stack.extend(d for d in node.args[0].type.shape if not isinstance(d, int))
    return seen


def _loop_values(loop: For, ctx: _Ctx, env: dict[str, int], active) -> list[int] | None:
    vals = []
    for b in (loop.start, loop.stop, loop.step):
        lo, hi = ctx.interval(b, env, active)
        c = _const_of(lo)
        if c is None or lo != hi:
            return None
        vals.append(c)
    start, stop, step = vals
    if step == 0:
        return None
    r = range(start, stop, step)
    if len(r) <= 2 * SAMPLE_EDGE + 2:
        return list(r)
    return list(r[:SAMPLE_EDGE]) + list(r[-SAMPLE_EDGE:])


def _tensor_name(e: object) -> str:
    return f"'{e.name}'" if isinstance(e, Var) else "the tensor"


def _violation(ctx: _Ctx, call: OpCall, env: dict[str, int], active) -> str | None:
    w = access_window(call)
    shape = w.tensor.type.shape
    if w.extents is None:  # element access
        if len(w.offsets) == len(shape):
            for axis, (idx, dim) in enumerate(zip(w.offsets, shape)):
                lo, hi = ctx.interval(idx, env, active)
                size = ctx.interval(dim, env, active)[0]
                if provably_le(size, lo):
                    return (
                        f"index {format_expr(idx)} on axis {axis} is >= the size {format_expr(dim)}"
                    )
                if hi is not None and provably_le(_add(hi, _lin(1)), _lin(0)):
                    return f"index {format_expr(idx)} on axis {axis} is negative"
        elif len(w.offsets) == 1 and all(isinstance(d, int) for d in shape):
            total = 1
            for d in shape:
                total *= d
            lo, hi = ctx.interval(w.offsets[0], env, active)
            if provably_le(_lin(total), lo):
                return f"flat index {format_expr(w.offsets[0])} is >= the element count {total}"
        return None
    for axis, (off, ext, dim) in enumerate(zip(w.offsets, w.extents, shape)):
        off_lo, off_hi = ctx.interval(off, env, active)
        ext_lo, _ = ctx.interval(ext, env, active)
        size = ctx.interval(dim, env, active)[0]
        if size is None:
            continue
        end = _opt2(_add, off_lo, ext_lo)
        bigger = provably_le(_add(size, _lin(1)), ext_lo)
        if bigger or provably_le(_add(size, _lin(1)), end):
            ends = _const_of(end)
            shown = f" = {ends}" if ends is not None and not bigger else ""
            return (
                f"on axis {axis}, offset {format_expr(off)} + extent {format_expr(ext)}{shown} "
                f"exceeds the size {format_expr(dim)}"
            )
        if off_hi is not None and provably_le(_add(off_hi, _lin(1)), _lin(0)):
            return f"on axis {axis}, offset {format_expr(off)} is negative"
    return None


def _describe(call: OpCall) -> str:
    w = access_window(call)
    shape = format_dims(w.tensor.type.shape)
    if w.extents is None:
        return f"{op_label(call.op)} at {format_dims(w.offsets)} of {_tensor_name(w.tensor)} (shape {shape})"
    verb = "writes" if call.op in ("assemble", "store") else "reads"
    return (
        f"{op_label(call.op)} {verb} the window {format_dims(w.extents)} at {format_dims(w.offsets)} of "
        f"{_tensor_name(w.tensor)} (shape {shape})"
    )


def check_function(func: Function) -> list[Diagnostic]:
    ctx = _Ctx(func)
    out: list[Diagnostic] = []
    for call, loops in _accesses(func.body, []):
        active = {loop.var.name: loop for loop, _ in loops}
        if any(ctx.never_runs(loop, active) for loop, _ in loops):
            continue  # dead code: an empty loop's body
        why = _violation(ctx, call, {}, active)
        where = ""
        if why is None:
            why, where = _enumerate(ctx, call, loops, active)
        if why is None:
            continue
        out.append(
            Diagnostic(
                RULE,
                SEVERITY,
                f"{_describe(call)} leaves the tensor{where}: {why}",
                call.span,
                "fix the offset/shape, or trim the edge tile with valid_shape=[pl.min(...), ...]",
            )
        )
    return out


def _enumerate(ctx: _Ctx, call: OpCall, loops, active) -> tuple[str | None, str]:
    w = access_window(call)
    exprs: list[object] = list(w.offsets) + list(w.extents or ())
    exprs += [d for d in w.tensor.type.shape if not isinstance(d, int)]
    deps = _deps(ctx, exprs)
    chosen: list[For] = []
    for loop, reaches in reversed(loops):  # inner to outer: bounds pull in outer loops
        if not reaches:
            continue
        if loop.var.name in deps:
            chosen.append(loop)
            deps |= _deps(ctx, [loop.start, loop.stop, loop.step])
    if not chosen:
        return None, ""
    chosen.reverse()  # outer first
    combos = 0

    def rec(i: int, env: dict[str, int]):
        nonlocal combos
        if combos >= MAX_COMBOS:
            return None
        if i == len(chosen):
            combos += 1
            rest = {k: v for k, v in active.items() if k not in env}
            why = _violation(ctx, call, env, rest)
            return (why, env) if why else None
        loop = chosen[i]
        inner_active = {k: v for k, v in active.items() if k not in env}
        values = _loop_values(loop, ctx, env, inner_active)
        if values is None:
            return None
        for v in values:
            hit = rec(i + 1, {**env, loop.var.name: v})
            if hit:
                return hit
        return None

    hit = rec(0, {})
    if not hit:
        return None, ""
    why, env = hit
    at = ", ".join(f"{k}={v}" for k, v in env.items())
    return why, f" (at {at})"


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        out.extend(check_function(func))
    return out
