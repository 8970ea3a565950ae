"""The two-phase timings in closed form (:mod:`lava_retrieval.engines.window`): hand-computed
windows, the proof that no running sum saturates, and the step-by-step fallback where it fails.

The conformance suite holds the ``events`` engine (which takes this path) and the event kernel
step by step (``events-steps``) to the reference on every case."""

from __future__ import annotations

import numpy as np
import pytest

from lava_retrieval.engines import events, window
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import V_MAX
from lava_retrieval.snn.reference import simulate_reference


def _network(weight: np.ndarray, bias: np.ndarray, threshold: int, reset: str = "subtract"):
    """The 28 x 28 input (threshold 255: a pixel of 255 spikes every step) into dense
    neurons with the given weights, read out by one neuron."""
    inputs = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    dense = SpikingLayer(
        "dense1", "dense", (1, 28, 28), (len(weight),), weight, bias, threshold, 1.0, 1.0
    )
    out = SpikingLayer(
        "dense2", "dense", (len(weight),), (1,), np.ones((1, len(weight))), None, 1, 1.0, 1.0
    )
    return SpikingNetwork((inputs, dense, out), 1, reset, "separate", "hand")


def _one_pixel(level: int = 255) -> np.ndarray:
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 0, 0] = level
    return image


@pytest.mark.parametrize("timing", window.TIMINGS)
def test_a_hand_computed_window(timing):
    """One pixel at 255 spikes in the T = 4 firing steps of the input layer (potential 4 x 255
    = 1020, threshold 255). Neuron 0 (weight 7, bias 2) integrates 4 x 7 + 4 x 2 = 36 and,
    threshold 10, fires floor(36 / 10) = 3 times, ending at 6; neuron 1 (weight -3, bias 20)
    integrates -12 + 80 = 68 and fires at most T = 4 times, ending at 28."""
    weight = np.zeros((2, 784), np.int32)
    weight[:, 0] = 7, -3
    network = _network(weight, np.array([2, 20]), 10)
    membrane, counts, unproven = window.simulate_windows(
        window.Windows(network), _one_pixel(), 4, timing
    )
    assert counts[0].reshape(-1)[0] == 4 and membrane[0].reshape(-1)[0] == 0
    assert counts[1].tolist() == [[3, 4]] and membrane[1].tolist() == [[6, 28]]
    assert not unproven.any()


def test_zero_reset_fires_once():
    weight = np.zeros((1, 784), np.int32)
    weight[0, 0] = 9
    network = _network(weight, np.array([0]), 10, reset="zero")
    membrane, counts, _ = window.simulate_windows(
        window.Windows(network), _one_pixel(), 4, "exact_count"
    )
    # The input layer (threshold 255, potential 1020) fires once and resets: one spike, 9 < 10.
    assert counts[0].reshape(-1)[0] == 1 and counts[1].tolist() == [[0]]
    assert membrane[1].tolist() == [[9]]


def test_a_window_that_may_saturate_is_simulated_step_by_step():
    """784 white pixels into weights of +-255 pass V_MAX within the window: under exact_count
    the running sums saturate step by step, so the closed form is not proven and the event
    kernel answers; under graded (one saturation) the closed form holds."""
    weight = np.full((2, 784), 255, np.int32)
    weight[1] = -255
    network = _network(weight, np.array([3, -3]), 10**9)
    white = np.full((1, 28, 28), 255, np.uint8)
    prepared = window.Windows(network)
    for timing, proven in (("exact_count", False), ("graded", True)):
        _, _, unproven = window.simulate_windows(prepared, white, 6, timing)
        assert bool(unproven[0]) is not proven
        packed = events.packed(network)
        membrane, counts, _ = events.simulate_events(packed, white, 6, timing, False)
        reference = simulate_reference(network, white, 6, timing)
        assert membrane[1].tolist() == reference.membrane[1].tolist() == [[V_MAX, -V_MAX]]
        np.testing.assert_array_equal(counts[1], reference.spike_counts[1])


def test_weights_of_mixed_sign_bound_each_part():
    """A positive part past V_MAX is caught even where the negative part cancels it in the
    sum: W+ . counts = 784 x 200 x 4 > V_MAX while W . counts = 0."""
    weight = np.full((1, 784), 200, np.int32)
    weight[0, 392:] = -200
    network = _network(weight, np.array([0]), 10**9)
    white = np.full((1, 28, 28), 255, np.uint8)
    membrane, _, unproven = window.simulate_windows(
        window.Windows(network), white, 4, "exact_count"
    )
    assert unproven.tolist() == [True] and membrane[1].tolist() == [[0]]
    reference = simulate_reference(network, white, 4, "exact_count")
    got, _, _ = events.simulate_events(events.packed(network), white, 4, "exact_count", False)
    np.testing.assert_array_equal(got[1], reference.membrane[1])


def test_the_default_network_takes_the_closed_form(fashion):
    """On real images at the default method's T the closed form is proven for every image
    (no fallback), and equals the kernel step by step."""
    from pathlib import Path

    network = SpikingNetwork.load(
        Path(__file__).parents[3] / "results" / "snn-32-64-10-qcfs8-analog.npz"
    )
    images = fashion.test_images[:64]
    membrane, counts, unproven = window.simulate_windows(
        window.Windows(network), images, 8, "exact_count"
    )
    assert not unproven.any()
    steps = events.simulate_events(
        events.packed(network), images, 8, "exact_count", False, closed_form=False
    )
    for mine, theirs in zip(membrane + counts, steps[0] + steps[1], strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert int(counts[-2].sum()) > 0
