"""The example kernels (kernels/examples): capture, static checks, IR text round trip, and the
interpreter against independent NumPy goldens, with tail tiles and in strict mode.

Tolerances are derived from the interpreter's numerics contract (docs/numerics.md): FP32
vector ops round once each (u = 2**-24), float sums and matmuls are bounded by
gamma_n * sum|terms| for any order, and a BF16 result adds one rounding (2**-8 relative).
Shapes are small so the whole file runs in a few seconds.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from pldsl.kernels.bf16 import round_bf16_f32
from pldsl.kernels.examples import EXAMPLES, _harness

import pldsl as pl

ROOT = Path(__file__).resolve().parents[2]
U = 2.0**-24  # FP32 unit roundoff

# name -> (entry function, small build kwargs with a tile that does not divide the tail rows)
SMALL = {
    "elementwise_add": ("elementwise_add", {"cols": 64, "row_tile": 16, "col_tile": 32}),
    "matmul": ("matmul", {"k": 48, "n": 32, "m_tile": 16, "n_tile": 16}),
    "gemm": ("gemm", {"k": 64, "n": 32, "m_tile": 16, "n_tile": 16, "k_tile": 16}),
    "gemm_bf16": ("gemm_bf16", {"k": 64, "n": 32, "m_tile": 16, "n_tile": 16, "k_tile": 16}),
    "rms_norm": ("rms_norm", {"hidden": 128, "row_tile": 16, "hidden_chunk": 32}),
    "layer_norm": ("layer_norm", {"hidden": 64, "row_tile": 16}),
    "softmax": ("softmax", {"cols": 64, "row_tile": 16}),
    "rope": ("rope", {"head_dim": 32, "row_tile": 16}),
}
NAMES = list(SMALL)
assert tuple(NAMES) == EXAMPLES
# 37 = 2 full 16-row tiles + a 5-row tail; 32 = exact multiple; 5 = a single partial tile.
ROW_COUNTS = [37, 32, 5]


def _module(name: str):
    return importlib.import_module(f"pldsl.kernels.examples.{name}")


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def _f64(x) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


# ------------------------------------------------------------------ per-kernel comparison


def _assert_matches(name: str, actual, expected, inputs: dict, kw: dict) -> None:
    """Compare a kernel result with its golden under the kernel's justified tolerance."""
    a, e = _f64(actual), _f64(expected)
    assert a.shape == e.shape
    assert np.all(np.isfinite(a)), f"{name}: non-finite output"
    if name == "elementwise_add":
        # One FP32 add of FP32 operands, correctly rounded: |err| <= u * |x + a| exactly.
        np.testing.assert_allclose(a, e, rtol=U * (1 + 1e-9), atol=0)
    elif name in ("matmul", "gemm"):
        # Any-order FP32 accumulation: |err| <= gamma_n * (|A| @ |B|), n = K contraction
        # terms plus one extra add per matmul_acc block (K / k_tile of them).
        k = kw["k"]
        n = k + (k // kw["k_tile"] if name == "gemm" else 0)
        bound = _gamma(n) * (np.abs(_f64(inputs["a"])) @ np.abs(_f64(inputs["b"])))
        assert np.all(np.abs(a - e) <= bound), f"{name}: beyond gamma_{n} * |A|@|B|"
    elif name == "gemm_bf16":
        # C = round_away(s) with s the FP32 accumulation, |s - exact| <= g := gamma_n*|A|@|B|.
        # Rounding is monotone, so C lies between round_away(exact -+ g): at most one BF16
        # step (2**-8 relative to the rounded magnitude) away from the golden, and exactly
        # equal unless the exact sum sits within g of a rounding boundary.
        k = kw["k"]
        n = k + k // kw["k_tile"]
        g = _gamma(n) * (np.abs(_f64(inputs["a"])) @ np.abs(_f64(inputs["b"])))
        step = np.maximum(np.abs(a), np.abs(e)) * 2.0**-7
        assert np.all(np.abs(a - e) <= np.maximum(step, 0) + g), "gemm_bf16: > 1 BF16 step"
        exact = np.mean(a == e)
        assert exact >= 0.99, f"gemm_bf16: only {exact:.2%} bit-equal to the golden"
    elif name == "rms_norm":
        # x*x, a sum of `hidden` terms (gamma_hidden * sum x^2), exact *1/hidden (power of
        # two), +eps, sqrt and 1/x (rsqrt), *inv, *gamma: relative error of the result
        # <= gamma_hidden/2 + 6u (the sum's error is halved by the square root). No
        # cancellation, so this is a pure relative bound.
        rel = _gamma(kw["hidden"]) / 2 + 6 * U
        np.testing.assert_allclose(a, e, rtol=rel, atol=1e-30)
    elif name == "layer_norm":
        # The mean (sum of hidden terms) and the centring cancel, so the error is absolute
        # in units of the row scale: |err| <= (gamma_hidden + 8u) * (max|x - mean| / std)
        # * |gamma| + u * |beta| per element, plus the variance's relative error.
        x = _f64(inputs["x"])
        hidden = kw["hidden"]
        mean = x.mean(axis=1, keepdims=True)
        std = np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + 1e-5)
        scale = (np.abs(x).max(axis=1, keepdims=True) + np.abs(mean)) / std
        g = 3 * (_gamma(hidden) + 8 * U)
        bound = g * scale * np.abs(_f64(inputs["gamma"])) + 2 * U * np.abs(e) + 1e-12
        assert np.all(np.abs(a - e) <= bound), "layer_norm: beyond the FP32 error bound"
    elif name == "softmax":
        # x - max is exact-ish (u|x|), exp correctly rounded (relative u), exp(u|x|) drift,
        # a positive sum over cols (gamma_cols), one division: relative error of each
        # probability <= gamma_cols + 4u + 2u*max|x - max| (no cancellation anywhere).
        x = _f64(inputs["x"])
        spread = (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True)).max()
        rel = _gamma(kw["cols"]) + 4 * U + 2 * U * spread
        np.testing.assert_allclose(a, e, rtol=rel, atol=1e-38)
    elif name == "rope":
        # Two FP32 products and one add/sub per element: |err| <= 3u (|x_i c| + |x_j s|).
        x = _f64(inputs["x"])
        half = x.shape[1] // 2
        rot = np.concatenate([x[:, half:], x[:, :half]], axis=1)
        mag = np.abs(x * _f64(inputs["cos"])) + np.abs(rot * _f64(inputs["sin"]))
        assert np.all(np.abs(a - e) <= 3 * U * mag + 1e-38), "rope: beyond 3u bound"
    else:  # pragma: no cover
        raise AssertionError(name)


