"""A layer of integrate-and-fire neurons together with the synapses that feed it, batched."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from lava_retrieval.loihi.lowering import whc_shape
from lava_retrieval.snn.config import GRAPH_TIMINGS
from lava_retrieval.snn.network import SpikingLayer
from lava_retrieval.snn.neuron import NeuronParams

LAYOUTS = ("bchw", "whc")


class IFLayer(AbstractProcess):
    """Conv, pool or dense synapses plus soft- or hard-reset integrate-and-fire neurons.

    Per image presentation window of ``time_steps`` steps (state set to ``v_init`` at its first
    step)::

        a[t] = W * s_in[t-1]             synaptic input: conv / pool / dense of the previous
                                         layer's spikes one step earlier; input layer:
                                         a[t] = current[t] from the image encoder
        v[t] = sat(v[t-1] + a[t] + bias) sat: +-(2**17 - 1), Loihi's 24-bit register
        s[t] = v[t] >= threshold
        v[t] = v[t] - threshold * s[t]   reset "subtract" (soft, the paper's neuron)
        v[t] = 0 where s[t]              reset "zero" (hard, Lava's LIF)

    Windows: with timing ``delay`` every layer's window is the encoder's (steps ``wT+1 ..
    (w+1)T``) and the input in flight at its first step, the previous image's, is dropped; with
    ``pipelined`` the window of the layer at ``depth`` d is ``wT+1+d .. (w+1)T+d`` and the
    input in flight at its first step is the new image's first (it rests before its first
    window). See :mod:`lava_retrieval.snn.reference` for what each timing computes.

    Why one Process holds synapses and neurons: a batch of B images flows through one
    ``(B, C, H, W)`` message per layer and step (Lava's Conv and Dense have no batch dimension),
    the synaptic product and the neuron update share one OS process instead of two, and
    clearing the in-flight synaptic input between images is one line in the same model. The
    hierarchical model (``LoihiIFLayerModel``) still maps the layer onto Lava's own ``Conv`` /
    ``Dense`` + ``LIFReset`` for Loihi.

    Parameters
    ----------
    kind : {"input", "conv", "pool", "dense"}
    input_shape, output_shape : tuple of int
        Per-image shapes (C, H, W) or (N,), as in the SpikingNetwork.
    batch_size : int
        Images processed side by side (B). Ports and Vars are (B, *shape).
    time_steps : int
        Steps per image presentation (T); state is cleared every T steps.
    threshold : int
    reset : {"subtract", "zero"}
    v_init : int
        Potential at the start of every window (the network's initial membrane potential).
    timing : {"delay", "pipelined"}
    depth : int
        The layer's index in the network (0 for the input layer): its window's offset under
        ``pipelined``.
    weight, bias : numpy.ndarray, optional
        Integer weights (torch layout) and per-channel bias.
    stride, padding, groups : int
    layout : {"bchw", "whc"}
        ``whc`` (batch 1, Lava's (W, H, C) order, dense input flattened in that order) is the
        layout of the hierarchical Loihi model.
    analog : bool
        An analog input layer (``kind="input"`` only): no neuron fires; in every step in which
        it would send spikes it sends the encoder's current itself, a graded message (with
        ``graded`` timing, T times the current).
    lead : int
        The hierarchical Loihi model only: steps before the image in every window, which then
        lasts ``time_steps + lead`` (the flush step that lets Lava's ``LIFReset`` stream under
        ``delay``: :func:`lava_retrieval.loihi.lowering.stream_lead`).
    """

    def __init__(
        self,
        *,
        kind: str,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        batch_size: int,
        time_steps: int,
        threshold: int,
        reset: str = "subtract",
        v_init: int = 0,
        timing: str = "delay",
        depth: int = 0,
        weight: np.ndarray | None = None,
        bias: np.ndarray | None = None,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        layout: str = "bchw",
        name: str | None = None,
        analog: bool = False,
        lead: int = 0,
    ) -> None:
        if analog and kind != "input":
            raise ValueError("only the input layer can be analog")
        if lead and layout != "whc":
            raise ValueError("a lead step is the Loihi path's (layout 'whc')")
        super().__init__(
            kind=kind,
            input_shape=tuple(input_shape),
            output_shape=tuple(output_shape),
            batch_size=batch_size,
            time_steps=time_steps,
            threshold=int(threshold),
            reset=reset,
            v_init=int(v_init),
            timing=timing,
            depth=int(depth),
            weight=weight,
            bias=bias,
            stride=stride,
            padding=padding,
            groups=groups,
            layout=layout,
            name=name,
            analog=bool(analog),
            lead=int(lead),
        )
        if timing not in GRAPH_TIMINGS:
            raise ValueError(f"timing must be one of {GRAPH_TIMINGS}, got {timing!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == "whc":
            if batch_size != 1:
                raise ValueError("the whc layout (Loihi path) has no batch dimension: batch_size 1")
            in_shape = whc_shape(input_shape, flatten=kind == "dense")
            out_shape = whc_shape(output_shape)
        else:
            in_shape = (batch_size, *input_shape)
            out_shape = (batch_size, *output_shape)
        self.inp = InPort(shape=in_shape)
        self.out = OutPort(shape=out_shape)
        self.v = Var(shape=out_shape, init=0)
        self.spike_count = Var(shape=out_shape, init=0)

    @classmethod
    def from_layer(
        cls,
        layer: SpikingLayer,
        *,
        neuron: NeuronParams,
        batch_size: int,
        time_steps: int,
        timing: str = "delay",
        depth: int = 0,
        layout: str = "bchw",
        analog: bool = False,
        lead: int = 0,
    ) -> IFLayer:
        """The IFLayer of one layer of a SpikingNetwork (weights, bias, geometry) with its
        neurons' parameters (``network.neuron(i)``: threshold, reset, initial potential);
        ``analog`` for the input layer of a network with an analog input.

        >>> layer = IFLayer.from_layer(net.layers[1], neuron=net.neuron(1), batch_size=8,
        ...                            time_steps=16)
        >>> layer.v.shape
        (8, 32, 24, 24)
        """
        return cls(
            kind=layer.kind,
            input_shape=layer.input_shape,
            output_shape=layer.output_shape,
            batch_size=batch_size,
            time_steps=time_steps,
            threshold=neuron.threshold,
            reset=neuron.reset,
            v_init=neuron.v_init,
            timing=timing,
            depth=depth,
            weight=layer.weight,
            bias=layer.bias,
            stride=layer.stride,
            padding=layer.padding,
            groups=layer.groups,
            layout=layout,
            name=layer.name,
            analog=analog,
            lead=lead,
        )
