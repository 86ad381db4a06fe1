"""The textual IR round-trips: parse_ir(print_ir(p)) is structurally p, and prints the same."""

from __future__ import annotations

import math

import pytest
from irutil import round_trip

from pldsl.diagnostics import IRParseError, Span
from pldsl.dtypes import BF16, BOOL, FP16, FP32, INDEX, INT32, UINT32
from pldsl.enums import (
    AtomicType,
    FunctionType,
    Level,
    MaskPattern,
    MemorySpace,
    Optimizer,
    PadValue,
    Role,
)
from pldsl.ir.nodes import (
    Assign,
    BinOp,
    Break,
    Call,
    Const,
    Continue,
    ExprStmt,
    For,
    Function,
    If,
    ListExpr,
    OpCall,
    Param,
    Program,
    Return,
    Scope,
    TupleGet,
    UnaryOp,
    Var,
    Yield,
    structural_equal,
    walk,
)
from pldsl.ir.parser import parse_ir
from pldsl.ir.printer import print_ir
from pldsl.ir.types import ScalarType, TensorType, TileType, TupleType
from pldsl.ops import OPS, TypeRuleError
from pldsl.ops.binding import bind_op_call, scalar_binop_type

# ------------------------------------------------------------------ helpers


def idx(v: int) -> Const:
    return Const(v, INDEX)


def dims(*items) -> ListExpr:
    return ListExpr(tuple(idx(i) if isinstance(i, int) else i for i in items))


def scalar(dtype=INDEX) -> ScalarType:
    return ScalarType(dtype)


def binop(op: str, lhs, rhs) -> BinOp:
    return BinOp(op, lhs, rhs, scalar_binop_type(op, lhs.type, rhs.type))


def op(name: str, attrs=(), **runtime) -> OpCall:
    """An OpCall built with the node constructor; its type from the op's own type rule."""
    opdef = OPS[name]
    args = tuple(runtime.get(p.name) for p in opdef.runtime_params)
    all_attrs = {p.name: p.default for p in opdef.static_params if not p.required}
    all_attrs.update(dict(attrs))
    t = opdef.infer({p.name: a for p, a in zip(opdef.runtime_params, args)}, all_attrs)
    return OpCall(name, args, tuple(attrs), t)


def assign(name: str, value) -> tuple[Var, Assign]:
    var = Var(name, value.type)
    return var, Assign((var,), value)


def param(name: str, t, direction: str = "In") -> Param:
    return Param(Var(name, t), direction)


def func(name, params, body, returns=(), **kw) -> Function:
    return Function(name, tuple(params), tuple(returns), tuple(body), **kw)


# ---------------------------------------------------------- dynamic dims etc.

N = Var("N", scalar())
M = Var("M", scalar())
K = Var("K", scalar())
T16 = TensorType((16, 64), FP32)
TN = TensorType((N, 64), FP32)


# ------------------------------------------------------------- the op table

A = Var("a", T16)
B = Var("b", T16)
H = Var("h", TensorType((16, 64), BF16))
KW = Var("kw", TensorType((64, 32), BF16))
KT = Var("kt", TensorType((32, 64), BF16))
ACC = Var("acc", TensorType((16, 32), FP32))
ROW = Var("row", TensorType((16, 1), FP32))
COL = Var("col", TensorType((1, 64), FP32))
D = Var("d", TN)
S = Var("s", scalar(FP32))
I = Var("i", scalar())  # noqa: E741
IDX = Var("ix", TensorType((16, 8), INT32))
SRC = Var("src", TensorType((1, 128), FP32))
UIX = Var("uix", TensorType((1, 128), UINT32))
PAIRS = Var("pairs", TensorType((1, 256), FP32))
TMP = Var("tmp", TensorType((1, 512), FP32))
ROW8 = Var("row8", TensorType((16, 8), FP32))
OP_PARAMS = (ROW8, A, B, H, KW, KT, ACC, ROW, COL, D, S, I, IDX, SRC, UIX, PAIRS, TMP)


def _binary(name):
    return [
        op(name, lhs=A, rhs=B),
        op(name, lhs=A, rhs=ROW),
        op(name, lhs=D, rhs=S),
        op(name, lhs=H, rhs=idx(2)),
        op(name, lhs=A, rhs=Const(0.5, FP32)),
    ]


def _unary(name):
    return [op(name, x=A), op(name, x=D)]