def _inputs(name: str, rows: int, kw: dict, seed: int = 0) -> dict:
    mod = _module(name)
    if name in ("matmul", "gemm", "gemm_bf16"):
        return mod.make_inputs(rows, kw["k"], kw["n"], seed)
    if name in ("rms_norm", "layer_norm"):
        return mod.make_inputs(rows, kw["hidden"], seed)
    if name == "rope":
        return mod.make_inputs(rows, kw["head_dim"], seed)
    return mod.make_inputs(rows, kw["cols"], seed)


def _out_shape(name: str, rows: int, kw: dict) -> tuple[int, int]:
    cols = kw.get("cols") or kw.get("n") or kw.get("hidden") or kw.get("head_dim")
    return rows, cols


def _golden(name: str, inputs: dict) -> np.ndarray:
    return _module(name).golden(*inputs.values())


def _run(name: str, rows: int, *, strict: bool = False, static_rows: bool = False, seed=0):
    entry, kw = SMALL[name]
    mod = _module(name)
    build_kw = dict(kw)
    if static_rows:
        build_kw["m" if name in ("matmul", "gemm", "gemm_bf16") else "rows"] = rows
    program = mod.build(**build_kw)
    inputs = _inputs(name, rows, kw, seed)
    out = _harness.new_output(_out_shape(name, rows, kw), "BF16" if name == "gemm_bf16" else "FP32")
    result = _harness.interpret(program, entry, list(inputs.values()), out, strict=strict)
    return result, out, inputs


# ------------------------------------------------------------------------------ structure


@pytest.mark.parametrize("name", NAMES)
def test_module_shape(name):
    """Each example module has a docstring, build, golden, make_inputs, run and
    pldsl_programs."""
    mod = _module(name)
    assert mod.__doc__ and len(mod.__doc__) > 80
    for attr in ("build", "golden", "make_inputs", "run", "pldsl_programs"):
        assert callable(getattr(mod, attr)), attr
    assert isinstance(mod.build(), pl.Program)
    # make_inputs gives the entry's inputs keyed and ordered like its parameters (Out last)
    entry, kw = SMALL[name]
    params = [p.name for p in getattr(mod.build(**kw), entry).params]
    assert list(_inputs(name, 5, kw)) == params[:-1]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", ["default", "small"])
def test_capture_and_check(name, size):
    """Captures (default upstream shapes and the small test shapes); pl.check reports no
    error and no warning."""
    kw = {} if size == "default" else SMALL[name][1]
    program = _module(name).build(**kw)
    diags = pl.check(program)
    errors = [d for d in diags if d.severity == "error"]
    assert not errors, "\n".join(d.render() for d in errors)
    others = [d for d in diags if d.severity != "note"]
    assert not others, "\n".join(d.render() for d in others)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("static_rows", [False, True])
