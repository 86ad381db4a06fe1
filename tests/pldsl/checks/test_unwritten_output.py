"""UnwrittenOutput (warning): structure-only runs find regions of Out parameters nobody writes."""

from checkutil import kernel
from qwen3_shapes import CLEAN

RULE = "UnwrittenOutput"

# The seed's fused tail (pypto-lib #295): one batch tile, untrimmed stores.
SEED_TAIL_BUG = CLEAN.replace(
    """        for b0 in pl.parallel(0, batch_padded, 16):
            for ob in pl.range(VOCAB // VOCAB_CHUNK):""",
    """        for b0 in pl.range(0, 16, 16):
            for ob in pl.range(VOCAB // VOCAB_CHUNK):""",
).replace(
    "logits = pl.assemble(logits, trimmed, [b0, o0])",
    "logits = pl.assemble(logits, lm_acc, [b0, o0])",
)


def test_seed_tail_bug_is_flagged():
    assert SEED_TAIL_BUG != CLEAN
    k = kernel(SEED_TAIL_BUG)
    found = k.rule(RULE)
    assert len(found) == 1
    d = found[0]
    assert d.severity == "warning"
    assert d.message == (
        "Out parameter 'logits' of 'decode' is not fully written: no path writes "
        "logits[16:17, 0:256] when USER_BATCH_DYN=17 (also incomplete for USER_BATCH_DYN=33); "
        "the caller reads undefined data there"
    )
    assert "BLOCK_TABLE_DYN" in d.notes[0]  # all dims take the sample value together
    # located at the parameter
    assert "logits: pl.Out[" in k.text.splitlines()[d.span.line - 1]


SRC = """
import pldsl as pl

N = pl.dynamic("N")
K = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def tile(
        self, x: pl.Tensor[[16, K], pl.FP32], o: pl.Out[pl.Tensor[[16, K], pl.FP32]]
    ) -> pl.Tensor[[16, K], pl.FP32]:
        o = pl.assemble(o, pl.exp(x), [0, 0])
        return o

    @pl.function(type=pl.FunctionType.Opaque)
    def main(
        self,
        x: pl.Tensor[[N, K], pl.FP32],
        idx: pl.Tensor[[N], pl.INT32],
        rows: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[N, K], pl.FP32]],
        side: pl.Out[pl.Tensor[[32, 256], pl.FP32]],
    ) -> pl.Tensor[[N, K], pl.FP32]:
        n = pl.tensor.dim(x, 0)
        BODY
        return out
"""

COVER_SIDE = """for c in pl.range(0, 256, 64):
            side = pl.assemble(side, pl.full([32, 64], pl.FP32, 0.0), [0, c])"""


def k(body: str, side: str = COVER_SIDE):
    return kernel(SRC.replace("BODY", side + "\n        " + body))


def messages(kk):
    return {d.message.split("'")[1]: d.message for d in kk.rule(RULE)}


def test_static_output_column_gap():
    kk = k(
        "out = pl.assemble(out, x, [0, 0])",
        side="""for c in pl.range(0, 192, 64):
            side = pl.assemble(side, pl.full([32, 64], pl.FP32, 0.0), [0, c])""",
    )
    msgs = messages(kk)
    assert set(msgs) == {"side"}
    assert "no path writes side[0:32, 192:256];" in msgs["side"]
    assert " when " not in msgs["side"]  # static shape: one run


def test_never_written_output():
    kk = k("out = pl.assemble(out, x, [0, 0])", side="")
    assert "'side' of 'main' is never written" in messages(kk)["side"]


def test_an_output_unwritten_for_every_sample_dim_says_so_without_a_when():
    kk = k("rows2 = rows")  # `out` ([N, K]) is never written, whatever N is
    assert messages(kk)["out"] == (
        "Out parameter 'out' of 'main' is never written; the caller reads undefined data there"
    )
    kk = k("out = pl.assemble(out, pl.slice(x, [16, K], [0, 0]), [0, 0])")  # rows 0..15 only
    assert " when N=17" in messages(kk)["out"]  # written for some N: the message says when


def test_batch_tiles_over_padded_extent_via_a_call_are_clean():
    kk = k(
        """batch_padded = (n + 15) // 16 * 16
        for b0 in pl.parallel(0, batch_padded, 16):
            valid = pl.min(16, n - b0)
            t = pl.slice(x, [16, K], [b0, 0], valid_shape=[valid, K])
            tmp = pl.create_tensor([16, K], pl.FP32)
            tmp = self.tile(pl.fillpad(t), tmp)
            out = pl.assemble(out, pl.slice(tmp, [16, K], [0, 0], valid_shape=[valid, K]), [b0, 0])"""
    )
    assert kk.rule(RULE) == []


def test_write_through_callee_out_param_counts():
    kk = k(
        """for b0 in pl.range(0, n, 16):
            view = pl.slice(out, [16, K], [b0, 0])
            view = self.tile(pl.slice(x, [16, K], [b0, 0]), view)"""
    )
    assert kk.rule(RULE) == []


def test_single_tile_loop_flags_rows_past_16():
    kk = k(
        """for b0 in pl.range(0, 16, 16):
            out = pl.assemble(out, pl.slice(x, [16, K], [b0, 0]), [b0, 0])"""
    )
    msg = messages(kk)["out"]
    assert "no path writes out[16:17, 0:128] when N=17" in msg
    assert "also incomplete for N=33" in msg


