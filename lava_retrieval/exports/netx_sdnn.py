"""A ``sigma_delta`` network as a lava-dl netx SDNN file, and the loader that completes it.

``convert --export-netx`` writes, for a sigma-delta network (method ``qcfs8-sdnn``), the hdf5
description lava-dl's ``netx.hdf5.Network`` reads as a sigma-delta network (PilotNet's SDNN
layout): ``layer/0`` the input (neuron ``SDNN``: a ``Delta`` encoder), then one ``conv`` per
convolution and per pooling (average pooling as a grouped convolution of one equal weight:
netx has no pooling), a ``flatten`` and the ``dense`` output layer, whose neuron is a ``Sigma``
(``sigma_output``); every other neuron is ``SDNN`` (``SigmaDelta``, 16-bit graded messages).
Weights are torch-layout integers (netx flips and reorders them for Lava's ``Conv``).

What netx cannot state it sets itself: every ``SigmaDelta`` at ``state_exp = 6``, its
threshold and bias scaled by ``2**(spike_exp + 6)``. Each layer's group therefore also holds
``stateExp`` (its ``k``: the threshold ``2**k``) and ``biasState`` (the bias plus the rounding
half, in state units, per channel), which netx ignores and :func:`load_sdnn` applies to the
loaded blocks' neurons (``state_exp``, ``vth`` one state unit, ``bias``) before they run. The
loaded network is then :mod:`lava_retrieval.lava_graph.sdnn_graph`'s graph, bit for bit (tested).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lava_retrieval.common.atomic import atomic_path
from lava_retrieval.exports.netx import _string
from lava_retrieval.loihi import sdnn_lowering
from lava_retrieval.snn.network import SpikingNetwork

#: What ``netx.hdf5.Network`` needs told: the input layer is our Delta encoder's, not netx's.
LOAD_ARGS = {"skip_layers": 1, "input_message_bits": sdnn_lowering.MESSAGE_BITS}


def _neuron(group: h5py.Group, output: bool = False) -> None:
    neuron = group.create_group("neuron")
    _string(neuron, "type", "SDNN")
    neuron.create_dataset("vThMant", data=1)  # (netx reads no messageBits: 16, its default)
    if output:
        neuron.create_dataset("sigma_output", data=1)


def export_sdnn(network: SpikingNetwork, path: str | os.PathLike) -> Path:
    """Write ``network`` (a sigma-delta network :func:`sdnn_lowering.check` accepts) as a netx
    SDNN file at ``path`` (atomically); returns the path."""
    sdnn_lowering.check(network)
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        layers = f.create_group("layer")
        group = layers.create_group("0")
        _string(group, "type", "input")
        group.create_dataset("shape", data=np.array(network.layers[0].output_shape, np.int64))
        _neuron(group)
        index = 1
        last = len(network.layers) - 1
        for i, layer in enumerate(network.layers[1:], 1):
            if layer.kind == "dense" and network.layers[i - 1].kind != "dense":
                flatten = layers.create_group(str(index))
                _string(flatten, "type", "flatten")
                flatten.create_dataset("shape", data=np.array(layer.input_shape, np.int64))
                index += 1
            group = layers.create_group(str(index))
            _string(group, "type", "dense" if layer.kind == "dense" else "conv")
            group.create_dataset("shape", data=np.array(layer.output_shape, np.int64))
            group.create_dataset("weight", data=np.asarray(layer.weight, np.int64))
            if layer.kind != "dense":
                group.create_dataset("stride", data=np.array([layer.stride] * 2))
                group.create_dataset("padding", data=np.array([layer.padding] * 2))
                group.create_dataset("dilation", data=np.array([1, 1]))
                group.create_dataset("groups", data=layer.groups)
            bias = np.zeros(layer.output_shape[0], np.int64)
            if layer.bias is not None:
                bias += layer.bias.astype(np.int64)
            group.create_dataset("stateExp", data=sdnn_lowering.state_exp(layer.threshold))
            group.create_dataset("biasState", data=bias + network.neuron(i).v_init)
            _neuron(group, output=i == last)
            index += 1
    return path


def load_sdnn(path: str | os.PathLike):
    """``netx.hdf5.Network`` of ``path`` with each sigma-delta neuron completed from the file's
    ``stateExp`` and ``biasState`` (``vth`` one state unit). Call after ``import_lava()``."""
    from lava.lib.dl import netx
    from lava.proc.sdn.process import SigmaDelta

    graph = netx.hdf5.Network(net_config=str(path), **LOAD_ARGS)
    for block, group in zip(graph.layers, _completions(path), strict=True):
        neuron = block.neuron
        if not isinstance(neuron, SigmaDelta):
            continue  # the output layer's Sigma: the host adds its bias
        bias = np.zeros(block.shape, np.int64)
        bias[:] = group["biasState"]  # per channel, the last axis
        neuron.state_exp.init = group["stateExp"]
        neuron.vth.init = 1
        neuron.bias.init = bias
    return graph


def _completions(path: str | os.PathLike) -> list[dict]:
    """Each synapse layer's ``stateExp`` and ``biasState``, in order."""
    with h5py.File(path, "r") as f:
        groups = [f["layer"][str(i)] for i in range(len(f["layer"]))]
        return [
            {
                "stateExp": int(np.asarray(g["stateExp"])),
                "biasState": np.asarray(g["biasState"], np.int64),
            }
            for g in groups
            if "stateExp" in g
        ]


def output_bias(path: str | os.PathLike) -> np.ndarray:
    """The output layer's bias (and rounding half), which its ``Sigma`` does not add."""
    return _completions(path)[-1]["biasState"]


__all__ = ["LOAD_ARGS", "export_sdnn", "load_sdnn", "output_bias"]