# One or more sample calls per op; the key set must equal the op table.
SAMPLES = {
    **{n: _binary(n) for n in ("add", "sub", "mul", "div", "maximum", "minimum")},
    **{n: _unary(n) for n in ("exp", "sqrt", "rsqrt", "recip", "log", "neg", "abs", "relu")},
    **{f"{k}_{r}": _unary(f"{k}_{r}") for k in ("row", "col") for r in ("sum", "max", "min")},
    **{
        f"row_expand_{o}": [op(f"row_expand_{o}", x=A, v=ROW)] for o in ("add", "sub", "mul", "div")
    },
    **{
        f"col_expand_{o}": [op(f"col_expand_{o}", x=A, v=COL)] for o in ("add", "sub", "mul", "div")
    },
    "matmul": [
        op("matmul", lhs=H, rhs=KW),
        op("matmul", attrs=(("out_dtype", BF16),), lhs=H, rhs=KW),
        op("matmul", attrs=(("out_dtype", FP32), ("b_trans", True)), lhs=H, rhs=KT),
        op("matmul", attrs=(("a_trans", True),), lhs=KW, rhs=KW),
    ],
    "matmul_acc": [
        op("matmul_acc", acc=ACC, lhs=H, rhs=KW),
        op("matmul_acc", attrs=(("b_trans", True),), acc=ACC, lhs=H, rhs=KT),
    ],
    "cast": [
        op("cast", attrs=(("target_type", BF16),), x=A),
        op("cast", attrs=(("target_type", INT32), ("mode", "floor")), x=D),
        op("cast", attrs=(("target_type", FP32),), x=I),
    ],
    "reshape": [
        op("reshape", x=A, shape=dims(64, 16)),
        op("reshape", x=D, shape=dims(1, N, 64)),
    ],
    "fillpad": [
        op("fillpad", x=A),
        op("fillpad", attrs=(("pad_value", PadValue.min),), x=A),
    ],
    "create_tensor": [
        op("create_tensor", attrs=(("dtype", BF16),), shape=dims(16, 64)),
        op("create_tensor", attrs=(("dtype", FP32),), shape=dims(N, binop("mul", I, idx(2)))),
    ],
    "full": [
        op("full", attrs=(("dtype", FP32),), shape=dims(4, 4), value=Const(0.0, FP32)),
        op("full", attrs=(("dtype", INT32),), shape=dims(N), value=Const(-1, INDEX)),
        op("full", attrs=(("dtype", FP32),), shape=dims(8), value=Const(-math.inf, FP32)),
    ],
    "slice": [
        op("slice", x=A, shape=dims(8, 64), offset=dims(I, 0)),
        op(
            "slice",
            attrs=(("pad_value", PadValue.zero),),
            x=D,
            shape=dims(8, 64),
            offset=dims(binop("mul", I, idx(8)), 0),
            valid_shape=dims(binop("min", idx(8), binop("sub", N, I)), 64),
        ),
    ],
    "assemble": [
        op("assemble", target=B, source=A, offset=dims(0, 0)),
        op("assemble", attrs=(("atomic", AtomicType.Add),), target=B, source=A, offset=dims(0, 0)),
    ],
    "read": [op("read", x=A, indices=dims(I, 0)), op("read", x=D, indices=dims(3))],
    "write": [
        op("write", x=B, indices=dims(0, I), value=S),
        op("write", x=B, indices=dims(1, 1), value=Const(2.0, FP32)),
    ],
    "dim": [
        op("dim", attrs=(("axis", 0),), x=D),
        op("dim", attrs=(("axis", -1),), x=D),
    ],
    # issue 10: PyPTO's wider op set
    "arange": [
        op("arange", start=idx(0), shape=dims(1, 64)),
        op(
            "arange",
            attrs=(("dtype", UINT32), ("descending", True)),
            start=idx(7),
            shape=dims(1, N),
        ),
    ],
    "set_validshape": [op("set_validshape", x=A, valid_rows=I, valid_cols=idx(3))],
    "row_expand": [op("row_expand", x=A, v=ROW)],
    "col_expand": [op("col_expand", x=A, v=COL)],
    "col_expand_expdif": [op("col_expand_expdif", x=A, v=COL)],
    "transpose": [
        op("transpose", attrs=(("axis1", 0), ("axis2", 1)), x=A),
        op("transpose", attrs=(("axis1", -1), ("axis2", 0)), x=D),
    ],
    "concat": [op("concat", src0=A, src1=B)],
    "gather": [
        op("gather", attrs=(("dim", -1),), x=A, index=IDX),
        op("gather", attrs=(("mask_pattern", 2), ("output_dtype", INT32)), x=A),
        op("gather", attrs=(("mask_pattern", MaskPattern.P1010),), x=A),
        op("gather", attrs=(("cmp_mode", "gt"), ("out_cols", 8)), x=A, kvalue=S),
        op(
            "gather",
            attrs=(("cmp_mode", 3), ("out_cols", 2), ("count_dtype", UINT32)),
            x=A,
            kvalue=S,
        ),
    ],
    "sort32": [op("sort32", src=SRC, idx=UIX)],
    "scatter": [
        op("scatter", attrs=(("dim", -1),), input=A, index=IDX, src=ROW8),
        op("scatter", attrs=(("mask_pattern", MaskPattern.P1111),), input=ROW8, dst=ROW8),
    ],
    "create_l1": [
        op("create_l1", attrs=(("dtype", BF16),), shape=dims(16, 64)),
        op("create_l1", attrs=(("dtype", FP32), ("transpose", True)), shape=dims(64, 16)),
    ],
    "gather_row": [
        op(
            "gather_row",
            acc=A,
            src=B,
            dst_offset=dims(I, 0),
            src_offset=dims(3, 0),
            shapes=dims(1, 64),
        ),
        op(
            "gather_row",
            acc=A,
            src=B,
            dst_offset=dims(0, 0),
            src_offset=dims(I, 0),
            shapes=dims(1, 64),
            valid_shape=dims(1, I),
        ),
        op(
            "gather_row",
            attrs=(("transpose", True),),
            acc=A,
            src=B,
            dst_offset=dims(0, I),
            src_offset=dims(0, 0),
            shapes=dims(1, 16),
        ),
    ],
    "mrgsort": [
        op("mrgsort", src0=PAIRS, block_len=idx(64)),
        op("mrgsort", src0=PAIRS, block_len=I),
        op("mrgsort", src0=PAIRS, src1=PAIRS),
        op("mrgsort", attrs=(("exhausted", True),), src0=PAIRS, src1=PAIRS, src2=PAIRS),
        op("mrgsort", src0=PAIRS, src1=PAIRS, src2=PAIRS, src3=PAIRS),
        op("mrgsort", src0=PAIRS, src1=PAIRS, tmp=TMP),
    ],
    "cmp": [
        op("cmp", lhs=A, rhs=B),
        op("cmp", attrs=(("cmp_type", 4),), lhs=A, rhs=Const(0.5, FP32)),
    ],
    "fmods": [op("fmods", lhs=A, rhs=S)],
    "row_argmax": [op("row_argmax", x=A)],
}

