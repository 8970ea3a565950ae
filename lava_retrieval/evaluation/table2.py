"""The paper's Table 2: ANN vs SNN(T) on classification, top-1/top-3 retrieval and mAP.

Protocol (as in the paper): the corpus is the 60,000 training images, the queries are the 10,000
test images; a retrieval hit is a neighbour of the query's class; classification is on the test
set. The ANN's embedding is the same layer the SNN is probed at (the flattened 4 x 4 x 64 map
before the dense layer for 32-64-10); the SNN's is the embedding layer's state after T steps
(``readout``: the paper's ``membrane`` by default). Results are written as JSON, CSV and a
markdown table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from lava_retrieval.ann.inference import embed_and_classify
from lava_retrieval.ann.model import ConvNet
from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.figures import pyplot, save_figure
from lava_retrieval.conversion.methods import get
from lava_retrieval.data.fashion_mnist import FashionMNIST
from lava_retrieval.engines.sim import readout_of, simulate_at
from lava_retrieval.evaluation import paper
from lava_retrieval.search.metrics import (
    classification_accuracy,
    predict_classes,
    ranked_retrieval,
)
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

# Liu et al. 2022, Table 2 (classification / top-1 / top-3, percent): the paper's values.
PAPER_TABLE2 = paper.TABLE2
COLUMNS = ("model", "classification", "top1", "top3", "mAP", "seconds")
EMBEDDING_BYTES = 1 << 30
"""At most this many bytes of embeddings (float32) are held for :func:`snn_rows` at once."""


def retrieval_scores(
    corpus: np.ndarray,
    corpus_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    *,
    progress: bool = True,
) -> dict:
    """Top-1, top-3 (percent) and mAP (percent) of cosine retrieval, from one ranking of the
    whole corpus per query (:func:`~lava_retrieval.search.metrics.ranked_retrieval`)."""
    ranked = ranked_retrieval(
        queries, query_labels, corpus, corpus_labels, ks=(1, 3), progress=progress
    )
    return {
        "top1": 100 * ranked["top"][1],
        "top3": 100 * ranked["top"][3],
        "mAP": 100 * ranked["mAP"],
    }


def ann_row(model, corpus_images, corpus_labels, query_images, query_labels, *, progress=True):
    """Table 2's ANN row."""
    start = time.perf_counter()
    logits, queries = embed_and_classify(model, query_images)
    _, corpus = embed_and_classify(model, corpus_images)
    row = {
        "model": "ANN",
        "classification": 100 * classification_accuracy(logits.argmax(1), query_labels),
        **retrieval_scores(corpus, corpus_labels, queries, query_labels, progress=progress),
    }
    row["seconds"] = time.perf_counter() - start
    return row


class _TooWide(Exception):
    """An embedding needs more than the 16 bits its pass was planned with."""


def _compact(embedding: np.ndarray, narrow: bool) -> np.ndarray:
    """``embedding`` as int16 where its values are integers that fit (exactly the values
    float32 has of them), else as float32; with ``narrow``, :class:`_TooWide` instead."""
    if embedding.dtype.kind in "iu" and embedding.size:
        low, high = embedding.min(), embedding.max()
        if -(1 << 15) <= low and high < (1 << 15):
            return embedding.astype(np.int16)
    if narrow:
        raise _TooWide
    return embedding.astype(np.float32)


def _embed_at(network, images, config, time_steps, classes, progress, narrow=False):
    """Embeddings and, with ``classes``, predicted classes at every T, from one simulation per
    chunk (:func:`~lava_retrieval.engines.sim.simulate_at`). Embeddings are int16 where their
    values fit, else float32 (:func:`_compact`)."""
    from tqdm.auto import tqdm

    keep = (network.embedding_layer, len(network.layers) - 1)[: 2 if classes else 1]
    embeddings = {t: [] for t in time_steps}
    predicted = {t: [] for t in time_steps}
    with tqdm(total=len(images), unit="img", disable=not progress, desc="sim") as bar:
        for start in range(0, len(images), config.chunk_size):
            chunk = images[start : start + config.chunk_size]
            for t, result in simulate_at(network, chunk, config, time_steps, layers=keep).items():
                readout = readout_of(network, result, config.readout)
                embeddings[t].append(_compact(readout, narrow))
                if classes:
                    predicted[t].append(
                        predict_classes(result.spike_counts[-1], result.membrane[-1])
                    )
            bar.update(len(chunk))
    embedded = {t: np.concatenate(e) for t, e in embeddings.items()}
    return embedded, {t: np.concatenate(p) for t, p in predicted.items() if p}


