"""SpmdBlockRace (error): a block of a pl.spmd grid reads what another block writes.

Each case has both sides of its boundary: a read that ends exactly at the block's own window
(clean) and one element past it (a finding)."""

import textwrap

import pytest
from checkutil import Kernel, kernel, lines

import pldsl as pl
import pldsl.distributed as pld

RULE = "SpmdBlockRace"

SRC = """
import pldsl as pl

S = 8
B = 4


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(
        self,
        a: pl.Tensor[[B * S + 2, 16], pl.FP32],
        n: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[B * S + 2, 16], pl.FP32]],
    ) -> pl.Tensor[[B * S + 2, 16], pl.FP32]:
        BODY
        return out
"""


def k(body: str):
    return kernel(SRC.replace("BODY", body))


def body(read: str, grid: str = "for b in pl.spmd(B):") -> str:
    return (
        f"{grid}\n"
        f"            r = {read}  # read\n"
        "            out = pl.assemble(out, pl.slice(a, [S, 16], [b * S, 0]), [b * S, 0])"
    )


@pytest.mark.parametrize(
    "read",
    [
        "pl.slice(out, [S, 16], [b * S, 0])",  # exactly its own window
        "pl.slice(out, [S - 1, 16], [b * S + 1, 0])",  # ends exactly at its own edge
        "pl.slice(a, [S + 1, 16], [b * S, 0])",  # a buffer the grid does not write
        "pl.read(out, [b * S + S - 1, 3])",  # its own last row
        "pl.slice(out, [S + 1, 16], [b * S + n, 0])",  # runtime offset: not evaluated
    ],
)
def test_clean(read):
    assert k(body(read)).rule(RULE) == []


@pytest.mark.parametrize(
    "read, reader, writer",
    [
        ("pl.slice(out, [S + 1, 16], [b * S, 0])", 0, 1),  # one row past its own edge
        ("pl.slice(out, [S, 16], [b * S + 1, 0])", 0, 1),  # shifted by one row
        ("pl.read(out, [b * S + S, 3])", 0, 1),  # the element just past its window
        ("pl.exp(out)", 0, 1),  # the whole buffer
    ],
)
def test_read_of_another_blocks_window(read, reader, writer):
    kk = k(body(read))
    found = kk.rule(RULE)
    assert lines(found) == [kk.line("read")]
    assert found[0].severity == "error"
    assert f"block {reader} of this pl.spmd grid reads 'out' where block {writer} writes it" in (
        found[0].message
    )


def test_read_before_its_own_window_from_block_one_on():
    kk = k(
        "for b in pl.spmd(B):\n"
        "            k1 = pl.max(b, 1)\n"
        "            r = pl.slice(out, [1, 16], [k1 * S - 1, 0])  # read\n"
        "            out = pl.assemble(out, pl.slice(a, [S, 16], [b * S, 0]), [b * S, 0])"
    )
    found = kk.rule(RULE)
    assert lines(found) == [kk.line("read")]
    assert "block 1 of this pl.spmd grid reads 'out' where block 0 writes it" in found[0].message


def test_with_form_and_block_index_variable():
    kk = k(
        "with pl.spmd(B):\n"
        "            j = pl.tile.get_block_idx() + 1\n"
        "            r = pl.slice(out, [S, 16], [(j - 1) * S + 1, 0])  # read\n"
        "            out = pl.assemble(out, pl.slice(a, [S, 16], [(j - 1) * S, 0]), [(j - 1) * S, 0])"
    )
    assert lines(kk.rule(RULE)) == [kk.line("read")]


@pytest.mark.parametrize("grid, found", [("for b in pl.spmd(1):", 0), ("for b in pl.spmd(2):", 1)])
def test_a_single_block_has_no_other_block(grid, found):
    assert len(k(body("pl.slice(out, [S + 1, 16], [b * S, 0])", grid)).rule(RULE)) == found


def test_grid_of_runtime_size_is_not_evaluated():
    assert (
        k(body("pl.slice(out, [S + 1, 16], [b * S, 0])", "for b in pl.spmd(n):")).rule(RULE) == []
    )


