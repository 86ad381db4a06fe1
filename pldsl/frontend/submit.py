"""PyPTO's `out, tid = pl.spmd_submit(self.kernel, *args, core_num=N, deps=[...])`.

One task that runs `kernel` on `N` SPMD blocks (each reads its block with
`pl.tile.get_block_idx()`) and names it `tid` for later `deps=`. Its meaning is exactly that of

    with pl.spmd(N, deps=[...]) as tid:
        out = self.kernel(*args)

so it is captured as that statement (frontend/scopes.py, `with_spmd`): the blocks run one after
another, the call in each. Inside a `@pl.jit` function `self.kernel` names the module's jit
function `kernel` (PyPTO materialises it as a program method). `pl.no_dep(x)` around an
argument leaves `x` out of the task's dependency tracking: a scheduling assertion with no
effect on values, so the argument is `x`.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from pldsl.frontend.capture import fail

if TYPE_CHECKING:
    from pldsl.frontend.body import BodyBuilder

_USAGE = "out, tid = pl.spmd_submit(self.kernel, x, y, core_num=8, deps=[prev_tid])"
# keywords that pass to pl.spmd unchanged
_SPMD_KEYWORDS = ("deps", "sync_start", "allow_early_resolve", "name_hint")


def as_with_spmd(b: BodyBuilder, s: ast.Assign) -> ast.With:
    """The `with pl.spmd(...) as tid:` statement a `pl.spmd_submit` assignment stands for."""
    call = s.value
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    target = s.targets[0]
    if not (isinstance(target, ast.Tuple) and len(target.elts) == 2):
        raise fail(
            "UnsupportedFeature",
            "pl.spmd_submit must be unpacked as a 2-tuple: (result, task id)",
            b.span(target),
            _USAGE,
        )
    if not call.args or not _is_self_attr(call.args[0]):
        raise fail(
            "TypeError",
            "pl.spmd_submit's first argument is the kernel, as self.kernel",
            b.span(call),
            _USAGE,
        )
    keywords = {kw.arg: kw for kw in call.keywords}
    if "core_num" not in keywords:
        raise fail(
            "TypeError", "pl.spmd_submit needs core_num= (the block count)", b.span(call), _USAGE
        )
    for name, kw in keywords.items():
        if name != "core_num" and name not in _SPMD_KEYWORDS:
            raise fail(
                "UnsupportedFeature",
                f"pl.spmd_submit(..., {name}=) is not supported",
                b.span(kw.value),
                f"keywords: core_num, {', '.join(_SPMD_KEYWORDS)}",
            )
    result, tid = target.elts
    kernel = _kernel(b, call.args[0])
    args = [_without_no_dep(b, a) for a in call.args[1:]]
    spmd = ast.Call(
        ast.Attribute(call.func.value, "spmd", ast.Load()),
        [keywords["core_num"].value],
        [kw for name, kw in keywords.items() if name != "core_num"],
    )
    body = ast.Assign([_store(result)], ast.Call(kernel, args, []))
    stmt = ast.With([ast.withitem(spmd, _store(tid))], [body])
    for node in (spmd, spmd.func, body, body.value, stmt):
        ast.copy_location(node, s)
    return stmt


def _is_self_attr(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _kernel(b: BodyBuilder, node: ast.Attribute) -> ast.expr:
    """`self.kernel`: the jit function `kernel` when the module has one, else the program's.
    (A jit function is known by its flavour; the frontend does not import pldsl.jit.)"""
    if getattr(b.program.ns.get(node.attr), "flavour", None) is not None:
        return ast.copy_location(ast.Name(node.attr, ast.Load()), node)
    return node


def _without_no_dep(b: BodyBuilder, node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Call) and b._pl_name(node.func) == "no_dep":
        if len(node.args) != 1 or node.keywords:
            raise fail("TypeError", "pl.no_dep takes one tensor", b.span(node), "pl.no_dep(x)")
        return node.args[0]
    return node


def _store(node: ast.expr) -> ast.expr:
    if not isinstance(node, ast.Name):
        return node
    return ast.copy_location(ast.Name(node.id, ast.Store()), node)