# The tile level: tiles as parameters (every memory space prints and parses back).
TA = Var("ta", TileType((16, 64), FP32))
TV = Var("tv", TileType((16, 64), FP32, valid_shape=(N, 64), memory=MemorySpace.Vec))
TM = Var("tm", TileType((64, 32), BF16, memory=MemorySpace.Mat))
TIDX = Var("tidx", TileType((16, 8), INT32))
TILE_PARAMS = (TA, TV, TM, TIDX)
SAMPLES.update({
    "load": [
        op("load", tensor=A, offsets=dims(I, 0), shapes=dims(8, 64)),
        op("load", attrs=(("target_memory", MemorySpace.Mat), ("clamp", True)),
           tensor=KW, offsets=dims(0, 0), shapes=dims(64, 32), valid_shape=dims(N, 32)),
        op("load", tensor=A, offsets=dims(0, 0), shapes=dims(8, 64), valid_shapes=dims(4, 64)),
    ],
    "store": [
        op("store", tile=TA, offsets=dims(0, 0), output_tensor=B),
        op("store", tile=TV, offsets=dims(I, 0), output_tensor=D, shapes=dims(16, 64)),
    ],
    "create_tile": [
        op("create_tile", attrs=(("dtype", BF16),), shape=dims(16, 64)),
        op("create_tile", attrs=(("dtype", FP32), ("target_memory", MemorySpace.Acc)),
           shape=dims(16, 32)),
    ],
    "tile.full": [op("tile.full", attrs=(("dtype", FP32),), shape=dims(1, 8), value=S)],
    "tile.set_validshape": [op("tile.set_validshape", tile=TA, valid_rows=I, valid_cols=idx(8))],
    "tile.move": [op("tile.move", attrs=(("target_memory", MemorySpace.Right),), tile=TM)],
    "tile.transpose_view": [op("tile.transpose_view", tile=TM), op("tile.transpose_view", tile=TV)],
    "tile.get_block_idx": [op("tile.get_block_idx")],
    "tile.arange": [op("tile.arange", attrs=(("dtype", UINT32),), start=idx(0), shape=dims(1, 32))],
    "tile.gather": [op("tile.gather", src=TV, indices=TIDX, tmp=TIDX)],
})  # fmt: skip


def test_op_samples_cover_the_op_table():
    # the distributed (pld) ops round-trip in tests/distributed/test_collectives.py
    missing = sorted(n for n in set(OPS) - set(SAMPLES) if not n.startswith("pld."))
    assert not missing, f"add round-trip samples for new ops: {missing}"
    assert not sorted(set(SAMPLES) - set(OPS))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_op_round_trips(name):
    body = []
    for j, call in enumerate(SAMPLES[name]):
        body.append(assign(f"v{j}", call)[1])
        body.append(ExprStmt(call))
    f = func(
        "kernel",
        [Param(v) for v in OP_PARAMS + TILE_PARAMS],
        body,
        func_type=FunctionType.InCore,
        dynamic_dims=(N,),
    )
    round_trip(Program("Ops", (f,)))


