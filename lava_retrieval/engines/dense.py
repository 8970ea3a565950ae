"""The torch engine: dense, layer by layer (behind :func:`lava_retrieval.engines.sim.simulate`).

The network is feed-forward, so a layer's whole spike train depends only on the previous
layer's whole spike train. This engine goes layer by layer, not step by step: one convolution
over all T x B spike maps of the previous layer (all-silent leading steps are skipped), then the
T-step neuron recurrence in place. Arithmetic is float32 holding integers: exact because every
synaptic sum and potential is an integer below 2**24 (checked per layer; float64 otherwise).

Most neurons never reach threshold: while a neuron has not fired, its potential is the running
sum U_t of its input, so one cumulative sum finds every neuron whose U_t stays below its
threshold and inside the saturation bounds; those never spike and end at U_T. Only the others
run the step-by-step recurrence of :func:`lava_retrieval.snn.neuron.if_step`.

It is held to :func:`lava_retrieval.snn.reference.simulate_reference` by the conformance suite.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import NeuronParams, input_current
from lava_retrieval.snn.reference import SimResult

_FLOAT32_EXACT = 1 << 24


class _Synapses:
    """One layer's weights as a torch op over (N, C, H, W) maps, exact in its dtype."""

    def __init__(self, layer: SpikingLayer, device: str = "cpu") -> None:
        weight = np.asarray(layer.weight, dtype=np.int64)
        self.dtype = torch.float32 if layer.max_input < _FLOAT32_EXACT else torch.float64
        self.layer = layer
        self.weight = torch.from_numpy(weight).to(device=device, dtype=self.dtype)
        self.bias = None
        if layer.bias is not None:
            view = (-1,) + (1,) * (len(layer.output_shape) - 1)
            bias = torch.from_numpy(layer.bias.astype(np.float64))
            self.bias = bias.to(device=device, dtype=self.dtype).view(*view)
        self.pool = (
            layer.kind == "pool"
            and layer.stride == layer.synapses.shape[-1]
            and layer.padding == 0
            and bool((weight == weight.flat[0]).all())
        )

    def __call__(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The synaptic input of spikes (or, with ``dtype`` float64, of counts) ``x``."""
        layer = self.layer
        dtype = dtype or self.dtype
        x = x.to(dtype)
        weight = self.weight.to(dtype)
        if layer.kind == "dense":
            return x.flatten(1) @ weight.T
        if self.pool:
            # Equal weights, non-overlapping windows: a sum pool (no division, so exact for
            # any k) times the weight.
            return F.avg_pool2d(x, layer.stride, divisor_override=1) * float(layer.synapses.flat[0])
        return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding, groups=layer.groups)


def _running_sums(inputs: torch.Tensor, bias: torch.Tensor | None, v_init: int) -> torch.Tensor:
    """U_t = v_init + the sum of the inputs and the bias of steps 0..t, in place in ``inputs``
    (T, N, ...) where float32 holds every sum exactly, else in a float64 copy."""
    u = inputs
    if bias is not None:
        u.add_(bias)
    if v_init:
        # The window's initial potential, as if it were input before the first step.
        u[0].add_(v_init)
    if u.dtype == torch.float32:
        # The running sums stay exact in float32 only below 2**24.
        largest = max(float(u.amax()), -float(u.amin()))
        if len(u) * largest >= _FLOAT32_EXACT:
            u = u.double()
    for t in range(1, len(u)):
        u[t].add_(u[t - 1])
    return u


def _fire(
    inputs: torch.Tensor, bias: torch.Tensor | None, params: NeuronParams, silent: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Run the neurons over all T steps; ``inputs`` (T, N, ...) is used as scratch space.

    Steps before ``silent`` carry no synaptic input (their rows of ``inputs`` are ignored). The
    potentials start at ``params.v_init``. Most
    neurons never reach threshold: while a neuron has not fired, its potential is the running
    sum U_t of its input, so one cumulative sum finds every neuron whose U_t stays below
    threshold (and above the saturation bound); those never spike and end at U_T. Only the
    others run the exact step-by-step recurrence of :func:`lava_retrieval.snn.neuron.if_step`.

    Returns (spikes (T, N, ...) as 0/1 in the inputs' dtype, final potentials, spike counts,
    first step with a spike (T if none)).
    """
    steps = len(inputs)
    inputs[:silent] = 0
    u = _running_sums(inputs, bias, params.v_init)
    # Mirrors lava_retrieval.snn.neuron.if_step (a copy for speed, held to the spec by the
    # conformance suite). A neuron leaves the shortcut when its running sum reaches the
    # threshold or either saturation bound (with a threshold above v_max, saturation happens
    # without a spike).
    threshold, v_max = params.threshold, params.v_max
    highest = u.amax(0)
    may_fire = (highest >= threshold) | (highest > v_max) | (u.amin(0) < -v_max)
    v = u[-1].clone()
    counts = torch.zeros_like(v)
    idx = may_fire.flatten().nonzero().squeeze(1)
    flat = u.view(steps, -1)
    if len(idx):
        running = flat.index_select(1, idx)  # U_t of the neurons that may fire
        current = torch.diff(running, dim=0, prepend=torch.zeros_like(running[:1]))
        fired = torch.empty(len(idx), dtype=torch.bool, device=running.device)
        vs = torch.zeros_like(running[0])
        spikes_sub = running  # reuse: row t is overwritten after current[t] was read
        for t in range(steps):
            vs.add_(current[t])
            vs.clamp_(-v_max, v_max)
            torch.ge(vs, threshold, out=fired)
            spikes_sub[t].copy_(fired)
            if params.reset == "subtract":
                vs.sub_(spikes_sub[t], alpha=threshold)
            else:
                vs.masked_fill_(fired, 0)
        v.view(-1)[idx] = vs
        counts.view(-1)[idx] = spikes_sub.sum(0)
        active = spikes_sub.any(1).nonzero()
        first = int(active[0]) if len(active) else steps
        u.zero_()
        flat.index_copy_(1, idx, spikes_sub)
    else:
        u.zero_()
        first = steps
    return u, v, counts, first


def _integrate_then_fire(
    inputs: torch.Tensor, bias: torch.Tensor | None, params: NeuronParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``exact_count`` timing's two phases for one layer: integrate ``inputs`` (T, N, ...,
    used as scratch space) and the bias for T steps without firing, then fire T steps with no
    input. Where the running sum stays inside the saturation bounds (nearly always) the
    potential is that sum; elsewhere the clipped recurrence runs step by step. With no input
    the firing is closed-form: soft reset spikes ``floor(v / threshold)`` times (at most T),
    in the first steps; zero reset once. Returns (spikes (T, N, ...) 0/1, potentials,
    counts)."""
    steps, v_max = len(inputs), params.v_max
    u = _running_sums(inputs, bias, params.v_init)
    v = u[-1].clone()
    outside = (u.amax(0) > v_max) | (u.amin(0) < -v_max)
    idx = outside.flatten().nonzero().squeeze(1)
    if len(idx):
        running = u.view(steps, -1).index_select(1, idx)
        current = torch.diff(running, dim=0, prepend=torch.zeros_like(running[:1]))
        current[0].sub_(params.v_init)
        vs = torch.full_like(running[0], params.v_init)
        for t in range(steps):
            vs.add_(current[t]).clamp_(-v_max, v_max)
        v.view(-1)[idx] = vs
    counts = _fire_without_input(v, params, steps)
    order = torch.arange(steps, device=v.device, dtype=v.dtype).view(-1, *([1] * v.dim()))
    return (counts.unsqueeze(0) > order).to(inputs.dtype), v, counts


def _fire_without_input(v: torch.Tensor, params: NeuronParams, steps: int) -> torch.Tensor:
    """``steps`` steps of firing with no input, in closed form: soft reset spikes ``floor(v /
    threshold)`` times (at most ``steps``), zero reset once. Updates ``v``; returns the counts.
    Mirrors ``steps`` calls of :func:`lava_retrieval.snn.neuron.if_step` with no input (a copy
    for speed, held to the spec by the conformance suite)."""
    threshold = params.threshold
    if params.reset == "subtract":
        counts = torch.div(v, threshold, rounding_mode="floor").clamp_(0, steps)
        v.sub_(counts * threshold)
    else:
        counts = (v >= threshold).to(v.dtype)
        v.masked_fill_(counts.bool(), 0)
    return counts


def _simulate_sigma_delta(prepared: Prepared, images: np.ndarray, record: bool):
    """Sigma-delta neurons: each layer integrates its predecessor's message through its
    synapses and its bias once and sends ``floor(max(v, 0) / threshold)``, in float64 (exact
    integers: a network's sums stay far below 2**53). Mirrors the ``sigma_delta`` pass of
    :func:`lava_retrieval.snn.reference.simulate_reference`."""
    layers, synapses, params = prepared.layers, prepared.synapses, prepared.params
    message = torch.from_numpy(
        input_current(images, layers[0].param_scale).astype(np.float64)[:, None]
    ).to(prepared.device)
    result = SimResult([], [], [] if record else None)
    for index in range(len(layers)):
        syn = synapses[index]
        if index == 0 and prepared.analog:  # no neurons: the pixel current is the message
            silent, v = _silent_input(prepared, message.cpu().numpy(), 1, record)
            _keep(result, silent, v, torch.zeros_like(v))
            continue
        total = syn(message, torch.float64) if index else message.clone()
        if index and syn.bias is not None:
            total = total + syn.bias.to(torch.float64)
        neuron = params[index]
        v = total + neuron.v_init
        counts = torch.div(v.clamp(min=0), neuron.threshold, rounding_mode="floor")
        v.sub_(counts * neuron.threshold)
        _keep(result, (counts > 0).unsqueeze(0), v, counts)
        message = counts
    return result


def _simulate_graded(prepared: Prepared, images: np.ndarray, levels: int, record: bool):
    """Graded spikes: each layer integrates its predecessor's counts through its synapses and
    ``levels`` x its bias in one step, then fires without input (closed form)."""
    layers, synapses, params = prepared.layers, prepared.synapses, prepared.params
    current = input_current(images, layers[0].param_scale).astype(np.float64)[:, None]
    result = SimResult([], [], [] if record else None)
    counts = None
    for index in range(len(layers)):
        syn = synapses[index]
        if index == 0 and prepared.analog:  # no neurons: the current goes on as it is
            silent, v = _silent_input(prepared, current, levels, record)
            _keep(result, silent, v, torch.zeros_like(v))
            counts = torch.from_numpy(levels * current).to(prepared.device)
            continue
        if index == 0:
            total = torch.from_numpy(levels * current).to(prepared.device)
        else:  # counts up to T times the weights: float64 holds them exactly
            total = syn(counts, torch.float64)
        if index and syn.bias is not None:
            total = total + levels * syn.bias.to(torch.float64)
        neuron = params[index]
        v = (total + neuron.v_init).clamp_(-neuron.v_max, neuron.v_max)
        counts = _fire_without_input(v, neuron, levels)
        result.spike_counts.append(counts)
        result.membrane.append(v)
        if result.spikes is not None:  # (recorded)
            order = torch.arange(levels, device=v.device, dtype=v.dtype)
            result.spikes.append(counts.unsqueeze(0) > order.view(-1, *([1] * v.dim())))
    return result


def _silent_input(
    prepared: Prepared, current: np.ndarray, time_steps: int, record: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """An analog input layer's result: no spikes (their trains if ``record``), potentials at
    the initial value."""
    shape = (len(current), *prepared.layers[0].output_shape)
    v = torch.full(shape, float(prepared.params[0].v_init), device=prepared.device)
    silent = torch.zeros((time_steps, *shape), dtype=torch.bool) if record else None
    return silent, v


def _constant_input(
    prepared: Prepared, current: np.ndarray, time_steps: int, first: int
) -> torch.Tensor:
    """The first synapse layer's input (T, N, ...) from an analog input: ``W . current``,
    computed once per image, in steps ``first`` .. T - 1 (zeros before)."""
    syn, layer = prepared.synapses[1], prepared.layers[1]
    once = syn(torch.from_numpy(current.astype(np.float64)).to(prepared.device), torch.float64)
    dtype = syn.dtype if float(once.abs().amax()) < _FLOAT32_EXACT else torch.float64
    inputs = torch.zeros(
        (time_steps, len(current), *layer.output_shape), dtype=dtype, device=prepared.device
    )
    inputs[first:] = once.to(dtype)
    return inputs


def _analog_start(
    prepared: Prepared, pixels: np.ndarray, time_steps: int, first: int, record: bool
) -> tuple[SimResult, torch.Tensor]:
    """An analog input's (silent) layer as the start of a result, and the first synapse
    layer's constant input (see :func:`_constant_input`)."""
    spikes, v = _silent_input(prepared, pixels, time_steps, record)
    result = SimResult([torch.zeros_like(v)], [v], [spikes] if record else None)
    return result, _constant_input(prepared, pixels, time_steps, first)


def _keep(
    result: SimResult, spikes: torch.Tensor | None, v: torch.Tensor, counts: torch.Tensor
) -> None:
    """Append one layer's counts, potentials and (where recorded) spikes to ``result``."""
    result.spike_counts.append(counts)
    result.membrane.append(v)
    if result.spikes is not None and spikes is not None:
        result.spikes.append(spikes.bool())


def _simulate_exact_count(prepared: Prepared, images: np.ndarray, time_steps: int, record: bool):
    """Every layer integrates what its predecessor fires (see :func:`_integrate_then_fire`)."""
    layers, synapses, params = prepared.layers, prepared.synapses, prepared.params
    n = len(images)
    pixels = input_current(images, layers[0].param_scale)[:, None]
    if prepared.analog:
        result, inputs = _analog_start(prepared, pixels, time_steps, 0, record)
        spikes, v, counts = _integrate_then_fire(inputs, synapses[1].bias, params[1])
        _keep(result, spikes, v, counts)
        start = 2
    else:
        current = torch.from_numpy(pixels.astype(np.float32)).to(prepared.device)
        inputs = current.unsqueeze(0).repeat(time_steps, 1, 1, 1, 1)
        spikes, v, counts = _integrate_then_fire(inputs, None, params[0])
        result = SimResult([counts], [v], [spikes.bool()] if record else None)
        start = 1
    for index in range(start, len(layers)):
        layer, syn = layers[index], synapses[index]
        inputs = torch.zeros(
            (time_steps, n, *layer.output_shape), dtype=syn.dtype, device=prepared.device
        )
        firing = int(counts.amax())  # the steps in which the predecessor spikes at all
        if firing:
            out = syn(spikes[:firing].flatten(0, 1))
            inputs[:firing] = out.view(firing, n, *layer.output_shape)
            del out
        spikes, v, counts = _integrate_then_fire(inputs, syn.bias, params[index])
        _keep(result, spikes, v, counts)
    return result


def _simulate_chunk(
    prepared: Prepared, images: np.ndarray, time_steps: int, timing: str, record: bool
) -> SimResult:
    if timing == "exact_count":
        return _simulate_exact_count(prepared, images, time_steps, record)
    if timing == "graded":
        return _simulate_graded(prepared, images, time_steps, record)
    if timing == "sigma_delta":
        return _simulate_sigma_delta(prepared, images, record)
    layers, synapses, params = prepared.layers, prepared.synapses, prepared.params
    n = len(images)
    pixels = input_current(images, layers[0].param_scale)[:, None]
    start = 1
    if prepared.analog:
        offset = 1 if timing == "delay" else 0
        result, inputs = _analog_start(prepared, pixels, time_steps, offset, record)
        spikes, v, counts, first = _fire(inputs, synapses[1].bias, params[1], offset)
        _keep(result, spikes, v, counts)
        start = 2
    else:
        current = torch.from_numpy(pixels.astype(np.float32)).to(prepared.device)
        inputs = current.unsqueeze(0).repeat(time_steps, 1, 1, 1, 1)
        spikes, v, counts, first = _fire(inputs, None, params[0])
        result = SimResult([counts], [v], [spikes.bool()] if record else None)
    for index in range(start, len(layers)):
        layer, syn = layers[index], synapses[index]
        source = spikes[: time_steps - 1] if timing == "delay" else spikes
        offset = 1 if timing == "delay" else 0
        inputs = torch.empty(
            (time_steps, n, *layer.output_shape), dtype=syn.dtype, device=prepared.device
        )
        if first < len(source):
            out = syn(source[first:].flatten(0, 1))
            inputs[first + offset : len(source) + offset] = out.view(-1, n, *layer.output_shape)
            del out
        del source, spikes
        silent = min(first + offset, time_steps)
        spikes, v, counts, first = _fire(inputs, syn.bias, params[index], silent)
        _keep(result, spikes, v, counts)
    return result


@contextlib.contextmanager
def _exact_float32():
    """Full-precision float32 products (no reduced-precision fast paths: TF32 matrix products
    and convolutions on a GPU would round the integers, and so do cuDNN's Winograd and FFT
    convolutions, even without TF32: on a GPU convolutions run without cuDNN, as im2col and
    full-precision matrix products)."""
    previous = torch.get_float32_matmul_precision()
    previous_cudnn = torch.backends.cudnn.allow_tf32, torch.backends.cudnn.enabled
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.enabled = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.enabled = previous_cudnn


class Prepared:
    """A network's synapses as torch ops on ``device``, built once and reused for every chunk."""

    def __init__(self, network: SpikingNetwork, device: str = "cpu") -> None:
        # No reference to the network itself: it is the key of the caller's weak cache.
        self.device = torch.device(device)
        self.layers = network.layers
        self.analog = network.analog_input
        self.params = [network.neuron(i) for i in range(len(network.layers))]
        # Per layer (None for the input layer, which has no synapses).
        self.synapses: list[Any] = [None] + [
            _Synapses(layer, device) for layer in network.layers[1:]
        ]


def simulate_dense(
    prepared: Prepared, images: np.ndarray, time_steps: int, timing: str, record: bool
) -> SimResult:
    """Every layer's spike counts and final potentials (and spike trains, if ``record``) for a
    chunk of images, as CPU torch tensors holding the integers of the reference (computed on
    ``prepared.device``)."""
    with torch.no_grad(), _exact_float32():
        result = _simulate_chunk(prepared, images, time_steps, timing, record)
    if prepared.device.type != "cpu":
        result = SimResult(
            [t.cpu() for t in result.spike_counts],
            [t.cpu() for t in result.membrane],
            [t.cpu() for t in result.spikes] if result.spikes is not None else None,
        )
    return result
