"""Image embeddings from a spiking network, by any backend, and their files.

A *backend* is what runs the network (:mod:`lava_retrieval.backends.registry`): ``sim`` (the
fast simulator, :mod:`lava_retrieval.engines.sim`, with its *engine* ``auto``/``events``/
``torch``) or one of the Lava process graph's backends (``lava``, ``lava-float``, ``loihi``,
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

from lava_retrieval.backends import registry
from lava_retrieval.common.atomic import atomic_path, write_text
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.engines import sim
from lava_retrieval.lava_graph import graph
from lava_retrieval.snn.config import ENGINES, SimConfig, cache_key
from lava_retrieval.snn.network import SpikingNetwork

BACKENDS = registry.names("embed")
"""The backends :func:`embed` offers."""


def embed(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
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
    config : SimConfig
        Time steps, timing, readout (and, for ``sim``, engine and chunk size): a method's
        (``METHODS[name].sim_config()``) or your own.
    backend : {"sim", "lava", "lava-float", "loihi", "loihi-hw"}
    batch_size : int
        Images per presentation window of the Lava graph.
    progress : bool

    >>> embed(net, images[:4], SimConfig(16, "delay", "membrane"), progress=False).shape
    (4, 1024)
    """
    if not registry.get(backend, "embed").graph:
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
    config: SimConfig,
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


__all__ = ["BACKENDS", "ENGINES", "embed", "embed_to_file"]
