"""The executable specification of a :class:`~lava_retrieval.snn.network.SpikingNetwork`.

:func:`simulate_reference` defines what running a spiking network means, in plain numpy, one
time step after the other; every engine (:mod:`lava_retrieval.engines.dense`,
:mod:`lava_retrieval.engines.events`),
every ProcessModel of the Lava graph and the netx export are held to it bit for bit by one
conformance suite (``tests/lava_retrieval/test_conformance.py``). It is written to be read, not
to be fast.

Presentation
    Each image is presented for ``time_steps`` steps. Every layer's window starts from its
    initial potential (``network.neuron(i).v_init``: 0, the paper's rest, or a fraction of the
    threshold, ``network.initial_membrane``), with no spike of another image in flight.
Neurons
    Layer ``i`` follows :func:`lava_retrieval.snn.neuron.if_step` with ``network.neuron(i)``
    (threshold, reset, 24-bit saturation) and its bias, every step.
Input layer
    Integrates the pixel current ``round(pixel * param_scale)`` every step
    (:func:`lava_retrieval.snn.neuron.input_current`). With an analog input
    (``network.analog_input``) it has no neurons that fire: in every step in which it would
    send spikes it sends the current itself, a graded value (its potentials stay at
    ``v_init``, its counts at 0), and the first synapse layer integrates ``W . current``: a
    constant input over the window.
Synapses
    Every other layer integrates the integer synaptic input from the previous layer's spikes
    (conv, pool or dense, :class:`lava_retrieval.snn.synapse.SynapticOp`) plus its bias.
Timing
    ``delay`` (Lava's, the paper's): a synapse layer delivers the spikes of step t-1 at step t,
    as Lava's ``Dense``/``Conv``, netx blocks and the project's ``IFLayer`` do, and every layer's
    window is the input's, so a network of L synapse layers gives its output layer no input for
    its first L steps. ``no_delay``: every layer sees the spikes its predecessor emitted in the
    same step. ``pipelined``: Lava's synapse delay, with the window of the layer at depth d
    starting d steps after the input's, so that every layer integrates exactly the T steps of
    its own input while images stream back to back, one every T steps (latency T + depth). Per
    image, a layer then sees at its k-th step what its predecessor emitted at its own k-th step:
    the integers are those of ``no_delay``, which is how this function computes them.
    ``exact_count``: every layer first integrates a window of T steps without firing (its
    input and its bias, saturating as always: :func:`lava_retrieval.snn.neuron.integrate`),
    then fires for T steps with no input (:func:`lava_retrieval.snn.neuron.if_step` with no
    input and no bias), and it integrates while its predecessor fires: at its k-th integrating
    step it sees what the predecessor emitted at its k-th firing step. Each layer's count is
    then that of its whole input, ``clip(floor((v_init + S) / threshold), 0, T)`` with soft
    reset and no saturation, ``S = W . (previous counts) + T x bias`` (the input layer: ``T x``
    its current): with ``v_init`` half the threshold, the QCFS activation with L = T, and no
    error from spikes arriving unevenly. Streamed, a layer holds two potentials (it integrates
    image i+1 while it fires image i): one image every T steps, latency T x (layers + 1).
    ``graded``: graded spikes (Loihi 2's graded messages), T the number of levels. A layer
    receives its predecessor's count as one message, integrates it through its synapses and T x
    its bias in one step (``W . (previous counts) + T x bias``; the input layer T x its
    current), from ``v_init``, and its count is what T steps of firing with no input would give
    (:func:`lava_retrieval.snn.neuron.if_step` run T times with no input: ``clip(floor(v /
    threshold), 0, T)`` with soft reset), which it sends on. The counts equal ``exact_count``'s
    wherever that one's sum stays inside the saturation bounds (it clips once, not every step);
    streamed, one image per step, latency layers + 1. ``spikes`` records each count as
    ``exact_count`` would fire it (in the first steps of a window of T).
    ``sigma_delta``: Loihi 2's sigma-delta neurons with graded messages (the QCFS network
    converted for them, :mod:`lava_retrieval.conversion.sdnn`). A layer receives its
    predecessor's message ``m`` (an analog input: the pixel current), integrates
    ``v = v_init + W . m + bias`` once, and sends ``floor(max(v, 0) / threshold)`` as one
    message, keeping the remainder: no upper limit, no saturation (a network that lowers onto
    the chip provably stays inside its 24-bit state: :mod:`lava_retrieval.loihi.sdnn_lowering`).
    One message per layer and image, T is not used, nor the network's reset (a sigma-delta
    neuron keeps its remainder; the Loihi path needs ``reset="subtract"`` anyway);
    ``spikes`` records one step, the neurons that sent a non-zero message.
Readouts (of the embedding layer, after the last step; ``exact_count``, ``graded``: after its
firing; ``sigma_delta``: ``spike_count`` is the message, ``integrated`` the sum ``W . m + bias``)
    ``membrane`` (the paper's): the potentials; ``spike_count``: spikes per neuron;
    ``integrated``: ``spike_count x threshold + membrane - v_init``, all the input the neuron
    integrated in the window (exact with soft reset and no saturation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.config import check_readout, check_timing
from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.neuron import UNSATURATED, if_step, input_current, integrate
from lava_retrieval.snn.synapse import SynapticOp


@dataclass
class SimResult:
    """What a simulation returns, per layer, for a batch of N images.

    Attributes
    ----------
    spike_counts : list of numpy.ndarray (int32)
        Spikes of each neuron over the presentation, shape (N, *layer.output_shape) (None for
        a layer that was not asked for).
    membrane : list of numpy.ndarray (int64)
        Membrane potentials after the last step (likewise).
    spikes : list of numpy.ndarray (bool) or None
        (T, N, *shape) spike trains when ``record_spikes`` was set.

    The torch engine fills one with torch tensors and converts them before it returns (hence
    the lists' items are typed ``Any``).
    """

    spike_counts: list[Any]
    membrane: list[Any]
    spikes: list[Any] | None = None


@dataclass
class _Run:
    """What a simulation's passes share: per layer its synaptic operator, neuron parameters,
    bias, potentials, counts and spike trains; the input current; T."""

    ops: list
    params: list
    biases: list
    v: list
    counts: list
    trains: list
    current: np.ndarray
    analog: bool
    time_steps: int


def _sigma_delta(run: _Run) -> None:
    """``sigma_delta``: each layer sends ``floor(relu(v) / threshold)`` once, keeps the rest."""
    message, silent = run.current, np.zeros(run.current.shape, bool)
    for i in range(len(run.v)):
        if i == 0 and run.analog:  # no neurons: the pixel current is the message
            run.trains[0] = [silent]
            continue
        a_in = np.rint(run.ops[i](message)).astype(np.int64) if i else run.current
        run.v[i] = run.v[i] + a_in + run.biases[i]
        run.counts[i] = np.maximum(run.v[i], 0) // run.params[i].threshold
        run.v[i] = run.v[i] - run.counts[i] * run.params[i].threshold
        message = run.counts[i]
        run.trains[i] = [run.counts[i] > 0]


def _two_phase(run: _Run, graded: bool) -> None:
    """``exact_count`` (each layer integrates T steps of its input, then fires T) and
    ``graded`` (the same, the input sent as one message of counts)."""
    T, current, ops = run.time_steps, run.current, run.ops
    for i in range(len(run.v)):
        if i == 0 and run.analog:  # no neurons: the current is sent as it is
            run.trains[0] = [np.zeros(current.shape, bool)] * T
            continue
        if graded:  # one message: the predecessor's count
            if i == 1 and run.analog:
                a_in = np.rint(ops[1](T * current)).astype(np.int64)
            elif i:
                a_in = np.rint(ops[i](run.counts[i - 1])).astype(np.int64)
            else:
                a_in = T * current
            run.v[i] = integrate(run.v[i], a_in, T * run.biases[i], run.params[i])
        else:
            inputs = run.trains[i - 1] if i else [current] * T
            if i == 1 and run.analog:
                inputs = [current] * T
            for k in range(T):  # integrate, not firing
                a_in = np.rint(ops[i](inputs[k])).astype(np.int64) if i else inputs[k]
                run.v[i] = integrate(run.v[i], a_in, run.biases[i], run.params[i])
        for _ in range(T):  # fire, no input
            run.v[i], spikes = if_step(run.v[i], 0, 0, run.params[i])
            run.counts[i] += spikes
            run.trains[i].append(spikes)


def _stepped(run: _Run, delay: bool, record_spikes: bool) -> None:
    """``delay`` (a layer sees the step before's spikes) and ``no_delay``/``pipelined`` (the
    same step's), one step at a time."""
    previous = [np.zeros(x.shape, bool) for x in run.v]
    silent = np.zeros(run.current.shape, bool)
    for _ in range(run.time_steps):
        now = []
        for i in range(len(run.v)):
            if i == 0 and run.analog:  # the current itself, as the input layer's output
                now.append(run.current)
                if record_spikes:
                    run.trains[0].append(silent)
                continue
            if i == 0:
                a_in = run.current
            else:
                source = previous[i - 1] if delay else now[i - 1]
                a_in = np.rint(run.ops[i](source)).astype(np.int64)
            run.v[i], spikes = if_step(run.v[i], a_in, run.biases[i], run.params[i])
            run.counts[i] += spikes
            now.append(spikes)
            if record_spikes:
                run.trains[i].append(spikes)
        previous = now


def simulate_reference(
    network: SpikingNetwork,
    images: np.ndarray,
    time_steps: int,
    timing: str = "delay",
    *,
    record_spikes: bool = False,
    saturate: bool = True,
) -> SimResult:
    """Simulate ``network`` step by step: the definition every engine is held to.

    Parameters
    ----------
    network : SpikingNetwork
    images : numpy.ndarray
        (N, H, W) uint8 or float in [0, 1], H x W the input layer's map.
    time_steps : int
        Steps per image (T >= 1).
    timing : {"delay", "no_delay", "pipelined", "exact_count", "graded"}
    record_spikes : bool
        Also return every layer's (T, N, *shape) spike train.
    saturate : bool
        ``False`` lifts the 24-bit saturation (the semantics of the floating-point Lava
        models, which equal the network's wherever no potential reaches the bound).

    Returns
    -------
    SimResult
        Every layer's spike counts (int32) and final potentials (int64).

    >>> result = simulate_reference(net, images[:2], 16)
    >>> readout_of(net, result, "membrane").shape
    (2, 1024)
    """
    check_timing(timing)
    if time_steps < 1:
        raise LavaRetrievalError(f"time_steps must be >= 1, got {time_steps}")
    layers = network.layers
    images = np.asarray(images)
    n = len(images)
    ops = [None] + [SynapticOp(layer) for layer in layers[1:]]
    params = [network.neuron(i) for i in range(len(layers))]
    if not saturate:
        params = [replace(p, v_max=UNSATURATED) for p in params]
    biases = [
        0
        if layer.bias is None
        else layer.bias.astype(np.int64).reshape((1, -1) + (1,) * (len(layer.output_shape) - 1))
        for layer in layers
    ]
    v = [np.full((n, *x.output_shape), params[i].v_init, np.int64) for i, x in enumerate(layers)]
    counts = [np.zeros_like(x) for x in v]
    trains: list[list[np.ndarray]] = [[] for _ in layers]
    current = input_current(images, layers[0].param_scale).reshape(n, *layers[0].output_shape)
    analog = network.analog_input
    run = _Run(ops, params, biases, v, counts, trains, current, analog, time_steps)
    if timing == "sigma_delta":
        _sigma_delta(run)
    elif timing in ("exact_count", "graded"):
        _two_phase(run, graded=timing == "graded")
    else:
        _stepped(run, delay=timing == "delay", record_spikes=record_spikes)
    return SimResult(
        spike_counts=[c.astype(np.int32) for c in counts],
        membrane=v,
        spikes=[np.stack(t) for t in trains] if record_spikes else None,
    )


def readout_of(network: SpikingNetwork, result: SimResult, kind: str = "membrane") -> np.ndarray:
    """The (N, D) embedding of a simulation: ``membrane``, ``spike_count`` or ``integrated``.

    >>> readout_of(net, simulate_reference(net, images[:2], 16), "integrated").shape
    (2, 1024)
    """
    check_readout(kind)
    i = network.embedding_layer
    n = len(result.membrane[i])
    if kind == "membrane":
        out = result.membrane[i]
    elif kind == "spike_count":
        out = result.spike_counts[i]
    else:
        params = network.neuron(i)
        out = result.spike_counts[i].astype(np.int64) * params.threshold
        out = out + result.membrane[i] - params.v_init
    return out.reshape(n, -1)
