"""The one lowering of a :class:`~lava_retrieval.snn.network.SpikingNetwork` onto Lava's built-ins.

Lava's ``Conv``, ``Dense`` and ``LIF`` (the processes Intel's lava-loihi maps onto neurocores)
and lava-dl's netx blocks compute the converter's integer neurons exactly when the network is
given to them as this module says. The Loihi ProcessModel of ``IFLayer``
(``procs/if_layer/models.py``), the netx export (:mod:`lava_retrieval.exports.netx`), the graph
builder
(:mod:`lava_retrieval.lava_graph.graph`) and the ``convert`` command all go through it.

The mapping:

* **Threshold.** Lava spikes on ``v > vth``, the converter's neurons on ``v >= threshold``: for
  integers ``vth = threshold - 1`` (:func:`vth`). Lava shifts ``vth``, the synaptic input and the
  bias left by 6 bits (``bias_exp`` = :data:`BIAS_EXP`), so integer units carry over unchanged.
* **Current.** ``du = 4095``: Lava decays the current by ``du + 1``, so each step's synaptic
  input lasts exactly that step (netx writes ``iDecay`` = :data:`I_DECAY`). ``dv = 0``: no leak.
* **Reset.** Lava's LIF resets to zero: only networks converted with ``reset="zero"`` lower.
* **Weights.** Lava's fixed-point ``Dense`` keeps mixed-sign weights as 8-bit values (the least
  significant bit of a 9-bit weight is dropped): weights must satisfy ``|w| <=``
  :data:`MAX_WEIGHT`, and go into ``Dense`` doubled with ``weight_exp = -1``
  (:func:`dense_weights`).
* **Layout.** Lava's maps are (W, H, C), the network's (C, H, W) (:func:`to_whc`,
  :func:`whc_shape`); a dense layer's input is flattened in Lava's order, so its weight columns
  are reordered. Lava's ``Conv`` is a true convolution over (W, H, C): the kernel is flipped and
  reordered to (C_out, kW, kH, C_in) (:func:`conv_kernel`).
* **Saturation.** Lava clips ``v`` at ``+-(2**23 - 1)``, which in integer units is
  ``+-(V_MAX + 63/64)``, not the reference's ``+-V_MAX``. Spikes still agree when every
  threshold is at most ``V_MAX`` (a neuron saturated upwards fires and resets to zero in both),
  and the offset a negative saturation leaves, below one unit, is removed by rounding the
  probed ``v / 2**6`` up (:func:`membrane_from_lava`). A threshold above ``V_MAX`` would fire in
  Lava and never in the reference: refused.
* **Current register.** Lava's current ``u = a_in << 6`` wraps at 24 bits: a layer whose
  synaptic input per step can pass ``2**17 - 1`` (:data:`MAX_CURRENT`) is refused.
* **Limits of the chip.** The bias mantissa has 13 bits.
* **Initial potential.** ``LIFReset`` restarts from 0: the initial potential is a clock pulse at
  every restart (below); netx has no initial potential, so only ``initial_membrane = 0``
  exports.
* **netx** cannot load pooling layers: pooling must be folded (``pool_mode="folded"``).
* **Streaming.** One graph embeds image after image: each layer is Lava's ``LIFReset``, which
  zeroes ``u`` and ``v`` once per window of ``P = T + lead`` steps and then integrates that
  step's input (:func:`stream_lead`, :func:`reset_step`). Under ``pipelined`` the layer at
  depth d restarts d steps after the input (as netx staggers its layers): what is in flight
  at its first step is the new image's first, and what a layer sends between its windows
  reaches its successor between that one's windows. Under ``delay`` every layer restarts at
  once and the reference drops the previous image's last spikes, still in flight then; the
  window starts with one flush step (``lead = 1``) in which the encoder sends nothing and a
  clock neuron (a LIF firing once per window) inhibits every neuron by at least the most its
  input and bias can bring (:func:`flush_inhibition`), so no layer fires and nothing is in
  flight when the windows start. An initial potential is a second clock pulse of exactly
  ``v_init`` at every window's first step (``LIFReset`` restarts from 0); it needs the lead
  step under ``pipelined`` too. The pulses go through ``Dense`` synapses of single-sign 8-bit
  weights (:func:`pulse`).

:func:`problems` lists every reason a network cannot be lowered exactly, each naming the
conversion option that fixes it; :func:`config_problems` does the same for conversion settings,
before any conversion runs.
"""

