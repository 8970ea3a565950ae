"""Choosing the activation percentile of Algorithm 1 on the validation split.

Algorithm 1 sets each layer's threshold from a percentile of its simulated input rate on
calibration images (the paper's 99.999th). Which percentile serves a given number of time
steps, timing and initial potential best is an empirical question; :func:`calibrate` answers it
on the validation split (the last 10 % of the training images, which the ANN was not trained
on), never on the test split: it converts the checkpoint once per candidate, simulates the
validation images and keeps the percentile with the highest classification accuracy (its mean
over the time steps asked for; ties: the larger percentile, the paper's direction).
``lava-retrieval calibrate`` is its command.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.conversion.algorithm import ConversionConfig, convert_checkpoint
from lava_retrieval.conversion.methods import get
from lava_retrieval.engines.sim import simulate
from lava_retrieval.search.metrics import classification_accuracy, predict_classes
from lava_retrieval.snn.config import SimConfig

PERCENTILES = (99.0, 99.5, 99.9, 99.99, 99.999, 100.0)


def calibrate(
    checkpoint,
    dataset,
    config: ConversionConfig | None = None,
    sim: SimConfig | None = None,
    *,
    time_steps: tuple[int, ...] | None = None,
    percentiles: tuple[float, ...] = PERCENTILES,
    limit: int | None = None,
    progress: bool = True,
    log=None,
) -> dict:
    """Validation accuracy of the converted network for each activation percentile.

    Parameters
    ----------
    checkpoint : lava_retrieval.ann.checkpoint.Checkpoint
    dataset : lava_retrieval.data.fashion_mnist.FashionMNIST
    config : ConversionConfig, optional
        Every other conversion setting (reset, pooling, initial membrane, ...).
    sim : SimConfig, optional
        Timing the network will run with, and its time steps (default: method ``paper``'s,
        T = 16, ``delay``).
    time_steps : tuple of int, optional
        Several numbers of time steps: the accuracy that counts is the mean over them
        (default: ``sim.time_steps`` alone).
    percentiles : tuple of float
        Candidates, each in (0, 100].
    limit : int, optional
        Only the first ``limit`` validation images (default: all 6,000).

    Returns
    -------
    dict
        ``rows`` (percentile, validation accuracy in percent for each T and their mean,
        seconds), ``best`` (the chosen percentile) and the protocol (split, images, time
        steps, timing, conversion settings).

    >>> result = calibrate(load_checkpoint(), load_fashion_mnist(), percentiles=(99.9, 100.0),
    ...                    limit=200, progress=False)
    >>> result["best"]
    99.9
    """
    config = config or ConversionConfig()
    sim = sim or get("paper").sim_config()
    if not percentiles:
        raise LavaRetrievalError("give at least one percentile")
    if limit is not None and limit < 1:
        raise LavaRetrievalError(f"limit must be >= 1, got {limit}")
    steps = tuple(time_steps or (sim.time_steps,))
    if any(t < 1 for t in steps):
        raise LavaRetrievalError(f"time steps must be >= 1, got {steps}")
    candidates = [replace(config, activation_percentile=float(p)) for p in percentiles]
    images, labels = dataset.split("validation", checkpoint.config.validation_fraction)
    images, labels = images[:limit], labels[:limit]
    rows = []
    for candidate in candidates:
        start = time.perf_counter()
        network = convert_checkpoint(checkpoint, dataset, candidate)
        per_t = {}
        for t in steps:
            result = simulate(
                network, images, replace(sim, time_steps=t), progress=progress, layers=(-1,)
            )
            predicted = predict_classes(result.spike_counts[-1], result.membrane[-1])
            per_t[str(t)] = round(100 * classification_accuracy(predicted, labels), 4)
        row = {
            "percentile": candidate.activation_percentile,
            "validation_accuracy": round(float(sum(per_t.values()) / len(per_t)), 4),
            "by_time_steps": per_t,
            "seconds": round(time.perf_counter() - start, 2),
        }
        rows.append(row)
        if log is not None:
            log(f"percentile {row['percentile']:g}: {row['validation_accuracy']:.2f} %")
    best = max(rows, key=lambda r: (r["validation_accuracy"], r["percentile"]))
    return {
        "rows": rows,
        "best": best["percentile"],
        "best_validation_accuracy": best["validation_accuracy"],
        "protocol": {
            "split": "validation",
            "images": int(len(images)),
            "time_steps": list(steps),
            "timing": sim.timing,
            "conversion": {k: v for k, v in asdict(config).items() if k != "activation_percentile"},
            "checkpoint": str(checkpoint.path),
        },
    }


def chosen_config(result: dict, config: ConversionConfig) -> ConversionConfig:
    """``config`` with the activation percentile :func:`calibrate` chose.

    >>> chosen_config({"best": 99.9}, ConversionConfig()).activation_percentile
    99.9
    """
    return replace(config, activation_percentile=float(result["best"]))


__all__ = ["PERCENTILES", "calibrate", "chosen_config"]
