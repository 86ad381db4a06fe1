"""Compile generated C with the system compiler, cache the shared object, load it with ctypes.

* compiler: ``$CC`` (may hold flags, e.g. ``CC="gcc-13"``), else ``cc``;
* flags: ``-O3 -march=native -fopenmp -ffp-contract=off`` (+ ``-fno-math-errno``, which only
  stops libm from setting errno; no value changes) and ``$PLDSL_CFLAGS`` appended;
* cache: ``$PLDSL_CACHE_DIR`` or ``~/.cache/pldsl``, one ``<sha256>.so`` per (C text, runtime
  header, compiler, flags); writes are atomic (temp file + rename), so concurrent builds are safe.

A missing compiler or a compile error raises `CCompileError`, whose Diagnostic points at the
kernel line the failing C line came from and quotes the C line and the compiler's message.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from pldsl.diagnostics import NO_SPAN, Diagnostic, PldslError, Span

HEADER = Path(__file__).with_name("pldsl_rt.h")
BASE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno")
SO_FLAGS = ("-std=gnu11", "-fPIC", "-shared", "-fvisibility=hidden")

_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL] = {}
_CC_ID: dict[tuple[str, ...], str] = {}


class CCompileError(PldslError):
    """The generated C did not compile (or no C compiler is available)."""


def _no_compiler(message: str, help: str) -> CCompileError:
    return CCompileError(Diagnostic("NoCCompiler", "error", message, NO_SPAN, help))


def compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or "cc")


# Rules of the user's setup, not of the kernel: the CLIs exit 2 for them, 1 for CCompileError.
SETUP_RULES = frozenset({"NoCCompiler", "CacheDirError", "BadCFlags"})


def _setup_error(rule: str, message: str, help: str) -> CCompileError:
    return CCompileError(Diagnostic(rule, "error", message, NO_SPAN, help))


def flags() -> list[str]:
    try:
        extra = shlex.split(os.environ.get("PLDSL_CFLAGS", ""))
    except ValueError as exc:
        raise _setup_error(
            "BadCFlags", f"$PLDSL_CFLAGS cannot be split into flags: {exc}", "fix its quoting"
        ) from None
    return [*BASE_FLAGS, *extra]


def cache_dir() -> Path:
    d = os.environ.get("PLDSL_CACHE_DIR")
    path = Path(d).expanduser() if d else Path.home() / ".cache" / "pldsl"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise _setup_error(
            "CacheDirError",
            f"cannot use the build cache {path}: {exc.strerror or exc}",
            "point $PLDSL_CACHE_DIR at a folder you can write",
        ) from None
    return path


def _check_user_flags(cc: list[str]) -> None:
    """BadCFlags when the compiler rejects $PLDSL_CFLAGS on an empty file (called after a
    failed compile, so a bad flag is never reported as a bug of the backend)."""
    extra = flags()[len(BASE_FLAGS) :]
    if not extra:
        return
    probe = subprocess.run(
        [*cc, *extra, "-x", "c", "-c", "-o", os.devnull, "-"],
        input="int pldsl_probe;\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or ["(no message)"])[0]
        raise _setup_error(
            "BadCFlags",
            f"the C compiler rejects $PLDSL_CFLAGS ({' '.join(extra)}): {first}",
            "fix or unset $PLDSL_CFLAGS",
        )


def _compiler_id(cc: list[str]) -> str:
    key = tuple(cc)
    if key not in _CC_ID:
        exe = shutil.which(cc[0]) if cc else None
        if exe is None:
            raise _no_compiler(
                f"no C compiler found: '{' '.join(cc) or 'cc'}' is not on PATH",
                "install gcc (or clang) or point $CC at a compiler; the interpreter "
                "(interpreter.run) needs none",
            )
        try:
            out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60)
            _CC_ID[key] = exe + "\n" + out.stdout.splitlines()[0] if out.stdout else exe
        except (OSError, subprocess.SubprocessError):
            _CC_ID[key] = exe
    return _CC_ID[key]


def build_key(source: str) -> str:
    cc = compiler()
    h = hashlib.sha256()
    for part in (source, HEADER.read_text(), _compiler_id(cc), " ".join(cc), " ".join(flags()),
                 " ".join(SO_FLAGS)):  # fmt: skip
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


RUNTIME_STUB = '#define PT_RUNTIME_IMPL\n#include "pldsl_rt.h"\n'


def runtime_library() -> Path:
    """The shared runtime (matmul, views, buffers...): compiled once per header version and
    compiler, then linked by every program (keeps per-program compiles short)."""
    key = build_key(RUNTIME_STUB + "runtime")
    out_dir = cache_dir()
    name = f"libpldsl_rt_{key[:16]}.so"
    so = out_dir / name
    if so.exists():
        return so
    cc = compiler()
    with tempfile.TemporaryDirectory(prefix="pldsl-rt-", dir=out_dir) as tmp:
        c_path = Path(tmp) / "pldsl_rt.c"
        c_path.write_text(RUNTIME_STUB)
        tmp_so = Path(tmp) / name
        cmd = [*cc, *flags(), *SO_FLAGS, f"-Wl,-soname,{name}", f"-I{HEADER.parent}",
               str(c_path), "-o", str(tmp_so), "-lm"]  # fmt: skip
        _run_compiler(cmd, RUNTIME_STUB, None, out_dir / f"failed_runtime_{key}.c")
        os.replace(tmp_so, so)
    return so


def _run_compiler(cmd: list[str], source: str, spans, keep: Path) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise _no_compiler(
            f"cannot run the C compiler '{cmd[0]}'", "install gcc or set $CC"
        ) from None
    if proc.returncode != 0:
        _check_user_flags(compiler())
        keep.write_text(source)
        raise CCompileError(_compile_diagnostic(proc.stderr, source, spans, keep, cmd))


SPLIT_MIN_KERNELS = 48  # split builds pay off for programs with many kernels


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _jobs() -> int:
    v = os.environ.get("PLDSL_BUILD_JOBS", "")
    if v.isdigit() and int(v) > 0:
        return int(v)
    return min(4, cpu_count())


def _link_runtime(rt: Path) -> list[str]:
    """Linker arguments for the shared runtime library `rt` (found again at load time)."""
    return [f"-L{rt.parent}", f"-l:{rt.name}", f"-Wl,-rpath,{rt.parent}", "-lm"]


def _split_build(split, rt: Path, tmp: Path, tmp_so: Path) -> bool:
    """Compile kernels in `jobs` translation units plus one for the functions, in parallel,
    then link. Returns False on any failure (the caller rebuilds as one unit for a readable
    diagnostic)."""
    preamble, kernels, main = split
    jobs = _jobs()
    cc = compiler()
    parts = [main] + [preamble + "\n".join(kernels[i::jobs]) + "\n" for i in range(jobs)]
    hidden = '-DPT_KERNEL=__attribute__((visibility("hidden")))'
    procs, objs = [], []
    for i, text in enumerate(parts):
        c_path = tmp / f"part{i}.c"
        c_path.write_text(text)
        obj = tmp / f"part{i}.o"
        objs.append(obj)
        cmd = [*cc, *flags(), "-std=gnu11", "-fPIC", "-fvisibility=hidden", hidden,
               f"-I{HEADER.parent}", "-c", str(c_path), "-o", str(obj)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    ok = all(p.wait(timeout=900) == 0 for p in procs)
    if not ok:
        return False
    link = [*cc, *flags(), *SO_FLAGS, *map(str, objs), "-o", str(tmp_so), *_link_runtime(rt)]
    return subprocess.run(link, capture_output=True, timeout=900).returncode == 0


def build(source: str, line_spans: list[Span | None] | None = None, name: str = "program",
          split=None) -> Path:  # fmt: skip
    """The path of the shared object for `source`, compiling it unless cached. `split`
    (from the emitter) lets big programs compile as parallel jobs."""
    rt = runtime_library()
    key = build_key(source + "\0" + str(rt))
    out_dir = cache_dir()
    so = out_dir / f"{key}.so"
    if so.exists():
        return so
    cc = compiler()
    with tempfile.TemporaryDirectory(prefix="pldsl-", dir=out_dir) as tmp:
        c_path = Path(tmp) / f"{name}_{key[:8]}.c"
        c_path.write_text(source)
        tmp_so = Path(tmp) / "out.so"
        if split is not None and len(split[1]) >= SPLIT_MIN_KERNELS and _jobs() > 1:
            if _split_build(split, rt, Path(tmp), tmp_so):
                os.replace(tmp_so, so)
                (out_dir / f"{key}.c").write_text(source)
                return so
        cmd = [*cc, *flags(), *SO_FLAGS, f"-I{HEADER.parent}", str(c_path), "-o", str(tmp_so),
               *_link_runtime(rt)]  # fmt: skip
        _run_compiler(cmd, source, line_spans, out_dir / f"failed_{key}.c")
        os.replace(tmp_so, so)
        (out_dir / f"{key}.c").write_text(source)
    return so


def load(path: Path) -> ctypes.CDLL:
    with _LOCK:
        lib = _LOADED.get(str(path))
        if lib is None:
            lib = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL | os.RTLD_NOW)
            _LOADED[str(path)] = lib
        return lib


_ERR = re.compile(
    r"^(?P<file>[^:\n]+\.c):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<msg>.*)$",
    re.M,
)


def _compile_diagnostic(stderr: str, source: str, spans, kept: Path, cmd: list[str]) -> Diagnostic:
    lines = source.splitlines()
    m = _ERR.search(stderr)
    if m is None:
        tail = stderr.strip().splitlines()[-12:]
        return Diagnostic(
            "CCompileError", "error", "the generated C did not compile", NO_SPAN,
            "this is a bug in the C backend; the interpreter runs the program",
            tuple(tail) + (f"C source kept at {kept}", "command: " + " ".join(cmd)),
        )  # fmt: skip
    n = int(m.group("line"))
    span = NO_SPAN
    if spans:
        for i in range(min(n, len(spans)) - 1, -1, -1):
            s = spans[i]
            if s is not None and s.line > 0:
                span = s
                break
    c_line = lines[n - 1].strip() if 0 < n <= len(lines) else ""
    return Diagnostic(
        "CCompileError",
        "error",
        f"the generated C did not compile: {m.group('msg')}",
        span,
        "this is a bug in the C backend; the interpreter runs the program",
        (f"C line {n}: {c_line}", f"C source kept at {kept}"),
    )