def test_op_alias_reads_as_the_canonical_op():
    text = print_ir(Program("Ops", (func("k", [Param(A), Param(I)], []),)))
    text = text.replace("pass", "v: pl.Scalar[pl.FP32] = pl.tensor.read(a, [i, 0])")
    q = parse_ir(text)
    call = q.k.body[0].value
    assert call.op == "read" and call.type.dtype == FP32


# ------------------------------------------------------- every node and type


def kitchen_sink() -> Program:
    # Parameter types: dynamic dims, dim expressions, a valid-shape view, directions.
    x = Var("x", TN)
    w = Var("w", TensorType((64, 64), BF16))
    out = Var("out", TensorType((N, 64), FP32))
    view = TensorType((16, K), FP32, valid_shape=(M, K), pad=PadValue.min)
    v = Var("v", view)
    mm = Var("mm", TensorType((M, 8), FP32))
    n = Var("n", scalar())
    z = Var("z", TensorType((binop("mul", N, idx(2)), 64), FP32))
    flag = Var("flag", scalar(BOOL))

    pair_t = (TN, scalar(FP32))
    helper_call = Call("helper", (x, n), TupleType(pair_t))

    body = []
    t, st = assign("t", op("exp", x=x))
    body.append(st)
    # Scalar arithmetic, comparisons, logic, min/max, negation, constants.
    s1, st = assign("s1", binop("mul", binop("add", n, idx(1)), idx(2)))
    body.append(st)
    s2, st = assign("s2", binop("div", n, idx(2)))
    body.append(st)
    body.append(assign("s3", binop("floordiv", binop("mod", s1, idx(7)), idx(3)))[1])
    body.append(assign("s4", binop("sub", n, Const(-3, INDEX)))[1])
    body.append(
        assign(
            "c",
            binop(
                "or",
                binop("and", binop("lt", n, idx(4)), binop("ge", s1, N)),
                UnaryOp("not", binop("ne", n, idx(0)), scalar(BOOL)),
            ),
        )[1]
    )
    body.append(assign("c2", binop("and", binop("le", n, M), binop("gt", s2, Const(0.5, FP32))))[1])
    body.append(assign("c3", binop("eq", flag, Const(True, BOOL)))[1])
    body.append(assign("m", binop("max", binop("min", n, N), idx(1)))[1])
    body.append(assign("neg", UnaryOp("neg", n, scalar()))[1])
    body.append(assign("negf", UnaryOp("neg", s2, scalar(FP32)))[1])
    for j, const in enumerate(
        [
            Const(1.5, FP32),
            Const(-0.25, FP32),
            Const(1e-05, FP32),
            Const(1.5e20, FP32),
            Const(math.inf, FP32),
            Const(-math.inf, FP16),
            Const(math.nan, FP32),
            Const(2.0, BF16),
            Const(7, INT32),
            Const(-7, INT32),
            Const(False, BOOL),
            Const(-12, INDEX),
        ]
    ):
        body.append(assign(f"k{j}", const)[1])
    # User calls (the callee is defined later), multi-target assignment, tuple items.
    body.append(Assign((Var("p", TN), Var("q", scalar(FP32))), helper_call))
    p0, st = assign("p0", TupleGet(helper_call, 0, TN))
    body.append(st)
    body.append(assign("q1", TupleGet(helper_call, 1, scalar(FP32)))[1])
    # A loop with carries, attrs and a yield.
    i = Var("i", scalar())
    acc = Var("acc", TN)
    cnt = Var("cnt", scalar())
    nxt, nxt_st = assign("nxt", op("add", lhs=acc, rhs=t))
    final = Var("final", TN)
    total = Var("total", scalar())
    body.append(
        For(
            i,
            "range",
            idx(0),
            n,
            idx(1),
            (
                nxt_st,
                If(binop("eq", i, idx(3)), (Continue(),)),
                Yield((final, total), (nxt, binop("add", cnt, i))),
            ),
            iter_args=(acc, cnt),
            init_values=(t, idx(0)),
            attrs=(("chunk", 4), ("stage", 2)),
        )
    )
    # Other loop kinds; break; if/else; nested bodies; a bare yield; pass.
    j = Var("j", scalar())
    body.append(
        For(
            j,
            "parallel",
            idx(0),
            binop("floordiv", N, idx(16)),
            idx(1),
            (
                If(
                    binop("gt", j, n),
                    (Break(),),
                    (ExprStmt(op("assemble", target=out, source=final, offset=dims(0, 0))),),
                ),
            ),
        )
    )
    u = Var("u", scalar())
    acc2 = Var("acc2", scalar())
    body.append(
        For(
            u,
            "unroll",
            idx(0),
            idx(4),
            idx(2),
            (Yield((), (binop("add", acc2, u),)),),
            iter_args=(acc2,),
            init_values=(idx(0),),
        )
    )
    body.append(
        For(Var("pp", scalar()), "pipeline", idx(0), idx(8), idx(1), (), attrs=(("stage", 2),))
    )
    body.append(If(flag, ()))
    # Scopes with attributes of every kind.
    body.append(
        Scope(
            "at",
            (
                ("level", Level.CORE_GROUP),
                ("optimizations", (Optimizer.auto_chunk, Optimizer.chunked_loop_optimizer)),
                ("name_hint", "blk"),
                ("factor", 0.5),
                ("enabled", True),
                ("dt", BF16),
                ("none", None),
                ("neg", -2),
            ),
            (Assign((Var("e", TN),), op("exp", x=p0)),),
        )
    )
    body.append(Scope("at", (), ()))
    body.append(ExprStmt(op("assemble", target=out, source=t, offset=dims(0, 0))))
    body.append(ExprStmt(Call("stub", (t,), TupleType(()))))
    body.append(Return((final, total)))

    main = func(
        "main",
        [
            Param(x),
            Param(w),
            Param(out, "Out"),
            Param(v, "InOut"),
            Param(mm),
            Param(n),
            Param(z),
            Param(flag),
        ],
        body,
        returns=(TN, scalar()),
        func_type=FunctionType.Orchestration,
        tuple_return=True,
        dynamic_dims=(N, K, M),
    )
    hx, hn = Var("hx", TN), Var("hn", scalar())
    helper = func(
        "helper",
        [Param(hx), Param(hn)],
        [Return((hx, op("cast", attrs=(("target_type", FP32),), x=hn)))],
        returns=pair_t,
        func_type=FunctionType.InCore,
        tuple_return=True,
        dynamic_dims=(N,),
    )
    sx = Var("sx", TN)
    stub = func(
        "stub",
        [Param(sx)],
        [],
        func_type=FunctionType.Opaque,
        level=Level.HOST,
        role=Role.SubWorker,
        is_host_stub=True,
        dynamic_dims=(N,),
    )
    empty = func("empty", [], [], func_type=FunctionType.AIV, level=Level.AIV)
    single = func(
        "single",
        [Param(Var("y", T16))],
        [Return((Var("y", T16),))],
        returns=(T16,),
        func_type=FunctionType.Inline,
    )
    return Program("KitchenSink", (main, helper, stub, empty, single))


