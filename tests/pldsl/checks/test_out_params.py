"""OutParamWriteDropped (warning) and OutParamNotShadowed (error)."""

from checkutil import kernel

DROPPED = "OutParamWriteDropped"
SHADOWED = "OutParamNotShadowed"

RMS_CHUNK = """
import pldsl as pl

K_CHUNK = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def rms_chunk(
        self,
        x: pl.Tensor[[16, K_CHUNK], pl.FP32],
        inv_rms: pl.Tensor[[16, 1], pl.FP32],
        gamma: pl.Tensor[[1, K_CHUNK], pl.FP32],
        out: pl.Out[pl.Tensor[[16, K_CHUNK], pl.FP32]],
    ) -> pl.Tensor[[16, K_CHUNK], pl.FP32]:
        normed = pl.col_expand_mul(pl.row_expand_mul(x, inv_rms), gamma)
        STORE
        return out

    @pl.function(type=pl.FunctionType.Opaque)
    def main(
        self,
        x: pl.Tensor[[16, K_CHUNK], pl.FP32],
        inv_rms: pl.Tensor[[16, 1], pl.FP32],
        gamma: pl.Tensor[[1, K_CHUNK], pl.FP32],
        y: pl.Out[pl.Tensor[[16, K_CHUNK], pl.FP32]],
    ) -> pl.Tensor[[16, K_CHUNK], pl.FP32]:
        CALL
        return y
"""


def rms(store: str, call: str = "y = self.rms_chunk(x, inv_rms, gamma, y)"):
    return kernel(RMS_CHUNK.replace("STORE", store).replace("CALL", call))


# ------------------------------------------------------------------ OutParamWriteDropped
# PyPTO's cases (its test_out_param_write_dropped_warning.py), written as pldsl programs.

