"""A PNG of search results: each query as the network sees it, then its results with scores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lava_retrieval.common.figures import pyplot, save_figure


def _short(text: str, width: int = 18) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def draw(out: str | os.PathLike, queries: np.ndarray, names, results, index) -> Path:
    """One row per query: the 28 x 28 input, a gap, then the k results (rank, score, class or
    file name under each), images light-on-dark as the network sees them.

    Parameters
    ----------
    out : path
        PNG to write (atomically).
    queries : numpy.ndarray
        (N, 28, 28) prepared queries.
    names : list of str
        The queries as given (titles).
    results : list of list of Hit
        From :meth:`lava_retrieval.search.image_index.ImageIndex.search`.
    index : ImageIndex
        Gives the corpus images: read back from their paths (files or Fashion-MNIST ids).
    """
    plt = pyplot()

    from lava_retrieval.search.sources import read_query

    k = max(len(hits) for hits in results)
    fig, axes = plt.subplots(
        len(queries),
        k + 2,
        figsize=(1.3 * (k + 1.3), 1.8 * len(queries) + 0.4),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 0.3] + [1] * k},
    )
    for r, (query, name, hits) in enumerate(zip(queries, names, results, strict=True)):
        cells = [(query, f"query\n{_short(Path(str(name)).name)}")]
        cells.append((None, ""))
        for hit in hits:
            try:
                image = read_query(hit.path, index.preprocessing)
            except Exception:  # noqa: BLE001 - a moved file is drawn blank, not fatal
                image = np.zeros_like(query)
            label = hit.label_name or _short(Path(hit.path).name, 14)
            cells.append((image, f"{hit.rank}. {hit.score:.3f}\n{label}"))
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells) or cells[c][0] is None:
                ax.axis("off")
                continue
            image, caption = cells[c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_xlabel(caption, fontsize=7)
            for spine in ax.spines.values():
                spine.set_color("tab:blue" if c == 0 else "0.6")
                spine.set_linewidth(2 if c == 0 else 0.5)
    fig.suptitle(f"{len(queries)} queries, top {k} of {len(index):,} indexed images", fontsize=9)
    fig.tight_layout()
    path = Path(out)
    save_figure(fig, path, dpi=100, format="png")
    return path
