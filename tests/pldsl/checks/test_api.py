"""The check API: registry, run_checks options, ordering, pl.check, and speed."""

import pytest
from checkutil import kernel
from qwen3_shapes import CLEAN

import pldsl as pl
from pldsl.checks import RULES, has_errors, run_checks
from pldsl.ir.traversal import iter_stmts

EXPECTED_RULES = {
    "InOutUseDiscipline": "error",
    "OutParamNotShadowed": "error",
    "NoNestedInCore": "error",
    "MisplacedComputeOp": "error",
    "StaticOutOfBounds": "error",
    "OutParamWriteDropped": "warning",
    "InParamWritten": "warning",
    "UnwrittenOutput": "warning",
    "StaleBufferRead": "warning",
    "SpmdBlockRace": "error",
    "RankDependentCollective": "warning",
    "LowPrecisionArith": "warning",
    "UnpaddedReduction": "warning",
    "UnusedValue": "warning",
}

# One finding per rule family: an error (InOutUseDiscipline) and two warnings.
MIXED = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def mutate(self, t: pl.InOut[pl.Tensor[[64], pl.FP32]]) -> pl.Tensor[[64], pl.FP32]:
        return t

    @pl.function
    def main(
        self, x: pl.Tensor[[64], pl.BF16], y: pl.Tensor[[64], pl.FP32]
    ) -> pl.Tensor[[64], pl.FP32]:
        z = pl.add(x, x)  # lowp
        t = self.mutate(y)
        r = pl.add(y, t)  # inout
        return r
