"""pldsl: PyPTO's `pl` tile-kernel language in pure Python.

`import pldsl as pl` and a PyPTO kernel (`@pl.program` / `@pl.function`) is captured
into a typed IR, checked, interpreted on NumPy with BF16 semantics, or compiled to C.
"""

# First: in a source checkout, makes pldsl.kernels / pldsl.interpreter importable from the
# top-level kernels/ and interpreter/ folders (an installed pldsl has them inside).
from pldsl import _source_layout  # noqa: F401  isort: skip
from pldsl.diagnostics import CaptureError, Diagnostic, IRParseError, PldslError, RuntimeFault, Span
from pldsl.dtypes import (
    BF16,
    BOOL,
    FP16,
    FP32,
    INDEX,
    INT8,
    INT16,
    INT32,
    INT64,
    TASK_ID,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    DType,
)
from pldsl.enums import AtomicType, FunctionType, Level, MaskPattern, MemorySpace, PadValue, Role
from pldsl.frontend.inline import InlineFunction
from pldsl.ir.nodes import Function, Program, structural_equal
from pldsl.ir.printer import print_ir
from pldsl.ops import OPS as _OPS
from pldsl.surface import (
    _kernel_only,
    _Namespace,
    auto_chunk,
    capture_source,
    chunked_loop_optimizer,
    function,
    inline,
    program,
)
from pldsl.types import (
    Array,
    DynVar,
    InOut,
    Out,
    Scalar,
    SplitMode,
    Tensor,
    TensorView,
    Tile,
    TileView,
    Tuple,
    cross_core_slot,
    dynamic,
    split,
)

tensor = _Namespace("tensor")
tile = _Namespace("tile")  # the tile level: pl.tile.load, pl.tile.full, pl.tile.add, ...
tile.MaskPattern = MaskPattern  # PyPTO spells it pl.tile.MaskPattern
array = _Namespace("array")
system = _Namespace("system")
TaskId = Scalar[TASK_ID]  # PyPTO's alias of pl.Scalar[pl.TASK_ID]
Mem = MemorySpace  # PyPTO spells the enum both ways
for _name in [n for n in _OPS if "." not in n] + [
    "range",
    "parallel",
    "unroll",
    "pipeline",
    "at",
    "spmd",
    "split_aiv",
    "aiv_shard",
    "aic_gather",
    "spmd_submit",
    "no_dep",
    "scope",
    "manual_scope",
    "incore",
    "auto_incore",
    "static_print",
    "static_assert",
    "func_attr",
    "yield_",
    "min",
    "max",
    "const",
]:
    globals()[_name] = _kernel_only(_name)
del _name


from pldsl.jit import JITFunction, jit  # noqa: E402  (pl.jit is the decorator, not an op placeholder)


def parse_ir(text: str, filename: str = "<ir>") -> Program:
    """Parse textual IR (as printed by print_ir) back into a Program."""
    from pldsl.ir.parser import parse_ir as _parse

    return _parse(text, filename)


def check(program: Program, **options):
    """Run every static check on a program; returns a list of Diagnostics."""
    from pldsl.checks import run_checks

    return run_checks(program, **options)


__all__ = [
    "BF16", "BOOL", "FP16", "FP32", "INDEX", "TASK_ID", "TaskId", "INT8", "INT16", "INT32",
    "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "DType", "FunctionType", "Level", "PadValue",
    "Role", "AtomicType", "MaskPattern",
    "Function", "Program", "structural_equal", "print_ir", "parse_ir", "check", "program",
    "function", "inline", "InlineFunction", "capture_source", "chunked_loop_optimizer", "auto_chunk", "DynVar", "Array", "InOut",
    "Out", "Scalar", "SplitMode", "Tile", "TileView", "tile", "MemorySpace", "Mem", "split", "cross_core_slot", "jit",
    "JITFunction", "Tensor", "TensorView", "Tuple", "dynamic", "tensor", "array", "system", "CaptureError",
    "Diagnostic", "IRParseError", "PldslError", "RuntimeFault", "Span",
]  # fmt: skip
