"""InOutUseDiscipline: PyPTO's acceptance cases V1-V8, P1-P8 and the derived cases D1-D9.

The programs follow PyPTO's `test_stmt_dependency_analysis.py`: `mutate(T: InOut[...])`
returns `pl.add(T, T)`; every violation must name the variable and point at the read.
"""

import inspect

import jit_check_kernels as J
import numpy as np
import pytest
from checkutil import kernel, lines

from pldsl.checks import RULES, has_errors, run_checks

RULE = "InOutUseDiscipline"

PRELUDE = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def mutate(self, t: pl.InOut[pl.Tensor[[64], pl.FP32]]) -> pl.Tensor[[64], pl.FP32]:
        r = pl.add(t, t)
        return r

    @pl.function(type=pl.FunctionType.InCore)
    def produce(self, t: pl.Out[pl.Tensor[[64], pl.FP32]]) -> pl.Tensor[[64], pl.FP32]:
        t = pl.full([64], pl.FP32, 1.0)
        return t

    @pl.function(type=pl.FunctionType.InCore)
    def mutate2(
        self, ro: pl.Tensor[[64], pl.FP32], t: pl.InOut[pl.Tensor[[64], pl.FP32]]
    ) -> pl.Tensor[[64], pl.FP32]:
        r = pl.add(ro, t)
        return r

    @pl.function(type=pl.FunctionType.InCore)
    def k(
        self,
        x: pl.Tensor[[64], pl.FP32],
        a: pl.InOut[pl.Tensor[[64], pl.FP32]],
        b: pl.InOut[pl.Tensor[[64], pl.FP32]],
    ) -> pl.Tuple[pl.Tensor[[64], pl.FP32], pl.Tensor[[64], pl.FP32]]:
        return a, b

    @pl.function(type=pl.FunctionType.Inline)
    def writeout(self, a: pl.Tensor[[64], pl.FP32], out: pl.Out[pl.Tensor[[64], pl.FP32]]):
        out = pl.assemble(out, a, [0])

    @pl.function(type=pl.FunctionType.InCore)
    def passthrough(self, a: pl.Tensor[[64], pl.FP32]) -> pl.Tensor[[64], pl.FP32]:
        return a
