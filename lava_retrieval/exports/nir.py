"""A :class:`~lava_retrieval.snn.network.SpikingNetwork` as a NIR graph (Neuromorphic
Intermediate Representation, the ``nir`` package), the format Lava, Norse, sinabs, snntorch,
SpiNNaker2 and Xylo read.

The graph, node by node (``NAME`` the layer's name):

``image``
    ``nir.Input`` of the image's shape (1, 28, 28). Feed it the pixel current
    ``round(pixel * param_scale)`` (pixels in [0, 1]; ``metadata["input"]``) at every time
    step of a window.
``NAME`` (the input layer, unless the input is analog)
    ``nir.IF`` with ``r = 1`` and the layer's threshold: the pixel neurons.
``NAME.synapse``
    ``nir.Conv2d`` (stride, padding, bias) or, after a ``flatten`` node (``nir.Flatten`` of
    the whole map, torch's (C, H, W) order), ``nir.Affine``. Pooling (a depthwise convolution
    with equal weights) and any grouped convolution are written as an ordinary convolution
    whose weights outside the groups are zero: the same integer sums, and readers that cannot
    build grouped convolutions (sinabs 3.1.3) read them.
``NAME``
    ``nir.IF`` (``r = 1``, ``v_threshold`` the layer's threshold), one per neuron.
``output``
    ``nir.Output`` after the last layer. ``metadata["embedding_layer"]`` names the layer whose
    state is the embedding.

Weights, biases and thresholds are the network's integers, stored as float64 (exact to 2^53).

What NIR cannot state is in the graph's ``metadata`` (and must be set in the importer to get
this package's integers):

- ``reset``: ``subtract`` (soft reset: a spike subtracts the threshold), which NIR's ``IF``
  (reset to zero) does not have; ``zero`` is NIR's own ``IF``;
- ``threshold_comparison``: a neuron fires when ``v >= v_threshold``;
- ``initial_potential``: each layer's potential at the start of a window (0 unless the network
  starts from a fraction of its thresholds); NIR starts every neuron at 0;
- ``timing``: ``no_delay`` (every layer sees its predecessor's spikes of the same step), which
  is how NIR graphs are run, one step through the whole graph; ``pipelined`` gives each image
  the same integers. The other timings cannot be exported (:func:`export_problems`);
- ``saturation``: potentials are clipped to +-``v_max`` (Loihi's 24-bit registers) every step;
  an importer without that bound agrees as long as no potential reaches it;
- one spike per neuron and step (a multi-spike neuron, sinabs' default, differs).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.network import SpikingNetwork

NIR_TIMINGS = ("no_delay", "pipelined")
"""Timings a NIR graph states (run one step through the whole graph)."""
WHY_NOT = {
    "delay": "Lava's one-step synaptic delay per layer (nir.Delay nodes, which no importer "
    "tested here reads)",
    "exact_count": "exact_count's two phases per window (integrate without firing, then fire "
    "without input)",
    "graded": "graded spikes (one message per window carrying a spike count)",
    "sigma_delta": "sigma-delta neurons (a graded message per image, the ReLU of the sum "
    "divided by a power of two)",
}


class NIRExportError(LavaRetrievalError):
    """A network or setting that a NIR graph cannot state."""


def nir_module():
    """``nir``, or one line naming the extra to install."""
    try:
        import nir
    except ImportError:
        raise NIRExportError(
            "NIR export needs the nir package: pip install 'lava-retrieval[nir]'"
        ) from None
    return nir


def export_problems(network: SpikingNetwork | None, timing: str) -> list[str]:
    """Why ``network`` (None: any network) run with ``timing`` cannot be written as a NIR
    graph (empty: it can). Every network of this package can, under the timings NIR states."""
    problems = []
    if timing == "sigma_delta":
        problems.append(
            f"NIR cannot state {WHY_NOT[timing]}; a sigma-delta network exports to netx "
            "(convert --sdnn --export-netx)"
        )
    elif timing not in NIR_TIMINGS:
        reason = WHY_NOT.get(timing, f"unknown timing {timing!r}")
        problems.append(
            f"the {timing} timing: NIR runs a graph one step at a time with no delay; it cannot "
            f"state {reason} (export with --nir-timing {' or '.join(NIR_TIMINGS)})"
        )
    return problems


def ungrouped(weight: np.ndarray, groups: int) -> np.ndarray:
    """The weights (out, in / groups, kh, kw) of a grouped convolution as an ordinary one
    (out, in, kh, kw), zero outside each group.

    >>> ungrouped(np.array([[[[2]]], [[[3]]]]), 2)[:, :, 0, 0].tolist()
    [[2, 0], [0, 3]]
    """
    out, per_group = weight.shape[:2]
    if groups == 1:
        return weight
    full = np.zeros((out, per_group * groups, *weight.shape[2:]), weight.dtype)
    outs = out // groups
    for g in range(groups):
        full[g * outs : (g + 1) * outs, g * per_group : (g + 1) * per_group] = weight[
            g * outs : (g + 1) * outs
        ]
    return full


def to_nir(network: SpikingNetwork, timing: str = "no_delay", time_steps: int | None = None):
    """The NIR graph of ``network`` (see the module docstring); ``timing`` and ``time_steps``
    are recorded in its metadata. Refuses, in one message naming every reason, what NIR cannot
    state at all."""
    problems = export_problems(network, timing)
    if problems:
        raise NIRExportError("cannot export to NIR: " + "; ".join(problems))
    nir = nir_module()
    f64 = np.float64
    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    first = network.layers[0]
    nodes["image"] = nir.Input(input_type={"input": np.array(first.output_shape)})
    previous = "image"

    def neurons(layer) -> None:
        nonlocal previous
        shape = layer.output_shape
        nodes[layer.name] = nir.IF(
            r=np.ones(shape, f64), v_threshold=np.full(shape, layer.threshold, f64)
        )
        edges.append((previous, layer.name))
        previous = layer.name

    if not network.analog_input:
        neurons(first)
    for layer in network.layers[1:]:
        weight = np.asarray(layer.weight, f64)
        outputs = weight.shape[0]
        bias = np.zeros(outputs, f64) if layer.bias is None else np.asarray(layer.bias, f64)
        synapse = f"{layer.name}.synapse"
        if layer.kind == "dense":
            if len(layer.input_shape) > 1:  # a map before it: flattened in (C, H, W) order
                nodes["flatten"] = nir.Flatten(
                    input_type={"input": np.array(layer.input_shape)}, start_dim=0, end_dim=-1
                )
                edges.append((previous, "flatten"))
                previous = "flatten"
            nodes[synapse] = nir.Affine(weight=weight, bias=bias)
        else:
            nodes[synapse] = nir.Conv2d(
                input_shape=tuple(layer.input_shape[1:]),
                weight=ungrouped(weight, layer.groups),
                stride=(layer.stride, layer.stride),
                padding=(layer.padding, layer.padding),
                dilation=(1, 1),
                groups=1,
                bias=bias,
            )
        edges.append((previous, synapse))
        previous = synapse
        neurons(layer)
    nodes["output"] = nir.Output(output_type={"output": np.array(network.layers[-1].output_shape)})
    edges.append((previous, "output"))
    v_max = network.neuron(0).v_max
    metadata = {
        "producer": "lava-retrieval",
        "network_fingerprint": network.fingerprint(),
        "arch": network.arch,
        "embedding_layer": network.layers[network.embedding_layer].name,
        "reset": network.reset,
        "threshold_comparison": "v >= v_threshold",
        "spikes_per_step": 1,
        "initial_potential": {
            layer.name: network.neuron(i).v_init for i, layer in enumerate(network.layers)
        },
        "timing": timing,
        "time_steps": time_steps if time_steps is not None else "",
        "saturation": f"potentials clipped to [-{v_max}, {v_max}] every step",
        "input": "feed round(pixel * param_scale) to node 'image' at every step, pixels in "
        f"[0, 1]; param_scale = {first.param_scale!r}"
        + ("; the input is analog: no input neurons" if network.analog_input else ""),
        "param_scale": float(first.param_scale),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export_nir(
    network: SpikingNetwork,
    path: str | os.PathLike,
    timing: str = "no_delay",
    time_steps: int | None = None,
) -> Path:
    """Write :func:`to_nir` of ``network`` to ``path`` (NIR's HDF5 file), atomically."""
    from lava_retrieval.common.atomic import atomic_path, check_output

    graph = to_nir(network, timing, time_steps)  # refused before anything is written
    nir = nir_module()
    path = check_output(Path(path))
    with atomic_path(path) as tmp:
        nir.write(str(tmp), graph)
    return path
