"""StaticOutOfBounds (error): windows that provably leave their tensor."""

from checkutil import kernel, lines

RULE = "StaticOutOfBounds"

SRC = """
import pldsl as pl

N = pl.dynamic("N")
K = pl.dynamic("K")
HIDDEN = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self,
        x: pl.Tensor[[40, HIDDEN], pl.FP32],
        w: pl.Tensor[[1, K], pl.FP32],
        seq_lens: pl.Tensor[[N], pl.INT32],
        out: pl.Out[pl.Tensor[[16, HIDDEN], pl.FP32]],
    ) -> pl.Tensor[[16, HIDDEN], pl.FP32]:
        BODY
        return out
"""


def k(body: str):
    return kernel(SRC.replace("BODY", body))


def one(kk, marker: str):
    found = kk.rule(RULE)
    assert lines(found) == [kk.line(marker)], [d.message for d in found]
    assert found[0].severity == "error"
    return found[0]


def test_window_taller_than_a_symbolic_one_row_tensor():
    d = one(
        k(
            "g = pl.slice(w, [16, K], [0, 0])  # oob\n        out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [0, 0]), [0, 0])"
        ),
        "oob",
    )
    assert "pl.slice reads the window [16, K] at [0, 0] of 'w' (shape [1, K])" in d.message
    assert "on axis 0" in d.message and "exceeds the size 1" in d.message


def test_static_column_overrun():
    d = one(k("out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [0, 64]), [0, 0])  # oob"), "oob")
    assert "on axis 1, offset 64 + extent 128 = 192 exceeds the size 128" in d.message


def test_last_loop_iteration_leaves_the_tensor():
    d = one(
        k(
            "for b0 in pl.range(0, 48, 16):\n"
            "            t = pl.slice(x, [16, HIDDEN], [b0, 0])  # oob\n"
            "            out = pl.assemble(out, t, [0, 0])"
        ),
        "oob",
    )
    assert d.message.endswith("exceeds the size 40") and "(at b0=32)" in d.message


def test_assemble_window_past_the_target():
    d = one(
        k(
            "for kb in pl.range(2):\n"
            "            out = pl.assemble(out, pl.slice(x, [16, 64], [0, 0]), [kb * 16, 0])  # oob"
        ),
        "oob",
    )
    assert "pl.assemble writes the window [16, 64]" in d.message and "(at kb=1)" in d.message


def test_element_read_at_the_dynamic_extent():
    d = one(
        k(
            "n = pl.tensor.dim(seq_lens, 0)\n"
            "        last = pl.read(seq_lens, [n])  # oob\n"
            "        out = pl.write(out, [0, 0], pl.cast(last, pl.FP32))"
        ),
        "oob",
    )
    assert "index n on axis 0 is >= the size N" in d.message


def test_trimmed_edge_tiles_are_clean():
    kk = k(
        "for b0 in pl.range(0, 48, 16):\n"
        "            valid = pl.min(16, 40 - b0)\n"
        "            t = pl.slice(x, [16, HIDDEN], [b0, 0], valid_shape=[valid, HIDDEN])\n"
        "            out = pl.assemble(out, t, [0, 0])"
    )
    assert kk.rule(RULE) == []


def test_guarded_and_data_dependent_windows_are_not_reported():
    kk = k(
        "for b0 in pl.range(0, 48, 16):\n"
        "            if b0 + 16 <= 40:\n"
        "                out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [b0, 0]), [0, 0])\n"
        "        row = pl.read(seq_lens, [0])\n"
        "        out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [row, 0]), [0, 0])\n"
        "        out = pl.assemble(out, pl.slice(w, [1, K], [0, 0]), [0, 0])"
    )
    assert kk.rule(RULE) == []


def test_subscript_window_with_a_runtime_extent_captures_and_is_clean():
    # PyPTO cannot prove `out[:, :k]` narrower than the source, so it accepts the write
    kk = kernel(
        """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self, src: pl.Tensor[[16, 64], pl.FP32], k: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[16, 64], pl.FP32]],
    ) -> pl.Tensor[[16, 64], pl.FP32]:
        out[:, :k] = src
        return out
"""
    )
    assert kk.rule(RULE) == []


# ------------------------------------------------------------------ edges: one off either way
# x is [40, HIDDEN] (5120 elements), seq_lens [N]; a window ending exactly at an edge is clean,
# one element further is an error, and the same for the lower edge at 0.


