"""UnusedValue (warning): an assigned value nothing reads."""

from checkutil import kernel, lines

RULE = "UnusedValue"

SRC = """
import pldsl as pl

HIDDEN = 256
K_CHUNK = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def proj(
        self,
        x: pl.Tensor[[16, HIDDEN], pl.BF16],
        w: pl.Tensor[[HIDDEN, 64], pl.BF16],
        out: pl.Out[pl.Tensor[[16, 64], pl.FP32]],
    ) -> pl.Tensor[[16, 64], pl.FP32]:
        BODY
        return out
"""

K_ACC = """acc = pl.matmul(pl.slice(x, [16, K_CHUNK], [0, 0]), pl.slice(w, [K_CHUNK, 64], [0, 0]), out_dtype=pl.FP32)
        for kb in pl.range(1, HIDDEN // K_CHUNK):
            k0 = kb * K_CHUNK
            acc = pl.matmul_acc(acc, pl.slice(x, [16, K_CHUNK], [0, k0]), pl.slice(w, [K_CHUNK, 64], [k0, 0]))
        out = pl.assemble(out, acc, [0, 0])"""


def k(body: str):
    return kernel(SRC.replace("BODY", body))


def test_dead_store_is_flagged():
    kk = k(
        "xf = pl.cast(x, pl.FP32)  # unused\n"
        "        acc = pl.matmul(x, w, out_dtype=pl.FP32)\n"
        "        acc = pl.matmul(x, w, out_dtype=pl.FP32)  # overwritten\n"
        "        out = pl.assemble(out, acc, [0, 0])"
    )
    found = kk.rule(RULE)
    assert lines(found) == sorted([kk.line("unused"), kk.line("overwritten") - 1])
    assert all(d.severity == "warning" for d in found)
    assert {d.message for d in found} == {
        "the value assigned to 'xf' is never read",
        "the value assigned to 'acc' is never read",
    }


def test_dead_rebinding_points_at_the_rebinding():
    kk = k(
        "acc = pl.matmul(x, w, out_dtype=pl.FP32)\n"
        "        out = pl.assemble(out, acc, [0, 0])\n"
        "        acc = pl.matmul(x, w, out_dtype=pl.FP32)  # dead"
    )
    assert [(d.span.line, d.span.col) for d in kk.rule(RULE)] == [(kk.line("dead"), 9)]


def test_k_accumulation_is_clean():
    assert k(K_ACC).rule(RULE) == []


def test_underscore_loop_vars_and_out_params_are_ignored():
    kk = k(
        "_probe = pl.cast(x, pl.FP32)\n"
        "        for kb in pl.range(2):\n"
        "            out = pl.assemble(out, pl.matmul(x, w, out_dtype=pl.FP32), [0, 0])"
    )
    assert kk.rule(RULE) == []


def test_value_read_by_the_next_iteration_is_used():
    kk = k(
        "prev = pl.full([16, 64], pl.FP32, 0.0)\n"
        "        for kb in pl.range(2):\n"
        "            out = pl.assemble(out, prev, [0, 0])\n"
        "            prev = pl.matmul(x, w, out_dtype=pl.FP32)"
    )
    assert kk.rule(RULE) == []


def test_only_a_write_into_the_same_name_is_exempt():
    kk = k(
        "scratch = pl.create_tensor([16, 64], pl.FP32)\n"
        "        scratch = pl.assemble(scratch, pl.matmul(x, w, out_dtype=pl.FP32), [0, 0])\n"
        "        other = pl.assemble(scratch, pl.matmul(x, w, out_dtype=pl.FP32), [0, 0])  # unused\n"
        "        out = pl.assemble(out, pl.slice(scratch, [16, 64], [0, 0]), [0, 0])"
    )
    found = kk.rule(RULE)
    assert [(d.span.line, d.message) for d in found] == [
        (kk.line("unused"), "the value assigned to 'other' is never read")
    ]


def test_rebinding_an_out_parameter_is_exempt():
    kk = kernel(
        """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Inline)
    def store(self, a: pl.Tensor[[64], pl.FP32], out: pl.Out[pl.Tensor[[64], pl.FP32]]):
        view = pl.slice(out, [64], [0])
        out = pl.assemble(view, a, [0])
        tmp = pl.assemble(view, a, [0])  # unused
"""
    )
    assert [d.span.line for d in kk.rule(RULE)] == [kk.line("unused")]


