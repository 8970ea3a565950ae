"""Export a :class:`~lava_retrieval.network.SpikingNetwork` to lava-dl's netx hdf5 format.

``lava.lib.dl.netx.hdf5.Network(net_config=path)`` loads the file into a Lava process graph of
netx blocks (synapse + CUBA LIF neuron per layer). What the file holds:

* ``layer/0``: ``input``, shape (C, H, W), a CUBA neuron whose bias is the image current (set
  ``in_layer.neuron.bias_mant`` per image, in netx's (W, H, C) order);
* ``conv`` layers: torch-layout weights (netx flips them for Lava's true convolution), per-channel
  integer bias, stride, padding, dilation 1, groups;
* a ``flatten`` layer before the first dense layer (netx flattens in torch's C, H, W order);
* ``dense`` layers: (out, in) integer weights and bias.

Neurons are CUBA with ``iDecay = 4096`` (netx passes ``du = iDecay - 1 = 4095``, and Lava's LIF
decays the current by ``du + 1``: the current lasts exactly one step), ``vDecay = 0`` (no leak)
and ``vThMant = threshold - 1`` (Lava spikes on ``v > vth``, the converter's neurons on
``v >= threshold``). Biases are scaled by ``2**6`` inside netx, like the synaptic input and the
threshold, so integer units carry over unchanged.

What netx and Lava's built-ins can represent limits what can be exported exactly:

* pooling must be folded (netx cannot load pooling layers): convert with ``pool_mode="folded"``;
* netx neurons reset to zero: convert with ``reset="zero"`` for the exported graph to compute
  the same spikes as the project's simulation;
* Lava's fixed-point ``Dense`` keeps mixed-sign weights as 8-bit values (the least significant bit
  of a 9-bit weight is dropped): convert with ``num_weight_bits <= 8``.

Each of these is checked and refused with a message saying which conversion option fixes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lava_retrieval.errors import LavaRetrievalError
from lava_retrieval.network import SpikingLayer, SpikingNetwork

MAX_EXACT_WEIGHT = 127
I_DECAY = 4096


class NetxExportError(LavaRetrievalError):
    """The network cannot be written as an exact netx description."""


def check_exportable(network: SpikingNetwork) -> None:
    """Raise :class:`NetxExportError` naming the conversion option that would fix the network."""
    problems = []
    if network.pool_mode != "folded" or any(layer.kind == "pool" for layer in network.layers):
        problems.append("netx cannot load pooling layers (convert with --pool-mode folded)")
    if network.reset != "zero":
        problems.append(
            "netx neurons reset to zero, this network resets by subtraction "
            "(convert with --reset zero)"
        )
    for layer in network.layers:
        if layer.weight is not None and np.abs(layer.weight).max() > MAX_EXACT_WEIGHT:
            problems.append(
                f"{layer.name} has weights beyond +-{MAX_EXACT_WEIGHT}, which Lava's 8-bit "
                "synapses cannot hold exactly (convert with --weight-bits 8)"
            )
            break
    if problems:
        raise NetxExportError("cannot export to netx: " + "; ".join(problems))


def _string(group: h5py.Group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _neuron(group: h5py.Group, threshold: int) -> None:
    neuron = group.create_group("neuron")
    _string(neuron, "type", "CUBA")
    neuron.create_dataset("iDecay", data=I_DECAY)
    neuron.create_dataset("vDecay", data=0)
    neuron.create_dataset("vThMant", data=int(threshold) - 1)
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

    >>> export_netx(net, "net.h5")  # doctest: +SKIP
    PosixPath('net.h5')
    """
    check_exportable(network)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
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
    os.replace(tmp, path)
    return path


def run_netx(
    path: str | os.PathLike, network: SpikingNetwork, image: np.ndarray, time_steps: int
) -> list[np.ndarray]:
    """Load ``path`` with netx, present one image for ``time_steps`` and record every layer.

    Runs under ``Loihi2SimCfg(select_tag="fixed_pt")`` on the CPU.

    Returns
    -------
    list of numpy.ndarray
        Per layer, the spikes as (time_steps, *shape) in netx's (W, H, C) order.
    """
    from lava_retrieval.lava_runtime import import_lava

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
        return [np.moveaxis(sink.data.get(), -1, 0) for sink in sinks]
    finally:
        graph.stop()


def input_bias(network: SpikingNetwork, image: np.ndarray) -> np.ndarray:
    """The input layer's bias for one image, in netx's (W, H, C) order.

    >>> input_bias(net, np.zeros((28, 28), np.uint8)).shape  # doctest: +SKIP
    (28, 28, 1)
    """
    from lava_retrieval.neuron import input_current

    current = input_current(np.asarray(image)[None], network.layers[0].param_scale)[0]
    return current.reshape(network.layers[0].output_shape).transpose(2, 1, 0)
