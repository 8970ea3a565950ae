"""Loihi resource model: neurons, fan-in, synapses, synaptic memory and cores per layer.

The limits are the ones the paper quotes for Loihi 1 (Davies et al. 2018): 128 neuromorphic cores
in an 8 x 16 grid; per core at most 1,024 neurons, 128 KB of synaptic memory and a fan-in of 4,096
(the number of inputs one neuron can have).

Per layer:

* ``neurons``: size of the layer's output map.
* ``fan_in``: inputs of one neuron (kernel area x input channels per group; the input size for a
  dense layer; 0 for the input layer, whose neurons are driven by a bias current).
* ``synapses``: connections actually made, counting only in-bounds kernel taps (zero padding
  makes none).
* ``synaptic_memory_bytes``: ``synapses x num_weight_bits / 8``: every synapse stores its own
  weight (Loihi does not share convolution kernels).
* ``cores``: neurons are packed into cores until either 1,024 neurons or 128 KB of their synaptic
  memory is reached: ``ceil(neurons / min(1024, floor(128 KB / (fan_in x bits / 8))))``.
* ``max_input``: the largest synaptic input one neuron can receive in one step (the larger of its
  positive and negative weight sums). Lava's fixed-point LIF shifts it left by 6 into a 24-bit
  current register, so beyond 2**17 - 1 the current would wrap: reported as a warning.

A network is deployable when every layer's fan-in is at most 4,096 and all layers together need at
most 128 cores; otherwise ``reason`` says which limit is broken.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.figures import pyplot, save_figure
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork

NUM_CORES = 128
GRID = (8, 16)
NEURONS_PER_CORE = 1024
SYNAPTIC_MEMORY_PER_CORE = 128 * 1024
MAX_FAN_IN = 4096
MAX_INPUT = (1 << 17) - 1


class UndeployableError(LavaRetrievalError):
    """The network does not fit one Loihi chip."""


@dataclass(frozen=True)
class LayerResources:
    """Resources of one layer (see the module docstring for the definitions)."""

    name: str
    kind: str
    neurons: int
    fan_in: int
    synapses: int
    synaptic_memory_bytes: int
    cores: int
    max_input: int


@dataclass(frozen=True)
class ResourceReport:
    """Per-layer resources and the verdict for one chip.

    Attributes
    ----------
    layers : tuple of LayerResources
    total_cores : int
    deployable : bool
    reason : str
        Empty when deployable, else the broken limits.
    warnings : tuple of str
        Not blocking (e.g. a synaptic input that could wrap Lava's current register).
    num_weight_bits : int
    """

    layers: tuple[LayerResources, ...]
    total_cores: int
    deployable: bool
    reason: str
    warnings: tuple[str, ...]
    num_weight_bits: int

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {
            "layers": [asdict(layer) for layer in self.layers],
            "total_cores": self.total_cores,
            "chip_cores": NUM_CORES,
            "deployable": self.deployable,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "num_weight_bits": self.num_weight_bits,
        }


def _synapses(layer: SpikingLayer) -> int:
    if layer.weight is None:
        return 0
    if layer.kind == "dense":
        return int(layer.weight.size)
    # In-bounds taps per output position: correlate the padded input's support with the kernel.
    _, h_in, w_in = layer.input_shape
    k, s, p = layer.weight.shape[-1], layer.stride, layer.padding
    _, h_out, w_out = layer.output_shape

    def taps(n_in: int, n_out: int) -> int:
        starts = np.arange(n_out) * s - p
        return int(sum(np.clip(start + k, 0, n_in) - np.clip(start, 0, n_in) for start in starts))

    per_channel_pair = taps(h_in, h_out) * taps(w_in, w_out)
    c_out, c_in_per_group = layer.weight.shape[:2]
    return per_channel_pair * c_out * c_in_per_group


def _max_input(layer: SpikingLayer) -> int:
    if layer.weight is None:
        return 0
    w = layer.weight.reshape(len(layer.weight), -1).astype(np.int64)
    positive, negative = np.clip(w, 0, None).sum(1), np.clip(-w, 0, None).sum(1)
    bias = 0 if layer.bias is None else np.abs(layer.bias.astype(np.int64))
    return int(np.max(np.maximum(positive, negative) + bias))


def check(network: SpikingNetwork, num_weight_bits: int | None = None) -> ResourceReport:
    """Resource report of ``network`` on one Loihi chip.

    Parameters
    ----------
    network : SpikingNetwork
    num_weight_bits : int, optional
        Stored bits per synapse; default: the converter's ``num_weight_bits`` (9).

    >>> report = check(net)
    >>> report.total_cores, report.deployable
    (55, True)
    """
    if num_weight_bits is None:
        num_weight_bits = int(network.manifest.get("converter", {}).get("num_weight_bits", 9))
    rows, problems, warnings = [], [], []
    for layer in network.layers:
        fan_in = layer.fan_in
        synapses = _synapses(layer)
        memory = math.ceil(synapses * num_weight_bits / 8)
        per_neuron = fan_in * num_weight_bits / 8
        per_core = NEURONS_PER_CORE
        if per_neuron > 0:
            per_core = min(per_core, int(SYNAPTIC_MEMORY_PER_CORE // per_neuron))
        if fan_in > MAX_FAN_IN or per_core == 0:
            problems.append(f"{layer.name}: fan-in {fan_in} exceeds {MAX_FAN_IN}")
            cores = 0
        else:
            cores = math.ceil(layer.num_neurons / per_core)
        max_input = _max_input(layer)
        if max_input > MAX_INPUT:
            warnings.append(
                f"{layer.name}: a synaptic input of up to {max_input} per step could wrap Lava's "
                f"24-bit current register (limit {MAX_INPUT})"
            )
        rows.append(
            LayerResources(
                layer.name,
                layer.kind,
                layer.num_neurons,
                fan_in,
                synapses,
                memory,
                cores,
                max_input,
            )
        )
    total = sum(row.cores for row in rows)
    if total > NUM_CORES:
        problems.append(f"{total} cores needed, the chip has {NUM_CORES}")
    return ResourceReport(
        layers=tuple(rows),
        total_cores=total,
        deployable=not problems,
        reason="; ".join(problems),
        warnings=tuple(warnings),
        num_weight_bits=num_weight_bits,
    )


def plot_core_map(report: ResourceReport, path: str | os.PathLike, title: str = "") -> Path:
    """Draw the chip's 8 x 16 core grid coloured by layer (the paper's Fig. 3) as a PNG."""
    plt = pyplot()
    from matplotlib.patches import Patch, Rectangle

    rows, cols = GRID
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(11, 6.2))
    core = 0
    handles = []
    for i, layer in enumerate(report.layers):
        colour = colours(i % 10)
        for _ in range(layer.cores):
            if core < NUM_CORES:
                r, c = divmod(core, cols)
                ax.add_patch(Rectangle((c, rows - 1 - r), 0.92, 0.92, color=colour))
            core += 1
        handles.append(Patch(color=colour, label=f"{layer.name}: {_cores(layer.cores)}"))
    for free in range(min(core, NUM_CORES), NUM_CORES):
        r, c = divmod(free, cols)
        ax.add_patch(Rectangle((c, rows - 1 - r), 0.92, 0.92, color="0.9"))
    handles.append(Patch(color="0.9", label=f"free: {_cores(max(NUM_CORES - core, 0))}"))
    ax.set_xlim(-0.1, cols)
    ax.set_ylim(-0.1, rows)
    ax.set_aspect("equal")
    ax.axis("off")
    verdict = "deployable" if report.deployable else f"NOT deployable: {report.reason}"
    ax.set_title(
        (title + "\n" if title else "")
        + f"{report.total_cores} of {NUM_CORES} Loihi cores ({verdict})"
    )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=110)
    return path


def _cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"
