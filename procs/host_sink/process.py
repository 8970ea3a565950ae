"""Hands data from the running Lava graph to the Python program that runs it."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess


class HostSink(AbstractProcess):
    """Receives one message per presentation window (at ``(t - offset) % T == 0``) and relays
    it through a channel to this process object, where :meth:`receive` returns it::

        host <- inp[t]     at (t - offset) % T == 0

    Unlike ``lava.proc.io.extractor.Extractor``, which relays every time step, it moves data
    only when there is some (an embedding or a search result per window). Run the graph with
    ``RunSteps(..., blocking=False)`` and call :meth:`receive` once per window; the channel
    holds ``buffer_size`` messages and the graph waits while it is full.

    Parameters
    ----------
    shape : tuple of int
    time_steps : int
    buffer_size : int
    offset : int
        Steps by which the windows it serves start after the encoder's (the embedding layer's
        depth under pipelined timing; default 0).
    every_step : bool
        The sender sends in every step (Lava's ``Sigma``): receive every step, relay the
        message of the window's last step (default False: the sender sends at window ends
        only, as the membrane probe and the kNN do).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        time_steps: int,
        buffer_size: int = 4,
        offset: int = 0,
        every_step: bool = False,
        name=None,
    ) -> None:
        super().__init__(
            shape=tuple(shape),
            time_steps=time_steps,
            offset=offset,
            every_step=every_step,
            name=name,
        )
        self.inp = InPort(shape=tuple(shape))
        self.host = OutPort(shape=tuple(shape))
        self.host.flag_external_pipe(buffer_size=buffer_size)
        self._shape = tuple(shape)

    def receive(self) -> np.ndarray:
        """The next window's message (blocks until it arrives)."""
        if not hasattr(self.host, "external_pipe_csp_recv_port"):
            raise RuntimeError("run the graph (non-blocking) before calling receive()")
        return np.asarray(self.host.external_pipe_csp_recv_port.recv()).reshape(self._shape)
