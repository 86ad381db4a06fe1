"""pypto-lib's harness calls (`golden.run_jit`, `run`, `TensorSpec`, `ScalarSpec`, `RunConfig`),
executed by pldsl: inputs are built from the specs, the kernel runs on the interpreter (or the
C backend), the file's own golden function computes the expected outputs, and each output is
compared at the file's own tolerances.

Tensors are torch tensors when the spec's dtype is a torch dtype (what pypto-lib files write),
NumPy arrays when it is a NumPy dtype; torch is imported only in the first case. Device
options (`platform=`, `device_id=`, ...) are accepted and ignored. Every run is recorded in
`RESULTS` for the pass/fail table of `pldsl pypto`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pldsl.pypto import compare


@dataclass
class Options:
    """How this process executes kernels (set by `pldsl pypto`)."""

    backend: str = "interpreter"
    strict: bool = False
    precision: str = "bf16"
    check: bool = False


OPTIONS = Options()


@dataclass
class Record:
    """One harness call: what ran and how it compared."""

    name: str
    passed: bool
    outputs: list[compare.Outcome] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    compile_only: bool = False


RESULTS: list[Record] = []


# ------------------------------------------------------------------ specs


def _is_torch_dtype(dtype: Any) -> bool:
    return type(dtype).__module__ == "torch" and type(dtype).__name__ == "dtype"


@dataclass
class TensorSpec:
    """A tensor argument: name, shape, dtype (torch or NumPy), how to fill it, output flag."""

    name: str
    shape: list[int]
    dtype: Any
    init_value: Any = None
    is_output: bool = False
    resident: Any = None

    def create_tensor(self) -> Any:
        if _is_torch_dtype(self.dtype):
            return self._create_torch()
        return self._create_numpy()

    def _create_torch(self) -> Any:
        import torch

        init, shape, dtype = self.init_value, list(self.shape), self.dtype
        if init is None:
            return torch.zeros(shape, dtype=dtype)
        if isinstance(init, (bool, int, float)):
            return torch.full(shape, init, dtype=dtype)
        if isinstance(init, torch.Tensor):
            return init.to(dtype=dtype).clone()
        if init in (torch.randn, torch.rand, torch.zeros, torch.ones):
            return init(shape, dtype=dtype)
        if callable(init):
            return torch.as_tensor(init(), dtype=dtype)
        raise TypeError(f"unsupported init_value {type(init).__name__} for tensor {self.name!r}")

    def _create_numpy(self) -> np.ndarray:
        init, shape, dtype = self.init_value, tuple(self.shape), np.dtype(self.dtype)
        if init is None:
            return np.zeros(shape, dtype)
        if isinstance(init, (bool, int, float)):
            return np.full(shape, init, dtype)
        if isinstance(init, np.ndarray):
            return init.astype(dtype)
        if init in (np.random.randn, np.random.rand):
            return init(*shape).astype(dtype)
        if init in (np.zeros, np.ones):
            return init(shape, dtype)
        if callable(init):
            return np.asarray(init(), dtype=dtype)
        raise TypeError(f"unsupported init_value {type(init).__name__} for tensor {self.name!r}")


@dataclass
class ScalarSpec:
    """A scalar argument: name, dtype, value (a number, or a 0-dim tensor)."""

    name: str
    dtype: Any
    value: Any

    def to_python(self) -> Any:
        v = self.value
        return v.item() if hasattr(v, "item") else v


class RunConfig:
    """`RunConfig(...)` of golden (rtol, atol, compile, runtime, compare_fn, compile_only) and
    of pypto.runtime (platform, device_id, ...): every field accepted, device ones ignored."""

    def __init__(self, **fields: Any) -> None:
        self.rtol = fields.pop("rtol", None)
        self.atol = fields.pop("atol", None)
        self.compile_only = fields.pop("compile_only", False)
        self.compare_fn = fields.pop("compare_fn", None) or {}
        self.compile = fields.pop("compile", None) or {}
        self.runtime = fields.pop("runtime", None) or {}
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)


@dataclass
class RunResult:
    passed: bool
    error: str | None = None
    execution_time: float | None = None
    work_dir: Any = None
    bench: Any = None

    def __str__(self) -> str:
        return "PASS" if self.passed else f"FAIL: {self.error}"


# ------------------------------------------------------------------ runs


def run_jit(
    fn: Any, specs: list, golden_fn: Callable | None = None, *args: Any, **kwargs: Any
) -> RunResult:
    """`golden.run_jit(fn=..., specs=..., golden_fn=..., rtol=, atol=, ...)` on pldsl."""
    return _run(fn, specs, golden_fn, args, kwargs)


def run(
    program: Any, specs: list, *args: Any, golden_fn: Callable | None = None, **kwargs: Any
) -> RunResult:
    """`golden.run(program, specs, config=RunConfig(...) | golden_fn=, rtol=, atol=)` on pldsl."""
    if args and isinstance(args[0], RunConfig):
        kwargs.setdefault("config", args[0])
        args = args[1:]
    if args and golden_fn is None and callable(args[0]):
        golden_fn, args = args[0], args[1:]
    return _run(program, specs, golden_fn, (), kwargs)


def _settings(kwargs: dict) -> tuple[float, float, dict, bool]:
    config = kwargs.get("config")
    rtol, atol = kwargs.get("rtol"), kwargs.get("atol")
    compare_fn = kwargs.get("compare_fn") or {}
    compile_only = bool(kwargs.get("compile_only", False))
    if isinstance(config, RunConfig):
        rtol = config.rtol if rtol is None else rtol
        atol = config.atol if atol is None else atol
        compare_fn = compare_fn or config.compare_fn
        compile_only = compile_only or bool(config.compile_only)
    return (
        (1e-5 if rtol is None else rtol),
        (1e-5 if atol is None else atol),
        compare_fn,
        compile_only,
    )


def _run(
    kernel: Any, specs: list, golden_fn: Callable | None, args: tuple, kwargs: dict
) -> RunResult:
    from pldsl.diagnostics import PldslError

    name = getattr(kernel, "__name__", None) or getattr(kernel, "name", "program")
    rtol, atol, compare_fn, compile_only = _settings(kwargs)
    start = time.perf_counter()
    record = Record(name, False, compile_only=compile_only)
    RESULTS.append(record)
    try:
        tensors = {s.name: s.create_tensor() for s in specs if isinstance(s, TensorSpec)}
        program, entry = _program(kernel, specs, tensors)
        if OPTIONS.check:
            _check(program)
        if compile_only:
            record.passed = True
            return RunResult(True, execution_time=time.perf_counter() - start)
        inputs = {
            s.name: _clone(tensors[s.name])
            for s in specs
            if isinstance(s, TensorSpec) and (not s.is_output or s.init_value is not None)
        }
        with _ranks(kwargs):
            _execute(kernel, program, entry, specs, tensors)
        if golden_fn is None:
            record.passed = True
            record.error = "no golden: outputs not compared"
            return RunResult(True, execution_time=time.perf_counter() - start)
        expected = _golden(specs, inputs, golden_fn)
        outputs = {
            s.name: tensors[s.name] for s in specs if isinstance(s, TensorSpec) and s.is_output
        }
        scalars = {s.name: s.to_python() for s in specs if isinstance(s, ScalarSpec)}
        record.outputs = compare.compare_outputs(
            outputs, expected, rtol, atol, compare_fn, {**inputs, **scalars}
        )
        record.passed = all(o.passed for o in record.outputs)
    except PldslError as exc:
        record.error = exc.diagnostic.render()
    except _CheckFailed as exc:
        record.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded like a device error; the file decides
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        record.seconds = time.perf_counter() - start
    failed = [o for o in record.outputs if not o.passed]
    error = record.error if not record.passed else None
    if failed and error is None:
        error = "Output(s) does not match golden: " + ", ".join(o.name for o in failed)
    return RunResult(record.passed, error, record.seconds)


def record_compile(name: str, program: Any, lowered: bool) -> None:
    """A file's `fn.lower(...)` (a compile-only row of the table) or `fn.compile(...)` (a
    row only with --check: the file runs the compiled program itself); with --check the
    program is checked and an error fails the row."""
    if not lowered and not OPTIONS.check:
        return
    record = Record(name, True, compile_only=True)
    RESULTS.append(record)
    if OPTIONS.check:
        try:
            _check(program)
        except _CheckFailed as exc:
            record.passed, record.error = False, str(exc)


def _ranks(kwargs: dict) -> Any:
    """Distributed kernels run on as many simulated ranks as the call's DistributedConfig
    names (compile_cfg=dict(distributed_config=...) or config=RunConfig(...))."""
    from pldsl.distributed.config import world_size_of
    from pldsl.interpreter.ranks import world

    size = world_size_of(kwargs.get("compile_cfg")) or world_size_of(kwargs.get("config"))
    return world(size)


class _CheckFailed(Exception):
    pass


def _check(program: Any) -> None:
    from pldsl.checks import run_checks

    found = run_checks(program)
    for d in found:
        print(d.render())
    errors = [d for d in found if d.is_error]
    if errors:
        raise _CheckFailed(f"static checks: {len(errors)} error(s) (first: {errors[0].rule})")


def _clone(t: Any) -> Any:
    return t.clone() if hasattr(t, "clone") else t.copy()


def _program(kernel: Any, specs: list, tensors: dict) -> tuple[Any, str | None]:
    """The Program a harness call runs, and its entry function's name."""
    from pldsl.ir.nodes import Program
    from pldsl.jit import JITFunction

    if isinstance(kernel, JITFunction):
        return kernel.specialize(*_ordered(specs, tensors)), None
    if isinstance(kernel, Program):
        return kernel, _entry_of(kernel, [s.name for s in specs])
    raise TypeError(f"expected a @pl.jit function or a pl.program, got {type(kernel).__name__}")