def test_kitchen_sink_round_trips():
    q = round_trip(kitchen_sink())
    assert q.stub.is_host_stub and q.stub.body == ()
    assert q.empty.body == () and not q.empty.is_host_stub
    assert q.main.tuple_return and not q.single.tuple_return
    assert [d.name for d in q.main.dynamic_dims] == ["N", "K", "M"]


def test_uses_are_fresh_vars_located_at_the_use():
    # Like capture: each use of a name is a new Var (same name and type) with its own span.
    text = print_ir(kitchen_sink())
    q = parse_ir(text)
    x = q.main.params[0].var
    use = q.main.body[0].value.args[0]
    assert use is not x and use.name == "x" and structural_equal(use, x)
    line = text.splitlines()[use.span.line - 1]
    assert line[use.span.col - 1 :].startswith("x)")
    n_dim = q.main.dynamic_dims[0]
    assert n_dim.name == "N" and n_dim.type.dtype == INDEX
    assert structural_equal(q.helper.dynamic_dims[0], n_dim)


def test_dynamic_dim_named_outside_parameter_shapes_round_trips():
    x = Var("x", TensorType((16, 64), FP32, valid_shape=(M, 64)))
    t, st = assign("t", op("create_tensor", attrs=(("dtype", FP32),), shape=dims(K, 64)))
    f = func("f", [Param(x)], [st, Return((x,))], returns=(x.type,))
    round_trip(Program("Free", (f,)))


def _example_modules() -> list[str]:
    try:
        import pldsl.kernels.examples as examples
    except ImportError:
        return []
    import pkgutil

    return sorted(
        m.name for m in pkgutil.iter_modules(examples.__path__) if not m.name.startswith("_")
    )


@pytest.mark.parametrize("name", _example_modules())
def test_captured_example_kernels_round_trip(name):
    """The contract with capture: what the frontend builds, the parser rebuilds."""
    import importlib

    module = importlib.import_module(f"pldsl.kernels.examples.{name}")
    build = getattr(module, "build", None)
    if build is None:
        pytest.skip(f"pldsl.kernels.examples.{name} builds no program")
    round_trip(build())


def test_empty_program_round_trips():
    round_trip(Program("Nothing", ()))