"""


def test_registry_lists_every_rule_with_severity_doc_and_function():
    assert {name: rule.severity for name, rule in RULES.items()} == EXPECTED_RULES
    for name, (severity, doc, fn, default) in RULES.items():
        assert default is (name != "InParamWritten")  # the one opt-in rule
        assert severity in ("error", "warning")
        assert doc and "\n" not in doc, name
        assert callable(fn)


def test_every_rule_module_has_a_docstring():
    import importlib

    for name, rule in RULES.items():
        module = importlib.import_module(rule.check.__module__)
        assert module.__doc__ and module.__doc__.startswith(name), name


def test_run_checks_sorts_and_labels():
    k = kernel(MIXED)
    found = run_checks(k.program)
    assert [(d.rule, d.span.line) for d in found] == [
        ("UnusedValue", k.line("lowp")),  # column 9: the name
        ("LowPrecisionArith", k.line("lowp")),  # column 13: the call
        ("InOutUseDiscipline", k.line("inout")),
    ]
    assert [d.severity for d in found] == ["warning", "warning", "error"]
    assert all(d.help for d in found)
    assert has_errors(found)
    keys = [(d.span.file, d.span.line, d.span.col) for d in found]
    assert keys == sorted(keys)


def test_disable_and_warnings_as_errors():
    k = kernel(MIXED)
    found = run_checks(k.program, disable=("InOutUseDiscipline", "UnusedValue"))
    assert [d.rule for d in found] == ["LowPrecisionArith"] and not has_errors(found)
    strict = run_checks(k.program, disable=["InOutUseDiscipline"], warnings_as_errors=True)
    assert {d.severity for d in strict} == {"error"}
    assert run_checks(k.program, disable=tuple(RULES)) == []


def test_unknown_rule_name_is_rejected():
    with pytest.raises(ValueError, match="unknown check rule.*NoSuchRule"):
        run_checks(kernel(MIXED).program, disable=("NoSuchRule",))


def test_a_crashing_rule_is_reported_and_the_others_still_run(monkeypatch):
    from pldsl import checks

    def boom(program):
        raise RuntimeError("bad IR")

    monkeypatch.setitem(checks.RULES, "UnusedValue", checks.Rule("warning", "x", boom))
    found = run_checks(kernel(MIXED).program)
    crashed = [d for d in found if d.rule == "UnusedValue"]
    assert len(crashed) == 1 and "internal error" in crashed[0].message
    assert "RuntimeError: bad IR" in crashed[0].message
    assert {d.rule for d in found} == {"UnusedValue", "LowPrecisionArith", "InOutUseDiscipline"}


def test_pl_check_forwards_options():
    k = kernel(MIXED)
    assert [d.rule for d in pl.check(k.program)] == [
        "UnusedValue",
        "LowPrecisionArith",
        "InOutUseDiscipline",
    ]
    assert [d.rule for d in pl.check(k.program, disable=("UnusedValue", "LowPrecisionArith"))] == [
        "InOutUseDiscipline"
    ]
    assert {d.severity for d in pl.check(k.program, warnings_as_errors=True)} == {"error"}


@pytest.fixture(scope="module")
def clean_program():
    return kernel(CLEAN).program


@pytest.mark.parametrize("rule", sorted(EXPECTED_RULES))
def test_qwen3_shapes_pass_every_rule(rule, clean_program):
    # batch tiles over batch_padded with valid_shape, K-accumulation in FP32, paged-KV slices
    # at block_table offsets, data ops outside pl.at, a local create_tensor placeholder
    found = RULES[rule].check(clean_program)
    assert found == [], [d.render() for d in found]


def _big_program(tiles: int) -> str:
    """A ~1000-statement orchestration: `tiles` RMSNorm + projection scopes in a row."""
    out = [
        "import pldsl as pl",
        'N = pl.dynamic("N")',
        "H = 256",
        "KC = 64",
        "@pl.program",
        "class Big:",
        "    @pl.function(type=pl.FunctionType.Opaque)",
        "    def main(self, x: pl.Tensor[[N, H], pl.BF16], g: pl.Tensor[[1, H], pl.FP32],",
        "             w: pl.Tensor[[H, H], pl.BF16], y: pl.Out[pl.Tensor[[N, H], pl.FP32]])"
        " -> pl.Tensor[[N, H], pl.FP32]:",
        "        n = pl.tensor.dim(x, 0)",
        "        padded = (n + 15) // 16 * 16",
        "        acc = pl.create_tensor([N, H], pl.FP32)",
    ]
    for i in range(tiles):
        out += [
            "        for b0 in pl.parallel(0, padded, 16):",
            "            with pl.at(level=pl.Level.CORE_GROUP):",
            f"                v{i} = pl.min(16, n - b0)",
            f"                s{i} = pl.full([16, 1], pl.FP32, 0.0)",
            "                for kb in pl.range(H // KC):",
            f"                    c{i} = pl.cast(pl.slice(x, [16, KC], [b0, kb * KC], valid_shape=[v{i}, KC]), pl.FP32)",
            f"                    s{i} = pl.add(s{i}, pl.row_sum(pl.mul(c{i}, c{i})))",
            f"                r{i} = pl.rsqrt(pl.add(pl.mul(s{i}, 0.00390625), 1e-6))",
            "                for kb in pl.range(H // KC):",
            f"                    d{i} = pl.cast(pl.slice(x, [16, KC], [b0, kb * KC], valid_shape=[v{i}, KC]), pl.FP32)",
            f"                    e{i} = pl.col_expand_mul(pl.row_expand_mul(d{i}, r{i}), pl.slice(g, [1, KC], [0, kb * KC]))",
            f"                    acc = pl.assemble(acc, e{i}, [b0, kb * KC])",
            f"                m{i} = pl.matmul(pl.cast(pl.slice(acc, [16, H], [b0, 0]), pl.BF16), w, out_dtype=pl.FP32)",
            f"                t{i} = pl.slice(m{i}, [16, H], [0, 0], valid_shape=[v{i}, H])",
            f"                y = pl.assemble(y, t{i}, [b0, 0])",
        ]
    out.append("        return y")
    return "\n".join(out) + "\n"


def test_a_thousand_clean_statements_give_no_finding():
    # Check time is measured in benchmarks/static_tools.py, not asserted (shared machines).
    k = kernel(_big_program(72))
    n = sum(1 for f in k.program.function_list for _ in iter_stmts(f.body))
    assert n >= 1000
    found = run_checks(k.program)
    assert found == [], [d.render() for d in found]
