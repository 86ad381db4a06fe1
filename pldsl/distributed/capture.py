"""Capture of what the `pld` surface adds to calls: `f(..., device=r)` in a host function."""

from __future__ import annotations

import ast
from typing import Any

from pldsl.ir.nodes import Call, Expr


def launch(builder: Any, call: Call, device: ast.keyword) -> Expr:
    """`f(args, device=r)` -> `pl.pld.launch(r, self.f(args))`: the call runs on rank r."""
    from pldsl.frontend.body import checked_op_call
    from pldsl.ops import lookup

    rank = builder.expr(device.value)
    return checked_op_call(lookup("pld.launch"), {"device": rank, "call": call}, call.span)
