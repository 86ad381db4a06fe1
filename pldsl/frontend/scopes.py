"""SPMD, task dependencies and the scopes other than `pl.at` (pl-language.md 1.7).

* `for b in pl.spmd(n, ...)` -> `For(kind="spmd")` over blocks 0..n-1 (`b` = block index).
* `with pl.spmd(n, ...):` -> the same loop with a fresh block variable (attrs form="with");
  `pl.tile.get_block_idx()` inside either form reads the innermost block variable.
* `with pl.spmd(n, deps=[...]) as tid:` -> `Scope("task", tid=tid, deps=...)` around that loop.
* `with pl.at(..., deps=[...]) as tid:` -> `Scope("at", tid=tid, deps=...)`; without `as tid`
  the scope still waits on its deps (PyPTO gives it an unused id).
* `tid = pl.system.task_dummy(deps=[...])` -> an empty `Scope("task", tid=tid, deps=...)`;
  into an array slot (`tids[i] = ...`) the same task with a fresh id, then the element write.
* `with pl.scope()`, `pl.manual_scope()`, `pl.incore()`, `pl.auto_incore()` -> `Scope(kind)`:
  task-graph and placement regions with no numeric effect; the body runs once, in order.
* `pl.array.create(n, dtype)` -> a 1-D tensor of `n` elements (`a[i]` reads, `a[i] = v` writes).

All of these run sequentially: blocks in increasing index order, tasks in program order, which
satisfies every dependency; the interpreter checks that each dependency names a task that exists.
"""

from __future__ import annotations

import ast
import keyword
from typing import TYPE_CHECKING, Any

from pldsl.dtypes import INDEX, TASK_ID, DType
from pldsl.enums import Optimizer
from pldsl.frontend.capture import fail
from pldsl.frontend.subscript import store
from pldsl.ir.nodes import Const, Expr, For, ListExpr, Scope, Stmt, Var
from pldsl.ir.printer import format_type
from pldsl.ir.types import ScalarType, TensorType
from pldsl.types import PlacementHint

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder

SPMD_KWARGS = ("name_hint", "sync_start", "optimizations", "allow_early_resolve", "deps")
# Scopes with no numeric effect and no arguments PyPTO's sequential meaning depends on.
PLAIN_SCOPES = ("scope", "manual_scope", "incore", "auto_incore")
PLAIN_SCOPE_KWARGS = ("name_hint", "mode", "level")


def check_name_hint(b: BodyBuilder, value: Any, node: ast.expr, what: str) -> None:
    """PyPTO rejects a name_hint that is not a valid non-keyword identifier (it names the
    outlined function), with this wording."""
    if not isinstance(value, str):
        raise fail(
            "TypeError",
            f"{what} 'name_hint' argument must be a string literal",
            b.span(node),
            'Use name_hint="my_scope_name"',
        )
    if value and (not value.isidentifier() or keyword.iskeyword(value)):
        raise fail(
            "ValueError",
            f"{what} 'name_hint' must be a valid non-keyword identifier, got {value!r}",
            b.span(node),
            "Use a valid Python identifier like 'fused_matmul_add'",
        )


def deps_list(b: BodyBuilder, node: ast.expr) -> tuple[Expr, ...]:
    """`deps=[t1, arr[i], arr, None, ...]` (a comprehension over a static range is unrolled)."""
    if isinstance(node, ast.ListComp):
        return _deps_comprehension(b, node)
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise fail(
            "TypeError",
            "deps= must be a list literal of task ids",
            b.span(node),
            "e.g. deps=[tid_a, tids[i]]",
        )
    out: list[Expr] = []
    for elt in node.elts:
        if isinstance(elt, ast.Constant) and elt.value is None:
            continue  # PyPTO skips None entries (a conditionally produced task)
        out.append(task_value(b, elt))
    return tuple(out)


