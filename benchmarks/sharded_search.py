"""Search sharded over Ray actors (``serve --ray``) at a million images: latency and queries/s
with one and with two actors on this machine, against the search of one process.

    .venv/bin/python benchmarks/sharded_search.py [--index runs/ann-1000000]
        [--out results/bench-sharded.json]

The index is the one ``benchmarks/ann_search.py --corpus 1000000`` leaves in its work directory
(a million augmented Fashion-MNIST images in 16 shards, HNSW32,SQ8). A local Ray instance is
started; for each number of actors the shards are split into that many groups, each actor
builds its own HNSW index over its rows (timed: what a server's start costs), and the recall@10
of the sharded approximate search against the sharded exact one is measured on 200 of the
index's own embeddings. Queries are embeddings of new images (other seeded variants), searched
with ``ImageIndex.search_embeddings`` (the embedding itself is the same work with or without
Ray, and not timed): ``--queries`` one after another at the default ``ef`` (median and p99
latency, queries/s), then ``--exact-queries`` exactly. Before it reports, it checks that the
exact answers of every sharded run equal one process's, bit for bit (ids and scores).

Two actors on a 2-core machine share its cores with the driver and Ray itself: the numbers
show the cost of the fan-out and merge, not the speed-up of more machines.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from checks import command, same

from lava_retrieval.common.atomic import write_text
from lava_retrieval.data.augment import augment
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sharded import RaySearcher
from lava_retrieval.search.sources import catalogue as base_images

ROOT = Path(__file__).resolve().parents[1]


def timed(index: ImageIndex, queries: np.ndarray, **options) -> tuple[dict, list]:
    """Each query searched alone (k = 10): latency statistics and the answers."""
    index.search_embeddings(queries[:3], 10, **options)  # warm-up
    seconds, answers = [], []
    for query in queries:
        start = time.perf_counter()
        hits = index.search_embeddings(query[None], 10, **options)[0]
        seconds.append(time.perf_counter() - start)
        answers.append([(h.id, h.score) for h in hits])
    ms = sorted(1000 * s for s in seconds)
    stats = {
        "queries": len(queries),
        "median_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
        "queries_per_second": round(len(ms) / (sum(ms) / 1000), 1),
    }
    return stats, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "runs" / "ann-1000000")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench-sharded.json")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--exact-queries", type=int, default=20)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    base, _ = base_images(None)
    here = ImageIndex.load(args.index)
    queries = here.embed(augment(base, 0, args.queries, seed=2))
    exact_queries = queries[: args.exact_queries]
    report: dict = {
        "command": command(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or "x86_64"},
        "count": len(here),
        "shards": len(here.index.vectors_.parts),
        "factory": here.approximate.factory,
        "verified": [],
        "runs": [],
    }
    stats, _ = timed(here, queries)
    exact_stats, want = timed(here, exact_queries, exact=True)
    report["one_process"] = {"approximate": stats, "exact": exact_stats}
    del here
    gc.collect()

    for actors in args.actors:
        index = ImageIndex.load(args.index, approximate=False)
        start = time.perf_counter()
        searcher = RaySearcher(index, args.index, "local", actors=actors)
        started = time.perf_counter() - start
        try:
            stats, _ = timed(index, queries)
            exact_stats, got = timed(index, exact_queries, exact=True)
            report["verified"].append(
                same(f"{actors} actors, exact: ids and scores", np.array(got), np.array(want))
            )
            memory = searcher.ray.get([a.memory.remote() for a in searcher.actors])
            report["runs"].append(
                {
                    "actors": actors,
                    "rows": searcher.rows,
                    "start_seconds": round(started, 1),
                    "recall": searcher.recall,
                    "approximate": stats,
                    "exact": exact_stats,
                    "actor_peak_mib": [m["peak_mib"] for m in memory],
                }
            )
            print(json.dumps(report["runs"][-1]), flush=True)
        finally:
            searcher.close()
        del index
        gc.collect()
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