RENAMED = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def main(
        self, x: pl.Tensor[[4, 8], pl.FP32], x2: pl.Tensor[[4, 8], pl.FP32],
        n: pl.Scalar[pl.INDEX], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]],
    ) -> pl.Tensor[[4, 8], pl.FP32]:
        for i in pl.range(1):
            a = pl.slice(x, [4, 8], [0, 0], valid_shape=[n, 8])
            out = pl.assemble(out, pl.exp(a), [0, 0])
        for i in pl.range(1):
            a = pl.slice(x, [4, 8], [0, 0])  # renamed
            out = pl.assemble(out, pl.add(a, a), [0, 0])
        for i in pl.range(1):
            a = pl.slice(x2, [4, 8], [0, 0])  # again
            out = pl.assemble(out, pl.add(a, a), [0, 0])
        return out
"""


def test_a_renamed_historical_rebinding_keeps_its_name_when_bound_again():
    # pypto-lib's qwen3_14b_l3_generate.py (60fcbc57) reuses `x_chunk` in sibling loops with
    # and without a valid region; the frontend renames the second to `x_chunk__2`. A third
    # binding of the same type was captured as `x_chunk` while its reads meant `x_chunk__2`:
    # UnusedValue fired on it, and the reads saw the previous loop's value.
    import numpy as np

    from pldsl import interpreter

    kk = kernel(RENAMED)
    assert kk.rule(RULE) == []
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    x2 = np.full((4, 8), -3.0, np.float32)
    got = interpreter.run(kk.program, "main", x, x2, 4, np.zeros_like(x))
    np.testing.assert_array_equal(got, x2 + x2)  # the last loop's slice of x2, not of x


# ----------------------------------------------------------------- reads capture leaves no IR for
# Each pair: the name read only where capture emits no IR read (clean), and the same name
# read nowhere (still a finding).


def test_a_subscript_write_window_stop_is_a_read():
    src = (
        "c0 = 8\n"
        "        c1 = c0 + 16  # stop\n"
        "        acc = pl.matmul(x, w, out_dtype=pl.FP32)\n"
        "        out[0:16, c0:c1] = pl.slice(acc, [16, 16], [0, 0])"
    )
    assert k(src).rule(RULE) == []
    unread = src.replace("c0:c1]", "c0:c0 + 16]")
    kk = k(unread)
    assert lines(kk.rule(RULE)) == [kk.line("stop")]


def test_a_prefetch_source_is_a_read():
    src = (
        "w_flat = pl.reshape(w, [HIDDEN * 64])  # flat\n"
        "        with pl.at(level=pl.Level.CORE_GROUP):\n"
        "            ctx = pl.prefetch.make_context()\n"
        "            evt = pl.prefetch.async_prefetch(w_flat, ctx)\n"
        "        out = pl.assemble(out, pl.matmul(x, w, out_dtype=pl.FP32), [0, 0])"
    )
    assert k(src).rule(RULE) == []
    kk = k(
        src.replace(
            "async_prefetch(w_flat, ctx)", "async_prefetch(pl.reshape(w, [HIDDEN * 64]), ctx)"
        )
    )
    assert lines(kk.rule(RULE)) == [kk.line("flat")]


def test_a_capture_time_branch_not_taken_still_reads():
    # HIDDEN is 256: only the else branch is captured, but the source reads `xf` in the other
    src = (
        "xf = pl.cast(x, pl.FP32)  # xf\n"
        "        acc = pl.matmul(x, w, out_dtype=pl.FP32)\n"
        "        if HIDDEN > 1024:\n"
        "            acc = pl.add(acc, pl.slice(xf, [16, 64], [0, 0]))\n"
        "        else:\n"
        "            acc = pl.add(acc, 1.0)\n"
        "        out = pl.assemble(out, acc, [0, 0])"
    )
    assert k(src).rule(RULE) == []
    kk = k(src.replace("pl.slice(xf,", "pl.slice(pl.cast(x, pl.FP32),"))
    assert lines(kk.rule(RULE)) == [kk.line("xf")]


def test_a_capture_time_branch_not_taken_that_only_assigns_is_no_read():
    # HIDDEN is 256: the branch not captured binds `dead` again but reads nothing: still a
    # dead store
    src = (
        "dead = pl.mul(x, 3.0)  # dead\n"
        "        acc = pl.matmul(x, w, out_dtype=pl.FP32)\n"
        "        if HIDDEN > 1024:\n"
        "            dead = pl.mul(x, 2.0)\n"
        "        else:\n"
        "            acc = pl.add(acc, 1.0)\n"
        "        out = pl.assemble(out, acc, [0, 0])"
    )
    kk = k(src)
    assert lines(kk.rule(RULE)) == [kk.line("dead")]


TUPLE_SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def two(
        self, x: pl.Tensor[[16, 64], pl.FP32]
    ) -> pl.Tuple[pl.Tensor[[16, 64], pl.FP32], pl.Tensor[[16, 64], pl.FP32]]:
        a = pl.add(x, 1.0)
        b = pl.mul(x, 2.0)
        return a, b

    @pl.function(type=pl.FunctionType.Orchestration)
    def main(self, x: pl.Tensor[[16, 64], pl.FP32]) -> pl.Tensor[[16, 64], pl.FP32]:
        BODY
"""