def _passes(steps: list[int], bytes_per_t: int) -> list[tuple[int, ...]]:
    """``steps`` in passes of as many T as :data:`EMBEDDING_BYTES` holds."""
    group = max(1, EMBEDDING_BYTES // max(1, bytes_per_t))
    return [tuple(steps[first : first + group]) for first in range(0, len(steps), group)]


def sweep(configs: SimConfig | Sequence[SimConfig]) -> tuple[SimConfig, tuple[int, ...]]:
    """One configuration's settings and the T of every row: ``configs`` may differ only in T.

    >>> sweep([SimConfig(4, "delay", "membrane"), SimConfig(16, "delay", "membrane")])[1]
    (4, 16)
    """
    configs = [configs] if isinstance(configs, SimConfig) else list(configs)
    if not configs:
        raise LavaRetrievalError("give at least one simulation configuration")
    first = configs[0]
    if any(replace(c, time_steps=first.time_steps) != first for c in configs):
        raise LavaRetrievalError("the rows of one table differ only in T")
    return first, tuple(c.time_steps for c in configs)


def snn_rows(
    network: SpikingNetwork,
    configs: SimConfig | Sequence[SimConfig],
    corpus_images: np.ndarray,
    corpus_labels: np.ndarray,
    query_images: np.ndarray,
    query_labels: np.ndarray,
    *,
    progress: bool = True,
) -> list[dict]:
    """Table 2's SNN(T) rows for every T of ``time_steps``, simulated with the fast simulator
    with ``config``'s settings (its engine changes the time taken, not the numbers). Queries
    and corpus are simulated once for all T where the timing allows
    (:func:`~lava_retrieval.engines.sim.simulate_at`), in passes of as many T as
    :data:`EMBEDDING_BYTES` holds; each row's ``seconds`` is its share of its pass's
    simulation plus its own scoring. ``configs``: one per row, differing only in T."""
    config, time_steps = sweep(configs)
    # The embeddings of every T are held until scored: a pass takes as many T as fit in
    # EMBEDDING_BYTES (the shortest T first; a pass's run is as long as its longest T).
    # Integer embeddings that fit 16 bits (membrane potentials mostly do) take half the
    # room of float32: passes are planned on 16 bits, and a pass that meets a wider value
    # is split into passes planned on 32.
    width = network.layers[network.embedding_layer].num_neurons
    per_t = (len(corpus_images) + len(query_images)) * width
    wide = _passes(sorted(set(time_steps)), 4 * per_t)
    todo = _passes(sorted(set(time_steps)), 2 * per_t)
    rows = {}
    while todo:
        part = todo.pop(0)
        # Only a pass longer than a 32-bit one needs every embedding to fit 16 bits.
        narrow = len(part) > len(wide[0])
        start = time.perf_counter()
        try:
            queries, predicted = _embed_at(
                network, query_images, config, part, True, progress, narrow
            )
            corpus, _ = _embed_at(network, corpus_images, config, part, False, progress, narrow)
        except _TooWide:
            todo = _passes(list(part), 4 * per_t) + todo
            continue
        shared = (time.perf_counter() - start) / len(part)
        for t in part:
            start = time.perf_counter()
            rows[t] = {
                "model": f"SNN({t})",
                "classification": 100 * classification_accuracy(predicted.pop(t), query_labels),
                **retrieval_scores(
                    corpus.pop(t), corpus_labels, queries.pop(t), query_labels, progress=progress
                ),
            }
            rows[t]["seconds"] = shared + time.perf_counter() - start
    return [rows[t] for t in time_steps]


def table2(
    network: SpikingNetwork,
    model: ConvNet,
    dataset: FashionMNIST,
    configs: SimConfig | Sequence[SimConfig] | None = None,
    *,
    limit_corpus: int | None = None,
    limit_queries: int | None = None,
    progress: bool = True,
) -> dict:
    """All rows of Table 2 plus the protocol that produced them.

    ``configs``: one SNN row each, the same timing, readout and engine, each its T (default:
    method ``paper``'s at T = 16 and 128).
    """
    if configs is None:
        configs = [get("paper").sim_config(t) for t in (16, 128)]
    config, _ = sweep(configs)
    corpus_images, corpus_labels = dataset.split("full_train")
    query_images, query_labels = dataset.split("test")
    corpus_images, corpus_labels = corpus_images[:limit_corpus], corpus_labels[:limit_corpus]
    query_images, query_labels = query_images[:limit_queries], query_labels[:limit_queries]
    rows = [
        ann_row(model, corpus_images, corpus_labels, query_images, query_labels, progress=progress)
    ]
    rows += snn_rows(
        network,
        configs,
        corpus_images,
        corpus_labels,
        query_images,
        query_labels,
        progress=progress,
    )
    return {
        "protocol": {
            "corpus": int(len(corpus_images)),
            "queries": int(len(query_images)),
            "readout": config.readout,
            "timing": config.timing,
            "arch": network.arch,
            "pool_mode": network.pool_mode,
            "reset": network.reset,
        },
        "rows": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows
        ],
        "paper": {k: dict(zip(COLUMNS[1:4], v, strict=True)) for k, v in PAPER_TABLE2.items()},
    }


