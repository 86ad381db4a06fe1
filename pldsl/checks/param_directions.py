"""Written `In` parameters, upgraded as PyPTO's `UpgradeWrittenTensorParamDirections` does.

PyPTO does not reject an in-place write (`pl.assemble`, `pl.write`) into a tensor parameter
declared `In`: a compiler pass traces every read and write back to the parameter it comes
from and upgrades each written `In` parameter to `Out` (written only) or `InOut` (read and
written), so the runtime's task graph orders later readers after the write. The checks model
that: such a parameter is as good as declared, and only the opt-in rule `InParamWritten`
points at the write.

The analysis, per function, in statement order: a parameter's buffer passes to a name through
an assignment of the parameter, of a view of it (`pl.slice`, `pl.reshape`), of an in-place
write into it, or of a user call that returns it; through loop carries and yields; an `if`
joins its branches; rebinding a name to anything else drops it (flow-sensitive, as PyPTO's
origin map). A write is the target of `pl.assemble` / `pl.write`; every other use of a
buffer as an op or call argument is a read, except as the viewed tensor of a view op and in
`pl.tensor.dim` (a shape query). Plain copies, yields and returns neither read nor write.

pldsl does not outline `pl.at` scopes into InCore functions as PyPTO does: the upgrade is
shown on the function whose body (scopes included) writes the parameter.
`upgrade_param_directions(program)` returns the program with those directions, which
`pldsl ir --upgraded` prints.
"""

from __future__ import annotations

import dataclasses

from pldsl.ir.analysis import own_yields
from pldsl.ir.nodes import (
    Assign,
    Call,
    Expr,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    MakeTuple,
    OpCall,
    Program,
    Return,
    Scope,
    Stmt,
    TupleGet,
    Var,
    While,
    Yield,
)
from pldsl.ir.traversal import VIEW_OPS, iter_expr, write_target
from pldsl.ir.types import TensorType

from .common import Aliases, callee, returned_params

Origins = frozenset[str]
Env = dict[str, Origins]
_NONE: Origins = frozenset()