def test_a_buffer_the_block_allocates_is_its_own():
    # dspark prefill_compressor_ratio4.py (HEAD): online-softmax state `mi_buf =
    # pl.create_tensor(...)` inside the grid body, written and read by each block
    local = (
        "for b in pl.spmd(B):\n"
        "            t = ALLOC\n"
        "            t[0:1, 0:16] = pl.slice(a, [1, 16], [b, 0])\n"
        "            r = pl.exp(t)  # read\n"
        "            out = pl.assemble(out, r, [b, 0])"
    )
    for alloc in ("pl.create_tensor([1, 16], dtype=pl.FP32)", "pl.full([1, 16], pl.FP32, 0.0)"):
        assert k(local.replace("ALLOC", alloc)).rule(RULE) == [], alloc
    shared = k(
        "t = pl.create_tensor([1, 16], dtype=pl.FP32)\n"
        "        for b in pl.spmd(B):\n"
        "            t[0:1, 0:16] = pl.slice(a, [1, 16], [b, 0])\n"
        "            r = pl.exp(t)  # read\n"
        "            out = pl.assemble(out, r, [b, 0])"
    )
    assert lines(shared.rule(RULE)) == [shared.line("read")]  # allocated once, outside


def _local(make: str, extra: str = "") -> str:
    return (
        "for b in pl.spmd(B):\n"
        f"{extra}"
        f"            t = {make}\n"
        "            t = pl.assemble(t, pl.slice(a, [1, 16], [b * S, 0]), [0, 0])\n"
        "            r = pl.slice(t, [S, 16], [0, 0])  # read\n"
        "            out = pl.assemble(out, r, [b * S, 0])"
    )


def test_a_buffer_each_block_creates_is_its_own():
    # every block writes row 0 of its own `t` and reads all of it: no block sees another's
    assert k(_local("pl.full([S, 16], dtype=pl.FP32, value=0.0)")).rule(RULE) == []


def test_a_view_of_a_shared_buffer_is_shared():
    # the same accesses through a slice of `out`: every block writes row 0 of the shared
    # buffer and reads all S rows of it (the slice itself reads what other blocks write too)
    kk = k(_local("pl.slice(out, [S, 16], [0, 0])"))
    assert kk.line("read") in lines(kk.rule(RULE))


def test_a_name_also_bound_outside_the_grid_is_shared():
    src = _local("pl.full([S, 16], dtype=pl.FP32, value=0.0)")
    kk = k("t = pl.full([S, 16], dtype=pl.FP32, value=0.0)\n        " + src)
    assert lines(kk.rule(RULE)) == [kk.line("read")]


class _PldKernel(Kernel):
    def __init__(self, src: str):  # noqa: D107 - Kernel, with `pld` in the capture namespace
        self.text = textwrap.dedent(src).lstrip("\n")
        self.file = "<checks-test-put>.py"
        self.program = pl.capture_source(self.text, self.file, {"pl": pl, "pld": pld})[0]


PUT_SRC = """
import pldsl as pl
import pldsl.distributed as pld

S = 8
B = 4


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(
        self,
        a: pl.Tensor[[B * S + 2, 16], pl.FP32],
        win: pld.DistributedTensor[[B * S + 2, 16], pl.FP32],
        peer: pl.Scalar[pl.INT32],
    ) -> pl.Tensor[[B * S + 2, 16], pl.FP32]:
        buf = pl.create_tensor([B * S + 2, 16], dtype=pl.FP32)
        for b in pl.spmd(B):
            buf = pl.assemble(buf, pl.slice(a, [S, 16], [b * S, 0]), [b * S, 0])
            pld.tensor.put(dst=win, peer=peer, src=buf, dst_offsets=[b * S, 0], src_offsets=[OFF, 0], shape=[ROWS, 16])  # put
        return buf
"""


@pytest.mark.parametrize(
    "off, rows, found",
    [
        ("b * S", "S", False),  # the block's own rows (pypto-lib's lm_head.py dispatch push)
        ("b * S + 1", "S - 1", False),  # ends exactly at its own edge
        ("b * S", "S + 1", True),  # one row into the next block's
        ("b * S + 1", "S", True),  # shifted by one row
    ],
)
def test_put_reads_only_its_source_window(off, rows, found):
    kk = _PldKernel(PUT_SRC.replace("OFF", off).replace("ROWS", rows))
    got = kk.rule(RULE)
    assert lines(got) == ([kk.line("put")] if found else [])
    if found:
        assert "reads 'buf' where block 1 writes it" in got[0].message
