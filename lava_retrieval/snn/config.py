"""How a spiking network is run: the names of the timings, readouts and engines (defined here
once), and :class:`SimConfig`, the one record of simulation settings that travels through
``simulate``, ``embed``, the Lava graph builder, evaluation and calibration.

>>> SimConfig(time_steps=8, timing="pipelined", readout="membrane").settings()
{'time_steps': 8, 'timing': 'pipelined', 'readout': 'membrane'}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from numbers import Integral

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.network import SpikingNetwork

TIMINGS = ("delay", "no_delay", "pipelined", "exact_count", "graded", "sigma_delta")
"""When each layer's window starts (see :mod:`lava_retrieval.snn.reference`)."""
GRAPH_TIMINGS = ("delay", "pipelined", "exact_count", "graded", "sigma_delta")
"""The timings a Lava process graph runs (``no_delay`` has no synapse delay; ``pipelined``
computes its integers)."""
READOUTS = ("membrane", "spike_count", "integrated")
"""What the embedding layer gives after the last step."""
ENGINES = ("auto", "events", "torch")
"""The simulator's implementations (:mod:`lava_retrieval.engines`)."""
MAX_TIME_STEPS = 65_536
"""The most time steps per image a simulation accepts (the paper goes to 128)."""


def check_timing(timing: str) -> str:
    """``timing`` if it is one of :data:`TIMINGS`, else a clear error."""
    if timing not in TIMINGS:
        raise LavaRetrievalError(f"timing must be one of {TIMINGS}, got {timing!r}")
    return timing


def check_readout(readout: str) -> str:
    """``readout`` if it is one of :data:`READOUTS`, else a clear error."""
    if readout not in READOUTS:
        raise LavaRetrievalError(f"readout must be one of {READOUTS}, got {readout!r}")
    return readout


@dataclass(frozen=True)
class SimConfig:
    """How to simulate. T, the timing and the readout have no defaults: they belong to a
    method (``METHODS[name].sim_config()``, :mod:`lava_retrieval.conversion.methods`) or are
    chosen together.

    Attributes
    ----------
    time_steps : int
        Steps per image (T).
    timing : str
        ``delay`` (Lava's with one window for all layers, the paper's), ``no_delay``,
        ``pipelined`` (each layer's window shifted by its depth), ``exact_count`` (each layer
        integrates T steps, then fires T), ``graded`` (each layer sends its count as one graded
        message; T is the number of levels) or ``sigma_delta`` (Loihi 2's sigma-delta neurons:
        each layer sends ``floor(relu(v) / threshold)`` as one graded message, no limit; T is
        not used); see :mod:`lava_retrieval.snn.reference`.
    readout : str
        ``membrane`` (the paper's), ``spike_count`` or ``integrated``.
    chunk_size : int
        Images simulated together. Default 256 (about 0.4 GB for 32-64-10 at T = 16 with the
        ``torch`` engine, 60 MB with ``events``).
    engine : str
        ``auto`` (default: ``events`` where it can run the network, else ``torch``), ``events``
        or ``torch``.

    >>> SimConfig(128, "delay", "membrane").readout
    'membrane'
    """

    time_steps: int
    timing: str
    readout: str
    chunk_size: int = 256
    engine: str = "auto"

    def __post_init__(self) -> None:
        check_timing(self.timing)
        check_readout(self.readout)
        if self.engine not in ENGINES:
            raise LavaRetrievalError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        whole = all(
            isinstance(v, Integral) and not isinstance(v, bool)
            for v in (self.time_steps, self.chunk_size)
        )
        if not whole or not 1 <= self.time_steps <= MAX_TIME_STEPS or self.chunk_size < 1:
            raise LavaRetrievalError(
                f"time_steps must be a whole number in 1..{MAX_TIME_STEPS:,} and chunk_size >= 1,"
                f" got {self.time_steps!r} and {self.chunk_size!r}"
            )

    def settings(self) -> dict:
        """The settings that decide the result (not ``chunk_size`` or ``engine``, which only
        decide how fast it comes).

        >>> SimConfig(8, "delay", "membrane", engine="torch").settings()
        {'time_steps': 8, 'timing': 'delay', 'readout': 'membrane'}
        """
        return {"time_steps": self.time_steps, "timing": self.timing, "readout": self.readout}


def cache_key(network: SpikingNetwork, config: SimConfig, **extra: object) -> str:
    """A key for stored embeddings: the network's fingerprint, the simulation settings and
    ``extra`` (for example the images' identity), as 24 hex digits.

    Two calls give the same key only if the network computes the same and every setting that
    changes the embeddings is the same, so a cache keyed by it never serves stale embeddings.

    >>> len(cache_key(net, SimConfig(16, "delay", "membrane"), corpus=60000))
    24
    """
    payload = {"network": network.fingerprint(), **config.settings(), **extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
