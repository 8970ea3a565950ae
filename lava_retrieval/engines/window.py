"""The two-phase timings in closed form, one matrix product per layer (behind the ``events``
engine).

Under the ``exact_count`` timing every layer integrates T steps without firing, then fires T
steps with no input; under ``graded`` it integrates its predecessor's whole window in one step.
With no input, firing is closed-form: soft reset spikes ``floor(v / threshold)`` times (at most
T) in the first steps of the window, zero reset once. So a layer's whole window is determined by
its predecessor's spike *counts*:

* its potential before firing is ``v_init + T x bias + W . counts`` (for an analog input's first
  synapse layer ``W . current`` takes the place of ``W . counts / T`` every step),
* saturated at ``+-v_max``: under ``graded`` once (one step), which the formula takes as it is;
  under ``exact_count`` after every step. There the formula holds exactly when no running sum
  leaves the bounds, which is certain where ``v_init + T max(bias, 0) + W+ . counts <= v_max``
  and ``v_init + T min(bias, 0) - W- . counts >= -v_max`` (``W+``, ``W-``: the positive and
  negative parts of the weights, from a second product with ``|W|``). A constant step input
  (an image's current, an analog input's first layer) saturates monotonically, so there the
  clipped formula is exact too.

An image for which the bound cannot be shown for some neuron is simulated step by step by the
event kernel instead (:func:`simulate_windows` says which). The products are the torch engine's
synapses over the whole batch (:class:`lava_retrieval.engines.dense._Synapses`: float32 where
every sum is an integer below 2**24, else float64, exact either way), so a layer costs one dense
product whatever its spike counts: at T = 16 the hidden layers of a converted network fire
several spikes per active neuron, and the step-by-step scatter of every spike did several times
the work. The results are those of the event kernel bit for bit (the conformance suite runs both
paths).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from lava_retrieval.common.cores import threads_for
from lava_retrieval.engines.compiled import jit, pool
from lava_retrieval.engines.dense import _Synapses
from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.neuron import input_current

TIMINGS = ("exact_count", "graded")
_FLOAT32_EXACT = 1 << 24


class Windows:
    """A network's layers prepared for :func:`simulate_windows` (built once per network)."""

    def __init__(self, network: SpikingNetwork) -> None:
        layers = network.layers
        self.params = [network.neuron(i) for i in range(len(layers))]
        self.analog = network.analog_input
        self.param_scale = layers[0].param_scale
        self.shapes = [tuple(layer.output_shape) for layer in layers]
        self.largest_pixel = int(np.ceil(abs(self.param_scale)))
        # Per layer (None for the input layer, which has no synapses).
        self.products: list[Any] = [None]
        self.magnitudes: list[Any] = [None]  # |W|, for sign-mixed weights
        self.checks = [0]
        self.biases: list[np.ndarray] = [np.zeros(1, np.int64)]
        self.worst = [0]  # the largest sum of |W| into one neuron
        for index, layer in enumerate(layers[1:], 1):
            weight = np.asarray(layer.weight, np.int64)
            self.products.append(_Synapses(layer))
            # (an analog input's first layer integrates a constant: it needs no bound)
            mixed = bool((weight > 0).any() and (weight < 0).any())
            mixed &= not (self.analog and index == 1)
            magnitude = _Synapses(replace(layer, weight=np.abs(weight))) if mixed else None
            self.magnitudes.append(magnitude)
            # How the kernel bounds the running sums: |W| . counts (1), or the input itself
            # for weights >= 0 (2) or <= 0 (3).
            self.checks.append(1 if mixed else 2 if (weight >= 0).all() else 3)
            self.worst.append(int(np.abs(weight).reshape(len(weight), -1).sum(1).max()))
            bias = np.zeros(layer.output_shape[0], np.int64)
            if layer.bias is not None:
                bias[:] = layer.bias
            self.biases.append(bias)
        # The closed forms assume a window that starts inside the saturation bounds.
        self.applicable = all(abs(p.v_init) <= p.v_max for p in self.params)

    def dtype(self, index: int, steps: int) -> torch.dtype:
        """float32 where every sum of layer ``index``'s window is an integer below 2**24."""
        params = self.params[index]
        largest = self.largest_pixel if (index <= 1 and (index == 0 or self.analog)) else 1
        worst = (self.worst[index] or 1) * largest
        bias = int(np.abs(self.biases[index]).max())
        bound = abs(params.v_init) + steps * (worst + bias) + params.v_max
        return torch.float32 if bound < _FLOAT32_EXACT else torch.float64