def test_data_dependent_rows_are_unknown_not_guessed():
    kk = k(
        """for b in pl.range(0, n, 1):
            row = pl.read(idx, [b])
            out = pl.assemble(out, pl.slice(x, [1, K], [b, 0]), [row, 0])"""
    )
    assert kk.rule(RULE) == []


def test_scalar_parameter_bounds_are_confirmed_before_reporting():
    # `rows` is meant to equal N: with a small sample the run sees a gap, with rows = N none
    kk = k(
        """for b in pl.range(0, rows, 1):
            out = pl.assemble(out, pl.slice(x, [1, K], [b, 0]), [b, 0])"""
    )
    assert kk.rule(RULE) == []


def test_work_cap_reports_nothing(monkeypatch):
    from pldsl.checks import unwritten_output

    body = """for i in pl.range(0, ITERS, 1):
            out = pl.assemble(out, pl.slice(x, [1, K], [0, 0]), [0, 0])"""
    small = k(body.replace("ITERS", "3"))
    assert "no path writes out[1:15, 0:128] when N=15" in messages(small)["out"]
    monkeypatch.setattr(unwritten_output, "MAX_ITERATIONS", 100)
    capped = k(body.replace("ITERS", "300"))
    assert capped.rule(RULE) == []


def test_element_writes_cover_one_element_each():
    # every element but the last column, written one by one: exactly that column is the gap
    every_but_last = """for i in pl.range(0, 32):
            for j in pl.range(0, 255):
                side = pl.write(side, [i, j], 0.0)"""
    msgs = messages(k("out = pl.assemble(out, x, [0, 0])", side=every_but_last))
    assert set(msgs) == {"side"} and "no path writes side[0:32, 255:256];" in msgs["side"]
    everything = every_but_last.replace("(0, 255)", "(0, 256)")
    assert k("out = pl.assemble(out, x, [0, 0])", side=everything).rule(RULE) == []
    # a single index into a 2-D tensor is a row-major flat index: element 8191 is [31, 255]
    flat = """for f in pl.range(0, 8191):
            side = pl.write(side, [f], 0.0)"""
    msgs = messages(k("out = pl.assemble(out, x, [0, 0])", side=flat))
    assert "no path writes side[31:32, 255:256];" in msgs["side"]


def test_a_branch_on_a_scalar_parameter_is_data_not_a_gap():
    # deepseek v4 compressor_ratio*.py (60fcbc57) writes its outputs only when
    # `(start_pos + 1) % RATIO == 0`; the run invents start_pos, so the branch it takes says
    # nothing about the caller's calls (a `pl.Scalar[pl.BOOL]` flag likewise)
    write = "out = pl.assemble(out, x, [0, 0])"
    assert k(f"if (rows + 1) % 4 == 0:\n            {write}").rule(RULE) == []
    assert k(f"if rows != 2:\n            {write}").rule(RULE) == []
    assert k(f"if pl.cast(rows, pl.INT32) > 7:\n            {write}").rule(RULE) == []
    # a branch on a dynamic dim is still followed: N >= 16 leaves every row unwritten
    msg = messages(k(f"if n < 16:\n            {write}"))["out"]
    assert "'out' of 'main' is never written when N=16" in msg, msg
    # and an unconditional gap next to a scalar branch is still found
    msg = messages(k(f"if rows == 3:\n            {write}", side=""))
    assert set(msg) == {"side"}


BOOL_FLAG = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Opaque)
    def main(
        self, x: pl.Tensor[[16, 128], pl.FP32], flag: pl.Scalar[pl.BOOL],
        out: pl.Out[pl.Tensor[[16, 128], pl.FP32]],
    ) -> pl.Tensor[[16, 128], pl.FP32]:
        if COND:
            out = pl.assemble(out, x, [0, 0])
        return out
"""


def test_a_branch_on_a_bool_parameter_is_data():
    assert kernel(BOOL_FLAG.replace("COND", "flag")).rule(RULE) == []
    assert kernel(BOOL_FLAG.replace("COND", "not flag")).rule(RULE) == []


# ----------------------------------------------------------------- external kernels
# A `pl.jit.extern` declaration's body is hand-written device code: nothing to run here, so its
# Out parameters are not reported, and what a call to it writes is unknown (not guessed).


def _jit(kernel, *outs):
    import numpy as np

    x = np.ones((4, 8), np.float32)
    return kernel.specialize(x, *[np.zeros_like(x) for _ in range(outs[0])])


def test_an_extern_and_the_outputs_it_is_given_are_not_reported():
    import jit_check_kernels as J

    from pldsl.checks import RULES

    program = _jit(J.written_by_an_extern, 1)
    assert program.functions["external_fill"].external
    assert RULES["UnwrittenOutput"].check(program) == []


def test_an_output_no_call_receives_is_still_reported():
    import inspect

    import jit_check_kernels as J

    from pldsl.checks import RULES

    found = RULES["UnwrittenOutput"].check(_jit(J.one_output_the_extern_never_sees, 2))
    src, start = inspect.getsourcelines(J.one_output_the_extern_never_sees.func)
    z_line = start + next(i for i, t in enumerate(src) if "z: pl.Out" in t)
    assert [(d.span.line, d.message.split(" of ")[0]) for d in found] == [
        (z_line, "Out parameter 'z'")
    ]
