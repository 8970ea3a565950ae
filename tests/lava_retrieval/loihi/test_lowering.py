"""The one lowering onto Lava's built-ins: what it refuses, and its layout helpers.

(That what it accepts runs exactly is test_conformance.py's ``loihi`` and ``netx`` engines.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lava_retrieval.loihi import lowering
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import V_MAX

GOLDEN = Path(__file__).parents[1] / "golden" / "small-net.npz"


def _dense_network(weight, threshold=5, bias=None, reset="zero") -> SpikingNetwork:
    inp = SpikingLayer("input", "input", (1, 2, 2), (1, 2, 2), None, None, 255, 255.0, 1.0)
    dense = SpikingLayer("dense1", "dense", (1, 2, 2), (2,), weight, bias, threshold, 1.0, 1.0)
    out = SpikingLayer("dense2", "dense", (2,), (1,), np.ones((1, 2)), None, 1, 1.0, 1.0)
    return SpikingNetwork((inp, dense, out), 1, reset, "folded", "hand")


def test_a_lowerable_network_has_no_problems():
    network = _dense_network(np.full((2, 4), 127))
    assert lowering.problems(network, "loihi") == lowering.problems(network, "netx") == []
    lowering.check(network)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reset": "subtract"}, "convert with --reset zero"),
        ({"weight": np.full((2, 4), 128)}, "weights beyond \\+-127"),
        ({"threshold": V_MAX + 1}, "threshold above the saturation bound"),
        ({"bias": np.array([4096, 0])}, "13-bit mantissa"),
        ({"weight": np.full((2, 4), 127), "bias": None}, None),
    ],
)
def test_each_problem_is_named(change, message):
    args = {"weight": np.full((2, 4), 100), "threshold": 5, "bias": None, "reset": "zero"}
    network = _dense_network(**{**args, **change})
    found = lowering.problems(network)
    if message is None:
        assert found == []
    else:
        assert len(found) == 1
        with pytest.raises(lowering.LoweringError, match=message):
            lowering.check(network)


def test_current_register_wrap_is_refused():
    inp = SpikingLayer("input", "input", (1, 32, 64), (1, 32, 64), None, None, 255, 255.0, 1.0)
    dense = SpikingLayer(
        "dense1", "dense", (1, 32, 64), (2,), np.full((2, 2048), 127), None, 9, 1.0, 1.0
    )
    out = SpikingLayer("dense2", "dense", (2,), (1,), np.ones((1, 2)), None, 1, 1.0, 1.0)
    network = SpikingNetwork((inp, dense, out), 1, "zero", "folded", "hand")
    assert lowering.max_current(dense) == 2048 * 127 > lowering.MAX_CURRENT
    assert any("wraps Lava's 24-bit current register" in p for p in lowering.problems(network))


def test_netx_also_needs_folded_pooling_and_says_everything_at_once():
    network = SpikingNetwork.load(GOLDEN)  # separate pooling, soft reset
    found = lowering.problems(network, "netx")
    assert found[0].startswith("netx cannot load pooling layers")
    assert any("--reset zero" in p for p in found)
    assert lowering.problems(replace(network, reset="zero"), "loihi") == []
    with pytest.raises(lowering.LoweringError, match="target must be one of"):
        lowering.problems(network, "spinnaker")


def test_config_problems_before_converting():
    assert (
        lowering.config_problems("loihi", pool_mode="separate", reset="zero", weight_bits=8) == []
    )
    found = lowering.config_problems("netx", pool_mode="separate", reset="subtract", weight_bits=9)
    assert len(found) == 3


def test_layouts_round_trip_and_weights_follow_them():
    network = SpikingNetwork.load(GOLDEN)
    rng = np.random.default_rng(0)
    state = rng.integers(0, 9, (3, 6, 5))
    assert lowering.to_whc(state).shape == lowering.whc_shape(state.shape) == (5, 6, 3)
    np.testing.assert_array_equal(lowering.from_whc(lowering.to_whc(state)), state)
    # Lava's Dense over the (W, H, C)-flattened input computes the same as ours over (C, H, W).
    dense = network.layers[3]
    x = rng.integers(0, 2, dense.input_shape)
    weight, exp = lowering.dense_weights(dense)
    ours = dense.weight.astype(np.int64) @ x.reshape(-1)
    theirs = (weight.astype(np.int64) @ lowering.to_whc(x).reshape(-1)) * 2.0**exp
    np.testing.assert_array_equal(theirs, ours)
    # Lava's Conv kernel: a flipped, reordered copy.
    conv = network.layers[1]
    kernel = lowering.conv_kernel(conv)
    assert kernel.shape == (3, 5, 5, 1)
    assert kernel[0, 0, 0, 0] == conv.weight[0, 0, -1, -1]
    assert lowering.vth(conv.threshold) == conv.threshold - 1
    assert lowering.membrane_from_lava(np.array([64.0 * 7, -(2.0**23 - 1)])).tolist() == [
        7.0,
        -V_MAX,
    ]


def test_an_initial_potential_lowers_to_loihi_but_not_to_netx():
    network = replace(_dense_network(np.full((2, 4), 100)), initial_membrane=0.5)
    assert lowering.problems(network, "loihi") == []
    assert lowering.problems(network, "netx") == [
        "netx neurons start every run at 0 (convert with --initial-membrane 0)"
    ]
    found = lowering.config_problems(
        "netx", pool_mode="folded", reset="zero", weight_bits=8, initial_membrane=0.5
    )
    assert found == ["netx neurons start every run at 0 (convert with --initial-membrane 0)"]


# ---------------------------------------------------------------------------------------------
# Streaming (the LIFReset path): the flush step's inhibition and the clock pulses.


@pytest.mark.parametrize("exact", [True, False])
def test_a_pulse_delivers_at_least_its_amounts_in_8_bit_columns(exact):
    amounts = np.array([0, 1, 254, 255, 256, 5000, 40_000, 131_000])
    weights, exp = lowering.pulse(amounts, exact)
    delivered = weights.astype(np.int64).sum(1) << exp
    assert weights.min() >= 0 and weights.max() <= lowering.MAX_PULSE_WEIGHT
    assert 0 <= exp <= lowering.MAX_WEIGHT_EXP
    if exact:
        np.testing.assert_array_equal(delivered, amounts)
    else:
        assert (delivered >= amounts).all() and (delivered - amounts < 1 << exp).all()
        assert weights.shape[1] <= 5  # 131,000 at 2**7 x 255 per column


def test_the_flush_inhibition_covers_positive_input_and_bias():
    weight = np.array([[3, -2, 5, 0], [-1, -1, -1, -1]])
    network = _dense_network(weight, bias=np.array([4, 7]))
    np.testing.assert_array_equal(lowering.flush_inhibition(network.layers[1]), [12, 7])
    np.testing.assert_array_equal(lowering.flush_inhibition(network.layers[0]), [0])


def test_a_flush_that_would_wrap_the_current_register_is_refused():
    # One neuron: 1,024 inputs at +100 and 1,024 at -100; the inhibition (102,400 and more)
    # and the most negative input (-102,400) together pass 2**17 - 1.
    inp = SpikingLayer("input", "input", (1, 32, 64), (1, 32, 64), None, None, 255, 255.0, 1.0)
    weight = np.concatenate([np.full((1, 1024), 100), np.full((1, 1024), -100)], axis=1)
    dense = SpikingLayer("dense1", "dense", (1, 32, 64), (1,), weight, None, 9, 1.0, 1.0)
    out = SpikingLayer("dense2", "dense", (1,), (1,), np.ones((1, 1)), None, 1, 1.0, 1.0)
    network = SpikingNetwork((inp, dense, out), 1, "zero", "folded", "hand")
    assert lowering.problems(network, "loihi") == []
    (found,) = lowering.stream_problems(network, "delay")
    assert found.startswith("dense1: the flush step's inhibition") and "pipelined" in found
    assert lowering.stream_problems(network, "pipelined") == []


def test_an_initial_potential_that_would_wrap_the_current_register_is_refused():
    # Pipelined, the pulse of v_init lands with the first step's input: 102,400 + 50,000.
    inp = SpikingLayer("input", "input", (1, 32, 32), (1, 32, 32), None, None, 255, 255.0, 1.0)
    dense = SpikingLayer(
        "dense1", "dense", (1, 32, 32), (1,), np.full((1, 1024), 100), None, 100_000, 1.0, 1.0
    )
    out = SpikingLayer("dense2", "dense", (1,), (1,), np.ones((1, 1)), None, 1, 1.0, 1.0)
    network = SpikingNetwork((inp, dense, out), 1, "zero", "folded", "hand", initial_membrane=0.5)
    assert lowering.problems(network, "loihi") == []
    (found,) = lowering.stream_problems(network, "pipelined")
    assert (
        found.startswith("dense1: the initial potential's pulse")
        and "--initial-membrane 0" in found
    )
    # Under delay nothing is in flight at a restart, and this inhibition wraps nothing.
    assert lowering.stream_problems(network, "delay") == []
    assert lowering.stream_problems(replace(network, initial_membrane=0.0), "pipelined") == []


def test_windows_of_the_streaming_path():
    assert [lowering.stream_lead(t, [0, 0]) for t in ("delay", "pipelined")] == [1, 0]
    assert lowering.stream_lead("pipelined", [0, 3]) == 1
    # Lava counts steps from 1; the first window of the layer at depth 2 starts after the lead,
    # and pipelined two steps later.
    assert lowering.reset_step("delay", 5, 1, 2) == 2
    assert lowering.reset_step("pipelined", 5, 0, 2) == 3
    assert lowering.reset_step("pipelined", 5, 1, 2) == 4