from __future__ import annotations

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import FRACTION_BITS, V_MAX

MAX_WEIGHT = 127
I_DECAY = 4096
DU = I_DECAY - 1
DV = 0
BIAS_EXP = FRACTION_BITS
MAX_CURRENT = (1 << 17) - 1
MAX_BIAS = (1 << 12) - 1
V_SCALE = 1 << FRACTION_BITS
TARGETS = ("loihi", "netx")
#: The timings the streaming Loihi path runs (one restart per window and layer).
STREAM_TIMINGS = ("delay", "pipelined")
#: Largest weight of a single-sign 8-bit ``Dense`` (Lava's clip for excitatory/inhibitory).
MAX_PULSE_WEIGHT = 255
#: Largest ``weight_exp`` of a Loihi synapse.
MAX_WEIGHT_EXP = 7
_NO_POOLING = "netx cannot load pooling layers (convert with --pool-mode folded)"
_NO_INITIAL = "netx neurons start every run at 0 (convert with --initial-membrane 0)"
_NO_ANALOG = (
    "the input is analog (a graded pixel current), which Lava's LIF input layer and netx's "
    "input block cannot send (convert without --analog-input)"
)
_ZERO_RESET = (
    "Lava's LIF resets to zero, this network resets by subtraction (convert with --reset zero)"
)


class LoweringError(LavaRetrievalError):
    """The network cannot be lowered exactly onto Lava's built-ins or netx."""


def vth(threshold: int) -> int:
    """Lava's ``vth`` for the converter's threshold (``v > vth`` is ``v >= threshold``).

    >>> vth(190)
    189
    """
    return int(threshold) - 1


def whc_shape(shape: tuple[int, ...], flatten: bool = False) -> tuple[int, ...]:
    """Lava's (W, H, C) shape of a (C, H, W) shape (an (N,) shape is unchanged); ``flatten``
    gives the one-axis shape of the same neurons.

    >>> whc_shape((32, 12, 10)), whc_shape((32, 12, 10), flatten=True), whc_shape((10,))
    ((10, 12, 32), (3840,), (10,))
    """
    whc = tuple(reversed(tuple(shape)))
    return (int(np.prod(whc)),) if flatten and len(whc) > 1 else whc


def to_whc(array: np.ndarray, lead: int = 0) -> np.ndarray:
    """``(*lead axes, C, H, W)`` to ``(*lead axes, W, H, C)``: the axes after the first ``lead``
    reversed. Reversing is its own inverse, so the same call brings Lava's states back.

    >>> to_whc(np.zeros((2, 3, 4))).shape, to_whc(np.zeros((5, 2, 3, 4)), lead=1).shape
    ((4, 3, 2), (5, 4, 3, 2))
    """
    array = np.asarray(array)
    return array.transpose(*range(lead), *reversed(range(lead, array.ndim)))


from_whc = to_whc


