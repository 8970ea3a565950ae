"""IFLayer in the Lava runtime, one process at a time: hand-computed neuron traces, a tiny conv
layer, saturation. (Whole graphs are held to the reference by test_conformance.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from lava_retrieval.common.lava_runtime import import_lava
from lava_retrieval.snn.network import SpikingLayer
from lava_retrieval.snn.neuron import V_MAX, NeuronParams, if_step

import_lava()
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc import io  # noqa: E402

from procs.if_layer.process import IFLayer  # noqa: E402

# Threshold 5: the hand-computed traces of tests/lava_retrieval/snn/test_reference.py.
INPUTS = [3, 3, 3, 0, 7, 12]
HAND = {
    "subtract": ([3, 1, 4, 4, 6, 13], [0, 1, 0, 0, 1, 1]),
    "zero": ([3, 0, 3, 3, 0, 0], [0, 1, 0, 0, 1, 1]),
}


def _run_input_layer(currents, threshold, reset, tag, bias=None):
    """One input neuron fed ``currents`` (one per step); returns (v trace, spikes)."""
    steps = len(currents)
    source = io.source.RingBuffer(data=np.array(currents, float).reshape(1, 1, steps))
    layer = IFLayer(
        kind="input",
        input_shape=(1,),
        output_shape=(1,),
        batch_size=1,
        time_steps=steps,
        threshold=threshold,
        reset=reset,
        bias=bias,
    )
    sink = io.sink.RingBuffer(shape=(1, 1), buffer=steps)
    source.s_out.connect(layer.inp)
    layer.out.connect(sink.a_in)
    trace = []
    for _ in range(steps):
        layer.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag=tag))
        trace.append(int(layer.v.get()[0, 0]))
    spikes = sink.data.get()[0, 0].astype(int).tolist()
    layer.stop()
    return trace, spikes


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("tag", ["fixed_pt", "floating_pt"])
def test_lava_neuron_trace_by_hand(reset, tag):
    assert _run_input_layer(INPUTS, 5, reset, tag) == HAND[reset]


def test_lava_neuron_saturation():
    trace, spikes = _run_input_layer([V_MAX, V_MAX, -5], 1 << 20, "subtract", "fixed_pt")
    assert trace == [V_MAX, V_MAX, V_MAX - 5] and spikes == [0, 0, 0]


def test_tiny_conv_layer_against_the_reference():
    """A 2-channel 3x3 conv with bias on a 5x5 map, driven by fixed spike trains."""
    rng = np.random.default_rng(0)
    weight = rng.integers(-20, 21, (2, 1, 3, 3)).astype(np.int32)
    bias = np.array([2, -1], np.int32)
    steps, threshold = 8, 15
    spikes_in = (rng.random((steps, 1, 1, 5, 5)) < 0.5).astype(float)
    source = io.source.RingBuffer(data=np.moveaxis(spikes_in, 0, -1))
    layer = IFLayer(
        kind="conv",
        input_shape=(1, 5, 5),
        output_shape=(2, 3, 3),
        batch_size=1,
        time_steps=steps,
        threshold=threshold,
        weight=weight,
        bias=bias,
    )
    sink = io.sink.RingBuffer(shape=(1, 2, 3, 3), buffer=steps)
    source.s_out.connect(layer.inp)
    layer.out.connect(sink.a_in)
    layer.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    got_spikes = np.moveaxis(sink.data.get(), -1, 0)
    got_v = layer.v.get()
    layer.stop()
    # Reference: direct correlation, one step of synaptic delay, if_step.
    spec = SpikingLayer("c", "conv", (1, 5, 5), (2, 3, 3), weight, bias, threshold, 1.0, 1.0)
    v = np.zeros((1, 2, 3, 3), np.int64)
    pending = np.zeros_like(v)
    for t in range(steps):
        v, s = if_step(v, pending, bias.reshape(1, 2, 1, 1), NeuronParams(threshold))
        np.testing.assert_array_equal(got_spikes[t], s, err_msg=f"step {t + 1}")
        x = spikes_in[t, 0, 0]
        pending = np.zeros_like(v)
        for o in range(2):
            for i in range(3):
                for j in range(3):
                    pending[0, o, i, j] = int((x[i : i + 3, j : j + 3] * spec.weight[o, 0]).sum())
    np.testing.assert_array_equal(got_v, v)
    assert got_spikes.sum() > 0
