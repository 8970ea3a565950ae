"""Writers exclude each other: an advisory lock per written thing (an index directory, a
checkpoint directory, an output directory), held while it is changed.

The lock is ``flock`` on a small file beside the target, ``.NAME.lock`` in the same parent
directory (the target itself may not exist yet, and an index directory is replaced file by
file); its holder removes the file when done. The kernel releases the lock when its holder
exits, however it exits, so a killed writer never leaves a stale lock (at most the empty file,
which the next writer takes and removes). A second writer waits up to ``wait`` seconds, saying
once that it waits, then fails with :class:`LockedError`. Within one thread the lock is
re-entrant; another thread of the same process waits like another process.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "index"
>>> with exclusive(target):
...     with exclusive(target):  # the same thread: re-entrant
...         pass
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lava_retrieval.common.errors import LavaRetrievalError

DEFAULT_WAIT = 120.0
"""Seconds a second writer waits for the first (an index's append and save take seconds)."""

_held: dict[tuple[int, Path], int] = {}
_guard = threading.RLock()


class LockedError(LavaRetrievalError):
    """Another process is writing the same thing."""


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` beside it.

    >>> lock_path("/data/my-index").as_posix()
    '/data/.my-index.lock'
    """
    target = Path(os.path.abspath(target))
    return target.parent / f".{target.name}.lock"


@contextmanager
def exclusive(
    target: str | os.PathLike,
    *,
    wait: float = DEFAULT_WAIT,
    what: str = "it",
    log: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the writer's lock of ``target`` for the ``with`` block.

    Parameters
    ----------
    target : path
        What is written (it need not exist; its parent is created if missing).
    wait : float
        Seconds to wait for another writer (0: fail at once).
    what : str
        How the error names the other writer's work (``"writing it"``, ``"training into it"``).
    log : callable, optional
        Told once, if this writer has to wait.
    """
    path = lock_path(target)
    key = (threading.get_ident(), path)
    with _guard:
        if key in _held:
            _held[key] += 1
    if key in _held and _held[key] > 1:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, target, wait, what, log)
    with _guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _guard:
            del _held[key]
        # The holder removes the file before unlocking; a waiter that then locks the removed
        # file sees that it is no longer the one at the path and takes the new one.
        try:
            os.unlink(path)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(path: Path, target, wait: float, what: str, log) -> int:
    """An open descriptor of the lock file at ``path``, locked by this process."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LockedError(f"{target}: cannot create its lock {path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"{target}: another process is {what} (waited {wait:g} s for it); try "
                    "again when it has finished"
                ) from None
            if not told and log is not None:
                log(f"waiting for another process {what}: {target} (up to {wait:g} s) ...")
                told = True
            time.sleep(0.05)
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed it meanwhile: lock the current one
