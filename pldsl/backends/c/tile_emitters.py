"""C emitters of the tile level's own ops (`pldsl/ops/tile.py`), registered into the same
table as every other emitter (`op_emitters.OP_EMITTERS`). A tile is a `pt_tensor` like a
tensor: load and move copy into fresh buffers, store writes in place as assemble does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pldsl.execution import faults
from pldsl.ir.nodes import OpCall

from .abi import CVal, argname, unsupported
from .op_emitters import OP_EMITTERS, _oom_entry, _oom_site, _rt_tile, _window_sites, op

if TYPE_CHECKING:
    from .lowering import Emitter


def _clamped(x: CVal, want: list[str], offsets: list[str]) -> list[str]:
    """Each extent cut back at the tensor's edge, never below 0 (load's clamp=True)."""
    out = []
    for d, (w, o) in enumerate(zip(want, offsets)):
        room = f"((int64_t){x.code}.shape[{d}] - (int64_t)({o}))"
        cut = f"((int64_t)({w}) < {room} ? (int64_t)({w}) : {room})"
        out.append(f"({cut} > 0 ? {cut} : 0)")
    return out


def _copy_keeping_valid(em: Emitter, e: OpCall, src: str, pattern: str, pad: str) -> str:
    """A fresh buffer holding `src`'s window (its valid part; `pattern` elsewhere) with
    `src`'s valid region and the pad mode `pad`."""
    site = _oom_site(em, e)
    out = em.ttemp()
    em.line(f"pt_materialize(ctx, {site}, &{src}, {em.st(e.type.dtype).esize}, {pattern}, &{out});")
    em.check()
    em.line(f"for (int d_ = 0; d_ < {src}.rank; d_++) {out}.valid[d_] = {src}.valid[d_];")
    em.line(f"{out}.pad = {pad};")
    return out


@op("load")
def _op_load(em: Emitter, e: OpCall, args: list) -> CVal:
    x, offsets, shapes = args[0], args[1], args[2]
    valid = args[3] if args[3] is not None else args[4]  # valid_shape, or valid_shapes
    r = x.type.rank
    if len(offsets) != r or len(shapes) != r or (valid is not None and len(valid) != r):
        raise unsupported("load rank mismatch", e.span)
    want = list(valid) if valid is not None else list(shapes)
    if e.attr("clamp"):
        want = _clamped(x, want, offsets)
    label = em.label(e)
    base = em.site(e.span, "BadShape",
                   lambda v, lb=label: f"{lb}: the tile shape has a negative extent {v[1]} on axis {v[0]}")  # fmt: skip
    em.site(
        e.span,
        "BadValidShape",
        lambda v, lb=label: f"{lb}: {faults.valid_shape_misfit(v[0], v[1], v[2])}",
        faults.VALID_SHAPE_HELP,
    )  # fmt: skip  (pl.load checks its window as pl.slice does)
    _window_sites(em, e, argname(e.args[0]))
    view = em.ttemp()
    em.line(
        f"pt_slice(ctx, {base}, &{x.code}, {em.ilist(shapes)}, {em.ilist(offsets)}, {em.ilist(want)}, PT_PAD_NULL, &{view});"
    )
    em.check()
    st = em.st(x.type.dtype)
    out = _copy_keeping_valid(em, e, view, f"pt_pad_bits({st.code}, PT_PAD_NULL)", "PT_PAD_NULL")
    return CVal("t", out, e.type, owned=True)


@op("store")
def _op_store(em: Emitter, e: OpCall, args: list) -> CVal:
    tile, offsets, target = args[0], args[1], args[2]
    st = em.st(target.type.dtype)
    if tile.type.dtype != target.type.dtype:  # an Acc tile narrowed on its way out (RNE)
        attrs = (("target_type", target.type.dtype), ("mode", "rint"))
        cast_type = replace(tile.type, dtype=target.type.dtype)
        cast = OpCall("cast", (e.args[0],), attrs, cast_type, e.span)
        tile = OP_EMITTERS["cast"](em, cast, [tile])
    base = len(em.sites)
    _window_sites(em, e, argname(e.args[2]))
    _oom_site(em, e)
    em.line(
        f"pt_assemble(ctx, {base}, &{target.code}, &{tile.code}, {em.ilist(offsets)}, {st.esize});"
    )
    em.check()
    return CVal("t", target.code, e.type)


