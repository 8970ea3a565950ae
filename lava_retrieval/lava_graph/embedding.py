"""Image embeddings from a spiking network, by any backend, and their files.

A *backend* is what runs the network: ``sim`` (the fast simulator,
:mod:`lava_retrieval.engines.sim`,
with its *engine* ``auto``/``events``/``torch``) or one of the Lava process graph's backends
(:data:`lava_retrieval.lava_graph.graph.BACKENDS`: ``lava``, ``lava-float``, ``loihi``,
``loihi-hw``). All
give the same embeddings (the conformance suite holds them to the reference), at different
speeds. The command line's ``embed`` is a thin wrapper around :func:`embed_to_file`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from lava_retrieval.common.atomic import atomic_path, write_text
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.engines import sim
from lava_retrieval.lava_graph import graph
from lava_retrieval.lava_graph.graph import BACKENDS as GRAPH_BACKENDS
from lava_retrieval.snn.config import ENGINES, SimConfig, cache_key
from lava_retrieval.snn.network import SpikingNetwork

BACKENDS = ("sim", *GRAPH_BACKENDS)


def embed(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig | None = None,
    *,
    backend: str = "sim",
    batch_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """(N, D) float32 embeddings of ``images`` with ``config``'s settings, by ``backend``.

    Parameters
    ----------
    network : SpikingNetwork
    images : numpy.ndarray
        (N, H, W) uint8 or float in [0, 1].
    config : SimConfig, optional
        Time steps, timing, readout (and, for ``sim``, engine and chunk size); default
        ``SimConfig()``. The Lava graph runs the ``delay`` and ``pipelined`` timings (whose
        integers equal ``no_delay``'s).
    backend : {"sim", "lava", "lava-float", "loihi", "loihi-hw"}
    batch_size : int
        Images per presentation window of the Lava graph.
    progress : bool

    >>> embed(net, images[:4], SimConfig(time_steps=16), progress=False).shape
    (4, 1024)
    """
    config = config or SimConfig()
    if backend not in BACKENDS:
        raise LavaRetrievalError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "sim":
        return sim.embed(network, images, config, progress=progress)
    if batch_size < 1:
        raise LavaRetrievalError(f"batch_size must be >= 1, got {batch_size}")
    out = graph.embed(
        network, images, config, batch_size=batch_size, backend=backend, progress=progress
    )
    return np.asarray(out, np.float32)


def embed_to_file(
    network: SpikingNetwork,
    images: np.ndarray,
    out: str | os.PathLike,
    config: SimConfig | None = None,
    *,
    backend: str = "sim",
    batch_size: int = 256,
    progress: bool = True,
    describe: dict | None = None,
) -> dict:
    """Embed ``images`` and write them to ``out`` (``.npy``, float32) with a JSON sidecar beside
    it (same name, ``.json``); both written atomically. Returns the sidecar's content.

    The sidecar records the network's fingerprint, the settings (time steps, timing, readout),
    their cache key (:func:`lava_retrieval.engines.sim.cache_key`), the backend, the time taken and
    whatever ``describe`` adds (the data split, the network's path).
    """
    config = config or SimConfig()
    out = Path(out)
    start = time.perf_counter()
    embeddings = embed(
        network, images, config, backend=backend, batch_size=batch_size, progress=progress
    )
    seconds = time.perf_counter() - start
    payload = {
        "embeddings": str(out),
        "shape": list(embeddings.shape),
        **(describe or {}),
        "backend": backend,
        **config.settings(),
        "network_fingerprint": network.fingerprint(),
        "cache_key": cache_key(network, config),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(images) / seconds, 2) if seconds > 0 else None,
    }
    if backend == "sim":
        payload["engine"] = config.engine
    with atomic_path(out, suffix=".npy") as tmp:
        np.save(tmp, embeddings)  # float32 from embed()
    write_text(out.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
    return payload


__all__ = ["BACKENDS", "ENGINES", "GRAPH_BACKENDS", "embed", "embed_to_file"]
