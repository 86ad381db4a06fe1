"""`@pl.jit` and its flavours: a kernel specialised from the arguments of each call.

    @pl.jit
    def kernel(x: pl.Tensor, y: pl.Out[pl.Tensor]): ...

    kernel(x, y)                      # runs on the interpreter, writes y in place
    kernel(x, y, backend="c")         # the same on the C backend
    program = kernel.specialize(x, y) # the specialised pl.Program (check, print, emit)

One specialisation is cached per signature: the shapes and dtypes of the tensor arguments
(a dynamic dim, from `bind_dynamic` or a `pl.dynamic` annotation, does not count) and the
dtypes of the scalars.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pldsl.ir.nodes import Program
from pldsl.ir.types import ScalarType, TensorType, Type
from pldsl.jit.arguments import Arg, ArgumentTypeError, classify, scalar_dtype
from pldsl.jit.specialize import FLAVOURS, Given, Source, Specializer, load_source


class Specialisation:
    """One cached specialisation: its Program, entry name and (lazily) its C build."""

    def __init__(self, program: Program, entry: str, in_place: bool) -> None:
        self.program, self.entry, self.in_place = program, entry, in_place
        self._compiled: dict[str, Any] = {}

    def compiled(self, precision: str) -> Any:
        if precision not in self._compiled:
            from pldsl.backends import c

            self._compiled[precision] = c.compile(self.program, precision=precision)
        return self._compiled[precision]


class JITFunction:
    """A `@pl.jit` function (or one of its flavours, used as a dependency)."""

    def __init__(self, func: Any, flavour: str = "orchestration") -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown jit flavour {flavour!r}")
        self.func, self.flavour = func, flavour
        self._source: Source | None = None
        self._cache: dict[tuple, Specialisation] = {}
        self._dyn_axes: dict[int, frozenset[int]] = {}
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<pl.jit.{self.flavour} {self.__name__}>"

    def source(self) -> Source:
        """The function's parsed source (read once)."""
        if self._source is None:
            self._source = load_source(self)
        return self._source

    @property
    def cache_size(self) -> int:
        """How many specialisations are cached (one may be reached by two keys)."""
        return len({id(s) for s in self._cache.values()})

    # ------------------------------------------------------------- specialising
    def specialize(self, *args: Any, **kwargs: Any) -> Program:
        """The specialised Program for these arguments (nothing runs)."""
        return self._specialisation(self._bind(args, kwargs))[0].program

    def specialize_types(self, types: list[Type]) -> Program:
        """The specialised Program for parameter types given directly (pldsl check/ir)."""
        return Specializer().program(self, [Given(t) for t in types])

    def _bind(self, args: tuple, kwargs: dict) -> list[Arg]:
        names = [a.arg for a in self.source().fdef.args.args if a.arg != "self"]
        if len(args) > len(names):
            raise ArgumentTypeError(
                f"{self.__name__}() takes {len(names)} arguments, got {len(args)}"
            )
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names or k in values:
                raise ArgumentTypeError(
                    f"{self.__name__}() got an unexpected or repeated argument '{k}'"
                )
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise ArgumentTypeError(f"{self.__name__}() is missing argument '{missing[0]}'")
        return [classify(values[n], n) for n in names]

    def _key(self, args: list[Arg]) -> tuple:
        key = []
        for i, a in enumerate(args):
            if a.is_tensor:
                dyn = self._dyn_axes.get(i, frozenset())
                shape = tuple(None if ax in dyn else d for ax, d in enumerate(a.shape))
                key.append(("T", shape, a.dtype.name))
            else:
                key.append(("S", type(a.scalar).__name__))
        return tuple(key)

    def _specialisation(self, args: list[Arg]) -> tuple[Specialisation, list[Arg]]:
        key = self._key(args)
        hit = self._cache.get(key)
        if hit is not None:
            return hit, args
        given = [
            Given(
                TensorType(a.shape, a.dtype) if a.is_tensor else ScalarType(scalar_dtype(a.scalar))
            )
            for a in args
        ]
        made = self._make(given)
        entry = made.program.functions[made.entry]
        for i, p in enumerate(entry.params):
            if isinstance(p.type, TensorType):
                axes = frozenset(ax for ax, d in enumerate(p.type.shape) if not isinstance(d, int))
                if axes:
                    self._dyn_axes[i] = axes
        self._cache[key] = made
        self._cache[self._key(args)] = made
        return made, args

    # ------------------------------------------------------------- running
    def __call__(
        self,
        *args: Any,
        backend: str = "interpreter",
        strict: bool = False,
        precision: str = "bf16",
        config: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Specialise (or reuse), run, write Out arguments in place.

        Returns None when the kernel returns only its own parameters (the in-place style, as
        PyPTO's call does), else the values it returns. `config=` (PyPTO's RunConfig) is
        accepted and ignored: there is no device here."""
        spec, bound = self._specialisation(self._bind(args, kwargs))
        values = [a.array if a.is_tensor else a.scalar for a in bound]
        if backend == "interpreter":
            from pldsl import interpreter

            result = interpreter.run(
                spec.program, spec.entry, *values, strict=strict, precision=precision
            )
        elif backend == "c":
            result = spec.compiled(precision).run(spec.entry, *values, strict=strict)
        else:
            raise ValueError(f"backend must be 'interpreter' or 'c', got {backend!r}")
        for a in bound:
            a.finish()
        return None if spec.in_place else result

    def compile(self, *args: Any, config: Any = None, **kwargs: Any) -> CompiledJit:
        """PyPTO's `fn.compile(*args, config=RunConfig(...))`: a callable compiled program;
        with no arguments at all, from the annotations (PyPTO's signature mode)."""
        spec = self._spec_for(args, kwargs)
        _compiled(self.__name__, spec.program, lowered=False)
        return CompiledJit(self, spec, config)

    def lower(self, *args: Any, config: Any = None, **kwargs: Any) -> Program:
        """PyPTO's `fn.lower(*args)`: the specialised Program, nothing run. With no arguments
        at all the types come from the annotations (PyPTO's signature mode; a bare
        `pl.Tensor` is then a MissingShape error). PyPTO returns its IR after its pass
        pipeline; this is pldsl's captured IR (functions, params, body), before any pass."""
        program = self._spec_for(args, kwargs).program
        _compiled(self.__name__, program, lowered=True)
        return program

    def _spec_for(self, args: tuple, kwargs: dict) -> Specialisation:
        """The specialisation for these call arguments; with none at all, for the annotations
        (PyPTO's signature mode)."""
        if args or kwargs:
            return self._specialisation(self._bind(args, kwargs))[0]
        from pldsl.jit.specialize import annotation_types

        return self._make([Given(t) for t in annotation_types(self)])

    def _make(self, given: list[Given]) -> Specialisation:
        from pldsl.jit.specialize import returns_only_params

        spec = Specializer()
        program = spec.program(self, given)
        entry = program.function_list[0]
        return Specialisation(program, entry.name, returns_only_params(entry, spec.aliases))


# Told of each program a file specialises without running it (`fn.lower`, `fn.compile`;
# `lowered`: by lower, whose program is never run): `pldsl pypto` lists them in its table
# and, with --check, checks them (pldsl.pypto.harness).
ON_COMPILE: Callable[[str, Program, bool], None] | None = None


def _compiled(name: str, program: Program, lowered: bool) -> None:
    if ON_COMPILE is not None:
        ON_COMPILE(name, program, lowered)


class CompiledJit:
    """What `fn.compile(...)` returns: call it with arguments of the same signature."""

    def __init__(self, fn: JITFunction, spec: Specialisation, config: Any = None) -> None:
        self.fn, self.spec, self.config = fn, spec, config
        self.program = spec.program
        self.output_dir = None  # nothing is written: there is no device build

    def __call__(self, *args: Any, config: Any = None, **kwargs: Any) -> Any:
        from pldsl.distributed.config import world_size_of
        from pldsl.interpreter.ranks import world

        # a DistributedConfig's device ids name the simulated ranks (the call's config first)
        size = world_size_of(config) or world_size_of(self.config)
        with world(size):
            return self.fn(*args, **kwargs)


class _Flavour:
    """`pl.jit.incore` etc.: usable bare (`@pl.jit.incore`) or called (`@pl.jit.incore()`)."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour

    def __call__(self, func: Any = None, **options: Any) -> Any:
        if func is None:
            return lambda f: JITFunction(f, self.flavour)
        return JITFunction(func, self.flavour)


class _Jit(_Flavour):
    """`pl.jit`: the entry decorator, with `.inline`, `.incore`, `.opaque`, `.host`."""

    def __init__(self) -> None:
        super().__init__("orchestration")
        self.inline = _Flavour("inline")
        self.incore = _Flavour("incore")
        self.opaque = _Flavour("opaque")
        self.host = _Flavour("host")
        # An external C++ kernel: the body is `...`; its options (sources, core type) name
        # device code pldsl does not run.
        self.extern = _Flavour("extern")


jit = _Jit()
