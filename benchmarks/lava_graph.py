"""Lava process graph throughput (fixed point) and batch-1 latency per image.

    .venv/bin/python benchmarks/lava_graph.py [--images 10000] [--batch-size 256]
        [--latency-images 30] [--out results/bench-lava-graph.json]

Writes one JSON object: machine, network, images/s at the given batch size, seconds for all
images, and the wall-clock latency of one image at batch 1: a run of ``--latency-images``
images and a run of twice as many, one window after another, whose difference over
``--latency-images`` is the cost of one image without the graph's compilation and start-up;
the median of ``--latency-repeats`` such pairs, every pair's value recorded.

Before it reports, it checks the graph's embeddings (of all the images at the batch size, and of
each batch-1 run) against the simulator's, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from checks import command, same

from lava_retrieval.common.atomic import write_text
from lava_retrieval.conversion.methods import METHODS
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.engines.sim import embed
from lava_retrieval.lava_graph.graph import build
from lava_retrieval.snn.network import SpikingNetwork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="results/snn-32-64-10.npz")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--latency-images", type=int, default=30)
    parser.add_argument("--latency-repeats", type=int, default=3)
    parser.add_argument("--out", default="results/bench-lava-graph.json")
    args = parser.parse_args()

    network = SpikingNetwork.load(args.network)
    images = load_fashion_mnist().test_images[: args.images]
    config = METHODS["paper"].sim_config(args.time_steps)
    want = embed(network, images, config, progress=False)
    result = build(network, images, config, batch_size=args.batch_size).run()
    verified = [same(f"batch {args.batch_size}, {len(images):,} images", result.embeddings, want)]
    # Batch 1: the run's wall time includes compiling and starting the processes once; a
    # second run of twice the images isolates the per-image cost.
    n = args.latency_images
    pairs, per_image = [], []
    for _ in range(args.latency_repeats):
        timings = []
        for count in (n, 2 * n):
            start = time.perf_counter()
            got = build(network, images[:count], config, batch_size=1).run(progress=False)
            timings.append(time.perf_counter() - start)
            verified.append(same(f"batch 1, {count} images", got.embeddings, want[:count]))
        pairs.append([round(t, 3) for t in timings])
        per_image.append((timings[1] - timings[0]) / n)
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "network": args.network,
        "time_steps": args.time_steps,
        "backend": "lava",
        "throughput": {
            "images": len(images),
            "batch_size": args.batch_size,
            "seconds": round(result.seconds, 2),
            "images_per_second": round(len(images) / result.seconds, 1),
        },
        "batch1_latency": {
            "images": n,
            "seconds_per_image": round(statistics.median(per_image), 5),
            "pairs_seconds_per_image": [round(t, 5) for t in per_image],
            "runs_seconds": pairs,
        },
        "verified": verified,
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
