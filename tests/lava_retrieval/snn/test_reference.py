"""The executable specification itself: hand-computed traces and committed golden arrays.

Every engine is held to :func:`simulate_reference` by ``test_conformance.py``; this module holds
the reference to traces computed by hand and to golden arrays committed with the repository
(``golden/make_golden.py`` wrote them), so that a refactoring of the reference cannot move the
semantics of every engine along with it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.config import TIMINGS
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import V_MAX, NeuronParams, if_step
from lava_retrieval.snn.reference import readout_of, simulate_reference

GOLDEN = Path(__file__).parents[1] / "golden"

INPUTS = [3, 3, 3, 0, 7, 12]
# Threshold 5. Soft reset: v = 3, 6 -> spike -> 1, 4, 4, 11 -> spike -> 6, 18 -> spike -> 13.
# Hard reset: v = 3, 6 -> spike -> 0, 3, 3, 10 -> spike -> 0, 12 -> spike -> 0.
HAND = {
    "subtract": ([3, 1, 4, 4, 6, 13], [0, 1, 0, 0, 1, 1]),
    "zero": ([3, 0, 3, 3, 0, 0], [0, 1, 0, 0, 1, 1]),
}


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_step_by_hand(reset):
    v = np.zeros(1, np.int64)
    trace, spikes = [], []
    for a in INPUTS:
        v, s = if_step(v, np.array([a]), 0, NeuronParams(threshold=5, reset=reset))
        trace.append(int(v[0]))
        spikes.append(int(s[0]))
    assert (trace, spikes) == HAND[reset]


def test_step_saturates_in_both_directions_with_any_threshold():
    params = NeuronParams(threshold=1 << 30)
    v, s = if_step(np.array([V_MAX - 10, -V_MAX + 10]), np.array([100, -100]), 0, params)
    assert v.tolist() == [V_MAX, -V_MAX] and V_MAX == (1 << 17) - 1 and not s.any()
    # At the bound with a threshold below it: saturate, then fire and reset.
    v, s = if_step(np.array([V_MAX]), np.array([10]), 0, NeuronParams(threshold=V_MAX))
    assert v.tolist() == [0] and s.tolist() == [True]


def test_neuron_params_are_checked():
    with pytest.raises(LavaRetrievalError, match="reset must be one of"):
        NeuronParams(threshold=5, reset="leak")
    with pytest.raises(LavaRetrievalError, match="threshold and v_max must be >= 1"):
        NeuronParams(threshold=0)


def _two_neurons() -> SpikingNetwork:
    """One input pixel (current 255, threshold 255: it fires every step) -> one neuron with
    weight 3 and threshold 5."""
    inp = SpikingLayer("input", "input", (1, 1, 1), (1, 1, 1), None, None, 255, 255.0, 1.0)
    hidden = SpikingLayer("dense1", "dense", (1, 1, 1), (1,), [[3]], None, 5, 1.0, 1.0)
    out = SpikingLayer("dense2", "dense", (1,), (1,), [[1]], None, 1, 1.0, 1.0)
    return SpikingNetwork((inp, hidden, out), 1, "subtract", "folded", "hand")


@pytest.mark.parametrize(
    ("timing", "spikes", "potential"),
    [
        # delay: the pixel's step-1 spike arrives at step 2: v = 0, 3, 6>1, 4, 7>2.
        ("delay", [0, 0, 1, 0, 1], 2),
        # no_delay: it arrives at once: v = 3, 6>1, 4, 7>2, 5>0.
        ("no_delay", [0, 1, 0, 1, 1], 0),
        # exact_count: the pixel integrates 5 x 255 and fires all 5 steps; the neuron integrates
        # 5 x 3 = 15 without firing, then fires floor(15 / 5) = 3 times in a row, to 0.
        ("exact_count", [1, 1, 1, 0, 0], 0),
        # graded: the pixel's count, 5, arrives as one message: 3 x 5 = 15, count 3 (recorded
        # as if fired in the window's first steps), to 0.
        ("graded", [1, 1, 1, 0, 0], 0),
    ],
)
def test_network_timing_by_hand(timing, spikes, potential):
    network = _two_neurons()
    result = simulate_reference(
        network, np.full((1, 1, 1), 255, np.uint8), 5, timing, record_spikes=True
    )
    assert result.spikes[1][:, 0, 0].astype(int).tolist() == spikes
    assert result.membrane[1].tolist() == [[potential]]
    assert result.spike_counts[1].tolist() == [[sum(spikes)]]
    integrated = readout_of(network, result, "integrated")
    assert integrated.tolist() == [[sum(spikes) * 5 + potential]]


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("timing", TIMINGS)
def test_golden_arrays(reset, timing):
    """The reference still computes the committed arrays of the golden network (pipelined
    timing, by definition, gives the integers of no_delay)."""
    network = replace(SpikingNetwork.load(GOLDEN / "small-net.npz"), reset=reset)
    key = "no_delay" if timing == "pipelined" else timing
    with np.load(GOLDEN / "small.npz") as golden:
        steps = int(golden["time_steps"])
        result = simulate_reference(network, golden["images"], steps, timing)
        for i in range(len(network.layers)):
            np.testing.assert_array_equal(
                result.spike_counts[i], golden[f"{reset}/{key}/counts{i}"], err_msg=f"{i}"
            )
            np.testing.assert_array_equal(
                result.membrane[i], golden[f"{reset}/{key}/membrane{i}"], err_msg=f"{i}"
            )
    if timing == "sigma_delta":  # messages in the hidden layers, sums at the output
        assert result.spike_counts[0].sum() > 0 and np.abs(result.membrane[-1]).sum() > 0
    else:
        assert result.spike_counts[-1].sum() > 0


def test_bad_arguments():
    network = _two_neurons()
    image = np.zeros((1, 1, 1), np.uint8)
    with pytest.raises(LavaRetrievalError, match="timing must be one of"):
        simulate_reference(network, image, 3, "late")
    with pytest.raises(LavaRetrievalError, match="time_steps must be >= 1"):
        simulate_reference(network, image, 0)
    with pytest.raises(LavaRetrievalError, match="readout must be one of"):
        readout_of(network, simulate_reference(network, image, 2), "rate")


def test_initial_membrane_by_hand():
    """Windows that start at half the threshold: the pixel (threshold 255) starts at 127 and
    still fires every step; the neuron (threshold 5) starts at 2: v = 2, 5>0, 3, 6>1, 4."""
    network = replace(_two_neurons(), initial_membrane=0.5)
    assert [network.neuron(i).v_init for i in range(3)] == [127, 2, 0]
    result = simulate_reference(
        network, np.full((1, 1, 1), 255, np.uint8), 5, "delay", record_spikes=True
    )
    assert result.spikes[0][:, 0].ravel().tolist() == [True] * 5
    assert result.spikes[1][:, 0, 0].astype(int).tolist() == [0, 1, 0, 1, 0]
    assert result.membrane[1].tolist() == [[4]]
    # integrated: all the input of the window (4 spikes x weight 3), not the initial potential.
    assert readout_of(network, result, "integrated").tolist() == [[12]]
