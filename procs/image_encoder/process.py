"""Presents images to the input layer as bias currents, a batch per presentation window."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess

from lava_retrieval.loihi.lowering import whc_shape


class ImageEncoder(AbstractProcess):
    """Drives the input layer with ``current = round(pixel * param_scale)`` (the converter's
    input layer: ``param_scale = W_MAX``).

    Window w (steps ``w*T + 1 .. (w+1)*T``) presents images ``w*B .. (w+1)*B - 1``; after the last
    image, and for the missing tail of the last batch, it sends zeros::

        out[t] = current[images of window (t - 1) // T]     every step of the window
                 0                                         the first ``lead`` steps of it

    (``lead``: the streaming Loihi path's flush step,
    :func:`lava_retrieval.loihi.lowering.stream_lead`; ``T`` then counts it.)

    With ``images=None`` the images come from the program that runs the graph instead, a
    batch at a time: at the first step of every window the encoder waits for one
    (:meth:`send`, the currents of B images as ``out``'s shape), which a resident graph
    (:class:`lava_retrieval.lava_graph.resident.ResidentGraph`) feeds as queries come.

    Parameters
    ----------
    images : numpy.ndarray or None
        (N, 28, 28) uint8 or float in [0, 1]; held by the process. None: sent by the host.
    batch_size : int
        B images per window.
    time_steps : int
        T steps per window.
    param_scale : float
        The input layer's param_scale (W_MAX).
    lead : int
        Steps at the start of every window in which nothing is sent (default 0).
    layout : {"bchw", "whc"}
        Shape of ``out``: (B, 1, 28, 28), or (28, 28, 1) for the batch-1 Loihi path.
    """

    def __init__(
        self,
        *,
        images: np.ndarray | None,
        batch_size: int,
        time_steps: int,
        param_scale: float,
        layout: str = "bchw",
        side: tuple[int, ...] = (28, 28),
        buffer_size: int = 4,
        lead: int = 0,
        name: str | None = None,
    ) -> None:
        from lava_retrieval.snn.neuron import input_current

        host = images is None
        currents = (
            np.zeros((0, *side), np.int32)
            if host
            else input_current(np.asarray(images), param_scale).astype(np.int32)
        )
        super().__init__(
            currents=currents,
            batch_size=batch_size,
            time_steps=time_steps,
            layout=layout,
            host=host,
            lead=int(lead),
            name=name,
        )
        h, w = currents.shape[1:]
        self.out = OutPort(
            shape=(batch_size, 1, h, w) if layout == "bchw" else whc_shape((1, h, w))
        )
        self.frames = InPort(shape=self.out.shape)
        if host:
            self.frames.flag_external_pipe(buffer_size=buffer_size)

    def send(self, frame: np.ndarray) -> None:
        """Hand the next window's currents (``out``'s shape) to the running encoder."""
        port = getattr(self.frames, "external_pipe_csp_send_port", None)
        if port is None:
            raise RuntimeError("start the graph's runtime before sending it images")
        port.send(np.asarray(frame).reshape(self.out.shape))

    @property
    def num_windows(self) -> int:
        """Presentation windows needed for all images."""
        n, b = len(self.proc_params["currents"]), self.proc_params["batch_size"]
        return -(-n // b)