def markdown(result: dict) -> str:
    """Table 2 as markdown, ours beside the paper's."""
    lines = [
        "| model | classification | top-1 | top-3 | mAP | paper: classification / top-1 / top-3 |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in result["rows"]:
        paper = result["paper"].get(row["model"])
        ref = " / ".join(f"{v:.2f}" for v in paper.values()) if paper else "—"
        lines.append(
            f"| {row['model']} | {row['classification']:.2f} | {row['top1']:.2f} | "
            f"{row['top3']:.2f} | {row['mAP']:.2f} | {ref} |"
        )
    return "\n".join(lines)


def write(result: dict, out_dir: str | Path, stem: str = "table2") -> list[Path]:
    """Write ``stem``.json, .csv and .md into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(result["rows"])
    write_text(paths[0], json.dumps(result, indent=2) + "\n")
    write_text(paths[1], table.getvalue())
    write_text(paths[2], markdown(result) + "\n")
    return paths


COST_PANELS = (
    ("steps", "classification"),
    ("steps", "top1"),
    ("mj", "classification"),
    ("mj", "top1"),
)
"""The panels of the cost row of :func:`plot_time_steps`: (cost, metric)."""


def _cost_axes(axes, names: dict[str, str], anns: dict) -> None:
    """Scales, labels and limits of the cost row of :func:`plot_time_steps`."""
    for ax, (cost, key) in zip(axes, COST_PANELS, strict=True):
        ax.set_xscale("log", base=2 if cost == "steps" else 10)
        ax.set_xlabel(
            "latency (chip steps per image)" if cost == "steps" else "Loihi model: mJ per image"
        )
        ax.set_title(f"{names[key]} against {'latency' if cost == 'steps' else 'energy'}")
        top = max(values[0 if key == "classification" else 1] for values in anns)
        ax.set_ylim(top - 15, top + 1)
        ax.grid(alpha=0.3, which="both")


def plot_time_steps(
    results: dict[str, dict],
    out: str | Path,
    title: str = "",
    costs: dict[str, dict[int, dict]] | None = None,
) -> Path:
    """Classification, top-1, top-3 and mAP against T for several methods, in the layout of
    the paper's Fig 4 (one panel per metric, T on a log axis), each method's ANN as a horizontal
    line (one line per distinct ANN, in the colour of the first method converted from it).

    Parameters
    ----------
    results : dict
        Label -> a result of :func:`table2` (its SNN rows give the curve, its ANN row the line).
    out : path
        PNG to write (atomically).
    costs : dict, optional
        Label -> ``{T: {"steps": chip steps per image, "mj": mJ per image}}``
        (:func:`lava_retrieval.evaluation.energy.cost_curve`): adds a row of panels with
        classification and top-1 against latency in chip steps and against the Loihi energy
        model's mJ per image.
    """
    plt = pyplot()

    metrics = [
        ("classification", "classification accuracy"),
        ("top1", "top-1 retrieval"),
        ("top3", "top-3 retrieval"),
        ("mAP", "mAP"),
    ]
    n_rows = 3 if costs else 2
    fig, grid = plt.subplots(n_rows, 4, figsize=(16, 4.2 * n_rows))
    anns: dict[tuple, tuple[str, str]] = {}  # ANN row values -> (first method, colour)
    for label, result in results.items():
        rows = [r for r in result["rows"] if r["model"].startswith("SNN(")]
        steps = [int(r["model"][4:-1]) for r in rows]
        ann = next(r for r in result["rows"] if r["model"] == "ANN")
        for column, (key, _) in enumerate(metrics):
            for ax in grid[:2, column]:
                (line,) = ax.plot(steps, [r[key] for r in rows], marker="o", label=label)
        values = tuple(ann[key] for key, _ in metrics)
        anns.setdefault(values, (label, line.get_color()))
        if costs and label in costs:
            kept = [
                (r, costs[label][t]) for r, t in zip(rows, steps, strict=True) if t in costs[label]
            ]
            for column, (cost, key) in enumerate(COST_PANELS):
                grid[2, column].plot(
                    [c[cost] for _, c in kept],
                    [r[key] for r, _ in kept],
                    marker="o",
                    color=line.get_color(),
                )
    if costs:
        _cost_axes(grid[2], dict(metrics), anns)
    for column, (_, name) in enumerate(metrics):
        lines = [values[column] for values in anns]
        for row, ax in enumerate(grid[:2, column]):
            for values, (label, colour) in anns.items():
                name_of = "ANN" if len(anns) == 1 else f"ANN of: {label}"
                ax.axhline(values[column], color=colour, linestyle="--", linewidth=1, label=name_of)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("time steps T")
            ax.set_title(name if row == 0 else f"{name}, near the ANN")
            ax.grid(alpha=0.3)
        grid[1, column].set_ylim(min(lines) - 5, max(lines) + 1)
    axes = grid[0]
    for panels in grid[1:]:
        panels[0].set_ylabel("percent")
    axes[0].set_ylabel("percent")
    handles, labels = axes[0].get_legend_handles_labels()
    columns = min(len(labels), 4)
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.025 * math.ceil(len(labels) / columns) + 0.01, 1, 1))
    path = Path(out)
    save_figure(fig, path, dpi=100, format="png")
    return path