@jit
def _fire_kernel(
    x, bias, scale, offset, v_max, threshold, steps, reset_zero, counts, check, magnitude, unproven
):
    """One layer's window, in place (mirrors :func:`lava_retrieval.snn.neuron.if_step` with no
    input, in closed form: a compiled copy for speed, held to the spec by the conformance
    suite): ``x`` (N, C, S) holds each neuron's integrated input;
    its potential before firing is ``(x + bias[c]) * scale + offset``, saturated at
    ``+-v_max``. T steps of firing with no input follow, in closed form (soft reset: ``floor(v /
    threshold)`` spikes, at most T; zero reset: one). ``x`` becomes the final potentials and
    ``counts`` the spike counts. Integer arithmetic (``x`` holds exact integers).

    ``check`` (a layer that integrates spikes step by step): flag in ``unproven`` the images
    where a running sum might have left the bounds: ``offset + max(bias, 0) + W+ . counts >
    v_max`` or ``offset + min(bias, 0) - W- . counts < -v_max``, the parts from ``x = W .
    counts`` and ``magnitude = |W| . counts`` (``check`` 1); for weights of one sign ``|x|``
    (2: positive, 3: negative)."""
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            b = bias[c]
            top, bottom = v_max - offset - max(b, 0), -v_max - offset - min(b, 0)
            for j in range(x.shape[2]):
                signed = np.int64(x[n, c, j])
                if check:
                    if check == 1:
                        total = np.int64(magnitude[n, c, j])
                    else:
                        total = signed if check == 2 else -signed
                    if (total + signed) // 2 > top or bottom > -((total - signed) // 2):
                        unproven[n] = True
                v = (signed + b) * scale + offset
                v = min(max(v, -v_max), v_max)
                if reset_zero:
                    spikes = 1 if v >= threshold else 0
                    v = 0 if spikes else v
                else:
                    spikes = min(max(v // threshold, 0), steps)
                    v -= spikes * threshold
                x[n, c, j] = v
                counts[n, c, j] = spikes


def _fire(x, bias, scale, offset, params, steps, check=0, magnitude=None, unproven=None):
    """:func:`_fire_kernel` on ``x`` (N, ...) torch, its images shared among the threads;
    returns the counts (``x`` becomes the potentials)."""
    counts = torch.empty_like(x)
    cube = x.numpy().reshape(len(x), len(bias), -1)
    out = counts.numpy().reshape(cube.shape)
    sizes = magnitude.numpy().reshape(cube.shape) if magnitude is not None else cube[:, :1, :1]
    flags = unproven if unproven is not None else np.zeros(len(x), bool)
    workers = min(threads_for(None), len(x))
    bounds = [len(x) * part // workers for part in range(workers + 1)]

    def run(part: int) -> None:
        lo, hi = bounds[part], bounds[part + 1]
        _fire_kernel(
            cube[lo:hi],
            bias,
            scale,
            offset,
            params.v_max,
            params.threshold,
            steps,
            params.reset == "zero",
            out[lo:hi],
            check,
            sizes[lo:hi] if magnitude is not None else sizes,
            flags[lo:hi],
        )

    list(pool(workers).map(run, range(workers)))
    return counts


def simulate_windows(
    windows: Windows,
    images: np.ndarray,
    time_steps: int,
    timing: str,
    layers: tuple[int, ...] | None = None,
) -> tuple[list[np.ndarray | None], list[np.ndarray | None], np.ndarray]:
    """The final potentials and spike counts (N, *shape) int32 of the layers asked for (all by
    default; None for the others) under ``timing`` (``exact_count`` or ``graded``), and a bool
    (N,) mask of the images whose results are not proven exact (``exact_count`` only: some
    running sum may have saturated); those must be simulated step by step instead."""
    keep = set(range(len(windows.params)) if layers is None else layers)
    n, steps = len(images), time_steps
    graded = timing == "graded"
    pixels = input_current(images, windows.param_scale).reshape(n, *windows.shapes[0])
    membrane, spikes = [], []
    unproven = np.zeros(n, bool)
    counts: Any = None
    drive: Any = None
    with torch.no_grad():
        for index, params in enumerate(windows.params):
            v_init, bias = params.v_init, windows.biases[index]
            dtype = windows.dtype(index, steps)
            if index == 0:
                drive = torch.from_numpy(pixels).to(dtype)
                if windows.analog:  # no neurons: the current goes on as it is
                    kept = 0 in keep
                    membrane.append(np.full(pixels.shape, v_init, np.int32) if kept else None)
                    spikes.append(np.zeros(pixels.shape, np.int32) if kept else None)
                    continue
            check, magnitude = 0, None
            if index == 0:  # the pixel current every step: saturation is monotone
                x, scale = drive.clone(), steps
            elif index == 1 and windows.analog:  # its synaptic input, as constant
                x, scale = windows.products[1](drive, dtype), steps
            else:
                counts = counts.to(dtype)
                x, scale, bias = windows.products[index](counts, dtype), 1, bias * steps
                if not graded:  # prove that no running sum of the window saturates
                    check = windows.checks[index]
                    magnitude = windows.magnitudes[index]
                    if magnitude is not None:
                        magnitude = magnitude(counts, dtype).contiguous()
            x = x.contiguous()
            counts = _fire(x, bias, scale, v_init, params, steps, check, magnitude, unproven)
            kept = index in keep
            membrane.append(x.numpy().astype(np.int32) if kept else None)
            spikes.append(counts.numpy().astype(np.int32) if kept else None)
    return membrane, spikes, unproven
