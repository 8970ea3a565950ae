"""Batched integer simulation of a :class:`~lava_retrieval.network.SpikingNetwork`.

Each image is presented for ``time_steps`` steps starting from rest (all potentials zero, no
spikes in flight). The input layer integrates ``round(pixel * param_scale)`` every step; every
other layer integrates the integer synaptic input from the previous layer's spikes plus its bias,
and its neurons follow :func:`lava_retrieval.neuron.if_step`.

Timing:

``delay`` (default)
    Lava's: a synapse layer delivers the spikes of step t-1 at step t (one step of delay per
    synapse layer, as Lava's ``Dense``/``Conv`` and netx blocks do), so a network of L synapse
    layers gives its output layer no input for its first L steps.
``no_delay``
    Every layer sees the spikes its predecessor emitted in the same step.

Synaptic sums are computed in float64 with integer-valued weights and 0/1 spikes, exact while
|sum| < 2**53 (the largest possible here is 4,096 inputs x 255).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from lava_retrieval.errors import LavaRetrievalError
from lava_retrieval.network import SpikingLayer, SpikingNetwork
from lava_retrieval.neuron import V_MAX, input_current

TIMINGS = ("delay", "no_delay")
READOUTS = ("membrane", "spike_count", "integrated")


@dataclass
class SimResult:
    """What a simulation returns, per layer, for a batch of N images.

    Attributes
    ----------
    spike_counts : list of numpy.ndarray (int32)
        Spikes of each neuron over the presentation, shape (N, *layer.output_shape).
    membrane : list of numpy.ndarray (int64)
        Membrane potentials after the last step.
    spikes : list of numpy.ndarray (bool) or None
        (T, N, *shape) spike trains when ``record_spikes`` was set.
    """

    spike_counts: list[np.ndarray]
    membrane: list[np.ndarray]
    spikes: list[np.ndarray] | None = None


def _synaptic_input(layer: SpikingLayer, spikes: torch.Tensor) -> torch.Tensor:
    weight = torch.from_numpy(layer.weight.astype(np.float64))
    if layer.kind == "dense":
        out = spikes.flatten(1) @ weight.T
    else:
        out = F.conv2d(
            spikes, weight, stride=layer.stride, padding=layer.padding, groups=layer.groups
        )
    if layer.bias is not None:
        view = (1, -1) if layer.kind == "dense" else (1, -1, 1, 1)
        out = out + torch.from_numpy(layer.bias.astype(np.float64)).view(*view)
    return out


def _neuron_step(v: torch.Tensor, current: torch.Tensor, threshold: int, reset: str):
    # Same arithmetic as lava_retrieval.neuron.if_step, on int64 tensors.
    v = torch.clamp(v + current, -V_MAX, V_MAX)
    spikes = v >= threshold
    v = v - threshold * spikes if reset == "subtract" else torch.where(spikes, 0, v)
    return v, spikes


def simulate(
    network: SpikingNetwork,
    images: np.ndarray,
    time_steps: int,
    timing: str = "delay",
    record_spikes: bool = False,
) -> SimResult:
    """Simulate ``network`` on a batch of images.

    Parameters
    ----------
    network : SpikingNetwork
    images : numpy.ndarray
        (N, 28, 28) uint8 or float in [0, 1].
    time_steps : int
        Steps per image (T >= 1).
    timing : {"delay", "no_delay"}
    record_spikes : bool
        Keep every layer's spike train (memory: T x N x neurons bytes).

    >>> from lava_retrieval.network import SpikingNetwork  # doctest: +SKIP
    >>> simulate(net, images[:4], 16).spike_counts[-1].shape  # doctest: +SKIP
    (4, 10)
    """
    if timing not in TIMINGS:
        raise LavaRetrievalError(f"timing must be one of {TIMINGS}, got {timing!r}")
    if time_steps < 1:
        raise LavaRetrievalError(f"time_steps must be >= 1, got {time_steps}")
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    layers = network.layers
    n = len(images)
    current_in = torch.from_numpy(input_current(images, layers[0].param_scale)[:, None])
    v = [torch.zeros((n, *layer.output_shape), dtype=torch.int64) for layer in layers]
    counts = [torch.zeros_like(x, dtype=torch.int32) for x in v]
    prev = [torch.zeros_like(x, dtype=torch.bool) for x in v]
    trains: list[list[torch.Tensor]] | None = [[] for _ in layers] if record_spikes else None
    with torch.no_grad():
        for _ in range(time_steps):
            now: list[torch.Tensor] = []
            for i, layer in enumerate(layers):
                if i == 0:
                    current = current_in
                else:
                    source = prev[i - 1] if timing == "delay" else now[i - 1]
                    current = _synaptic_input(layer, source.double()).to(torch.int64)
                v[i], spikes = _neuron_step(v[i], current, layer.threshold, network.reset)
                counts[i] += spikes
                now.append(spikes)
                if trains is not None:
                    trains[i].append(spikes)
            prev = now
    return SimResult(
        spike_counts=[c.numpy() for c in counts],
        membrane=[x.numpy() for x in v],
        spikes=None if trains is None else [torch.stack(t).numpy() for t in trains],
    )


def readout_of(network: SpikingNetwork, result: SimResult, kind: str = "membrane") -> np.ndarray:
    """The (N, D) embedding of a simulation: membrane, spike_count or integrated.

    ``integrated`` is spike_count x threshold + membrane: all the input the neuron integrated
    (exact with soft reset, no saturation).
    """
    i = network.embedding_layer
    n = len(result.membrane[i])
    if kind == "membrane":
        out = result.membrane[i]
    elif kind == "spike_count":
        out = result.spike_counts[i]
    elif kind == "integrated":
        out = result.spike_counts[i].astype(np.int64) * network.layers[i].threshold
        out = out + result.membrane[i]
    else:
        raise LavaRetrievalError(f"readout must be one of {READOUTS}, got {kind!r}")
    return out.reshape(n, -1)


def embed(
    network: SpikingNetwork,
    images: np.ndarray,
    time_steps: int,
    readout: str = "membrane",
    timing: str = "delay",
    chunk_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """(N, D) embeddings of ``images``, simulated ``chunk_size`` images at a time."""
    from tqdm.auto import tqdm

    if readout not in READOUTS:
        raise LavaRetrievalError(f"readout must be one of {READOUTS}, got {readout!r}")
    rows = []
    with tqdm(total=len(images), unit="img", disable=not progress, desc="sim") as bar:
        for start in range(0, len(images), chunk_size):
            chunk = images[start : start + chunk_size]
            rows.append(readout_of(network, simulate(network, chunk, time_steps, timing), readout))
            bar.update(len(chunk))
    return np.concatenate(rows)
