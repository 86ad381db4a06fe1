"""Capture errors: every rejected construct is a pl.CaptureError with a rule, the exact line and
column of the offending code, and a help text; the rendering layout is fixed.

The subset rule: what PyPTO rejects, pldsl rejects with a clear message (and pldsl may be
stricter, never wider)."""

from __future__ import annotations

import textwrap

import pytest

import pldsl as pl

HEADER = """\
import math
import pldsl as pl

D = pl.dynamic("D")
NAME = "text"
SIZES = [4, 8]


@pl.program
class P:
    @pl.function(type=pl.FunctionType.InCore)
    def helper(self, t: pl.Tensor[[16, 64], pl.FP32]) -> pl.Tensor[[16, 64], pl.FP32]:
        return t

    @pl.function(type=pl.FunctionType.Opaque)
    def f(
        self,
        x: pl.Tensor[[16, 64], pl.FP32],
        n: pl.Scalar[pl.INDEX],
        flag: pl.Scalar[pl.BOOL],
        y: pl.Tensor[[64, 16], pl.FP32],
        s: pl.Scalar[pl.FP32],
    ) -> pl.Tensor[[16, 64], pl.FP32]:
"""
FOOTER = "        return x\n"


def kernel(body: str) -> str:
    return HEADER + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8) + "\n" + FOOTER


def capture_error(source: str, filename: str = "<errors>") -> pl.Diagnostic:
    with pytest.raises(pl.CaptureError) as info:
        pl.capture_source(source, filename)
    return info.value.diagnostic


