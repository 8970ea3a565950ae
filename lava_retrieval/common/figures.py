"""Figures: matplotlib with its file-only backend, and a figure saved atomically.

>>> plt = pyplot()
>>> fig, ax = plt.subplots()
>>> save_figure(fig, "/tmp/lava-retrieval-doctest.png").suffix
'.png'
"""

from __future__ import annotations

import os
from pathlib import Path

from lava_retrieval.common.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 100, format: str | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically (format: ``format``, else the suffix, else PNG)
    and close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=format or path.suffix.lstrip(".") or "png")
    finally:
        pyplot().close(fig)
    return path