def test_ir_round_trip(name, static_rows):
    """parse_ir(print_ir(p)) is structurally p and prints identically."""
    kw = dict(SMALL[name][1])
    if static_rows:
        kw["m" if name in ("matmul", "gemm", "gemm_bf16") else "rows"] = 37
    program = _module(name).build(**kw)
    text = pl.print_ir(program)
    again = pl.parse_ir(text)
    assert pl.structural_equal(program, again)
    assert pl.print_ir(again) == text


def test_dynamic_rows_in_signature():
    """The default build has a dynamic row dim; a static build puts the int in the type."""
    text = pl.print_ir(_module("softmax").build())
    assert 'pl.dynamic("ROWS")' in text
    text = pl.print_ir(_module("softmax").build(rows=37))
    assert "pl.Tensor[[37, 256], pl.FP32]" in text and "pl.dynamic" not in text


def test_build_rejects_bad_tiling():
    with pytest.raises(ValueError):
        _module("elementwise_add").build(cols=100, col_tile=64)
    with pytest.raises(ValueError):
        _module("gemm").build(k=100, k_tile=64)
    with pytest.raises(ValueError):
        _module("rope").build(head_dim=31)


# ---------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("rows", ROW_COUNTS)
@pytest.mark.parametrize("name", NAMES)
def test_against_golden(name, rows):
    """Interpreter output vs the NumPy golden, with tail tiles (rows % tile != 0)."""
    result, out, inputs = _run(name, rows)
    _assert_matches(name, result, _golden(name, inputs), inputs, SMALL[name][1])
    # The Out buffer the caller passed is the one written in place.
    np.testing.assert_array_equal(_f64(out), _f64(result))


@pytest.mark.parametrize("name", NAMES)
def test_static_rows_with_tail(name):
    """A static (non-dynamic) row count that is not a multiple of the tile."""
    result, _, inputs = _run(name, 37, static_rows=True)
    _assert_matches(name, result, _golden(name, inputs), inputs, SMALL[name][1])


