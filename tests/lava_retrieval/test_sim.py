"""The fast simulator against a step-by-step numpy reference built on ``if_step``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lava_retrieval.ann import ConvNet
from lava_retrieval.conversion import ConversionConfig, convert
from lava_retrieval.errors import LavaRetrievalError
from lava_retrieval.network import SpikingLayer, SpikingNetwork
from lava_retrieval.neuron import V_MAX, if_step, input_current
from lava_retrieval.sim import TIMINGS, readout_of, simulate
from lava_retrieval.synapse import SynapticOp

SHIPPED = Path(__file__).parents[2] / "results" / "snn-32-64-10.npz"


def reference(network: SpikingNetwork, images: np.ndarray, steps: int, timing: str):
    """Plain step-by-step integer simulation: one layer after the other within each step."""
    layers = network.layers
    n = len(images)
    ops = [None] + [SynapticOp(layer) for layer in layers[1:]]
    v = [np.zeros((n, *layer.output_shape), np.int64) for layer in layers]
    counts = [np.zeros_like(x) for x in v]
    previous = [np.zeros_like(x, dtype=bool) for x in v]
    current = input_current(images, layers[0].param_scale)[:, None]
    for _ in range(steps):
        now = []
        for i, layer in enumerate(layers):
            if i == 0:
                a_in = current
            else:
                source = previous[i - 1] if timing == "delay" else now[i - 1]
                a_in = np.rint(ops[i](source)).astype(np.int64)
            bias = 0
            if layer.bias is not None:
                bias = layer.bias.astype(np.int64).reshape((1, -1) + (1,) * (v[i].ndim - 2))
            v[i], spikes = if_step(v[i], a_in, bias, layer.threshold, network.reset)
            counts[i] += spikes
            now.append(spikes)
        previous = now
    return counts, v


@pytest.fixture(scope="module")
def small_network():
    torch.manual_seed(3)
    images = np.random.default_rng(3).random((40, 28, 28))
    return convert(ConvNet("4-8-16-10"), images, ConversionConfig(activation_percentile=99.0))


@pytest.fixture(scope="module")
def folded_network():
    torch.manual_seed(4)
    images = np.random.default_rng(4).random((40, 28, 28))
    config = ConversionConfig(activation_percentile=99.0, pool_mode="folded")
    return convert(ConvNet("4-8-16-10"), images, config)


ENGINES = ["events", "torch"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("steps", [1, 5, 20])
@pytest.mark.parametrize("timing", ["delay", "no_delay"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_matches_the_step_by_step_reference(small_network, fashion, steps, timing, reset, engine):
    """Separate pooling (depthwise stride-2 layers), 5x5 and padded 3x3 convolutions, dense."""
    from dataclasses import replace

    network = replace(small_network, reset=reset)
    images = fashion.test_images[:6]
    got = simulate(network, images, steps, timing, chunk_size=4, engine=engine)
    counts, v = reference(network, images, steps, timing)
    for i in range(len(network.layers)):
        np.testing.assert_array_equal(got.spike_counts[i], counts[i], err_msg=f"layer {i}")
        np.testing.assert_array_equal(got.membrane[i], v[i], err_msg=f"layer {i}")
    if steps == 20:
        assert sum(int(c.sum()) for c in counts[1:]) > 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("timing", ["delay", "no_delay"])
def test_folded_pooling_matches_the_reference(folded_network, fashion, timing, engine):
    """Folded pooling: strided convolutions and a dense layer over a strided map."""
    assert any(layer.stride == 2 and layer.kind == "conv" for layer in folded_network.layers)
    images = fashion.test_images[6:12]
    got = simulate(folded_network, images, 16, timing, chunk_size=4, engine=engine)
    counts, v = reference(folded_network, images, 16, timing)
    for i in range(len(folded_network.layers)):
        np.testing.assert_array_equal(got.spike_counts[i], counts[i], err_msg=f"layer {i}")
        np.testing.assert_array_equal(got.membrane[i], v[i], err_msg=f"layer {i}")
    assert sum(int(c.sum()) for c in counts[2:]) > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_large_inputs_and_saturation(engine):
    """784 always-spiking inputs x 255 + 3 = 199,923 per step: running sums pass 2**24 (the
    float64 path) and the potentials saturate at the 24-bit bound."""
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    weight = np.full((2, 784), 255, np.int32)
    weight[1] = -255
    dense = SpikingLayer("dense1", "dense", (1, 28, 28), (2,), weight, np.array([3, -3]),
                         1_000_000, 1.0, 1.0)  # fmt: skip
    out = SpikingLayer("dense2", "dense", (2,), (1,), np.ones((1, 2), np.int32), None, 1, 1.0, 1.0)
    network = SpikingNetwork((inp, dense, out), 1, "subtract", "separate", "hand")
    images = np.full((1, 28, 28), 255, np.uint8)
    got = simulate(network, images, 120, "no_delay", engine=engine)
    counts, v = reference(network, images, 120, "no_delay")
    np.testing.assert_array_equal(got.membrane[1], v[1])
    np.testing.assert_array_equal(got.spike_counts[1], counts[1])
    assert v[1][0, 1] == -V_MAX  # the negative neuron saturated


@pytest.mark.parametrize("engine", ENGINES)
def test_chunking_and_layer_selection(small_network, fashion, engine):
    images = fashion.test_images[:20]
    whole = simulate(small_network, images, 12, chunk_size=64, engine=engine)
    parts = simulate(
        small_network,
        images,
        12,
        chunk_size=7,
        layers=(small_network.embedding_layer,),
        engine=engine,
    )
    e = small_network.embedding_layer
    np.testing.assert_array_equal(parts.membrane[e], whole.membrane[e])
    assert parts.membrane[0] is None and parts.spike_counts[-1] is None
    last = simulate(small_network, images[:2], 12, layers=(-1,), engine=engine)
    np.testing.assert_array_equal(last.spike_counts[-1], whole.spike_counts[-1][:2])
    with pytest.raises(LavaRetrievalError, match="layers must be indices below"):
        simulate(small_network, images[:2], 12, layers=(len(small_network.layers),))
    np.testing.assert_array_equal(
        readout_of(small_network, parts, "membrane"), whole.membrane[e].reshape(20, -1)
    )


def test_engines_agree_on_the_shipped_network(fashion):
    """Every layer's spike train, count and potential, 24 real images, Lava timing, T = 16."""
    network = SpikingNetwork.load(SHIPPED)
    images = fashion.test_images[:24]
    events = simulate(network, images, 16, record_spikes=True, chunk_size=10, engine="events")
    dense = simulate(network, images, 16, record_spikes=True, engine="torch")
    for i in range(len(network.layers)):
        np.testing.assert_array_equal(events.spikes[i], dense.spikes[i], err_msg=f"layer {i}")
        np.testing.assert_array_equal(events.membrane[i], dense.membrane[i])
        np.testing.assert_array_equal(events.spike_counts[i], dense.spike_counts[i])
    assert events.spikes[-1].any()


