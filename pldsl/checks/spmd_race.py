"""SpmdBlockRace (error): one SPMD block reads a window of a buffer that another block of the
same `pl.spmd` grid writes.

The blocks of a grid run concurrently on the device with no dependency between them (a
dependency exists only between tasks); pldsl's interpreter runs them one after another, so a
kernel whose block b reads what block b-1 wrote gives the right answer here and a wrong one on
the device. The rule evaluates each access window of the grid body for every block index
(grids of up to MAX_BLOCKS blocks whose windows depend only on the block index and capture-time
constants) and reports a read that overlaps a window some *other* block writes. Windows it
cannot evaluate (offsets that depend on a runtime value) are not reported: the rule stays quiet
rather than guess.

Buffers a block creates for itself in the grid body are its own (no race); a grid cut by
`pl.system.syncall()` barriers is compared phase by phase (accesses across a barrier are
ordered).

Writes: `pl.assemble(buf, src, offs)` (the source's extent), `pl.write(buf, idx, v)`.
Reads: `pl.slice(buf, shape, offs)`, `pl.read(buf, idx)`, the source window of
`pld.tensor.put(..., src=buf, src_offsets=offs, shape=s)`, and any other op that takes `buf`
whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pldsl.checks.common import Window, access_window
from pldsl.diagnostics import Diagnostic, Span
from pldsl.ir.nodes import Assign, For, OpCall, Program, Scope, Stmt, Var
from pldsl.ir.symbolic import Unbound, evaluate
from pldsl.ir.traversal import VIEW_OPS, iter_expr, iter_stmts, stmt_exprs, write_target
from pldsl.ir.types import ScalarType, TensorType

RULE = "SpmdBlockRace"
SEVERITY = "error"
DOC = "an SPMD block reads a buffer window another block of the same grid writes"
MAX_BLOCKS = 128  # the pairwise window test is O(blocks^2)

Box = tuple[tuple[int, int], ...]  # per axis [lo, hi)


@dataclass(frozen=True)
class _Access:
    buffer: str
    call: OpCall
    write: bool
    whole: TensorType | None = None  # a read of the whole buffer (its type)
    window: Window | None = None  # the window read, when the op names one itself


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        grids = [s for s in iter_stmts(func.body) if isinstance(s, For) and s.kind == "spmd"]
        inside = {id(s) for g in grids for s in iter_stmts(g.body)} | {id(g) for g in grids}
        outside = {p.name for p in func.params} | {
            t.name
            for s in iter_stmts(func.body)
            if isinstance(s, Assign) and id(s) not in inside
            for t in s.targets
        }
        for g in grids:
            out.extend(_grid(g, outside))
    return out


def _block_local(body: tuple[Stmt, ...], outside: set[str]) -> set[str]:
    """Buffers each block creates for itself (`t = pl.full(...)` in the grid body, then written
    only through `t = pl.assemble(t, ...)`): every block has its own, so no race. A name also
    bound outside the grid, or bound to a view (slice, reshape) of another buffer, is shared."""
    fresh: set[str] = set()
    shared: set[str] = set(outside)
    for s in iter_stmts(body):
        if not isinstance(s, Assign):
            continue
        for t in s.targets:
            if not isinstance(t.type, TensorType):
                continue
            v = s.value
            own = isinstance(v, OpCall) and v.op not in VIEW_OPS
            target = write_target(v) if isinstance(v, OpCall) else None
            if target is not None:
                own = isinstance(target, Var) and target.name == t.name
            (fresh if own else shared).add(t.name)
    return fresh - shared


def _grid(loop: For, outside: set[str]) -> list[Diagnostic]:
    try:
        n = evaluate(loop.stop, {})
    except (Unbound, ValueError, ZeroDivisionError):
        return []
    if not isinstance(n, int) or not 2 <= n <= MAX_BLOCKS:
        return []
    local = _block_local(loop.body, outside)
    scalars = _scalar_defs(loop.body)
    out: list[Diagnostic] = []
    for phase in _phases(loop.body):
        out.extend(_phase(loop, n, phase, local, scalars))
    return out


def _phases(body: tuple[Stmt, ...]) -> list[tuple[Stmt, ...]]:
    """The grid body cut at its `pl.system.syncall` barriers: every block finishes one phase
    before any block starts the next, so only accesses of the same phase can race."""
    out: list[list[Stmt]] = [[]]
    for s in body:
        if isinstance(s, Scope) and s.kind == "syncall":
            out.append([])
        else:
            out[-1].append(s)
    return [tuple(p) for p in out]


def _phase(loop: For, n: int, body: tuple[Stmt, ...], local: set[str], scalars: dict) -> list:
    accesses = [a for a in _accesses(body) if a.buffer not in local]
    written = {a.buffer for a in accesses if a.write}
    writes = [a for a in accesses if a.write]
    reads = [a for a in accesses if not a.write and a.buffer in written]
    if not reads:
        return []
    boxes = {id(a.call): _boxes(a, loop.var.name, n, scalars) for a in writes + reads}
    out, seen = [], set()
    for r in reads:
        rb = boxes[id(r.call)]
        if rb is None or id(r.call) in seen:
            continue
        for w in (w for w in writes if w.buffer == r.buffer):
            wb = boxes[id(w.call)]
            hit = None if wb is None else _cross_overlap(rb, wb)
            if hit is not None:
                seen.add(id(r.call))
                out.append(_finding(r, w, hit, loop.var.name))
                break
    return out


def _accesses(body: tuple[Stmt, ...]) -> Iterator[_Access]:
    for s in iter_stmts(body):
        for e in stmt_exprs(s):
            for node in iter_expr(e):
                if isinstance(node, OpCall):
                    yield from _of_call(node)


def _of_call(call: OpCall) -> Iterator[_Access]:
    if call.op in ("assemble", "write"):
        target = call.arg("target" if call.op == "assemble" else "x")
        if isinstance(target, Var):
            yield _Access(target.name, call, True)
        return
    if call.op in ("slice", "read"):
        x = call.arg("x")
        if isinstance(x, Var):
            yield _Access(x.name, call, False)
        return
    window = _put_source(call)
    for arg in call.args:
        if window is not None and arg is window.tensor:
            yield _Access(arg.name, call, False, window=window)
        elif isinstance(arg, Var) and isinstance(arg.type, TensorType):
            yield _Access(arg.name, call, False, arg.type)


def _put_source(call: OpCall) -> Window | None:
    """`pld.tensor.put(..., src=t, src_offsets=o, shape=s)` reads only that window of t."""
    if call.op != "pld.tensor.put":
        return None
    src, offsets, shape = (call.arg(n) for n in ("src", "src_offsets", "shape"))
    if not isinstance(src, Var) or offsets is None or shape is None:
        return None
    return Window(src, offsets.items, shape.items)


def _scalar_defs(body: tuple[Stmt, ...]) -> dict[str, object]:
    """Scalars assigned once in the grid body (`k = pl.tile.get_block_idx() + 1`)."""
    defs: dict[str, object] = {}
    counts: dict[str, int] = {}
    for s in iter_stmts(body):
        if isinstance(s, Assign) and len(s.targets) == 1:
            t = s.targets[0]
            counts[t.name] = counts.get(t.name, 0) + 1
            if isinstance(t.type, ScalarType):
                defs[t.name] = s.value
    return {k: v for k, v in defs.items() if counts[k] == 1}


def _value(e: object, env: dict[str, int], scalars: dict[str, object], depth: int = 0) -> int:
    try:
        return evaluate(e, env)
    except Unbound as missing:
        name = str(missing)
        if name not in scalars or depth > 16:
            raise
        env[name] = _value(scalars[name], env, scalars, depth + 1)
        return _value(e, env, scalars, depth + 1)


def _boxes(a: _Access, var: str, n: int, scalars: dict[str, object]) -> list[Box] | None:
    """The window of an access for each block 0..n-1; None when it cannot be evaluated."""
    w = None if a.whole is not None else a.window or access_window(a.call)
    out: list[Box] = []
    for b in range(n):
        env: dict[str, int] = {var: b}
        try:
            if w is None and a.whole is not None:
                exts = [int(_value(d, env, scalars)) for d in a.whole.shape]
                offs = [0] * len(exts)
            elif w is None:
                return None
            else:
                offs = [int(_value(o, env, scalars)) for o in w.offsets]
                exts = (
                    [1] * len(offs)
                    if w.extents is None
                    else [int(_value(x, env, scalars)) for x in w.extents]
                )
        except (Unbound, ValueError, ZeroDivisionError, TypeError):
            return None
        out.append(tuple((o, o + x) for o, x in zip(offs, exts)))
    return out


def _cross_overlap(reads: list[Box], writes: list[Box]) -> tuple[int, int] | None:
    """(reading block, writing block) of the first overlap between different blocks."""
    for rb, r in enumerate(reads):
        for wb, w in enumerate(writes):
            if (
                rb != wb
                and len(r) == len(w)
                and all(lo1 < hi2 and lo2 < hi1 for (lo1, hi1), (lo2, hi2) in zip(r, w))
            ):
                return rb, wb
    return None


def _finding(r: _Access, w: _Access, hit: tuple[int, int], var: str) -> Diagnostic:
    reader, writer = hit
    span: Span = r.call.span
    return Diagnostic(
        RULE,
        SEVERITY,
        f"block {reader} of this pl.spmd grid reads '{r.buffer}' where block {writer} writes it "
        f"(line {w.call.span.line}); the blocks run concurrently with no dependency between them",
        span,
        "read only the window the block itself writes, or split the grid into two tasks "
        "(`with pl.spmd(...) as tid:` then `deps=[tid]` on the reader)",
    )
