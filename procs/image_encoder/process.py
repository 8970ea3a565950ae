"""Presents images to the input layer as bias currents, a batch per presentation window."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess

from lava_retrieval.loihi.lowering import whc_shape


class ImageEncoder(AbstractProcess):
    """Drives the input layer with ``current = round(pixel * param_scale)`` (the converter's
    input layer: ``param_scale = W_MAX``).

    Window w (steps ``w*T + 1 .. (w+1)*T``) presents images ``w*B .. (w+1)*B - 1``; after the last
    image, and for the missing tail of the last batch, it sends zeros::

        out[t] = current[images of window (t - 1) // T]     every step of the window

    Parameters
    ----------
    images : numpy.ndarray
        (N, 28, 28) uint8 or float in [0, 1]; held by the process.
    batch_size : int
        B images per window.
    time_steps : int
        T steps per window.
    param_scale : float
        The input layer's param_scale (W_MAX).
    layout : {"bchw", "whc"}
        Shape of ``out``: (B, 1, 28, 28), or (28, 28, 1) for the batch-1 Loihi path.
    """

    def __init__(
        self,
        *,
        images: np.ndarray,
        batch_size: int,
        time_steps: int,
        param_scale: float,
        layout: str = "bchw",
        name: str | None = None,
    ) -> None:
        from lava_retrieval.snn.neuron import input_current

        currents = input_current(np.asarray(images), param_scale).astype(np.int32)
        super().__init__(
            currents=currents,
            batch_size=batch_size,
            time_steps=time_steps,
            layout=layout,
            name=name,
        )
        h, w = currents.shape[1:]
        self.out = OutPort(
            shape=(batch_size, 1, h, w) if layout == "bchw" else whc_shape((1, h, w))
        )

    @property
    def num_windows(self) -> int:
        """Presentation windows needed for all images."""
        n, b = len(self.proc_params["currents"]), self.proc_params["batch_size"]
        return -(-n // b)
