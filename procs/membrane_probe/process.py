"""Reads the embedding layer's state at the end of each image and emits the embedding."""

from __future__ import annotations

from lava.magma.core.process.ports.ports import OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess

from lava_retrieval.snn.config import READOUTS


class MembraneProbe(AbstractProcess):
    """At the last step of each presentation window (``(t - offset) % T == 0``), after the
    neurons updated, read the embedding layer's membrane potentials and spike counts through
    RefPorts (one bulk read in the management phase, no element-wise ``Var.get()``) and send
    the flattened embedding through ``out`` in the same phase::

        membrane:    e = u(v[t])
        spike_count: e = spike_count[t]
        integrated:  e = spike_count[t] * threshold + u(v[t]) - v_init

    where ``u(v) = v`` for the project's own models and ``u(v) = ceil(v / 2**6)`` for Lava's LIF
    (``v_scale = 64``: :func:`lava_retrieval.loihi.lowering.membrane_from_lava`).

    Parameters
    ----------
    state_shape : tuple of int
        Shape of the layer's ``v`` Var: (B, C, H, W) / (B, N), or (W, H, C) for the Loihi path.
    time_steps : int
    readout : {"membrane", "spike_count", "integrated"}
    threshold : int
        The layer's threshold (for ``integrated``).
    v_init : int
        The layer's initial potential (for ``integrated``).
    v_scale : int
        1, or 64 for Lava's LIF, whose ``v`` carries 6 fraction bits
        (:data:`lava_retrieval.loihi.lowering.V_SCALE`).
    layout : {"bchw", "whc"}
        ``whc``: batch 1, state in Lava's (W, H, C) order; the embedding is reordered to C, H, W.
    offset : int
        Steps by which the windows it serves start after the encoder's (the embedding layer's
        depth under pipelined timing; default 0).
    """

    def __init__(
        self,
        *,
        state_shape: tuple[int, ...],
        time_steps: int,
        readout: str = "membrane",
        threshold: int = 1,
        v_init: int = 0,
        v_scale: int = 1,
        layout: str = "bchw",
        offset: int = 0,
        name: str | None = None,
    ) -> None:
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        super().__init__(
            state_shape=tuple(state_shape),
            time_steps=time_steps,
            readout=readout,
            threshold=threshold,
            v_init=int(v_init),
            v_scale=v_scale,
            layout=layout,
            offset=offset,
            name=name,
        )
        batch = 1 if layout == "whc" else state_shape[0]
        dim = 1
        for n in state_shape[0 if layout == "whc" else 1 :]:
            dim *= n
        self.v_ref = RefPort(shape=tuple(state_shape))
        self.count_ref = RefPort(shape=tuple(state_shape))
        self.out = OutPort(shape=(batch, dim))
