# ruff: noqa: F841  (kernel bodies bind values only for their inferred types)
"""Capture: every construct and op of the surface, with the types capture infers.

Kernels are defined in this module with `@pl.program` (captured at import, closure names from
this module), inside test functions (closure names from the enclosing function) and as source
strings through `pl.capture_source`. Every program is round-tripped through print_ir/parse_ir.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from irutil import KERNELS_SRC, round_trip

import pldsl as pl
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    ExprStmt,
    For,
    If,
    OpCall,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
    walk,
)
from pldsl.ir.printer import format_type
from pldsl.ir.types import TensorType, TupleType
from pldsl.ops import OPS

# ----------------------------------------------------------------------------- helpers


def capture(text: str, namespace: dict | None = None, filename: str = "<test>") -> pl.Program:
    """Capture the one program of a source text; every captured program must round-trip."""
    programs = pl.capture_source(textwrap.dedent(text), filename, namespace)
    assert len(programs) == 1
    round_trip(programs[0])
    return programs[0]


def bindings(func: pl.Function, name: str) -> list:
    """Every Assign/Yield binding `name`, in source order."""
    return [
        n
        for n in walk(func)
        if isinstance(n, (Assign, Yield)) and any(t.name == name for t in n.targets)
    ]


def var_of(func: pl.Function, name: str) -> Var:
    found = bindings(func, name)
    assert found, f"'{name}' is never assigned in {func.name}"
    return next(t for t in found[0].targets if t.name == name)


def ty(func: pl.Function, name: str) -> str:
    """The inferred type of a local, as the IR prints it."""
    return format_type(var_of(func, name).type)


def value_of(func: pl.Function, name: str):
    """The right-hand side of the first assignment to `name`."""
    node = bindings(func, name)[0]
    return node.value if isinstance(node, Assign) else node.values


def ops_in(program: pl.Program) -> set[str]:
    return {n.op for n in walk(program) if isinstance(n, OpCall)}


def T(shape, dtype, valid=None) -> str:
    """Expected tensor type text."""
    dims = "[" + ", ".join(str(d) for d in shape) + "]"
    text = f"pl.Tensor[{dims}, pl.{dtype}"
    if valid is not None:
        text += ", pl.TensorView(valid_shape=[" + ", ".join(str(d) for d in valid) + "])"
    return text + "]"


def S(dtype) -> str:
    return f"pl.Scalar[pl.{dtype}]"


# ------------------------------------------------------------------ module-level kernels

N = pl.dynamic("N")
M = pl.dynamic("M")
ROWS = 16
COLS = 128
HALF = COLS // 2
LOW = pl.BF16
CORE = pl.Level.CORE_GROUP
SCALE = 1.0 / COLS
EPS = 1e-6
WORD = pl.FP32.get_byte()  # folds to 4 at capture time


@pl.program
class Elementwise:
    @pl.function(type=pl.FunctionType.InCore)
    def ew(
        self,
        a: pl.Tensor[[ROWS, COLS], pl.FP32],
        b: pl.Tensor[[ROWS, COLS], pl.FP32],
        h: pl.Tensor[[ROWS, COLS], pl.BF16],
        s: pl.Scalar[pl.FP32],
        row: pl.Tensor[[1, COLS], pl.FP32],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        t_add = pl.add(a, b)
        t_sub = pl.sub(a, 2.0)
        t_mul = pl.mul(a, s)
        t_div = pl.div(a, b)
        t_adds = pl.add(a, 1)
        t_divs = pl.div(a, 4.0)
        t_max = pl.maximum(a, b)
        t_min = pl.minimum(a, 0.5)
        t_neg = pl.neg(a)
        t_exp = pl.exp(a)
        t_sqrt = pl.sqrt(a)
        t_rsqrt = pl.rsqrt(a)
        t_recip = pl.recip(a)
        t_log = pl.log(a)
        t_abs = pl.abs(a)
        t_relu = pl.relu(a)
        mixed = pl.add(h, a)
        h_int_lit = pl.mul(h, 2)
        h_float_lit = pl.mul(h, 2.0)
        bcast = pl.add(a, row)
        scaled = pl.mul(a, SCALE)
        c_default = pl.cast(a, target_type=LOW)
        c_round = pl.cast(a, pl.BF16, mode="round")
        c_rint = pl.cast(a, pl.BF16, mode="rint")
        c_floor = pl.cast(a, pl.INT32, mode="floor")
        c_ceil = pl.cast(a, pl.INT32, mode="ceil")
        c_trunc = pl.cast(a, pl.INT8, mode="trunc")
        c_odd = pl.cast(a, pl.FP16, mode="odd")
        c_none = pl.cast(a, pl.FP16, mode="none")
        r = pl.reshape(a, [ROWS * 2, HALF])
        r_back = pl.reshape(r, [ROWS, COLS])
        return pl.add(t_add, r_back)


@pl.program
class Reductions:
    @pl.function(type=pl.FunctionType.InCore)
    def red(
        self,
        x: pl.Tensor[[ROWS, COLS], pl.FP32],
        per_row: pl.Tensor[[ROWS, 1], pl.FP32],
        per_col: pl.Tensor[[1, COLS], pl.FP32],
        valid_rows: pl.Scalar[pl.INDEX],
    ) -> pl.Tensor[[ROWS, COLS], pl.FP32]:
        rs = pl.row_sum(x)
        rmax = pl.row_max(x)
        rmin = pl.row_min(x)
        cs = pl.col_sum(x)
        cmax = pl.col_max(x)
        cmin = pl.col_min(x)
        rea = pl.row_expand_add(x, per_row)
        res = pl.row_expand_sub(x, rmax)
        rem = pl.row_expand_mul(x, per_row)
        red_ = pl.row_expand_div(x, rs)
        cea = pl.col_expand_add(x, per_col)
        ces = pl.col_expand_sub(x, cmax)
        cem = pl.col_expand_mul(x, per_col)
        ced = pl.col_expand_div(x, cs)
        part = pl.slice(x, [ROWS, COLS], [0, 0], valid_shape=[valid_rows, COLS])
        part_sum = pl.row_sum(part)
        part_col = pl.col_max(part)
        part_scaled = pl.row_expand_mul(part, per_row)
        return pl.add(rea, ced)


@pl.program
class Matmuls:
    @pl.function(type=pl.FunctionType.InCore)
    def mm(
        self,
        a: pl.Tensor[[16, 64], pl.BF16],
        b: pl.Tensor[[64, 32], pl.BF16],
        bt: pl.Tensor[[32, 64], pl.BF16],
        at: pl.Tensor[[64, 16], pl.BF16],
        qa: pl.Tensor[[16, 64], pl.INT8],
        qb: pl.Tensor[[64, 32], pl.INT8],
    ) -> pl.Tensor[[16, 32], pl.FP32]:
        c_default = pl.matmul(a, b)
        c32 = pl.matmul(a, b, out_dtype=pl.FP32)
        c_bt = pl.matmul(a, bt, b_trans=True, out_dtype=pl.FP32)
        c_at = pl.matmul(at, b, a_trans=True, out_dtype=pl.FP32)
        c_both = pl.matmul(at, bt, a_trans=True, b_trans=True, out_dtype=pl.FP32)
        c_int = pl.matmul(qa, qb, out_dtype=pl.INT32)
        c_int_acc = pl.matmul_acc(c_int, qa, qb)
        acc0 = pl.full([16, 32], dtype=pl.FP32, value=0.0)
        for k, (acc,) in pl.range(0, 64, 16, init_values=(acc0,)):
            nxt = pl.matmul_acc(acc, pl.slice(a, [16, 16], [0, k]), pl.slice(b, [16, 32], [k, 0]))
            result = pl.yield_(nxt)
        c_acc_bt = pl.matmul_acc(c32, a, bt, b_trans=True)
        return pl.add(result, c_acc_bt)


@pl.program
class Memory:
    @pl.function(type=pl.FunctionType.Orchestration)
    def mem(
        self,
        x: pl.Tensor[[N, COLS], pl.FP32],
        idx: pl.Tensor[[N], pl.INT32],
        flags: pl.InOut[pl.Tensor[[4], pl.INT8]],
        big: pl.Tensor[[4], pl.INT64],
        out: pl.Out[pl.Tensor[[N, COLS], pl.FP32]],
    ) -> pl.Tensor[[N, COLS], pl.FP32]:
        n = pl.tensor.dim(x, 0)
        last = pl.dim(x, -1)
        buf = pl.create_tensor([ROWS, COLS], dtype=pl.FP32)
        ones = pl.full([ROWS, COLS], dtype=pl.FP32, value=1.0)
        counts = pl.full([ROWS, 1], pl.INT32, 0)
        for r0 in pl.range(0, n, ROWS):
            valid = pl.min(ROWS, n - r0)
            at_least_one = pl.max(valid, 1)
            win = pl.slice(x, [ROWS, COLS], [r0, 0], valid_shape=[valid, COLS])
            win_pad = pl.slice(
                x, [ROWS, COLS], [r0, 0], valid_shape=[valid, COLS], pad_value=pl.PadValue.zero
            )
            with pl.at(level=CORE):
                filled_min = pl.fillpad(win, pad_value=pl.PadValue.min)
                filled_inf = pl.fillpad(win, pad_value=-math.inf)
                filled_zero = pl.fillpad(win)
                filled_max = pl.fillpad(win, pad_value=pl.PadValue.max)
                buf = pl.assemble(buf, filled_zero, [0, 0])
            out = pl.assemble(out, win, [r0, 0])
        e = pl.read(idx, [0])
        e2 = pl.tensor.read(idx, [1])
        i = pl.cast(e, pl.INDEX)
        flags = pl.write(flags, [0], pl.const(1, pl.INT8))
        pl.tensor.write(flags, [1], 0)
        big = pl.write(big, [2], pl.const(-5, pl.INT64))
        v = pl.read(x, [i, 0])
        out = pl.write(out, [0, 0], v)
        j = i * 2 + 1
        q = j // 3
        m = j % 4
        d = j - q
        f = pl.cast(j, pl.FP32) / 2.0
        neg_f = -f
        cond = (j > 3) and not (q == 0) or m != 1
        lo = pl.min(j, q)
        w = WORD * 8
        return out


@pl.program
class Flow:
    @pl.function(level=pl.Level.HOST, role=pl.Role.Orchestrator)
    def host(
        self,
        x: pl.Tensor[[M, COLS], pl.FP32],
        run_twice: pl.Scalar[pl.BOOL],
        steps: pl.Scalar[pl.INDEX],
        y: pl.Out[pl.Tensor[[M, COLS], pl.FP32]],
        stats: pl.Out[pl.Tensor[[ROWS, 1], pl.FP32]],
    ) -> pl.Tuple[pl.Tensor[[M, COLS], pl.FP32], pl.Tensor[[ROWS, 1], pl.FP32]]:
        y2, stats2 = self.kernel(x, y, stats)
        pair = self.kernel(x, y2, stats2)
        first = pair[0]
        if run_twice:
            y2, stats2 = self.kernel(x, y2, stats2)
        else:
            y2 = self.passthrough(y2)
        if steps > 2:
            for _it in pl.range(steps):
                y2 = self.passthrough(y2)
        fresh = self.callback(stats2)
        return y2, stats2

    @pl.function(type=pl.FunctionType.Opaque)
    def kernel(
        self,
        x: pl.Tensor[[M, COLS], pl.FP32],
        y: pl.Out[pl.Tensor[[M, COLS], pl.FP32]],
        stats: pl.Out[pl.Tensor[[ROWS, 1], pl.FP32]],
    ) -> pl.Tuple[pl.Tensor[[M, COLS], pl.FP32], pl.Tensor[[ROWS, 1], pl.FP32]]:
        m = pl.tensor.dim(x, 0)
        for r0 in pl.parallel(0, m, ROWS, chunk=4):
            valid = pl.min(ROWS, m - r0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                t = pl.slice(x, [ROWS, COLS], [r0, 0], valid_shape=[valid, COLS])
                y = pl.assemble(y, pl.exp(t), [r0, 0])
        with pl.at(level=pl.Level.CORE_GROUP, optimizations=[pl.auto_chunk]):
            for u in pl.unroll(2):
                stats = pl.row_sum(pl.slice(x, [ROWS, COLS], [u * ROWS, 0]))
        for p in pl.pipeline(0, 4, stage=2):
            for q in pl.range(p):
                if q == 3:
                    break
                if q == 1:
                    continue
        return y, stats

    @pl.function(type=pl.FunctionType.InCore)
    def passthrough(self, t: pl.Tensor[[M, COLS], pl.FP32]) -> pl.Tensor[[M, COLS], pl.FP32]:
        return t

    @pl.function(level=pl.Level.HOST, role=pl.Role.SubWorker)
    def callback(self, s: pl.Tensor[[ROWS, 1], pl.FP32]) -> pl.Tensor[[ROWS, 1], pl.FP32]: ...


@pl.program
class Sugar:
    @pl.function(type=pl.FunctionType.Opaque)
    def f(
        self,
        x: pl.Tensor[[N, COLS], pl.FP32],
        t: pl.Tensor[[ROWS, COLS], pl.FP32],
        vec: pl.Tensor[[COLS], pl.FP32],
        out: pl.Out[pl.Tensor[[N, COLS], pl.FP32]],
    ) -> pl.Tensor[[N, COLS], pl.FP32]:
        n = pl.tensor.dim(x, 0)
        for b0 in pl.range(0, n, ROWS):
            valid = pl.min(ROWS, n - b0)
            rows = x[b0 : b0 + ROWS, :]
            rows_short = x[b0 : b0 + ROWS]
            ragged = x[b0 : b0 + valid, 0:HALF]
            one_row = x[b0]
            elem = x[b0, 3]
            v = vec[5]
            tail = t[:, HALF:]
            k0 = b0 * 2
            shifted = x[k0 + 1 : k0 + 1 + ROWS, HALF:]
            part = pl.slice(x, [ROWS, COLS], [b0, 0], valid_shape=[valid, COLS])
            out[b0 : b0 + ROWS, :] = t
            out[b0 : b0 + valid, :] = part
            out[b0] = one_row
            out = pl.write(
                out, [b0, 5], elem
            )  # element writes: pl.write (PyPTO rejects out[i, j] = v)
        out[:] = x
        return out


MODULE_PROGRAMS = [Elementwise, Reductions, Matmuls, Memory, Flow, Sugar]


def _source_programs() -> list[pl.Program]:
    out = []
    for path in sorted(KERNELS_SRC.glob("*.py")):
        out += pl.capture_source(path.read_text(), str(path))
    return out


SOURCE_PROGRAMS = _source_programs()
ALL_PROGRAMS = MODULE_PROGRAMS + SOURCE_PROGRAMS


# ------------------------------------------------------------------------- elementwise


def test_elementwise_types():
    f = Elementwise.ew
    full = T([16, 128], "FP32")
    for name in (
        "t_add t_sub t_mul t_div t_max t_min t_neg t_exp t_sqrt t_rsqrt t_recip t_log t_abs "
        "t_relu scaled bcast t_adds t_divs"
    ).split():
        assert ty(f, name) == full, name
    # promotion: BF16 (+) FP32 tensor -> FP32; an int literal is re-stamped to the element
    # dtype, an FP32 literal promotes (PyPTO's tensor-level deducer)
    assert ty(f, "mixed") == full
    assert ty(f, "h_int_lit") == T([16, 128], "BF16")
    assert ty(f, "h_float_lit") == full


def test_elementwise_scalar_rhs_is_a_constant_or_scalar_param():
    f = Elementwise.ew
    sub = value_of(f, "t_sub")
    assert isinstance(sub.args[1], Const) and sub.args[1].value == 2.0
    assert sub.args[1].dtype == pl.FP32
    mul = value_of(f, "t_mul")
    assert isinstance(mul.args[1], Var) and mul.args[1].name == "s"
    # a closure constant expression folds to its value
    adds = value_of(f, "t_adds")
    assert isinstance(adds.args[1], Const) and adds.args[1].value == 1
    assert adds.args[1].dtype is pl.INDEX  # the literal; the result takes the tensor's dtype
    scaled = value_of(f, "scaled")
    assert isinstance(scaled.args[1], Const) and scaled.args[1].value == 1.0 / 128


def test_cast_modes_and_dtypes():
    f = Elementwise.ew
    assert ty(f, "c_default") == T([16, 128], "BF16")
    assert ty(f, "c_round") == T([16, 128], "BF16")
    assert ty(f, "c_rint") == T([16, 128], "BF16")
    assert ty(f, "c_floor") == T([16, 128], "INT32")
    assert ty(f, "c_ceil") == T([16, 128], "INT32")
    assert ty(f, "c_trunc") == T([16, 128], "INT8")
    assert ty(f, "c_odd") == T([16, 128], "FP16")
    assert ty(f, "c_none") == T([16, 128], "FP16")
    assert value_of(f, "c_rint").attr("mode") == "rint"
    assert value_of(f, "c_odd").attr("mode") == "odd"
    # the default mode is "round" (ties away from zero); written out or not, it is the same IR
    assert value_of(f, "c_default").attr("mode") == "round"
    assert pl.structural_equal(value_of(f, "c_round").attrs, value_of(f, "c_rint").attrs) is False
    assert dict(value_of(f, "c_round").attrs) == {"target_type": pl.BF16}
    assert value_of(f, "c_default").attr("target_type") is pl.BF16  # closure dtype LOW


def test_reshape_types():
    f = Elementwise.ew
    assert ty(f, "r") == T([32, 64], "FP32")
    assert ty(f, "r_back") == T([16, 128], "FP32")


# -------------------------------------------------------------------------- reductions


def test_reduction_shapes():
    f = Reductions.red
    for name in ("rs", "rmax", "rmin"):
        assert ty(f, name) == T([16, 1], "FP32")
    for name in ("cs", "cmax", "cmin"):
        assert ty(f, name) == T([1, 128], "FP32")
    for name in ("rea", "res", "rem", "red_", "cea", "ces", "cem", "ced"):
        assert ty(f, name) == T([16, 128], "FP32"), name


def test_valid_shape_propagates_through_reductions_and_expands():
    f = Reductions.red
    assert ty(f, "part") == T([16, 128], "FP32", ["valid_rows", 128])
    assert ty(f, "part_sum") == T([16, 1], "FP32", ["valid_rows", 1])
    assert ty(f, "part_col") == T([1, 128], "FP32", [1, 128])
    assert ty(f, "part_scaled") == T([16, 128], "FP32", ["valid_rows", 128])
    part = var_of(f, "part").type
    assert isinstance(part, TensorType)
    assert part.shape == (16, 128) and part.dtype is pl.FP32
    assert isinstance(part.valid_shape[0], Var) and part.valid_shape[0].name == "valid_rows"
    assert part.valid_shape[1] == 128


# ------------------------------------------------------------------------------ matmul


def test_matmul_types():
    f = Matmuls.mm
    assert ty(f, "c_default") == T([16, 32], "BF16")  # promoted input dtype, not FP32
    assert ty(f, "c32") == T([16, 32], "FP32")
    assert ty(f, "c_bt") == T([16, 32], "FP32")
    assert ty(f, "c_at") == T([16, 32], "FP32")
    assert ty(f, "c_both") == T([16, 32], "FP32")
    assert ty(f, "c_int") == T([16, 32], "INT32")
    assert ty(f, "c_int_acc") == T([16, 32], "INT32")
    assert ty(f, "c_acc_bt") == T([16, 32], "FP32")
    bt = value_of(f, "c_bt")
    assert bt.attr("b_trans") is True and bt.attr("a_trans") is False
    assert value_of(f, "c_at").attr("a_trans") is True
    assert value_of(f, "c_acc_bt").attr("b_trans") is True


def test_loop_with_init_values_and_yield():
    f = Matmuls.mm
    loop = next(n for n in walk(f) if isinstance(n, For))
    assert loop.kind == "range"
    assert [a.name for a in loop.iter_args] == ["acc"]
    assert isinstance(loop.init_values[0], Var) and loop.init_values[0].name == "acc0"
    assert (loop.start.value, loop.stop.value, loop.step.value) == (0, 64, 16)
    last = loop.body[-1]
    assert isinstance(last, Yield) and [t.name for t in last.targets] == ["result"]
    assert ty(f, "result") == T([16, 32], "FP32")
    assert ty(f, "nxt") == T([16, 32], "FP32")


# ------------------------------------------------------------------------------ memory


def test_memory_ops_types():
    f = Memory.mem
    # n = pl.tensor.dim(x, 0) folds onto x's dim symbol N (PyPTO's orchestration fold): no
    # new scalar, and the loop bound is N itself; a static extent stays a runtime read
    assert bindings(f, "n") == []
    loop = next(s for s in walk(f) if isinstance(s, For))
    assert isinstance(loop.stop, Var) and loop.stop.name == "N"
    assert ty(f, "last") == S("INDEX")
    assert ty(f, "buf") == T([16, 128], "FP32")
    assert ty(f, "ones") == T([16, 128], "FP32")
    assert ty(f, "counts") == T([16, 1], "INT32")
    assert ty(f, "win") == T([16, 128], "FP32", ["valid", 128])
    win_pad = var_of(f, "win_pad").type
    assert win_pad.pad is pl.PadValue.zero
    for name in ("filled_min", "filled_inf", "filled_zero", "filled_max"):
        assert ty(f, name) == T([16, 128], "FP32"), name  # fillpad makes it fully valid
    assert value_of(f, "filled_min").attr("pad_value") is pl.PadValue.min
    assert value_of(f, "filled_inf").attr("pad_value") is pl.PadValue.min  # -math.inf sugar
    assert value_of(f, "filled_zero").attr("pad_value") is pl.PadValue.zero
    assert value_of(f, "filled_max").attr("pad_value") is pl.PadValue.max
    assert ty(f, "out") == T(["N", 128], "FP32")
    assert ty(f, "flags") == T([4], "INT8")
    assert ty(f, "big") == T([4], "INT64")


def test_read_write_dim():
    f = Memory.mem
    assert ty(f, "e") == S("INT32")
    assert ty(f, "e2") == S("INT32")
    assert ty(f, "i") == S("INDEX")
    assert ty(f, "v") == S("FP32")
    assert value_of(f, "e2").op == "read"  # pl.tensor.read is the same op
    assert value_of(f, "last").op == "dim" and value_of(f, "last").attr("axis") == -1
    write_stmt = next(s for s in walk(f) if isinstance(s, ExprStmt) and isinstance(s.expr, OpCall))
    assert write_stmt.expr.op == "write"
    const = value_of(f, "big").args[2]
    assert isinstance(const, Const) and const.dtype is pl.INT64 and const.value == -5


def test_scalar_expressions():
    f = Memory.mem
    assert ty(f, "valid") == S("INDEX")
    assert ty(f, "at_least_one") == S("INDEX")
    assert ty(f, "j") == S("INDEX")
    assert ty(f, "q") == S("INDEX")
    assert ty(f, "m") == S("INDEX")
    assert ty(f, "d") == S("INDEX")
    assert ty(f, "f") == S("FP32")
    assert ty(f, "neg_f") == S("FP32")
    assert ty(f, "cond") == S("BOOL")
    assert ty(f, "lo") == S("INDEX")
    valid = value_of(f, "valid")
    assert isinstance(valid, BinOp) and valid.op == "min"
    assert value_of(f, "at_least_one").op == "max"
    assert value_of(f, "q").op == "floordiv"
    assert value_of(f, "m").op == "mod"
    assert isinstance(value_of(f, "neg_f"), UnaryOp)
    cond = value_of(f, "cond")
    assert cond.op == "or" and cond.lhs.op == "and"
    # a closure expression folds: WORD = pl.FP32.get_byte() = 4
    w = value_of(f, "w")
    assert isinstance(w, Const) and w.value == 32 and w.dtype is pl.INDEX


# ------------------------------------------------------------------- control flow etc.


def test_function_attributes():
    host, kernel = Flow.host, Flow.kernel
    assert host.func_type is pl.FunctionType.Opaque
    assert host.level is pl.Level.HOST and host.role is pl.Role.Orchestrator
    assert not host.is_host_stub and host.tuple_return
    assert [(p.name, p.direction) for p in host.params] == [
        ("x", "In"),
        ("run_twice", "In"),
        ("steps", "In"),
        ("y", "Out"),
        ("stats", "Out"),
    ]
    assert [d.name for d in host.dynamic_dims] == ["M"]
    assert kernel.func_type is pl.FunctionType.Opaque and kernel.level is None
    assert Flow.passthrough.func_type is pl.FunctionType.InCore
    assert not Flow.passthrough.tuple_return
    cb = Flow.callback
    assert cb.is_host_stub and cb.body == () and cb.role is pl.Role.SubWorker
    assert cb.level is pl.Level.HOST
    assert [format_type(t) for t in cb.return_types] == [T([16, 1], "FP32")]
    assert [format_type(t) for t in host.return_types] == [
        T(["M", 128], "FP32"),
        T([16, 1], "FP32"),
    ]


def test_forward_references_and_calls():
    host = Flow.host
    calls = [n for n in walk(host) if isinstance(n, Call)]
    assert [c.func for c in calls] == [
        "kernel",
        "kernel",
        "kernel",
        "passthrough",
        "passthrough",
        "callback",
    ]
    assert isinstance(calls[0].type, TupleType) and len(calls[0].type.items) == 2
    assert ty(host, "y2") == T(["M", 128], "FP32")
    assert ty(host, "stats2") == T([16, 1], "FP32")
    assert ty(host, "pair") == (
        "pl.Tuple[pl.Tensor[[M, 128], pl.FP32], pl.Tensor[[16, 1], pl.FP32]]"
    )
    first = value_of(host, "first")
    assert isinstance(first, TupleGet) and first.index == 0
    assert ty(host, "first") == T(["M", 128], "FP32")
    assert ty(host, "fresh") == T([16, 1], "FP32")


def test_tuple_unpacking_reuses_vars():
    host = Flow.host
    unpacks = [n for n in bindings(host, "y2") if isinstance(n, Assign) and len(n.targets) == 2]
    assert len(unpacks) == 2
    # non-SSA: rebinding keeps one variable per name (same name and type object); each
    # binding carries its own span
    a, b = unpacks[0].targets[0], unpacks[1].targets[0]
    assert a.name == b.name == "y2" and a.type is b.type
    assert a.span.line != b.span.line


def test_if_else_and_loops():
    host = Flow.host
    ifs = [n for n in walk(host) if isinstance(n, If)]
    assert len(ifs) == 2
    assert isinstance(ifs[0].cond, Var) and ifs[0].cond.name == "run_twice"
    assert format_type(ifs[0].cond.type) == S("BOOL")
    assert ifs[0].else_body and not ifs[1].else_body
    assert ifs[1].cond.op == "gt"
    kernel = Flow.kernel
    loops = [n for n in walk(kernel) if isinstance(n, For)]
    assert [lp.kind for lp in loops] == ["parallel", "unroll", "pipeline", "range"]
    assert dict(loops[0].attrs) == {"chunk": 4}
    assert dict(loops[2].attrs) == {"stage": 2}
    assert (loops[1].start.value, loops[1].stop.value, loops[1].step.value) == (0, 2, 1)
    assert isinstance(loops[3].stop, Var) and loops[3].stop.name == "p"
    assert any(isinstance(n, Break) for n in walk(loops[3]))
    assert any(isinstance(n, Continue) for n in walk(loops[3]))


def test_scopes_record_level_and_optimizers():
    scopes = [n for n in walk(Flow.kernel) if isinstance(n, Scope)]
    assert [s.kind for s in scopes] == ["at", "at"]
    assert scopes[0].attr("level") is pl.Level.CORE_GROUP
    assert scopes[0].attr("optimization") is pl.chunked_loop_optimizer
    assert scopes[1].attr("optimizations") == (pl.auto_chunk,)
    mem_scope = next(n for n in walk(Memory.mem) if isinstance(n, Scope))
    assert mem_scope.attr("level") is pl.Level.CORE_GROUP  # closure enum CORE


def test_return_statements():
    rets = [n for n in walk(Flow.kernel) if isinstance(n, Return)]
    assert len(rets) == 1 and [v.name for v in rets[0].values] == ["y", "stats"]


def test_spans_point_into_this_file():
    src = Path(__file__).read_text().splitlines()
    kernel_line = next(i for i, t in enumerate(src, 1) if "def kernel(" in t)
    assert Flow.kernel.span.file == __file__
    assert Flow.kernel.span.line == kernel_line
    assert Flow.kernel.span.col == src[kernel_line - 1].index("def") + 1
    m_assign = bindings(Flow.kernel, "m")[0]
    m_line = next(i for i, t in enumerate(src, 1) if "m = pl.tensor.dim(x, 0)" in t)
    assert m_assign.span.line == m_line
    assert m_assign.span.col == src[m_line - 1].index("m =") + 1


# ------------------------------------------------------------------- subscript sugar


def test_subscript_load_sugar():
    f = Sugar.f
    assert ty(f, "rows") == T([16, 128], "FP32")  # (b0 + 16) - b0 folds to 16
    assert ty(f, "rows_short") == T([16, 128], "FP32")  # trailing ':' implied
    assert ty(f, "ragged") == "pl.Tensor[[valid, 64], pl.FP32]"  # symbolic extent
    assert ty(f, "one_row") == T([128], "FP32")  # a scalar index drops the axis
    assert ty(f, "elem") == S("FP32")  # all-scalar full index is a read
    assert ty(f, "v") == S("FP32")
    assert ty(f, "tail") == T([16, 64], "FP32")
    assert ty(f, "shifted") == T([16, 64], "FP32")
    rows = value_of(f, "rows")
    assert rows.op == "slice"
    assert [format_type(i.type) for i in rows.args[2].items] == [S("INDEX")] * 2
    assert rows.args[2].items[0].name == "b0" and rows.args[2].items[1].value == 0
    assert value_of(f, "elem").op == "read"
    one_row = value_of(f, "one_row")
    assert one_row.op == "reshape" and one_row.args[0].op == "slice"
    shifted = value_of(f, "shifted")
    assert [e.value for e in shifted.args[1].items] == [16, 64]
    assert pl.print_ir(Sugar).count("pl.slice(x, [16, 128], [b0, 0])") == 2


def test_subscript_store_sugar():
    f = Sugar.f
    stores = [n.value for n in bindings(f, "out")]
    assert [c.op for c in stores] == ["assemble", "assemble", "assemble", "write", "assemble"]
    assert stores[0].args[1].name == "t"
    assert stores[1].args[1].name == "part"  # narrower window matched by valid_shape
    assert stores[2].args[1].op == "reshape"  # a row fills the dropped axis
    assert format_type(stores[2].args[1].type) == T([1, 128], "FP32")
    assert [format_type(i.type) for i in stores[4].args[2].items] == [S("INDEX")] * 2
    out_var = f.param("out").var
    assert all(
        n.targets[0].name == "out" and n.targets[0].type is out_var.type for n in bindings(f, "out")
    )


def test_subscript_sugar_is_rejected_with_strict_ssa():
    with pytest.raises(pl.CaptureError) as info:
        capture(
            """
            import pldsl as pl

            @pl.program(strict_ssa=True)
            class P:
                @pl.function
                def f(self, x: pl.Tensor[[4, 8], pl.FP32], o: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
                    o[:, :] = x
            """
        )
    assert "strict_ssa" in info.value.diagnostic.message


# ------------------------------------------------------------------------- closures


def test_closure_module_constants_dtypes_enums_dynvars():
    f = Memory.mem
    assert f.params[0].type.shape[0].name == "N"  # the module's pl.dynamic("N")
    assert f.params[0].type.shape[1] == 128  # COLS


def test_closure_locals_of_enclosing_function():
    rows = 8
    width = rows * 4
    dt = pl.FP16
    wide = pl.FP32
    scale = 0.25
    D = pl.dynamic("D")
    lvl = pl.Level.CORE_GROUP
    kind = pl.FunctionType.Opaque
    pad = pl.PadValue.max
    nbytes = pl.BF16.get_byte()

    @pl.program
    class Local:
        @pl.function(type=kind)
        def f(self, x: pl.Tensor[[D, width], dt]) -> pl.Tensor[[rows, width], wide]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=lvl):
                t = pl.slice(x, [rows, width], [0, 0], valid_shape=[pl.min(n, rows), width])
                y = pl.mul(pl.cast(pl.fillpad(t, pad_value=pad), wide), scale)
                z = pl.add(y, nbytes * 1.5)
            return z

    f = Local.f
    assert f.func_type is pl.FunctionType.Opaque
    assert format_type(f.params[0].type) == "pl.Tensor[[D, 32], pl.FP16]"
    assert (
        ty(f, "t") == "pl.Tensor[[8, 32], pl.FP16, pl.TensorView(valid_shape=[pl.min(n, 8), 32])]"
    )
    assert ty(f, "y") == T([8, 32], "FP32")
    assert value_of(f, "y").args[1].value == 0.25
    assert value_of(f, "z").args[1].value == 3.0  # BF16.get_byte() * 1.5
    assert next(n for n in walk(f) if isinstance(n, Scope)).attr("level") is lvl
    assert [d.name for d in f.dynamic_dims] == ["D"]
    round_trip(Local)


def test_closure_dynvar_same_object_same_dim():
    B = pl.dynamic("B")

    @pl.program
    class Two:
        @pl.function(type=pl.FunctionType.InCore)
        def a(self, x: pl.Tensor[[B, 4], pl.FP32]) -> pl.Tensor[[B, 4], pl.FP32]:
            return pl.exp(x)

        @pl.function
        def b(self, x: pl.Tensor[[B, 4], pl.FP32]) -> pl.Tensor[[B, 4], pl.FP32]:
            y = self.a(x)
            return y

    round_trip(Two)
    assert pl.structural_equal(Two.a.params[0].type, Two.b.params[0].type)
    assert Two.b.func_type is pl.FunctionType.Opaque  # bare @pl.function


def test_closure_dynvar_used_in_body_is_the_dim():
    R = pl.dynamic("R")

    @pl.program
    class UseDim:
        @pl.function
        def f(self, x: pl.Tensor[[R, 8], pl.FP32]) -> pl.Tensor[[R, 8], pl.FP32]:
            last = R - 1
            for i in pl.range(R):
                x = pl.write(x, [i, 0], 1.0)
            return x

    round_trip(UseDim)
    last = value_of(UseDim.f, "last")
    assert isinstance(last.lhs, Var) and last.lhs.name == "R"
    loop = next(n for n in walk(UseDim.f) if isinstance(n, For))
    assert isinstance(loop.stop, Var) and loop.stop.name == "R"


def test_closure_in_capture_source_namespace():
    p = capture(
        """
        import pldsl as pl

        @pl.program
        class P:
            @pl.function(type=pl.FunctionType.InCore)
            def f(self, x: pl.Tensor[[R, C], DT]) -> pl.Tensor[[R, C], DT]:
                return pl.mul(x, K)
        """,
        namespace={"R": 4, "C": 8, "DT": pl.FP16, "K": 3},
    )
    assert format_type(p.f.params[0].type) == T([4, 8], "FP16")
    ret = p.f.body[-1].values[0]
    assert ret.args[1].value == 3 and format_type(ret.type) == T([4, 8], "FP16")


def test_capture_source_module_constants_and_pypto_import():
    p = capture(
        """
        import math
        import pypto.language as pl
        from pypto.language import FP32

        A, B = 4, 16
        AREA: int = A * B
        HALF = B // 2
        DYN = pl.dynamic("DYN")
        SCALE = 1 / math.sqrt(B)

        @pl.program
        class P:
            INNER = 3

            @pl.function(type=pl.FunctionType.InCore)
            def f(self, x: pl.Tensor[[DYN, AREA], FP32]) -> pl.Tensor[[A, HALF], FP32]:
                y = pl.reshape(pl.slice(x, [A, B], [INNER, 0]), [A * 2, HALF])
                z = pl.mul(pl.slice(y, [A, HALF], [0, 0]), SCALE)
                return z
        """
    )
    f = p.f
    assert format_type(f.params[0].type) == "pl.Tensor[[DYN, 64], pl.FP32]"
    assert ty(f, "y") == T([8, 8], "FP32")
    assert value_of(f, "z").args[1].value == pytest.approx(0.25)
    sl = value_of(f, "y").args[0]
    assert sl.args[2].items[0].value == 3  # class-level constant INNER
    round_trip(p)


def test_constant_folding():
    p = capture(
        """
        import math
        import pldsl as pl

        K = 64
        SIZES = (16, 32)
        HEAD = 128

        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[K * 2 + 1, K], pl.FP32]) -> pl.Tensor[[129, 64], pl.FP32]:
                a = K * 2 + 1
                b = 1.0 / math.sqrt(HEAD // 2)
                c = min(K, 100) + max(SIZES) - len(SIZES)
                d = int(2.7) + round(3.6) + abs(-2)
                e = pl.FP16.get_byte() * 8
                f_ = SIZES[1] // 2
                g = -K
                h = K > 10
                for i in pl.range(K // 16):
                    y = pl.mul(x, 2 ** 3)
                return x
        """
    )
    f = p.f
    expected = {"a": 129, "b": 0.125, "c": 94, "d": 8, "e": 16, "f_": 16, "g": -64, "h": True}
    for name, value in expected.items():
        v = value_of(f, name)
        assert isinstance(v, Const) and v.value == value, name
        assert type(v.value) is type(value), name
    assert value_of(f, "b").dtype is pl.FP32 and value_of(f, "h").dtype is pl.BOOL
    assert value_of(f, "a").dtype is pl.INDEX
    loop = next(n for n in walk(f) if isinstance(n, For))
    assert loop.stop.value == 4
    assert value_of(f, "y").args[1].value == 8
    assert format_type(f.params[0].type) == T([129, 64], "FP32")


# ----------------------------------------------------------------------- rebinding


def test_rebinding_same_type_is_one_var():
    p = capture(
        """
        import pldsl as pl

        @pl.program
        class P:
            @pl.function(type=pl.FunctionType.InCore)
            def f(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
                acc = pl.full([4, 8], dtype=pl.FP32, value=0.0)
                for i in pl.range(3):
                    acc = pl.add(acc, x)
                x = pl.exp(x)
                return acc
        """
    )
    accs = bindings(p.f, "acc")
    a, b = accs[0].targets[0], accs[1].targets[0]
    assert len(accs) == 2 and a.name == b.name and a.type is b.type and a.span != b.span
    # rebinding a parameter re-assigns the parameter's variable (its name and type)
    x_assign = bindings(p.f, "x")[0]
    param = p.f.params[0].var
    assert x_assign.targets[0].name == param.name and x_assign.targets[0].type is param.type


def test_rebinding_symbolic_shapes_compare_after_simplification():
    p = capture(
        """
        import pldsl as pl
        D = pl.dynamic("D")

        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[D, 8], pl.FP32]) -> pl.Tensor[[D, 8], pl.FP32]:
                n = pl.tensor.dim(x, 0)
                a = pl.create_tensor([n, 8], dtype=pl.FP32)
                a = pl.create_tensor([n + 0, 8 * 1], dtype=pl.FP32)
                b = pl.create_tensor([n - 1 + 1, 8], dtype=pl.FP32)
                return x
        """
    )
    assert ty(p.f, "a") == "pl.Tensor[[n, 8], pl.FP32]"
    assert len(bindings(p.f, "a")) == 2


@pytest.mark.parametrize(
    "second, was, got",
    [
        (
            "pl.full([4, 8], dtype=pl.BF16, value=0.0)",
            "pl.Tensor[[4, 8], pl.FP32]",
            "pl.Tensor[[4, 8], pl.BF16]",
        ),
        (
            "pl.full([8, 4], dtype=pl.FP32, value=0.0)",
            "pl.Tensor[[4, 8], pl.FP32]",
            "pl.Tensor[[8, 4], pl.FP32]",
        ),
        (
            "pl.slice(x, [4, 8], [0, 0], valid_shape=[2, 8])",
            "pl.Tensor[[4, 8], pl.FP32]",
            "pl.Tensor[[4, 8], pl.FP32, pl.TensorView(valid_shape=[2, 8])]",
        ),
    ],
)
def test_rebinding_different_type_is_an_error(second, was, got):
    src = f"""
        import pldsl as pl

        @pl.program
        class P:
            @pl.function(type=pl.FunctionType.InCore)
            def f(self, x: pl.Tensor[[4, 8], pl.FP32]) -> pl.Tensor[[4, 8], pl.FP32]:
                acc = pl.full([4, 8], dtype=pl.FP32, value=0.0)
                acc = {second}
                return acc
        """
    with pytest.raises(pl.CaptureError) as info:
        capture(src)
    d = info.value.diagnostic
    assert d.rule == "TypeError"
    assert d.message == f"Cannot reassign 'acc' with a different type: was {was}, got {got}"
    assert d.span.line == 9 and d.span.col == 9


def test_strict_ssa_rejects_rebinding():
    with pytest.raises(pl.CaptureError) as info:

        @pl.program(strict_ssa=True)
        class Strict:
            @pl.function
            def f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:
                y = pl.exp(x)
                y = pl.exp(y)
                return y

    d = info.value.diagnostic
    assert d.rule == "SSAViolation" and "'y'" in d.message
    assert d.notes and "previous definition" in d.notes[0]

    @pl.program(strict_ssa=True)
    class StrictOk:
        @pl.function
        def f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:
            y = pl.exp(x)
            z = pl.exp(y)
            return z

    assert ty(StrictOk.f, "z") == T([4], "FP32")
    round_trip(StrictOk)


# --------------------------------------------------------------------- misc surface


def test_standalone_function_is_a_one_function_program():
    @pl.function(type=pl.FunctionType.InCore)
    def lone(x: pl.Tensor[[4, 4], pl.FP32]) -> pl.Tensor[[4, 4], pl.FP32]:
        return pl.neg(x)

    assert isinstance(lone, pl.Program)
    round_trip(lone)
    assert [f.name for f in lone.function_list] == ["lone"]
    assert lone.lone.func_type is pl.FunctionType.InCore


def test_annotated_assignment_and_tuple_annotation():
    p = capture(
        """
        import pldsl as pl

        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4, 8], pl.FP32]) -> tuple[pl.Tensor[[4, 1], pl.FP32], pl.Scalar[pl.FP32]]:
                s: pl.Tensor[[4, 1], pl.FP32] = pl.row_sum(x)
                v: pl.Scalar[pl.FP32] = pl.read(s, [0, 0])
                return s, v
        """
    )
    assert p.f.tuple_return and len(p.f.return_types) == 2
    assert ty(p.f, "v") == S("FP32")


def test_unannotated_return_is_inferred():
    p = capture(
        """
        import pldsl as pl

        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4, 8], pl.FP32]):
                return pl.row_max(x), pl.col_max(x)
        """
    )
    assert p.f.tuple_return
    assert [format_type(t) for t in p.f.return_types] == [T([4, 1], "FP32"), T([1, 8], "FP32")]


def test_program_name_override_and_docstrings():
    @pl.program(name="Renamed")
    class Orig:
        """A docstring on the class."""

        @pl.function
        def f(self, x: pl.Tensor[[2], pl.FP32]) -> pl.Tensor[[2], pl.FP32]:
            """Docstrings in bodies are ignored."""
            return x

    assert Orig.name == "Renamed"
    round_trip(Orig)
    assert len(Orig.f.body) == 1


def test_all_dtypes_in_annotations():
    p = capture(
        """
        import pldsl as pl

        @pl.program
        class P:
            @pl.function
            def f(
                self,
                a: pl.Tensor[[2], pl.BF16],
                b: pl.Tensor[[2], pl.FP16],
                c: pl.Tensor[[2], pl.FP32],
                d: pl.Tensor[[2], pl.INT8],
                e: pl.Tensor[[2], pl.INT32],
                g: pl.Tensor[[2], pl.INT64],
                h: pl.Scalar[pl.INDEX],
                k: pl.Scalar[pl.BOOL],
            ):
                pass
        """
    )
    assert [p_.type.dtype.name for p_ in p.f.params] == [
        "BF16", "FP16", "FP32", "INT8", "INT32", "INT64", "INDEX", "BOOL",
    ]  # fmt: skip


def test_tensor_view_annotation():
    p = capture(
        """
        import pldsl as pl
        V = pl.dynamic("V")

        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[16, 8], pl.FP32, pl.TensorView(valid_shape=[V, 8], pad=pl.PadValue.min)]):
                y = pl.row_sum(x)
                return y
        """
    )
    t = p.f.params[0].type
    assert t.valid_shape[0].name == "V" and t.pad is pl.PadValue.min
    assert ty(p.f, "y") == T([16, 1], "FP32", ["V", 1])


# ------------------------------------------------------------------ sample kernels


def test_qwen3_like_kernel():
    prog = next(p for p in SOURCE_PROGRAMS if p.name == "Qwen3Like")
    decode = prog.qwen3_decode_all
    assert decode.tuple_return and len(decode.return_types) == 3
    assert [p.direction for p in decode.params][-3:] == ["Out", "Out", "Out"]
    assert [d.name for d in decode.dynamic_dims] == ["USER_BATCH_DYN", "KV_ROWS_DYN"]
    assert ty(decode, "batch_padded") == S("INDEX")
    assert ty(decode, "tile") == T([16, 128], "BF16", ["cur_valid", 128])
    assert ty(decode, "masked") == T([16, 64], "FP32")
    assert ty(decode, "raw") == T([16, 64], "FP32")
    assert ty(decode, "exp_bf16") == T([16, 64], "BF16")
    assert ty(decode, "oi_tmp") == T([16, 64], "FP32")
    assert ty(decode, "lm_acc") == T([16, 64], "FP32")
    assert ty(decode, "pbid") == S("INDEX")
    assert ty(decode, "ctx_len") == S("INT32")
    stub = prog.sample_and_prepare
    assert stub.is_host_stub and stub.body == ()
    host = prog.host_orch
    assert host.role is pl.Role.Orchestrator and host.level is pl.Level.HOST
    assert ops_in(prog) >= {
        "slice", "assemble", "create_tensor", "full", "cast", "reshape", "read", "dim",
        "fillpad", "add", "sub", "mul", "neg", "exp", "sqrt", "rsqrt", "recip", "maximum",
        "row_sum", "row_max", "row_expand_sub", "row_expand_mul", "row_expand_div",
        "col_expand_mul", "matmul", "matmul_acc",
    }  # fmt: skip


@pytest.mark.parametrize("program", ALL_PROGRAMS, ids=lambda p: p.name)
def test_roundtrip_every_program(program):
    round_trip(program)


def test_every_op_is_captured_by_a_test_kernel():
    used = set()
    for p in ALL_PROGRAMS:
        used |= ops_in(p)
    # the distributed (pld) ops: tests/distributed/test_collectives.py checks they are captured
    missing = sorted(n for n in set(OPS) - used if not n.startswith("pld."))
    assert not missing, f"ops never captured by a test kernel: {missing}"


def test_source_programs_are_the_kernel_files():
    names = {p.name for p in SOURCE_PROGRAMS}
    assert "Qwen3Like" in names and len(SOURCE_PROGRAMS) >= 4