class _Access:
    """Which tensor parameters of one function are read and which are written."""

    def __init__(self, program: Program, func: Function):
        self.program = program
        self.read: set[str] = set()
        self.written: dict[str, list[OpCall]] = {}  # parameter -> its writes, in source order
        env: Env = {
            p.name: frozenset({p.name}) for p in func.params if isinstance(p.type, TensorType)
        }
        self._block(func.body, env)

    # -------------------------------------------------------------- values
    def _items(self, e: Expr | None, env: Env) -> list[Origins]:
        """The buffers a value may be, one entry per item of a tuple value."""
        if isinstance(e, Var):
            return [env.get(e.name, _NONE)]
        if isinstance(e, TupleGet):
            items = self._items(e.value, env)
            return [items[e.index] if e.index < len(items) else _NONE]
        if isinstance(e, MakeTuple):
            return [self._items(i, env)[0] for i in e.items]
        if isinstance(e, OpCall):
            target = write_target(e)
            if target is not None:
                return self._items(target, env)[:1]
            if e.op in VIEW_OPS:
                return self._items(e.args[0], env)[:1]
        if isinstance(e, Call):
            return self._call_items(e, env)
        return [_NONE]

    def _call_items(self, call: Call, env: Env) -> list[Origins]:
        f = callee(self.program, call)
        if f is None:
            return [_NONE]
        out = []
        for item in returned_params(self.program, f):
            origins: set[str] = set()
            for idx in item:
                if idx != Aliases.UNKNOWN and idx < len(call.args):
                    origins |= self._items(call.args[idx], env)[0]
            out.append(frozenset(origins))
        return out or [_NONE]

    def _value(self, e: object, env: Env) -> Origins:
        """The buffers an argument hands to its op: a list's items, a nested call's result."""
        if isinstance(e, ListExpr):
            return frozenset().union(*(self._value(i, env) for i in e.items))
        if isinstance(e, (Var, TupleGet, OpCall, Call)):
            return frozenset().union(*self._items(e, env))
        return _NONE

    def _access(self, e: object, env: Env) -> None:
        """Record the reads and writes of every op and call inside an expression (nested ones
        too: `pl.exp(pl.slice(t, ...))` reads `t` through the view)."""
        for node in iter_expr(e):
            if not isinstance(node, (OpCall, Call)):
                continue
            skip = None
            if isinstance(node, OpCall):
                target = write_target(node)
                if target is not None:
                    for p in self._items(target, env)[0]:
                        writes = self.written.setdefault(p, [])
                        if not any(w is node for w in writes):  # loops are walked repeatedly
                            writes.append(node)
                    skip = target
                elif node.op in VIEW_OPS or node.op == "dim":
                    skip = node.args[0]  # a view or a shape query reads no data
            for a in node.args:
                if a is not skip:
                    self.read |= self._value(a, env)

    # -------------------------------------------------------------- statements
    def _block(self, body: tuple[Stmt, ...], env: Env) -> Env:
        for s in body:
            env = self._stmt(s, env)
        return env

    def _stmt(self, s: Stmt, env: Env) -> Env:
        if isinstance(s, Assign):
            self._access(s.value, env)
            items = self._items(s.value, env)
            env = dict(env)
            if len(s.targets) == 1 and len(items) > 1:  # a tuple kept whole: not tracked
                items = [_NONE]
            for i, t in enumerate(s.targets):
                env[t.name] = items[i] if i < len(items) else _NONE
            return env
        if isinstance(s, (ExprStmt, Return, Yield)):
            for e in (s.expr,) if isinstance(s, ExprStmt) else s.values:
                self._access(e, env)
            return env
        if isinstance(s, Scope):
            return self._block(s.body, env)
        if isinstance(s, If):
            self._access(s.cond, env)
            return _join(self._block(s.then_body, env), self._block(s.else_body, env))
        if isinstance(s, (For, While)):
            return self._for(s, env)
        return env

    def _for(self, s: For | While, env: Env) -> Env:
        heads = (s.start, s.stop, s.step) if isinstance(s, For) else (s.cond,)
        for e in (*heads, *s.init_values):
            self._access(e, env)
        carried = [self._items(v, env)[0] for v in s.init_values]
        head = dict(env)
        for _ in range(8):  # to a fixed point: what iteration 2 starts with
            for ia, o in zip(s.iter_args, carried):
                head[ia.name] = o
            end = self._block(s.body, head)
            yielded = _yield_origins(s, end, self)
            new = [c | y for c, y in zip(carried, yielded)]
            grown = _join(head, end)
            if new == carried and grown == head:
                break
            carried, head = new, grown
        after = _join(env, head)  # the body may run zero times
        for y in own_yields(s.body):
            for t, o in zip(y.targets, carried):
                after[t.name] = o
        return after


def _yield_origins(loop: For, env: Env, access: _Access) -> list[Origins]:
    out = [_NONE] * len(loop.iter_args)
    for y in own_yields(loop.body):
        for i, v in enumerate(y.values[: len(out)]):
            out[i] = out[i] | access._items(v, env)[0]
    return out


def _join(a: Env, b: Env) -> Env:
    out = dict(a)
    for name, o in b.items():
        out[name] = out.get(name, _NONE) | o
    return out


def written_in_params(program: Program, func: Function) -> dict[str, tuple[str, list[OpCall]]]:
    """The `In` tensor parameters `func` writes: name -> (upgraded direction, the writes)."""
    ins = {p.name for p in func.params if p.direction == "In" and isinstance(p.type, TensorType)}
    if not ins or func.is_host_stub:
        return {}
    access = _Access(program, func)
    return {
        p: ("InOut" if p in access.read else "Out", access.written[p])
        for p in sorted(ins & set(access.written))
    }


def upgrade_param_directions(program: Program) -> Program:
    """The program with every written `In` tensor parameter upgraded to `Out` or `InOut`."""
    funcs = []
    for f in program.function_list:
        upgrades = written_in_params(program, f)
        params = tuple(
            dataclasses.replace(p, direction=upgrades[p.name][0]) if p.name in upgrades else p
            for p in f.params
        )
        funcs.append(dataclasses.replace(f, params=params) if upgrades else f)
    return dataclasses.replace(program, function_list=tuple(funcs))


__all__ = ["upgrade_param_directions", "written_in_params"]
