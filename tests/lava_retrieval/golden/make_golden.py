"""Writes the golden arrays that pin the reference semantics: ``small-net.npz`` (a hand-built
network: strided and padded convolution, a pooling layer, dense) and ``small.npz`` (three
Fashion-MNIST test images and the reference's spike counts and final potentials of every layer
at T = 12, for every timing and reset). ``validated_by`` names the independent check that
holds each (reset, timing) to something other than the reference: the step-by-step oracle of
``test_oracles.py``.

Run from the repository root only when the semantics change on purpose, and say why in the
commit::

    .venv/bin/python tests/lava_retrieval/golden/make_golden.py
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lava_retrieval.data.fashion_mnist import load_fashion_mnist
from lava_retrieval.snn.config import TIMINGS
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.reference import simulate_reference

HERE = Path(__file__).parent
TIME_STEPS = 12


def network() -> SpikingNetwork:
    rng = np.random.default_rng(2024)
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    conv = SpikingLayer(
        "conv1",
        "conv",
        (1, 28, 28),
        (3, 13, 13),
        rng.integers(-30, 50, (3, 1, 5, 5)),
        rng.integers(-6, 6, 3),
        180,
        1.0,
        1.0,
        stride=2,
        padding=1,
    )
    pool = SpikingLayer(
        "pool1",
        "pool",
        (3, 13, 13),
        (3, 6, 6),
        np.full((3, 1, 2, 2), 60),
        None,
        150,
        1.0,
        1.0,
        stride=2,
        groups=3,
    )
    dense = SpikingLayer(
        "dense1",
        "dense",
        (3, 6, 6),
        (10,),
        rng.integers(-20, 25, (10, 108)),
        rng.integers(-3, 3, 10),
        60,
        1.0,
        1.0,
    )
    return SpikingNetwork((inp, conv, pool, dense), 2, "subtract", "separate", "golden")


def main() -> None:
    net = network()
    net.save(HERE / "small-net.npz")
    images = load_fashion_mnist().test_images[:3]
    arrays = {"images": images, "time_steps": np.array(TIME_STEPS)}
    validated = []
    for reset in ("subtract", "zero"):
        for timing in (t for t in TIMINGS if t != "pipelined"):  # pipelined: no_delay's integers
            result = simulate_reference(replace(net, reset=reset), images, TIME_STEPS, timing)
            for i in range(len(net.layers)):
                arrays[f"{reset}/{timing}/counts{i}"] = result.spike_counts[i]
                arrays[f"{reset}/{timing}/membrane{i}"] = result.membrane[i]
            validated.append(f"{reset}/{timing}: test_oracles (step by step in float64 torch)")
    arrays["validated_by"] = np.array("\n".join(validated))
    np.savez_compressed(HERE / "small.npz", **arrays)
    print(f"wrote {HERE / 'small-net.npz'} and {HERE / 'small.npz'}")


if __name__ == "__main__":
    main()
