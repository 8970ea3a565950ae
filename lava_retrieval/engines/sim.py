"""Fast batched integer simulation of a :class:`~lava_retrieval.snn.network.SpikingNetwork`.

:func:`simulate` and :func:`embed` give exactly the integers of the executable specification,
:func:`lava_retrieval.snn.reference.simulate_reference` (presentation from rest, the neuron of
:func:`lava_retrieval.snn.neuron.if_step`, the initial potential, the timings, the readouts),
computed by one of two engines. This module chooses the engine and chunks the work.

Words: an *engine* is one of the simulator's implementations (below); a *backend* is what runs
the network for the command line and :mod:`lava_retrieval.embedding.files`: ``sim`` (this
module, with
its engine) or one of the Lava process graph's backends
(:data:`lava_retrieval.lava_graph.graph.BACKENDS`).

Engines:

``events`` (default where numba is installed)
    Event-driven and compiled (:mod:`lava_retrieval.engines.events`): every spike adds its outgoing
    weights to the next layer's input, in exact int32 arithmetic, one image per thread at a time.
    Spikes are sparse (a few percent of a hidden layer's neurons fire in a step), so this does a
    small fraction of the work of dense convolutions. The two-phase timings (``exact_count``,
    ``graded``) have a closed form per window: one dense product per layer over the whole chunk
    (:mod:`lava_retrieval.engines.window`), step by step only for an image whose running sums
    might saturate. :func:`simulate_at` gives several T from one run.
``torch``
    Dense, layer by layer (:mod:`lava_retrieval.engines.dense`): one convolution over all T x B
    spike
    maps of the previous layer, then the T-step neuron recurrence, in float32 or float64 holding
    exact integers.

Both are held to the reference by one conformance suite. Work is chunked (``chunk_size`` images
at a time) so memory stays bounded whatever the number of images.
"""

from __future__ import annotations

import weakref

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.config import ENGINES, READOUTS, TIMINGS, SimConfig, cache_key
from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.reference import SimResult, readout_of

__all__ = [
    "ENGINES",
    "READOUTS",
    "TIMINGS",
    "SimConfig",
    "SimResult",
    "cache_key",
    "embed",
    "readout_of",
    "simulate",
    "simulate_at",
]


def _engine(network: SpikingNetwork, engine: str, config: SimConfig | None = None) -> str:
    """The engine that runs ``network`` (with ``config``'s timing): ``events`` or ``torch``."""
    from lava_retrieval.engines import events

    if config is not None and config.timing == "sigma_delta":
        # Sigma-delta messages are unbounded counts: the dense engine, in float64.
        if engine == "events":
            raise LavaRetrievalError(
                "engine 'events' does not run the sigma_delta timing (its messages are not "
                "spikes); use engine 'torch' or 'auto'"
            )
        return "torch"
    if engine == "torch":
        return "torch"
    if engine == "events" and not events.AVAILABLE:
        raise LavaRetrievalError("engine 'events' needs numba: pip install numba")
    graded = config.time_steps if config is not None and config.timing == "graded" else 0
    if events.supports(network, graded):
        return "events"
    if engine == "events":
        raise LavaRetrievalError(
            "engine 'events' computes in int32, and this network's synaptic input per step "
            "(with graded messages: times the levels) or one of its thresholds could pass "
            "2**31; use engine='torch'"
        )
    return "torch"


_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _runner(network: SpikingNetwork, engine: str, device: str = "cpu"):
    """``run(images, time_steps, timing, record, layers) -> SimResult`` of one engine, with
    the network prepared once for it (on ``device``, for the torch engine) and kept for the
    next call."""
    cached = _RUNNERS.setdefault(network, {})
    if (engine, device) in cached:
        return cached[(engine, device)]
    if engine == "events":
        from lava_retrieval.engines import events

        packed = events.packed(network)

        def run(images, time_steps, timing, record, layers):
            v, counts, spikes = events.simulate_events(
                packed, images, time_steps, timing, record, layers
            )
            return SimResult(counts, v, spikes)
    else:
        from lava_retrieval.engines import dense

        prepared = dense.Prepared(network, device)

        def run(images, time_steps, timing, record, layers):
            return dense.simulate_dense(prepared, images, time_steps, timing, record)

    cached[(engine, device)] = run
    return run


def _checked(network: SpikingNetwork, images, layers) -> tuple[np.ndarray, set[int]]:
    """``images`` as (N, H, W) and the set of layer indices asked for, or a clear error."""
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
    count = len(network.layers)
    if layers is not None and not all(-count <= int(i) < count for i in layers):
        raise LavaRetrievalError(f"layers must be indices below {count}, got {tuple(layers)}")
    wanted = set(range(count)) if layers is None else {int(i) % count for i in layers}
    return images, wanted


