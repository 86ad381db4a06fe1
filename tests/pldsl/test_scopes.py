"""Task dependencies (`as tid`, `deps=`, `pl.system.task_dummy`, `pl.array.create`,
`pl.TASK_ID`), the scopes other than `pl.at`, and the compile-time statements: capture, round
trip, sequential meaning on the interpreter and the C backend (against NumPy), and errors."""

from __future__ import annotations

import numpy as np
import pytest
from irutil import compile_c, orchestration_capture_error, round_trip

import pldsl as pl
from pldsl import interpreter
from pldsl.diagnostics import CaptureError, RuntimeFault
from pldsl.ir.nodes import Scope, walk

N = 32


@pl.program
class Tasks:
    @pl.function(type=pl.FunctionType.Orchestration)
    def chain(
        self,
        a: pl.Tensor[[N, N], pl.FP32],
        out: pl.Out[pl.Tensor[[N, N], pl.FP32]],
    ) -> pl.Tensor[[N, N], pl.FP32]:
        tids = pl.array.create(2, pl.TASK_ID)
        with pl.manual_scope():
            with pl.at(level=pl.Level.CORE_GROUP, allow_early_resolve=True) as t1:
                out = pl.assemble(out, pl.mul(a, 2.0), [0, 0])
            tids[0] = t1
            with pl.spmd(2, deps=[t1, None], name_hint="halves") as t2:
                h = pl.tile.get_block_idx()
                half = pl.slice(out, [N // 2, N], [h * (N // 2), 0])
                out = pl.assemble(out, pl.add(half, 1.0), [h * (N // 2), 0])
            tids[1] = t2
            done = pl.system.task_dummy(deps=[tids])
            with pl.at(level=pl.Level.CORE_GROUP, deps=[done, tids[0]]) as _t3:
                out = pl.assemble(out, pl.exp(out), [0, 0])
        with pl.scope():
            with pl.incore():
                out = pl.assemble(out, pl.add(out, 1.0), [0, 0])
        with pl.auto_incore():
            out = pl.assemble(out, pl.mul(out, 0.5), [0, 0])
        return out

    @pl.function(type=pl.FunctionType.Orchestration)
    def bad_dep(
        self,
        a: pl.Tensor[[N, N], pl.FP32],
        k: pl.Scalar[pl.INDEX],
        out: pl.Out[pl.Tensor[[N, N], pl.FP32]],
    ) -> pl.Tensor[[N, N], pl.FP32]:
        tids = pl.array.create(1, pl.TASK_ID)
        tids[0] = pl.cast(k, pl.TASK_ID)
        with pl.at(level=pl.Level.CORE_GROUP, deps=[tids[0]]) as _t:
            out = pl.assemble(out, a, [0, 0])
        return out


def _oracle(a: np.ndarray) -> np.ndarray:
    return ((np.exp(a * 2.0 + 1.0) + 1.0) * 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(3).uniform(-1, 1, (N, N)).astype(np.float32)


@pytest.fixture(scope="module")
def c_program():
    return compile_c(Tasks)


@pytest.mark.parametrize("fast", [True, False])
def test_tasks_run_in_program_order_on_the_interpreter(data, fast):
    got = interpreter.run(Tasks, "chain", data, np.zeros_like(data), fast=fast)
    np.testing.assert_allclose(got, _oracle(data), rtol=1e-6)


def test_tasks_on_the_c_backend(data, c_program):
    got = c_program.run("chain", data, np.zeros_like(data))
    np.testing.assert_allclose(got, _oracle(data), rtol=1e-6)


@pytest.mark.parametrize("fast", [True, False])
def test_a_dependency_on_a_task_not_created_is_a_fault(data, fast):
    # no task exists before the pl.at: id 0 is "no producer" (clean), id 1 is not created yet
    ok = interpreter.run(Tasks, "bad_dep", data, 0, np.zeros_like(data), fast=fast)
    np.testing.assert_array_equal(ok, data)
    with pytest.raises(RuntimeFault) as info:
        interpreter.run(Tasks, "bad_dep", data, 1, np.zeros_like(data), fast=fast)
    assert info.value.diagnostic.rule == "UnknownTask"
    assert "task 1" in info.value.diagnostic.message


def test_c_backend_checks_scalar_dependencies(data, c_program):
    np.testing.assert_array_equal(c_program.run("bad_dep", data, 0, np.zeros_like(data)), data)
    with pytest.raises(RuntimeFault):
        c_program.run("bad_dep", data, 1, np.zeros_like(data))


def test_capture_shape_and_round_trip():
    scopes = [n for n in walk(Tasks.chain) if isinstance(n, Scope)]
    kinds = [s.kind for s in scopes]
    assert kinds.count("task") == 2  # the spmd wrapper and the task_dummy
    assert {"at", "manual_scope", "scope", "incore", "auto_incore"} <= set(kinds)
    at = next(s for s in scopes if s.kind == "at" and s.deps)
    assert [type(d).__name__ for d in at.deps] == ["Var", "OpCall"]
    assert at.tid is not None and at.tid.type.dtype == pl.TASK_ID
    assert ("allow_early_resolve", True) in next(s for s in scopes if s.kind == "at").attrs
    text = pl.print_ir(Tasks)
    assert "as t1:" in text and "deps=[t1]" in text and "pl.dynamic" not in text
    round_trip(Tasks)


def test_task_id_parameters():
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.Orchestration)\n"
        "    def f(self, a: pl.Tensor[[16, 16], pl.FP32], dep: pl.Scalar[pl.TASK_ID],\n"
        "          dep2: pl.TaskId) -> pl.Tensor[[16, 16], pl.FP32]:\n"
        "        with pl.at(level=pl.Level.CORE_GROUP, deps=[dep, dep2]) as t:\n"
        "            a = pl.add(a, 1.0)\n"
        "        return a\n"
    )
    (prog,) = pl.capture_source(src, "<tid>")
    round_trip(prog)


def _capture_error(body: str) -> CaptureError:
    return orchestration_capture_error(body, "<scopes>")


@pytest.mark.parametrize(
    "body, rule, fragment",
    [
        (
            "with pl.at(level=pl.Level.CORE_GROUP, deps=[a]) as t:\n    pass",
            "TypeError",
            "must be a task id",
        ),
        (
            "with pl.spmd(2, deps=[]):\n    pass",
            "UnsupportedFeature",
            "only with `as tid`",
        ),
        ("t = pl.system.task_dummy(deps=[u])", "UndefinedVariable", "undefined variable 'u'"),
        ("t = pl.system.task_dummy()", "TypeError", "one keyword argument"),
        (
            'with pl.at(level=pl.Level.CORE_GROUP, name_hint="has space"):\n    pass',
            "ValueError",
            "must be a valid non-keyword identifier, got 'has space'",
        ),
        ("with pl.scope(1):\n    pass", "TypeError", "keyword arguments only"),
        ("with pl.manual_scope() as t:\n    pass", "UnsupportedFeature", "as name"),
        ("x = pl.array.create(0, pl.INT32)", "TypeError", "positive integer"),
        ("x = pl.array.create(4, pl.FP32)", "TypeError", "integers or task ids"),
        ('pl.static_assert(1 == 2, "one is not two")', "StaticAssert", "one is not two"),
        ("pl.static_assert(a)", "TypeError", "capture-time constant"),
        ("pl.func_attr(1)", "TypeError", "one dict literal"),
        ("pl.static_print()", "TypeError", "at least one argument"),
        ('pl.static_print(f"{a!r}")', "UnsupportedFeature", "plain {expr} placeholders"),
        (
            "with pl.at(level=pl.Level.CORE_GROUP, deps=[t0 for t0 in range(2)]) as t:\n    pass",
            "TypeError",
            "must be a task id",
        ),
        (
            "with pl.at(level=pl.Level.CORE_GROUP, no_dep_args=a):\n    pass",
            "TypeError",
            "pl.at(no_dep_args=...) must be a list literal of tensor names",
        ),
        (
            "with pl.at(level=pl.Level.CORE_GROUP, no_dep_args=[a[0:4, :]]):\n    pass",
            "TypeError",
            "entries must be bare tensor names",
        ),
        (
            "with pl.at(level=pl.Level.CORE_GROUP, no_dep_args=[b]):\n    pass",
            "TypeError",
            "references unknown name 'b'",
        ),
        (
            "n = pl.tensor.dim(a, 0)\nwith pl.at(level=pl.Level.CORE_GROUP, no_dep_args=[n]):\n"
            "    pass",
            "TypeError",
            "entry 'n' is not a tensor",
        ),
        (
            "with pl.at(level=pl.Level.CORE_GROUP, no_dep_args=[a, a]):\n    pass",
            "TypeError",
            "lists 'a' more than once",
        ),
    ],
)
def test_capture_errors(body, rule, fragment):
    d = _capture_error(body).diagnostic
    assert d.rule == rule, d.render()
    assert fragment in d.message, d.render()


def test_compile_time_statements_emit_nothing(capsys):
    src = (
        "import pldsl as pl\nR = 16\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.Orchestration)\n"
        "    def f(self, a: pl.Tensor[[R, 16], pl.FP32]) -> pl.Tensor[[R, 16], pl.FP32]:\n"
        '        pl.func_attr({"core_num": 4})\n'
        '        pl.static_print("rows", R, a)\n'
        '        pl.static_print(f"a is {a}, R={R}")\n'
        '        pl.static_assert(R % 16 == 0, "R must be a multiple of 16")\n'
        "        return a\n"
    )
    (prog,) = pl.capture_source(src, "<static>")
    assert len(prog.f.body) == 1
    printed = capsys.readouterr().out
    assert "rows 16 pl.Tensor[[16, 16], pl.FP32]" in printed
    assert "a is pl.Tensor[[16, 16], pl.FP32], R=16" in printed


def test_create_tensor_manual_dep_is_a_hint():
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.Orchestration)\n"
        "    def f(self, a: pl.Tensor[[16, 16], pl.FP32]) -> pl.Tensor[[16, 16], pl.FP32]:\n"
        "        t = pl.create_tensor([16, 16], dtype=pl.FP32, manual_dep=True)\n"
        "        return a\n"
    )
    (prog,) = pl.capture_source(src, "<md>")
    assert "manual_dep" not in pl.print_ir(prog)
    with pytest.raises(CaptureError):
        pl.capture_source(src.replace("manual_dep=True", "manual_dep=1"), "<md>")


@pl.program
class UnnamedDeps:
    """`pl.at(deps=)` without `as tid` (the task waits, its id is unused) and a barrier stored
    into an array slot, `tids[i] = pl.system.task_dummy(...)`."""

    @pl.function(type=pl.FunctionType.Orchestration)
    def f(
        self,
        a: pl.Tensor[[N, N], pl.FP32],
        out: pl.Out[pl.Tensor[[N, N], pl.FP32]],
    ) -> pl.Tensor[[N, N], pl.FP32]:
        tids = pl.array.create(2, pl.TASK_ID)
        with pl.at(level=pl.Level.CORE_GROUP) as t1:
            out = pl.assemble(out, pl.add(a, 3.0), [0, 0])
        tids[1] = pl.system.task_dummy(deps=[t1])
        with pl.at(level=pl.Level.CORE_GROUP, deps=[tids[1]]):
            out = pl.assemble(out, pl.mul(out, 2.0), [0, 0])
        return out


def test_unnamed_deps_and_barrier_into_an_array_slot(data):
    want = ((data + 3.0) * 2.0).astype(np.float32)  # worked by hand: (a + 3) * 2
    for fast in (True, False):
        got = interpreter.run(UnnamedDeps, "f", data, np.zeros_like(data), fast=fast)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(
        compile_c(UnnamedDeps).run("f", data, np.zeros_like(data)), want, rtol=1e-6
    )
    scopes = [n for n in walk(UnnamedDeps.f) if isinstance(n, Scope)]
    waiting = next(s for s in scopes if s.kind == "at" and s.deps)
    assert waiting.tid is None
    barrier = next(s for s in scopes if s.kind == "task")
    assert barrier.tid is not None and [d.name for d in barrier.deps] == ["t1"]
    text = pl.print_ir(UnnamedDeps)
    assert f"with pl.task(deps=[t1]) as {barrier.tid.name}:" in text
    assert f"pl.write(tids, [1], {barrier.tid.name})" in text
    assert "with pl.at(level=pl.Level.CORE_GROUP, deps=[pl.read(tids, [1])]):" in text
    round_trip(UnnamedDeps)


def test_an_unnamed_dependency_is_still_checked(data):
    src = (
        "import pldsl as pl\n\n@pl.program\nclass K:\n"
        "    @pl.function(type=pl.FunctionType.Orchestration)\n"
        "    def f(self, a: pl.Tensor[[16, 16], pl.FP32], k: pl.Scalar[pl.INDEX]\n"
        "          ) -> pl.Tensor[[16, 16], pl.FP32]:\n"
        "        tids = pl.array.create(1, pl.TASK_ID)\n"
        "        tids[0] = pl.cast(k, pl.TASK_ID)\n"
        "        with pl.at(level=pl.Level.CORE_GROUP, deps=[tids[0]]):\n"
        "            a = pl.add(a, 1.0)\n"
        "        return a\n"
    )
    (prog,) = pl.capture_source(src, "<unnamed>")
    x = data[:16, :16].copy()
    np.testing.assert_allclose(interpreter.run(prog, "f", x, 0), x + 1.0)
    with pytest.raises(RuntimeFault) as info:
        interpreter.run(prog, "f", x, 5)
    assert info.value.diagnostic.rule == "UnknownTask"


NO_DEP_SRC = """\
import pldsl as pl


@pl.program
class K:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, x: pl.Tensor[[8, 16], pl.FP32], y: pl.Out[pl.Tensor[[8, 16], pl.FP32]]):
        for i in pl.range(2):
            with pl.at(level=pl.Level.CORE_GROUP, no_dep_args=[y, x]):
                y = pl.assemble(y, pl.add(pl.slice(x, [4, 16], [i * 4, 0]), 1.0), [i * 4, 0])
        return y
"""


def test_no_dep_args_is_recorded_printed_bare_and_has_no_numeric_effect():
    """`pl.at(no_dep_args=[t])` (qwen3_14b/decode_layer_a8w8.py): PyPTO's NoDep argument
    slots, a scheduling assertion (sibling tasks touch disjoint parts); kept in the IR,
    printed with bare names as PyPTO writes it; the values are those without it."""
    (prog,) = pl.capture_source(NO_DEP_SRC, "<no_dep>")
    (at,) = [n for n in walk(prog.f) if isinstance(n, Scope) and n.kind == "at"]
    assert ("no_dep_args", ("y", "x")) in at.attrs
    assert "no_dep_args=[y, x]" in pl.print_ir(prog)
    round_trip(prog)
    x = np.random.default_rng(5).standard_normal((8, 16)).astype(np.float32)
    got = interpreter.run(prog, "f", x, np.zeros_like(x))
    np.testing.assert_array_equal(got, x + np.float32(1.0))
    assert [d for d in pl.check(prog) if d.is_error] == []


def test_the_ir_parser_rejects_a_no_dep_entry_that_is_not_a_tensor():
    text = pl.print_ir(pl.capture_source(NO_DEP_SRC, "<no_dep>")[0])
    with pytest.raises(pl.PldslError) as info:
        pl.parse_ir(text.replace("no_dep_args=[y, x]", "no_dep_args=[i]"))
    assert "no_dep_args= takes a list of tensor names" in info.value.diagnostic.message


COUNTS_SRC = """\
import pldsl as pl


@pl.program
class K:
    @pl.function(type=pl.FunctionType.Orchestration)
    def f(self, idx: pl.Tensor[[6, 2], pl.INT32], out: pl.Out[pl.Tensor[[8], pl.INT32]]):
        cursor = pl.array.create(8, pl.INT32)
        for e in pl.range(8):
            cursor[e] = 0
        for t in pl.range(6):
            for k in pl.range(2):
                eid = pl.read(idx, [t, k])
                d = eid // 4
                cursor[d * 4 + (eid - d * 4)] = cursor[d * 4 + (eid - d * 4)] + 1
        for e in pl.range(8):
            pl.write(out, [e], cursor[e])
        return out
"""


def test_an_index_value_written_into_an_integer_array_is_converted():
    """deepseek_v4_flash_dspark/moe.py's counter: `cursor[i] = cursor[i] + 1` adds an INDEX
    literal to an INT32 element; PyPTO's array.update_element takes the INDEX value into the
    INT32 array. Counts per expert against np.bincount, on both engines."""
    (prog,) = pl.capture_source(COUNTS_SRC, "<counts>")
    round_trip(prog)
    idx = np.random.default_rng(11).integers(0, 8, (6, 2)).astype(np.int32)
    want = np.bincount(idx.ravel(), minlength=8).astype(np.int32)
    np.testing.assert_array_equal(interpreter.run(prog, "f", idx, np.zeros(8, np.int32)), want)
    np.testing.assert_array_equal(compile_c(prog).run("f", idx, np.zeros(8, np.int32)), want)


def test_a_float_written_into_an_integer_array_is_still_an_error():
    d = _capture_error(
        "c = pl.array.create(4, pl.INT32)\nc[0] = pl.tensor.read(a, [0, 0])"
    ).diagnostic
    assert "FP32" in d.message and "INT32" in d.message, d.render()
