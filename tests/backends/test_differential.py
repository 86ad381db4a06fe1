"""Differential tests: the C backend against the interpreter on whole programs.

* hypothesis-generated programs: random chains of elementwise / cast / max-min reduction /
  expand / view ops on small shapes (bit-exact), and chains ending in one bounded op (matmul,
  matmul_acc, row_sum, col_sum) compared within twice the contract bound of that op;
* every example kernel in kernels/examples/ (its `build()` and `make_inputs()`);
* Qwen3 ``qwen3_decode_all`` on the tiny config at batch 1 and 17.

Many random kernels share one generated program, so one compile serves a whole batch.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pldsl.kernels.qwen3.program import DECODE_PARAM_NAMES

import pldsl as pl
from pldsl import interpreter
from pldsl.backends import c
from pldsl.differential import compare, is_exact
from pldsl.execution import numerics

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOAT_DT = ("FP32", "BF16", "FP16")
CAST_DT = ("FP32", "BF16", "FP16", "INT32", "INT8")
MODES = ("round", "rint", "floor", "ceil", "trunc", "odd")

# ============================================================================ random programs


@dataclass
class Value:
    name: str
    shape: str  # "MN" | "M1" | "1N"
    dtype: str


@dataclass
class KernelSpec:
    name: str
    source: str
    M: int
    N: int
    K: int
    x_dt: str
    y_dt: str
    seed: int
    bounded: str | None  # None, or the bounded op of the last step
    inputs_of_bounded: tuple[str, ...] = ()


def _shape_text(v: Value, M: int, N: int) -> str:
    return {"MN": f"[{M}, {N}]", "M1": f"[{M}, 1]", "1N": f"[1, {N}]"}[v.shape]


@st.composite
def kernel_spec(draw, name: str, bounded: bool) -> KernelSpec:
    M = draw(st.integers(1, 9))
    N = draw(st.integers(1, 40))
    K = draw(st.integers(1, 17))
    x_dt = draw(st.sampled_from(FLOAT_DT + ("INT32",)))
    y_dt = draw(st.sampled_from(FLOAT_DT if x_dt in FLOAT_DT else ("INT32",)))
    pool = [Value("x", "MN", x_dt), Value("y", "MN", y_dt)]
    lines = []
    n_steps = draw(st.integers(1, 6))
    for i in range(n_steps):
        t = f"t{i}"
        kind = draw(st.sampled_from(
            ["binary", "binary", "scalar", "unary", "cast", "reduce", "expand", "slice", "fillpad",
             "reshape"]))  # fmt: skip
        mn = [v for v in pool if v.shape == "MN"]
        a = draw(st.sampled_from(mn))
        if kind == "binary":
            op = draw(st.sampled_from(["add", "sub", "mul", "div", "maximum", "minimum"]))
            partners = [v for v in pool if (v.dtype in FLOAT_DT) == (a.dtype in FLOAT_DT)]
            b = draw(st.sampled_from(partners))  # [M, N], or [M, 1] / [1, N]: broadcast
            if op == "div" and b.dtype not in FLOAT_DT:
                op = "add"
            lines.append(f"{t} = pl.{op}({a.name}, {b.name})")
            dt = a.dtype if a.dtype == b.dtype else numerics.promote(a.dtype, b.dtype)
            pool.append(Value(t, "MN", dt))
        elif kind == "scalar":
            op = draw(st.sampled_from(["add", "sub", "mul", "div", "maximum", "minimum"]))
            lit = draw(
                st.sampled_from(
                    ["0.5", "-1.25", "3", "1e-3"] if a.dtype in FLOAT_DT else ["3", "-2"]
                )
            )
            if op == "div" and a.dtype not in FLOAT_DT:
                op = "mul"
            lines.append(f"{t} = pl.{op}({a.name}, {lit})")
            dt = a.dtype if ("." not in lit and "e" not in lit) or a.dtype == "FP32" else "FP32"
            pool.append(Value(t, "MN", dt))
        elif kind == "unary":
            if a.dtype in FLOAT_DT:
                op = draw(
                    st.sampled_from(["exp", "sqrt", "rsqrt", "recip", "log", "neg", "abs", "relu"])
                )
            else:
                op = draw(st.sampled_from(["neg", "abs", "relu"]))
            lines.append(f"{t} = pl.{op}({a.name})")
            pool.append(Value(t, "MN", a.dtype))
        elif kind == "cast":
            dst = draw(st.sampled_from(CAST_DT))
            mode = draw(st.sampled_from(MODES))
            lines.append(f'{t} = pl.cast({a.name}, pl.{dst}, mode="{mode}")')
            pool.append(Value(t, "MN", dst))
        elif kind == "reduce":
            op = draw(st.sampled_from(["row_max", "row_min", "col_max", "col_min"]))
            lines.append(f"{t} = pl.{op}({a.name})")
            pool.append(Value(t, "M1" if op.startswith("row") else "1N", a.dtype))
        elif kind == "expand":
            vs = [
                v
                for v in pool
                if v.shape in ("M1", "1N") and (v.dtype in FLOAT_DT) == (a.dtype in FLOAT_DT)
            ]
            if not vs:
                continue
            v = draw(st.sampled_from(vs))
            op = draw(st.sampled_from(["add", "sub", "mul", "div"]))
            if op == "div" and v.dtype not in FLOAT_DT:
                op = "sub"
            axis = "row" if v.shape == "M1" else "col"
            lines.append(f"{t} = pl.{axis}_expand_{op}({a.name}, {v.name})")
            dt = a.dtype if a.dtype == v.dtype else numerics.promote(a.dtype, v.dtype)
            pool.append(Value(t, "MN", dt))
        elif kind == "slice":
            pad = draw(
                st.sampled_from(["", ", pad_value=pl.PadValue.min", ", pad_value=pl.PadValue.zero"])
            )
            lines.append(f"{t} = pl.slice({a.name}, [{M}, {N}], [0, 0], valid_shape=[vr, vc]{pad})")
            pool.append(Value(t, "MN", a.dtype))
        elif kind == "fillpad":
            pad = draw(st.sampled_from(["zero", "min", "max"]))
            lines.append(f"{t} = pl.fillpad({a.name}, pad_value=pl.PadValue.{pad})")
            pool.append(Value(t, "MN", a.dtype))
        elif kind == "reshape":
            lines.append(f"{t}r = pl.reshape(pl.fillpad({a.name}), [1, {M * N}])")
            lines.append(f"{t} = pl.reshape(pl.mul({t}r, 2), [{M}, {N}])")
            pool.append(Value(t, "MN", a.dtype))
    inputs: tuple[str, ...] = ()
    bop = None
    if bounded:
        floats = [v for v in pool if v.shape == "MN" and v.dtype in ("FP32", "BF16")]
        if not floats:
            lines.append("tf = pl.cast(x, pl.FP32)")
            floats = [Value("tf", "MN", "FP32")]
        a = draw(st.sampled_from(floats))
        bop = draw(st.sampled_from(["matmul", "matmul_bf16", "matmul_acc", "row_sum", "col_sum"]))
        if bop == "matmul":
            lines.append(f"fa = pl.cast({a.name}, pl.FP32)")
            lines.append("res = pl.matmul(fa, w, out_dtype=pl.FP32)")
            inputs = ("fa", "w")
        elif bop == "matmul_bf16":
            lines.append(f"fa = pl.cast({a.name}, pl.BF16)")
            lines.append("res = pl.matmul(fa, w)")
            inputs = ("fa", "w")
        elif bop == "matmul_acc":
            lines.append(f"fa = pl.cast({a.name}, pl.BF16)")
            lines.append(f"acc = pl.full([{M}, {K}], pl.FP32, 0.5)")
            lines.append("res = pl.matmul_acc(acc, fa, w)")
            inputs = ("fa", "w")
        else:
            lines.append(f"fa = pl.fillpad(pl.cast({a.name}, pl.FP32))")
            lines.append(f"res = pl.{bop}(fa)")
            inputs = ("fa",)
        ret = "fa, res"
    else:
        outs = [v.name for v in pool[2:]][-3:] or ["x"]
        ret = ", ".join(outs)
    body = "\n        ".join(lines or ["t0 = pl.add(x, x)"])
    if not lines:
        ret = "t0"
    src = (
        "    @pl.function(type=pl.FunctionType.Opaque)\n"
        f"    def {name}(self, x: pl.Tensor[[{M}, {N}], pl.{x_dt}], y: pl.Tensor[[{M}, {N}], pl.{y_dt}], "
        f"w: pl.Tensor[[{N}, {K}], pl.BF16], vr: pl.Scalar[pl.INDEX], vc: pl.Scalar[pl.INDEX]):\n"
        f"        {body}\n"
        f"        return {ret}\n"
    )
    seed = draw(st.integers(0, 2**31 - 1))
    return KernelSpec(
        name, src, M, N, K, x_dt, y_dt, seed, "matmul" if bop and "matmul" in bop else bop, inputs
    )


def _inputs(spec: KernelSpec):
    rng = np.random.default_rng(spec.seed)

    def mk(shape, dt, scale=2.0):
        if dt in FLOAT_DT:
            x = (rng.standard_normal(shape) * scale).astype(np.float32)
            flat = x.reshape(-1)
            k = rng.integers(0, 3)
            for _j in range(k):
                flat[rng.integers(0, flat.size)] = [np.nan, np.inf, -0.0, 1e-40, 2.5][
                    rng.integers(0, 5)
                ]
            return x if dt == "FP32" else numerics.cast(x, dt, "rint")
        return rng.integers(-50, 50, size=shape).astype(np.int32)

    x = mk((spec.M, spec.N), spec.x_dt)
    y = mk((spec.M, spec.N), spec.y_dt)
    w = numerics.cast(rng.standard_normal((spec.N, spec.K)).astype(np.float32), "BF16", "rint")
    vr = int(rng.integers(0, spec.M + 1))
    vc = int(rng.integers(0, spec.N + 1))
    return [x, y, w, vr, vc]


def _program_of(specs: list[KernelSpec]) -> pl.Program:
    src = "import pldsl as pl\n\n\n@pl.program\nclass Random:\n" + "\n".join(
        s.source for s in specs
    )
    (prog,) = pl.capture_source(src, "<random>")
    return prog


def _bounds(prog, spec: KernelSpec, args) -> dict:
    """2x the contract bound of the final bounded op, from the interpreter's inputs to it."""
    fa, _ = interpreter.run(
        prog, spec.name, *[a.copy() if isinstance(a, np.ndarray) else a for a in args]
    )
    w = args[2]
    if spec.bounded == "matmul":
        src = spec.source
        if "pl.matmul_acc(" in src:
            acc = np.full((spec.M, spec.K), 0.5, np.float32)
            b = numerics.matmul_error_bound(fa, w, "FP32", acc=acc)
        elif "out_dtype=pl.FP32" in src:
            b = numerics.matmul_error_bound(fa, w, "FP32")
        else:
            b = numerics.matmul_error_bound(fa, w, "BF16")
    else:
        axis = 1 if spec.bounded == "row_sum" else 0
        b = numerics.reduce_error_bound("sum", fa, axis, "FP32")
    return {"return[1]": 2 * b}


