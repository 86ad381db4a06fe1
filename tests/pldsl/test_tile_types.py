"""The tile level's types: pl.Tile annotations, memory spaces as a checked property (a tile
is not a tensor in global memory), the generic memory rule of unified ops, and the text round
trip of tile types."""

from __future__ import annotations

import pytest

import pldsl as pl
from pldsl.diagnostics import CaptureError, IRParseError
from pldsl.enums import MemorySpace
from pldsl.ir.types import TensorType, TileType

HEAD = """
import pldsl as pl

@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def k(self, x: pl.Tensor[[16, 16], pl.FP32], w: pl.Tensor[[16, 16], pl.BF16],
          out: pl.Out[pl.Tensor[[16, 16], pl.FP32]]):
        t = pl.load(x, [0, 0], [16, 16])
        {body}
        return out

    @pl.function(type=pl.FunctionType.InCore)
    def g(self, x: pl.Tensor[[16, 16], pl.FP32]) -> pl.Tensor[[16, 16], pl.FP32]:
        return x
"""


def capture(body: str):
    (prog,) = pl.capture_source(HEAD.format(body=body), "<tile>")
    return prog


def error_of(body: str) -> tuple[str, str, int]:
    with pytest.raises(CaptureError) as e:
        capture(body)
    d = e.value.diagnostic
    return d.message, d.help or "", d.span.line


def types_in(prog) -> dict:
    return {s.targets[0].name: s.targets[0].type for s in prog.k.body if hasattr(s, "targets")}


# ------------------------------------------------------------------ what is accepted


def test_load_gives_a_tile_in_vec_and_ops_on_tiles_give_tiles():
    prog = capture(
        "u = pl.tile.add(t, t)\n        e = pl.exp(u)\n        r = pl.row_sum(e)\n"
        "        m = pl.load(w, [0, 0], [16, 16], target_memory=pl.MemorySpace.Mat)\n"
        "        out = pl.store(r, [0, 0], out)"
    )
    ty = types_in(prog)
    for name in ("t", "u", "e", "r"):
        assert isinstance(ty[name], TileType) and ty[name].memory is MemorySpace.Vec, name
    assert ty["r"].shape == (16, 1)
    assert ty["m"].memory is MemorySpace.Mat and ty["m"].dtype == pl.BF16
    assert type(ty["out"]) is TensorType  # store returns the tensor in global memory


def test_tile_matmul_lands_in_acc_as_fp32():
    prog = capture(
        "a = pl.tile.move(pl.load(w, [0, 0], [16, 16], target_memory=pl.Mem.Mat),"
        " target_memory=pl.Mem.Left)\n"
        "        b = pl.tile.move(pl.load(w, [0, 0], [16, 16], target_memory=pl.Mem.Mat),"
        " target_memory=pl.Mem.Right)\n"
        "        c = pl.tile.matmul(a, b)\n        out = pl.store(c, [0, 0], out)"
    )
    ty = types_in(prog)
    assert ty["a"].memory is MemorySpace.Left and ty["b"].memory is MemorySpace.Right
    assert ty["c"].memory is MemorySpace.Acc and ty["c"].dtype == pl.FP32


def test_set_validshape_and_load_valid_shape_are_in_the_type():
    prog = capture(
        "v = pl.load(x, [0, 0], [16, 16], valid_shape=[5, 16])\n"
        "        s = pl.tile.set_validshape(v, 16, 3)\n        out = pl.store(s, [0, 0], out)"
    )
    ty = types_in(prog)
    assert ty["v"].valid_shape == (5, 16) and ty["s"].valid_shape == (16, 3)


def test_seed_era_valid_shapes_spelling():
    prog = capture(
        "v = pl.load(x, [0, 0], [16, 16], valid_shapes=[5, 16])\n        out = pl.store(v, [0, 0], out)"
    )
    assert types_in(prog)["v"].valid_shape == (5, 16)
    message, help_, _ = error_of(
        "v = pl.load(x, [0, 0], [16, 16], valid_shape=[5, 16], valid_shapes=[5, 16])"
    )
    assert "given twice" in message and "older spelling" in help_