def no_dep_tensors(b: BodyBuilder, node: ast.expr) -> tuple[str, ...]:
    """`pl.at(no_dep_args=[t1, t2])`: tensors the scope's task leaves out of dependency
    tracking (PyPTO's NoDep argument slots; a scheduling assertion with no effect on values).
    Checked as PyPTO's parser checks it: a list literal of distinct bare tensor names."""
    hint = "Use `no_dep_args=[t1, t2]` with bare tensor names captured by the scope body."
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise fail(
            "TypeError", "pl.at(no_dep_args=...) must be a list literal of tensor names",
            b.span(node), hint,
        )  # fmt: skip
    names: list[str] = []
    for elt in node.elts:
        if not isinstance(elt, ast.Name):
            raise fail(
                "TypeError", "pl.at(no_dep_args=[...]) entries must be bare tensor names",
                b.span(elt), hint,
            )  # fmt: skip
        var = b.vars.get(elt.id)
        if var is None:
            raise fail(
                "TypeError", f"pl.at(no_dep_args=[...]) references unknown name '{elt.id}'",
                b.span(elt), "Each entry must resolve to a tensor visible in the enclosing "
                "function scope.",
            )  # fmt: skip
        if not isinstance(var.type, TensorType):
            raise fail(
                "TypeError", f"pl.at(no_dep_args=[...]) entry '{elt.id}' is not a tensor",
                b.span(elt), "Only tensors can be marked NoDep.",
            )  # fmt: skip
        if var.name in names:
            raise fail(
                "TypeError", f"pl.at(no_dep_args=[...]) lists '{elt.id}' more than once",
                b.span(elt), "Each tensor may appear at most once in `no_dep_args=`.",
            )  # fmt: skip
        names.append(var.name)
    return tuple(names)


def _deps_comprehension(b: BodyBuilder, node: ast.ListComp) -> tuple[Expr, ...]:
    """`[tids[i] for i in range(K)]` with a static range: one dependency per item."""
    gen = node.generators[0] if len(node.generators) == 1 else None
    if gen is None or gen.ifs or gen.is_async or not isinstance(gen.target, ast.Name):
        raise fail(
            "UnsupportedFeature",
            "deps= comprehensions take one `for name in range(...)` clause",
            b.span(node),
            "e.g. deps=[tids[i] for i in range(4)]",
        )
    items = b.static_value(gen.iter, "the range of a deps= comprehension")
    out: list[Expr] = []
    name = gen.target.id
    saved = b.program.ns.get(name, _MISSING)
    try:
        for item in items:
            b.program.ns[name] = item
            out.append(task_value(b, node.elt))
    finally:
        if saved is _MISSING:
            b.program.ns.pop(name, None)
        else:
            b.program.ns[name] = saved
    return tuple(out)


_MISSING = object()


def task_value(b: BodyBuilder, node: ast.expr) -> Expr:
    value = b.expr(node)
    t = value.type
    ok = (isinstance(t, ScalarType) and t.dtype == TASK_ID) or (
        isinstance(t, TensorType) and t.rank == 1 and t.dtype == TASK_ID
    )
    if not ok:
        raise fail(
            "TypeError",
            f"a dependency must be a task id (pl.Scalar[pl.TASK_ID]) or an array of them, "
            f"got {format_type(t)}",
            b.span(node),
            "use the `as tid` name of a pl.at / pl.spmd scope or a pl.system.task_dummy",
        )
    return value


def _kwargs(b: BodyBuilder, call: ast.Call, accepted: tuple[str, ...], what: str) -> dict:
    given: dict[str, ast.expr] = {}
    for kw in call.keywords:
        if kw.arg not in accepted:
            raise fail(
                "UnsupportedFeature",
                f"Unknown keyword argument '{kw.arg}' in pl.{what}()"
                if kw.arg
                else f"**kwargs are not accepted in pl.{what}()",
                b.span(kw),
                f"accepted: {', '.join(accepted)}",
            )
        given[kw.arg] = kw.value
    return given