@pytest.mark.parametrize("name", NAMES)
def test_strict_mode_is_silent(name, capsys):
    """strict=True (undefined memory poisoned) raises nothing, warns nothing, prints
    nothing, and gives bit-identical results: no undefined element reaches an output."""
    loose, _, _ = _run(name, 37)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strict, _, _ = _run(name, 37, strict=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    np.testing.assert_array_equal(_f64(strict), _f64(loose))


def _rms_norm_without_fillpad(hidden: int = 64, row_tile: int = 16) -> pl.Program:
    """rms_norm's pass 1 *without* the fillpad: the tail tile's undefined rows reach the
    [1, row_tile] accumulator (a negative control for the strict-mode test)."""
    R = pl.dynamic("ROWS")

    @pl.program
    class RMSNormNoFillpad:
        @pl.function(type=pl.FunctionType.Opaque)
        def rms_norm(
            self,
            x: pl.Tensor[[R, hidden], pl.FP32],
            y: pl.Out[pl.Tensor[[R, hidden], pl.FP32]],
        ) -> pl.Tensor[[R, hidden], pl.FP32]:
            n = pl.tensor.dim(x, 0)
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for r in pl.parallel(0, n, row_tile, chunk=1):
                    valid = pl.min(row_tile, n - r)
                    x_part = pl.slice(x, [row_tile, hidden], [r, 0], valid_shape=[valid, hidden])
                    sq_sum = pl.full([1, row_tile], dtype=pl.FP32, value=0.0)
                    rs = pl.row_sum(pl.mul(x_part, x_part))
                    sq_sum = pl.add(sq_sum, pl.reshape(rs, [1, row_tile]))
                    inv = pl.reshape(
                        pl.rsqrt(pl.add(pl.mul(sq_sum, 1.0 / hidden), 1e-6)), [row_tile, 1]
                    )
                    y = pl.assemble(y, pl.row_expand_mul(x_part, inv), [r, 0])
            return y

    return RMSNormNoFillpad


def test_strict_mode_catches_a_missing_fillpad():
    """Negative control: without rms_norm's fillpad the default mode still matches (the
    undefined rows read as zero) but strict mode faults with UndefinedRead."""
    prog = _rms_norm_without_fillpad()
    x = np.random.default_rng(0).standard_normal((37, 64), dtype=np.float32)
    y = _harness.interpret(prog, "rms_norm", [x], np.zeros_like(x))
    np.testing.assert_allclose(y, _module("rms_norm").golden(x, np.ones((1, 64))), rtol=1e-5)
    with pytest.raises(pl.RuntimeFault) as info:
        _harness.interpret(prog, "rms_norm", [x], np.zeros_like(x), strict=True)
    assert info.value.diagnostic.rule == "UndefinedRead"


@pytest.mark.parametrize("name", NAMES)
def test_cli_run_default_shapes(name):
    """Each module's run() at its upstream default shapes passes its CLI tolerance."""
    mod = _module(name)
    rows = {"elementwise_add": 1029, "matmul": 200, "gemm": 200, "gemm_bf16": 130}.get(name, 300)
    actual, expected = mod.run(rows=rows, seed=1)
    assert np.allclose(_f64(actual), expected, rtol=mod.RTOL, atol=mod.ATOL)


# ------------------------------------------------------------------ BF16 rounding points


def _gemm_bf16_inputs(rows=37, seed=0):
    _, kw = SMALL["gemm_bf16"]
    return kw, _inputs("gemm_bf16", rows, kw, seed)


def test_gemm_bf16_cast_point_matters():
    """The kernel rounds to BF16 once, after the whole K reduction: a golden that rounds the
    accumulator after every K block disagrees on many more elements."""
    kw, inputs = _gemm_bf16_inputs()
    result, _, _ = _run("gemm_bf16", 37)
    a, b = _f64(inputs["a"]), _f64(inputs["b"])
    acc = np.zeros((a.shape[0], b.shape[1]))
    for k0 in range(0, kw["k"], kw["k_tile"]):
        acc = round_bf16_f32(acc + a[:, k0 : k0 + kw["k_tile"]] @ b[k0 : k0 + kw["k_tile"]])
    single = _golden("gemm_bf16", inputs)
    match_single = np.mean(_f64(result) == single)
    match_blockwise = np.mean(_f64(result) == acc)
    assert match_single >= 0.99
    assert match_blockwise < 0.9, match_blockwise


def test_gemm_bf16_cast_rounds_ties_away():
    """pl.cast's default mode is ties-away-from-zero (PyPTO), not torch's RNE: sums that sit
    exactly halfway between two BF16 values round away from zero."""
    import ml_dtypes

    _, kw = SMALL["gemm_bf16"]
    rows, k, n = 21, kw["k"], kw["n"]
    a = np.zeros((rows, k), np.float32)
    b = np.zeros((k, n), np.float32)
    # Every row sums to +-(1 + 2**-8), halfway between 1 and 1 + 2**-7 (RNE picks 1, the
    # even one); odd columns add 2**-10 so they are not ties and both modes agree there.
    sign = np.where(np.arange(rows) % 2 == 0, 1.0, -1.0).astype(np.float32)
    a[:, 0] = sign
    a[:, 1] = sign * 2.0**-8
    b[0, :] = 1.0
    b[1, :] = 1.0
    b[2, 1::2] = 2.0**-10
    a[:, 2] = 1.0
    a_bf, b_bf = a.astype(ml_dtypes.bfloat16), b.astype(ml_dtypes.bfloat16)
    c = _harness.new_output((rows, n), "BF16")
    result = _f64(
        _harness.interpret(_module("gemm_bf16").build(**kw), "gemm_bf16", [a_bf, b_bf], c)
    )
    golden = _golden("gemm_bf16", {"a": a_bf, "b": b_bf})
    np.testing.assert_array_equal(result, golden)
    # Even columns are exact ties: ties-away gives +-(1 + 2**-7), RNE would give +-1.
    np.testing.assert_array_equal(result[:, 0], sign * (1 + 2.0**-7))
    rne = np.asarray((_f64(a_bf) @ _f64(b_bf)).astype(np.float32).astype(ml_dtypes.bfloat16))
    assert not np.array_equal(_f64(rne), result)


# ---------------------------------------------------------------------- golden hygiene


def _imports(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    return imported


def test_goldens_do_not_import_pldsl():
    """goldens.py is plain NumPy plus kernels/bf16.py (NumPy only): no pldsl or interpreter
    import, statically and when imported in a fresh interpreter."""
    path = ROOT / "kernels" / "examples" / "goldens.py"
    assert _imports(path) <= {"__future__", "numpy", "bf16"}, _imports(path)  # bf16: `from ..bf16`
    assert _imports(ROOT / "kernels" / "bf16.py") <= {"__future__", "numpy"}
    # Loaded as the plain package `kernels` from the checkout (its imports are relative), so
    # nothing pulls in pldsl unless the golden itself does.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import kernels.examples.goldens; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pldsl', 'interpreter')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT)], check=True, cwd=ROOT)
