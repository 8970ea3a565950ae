"""The integrate-and-fire neuron in integer arithmetic: its parameters and the one step function.

One step of a layer of non-leaky integrate-and-fire neurons::

    v[t] = sat(v[t-1] + a_in[t] + bias)          sat: clip to [-v_max, v_max]
    s[t] = v[t] >= threshold
    v[t] = v[t] - threshold * s[t]    (reset "subtract": soft reset, the paper's neuron)
    v[t] = 0 where s[t]               (reset "zero": hard reset, Lava's built-in LIF)

``a_in`` is the integer synaptic input (sum of the weights of the presynaptic neurons that spiked).
Units: Lava's fixed-point LIF keeps ``v`` in a 24-bit register and shifts inputs, biases and the
threshold left by 6 bits (``a_in << 6``, ``bias_mant << 6``, ``vth << 6``); in the integer units
used here that register holds +-(2**23 - 1) / 64, so the default ``v_max`` is 2**17 - 1 and the
spikes and resets are exactly those of Lava's LIF (for hard reset). The threshold comparison
``v >= threshold`` is Lava's ``v > vth`` with ``vth = threshold - 1``. A threshold above
``v_max`` is allowed: such a neuron never fires, and its potential saturates at ``+v_max``.

The parameters of a layer's neurons travel as one :class:`NeuronParams` record, which every
engine and ProcessModel reads; :func:`if_step` is the single definition of the step, and
:mod:`lava_retrieval.snn.reference` builds the whole network's semantics on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError

UNSATURATED = 1 << 62
"""A bound no potential reaches: ``NeuronParams(v_max=UNSATURATED)`` is the neuron without the
24-bit saturation (the floating-point Lava model, ``simulate_reference(saturate=False)``)."""

V_BITS = 24
FRACTION_BITS = 6
V_MAX = (1 << (V_BITS - 1 - FRACTION_BITS)) - 1
RESET_MODES = ("subtract", "zero")


@dataclass(frozen=True)
class NeuronParams:
    """The parameters of one layer's integrate-and-fire neurons.

    Attributes
    ----------
    threshold : int
        Firing threshold (>= 1); a neuron spikes when ``v >= threshold``.
    reset : str
        ``subtract`` (default: soft reset, the paper's neuron) or ``zero`` (hard reset, Lava's
        LIF).
    v_max : int
        Saturation bound of the membrane potential, ``+-v_max`` (default ``V_MAX`` = 2**17 - 1,
        Loihi's 24-bit register in integer units).
    v_init : int
        Membrane potential at the start of every presentation window (default 0, the paper's;
        see :func:`initial_potential`).

    >>> NeuronParams(threshold=8)
    NeuronParams(threshold=8, reset='subtract', v_max=131071, v_init=0)
    """

    threshold: int
    reset: str = "subtract"
    v_max: int = V_MAX
    v_init: int = 0

    def __post_init__(self) -> None:
        if self.reset not in RESET_MODES:
            raise LavaRetrievalError(f"reset must be one of {RESET_MODES}, got {self.reset!r}")
        if int(self.threshold) < 1 or int(self.v_max) < 1:
            raise LavaRetrievalError(
                f"threshold and v_max must be >= 1, got {self.threshold} and {self.v_max}"
            )
        object.__setattr__(self, "threshold", int(self.threshold))
        object.__setattr__(self, "v_max", int(self.v_max))
        object.__setattr__(self, "v_init", int(self.v_init))


def initial_potential(fraction: float, threshold: int) -> int:
    """The integer initial membrane potential for ``fraction`` of ``threshold``:
    ``floor(fraction * threshold)`` (0.5 is the conversion literature's choice: it centres the
    rounding error of a rate code; 0 is the paper's rest).

    >>> initial_potential(0.5, 255), initial_potential(0.0, 255)
    (127, 0)
    """
    return int(np.floor(float(fraction) * int(threshold)))


def if_step(
    v: np.ndarray,
    a_in: np.ndarray | int,
    bias: np.ndarray | int,
    params: NeuronParams,
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
    params : NeuronParams
        Threshold, reset and saturation bound.

    Returns
    -------
    (v, spikes)
        New potentials (int64) and boolean spikes.

    >>> v, s = if_step(np.array([0, 5, 9]), np.array([3, 3, 3]), 0, NeuronParams(threshold=8))
    >>> v.tolist(), s.tolist()
    ([3, 0, 4], [False, True, True])
    >>> if_step(np.array([9]), np.array([3]), 0, NeuronParams(8, reset="zero"))[0].tolist()
    [0]
    """
    v = integrate(v, a_in, bias, params)
    spikes = v >= params.threshold
    if params.reset == "subtract":
        v = v - params.threshold * spikes
    else:
        v = np.where(spikes, 0, v)
    return v, spikes


def integrate(
    v: np.ndarray, a_in: np.ndarray | int, bias: np.ndarray | int, params: NeuronParams
) -> np.ndarray:
    """The first half of :func:`if_step`: ``clip(v + a_in + bias, -v_max, v_max)`` (int64),
    without firing (a layer's integrate phase in the ``exact_count`` timing).

    >>> integrate(np.array([131070]), np.array([5]), 0, NeuronParams(threshold=8)).tolist()
    [131071]
    """
    return np.clip(np.asarray(v, np.int64) + a_in + bias, -params.v_max, params.v_max)


def input_current(images: np.ndarray, param_scale: float) -> np.ndarray:
    """Integer input current ``round(pixel * param_scale)`` of uint8 or [0, 1] float images.

    >>> input_current(np.array([[0, 128, 255]], np.uint8), 255.0).tolist()
    [[0, 128, 255]]
    """
    images = np.asarray(images)
    if images.size == 0:
        raise LavaRetrievalError("no images: the batch is empty")
    if images.dtype == np.uint8:
        pixels = images / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        pixels = images.astype(np.float64)
        lo, hi = float(pixels.min()), float(pixels.max())
        if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo and hi <= 1.0):
            raise LavaRetrievalError(
                f"float images must lie in [0, 1], found values in [{lo:g}, {hi:g}]"
            )
    else:  # an int32 copy of uint8 pixels would otherwise be read as 255 times too bright
        raise LavaRetrievalError(
            f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}"
        )
    return np.rint(pixels * param_scale).astype(np.int64)
