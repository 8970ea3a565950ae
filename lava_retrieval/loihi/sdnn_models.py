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
from lava.proc.conv.models import AbstractPyConvModel
from lava.proc.conv.process import Conv
from lava.proc.conv.utils import signed_clamp
from lava.proc.sdn.models import AbstractSigmaDeltaModel
from lava.proc.sdn.process import SigmaDelta

from lava_retrieval.snn.synapse import SynapticOp


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


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ConvFastModel(AbstractPyConvModel):
    """Lava's ``Conv`` in fixed point, bit for bit as Lava 0.10's ``PyConvModelFixed`` (the
    previous step's sums sent, this step's input convolved, the sums wrapped at 24 signed
    bits), computed as one matrix product per group (:class:`lava_retrieval.snn.synapse.
    SynapticOp`, exact integers in float32 or float64) instead of Lava's Python loop over every
    pair of channels. Square kernels, strides and paddings and no dilation (what the project's
    graphs use); anything else is refused when the model starts. Lava's own model stays a
    tested option (``fast_conv=False``)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    op = None

    def _synapses(self) -> SynapticOp:
        from lava_retrieval.snn.network import SpikingLayer

        square = all(len(set(np.ravel(v).tolist())) == 1 for v in (self.stride, self.padding))
        if not square or set(np.ravel(self.dilation).tolist()) != {1}:
            raise ValueError("the fast Conv model runs square strides and paddings, no dilation")
        weight = np.asarray(self.weight, np.int64)  # (C_out, kW, kH, C_in/g), Lava's
        # Lava's is a true convolution over (W, H, C): torch's correlation kernel.
        torch_weight = weight[:, ::-1, ::-1].transpose(0, 3, 2, 1)
        w_in, h_in, c_in = self.s_in.shape
        w_out, h_out, c_out = self.a_out.shape
        layer = SpikingLayer(
            "conv",
            "conv",
            (c_in, h_in, w_in),
            (c_out, h_out, w_out),
            torch_weight,
            None,
            1,
            1.0,
            1.0,
            stride=int(np.ravel(self.stride)[0]),
            padding=int(np.ravel(self.padding)[0]),
            groups=int(np.ravel(self.groups)[0]),
        )
        return SynapticOp(layer)

    def run_spk(self) -> None:
        if self.op is None:
            self.op = self._synapses()
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() <= 0:
            s_in = s_in.astype(bool)
        sums = self.op(s_in.transpose(2, 1, 0)[None])[0].transpose(2, 1, 0)
        self.a_buf = signed_clamp(np.rint(sums).astype(np.int64), bits=24).astype(np.int32)