def test_tile_annotation_on_parameters():
    src = """
import pldsl as pl

@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def k(self, t: pl.Tile[[8, 8], pl.FP32, pl.Mem.Mat]) -> pl.Tile[[8, 8], pl.FP32, pl.Mem.Mat]:
        return t
"""
    (prog,) = pl.capture_source(src, "<tile>")
    t = prog.k.params[0].var.type
    assert isinstance(t, TileType) and t.memory is MemorySpace.Mat
    assert pl.Tile[[8, 8], pl.FP32].memory is MemorySpace.Vec  # Vec by default
    with pytest.raises(TypeError, match="DDR is where a pl.Tensor lives"):
        pl.Tile[[8, 8], pl.FP32, pl.MemorySpace.DDR]


# ------------------------------------------------------------------ a tile is not a tensor


@pytest.mark.parametrize(
    "body, message, hint",
    [
        ("y = pl.add(t, x)", "'rhs' is a tensor in global memory (DDR) but 'lhs' is a pl.Tile in Vec",
         "pl.load(tensor, offsets, shapes)"),
        ("out = pl.assemble(out, t, [0, 0])", "'target' is a tensor in global memory (DDR)",
         "pl.store(tile, offsets, tensor)"),
        ("y = pl.tile.add(x, x)", "'lhs' is a tensor in global memory (DDR), not a pl.Tile",
         "use pl.add for tensors"),
        ("y = pl.load(t, [0, 0], [16, 16])", "'tensor' must be a tensor in global memory, got a pl.Tile in Vec",
         "a tile is already on chip"),
        ("out = pl.store(x, [0, 0], out)", "'tile' must be a pl.Tile, got a tensor in global memory",
         "pl.load(tensor, offsets, shapes)"),
        ("out = pl.store(t, [0, 0], t)", "'output_tensor' must be a tensor in global memory, got a pl.Tile",
         "a tile is already on chip"),
        ("y = self.g(t)", "has type pl.Tile[[16, 16], pl.FP32, pl.MemorySpace.Vec], expected pl.Tensor",
         "a pl.Tile in Vec is not a tensor in global memory (DDR)"),
        ("y = pl.load(x, [0, 0], [16, 16], target_memory=pl.MemorySpace.Left)",
         "cannot place a tile in Left (allowed: Vec, Mat)", "pl.tile.move"),
        ("y = pl.tile.move(t, target_memory=pl.MemorySpace.DDR)", "cannot place a tile in DDR",
         "DDR is where a pl.Tensor lives"),
        ("y = pl.create_tile([4, 4], dtype=pl.FP32, target_memory=pl.MemorySpace.DDR)",
         "cannot place a tile in DDR", "DDR is where a pl.Tensor lives"),
        ("out = pl.store(pl.cast(t, pl.BF16), [0, 0], out)",
         "a BF16 tile in Vec cannot be stored into a FP32 tensor", "pl.cast(tile, pl.FP32)"),
        ("y = pl.load(x, [0], [16, 16])", "needs 2 offsets and 2 shapes, got 1 and 2", "pl.load"),
        ("y = pl.load(x, [0, 0], [16, 16], valid_shape=[17, 16])",
         "valid_shape [17, 16] is wider than the tile [16, 16] on axis 0", "at most"),
        ("y = pl.tile.set_validshape(t, 16, 17)", "wider than the tile [16, 16] on axis 1", "at most"),
        ("y = pl.tile.set_validshape(t, -1, 4)", "'valid_rows' is negative", ""),
        ("y = pl.move(x, target_memory=pl.MemorySpace.Vec)", "'tile' must be a pl.Tile, got a tensor",
         "pl.load(tensor, offsets, shapes)"),
        ("y = pl.tile.transpose_view(x)", "'tile' must be a pl.Tile, got a tensor",
         "pl.load(tensor, offsets, shapes)"),
        ("y = pl.tile.transpose_view(pl.tile.full([16], dtype=pl.FP32, value=0.0))",
         "tile.transpose_view requires at least 2 dimensions, but got 1", ""),
    ],
)  # fmt: skip
def test_memory_errors_are_located_with_a_hint(body, message, hint):
    got, help_, line = error_of(body)
    assert message in got
    assert hint in help_
    assert line == 10  # the line of the offending statement


