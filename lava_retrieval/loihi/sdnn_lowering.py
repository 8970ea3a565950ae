"""What a ``sigma_delta`` network must satisfy to run exactly on Loihi 2's sigma-delta processes.

A layer of the network (:mod:`lava_retrieval.conversion.sdnn`) becomes Lava's ``Conv`` (or
``Dense``) with graded input messages (``num_message_bits =`` :data:`MESSAGE_BITS`) into a
``SigmaDelta`` neuron (``act_mode = RELU``, ``state_exp = k`` for the threshold ``2**k``,
``vth`` one state unit); the analog input enters through a ``Delta`` encoder and the output
layer's sums are read by a ``Sigma``. Exact when:

* every threshold is a power of two (the neuron divides by ``2**state_exp`` with a shift), and
  the network resets by subtraction (the remainder is what a sigma-delta neuron keeps);
* every weight fits Lava's 8-bit mixed-sign synapse (``|w| <=`` :data:`MAX_WEIGHT`);
* every bias plus the rounding half fits the neuron's 16-bit bias (:data:`MAX_BIAS`);
* no sum can leave the 24-bit state (:data:`MAX_STATE`): neither the neuron's
  ``W . m + B``, nor the synapses' ``W . m`` nor, streamed, their ``W . (m' - m)`` (Lava's
  ``Conv`` wraps its output there), and no message (or, streamed, the change of one) leaves
  the signed message bits (:data:`MAX_MESSAGE`).

The bounds are proved, not sampled: :func:`bounds` propagates each channel's largest message
(from the largest pixel, 255) through the layers, positive and negative weight sums apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork

MAX_WEIGHT = 127
MESSAGE_BITS = 16
MAX_MESSAGE = (1 << (MESSAGE_BITS - 1)) - 1
MAX_STATE = (1 << 23) - 1
MAX_BIAS = (1 << 15) - 1


class SdnnLoweringError(LavaRetrievalError):
    """The network cannot run exactly on Loihi 2's sigma-delta processes."""


@dataclass(frozen=True)
class LayerBound:
    """Proved bounds of one layer: the largest |sum| a neuron can hold and the largest message
    it can send (per output channel)."""

    name: str
    largest_sum: int
    largest_message: np.ndarray


def state_exp(threshold: int) -> int | None:
    """``k`` with ``threshold == 2**k``, or None.

    >>> state_exp(256), state_exp(190)
    (8, None)
    """
    threshold = int(threshold)
    if threshold >= 1 and threshold & (threshold - 1) == 0:
        return threshold.bit_length() - 1
    return None


def layer_bound(layer: SpikingLayer, v_init: int, incoming: np.ndarray) -> tuple[int, np.ndarray]:
    """``(largest |sum|, largest message per output channel)`` of ``layer`` when each input
    channel's message is at most ``incoming`` (one value per input channel, >= 0).

    The largest of three sums a step can hold: the neuron's state ``W . m + bias + v_init``
    (messages between 0 and their bound), and the synapses' output before the bias, both for
    one image and, streamed, for the change between two images (``W . (m' - m)``, each change
    between minus and plus its bound: the positive and the negative weights' sums together),
    which is what Lava's ``Conv`` computes and wraps at 24 bits.

    >>> from lava_retrieval.snn.network import SpikingLayer
    >>> w = np.array([[3, -2]], np.int32)
    >>> layer = SpikingLayer("d", "dense", (2,), (1,), w, np.array([1]), 4, 1.0, 1.0)
    >>> s, m = layer_bound(layer, 2, np.array([10, 10])); s, m.tolist()
    (50, [8])
    """
    w = layer.synapses.astype(np.int64)
    c_out = len(w)
    c_in = int(layer.input_shape[0])
    if layer.kind == "dense":
        per_input = np.repeat(incoming, int(np.prod(layer.input_shape[1:], dtype=np.int64)))
        pos = np.clip(w, 0, None) @ per_input
        neg = np.clip(-w, 0, None) @ per_input
    else:
        groups = layer.groups
        per_group = c_in // groups
        pos, neg = np.zeros(c_out, np.int64), np.zeros(c_out, np.int64)
        for o in range(c_out):
            g = o // (c_out // groups)
            channels = incoming[g * per_group : (g + 1) * per_group]
            wo = w[o].reshape(per_group, -1)
            pos[o] = int((np.clip(wo, 0, None).sum(1) * channels).sum())
            neg[o] = int((np.clip(-wo, 0, None).sum(1) * channels).sum())
    bias = np.zeros(c_out, np.int64) if layer.bias is None else layer.bias.astype(np.int64)
    top = pos + bias + v_init
    bottom = -neg + bias + v_init
    largest = int(max(np.abs(top).max(), np.abs(bottom).max(), (pos + neg).max()))
    return largest, np.maximum(top, 0) // layer.threshold


