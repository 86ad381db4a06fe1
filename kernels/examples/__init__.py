"""Example kernels in the seed-era `@pl.program` dialect (see docs/examples.md).

One module per kernel, each with ``build(...) -> pl.Program``, ``golden`` (from
``goldens.py``, plain NumPy), ``make_inputs``, ``run`` and a ``python -m`` entry point.
"""

EXAMPLES = (
    "elementwise_add",
    "matmul",
    "gemm",
    "gemm_bf16",
    "rms_norm",
    "layer_norm",
    "softmax",
    "rope",
)
