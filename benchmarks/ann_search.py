"""Recall@10 against queries per second of the exact and the approximate indexes (faiss), on
spiking embeddings of a Fashion-MNIST catalogue.

    .venv/bin/python benchmarks/ann_search.py [--corpus 70000] [--out results/bench-ann.json]

The catalogue is the 70,000 Fashion-MNIST images, or with ``--corpus`` above that, seeded
variants of them (:mod:`lava_retrieval.data.augment`: crops, shifts, flips); the queries are
1,000 other variants (another seed). All are embedded with the default method's network at its
T (what ``index build`` does; its time is reported apart). Each index type is built on the
catalogue (build seconds, size of its saved bytes), then each search knob value answers the
queries one at a time, as a service does (queries per second: the median of 3 passes), and its
recall@10 is measured against the exact top 10 (a result counts when its exact score reaches
the exact tenth best). The exact index answers the same queries the same way. Target: recall@10
at least 0.99 at 20 times the exact index's queries per second or more. Also writes a plot of
recall against queries per second beside the JSON (the ann-benchmarks layout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.figures import pyplot, save_figure
from lava_retrieval.conversion.methods import DEFAULT_METHOD, get
from lava_retrieval.data.augment import augment
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.lava_graph.embedding import embed
from lava_retrieval.search.approximate import ApproximateIndex, recall_at_k
from lava_retrieval.search.index import CosineIndex, normalize
from lava_retrieval.snn.config import SimConfig

KNOBS = {
    "hnsw": ("ef", (10, 16, 32, 64, 128, 256, 512, 1024)),
    "ivf": ("nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256)),
    "ivf-pq": ("nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256)),
}
TARGET_RECALL, TARGET_SPEED_UP = 0.99, 20


def _peak_mib() -> float:
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _per_second(search, queries: np.ndarray, passes: int = 3) -> float:
    """Queries per second answering one query at a time (median of ``passes``)."""
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for q in queries:
            search(q[None])
        rates.append(len(queries) / (time.perf_counter() - start))
    return statistics.median(rates)


def catalogue(data, count: int, seed: int) -> np.ndarray:
    """The 70,000 images, or ``count`` seeded variants of them when more are asked for."""
    images = np.concatenate([data.train_images, data.test_images])
    return images[:count] if count <= len(images) else augment(images, 0, count, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=70_000, help="catalogue size")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--types", default="hnsw,ivf,ivf-pq")
    parser.add_argument("--out", default="results/bench-ann.json")
    args = parser.parse_args()

    data = load_fashion_mnist()
    method = get(DEFAULT_METHOD)
    network = method.network(data)
    config = SimConfig(method.time_steps[0], method.timing, method.readout)
    images = np.concatenate([data.train_images, data.test_images])
    start = time.perf_counter()
    corpus = embed(network, catalogue(data, args.corpus, seed=0), config, progress=True)
    embed_seconds = time.perf_counter() - start
    queries = normalize(embed(network, augment(images, 0, args.queries, seed=1), config))
    exact = CosineIndex().add(corpus)
    del corpus
    peaks = {"embedded": round(_peak_mib())}

    exact_qps = _per_second(lambda q: exact.search(q, args.k), queries)
    rows = [{"index": "exact", "knob": None, "value": None, "recall": 1.0, "qps": exact_qps}]
    builds = {}
    for index_type in args.types.split(","):
        start = time.perf_counter()
        approximate = ApproximateIndex.build(exact.vectors_, index_type)
        seconds = time.perf_counter() - start
        builds[index_type] = {
            "factory": approximate.factory,
            "build_seconds": round(seconds, 1),
            "bytes": len(approximate.to_bytes()),
        }
        peaks[index_type] = round(_peak_mib())
        knob, values = KNOBS[index_type]
        for value in values:
            setting = {knob: value}
            recall = recall_at_k(exact, approximate, queries=queries, k=args.k, **setting)
            qps = _per_second(lambda q, a=approximate, s=setting: a.search(q, args.k, **s), queries)
            rows.append(
                {
                    "index": index_type,
                    "knob": knob,
                    "value": value,
                    "recall": round(recall["recall_at_k"], 4),
                    "qps": qps,
                }
            )
            print(rows[-1], flush=True)
        del approximate  # one approximate index in memory at a time
    for row in rows:
        row["speed_up"] = round(row["qps"] / exact_qps, 2)
        row["qps"] = round(row["qps"], 1)
    good = [r for r in rows if r["index"] != "exact" and r["recall"] >= TARGET_RECALL]
    best = max(good, key=lambda r: r["qps"]) if good else None
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "method": method.name,
        "simulation": config.settings(),
        "corpus": len(exact),
        "dimension": int(exact.dim_),
        "queries": len(queries),
        "k": args.k,
        "embed_seconds": round(embed_seconds, 1),
        "embed_images_per_second": round(len(exact) / embed_seconds, 1),
        "exact_bytes": int(exact.vectors_.nbytes),
        "builds": builds,
        "peak_rss_mib": peaks,
        "rows": rows,
        "target": {"recall": TARGET_RECALL, "speed_up": TARGET_SPEED_UP},
        "best_at_target_recall": best,
        "target_met": bool(best and best["speed_up"] >= TARGET_SPEED_UP),
        "figure": Path(args.out).with_suffix(".png").name,
    }
    plot(report, Path(args.out).with_suffix(".png"))
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))


def plot(report: dict, out: Path) -> Path:
    """Recall@k against queries per second (log), one line per index type."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index_type in report["builds"]:
        rows = [r for r in report["rows"] if r["index"] == index_type]
        ax.plot([r["recall"] for r in rows], [r["qps"] for r in rows], "o-", label=index_type)
        for r in rows:
            ax.annotate(str(r["value"]), (r["recall"], r["qps"]), fontsize=7, alpha=0.7)
    exact = report["rows"][0]
    ax.axhline(exact["qps"], color="k", ls="--", lw=1, label="exact")
    ax.axvline(report["target"]["recall"], color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{report['k']}")
    ax.set_ylabel("queries per second (one at a time)")
    ax.set_title(f"{report['corpus']:,} spiking embeddings of {report['dimension']} dimensions")
    ax.legend()
    return save_figure(fig, out)


if __name__ == "__main__":
    main()
