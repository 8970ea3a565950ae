"""A Lava process graph that stays compiled and started, fed with images as they come.

Building and starting a graph (compiling, forking a dozen processes, creating their channels)
takes seconds, while one presentation window of T steps at batch 1 takes tens of milliseconds.
A :class:`ResidentGraph` pays the start-up once: its encoder takes each window's images from the
host (:class:`procs.image_encoder.process.ImageEncoder` with ``images=None``), and every call of
:meth:`ResidentGraph.embed` sends its images, one window per batch, runs the graph just as many
steps as it takes for their embeddings to come out (the embedding leaves ``offset`` steps after
its window under the pipelined and exact-count timings; the windows that fill that wait carry
blank images), and returns them. The windows stay aligned with the graph's own, so the result is
that of one long run with the images back to back: the simulator's integers, bit for bit.

The graph is stopped by :meth:`ResidentGraph.close` (also at interpreter exit, and on leaving a
``with`` block), with the guarantees of
:func:`lava_retrieval.common.lava_runtime.stop_runtime`: every
process it forked ends, and its shared memory is released. Calls are serialised by a lock, so
the graph can serve several threads.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
import time
import weakref
from typing import Any

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.lava_runtime import (
    STOP_SECONDS,
    checked_interrupts,
    no_interrupts,
    segments_mark,
    stop_runtime,
)
from lava_retrieval.lava_graph.graph import GraphError, build
from lava_retrieval.loihi.lowering import to_whc
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.neuron import input_current

RESIDENT_BACKENDS = registry.names("resident")


class ResidentGraph:
    """One compiled, running graph of ``network`` for the life of this object.

    Parameters
    ----------
    network : SpikingNetwork
    config : SimConfig
        T, timing and readout.
    batch_size : int
        Images per window (1: a query at a time, the lowest latency).
    backend : {"lava", "lava-float", "loihi"}
        ``loihi``: Lava's Conv/Dense/LIFReset streaming one image per window (batch 1).

    >>> with ResidentGraph(net, SimConfig(4, "delay", "membrane")) as graph:
    ...     graph.embed(images[:2]).shape
    (2, 1024)
    """

    def __init__(
        self,
        network: SpikingNetwork,
        config: SimConfig,
        *,
        batch_size: int = 1,
        backend: str = "lava",
    ) -> None:
        if backend not in RESIDENT_BACKENDS:
            raise GraphError(
                f"a resident graph runs on the backends {RESIDENT_BACKENDS}, not {backend!r}"
            )
        self.network, self.config = network, config
        self.graph: Any
        if registry.BACKENDS[backend].chip and self.config.timing == "sigma_delta":
            # Lava's own sigma-delta processes, streamed (one image per step).
            from lava_retrieval.lava_graph.graph import check_backend
            from lava_retrieval.lava_graph.sdnn_graph import SdnnGraph

            check_backend(network, self.config, backend)
            self.graph = SdnnGraph(network, None, mode="stream")
        else:
            self.graph = build(network, None, self.config, batch_size=batch_size, backend=backend)
        self.batch_size, self.backend = self.graph.batch_size, backend
        self._lock = threading.Lock()
        self._steps = 0  # steps run so far
        self._kinds: list[int] = []  # per window sent and not yet answered: its images (0: blank)
        self._closed = False
        self.startup_seconds = 0.0
        self._start()

    @property
    def window(self) -> int:
        """Steps of one presentation window."""
        return self.graph.time_steps

    def _start(self) -> None:
        start = time.perf_counter()
        self._before = set(multiprocessing.active_children())
        self._segments: tuple[int, int | None] = (segments_mark(), None)
        try:
            with checked_interrupts():  # compiling and forking: a signal may be swallowed
                self.graph.encoder.create_runtime(
                    run_cfg=self.graph.run_config(), compile_config={"pypy_channel_size": 2}
                )
        except BaseException:
            with no_interrupts():
                stop_runtime(self.graph.encoder, self._before, self._segments)
            self._closed = True
            raise
        self._segments = (self._segments[0], segments_mark())  # its own, not a later graph's
        # Stopped at exit even if never closed (a weak reference: no cycle keeps it alive).
        atexit.register(_close_at_exit, weakref.ref(self))
        self.startup_seconds = time.perf_counter() - start

    def _emitted(self, steps: int) -> int:
        """Embedding messages the sink has sent after ``steps`` steps."""
        return max(0, (steps - self.graph.offset) // self.window)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(N, D) embeddings (float64 holding integers) of ``images`` (N, 28, 28), in order."""
        images = np.asarray(images)
        side = tuple(self.network.layers[0].output_shape[-2:])
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != side or len(images) == 0:
            raise GraphError(f"images must be (N, {side[0]}, {side[1]}), got {images.shape}")
        currents = input_current(images, self.network.layers[0].param_scale).astype(np.int32)
        encoder, sink = self.graph.encoder, self.graph.embedding_sink
        b = self.batch_size
        with self._lock:
            if self._closed:
                raise GraphError("the resident graph is closed")
            frames, kinds = [], []
            for start in range(0, len(currents), b):
                chunk = currents[start : start + b]
                frame = np.zeros((b, 1, *side), np.int32)
                frame[: len(chunk), 0] = chunk
                frames.append(to_whc(frame[0]) if self.backend == "loihi" else frame)
                kinds.append(len(chunk))
            # Run until the last window's embedding has left: whole windows, the extra ones
            # blank (their embeddings arrive with the next call's and are dropped).
            done = self._steps // self.window
            until = (done + len(frames)) * self.window + self.graph.offset
            windows = -(-until // self.window) - done
            blanks = windows - len(frames)
            frames += [np.zeros(encoder.out.shape, np.int32)] * blanks
            self._kinds += kinds + [0] * blanks
            expected = self._emitted(self._steps + windows * self.window) - self._emitted(
                self._steps
            )
            from lava.magma.core.run_conditions import RunSteps

            rows = []
            try:
                encoder.run(condition=RunSteps(num_steps=windows * self.window, blocking=False))
                # Both channels hold a few messages: the frames go in from a thread while the
                # embeddings come out here, or the graph would wait on a full channel.
                feeder = threading.Thread(target=_send_all, args=(encoder, frames), daemon=True)
                feeder.start()
                convert = getattr(self.graph, "embedding_of", None)  # sigma-delta: (W, H, C)
                for _ in range(expected):
                    message = sink.receive()
                    if convert is not None:
                        message = convert(message)
                    kind = self._kinds.pop(0)
                    if kind:
                        rows.append(message[:kind])
                feeder.join()
                encoder.wait()
            except BaseException:
                self._close()
                raise
            self._steps += windows * self.window
        return np.concatenate(rows).reshape(len(images), -1)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            with no_interrupts():
                stop_runtime(self.graph.encoder, self._before, self._segments)

    def close(self) -> None:
        """Stop the graph: every process it forked ends and its shared memory is released.
        A call still running after ``STOP_SECONDS`` does not hold it up."""
        locked = self._lock.acquire(timeout=STOP_SECONDS)
        try:
            self._close()
        finally:
            if locked:
                self._lock.release()

    def __enter__(self) -> ResidentGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_at_exit(ref) -> None:
    graph = ref()
    if graph is not None:
        graph._close()


def _send_all(encoder, frames) -> None:
    """Send ``frames`` to the host-fed encoder, one after another (a thread's work)."""
    for frame in frames:
        encoder.send(frame)
