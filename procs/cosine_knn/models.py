"""ProcessModel of CosineKNN."""

from __future__ import annotations

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from procs.cosine_knn.process import CosineKNN


@implements(proc=CosineKNN, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi", "floating_pt")
class PyCosineKNNModel(PyLoihiProcessModel):
    """Exact search with CosineIndex once per window, in the management phase."""

    query: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    ids: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    scores: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.index = proc_params["index"]
        self.k = proc_params["k"]
        self.time_steps = proc_params["time_steps"]
        self.offset = proc_params.get("offset", 0)

    def post_guard(self) -> bool:
        # The end of each window of the layer it serves (``offset`` steps after the encoder's).
        step = self.time_step - self.offset
        return step > 0 and step % self.time_steps == 0

    def run_post_mgmt(self) -> None:
        scores, ids = self.index.search(self.query.recv(), self.k)
        self.ids.send(ids.astype(float))
        self.scores.send(scores.astype(float))
