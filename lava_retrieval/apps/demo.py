"""The main demo: image retrieval with spiking-network embeddings, end to end.

1. Convert the method's shipped 32-64-10 ANN (:mod:`lava_retrieval.conversion.methods`; default
   ``qcfs8-analog``, ``paper`` for Algorithm 1 with the paper's settings).
2. Embed the corpus (training images) with the fast simulator with the method's timing and
   readout; the embeddings are cached under the user cache directory, keyed by the network's
   fingerprint, the simulation settings and the corpus images.
3. Answer one test image per class end to end through the Lava process graph
   (encoder -> IF layers -> membrane probe -> cosine kNN), fixed-point models.
4. Print each query's top-3 corpus images with classes and cosine scores, and draw a PNG grid in
   the layout of the paper's Fig. 6: query | three random images of its class | ANN top-3 |
   SNN top-3.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from lava_retrieval.ann.inference import embed as ann_embed
from lava_retrieval.backends import registry
from lava_retrieval.common.atomic import atomic_path
from lava_retrieval.common.figures import pyplot, save_figure
from lava_retrieval.conversion.methods import DEFAULT_METHOD, resolve
from lava_retrieval.conversion.methods import get as get_method
from lava_retrieval.data.fashion_mnist import CLASS_NAMES, cache_dir, load_fashion_mnist
from lava_retrieval.engines.sim import embed as sim_embed
from lava_retrieval.lava_graph.graph import build
from lava_retrieval.search.index import CosineIndex
from lava_retrieval.snn.config import SimConfig, cache_key

#: What answers the demo's queries: the Lava graph with its kNN process, or Lava's built-ins
#: (the host searches).
DEMO_BACKENDS = registry.names("demo")


def _corpus_embeddings(network, images, config: SimConfig, progress) -> np.ndarray:
    """The corpus embeddings, cached under a key of the network's fingerprint, every simulation
    setting and the images' content, so that a stale file is never served."""
    images_sha = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    key = cache_key(network, config, images=images_sha, count=len(images))
    path = cache_dir().parent / "embeddings" / f"{key}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(images), int(np.prod(network.embedding_shape))) and np.all(
                np.isfinite(cached)
            ):
                return cached
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache file is recomputed and replaced
    embeddings = sim_embed(network, images, config, progress=progress)
    with atomic_path(path) as tmp:
        np.save(tmp, embeddings)
    return embeddings


def run(
    out: str | Path = "runs/demo-retrieval.png",
    *,
    corpus_size: int = 60000,
    time_steps: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    progress: bool = True,
    log=print,
    method: str = DEFAULT_METHOD,
    backend: str = "lava",
) -> dict:
    """Run the demo; returns the queries' answers and the PNG path. ``backend``: ``lava``
    answers through the Lava graph (its kNN process searches); ``loihi`` embeds the queries on
    Lava's own built-in processes and the host searches."""
    registry.get(backend, "demo")
    chosen = get_method(method)
    data = load_fashion_mnist(data_dir)
    log(f"converting the shipped {chosen.checkpoint_name} ANN ({chosen.description}) ...")
    resolved = resolve(method=method, dataset=data, time_steps=time_steps)
    time_steps = resolved.config.time_steps
    network, config, ckpt = resolved.network, resolved.config, resolved.checkpoint()
    registry.check(backend, network, config)  # every reason it cannot, before the corpus
    corpus_images = data.train_images[:corpus_size]
    corpus_labels = data.train_labels[:corpus_size]
    log(
        f"embedding {len(corpus_images):,} corpus images, fast simulator, T={time_steps}, "
        f"{config.timing} timing, {config.readout} readout ..."
    )
    corpus = _corpus_embeddings(network, corpus_images, config, progress)

    query_ids = np.array([int(np.flatnonzero(data.test_labels == c)[0]) for c in range(10)])
    queries = data.test_images[query_ids]
    if backend == "loihi":
        from types import SimpleNamespace

        from lava_retrieval.lava_graph.graph import embed as graph_embed

        log(f"embedding {len(queries)} queries on Lava's built-in processes ...")
        embedded = graph_embed(network, queries, config, backend="loihi", progress=False)
        scores, ids = CosineIndex().add(corpus).search(embedded.astype(np.float32), 3)
        answer: Any = SimpleNamespace(scores=scores, ids=ids)
    else:
        log(f"answering {len(queries)} queries through the Lava process graph ...")
        graph = build(
            network,
            queries,
            config,
            batch_size=len(queries),
            index=CosineIndex().add(corpus, labels=corpus_labels),
            k=3,
        )
        answer = graph.run(progress=False)

    ann_corpus = ann_embed(ckpt.model, corpus_images, batch_size=2000)
    ann_queries = ann_embed(ckpt.model, queries, batch_size=len(queries))
    ann_scores, ann_ids = CosineIndex().add(ann_corpus).search(ann_queries, 3)

    rows = []
    for q, test_id in enumerate(query_ids):
        label = int(data.test_labels[test_id])
        hits = [
            {"corpus_id": int(i), "class": CLASS_NAMES[corpus_labels[i]], "score": float(s)}
            for i, s in zip(answer.ids[q], answer.scores[q], strict=True)
        ]
        rows.append({"test_id": int(test_id), "class": CLASS_NAMES[label], "snn_top3": hits})
        log(f"query test[{test_id}] ({CLASS_NAMES[label]}):")
        for rank, h in enumerate(hits, 1):
            log(f"  {rank}. train[{h['corpus_id']}] {h['class']:<12} cos {h['score']:.3f}")

    rng = np.random.default_rng(seed)
    same_class = [
        rng.choice(np.flatnonzero(corpus_labels == data.test_labels[t]), 3, replace=False)
        for t in query_ids
    ]
    path = _figure(
        out,
        queries,
        data.test_labels[query_ids],
        corpus_images,
        corpus_labels,
        same_class,
        (ann_scores, ann_ids),
        (answer.scores, answer.ids),
    )
    log(f"figure: {path}")
    return {
        "method": chosen.name,
        "backend": backend,
        "queries": rows,
        "figure": str(path),
        "corpus": len(corpus_images),
    }