def _check_batch(specs: list[KernelSpec]) -> None:
    prog = _program_of(specs)
    compiled = c.compile(prog)
    for spec in specs:
        args = _inputs(spec)
        if spec.bounded:
            bounds = _bounds(prog, spec, args)
            report = compare(prog, spec.name, args, compiled=compiled, exact=False, bounds=bounds)
        else:
            assert is_exact(prog, spec.name)
            report = compare(prog, spec.name, args, compiled=compiled)
        if not report.ok:
            raise AssertionError(f"{report}\n\nkernel:\n{spec.source}\nargs: {args}")


def _batch(bounded: bool, size: int):
    return st.tuples(*[kernel_spec(f"k{i}", bounded) for i in range(size)]).map(list)


FAST = settings(max_examples=3, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
MORE = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


@FAST
@given(_batch(False, 12))
def test_random_exact_programs(specs):
    _check_batch(specs)


@FAST
@given(_batch(True, 8))
def test_random_bounded_programs(specs):
    _check_batch(specs)


@pytest.mark.slow
@MORE
@given(_batch(False, 12))
def test_random_exact_programs_more(specs):
    _check_batch(specs)


@pytest.mark.slow
@MORE
@given(_batch(True, 8))
def test_random_bounded_programs_more(specs):
    _check_batch(specs)


# ============================================================================ examples


def _example_modules():
    import pldsl.kernels.examples as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    out = []
    for name in sorted(names):
        mod = importlib.import_module(f"pldsl.kernels.examples.{name}")
        if hasattr(mod, "build") and hasattr(mod, "make_inputs"):
            out.append(name)
    return out


EXAMPLES = _example_modules()


@pytest.mark.skipif(not EXAMPLES, reason="kernels/examples/ is empty")
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_kernel(name):
    mod = importlib.import_module(f"pldsl.kernels.examples.{name}")
    prog = mod.build()
    (fn,) = [f for f in prog.function_list if not f.is_host_stub][:1]
    sig = inspect.signature(mod.make_inputs)
    compiled = c.compile(prog)
    for rows in (1, 77):
        kw = {"seed": rows}
        for key in ("rows", "m"):
            if key in sig.parameters:
                kw[key] = rows
        inputs = mod.make_inputs(**kw)
        args = [inputs.get(p.name) for p in fn.params]
        report = compare(prog, fn.name, args, compiled=compiled, ulps=8)
        report.check()
        if name in ("elementwise_add", "softmax", "rope", "layer_norm", "rms_norm"):
            assert report.bit_exact, str(report)


# ============================================================================ Qwen3


def _qwen3_case(batch: int, seed: int = 0):
    from pldsl.kernels.qwen3.config import preset
    from pldsl.kernels.qwen3.program import build_program, decode_args
    from pldsl.kernels.qwen3.weights import KVLayout, PageAllocator, random_weights

    block, max_blocks = 16, 4
    cfg = preset("tiny")
    weights = random_weights(cfg, seed=1234, max_seq=max_blocks * block)
    num_pages = 64  # fixed, so every batch size shares one program (and one compile)
    prog = build_program(cfg, max_seq=max_blocks * block, block_size=block, num_pages=num_pages,
                         max_blocks_per_seq=max_blocks, padded_vocab=cfg.padded_vocab(64))  # fmt: skip
    rng = np.random.default_rng(seed)
    layout = KVLayout(num_pages=num_pages, block_size=block)
    alloc = PageAllocator(layout, batch, max_blocks)
    lens = np.array([17, 33, 1, 48, 16, 32, 2, 47] + list(rng.integers(1, 49, size=max(0, batch - 8))),
                    dtype=np.int32)[:batch]  # fmt: skip
    for b, n in enumerate(lens):
        alloc.reserve(b, int(n))
    slots = alloc.slot_mapping(range(batch), [int(n) - 1 for n in lens])
    shape = layout.cache_shape(cfg)
    kc = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
    vc = rng.standard_normal(shape, dtype=np.float32).astype(BF16)
    hidden = weights.embed(rng.integers(0, cfg.vocab_size, size=batch))
    H, PV = cfg.hidden_size, weights.padded_vocab
    outs = [
        np.zeros((batch, H), BF16),
        np.zeros((batch, H), BF16),
        np.zeros((batch, PV), np.float32),
    ]
    args = decode_args(weights, hidden, lens, alloc.block_table.copy(), slots, kc, vc, *outs)
    return prog, args, cfg


_QWEN = {}


@pytest.mark.parametrize("batch", [1, 17])
def test_qwen3_decode_tiny(batch):
    prog, args, cfg = _qwen3_case(batch)
    key = pl.print_ir(prog)
    if key not in _QWEN:
        _QWEN[key] = c.compile(prog)
    compiled = _QWEN[key]
    interp_args, c_args = _copy_args_twice(args)
    want = interpreter.run(prog, "qwen3_decode_all", *interp_args)
    got = compiled.run("qwen3_decode_all", *c_args)
    # The two sides agree bit for bit up to FP32 summation order inside matmuls and row sums
    # (the contract's bound; the interpreter's matmul order is the BLAS library's, which depends
    # on the CPU). A different order may flip a BF16 rounding by one unit, and a flipped hidden
    # value moves every later value a little: BF16 results within 2 BF16 units of the tensor's
    # largest magnitude on at most 5% of elements, the KV cache rows likewise, logits within 5e-3
    # of max|logit| (the demo's tolerance against the golden). A real lowering bug (wrong index,
    # op or rounding mode) moves far more than that.
    for name, w, g in zip(("out", "rms_normed"), want[:2], got[:2]):
        _assert_bf16_close(name, w, g, ulps=2, fraction=0.05)
    for name in ("k_cache", "v_cache"):  # written rows; the rest is untouched input
        i = DECODE_PARAM_NAMES.index(name)
        _assert_bf16_close(name, interp_args[i], c_args[i], ulps=2, fraction=0.05)
    logits_want, logits_got = np.asarray(want[2]), np.asarray(got[2])
    scale = float(np.max(np.abs(logits_want)))
    assert np.max(np.abs(logits_got - logits_want)) <= 5e-3 * scale


def _copy_args_twice(args):
    copy = lambda a: a.copy() if isinstance(a, np.ndarray) else a  # noqa: E731
    return [copy(a) for a in args], [copy(a) for a in args]


def _assert_bf16_close(name, want, got, *, ulps, fraction):
    w = np.asarray(want).astype(np.float32)
    g = np.asarray(got).astype(np.float32)
    # Units of BF16 precision at the tensor's largest magnitude (2^-7 relative): a flip carried
    # through a residual sum can land on a value near zero, so per-element ulps would not do.
    unit = 2.0**-7 * float(np.max(np.abs(w)))
    far = np.abs(g - w) > ulps * unit
    assert not far.any(), f"{name}: {int(far.sum())} elements beyond {ulps} BF16 units of max|ref|"
    differ = float(np.mean(g != w))
    assert differ <= fraction, f"{name}: {differ:.2%} of elements differ"