def _static_attrs(b: BodyBuilder, given: dict[str, ast.expr], what: str) -> list[tuple[str, Any]]:
    """Scheduling hints: recorded (printed, round-tripped), no numeric effect."""
    attrs: list[tuple[str, Any]] = []
    for name, node in given.items():
        if name == "deps":
            continue
        value = b.static_value(node, f"{name}=")
        if name == "name_hint":
            check_name_hint(b, value, node, f"pl.{what}()")
        elif name in ("sync_start", "allow_early_resolve") and not isinstance(value, bool):
            raise fail("TypeError", f"{name}= must be True or False", b.span(node), f"{name}=True")
        elif name == "optimizations":
            if not isinstance(node, ast.List) or not all(
                isinstance(v, (Optimizer, PlacementHint)) for v in value
            ):
                raise fail(
                    "TypeError",
                    f"optimizations= of pl.{what} must be an inline list of pl.split(...) entries",
                    b.span(node),
                    "e.g. optimizations=[pl.split(pl.SplitMode.UP_DOWN)]",
                )
            continue  # core-pair placement: no numeric effect, not recorded
        elif name == "mode":
            value = str(getattr(value, "name", value))
        elif name == "level":
            value = getattr(value, "name", value)
            continue
        attrs.append((name, value))
    return attrs


def spmd_header(b: BodyBuilder, call: ast.Call) -> tuple[Expr, list[tuple[str, Any]], dict]:
    """`pl.spmd(core_num, **hints)`: the block count, the recorded hints, the raw keywords."""
    if len(call.args) != 1 or isinstance(call.args[0], ast.Starred):
        raise fail(
            "TypeError",
            "pl.spmd takes the number of blocks as its only positional argument",
            b.span(call),
            'e.g. for i in pl.spmd(4, name_hint="rows"):',
        )
    count = b.index_expr(call.args[0])
    if isinstance(count, Const) and count.value < 0:
        raise fail(
            "ValueError",
            f"pl.spmd needs a non-negative number of blocks, got {count.value}",
            b.span(call.args[0]),
            "the block count is the number of kernel instances",
        )
    given = _kwargs(b, call, SPMD_KWARGS, "spmd")
    return count, _static_attrs(b, given, "spmd"), given


def spmd_loop(
    b: BodyBuilder, var: Var, count: Expr, attrs: list, body_nodes: list[ast.stmt], node: ast.AST
) -> For:
    b.spmd_blocks.append(var)
    b.loop_kinds.append("spmd")
    b.contexts.append("loop")
    try:
        body = b.block(body_nodes)
    finally:
        b.contexts.pop()
        b.loop_kinds.pop()
        b.spmd_blocks.pop()
    zero, one = Const(0, INDEX), Const(1, INDEX)
    return For(var, "spmd", zero, count, one, body, attrs=tuple(attrs), span=b.span(node))


def for_spmd(b: BodyBuilder, s: ast.For) -> For:
    call = s.iter
    assert isinstance(call, ast.Call)
    count, attrs, given = spmd_header(b, call)
    if "deps" in given:
        raise fail(
            "UnsupportedFeature",
            "deps= is accepted only on the `with pl.spmd(...) as tid:` form",
            b.span(given["deps"]),
            "write with pl.spmd(n, deps=[...]) as tid: and read pl.tile.get_block_idx()",
        )
    if not isinstance(s.target, ast.Name):
        raise fail(
            "UnsupportedFeature",
            "the target of a pl.spmd loop is one name (the block index)",
            b.span(s.target),
            "for i in pl.spmd(n):",
        )
    if s.orelse:
        raise fail("UnsupportedFeature", "for/else is not supported", b.span(s.orelse[0]))
    var = b.bind(s.target.id, ScalarType(INDEX), s.target)
    return spmd_loop(b, var, count, attrs, s.body, s)


def with_spmd(b: BodyBuilder, s: ast.With, call: ast.Call) -> Stmt:
    count, attrs, given = spmd_header(b, call)
    target = s.items[0].optional_vars
    if "deps" in given and target is None:
        raise fail(
            "UnsupportedFeature",
            "deps= is accepted only with `as tid`",
            b.span(given["deps"]),
            "with pl.spmd(n, deps=[...]) as tid:",
        )
    deps = deps_list(b, given["deps"]) if "deps" in given else ()
    b.spmd_counter += 1
    var = Var(f"spmd_block_{b.spmd_counter}", ScalarType(INDEX), b.span(call))
    loop = spmd_loop(b, var, count, [("form", "with"), *attrs], s.body, s)
    if target is None:
        return loop
    tid = bind_tid(b, target)
    return Scope("task", (), (loop,), b.span(s), tid, deps)