def test_printed_text_is_stable():
    text = print_ir(kitchen_sink())
    assert print_ir(parse_ir(text)) == text
    # Comments and blank lines are not significant.
    noisy = text.replace("\n\n", "\n\n   # note\n\n").replace(":\n", ":  # trailing\n")
    assert print_ir(parse_ir(noisy)) == text


def test_spans_point_into_the_text():
    text = print_ir(kitchen_sink())
    q = parse_ir(text, "ks.pl")
    lines = text.splitlines()
    t_assign = q.main.body[0]
    assert t_assign.span.file == "ks.pl"
    assert lines[t_assign.span.line - 1].strip().startswith("t: pl.Tensor")
    call = t_assign.value
    assert lines[call.span.line - 1][call.span.col - 1 :].startswith("pl.exp(x)")
    loop = next(s for s in q.main.body if isinstance(s, For))
    assert lines[loop.span.line - 1].lstrip().startswith("for i, (acc, cnt,) in pl.range(")
    assert lines[q.main.span.line - 1].lstrip().startswith("def main(")
    for node in walk(q.main):
        span = getattr(node, "span", None)
        if span is not None:
            assert span.line > 0, node


# ------------------------------------------------------------ shared rules


def test_bind_op_call_keeps_only_given_non_default_attrs_in_param_order():
    matmul = OPS["matmul"]
    call = bind_op_call(matmul, [H, KT], {"b_trans": True, "out_dtype": FP32, "a_trans": False})
    assert call.attrs == (("out_dtype", FP32), ("b_trans", True))
    assert call.args == (H, KT)
    assert call.type.shape == (16, 32) and call.type.dtype == FP32
    cast = bind_op_call(OPS["cast"], [A, BF16], {"mode": "round"})
    assert cast.attrs == (("target_type", BF16),)
    sl = bind_op_call(OPS["slice"], [A, dims(8, 64), dims(0, 0)], {})
    assert sl.args[3] is None and sl.attrs == ()
    with pytest.raises(TypeRuleError):
        bind_op_call(OPS["exp"], [A], {"y": A})
    with pytest.raises(TypeRuleError):
        bind_op_call(OPS["add"], [A], {})


def test_scalar_binop_types():
    i, f16, b = scalar(INDEX), scalar(FP16), scalar(BOOL)
    assert scalar_binop_type("add", i, i).dtype == INDEX
    assert scalar_binop_type("add", i, scalar(FP32)).dtype == FP32
    assert scalar_binop_type("mul", scalar(INT32), i).dtype == INDEX
    assert scalar_binop_type("div", i, i).dtype == FP32
    assert scalar_binop_type("div", f16, f16).dtype == FP16
    assert scalar_binop_type("floordiv", i, i).dtype == INDEX
    assert scalar_binop_type("max", i, scalar(FP32)).dtype == FP32
    for cmp in ("lt", "le", "gt", "ge", "eq", "ne", "and", "or"):
        assert scalar_binop_type(cmp, i, b).dtype == BOOL
    with pytest.raises(TypeRuleError):
        scalar_binop_type("add", T16, i)


def test_literals_are_typed_like_the_frontend():
    text = print_ir(Program("L", (func("k", [], []),))).replace(
        "pass",
        "a: pl.Scalar[pl.INDEX] = 3\n        b: pl.Scalar[pl.FP32] = 2.5\n"
        "        c: pl.Scalar[pl.BOOL] = True\n        d: pl.Scalar[pl.INDEX] = -4\n"
        "        e: pl.Scalar[pl.INDEX] = -(a)\n        f: pl.Scalar[pl.FP32] = pl.const('nan', pl.FP32)",
    )
    a, b, c, d, e, f = (s.value for s in parse_ir(text).k.body)
    assert (a.value, a.dtype) == (3, INDEX) and type(a.value) is int
    assert (b.value, b.dtype) == (2.5, FP32)
    assert c.value is True and c.dtype == BOOL
    assert isinstance(d, Const) and d.value == -4
    assert isinstance(e, UnaryOp) and e.op == "neg"
    assert isinstance(f, Const) and math.isnan(f.value)


def test_dsl_words_are_ordinary_names_outside_their_place():
    names = [
        "range",
        "min",
        "max",
        "const",
        "Tensor",
        "Scalar",
        "Out",
        "init_values",
        "pad",
        "at",
        "cond",
        "while_",
    ]
    params = [Param(Var(n, scalar())) for n in names]
    body = [
        assign("r", binop("min", params[1].var, binop("add", params[0].var, v.var)))[1]
        for v in params
    ]
    for_var = Var("valid_shape", scalar())
    body.append(For(for_var, "range", idx(0), params[2].var, idx(1), (ExprStmt(for_var),)))
    round_trip(Program("Words", (func("yield_", params, body),)))


