"""ProcessModels of ImageEncoder (the currents are integers: one model per port type)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_retrieval.loihi.lowering import to_whc
from procs.image_encoder.process import ImageEncoder


class _Encoder(PyLoihiProcessModel):
    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.currents = proc_params["currents"]
        self.batch = proc_params["batch_size"]
        self.time_steps = proc_params["time_steps"]
        self.whc = proc_params["layout"] == "whc"
        self.host = proc_params.get("host", False)
        self.lead = proc_params.get("lead", 0)
        self.window = -1
        self.frame: np.ndarray | None = None

    def run_spk(self) -> None:
        window = (self.time_step - 1) // self.time_steps
        if window != self.window and self.host:  # the host's next batch (waits for it)
            self.window = window
            self.frame = self.frames.recv().astype(self.dtype)
        elif window != self.window:
            self.window = window
            chunk = self.currents[window * self.batch : (window + 1) * self.batch]
            frame = np.zeros((self.batch, 1, *self.currents.shape[1:]), self.dtype)
            frame[: len(chunk), 0] = chunk
            self.frame = to_whc(frame[0]) if self.whc else frame
        if (self.time_step - 1) % self.time_steps < self.lead:
            self.out.send(np.zeros_like(self.frame))
        else:
            self.out.send(self.frame)


@implements(proc=ImageEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyImageEncoderModelFixed(_Encoder):
    """Integer currents."""

    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    frames: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    dtype = np.int32


@implements(proc=ImageEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyImageEncoderModelFloat(_Encoder):
    """The same currents as floats."""

    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    frames: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    dtype = np.float64
