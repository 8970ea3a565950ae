"""ProcessModel of MembraneProbe (float messages carry the integers exactly)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_retrieval.loihi.lowering import from_whc, membrane_from_lava
from procs.membrane_probe.process import MembraneProbe


@implements(proc=MembraneProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi", "floating_pt")
class PyMembraneProbeModel(PyLoihiProcessModel):
    """Bulk RefPort reads at the end of each window; the embedding leaves in the same phase."""

    v_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    count_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.time_steps = proc_params["time_steps"]
        self.offset = proc_params.get("offset", 0)
        self.readout = proc_params["readout"]
        self.threshold = proc_params["threshold"]
        self.v_init = proc_params["v_init"]
        self.v_scale = proc_params["v_scale"]
        self.whc = proc_params["layout"] == "whc"

    def post_guard(self) -> bool:
        # The end of each window of the layer it serves (``offset`` steps after the encoder's).
        step = self.time_step - self.offset
        return step > 0 and step % self.time_steps == 0

    def _flat(self, state: np.ndarray) -> np.ndarray:
        if self.whc:
            state = from_whc(state)[None]
        return state.reshape(len(state), -1)

    def run_post_mgmt(self) -> None:
        v = self._flat(self.v_ref.read())
        if self.v_scale != 1:
            v = membrane_from_lava(v)
        if self.readout == "membrane":
            embedding = v
        else:
            counts = self._flat(self.count_ref.read())
            if self.readout == "spike_count":
                embedding = counts
            else:
                embedding = counts * self.threshold + v - self.v_init
        self.out.send(embedding)
