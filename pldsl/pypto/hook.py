"""The import hook of one `pldsl pypto` run: `pypto.*` and `golden` resolve to pldsl.

Inside `with pypto_modules():`, `import pypto.language as pl` gives pldsl itself, and
`from golden import run_jit, TensorSpec` gives pldsl's harness (pldsl.pypto.harness). Names
pldsl does not provide fail with an ImportError that says which feature is missing. On exit
every module the hook made is removed again: pldsl never installs a top-level `pypto` or
`golden` package.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator
from typing import Any

ROOTS = ("pypto", "golden")

# Modules PyPTO files import that pldsl does not provide, and the feature each one is.
MISSING: dict[str, str] = {
    "pypto.runtime.DistributedWorker": "distributed (DistributedWorker)",
}


class BackendType(enum.Enum):
    """`pypto.backend.BackendType`: accepted and ignored (no device here)."""

    Ascend910B = "Ascend910B"
    Ascend950 = "Ascend950"
    CPU = "CPU"


def _set_backend_type(*_args: Any, **_kwargs: Any) -> None:
    """`pypto.backend.set_backend_type(...)`: nothing to set."""


def _pto_isa_include_dir() -> str:
    """`pypto.runtime.pto_isa_include_dir()`: where PTO-ISA's headers live, for external C++
    kernels (`pl.jit.extern`) that pldsl never compiles: a placeholder path."""
    return "<pto-isa headers: not used by pldsl>"


def _module(name: str, doc: str, **attrs: Any) -> types.ModuleType:
    m = types.ModuleType(name, doc)
    m.__dict__.update(attrs)
    m.__path__ = []  # a package: submodules resolve through the finder
    return m


def build_modules() -> dict[str, types.ModuleType]:
    """The modules of a run, by name (fresh objects each run)."""
    import pldsl
    import pldsl.distributed
    from pldsl.ir.printer import print_ir
    from pldsl.pypto import compare, harness

    golden_names = {
        "TensorSpec": harness.TensorSpec,
        "ScalarSpec": harness.ScalarSpec,
        "RunConfig": harness.RunConfig,
        "RunResult": harness.RunResult,
        "run": harness.run,
        "run_jit": harness.run_jit,
        "validate_golden": compare.validate_golden,
        "ratio_allclose": compare.ratio_allclose,
        "ratio_reldiff": compare.ratio_reldiff,
        "mapped_pool_ratio_allclose": compare.mapped_pool_ratio_allclose,
        "error_distribution": compare.error_distribution,
        "topk_pair_compare": compare.topk_pair_compare,
        "bf16_allclose_or_ulp": compare.bf16_allclose_or_ulp,
    }
    golden = _module("golden", "pldsl's stand-in for pypto-lib's golden harness", **golden_names)
    runtime = _module(
        "pypto.runtime",
        "pldsl's stand-in for pypto.runtime",
        RunConfig=harness.RunConfig,
        TensorSpec=harness.TensorSpec,
        run=harness.run,
        pto_isa_include_dir=_pto_isa_include_dir,
    )
    backend = _module(
        "pypto.backend",
        "pldsl's stand-in for pypto.backend",
        BackendType=BackendType,
        set_backend_type=_set_backend_type,
    )
    printer = _module("pypto.ir.printer", "", python_print=print_ir)
    from pldsl.distributed.config import DistributedConfig

    dist_program = _module(
        "pypto.ir.distributed_compiled_program",
        "pldsl's stand-in: DistributedConfig's device ids name simulated ranks",
        DistributedConfig=DistributedConfig,
    )
    ir = _module(
        "pypto.ir",
        "pldsl's stand-in for pypto.ir",
        printer=printer,
        distributed_compiled_program=dist_program,
    )
    pypto = _module(
        "pypto",
        "pldsl's stand-in for PyPTO, for one `pldsl pypto` run",
        language=pldsl,
        runtime=runtime,
        backend=backend,
        ir=ir,
    )
    return {
        "pypto": pypto,
        "pypto.language": pldsl,
        "pypto.runtime": runtime,
        "pypto.backend": backend,
        "pypto.ir": ir,
        "pypto.ir.printer": printer,
        "pypto.ir.distributed_compiled_program": dist_program,
        "pypto.language.distributed": pldsl.distributed,
        "golden": golden,
        "golden.spec": _module("golden.spec", "", **golden_names),
        "golden.runner": _module("golden.runner", "", **golden_names),
        "golden.validation": _module("golden.validation", "", **golden_names),
    }


class _Loader(importlib.abc.Loader):
    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class PyptoFinder(importlib.abc.MetaPathFinder):
    """Serves the run's modules; refuses other `pypto.*` / `golden.*` names clearly."""

    def __init__(self, modules: dict[str, types.ModuleType]) -> None:
        self.modules = modules

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] not in ROOTS:
            return None
        module = self.modules.get(fullname)
        if module is not None:
            return importlib.machinery.ModuleSpec(fullname, _Loader(module), is_package=True)
        feature = MISSING.get(fullname, fullname)
        raise ImportError(
            f"{fullname} is not provided by pldsl (feature: {feature}); "
            "pldsl maps pypto.language, pypto.runtime, pypto.backend and golden",
            name=fullname,
        )


@contextlib.contextmanager
def pypto_modules() -> Iterator[dict[str, types.ModuleType]]:
    """Install the hook for the duration of the block, then remove every trace of it."""
    modules = build_modules()
    finder = PyptoFinder(modules)
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ROOTS}
    for k in saved:
        del sys.modules[k]
    sys.meta_path.insert(0, finder)
    try:
        yield modules
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k.split(".")[0] in ROOTS]:
            del sys.modules[k]
        sys.modules.update(saved)