def bind_tid(b: BodyBuilder, target: ast.expr) -> Var:
    if not isinstance(target, ast.Name):
        raise fail(
            "UnsupportedFeature",
            "`as` binds one name (the task id)",
            b.span(target),
            "with pl.at(...) as tid:",
        )
    return b.bind(target.id, ScalarType(TASK_ID), target)


def with_plain(b: BodyBuilder, s: ast.With, call: ast.Call, kind: str) -> Scope:
    if call.args:
        raise fail(
            "TypeError",
            f"pl.{kind}() takes keyword arguments only",
            b.span(call.args[0]),
            f"with pl.{kind}():",
        )
    if s.items[0].optional_vars is not None:
        raise fail(
            "UnsupportedFeature",
            f"`with pl.{kind}() as name` is not supported (only pl.at and pl.spmd yield task ids)",
            b.span(s.items[0].optional_vars),
            "drop the `as` clause",
        )
    attrs = _static_attrs(b, _kwargs(b, call, PLAIN_SCOPE_KWARGS, kind), kind)
    b.contexts.append("at" if kind in ("incore", "auto_incore") else kind)
    try:
        body = b.block(s.body)
    finally:
        b.contexts.pop()
    return Scope(kind, tuple(attrs), body, b.span(s))


def task_dummy(
    b: BodyBuilder, call: ast.Call, target: ast.expr, stmt: ast.stmt
) -> Scope | tuple[Stmt, ...]:
    """`tid = pl.system.task_dummy(deps=[...])`: a task that only waits. Into an array slot,
    `tids[i] = pl.system.task_dummy(...)`, the task binds a fresh id that is then stored."""
    if isinstance(target, ast.Subscript):
        b.spmd_counter += 1
        name = ast.copy_location(ast.Name(f"task_dummy_{b.spmd_counter}", ast.Load()), target)
        task = task_dummy(b, call, name, stmt)
        return task, store(b, target, name, stmt)
    if call.args or [kw.arg for kw in call.keywords] != ["deps"]:
        raise fail(
            "TypeError",
            "pl.system.task_dummy takes one keyword argument, deps=[...]",
            b.span(call),
            "barrier = pl.system.task_dummy(deps=[tid_a, tid_b])",
        )
    deps = deps_list(b, call.keywords[0].value)
    return Scope("task", (), (), b.span(stmt), bind_tid(b, target), deps)


def array_create(b: BodyBuilder, call: ast.Call) -> Expr:
    """`pl.array.create(n, dtype)`: a small 1-D array, captured as a 1-D tensor."""
    from pldsl.frontend.body import checked_op_call
    from pldsl.ops import lookup

    if len(call.args) != 2 or call.keywords:
        raise fail(
            "TypeError",
            "pl.array.create takes (extent, dtype)",
            b.span(call),
            "e.g. pl.array.create(4, pl.TASK_ID)",
        )
    extent = b.static_value(call.args[0], "the extent of pl.array.create")
    dtype = b.static_value(call.args[1], "the dtype of pl.array.create")
    if not isinstance(extent, int) or isinstance(extent, bool) or extent <= 0:
        raise fail(
            "TypeError",
            "the extent of pl.array.create must be a positive integer constant",
            b.span(call.args[0]),
        )
    if not isinstance(dtype, DType) or not dtype.is_int:
        raise fail(
            "TypeError",
            "pl.array.create holds integers or task ids (pl.INT32, pl.TASK_ID, ...)",
            b.span(call.args[1]),
        )
    span = b.span(call)
    keywords = {"shape": ListExpr((Const(extent, INDEX, span),), span), "dtype": dtype}
    return checked_op_call(lookup("create_tensor"), keywords, span, " (from pl.array.create)")


def block_index(b: BodyBuilder, call: ast.Call) -> Expr | None:
    """`pl.tile.get_block_idx()` inside a pl.spmd body: the innermost block index."""
    if call.args or call.keywords:
        raise fail("TypeError", "pl.tile.get_block_idx() takes no arguments", b.span(call))
    if not b.spmd_blocks:
        return None
    var = b.spmd_blocks[-1]
    return Var(var.name, var.type, b.span(call))


