"""Every backend that runs a spiking network, what it needs and why a network cannot run on it.

One record per backend (:data:`BACKENDS`); the places that offer a choice of backend ask
:func:`names` for theirs (``embed``, ``index``, ``serve``, ``resident``, ``demo``), and the
reasons a network cannot run come from :func:`problems` (a network and its settings) or
:func:`settings_problems` (a method's settings, before any conversion), so the command line,
``lava-retrieval methods``, the Lava graph and the web page say the same.

>>> names("index")
('sim', 'lava', 'loihi')
>>> "use pipelined, its equal" in problems("lava", net, SimConfig(16, "no_delay", "membrane"))[0]
True
"""

from __future__ import annotations

from dataclasses import dataclass

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.loihi import lowering, sdnn_lowering
from lava_retrieval.snn.config import GRAPH_TIMINGS, SimConfig
from lava_retrieval.snn.network import SpikingNetwork

USES = ("embed", "index", "serve", "resident", "demo")
"""Where a choice of backend is offered: ``embed`` (the command and
:func:`lava_retrieval.embed`), ``index`` (``index build``/``add``, ``search``), ``serve`` (the
web service), ``resident`` (a graph kept running between queries), ``demo``."""


class BackendError(LavaRetrievalError):
    """A backend that does not exist, is not offered there, or cannot run the network."""


@dataclass(frozen=True)
class Backend:
    """A way to run a spiking network.

    Attributes
    ----------
    name : str
        As ``--backend`` takes it.
    description : str
    graph : bool
        A Lava process graph (else the fast simulator, :mod:`lava_retrieval.engines`).
    chip : bool
        Lava's own Loihi processes (``Conv``/``Dense``/``LIFReset``, or the sigma-delta
        processes): the network must lower onto them exactly.
    hardware : bool
        A Loihi 2 system through ``Loihi2HwCfg``: needs Intel's lava-loihi extension.
    uses : tuple of str
        Where it is offered (:data:`USES`).
    """

    name: str
    description: str
    graph: bool
    chip: bool
    hardware: bool
    uses: tuple[str, ...]


BACKENDS = {
    b.name: b
    for b in (
        Backend(
            "sim",
            "the fast simulator (engines events/torch)",
            graph=False,
            chip=False,
            hardware=False,
            uses=("embed", "index", "serve"),
        ),
        Backend(
            "lava",
            "the Lava process graph, integer ProcessModels (bit-accurate)",
            graph=True,
            chip=False,
            hardware=False,
            uses=("embed", "index", "serve", "resident", "demo"),
        ),
        Backend(
            "lava-float",
            "the Lava process graph, floating-point ProcessModels",
            graph=True,
            chip=False,
            hardware=False,
            uses=("embed", "serve", "resident"),
        ),
        Backend(
            "loihi",
            "Lava's own Loihi processes, simulated on the CPU",
            graph=True,
            chip=True,
            hardware=False,
            uses=("embed", "index", "serve", "resident", "demo"),
        ),
        Backend(
            "loihi-hw",
            "Lava's own Loihi processes on a Loihi 2 system (needs lava-loihi)",
            graph=True,
            chip=True,
            hardware=True,
            uses=("embed",),
        ),
    )
}


def names(use: str | None = None) -> tuple[str, ...]:
    """The backends offered for ``use`` (None: all), in the registry's order.

    >>> names()
    ('sim', 'lava', 'lava-float', 'loihi', 'loihi-hw')
    """
    if use is not None and use not in USES:
        raise BackendError(f"use must be one of {USES}, got {use!r}")
    return tuple(name for name, b in BACKENDS.items() if use is None or use in b.uses)


def get(name: str, use: str | None = None) -> Backend:
    """The backend called ``name``, if offered for ``use``; else a clear error."""
    offered = names(use)
    if name not in offered:
        where = f" for {use}" if use else ""
        raise BackendError(f"backend must be one of {offered}{where}, got {name!r}")
    return BACKENDS[name]


def hardware_problems() -> list[str]:
    """Why a Loihi system cannot be used here: lava-loihi is not installed (empty if it is)."""
    try:
        import lava.magma.compiler.subcompilers.nc  # noqa: F401  (part of lava-loihi)
    except ImportError:
        return [
            "running on Loihi needs Intel's lava-loihi extension, which is not installed; "
            "--backend loihi simulates the same process graph on the CPU"
        ]
    return []


def _graph_timing_problems(timing: str) -> list[str]:
    if timing in GRAPH_TIMINGS:
        return []
    return [
        f"the Lava graph runs the timings {', '.join(GRAPH_TIMINGS)}, not {timing} (no_delay has "
        "no synaptic delay, which Lava's synapses always have: use pipelined, its equal)"
    ]


def _chip_readout_problems(timing: str, readout: str) -> list[str]:
    if timing == "sigma_delta":
        if readout != "spike_count":
            return [
                "the sigma-delta processes send their messages, not their potentials: read "
                "the embedding as spike_count"
            ]
        return []
    if readout != "membrane":
        return [f"Lava's LIF keeps no spike count: read the membrane, not the {readout}"]
    return []


def problems(name: str, network: SpikingNetwork, config: SimConfig) -> list[str]:
    """Every reason ``network`` run with ``config`` cannot run on backend ``name`` exactly
    (empty when it can): the timings a Lava graph runs; on the chip's processes, every reason
    the network does not lower onto them (:mod:`lava_retrieval.loihi.lowering`,
    :mod:`lava_retrieval.loihi.sdnn_lowering`) and the readout they can give; on a Loihi
    system, lava-loihi."""
    backend = get(name)
    if not backend.graph:
        return []
    found = _graph_timing_problems(config.timing)
    if backend.chip:
        if config.timing == "sigma_delta":
            found += sdnn_lowering.problems(network)
        else:
            found += (
                lowering.problems(network, "loihi")
                + lowering.timing_problems(config.timing)
                + lowering.stream_problems(network, config.timing)
            )
        found += _chip_readout_problems(config.timing, config.readout)
    if backend.hardware:
        found += hardware_problems()
    return found


def settings_problems(
    name: str, timing: str, readout: str, conversion: dict | None = None
) -> list[str]:
    """What keeps a network converted with ``conversion`` (the settings
    :func:`lava_retrieval.loihi.lowering.config_problems` takes; None: a sigma-delta
    conversion, which lowers by construction) and run with ``timing`` and ``readout`` from
    backend ``name``, before anything is converted.

    >>> settings_problems("loihi", "delay", "membrane", dict(pool_mode="separate",
    ...     reset="zero", weight_bits=8))
    []
    """
    backend = get(name)
    if not backend.graph:
        return []
    found = _graph_timing_problems(timing)
    if backend.chip:
        if conversion is not None:
            found += lowering.config_problems("loihi", **conversion)
        if timing != "sigma_delta":
            found += lowering.timing_problems(timing)
        found += _chip_readout_problems(timing, readout)
    if backend.hardware:
        found += hardware_problems()
    return found


def check(name: str, network: SpikingNetwork, config: SimConfig, use: str | None = None) -> None:
    """Refuse, before any work, what backend ``name`` cannot run (one message, every reason).

    >>> check("lava", net, SimConfig(4, "delay", "membrane"))
    """
    get(name, use)
    found = problems(name, network, config)
    if found:
        what = "the Loihi backend" if BACKENDS[name].chip else f"backend {name}"
        raise BackendError(f"{what}: " + "; ".join(found))
