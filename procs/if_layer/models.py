"""ProcessModels of IFLayer: float, bit-accurate fixed point, and Lava's Conv/Dense + LIFReset."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_retrieval.loihi import lowering
from lava_retrieval.snn.network import SpikingLayer
from lava_retrieval.snn.neuron import UNSATURATED, NeuronParams, if_step, integrate
from lava_retrieval.snn.synapse import SynapticOp
from procs.if_layer.process import IFLayer
from procs.if_layer.scatter import EventSynapses, if_step_in_place


def layer_of(params: dict) -> SpikingLayer:
    """The SpikingLayer an IFLayer's parameters describe."""
    return SpikingLayer(
        name=params.get("name") or params["kind"],
        kind=params["kind"],
        input_shape=params["input_shape"],
        output_shape=params["output_shape"],
        weight=params["weight"],
        bias=params["bias"],
        threshold=params["threshold"],
        param_scale=1.0,
        slope=1.0,
        stride=params["stride"],
        padding=params["padding"],
        groups=params["groups"],
    )


class _BatchedIFLayer(PyLoihiProcessModel):
    """Shared control flow: clear state per image, integrate, fire, then read the next input."""

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        if proc_params["layout"] != "bchw":
            raise ValueError("the batched models run the bchw layout; whc is the Loihi path's")
        layer = layer_of(proc_params)
        self.kind = layer.kind
        self.time_steps = proc_params["time_steps"]
        self.neuron = NeuronParams(
            threshold=layer.threshold, reset=proc_params["reset"], v_init=proc_params["v_init"]
        )
        self.pipelined = proc_params["timing"] in (
            "pipelined",
            "exact_count",
            "graded",
            "sigma_delta",
        )
        # graded: one image per step, its count sent as one graded message; T is the levels.
        self.graded = proc_params["timing"] == "graded"
        # sigma_delta: one image per step, floor(relu(v) / threshold) sent as one message.
        self.sigma_delta = proc_params["timing"] == "sigma_delta"
        # exact_count: two potentials, one integrating image i+1 while the other fires image
        # i; a layer's window starts T + 1 steps after its predecessor's (one window to fire,
        # one step of synapse delay).
        self.exact = proc_params["timing"] == "exact_count"
        depth = proc_params["depth"]
        self.offset = depth * (self.time_steps + 1) if self.exact else depth * self.pipelined
        self.synapse: Any = None if layer.kind == "input" else SynapticOp(layer)
        shape = (proc_params["batch_size"], *layer.output_shape)
        bias = np.zeros(layer.output_shape[0], np.int64) if layer.bias is None else layer.bias
        self.bias = bias.astype(np.int64).reshape((1, -1) + (1,) * (len(shape) - 2))
        self.pending: np.ndarray = np.zeros(shape, self.state_dtype)
        self.integrating: np.ndarray = np.full(shape, self.neuron.v_init, self.state_dtype)
        self.levels_bias = self.time_steps * self.bias
        # An analog input layer sends the encoder's current itself (exact_count: the previous
        # window's, while the current window's arrives).
        self.analog = bool(proc_params.get("analog", False))
        self.sending = np.zeros(shape, self.pending.dtype)
        self.arriving = np.zeros(shape, self.pending.dtype)

    state_dtype: type = np.int64

    def step(self, v: np.ndarray, a_in: np.ndarray | int, bias) -> tuple[np.ndarray, np.ndarray]:
        """One neuron step of potentials ``v``: (new potentials, spikes)."""
        raise NotImplementedError

    def accumulate(self, v: np.ndarray, a_in: np.ndarray, bias) -> np.ndarray:
        """One integrating step without firing (``exact_count``, ``graded``)."""
        raise NotImplementedError

    def integrate(self, a_in: np.ndarray) -> np.ndarray:
        """Advance the membrane potentials by one step; returns the spikes."""
        v, spikes = self.step(self.v, a_in, self.bias)
        self.v[:] = v
        return spikes.astype(self.v.dtype)

    def synaptic_input(self, spikes: np.ndarray) -> np.ndarray:
        """Synaptic input of the next step from this step's presynaptic spikes."""
        raise NotImplementedError

    def run_spk(self) -> None:
        step = self.time_step - 1 - self.offset  # this layer's own clock
        if step < 0:
            # Pipelined, before this layer's first window: at rest, silent, but listening.
            self.out.send(np.zeros(self.out.shape, self.pending.dtype))
            received = self.inp.recv()
            if self.kind != "input":
                self.pending = self.synaptic_input(received)
            return
        if self.analog:
            self.send_current(step)
            return
        if self.exact:
            self.integrate_then_fire(step)
            return
        if self.graded:
            self.integrate_message()
            return
        if self.sigma_delta:
            self.sigma_delta_message()
            return
        if step % self.time_steps == 0:
            # A new window: the initial potential, no spike counted; with one window for all
            # layers the input in flight is the previous image's and is dropped, pipelined it
            # is this image's first.
            self.v[:] = self.neuron.v_init
            self.spike_count[:] = 0
            if not self.pipelined:
                self.pending[:] = 0
        if self.kind == "input":
            spikes = self.integrate(self.inp.recv())
        else:
            spikes = self.integrate(self.pending)
        self.spike_count[:] += spikes
        self.out.send(spikes)
        if self.kind != "input":
            # Lava's synapse timing: spikes received now reach the neurons at the next step.
            self.pending = self.synaptic_input(self.inp.recv())

    def send_current(self, step: int) -> None:
        """An analog input layer: potentials at ``v_init``, no spikes; it sends the current
        in every step of its window (``exact_count``: in its firing window, the previous
        image's; ``graded``: T times the current, once per image)."""
        received = self.inp.recv().astype(self.pending.dtype)
        if step % self.time_steps == 0 or self.graded or self.sigma_delta:
            self.v[:] = self.neuron.v_init
        if self.graded:
            sent = self.time_steps * received
        elif self.exact:
            if step % self.time_steps == 0:
                self.sending, self.arriving = self.arriving, self.sending
            self.arriving[:] = received
            sent = self.sending
        else:
            sent = received
        self.out.send(sent.astype(self.v.dtype))

    def sigma_delta_message(self) -> None:
        """``sigma_delta``: integrate one message (the image's current, or the synaptic input
        of the predecessor's message) and the bias from the initial potential, and send
        ``floor(max(v, 0) / threshold)``, keeping the remainder."""
        if self.kind == "input":
            a_in = self.inp.recv().astype(self.state_dtype)
        else:
            a_in = self.pending
        v = self.neuron.v_init + a_in + self.bias
        count = self.divide(np.maximum(v, 0))
        v = v - count * self.neuron.threshold
        self.v[:] = v
        self.spike_count[:] = count
        self.out.send(count.astype(self.v.dtype))
        if self.kind != "input":
            self.pending = self.synaptic_input(self.inp.recv())

    def divide(self, v: np.ndarray) -> np.ndarray:
        """``floor(v / threshold)`` of non-negative potentials."""
        return v // self.neuron.threshold

    def integrate_then_fire(self, step: int) -> None:
        """``exact_count``: integrate this window's input into one potential while the other,
        which integrated the previous window, fires with no input; they swap every window."""
        if step % self.time_steps == 0:
            self.v[:] = self.integrating
            self.integrating = np.full_like(self.integrating, self.neuron.v_init)
            self.spike_count[:] = 0
        a_in = self.inp.recv() if self.kind == "input" else self.pending
        self.integrating = self.accumulate(self.integrating, a_in, self.bias)
        v, spikes = self.step(self.v, 0, 0)  # no input, no bias
        self.v[:] = v
        spikes = spikes.astype(self.v.dtype)
        self.spike_count[:] += spikes
        self.out.send(spikes)
        if self.kind != "input":
            self.pending = self.synaptic_input(self.inp.recv())

    def integrate_message(self) -> None:
        """``graded``: integrate one message (the image's current x T, or the synaptic input of
        the predecessor's counts) and T x the bias from the initial potential, fire T steps with
        no input, and send the count as one graded message."""
        if self.kind == "input":
            a_in = self.time_steps * self.inp.recv().astype(self.state_dtype)
        else:
            a_in = self.pending
        v = np.full_like(self.integrating, self.neuron.v_init)
        v = self.accumulate(v, a_in, self.levels_bias)
        count = np.zeros_like(v)
        for _ in range(self.time_steps):
            v, spikes = self.step(v, 0, 0)
            count += spikes
        self.v[:] = v
        self.spike_count[:] = count
        self.out.send(count.astype(self.v.dtype))
        if self.kind != "input":
            self.pending = self.synaptic_input(self.inp.recv())


