"""MisplacedComputeOp (error): compute ops outside pl.at in orchestration code."""

from checkutil import kernel

RULE = "MisplacedComputeOp"

SRC = """
import pldsl as pl

N = pl.dynamic("N")
K = 128


@pl.program
class P:
    @pl.function(type=pl.FunctionType.FTYPE)
    def main(
        self, x: pl.Tensor[[N, K], pl.BF16], out: pl.Out[pl.Tensor[[N, K], pl.FP32]]
    ) -> pl.Tensor[[N, K], pl.FP32]:
        n = pl.tensor.dim(x, 0)
        for b0 in pl.parallel(0, n, 16):
            valid = pl.min(16, n - b0)
            t = pl.slice(x, [16, K], [b0, 0], valid_shape=[valid, K])
            BODY
        return out
"""

IN_SCOPE = """with pl.at(level=pl.Level.CORE_GROUP):
                f = pl.cast(t, pl.FP32)
                s = pl.row_sum(pl.mul(f, f))
                r = pl.row_expand_mul(f, pl.rsqrt(pl.add(pl.mul(s, 0.0078125), 1e-6)))
                out = pl.assemble(out, r, [b0, 0])"""

MIXED = """f = pl.cast(t, pl.FP32)  # cast
            with pl.at(level=pl.Level.CORE_GROUP):
                s = pl.row_sum(pl.mul(f, f))
                r = pl.row_expand_mul(f, pl.rsqrt(pl.add(pl.mul(s, 0.0078125), 1e-6)))
            out = pl.assemble(out, pl.add(r, 0.0), [b0, 0])  # add"""

NO_SCOPE = """f = pl.cast(t, pl.FP32)
            s = pl.row_sum(pl.mul(f, f))
            r = pl.row_expand_mul(f, pl.rsqrt(pl.add(pl.mul(s, 0.0078125), 1e-6)))
            out = pl.assemble(out, r, [b0, 0])"""


def k(body: str, ftype: str = "Opaque"):
    return kernel(SRC.replace("FTYPE", ftype).replace("BODY", body))


def test_compute_outside_scope_in_promoted_opaque_function():
    kk = k(MIXED)
    found = kk.rule(RULE)
    assert sorted(d.span.line for d in found) == [kk.line("cast"), kk.line("add")]
    assert all(d.severity == "error" for d in found)
    assert "Misplaced tensor op 'pl.cast'" in found[0].message
    assert "promoted to Orchestration" in found[0].message


def test_compute_anywhere_in_orchestration_function():
    kk = k(NO_SCOPE, "Orchestration")
    names = sorted(d.message.split("'")[1] for d in kk.rule(RULE))
    assert names == sorted(
        ["pl.cast", "pl.row_sum", "pl.mul", "pl.row_expand_mul", "pl.rsqrt", "pl.add", "pl.mul"]
    )


def test_opaque_without_scopes_is_a_kernel_as_a_whole():
    assert k(NO_SCOPE).rule(RULE) == []


def test_everything_inside_scopes_is_clean():
    assert k(IN_SCOPE).rule(RULE) == []
    assert k(IN_SCOPE, "Orchestration").rule(RULE) == []


def test_incore_functions_are_not_checked():
    assert k(NO_SCOPE, "InCore").rule(RULE) == []


SCALAR_CAST = """
import pldsl as pl


@pl.program
class P:
    @pl.function(type=pl.FunctionType.Orchestration)
    def main(
        self, lens: pl.Tensor[[4], pl.INT32], x: pl.Tensor[[64, 64], pl.FP32],
        out: pl.Out[pl.Tensor[[64, 64], pl.FP32]],
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        n = pl.cast(pl.tensor.read(lens, [0]), pl.INDEX)
        with pl.at(level=pl.Level.CORE_GROUP):
            t = pl.slice(x, [64, 64], [0, 0], valid_shape=[n, 64])
            out = pl.assemble(out, pl.exp(t), [0, 0])
        big = pl.cast(x, pl.BF16)  # tensor
        return out
"""


def test_scalar_cast_is_scalar_arithmetic_but_a_tensor_cast_is_not():
    kk = kernel(SCALAR_CAST)
    assert [d.span.line for d in kk.rule(RULE)] == [kk.line("tensor")]


HOST = """
import pldsl as pl


@pl.program
class P:
    @pl.function(level=pl.Level.HOST, role=pl.Role.Orchestrator)
    def host(
        self, x: pl.Tensor[[64, 64], pl.FP32], out: pl.Out[pl.Tensor[[64, 64], pl.FP32]]
    ) -> pl.Tensor[[64, 64], pl.FP32]:
        y = pl.exp(x)  # exp
        out = pl.assemble(out, y, [0, 0])
        return out
"""


def test_orchestrator_role_functions_are_orchestration_code():
    kk = kernel(HOST)
    [d] = kk.rule(RULE)
    assert d.span.line == kk.line("exp")
    assert "Misplaced tensor op 'pl.exp' in Orchestrator function 'host'" in d.message
    assert kernel(HOST.replace(", role=pl.Role.Orchestrator", "")).rule(RULE) == []
