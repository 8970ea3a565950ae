"""The Lava graph's compiled step (:mod:`lava_retrieval.engines.scatter`) against the numpy
synapses and neuron it replaces, on every geometry and on spikes, counts and currents."""

from __future__ import annotations

import numpy as np
import pytest

from lava_retrieval.snn.network import SpikingLayer
from lava_retrieval.snn.neuron import NeuronParams, if_step
from lava_retrieval.snn.synapse import SynapticOp
from procs.if_layer.scatter import EventSynapses, if_step_in_place

GEOMETRIES = {  # kind, C_in, C_out, side, K, stride, padding, groups
    "conv": ("conv", 3, 8, 12, 5, 1, 0, 1),
    "strided-padded": ("conv", 4, 6, 11, 3, 2, 1, 1),
    "grouped": ("conv", 4, 6, 10, 3, 1, 1, 2),
    "stride-above-kernel": ("conv", 2, 4, 10, 2, 3, 0, 1),
    "pool": ("pool", 5, 5, 9, 2, 2, 0, 5),  # the odd row and column reach no output
    "dense": ("dense", 3, 7, 4, 1, 1, 0, 1),
}


def _layer(kind, cin, cout, side, k, stride, padding, groups, rng) -> SpikingLayer:
    if kind == "dense":
        weight = rng.integers(-60, 60, (cout, cin * side * side))
        return SpikingLayer("d", "dense", (cin, side, side), (cout,), weight, None, 9, 1.0, 1.0)
    out = (side + 2 * padding - k) // stride + 1
    weight = rng.integers(-60, 60, (cout, cin // groups, k, k))
    if kind == "pool":
        weight = np.full((cout, 1, k, k), 7)
    return SpikingLayer(
        "c",
        kind,
        (cin, side, side),
        (cout, out, out),
        weight,
        None,
        9,
        1.0,
        1.0,
        stride=stride,
        padding=padding,
        groups=groups,
    )


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("inputs", ["spikes", "counts", "currents"])
def test_event_synapses_equal_the_dense_product(geometry, inputs):
    rng = np.random.default_rng(len(geometry) + len(inputs))
    layer = _layer(*GEOMETRIES[geometry], rng)
    shape = (5, *layer.input_shape)
    if inputs == "spikes":
        x = (rng.random(shape) < 0.2).astype(np.int32)
    elif inputs == "counts":
        x = rng.integers(0, 17, shape).astype(np.int32)
    else:  # signed and large: sums past 2**31 take int64
        x = rng.integers(-(2**20), 2**20, shape).astype(np.int64)
    got = EventSynapses(layer)(x)
    want = np.rint(SynapticOp(layer)(x)).astype(np.int64)
    np.testing.assert_array_equal(got, want)
    assert got.shape == want.shape and np.abs(want).sum() > 0
    if inputs == "currents" and geometry == "conv":
        assert got.dtype == np.int64


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("layout", ["chw", "channels-last", "dense", "strided"])
def test_the_neuron_step_in_place_is_if_step(reset, layout):
    rng = np.random.default_rng(7)
    params = NeuronParams(threshold=40, reset=reset, v_max=100)
    shape = (3, 4) if layout == "dense" else (3, 4, 5, 6)
    v = rng.integers(-100, 101, shape).astype(np.int32)
    a_in = rng.integers(-200, 200, shape)
    bias = rng.integers(-9, 9, shape[1])
    want_v, want_spikes = if_step(v, a_in, bias.reshape((1, -1) + (1,) * (len(shape) - 2)), params)
    if layout == "channels-last":  # as EventSynapses returns it: a view of (B, H, W, C)
        a_in = np.ascontiguousarray(a_in.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    got_v = v if layout != "strided" else np.zeros((3, 8, 5, 6), np.int32)[:, ::2]
    got_v[...] = v
    spikes = if_step_in_place(got_v, a_in, bias, params)
    np.testing.assert_array_equal(got_v, want_v)
    np.testing.assert_array_equal(spikes.astype(bool), want_spikes)
    assert want_spikes.any() and (np.abs(want_v) == 100).any()  # fires and saturates
