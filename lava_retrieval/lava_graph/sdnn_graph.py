"""A ``sigma_delta`` network as a graph of Lava's own built-in processes (``--backend loihi``).

::

    ImageEncoder -> Delta -> Conv -> SigmaDelta (conv1) -> Conv -> SigmaDelta (pool1) -> ...
        ... -> SigmaDelta (pool2, the embedding) -> Sigma -> HostSink (embeddings)
                                    |-> Dense -> Sigma -> HostSink (class sums)

The 8-bit image enters as a graded message through Lava's ``Delta`` encoder (it sends each
pixel's change); every quantised layer is Lava's ``Conv`` (pooling: a grouped ``Conv`` with one
equal weight) or ``Dense`` with 16-bit graded input messages into a ``SigmaDelta`` neuron
(ReLU, ``state_exp = k`` for the threshold ``2**k``, the bias and the rounding half in state
units, ``vth`` one state unit); ``Sigma`` processes add up the embedding layer's messages and
the output layer's synaptic sums. Each synapse holds a step, so an image's embedding leaves
``embedding_layer`` steps after it entered and its class sums one step later. What the
network must satisfy is :mod:`lava_retrieval.loihi.sdnn_lowering`'s; the layouts (W, H, C) and
kernels are :mod:`lava_retrieval.loihi.lowering`'s.

Two modes (:data:`MODES`), both exact:

``stream`` (default)
    One image per step, back to back, in one run: a sigma-delta neuron sends only the change
    of its output, which is exact when the neuron remembers what it has sent. Lava 0.10's own
    ``SigmaDelta`` model does not (it drops the bits each change loses in its shift), so this
    mode selects the project's model of Lava's ``SigmaDelta`` process,
    :class:`lava_retrieval.loihi.sdnn_models.SigmaDeltaKeepsBitsModel` (Lava's main-branch
    behaviour), with ``exception_proc_model_map``. Steps per image: 1 (latency
    ``embedding_layer`` steps).
``reset``
    Lava 0.10's own models, unchanged: every image starts from a cleared graph (the neurons'
    ``sigma``, ``act`` and ``residue``, the encoder's state) so that each neuron changes once,
    from zero, and the one change is exact; the bias comes as a constant input channel (a
    clock and a ``Dense`` per layer) in the step the layer's input arrives, not before.
    Steps per image: ``len(layers)`` (its last message delivered), plus the reset, done by the
    host between runs.

Streaming through Lava 0.10's own model without the reset is not exact (tested: it is why the
``stream`` mode brings its own model).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.lava_runtime import (
    checked_interrupts,
    import_lava,
    no_interrupts,
    segments_mark,
)
from lava_retrieval.loihi import lowering, sdnn_lowering
from lava_retrieval.snn.network import SpikingNetwork

MODES = ("stream", "reset")


@dataclass
class SdnnResult:
    """What the graph gave: each image's embedding layer messages (N, D, in the network's
    (C, H, W) order) and the output layer's sums with its bias (N, classes)."""

    embeddings: np.ndarray
    outputs: np.ndarray
    seconds: float
    steps: int


