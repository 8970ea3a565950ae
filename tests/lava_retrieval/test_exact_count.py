"""The exact-count schedule and graded spikes in closed form: with the ``exact_count`` and the
``graded`` timings every layer's spike count is an integer forward pass of the network,
computed here from the network file alone
(its weights, biases, thresholds and initial potential; no engine, no step function):

    S = W . (previous layer's counts) + T x bias      (the input layer: S = T x its current)
    count = clip(floor((S + v_init) / threshold), 0, T)

With an analog input the input layer counts nothing and the first synapse layer's
``previous layer's counts`` are T x the pixel current.

It holds for every engine on real images with the shipped networks (soft reset; none of these
sums comes near the 24-bit saturation bound where that could change a count, which the test
checks too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lava_retrieval.engines.sim import simulate
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.neuron import V_MAX
from lava_retrieval.snn.reference import simulate_reference

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = {
    "paper": ROOT / "results" / "snn-32-64-10.npz",
    "qcfs": ROOT / "results" / "snn-32-64-10-qcfs16.npz",
    "qcfs-analog": ROOT / "results" / "snn-32-64-10-qcfs16-analog.npz",
    "golden": ROOT / "tests" / "lava_retrieval" / "golden" / "small-net.npz",
}


def forward_pass(path: Path, images: np.ndarray, steps: int) -> list[np.ndarray]:
    """Every layer's count from the file's numbers, in float64 torch ops (exact for these
    integers)."""
    network = SpikingNetwork.load(path)
    counts, sent = [], None
    for layer in network.layers:
        v_init = int(np.floor(network.initial_membrane * layer.threshold))
        if layer.kind == "input":
            pixels = images.astype(np.float64) / 255.0
            current = np.rint(pixels * layer.param_scale)  # the input current's definition
            total = torch.from_numpy(steps * current[:, None])
            if network.analog_input:  # no neurons: T x the current goes on as it is
                counts.append(np.zeros((len(images), *layer.output_shape), np.int64))
                sent = total.numpy()
                continue
        else:
            previous = torch.from_numpy((counts[-1] if sent is None else sent).astype(np.float64))
            sent = None
            weight = torch.from_numpy(np.asarray(layer.weight, np.float64))
            if layer.kind == "dense":
                total = previous.flatten(1) @ weight.T
            else:
                total = F.conv2d(
                    previous,
                    weight,
                    stride=layer.stride,
                    padding=layer.padding,
                    groups=layer.groups,
                )
            if layer.bias is not None:
                bias = torch.from_numpy(layer.bias.astype(np.float64))
                total = total + steps * bias.view(-1, *([1] * (total.dim() - 2)))
        # The closed form's premise: no sum reaches the 24-bit bound, or (after an analog
        # input, whose current is the same every step) only sums whose count the bound cannot
        # change (the threshold fits T + 1 times below it: they clip to 0 or T either way).
        constant = network.analog_input and layer is network.layers[1]
        if not (constant and (steps + 1) * layer.threshold <= V_MAX):
            assert float((total + v_init).abs().max()) <= V_MAX
        count = torch.clamp(torch.floor((total + v_init) / layer.threshold), 0, steps)
        counts.append(count.numpy().astype(np.int64).reshape(len(images), *layer.output_shape))
    return counts


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("steps", [1, 4, 16])
@pytest.mark.parametrize("engine", ["reference", "events", "torch"])
@pytest.mark.parametrize("timing", ["exact_count", "graded"])
def test_counts_are_an_integer_forward_pass(fashion, name, steps, engine, timing):
    images = fashion.test_images[:64] if name != "golden" else fashion.test_images[:8]
    network = SpikingNetwork.load(NETWORKS[name])
    if engine == "reference":
        result = simulate_reference(network, images[:8], steps, timing)
        images = images[:8]
    else:
        result = simulate(
            network, images, SimConfig(steps, timing, engine=engine, readout="membrane")
        )
    for i, expected in enumerate(forward_pass(NETWORKS[name], images, steps)):
        np.testing.assert_array_equal(result.spike_counts[i], expected, err_msg=f"layer {i}")
    if steps >= 4:  # not a vacuous equality (at T = 1 the small networks may stay silent)
        assert any(c.any() for c in result.spike_counts[1:])
