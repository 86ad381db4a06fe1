"""Written In parameters: PyPTO's direction upgrade (param_directions) and the opt-in rule
InParamWritten that points at the writes."""

import pytest
from checkutil import kernel

import pldsl as pl
from pldsl.checks import RULES, run_checks, upgrade_param_directions
from pldsl.checks.param_directions import written_in_params

RULE = "InParamWritten"

PAGED_KV = """
import pldsl as pl

U = pl.dynamic("U")
ROWS = pl.dynamic("ROWS")
HEAD_DIM = 128
BLOCK = 16


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Opaque)
    def kv_write(
        self,
        k_new: pl.Tensor[[U, HEAD_DIM], pl.BF16],
        slot_mapping: pl.Tensor[[U], pl.INT32],
        k_cache: DIRECTION,
    ) -> pl.Tensor[[ROWS, HEAD_DIM], pl.BF16]:
        user_batch = pl.tensor.dim(k_new, 0)
        for b in pl.parallel(0, user_batch, 1):
            with pl.at(level=pl.Level.CORE_GROUP):
                slot = pl.read(slot_mapping, [b])
                row = pl.slice(k_new, [1, HEAD_DIM], [b, 0])
                BODY
        return k_cache
"""

DIRECT = "k_cache = pl.assemble(k_cache, row, [slot, 0])  # write"
VIA = "kc = pl.assemble(k_cache, row, [slot, 0])\n                kc = pl.write(kc, [slot, 0], pl.read(row, [0, 0]))  # write2"


def k(body: str, direction: str = "pl.Tensor[[ROWS, HEAD_DIM], pl.BF16]"):
    return kernel(PAGED_KV.replace("DIRECTION", direction).replace("BODY", body))


def test_the_rule_is_opt_in():
    assert RULES[RULE].default is False
    assert all(r.default for name, r in RULES.items() if name != RULE)
    kk = k(DIRECT)
    assert [d.rule for d in run_checks(kk.program)] == []  # PyPTO upgrades k_cache: legal
    assert [d.rule for d in run_checks(kk.program, enable=(RULE,))] == [RULE]
    assert [d.rule for d in pl.check(kk.program, enable=RULE)] == [RULE]  # one name
    assert run_checks(kk.program, enable=(RULE,), disable=(RULE,)) == []  # disable wins
    with pytest.raises(ValueError, match="unknown check rule.*NoSuchRule"):
        run_checks(kk.program, enable=("NoSuchRule",))


def test_assemble_into_in_param_is_flagged_with_name_line_and_upgrade():
    kk = k(DIRECT)
    found = kk.rule(RULE)
    assert len(found) == 1
    d = found[0]
    assert d.severity == "warning" and d.span.line == kk.line("write")
    assert d.message.split("'")[1] == "k_cache"
    assert f"at line {kk.line('write')}" in d.message and "In parameter of 'kv_write'" in d.message
    # the kernel returns k_cache but never reads its data: write-only, so PyPTO makes it Out
    assert d.message.endswith("PyPTO upgrades it to Out (UpgradeWrittenTensorParamDirections)")


def test_write_through_a_name_rebound_from_the_param():
    kk = k(VIA)
    found = kk.rule(RULE)
    assert len(found) == 2
    assert any(d.span.line == kk.line("write2") and "through 'kc'" in d.message for d in found)


def test_inout_param_is_clean():
    assert k(DIRECT, "pl.InOut[pl.Tensor[[ROWS, HEAD_DIM], pl.BF16]]").rule(RULE) == []


def test_writes_to_local_scratch_are_clean():
    body = (
        "scratch = pl.create_tensor([16, HEAD_DIM], pl.BF16)\n"
        "                scratch = pl.assemble(scratch, row, [0, 0])\n"
        "                k_cache = pl.assemble(k_cache, pl.slice(scratch, [1, HEAD_DIM], [0, 0]), [slot, 0])"
    )
    assert k(body, "pl.InOut[pl.Tensor[[ROWS, HEAD_DIM], pl.BF16]]").rule(RULE) == []


# ------------------------------------------------------------------ the upgrade itself


def directions(kk) -> dict[str, str]:
    f = kk.program.function_list[0]
    return {p: d for p, (d, _) in written_in_params(kk.program, f).items()}


def test_read_and_written_is_inout_written_only_is_out():
    assert directions(k(DIRECT)) == {"k_cache": "Out"}
    read_first = (
        "old = pl.cast(pl.slice(k_cache, [1, HEAD_DIM], [slot, 0]), pl.FP32)\n" + 16 * " " + DIRECT
    )
    assert directions(k(read_first)) == {"k_cache": "InOut"}  # a view that is then read
    read_elem = "v = pl.read(k_cache, [0, 0])\n                " + DIRECT
    assert directions(k(read_elem)) == {"k_cache": "InOut"}
    # a view that is never read, and a shape query, read no data
    view_only = (
        "n = pl.tensor.dim(k_cache, 0)\n"
        "                old = pl.slice(k_cache, [1, HEAD_DIM], [slot, 0])\n                "
        + DIRECT
    )
    assert directions(k(view_only)) == {"k_cache": "Out"}


def test_writes_through_views_and_names_count():
    assert directions(k(VIA)) == {"k_cache": "Out"}
    via_view = (
        "win = pl.slice(k_cache, [16, HEAD_DIM], [0, 0])\n"
        "                win = pl.assemble(win, row, [0, 0])"
    )
    assert directions(k(via_view)) == {"k_cache": "Out"}


