"""What the compiled engines share: numba compilation and a kept thread pool."""

from __future__ import annotations

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


def jit(function):
    """Compile with numba (lazily, at the first call; cached on disk), GIL released."""
    if numba is None:  # pragma: no cover
        return function
    options = dict(nogil=True, boundscheck=False, error_model="numpy")
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # pragma: no cover - no writable cache directory: compile per process
        return numba.njit(**options)(function)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of ``workers`` threads, kept for the next call."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="lava-retrieval-sim")
    return _POOLS[workers]
