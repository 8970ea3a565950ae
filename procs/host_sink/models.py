"""ProcessModel of HostSink."""

from __future__ import annotations

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from procs.host_sink.process import HostSink


@implements(proc=HostSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi", "floating_pt")
class PyHostSinkModel(PyLoihiProcessModel):
    """Relays the window's message to the host channel."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.time_steps = proc_params["time_steps"]
        self.offset = proc_params.get("offset", 0)
        self.every_step = proc_params.get("every_step", False)
        self.latest = None

    def run_spk(self) -> None:
        if self.every_step:
            self.latest = self.inp.recv()

    def post_guard(self) -> bool:
        # The end of each window of the layer it serves (``offset`` steps after the encoder's).
        step = self.time_step - self.offset
        return step > 0 and step % self.time_steps == 0

    def run_post_mgmt(self) -> None:
        self.host.csp_ports[-1].send(self.latest if self.every_step else self.inp.recv())