def _figure(out, queries, labels, corpus_images, corpus_labels, same_class, ann, snn):
    """The paper's Fig 6 layout with labels: column groups (query | same class | ANN top-3 |
    SNN top-3) with headings and separators, the cosine score under each retrieved image, images
    light-on-dark as the data set stores them, a red frame on a result of another class.
    ``ann`` and ``snn`` are ``(scores, ids)`` pairs of shape (queries, 3)."""
    plt = pyplot()

    groups = [("query", 1), ("3 random images of its class", 3), ("ANN top-3", 3), ("SNN top-3", 3)]
    ratios = [1, 0.25, 1, 1, 1, 0.25, 1, 1, 1, 0.25, 1, 1, 1]
    image_columns = [0, 2, 3, 4, 6, 7, 8, 10, 11, 12]
    fig, axes = plt.subplots(
        len(queries),
        len(ratios),
        figsize=(12, len(queries) * 1.3 + 0.9),
        squeeze=False,
        gridspec_kw={"width_ratios": ratios, "wspace": 0.08, "hspace": 0.45},
    )
    for r in range(len(queries)):
        cells = [(queries[r], labels[r], CLASS_NAMES[labels[r]])]
        cells += [(corpus_images[i], corpus_labels[i], "") for i in same_class[r]]
        for scores, ids in (ann, snn):
            cells += [
                (corpus_images[i], corpus_labels[i], f"{s:.3f}")
                for s, i in zip(scores[r], ids[r], strict=True)
            ]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c not in image_columns:
                ax.axis("off")
                continue
            image, label, caption = cells[image_columns.index(c)]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            wrong = c >= 6 and label != labels[r]
            for spine in ax.spines.values():
                spine.set_color("red" if wrong else "0.6")
                spine.set_linewidth(2.5 if wrong else 0.5)
            ax.set_xlabel(caption, fontsize=7, labelpad=2)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.75 / fig.get_figheight(), bottom=0.03)
    # Group headings over the first row, separators between groups.
    top = axes[0, 0].get_position().y1
    column = 0
    for name, width in groups:
        first, last = axes[0, image_columns[column]], axes[0, image_columns[column + width - 1]]
        x = (first.get_position().x0 + last.get_position().x1) / 2
        fig.text(x, top + 0.012, name, ha="center", va="bottom", fontsize=9, weight="bold")
        if column:
            gap = axes[0, image_columns[column] - 1].get_position()
            x_sep = (gap.x0 + gap.x1) / 2
            fig.add_artist(
                plt.Line2D(
                    [x_sep, x_sep],
                    [0.02, top + 0.01],
                    color="0.5",
                    linewidth=1,
                    transform=fig.transFigure,
                )
            )
        column += width
    path = Path(out)
    save_figure(fig, path, dpi=100)
    return path
