"""Simulator throughput of the default method and the paper's network against batch size, the
Lava graph on the same images, exact search time.

    .venv/bin/python benchmarks/sim_throughput.py [--out results/bench-sim.json]

Measured in one run on one machine, so the ratios are comparable: images/s of the simulator's two
engines (``events``, the default, and ``torch``) at T = 16 for chunk (batch) sizes 1 to 1,024, for
the default method's network (its timing and readout) and the paper's (Lava's timing), with the
synaptic operations per second per core that this makes (each network's synaptic operations per
image, counted on 1,000 test images, times images/s over the cores); images/s of the Lava graph
(fixed point, batch 256, the paper's network) on the same first images; seconds for an exact
10,000 x 60,000 cosine search of 1,024-dimensional vectors. Target: 4,000 images/s for both
networks. The paper's Loihi figure for comparison: 2.984 ms per image at batch 1 and T = 16 (335
images/s).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time

import numpy as np
from checks import command, same

from lava_retrieval.common.atomic import write_text
from lava_retrieval.common.cores import threads_for
from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS
from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.engines.sim import embed
from lava_retrieval.evaluation import paper
from lava_retrieval.evaluation.energy import op_counts
from lava_retrieval.lava_graph.graph import build
from lava_retrieval.search.index import CosineIndex
from lava_retrieval.snn.network import SpikingNetwork

PAPER_LOIHI_MS_PER_IMAGE = paper.loihi_row(16)["ms"]  # Liu et al. 2022, Table 3
NETWORKS = {
    DEFAULT_METHOD: f"results/snn-32-64-10-{DEFAULT_METHOD}.npz",
    "paper": "results/snn-32-64-10.npz",
}
TARGET = 4000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    parser.add_argument("--images", type=int, default=4096, help="images per batch-size run")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--lava-images", type=int, default=1024)
    parser.add_argument("--out", default="results/bench-sim.json")
    args = parser.parse_args()

    images = load_fashion_mnist().test_images
    threads = threads_for(None)
    rows, methods, verified = [], {}, []
    for name, path in NETWORKS.items():
        network = SpikingNetwork.load(path)
        method = METHODS[name]
        settings = method.sim_config(args.time_steps)
        ops = op_counts(network, images[:1000], settings)["synaptic_ops"]
        want = embed(network, images[: args.images], settings, progress=False)
        methods[name] = {
            "network": path,
            "timing": method.timing,
            "readout": method.readout,
            "event_driven_synaptic_ops_per_image": round(ops),
        }
        for engine in ("events", "torch"):
            for batch in args.batch_sizes:
                # Small batches: fewer images (the same number of calls of the simulator).
                n = min(args.images, max(64, 64 * batch))
                config = method.sim_config(args.time_steps, chunk_size=batch, engine=engine)
                run = functools.partial(embed, network, config=config, progress=False)
                run(images[:batch])  # warm-up: compilation, caches
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    got = run(images[:n])
                    times.append(time.perf_counter() - start)
                verified.append(same(f"{name} {engine} batch {batch}", got, want[:n]))
                rate = n / min(times)
                rows.append(
                    {
                        "method": name,
                        "engine": engine,
                        "batch_size": batch,
                        "images": n,
                        "seconds": round(min(times), 3),
                        "images_per_second": round(rate, 1),
                        "equivalent_synaptic_ops_per_second_per_core": round(rate * ops / threads),
                    }
                )
                print(rows[-1], flush=True)
    paper_network = SpikingNetwork.load(NETWORKS["paper"])
    lava = build(
        paper_network,
        images[: args.lava_images],
        METHODS["paper"].sim_config(args.time_steps),
        batch_size=256,
    )
    lava = lava.run(progress=False)
    paper_embeddings = embed(
        paper_network,
        images[: args.lava_images],
        METHODS["paper"].sim_config(args.time_steps),
        progress=False,
    )
    verified.append(same("the Lava graph (paper)", lava.embeddings, paper_embeddings))
    rng = np.random.default_rng(0)
    corpus = rng.random((60000, 1024), dtype=np.float32)
    queries = rng.random((10000, 1024), dtype=np.float32)
    index = CosineIndex().add(corpus)
    start = time.perf_counter()
    _, found = index.search(queries, 3)
    search_seconds = time.perf_counter() - start
    unit = corpus / np.linalg.norm(corpus.astype(np.float64), axis=1, keepdims=True)
    brute = np.argsort(-(queries[:100].astype(np.float64) @ unit.T), axis=1, kind="stable")[:, :3]
    verified.append(same("exact search, top 3 of 100 queries", found[:100], brute))
    best = {
        name: {
            engine: max(
                r["images_per_second"]
                for r in rows
                if r["engine"] == engine and r["method"] == name
            )
            for engine in ("events", "torch")
        }
        for name in NETWORKS
    }
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "time_steps": args.time_steps,
        "repeats": args.repeats,
        "threads": threads,
        "methods": methods,
        "default_method": DEFAULT_METHOD,
        "sim": rows,
        "sim_best_images_per_second": best,
        "sim_batch1_images_per_second": {
            name: {
                r["engine"]: r["images_per_second"]
                for r in rows
                if r["method"] == name and r["batch_size"] == 1
            }
            for name in NETWORKS
        },
        "lava_graph": {
            "images": args.lava_images,
            "batch_size": 256,
            "images_per_second": round(args.lava_images / lava.seconds, 1),
        },
        "search_10000x60000_seconds": round(search_seconds, 2),
        "paper_loihi_images_per_second": round(1000 / PAPER_LOIHI_MS_PER_IMAGE, 1),
        "target_images_per_second": TARGET,
        "verified": verified,
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