"""


def program(body: str, params: str = "x: pl.Tensor[[64], pl.FP32]", ftype: str = "Opaque"):
    """PRELUDE plus a `main` whose body is `body` (already indented by 8 spaces)."""
    src = PRELUDE + (
        f"\n    @pl.function(type=pl.FunctionType.{ftype})\n"
        f"    def main(self, {params}) -> pl.Tensor[[64], pl.FP32]:\n" + body
    )
    return kernel(src)


def only(k, name: str, marker: str):
    found = k.rule(RULE)
    assert found, "expected an InOutUseDiscipline violation"
    d = next(d for d in found if d.span.line == k.line(marker))
    assert d.rule == RULE and d.severity == "error"
    assert f"variable '{name}' was passed as InOut/Out at " in d.message
    assert d.message.endswith("; read the post-call return value instead of the pre-call variable")
    return d


def clean(k):
    assert k.rule(RULE) == []


# ----------------------------------------------------------------- violations


def test_v1_rejects_post_inout_read():
    k = program(
        "        t_new = self.mutate(x)  # call\n"
        "        y = pl.add(x, x)  # read\n"
        "        return t_new\n"
    )
    d = only(k, "x", "read")
    # exact PyPTO text: origin = the call's file:line:col, location = the read's Var
    call_col = k.text.splitlines()[k.line("call") - 1].index("self.mutate") + 1
    assert d.message == (
        f"variable 'x' was passed as InOut/Out at {k.file}:{k.line('call')}:{call_col}; "
        "read the post-call return value instead of the pre-call variable"
    )
    assert d.span.col == k.text.splitlines()[k.line("read") - 1].index("x") + 1
    assert lines(k.rule(RULE)) == [k.line("read")] * 2  # both operands are reads


def test_v2_out_direction_treated_like_inout():
    k = program(
        "        t_new = self.produce(x)\n        y = pl.add(x, x)  # read\n        return y\n"
    )
    only(k, "x", "read")


def test_v3_rejects_read_in_nested_if_branch():
    k = program(
        "        t_new = self.mutate(x)\n"
        "        if flag == 0:\n"
        "            y = pl.add(x, x)  # read\n"
        "        else:\n"
        "            y = pl.mul(t_new, t_new)\n"
        "        return y\n",
        params="x: pl.Tensor[[64], pl.FP32], flag: pl.Scalar[pl.INDEX]",
    )
    only(k, "x", "read")
    assert set(lines(k.rule(RULE))) == {k.line("read")}


def test_v4_rejects_read_in_for_body():
    k = program(
        "        t_new = self.mutate(x)\n"
        "        for i, (acc,) in pl.range(0, 4, 1, init_values=(t_new,)):\n"
        "            acc = pl.yield_(pl.add(acc, x))  # read\n"
        "        return acc\n"
    )
    only(k, "x", "read")


def test_v5_loop_backedge_is_flagged():
    k = program(
        "        for i in pl.range(0, 4, 1):\n"
        "            y = pl.add(x, x)  # read\n"
        "            z = self.mutate(x)  # call\n"
        "        return x  # ret\n"
    )
    only(k, "x", "read")  # iteration 2 reads what iteration 1 passed as InOut
    only(k, "x", "ret")
    assert k.line("call") in lines(k.rule(RULE))  # the call's own argument, iteration 2


def test_an_spmd_grid_has_no_back_edge():
    # the same body as v5 in a pl.spmd grid: one scope run by every block, so only the read
    # after the call (the return) is a violation, not block 1's read "after" block 0's call
    k = program(
        "        for i in pl.spmd(4):\n"
        "            y = pl.add(x, x)  # read\n"
        "            z = self.mutate(x)  # call\n"
        "        return x  # ret\n"
    )
    assert lines(k.rule(RULE)) == [k.line("ret")]
    with_form = program(
        "        with pl.spmd(4):\n            x = self.mutate(x)  # call\n        return x\n"
    )
    clean(with_form)


def test_v6_violation_blocks_the_check():
    k = program(
        "        t_new = self.mutate(x)\n        y = pl.add(x, x)  # read\n        return y\n"
    )
    found = run_checks(k.program)
    assert has_errors(found)
    assert any(d.rule == RULE and d.span.line == k.line("read") for d in found)


def test_v7_two_dimensional_variant_followed_by_pipeline():
    src = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def mutate(self, t: pl.InOut[pl.Tensor[[64, 64], pl.FP32]]) -> pl.Tensor[[64, 64], pl.FP32]:
        r = pl.add(t, t)
        return r

    @pl.function
    def main(self, x: pl.Tensor[[64, 64], pl.FP32]) -> pl.Tensor[[64, 64], pl.FP32]:
        t_new = self.mutate(x)
        y = pl.add(x, t_new)  # read
        for i in pl.pipeline(0, 4, 1, stage=2):
            y = pl.add(y, t_new)
        return y
"""
    k = kernel(src)
    only(k, "x", "read")
    assert lines(k.rule(RULE)) == [k.line("read")]


def test_v8_inline_callee_called_as_statement():
    src = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Inline)
    def add_inline(
        self,
        a: pl.Tensor[[64], pl.FP32],
        b: pl.Tensor[[64], pl.FP32],
        c: pl.Out[pl.Tensor[[64], pl.FP32]],
    ):
        c = pl.assemble(c, pl.add(a, b), [0])

    @pl.function
    def main(
        self,
        a: pl.Tensor[[64], pl.FP32],
        b: pl.Tensor[[64], pl.FP32],
        c: pl.Out[pl.Tensor[[64], pl.FP32]],
    ) -> pl.Tensor[[64], pl.FP32]:
        self.add_inline(a, b, c)
        return c  # ret
"""
    k = kernel(src)
    only(k, "c", "ret")


# ----------------------------------------------------------------- clean programs


def test_p1_clean_when_return_value_is_used():
    clean(
        program(
            "        t_new = self.mutate(x)\n        y = pl.add(t_new, t_new)\n        return y\n"
        )
    )


def test_p2_sibling_if_branch_does_not_bleed():
    clean(
        program(
            "        if flag == 0:\n"
            "            a = self.mutate(x)\n"
            "        else:\n"
            "            b = pl.add(x, x)\n"
            "        return y\n",
            params="x: pl.Tensor[[64], pl.FP32], y: pl.Tensor[[64], pl.FP32], "
            "flag: pl.Scalar[pl.INDEX]",
        )
    )


def test_p3_self_read_in_call_args_is_allowed():
    clean(program("        r = self.mutate2(x, x)\n        return r\n"))


def test_p4_builtin_ops_do_not_kill_vars():
    clean(
        program("        y = pl.add(x, x)\n        z = pl.mul(x, y)\n        return pl.add(x, z)\n")
    )


def test_p5_for_loop_var_is_not_flagged():
    clean(
        program(
            "        t_new = self.mutate(x)\n"
            "        for i, (acc,) in pl.range(0, 4, 1, init_values=(t_new,)):\n"
            "            acc = pl.yield_(pl.add(acc, t_new))\n"
            "        return acc\n"
        )
    )


def test_p6_inline_statement_call_site_drops_return():
    clean(
        program(
            "        self.writeout(a, ext)\n        b = pl.assemble(a, a, [0])\n        return b\n",
            params="a: pl.Tensor[[64], pl.FP32], ext: pl.Out[pl.Tensor[[64], pl.FP32]]",
        )
    )


def test_p7_repeated_builtin_store_target():
    src = """
