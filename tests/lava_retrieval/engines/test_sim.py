"""The simulator's own behaviour: chunking, layer selection, engine choice and errors.

Its agreement with the reference, engine by engine, is ``test_conformance.py``'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lava_retrieval.ann.model import ConvNet
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.conversion.algorithm import ConversionConfig, convert
from lava_retrieval.engines.sim import readout_of, simulate
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.reference import simulate_reference


@pytest.fixture(scope="module")
def small_network():
    torch.manual_seed(3)
    images = np.random.default_rng(3).random((40, 28, 28))
    return convert(ConvNet("4-8-16-10"), images, ConversionConfig(activation_percentile=99.0))


ENGINES = ["events", "torch"]


@pytest.mark.parametrize("engine", ENGINES)
def test_chunking_and_layer_selection(small_network, fashion, engine):
    images = fashion.test_images[:20]
    whole = simulate(
        small_network,
        images,
        SimConfig(12, chunk_size=64, engine=engine, timing="delay", readout="membrane"),
    )
    parts = simulate(
        small_network,
        images,
        SimConfig(12, chunk_size=7, engine=engine, timing="delay", readout="membrane"),
        layers=(small_network.embedding_layer,),
    )
    e = small_network.embedding_layer
    np.testing.assert_array_equal(parts.membrane[e], whole.membrane[e])
    assert parts.membrane[0] is None and parts.spike_counts[-1] is None
    last = simulate(
        small_network,
        images[:2],
        SimConfig(12, engine=engine, timing="delay", readout="membrane"),
        layers=(-1,),
    )
    np.testing.assert_array_equal(last.spike_counts[-1], whole.spike_counts[-1][:2])
    with pytest.raises(LavaRetrievalError, match="layers must be indices below"):
        simulate(
            small_network,
            images[:2],
            SimConfig(12, timing="delay", readout="membrane"),
            layers=(len(small_network.layers),),
        )
    np.testing.assert_array_equal(
        readout_of(small_network, parts, "membrane"), whole.membrane[e].reshape(20, -1)
    )


def test_engine_choice_and_errors(fashion):
    """int32 cannot hold this network's synaptic input: auto falls back to torch, events says so."""
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    weight = np.full((1, 784), 2**22, np.int64)
    dense = SpikingLayer("dense1", "dense", (1, 28, 28), (1,), weight, None, 1, 1.0, 1.0)
    out = SpikingLayer("dense2", "dense", (1,), (1,), np.ones((1, 1), np.int32), None, 1, 1.0, 1.0)
    network = SpikingNetwork((inp, dense, out), 1, "subtract", "separate", "hand")
    images = fashion.test_images[:2]
    v = simulate_reference(network, images, 3, "delay").membrane
    got = simulate(network, images, SimConfig(3, timing="delay", readout="membrane"))
    np.testing.assert_array_equal(got.membrane[1], v[1])
    with pytest.raises(LavaRetrievalError, match="int32"):
        simulate(network, images, SimConfig(3, engine="events", timing="delay", readout="membrane"))
    with pytest.raises(LavaRetrievalError, match="engine must be one of"):
        simulate(network, images, SimConfig(3, engine="gpu", timing="delay", readout="membrane"))
    with pytest.raises(LavaRetrievalError, match="28 x 28"):
        simulate(network, images[:, :20], SimConfig(3, timing="delay", readout="membrane"))


def test_max_input_by_hand():
    """Worst |input + bias| per step: the largest row sum of |weights| plus the largest |bias|."""
    weight = np.array([[3, -4, 0], [1, 1, -7]])
    layer = SpikingLayer("d", "dense", (3,), (2,), weight, np.array([2, -5]), 1, 1.0, 1.0)
    assert layer.max_input == 9 + 5  # rows: 3 + 4 + 0 = 7, 1 + 1 + 7 = 9
    inp = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 255, 255.0, 1.0)
    assert inp.max_input == 256


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((1, 28, 28), np.int32), "uint8 .* or float .* got int32"),
        (np.full((1, 28, 28), 2.0), r"\[0, 1\], found values in \[2, 2\]"),
        (np.full((1, 28, 28), np.nan), "nan"),
    ],
)
@pytest.mark.parametrize("engine", ["events", "torch"])
def test_images_that_are_not_pixels_are_refused(images, message, engine):
    """An int32 copy of uint8 pixels would otherwise be read as 255 times too bright."""
    network = SpikingNetwork.load(Path(__file__).parents[1] / "golden" / "small-net.npz")
    with pytest.raises(LavaRetrievalError, match=message):
        simulate(network, images, SimConfig(4, engine=engine, timing="delay", readout="membrane"))


def test_device_errors_are_clear(small_network, fashion):
    images = fashion.test_images[:2]
    with pytest.raises(LavaRetrievalError, match="unknown device"):
        simulate(
            small_network, images, SimConfig(4, timing="delay", readout="membrane"), device="abacus"
        )
    cpu = simulate(
        small_network, images, SimConfig(4, engine="torch", timing="delay", readout="membrane")
    )
    explicit = simulate(
        small_network,
        images,
        SimConfig(4, timing="delay", readout="membrane"),
        device=torch.device("cpu").type + ":0",
    )
    assert all((a == b).all() for a, b in zip(cpu.membrane, explicit.membrane, strict=True))
    with pytest.raises(LavaRetrievalError, match="CPU only"):
        simulate(
            small_network,
            images,
            SimConfig(4, engine="events", timing="delay", readout="membrane"),
            device="cuda",
        )
    if not torch.cuda.is_available():
        with pytest.raises(LavaRetrievalError, match="no CUDA GPU"):
            simulate(
                small_network,
                images,
                SimConfig(4, timing="delay", readout="membrane"),
                device="cuda",
            )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("timing", ["delay", "pipelined", "exact_count"])
def test_several_time_steps_from_one_run(small_network, fashion, engine, timing):
    """simulate_at gives, at every T, what simulate gives at that T (one run of the longest T
    for the prefix timings, chunk by chunk)."""
    from lava_retrieval.engines.sim import simulate_at

    images = fashion.test_images[:11]
    config = SimConfig(99, timing=timing, chunk_size=4, engine=engine, readout="membrane")
    layers = (small_network.embedding_layer, -1)
    at = simulate_at(small_network, images, config, (12, 3, 7, 12), layers=layers)
    assert sorted(at) == [3, 7, 12]
    for steps, result in at.items():
        alone = simulate(
            small_network,
            images,
            SimConfig(steps, timing=timing, readout="membrane"),
            layers=layers,
        )
        for mine, theirs in zip(
            result.spike_counts + result.membrane, alone.spike_counts + alone.membrane, strict=True
        ):
            if theirs is None:
                assert mine is None
            else:
                np.testing.assert_array_equal(mine, theirs)
    assert int(at[12].spike_counts[-1].sum()) > int(at[3].spike_counts[-1].sum())
    with pytest.raises(LavaRetrievalError, match="steps must be >= 1"):
        simulate_at(small_network, images, config, (0, 4))
