"""Export a :class:`~lava_retrieval.snn.network.SpikingNetwork` to lava-dl's netx hdf5 format.

``lava.lib.dl.netx.hdf5.Network(net_config=path)`` loads the file into a Lava process graph of
netx blocks (synapse + CUBA LIF neuron per layer). What the file holds:

* ``layer/0``: ``input``, shape (C, H, W), a CUBA neuron whose bias is the image current (set
  ``in_layer.neuron.bias_mant`` per image, in netx's (W, H, C) order);
* ``conv`` layers: torch-layout weights (netx flips them for Lava's true convolution), per-channel
  integer bias, stride, padding, dilation 1, groups;
* a ``flatten`` layer before the first dense layer (netx flattens in torch's C, H, W order);
* ``dense`` layers: (out, in) integer weights and bias.

Neurons are CUBA LIF neurons set up by :mod:`lava_retrieval.loihi.lowering` (the one mapping onto
Lava's built-ins): ``iDecay = 4096`` (the current lasts exactly one step), ``vDecay = 0`` (no
leak) and ``vThMant = threshold - 1``; biases, inputs and thresholds are all scaled by ``2**6``
inside netx, so integer units carry over unchanged. Netx's blocks are tested spike for spike
against the reference simulation in the conformance suite.

What netx and Lava's built-ins can represent limits what can be exported exactly (folded
pooling, zero reset, 8-bit weights, the chip's threshold and bias ranges): every reason a network
cannot be exported is given in one message, each naming the conversion option that fixes it
(:func:`lava_retrieval.loihi.lowering.problems`).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lava_retrieval.common.atomic import atomic_path
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.loihi import lowering
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork


class NetxExportError(LavaRetrievalError):
    """The network cannot be written as an exact netx description."""


def check_exportable(network: SpikingNetwork) -> None:
    """Raise :class:`NetxExportError` with every reason (each naming the conversion option that
    fixes it) the network cannot be exported exactly, in one message."""
    found = lowering.problems(network, "netx")
    if found:
        raise NetxExportError("cannot export to netx: " + "; ".join(found))


def _string(group: h5py.Group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _neuron(group: h5py.Group, threshold: int) -> None:
    neuron = group.create_group("neuron")
    _string(neuron, "type", "CUBA")
    neuron.create_dataset("iDecay", data=lowering.I_DECAY)
    neuron.create_dataset("vDecay", data=lowering.DV)
    neuron.create_dataset("vThMant", data=lowering.vth(threshold))
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("wgtExp", data=0)


def _synaptic_layer(group: h5py.Group, layer: SpikingLayer) -> None:
    _string(group, "type", layer.kind)
    group.create_dataset("shape", data=np.array(layer.output_shape, dtype=np.int64))
    group.create_dataset("weight", data=np.asarray(layer.weight, dtype=np.int64))
    if layer.bias is not None:
        group.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.int64))
    if layer.kind == "conv":
        group.create_dataset("stride", data=np.array([layer.stride] * 2))
        group.create_dataset("padding", data=np.array([layer.padding] * 2))
        group.create_dataset("dilation", data=np.array([1, 1]))
        group.create_dataset("groups", data=layer.groups)
    _neuron(group, layer.threshold)


def export_netx(network: SpikingNetwork, path: str | os.PathLike) -> Path:
    """Write ``network`` as a netx hdf5 description that ``netx.hdf5.Network`` loads.

    Parameters
    ----------
    network : SpikingNetwork
        Converted with ``pool_mode="folded"``, ``reset="zero"`` and 8-bit weights.
    path : path
        Output file (written to a temporary name, then renamed).

    Returns
    -------
    pathlib.Path

    >>> export_netx(net, "/tmp/net.h5")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    NetxExportError: cannot export to netx: netx cannot load pooling layers (...); ...
    """
    check_exportable(network)
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        layers = f.create_group("layer")
        index = 0
        previous_kind = "input"
        for layer in network.layers:
            if layer.kind == "dense" and previous_kind != "dense":
                flatten = layers.create_group(str(index))
                _string(flatten, "type", "flatten")
                flatten.create_dataset("shape", data=np.array(layer.input_shape, dtype=np.int64))
                index += 1
            group = layers.create_group(str(index))
            if layer.kind == "input":
                _string(group, "type", "input")
                group.create_dataset("shape", data=np.array(layer.output_shape, dtype=np.int64))
                _neuron(group, layer.threshold)
            else:
                _synaptic_layer(group, layer)
            previous_kind = layer.kind
            index += 1
    return path


def run_netx(
    path: str | os.PathLike, network: SpikingNetwork, image: np.ndarray, time_steps: int
) -> list[np.ndarray]:
    """Load ``path`` with netx, present one image for ``time_steps`` and record every layer.

    Runs under ``Loihi2SimCfg(select_tag="fixed_pt")`` on the CPU.

    Returns
    -------
    list of numpy.ndarray
        Per layer, the spikes as (time_steps, *layer.output_shape), in the network's (C, H, W)
        order.
    """
    from lava_retrieval.common.lava_runtime import import_lava

    import_lava()
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    graph = netx.hdf5.Network(net_config=str(path))
    graph.in_layer.neuron.bias_mant.init = input_bias(network, image)
    sinks = []
    for block in graph.layers:
        sink = io.sink.RingBuffer(shape=block.out.shape, buffer=time_steps)
        block.out.connect(sink.a_in)
        sinks.append(sink)
    graph.run(condition=RunSteps(num_steps=time_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    try:
        # Sinks record (*shape, T) in netx's (W, H, C) order: to (T, *shape) in (C, H, W).
        return [lowering.from_whc(np.moveaxis(sink.data.get(), -1, 0), lead=1) for sink in sinks]
    finally:
        graph.stop()


def input_bias(network: SpikingNetwork, image: np.ndarray) -> np.ndarray:
    """The input layer's bias for one image, in netx's (W, H, C) order.

    >>> input_bias(net, np.zeros((28, 28), np.uint8)).shape
    (28, 28, 1)
    """
    from lava_retrieval.snn.neuron import input_current

    current = input_current(np.asarray(image)[None], network.layers[0].param_scale)[0]
    return lowering.to_whc(current.reshape(network.layers[0].output_shape))
