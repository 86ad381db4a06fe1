"""Files the command lines write: checked before any work, written whole or not at all.

Every CLI that writes a file (`pldsl run --outputs/--trace`, `pldsl emit -o`,
`python -m pldsl.kernels.qwen3 logits --out/--trace`) calls `check_output` for it before it
loads or runs anything, and `write_atomic` to write it:

* the path written is the path given, byte for byte: no suffix is appended (NumPy's
  `np.savez("out")` would write `out.npz`);
* an output that is an input of the same command (the same file, through any path or link), a
  directory, a folder that does not exist, or a place the user cannot write is refused with one
  line (`FileArgError`, exit 2), and nothing is written;
* the data goes to a temporary file beside the target and is renamed over it at the end, so a
  failure leaves no partial file and an existing file unchanged (a link is written through; a
  device or FIFO such as `/dev/stdout` is written in place, never replaced).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO


class FileArgError(Exception):
    """A file argument that cannot be used (reported in one line, exit 2)."""


def check_output(path: str, flag: str, inputs: Iterable[str] = ()) -> Path:
    """`path` as a `Path` when a file can be written there; `FileArgError` otherwise."""
    target = Path(path)
    if path == "" or target.is_dir():
        raise FileArgError(f"{flag} {path!r} is a directory; name a file")
    for other in inputs:
        if other and _same_file(target, Path(other)):
            raise FileArgError(
                f"{flag} {path} is also an input ({other}); it would be overwritten, name "
                "another file"
            )
    folder = Path(os.path.realpath(target)).parent
    if not folder.is_dir():
        raise FileArgError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileArgError(f"{flag} {path}: the folder {folder} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise FileArgError(f"{flag} {path}: the file exists and is not writable")
    return target


def write_atomic(path: Path, flag: str, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)`; `FileArgError` (nothing left behind) on failure.

    A symbolic link is written through (the link stays); an existing file that is not a
    regular file (`/dev/stdout`, a FIFO) is written in place, never replaced."""
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_file():
        try:
            with open(real, "wb") as fh:
                write(fh)
        except OSError as exc:
            raise FileArgError(f"{flag} {path}: cannot write it: {exc.strerror or exc}") from None
        return
    path = real
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FileArgError(f"{flag} {path}: cannot write it: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise FileArgError(f"{flag} {path}: cannot write it: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
