"""What blocked the seed's own kernel file: functions without `self`, reshape of a partially
valid tensor, assemble of a rank-2 source into a rank-3 target, pl.split among optimizations,
and names reused across sibling scopes with another valid region (NumPy goldens)."""

import textwrap

import numpy as np
import pytest

import pldsl as pl
from pldsl import interpreter


def capture(src: str) -> pl.Program:
    (program,) = pl.capture_source("import pldsl as pl\n" + textwrap.dedent(src), "<seed>")
    return program


def test_functions_without_self_and_calls_between_them():
    p = capture("""
        @pl.program
        class P:
            @pl.function(type=pl.FunctionType.InCore)
            def twice(x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
                out = pl.assemble(out, pl.add(x, x), [0, 0])
                return out

            @pl.function(type=pl.FunctionType.Orchestration)
            def main(self, x: pl.Tensor[[4, 8], pl.FP32], out: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
                out = self.twice(x, out)
                return out
    """)
    assert [q.name for q in p.functions["twice"].params] == ["x", "out"]
    x, out = np.arange(32, dtype=np.float32).reshape(4, 8), np.zeros((4, 8), np.float32)
    interpreter.run(p, "main", x, out)
    np.testing.assert_array_equal(out, 2 * x)


SEED_RESHAPE = """
    @pl.program
    class P:
        @pl.function
        def f(self, h: pl.Tensor[[2, 8, 4], pl.FP32], n: pl.Scalar[pl.INDEX],
              out: pl.Out[pl.Tensor[[8, 4], pl.FP32]]):
            with pl.at(level=pl.Level.CORE_GROUP):
                t = pl.reshape(pl.slice(h, [1, 8, 4], [1, 0, 0], valid_shape=[1, n, 4]), [8, 4])
                out = pl.assemble(out, pl.fillpad(t), [0, 0])
            return out
"""


def test_reshape_carries_the_valid_region_of_the_seeds_slice():
    p = capture(SEED_RESHAPE)
    assert "valid_shape=[n, 4]" in pl.print_ir(p)
    h = np.random.default_rng(1).standard_normal((2, 8, 4)).astype(np.float32)
    out = np.full((8, 4), 7.0, np.float32)
    interpreter.run(p, "f", h, 3, out)
    want = np.zeros((8, 4), np.float32)
    want[:3] = h[1, :3]  # the valid rows; fillpad zeroes the rest
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize(
    "shape,valid,target,want",
    [
        ((4, 8), (2, 8), (32,), (16,)),  # a flat prefix: 2 rows of 8
        ((4, 8), (2, 8), (8, 4), (4, 4)),
        ((1, 6, 4), (1, 3, 4), (6, 4), (3, 4)),  # unit axes move
        ((4, 8), (0, 8), (32,), (0,)),
    ],
)
def test_reshape_valid_region_mapping(shape, valid, target, want):
    from pldsl.ops.table import reshape_valid

    assert reshape_valid(shape, valid, target) == want


@pytest.mark.parametrize("valid,target", [((2, 4), (32,)), ((3, 8), (2, 16)), ((4, 4), (8, 4))])
def test_unmappable_regions_are_capture_errors(valid, target):
    src = f"""
        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4, 8], pl.FP32]):
                t = pl.slice(x, [4, 8], [0, 0], valid_shape={list(valid)})
                r = pl.reshape(t, {list(target)})
                return r
    """
    with pytest.raises(pl.CaptureError) as e:
        capture(src)
    assert "cannot reshape" in e.value.diagnostic.message


def test_assemble_a_rank2_source_into_a_rank3_target():
    p = capture("""
        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[3, 4], pl.FP32], out: pl.Out[pl.Tensor[[2, 5, 4], pl.FP32]]):
                out = pl.assemble(out, x, [1, 2, 0])
                return out
    """)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = np.zeros((2, 5, 4), np.float32)
    interpreter.run(p, "f", x, out)
    want = np.zeros((2, 5, 4), np.float32)
    want[1, 2:5, :] = x
    np.testing.assert_array_equal(out, want)


def test_pl_split_is_accepted_among_optimizations():
    p = capture("""
        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4, 4], pl.FP32]):
                with pl.at(level=pl.Level.CORE_GROUP, optimizations=[pl.split(pl.SplitMode.UP_DOWN)]):
                    y = pl.add(x, x)
                return y
    """)
    x = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(interpreter.run(p, "f", x), 2 * x)


def test_a_name_from_a_finished_sibling_scope_may_take_another_valid_region():
    p = capture("""
        @pl.program
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4, 8], pl.FP32], n: pl.Scalar[pl.INDEX],
                  out: pl.Out[pl.Tensor[[4, 8], pl.FP32]]):
                with pl.at(level=pl.Level.CORE_GROUP):
                    c = pl.slice(x, [4, 8], [0, 0], valid_shape=[n, 8])
                    out = pl.assemble(out, pl.fillpad(c), [0, 0])
                with pl.at(level=pl.Level.CORE_GROUP):
                    c = pl.slice(x, [4, 8], [0, 0])
                    out = pl.assemble(out, pl.add(out, c), [0, 0])
                return out
    """)
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    out = np.zeros((4, 8), np.float32)
    interpreter.run(p, "f", x, 2, out)
    want = x.copy()
    want[:2] += x[:2]
    np.testing.assert_array_equal(out, want)


def test_a_loop_carried_name_still_needs_its_type():
    with pytest.raises(pl.CaptureError) as e:
        capture("""
            @pl.program
            class P:
                @pl.function
                def f(self, x: pl.Tensor[[4, 8], pl.FP32], n: pl.Scalar[pl.INDEX]):
                    c = pl.slice(x, [4, 8], [0, 0])
                    for i in pl.range(2):
                        c = pl.slice(x, [4, 8], [0, 0], valid_shape=[n, 8])
                    return c
        """)
    assert "Cannot reassign 'c'" in e.value.diagnostic.message
