"""UnpaddedReduction (warning): a reduction or matmul reads a value's invalid region.

Outside its `valid_shape` a value is undefined (decision 7): PyPTO's CPU simulator happens to
zero it, hardware may not, and the two disagree on what a row max of an all-negative partial
row is. pypto-lib kernels therefore always `pl.fillpad` a partially valid value before a
reduction (`row_*`, `col_*`) or a matmul. This check flags such an op when an operand's type
has a `valid_shape` smaller than its shape along the axis the op reduces (the last axis for
`row_*`, the first for `col_*`, K for a matmul) and no pad mode. Invalid rows of a row
reduction (or of a matmul's lhs) only make the same rows of the result invalid, so they are
not flagged; nor are elementwise ops, which compute the valid region only.
"""

from __future__ import annotations

from pldsl.diagnostics import Diagnostic
from pldsl.ir.nodes import OpCall, Program, Var
from pldsl.ir.opdefs import op_label
from pldsl.ir.printer import format_dims
from pldsl.ir.symbolic import dims_equal
from pldsl.ir.traversal import iter_opcalls
from pldsl.ir.types import TensorType

RULE = "UnpaddedReduction"
SEVERITY = "warning"
DOC = "a reduction or matmul reads the undefined region of a partially valid value"

WHOLE_READERS = frozenset(
    [f"{axis}_{red}" for axis in ("row", "col") for red in ("sum", "max", "min")]
    + ["matmul", "matmul_acc"]
)


def _reduced_axes(call: OpCall) -> list[int | None]:
    """Per runtime argument, the axis the op reduces over (None: not reduced)."""
    if call.op.startswith("row_"):
        return [-1]
    if call.op.startswith("col_"):
        return [0]
    lhs_k = 0 if call.attr("a_trans") else 1
    rhs_k = 1 if call.attr("b_trans") else 0
    return [None, lhs_k, rhs_k] if call.op == "matmul_acc" else [lhs_k, rhs_k]


def _partial_along(t: object, axis: int | None) -> bool:
    return (
        axis is not None
        and isinstance(t, TensorType)
        and t.valid_shape is not None
        and t.pad is None
        and not dims_equal(t.valid_shape[axis], t.shape[axis])
    )


def check(program: Program) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for func in program.function_list:
        for e in iter_opcalls(func.body):
            if e.op not in WHOLE_READERS:
                continue
            for arg, axis in zip(e.args, _reduced_axes(e)):
                t = getattr(arg, "type", None)
                if not _partial_along(t, axis):
                    continue
                what = f"'{arg.name}'" if isinstance(arg, Var) else "its operand"
                out.append(
                    Diagnostic(
                        RULE,
                        SEVERITY,
                        f"{op_label(e.op)} reduces over all of {what} (shape "
                        f"{format_dims(t.shape)}), but only {format_dims(t.valid_shape)} is valid; "
                        "the rest is undefined",
                        e.span,
                        "pl.fillpad(x, pad_value=pl.PadValue.zero) (or .min before a max) first",
                    )
                )
    return out