def test_an_if_joins_the_buffers_of_its_branches():
    for then, other in (("k_cache", "scratch"), ("scratch", "k_cache")):
        body = (
            "scratch = pl.create_tensor([ROWS, HEAD_DIM], pl.BF16)\n"
            "                if slot == 0:\n"
            f"                    kc = {then}\n"
            "                else:\n"
            f"                    kc = {other}\n"
            "                kc = pl.assemble(kc, row, [slot, 0])"
        )
        assert directions(k(body)) == {"k_cache": "Out"}, then


def test_a_name_rebound_to_scratch_no_longer_writes_the_parameter():
    # flow-sensitive: after `kc = create_tensor`, writes into kc are scratch writes
    body = (
        "kc = pl.slice(k_cache, [1, HEAD_DIM], [slot, 0])\n"
        "                kc = pl.create_tensor([1, HEAD_DIM], pl.BF16)\n"
        "                kc = pl.assemble(kc, row, [0, 0])"
    )
    assert directions(k(body)) == {}


def test_loop_carries_pass_the_buffer_on():
    kk = kernel(
        """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def fill(
        self, x: pl.Tensor[[64, 128], pl.FP32], dst: pl.Tensor[[64, 128], pl.FP32]
    ) -> pl.Tensor[[64, 128], pl.FP32]:
        for b0, (acc,) in pl.range(0, 64, 16, init_values=(dst,)):
            acc = pl.assemble(acc, pl.slice(x, [16, 128], [b0, 0]), [b0, 0])  # write
            staged = pl.yield_(acc)
        return staged
"""
    )
    assert directions(kk) == {"dst": "Out"}
    [d] = kk.rule(RULE)
    assert d.span.line == kk.line("write") and "through 'acc'" in d.message


def test_loop_results_and_call_results_carry_the_buffer():
    kk = kernel(
        """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def same(self, t: pl.Tensor[[64, 128], pl.FP32]) -> pl.Tensor[[64, 128], pl.FP32]:
        return t

    @pl.function(type=pl.FunctionType.InCore)
    def fill(
        self, x: pl.Tensor[[16, 128], pl.FP32], dst: pl.Tensor[[64, 128], pl.FP32],
        dst2: pl.Tensor[[64, 128], pl.FP32],
    ) -> pl.Tensor[[64, 128], pl.FP32]:
        for b0, (acc,) in pl.range(0, 4, 1, init_values=(dst,)):
            staged = pl.yield_(acc)
        staged = pl.assemble(staged, x, [0, 0])
        d2 = self.same(dst2)
        d2 = pl.assemble(d2, x, [16, 0])
        return staged
"""
    )
    f = kk.program.function_list[1]
    assert {p: d for p, (d, _) in written_in_params(kk.program, f).items()} == {
        "dst": "Out",
        "dst2": "InOut",  # passed to a call: a read
    }


def test_declared_directions_and_reads_only_are_left_alone():
    assert directions(k(DIRECT, "pl.InOut[pl.Tensor[[ROWS, HEAD_DIM], pl.BF16]]")) == {}
    assert directions(k("v = pl.read(k_cache, [0, 0])")) == {}


def test_upgraded_program_prints_and_round_trips():
    kk = k(
        "old = pl.cast(pl.slice(k_cache, [1, HEAD_DIM], [slot, 0]), pl.FP32)\n" + 16 * " " + DIRECT
    )
    up = upgrade_param_directions(kk.program)
    f = up.function_list[0]
    assert [p.direction for p in f.params] == ["In", "In", "InOut"]
    assert kk.program.function_list[0].params[2].direction == "In"  # the input is unchanged
    text = pl.print_ir(up)
    assert "k_cache: pl.InOut[pl.Tensor[[ROWS, 128], pl.BF16]]" in text
    assert pl.structural_equal(pl.parse_ir(text), up)
    assert run_checks(up) == run_checks(kk.program)  # the same findings (UnusedValue: old)
    assert upgrade_param_directions(up) is not up and pl.structural_equal(
        upgrade_param_directions(up), up
    )  # nothing left to upgrade


def test_cli_ir_upgraded_and_check_enable(tmp_path, capsys):
    from pldsl.cli import main

    path = tmp_path / "kv.py"
    path.write_text(
        PAGED_KV.replace("DIRECTION", "pl.Tensor[[ROWS, HEAD_DIM], pl.BF16]").replace(
            "BODY", DIRECT
        )
    )
    assert main(["ir", str(path)]) == 0
    plain = capsys.readouterr().out
    assert main(["ir", "--upgraded", str(path)]) == 0
    upgraded = capsys.readouterr().out
    assert "k_cache: pl.Tensor[[ROWS, 128], pl.BF16]" in plain
    assert upgraded == plain.replace(  # the signature only
        "k_cache: pl.Tensor[[ROWS, 128], pl.BF16]",
        "k_cache: pl.Out[pl.Tensor[[ROWS, 128], pl.BF16]]",
        1,
    )
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith("0 error(s), 0 warning(s)")
    assert main(["check", "--enable", RULE, str(path)]) == 0
    assert "warning[InParamWritten]" in capsys.readouterr().out
    assert main(["check", "--enable", "NoSuchRule", str(path)]) == 2
    assert "unknown rule(s) for --enable: NoSuchRule" in capsys.readouterr().err