def test_const_values_are_normalised_to_their_dtype():
    text = print_ir(Program("L", (func("k", [], []),))).replace(
        "pass",
        "a: pl.Scalar[pl.FP16] = pl.const(1, pl.FP16)\n"
        "        b: pl.Scalar[pl.INT32] = pl.const(-3, pl.INT32)\n"
        "        c: pl.Scalar[pl.INT8] = pl.const(2.0, pl.INT8)",
    )
    a, b, c = (s.value for s in parse_ir(text).k.body)
    assert type(a.value) is float and a.value == 1.0
    assert type(b.value) is int and b.value == -3
    assert type(c.value) is int and c.value == 2
    with pytest.raises(IRParseError):
        parse_ir(text.replace("pl.const(2.0, pl.INT8)", "pl.const(2.5, pl.INT8)"))
    with pytest.raises(IRParseError):
        parse_ir(text.replace("pl.const(2.0, pl.INT8)", "pl.const('inf', pl.INT8)"))


# ---------------------------------------------------------------- errors


def _ok_text() -> str:
    x = Var("x", TN)
    y, st = assign("y", op("exp", x=x))
    f = func(
        "kernel",
        [Param(x)],
        [st, Return((y,))],
        returns=(TN,),
        func_type=FunctionType.InCore,
        dynamic_dims=(N,),
    )
    return print_ir(Program("P", (f,)))


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _parse_error(text: str) -> IRParseError:
    with pytest.raises(IRParseError) as info:
        parse_ir(text, "bad.pl")
    d = info.value.diagnostic
    assert d.rule == "IRParse" and d.severity == "error" and d.span.file == "bad.pl"
    return info.value


def test_ok_text_parses():
    parse_ir(_ok_text())


def test_error_bad_unindent():
    text = _ok_text().replace("        return y", "      return y")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "return y")
    assert "indent" in err.diagnostic.message


def test_error_unexpected_indent():
    text = _ok_text().replace("        return y", "            return y")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "return y")
    assert "indent" in err.diagnostic.message


def test_error_unknown_op():
    text = _ok_text().replace("pl.exp(x)", "pl.expo(x)")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "pl.expo")
    assert "unknown op 'pl.expo'" in err.diagnostic.message


def test_error_unknown_name():
    text = _ok_text().replace("pl.exp(x)", "pl.exp(q)")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "pl.exp(q)")
    assert "unknown name 'q'" in err.diagnostic.message
    # Rendering shows the offending IR line (the source was registered).
    assert "pl.exp(q)" in err.diagnostic.render()


def test_error_name_used_before_definition():
    text = _ok_text().replace("= pl.exp(x)", "= pl.exp(y)")
    err = _parse_error(text)
    assert "unknown name 'y'" in err.diagnostic.message


def test_error_unknown_dtype():
    text = _ok_text().replace(
        "def kernel(self, x: pl.Tensor[[N, 64], pl.FP32]",
        "def kernel(self, x: pl.Tensor[[N, 64], pl.FP33]",
    )
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "pl.FP33")
    assert "unknown dtype 'pl.FP33'" in err.diagnostic.message


def test_error_type_rule_failure():
    text = _ok_text().replace("pl.exp(x)", "pl.slice(x, [16], [0, 0])")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "pl.slice")
    assert (
        err.diagnostic.span.col
        == text.splitlines()[err.diagnostic.span.line - 1].index("pl.slice") + 1
    )
    assert "pl.slice" in err.diagnostic.message and "rank-2" in err.diagnostic.message


def test_error_annotation_differs_from_the_inferred_type():
    text = _ok_text()
    assert "y: pl.Tensor[[N, 64], pl.FP32] = pl.exp(x)" in text
    text = text.replace("y: pl.Tensor[[N, 64], pl.FP32]", "y: pl.Tensor[[N, 64], pl.BF16]")
    err = _parse_error(text)
    line = _line_of(text, "y: pl.Tensor")
    assert err.diagnostic.span.line == line
    assert err.diagnostic.span.col == text.splitlines()[line - 1].index("pl.Tensor") + 1
    assert err.diagnostic.message == (
        "annotation pl.Tensor[[N, 64], pl.BF16] does not match the value's type "
        "pl.Tensor[[N, 64], pl.FP32]"
    )
    # symbolic dims compare after simplification
    ok = _ok_text().replace(
        "y: pl.Tensor[[N, 64], pl.FP32]", "y: pl.Tensor[[N + 0, 64 * 1], pl.FP32]"
    )
    parse_ir(ok)


def test_error_scalar_operator_on_tensor():
    text = _ok_text().replace("pl.exp(x)", "x + 1")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "x + 1")