AB = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.FTYPE)
    def main(
        self,
        a: pl.Tensor[[64, 64], pl.FP32],
        b: pl.Tensor[[64, 64], pl.FP32],
        PARAMS
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        BODY
        return RET
"""


def ab(body: str, params="out: pl.Out[pl.Tensor[[64, 64], pl.FP32]],", ret="out", ftype="Opaque"):
    src = AB.replace("FTYPE", ftype).replace("PARAMS", params).replace("BODY", body)
    return kernel(src.replace("RET", ret))


def dropped(k) -> list[tuple[int, str]]:
    return [(d.span.line, d.message.split("'")[1]) for d in k.rule(DROPPED)]


def test_write_dropped_operator_result_full_message():
    k = ab("with pl.at(level=pl.Level.CORE_GROUP):\n            out = pl.add(a, b)  # drop")
    [d] = k.rule(DROPPED)
    assert d.severity == "warning" and d.span.line == k.line("drop")
    assert d.message == (
        "Assigning to Out parameter 'out' in function 'main' rebinds the name only — the "
        "caller's buffer is never written. Use 'out[:] = <expr>' to write the whole tensor, or "
        "'out[<slices>] = <expr>' for a sub-window."
    )
    assert d.span.col == k.text.splitlines()[d.span.line - 1].index("out") + 1


def test_write_dropped_fresh_local_inout_and_incore():
    k = ab("tmp = pl.add(a, b)\n        out = tmp  # drop")
    assert dropped(k) == [(k.line("drop"), "out")]
    k = ab(
        "acc = pl.add(a, b)  # drop",
        params="acc: pl.InOut[pl.Tensor[[64, 64], pl.FP32]],",
        ret="acc",
    )
    assert "InOut parameter 'acc'" in k.rule(DROPPED)[0].message
    k = ab("out = pl.add(a, b)  # drop", ftype="InCore")
    assert dropped(k) == [(k.line("drop"), "out")]


def test_write_dropped_rms_chunk_bare_rebinding():
    k = rms("out = pl.add(normed, 0.0)  # drop")
    assert dropped(k) == [(k.line("drop"), "out")]
    assert "Out parameter 'out' in function 'rms_chunk' rebinds the name only" in (
        k.rule(DROPPED)[0].message
    )


def test_write_dropped_writes_through_the_parameter_are_silent():
    for body in (
        "out = pl.assemble(out, pl.add(a, b), [0, 0])",
        "out[:] = pl.add(a, b)",
        "out[0:32, 0:64] = pl.slice(a, [32, 64], [0, 0])",
        "out = pl.write(out, [0, 0], 1.0)",
    ):
        assert ab(body).rule(DROPPED) == [], body


def test_write_dropped_a_read_of_the_parameter_counts_as_written_through():
    # PyPTO's documented false negative: without per-op write semantics, a value that reads
    # the parameter is taken as a write-through
    assert ab("out = pl.add(out, b)").rule(DROPPED) == []
    assert rms("out = pl.add(out, normed)").rule(DROPPED) == []
    t = ab("t = pl.mul(out, 2.0)\n        u = pl.add(t, a)\n        out = u")  # transitively
    assert t.rule(DROPPED) == []


def test_write_dropped_writes_through_a_reshape_view_are_silent():
    k = ab(
        "flat = pl.reshape(out, [4096])\n"
        "        flat = pl.assemble(flat, pl.reshape(a, [4096]), [0])\n"
        "        out = pl.reshape(flat, [64, 64])"
    )
    assert k.rule(DROPPED) == []


def test_write_dropped_taint_is_per_parameter():
    two = (
        "written: pl.Out[pl.Tensor[[64, 64], pl.FP32]], "
        "dropped: pl.Out[pl.Tensor[[64, 64], pl.FP32]],"
    )
    k = ab(
        "written = pl.assemble(written, pl.add(a, b), [0, 0])\n"
        "        dropped = pl.mul(written, b)  # drop",
        params=two,
        ret="written",
    )
    assert dropped(k) == [(k.line("drop"), "dropped")]
    k = ab(
        "written = pl.add(a, b)  # one\n        dropped = pl.mul(a, b)  # two",
        params=two,
        ret="written",
    )
    assert dropped(k) == [(k.line("one"), "written"), (k.line("two"), "dropped")]


def test_write_dropped_in_params_and_locals_are_not_reported():
    assert ab("a = pl.add(a, b)", params="", ret="a").rule(DROPPED) == []
    k = ab("tmp = pl.add(a, b)\n        tmp = pl.mul(tmp, b)\n        out[:] = tmp")
    assert k.rule(DROPPED) == []


def test_write_dropped_loop_carry_is_a_write_through():
    k = kernel(
        """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def copy_rows(
        self, x: pl.Tensor[[64, 128], pl.FP32], out: pl.InOut[pl.Tensor[[64, 128], pl.FP32]]
    ) -> pl.Tensor[[64, 128], pl.FP32]:
        for b0, (acc,) in pl.range(0, 64, 16, init_values=(out,)):
            acc = pl.assemble(acc, pl.slice(x, [16, 128], [b0, 0]), [b0, 0])
            staged = pl.yield_(acc)
        out = staged
        return out
"""
    )
    assert k.rule(DROPPED) == []


def test_write_dropped_loop_results_without_the_parameter_are_reported():
    k = ab(
        "for i, (acc,) in pl.range(0, 4, 1, init_values=(a,)):\n"
        "            acc2 = pl.add(acc, b)\n"
        "            staged = pl.yield_(acc2)\n"
        "        out = staged  # drop"
    )
    assert dropped(k) == [(k.line("drop"), "out")]


def test_write_dropped_follows_pypto_variables_not_names():
    # a yield target and an assignment to a carry are new variables, not the parameter
    k = ab(
        "for i, (out,) in pl.range(0, 4, 1, init_values=(out,)):\n"
        "            out = pl.add(a, b)\n"
        "            res = pl.yield_(out)"
    )
    assert k.rule(DROPPED) == []
    k = ab(
        "for i, (acc,) in pl.range(0, 4, 1, init_values=(a,)):\n"
        "            acc2 = pl.add(acc, b)\n"
        "            out = pl.yield_(acc2)"
    )
    assert k.rule(DROPPED) == []


def test_write_dropped_calls_that_read_the_parameter_count_as_writes():
    assert rms("out = pl.assemble(out, normed, [0, 0])").rule(DROPPED) == []
    src = RMS_CHUNK.replace("STORE", "out = pl.assemble(out, normed, [0, 0])")
    k = kernel(src.replace("CALL", "y = self.rms_chunk(x, inv_rms, gamma, x)  # drop"))
    assert dropped(k) == [(k.line("drop"), "y")]  # y is not among the arguments


# ------------------------------------------------------------------ OutParamNotShadowed


def test_not_shadowed_create_tensor_is_an_error():
    k = rms(
        "out = pl.create_tensor([16, K_CHUNK], pl.FP32)  # shadow\n        out = pl.assemble(out, normed, [0, 0])"
    )
    found = k.rule(SHADOWED)
    assert len(found) == 1
    d = found[0]
    assert d.severity == "error" and d.span.line == k.line("shadow")
    assert (
        "'out' is an Out parameter of 'rms_chunk' and cannot be reassigned via pl.create_tensor"
        in d.message
    )
    # reported once, by the error rule only
    assert k.rule(DROPPED) == []


def test_not_shadowed_full_is_an_error():
    k = rms("out = pl.full([16, K_CHUNK], pl.FP32, 0.0)  # shadow")
    assert [d.span.line for d in k.rule(SHADOWED)] == [k.line("shadow")]


def test_not_shadowed_scratch_under_another_name_is_clean():
    k = rms(
        "acc = pl.create_tensor([16, K_CHUNK], pl.FP32)\n"
        "        acc = pl.assemble(acc, normed, [0, 0])\n"
        "        out = pl.assemble(out, acc, [0, 0])"
    )
    assert k.rule(SHADOWED) == [] and k.rule(DROPPED) == []


def test_write_dropped_loop_results_take_what_the_body_yields():
    # the parameter reaches `staged` only through the yield, not through init_values
    k = ab(
        "for i, (acc,) in pl.range(0, 4, 1, init_values=(a,)):\n"
        "            nxt = pl.assemble(out, acc, [0, 0])\n"
        "            staged = pl.yield_(nxt)\n"
        "        out = staged"
    )
    assert k.rule(DROPPED) == []
