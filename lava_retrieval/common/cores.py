"""How many CPU cores this process may use (the thread pools of the engines and metrics)."""

from __future__ import annotations

import os


def threads_for(threads: int | None) -> int:
    """``threads``, or by default the CPU cores this process may use.

    >>> threads_for(3), threads_for(0), threads_for(None) >= 1
    (3, 1, True)
    """
    if threads is not None:
        return max(1, int(threads))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