def test_window_ending_exactly_at_the_edge_is_clean_one_past_is_an_error():
    at_edge = "out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [24, 0]), [0, 0])"
    assert k(at_edge).rule(RULE) == []
    d = one(k("out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [25, 0]), [0, 0])  # oob"), "oob")
    assert "offset 25 + extent 16 = 41 exceeds the size 40" in d.message
    # a window as tall as a symbolic tensor (extent == size) is clean; one more row is not
    assert (
        k("g = pl.slice(w, [1, K], [0, 0])\n        out = pl.write(out, [0, 0], 1.0)").rule(RULE)
        == []
    )
    one(
        k("g = pl.slice(w, [2, K], [0, 0])  # oob\n        out = pl.write(out, [0, 0], 1.0)"), "oob"
    )


def test_offset_zero_is_clean_offset_minus_one_is_an_error():
    # literal negatives are capture errors: compute them from a one-iteration loop
    body = (
        "for i in pl.range(0, 1):\n"
        "            out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [OFF, 0]), [0, 0])  # oob"
    )
    assert k(body.replace("OFF", "i")).rule(RULE) == []
    d = one(k(body.replace("OFF", "i - 1")), "oob")
    assert d.message.endswith("on axis 0, offset i - 1 is negative")


def test_element_index_edges():
    for idx in ("[39, 0]", "[0, 127]", "[0, 0]"):
        assert k(f"v = pl.read(x, {idx})\n        out = pl.write(out, [0, 0], v)").rule(RULE) == []
    d = one(k("v = pl.read(x, [40, 0])  # oob\n        out = pl.write(out, [0, 0], v)"), "oob")
    assert d.message.endswith("index 40 on axis 0 is >= the size 40")
    neg = "for i in pl.range(0, 1):\n            v = pl.read(x, [0, i - 1])  # oob"
    d = one(k(neg + "\n            out = pl.write(out, [0, 0], v)"), "oob")
    assert d.message.endswith("index i - 1 on axis 1 is negative")
    # the last element of a dynamic tensor is clean
    last = "n = pl.tensor.dim(seq_lens, 0)\n        v = pl.read(seq_lens, [n - 1])"
    assert k(last + "\n        out = pl.write(out, [0, 0], pl.cast(v, pl.FP32))").rule(RULE) == []


def test_flat_index_edges():
    assert k("v = pl.read(x, [5119])\n        out = pl.write(out, [0, 0], v)").rule(RULE) == []
    d = one(k("v = pl.read(x, [5120])  # oob\n        out = pl.write(out, [0, 0], v)"), "oob")
    assert d.message.endswith("flat index 5120 is >= the element count 5120")


def test_the_last_iteration_of_a_long_loop_is_enumerated():
    d = one(
        k(
            "for i in pl.range(0, 40):\n"
            "            t = pl.slice(x, [1, HIDDEN], [i + 1, 0])  # oob\n"
            "            out = pl.assemble(out, t, [0, 0])"
        ),
        "oob",
    )
    assert "(at i=39)" in d.message
    clean = (
        "for i in pl.range(0, 40):\n"
        "            t = pl.slice(x, [1, HIDDEN], [i, 0])\n"
        "            out = pl.assemble(out, t, [0, 0])"
    )
    assert k(clean).rule(RULE) == []


def test_dynamic_loop_bound_is_exclusive():
    # i ranges over [0, n - 1]: i - n is always negative, i - n + 1 is not
    body = (
        "n = pl.tensor.dim(seq_lens, 0)\n"
        "        for i in pl.range(0, n):\n"
        "            v = pl.read(seq_lens, [IDX])  # oob\n"
        "            out = pl.write(out, [0, 0], pl.cast(v, pl.FP32))"
    )
    d = one(k(body.replace("IDX", "i - n")), "oob")
    assert d.message.endswith("index i - n on axis 0 is negative")
    assert k(body.replace("IDX", "i - n + 1")).rule(RULE) == []


def test_modulo_is_bounded_by_the_divisor_minus_one():
    src = SRC.replace("out: pl.Out", "r: pl.Scalar[pl.INDEX],\n        out: pl.Out")
    body = "v = pl.read(seq_lens, [IDX])  # oob\n        out = pl.write(out, [0, 0], pl.cast(v, pl.FP32))"
    d = one(kernel(src.replace("BODY", body.replace("IDX", "r % 4 - 4"))), "oob")
    assert d.message.endswith("is negative")
    assert kernel(src.replace("BODY", body.replace("IDX", "r % 4 - 3"))).rule(RULE) == []


def test_floor_division_bounds_are_tight():
    # i // 16 is 0 over range(0, 16): the window ends exactly at row 40
    body = (
        "for i in pl.range(0, 16):\n"
        "            out = pl.assemble(out, pl.slice(x, [16, HIDDEN], [24 + i // 16, 0]), [0, 0])"
    )
    assert k(body).rule(RULE) == []


