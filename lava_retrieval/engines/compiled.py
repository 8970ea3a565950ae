"""What the compiled engines share: numba compilation and a kept thread pool."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

try:  # pragma: no cover - exercised by whichever branch the platform takes
    import numba
except ImportError:  # pragma: no cover
    numba = None

AVAILABLE = numba is not None

if numba is not None:  # pragma: no branch
    from numba.cpython.unsafe.numbers import trailing_zeros  # count of trailing zero bits
else:  # pragma: no cover

    def trailing_zeros(x: int) -> int:
        """The count of trailing zero bits of ``x`` (> 0)."""
        x = int(x)
        return (x & -x).bit_length() - 1


def cache_dir() -> str:
    """Where the compiled kernels are cached: ``NUMBA_CACHE_DIR`` if set, else the per-user
    cache (``$XDG_CACHE_HOME/lava-retrieval/numba``, ``~/.cache/...``), never beside the
    installed package's sources (numba's own default).

    >>> cache_dir().endswith("numba")
    True
    """
    if numba is not None and numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lava-retrieval", "numba")


def jit(function):
    """Compile with numba (lazily, at the first call; cached on disk under :func:`cache_dir`),
    GIL released."""
    if numba is None:  # pragma: no cover
        return function
    options = dict(nogil=True, boundscheck=False, error_model="numpy")
    given = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = cache_dir()  # read when the cache is set up, just below
    try:
        return numba.njit(cache=True, **options)(function)
    except (RuntimeError, OSError):  # pragma: no cover - no writable cache: compile per process
        return numba.njit(**options)(function)
    finally:
        numba.config.CACHE_DIR = given


_POOLS: dict[int, ThreadPoolExecutor] = {}


def pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of ``workers`` threads, kept for the next call."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="lava-retrieval-sim")
    return _POOLS[workers]
