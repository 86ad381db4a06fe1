"""LowPrecisionArith (warning): vector math on BF16/FP16 values, or on mixed dtypes.

The tensor-level type rules accept `pl.add(x_bf16, y_bf16)` and compute it in BF16 (8-bit
mantissa), and they silently promote mixed operands (`pl.mul(x_fp32, y_bf16)` -> FP32).
pypto-lib kernels never do either: they `pl.cast` to FP32, compute, and cast back to BF16
only to feed a matmul or to store. This check flags elementwise math (add, sub, mul, div,
maximum, minimum, exp, sqrt, rsqrt, recip, log, neg, abs, relu, row/col_expand_*) and
sum reductions whose tensor operands are BF16/FP16, or whose operands have different dtypes
(a non-literal scalar of another kind counts). Casts, matmuls and data ops are not math.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.dtypes import BF16, FP16
from pldsl.ir.nodes import Const, Program
from pldsl.ir.opdefs import op_label
from pldsl.ir.traversal import iter_opcalls
from pldsl.ir.types import ScalarType, TensorType

RULE = "LowPrecisionArith"
SEVERITY = "warning"
DOC = "elementwise math on BF16/FP16 operands, or on operands of different dtypes"

LOW = (BF16, FP16)
MATH_OPS = frozenset(
    ["add", "sub", "mul", "div", "maximum", "minimum", "exp", "sqrt", "rsqrt", "recip", "log"]
    + ["neg", "abs", "relu", "row_sum", "col_sum"]
    + [f"{a}_expand_{o}" for a in ("row", "col") for o in ("add", "sub", "mul", "div")]
)


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        for e in iter_opcalls(func.body):
            if e.op not in MATH_OPS:
                continue
            tensors = [
                a.type.dtype for a in e.args if isinstance(getattr(a, "type", None), TensorType)
            ]
            scalars = [
                a.type.dtype
                for a in e.args
                if isinstance(getattr(a, "type", None), ScalarType) and not isinstance(a, Const)
            ]
            kinds = set(tensors)
            for d in scalars:
                if tensors and d.is_float != tensors[0].is_float:
                    kinds.add(d)
            if len(kinds) > 1:
                names = ", ".join(sorted(d.name for d in kinds))
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"{op_label(e.op)} mixes operand dtypes ({names}): the result is implicitly "
                        "promoted",
                        e.span,
                        "pl.cast the operands to one dtype (pl.FP32) first",
                    )
                )
                continue
            low = sorted({d.name for d in tensors if d in LOW})
            if low:
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"{op_label(e.op)} computes on {'/'.join(low)} operands (8-bit mantissa for "
                        "BF16); pypto-lib kernels keep vector math in FP32",
                        e.span,
                        "pl.cast the operands to pl.FP32 first, and cast back only to store or "
                        "to feed a matmul",
                    )
                )
    return out
