"""NoNestedInCore (error): an InCore scope inside another (PyPTO's structural verifier)."""

from checkutil import kernel, lines

RULE = "NoNestedInCore"

SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Opaque)
    def main(
        self, x: pl.Tensor[[64], pl.FP32], out: pl.Out[pl.Tensor[[64], pl.FP32]]
    ) -> pl.Tensor[[64], pl.FP32]:
        with OUTER:  # outer
            y = pl.add(x, x)
            for i in pl.range(0, 2):
                with INNER:  # inner
                    z = pl.mul(y, y)
                    out = pl.assemble(out, z, [0])
        return out
"""

AT = "pl.at(level=pl.Level.CORE_GROUP)"


def k(outer: str, inner: str):
    return kernel(SRC.replace("OUTER", outer).replace("INNER", inner))


def test_an_incore_scope_inside_another_is_rejected_with_pyptos_message():
    # PyPTO's test_nested_incore_scopes_rejected_by_verifier, through a loop in between
    for outer, inner in ((AT, AT), ("pl.incore()", AT), (AT, "pl.incore()")):
        kk = k(outer, inner)
        [d] = kk.rule(RULE)
        assert d.severity == "error" and d.span.line == kk.line("inner")
        assert d.message == (
            "Nested InCore scope detected — InCore scopes must not contain other InCore scopes"
        )
        assert f":{kk.line('outer')}:" in d.help


def test_scopes_that_are_not_incore_may_hold_one():
    for outer in ("pl.auto_incore()", "pl.scope()", "pl.at(level=pl.Level.CHIP)"):
        assert k(outer, AT).rule(RULE) == [], outer
    # an InCore scope holding a scope of another kind is fine
    assert k(AT, "pl.scope()").rule(RULE) == []


def test_siblings_are_not_nested_and_each_nested_one_is_reported():
    kk = kernel(
        SRC.replace("OUTER", AT)
        .replace("INNER", AT)
        .replace(
            "        return out",
            f"        with {AT}:\n            with {AT}:  # second\n"
            "                out = pl.assemble(out, x, [0])\n        return out",
        )
    )
    assert lines(kk.rule(RULE)) == [kk.line("inner"), kk.line("second")]