def bounds(network: SpikingNetwork) -> list[LayerBound]:
    """:class:`LayerBound` of every synapse layer, in order."""
    first = network.layers[0]
    incoming = np.full(first.output_shape[0], int(np.ceil(abs(first.param_scale))), np.int64)
    out = []
    for index, layer in enumerate(network.layers[1:], 1):
        largest, incoming = layer_bound(layer, network.neuron(index).v_init, incoming)
        out.append(LayerBound(layer.name, largest, incoming))
    return out


def problems(network: SpikingNetwork) -> list[str]:
    """Every reason ``network`` cannot run exactly on Lava's ``Delta``/``Conv``/``Dense``/
    ``SigmaDelta``/``Sigma`` (empty when it can), each naming the layers."""
    found = []
    if not network.analog_input:
        found.append(
            "the input must be analog (the 8-bit image as a graded message through a Delta "
            "encoder): convert with the sigma-delta conversion"
        )
    if network.reset != "subtract":
        found.append(
            "a sigma-delta neuron keeps its remainder: the network must reset by subtraction"
        )
    layers = network.layers[1:]
    odd = [x.name for x in layers if state_exp(x.threshold) is None]
    if odd:
        found.append(
            f"{', '.join(odd)}: threshold not a power of two (a sigma-delta neuron divides by "
            "2**state_exp)"
        )
    wide = [x.name for x in layers if int(np.abs(x.synapses.astype(np.int64)).max()) > MAX_WEIGHT]
    if wide:
        found.append(f"{', '.join(wide)}: weights beyond +-{MAX_WEIGHT} (Lava's 8-bit synapses)")
    big = []
    for index, x in enumerate(network.layers[1:], 1):
        bias = np.zeros(1, np.int64) if x.bias is None else x.bias.astype(np.int64)
        if int(np.abs(bias + network.neuron(index).v_init).max()) > MAX_BIAS:
            big.append(x.name)
    if big:
        found.append(f"{', '.join(big)}: bias and rounding half beyond the 16-bit bias")
    if not odd:  # the message bound needs the shifts
        proved = bounds(network)
        over = [b.name for b in proved if b.largest_sum > MAX_STATE]
        if over:
            found.append(
                f"{', '.join(over)}: a sum can pass {MAX_STATE} and leave the 24-bit state "
                "(of the neuron, or of the synapses, where Lava's Conv wraps)"
            )
        loud = [b.name for b in proved[:-1] if int(b.largest_message.max()) > MAX_MESSAGE]
        if loud:
            found.append(
                f"{', '.join(loud)}: a message can pass the {MESSAGE_BITS}-bit graded spike"
            )
    return found


def check(network: SpikingNetwork) -> None:
    """Raise :class:`SdnnLoweringError` with every problem of :func:`problems`, in one message."""
    found = problems(network)
    if found:
        raise SdnnLoweringError(
            "cannot run on Loihi 2's sigma-delta processes exactly: " + "; ".join(found)
        )
