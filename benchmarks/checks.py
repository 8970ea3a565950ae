"""What a benchmark checks before it reports: that the answers it timed are the right ones
(engines and backends bit for bit on the timed data). A benchmark that finds a difference stops
without writing its result."""

from __future__ import annotations

import os
import sys

import numpy as np


def same(what: str, got, want) -> str:
    """``what``, checked: ``got`` equals ``want`` bit for bit (else the benchmark stops)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or not np.array_equal(got, want):
        differ = "shapes" if got.shape != want.shape else f"{int((got != want).sum())} values"
        raise SystemExit(f"{what}: the answers differ ({differ}); nothing is reported")
    return f"{what}: equal bit for bit ({got.size:,} values)"


def command() -> list[str]:
    """The command this benchmark runs as, recorded in its result."""
    return ["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]
