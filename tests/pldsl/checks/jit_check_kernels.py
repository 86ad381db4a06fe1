"""@pl.jit kernels for the check tests (they need a source file).

InOutUseDiscipline (test_inout_use.py): a helper called as a statement with the caller's Out /
InOut tensor, which the caller then reads (pypto-lib's `hc_post(..., y)` then `return y`);
whether that is a violation depends on the helper's flavour.
UnwrittenOutput (test_unwritten_output.py): outputs written by an external kernel."""

import pldsl as pl


@pl.jit.inline
def double_into(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        out = pl.assemble(out, pl.add(x, x), [0, 0])
    return out


@pl.jit.inline
def accumulate(x: pl.Tensor, state: pl.InOut[pl.Tensor], row: pl.Scalar[pl.INDEX]):
    with pl.at(level=pl.Level.CORE_GROUP):
        tile = pl.slice(x, [1, 8], [row, 0])
        state = pl.assemble(state, pl.add(pl.slice(state, [1, 8], [0, 0]), tile), [0, 0])
    return state


@pl.jit.incore
def double_into_incore(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    out = pl.assemble(out, pl.add(x, x), [0, 0])
    return out


@pl.jit.opaque
def double_into_opaque(x: pl.Tensor, out: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        out = pl.assemble(out, pl.add(x, x), [0, 0])
    return out


@pl.jit
def calls_inline_as_statement(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    double_into(x, y)
    return y  # read-after-inline


@pl.jit
def calls_inline_in_a_loop(x: pl.Tensor, state: pl.InOut[pl.Tensor]):
    for r in pl.range(4):
        accumulate(x, state, r)  # iteration 2 passes the state again
    return state  # read-after-loop


@pl.jit
def calls_incore_as_statement(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    double_into_incore(x, y)  # kill-incore
    return y  # read-after-incore


@pl.jit
def calls_opaque_as_statement(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    double_into_opaque(x, y)  # kill-opaque
    return y  # read-after-opaque


@pl.jit
def binds_the_incore_result(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    y = double_into_incore(x, y)
    return y


@pl.jit.extern(core_type="aiv", source="kernel.cpp", include_dirs=())
def external_fill(x: pl.Tensor, out: pl.Out[pl.Tensor]) -> pl.Tensor: ...


@pl.jit
def written_by_an_extern(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    y = external_fill(x, y)
    return y


@pl.jit
def one_output_the_extern_never_sees(
    x: pl.Tensor, y: pl.Out[pl.Tensor], z: pl.Out[pl.Tensor]
):  # z is never written
    y = external_fill(x, y)
    return y
