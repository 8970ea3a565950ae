"""Recall@10 against queries per second of the exact and the approximate indexes (faiss), on
spiking embeddings of a Fashion-MNIST catalogue of up to a million images.

    .venv/bin/python benchmarks/ann_search.py [--corpus 70000] [--out results/bench-ann.json]
    .venv/bin/python benchmarks/ann_search.py --corpus 1000000 --out results/bench-ann-1m.json

The catalogue is the 70,000 Fashion-MNIST images, or with ``--corpus`` above that,
``fashion-mnist:augmented:N`` (seeded crops, shifts and flips of them); the queries are 1,000
other variants (another seed). The catalogue is built as ``index build`` builds it (read,
embedded with the default method's network at its T and spilled to memory-mapped shards chunk
by chunk; its time is reported apart) into ``--work`` (kept: a second run reuses it), then each
approximate index type is built from the shards (build seconds, size of its file, peak memory)
and each search knob value answers the queries one at a time, as a service does, its recall@10
measured on all the queries against the exact top 10 (a result counts when its exact score
reaches the exact tenth best). Queries per second, for the exact index and every knob value
alike: the same ``--speed-queries`` queries (all of them up to 100,000 images, else the first
200: the exact index reads every shard for each), one warm-up pass, the median of 3 passes. A
row's knob value is the one the search used (an ``ef`` below the candidates the index proposes,
4 x k, is raised to them; a value that searches as the one before is not repeated), with the
value asked beside it. Target: recall@10 at least 0.99 at 20 times the exact index's queries
per second or more. The HNSW index is saved into the work directory, which is then an index
that ``serve`` and ``benchmarks/service_load.py`` use. Also writes a plot of recall against
queries per second beside the JSON (the ann-benchmarks layout).
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
from checks import command

from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.figures import pyplot, save_figure
from lava_retrieval.conversion.methods import DEFAULT_METHOD, get
from lava_retrieval.data.augment import augment
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.embedding.files import embed
from lava_retrieval.search.approximate import ApproximateIndex, kth_scores, recall_at_k
from lava_retrieval.search.build import build_index
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import normalize
from lava_retrieval.search.sources import plan_source, read_source

KNOBS = {
    "hnsw": ("ef", (16, 32, 64, 128, 256, 512, 1024)),
    "ivf": ("nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256)),
    "ivf-pq": ("nprobe", (1, 2, 4, 8, 16, 32, 64, 128, 256)),
}
TARGET_RECALL, TARGET_SPEED_UP = 0.99, 20


def _peak_mib() -> float:
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _per_second(search, queries: np.ndarray, passes: int = 3) -> float:
    """Queries per second answering one query at a time: one warm-up pass, then the median of
    ``passes``."""
    for q in queries:
        search(q[None])
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for q in queries:
            search(q[None])
        rates.append(len(queries) / (time.perf_counter() - start))
    return statistics.median(rates)


def catalogue(work: Path, count: int, network, config) -> tuple[ImageIndex, dict]:
    """The catalogue's exact index in ``work``, built (its stage times in ``work``.json) or
    reused: up to 70,000 images, the training then the test images of Fashion-MNIST; more,
    ``fashion-mnist:augmented:N``."""
    stats_path = work.with_suffix(".json")
    if (work / "index.json").is_file() and stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        index = ImageIndex.load(work)
        if len(index) == count and stats.get("count") == count:
            print(f"reusing {work} ({count:,} images)", flush=True)
            return index, stats
        raise SystemExit(f"{work} holds another catalogue: remove it or choose another --work")
    index = ImageIndex(network, config)
    if count <= 70_000:
        plan, source = plan_source("fashion-mnist:full_train", limit=count), "fashion-mnist"
    else:
        plan = plan_source(f"fashion-mnist:augmented:{count}")
        source = plan.source
    start = time.perf_counter()
    build_index(index, plan, work, progress=True)
    if count > 60_000 and count <= 70_000:  # the test images after the training images
        rest = read_source("fashion-mnist:test", limit=count - 60_000)
        index = ImageIndex.extend(work, rest, allow_duplicates=True)  # (the corpus as it was)
    seconds = time.perf_counter() - start  # (with the writing of the shards)
    stats = {
        "count": len(index),
        "source": source,
        "embed_seconds": round(seconds, 1),
        "embed_images_per_second": round(len(index) / seconds, 1),
        "embed_peak_rss_mib": round(_peak_mib()),
    }
    write_text(stats_path, json.dumps(stats, indent=2) + "\n")
    return ImageIndex.load(work), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=70_000, help="catalogue size")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--speed-queries",
        type=int,
        help="queries every index answers for its speed (default: all up to 100,000 images, "
        "else 200)",
    )
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--types", default="hnsw,ivf,ivf-pq")
    parser.add_argument("--work", help="catalogue index directory (default: runs/ann-N)")
    parser.add_argument("--out", default="results/bench-ann.json")
    args = parser.parse_args()
    work = Path(args.work or f"runs/ann-{args.corpus}")

    data = load_fashion_mnist()
    method = get(DEFAULT_METHOD)
    network = method.network(data)
    config = method.sim_config()
    index, stats = catalogue(work, args.corpus, network, config)
    exact = index.index
    images = np.concatenate([data.train_images, data.test_images])
    queries = normalize(embed(network, augment(images, 0, args.queries, seed=1), config))
    peaks = {"catalogue": round(_peak_mib())}

    few = args.speed_queries or (len(queries) if len(exact) <= 100_000 else 200)
    exact_qps = _per_second(lambda q: exact.search(q, args.k), queries[:few])
    print(f"exact: {exact_qps:.1f} queries/s", flush=True)
    truth = kth_scores(exact, queries, args.k)  # once, for every knob value
    peaks["exact"] = round(_peak_mib())
    rows = [{"index": "exact", "knob": None, "value": None, "recall": 1.0, "qps": exact_qps}]
    builds = {}
    for index_type in args.types.split(","):
        start = time.perf_counter()
        approximate = ApproximateIndex.build(exact.vectors_, index_type, progress=True)
        seconds = time.perf_counter() - start
        approximate.write(work.with_suffix(".faiss"))
        builds[index_type] = {
            "factory": approximate.factory,
            "build_seconds": round(seconds, 1),
            "bytes": work.with_suffix(".faiss").stat().st_size,
        }
        work.with_suffix(".faiss").unlink()
        peaks[index_type] = round(_peak_mib())
        print(index_type, builds[index_type], flush=True)
        knob, values = KNOBS[index_type]
        used_before = None
        for value in values:
            setting = {knob: value}
            used = approximate.knobs_used(approximate.candidates(args.k), **{knob: value})
            if used == used_before:
                continue  # the same search as the row before
            used_before = used
            recall = recall_at_k(
                exact, approximate, queries=queries, k=args.k, truth=truth, **setting
            )
            qps = _per_second(
                lambda q, a=approximate, s=setting: a.search(q, args.k, **s), queries[:few]
            )
            rows.append(
                {
                    "index": index_type,
                    "knob": knob,
                    "value": used[knob],
                    "asked": value,
                    "recall": round(recall["recall_at_k"], 4),
                    "qps": qps,
                }
            )
            print(rows[-1], flush=True)
        if index_type == "hnsw":  # the work directory becomes an HNSW index (for serve)
            index.index_type, index.approximate = "hnsw", approximate
            index.recall = recall_at_k(exact, approximate)
            index.save(work)
            index.approximate = None
        del approximate  # one approximate index in memory at a time
    for row in rows:
        row["speed_up"] = round(row["qps"] / exact_qps, 2)
        row["qps"] = round(row["qps"], 1)
    good = [r for r in rows if r["index"] != "exact" and r["recall"] >= TARGET_RECALL]
    best = max(good, key=lambda r: r["qps"]) if good else None
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "method": method.name,
        "simulation": config.settings(),
        "corpus": len(exact),
        "source": stats["source"],
        "dimension": int(exact.dim_),
        "queries": len(queries),
        "speed_queries": few,
        "passes": 3,
        "k": args.k,
        "embed_seconds": stats["embed_seconds"],
        "embed_images_per_second": stats["embed_images_per_second"],
        "exact_bytes": int(exact.vectors_.nbytes),
        "shards": len(exact.vectors_.parts),
        "builds": builds,
        "peak_rss_mib": {"embedding": stats.get("embed_peak_rss_mib"), **peaks},
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