@op("create_tile")
def _op_create_tile(em: Emitter, e: OpCall, args: list) -> CVal:
    return OP_EMITTERS["create_tensor"](em, e, [args[0], None, None])  # no init value, all valid


@op("tile.full")
def _op_tile_full(em: Emitter, e: OpCall, args: list) -> CVal:
    return OP_EMITTERS["full"](em, e, args)


@op("tile.arange")
def _op_tile_arange(em: Emitter, e: OpCall, args: list) -> CVal:
    return OP_EMITTERS["arange"](em, e, args)


@op("tile.gather")
def _op_tile_gather(em: Emitter, e: OpCall, args: list) -> CVal:
    """The flat index form (pt_gather_flat); tmp is not read."""
    x, idx = args[0], args[1]
    label = em.label(e)
    nm = argname(e.args[0])
    site = em.sites_block(e.span, [
        ("OutOfBounds", lambda v, lb=label: f"{lb}: indices[{v[0]}, {v[1]}] = {v[2]} is outside [0, {v[3]}) of the tile '{nm}'",
         "the index form addresses src by flat offset: row * cols + col"),
        _oom_entry(label),
    ])  # fmt: skip
    xt, it = em.st(x.type.dtype), em.st(idx.type.dtype)
    return _rt_tile(
        em, e, f"pt_gather_flat(ctx, {site}, &{x.code}, {xt.code}, &{idx.code}, {it.code}"
    )


@op("tile.set_validshape")
def _op_set_validshape(em: Emitter, e: OpCall, args: list) -> CVal:
    tile, rows, cols = args
    label = em.label(e)
    site = em.site(e.span, "BadValidShape",
                   lambda v, lb=label: f"{lb}: {faults.tile_valid_shape_misfit(v[0], v[1], v[2])}",
                   faults.VALID_SHAPE_HELP)  # fmt: skip
    out = em.ttemp()
    em.line("{")
    em.line(f"    int64_t vs_[2] = {{(int64_t)({rows.code}), (int64_t)({cols.code})}};")
    em.line(
        f"    for (int d_ = 0; d_ < 2; d_++) if (vs_[d_] < 0 || vs_[d_] > {tile.code}.shape[d_]) {{ PT_FAIL(ctx, {site}, d_, vs_[d_], {tile.code}.shape[d_], 0, 0, 0); goto {em.scope.fail_label}; }}"
    )
    em.line(f"    pt_assign(&{out}, &{tile.code});")
    em.line(f"    {out}.valid[0] = vs_[0]; {out}.valid[1] = vs_[1];")
    em.line("}")
    return CVal("t", out, e.type, owned=True)


@op("tile.move")
def _op_move(em: Emitter, e: OpCall, args: list) -> CVal:
    (tile,) = args
    st = em.st(tile.type.dtype)
    pattern = f"pt_pad_bits({st.code}, {tile.code}.pad)"
    out = _copy_keeping_valid(em, e, tile.code, pattern, f"{tile.code}.pad")
    return CVal("t", out, e.type, owned=True)


@op("tile.transpose_view")
def _op_transpose_view(em: Emitter, e: OpCall, args: list) -> CVal:
    """The last two axes swapped (pt_transpose, a copy), the pad mode kept."""
    (tile,) = args
    rank = tile.type.rank
    site = _oom_site(em, e)
    out = em.ttemp()
    esize = em.st(tile.type.dtype).esize
    em.line(f"pt_transpose(ctx, {site}, &{tile.code}, {rank - 2}, {rank - 1}, {esize}, &{out});")
    em.check()
    em.line(f"{out}.pad = {tile.code}.pad;")
    return CVal("t", out, e.type, owned=True)


@op("tile.get_block_idx")
def _op_get_block_idx(em: Emitter, e: OpCall, args: list) -> CVal:
    return CVal("s", "(int64_t)ctx->block_idx", e.type)