@implements(proc=IFLayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyIFLayerModelFixed(_BatchedIFLayer):
    """Integer arithmetic of :func:`lava_retrieval.snn.neuron.if_step`: Loihi's 24-bit membrane
    with saturation and Lava's threshold comparison."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    spike_count: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        # Compiled, event by event: the synaptic input and the neuron step of a batch.
        layer = layer_of(proc_params)
        self.events: Any = None if layer.kind == "input" else EventSynapses(layer)
        self.bias_per_channel = self.bias.reshape(-1)

    def step(self, v, a_in, bias):
        return if_step(v, a_in, bias, self.neuron)

    def integrate(self, a_in: np.ndarray) -> np.ndarray:
        return if_step_in_place(self.v, a_in, self.bias_per_channel, self.neuron)

    def accumulate(self, v, a_in, bias):
        return integrate(v, a_in, bias, self.neuron)

    def synaptic_input(self, spikes: np.ndarray) -> np.ndarray:
        return self.events(spikes)


@implements(proc=IFLayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyIFLayerModelFloat(_BatchedIFLayer):
    """The same neuron in float64, without the 24-bit saturation (exact while no potential
    reaches it)."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    spike_count: np.ndarray = LavaPyType(np.ndarray, float)

    state_dtype = np.float64

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.unbounded = replace(self.neuron, v_max=UNSATURATED)

    def step(self, v, a_in, bias):
        # The spec itself (lava_retrieval.snn.neuron.if_step), without the 24-bit bound.
        v, spikes = if_step(v, a_in, bias, self.unbounded)
        return v.astype(np.float64), spikes

    def accumulate(self, v, a_in, bias):
        return integrate(v, a_in, bias, self.unbounded).astype(np.float64)

    def divide(self, v):
        return np.floor(v / self.neuron.threshold)

    def synaptic_input(self, spikes: np.ndarray) -> np.ndarray:
        return self.synapse(spikes).astype(np.float64)


@implements(proc=IFLayer, protocol=LoihiProtocol)
@tag("fixed_pt", "loihi")
class LoihiIFLayerModel(AbstractSubProcessModel):
    """The layer on Lava's own ``Conv`` / ``Dense``, ``LIFReset`` and ``LIF`` (batch 1, ``whc``
    layout), streaming one image per window.

    These are the processes for which Intel's lava-loihi extension provides neurocore models, so
    ``Loihi2HwCfg(select_sub_proc_model=True)`` runs this on the chip; ``Loihi2SimCfg`` with
    ``select_tag="fixed_pt", select_sub_proc_model=True`` runs it on the CPU. The mapping
    (threshold, current decay, bias exponent, 8-bit weights, layouts) and what can be lowered
    exactly are :mod:`lava_retrieval.loihi.lowering`'s; a layer that cannot be lowered exactly is
    refused. Lava's LIF keeps ``v`` scaled by ``2**6``, which the membrane probe converts back
    (:func:`lava_retrieval.loihi.lowering.membrane_from_lava`).

    The neurons are a ``LIFReset`` restarting at :func:`~lava_retrieval.loihi.lowering.reset_step`
    every ``time_steps + lead`` steps. Under ``delay`` a clock (a ``LIF`` firing once per
    window) inhibits them through a ``Dense`` in the flush step before each restart; an initial
    potential is the same clock's pulse at each restart (module docstring of
    :mod:`~lava_retrieval.loihi.lowering`).
    """

    def __init__(self, proc: IFLayer) -> None:
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        from lava.proc.lif.process import LIFReset

        params = proc.proc_params
        if params["layout"] != "whc":
            raise ValueError("the Loihi model needs layout 'whc'")
        timing, lead, v_init = params["timing"], params.get("lead", 0), params["v_init"]
        if timing not in lowering.STREAM_TIMINGS:
            raise ValueError(
                f"the Loihi model runs the timings {lowering.STREAM_TIMINGS}, not {timing!r}"
            )
        if lead < lowering.stream_lead(timing, [v_init]):
            raise ValueError(f"the Loihi model needs a lead step for {timing} with v_init {v_init}")
        layer = layer_of(params)
        lowering.check_layer(layer, params["reset"])
        period = params["time_steps"] + lead
        first = lowering.reset_step(timing, params["time_steps"], lead, params["depth"])
        shape = proc.out.shape
        bias = lowering.lif_bias(layer)
        self.lif = LIFReset(
            shape=shape,
            du=lowering.DU,
            dv=lowering.DV,
            vth=lowering.vth(layer.threshold),
            bias_mant=bias,
            bias_exp=lowering.BIAS_EXP,
            # Under delay the run starts with a flush step, with nothing in flight: the bias
            # alone must not make a neuron fire.
            v=-np.maximum(bias, 0) * lowering.V_SCALE if timing == "delay" else 0,
            reset_interval=period,
            reset_offset=first % period,
        )
        if layer.kind == "input":
            proc.in_ports.inp.connect(self.lif.a_in)
        else:
            if layer.kind == "dense":
                weight, weight_exp = lowering.dense_weights(layer)
                self.synapse = Dense(weights=weight, weight_exp=weight_exp, num_weight_bits=8)
            else:
                self.synapse = Conv(
                    weight=lowering.conv_kernel(layer),
                    input_shape=lowering.whc_shape(layer.input_shape),
                    padding=layer.padding,
                    stride=layer.stride,
                    groups=layer.groups,
                )
            proc.in_ports.inp.connect(self.synapse.s_in)
            self.synapse.a_out.connect(self.lif.a_in)
        # Clock pulses, each through a Dense from neurons firing one step before it lands:
        # inhibition in the flush step (first - 1), the initial potential at the restart.
        pulses = []
        if timing == "delay":
            pulses.append((-lowering.flush_inhibition(layer), False, first - 2))
        if v_init:
            pulses.append((np.full(shape[-1], v_init), True, first - 1))
        pulses = [p for p in pulses if np.any(p[0])]
        if pulses:
            self._pulse(pulses, shape, period)
        self.lif.s_out.connect(proc.out_ports.out)
        proc.vars.v.alias(self.lif.v)

    def _pulse(self, pulses: list, shape: tuple, period: int) -> None:
        """One clock ``LIF`` (``vth = period - 1`` and a bias of one: it fires every ``period``
        steps, first at step ``period - v``) and one ``Dense`` per pulse, which turns its clock
        neurons' spikes into the per-channel ``amounts`` (negative: an inhibition) one step
        after they fire at steps congruent to ``fires``."""
        from lava.proc.dense.process import Dense
        from lava.proc.lif.process import LIF

        neurons = int(np.prod(shape))
        channel = np.arange(neurons) % shape[-1]  # (W, H, C): the channel is the last axis
        blocks = []
        for amounts, exact, fires in pulses:
            weights, exp = lowering.pulse(np.abs(amounts), exact)
            sign = -1 if amounts.min() < 0 else 1
            blocks.append((sign * weights[channel], exp, (fires - 1) % period + 1))
        width = sum(weights.shape[1] for weights, _, _ in blocks)
        phases = np.concatenate([np.full(w.shape[1], phase) for w, _, phase in blocks])
        self.clock = LIF(
            shape=(width,),
            du=lowering.DU,
            dv=lowering.DV,
            vth=period - 1,
            bias_mant=1,
            bias_exp=lowering.BIAS_EXP,
            v=(period - phases) * lowering.V_SCALE,
        )
        start = 0
        for i, (block, exp, _) in enumerate(blocks):
            weights = np.zeros((neurons, width), np.int32)
            weights[:, start : start + block.shape[1]] = block
            start += block.shape[1]
            synapse = Dense(weights=weights, weight_exp=exp, num_weight_bits=8)
            self.clock.s_out.connect(synapse.s_in)
            synapse.a_out.reshape(shape).connect(self.lif.a_in)
            # Lava finds a sub-model's processes among its attributes only.
            setattr(self, f"pulse{i}", synapse)