def conv_kernel(layer: SpikingLayer) -> np.ndarray:
    """The weight of Lava's ``Conv`` for a conv layer: flipped (Lava's is a true convolution)
    and reordered from torch's (C_out, C_in, kH, kW) to (C_out, kW, kH, C_in).

    >>> conv_kernel(net.layers[3]).shape
    (64, 5, 5, 32)
    """
    return np.ascontiguousarray(layer.synapses[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def dense_weights(layer: SpikingLayer) -> tuple[np.ndarray, int]:
    """``(weights, weight_exp)`` of Lava's ``Dense`` for a dense layer: columns in the order of
    Lava's flattened (W, H, C) input, doubled with ``weight_exp = -1`` so that the dropped least
    significant bit of 8-bit mixed-sign weights is a zero.

    >>> dense_weights(net.layers[-1])[1]
    -1
    """
    weight = layer.synapses.reshape(len(layer.synapses), *_chw(layer.input_shape))
    weight = to_whc(weight, lead=1).reshape(len(layer.synapses), -1)
    return 2 * weight.astype(np.int32), -1


def lif_bias(layer: SpikingLayer) -> np.ndarray:
    """``bias_mant`` of Lava's LIF for a layer: one value per neuron in (W, H, C) order (the
    bias is per channel, the last axis), zero for layers without bias."""
    bias = np.zeros(whc_shape(layer.output_shape), np.int32)
    if layer.bias is not None:
        bias[:] = layer.bias.astype(np.int32)
    return bias


def stream_lead(timing: str, v_inits) -> int:
    """Steps before each image in a window of the streaming Loihi path: one flush step under
    ``delay``, or where any layer starts from an initial potential (its pulse needs a step
    before the window); none otherwise.

    >>> [stream_lead(timing, [0, 0]) for timing in ("delay", "pipelined")]
    [1, 0]
    >>> stream_lead("pipelined", [0, 5])
    1
    """
    return int(timing == "delay" or any(int(v) != 0 for v in v_inits))


def timing_problems(timing: str) -> list[str]:
    """Why the streaming Loihi path cannot run ``timing`` (empty when it can).

    >>> timing_problems("pipelined"), len(timing_problems("graded"))
    ([], 1)
    """
    if timing in STREAM_TIMINGS:
        return []
    return [
        "Lava's LIFReset restarts each layer once per window: the Loihi backends run the "
        f"timings {' and '.join(STREAM_TIMINGS)}, not {timing}"
    ]


def reset_step(timing: str, time_steps: int, lead: int, depth: int) -> int:
    """The first step (Lava counts from 1) of the first window of the layer at ``depth``:
    after the lead, and under ``pipelined`` ``depth`` steps later. ``LIFReset`` restarts the
    layer at every step congruent to it modulo ``time_steps + lead``.

    >>> reset_step("delay", 8, 1, 3), reset_step("pipelined", 8, 0, 3)
    (2, 4)
    """
    return 1 + lead + (depth if timing == "pipelined" else 0)


def flush_inhibition(layer: SpikingLayer) -> np.ndarray:
    """What keeps a neuron of ``layer`` from firing in a flush step whatever it holds: the most
    its synaptic input can bring (the sum of its positive weights) plus its positive bias, per
    output channel (per neuron for a dense layer). A neuron below its threshold stays below it.
    The input layer receives nothing in a flush step: its bias alone.
    """
    bias = (
        np.zeros(layer.output_shape[0], np.int64)
        if layer.bias is None
        else layer.bias.astype(np.int64)
    )
    if layer.weight is None:
        return np.maximum(bias, 0)
    w = layer.weight.reshape(len(layer.weight), -1).astype(np.int64)
    return np.clip(w, 0, None).sum(1) + np.maximum(bias, 0)


def pulse(amounts: np.ndarray, exact: bool) -> tuple[np.ndarray, int]:
    """``(weights, weight_exp)`` of a ``Dense`` that turns one spike of each of K clock neurons
    into ``amounts`` (one row per neuron, non-negative): 8-bit columns of at most
    :data:`MAX_PULSE_WEIGHT` summing to it, at ``weight_exp`` 0 when ``exact``; otherwise at
    the smallest exponent (up to :data:`MAX_WEIGHT_EXP`) that needs few columns, delivering at
    least ``amounts`` (``weights.sum(1) << weight_exp >= amounts``).

    >>> w, e = pulse(np.array([300, 10]), exact=True); w.tolist(), e
    ([[255, 45], [10, 0]], 0)
    >>> w, e = pulse(np.array([100_000]), exact=False); int(w.sum()) << e, e
    (100096, 7)
    """
    amounts = np.asarray(amounts, np.int64)
    top = int(amounts.max()) if amounts.size else 0
    exp = 0
    if not exact:
        while exp < MAX_WEIGHT_EXP and top > MAX_PULSE_WEIGHT << exp:
            exp += 1
    units = -(-amounts // (1 << exp))
    columns = max(1, -(-int(units.max(initial=0)) // MAX_PULSE_WEIGHT))
    steps = MAX_PULSE_WEIGHT * np.arange(columns)
    return np.clip(units[:, None] - steps, 0, MAX_PULSE_WEIGHT).astype(np.int32), exp


def stream_problems(network: SpikingNetwork, timing: str) -> list[str]:
    """Why the streaming Loihi path cannot run ``network`` under ``timing`` although each layer
    lowers: a pulse that, added to a layer's synaptic input in the same step, would wrap the
    current register (``delay``: the flush inhibition with the most negative input; an initial
    potential under ``pipelined``: its pulse with the largest input, both at the restart).
    """
    wrapping = []
    for depth, layer in enumerate(network.layers):
        if layer.weight is None:  # pixel currents (none in a flush step)
            positive = np.full(layer.output_shape[0], max_current(layer), np.int64)
            negative = np.zeros_like(positive)
        else:
            w = layer.weight.reshape(len(layer.weight), -1).astype(np.int64)
            positive, negative = np.clip(w, 0, None).sum(1), np.clip(-w, 0, None).sum(1)
        if timing == "delay":
            weights, exp = pulse(flush_inhibition(layer), exact=False)
            total = (weights.astype(np.int64).sum(1) << exp) + negative
        elif timing == "pipelined":
            total = positive + abs(int(network.neuron(depth).v_init))
        else:
            continue
        if int(total.max(initial=0)) > MAX_CURRENT:
            wrapping.append(layer.name)
    if not wrapping:
        return []
    what = (
        "the flush step's inhibition and the most negative synaptic input"
        if timing == "delay"
        else "the initial potential's pulse and the largest synaptic input"
    )
    fix = "run the pipelined timing" if timing == "delay" else "convert with --initial-membrane 0"
    return [
        f"{', '.join(wrapping)}: {what} together can pass {MAX_CURRENT}, which wraps Lava's "
        f"24-bit current register ({fix})"
    ]


def _chw(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape) if len(shape) == 3 else (int(np.prod(shape)),)


def config_problems(
    target: str,
    *,
    pool_mode: str,
    reset: str,
    weight_bits: int,
    initial_membrane: float = 0.0,
    analog_input: bool = False,
) -> list[str]:
    """What conversion settings would make a network that ``target`` cannot run exactly.

    >>> config_problems("netx", pool_mode="separate", reset="subtract", weight_bits=9)[0]
    'netx cannot load pooling layers (convert with --pool-mode folded)'
    """
    _check_target(target)
    problems = []
    if target == "netx" and pool_mode != "folded":
        problems.append(_NO_POOLING)
    if target == "netx" and initial_membrane:
        problems.append(_NO_INITIAL)
    if analog_input:
        problems.append(_NO_ANALOG)
    if reset != "zero":
        problems.append(_ZERO_RESET)
    if weight_bits > 8:
        problems.append(
            f"{weight_bits}-bit weights: Lava's 8-bit synapses hold |w| <= {MAX_WEIGHT} "
            "exactly (convert with --weight-bits 8)"
        )
    return problems


def problems(network: SpikingNetwork, target: str = "loihi") -> list[str]:
    """Every reason ``network`` cannot be lowered exactly onto ``target`` (``loihi``: Lava's
    Conv/Dense/LIFReset; ``netx``: a netx hdf5 file); empty when it can.

    >>> len(problems(net, "netx"))
    3
    """
    _check_target(target)
    found = []
    if target == "netx" and (
        network.pool_mode != "folded" or any(layer.kind == "pool" for layer in network.layers)
    ):
        found.append(_NO_POOLING)
    if target == "netx" and network.initial_membrane:
        found.append(_NO_INITIAL)
    if network.analog_input:
        found.append(_NO_ANALOG)
    return found + _neuron_problems(network.layers, network.reset)


def check(network: SpikingNetwork, target: str = "loihi") -> None:
    """Raise :class:`LoweringError` with every problem :func:`problems` finds, in one message."""
    _raise(problems(network, target), target)


def check_layer(layer: SpikingLayer, reset: str) -> None:
    """Raise :class:`LoweringError` if one layer (with the network's reset) cannot be lowered
    onto Lava's Conv/Dense/LIFReset exactly."""
    _raise(_neuron_problems((layer,), reset), "loihi")


def _raise(found: list[str], target: str) -> None:
    if found:
        raise LoweringError(f"cannot lower to {target} exactly: " + "; ".join(found))


def _neuron_problems(layers: tuple[SpikingLayer, ...], reset: str) -> list[str]:
    """What the layers' neurons and synapses have that Lava's built-ins cannot hold."""
    found = []
    if reset != "zero":
        found.append(_ZERO_RESET)
    wide = [x.name for x in layers if x.weight is not None and _abs_max(x.weight) > MAX_WEIGHT]
    if wide:
        found.append(
            f"{', '.join(wide)} ha{'s' if len(wide) == 1 else 've'} weights beyond "
            f"+-{MAX_WEIGHT}, which Lava's 8-bit synapses cannot hold exactly "
            "(convert with --weight-bits 8)"
        )
    high = [x.name for x in layers if x.threshold > V_MAX]
    if high:
        found.append(
            f"{', '.join(high)}: threshold above the saturation bound {V_MAX}, where Lava's "
            "LIF would fire and the reference never does"
        )
    wrap = [x.name for x in layers if max_current(x) > MAX_CURRENT]
    if wrap:
        found.append(
            f"{', '.join(wrap)}: synaptic input per step can pass {MAX_CURRENT}, which wraps "
            "Lava's 24-bit current register"
        )
    biased = [x.name for x in layers if x.bias is not None and _abs_max(x.bias) > MAX_BIAS]
    if biased:
        found.append(
            f"{', '.join(biased)}: bias beyond Loihi's 13-bit mantissa (convert with fewer "
            "--bias-bits)"
        )
    return found


def max_current(layer: SpikingLayer) -> int:
    """The largest |synaptic input| one step can bring to a neuron of ``layer`` (bias not
    included: it goes to ``v``, not to the current), the larger of each neuron's positive and
    negative weight sums; for the input layer, its largest pixel current.

    >>> max_current(net.layers[3])
    15973
    """
    if layer.weight is None:
        return int(np.ceil(abs(layer.param_scale)))
    w = layer.weight.reshape(len(layer.weight), -1).astype(np.int64)
    return int(np.maximum(np.clip(w, 0, None).sum(1), np.clip(-w, 0, None).sum(1)).max())


def membrane_from_lava(v: np.ndarray) -> np.ndarray:
    """Integer potentials from Lava's LIF ``v`` (scaled by ``2**6``): ``ceil(v / 2**6)``, which
    also removes the sub-unit offset of Lava's saturation bound (see the module docstring).

    >>> membrane_from_lava(np.array([640.0, -8388607.0])).tolist()
    [10.0, -131071.0]
    """
    return np.ceil(np.asarray(v, np.float64) / V_SCALE)


def _abs_max(array: np.ndarray) -> int:
    return int(np.abs(array.astype(np.int64)).max()) if array.size else 0


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise LoweringError(f"target must be one of {TARGETS}, got {target!r}")