import pldsl as pl


@pl.program
class P:
    @pl.function
    def main(
        self, a: pl.Tensor[[64, 64], pl.FP32], out: pl.Out[pl.Tensor[[64, 64], pl.FP32]]
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        with pl.at(level=pl.Level.CORE_GROUP):
            tile = pl.slice(a, [64, 64], [0, 0])
            pl.assemble(out, tile, [0, 0])
        with pl.at(level=pl.Level.CORE_GROUP):
            tile = pl.slice(a, [64, 64], [0, 0])
            pl.assemble(out, tile, [0, 0])
        with pl.at(level=pl.Level.CORE_GROUP):
            tile = pl.slice(a, [64, 64], [0, 0])
            pl.assemble(out, tile, [0, 0])
        with pl.at(level=pl.Level.CORE_GROUP):
            tile = pl.slice(a, [64, 64], [0, 0])
            pl.assemble(out, tile, [0, 0])
        return out
"""
    clean(kernel(src))


def test_p8_self_aliasing_assign():
    clean(program("        x = self.passthrough(x)\n        return x\n"))


# ----------------------------------------------------------------- derived cases


def test_d1_rebinding_unkills():
    clean(program("        x = self.mutate(x)\n        y = pl.add(x, x)\n        return y\n"))


def test_d2_rhs_read_precedes_rebinding():
    k = program("        r = self.mutate(x)\n        x = pl.add(x, x)  # read\n        return x\n")
    only(k, "x", "read")
    assert lines(k.rule(RULE)) == [k.line("read")] * 2  # the return reads the new x


def test_d3_tuple_results():
    params = (
        "x: pl.Tensor[[64], pl.FP32], a: pl.InOut[pl.Tensor[[64], pl.FP32]], "
        "b: pl.InOut[pl.Tensor[[64], pl.FP32]]"
    )
    bad = program(
        "        a2, b2 = self.k(x, a, b)\n        y = pl.add(a, b2)  # read\n        return y\n",
        params=params,
    )
    only(bad, "a", "read")
    assert len(bad.rule(RULE)) == 1
    clean(
        program(
            "        a, b = self.k(x, a, b)\n        y = pl.add(a, b)\n        return y\n",
            params=params,
        )
    )


def test_d4_kill_in_loop_read_after():
    k = program(
        "        for i in pl.range(0, 4, 1):\n"
        "            y = self.mutate(x)\n"
        "        z = pl.add(x, y)  # read\n"
        "        return z\n"
    )
    only(k, "x", "read")


def test_d5_kill_in_then_branch_read_after_if():
    k = program(
        "        y = pl.add(x, x)\n"
        "        if flag == 0:\n"
        "            y = self.mutate(x)\n"
        "        z = pl.add(x, y)  # read\n"
        "        return z\n",
        params="x: pl.Tensor[[64], pl.FP32], flag: pl.Scalar[pl.INDEX]",
    )
    only(k, "x", "read")


def test_d6_loop_on_its_own_iter_arg():
    clean(
        program(
            "        for i, (acc,) in pl.range(0, 4, 1, init_values=(x,)):\n"
            "            acc2 = self.mutate(acc)\n"
            "            acc = pl.yield_(acc2)\n"
            "        return acc\n"
        )
    )
    k = program(
        "        for i, (acc,) in pl.range(0, 4, 1, init_values=(x,)):\n"
        "            acc2 = self.mutate(acc)\n"
        "            acc = pl.yield_(acc)  # read\n"
        "        return acc\n"
    )
    only(k, "acc", "read")


def test_d7_expression_arguments_are_not_tracked():
    clean(
        program(
            "        r = self.produce(pl.slice(buf, [64], [0]))\n"
            "        y = pl.add(buf, r)\n"
            "        return y\n",
            params="buf: pl.Tensor[[64], pl.FP32]",
        )
    )


def test_d8_group_and_spmd_functions_are_skipped():
    body = "        t_new = self.mutate(x)\n        y = pl.add(x, x)\n        return y\n"
    for ftype in ("Group", "Spmd"):
        clean(program(body, ftype=ftype))
    assert program(body, ftype="Orchestration").rule(RULE)


def test_d9_return_is_a_read():
    k = program("        t_new = self.mutate(x)\n        return x  # ret\n")
    only(k, "x", "ret")


# ----------------------------------------------------------------- variables, not names
# PyPTO tracks Var objects: a carry is a new variable, a yield target exists only after its
# loop, so a yield revives nothing inside the body.


def test_i1_yield_target_revives_nothing_inside_the_loop():
    k = program(
        "        for i, (acc,) in pl.range(0, 4, 1, init_values=(t,)):\n"
        "            r = self.mutate(x)  # call\n"
        "            x = pl.yield_(r)\n"
        "        return x\n",
        params="x: pl.Tensor[[64], pl.FP32], t: pl.Tensor[[64], pl.FP32]",
    )
    d = only(k, "x", "call")  # iteration 2 passes the parameter x that iteration 1 killed
    call_col = k.text.splitlines()[k.line("call") - 1].index("self.mutate") + 1
    assert f"at {k.file}:{k.line('call')}:{call_col};" in d.message  # the same call
    assert d.span.col == k.text.splitlines()[k.line("call") - 1].index("(x)") + 2
    # after the loop `x` is the loop's return variable, never passed anywhere
    assert lines(k.rule(RULE)) == [k.line("call")]


def test_i2_carry_is_a_new_variable_and_the_outer_one_stays_dead():
    k = program(
        "        r = self.mutate(x)\n"
        "        for i, (x,) in pl.range(0, 4, 1, init_values=(r,)):\n"
        "            y = pl.add(x, x)\n"
        "            z = pl.yield_(y)\n"
        "        w = pl.add(x, z)  # after\n"
        "        return w\n"
    )
    only(k, "x", "after")  # after the loop `x` is the parameter again
    assert lines(k.rule(RULE)) == [k.line("after")]  # the body reads the carry: clean


def test_i3_yield_target_named_like_the_killed_variable_is_new_after_the_loop():
    clean(
        program(
            "        r = self.mutate(x)\n"
            "        for i, (x,) in pl.range(0, 4, 1, init_values=(r,)):\n"
            "            y = pl.add(x, x)\n"
            "            x = pl.yield_(y)\n"
            "        w = pl.add(x, x)\n"
            "        return w\n"
        )
    )


def test_i4_killing_the_carry_inside_the_body_is_local_to_the_loop():
    # the body kills the carry `acc`, then binds a new loop-local `acc` (a carry's name is
    # not assignable in PyPTO: the assignment makes a new variable) and yields it
    clean(
        program(
            "        for i, (acc,) in pl.range(0, 4, 1, init_values=(x,)):\n"
            "            t = self.mutate(acc)\n"
            "            acc = pl.add(t, t)\n"
            "            out = pl.yield_(acc)\n"
            "        return out\n"
        )
    )
    k = program(
        "        for i, (acc,) in pl.range(0, 4, 1, init_values=(x,)):\n"
        "            t = self.mutate(acc)\n"
        "            u = pl.add(acc, t)  # read\n"
        "            out = pl.yield_(u)\n"
        "        return out\n"
    )
    only(k, "acc", "read")
    assert lines(k.rule(RULE)) == [k.line("read")]


def test_i5_kill_in_a_carrying_loop_is_seen_after_it():
    k = program(
        "        for i, (acc,) in pl.range(0, 4, 1, init_values=(t,)):\n"
        "            r = self.mutate(x)\n"
        "            x = pl.add(r, acc)\n"  # revives the parameter x (plain: assigned in place)
        "            acc2 = pl.yield_(x)\n"
        "        y = pl.add(x, acc2)\n"
        "        return y\n",
        params="x: pl.Tensor[[64], pl.FP32], t: pl.Tensor[[64], pl.FP32]",
    )
    clean(k)


def test_e1_the_first_of_several_kills_is_the_origin():
    k = program(
        "        a = self.mutate(x)  # first\n"
        "        b = self.mutate(x)\n"
        "        y = pl.add(x, a)  # read\n"
        "        return y\n"
    )
    first = k.line("first")
    col = k.text.splitlines()[first - 1].index("self.mutate") + 1
    d = only(k, "x", "read")
    assert f"at {k.file}:{first}:{col};" in d.message
    # the second call's argument is itself a read of the killed x
    assert lines(k.rule(RULE)) == [first + 1, k.line("read")]


def test_e2_an_if_without_yields_leaks_its_bindings_in_order():
    # PyPTO's parser leaks the then branch before parsing the else branch, so both `t` are one
    # variable; the then path leaves it dead, so the read after the `if` is a violation
    k = program(
        "        if flag == 0:\n"
        "            t = pl.add(x, x)\n"
        "            y = self.mutate(t)\n"
        "        else:\n"
        "            t = pl.mul(x, x)\n"
        "            y = pl.add(t, t)\n"
        "        z = pl.add(t, y)  # read\n"
        "        return z\n",
        params="x: pl.Tensor[[64], pl.FP32], flag: pl.Scalar[pl.INDEX]",
    )
    only(k, "t", "read")
    assert lines(k.rule(RULE)) == [k.line("read")]


def test_e3_else_branch_and_init_values_are_reads():
    k = program(
        "        t = self.mutate(x)\n"
        "        if flag == 0:\n"
        "            y = pl.add(t, t)\n"
        "        else:\n"
        "            y = pl.add(x, t)  # else\n"
        "        for i, (acc,) in pl.range(0, 4, 1, init_values=(x,)):  # init\n"
        "            acc = pl.yield_(pl.add(acc, y))\n"
        "        return acc\n",
        params="x: pl.Tensor[[64], pl.FP32], flag: pl.Scalar[pl.INDEX]",
    )
    assert lines(k.rule(RULE)) == [k.line("else"), k.line("init")]


def test_e4_an_inner_loops_carry_does_not_leak_into_the_outer_back_edge():
    # the inner body leaves its carry dead each iteration; the header rebinds it, so neither
    # the inner nor the outer loop's next iteration reads a dead variable
    clean(
        program(
            "        for j, (o,) in pl.range(0, 2, 1, init_values=(x,)):\n"
            "            for i, (acc,) in pl.range(0, 4, 1, init_values=(o,)):\n"
            "                t = self.mutate(acc)\n"
            "                res = pl.yield_(t)\n"
            "            o2 = pl.yield_(res)\n"
            "        return o2\n"
        )
    )


# ----------------------------------------------------------------- @pl.jit helpers by flavour
# PyPTO's jit specializer drops `pl.Out` / `pl.InOut` from a `@pl.jit.inline` helper's
# parameters (the body is spliced into the caller before SSA conversion, so the parameter is
# the caller's own variable), while `.incore` / `.opaque` helpers keep them. Its verifier then
# sees a call whose parameters are all `In` for an inline helper: nothing is killed, and
# `helper(x, y)` followed by `return y` is clean. For an InCore or Opaque helper, `y` is bound
# to an `Out` parameter, so the read after the call is the violation (as in V1, V2).


def _jit_program(kernel, *args):
    return kernel.specialize(*args)


def _jit_findings(kernel, *args):
    return RULES[RULE].check(_jit_program(kernel, *args))


def _kernel_line(kernel, marker: str) -> int:
    src, start = inspect.getsourcelines(kernel.func)
    return start + next(i for i, text in enumerate(src) if text.rstrip().endswith(f"# {marker}"))


def test_j1_inline_jit_helper_called_as_statement_is_clean():
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    y = np.zeros_like(x)
    assert _jit_findings(J.calls_inline_as_statement, x, y) == []
    helper = _jit_program(J.calls_inline_as_statement, x, y).functions["double_into"]
    assert [p.direction for p in helper.params] == ["In", "In"]  # as PyPTO's specializer has it
    J.calls_inline_as_statement(x, y)  # and the write still reaches the caller's tensor
    np.testing.assert_array_equal(y, x * 2)


def test_j2_inline_jit_helper_in_a_loop_with_an_inout_state_is_clean():
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    state = np.ones((1, 8), np.float32)
    assert _jit_findings(J.calls_inline_in_a_loop, x, state) == []
    J.calls_inline_in_a_loop(x, state)
    np.testing.assert_array_equal(state[0], 1 + x.sum(axis=0))


@pytest.mark.parametrize("flavour", ["incore", "opaque"])
def test_j3_non_inline_jit_helper_called_as_statement_is_a_violation(flavour):
    kernel = getattr(J, f"calls_{flavour}_as_statement")
    x = np.ones((4, 8), np.float32)
    found = _jit_findings(kernel, x, np.zeros_like(x))
    assert [d.span.line for d in found] == [_kernel_line(kernel, f"read-after-{flavour}")]
    d = found[0]
    assert d.severity == "error" and "variable 'y' was passed as InOut/Out at " in d.message
    assert f":{_kernel_line(kernel, f'kill-{flavour}')}:" in d.message  # names the call


def test_j4_binding_the_non_inline_helpers_result_is_clean():
    x = np.ones((4, 8), np.float32)
    assert _jit_findings(J.binds_the_incore_result, x, np.zeros_like(x)) == []
