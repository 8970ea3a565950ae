"""Fast batched integer simulation of a :class:`~lava_retrieval.network.SpikingNetwork`.

:func:`simulate` and :func:`embed` give exactly the integers of the executable specification,
:func:`lava_retrieval.reference.simulate_reference` (presentation from rest, the neuron of
:func:`lava_retrieval.neuron.if_step`, the initial potential, the timings, the readouts),
computed by one of two engines. This module chooses the engine and chunks the work.

Words: an *engine* is one of the simulator's implementations (below); a *backend* is what runs
the network for the command line and :mod:`lava_retrieval.embedding`: ``sim`` (this module, with
its engine) or one of the Lava process graph's backends (:data:`lava_retrieval.graph.BACKENDS`).

Engines:

``events`` (default where numba is installed)
    Event-driven and compiled (:mod:`lava_retrieval.events`): every spike adds its outgoing
    weights to the next layer's input, in exact int32 arithmetic, one image per thread at a time.
    Spikes are sparse (a few percent of a hidden layer's neurons fire in a step), so this does a
    small fraction of the work of dense convolutions.
``torch``
    Dense, layer by layer (:mod:`lava_retrieval.dense`): one convolution over all T x B spike
    maps of the previous layer, then the T-step neuron recurrence, in float32 or float64 holding
    exact integers.

Both are held to the reference by one conformance suite. Work is chunked (``chunk_size`` images
at a time) so memory stays bounded whatever the number of images.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass

import numpy as np

from lava_retrieval.errors import LavaRetrievalError
from lava_retrieval.network import SpikingNetwork
from lava_retrieval.reference import (
    READOUTS,
    TIMINGS,
    SimResult,
    check_readout,
    check_timing,
    readout_of,
)

ENGINES = ("auto", "events", "torch")
__all__ = ["ENGINES", "READOUTS", "TIMINGS", "SimConfig", "SimResult", "embed", "readout_of",
           "simulate"]  # fmt: skip


@dataclass(frozen=True)
class SimConfig:
    """How to simulate.

    Attributes
    ----------
    time_steps : int
        Steps per image (T). Default 16.
    timing : str
        ``delay`` (Lava's with one window for all layers, the paper's; default), ``no_delay`` or
        ``pipelined`` (each layer's window shifted by its depth; see
        :mod:`lava_retrieval.reference`).
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
        check_timing(self.timing)
        check_readout(self.readout)
        if self.engine not in ENGINES:
            raise LavaRetrievalError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.time_steps < 1 or self.chunk_size < 1:
            raise LavaRetrievalError("time_steps and chunk_size must be >= 1")

    def settings(self) -> dict:
        """The settings that decide the result (not ``chunk_size`` or ``engine``, which only
        decide how fast it comes).

        >>> SimConfig(time_steps=8, engine="torch").settings()
        {'time_steps': 8, 'timing': 'delay', 'readout': 'membrane'}
        """
        return {"time_steps": self.time_steps, "timing": self.timing, "readout": self.readout}


def cache_key(network: SpikingNetwork, config: SimConfig, **extra: object) -> str:
    """A key for stored embeddings: the network's fingerprint, the simulation settings and
    ``extra`` (for example the images' identity), as 24 hex digits.

    Two calls give the same key only if the network computes the same and every setting that
    changes the embeddings is the same, so a cache keyed by it never serves stale embeddings.

    >>> cache_key(net, SimConfig(16), corpus=60000)  # doctest: +SKIP
    '9c1f...'
    """
    payload = {"network": network.fingerprint(), **config.settings(), **extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


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
            "or one of its thresholds could pass 2**31; use engine='torch'"
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
        from lava_retrieval import events

        packed = events.packed(network)

        def run(images, time_steps, timing, record, layers):
            v, counts, spikes = events.simulate_events(
                packed, images, time_steps, timing, record, layers
            )
            return SimResult(counts, v, spikes)
    else:
        from lava_retrieval import dense

        prepared = dense.Prepared(network, device)

        def run(images, time_steps, timing, record, layers):
            return dense.simulate_dense(prepared, images, time_steps, timing, record)

    cached[(engine, device)] = run
    return run


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
    device: str = "cpu",
) -> SimResult:
    """Simulate ``network`` on a batch of images.

    Parameters
    ----------
    network : SpikingNetwork
    images : numpy.ndarray
        (N, 28, 28) uint8 or float in [0, 1].
    time_steps : int
        Steps per image (T >= 1).
    timing : {"delay", "no_delay", "pipelined"}
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
    device : str
        Where the ``torch`` engine computes, e.g. ``cuda`` (``auto`` then means ``torch``);
        default ``cpu``. The results are the same.

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
    run = _runner(network, _engine(network, engine), device)
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