def test_engine_choice_and_errors(fashion):
    """int32 cannot hold this network's synaptic input: auto falls back to torch, events says so."""
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    weight = np.full((1, 784), 2**22, np.int64)
    dense = SpikingLayer("dense1", "dense", (1, 28, 28), (1,), weight, None, 1, 1.0, 1.0)
    out = SpikingLayer("dense2", "dense", (1,), (1,), np.ones((1, 1), np.int32), None, 1, 1.0, 1.0)
    network = SpikingNetwork((inp, dense, out), 1, "subtract", "separate", "hand")
    images = fashion.test_images[:2]
    counts, v = reference(network, images, 3, "delay")
    got = simulate(network, images, 3)
    np.testing.assert_array_equal(got.membrane[1], v[1])
    with pytest.raises(LavaRetrievalError, match="int32"):
        simulate(network, images, 3, engine="events")
    with pytest.raises(LavaRetrievalError, match="engine must be one of"):
        simulate(network, images, 3, engine="gpu")
    with pytest.raises(LavaRetrievalError, match="28 x 28"):
        simulate(network, images[:, :20], 3)


@pytest.mark.parametrize(
    "k, stride, padding, groups",
    [
        (3, 2, 1, 1),  # strided and padded: the tap table
        (3, 1, 1, 2),  # grouped, 2 input and 3 output channels per group
        (4, 1, 2, 1),  # stride 1 with a map larger than its input: runs clipped at both ends
        (2, 3, 0, 1),  # stride larger than the kernel: some inputs reach no output
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_convolution_geometries_match_the_reference(fashion, k, stride, padding, groups, engine):
    rng = np.random.default_rng(k * 100 + stride * 10 + padding + groups)
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    w1 = rng.integers(-40, 60, (4, 1, 5, 5))
    conv1 = SpikingLayer("conv1", "conv", (1, 28, 28), (4, 24, 24), w1, rng.integers(-9, 9, 4),
                         300, 1.0, 1.0)  # fmt: skip
    side = (24 + 2 * padding - k) // stride + 1
    w2 = rng.integers(-30, 50, (6, 4 // groups, k, k))
    conv2 = SpikingLayer("conv2", "conv", (4, 24, 24), (6, side, side), w2, rng.integers(-5, 5, 6),
                         70, 1.0, 1.0, stride=stride, padding=padding, groups=groups)  # fmt: skip
    w3 = rng.integers(-20, 30, (10, 6 * side * side))
    dense = SpikingLayer("dense1", "dense", (6, side, side), (10,), w3, rng.integers(-3, 3, 10),
                         90, 1.0, 1.0)  # fmt: skip
    network = SpikingNetwork((inp, conv1, conv2, dense), 2, "subtract", "separate", "hand")
    images = fashion.test_images[:3]
    for timing in TIMINGS:
        got = simulate(network, images, 10, timing, engine=engine)
        counts, v = reference(network, images, 10, timing)
        for i in range(len(network.layers)):
            np.testing.assert_array_equal(got.spike_counts[i], counts[i], err_msg=f"layer {i}")
            np.testing.assert_array_equal(got.membrane[i], v[i], err_msg=f"layer {i}")
        assert counts[2].sum() > 0 and counts[3].sum() > 0


def test_max_input_by_hand():
    """Worst |input + bias| per step: the largest row sum of |weights| plus the largest |bias|."""
    weight = np.array([[3, -4, 0], [1, 1, -7]])
    layer = SpikingLayer("d", "dense", (3,), (2,), weight, np.array([2, -5]), 1, 1.0, 1.0)
    assert layer.max_input == 9 + 5  # rows: 3 + 4 + 0 = 7, 1 + 1 + 7 = 9
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    assert inp.max_input == 256
