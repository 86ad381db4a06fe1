"""Storage of each pl dtype in the generated C, and C literals for constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pldsl.execution import numerics


@dataclass(frozen=True)
class Storage:
    """How an element of a dtype is stored (mirrors numerics.storage_dtype)."""

    name: str  # storage kind: BF16 FP16 FP32 INT8 ... BOOL (INDEX -> INT64)
    ctype: str
    code: str  # PT_* dtype code of the runtime
    code_num: int
    esize: int
    kind: str  # "bf16" | "fp16" | "f32" | "int" | "uint" | "bool"
    bits: int

    @property
    def is_float(self) -> bool:
        return self.kind in ("bf16", "fp16", "f32")

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "uint")

    @property
    def fmt(self) -> str:
        return {"bf16": "PT_FMT_BF16", "fp16": "PT_FMT_FP16", "f32": "PT_FMT_FP32"}[self.kind]

    @property
    def utype(self) -> str:
        """Unsigned type of the same width (ints)."""
        return {8: "uint8_t", 16: "uint16_t", 32: "uint32_t", 64: "uint64_t"}[self.bits]


_TABLE = {
    "BF16": Storage("BF16", "uint16_t", "PT_BF16", 0, 2, "bf16", 16),
    "FP16": Storage("FP16", "uint16_t", "PT_FP16", 1, 2, "fp16", 16),
    "FP32": Storage("FP32", "float", "PT_FP32", 2, 4, "f32", 32),
    "INT8": Storage("INT8", "int8_t", "PT_I8", 3, 1, "int", 8),
    "INT16": Storage("INT16", "int16_t", "PT_I16", 4, 2, "int", 16),
    "INT32": Storage("INT32", "int32_t", "PT_I32", 5, 4, "int", 32),
    "INT64": Storage("INT64", "int64_t", "PT_I64", 6, 8, "int", 64),
    "UINT8": Storage("UINT8", "uint8_t", "PT_U8", 7, 1, "uint", 8),
    "UINT16": Storage("UINT16", "uint16_t", "PT_U16", 8, 2, "uint", 16),
    "UINT32": Storage("UINT32", "uint32_t", "PT_U32", 9, 4, "uint", 32),
    "UINT64": Storage("UINT64", "uint64_t", "PT_U64", 10, 8, "uint", 64),
    "BOOL": Storage("BOOL", "uint8_t", "PT_BOOL", 11, 1, "bool", 8),
}
_TABLE["INDEX"] = _TABLE["INT64"]
_TABLE["TASK_ID"] = _TABLE["INT64"]


def storage(dtype_name: str, precision: str) -> Storage:
    return _TABLE[effective(dtype_name, precision)]


def effective(dtype_name: str, precision: str) -> str:
    """The dtype whose rounding applies (BF16/FP16 round to FP32 in precision="fp32")."""
    if precision == "fp32" and dtype_name in ("BF16", "FP16"):
        return "FP32"
    return dtype_name


def scalar_ctype(dtype) -> str:
    if dtype.is_float:
        return "double"
    if dtype.is_bool:
        return "int"
    return "int64_t"


def float_literal(value: float) -> str:
    if math.isnan(value):
        return "PT_NAN"
    if math.isinf(value):
        return "PT_INF" if value > 0 else "(-PT_INF)"
    if value == 0.0:
        return "(-0.0)" if math.copysign(1.0, value) < 0 else "0.0"
    return float(value).hex()


def int_literal(value: int) -> str:
    value = int(value)
    if value >= 2**63:
        value -= 2**64
    if value == -(2**63):
        return "(-INT64_C(9223372036854775807) - 1)"
    return f"INT64_C({value})"


def round_scalar(value: float, dtype_name: str, precision: str) -> float:
    """A float constant rounded to its dtype as the interpreter does (machine._round; in
    precision="fp32" BF16/FP16 constants round to float32)."""
    r = numerics.cast(np.asarray(value, np.float64), dtype_name, "rint", precision)[()]
    return float(r)