LOWER_RANK = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self, x: pl.Tensor[[64, 128], pl.FP32], out: pl.Out[pl.Tensor[[4, 128, 256], pl.FP32]],
    ) -> pl.Tensor[[4, 128, 256], pl.FP32]:
        for b in pl.range(0, 4):
            for p0 in pl.range(0, 128, 64):
                for o0 in pl.range(0, 256, 128):
                    out = pl.assemble(out, x, [b, p0 + SHIFT, o0])  # asm
        return out
"""

SRC3 = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self,
        x: pl.Tensor[[16, 64], pl.FP32],
        out: pl.Out[pl.Tensor[[2, 16, 64], pl.FP32]],
    ) -> pl.Tensor[[2, 16, 64], pl.FP32]:
        BODY
        return out
"""


def test_a_lower_rank_source_fills_the_trailing_axes():
    # deepseek_v3_2_prefill_back.py (60fcbc57): a [TOK_TILE, K] tile into [B, S, H] at
    # [b, p0, o0] touches one row of axis 0, not TOK_TILE of them
    assert kernel(LOWER_RANK.replace("SHIFT", "0")).rule(RULE) == []
    kk = kernel(LOWER_RANK.replace("SHIFT", "1"))  # the last p0 tile ends one row past 128
    d = one(kk, "asm")
    assert "on axis 1, offset p0 + 1 + extent 64" in d.message, d.message
    assert "exceeds the size 128" in d.message


def test_the_body_of_a_loop_that_never_runs_is_not_reported():
    # deepseek v4 compressor_ratio*.py (60fcbc57): `for r0 in pl.range(ROPE_CHUNK,
    # ROPE_HEAD_DIM // 2, ROPE_CHUNK)` with ROPE_HEAD_DIM // 2 == ROPE_CHUNK runs no iteration
    body = (
        "for r0 in pl.range(HIDDEN, STOP, 64):\n"
        "            out = pl.assemble(out, pl.slice(x, [16, 64], [0, r0]), [0, 0])  # oob"
    )
    assert k(body.replace("STOP", "HIDDEN")).rule(RULE) == []  # empty
    assert k(body.replace("STOP", "HIDDEN - 1")).rule(RULE) == []  # empty, stop below start
    d = one(k(body.replace("STOP", "HIDDEN + 1")), "oob")  # one iteration, r0 = 128
    assert "offset r0 + extent 64 = 192 exceeds the size 128" in d.message, d.message
    down = (
        "for r0 in pl.range(0, STOP, -1):\n"
        "            out = pl.assemble(out, pl.slice(x, [16, 64], [0, r0 + 100]), [0, 0])  # oob"
    )
    assert k(down.replace("STOP", "0")).rule(RULE) == []
    one(k(down.replace("STOP", "-1")), "oob")  # r0 = 0: columns 100..163


def test_a_lower_rank_assemble_lands_on_the_trailing_axes():
    # a [16, 64] source written into [2, 16, 64]: the window is [1, 16, 64]; the last
    # batch (b = 1) is clean, b = 2 and a column offset of 1 leave the tensor
    def k3(body):
        return kernel(SRC3.replace("BODY", body))

    assert k3("out = pl.assemble(out, x, [1, 0, 0])").rule(RULE) == []
    d = one(k3("out = pl.assemble(out, x, [2, 0, 0])  # oob"), "oob")
    assert "writes the window [1, 16, 64]" in d.message
    assert "on axis 0, offset 2 + extent 1 = 3 exceeds the size 2" in d.message
    d = one(k3("out = pl.assemble(out, x, [0, 0, 1])  # oob"), "oob")
    assert "on axis 2, offset 1 + extent 64 = 65 exceeds the size 64" in d.message


_BATCHED = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def f(
        self,
        a: pl.Tensor[[1, 5, 4], pl.FP32],
        b: pl.Tensor[[4, 3], pl.FP32],
        out: pl.Out[pl.Tensor[[5, 3], pl.FP32]],
    ) -> pl.Tensor[[5, 3], pl.FP32]:
        p = pl.matmul(a, b)
        out = pl.assemble(out, p, [OFF])  # write
        return out
"""


def test_higher_rank_source_drops_its_leading_unit_axes():
    """A [1, 5, 3] batched product written into a [5, 3] target: its leading axis of 1 is
    dropped, so [0, 0] fits (once a false alarm: the extents were matched to the wrong axes)
    and [1, 0] leaves the target on axis 0."""
    assert kernel(_BATCHED.replace("OFF", "0, 0")).rule(RULE) == []
    d = one(kernel(_BATCHED.replace("OFF", "1, 0")), "write")
    assert "on axis 0, offset 1 + extent 5 = 6 exceeds the size 5" in d.message
