"""StaleBufferRead (warning): reading an older name after an in-place write under a new one."""

from checkutil import kernel, lines

RULE = "StaleBufferRead"

SRC = """
import pldsl as pl

K = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self, x: pl.Tensor[[32, K], pl.FP32], out: pl.Out[pl.Tensor[[32, K], pl.FP32]]
    ) -> pl.Tensor[[32, K], pl.FP32]:
        a = pl.create_tensor([32, K], pl.FP32)
        BODY
        return out
"""


def k(body: str):
    return kernel(SRC.replace("BODY", body))


def test_read_of_old_name_after_assemble_is_flagged():
    kk = k(
        "t = pl.slice(x, [16, K], [0, 0])\n"
        "        b = pl.assemble(a, t, [0, 0])  # write\n"
        "        c = pl.slice(a, [16, K], [0, 0])  # stale\n"
        "        out = pl.assemble(out, pl.add(pl.slice(b, [32, K], [0, 0]), 0.0), [0, 0])\n"
        "        out = pl.assemble(out, c, [0, 0])"
    )
    found = kk.rule(RULE)
    assert lines(found) == [kk.line("stale")]
    d = found[0]
    assert d.severity == "warning"
    assert "'a' is read after its buffer was written in place under the name 'b'" in d.message
    assert f"line {kk.line('write')}" in d.message


def test_stale_read_on_the_next_loop_iteration():
    kk = k(
        "for i in pl.range(0, 32, 16):\n"
        "            r = pl.slice(a, [16, K], [i, 0])  # stale\n"
        "            b = pl.assemble(a, pl.slice(x, [16, K], [i, 0]), [i, 0])  # target\n"
        "            out = pl.assemble(out, r, [i, 0])\n"
        "            out = pl.assemble(out, pl.slice(b, [16, K], [i, 0]), [i, 0])"
    )
    # iteration 2 reads `a` (and writes through it) after iteration 1 wrote it as `b`
    assert lines(kk.rule(RULE)) == [kk.line("stale"), kk.line("target")]


def test_same_name_rebinding_is_clean():
    kk = k(
        "for i in pl.range(0, 32, 16):\n"
        "            a = pl.assemble(a, pl.slice(x, [16, K], [i, 0]), [i, 0])\n"
        "            out = pl.assemble(out, pl.slice(a, [16, K], [i, 0]), [i, 0])"
    )
    assert kk.rule(RULE) == []


def test_loop_carried_accumulator_is_clean():
    kk = k(
        "for i, (acc,) in pl.range(0, 32, 16, init_values=(a,)):\n"
        "            acc2 = pl.assemble(acc, pl.slice(x, [16, K], [i, 0]), [i, 0])\n"
        "            acc = pl.yield_(acc2)\n"
        "        out = pl.assemble(out, acc, [0, 0])"
    )
    assert kk.rule(RULE) == []


def test_a_write_in_either_branch_makes_the_old_name_stale_after_the_if():
    kk = k(
        "t = pl.slice(x, [16, K], [0, 0])\n"
        "        b = a\n"
        "        if pl.tensor.dim(x, 0) == 32:\n"
        "            b = pl.assemble(a, t, [0, 0])\n"
        "        c = pl.slice(a, [16, K], [0, 0])  # stale\n"
        "        out = pl.assemble(out, pl.add(pl.slice(b, [32, K], [0, 0]), 0.0), [0, 0])\n"
        "        out = pl.assemble(out, c, [0, 0])"
    )
    assert lines(kk.rule(RULE)) == [kk.line("stale")]


def test_every_other_name_of_the_buffer_goes_stale():
    kk = k(
        "t = pl.slice(x, [16, K], [0, 0])\n"
        "        alias = a\n"
        "        a = pl.assemble(a, t, [0, 0])\n"
        "        c = pl.slice(alias, [16, K], [0, 0])  # stale\n"
        "        out = pl.assemble(out, pl.add(pl.slice(a, [32, K], [0, 0]), 0.0), [0, 0])\n"
        "        out = pl.assemble(out, c, [0, 0])"
    )
    found = kk.rule(RULE)
    assert lines(found) == [kk.line("stale")]
    assert "'alias' is read after its buffer was written in place under the name 'a'" in (
        found[0].message
    )


def test_a_loop_that_may_not_run_keeps_the_names_it_rebinds():
    kk = k(
        "t = pl.slice(x, [16, K], [0, 0])\n"
        "        alias = a\n"
        "        for i in pl.range(0, pl.tensor.dim(x, 0) - 32):\n"
        "            alias = pl.create_tensor([32, K], pl.FP32)\n"
        "        a = pl.assemble(a, t, [0, 0])\n"
        "        c = pl.slice(alias, [16, K], [0, 0])  # stale\n"
        "        out = pl.assemble(out, pl.add(pl.slice(a, [32, K], [0, 0]), 0.0), [0, 0])\n"
        "        out = pl.assemble(out, c, [0, 0])"
    )
    assert lines(kk.rule(RULE)) == [kk.line("stale")]


def test_a_carry_written_under_another_name_is_fresh_again_at_the_header():
    kk = k(
        "for i, (acc,) in pl.range(0, 32, 16, init_values=(a,)):\n"
        "            acc2 = pl.assemble(acc, pl.slice(x, [16, K], [i, 0]), [i, 0])\n"
        "            res = pl.yield_(acc2)\n"
        "        out = pl.assemble(out, res, [0, 0])"
    )
    assert kk.rule(RULE) == []


ALIAS_RETURN = """
import pldsl as pl

K = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self, x: pl.Tensor[[32, K], pl.FP32], kv: pl.Out[pl.Tensor[[32, K], pl.FP32]]
    ) -> pl.Tensor[[32, K], pl.FP32]:
        kv_flat = kv
        kv_flat = pl.assemble(kv_flat, pl.slice(x, [16, K], [0, 0]), [0, 0])
        READ
        return RET
"""


def test_returning_a_parameter_written_through_an_alias_is_clean():
    # dspark decode_compressor_ratio4.py (HEAD): `kv_flat = kv`, writes into kv_flat, `return kv`
    def src(read: str = "", ret: str = "kv"):
        return kernel(ALIAS_RETURN.replace("READ", read).replace("RET", ret))

    assert src().rule(RULE) == []
    # a read of the parameter anywhere else still warns, and so does returning an expression
    kk = src("y = pl.add(kv, x)  # stale\n        kv_flat = pl.assemble(kv_flat, y, [0, 0])")
    assert lines(kk.rule(RULE)) == [kk.line("stale")]
    kk = src("y = pl.add(kv_flat, x)", ret="pl.add(kv, y)  # stale")
    assert lines(kk.rule(RULE)) == [kk.line("stale")]