def locate(source: str, anchor: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `anchor` in the source."""
    seen = 0
    for lineno, text in enumerate(source.splitlines(), 1):
        start = 0
        while (col := text.find(anchor, start)) >= 0:
            seen += 1
            if seen == occurrence:
                return lineno, col + 1
            start = col + 1
    raise AssertionError(f"anchor {anchor!r} not in source")


# (id, body, rule, anchor where the span starts, a fragment of the message)
# fmt: off
BODY_CASES = [
    ("augassign", "acc = x\nacc += x", "UnsupportedFeature", "acc +=", "augmented assignment"),
    ("tensor_add_operator", "z = x + x", "UnsupportedFeature", "x + x", "operator 'Add' on a tensor"),
    ("tensor_mul_scalar_operator", "z = x * 2.0", "UnsupportedFeature", "x * 2.0", "on a tensor"),
    ("tensor_unary_operator", "z = -x", "UnsupportedFeature", "-x", "unary operators on tensors"),
    ("tensor_compare", "c = x < x", "UnsupportedFeature", "x < x", "on a tensor"),
    ("pow", "m = n ** 2", "UnsupportedFeature", "n ** 2", "operator Pow"),
    ("bitand", "m = n & 1", "UnsupportedFeature", "n & 1", "operator BitAnd"),
    ("invert", "m = ~n", "UnsupportedFeature", "~n", "operator ~"),
    ("lambda", "g = lambda a: a", "UnsupportedFeature", "lambda", "Lambda"),
    ("listcomp", "g = [i for i in SIZES]", "UnsupportedFeature", "[i for", "ListComp"),
    ("genexp", "g = pl.add(x, (i for i in SIZES))", "UnsupportedFeature", "(i for", "GeneratorExp"),
    ("sum_of_genexp", "g = pl.add(x, sum(i for i in SIZES))", "UnsupportedFeature", "sum(", "call to 'sum'"),
    ("ifexp", "g = x if flag else x", "UnsupportedFeature", "x if flag", "IfExp"),
    ("fstring", 'g = f"{n}"', "UnsupportedFeature", 'f"', "JoinedStr"),
    ("walrus", "g = pl.add(x, (k := 1.0))", "UnsupportedFeature", "k := 1.0", "NamedExpr"),
    ("python_call", "print(x)", "UnsupportedFeature", "print(x)", "arbitrary Python functions"),
    ("builtin_max_runtime", "m = max(n, 4)", "UnsupportedFeature", "max(n, 4)", "call to 'max'"),
    ("method_call", "m = x.sum()", "UnsupportedFeature", "x.sum()", "call to 'x.sum'"),
    ("for_over_range", "for i in range(4):\n    pass", "UnsupportedFeature", "range(4)", "for loops must iterate"),
    ("for_over_list", "for i in SIZES:\n    pass", "UnsupportedFeature", "SIZES:", "for loops must iterate"),
    ("for_else", "for i in pl.range(4):\n    z = x\nelse:\n    pass", "UnsupportedFeature", "pass", "for/else"),
    ("while_tensor_cond", "while x:\n    pass", "TypeError", "x:", "while condition must be a Bool-typed scalar expression"),
    ("while_index_cond", "while n:\n    pass", "TypeError", "n:", "while condition must be a Bool-typed scalar expression"),
    ("while_else", "while flag:\n    j = 1\nelse:\n    pass", "UnsupportedFeature", "pass", "while/else"),
    ("while_yield", "while flag:\n    a = pl.yield_(x)", "UnsupportedFeature", "while flag", "natural while"),
    ("while_stray_cond", "while flag:\n    pl.cond(flag)", "SyntaxError", "pl.cond(flag)", "only be the first statement"),
    ("while_no_inits", "for (a,) in pl.while_():\n    pl.cond(flag)\n    a2 = pl.yield_(a)", "SyntaxError", "pl.while_()", "requires init_values"),
    ("while_bad_kw", "for (a,) in pl.while_(init_values=(x,), stage=2):\n    pl.cond(flag)\n    a2 = pl.yield_(a)", "UnsupportedFeature", "stage=2", "Unknown keyword argument 'stage' in pl.while_()"),
    ("while_target_not_tuple", "for a in pl.while_(init_values=(x,)):\n    pl.cond(flag)\n    a2 = pl.yield_(a)", "SyntaxError", "a in", "must be a tuple"),
    ("while_target_count", "for (a, b) in pl.while_(init_values=(x,)):\n    pl.cond(flag)\n    a2 = pl.yield_(a)", "SyntaxError", "(a, b)", "Mismatch: 2 iter_args but 1 init_values"),
    ("while_no_cond", "for (a,) in pl.while_(init_values=(x,)):\n    a2 = pl.yield_(a)", "SyntaxError", "a2 = pl.yield_", "must be pl.cond(condition)"),
    ("while_second_cond", "for (a,) in pl.while_(init_values=(x,)):\n    pl.cond(flag)\n    pl.cond(1 < 2)\n    a2 = pl.yield_(a)", "SyntaxError", "pl.cond(1 < 2)", "only be the first statement"),
    ("while_cond_not_bool", "for (k,) in pl.while_(init_values=(0,)):\n    pl.cond(k)\n    k2 = pl.yield_(k + 1)", "TypeError", "k)", "while condition must be a Bool-typed"),
    ("while_no_yield", "for (k,) in pl.while_(init_values=(0,)):\n    pl.cond(k < 3)\n    j = k + 1", "UnsupportedFeature", "pl.while_(", "must end with"),
    ("while_bare_yield", "for (k,) in pl.while_(init_values=(0,)):\n    pl.cond(k < 3)\n    pl.yield_(k + 1)", "UnsupportedFeature", "pl.yield_(k", "assignment-form"),
    ("while_carry_after_loop", "for (k,) in pl.while_(init_values=(0,)):\n    pl.cond(k < 3)\n    k2 = pl.yield_(k + 1)\nj = k * 2", "UndefinedVariable", "k * 2", "'k'"),
    ("range_carry_after_loop", "for i, (a,) in pl.range(4, init_values=(x,)):\n    a2 = pl.yield_(a)\nb = pl.add(a, x)", "UndefinedVariable", "a, x)", "'a'"),
    ("if_yield_else_missing", "if flag:\n    r = pl.yield_(x)", "SyntaxError", "if flag", "If one branch yields, the other must too"),
    ("if_yield_then_missing", "if flag:\n    r = x\nelse:\n    r = pl.yield_(x)", "SyntaxError", "r = x", "If one branch yields, the other must too"),
    ("if_yield_not_last", "if flag:\n    r = pl.yield_(pl.exp(x))\n    s = x\nelse:\n    r = pl.yield_(x)", "UnsupportedFeature", "r = pl.yield_(pl.exp", "last statement of the if branch"),
    ("if_yield_names", "if flag:\n    r = pl.yield_(x)\nelse:\n    q = pl.yield_(x)", "TypeError", "q = pl", "yield the same variables"),
    ("if_yield_types", "if flag:\n    r = pl.yield_(x)\nelse:\n    r = pl.yield_(pl.cast(x, pl.BF16))", "TypeError", "pl.yield_(pl.cast", "in one branch and"),
    ("if_yield_bare", "if flag:\n    pl.yield_(x)\nelse:\n    pl.yield_(x)", "UnsupportedFeature", "pl.yield_(x)", "assignment form"),
    # one check (frontend/control.py yield_values / yield_names) and one text for both forms
    ("yield_kw_loop", "for i, (a,) in pl.range(4, init_values=(x,)):\n    a2 = pl.yield_(v=a)", "TypeError", "pl.yield_(v=a)", "pl.yield_ takes the yielded values as positional arguments"),
    ("yield_kw_if", "if flag:\n    r = pl.yield_(v=x)\nelse:\n    r = pl.yield_(x)", "TypeError", "pl.yield_(v=x)", "pl.yield_ takes the yielded values as positional arguments"),
    ("yield_empty_if", "if flag:\n    r = pl.yield_()\nelse:\n    r = pl.yield_(x)", "TypeError", "pl.yield_()", "pl.yield_ takes the yielded values as positional arguments"),
    ("yield_target_loop", "for i, (a,) in pl.range(4, init_values=(x,)):\n    a2.y = pl.yield_(a)", "TypeError", "a2.y", "pl.yield_ targets must be one name per carry"),
    ("yield_target_if", "if flag:\n    r, q = pl.yield_(x)\nelse:\n    r, q = pl.yield_(x)", "TypeError", "r, q", "pl.yield_ targets must be one name per result"),
    ("nested_def", "def g():\n    pass", "UnsupportedFeature", "def g", "Unsupported statement type: FunctionDef"),
    ("try", "try:\n    pass\nexcept Exception:\n    pass", "UnsupportedFeature", "try", "Try"),
    ("assert", "assert flag", "UnsupportedFeature", "assert", "Assert"),
    ("del", "z = x\ndel z", "UnsupportedFeature", "del", "Delete"),
    ("import", "import os", "UnsupportedFeature", "import os", "Import"),
    ("global", "global D", "UnsupportedFeature", "global", "Global"),
    ("if_index", "if n:\n    pass", "TypeError", "n:", "if condition must be a Bool-typed scalar expression"),
    ("if_tensor", "if x:\n    pass", "TypeError", "x:", "Bool-typed"),
    ("if_float", "if s:\n    pass", "TypeError", "s:", "Bool-typed"),
    ("chained_compare", "c = 0 < n < 4", "UnsupportedFeature", "0 < n < 4", "Only simple comparisons"),
    ("is_compare", "c = n is n", "UnsupportedFeature", "n is n", "comparison Is"),
    ("mixed_categories", "m = n * 0.5", "TypeError", "n * 0.5", "same numeric dtype category"),
    ("int_true_div", "m = n / 2", "TypeError", "n / 2", "'/' on integer scalars"),
    ("not_on_int", "c = not n", "TypeError", "not n", "'not' needs a BOOL"),
    ("bool_and_int", "c = flag and n", "TypeError", "flag and n", "'and' needs BOOL"),
    ("undefined", "z = pl.add(x, nope)", "UndefinedVariable", "nope", "undefined variable 'nope'"),
    ("closure_str", "z = pl.add(x, NAME)", "TypeError", "NAME", "is a str at capture time"),
    ("closure_list", "z = pl.mul(x, SIZES)", "TypeError", "SIZES", "list"),
    ("closure_dtype_as_value", "z = pl.add(x, pl.FP32)", "TypeError", "pl.FP32", "dtype"),
    ("constant_div_zero", "z = pl.mul(x, 1 // 0)", "ConstantError", "1 // 0", "ZeroDivisionError"),
    ("constant_index", "z = pl.mul(x, SIZES[5])", "ConstantError", "SIZES[5]", "IndexError"),
    ("constant_too_big", "m = n + 2 ** 70", "ConstantError", "2 ** 70", "64 bits"),
    ("unknown_op", "z = pl.softmax(x)", "UnknownOp", "pl.softmax", "pl.softmax is not a supported op"),
    ("loop_as_expr", "z = pl.range(4)", "UnsupportedFeature", "pl.range(4)", "iterator of a for loop"),
    ("yield_outside_loop", "z = pl.yield_(x)", "UnsupportedFeature", "pl.yield_(x)", "outside a loop"),
    ("op_scalar_lhs", "z = pl.add(s, x)", "TypeError", "pl.add(s, x)", "pl.add: expected Tensor or Tile, got Scalar"),
    ("op_scalar_unary", "z = pl.exp(s)", "TypeError", "pl.exp(s)", "pl.exp: expected Tensor or Tile, got Scalar"),
    ("op_missing_arg", "z = pl.add(x)", "TypeError", "pl.add(x)", "missing argument 'rhs'"),
    ("op_too_many_args", "z = pl.exp(x, x)", "TypeError", "pl.exp(x, x)", "at most 1 arguments"),
    ("op_unknown_kw", "z = pl.exp(x, fast=True)", "TypeError", "fast=True", "unknown keyword argument 'fast'"),
    ("op_double_value", "z = pl.cast(x, pl.BF16, target_type=pl.FP16)", "TypeError", "target_type=", "multiple values"),
    ("op_star_args", "z = pl.add(*SIZES)", "UnsupportedFeature", "*SIZES", "*args"),
    ("op_kwargs", "z = pl.exp(x, **{})", "UnsupportedFeature", "{}", "**kwargs"),
    ("matmul_k_mismatch", "z = pl.matmul(x, x)", "TypeError", "pl.matmul(x, x)", "contraction dims differ"),
    ("matmul_acc_bf16_acc", "a = pl.cast(pl.matmul(x, y), pl.BF16)\nz = pl.matmul_acc(a, x, y)", "TypeError", "pl.matmul_acc", "accumulator must be FP32 or INT32"),
    ("broadcast_mismatch", "z = pl.add(x, y)", "TypeError", "pl.add(x, y)", "do not broadcast"),
    ("row_expand_shape", "z = pl.row_expand_mul(x, x)", "TypeError", "pl.row_expand_mul", "requires second argument's last dimension to be 1, but got [16, 64]"),
    ("cast_mode", 'z = pl.cast(x, pl.BF16, mode="nearest")', "TypeError", "pl.cast", "unknown cast mode 'nearest'"),
    ("cast_mode_not_str", "z = pl.cast(x, pl.BF16, mode=1)", "TypeError", "1)", "must be a string"),
    ("cast_dtype_not_dtype", "z = pl.cast(x, 4)", "TypeError", "4)", "must be a dtype"),
    ("cast_dtype_none", "z = pl.cast(x, None)", "TypeError", "None)", "must be a dtype"),
    ("scalar_cast_mode", 'm = pl.cast(n, pl.INT32, mode="floor")', "TypeError", "pl.cast", "scalar casts accept only the default mode"),
    ("reshape_count", "z = pl.reshape(x, [16, 32])", "TypeError", "pl.reshape", "changes the element count"),
    ("dims_not_list", "z = pl.create_tensor(4, pl.FP32)", "TypeError", "4,", "must be a list"),
    ("dims_float", "z = pl.create_tensor([4.5], pl.FP32)", "TypeError", "4.5", "expected an integer scalar"),
    ("slice_rank", "z = pl.slice(x, [4], [0])", "TypeError", "pl.slice", "needs 2 dims"),
    ("assemble_dtype", "z = pl.assemble(x, pl.cast(x, pl.BF16), [0, 0])", "TypeError", "pl.assemble(x", "differs from target"),
    ("fillpad_bad_pad", "z = pl.fillpad(x, pad_value=3)", "TypeError", "3)", "pad_value must be a pl.PadValue"),
    ("func_attr_late", 'z = x\npl.func_attr({"core_num": 4})', "SyntaxError", "pl.func_attr", "must appear before every other statement in 'f'"),
    ("fillpad_null", "z = pl.fillpad(x, pl.PadValue.null)", "TypeError", "pl.fillpad", "cannot be PadValue.null"),
    ("a_trans_not_bool", "z = pl.matmul(x, y, a_trans=1)", "TypeError", "1)", "must be True or False"),
    ("dim_axis", "m = pl.tensor.dim(x, 2)", "TypeError", "pl.tensor.dim", "axis 2 out of range"),
    ("dim_axis_runtime", "m = pl.tensor.dim(x, n)", "TypeError", "n)", "must be a capture-time constant"),
    ("read_rank", "v = pl.read(x, [0, 0, 0])", "TypeError", "pl.read", "3 indices for a rank-2 tensor"),
    ("write_dtype", "x = pl.write(x, [0, 0], n)", "TypeError", "pl.write", "value dtype INDEX differs"),
    ("const_bad", "m = pl.const(SIZES, pl.INT32)", "TypeError", "SIZES", "pl.const value is not a INT32"),
    ("const_range", "m = pl.const(300, pl.INT8)", "ConstantError", "300", "does not fit in INT8"),
    ("scalar_minmax_tensor", "m = pl.min(x, n)", "TypeError", "pl.min(x, n)", "pl.min takes scalars"),
    ("range_kw", "for i in pl.range(4, chunks=2):\n    pass", "UnsupportedFeature", "chunks=2", "Unknown keyword argument 'chunks' in pl.range()"),
    ("range_attrs_kw", "for i in pl.range(4, attrs={}):\n    pass", "UnsupportedFeature", "attrs=", "Unknown keyword argument 'attrs'"),
    ("range_many_bounds", "for i in pl.range(0, 4, 1, 2):\n    pass", "TypeError", "pl.range(0", "1 to 3 bounds"),
    ("range_float_bound", "for i in pl.range(4.0):\n    pass", "TypeError", "4.0", "expected an integer scalar"),
    ("range_zero_step", "for i in pl.range(0, 4, 0):\n    pass", "ValueError", "0):", "step must not be zero"),
    ("chunk_runtime", "for i in pl.parallel(4, chunk=n):\n    pass", "TypeError", "n):", "chunk= must be a capture-time constant"),
    ("chunk_negative", "for i in pl.parallel(4, chunk=-1):\n    pass", "TypeError", "-1", "positive integer"),
    ("chunk_policy", 'for i in pl.parallel(4, chunk=2, chunk_policy="x"):\n    pass', "TypeError", '"x"', "chunk_policy="),
    ("stage_on_range", "for i in pl.range(4, stage=2):\n    pass", "UnsupportedFeature", "stage=2", "Unknown keyword argument 'stage'"),
    ("pipeline_no_stage", "for i in pl.pipeline(4):\n    pass", "TypeError", "pl.pipeline(4)", "needs stage="),
    ("unroll_runtime", "for i in pl.unroll(n):\n    pass", "TypeError", "pl.unroll(n)", "bounds must be constants"),
    ("unroll_carries", "for i, (a,) in pl.unroll(2, init_values=(x,)):\n    a2 = pl.yield_(a)", "UnsupportedFeature", "init_values=", "cannot carry values"),
    ("loop_target_tuple", "for i, j in pl.range(4):\n    pass", "UnsupportedFeature", "i, j", "loop target"),
    ("carry_count", "for i, (a, b) in pl.range(4, init_values=(x,)):\n    pass", "UnsupportedFeature", "i, (a, b)", "loop target"),
    ("carry_no_yield", "for i, (a,) in pl.range(4, init_values=(x,)):\n    b = pl.exp(a)", "UnsupportedFeature", "pl.range(4, init", "must end with"),
    ("yield_not_last", "for i, (a,) in pl.range(4, init_values=(x,)):\n    a2 = pl.yield_(a)\n    b = a", "UnsupportedFeature", "a2 = pl.yield_", "last statement"),
    ("yield_bare", "for i, (a,) in pl.range(4, init_values=(x,)):\n    pl.yield_(a)", "UnsupportedFeature", "pl.yield_(a)", "assignment-form"),
    ("yield_type", "for i, (a,) in pl.range(4, init_values=(x,)):\n    a2 = pl.yield_(pl.cast(a, pl.BF16))", "TypeError", "pl.yield_(", "yielded value of type"),
    ("yield_count", "for i, (a,) in pl.range(4, init_values=(x,)):\n    a2 = pl.yield_(a, a)", "TypeError", "pl.yield_(", "2 values for 1 loop carries"),
    ("yield_in_if", "for i, (a,) in pl.range(4, init_values=(x,)):\n    if flag:\n        a3 = pl.yield_(a)\n    a2 = pl.yield_(a)", "SyntaxError", "if flag", "If one branch yields"),
    ("break_outside", "break", "SyntaxError", "break", "'break' outside a loop"),
    ("break_in_parallel", "for i in pl.parallel(4):\n    break", "UnsupportedFeature", "break", "only allowed in pl.range"),
    ("continue_in_unroll", "for i in pl.unroll(4):\n    continue", "UnsupportedFeature", "continue", "only allowed in pl.range"),
    ("with_open", 'with open("f"):\n    pass', "UnsupportedFeature", 'open("f")', "`with` takes pl.at"),
    ("with_as", "with pl.scope() as t:\n    pass", "UnsupportedFeature", "t:", "`with pl.scope() as name`"),
    ("with_two_items", "with pl.at(level=pl.Level.CORE_GROUP), pl.at(level=pl.Level.CORE_GROUP):\n    pass", "UnsupportedFeature", "pl.at(level=pl.Level.CORE_GROUP):", "one `with pl.at"),
    ("at_no_level", "with pl.at():\n    pass", "TypeError", "pl.at()", "needs a level"),
    ("at_bad_level", "with pl.at(level=2):\n    pass", "TypeError", "2):", "pl.Level member"),
    ("at_unknown_kw", "with pl.at(level=pl.Level.CORE_GROUP, sync=True):\n    pass", "UnsupportedFeature", "sync=", "Unknown keyword argument 'sync' in pl.at()"),
    ("at_bad_optimization", "with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.auto_chunk):\n    pass", "TypeError", "pl.auto_chunk)", "chunked_loop_optimizer"),
    ("at_optimizations_not_list", "with pl.at(level=pl.Level.CORE_GROUP, optimizations=(pl.auto_chunk,)):\n    pass", "TypeError", "(pl.auto_chunk,)", "inline list literal"),
    ("at_optimizations_items", "with pl.at(level=pl.Level.CORE_GROUP, optimizations=[1]):\n    pass", "UnsupportedFeature", "[1]", "optimizations= accepts"),
    ("self_call_unknown", "z = self.nothing(x)", "UndefinedFunction", "self.nothing", "no function 'nothing'"),
    ("self_call_arity", "z = self.helper(x, x)", "TypeError", "self.helper(x, x)", "takes 1 arguments, got 2"),
    ("self_call_type", "z = self.helper(y)", "TypeError", "self.helper(y)", "argument for 't'"),
    ("self_call_kwargs", "z = self.helper(t=x)", "UnsupportedFeature", "self.helper(t=x)", "positional arguments"),
    ("unpack_non_tuple", "a, b = self.helper(x)", "TypeError", "self.helper(x)", "cannot unpack"),
    ("chained_assign", "a = b = x", "UnsupportedFeature", "a = b", "chained assignment"),
    ("attr_target", "x.data = x", "UnsupportedFeature", "x.data", "assignment target"),
    ("starred_target", "a, *b = x", "UnsupportedFeature", "a, *b", "assignment target"),
    ("expr_stmt_not_call", "x", "UnsupportedFeature", "x", "expression statement must be a call"),
    ("rebind_pl", "pl = x", "TypeError", "pl =", "cannot be rebound"),
    ("rebind_dynamic_dim_name", "D = n", "TypeError", "D =", "dynamic dimension"),
    ("rebind_other_type", "z = x\nz = n", "TypeError", "z = n", "Cannot reassign 'z' with a different type"),
    ("ann_mismatch", "z: pl.Tensor[[16, 64], pl.BF16] = x", "TypeError", "pl.Tensor[[16, 64], pl.BF16]", "does not match"),
    ("ann_no_value", "z: pl.Tensor[[16, 64], pl.BF16]", "UnsupportedFeature", "z:", "need a name and a value"),
    ("return_type", "return y", "TypeError", "return y", "return type"),
    ("list_value", "z = [x, x]", "TypeError", "[x, x]", "list or tuple"),
    ("subscript_step", "z = x[0:16:2]", "UnsupportedFeature", "2]", "slice steps"),
    ("subscript_negative", "z = x[-1]", "UnsupportedFeature", "-1", "negative index -1"),
    ("subscript_negative_bound", "z = x[0:-1]", "UnsupportedFeature", "-1", "negative bound"),
    ("subscript_ellipsis", "z = x[..., 0]", "UnsupportedFeature", "...", "'...' is not supported"),
    ("subscript_none", "z = x[None]", "UnsupportedFeature", "None", "'None' is not supported"),
    ("subscript_too_many", "z = x[0, 0, 0]", "TypeError", "0, 0, 0", "3 indices but the tensor is 2D"),
    ("subscript_empty", "z = x[4:4]", "ValueError", "4:4", "empty or reversed slice"),
    ("subscript_past_end", "z = x[0:32]", "ValueError", "0:32", "exceeds dim 16"),
    ("subscript_index_range", "z = x[16]", "ValueError", "16]", "index 16 out of range"),
    ("subscript_float_index", "z = x[s]", "TypeError", "s]", "expected an integer scalar"),
    ("subscript_scalar", "z = n[0]", "TypeError", "n[0]", "cannot subscript"),
    ("subscript_tuple_range", "z = self.helper(x)\nw = [z, z]", "TypeError", "[z, z]", "list or tuple"),
    ("store_extent", "x[0:8, :] = x", "TypeError", "x[0:8, :]", "shape mismatch on source axis 0: window expects 8 elements, source has"),
    ("store_rank", "x[0, :] = pl.exp(x)", "TypeError", "pl.exp(x)", "must be 1D to match the rank-reduced tensor window, got 2D"),
    ("store_scalar_into_window", "x[0:4, :] = s", "TypeError", "s", "Subscript-write source must also be a tensor"),
    ("store_scalar_element", "x[0, 1] = s", "TypeError", "s", "Subscript-write source must also be a tensor, got pl.Scalar"),
    ("store_dtype", "x[:, :] = pl.cast(x, pl.BF16)", "TypeError", "x[:, :] =", "differs from target"),
    ("store_not_a_name", "self.x[0] = x", "UnsupportedFeature", "self.x", "tensor variable"),
    ("store_into_scalar", "n[0] = s", "TypeError", "n[0]", "cannot assign into a subscript"),
    ("attribute_value", "z = x.shape", "UnsupportedFeature", "x.shape", "Attribute"),
    ("string_value", 'z = pl.add(x, "a")', "TypeError", '"a"', "str"),
    ("none_value", "z = pl.add(x, None)", "TypeError", "None", "None"),
]
# fmt: on


@pytest.mark.parametrize(
    "body, rule, anchor, fragment",
    [c[1:] for c in BODY_CASES],
    ids=[c[0] for c in BODY_CASES],
)
def test_rejected_construct(body, rule, anchor, fragment):
    source = kernel(body)
    d = capture_error(source)
    assert d.rule == rule, d.render()
    assert fragment in d.message, d.render()
    body_start = len(HEADER.splitlines())
    line, col = locate("\n".join(source.splitlines()[body_start:]), anchor)
    assert (d.span.line, d.span.col) == (line + body_start, col), d.render()
    assert d.span.file == "<errors>"
    assert d.help, f"no help text: {d.render()}"
    assert d.severity == "error"


SIGNATURE_CASES = [
    (
        "missing_annotation",
        "@pl.function\ndef f(self, x):\n    return x",
        "MissingAnnotation",
        "x)",
        "Parameter 'x' missing type annotation",
    ),
    (
        "missing_decorator",
        "def f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "MissingDecorator",
        "def f",
        "must be decorated with @pl.function",
    ),
    (
        "default_value",
        "@pl.function\ndef f(self, x: pl.Tensor[[4], pl.FP32] = None):\n    return x",
        "UnsupportedFeature",
        "def f",
        "positional parameters only",
    ),
    (
        "unknown_decorator_kw",
        "@pl.function(kind=1)\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "kind=1",
        "unknown keyword argument 'kind'",
    ),
    (
        "decorator_positional",
        "@pl.function(pl.FunctionType.InCore)\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "pl.FunctionType.InCore)",
        "keyword arguments only",
    ),
    (
        "decorator_bad_type",
        "@pl.function(type=pl.Level.HOST)\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "pl.Level.HOST)",
        "'type=' must be a pl.FunctionType member",
    ),
    (
        "attrs_not_dict",
        "@pl.function(attrs=5)\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "5)",
        "`@pl.function(attrs=...)` must be a dict, got int",
    ),
    (
        "attrs_key_not_str",
        "@pl.function(attrs={1: 2})\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "1: 2",
        "keys must be strings, got 1",
    ),
    (
        "attrs_unpacking",
        "@pl.function(attrs={**D})\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "D})",
        "Unsupported `**` unpacking",
    ),
    (
        "attrs_parameter",
        '@pl.function(attrs={"stationary": x})\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x',
        "BadDecorator",
        "x})",
        "attr 'stationary' references a variable",
    ),
    (
        "attrs_bad_value",
        '@pl.function(attrs={"k": pl.add})\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x',
        "BadDecorator",
        "pl.add})",
        "Unsupported value for @pl.function attr 'k'",
    ),
    (
        "decorator_bad_strict",
        "@pl.function(strict_ssa=1)\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "BadDecorator",
        "1)",
        "True or False",
    ),
    (
        "annotation_unknown_name",
        "@pl.function\ndef f(self, x: pl.Tensor[[UNKNOWN], pl.FP32]):\n    return x",
        "BadAnnotation",
        "pl.Tensor[[UNKNOWN]",
        "'UNKNOWN' is not a capture-time name",
    ),
    (
        "annotation_bad_dtype",
        "@pl.function\ndef f(self, x: pl.Tensor[[4], pl.FP33]):\n    return x",
        "BadAnnotation",
        "pl.Tensor[[4], pl.FP33]",
        "FP33",
    ),
    (
        "annotation_float_dim",
        "@pl.function\ndef f(self, x: pl.Tensor[[4.0], pl.FP32]):\n    return x",
        "BadAnnotation",
        "pl.Tensor[[4.0]",
        "tensor dims must be ints",
    ),
    (
        "annotation_div_zero",
        "@pl.function\ndef f(self, x: pl.Tensor[[4 // 0], pl.FP32]):\n    return x",
        "BadAnnotation",
        "pl.Tensor[[4 // 0]",
        "ZeroDivisionError",
    ),
    (
        "annotation_negative_dim",
        "@pl.function\ndef f(self, x: pl.Tensor[[-4], pl.FP32]):\n    return x",
        "BadAnnotation",
        "pl.Tensor[[-4]",
        "negative dim -4",
    ),
    (
        "annotation_scalar_inout",
        "@pl.function\ndef f(self, x: pl.InOut[pl.Scalar[pl.INT32]]):\n    return x",
        "BadAnnotation",
        "pl.InOut[",
        "cannot be InOut",
    ),
    (
        "annotation_valid_rank",
        "@pl.function\ndef f(self, x: pl.Tensor[[4, 4], pl.FP32, pl.TensorView(valid_shape=[2])]):\n    return x",
        "BadAnnotation",
        "pl.Tensor[[4, 4]",
        "valid_shape has 1 dims",
    ),
    (
        "annotation_not_a_type",
        "@pl.function\ndef f(self, x: 4):\n    return x",
        "BadAnnotation",
        "4)",
        "expected pl.Tensor",
    ),
    (
        "dynvar_clash",
        "@pl.function\ndef f(self, x: pl.Tensor[[pl.dynamic('Q')], pl.FP32], y: pl.Tensor[[pl.dynamic('Q')], pl.FP32]):\n    return x",
        "DynVarClash",
        "pl.Tensor[[pl.dynamic('Q')], pl.FP32])",
        "two different pl.dynamic('Q')",
    ),
    (
        "missing_return",
        "@pl.function\ndef f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:\n    y = pl.exp(x)",
        "MissingReturn",
        "def f",
        "never returns",
    ),
    (
        "duplicate_function",
        "@pl.function\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x\n\n"
        "@pl.function\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    return x",
        "DuplicateFunction",
        "def f",
        "defined twice",
    ),
    (
        "nothing_returned_used",
        "@pl.function\ndef g(self, x: pl.Tensor[[4], pl.FP32]):\n    pass\n\n"
        "@pl.function\ndef f(self, x: pl.Tensor[[4], pl.FP32]):\n    z = self.g(x)\n    return x",
        "TypeError",
        "z =",
        "declares no return type",
    ),
    (
        "class_statement",
        "for i in range(3):\n    pass",
        "UnsupportedFeature",
        "for i",
        "@pl.program class",
    ),
]


@pytest.mark.parametrize(
    "members, rule, anchor, fragment",
    [c[1:] for c in SIGNATURE_CASES],
    ids=[c[0] for c in SIGNATURE_CASES],
)
def test_rejected_signature_or_program(members, rule, anchor, fragment):
    occurrence = 2 if rule == "DuplicateFunction" else 1
    source = (
        "import pldsl as pl\n\n\n@pl.program\nclass P:\n" + textwrap.indent(members, "    ") + "\n"
    )
    d = capture_error(source)
    assert d.rule == rule, d.render()
    assert fragment in d.message, d.render()
    assert (d.span.line, d.span.col) == locate(source, anchor, occurrence), d.render()
    assert d.help, f"no help text: {d.render()}"


def test_empty_program_class():
    d = capture_error("import pldsl as pl\n\n@pl.program\nclass P:\n    pass\n")
    assert d.rule == "EmptyProgram" and (d.span.line, d.span.col) == (4, 1)
    assert d.help


def test_program_decorator_unknown_keyword():
    d = capture_error("import pldsl as pl\n\n@pl.program(fast=True)\nclass P:\n    pass\n")
    assert d.rule == "BadDecorator" and "'fast'" in d.message
    assert (d.span.line, d.span.col) == (3, 13)


def test_syntax_error_in_source():
    d = capture_error("import pldsl as pl\n\n@pl.program\nclass P(:\n    pass\n")
    assert d.rule == "SyntaxError" and d.span.line == 4


def test_null_byte_in_source_is_a_capture_error():
    d = capture_error("x = 1\x00\n")
    assert d.rule == "SyntaxError"


# --------------------------------------------------------------------------- rendering


def test_rendering_layout_is_exact():
    source = kernel("acc = x\nacc += x")
    d = capture_error(source, "kern.py")
    line, col = locate(source, "acc += x")
    assert (line, col) == (25, 9)
    expected = (
        "error[UnsupportedFeature]: augmented assignment (+=, -=, ...) is not supported\n"
        "  --> kern.py:25:9\n"
        "   |\n"
        "25 |         acc += x\n"
        "   |         ^^^^^^^^\n"
        "   = help: write it out: x = x + 1 for scalars, x = pl.add(x, y) for tensors"
    )
    assert d.render() == expected
    assert str(pl.CaptureError(d)) == expected


def test_rendering_caret_covers_the_expression():
    source = kernel("z = pl.add(x, nope)")
    d = capture_error(source, "kern2.py")
    rendered = d.render().splitlines()
    assert rendered[0] == "error[UndefinedVariable]: undefined variable 'nope'"
    assert rendered[1] == "  --> kern2.py:24:23"
    assert rendered[3] == "24 |         z = pl.add(x, nope)"
    assert rendered[4] == "   |                       ^^^^"
    assert rendered[5].startswith("   = help: ")


def test_rendering_notes_before_help():
    source = textwrap.dedent(
        """\
        import pldsl as pl

        @pl.program(strict_ssa=True)
        class P:
            @pl.function
            def f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:
                y = pl.exp(x)
                y = pl.exp(y)
                return y
        """
    )
    d = capture_error(source, "ssa.py")
    assert d.rule == "SSAViolation" and (d.span.line, d.span.col) == (8, 9)
    lines = d.render().splitlines()
    assert lines[-2] == "   = note: previous definition at ssa.py:7:9"
    assert lines[-1] == "   = help: use a new name for every value"


def test_non_ascii_column_of_a_later_error():
    source = kernel("z = pl.add(x, nope)  # ok").replace(
        "z = pl.add(x, nope)", "z = pl.exp(x); w = pl.add(z, nöpe)"
    )
    d = capture_error(source)
    text = source.splitlines()[d.span.line - 1]
    assert text[d.span.col - 1 : d.span.col - 1 + len("nöpe")] == "nöpe"
    assert d.span.end_col - d.span.col == len("nöpe")


def test_decorated_class_errors_point_into_this_file():
    with pytest.raises(pl.CaptureError) as info:

        @pl.program
        class Bad:
            @pl.function
            def f(self, x: pl.Tensor[[4], pl.FP32]) -> pl.Tensor[[4], pl.FP32]:
                y = x + x
                return y

    d = info.value.diagnostic
    assert d.span.file == __file__
    lines = open(__file__).read().splitlines()
    assert lines[d.span.line - 1].strip() == "y = x + x"
    assert lines[d.span.line - 1][d.span.col - 1 :].startswith("x + x")
    assert "y = x + x" in d.render()


def test_a_crashing_type_rule_is_a_diagnostic_not_a_traceback(monkeypatch):
    import dataclasses

    from pldsl.ops import registry

    def broken(args, attrs):
        raise IndexError("tuple index out of range")

    monkeypatch.setitem(registry.OPS, "exp", dataclasses.replace(registry.OPS["exp"], infer=broken))
    source = kernel("z = pl.exp(x)")
    d = capture_error(source)
    assert d.rule == "InternalError"
    assert "type rule of pl.exp failed: IndexError" in d.message
    body_start = len(HEADER.splitlines())
    assert (d.span.line, d.span.col) == (body_start + 1, 13)
    assert "bug in pldsl" in d.help


def test_rank1_accumulator_of_matmul_acc_is_a_capture_error():
    # The accumulator's rank is checked before its shape is indexed: a located TypeError,
    # never an IndexError (InternalError) from inside the type rule.
    source = textwrap.dedent(
        """\
        import pldsl as pl

        @pl.program
        class P:
            @pl.function
            def f(self, a: pl.Tensor[[16], pl.FP32], x: pl.Tensor[[16, 64], pl.BF16], y: pl.Tensor[[64, 16], pl.BF16]):
                z = pl.matmul_acc(a, x, y)
                return z
        """
    )
    d = capture_error(source)
    assert d.rule == "TypeError" and "requires acc to be at least 2D, but got 1D" in d.message
    assert (d.span.line, d.span.col) == (7, 13)


def test_ops_outside_kernels_say_so():
    with pytest.raises(pl.CaptureError) as info:
        pl.add(1, 2)
    assert info.value.diagnostic.rule == "NotInKernel"
    with pytest.raises(pl.CaptureError):
        pl.tensor.read(None, [0])


def test_a_call_to_a_name_bound_to_none_says_it_is_bound_later():
    # qwen3_14b/contract.py's host entries call kernels its model runner binds at run time
    src = kernel("z = LATE_BOUND(x)").replace(
        "SIZES = [4, 8]\n", "SIZES = [4, 8]\nLATE_BOUND = None\n"
    )
    d = capture_error(src)
    assert d.rule == "UnsupportedFeature"
    assert "call to 'LATE_BOUND': the name is None when the kernel is captured" in d.message
    assert (d.span.line, d.span.col) == locate(src, "LATE_BOUND(x)")
