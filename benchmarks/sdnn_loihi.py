"""The sigma-delta method (``qcfs8-sdnn``) on Lava's own Loihi 2 processes, simulated on the
CPU, against the simulator and the project's own Lava graph.

    .venv/bin/python benchmarks/sdnn_loihi.py [--out results/bench-sdnn.json]

Measured in one run on one machine, every embedding checked against the simulator's (the same
integers, or the run fails): images per second of

* ``sim``: the simulator (its dense engine, the only one that runs ``sigma_delta``);
* ``lava``: the project's Lava graph (its IFLayer models, fixed point, batches of 256);
* ``loihi``: Lava's ``Delta``/``Conv``/``SigmaDelta``/``Dense``/``Sigma``, streamed one image
  per step, with the project's bit-exact ``Conv`` model (the default) and with Lava's own
  (``--lava-conv-images`` images: it is the slow part);
* ``loihi`` in the ``reset`` mode (Lava 0.10's own models, the graph cleared between images);

each including the graph's start-up, and the median latency of one query through a resident
``loihi`` graph (after a warm-up query), with its start-up.
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

from lava_retrieval.common.atomic import write_text
from lava_retrieval.conversion.methods import resolve
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.embedding.files import embed
from lava_retrieval.lava_graph.resident import ResidentGraph
from lava_retrieval.lava_graph.sdnn_graph import SdnnGraph


def _timed(run, want: np.ndarray) -> dict:
    start = time.perf_counter()
    got = run()
    seconds = time.perf_counter() - start
    np.testing.assert_array_equal(got, want)
    return {
        "images": len(want),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(want) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images embedded per engine")
    parser.add_argument("--lava-conv-images", type=int, default=40, help="with Lava's Conv")
    parser.add_argument("--reset-images", type=int, default=4, help="in the reset mode")
    parser.add_argument("--queries", type=int, default=20, help="resident single-image queries")
    parser.add_argument("--out", default="results/bench-sdnn.json")
    args = parser.parse_args()

    data = load_fashion_mnist()
    resolved = resolve(method="qcfs8-sdnn", dataset=data)
    network, config = resolved.network, resolved.config
    images = data.test_images[: args.images]
    want = embed(network, images, config, progress=False)
    rows = {
        "sim": _timed(lambda: embed(network, images, config, progress=False), want),
        "lava": _timed(
            lambda: embed(network, images, config, backend="lava", progress=False), want
        ),
        "loihi": _timed(
            lambda: embed(network, images, config, backend="loihi", progress=False), want
        ),
    }
    few = images[: args.lava_conv_images]
    rows["loihi, Lava's own Conv model"] = _timed(
        lambda: SdnnGraph(network, few, fast_conv=False).run().embeddings, want[: len(few)]
    )
    few = images[: args.reset_images]
    rows["loihi, reset mode (Lava 0.10's own models)"] = _timed(
        lambda: SdnnGraph(network, few, mode="reset").run().embeddings, want[: len(few)]
    )
    with ResidentGraph(network, config, backend="loihi") as resident:
        startup = resident.startup_seconds
        resident.embed(images[:1])
        latencies = []
        for i in range(args.queries):
            start = time.perf_counter()
            got = resident.embed(images[i : i + 1])
            latencies.append(time.perf_counter() - start)
            np.testing.assert_array_equal(got, want[i : i + 1])
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "method": "qcfs8-sdnn",
        "network_fingerprint": network.fingerprint(),
        "rows": rows,
        "resident": {
            "queries": args.queries,
            "median_ms": round(1000 * statistics.median(latencies), 1),
            "startup_seconds": round(startup, 2),
        },
        "targets": {"loihi_images_per_second": 100, "resident_query_ms": 200},
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
