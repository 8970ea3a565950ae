"""An oracle for every timing, independent of the executable spec: the network file's numbers
run step by step in float64 torch operations (exact for these integers), written from the
timings' definitions alone (no engine, no step function, no synaptic operator of the
project), and held against :func:`~lava_retrieval.snn.reference.simulate_reference` on real
Fashion-MNIST images with the shipped networks, and against the committed golden arrays.

Per step, a layer of integrate-and-fire neurons does::

    v = clip(v + input + bias, -V_MAX, V_MAX);  spike = v >= threshold
    v = v - threshold  where it spiked (soft reset)   or   v = 0 there (hard reset)

``delay``: a layer sees the spikes its predecessor sent in the step before (none in the
first); ``no_delay`` (and ``pipelined``, whose integers these are): those of the same step.
``exact_count``: every layer integrates its predecessor's T firing steps without firing,
saturating every step, then fires T steps with no input. ``graded``: a layer integrates its
predecessor's counts once, ``W . counts + T x bias`` (clipped once), then fires T steps with no
input. ``sigma_delta``: one message per layer, ``floor(max(v, 0) / threshold)`` of
``v = v_init + W . message + bias``, no bound. An analog input sends its pixel current where it
would send spikes; the input layer integrates ``round(pixel x param_scale)`` every step.
(``test_exact_count.py`` is the closed form of the two-phase timings' counts.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.reference import simulate_reference

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
#: Loihi's 24-bit potential with 6 fraction bits, in integer units: 2**17 - 1.
V_MAX = float(2**17 - 1)
NETWORKS = {
    "paper": ROOT / "results" / "snn-32-64-10.npz",
    "qcfs": ROOT / "results" / "snn-32-64-10-qcfs16.npz",
    "qcfs-analog": ROOT / "results" / "snn-32-64-10-qcfs16-analog.npz",
    "golden": GOLDEN / "small-net.npz",
}
STEP_TIMINGS = ("delay", "no_delay", "exact_count", "graded")


def _synapses(layer, x: torch.Tensor) -> torch.Tensor:
    weight = torch.from_numpy(np.asarray(layer.weight, np.float64))
    if layer.kind == "dense":
        return x.flatten(1) @ weight.T
    return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding, groups=layer.groups)


def _bias(layer, like: torch.Tensor) -> torch.Tensor:
    if layer.bias is None:
        return torch.zeros_like(like)
    bias = torch.from_numpy(np.asarray(layer.bias, np.float64))
    return bias.view(-1, *([1] * (like.dim() - 2))).expand_as(like)


def _fire(v: torch.Tensor, threshold: float, reset: str) -> tuple[torch.Tensor, torch.Tensor]:
    spikes = v >= threshold
    v = v - threshold * spikes if reset == "subtract" else torch.where(spikes, 0.0, v)
    return v, spikes.double()


def oracle(network: SpikingNetwork, images: np.ndarray, steps: int, timing: str):
    """Every layer's spike count and final potential (int64 arrays, one per layer)."""
    n, layers = len(images), network.layers
    pixels = torch.from_numpy(images.astype(np.float64) / 255.0)
    current = torch.round(pixels * float(layers[0].param_scale)).reshape(n, *layers[0].input_shape)
    v_init = [float(np.floor(network.initial_membrane * layer.threshold)) for layer in layers]
    shapes = [(n, *layer.output_shape) for layer in layers]
    v = [torch.full(shape, v_init[i], dtype=torch.float64) for i, shape in enumerate(shapes)]
    counts = [torch.zeros(shape, dtype=torch.float64) for shape in shapes]
    analog = bool(network.analog_input)
    if timing in ("delay", "no_delay"):
        sent = [torch.zeros(shape, dtype=torch.float64) for shape in shapes]
        for _ in range(steps):
            now = []
            for i, layer in enumerate(layers):
                if i == 0 and analog:  # no neurons: the current goes on where spikes would
                    now.append(current)
                    continue
                source = (now if timing == "no_delay" else sent)[i - 1] if i else None
                a_in = current if i == 0 else _synapses(layer, source) + _bias(layer, v[i])
                v[i] = torch.clamp(v[i] + a_in, -V_MAX, V_MAX)
                v[i], spikes = _fire(v[i], layer.threshold, network.reset)
                counts[i] += spikes
                now.append(spikes)
            sent = now
    elif timing in ("exact_count", "graded"):
        trains = [current] * steps  # what the previous layer sends, step by step
        for i, layer in enumerate(layers):
            if i == 0 and analog:
                continue  # the current goes on, T steps of it
            a_in = [current] * steps if i == 0 else [_synapses(layer, s) for s in trains]
            if i:
                a_in = [a + _bias(layer, a) for a in a_in]
            if timing == "exact_count":
                for a in a_in:
                    v[i] = torch.clamp(v[i] + a, -V_MAX, V_MAX)
            else:  # one message: the whole window's input at once, clipped once
                v[i] = torch.clamp(v[i] + sum(a_in), -V_MAX, V_MAX)
            trains = []
            for _ in range(steps):
                v[i], spikes = _fire(v[i], layer.threshold, network.reset)
                counts[i] += spikes
                trains.append(spikes)
    elif timing == "sigma_delta":
        message = current
        for i, layer in enumerate(layers):
            if i == 0 and analog:
                continue
            a_in = current if i == 0 else _synapses(layer, message) + _bias(layer, v[i])
            v[i] = v[i] + a_in
            counts[i] = torch.floor(torch.clamp(v[i], min=0) / layer.threshold)
            v[i] = v[i] - counts[i] * layer.threshold
            message = counts[i]
    else:
        raise ValueError(timing)
    return [x.numpy().astype(np.int64) for x in counts], [x.numpy().astype(np.int64) for x in v]