def static_print(b: BodyBuilder, call: ast.Call) -> None:
    """`pl.static_print(...)`: prints capture-time values and the types of kernel values."""
    from pldsl.frontend.control import static_print_fstring

    if not call.args or call.keywords:
        raise fail(
            "TypeError",
            "pl.static_print requires at least one argument (and no keywords)",
            b.span(call),
            'pl.static_print("rows", R, x)',
        )
    parts = []
    for arg in call.args:
        if isinstance(arg, ast.JoinedStr):
            parts.append(static_print_fstring(b, arg))
            continue
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            parts.append(arg.value)
            continue
        try:
            parts.append(repr(b.static.eval(arg)))
        except Exception:  # noqa: BLE001 - a kernel value: show its type
            parts.append(format_type(b.expr(arg).type))
    print(f"static_print {b.span(call)}: " + " ".join(parts))


def static_assert(b: BodyBuilder, call: ast.Call) -> None:
    if not 1 <= len(call.args) <= 2 or call.keywords:
        raise fail(
            "TypeError",
            "pl.static_assert takes (condition, message)",
            b.span(call),
            'pl.static_assert(N % 16 == 0, "N must be a multiple of 16")',
        )
    cond = b.static_value(call.args[0], "the condition of pl.static_assert")
    if not cond:
        msg = ""
        if len(call.args) == 2:
            msg = b.static_value(call.args[1], "the message of pl.static_assert")
        raise fail(
            "StaticAssert",
            f"static assertion failed: {msg}" if msg else "static assertion failed",
            b.span(call),
            "the condition is evaluated at capture time from closure constants",
        )


def func_attr(b: BodyBuilder, call: ast.Call) -> None:
    """`pl.func_attr({...})`: compiler attributes of the function, no numeric effect."""
    if len(call.args) != 1 or call.keywords or not isinstance(call.args[0], ast.Dict):
        raise fail(
            "TypeError",
            "pl.func_attr takes one dict literal",
            b.span(call),
            'pl.func_attr({"core_num": 4})',
        )
    if any(
        not (isinstance(k, ast.Constant) and isinstance(k.value, str)) for k in call.args[0].keys
    ):
        raise fail(
            "TypeError",
            "pl.func_attr keys must be string literals",
            b.span(call.args[0]),
            'pl.func_attr({"core_num": 4})',
        )


SYNCALL_CORE_TYPES = ("mix", "aiv_only", "aic_only")


def syncall(b: BodyBuilder, call: ast.Call) -> Scope:
    """`pl.system.syncall(core_type=...)`: a barrier across every block of the enclosing grid,
    captured as an empty `Scope("syncall")`. Sequentially, each block runs up to the barrier
    before any block runs past it (the grid's body runs phase by phase), so it must be a
    statement of the grid body itself: a barrier in a branch or loop that some blocks skip
    would deadlock the device."""
    if not (b.loop_kinds and b.loop_kinds[-1] == "spmd" and b.contexts[-1] == "loop"):
        raise fail(
            "UnsupportedFeature",
            "pl.system.syncall must be a statement of a pl.spmd body (not inside a branch, "
            "loop or scope of it, nor outside a grid)",
            b.span(call),
            "with pl.spmd(n, sync_start=True):  ...  pl.system.syncall()  ...",
        )
    given = _kwargs(b, call, ("core_type", "mode"), "system.syncall")
    if call.args:
        raise fail(
            "TypeError",
            "pl.system.syncall takes keyword arguments only",
            b.span(call.args[0]),
            'pl.system.syncall(core_type="mix")',
        )
    core_type = b.static_value(given["core_type"], "core_type=") if "core_type" in given else "mix"
    mode = b.static_value(given["mode"], "mode=") if "mode" in given else "hard"
    if core_type not in SYNCALL_CORE_TYPES:
        raise fail(
            "ValueError",
            f"core_type must be one of {', '.join(SYNCALL_CORE_TYPES)}, got {core_type!r}",
            b.span(given["core_type"]),
        )
    if mode != "hard":
        raise fail(
            "UnsupportedFeature",
            f"pl.system.syncall(mode={mode!r}) is not supported (its GM workspace counter)",
            b.span(given.get("mode", call)),
            'the hard barrier: pl.system.syncall(core_type="mix")',
        )
    return Scope("syncall", (("core_type", core_type),), (), b.span(call))
