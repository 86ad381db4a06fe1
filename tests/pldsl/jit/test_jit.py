"""@pl.jit: specialisation, cache, dependencies of each flavour, bind_dynamic, rebinding
renames, in-place Out arguments and errors located in the kernel (goldens are plain NumPy)."""

import inspect

import jit_kernels as K
import numpy as np
import pytest

import pldsl as pl
from pldsl.enums import FunctionType, Level, Role
from pldsl.ir.types import TensorType

RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def line_of(fn, text):
    """The file line of the first source line of `fn` containing `text`."""
    lines, start = inspect.getsourcelines(fn.func)
    return start + next(i for i, ln in enumerate(lines) if text in ln)


def test_bare_tensors_take_the_arguments_shape_and_dtype():
    x, y = rand(8, 16), np.zeros((8, 16), np.float32)
    assert K.add_scalar(x, 1.5, y) is None  # in-place style: returns nothing
    np.testing.assert_array_equal(y, x + np.float32(1.5))
    entry = K.add_scalar.specialize(x, 1.5, y).functions["add_scalar"]
    assert [p.type.shape for p in entry.params if isinstance(p.type, TensorType)] == [(8, 16)] * 2
    assert entry.func_type == FunctionType.Orchestration


def test_the_specialised_program_prints_parses_and_checks():
    x = rand(4, 8)
    program = K.add_scalar.specialize(x, 0.5, np.zeros_like(x))
    assert pl.structural_equal(pl.parse_ir(pl.print_ir(program)), program)
    assert [d for d in pl.check(program) if d.is_error] == []


def test_one_specialisation_per_signature():
    f = K.add_scalar
    before = f.cache_size
    for _ in range(2):
        f(rand(12, 4), 1.0, np.zeros((12, 4), np.float32))
    assert f.cache_size == before + 1
    f(rand(12, 8), 1.0, np.zeros((12, 8), np.float32))  # another shape: another one
    assert f.cache_size == before + 2


def test_bind_dynamic_dims_share_one_specialisation():
    f = K.scale_rows_dynamic
    for rows in (3, 5, 9):
        x, y = rand(rows, 6), np.zeros((rows, 6), np.float32)
        f(x, y)
        np.testing.assert_array_equal(y, x * np.float32(3.0))
    assert f.cache_size == 1
    entry = f.specialize(rand(3, 6), np.zeros((3, 6), np.float32)).functions["scale_rows_dynamic"]
    dims = entry.params[0].type.shape
    assert not isinstance(dims[0], int) and dims[0].name == "M" and dims[1] == 6


def test_dynamic_dims_in_annotations():
    for rows in (2, 7):
        x, y = rand(rows, 8), np.zeros((rows, 8), np.float32)
        K.annotated_dynamic(x, y)
        np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)
    assert K.annotated_dynamic.cache_size == 1


def test_a_same_depth_rebinding_is_renamed_and_may_change_shape():
    x, y = rand(4, 6), np.zeros((4, 6), np.float32)
    K.reshape_twice(x, y)
    np.testing.assert_array_equal(y, x * np.float32(2.0))
    text = pl.print_ir(K.reshape_twice.specialize(x, y))
    assert "t_v1: pl.Tensor[[6, 4], pl.FP32]" in text and "t_v2: pl.Tensor[[4, 6]" in text


def test_a_loop_carried_rebinding_keeps_its_type_and_errors_name_the_source_variable():
    x, y = rand(4, 6), np.zeros((6, 4), np.float32)
    with pytest.raises(pl.CaptureError) as e:
        K.loop_changes_shape(x, y)
    d = e.value.diagnostic
    assert "Cannot reassign 't'" in d.message and "_v" not in d.message
    assert d.span.line == line_of(K.loop_changes_shape, "t = pl.reshape(t, [cols, rows])")


