"""pypto_vars: which variable each occurrence of a name means, as PyPTO's parser binds it."""

from checkutil import kernel

from pldsl.checks.pypto_vars import Bindings
from pldsl.ir.nodes import Assign, For, Var, walk

SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function
    def main(self, x: pl.Tensor[[64], pl.FP32], n: pl.Scalar[pl.INDEX]) -> pl.Tensor[[64], pl.FP32]:
        a = pl.add(x, x)
        for i, (x,) in pl.range(0, 4, 1, init_values=(a,)):
            x = pl.add(x, x)
            b = pl.add(x, a)
            y = pl.yield_(b)
        for j in pl.range(0, 4, 1):
            c = pl.add(a, y)
            a = pl.add(c, c)
        d = pl.add(x, c)
        return pl.add(d, a)
"""


def _reads(body, name):
    return [
        n
        for s in body
        for n in walk(getattr(s, "value", None))
        if isinstance(n, Var) and n.name == name
    ]


def test_carries_yields_and_leaks():
    f = kernel(SRC).program.function_list[0]
    names = Bindings(f)
    loop, plain = (s for s in f.body if isinstance(s, For))
    [ia] = loop.iter_args
    carry = names.of(ia)
    assert carry.kind == "iter_arg" and not carry.plain
    rebind, use_b = loop.body[0], loop.body[1]
    # reading `x` in the first body statement: the carry; assigning it: a new loop-local variable
    assert {names.of(v) for v in _reads([rebind], "x")} == {carry}
    local = names.of(rebind.targets[0])
    assert local.kind == "let" and local != carry
    assert {names.of(v) for v in _reads([use_b], "x")} == {local}
    # `a` read in the body is the outer variable; after the loop `x` is the parameter again
    outer_a = names.of(f.body[0].targets[0])
    assert {names.of(v) for v in _reads([use_b], "a")} == {outer_a}
    d = next(s for s in f.body if isinstance(s, Assign) and s.targets[0].name == "d")
    assert {names.of(v) for v in _reads([d], "x")} == {Bindings.param("x")}
    # the yield target is a return variable of the loop, bound after it
    c_stmt = plain.body[0]
    assert names.of(_reads([c_stmt], "y")[0]).kind == "return"
    # a loop without carries leaks: `c` after the loop is the body's `c`; `a = ...` in the
    # body assigns the outer `a` in place (a plain variable)
    assert names.of(_reads([d], "c")[0]) == names.of(c_stmt.targets[0])
    assert names.of(plain.body[1].targets[0]) == outer_a