def _check(network, images, steps, timing) -> int:
    counts, potentials = oracle(network, images, steps, timing)
    result = simulate_reference(network, images, steps, timing)
    for i in range(len(network.layers)):
        np.testing.assert_array_equal(result.spike_counts[i], counts[i], err_msg=f"counts {i}")
        np.testing.assert_array_equal(result.membrane[i], potentials[i], err_msg=f"membrane {i}")
    return int(sum(c.sum() for c in counts))


@pytest.mark.parametrize("timing", STEP_TIMINGS)
@pytest.mark.parametrize("name", ["paper", "qcfs", "qcfs-analog"])
def test_the_reference_runs_the_shipped_networks_as_the_oracle(name, timing, fashion):
    """16 test images, T = 16: the reference's counts and potentials of every layer."""
    network = SpikingNetwork.load(NETWORKS[name])
    assert _check(network, fashion.test_images[100:116], 16, timing) > 0


def test_the_reference_runs_the_sigma_delta_network_as_the_oracle(fashion):
    """The shipped qcfs8-sdnn network, one message per layer."""
    from lava_retrieval.conversion.methods import get

    network = get("qcfs8-sdnn").network(fashion)
    assert _check(network, fashion.test_images[200:232], 1, "sigma_delta") > 0


@pytest.mark.parametrize("timing", [*STEP_TIMINGS, "sigma_delta"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_the_golden_arrays_are_the_oracles(reset, timing):
    """The committed golden arrays (which ``test_reference.py`` pins the spec to) are what the
    oracle computes, and the file says so."""
    network = replace(SpikingNetwork.load(GOLDEN / "small-net.npz"), reset=reset)
    with np.load(GOLDEN / "small.npz") as golden:
        assert f"{reset}/{timing}: {__name__.rsplit('.', 1)[-1]}" in str(golden["validated_by"])
        counts, potentials = oracle(network, golden["images"], int(golden["time_steps"]), timing)
        for i in range(len(network.layers)):
            np.testing.assert_array_equal(golden[f"{reset}/{timing}/counts{i}"], counts[i])
            np.testing.assert_array_equal(golden[f"{reset}/{timing}/membrane{i}"], potentials[i])
