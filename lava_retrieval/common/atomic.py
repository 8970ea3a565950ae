"""Atomic writes: a file or directory appears whole at its path, or not at all.

Every output of the project (networks, embeddings and their sidecars, result tables,
checkpoints, indexes, netx files, figures, caches) is written through :func:`atomic_path` or
:func:`write_bytes`/:func:`write_text`: the content goes to a temporary name in the same
directory, is flushed to disk, and is renamed over the target in one step, so a crash or a kill
mid-write leaves the previous version (or nothing) there, never half a file. A failed write
removes its temporary file; one that fails because the file system is full (or the file too
large for it) is an :class:`OutputPathError` naming the file.

An output path is only ever (re)placed as a regular file: a path that exists as anything else (a
device, a FIFO, a socket, a directory, or a symbolic link to one of these) is refused and left as
it is, when it is checked (:func:`check_output`, :func:`check_outputs`, before the work) and again
just before the rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from lava_retrieval.common.errors import LavaRetrievalError

MIN_FREE_BYTES = 1 << 20  # below this, a file system is full for any output of ours


class OutputPathError(LavaRetrievalError):
    """An output path cannot be written as a file."""


#: Errors of a file system that has no room for what is written.
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_room(path: str | os.PathLike, exc: OSError) -> OutputPathError:
    """The error to raise when writing ``path`` failed with ``exc`` for want of room."""
    return OutputPathError(f"{path}: cannot be written: {os.strerror(errno.ENOSPC)}")


def is_full(exc: OSError, directory: str | os.PathLike) -> bool:
    """Whether writing into ``directory`` failed with ``exc`` because its file system is full:
    by the error number, or (a short write, which numpy reports without one) by the room left."""
    if exc.errno in FULL:
        return True
    if exc.errno is not None:
        return False
    try:
        stats = os.statvfs(directory)
    except OSError:  # pragma: no cover - the directory went away meanwhile
        return False
    return stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is if it exists as something other than a regular file (following
    symbolic links), else None.

    >>> not_a_file("/dev/null"), not_a_file("/nonexistent/x")
    ('a character device', None)
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None  # (a dangling link is replaced as a link, its target untouched)
    except OSError as exc:
        return f"unreadable ({os.strerror(exc.errno or 0)})"
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _check_names(path: Path, directory: bool = False) -> Path:
    """``path`` if no part of it is too long (asking the file system about a name too long is
    itself an error): room for a temporary name's suffix, and for a lock file beside a
    directory."""
    if not directory and len(os.fsencode(path.name)) > 240:
        raise OutputPathError(f"{path}: the file name is too long")
    for part in path.parts if directory else path.parent.parts:
        if len(os.fsencode(part)) > 240:
            raise OutputPathError(f"{path}: the directory name {part[:20]}... is too long")
    return path


def check_output(path: str | os.PathLike) -> Path:
    """``path`` as a Path if a file can be written there, else :class:`OutputPathError`:
    callers check before long work, and :func:`atomic_path` checks again.

    >>> check_output("/")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    lava_retrieval.common.atomic.OutputPathError: /: is a directory, not a file
    >>> check_output("/dev/null")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    lava_retrieval.common.atomic.OutputPathError: /dev/null: is a character device, ...
    """
    if not os.fspath(path):
        raise OutputPathError("an empty name names no file")
    path = _check_names(Path(path))
    if (what := not_a_file(path)) is not None:
        raise OutputPathError(
            f"{path}: is {what}, not a file"
            + ("" if what == "a directory" else "; only a regular file is ever replaced")
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{path}: {parent} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputPathError(f"{path}: {parent} is not writable")
            try:
                stats = os.statvfs(parent)
                if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
                    raise OutputPathError(f"{path}: no space left on {parent}'s file system")
            except (OSError, AttributeError):  # pragma: no cover - no statvfs here
                pass
            break
    return path


def check_outputs(outputs: Iterable[tuple[str, str | os.PathLike | None, bool]]) -> None:
    """Check every output of one command before it starts: ``(option, path, is_directory)``
    triples (``path`` None: not given). Each file is :func:`check_output`; a directory must not
    exist as anything else; an empty name, and two outputs naming the same file, are refused.

    >>> check_outputs([("--out", "a.npz", False), ("--export-nir", "./a.npz", False)])
    Traceback (most recent call last):
    lava_retrieval.common.atomic.OutputPathError: --out and --export-nir name the same file ./a.npz
    """
    seen: dict[str, str] = {}
    for option, path, directory in outputs:
        if path is None:
            continue
        if not os.fspath(path):
            raise OutputPathError(f"{option}: an empty name names no file")
        try:
            if directory:
                _check_names(Path(path), directory=True)
                what = not_a_file(path) or ("a file" if os.path.isfile(path) else None)
                if what not in (None, "a directory"):
                    raise OutputPathError(f"{path}: is {what}, not a directory")
            else:
                check_output(path)
        except OutputPathError as exc:
            raise OutputPathError(f"{option} {exc}") from None
        key = os.path.realpath(path)
        if key in seen:
            raise OutputPathError(f"{seen[key]} and {option} name the same file {path}")
        seen[key] = option


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path to write to; renamed to ``path`` when the block ends without error.

    Parameters
    ----------
    path : path
        The file to (re)place. Its parent directory is created if missing.
    suffix : str, optional
        Suffix of the temporary name (default: ``path``'s own), for writers that insist on one
        (``numpy.save`` appends ``.npy`` to names without it).

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            # Created like any new file (mode 0o666 less the umask, unlike mkstemp's 0o600).
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # pragma: no cover - a name clash of 32 random bits
            continue
        except OSError as exc:
            if is_full(exc, path.parent):
                raise no_room(path, exc) from None
            raise
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if (what := not_a_file(path)) is not None:  # made meanwhile: left as it is
            raise OutputPathError(f"{path}: is {what}, not a file; it was not replaced")
        os.replace(tmp, path)
    except OSError as exc:
        if is_full(exc, path.parent):
            raise no_room(path, exc) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode())
