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


def test_write_dropped_bare_rebinding_is_flagged():
    k = rms("out = pl.add(normed, 0.0)  # drop")
    found = k.rule(DROPPED)
    assert len(found) == 1
    d = found[0]
    assert d.severity == "warning" and d.span.line == k.line("drop")
    assert "Out parameter 'out' in function 'rms_chunk' rebinds the name only" in d.message


def test_write_dropped_read_of_the_param_still_drops_the_write():
    k = rms("out = pl.add(out, normed)  # drop")
    assert [d.span.line for d in k.rule(DROPPED)] == [k.line("drop")]


def test_write_dropped_caller_binding_a_call_that_returns_something_else():
    src = RMS_CHUNK.replace("STORE", "out = pl.assemble(out, normed, [0, 0])").replace(
        "        return out\n\n    @pl.function(type=pl.FunctionType.Opaque)",
        "        return normed\n\n    @pl.function(type=pl.FunctionType.Opaque)",
    )
    k = kernel(src.replace("CALL", "y = self.rms_chunk(x, inv_rms, gamma, y)  # drop"))
    assert [d.span.line for d in k.rule(DROPPED)] == [k.line("drop")]


def test_write_dropped_in_place_write_and_threading_call_are_clean():
    k = rms("out = pl.assemble(out, normed, [0, 0])")
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