def test_set_validshape_edges():
    """At the tile's extent is fine; one past it is an error (both axes)."""
    capture("s = pl.tile.set_validshape(t, 16, 16)\n        out = pl.store(s, [0, 0], out)")
    capture("s = pl.tile.set_validshape(t, 0, 0)\n        out = pl.store(s, [0, 0], out)")
    for r, c in ((17, 16), (16, 17)):
        with pytest.raises(CaptureError):
            capture(f"s = pl.tile.set_validshape(t, {r}, {c})")


# ------------------------------------------------------------------ the text IR


def test_tile_types_round_trip_and_differ_from_tensors():
    prog = capture(
        "m = pl.load(w, [0, 0], [16, 16], valid_shape=[3, 16], target_memory=pl.Mem.Mat)\n"
        "        r = pl.tile.move(m, target_memory=pl.Mem.Right)\n"
        "        out = pl.store(pl.tile.fillpad(t), [0, 0], out)"
    )
    text = pl.print_ir(prog)
    assert (
        "pl.Tile[[16, 16], pl.BF16, pl.MemorySpace.Mat, pl.TileView(valid_shape=[3, 16])]" in text
    )
    assert "pl.MemorySpace.Right" in text
    back = pl.parse_ir(text)
    assert pl.structural_equal(back, prog)
    assert pl.print_ir(back) == text
    # `t` declared a tensor: pl.load's result is a tile, so the text does not type-check
    retyped = text.replace(
        "t: pl.Tile[[16, 16], pl.FP32, pl.MemorySpace.Vec]", "t: pl.Tensor[[16, 16], pl.FP32]"
    )
    assert retyped != text
    with pytest.raises(IRParseError):
        pl.parse_ir(retyped)


def test_a_tile_in_ddr_does_not_parse():
    prog = capture("out = pl.store(t, [0, 0], out)")
    text = pl.print_ir(prog).replace("pl.MemorySpace.Vec", "pl.MemorySpace.DDR")
    with pytest.raises(IRParseError, match="DDR is where a pl.Tensor lives"):
        pl.parse_ir(text)


# ------------------------------------------------------------------ static checks see tile windows

EDGE = """
import pldsl as pl

@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def k(self, x: pl.Tensor[[16, 16], pl.FP32],
          out: pl.Out[pl.Tensor[[16, 16], pl.FP32]]) -> pl.Tensor[[16, 16], pl.FP32]:
        t = pl.load(x, [{lo}, 0], [8, 16]{clamp})
        out = pl.store(t, [{so}, 0], out)
        out = pl.store(t, [0, 0], out)
        return out
"""


def bounds_findings(lo: int, so: int, clamp: str = "") -> list[tuple[str, int]]:
    (prog,) = pl.capture_source(EDGE.format(lo=lo, so=so, clamp=clamp), "<edge>")
    return [(d.rule, d.span.line) for d in pl.check(prog) if d.rule == "StaticOutOfBounds"]


def test_load_and_store_windows_at_the_edge_are_clean():
    assert bounds_findings(8, 8) == []


def test_load_one_past_the_edge_is_found():
    assert bounds_findings(9, 8) == [("StaticOutOfBounds", 9)]


def test_store_one_past_the_edge_is_found():
    assert bounds_findings(8, 9) == [("StaticOutOfBounds", 10)]


def test_a_clamped_load_is_not_a_finding():
    assert bounds_findings(9, 8, ", clamp=True") == []


def test_tile_kernel_file_checks_clean():
    from pathlib import Path

    path = Path(__file__).parent / "kernels_src" / "tile_level.py"
    (prog,) = pl.capture_source(path.read_text(), str(path))
    assert [d for d in pl.check(prog)] == []
