"""The project's ProcessModels for Lava's own built-in processes of the sigma-delta path.

Imported only where Lava runs (it imports Lava). Selected per process with
``exception_proc_model_map`` of the run configuration: the processes stay Lava's
(``lava.proc.sdn.process.SigmaDelta``), the ones Intel's lava-loihi maps onto Loihi 2.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.sdn.models import AbstractSigmaDeltaModel
from lava.proc.sdn.process import SigmaDelta


@implements(proc=SigmaDelta, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SigmaDeltaKeepsBitsModel(AbstractSigmaDeltaModel):
    """Lava's ``SigmaDelta`` in fixed point as Lava's main branch computes it
    (``PySigmaDeltaModelFixedCorrected`` of lava-nc/lava, PR #875, "sdn fixed with correct
    sdn implementation"), not as Lava 0.10's ``PySigmaDeltaModelFixed`` does.

    The neuron remembers what it has sent: ``act`` holds the sent messages in state units
    (a multiple of ``2**state_exp``), and each step sends ``(relu(sigma + bias) - act) >>
    state_exp`` when that change reaches ``vth``, adding it back. The messages sent so far
    then sum to ``floor(relu(sigma + bias) / 2**state_exp)`` at every step (with ``vth`` one
    state unit): a stream of images through the layer is exact. Lava 0.10 right-shifts each
    change on its own and drops the shifted-off bits, so its sums drift from that value as
    soon as a neuron changes more than once (tested:
    ``tests/lava_retrieval/test_sdnn.py``).
    """

    a_in = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    sigma: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    act: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    residue: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    error: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)

    spike_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    state_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    cum_error: np.ndarray = LavaPyType(np.ndarray, bool, precision=1)

    def run_spk(self) -> None:
        self.sigma = self.sigma_dynamics(self.a_in.recv())
        act = self.activation_dynamics(self.sigma)
        delta = act - self.act
        scaled = np.where(np.abs(delta) >= self.vth, delta, 0)
        s_out = np.right_shift(scaled, self.state_exp)
        self.act = self.act + np.left_shift(s_out, self.state_exp)
        self.s_out.send(s_out)
