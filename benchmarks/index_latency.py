"""Time to build an index of the 60,000 training images, and per-query latency at k = 10.

    .venv/bin/python benchmarks/index_latency.py [--out results/bench-index.json]

Measured in one run on one machine with the default method's network (what `index build`
uses without --network) and its settings at its T: the seconds of `index build
fashion-mnist:full_train` (reading, simulating, normalising, writing the directory), then the
latency of one query at a time (`search` of a single image, k = 10) through the simulator,
through a Lava process graph built for the query (encoder, layers, probe, CosineKNN over the
60,000 embeddings: what `search --backend lava` does), and through one resident Lava graph
started once (what `serve --backend lava` keeps; its start-up reported apart), as the median
over repeated queries, plus the time to load the index directory. Target for the resident
graph: 200 ms.

Before it reports, it checks the answers it timed: every query the Lava graph and the resident
graph answered gets the same ids and scores from the simulator (one query at a time, as timed), bit
for bit, and the index read back answers the first queries as the index built did.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from checks import command, same

from lava_retrieval.common.atomic import write_text
from lava_retrieval.conversion.methods import DEFAULT_METHOD, get
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import read_source


def _median_seconds(run, repeats: int) -> tuple[float, list[float], dict]:
    """The median of ``repeats`` calls of ``run`` (which answers a query number and its hits),
    every call's seconds, and the answers by query number."""
    times, answers = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        query, hits = run()
        times.append(time.perf_counter() - start)
        answers[query] = hits
    return statistics.median(times), times, answers


def _answers(hits) -> list[tuple[int, float]]:
    return [(hit.id, hit.score) for hit in hits]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-steps", type=int, help="default: the method's")
    parser.add_argument("--corpus", type=int, default=60000)
    parser.add_argument("--sim-queries", type=int, default=50)
    parser.add_argument("--lava-queries", type=int, default=5)
    parser.add_argument("--resident-queries", type=int, default=20)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--out", default="results/bench-index.json")
    args = parser.parse_args()

    data = load_fashion_mnist()
    method = get(DEFAULT_METHOD)
    network = method.network(data)
    steps = args.time_steps or method.time_steps[0]
    config = method.sim_config(steps)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        source = read_source("fashion-mnist:full_train", limit=args.corpus)
        index = ImageIndex(network, config).add(source, progress=True)
        index.save(Path(tmp) / "index")
        build_seconds = time.perf_counter() - start
        queries = data.test_images
        built = [_answers(h) for h in index.search(queries[:8], args.k)]
        start = time.perf_counter()
        index = ImageIndex.load(Path(tmp) / "index")
        load_seconds = time.perf_counter() - start
    loaded = [_answers(h) for h in index.search(queries[:8], args.k)]
    verified = [same("the loaded index, 8 queries", loaded, built)]
    counter = iter(range(len(queries)))

    def one(**options):
        query = next(counter)
        return query, index.search(queries[query][None], args.k, **options)[0]

    sim, sim_all, _ = _median_seconds(one, args.sim_queries)
    lava, lava_all, lava_answers = _median_seconds(lambda: one(backend="lava"), args.lava_queries)
    start = time.perf_counter()
    with index.resident_graph() as graph:
        startup = time.perf_counter() - start
        index.search(queries[:1], args.k, graph=graph)  # warm-up: the first windows
        resident, resident_all, resident_answers = _median_seconds(
            lambda: one(graph=graph), args.resident_queries
        )
    for name, answers in (("lava", lava_answers), ("the resident graph", resident_answers)):
        numbers = sorted(answers)
        got = [_answers(answers[q]) for q in numbers]
        # One query at a time, as timed (a batch's float32 products may round otherwise).
        want = [_answers(index.search(queries[q][None], args.k)[0]) for q in numbers]
        verified.append(same(f"{name}, {len(numbers)} queries, against the simulator", got, want))
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "method": method.name,
        "simulation": config.settings(),
        "corpus": len(index),
        "k": args.k,
        "build_seconds": round(build_seconds, 2),
        "build_images_per_second": round(len(index) / build_seconds, 1),
        "load_seconds": round(load_seconds, 3),
        "query_ms": {
            "sim": round(1000 * sim, 2),
            "lava": round(1000 * lava, 1),
            "lava_resident": round(1000 * resident, 1),
        },
        "query_ms_all": {
            "sim": [round(1000 * t, 2) for t in sim_all],
            "lava": [round(1000 * t, 1) for t in lava_all],
            "lava_resident": [round(1000 * t, 1) for t in resident_all],
        },
        "resident_startup_seconds": round(startup, 2),
        "target_resident_ms": 200,
        "verified": verified,
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
