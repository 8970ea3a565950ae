"""Fast batched integer simulation of a :class:`~lava_retrieval.network.SpikingNetwork`.

Each image is presented for ``time_steps`` steps starting from rest (all potentials zero, no
spikes in flight). The input layer integrates ``round(pixel * param_scale)`` every step; every
other layer integrates the integer synaptic input from the previous layer's spikes plus its bias,
and its neurons follow :func:`lava_retrieval.neuron.if_step`, bit for bit.

Timing:

``delay`` (default)
    Lava's: a synapse layer delivers the spikes of step t-1 at step t (one step of delay per
    synapse layer, as Lava's ``Dense``/``Conv``, netx blocks and the project's ``IFLayer`` do),
    so a network of L synapse layers gives its output layer no input for its first L steps. The
    embeddings equal those of the Lava graph.
``no_delay``
    Every layer sees the spikes its predecessor emitted in the same step.

Engines:

``events`` (default where numba is installed)
    Event-driven and compiled (:mod:`lava_retrieval.events`): every spike adds its outgoing
    weights to the next layer's input, in exact int32 arithmetic, one image per thread at a time.
    Spikes are sparse (a few percent of a hidden layer's neurons fire in a step), so this does a
    small fraction of the work of dense convolutions.
``torch``
    Dense: the network is feed-forward, so a layer's whole spike train depends only on the
    previous layer's whole spike train. This engine goes layer by layer, not step by step: one
    convolution over all T x B spike maps of the previous layer (all-silent leading steps are
    skipped), then the T-step neuron recurrence in place. Arithmetic is float32 holding integers:
    exact because every synaptic sum and potential is an integer below 2**24 (checked per layer;
    float64 otherwise). The 24-bit saturation is applied only when the bound
    ``T x max|input| + threshold`` could reach it.

Both give the same integers (tested). Work is chunked (``chunk_size`` images at a time) so memory
stays bounded whatever the number of images.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from lava_retrieval.errors import LavaRetrievalError
from lava_retrieval.network import SpikingLayer, SpikingNetwork
from lava_retrieval.neuron import V_MAX, input_current

TIMINGS = ("delay", "no_delay")
READOUTS = ("membrane", "spike_count", "integrated")
ENGINES = ("auto", "events", "torch")
_FLOAT32_EXACT = 1 << 24


@dataclass(frozen=True)
class SimConfig:
    """How to simulate.

    Attributes
    ----------
    time_steps : int
        Steps per image (T). Default 16.
    timing : str
        ``delay`` (Lava's, default) or ``no_delay``.
    readout : str
        ``membrane`` (default, the paper's), ``spike_count`` or ``integrated``.
    chunk_size : int
        Images simulated together. Default 256 (about 0.4 GB for 32-64-10 at T = 16 with the
        ``torch`` engine, 60 MB with ``events``).
    engine : str
        ``auto`` (default: ``events`` where it can run the network, else ``torch``), ``events``
        or ``torch``.

    >>> SimConfig(time_steps=128).readout
    'membrane'
    """

    time_steps: int = 16
    timing: str = "delay"
    readout: str = "membrane"
    chunk_size: int = 256
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise LavaRetrievalError(f"timing must be one of {TIMINGS}, got {self.timing!r}")
        if self.readout not in READOUTS:
            raise LavaRetrievalError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.engine not in ENGINES:
            raise LavaRetrievalError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.time_steps < 1 or self.chunk_size < 1:
            raise LavaRetrievalError("time_steps and chunk_size must be >= 1")


@dataclass
class SimResult:
    """What a simulation returns, per layer, for a batch of N images.

    Attributes
    ----------
    spike_counts : list of numpy.ndarray (int32)
        Spikes of each neuron over the presentation, shape (N, *layer.output_shape) (None for
        a layer that was not asked for).
    membrane : list of numpy.ndarray (int64)
        Membrane potentials after the last step (likewise).
    spikes : list of numpy.ndarray (bool) or None
        (T, N, *shape) spike trains when ``record_spikes`` was set.
    """

    spike_counts: list[np.ndarray]
    membrane: list[np.ndarray]
    spikes: list[np.ndarray] | None = None


class _Synapses:
    """One layer's weights as a torch op over (N, C, H, W) maps, exact in its dtype."""

    def __init__(self, layer: SpikingLayer) -> None:
        weight = np.asarray(layer.weight, dtype=np.int64)
        self.dtype = torch.float32 if layer.max_input < _FLOAT32_EXACT else torch.float64
        self.layer = layer
        self.weight = torch.from_numpy(weight).to(self.dtype)
        self.bias = None
        if layer.bias is not None:
            view = (-1,) + (1,) * (len(layer.output_shape) - 1)
            self.bias = torch.from_numpy(layer.bias.astype(np.float64)).to(self.dtype).view(*view)
        self.pool = (
            layer.kind == "pool"
            and layer.stride == layer.weight.shape[-1]
            and layer.padding == 0
            and bool((weight == weight.flat[0]).all())
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        x = x.to(self.dtype)
        if layer.kind == "dense":
            return x.flatten(1) @ self.weight.T
        if self.pool:
            # Equal weights, non-overlapping windows: a sum pool times the weight.
            k = layer.stride
            return F.avg_pool2d(x, k) * (float(layer.weight.flat[0]) * k * k)
        return F.conv2d(
            x, self.weight, stride=layer.stride, padding=layer.padding, groups=layer.groups
        )


def _fire(
    inputs: torch.Tensor, bias: torch.Tensor | None, threshold: int, reset: str, silent: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Run the neurons over all T steps; ``inputs`` (T, N, ...) is used as scratch space.

    Steps before ``silent`` carry no synaptic input (their rows of ``inputs`` are ignored). Most
    neurons never reach threshold: while a neuron has not fired, its potential is the running
    sum U_t of its input, so one cumulative sum finds every neuron whose U_t stays below
    threshold (and above the saturation bound); those never spike and end at U_T. Only the
    others run the exact step-by-step recurrence of :func:`lava_retrieval.neuron.if_step`.

    Returns (spikes (T, N, ...) as 0/1 in the inputs' dtype, final potentials, spike counts,
    first step with a spike (T if none)).
    """
    steps = len(inputs)
    u = inputs
    u[:silent] = 0
    if bias is not None:
        u.add_(bias)
    if u.dtype == torch.float32:
        # The running sums stay exact in float32 only below 2**24.
        largest = max(float(u.amax()), -float(u.amin()))
        if steps * largest >= _FLOAT32_EXACT:
            u = u.double()
    for t in range(1, steps):
        u[t].add_(u[t - 1])
    may_fire = (u.amax(0) >= threshold) | (u.amin(0) < -V_MAX)
    v = u[-1].clone()
    counts = torch.zeros_like(v)
    idx = may_fire.flatten().nonzero().squeeze(1)
    flat = u.view(steps, -1)
    if len(idx):
        running = flat.index_select(1, idx)  # U_t of the neurons that may fire
        current = torch.diff(running, dim=0, prepend=torch.zeros_like(running[:1]))
        fired = torch.empty(len(idx), dtype=torch.bool)
        vs = torch.zeros_like(running[0])
        spikes_sub = running  # reuse: row t is overwritten after current[t] was read
        for t in range(steps):
            vs.add_(current[t])
            vs.clamp_(-V_MAX, V_MAX)
            torch.ge(vs, threshold, out=fired)
            spikes_sub[t].copy_(fired)
            if reset == "subtract":
                vs.sub_(spikes_sub[t], alpha=threshold)
            else:
                vs.masked_fill_(fired, 0)
        v.view(-1)[idx] = vs
        counts.view(-1)[idx] = spikes_sub.sum(0)
        active = spikes_sub.any(1).nonzero()
        first = int(active[0]) if len(active) else steps
        u.zero_()
        flat.index_copy_(1, idx, spikes_sub)
    else:
        u.zero_()
        first = steps
    return u, v, counts, first


def _simulate_chunk(
    network: SpikingNetwork,
    synapses: list[_Synapses | None],
    images: np.ndarray,
    time_steps: int,
    timing: str,
    record: bool,
) -> SimResult:
    layers = network.layers
    n = len(images)
    current = torch.from_numpy(
        input_current(images, layers[0].param_scale).astype(np.float32)[:, None]
    )
    inputs = current.unsqueeze(0).repeat(time_steps, 1, 1, 1, 1)
    spikes, v, counts, first = _fire(inputs, None, layers[0].threshold, network.reset)
    result = SimResult([counts], [v], [spikes.bool()] if record else None)
    for layer, syn in zip(layers[1:], synapses[1:], strict=True):
        source = spikes[: time_steps - 1] if timing == "delay" else spikes
        offset = 1 if timing == "delay" else 0
        inputs = torch.empty((time_steps, n, *layer.output_shape), dtype=syn.dtype)
        if first < len(source):
            out = syn(source[first:].flatten(0, 1))
            inputs[first + offset : len(source) + offset] = out.view(-1, n, *layer.output_shape)
            del out
        del source, spikes
        silent = min(first + offset, time_steps)
        spikes, v, counts, first = _fire(inputs, syn.bias, layer.threshold, network.reset, silent)
        result.spike_counts.append(counts)
        result.membrane.append(v)
        if record:
            result.spikes.append(spikes.bool())
    return result


@contextlib.contextmanager
def _exact_float32():
    """Full-precision float32 products (no reduced-precision fast paths)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _engine(network: SpikingNetwork, engine: str) -> str:
    """The engine that runs ``network``: ``events`` or ``torch``."""
    from lava_retrieval import events

    if engine == "torch":
        return "torch"
    if engine == "events" and not events.AVAILABLE:
        raise LavaRetrievalError("engine 'events' needs numba: pip install numba")
    if events.supports(network):
        return "events"
    if engine == "events":
        raise LavaRetrievalError(
            "engine 'events' computes in int32, and this network's synaptic input per step "
            "could pass 2**31; use engine='torch'"
        )
    return "torch"


def simulate(
    network: SpikingNetwork,
    images: np.ndarray,
    time_steps: int,
    timing: str = "delay",
    record_spikes: bool = False,
    chunk_size: int = 256,
    progress: bool = False,
    layers: tuple[int, ...] | None = None,
    engine: str = "auto",
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
    chunk_size : int
        Images simulated together.
    progress : bool
        Show a progress bar.
    layers : tuple of int, optional
        Indices of the layers whose counts and potentials to return (the others are None);
        default all. Converting every layer's state costs time when only the embedding and
        output layers are wanted.
    engine : {"auto", "events", "torch"}
        See the module's docstring; the results are the same.

    >>> simulate(net, images[:4], 16).spike_counts[-1].shape  # doctest: +SKIP
    (4, 10)
    """
    SimConfig(time_steps=time_steps, timing=timing, chunk_size=chunk_size, engine=engine)
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    if images.ndim != 3 or len(images) == 0:
        raise LavaRetrievalError(f"images must be (N, 28, 28), got {images.shape}")
    if images.shape[1:] != tuple(network.layers[0].output_shape[-2:]):
        raise LavaRetrievalError(
            f"images are {images.shape[1]} x {images.shape[2]}, the network's input layer is "
            f"{network.layers[0].output_shape[-2]} x {network.layers[0].output_shape[-1]}"
        )
    from tqdm.auto import tqdm

    count = len(network.layers)
    if layers is not None and not all(-count <= int(i) < count for i in layers):
        raise LavaRetrievalError(f"layers must be indices below {count}, got {tuple(layers)}")
    wanted = set(range(count)) if layers is None else {int(i) % count for i in layers}
    chosen = _engine(network, engine)
    if chosen == "events":
        from lava_retrieval import events

        packed = events.packed(network)
    else:
        synapses = [None] + [_Synapses(layer) for layer in network.layers[1:]]
    parts: list[SimResult] = []
    with torch.no_grad(), _exact_float32():
        with tqdm(total=len(images), unit="img", disable=not progress, desc="sim") as bar:
            for start in range(0, len(images), chunk_size):
                chunk = images[start : start + chunk_size]
                if chosen == "events":
                    v, counts, spikes = events.simulate_events(
                        packed, chunk, time_steps, timing, record_spikes, tuple(wanted)
                    )
                    part = SimResult(counts, v, spikes)
                else:
                    part = _simulate_chunk(
                        network, synapses, chunk, time_steps, timing, record_spikes
                    )
                # Keep only what was asked for, as compact arrays, before the next chunk.
                part.spike_counts = [
                    np.asarray(a, np.int32) if i in wanted else None
                    for i, a in enumerate(part.spike_counts)
                ]
                part.membrane = [
                    np.asarray(a, np.int64) if i in wanted else None
                    for i, a in enumerate(part.membrane)
                ]
                if record_spikes:
                    part.spikes = [np.asarray(a, bool) for a in part.spikes]
                parts.append(part)
                bar.update(len(chunk))

    def join(lists, axis=0):
        return [
            np.concatenate([p[i] for p in lists], axis=axis) if p0 is not None else None
            for i, p0 in enumerate(lists[0])
        ]

    return SimResult(
        spike_counts=join([p.spike_counts for p in parts]),
        membrane=join([p.membrane for p in parts]),
        spikes=join([p.spikes for p in parts], axis=1) if record_spikes else None,
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
    engine: str = "auto",
) -> np.ndarray:
    """(N, D) embeddings of ``images``, simulated ``chunk_size`` images at a time.

    Only the embedding layer's state is kept per chunk, so memory does not grow with N beyond
    the (N, D) result.
    """
    from tqdm.auto import tqdm

    SimConfig(time_steps, timing, readout, chunk_size, engine)
    rows = []
    with tqdm(total=len(images), unit="img", disable=not progress, desc="sim") as bar:
        for start in range(0, len(images), chunk_size):
            chunk = images[start : start + chunk_size]
            result = simulate(
                network,
                chunk,
                time_steps,
                timing,
                chunk_size=chunk_size,
                layers=(network.embedding_layer,),
                engine=engine,
            )
            rows.append(readout_of(network, result, readout).astype(np.float32))
            bar.update(len(chunk))
    return np.concatenate(rows)
