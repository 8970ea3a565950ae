"""The named ways of turning the shipped ANN into spiking embeddings, and the default.

A *method* fixes everything between a trained ANN and an embedding: which shipped checkpoint,
how it is converted, the timing and the readout. ``evaluate`` and ``demo`` take ``--method``
(explicit flags such as ``--timing`` or ``--readout`` still override a method's choice).

``qcfs`` (the default)
    The 32-64-10 ANN trained with quantised clip-floor-shift activations (16 levels, a learned
    threshold per layer), converted with its learned thresholds and every neuron starting each
    window at half its threshold, pipelined timing (each layer integrates exactly T steps of its
    own input), integrated readout (spike count x threshold + membrane - initial potential). The
    method of the documentation's Methods page, close to its ANN from T = 8 on.
``qcfs-exact``
    The same network under the exact-count schedule (``exact_count``: each layer integrates T
    steps, then fires T; its count is the QCFS activation of its whole input with L = T), the
    integrated readout: no error from the timing of spikes, at a latency of T x (layers + 1).
``qcfs-graded``
    The same network with graded spikes (``graded``: each layer sends its count, of T levels, as
    one graded message, as Loihi 2 can): the counts of ``qcfs-exact`` (wherever its sums stay
    inside the 24-bit bound), one step a layer.
``qcfs8-analog``
    The 32-64-10 ANN fine-tuned with QCFS activations at L = 8 levels and the 8-bit image as
    its input (``train --levels 8 --input-levels 255``), converted with an analog input (the
    image enters the first synapse layer as a graded pixel current, no input neurons), under
    the exact-count schedule with the integrated readout.
``qcfs8-analog-graded``
    The same network with graded spikes (one step a layer); its embedding is the embedding
    layer's counts, the graded messages it sends (the integer forward pass of the QCFS ANN's
    quantised embedding). Both run at T = 8 (the levels the
    ANN was trained for) unless told otherwise: at T = 16 the network loses accuracy (the
    Methods page's tables); ``qcfs-exact`` is the method for T = 16.
``qcfs4-analog``
    As ``qcfs8-analog``, the ANN fine-tuned at L = 4 levels: for T = 4.
``qcfs8-sdnn``
    The method that runs on Loihi 2's own processes: the ``qcfs8-analog`` ANN fine-tuned with
    the sigma-delta conversion in the loop (``train --sdnn``), converted for sigma-delta
    neurons (:mod:`lava_retrieval.conversion.sdnn`: power-of-two thresholds, 8-bit weights,
    the image as a graded message, pooling as a grouped convolution, a rounding bias) and run
    with the ``sigma_delta`` timing: each layer sends one graded message per image, one chip
    step a layer. Its embedding is the embedding layer's messages. ``--backend loihi`` runs it
    on Lava's ``Delta``/``Conv``/``SigmaDelta``/``Dense``/``Sigma``
    (:mod:`lava_retrieval.lava_graph.sdnn_graph`).
``paper``
    Liu et al. 2022 as published: the ReLU 32-64-10 ANN, Algorithm 1 with the paper's
    percentiles, Lava's timing (``delay``), the membrane readout: the paper's Table 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lava_retrieval.ann.checkpoint import (
    PRETRAINED,
    Checkpoint,
    load_checkpoint,
    read_meta,
    shipped_checkpoint_path,
)
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.conversion.algorithm import ConversionConfig, convert_checkpoint
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork


@dataclass(frozen=True)
class Method:
    """A shipped checkpoint, its conversion, and how its network is run and read.

    Attributes
    ----------
    name : str
    description : str
    checkpoint_name : str
        Directory under ``lava_retrieval/pretrained``.
    conversion : ConversionConfig
    timing : str
        One of :data:`lava_retrieval.snn.config.TIMINGS`.
    readout : str
        ``membrane``, ``spike_count`` or ``integrated``.
    time_steps : tuple of int
        The T it runs at unless told otherwise (the first; ``evaluate`` reports them all): the
        levels its ANN was trained for, or the paper's 16 (and 128); 1 for ``sigma_delta``.
    label : str
        Its name in tables and plots (the energy table, the Methods page's table).
    converter : str
        ``algorithm1`` (:func:`lava_retrieval.conversion.algorithm.convert_checkpoint`, with
        ``conversion``) or ``sdnn`` (:func:`lava_retrieval.conversion.sdnn.convert_sdnn`,
        which needs no calibration images; ``conversion`` is not used).

    >>> METHODS["paper"].timing, METHODS["qcfs"].timing, METHODS["qcfs8-analog"].time_steps
    ('delay', 'pipelined', (8,))
    """

    name: str
    description: str
    checkpoint_name: str
    conversion: ConversionConfig
    timing: str
    readout: str
    time_steps: tuple[int, ...] = (16,)
    converter: str = "algorithm1"
    label: str = ""

    @property
    def checkpoint_path(self) -> Path:
        """The shipped checkpoint directory of this method."""
        return PRETRAINED / self.checkpoint_name

    def checkpoint(self) -> Checkpoint:
        """The shipped ANN of this method."""
        return load_checkpoint(self.checkpoint_path)

    def sim_config(
        self,
        time_steps: int | None = None,
        *,
        timing: str | None = None,
        readout: str | None = None,
        **run: Any,
    ) -> SimConfig:
        """How this method's network runs: its timing, its readout and its first T, each
        overridable; ``run`` adds ``chunk_size`` or ``engine``.

        >>> METHODS["paper"].sim_config()
        SimConfig(time_steps=16, timing='delay', readout='membrane', chunk_size=256, engine='auto')
        >>> METHODS["qcfs8-analog"].sim_config(4, engine="torch").settings()
        {'time_steps': 4, 'timing': 'exact_count', 'readout': 'integrated'}
        """
        timing = timing or self.timing
        if timing == "sigma_delta" and time_steps not in (None, 1):
            raise LavaRetrievalError(
                "the sigma_delta timing sends one message per layer and image: T is 1, not "
                f"{time_steps}"
            )
        return SimConfig(time_steps or self.time_steps[0], timing, readout or self.readout, **run)

    def network(self, dataset, checkpoint: Checkpoint | None = None) -> SpikingNetwork:
        """Convert ``checkpoint`` (default: this method's) with this method's settings."""
        if self.converter == "sdnn":
            from lava_retrieval.conversion.sdnn import convert_sdnn_checkpoint

            return convert_sdnn_checkpoint(checkpoint or self.checkpoint())
        return convert_checkpoint(checkpoint or self.checkpoint(), dataset, self.conversion)


METHODS = {
    "qcfs": Method(
        "qcfs",
        "QCFS-trained 32-64-10, learned thresholds, initial membrane 0.5, pipelined, integrated",
        "32-64-10-qcfs16",
        ConversionConfig(initial_membrane=0.5),
        "pipelined",
        "integrated",
        label="QCFS, pipelined",
    ),
    "qcfs-exact": Method(
        "qcfs-exact",
        "QCFS-trained 32-64-10 as qcfs, exact-count schedule (each layer integrates T steps, "
        "then fires T), integrated",
        "32-64-10-qcfs16",
        ConversionConfig(initial_membrane=0.5),
        "exact_count",
        "integrated",
        label="QCFS, exact count",
    ),
    "qcfs-graded": Method(
        "qcfs-graded",
        "QCFS-trained 32-64-10 as qcfs, graded spikes (each layer sends its count as one "
        "message), integrated",
        "32-64-10-qcfs16",
        ConversionConfig(initial_membrane=0.5),
        "graded",
        "integrated",
        label="QCFS, graded",
    ),
    "qcfs8-analog": Method(
        "qcfs8-analog",
        "QCFS-trained 32-64-10 at 8 levels with an 8-bit input, analog input, learned "
        "thresholds, initial membrane 0.5, exact-count schedule, integrated",
        "32-64-10-qcfs8a",
        ConversionConfig(initial_membrane=0.5, analog_input=True),
        "exact_count",
        "integrated",
        (8,),
        label="QCFS-8 analog, exact count",
    ),
    "qcfs8-analog-graded": Method(
        "qcfs8-analog-graded",
        "QCFS-trained 32-64-10 as qcfs8-analog, graded spikes (each layer sends its count as "
        "one message), the embedding layer's counts as the embedding",
        "32-64-10-qcfs8a",
        ConversionConfig(initial_membrane=0.5, analog_input=True),
        "graded",
        "spike_count",
        (8,),
        label="QCFS-8 analog, graded",
    ),
    "qcfs4-analog": Method(
        "qcfs4-analog",
        "QCFS-trained 32-64-10 at 4 levels with an 8-bit input, as qcfs8-analog (for T = 4)",
        "32-64-10-qcfs4a",
        ConversionConfig(initial_membrane=0.5, analog_input=True),
        "exact_count",
        "integrated",
        (4,),
        label="QCFS-4 analog, exact count",
    ),
    "qcfs8-sdnn": Method(
        "qcfs8-sdnn",
        "QCFS-trained 32-64-10 at 8 levels fine-tuned for sigma-delta neurons (power-of-two "
        "thresholds, 8-bit weights), graded messages, one step a layer, the embedding layer's "
        "messages; runs on Lava's own Loihi 2 processes",
        "32-64-10-qcfs8s",
        ConversionConfig(initial_membrane=0.5, analog_input=True),
        "sigma_delta",
        "spike_count",
        (1,),
        "sdnn",
        label="QCFS-8 sigma-delta, Loihi 2's own processes",
    ),
    "paper": Method(
        "paper",
        "Liu et al. 2022: ReLU 32-64-10, Algorithm 1, Lava timing, membrane readout",
        shipped_checkpoint_path().name,
        ConversionConfig(initial_membrane=0.0),
        "delay",
        "membrane",
        (16, 128),
        label="paper's method (Algorithm 1, Lava timing)",
    ),
}
DEFAULT_METHOD = "qcfs8-analog"


def of_network(network: SpikingNetwork) -> Method | None:
    """The method whose shipped checkpoint ``network`` was converted from, if any (read from
    the checkpoints' metadata: no weights are loaded).

    >>> of_network(net).name  # the committed results/snn-32-64-10.npz
    'paper'
    """
    source = network.manifest.get("source_sha256")
    sdnn = "sdnn" in network.manifest
    if sdnn:  # a sigma-delta network runs as a sigma-delta method, whichever ANN it came from
        candidates = [m for m in METHODS.values() if m.converter == "sdnn"]
        same = [m for m in candidates if _weights_sha(m.checkpoint_path) == source]
        return (same or candidates)[0]
    if not source:
        return None
    sources: dict[Path, str | None] = {}
    matches = []
    for method in METHODS.values():
        path = method.checkpoint_path
        if path not in sources:
            meta = read_meta(path, missing_ok=True)
            sources[path] = None if meta is None else meta.get("weights_sha256")
        if sources[path] == source:
            matches.append(method)
    # Of the methods sharing that ANN: one converted like the network (an analog input or
    # not), the default first.
    matches.sort(
        key=lambda m: (
            m.converter == "sdnn",
            m.conversion.analog_input != network.analog_input,
            m.name != DEFAULT_METHOD,
        )
    )
    return matches[0] if matches else None


def _weights_sha(path: Path) -> str | None:
    meta = read_meta(path, missing_ok=True)
    return None if meta is None else meta.get("weights_sha256")


@dataclass(frozen=True)
class Resolved:
    """What runs: the method, the spiking network, the ANN it belongs to, the settings.

    Attributes
    ----------
    method : Method
    network : SpikingNetwork
    checkpoint_path : pathlib.Path or None
        The network's ANN (``None`` when it is not known and was not needed).
    config : SimConfig
    """

    method: Method
    network: SpikingNetwork
    checkpoint_path: Path | None
    config: SimConfig

    def checkpoint(self) -> Checkpoint:
        """The network's ANN, loaded."""
        if self.checkpoint_path is None:
            raise LavaRetrievalError("the network's ANN is not known (pass its checkpoint)")
        return load_checkpoint(self.checkpoint_path)


def resolve(
    *,
    method: str | None = None,
    network: str | os.PathLike | SpikingNetwork | None = None,
    checkpoint: str | os.PathLike | None = None,
    dataset=None,
    time_steps: int | None = None,
    timing: str | None = None,
    readout: str | None = None,
    engine: str = "auto",
    need_ann: bool = True,
    log: Callable[[str], None] | None = None,
) -> Resolved:
    """Turn ``--method``, ``--network`` and ``--checkpoint`` into what runs: one set of rules
    for every command and the web page.

    - The method is ``method`` if given, else the one whose shipped ANN ``network`` was
      converted from, else :data:`DEFAULT_METHOD`.
    - The ANN is ``checkpoint`` if given, else the method's shipped one. With ``need_ann`` a
      network that records another ANN than that is refused (an ANN row or column must be the
      network's own ANN); without it, a network whose ANN is not known has none.
    - Without ``network`` the ANN is converted with the method's settings (``dataset`` is
      needed then).
    - ``timing``, ``readout`` and ``time_steps`` override the method's (its first T);
      ``engine`` completes the :class:`SimConfig`.

    Errors are :class:`LavaRetrievalError`; notes (a network without provenance, a conversion)
    go to ``log``.

    >>> r = resolve(method="paper", network=net, readout="spike_count")
    >>> r.method.name, r.config.timing, r.config.readout, r.checkpoint_path.name
    ('paper', 'delay', 'spike_count', '32-64-10')
    """
    log = log or (lambda line: None)
    label = str(network) if network is not None else None
    if network is not None and not isinstance(network, SpikingNetwork):
        network = SpikingNetwork.load(network)
    chosen = get(method) if method else (of_network(network) if network is not None else None)
    chosen = chosen or get(DEFAULT_METHOD)
    ann: Path | None = Path(checkpoint) if checkpoint else chosen.checkpoint_path
    source = network.manifest.get("source_sha256") if network is not None else None
    if need_ann and network is not None and not source and not (method or checkpoint):
        log(
            f"note: {label} does not record its ANN; the ANN and the defaults are method "
            f"{chosen.name!r}'s (--method or --checkpoint to choose)"
        )
    if not need_ann and network is not None and not checkpoint and not source:
        ann = None  # not known, and not needed
    known = (read_meta(ann) or {}) if ann is not None else {}
    if source and source != known.get("weights_sha256"):
        if need_ann:
            raise LavaRetrievalError(
                f"{label} was converted from another ANN than {ann}; pass that ANN's "
                "--checkpoint (the ANN must be the network's own ANN)"
            )
        ann = None
    if network is None:
        if dataset is None or ann is None:
            raise LavaRetrievalError("converting the method's ANN needs the dataset")
        log(f"converting {ann.name} for method {chosen.name!r} (--network to use another)")
        network = chosen.network(dataset, load_checkpoint(ann))
    config = chosen.sim_config(time_steps, timing=timing, readout=readout, engine=engine)
    return Resolved(chosen, network, ann, config)


def get(name: str) -> Method:
    """The method called ``name``.

    >>> get("paper").readout
    'membrane'
    """
    try:
        return METHODS[name]
    except KeyError:
        raise LavaRetrievalError(
            f"unknown method {name!r}; choose one of {', '.join(METHODS)}"
        ) from None
