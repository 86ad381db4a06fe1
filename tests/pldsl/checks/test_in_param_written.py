"""InParamWritten (warning): pl.assemble / pl.write into a parameter declared In."""

from checkutil import kernel

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


def test_assemble_into_in_param_is_flagged_with_name_and_line():
    kk = k(DIRECT)
    found = kk.rule(RULE)
    assert len(found) == 1
    d = found[0]
    assert d.severity == "warning" and d.span.line == kk.line("write")
    assert d.message.split("'")[1] == "k_cache"
    assert f"at line {kk.line('write')}" in d.message and "In parameter of 'kv_write'" in d.message


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
