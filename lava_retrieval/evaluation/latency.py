"""Per-example inference latency of the ANN and the SNN on this machine (Fig 5, Table 3).

Every figure is a median over ``repeats`` measurements, wall-clock, with the energy the machine's
counters report over the same runs (:class:`lava_retrieval.evaluation.energy.EnergyMeter`; ``None``
where it
exposes none).

``ann``
    The torch ANN (``device``: ``cpu`` or ``cuda``), batch 1: one forward pass per image;
    large batch: one forward pass over the whole batch, divided by its size.
``sim``
    The fast simulator (its default engine on the CPU; the torch engine on a GPU): batch 1 one
    image per call; large batch one call over the batch.
``lava``
    The Lava process graph with the fixed-point models on the CPU at batch 1: the runtime's
    start-up (compiling, forking a dozen processes) is excluded as in the paper's Loihi figures:
    ``n`` images run one window after another and the time from the first embedding's arrival
    at the host to the last one's is divided by ``n - 1``. (Its energy, where measured, is the
    whole run's per image, start-up included.)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from lava_retrieval.evaluation.energy import EnergyMeter
from lava_retrieval.snn.config import SimConfig


def _measure(run: Callable[[], int], repeats: int, meter_kind: str) -> dict:
    """Median seconds per example of ``run`` (which returns the examples it processed)."""
    per_example, joules = [], []
    for _ in range(repeats):
        with EnergyMeter(meter_kind) as meter:
            start = time.perf_counter()
            examples = run()
            seconds = time.perf_counter() - start
        per_example.append(seconds / examples)
        if meter.joules is not None:
            joules.append(meter.joules / examples)
    return {
        "ms": 1e3 * statistics.median(per_example),
        "ms_runs": [round(1e3 * s, 5) for s in per_example],
        "mj": 1e3 * statistics.median(joules) if joules else None,
        "energy_source": meter.source,
    }


def ann_latency(
    model, images: np.ndarray, batch_size: int, *, repeats: int = 5, device: str = "cpu"
) -> dict:
    """Per-example latency of the ANN at ``batch_size`` (see the module docstring).

    >>> ann_latency(model, images[:16], 1, repeats=2)["ms"] > 0
    True
    """
    import torch

    from lava_retrieval.ann.inference import to_tensor

    model = model.to(device).eval()
    if batch_size == 1:
        inputs = [to_tensor(images[i : i + 1]).to(device) for i in range(min(len(images), 200))]
    else:
        inputs = [to_tensor(images[:batch_size]).to(device)]

    def run() -> int:
        with torch.no_grad():
            for x in inputs:
                model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        return sum(len(x) for x in inputs)

    run()  # warm-up: allocations, kernels
    result = _measure(run, repeats, "gpu" if device.startswith("cuda") else "cpu")
    model.to("cpu")
    return {"batch_size": batch_size, "device": device, **result}


def sim_latency(
    network,
    images: np.ndarray,
    config: SimConfig,
    *,
    batch_size: int,
    repeats: int = 5,
    device: str = "cpu",
) -> dict:
    """Per-example latency of the fast simulator with ``config``'s time steps, timing and
    engine (see the module docstring)."""
    from lava_retrieval.engines.sim import simulate

    keep = (network.embedding_layer, len(network.layers) - 1)
    if batch_size == 1:
        batches = [images[i : i + 1] for i in range(min(len(images), 50))]
    else:
        batches = [images[:batch_size]]

    def run() -> int:
        for batch in batches:
            chunk = replace(config, chunk_size=len(batch))
            simulate(network, batch, chunk, layers=keep, device=device)
        return sum(len(b) for b in batches)

    simulate(network, images[:2], config, device=device)  # warm-up: compiling
    meter = "cpu" if device == "cpu" else "gpu"
    return {
        "batch_size": batch_size,
        "time_steps": config.time_steps,
        "device": device,
        **_measure(run, repeats, meter),
    }


def lava_latency(
    network,
    images: np.ndarray,
    config: SimConfig,
    *,
    images_per_run: int = 8,
    repeats: int = 3,
) -> dict:
    """Per-example latency of the Lava process graph at batch 1, start-up excluded (see the
    module docstring): the time between the first and the last image's embedding arriving at
    the host, divided by the images in between."""
    from lava_retrieval.lava_graph.graph import build

    if images_per_run < 2:
        raise ValueError("the Lava latency needs at least two images per run")
    per_image, joules = [], []
    source = ""
    for _ in range(repeats):
        graph = build(network, images[:images_per_run], config, batch_size=1)
        with EnergyMeter("cpu") as meter:
            times = graph.run(progress=False).window_times
        source = meter.source
        per_image.append((times[-1] - times[0]) / (len(times) - 1))
        if meter.joules is not None:  # the whole run, start-up included: an upper bound
            joules.append(meter.joules / images_per_run)
    return {
        "batch_size": 1,
        "time_steps": config.time_steps,
        "ms": 1e3 * statistics.median(per_image),
        "ms_runs": [round(1e3 * s, 5) for s in per_image],
        "mj": 1e3 * statistics.median(joules) if joules else None,
        "energy_source": source,
    }
