"""Lava process graph throughput (fixed point) and batch-1 latency per image.

    .venv/bin/python benchmarks/lava_graph.py [--images 10000] [--batch-size 256]
        [--latency-images 30] [--out results/bench-lava-graph.json]

Writes one JSON object: machine, network, images/s at the given batch size, seconds for all
images, and the mean/median wall-clock latency of one image at batch 1 (graph compilation and
process start-up excluded: each run presents ``--latency-images`` images one window after
another and the total is divided by their number).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from lava_retrieval.common.atomic import write_text
from lava_retrieval.conversion.methods import METHODS
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.lava_graph.graph import build
from lava_retrieval.snn.network import SpikingNetwork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="results/snn-32-64-10.npz")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--latency-images", type=int, default=30)
    parser.add_argument("--out", default="results/bench-lava-graph.json")
    args = parser.parse_args()

    network = SpikingNetwork.load(args.network)
    images = load_fashion_mnist().test_images[: args.images]
    graph = build(
        network,
        images,
        METHODS["paper"].sim_config(args.time_steps),
        batch_size=args.batch_size,
    )
    result = graph.run()
    # Batch 1: the run's wall time includes compiling and starting the processes once; a
    # second run of twice the images isolates the per-image cost.
    n = args.latency_images
    timings = []
    for count in (n, 2 * n):
        start = time.perf_counter()
        build(
            network,
            images[:count],
            METHODS["paper"].sim_config(args.time_steps),
            batch_size=1,
        ).run(progress=False)
        timings.append(time.perf_counter() - start)
    per_image = (timings[1] - timings[0]) / n
    report = {
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
            "seconds_per_image": round(per_image, 5),
            "runs_seconds": [round(t, 3) for t in timings],
        },
        "embedding_checksum": float(np.abs(result.embeddings).sum()),
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