def test_dependencies_of_every_flavour():
    x = rand(4, 8)
    outs = [np.zeros_like(x) for _ in range(4)]
    K.uses_every_flavour(x, *outs)
    np.testing.assert_array_equal(outs[0], x + x)
    np.testing.assert_array_equal(outs[1], -x)
    np.testing.assert_array_equal(outs[2], x - np.float32(1))
    np.testing.assert_array_equal(outs[3], x - np.float32(1))
    fns = K.uses_every_flavour.specialize(x, *outs).functions
    assert fns["double_incore"].func_type == FunctionType.InCore
    assert fns["neg_inline"].func_type == FunctionType.Inline
    assert fns["sub_one_opaque"].func_type == FunctionType.Opaque
    assert (fns["host_copy"].level, fns["host_copy"].role) == (Level.HOST, Role.Orchestrator)
    assert len(fns) == 5  # host_copy reuses sub_one_opaque's specialisation


def test_one_dependency_at_two_shapes_gets_two_functions():
    x, y = rand(4, 8), rand(6, 3)
    sx, sy = np.zeros((4, 1), np.float32), np.zeros((6, 1), np.float32)
    K.two_shapes(x, y, sx, sy)
    np.testing.assert_allclose(sx[:, 0], x.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(sy[:, 0], y.sum(axis=1), rtol=1e-5)
    assert set(K.two_shapes.specialize(x, y, sx, sy).functions) == {
        "two_shapes",
        "row_sums",
        "row_sums_2",
    }


def test_out_arguments_are_written_in_place_bf16_included():
    import ml_dtypes

    x = rand(4, 8).astype(ml_dtypes.bfloat16)
    y = np.zeros((4, 8), ml_dtypes.bfloat16)
    K.add_one_keep_dtype(x, y)
    want = (x.astype(np.float32) + np.float32(1)).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(y.astype(np.float32), want.astype(np.float32))


def test_a_kernel_returning_a_new_value_returns_it():
    x = rand(3, 5)
    np.testing.assert_array_equal(K.returns_new(x), x * x)


def test_errors_point_at_the_kernel_line():
    x = rand(4, 8)
    with pytest.raises(pl.CaptureError) as e:
        K.bad_op(x, np.zeros_like(x))
    d = e.value.diagnostic
    assert d.rule == "UnknownOp" and d.span.file.endswith("jit_kernels.py")
    assert d.span.line == line_of(K.bad_op, "softmax_please")


def test_an_argument_that_contradicts_the_annotation_is_an_error():
    with pytest.raises(pl.CaptureError) as e:
        K.fixed_shape(rand(4, 9), np.zeros((4, 9), np.float32))
    assert "the annotation says pl.Tensor[[4, 8], pl.FP32]" in e.value.diagnostic.message


def test_wrong_argument_counts_and_kinds():
    from pldsl.jit.arguments import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match="missing argument 'y'"):
        K.fixed_shape(rand(4, 8))
    with pytest.raises(ArgumentTypeError, match="pass NumPy arrays"):
        K.fixed_shape("x", "y")


def test_compile_returns_a_callable_program():
    x, y = rand(4, 8), np.zeros((4, 8), np.float32)
    compiled = K.fixed_shape.compile(x, y)
    assert isinstance(compiled.program, pl.Program)
    compiled(x, y)
    np.testing.assert_array_equal(y, x + np.float32(1))


def test_torch_tensors_are_written_in_place():
    torch = pytest.importorskip("torch")
    x = torch.randn(8, 4, dtype=torch.bfloat16)
    y = torch.zeros(8, 4, dtype=torch.bfloat16)
    K.add_one_keep_dtype(x, y)
    assert torch.equal(y, (x.float() + 1.0).to(torch.bfloat16))