def simulate_at(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
    steps: tuple[int, ...],
    *,
    layers: tuple[int, ...] | None = None,
) -> dict[int, SimResult]:
    """:func:`simulate` at every T of ``steps`` (``config.time_steps`` is not used), from one
    run of ``max(steps)`` steps where it can: under ``delay``, ``no_delay`` and ``pipelined`` a
    run of T steps is the prefix of a longer one, and the ``events`` engine keeps the states at
    each T on the way. The two-phase timings and the ``torch`` engine run once per T. The
    results are those of :func:`simulate` at each T, bit for bit.

    >>> config = SimConfig(16, "delay", "membrane")
    >>> sorted(simulate_at(net, images[:2], config, (4, 16), layers=(-1,)))
    [4, 16]
    """
    from dataclasses import replace

    steps = tuple(sorted({int(t) for t in steps}))
    if not steps or steps[0] < 1:
        raise LavaRetrievalError(f"steps must be >= 1, got {steps}")
    images, wanted = _checked(network, images, layers)
    longest = replace(config, time_steps=steps[-1])
    engine = _engine(network, config.engine, longest)
    if engine != "events" or config.timing in ("exact_count", "graded", "sigma_delta"):
        return {
            t: simulate(network, images, replace(config, time_steps=t), layers=layers)
            for t in steps
        }
    from lava_retrieval.engines import events

    packed = events.packed(network)
    parts = []
    for start in range(0, len(images), config.chunk_size):
        chunk = images[start : start + config.chunk_size]
        at = events.simulate_events_at(packed, chunk, steps, config.timing, tuple(sorted(wanted)))
        parts.append(at)

    def join(per_chunk, dtype):
        return [
            np.concatenate([p[i] for p in per_chunk]).astype(dtype) if i in wanted else None
            for i in range(len(network.layers))
        ]

    return {
        t: SimResult(
            spike_counts=join([p[k][1] for p in parts], np.int32),
            membrane=join([p[k][0] for p in parts], np.int64),
        )
        for k, t in enumerate(steps)
    }


def simulate(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
    *,
    record_spikes: bool = False,
    progress: bool = False,
    layers: tuple[int, ...] | None = None,
    device: str = "cpu",
) -> SimResult:
    """Simulate ``network`` on a batch of images.

    Parameters
    ----------
    network : SpikingNetwork
    images : numpy.ndarray
        (N, 28, 28) uint8 or float in [0, 1].
    config : SimConfig
        Time steps, timing, engine and chunk size (the readout is not used: every layer's
        counts and potentials are returned; see :func:`readout_of`).
    record_spikes : bool
        Keep every layer's spike train (memory: T x N x neurons bytes).
    progress : bool
        Show a progress bar.
    layers : tuple of int, optional
        Indices of the layers whose counts and potentials to return (the others are None);
        default all. Converting every layer's state costs time when only the embedding and
        output layers are wanted.
    device : str
        Where the ``torch`` engine computes, e.g. ``cuda`` (``auto`` then means ``torch``);
        default ``cpu``. The results are the same.

    >>> simulate(net, images[:4], SimConfig(16, "delay", "membrane")).spike_counts[-1].shape
    (4, 10)
    """
    time_steps, timing, chunk_size, engine = (
        config.time_steps,
        config.timing,
        config.chunk_size,
        config.engine,
    )
    images, wanted = _checked(network, images, layers)
    from tqdm.auto import tqdm

    if device != "cpu":
        import torch

        if engine == "events":
            raise LavaRetrievalError(f"engine 'events' runs on the CPU only, not on {device!r}")
        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise LavaRetrievalError(f"unknown device {device!r}") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise LavaRetrievalError(f"device {device!r}: this machine has no CUDA GPU")
        engine = "torch"
    run = _runner(network, _engine(network, engine, config), device)
    parts: list[SimResult] = []
    with tqdm(total=len(images), unit="img", disable=not progress, desc="sim") as bar:
        for start in range(0, len(images), chunk_size):
            chunk = images[start : start + chunk_size]
            part = run(chunk, time_steps, timing, record_spikes, tuple(sorted(wanted)))
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


def embed(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
    *,
    progress: bool = True,
) -> np.ndarray:
    """(N, D) embeddings of ``images`` with ``config``'s settings, ``config.chunk_size`` images
    at a time.

    Only the embedding layer's state is kept per chunk, so memory does not grow with N beyond
    the (N, D) result.

    >>> embed(net, images[:3], SimConfig(8, "delay", "membrane"), progress=False).shape
    (3, 1024)
    """
    from tqdm.auto import tqdm

    rows = []
    with tqdm(total=len(images), unit="img", disable=not progress, desc="sim") as bar:
        for start in range(0, len(images), config.chunk_size):
            chunk = images[start : start + config.chunk_size]
            result = simulate(network, chunk, config, layers=(network.embedding_layer,))
            rows.append(readout_of(network, result, config.readout).astype(np.float32))
            bar.update(len(chunk))
    return np.concatenate(rows)
