"""The retrieval system as one Lava process graph, built from a SpikingNetwork.

::

    ImageEncoder -> IFLayer(input) -> IFLayer(conv1) -> ... -> IFLayer(dense)
                                                  |
                      MembraneProbe (RefPorts on the embedding layer's v and spike_count)
                            |                          |
                   HostSink (embeddings)       CosineKNN -> HostSink (ids), HostSink (scores)

Backends (``Loihi2SimCfg`` / ``Loihi2HwCfg`` with the tag that selects the models; the same
names as the command line's ``--backend``, where ``sim`` is the fast simulator):

``lava``
    Integer ProcessModels (``fixed_pt``, also tagged ``bit_accurate_loihi``): the reference
    arithmetic (:func:`lava_retrieval.snn.neuron.if_step`), batched.
``lava-float``
    ``floating_pt`` models: the same neurons in float64, without saturation.
``loihi``
    Each IFLayer as Lava's own Conv/Dense + LIFReset (the processes lava-loihi maps to
    neurocores), simulated on the CPU; batch 1, image after image (timings ``delay``, with one
    flush step per window, and ``pipelined``), and the network must lower exactly onto them
    (:mod:`lava_retrieval.loihi.lowering`: zero reset, 8-bit weights).
``loihi-hw``
    The same on a Loihi 2 chip through ``Loihi2HwCfg``; needs Intel's lava-loihi extension.

Every IFLayer sets its potentials to the initial potential and its spike counts to zero at the
first step of each of its windows, and under the ``delay`` timing drops the input in flight then
(the previous image's; under ``pipelined`` it is the new image's first), so nothing of one image
leaks into the next.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.lava_runtime import (
    checked_interrupts,
    import_lava,
    no_interrupts,
    segments_mark,
    stop_runtime,
)
from lava_retrieval.loihi import lowering
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

BACKENDS = tuple(name for name in registry.names() if registry.BACKENDS[name].graph)
"""The backends that run a Lava process graph (:mod:`lava_retrieval.backends.registry`)."""


class GraphError(registry.BackendError):
    """The graph cannot be built or run as asked."""


@dataclass
class GraphResult:
    """Embeddings (and search results) of every presented image, in input order."""

    embeddings: np.ndarray
    ids: np.ndarray | None = None
    scores: np.ndarray | None = None
    seconds: float = 0.0
    #: ``time.perf_counter()`` when each window's embeddings arrived at the host: their
    #: differences are the graph's steady-state time per window, without its start-up.
    window_times: tuple[float, ...] = ()


@dataclass
class RetrievalGraph:
    """The connected processes; :meth:`run` presents every image once."""

    encoder: Any
    layers: list
    probe: Any
    embedding_sink: Any
    num_images: int
    batch_size: int
    time_steps: int
    backend: str
    knn: Any = None
    result_sinks: tuple = field(default_factory=tuple)
    offset: int = 0  # steps from an image's first step to its embedding's (pipelined: depth)

    @property
    def num_windows(self) -> int:
        """Presentation windows needed for all images."""
        return -(-self.num_images // self.batch_size)

    def run_config(self):
        """The Lava run configuration of the backend."""
        from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

        if self.backend == "lava":
            return Loihi2SimCfg(select_tag="fixed_pt")
        if self.backend == "lava-float":
            return Loihi2SimCfg(select_tag="floating_pt")
        if self.backend == "loihi":
            return Loihi2SimCfg(select_tag="fixed_pt", select_sub_proc_model=True)
        return Loihi2HwCfg(select_sub_proc_model=True)

    def run(self, progress: bool = True) -> GraphResult:
        """Run ``num_windows x time_steps (+ offset)`` steps and collect what the sinks
        receive."""
        import time

        from lava.magma.core.run_conditions import RunSteps
        from tqdm.auto import tqdm

        n, b = self.num_images, self.batch_size
        embeddings, ids, scores, arrived = [], [], [], []
        before = set(multiprocessing.active_children())  # what this run forks is not in it
        segments = (segments_mark(), None)  # nor the shared memory it creates
        start = time.perf_counter()
        try:
            with checked_interrupts():  # compiling and forking: a signal may be swallowed
                self.encoder.run(
                    condition=RunSteps(
                        num_steps=self.num_windows * self.time_steps + self.offset, blocking=False
                    ),
                    run_cfg=self.run_config(),
                    compile_config={"pypy_channel_size": 2},
                )
        except KeyboardInterrupt:
            with no_interrupts():
                stop_runtime(self.encoder, before, segments)
            raise
        try:
            with tqdm(total=n, unit="img", disable=not progress, desc=self.backend) as bar:
                for w in range(self.num_windows):
                    keep = min(b, n - w * b)
                    embeddings.append(self.embedding_sink.receive()[:keep])
                    arrived.append(time.perf_counter())
                    if self.knn is not None:
                        ids.append(self.result_sinks[0].receive()[:keep])
                        scores.append(self.result_sinks[1].receive()[:keep])
                    bar.update(keep)
            self.encoder.wait()
        finally:
            with no_interrupts():
                stop_runtime(self.encoder, before, segments)
        return GraphResult(
            embeddings=np.concatenate(embeddings),
            ids=np.concatenate(ids).astype(np.int64) if ids else None,
            scores=np.concatenate(scores).astype(np.float32) if scores else None,
            seconds=time.perf_counter() - start,
            window_times=tuple(arrived),
        )


def _offset(depth: int, time_steps: int, timing: str) -> int:
    """Steps from an image's first step to the end of the first window of the layer at
    ``depth``, less T: ``pipelined`` (and ``graded``, whose window is one step) shifts each
    layer by one step, ``exact_count`` by a window and a step, plus the window in which the
    layer fires what it integrated.

    >>> _offset(5, 16, "delay"), _offset(5, 16, "pipelined"), _offset(5, 16, "exact_count")
    (0, 5, 101)
    """
    if timing == "exact_count":
        return depth * (time_steps + 1) + time_steps
    return depth if timing in ("pipelined", "graded", "sigma_delta") else 0


def check_backend(network: SpikingNetwork, config: SimConfig, backend: str) -> None:
    """Refuse, before any work, what ``backend`` cannot run of ``network`` with ``config``
    (:func:`lava_retrieval.backends.registry.check`, for the graph's backends)."""
    if backend not in BACKENDS:
        raise GraphError(f"backend must be one of {BACKENDS}, got {backend!r}")
    try:
        registry.check(backend, network, config)
    except registry.BackendError as error:
        raise GraphError(str(error)) from None


def build(
    network: SpikingNetwork,
    images: np.ndarray | None,
    config: SimConfig,
    *,
    batch_size: int = 32,
    backend: str = "lava",
    index=None,
    k: int = 3,
) -> RetrievalGraph:
    """Connect encoder, layers, probe (and kNN) for ``images``.

    Parameters
    ----------
    network : SpikingNetwork
    images : numpy.ndarray or None
        (N, 28, 28) uint8 or float in [0, 1]; None: the encoder takes its images from the host
        as the graph runs (:class:`lava_retrieval.lava_graph.resident.ResidentGraph`).
    config : SimConfig
        T (steps per image), the timing and the readout. Timing
        ``delay``: one window for all layers (the paper's); ``pipelined``: the window of the
        layer at depth d starts d steps after the input's, and the embedding of each image
        leaves ``embedding_layer`` steps after its window (:mod:`lava_retrieval.snn.reference`);
        ``no_delay`` is refused (use ``pipelined``, its equal).
    batch_size : int
        Images per presentation window (B); 1 measures latency.
    backend : {"lava", "lava-float", "loihi", "loihi-hw"}
    index : lava_retrieval.search.index.CosineIndex, optional
        The corpus: with it, a CosineKNN answers every image with its ``k`` nearest corpus
        ids (``index.search``).
    k : int

    >>> graph = build(net, images[:4], SimConfig(4, "delay", "membrane"), batch_size=2)
    >>> graph.run(progress=False).embeddings.shape
    (4, 1024)
    """
    time_steps, timing = config.time_steps, config.timing
    loihi = backend in BACKENDS and registry.BACKENDS[backend].chip
    if loihi and timing == "sigma_delta":
        raise GraphError(
            "a sigma-delta network runs on Lava's sigma-delta processes through "
            "lava_retrieval.lava_graph.sdnn_graph (embed); its process graph has no kNN process"
        )
    check_backend(network, config, backend)
    side = tuple(network.layers[0].output_shape[-2:])
    host = images is None  # the images come from the host as the graph runs
    if not host:
        images = np.asarray(images)
        if images.ndim != 3 or images.shape[1:] != side or len(images) == 0:
            raise GraphError(f"images must be (N, {side[0]}, {side[1]}), got {images.shape}")
    if batch_size < 1:
        raise GraphError("batch_size must be >= 1")
    lead = 0
    if loihi:
        lead = lowering.stream_lead(
            timing, [network.neuron(d).v_init for d in range(len(network.layers))]
        )
        batch_size = 1
    batch_size = batch_size if images is None else min(batch_size, len(images))
    import_lava()
    from procs.host_sink.process import HostSink
    from procs.image_encoder.process import ImageEncoder

    # Deferred signals: a process interrupted half-way through its constructor raises from its
    # __del__ at exit (Lava's AbstractProcess.stop reads an attribute not yet set).
    with no_interrupts():
        layout = "whc" if loihi else "bchw"
        # A presentation window: T steps; with graded messages one step (T is the levels); on
        # the Loihi path T after the lead (flush) steps.
        window = 1 if timing in ("graded", "sigma_delta") else time_steps + lead
        encoder = ImageEncoder(
            images=images,
            batch_size=batch_size,
            time_steps=window,
            param_scale=network.layers[0].param_scale,
            layout=layout,
            side=side,
            lead=lead,
        )
        layers = _if_layers(network, encoder, config, batch_size, layout, lead)
        offset = _offset(network.embedding_layer, time_steps, timing)
        probe = _probe(network, layers, config.readout, window, layout, offset)
        embedding_sink = HostSink(shape=probe.out.shape, time_steps=window, offset=offset)
        probe.out.connect(embedding_sink.inp)
        graph = RetrievalGraph(
            encoder,
            layers,
            probe,
            embedding_sink,
            0 if images is None else len(images),
            batch_size,
            window,
            backend,
            offset=offset,
        )
        if index is not None:
            _attach_knn(graph, index, k)
        return graph


def _if_layers(network, encoder, config: SimConfig, batch_size: int, layout: str, lead: int):
    """One IFLayer per layer of ``network``, connected from ``encoder`` on."""
    from procs.if_layer.process import IFLayer

    layers: list = []
    for depth, spec in enumerate(network.layers):
        layer = IFLayer.from_layer(
            spec,
            neuron=network.neuron(depth),
            batch_size=batch_size,
            time_steps=config.time_steps,
            timing=config.timing,
            depth=depth,
            layout=layout,
            analog=network.analog_input and depth == 0,
            lead=lead,
        )
        source = layers[-1].out if layers else encoder.out
        if layout == "whc" and spec.kind == "dense" and len(source.shape) > 1:
            source = source.flatten()  # (the Loihi path)
        source.connect(layer.inp)
        layers.append(layer)
    return layers


def _probe(network, layers: list, readout: str, window: int, layout: str, offset: int):
    """The MembraneProbe on the embedding layer (its spike count too, off the Loihi path)."""
    from procs.membrane_probe.process import MembraneProbe

    loihi = layout == "whc"
    embedding_layer = layers[network.embedding_layer]
    probe = MembraneProbe(
        state_shape=embedding_layer.v.shape,
        time_steps=window,
        readout=readout,
        threshold=network.layers[network.embedding_layer].threshold,
        v_init=network.neuron(network.embedding_layer).v_init,
        v_scale=lowering.V_SCALE if loihi else 1,
        layout=layout,
        offset=offset,
    )
    probe.v_ref.connect_var(embedding_layer.v)
    if not loihi:
        probe.count_ref.connect_var(embedding_layer.spike_count)
    return probe


def _attach_knn(graph: RetrievalGraph, index, k: int) -> None:
    """A CosineKNN over ``index`` fed by the graph's probe, and sinks for its answers."""
    from procs.cosine_knn.process import CosineKNN
    from procs.host_sink.process import HostSink

    window, offset = graph.time_steps, graph.offset
    knn = CosineKNN(index=index, k=k, batch_size=graph.batch_size, time_steps=window, offset=offset)
    graph.probe.out.connect(knn.query)
    sinks = []
    for port in (knn.ids, knn.scores):
        sink = HostSink(shape=port.shape, time_steps=window, offset=offset)
        port.connect(sink.inp)
        sinks.append(sink)
    graph.knn, graph.result_sinks = knn, tuple(sinks)


def embed(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
    *,
    batch_size: int = 256,
    backend: str = "lava",
    progress: bool = True,
) -> np.ndarray:
    """Embeddings of ``images`` from the Lava graph, (N, D) float64 holding integers.

    The Loihi backends embed one image per window (batch 1), all in one run.
    """
    if backend in BACKENDS and registry.BACKENDS[backend].chip and config.timing == "sigma_delta":
        return sdnn_embed(
            network, images, config, progress=progress, hardware=backend == "loihi-hw"
        )
    graph = build(network, images, config, batch_size=batch_size, backend=backend)
    return graph.run(progress).embeddings


def sdnn_embed(
    network: SpikingNetwork,
    images: np.ndarray,
    config: SimConfig,
    *,
    mode: str = "stream",
    progress: bool = True,
    hardware: bool = False,
) -> np.ndarray:
    """Embeddings of a ``sigma_delta`` network from Lava's own sigma-delta processes
    (:mod:`lava_retrieval.lava_graph.sdnn_graph`): the embedding layer's messages, so the
    readout must be ``spike_count`` (:func:`check_backend`)."""
    from lava_retrieval.lava_graph.sdnn_graph import SdnnGraph

    check_backend(network, config, "loihi-hw" if hardware else "loihi")
    result = SdnnGraph(network, images, mode=mode, hardware=hardware).run(progress)
    return result.embeddings.astype(np.float64)