@pytest.mark.parametrize(
    "old, new, needle",
    [
        ("pl.exp(x)", "pl.exp(x", "return y"),  # unclosed bracket: error further on
        ("pl.exp(x)", "pl.exp(x))", "pl.exp(x))"),
        ("pl.exp(x)", "pl.exp(x) $", "pl.exp(x) $"),
        ("pl.exp(x)", "pl.exp(x, bogus=1)", "bogus"),
        ("pl.exp(x)", "pl.add(lhs=x, x)", "pl.add"),
        ("pl.exp(x)", "pl.cast(x, pl.PadValue.nope)", "nope"),
        ("pl.exp(x)", "pl.cast(x, 3)", "pl.cast"),
        ("pl.exp(x)", "self.nothing(x)", "self.nothing"),
        ("pl.exp(x)", "x[0]", "x[0]"),
        ("return y", "a, b = pl.yield_(y)", "pl.yield_"),
        ("return y", "for i in pl.range(0, 4):", "pl.range"),
        ("return y", "for i in pl.loop(0, 4, 1):", "pl.loop"),
        ("type=pl.FunctionType.InCore", "type=pl.Level.AIV", "pl.Level.AIV"),
        ("type=pl.FunctionType.InCore", "tipe=pl.FunctionType.InCore", "tipe"),
        ('N = pl.dynamic("N")', 'N = pl.dynamic("M")', "pl.dynamic"),
        ("import pldsl as pl", "import numpy as np", "import numpy"),
    ],
)
def test_malformed_text_is_located(old, new, needle):
    text = _ok_text()
    assert old in text
    text = text.replace(old, new)
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, needle), err.diagnostic.render()


def test_error_empty_and_truncated_text():
    err = _parse_error("")
    assert err.diagnostic.span.line >= 1
    text = _ok_text()
    cut = text[: text.index("    def kernel")]
    err = _parse_error(cut)
    assert err.diagnostic.span.line >= 1


def test_error_carries_expected_tokens():
    text = _ok_text().replace("-> pl.Tensor", "=> pl.Tensor")
    err = _parse_error(text)
    assert err.diagnostic.span.line == _line_of(text, "=> pl.Tensor")
    assert err.diagnostic.help and "expected" in err.diagnostic.help


def test_error_is_never_a_raw_exception():
    base = _ok_text()
    # Every prefix of a valid text is either valid or an IRParseError.
    for cut in range(0, len(base), 7):
        try:
            parse_ir(base[:cut])
        except IRParseError:
            pass


# ----------------------------------------------------------- performance


def big_program(blocks: int) -> Program:
    x = Var("x", TN)
    n = Var("n", scalar())
    body = []
    prev = x
    for b in range(blocks):
        t, st = assign(f"t{b}", op("add", lhs=prev, rhs=x))
        body.append(st)
        s, st = assign(f"s{b}", binop("add", binop("mul", n, idx(b)), idx(1)))
        body.append(st)
        r, st = assign(f"r{b}", op("row_sum", x=t))
        body.append(st)
        body.append(ExprStmt(op("write", x=t, indices=dims(s, 0), value=Const(1.0, FP32))))
        body.append(If(binop("lt", s, N), (assign(f"e{b}", op("exp", x=t))[1],), ()))
        prev = t
    body.append(Return((prev,)))
    f = func(
        "big",
        [Param(x), Param(n)],
        body,
        returns=(TN,),
        func_type=FunctionType.InCore,
        dynamic_dims=(N,),
    )
    return Program("Big", (f,))


def test_two_thousand_lines_round_trip():
    # Speed is measured in benchmarks/static_tools.py, not asserted here (shared machines).
    p = big_program(340)
    text = print_ir(p)
    assert text.count("\n") >= 2000
    assert structural_equal(parse_ir(text), p)


def test_span_type_is_diagnostics_span():
    q = parse_ir(_ok_text(), "x.pl")
    assert isinstance(q.kernel.body[0].span, Span)
    assert q.source_file == "x.pl"


EXTERN_TEXT = """\
import pldsl as pl


@pl.program
class Ext:
    @pl.function(type=pl.FunctionType.Opaque, external=True)
    def scale(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]]) -> pl.Tensor[[4, 8], pl.FP32]:
        ...

    @pl.function(type=pl.FunctionType.Orchestration)
    def main(self, x: pl.Tensor[[4, 8], pl.FP32], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]) -> pl.Tensor[[4, 8], pl.FP32]:
        y = self.scale(x, y)
        return y
"""


def test_an_external_declaration_round_trips_as_external():
    # a `pl.jit.extern` declaration (C++ body) keeps its flag through the text, so the checks
    # that do not follow external kernels read the parsed program as the captured one
    q = round_trip(parse_ir(EXTERN_TEXT))
    assert q.scale.external and q.scale.body == () and not q.scale.is_host_stub
    assert not q.main.external
    with pytest.raises(IRParseError, match="expected a bool"):
        parse_ir(EXTERN_TEXT.replace("external=True", "external=1"))
