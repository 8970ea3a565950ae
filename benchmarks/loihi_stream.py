"""The Loihi path (Lava's Conv/Dense + LIFReset, simulated on the CPU) streaming image after
image in one graph, against one graph per image (how it ran before it could stream).

    .venv/bin/python benchmarks/loihi_stream.py [--out results/bench-loihi-stream.json]

Measured in one run on one machine: the shipped ANN converted for Lava's built-ins (zero
reset, 8-bit weights, pooling as its own layers, initial membrane 0.5), T = 16, the membrane
readout. For each timing the Loihi path runs (``delay``: one flush step per window;
``pipelined``), the seconds to embed ``--images`` test images in one graph, and per image
through a graph of its own (``--single`` images; its start-up is most of it), the images per
second of both and their ratio, and the median latency of one query through a resident Loihi
graph. Every embedding is checked against the simulator's (the same integers, or the run fails).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
from checks import command

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.common.atomic import write_text
from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert
from lava_retrieval.conversion.methods import METHODS
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.engines.sim import readout_of, simulate
from lava_retrieval.lava_graph.graph import build
from lava_retrieval.lava_graph.resident import ResidentGraph
from lava_retrieval.loihi import lowering

CONVERSION = ConversionConfig(reset="zero", num_weight_bits=8, initial_membrane=0.5)


def _timing(network, images, single, queries, config) -> dict:
    want = readout_of(network, simulate(network, images, config), "membrane")
    start = time.perf_counter()
    graph = build(network, images, config, backend="loihi")
    streamed = graph.run(progress=True).embeddings
    stream_seconds = time.perf_counter() - start
    np.testing.assert_array_equal(streamed, want)
    start = time.perf_counter()
    for i in range(single):
        alone = build(network, images[i : i + 1], config, backend="loihi").run(False)
        np.testing.assert_array_equal(alone.embeddings, want[i : i + 1])
    single_seconds = (time.perf_counter() - start) / single
    with ResidentGraph(network, config, backend="loihi") as resident:
        startup = resident.startup_seconds
        resident.embed(images[:1])  # warm-up: the first windows
        latencies = []
        for i in range(queries):
            start = time.perf_counter()
            got = resident.embed(images[i : i + 1])
            latencies.append(time.perf_counter() - start)
            np.testing.assert_array_equal(got, want[i : i + 1])
    return {
        "steps_per_image": graph.time_steps,
        "lead_steps": graph.time_steps - config.time_steps,
        "stream_seconds": round(stream_seconds, 2),
        "stream_images_per_second": round(len(images) / stream_seconds, 2),
        "single_graph_seconds_per_image": round(single_seconds, 2),
        "single_images_per_second": round(1 / single_seconds, 3),
        "speedup": round(single_seconds * len(images) / stream_seconds, 1),
        "resident_query_ms": round(1000 * statistics.median(latencies), 1),
        "resident_startup_seconds": round(startup, 2),
        "equal_to_simulator": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images streamed per timing")
    parser.add_argument("--single", type=int, default=6, help="images run one graph each")
    parser.add_argument("--queries", type=int, default=10, help="resident single-image queries")
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--out", default="results/bench-loihi-stream.json")
    args = parser.parse_args()

    data = load_fashion_mnist()
    train_images, _ = data.split("train")
    calibration = train_images[calibration_indices(len(train_images), CONVERSION)]
    network = convert(load_checkpoint().model, calibration, CONVERSION)
    lowering.check(network, "loihi")
    images = data.test_images[: args.images]
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "network": "32-64-10, zero reset, 8-bit weights, separate pooling, initial membrane 0.5",
        "time_steps": args.time_steps,
        "images": len(images),
        "single_images": args.single,
        "timings": {
            timing: _timing(
                network,
                images,
                args.single,
                args.queries,
                METHODS["paper"].sim_config(args.time_steps, timing=timing),
            )
            for timing in lowering.STREAM_TIMINGS
        },
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
