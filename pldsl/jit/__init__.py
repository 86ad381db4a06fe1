"""`@pl.jit`: PyPTO kernels specialised from the arguments of each call (see function.py)."""

from pldsl.jit.function import CompiledJit, JITFunction, jit

__all__ = ["CompiledJit", "JITFunction", "jit"]