def test_tuple_unpacking_targets_are_not_reported():
    # a caller takes the results it needs (Python linters allow an unused unpacking target)
    kk = kernel(TUPLE_SRC.replace("BODY", "y, extra = self.two(x)\n        return y"))
    assert kk.rule(RULE) == []
    kk = kernel(TUPLE_SRC.replace("BODY", "y = self.two(x)  # whole\n        return x"))
    assert lines(kk.rule(RULE)) == [kk.line("whole")]


THREAD_SRC = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def fill(
        self, x: pl.Tensor[[16, 64], pl.FP32], buf: pl.InOut[pl.Tensor[[16, 64], pl.FP32]]
    ) -> pl.Tensor[[16, 64], pl.FP32]:
        buf = pl.assemble(buf, pl.add(x, 1.0), [0, 0])
        return RET

    @pl.function(type=pl.FunctionType.Orchestration)
    def main(
        self, x: pl.Tensor[[16, 64], pl.FP32], out: pl.Out[pl.Tensor[[16, 64], pl.FP32]]
    ) -> pl.Tensor[[16, 64], pl.FP32]:
        buf = pl.create_tensor([16, 64], dtype=pl.FP32)
        flat = pl.reshape(buf, [16 * 64])
        view = pl.reshape(flat, [16, 64])
        view = self.fill(x, view)  # threaded
        out = pl.assemble(out, pl.slice(buf, [16, 64], [0, 0]), [0, 0])
        return out
"""


def test_a_call_that_returns_the_buffer_it_was_given_threads_it():
    # `view = self.fill(x, view)`: fill returns its `buf` parameter, so the rebinding names the
    # buffer the call wrote, which the caller reads through `buf` (pypto-lib's
    # `cmp_kv_flat = helper(..., cmp_kv_flat, ...)`, `ffn_out, tid = pl.spmd_submit(...)`)
    kk = kernel(THREAD_SRC.replace("RET", "buf"))
    assert kk.rule(RULE) == []
    # a callee returning a new tensor: the result is a value nobody reads
    kk = kernel(THREAD_SRC.replace("RET", "pl.add(x, 2.0)"))
    assert lines(kk.rule(RULE)) == [kk.line("threaded")]
    # the same call binding another name: that name is unused
    kk = kernel(THREAD_SRC.replace("RET", "buf").replace("view = self.fill", "other = self.fill"))
    assert lines(kk.rule(RULE)) == [kk.line("threaded")]


def test_a_call_that_returns_a_buffer_of_the_caller_is_not_a_dead_value():
    # `res = self.fill(x, out)` returns the caller's `out` under a new name (PyPTO's jit
    # renames such a rebinding `out_v1`): the writes land in the caller's buffer
    body = "res = self.fill(x, out)  # renamed\n        return out"
    src = THREAD_SRC.replace("RET", "buf")
    start = src.index("        buf = pl.create_tensor")
    kk = kernel(src[:start] + "        " + body + "\n")
    assert kk.rule(RULE) == []
    # a local buffer under a new name, not read again: reported
    local = "buf = pl.create_tensor([16, 64], dtype=pl.FP32)\n        res = self.fill(x, buf)  # renamed\n        return out"
    kk = kernel(src[:start] + "        " + local + "\n")
    assert lines(kk.rule(RULE)) == [kk.line("renamed")]
