"""Simulator throughput of each method's network and timing, in one run.

    .venv/bin/python benchmarks/method_throughput.py [--out results/bench-methods.json]

Images/s at T = 16 of every method (``paper``: Lava timing; ``qcfs``: pipelined;
``qcfs-exact``: the exact-count schedule; ``qcfs-graded``: graded spikes; ``qcfs8-analog``, the
default: an analog input, whose first layer's constant current is computed once per image, and
the exact-count schedule; ``qcfs8-analog-graded``) with each simulator engine, on the same
10,000 test images in chunks of 1,024, best of three runs, measured in one run on one machine
so that the ratios compare; with each method's spikes (messages, for graded spikes and an
analog input) and event-driven synaptic operations per image (the operations a chip driven by
spikes would do: not what the dense or closed-form engines compute) from the same simulation,
and the chip steps one image occupies. Before it reports, it checks that both engines' embeddings
of all the timed images are equal bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from checks import command, same

from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.cores import threads_for
from lava_retrieval.conversion.methods import METHODS
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.engines.sim import embed
from lava_retrieval.evaluation.energy import chip_steps, op_counts
from lava_retrieval.snn.network import SpikingNetwork

NETWORKS = {
    "paper": "results/snn-32-64-10.npz",
    "qcfs": "results/snn-32-64-10-qcfs16.npz",
    "qcfs-exact": "results/snn-32-64-10-qcfs16.npz",
    "qcfs-graded": "results/snn-32-64-10-qcfs16.npz",
    "qcfs8-analog": "results/snn-32-64-10-qcfs8-analog.npz",
    "qcfs8-analog-graded": "results/snn-32-64-10-qcfs8-analog.npz",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/bench-methods.json")
    args = parser.parse_args()

    images = load_fashion_mnist().test_images[: args.images]
    rows, verified = [], []
    for name, path in NETWORKS.items():
        method = METHODS[name]
        network = SpikingNetwork.load(path)
        counts = op_counts(network, images[:1000], method.sim_config(args.time_steps))
        embeddings = {}
        for engine in ("events", "torch"):
            config = method.sim_config(args.time_steps, chunk_size=args.chunk_size, engine=engine)
            embed(network, images[: args.chunk_size], config, progress=False)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                embeddings[engine] = embed(network, images, config, progress=False)
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "method": name,
                    "timing": method.timing,
                    "engine": engine,
                    "images_per_second": round(len(images) / min(times), 1),
                    "spikes_per_image": counts["spikes"],
                    "event_driven_synaptic_ops_per_image": counts["synaptic_ops"],
                    "chip_steps_per_image": chip_steps(network, args.time_steps, method.timing),
                }
            )
            print(rows[-1], flush=True)
        verified.append(
            same(f"{name}: torch against events", embeddings["torch"], embeddings["events"])
        )
    report = {
        "command": command(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or "unknown"},
        "threads": threads_for(None),
        "time_steps": args.time_steps,
        "images": len(images),
        "chunk_size": args.chunk_size,
        "repeats": args.repeats,
        "rows": rows,
        "verified": verified,
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
