"""The integrate-and-fire neuron in integer arithmetic: the single reference step function.

One step of a layer of non-leaky integrate-and-fire neurons::

    v[t] = sat24(v[t-1] + a_in[t] + bias)
    s[t] = v[t] >= threshold
    v[t] = v[t] - threshold * s[t]    (reset "subtract": soft reset, the paper's neuron)
    v[t] = 0 where s[t]               (reset "zero": hard reset, Lava's built-in LIF)

``a_in`` is the integer synaptic input (sum of the weights of the presynaptic neurons that spiked).
Units: Lava's fixed-point LIF keeps ``v`` in a 24-bit register and shifts inputs, biases and the
threshold left by 6 bits (``a_in << 6``, ``bias_mant << 6``, ``vth << 6``); in the integer units
used here that register holds +-(2**23 - 1) / 64, so ``sat24`` saturates at +-(2**17 - 1) and the
spikes and resets are exactly those of Lava's LIF (for hard reset). The threshold comparison
``v >= threshold`` is Lava's ``v > vth`` with ``vth = threshold - 1``.

Every simulator and ProcessModel of the project agrees with :func:`if_step` bit for bit.
"""

from __future__ import annotations

import numpy as np

V_BITS = 24
FRACTION_BITS = 6
V_MAX = (1 << (V_BITS - 1 - FRACTION_BITS)) - 1
RESET_MODES = ("subtract", "zero")


def if_step(
    v: np.ndarray,
    a_in: np.ndarray,
    bias: np.ndarray | int,
    threshold: int,
    reset: str = "subtract",
) -> tuple[np.ndarray, np.ndarray]:
    """Advance integer membrane potentials by one time step.

    Parameters
    ----------
    v : numpy.ndarray of int
        Membrane potentials after the previous step.
    a_in : numpy.ndarray of int
        Synaptic input of this step, broadcastable to ``v``.
    bias : int or numpy.ndarray of int
        Constant input current, broadcastable to ``v``.
    threshold : int
        Firing threshold, at least 1.
    reset : {"subtract", "zero"}
        Soft reset (subtract the threshold) or hard reset (to zero).

    Returns
    -------
    (v, spikes)
        New potentials (int64) and boolean spikes.

    >>> v, s = if_step(np.array([0, 5, 9]), np.array([3, 3, 3]), 0, threshold=8)
    >>> v.tolist(), s.tolist()
    ([3, 0, 4], [False, True, True])
    >>> if_step(np.array([9]), np.array([3]), 0, threshold=8, reset="zero")[0].tolist()
    [0]
    """
    v = np.clip(np.asarray(v, np.int64) + a_in + bias, -V_MAX, V_MAX)
    spikes = v >= threshold
    if reset == "subtract":
        v = v - threshold * spikes
    elif reset == "zero":
        v = np.where(spikes, 0, v)
    else:
        raise ValueError(f"reset must be one of {RESET_MODES}, got {reset!r}")
    return v, spikes


def input_current(images: np.ndarray, param_scale: float) -> np.ndarray:
    """Integer input current ``round(pixel * param_scale)`` of uint8 or [0, 1] float images.

    >>> input_current(np.array([[0, 128, 255]], np.uint8), 255.0).tolist()
    [[0, 128, 255]]
    """
    images = np.asarray(images)
    pixels = images / 255.0 if images.dtype == np.uint8 else images.astype(np.float64)
    return np.rint(pixels * param_scale).astype(np.int64)
