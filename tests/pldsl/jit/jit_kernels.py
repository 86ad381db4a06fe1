"""Small @pl.jit kernels for the jit tests (a module of its own: jit reads source files)."""

import pldsl as pl

ROWS_TILE = 4
M = pl.dynamic("M")


@pl.jit
def add_scalar(x: pl.Tensor, a: pl.Scalar[pl.FP32], y: pl.Out[pl.Tensor]):
    rows, cols = x.shape
    for r in pl.range(0, rows, ROWS_TILE):
        with pl.at(level=pl.Level.CORE_GROUP):
            t = x[r : r + ROWS_TILE, :]
            y[r : r + ROWS_TILE, :] = pl.add(t, a)
    return y


@pl.jit
def add_one_keep_dtype(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.cast(pl.add(x, 1.0), target_type=x.dtype, mode="rint"), [0, 0])
    return y


@pl.jit
def scale_rows_dynamic(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    x.bind_dynamic(0, M)
    y.bind_dynamic(0, M)
    n = pl.tensor.dim(x, 0)
    for r in pl.range(0, n, 1):
        with pl.at(level=pl.Level.CORE_GROUP):
            t = pl.slice(x, [1, x.shape[1]], [r, 0])
            y = pl.assemble(y, pl.mul(t, 3.0), [r, 0])
    return y


@pl.jit
def annotated_dynamic(x: pl.Tensor[[M, 8], pl.FP32], y: pl.Out[pl.Tensor[[M, 8], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.exp(x), [0, 0])
    return y


@pl.jit
def reshape_twice(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    rows, cols = x.shape
    with pl.at(level=pl.Level.CORE_GROUP):
        t = pl.mul(x, 2.0)
        t = pl.reshape(t, [cols, rows])  # a rebinding at the same depth: renamed, new shape
        t = pl.reshape(t, [rows, cols])
        y = pl.assemble(y, t, [0, 0])
    return y


@pl.jit.incore
def double_incore(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    out = pl.assemble(out, pl.add(x, x), [0, 0])
    return out


@pl.jit.inline
def neg_inline(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        out = pl.assemble(out, pl.neg(x), [0, 0])
    return out


@pl.jit.opaque
def sub_one_opaque(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        out = pl.assemble(out, pl.sub(x, 1.0), [0, 0])
    return out


@pl.jit.host
def host_copy(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    out = sub_one_opaque(x, out)
    return out


@pl.jit
def uses_every_flavour(
    x: pl.Tensor,
    a: pl.Out[pl.Tensor],
    b: pl.Out[pl.Tensor],
    c: pl.Out[pl.Tensor],
    d: pl.Out[pl.Tensor],
):
    a = double_incore(x, a)
    b = neg_inline(x, b)
    c = sub_one_opaque(x, c)
    d = host_copy(x, d)
    return a, b, c, d


@pl.jit.incore
def row_sums(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    out = pl.assemble(out, pl.row_sum(x), [0, 0])
    return out


@pl.jit
def two_shapes(x: pl.Tensor, y: pl.Tensor, sx: pl.Out[pl.Tensor], sy: pl.Out[pl.Tensor]):
    sx = row_sums(x, sx)  # the same dependency at two shapes: two specialisations
    sy = row_sums(y, sy)
    return sx, sy


@pl.jit
def loop_changes_shape(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    rows, cols = x.shape
    t = pl.mul(x, 1.0)
    for _i in pl.range(0, 2, 1):
        with pl.at(level=pl.Level.CORE_GROUP):
            t = pl.reshape(t, [cols, rows])  # deeper scope: loop-carried, same type required
    y = pl.assemble(y, t, [0, 0])
    return y


@pl.jit
def bad_op(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.softmax_please(x), [0, 0])
    return y


@pl.jit
def fixed_shape(x: pl.Tensor[[4, 8], pl.FP32], y: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.add(x, 1.0), [0, 0])
    return y


@pl.jit
def returns_new(x: pl.Tensor):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.mul(x, x)
    return y


@pl.jit.inline
def double_with_tid(
    x: pl.Tensor, out: pl.Out[pl.Tensor]
) -> tuple[pl.Tensor, pl.Scalar[pl.TASK_ID]]:
    with pl.at(level=pl.Level.CORE_GROUP) as tid:
        out = pl.assemble(out, pl.add(x, x), [0, 0])
    return out, tid


@pl.jit
def tuple_return_annotation(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    d = pl.create_tensor([4, 8], dtype=pl.FP32)
    d, tid = double_with_tid(x, d)
    with pl.at(level=pl.Level.CORE_GROUP, deps=[tid]):
        y = pl.assemble(y, pl.add(d, 1.0), [0, 0])
    return y


@pl.jit.extern(core_type="aiv", source="kernel.cpp", include_dirs=())
def external_scale(
    x: pl.Tensor, out: pl.Out[pl.Tensor], factor: pl.Scalar[pl.FP32]
) -> pl.Tensor: ...


@pl.jit
def calls_extern(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.add(x, 1.0)
    y = external_scale(x, y, 2.0)
    return y


TOKENS = pl.dynamic("TOKENS")


@pl.jit.inline
def double_window(
    h: pl.Tensor[[TOKENS, 8], pl.FP32], out: pl.Tensor[[TOKENS, 8], pl.FP32]
) -> pl.Tensor[[TOKENS, 8], pl.FP32]:
    h.bind_dynamic(0, TOKENS)
    out.bind_dynamic(0, TOKENS)
    with pl.at(level=pl.Level.CORE_GROUP):
        out = pl.add(h, h)
    return out


@pl.jit
def rebinds_through_a_dynamic_helper(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    # qwen3_14b/prefill_fwd.py's form: a [4, 8] window rebound to what a helper declared
    # [TOKENS, 8] returns; the call's type is [4, 8] (TOKENS bound by the arguments)
    w = pl.create_tensor([4, 8], dtype=pl.FP32)
    w = pl.assemble(w, x, [0, 0])
    for _ in pl.range(3):
        nxt = pl.create_tensor([4, 8], dtype=pl.FP32)
        w = double_window(w, nxt)
    y = pl.assemble(y, w, [0, 0])
    return y
