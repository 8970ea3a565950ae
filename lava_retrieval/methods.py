"""The named ways of turning the shipped ANN into spiking embeddings, and the default.

A *method* fixes everything between a trained ANN and an embedding: which shipped checkpoint,
how it is converted, the timing and the readout. ``evaluate`` and ``demo`` take ``--method``
(explicit flags such as ``--timing`` or ``--readout`` still override a method's choice).

``qcfs`` (the default)
    The 32-64-10 ANN trained with quantised clip-floor-shift activations (16 levels, a learned
    threshold per layer), converted with its learned thresholds and every neuron starting each
    window at half its threshold, pipelined timing (each layer integrates exactly T steps of its
    own input), integrated readout (spike count x threshold + membrane - initial potential). The
    method of the README's "Fewer time steps" section, close to its ANN from T = 8 on.
``paper``
    Liu et al. 2022 as published: the ReLU 32-64-10 ANN, Algorithm 1 with the paper's
    percentiles, Lava's timing (``delay``), the membrane readout. Table 2 of the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lava_retrieval.conversion import ConversionConfig, convert_checkpoint
from lava_retrieval.errors import LavaRetrievalError
from lava_retrieval.network import SpikingNetwork
from lava_retrieval.train import Checkpoint, load_checkpoint, shipped_checkpoint_path

PRETRAINED = Path(__file__).resolve().parent / "pretrained"


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
        ``delay`` or ``pipelined``.
    readout : str
        ``membrane``, ``spike_count`` or ``integrated``.

    >>> METHODS["paper"].timing, METHODS["qcfs"].timing
    ('delay', 'pipelined')
    """

    name: str
    description: str
    checkpoint_name: str
    conversion: ConversionConfig
    timing: str
    readout: str

    @property
    def checkpoint_path(self) -> Path:
        """The shipped checkpoint directory of this method."""
        return PRETRAINED / self.checkpoint_name

    def checkpoint(self) -> Checkpoint:
        """The shipped ANN of this method."""
        return load_checkpoint(self.checkpoint_path)

    def network(self, dataset, checkpoint: Checkpoint | None = None) -> SpikingNetwork:
        """Convert ``checkpoint`` (default: this method's) with this method's settings."""
        return convert_checkpoint(checkpoint or self.checkpoint(), dataset, self.conversion)


METHODS = {
    "qcfs": Method(
        "qcfs",
        "QCFS-trained 32-64-10, learned thresholds, initial membrane 0.5, pipelined, integrated",
        "32-64-10-qcfs16",
        ConversionConfig(initial_membrane=0.5),
        "pipelined",
        "integrated",
    ),
    "paper": Method(
        "paper",
        "Liu et al. 2022: ReLU 32-64-10, Algorithm 1, Lava timing, membrane readout",
        shipped_checkpoint_path().name,
        ConversionConfig(initial_membrane=0.0),
        "delay",
        "membrane",
    ),
}
DEFAULT_METHOD = "qcfs"


def of_network(network: SpikingNetwork) -> Method | None:
    """The method whose shipped checkpoint ``network`` was converted from, if any."""
    source = network.manifest.get("source_sha256")
    for method in METHODS.values():
        meta = method.checkpoint_path / "checkpoint.json"
        if source and meta.is_file() and method.checkpoint().meta.get("weights_sha256") == source:
            return method
    return None


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