def test_a_tuple_return_annotation_with_a_bare_tensor_takes_the_bodys_types():
    x = rand(4, 8)
    y = np.zeros_like(x)
    K.tuple_return_annotation(x, y)
    np.testing.assert_array_equal(y, x + x + np.float32(1))  # (x + x) + 1, by hand
    fn = K.tuple_return_annotation.specialize(x, y).functions["double_with_tid"]
    assert [str(t.dtype) for t in fn.return_types] == ["pl.FP32", "pl.TASK_ID"]
    assert isinstance(fn.return_types[0], TensorType) and fn.return_types[0].shape == (4, 8)


def test_an_external_kernel_is_captured_and_checked_but_not_run():
    from pldsl.diagnostics import RuntimeFault

    x = rand(4, 8)
    prog = K.calls_extern.specialize(x, np.zeros_like(x))
    ext = prog.functions["external_scale"]
    assert ext.external and ext.body == ()
    # its single result is its first Out parameter's type
    assert ext.return_types[0].shape == (4, 8) and str(ext.return_types[0].dtype) == "pl.FP32"
    assert not [d for d in pl.check(prog) if d.is_error]
    # its C++ body writes its Out parameters where the IR cannot see: no UnwrittenOutput for
    # them (qwen3_14b/paged_attention_cce.py's form; calls_extern's own `y` is rebound before
    # the call, so that warning stands)
    unwritten = [d.message for d in pl.check(prog) if d.rule == "UnwrittenOutput"]
    assert not [m for m in unwritten if "external_scale" in m]
    assert [m for m in unwritten if "'y' of 'calls_extern'" in m]
    with pytest.raises(RuntimeFault) as info:
        K.calls_extern(x, np.zeros_like(x))
    assert info.value.diagnostic.rule == "ExternalKernel"
    assert "external C++ kernel (pl.jit.extern)" in info.value.diagnostic.message


def test_an_external_kernel_is_a_fault_on_the_c_backend_too():
    from irutil import compile_c

    from pldsl.diagnostics import RuntimeFault

    x = rand(4, 8)
    built = compile_c(K.calls_extern.specialize(x, np.zeros_like(x)))
    with pytest.raises(RuntimeFault) as info:
        built.run("calls_extern", x, np.zeros_like(x))
    assert info.value.diagnostic.rule == "ExternalKernel"


def test_a_call_returns_its_declared_dynamic_dims_bound_by_the_arguments():
    # PyPTO deduces a call's return type by substituting the callee's dynamic dims with the
    # arguments' dims, so rebinding a [4, 8] window to the helper's result is no type change
    x, y = rand(4, 8), np.zeros((4, 8), np.float32)
    K.rebinds_through_a_dynamic_helper(x, y)
    np.testing.assert_array_equal(y, x * np.float32(8))  # doubled three times, exact in fp32
    program = K.rebinds_through_a_dynamic_helper.specialize(x, y)
    assert pl.structural_equal(pl.parse_ir(pl.print_ir(program)), program)
    assert [d for d in pl.check(program) if d.is_error] == []


def test_deduced_call_types_substitute_shape_and_valid_shape():
    from pldsl.dtypes import FP32, INDEX
    from pldsl.ir.nodes import BinOp, Const, Param, Var
    from pldsl.ir.symbolic import deduce_call_type
    from pldsl.ir.types import ScalarType

    t = Var("T", ScalarType(INDEX))
    n = Var("N", ScalarType(INDEX))
    params = (Param(Var("h", TensorType((t, 8), FP32))), Param(Var("s", ScalarType(INDEX))))
    twice = BinOp("mul", t, Const(2, INDEX), ScalarType(INDEX))
    declared = TensorType((twice, n), FP32, valid_shape=(t, 8))
    got = deduce_call_type(params, (TensorType((16, 8), FP32), ScalarType(INDEX)), declared)
    assert got.shape[0] == 32 and got.shape[1] is n  # N: no parameter names it
    assert got.valid_shape == (16, 8)
    # a rank mismatch binds nothing (the call is reported elsewhere)
    assert deduce_call_type(params, (TensorType((16,), FP32),), declared) is declared