class SdnnGraph:
    """The processes of a ``sigma_delta`` network on Lava's built-ins (module docstring).

    Parameters
    ----------
    network : SpikingNetwork
        A network :func:`lava_retrieval.loihi.sdnn_lowering.check` accepts.
    images : numpy.ndarray or None
        (N, H, W) uint8 or floats in [0, 1]; None: the host sends them as the graph runs.
    mode : {"stream", "reset"}
    stock_stream : bool
        ``stream`` with Lava 0.10's own ``SigmaDelta`` model (not exact: for the test that
        shows why the mode brings its own).
    fast_conv : bool
        Run Lava's ``Conv`` processes with the project's bit-exact model
        (:class:`lava_retrieval.loihi.sdnn_models.ConvFastModel`, default) instead of Lava's
        own Python model (a loop over every pair of channels, tens of times slower); the
        ``stream`` mode only: ``reset`` runs Lava's own models, all of them.
    hardware : bool
        Run on a Loihi 2 chip (``Loihi2HwCfg``: lava-loihi's own models of every built-in;
        needs Intel's lava-loihi extension and a chip; not tested here).
    netx : path, optional
        Run the layers as lava-dl netx loaded them from this SDNN file
        (:func:`lava_retrieval.exports.netx_sdnn.load_sdnn`; ``stream`` mode) instead of
        building them from ``network`` (which still gives the shapes and the checks).
    """

    def __init__(
        self,
        network: SpikingNetwork,
        images: np.ndarray | None,
        *,
        mode: str = "stream",
        stock_stream: bool = False,
        fast_conv: bool = True,
        netx=None,
        hardware: bool = False,
    ) -> None:
        if mode not in MODES:
            raise LavaRetrievalError(f"mode must be one of {MODES}, got {mode!r}")
        if netx is not None and mode != "stream":
            raise LavaRetrievalError("a netx-loaded network runs in the stream mode")
        self.netx_path, self.fast_conv, self.hardware = netx, fast_conv, hardware
        if hardware and mode != "stream":
            raise LavaRetrievalError("on a chip the graph streams (mode 'stream')")
        sdnn_lowering.check(network)
        self.network, self.mode, self.stock_stream = network, mode, stock_stream
        side = tuple(network.layers[0].output_shape[-2:])
        self.host = images is None
        if not self.host:
            images = np.asarray(images)
            if images.ndim != 3 or images.shape[1:] != side or len(images) == 0:
                raise LavaRetrievalError(
                    f"images must be (N, {side[0]}, {side[1]}), got {images.shape}"
                )
        if self.host and mode != "stream":
            raise LavaRetrievalError("a graph fed by the host streams (mode 'stream')")
        self.images = images
        self.depth = network.embedding_layer  # synapse layers before the embedding's messages
        self.period = len(network.layers) if mode == "reset" else 1
        # What a resident graph (lava_retrieval.lava_graph.resident) reads: a window is one
        # step, one image at a time, the embedding leaving ``depth`` steps after it entered.
        self.time_steps, self.batch_size, self.offset = self.period, 1, self.depth
        import_lava()
        with no_interrupts():
            self._build(side)

    def _build(self, side: tuple[int, ...]) -> None:
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta

        from procs.host_sink.process import HostSink
        from procs.image_encoder.process import ImageEncoder

        network = self.network
        reset = self.mode == "reset"
        self.encoder = ImageEncoder(
            images=self.images,
            batch_size=1,
            time_steps=self.period,
            param_scale=network.layers[0].param_scale,
            layout="whc",
            side=side,
            lead=0,
        )
        self.delta = Delta(shape=lowering.whc_shape(network.layers[0].output_shape), vth=1)
        self.encoder.out.connect(self.delta.a_in)
        if self.netx_path is not None:
            self._build_netx()
            return
        source = self.delta.s_out
        self.synapses: list = []
        self.neurons: list = []
        self.bias_synapses: list = []
        last = len(network.layers) - 1
        for index, layer in enumerate(network.layers[1:], 1):
            if layer.kind == "dense":
                weight, weight_exp = lowering.dense_weights(layer)
                synapse = Dense(
                    weights=weight, weight_exp=weight_exp, num_weight_bits=8, num_message_bits=16
                )
                if len(source.shape) > 1:
                    source = source.flatten()
            else:
                synapse = Conv(
                    weight=lowering.conv_kernel(layer),
                    input_shape=lowering.whc_shape(layer.input_shape),
                    padding=layer.padding,
                    stride=layer.stride,
                    groups=layer.groups,
                    num_message_bits=16,
                )
            source.connect(synapse.s_in)
            self.synapses.append(synapse)
            shape = lowering.whc_shape(layer.output_shape)
            if index == last:  # the class sums: the host adds the bias
                neuron = Sigma(shape=shape)
                synapse.a_out.connect(neuron.a_in)
                self.neurons.append(neuron)
                break
            k = sdnn_lowering.state_exp(layer.threshold)
            neuron = SigmaDelta(
                shape=shape, vth=0, bias=0, act_mode=ActivationMode.RELU, state_exp=k
            )
            neuron.vth.init = 1  # one state unit: every change is sent
            bias = self._bias(index)
            if reset:
                self._bias_channel(index, bias, neuron)
            else:
                neuron.bias.init = bias
            synapse.a_out.connect(neuron.a_in)
            self.neurons.append(neuron)
            source = neuron.s_out
        embedding = self.neurons[self.depth - 1]
        self.embedding_sigma = Sigma(shape=embedding.s_out.shape)
        embedding.s_out.connect(self.embedding_sigma.a_in)
        self.embedding_sink = HostSink(
            shape=embedding.s_out.shape,
            time_steps=self.period,
            offset=self.depth + 1 - self.period,
            every_step=True,
        )
        self.embedding_sigma.s_out.connect(self.embedding_sink.inp)
        self.output_sink: Any = None
        if not self.host:  # (a resident graph reads the embeddings only)
            self.output_sink = HostSink(
                shape=self.neurons[-1].s_out.shape,
                time_steps=self.period,
                offset=last + 1 - self.period,
                every_step=True,
            )
            self.neurons[-1].s_out.connect(self.output_sink.inp)

    def _build_netx(self) -> None:
        """The layers as netx loads them from the file, tapped at the embedding and output."""
        from lava.proc.sdn.process import Sigma

        from lava_retrieval.exports.netx_sdnn import load_sdnn
        from procs.host_sink.process import HostSink

        self.netx = load_sdnn(self.netx_path)
        source = self.delta.s_out
        if len(self.netx.inp.shape) == 1:  # a dense first layer: netx's (torch) order
            source = source.transpose([2, 1, 0]).flatten()
        source.connect(self.netx.inp)
        blocks = self.netx.layers
        if len(blocks) != len(self.network.layers) - 1:
            raise LavaRetrievalError(
                f"{self.netx_path} has {len(blocks)} synapse layers, the network "
                f"{len(self.network.layers) - 1}"
            )
        self.neurons = []
        embedding = blocks[self.depth - 1].out
        self.embedding_sigma = Sigma(shape=embedding.shape)
        embedding.connect(self.embedding_sigma.a_in)
        self.embedding_sink = HostSink(
            shape=embedding.shape, time_steps=1, offset=self.depth, every_step=True
        )
        self.embedding_sigma.s_out.connect(self.embedding_sink.inp)
        last = len(self.network.layers) - 1
        self.output_sink = None
        if not self.host:  # (a resident graph reads the embeddings only)
            self.output_sink = HostSink(
                shape=blocks[-1].out.shape, time_steps=1, offset=last, every_step=True
            )
            blocks[-1].out.connect(self.output_sink.inp)

    def _bias(self, index: int) -> np.ndarray:
        """The layer's bias plus its rounding half, per neuron in (W, H, C) order."""
        layer = self.network.layers[index]
        bias = np.zeros(lowering.whc_shape(layer.output_shape), np.int64)
        if layer.bias is not None:
            bias[:] = layer.bias.astype(np.int64)
        return bias + self.network.neuron(index).v_init

    def _bias_channel(self, index: int, bias: np.ndarray, neuron) -> None:
        """``reset`` mode: the bias as input, in the step its synaptic input arrives (step
        ``index + 1`` of the period): clock neurons (a ``RingBuffer``) that fire at step
        ``index`` and a ``Dense`` (one step) of single-sign 8-bit columns summing to each
        neuron's bias (:func:`lava_retrieval.loihi.lowering.pulse`), one per sign."""
        from lava.proc.dense.process import Dense
        from lava.proc.io.source import RingBuffer

        flat = bias.reshape(-1)
        for sign in (1, -1):
            amounts = np.clip(sign * flat, 0, None)
            if not amounts.any():
                continue
            weights, exp = lowering.pulse(amounts, exact=True)
            pattern = np.zeros((weights.shape[1], self.period), np.int32)
            pattern[:, index - 1] = 1  # column t is sent at step t + 1
            clock = RingBuffer(data=pattern)
            synapse = Dense(weights=sign * weights, weight_exp=exp, num_weight_bits=8)
            clock.s_out.connect(synapse.s_in)
            synapse.a_out.reshape(neuron.a_in.shape).connect(neuron.a_in)
            self.bias_synapses += [clock, synapse]

    def run_config(self):
        """``Loihi2SimCfg`` of Lava's fixed-point models; in ``stream`` mode with the
        project's ``SigmaDelta`` model that keeps the shifted-off bits (and its fast ``Conv``
        model); ``Loihi2HwCfg`` on a chip."""
        from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
        from lava.proc.sdn.process import SigmaDelta

        if self.hardware:
            return Loihi2HwCfg(select_sub_proc_model=True)
        exceptions = {}
        if self.fast_conv and self.mode == "stream":
            from lava.proc.conv.process import Conv

            from lava_retrieval.loihi.sdnn_models import ConvFastModel

            exceptions[Conv] = ConvFastModel
        if self.mode == "stream" and not self.stock_stream:
            from lava_retrieval.loihi.sdnn_models import SigmaDeltaKeepsBitsModel

            exceptions[SigmaDelta] = SigmaDeltaKeepsBitsModel
        return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=exceptions)

    def run(self, progress: bool = False) -> SdnnResult:
        """Present every image once; the embeddings and class sums of each, in order."""
        from lava.magma.core.run_conditions import RunSteps
        from tqdm.auto import tqdm

        from lava_retrieval.common.lava_runtime import stop_runtime

        if self.host:
            raise LavaRetrievalError("a graph fed by the host runs through its resident loop")
        if self.images is None:
            raise LavaRetrievalError("a graph fed by the host has no images to run")
        n = len(self.images)
        per_run = self.period if self.mode == "reset" else n * self.period
        runs = n if self.mode == "reset" else 1
        total = per_run + (0 if self.mode == "reset" else len(self.network.layers) - 1)
        before = set(multiprocessing.active_children())
        segments = (segments_mark(), None)
        embeddings, outputs = [], []
        start = time.perf_counter()
        try:
            with tqdm(total=n, unit="img", disable=not progress, desc="loihi") as bar:
                for r in range(runs):
                    if r:
                        self._reset()
                    with checked_interrupts():
                        self.encoder.run(
                            condition=RunSteps(num_steps=total, blocking=False),
                            run_cfg=self.run_config(),
                            compile_config={"pypy_channel_size": 2},
                        )
                    for _ in range(1 if self.mode == "reset" else n):
                        embeddings.append(self.embedding_sink.receive())
                        outputs.append(self.output_sink.receive())
                        bar.update(1)
                    self.encoder.wait()
        finally:
            with no_interrupts():
                stop_runtime(self.encoder, before, segments)
        seconds = time.perf_counter() - start
        return SdnnResult(
            embeddings=self._from_lava(embeddings, self.network.embedding_layer),
            outputs=self._from_lava(outputs, len(self.network.layers) - 1)
            + self._bias(len(self.network.layers) - 1).reshape(-1)
            - self.network.neuron(len(self.network.layers) - 1).v_init,
            seconds=seconds,
            steps=runs * total,
        )

    def _reset(self) -> None:
        """``reset`` mode, between images: clear every state an image leaves."""
        for process in [self.delta, *self.neurons[:-1]]:
            for var in ("act", "residue"):
                getattr(process, var).set(np.zeros(getattr(process, var).shape))
        for process in [*self.neurons, self.embedding_sigma]:
            process.sigma.set(np.zeros(process.sigma.shape))

    def embedding_of(self, message: np.ndarray) -> np.ndarray:
        """One embedding sink message as a (1, D) row in the network's (C, H, W) order."""
        return self._from_lava([message], self.network.embedding_layer).astype(np.float64)

    def _from_lava(self, arrays: list, index: int) -> np.ndarray:
        """(N, D) in the network's (C, H, W) order from Lava's (W, H, C) messages."""
        shape = self.network.layers[index].output_shape
        stacked = np.stack([np.asarray(a).reshape(lowering.whc_shape(shape)) for a in arrays])
        return lowering.from_whc(stacked, lead=1).reshape(len(arrays), -1).astype(np.int64)