def _entry_of(program: Any, names: list[str]) -> str:
    """The function the specs are the parameters of (PyPTO runs the orchestration entry)."""
    from pldsl.ir.nodes import Call
    from pldsl.ir.traversal import iter_expr, iter_stmts, stmt_exprs

    called = {
        e.func
        for f in program.function_list
        for s in iter_stmts(f.body)
        for root in stmt_exprs(s)
        for e in iter_expr(root)
        if isinstance(e, Call)
    }
    roots = [f for f in program.function_list if f.name not in called] or list(
        program.function_list
    )
    for f in roots:
        if [p.name for p in f.params] == names:
            return f.name
    return roots[0].name


def _ordered(specs: list, tensors: dict) -> list:
    return [tensors[s.name] if isinstance(s, TensorSpec) else s.to_python() for s in specs]


def _execute(kernel: Any, program: Any, entry: str | None, specs: list, tensors: dict) -> None:
    args = _ordered(specs, tensors)
    if entry is None:
        kernel(*args, backend=OPTIONS.backend, strict=OPTIONS.strict, precision=OPTIONS.precision)
        return
    from pldsl.jit.arguments import classify

    bound = [classify(a, s.name) for a, s in zip(args, specs)]
    values = [b.array if b.is_tensor else b.scalar for b in bound]
    if OPTIONS.backend == "c":
        from pldsl.backends import c

        c.compile(program, precision=OPTIONS.precision).run(entry, *values)
    else:
        from pldsl import interpreter

        interpreter.run(program, entry, *values, strict=OPTIONS.strict, precision=OPTIONS.precision)
    for b in bound:
        b.finish()


def _golden(specs: list, inputs: dict, golden_fn: Callable) -> dict:
    scratch: dict[str, Any] = {}
    for s in specs:
        if isinstance(s, ScalarSpec):
            scratch[s.name] = s.to_python()
        elif s.is_output and s.init_value is None:
            scratch[s.name] = TensorSpec(s.name, s.shape, s.dtype).create_tensor()
        else:
            scratch[s.name] = _clone(inputs[s.name])
    golden_fn(scratch)
    return {s.name: scratch[s.name] for s in specs if isinstance(s, TensorSpec) and s.is_output}
