"""Conversion of a QCFS-trained ANN for Loihi 2's sigma-delta neurons (``qcfs8-sdnn``).

An ANN trained with QCFS activations (:class:`lava_retrieval.ann.model.QCFS`, L levels, learned
``lambda`` per layer) computes, at every quantised layer, the integer count

    m_l = clip(floor(z_l / s_l + 1/2), 0, L),   z_l = W_l a_{l-1} + b_l,   a_l = s_l m_l,

with the step ``s_l = lambda_l / L`` (the 8-bit input: ``s_0 = 1/255``, ``m_0`` the pixel). Loihi 2
runs exactly such an integer layer as a sigma-delta neuron with graded messages: its synapses
sum ``W' . m_{l-1}`` (8-bit weights), the neuron adds its bias and sends

    m_l = floor(relu(W' . m_{l-1} + B') / 2**k)

(``state_exp = k``: the threshold is a power of two). The conversion makes one the other:

* ``W' = round(2**k s_{l-1} / s_l W_l)``: the ratio of the steps goes into the weights, so the
  ANN's ``lambda`` need not be a power of two; ``k`` is the largest exponent whose weights fit
  8 bits (``|W'| <=`` :data:`MAX_WEIGHT`), which keeps the most weight precision, whose
  bias fits the neuron's 16 bits, and whose sums and messages provably stay inside the 24-bit
  state and the 16-bit graded spike (:func:`lava_retrieval.loihi.sdnn_lowering.layer_bound`).
* ``B' = round(2**k b_l / s_l)`` and the rounding half ``2**(k-1)`` as the initial potential
  (``initial_membrane = 0.5``: the layer's ``v_init``), added to the bias on the chip.
* Average pooling is a grouped convolution with one equal weight ``round(2**k s_{l-1} / (4 s_l))``.
* The upper clip at L is dropped: a sigma-delta neuron's ReLU has no ceiling (0.4-0.9 % of the
  units exceed L; the Methods page's tables measure what that does).
* The output layer is not quantised: its sums ``W' . m + B'`` (``k = 0`` is not needed; it keeps
  the largest 8-bit scale too) are read by a ``Sigma``: the classes are their argmax.

The result is a :class:`~lava_retrieval.snn.network.SpikingNetwork` with an analog input (the
pixel ``0..255`` is the input message, ``param_scale = 255``), thresholds ``2**k``, soft reset and
``initial_membrane = 0.5``, run with the ``sigma_delta`` timing
(:mod:`lava_retrieval.snn.reference`). Its manifest records ``sdnn``: the state exponents, the
weight bits and the ANN's steps.

>>> from lava_retrieval.ann.checkpoint import PRETRAINED, load_checkpoint
>>> net = convert_sdnn(load_checkpoint(PRETRAINED / "32-64-10-qcfs8a").model)
>>> [layer.threshold for layer in net.layers]
[1, 1024, 256, 128, 256, 128]
"""

from __future__ import annotations

import numpy as np
from torch import nn

from lava_retrieval.ann.model import state_exp
from lava_retrieval.conversion.algorithm import _input_levels
from lava_retrieval.conversion.ann_layers import ConversionError, parse_ann
from lava_retrieval.loihi.sdnn_lowering import MAX_BIAS, MAX_MESSAGE, MAX_STATE, layer_bound
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork

#: Largest |weight| of Lava's 8-bit mixed-sign synapses.
MAX_WEIGHT = 127
INPUT_SCALE = 255


def _checked_ann(model: nn.Module, weight_bits: int) -> tuple[list, int]:
    """The ANN's layers and QCFS levels, if a sigma-delta network can be converted from it."""
    if not 2 <= weight_bits <= 8:
        raise ConversionError(f"weight_bits must be 2..8 for sigma-delta layers, got {weight_bits}")
    layers_ann, input_lam = parse_ann(model)
    if input_lam is None:
        raise ConversionError(
            "a sigma-delta network is converted from an ANN trained with QCFS activations "
            "(train --activation qcfs)"
        )
    if _input_levels(model) != INPUT_SCALE or input_lam != 1.0:
        raise ConversionError(
            "a sigma-delta network takes the 8-bit image as its input message: convert an ANN "
            "trained with --input-levels 255"
        )
    levels = int(getattr(model, "levels", 0) or 0)
    if levels < 1:
        raise ConversionError("the ANN does not record its QCFS levels")
    return layers_ann, levels


def _candidate(layer, geometry: tuple, scaled: np.ndarray, k: int) -> SpikingLayer:
    """``layer`` at state exponent ``k``: weights ``round(2**k * scaled)``, the bias in state
    units. ``geometry``: its name, input and output shapes, the ANN's step and the ratio of
    the steps."""
    name, shape, out_shape, step, ratio = geometry
    weight = np.rint(scaled * 2.0**k).astype(np.int64)
    bias = None
    if layer.bias is not None:
        bias = np.rint(layer.bias / step * 2.0**k).astype(np.int64)
    elif layer.kind != "pool":
        bias = np.zeros(len(weight), np.int64)
    return SpikingLayer(
        name,
        layer.kind,
        shape,
        out_shape,
        weight,
        bias,
        1 << k,
        2.0**k * ratio,
        1.0,
        stride=layer.stride,
        padding=layer.padding,
        groups=layer.groups,
    )


def convert_sdnn(
    model: nn.Module,
    *,
    source_sha256: str | None = None,
    arch: str | None = None,
    weight_bits: int = 8,
) -> SpikingNetwork:
    """The sigma-delta network of a QCFS-trained ANN with an 8-bit input (module docstring).

    Parameters
    ----------
    model : ConvNet or nn.Sequential
        Trained with ``--activation qcfs --input-levels 255``.
    source_sha256, arch : str, optional
        Recorded in the manifest (the checkpoint's weights hash, the architecture spec).
    weight_bits : int
        Bits of the mixed-sign weights (8: Loihi's).
    """
    layers_ann, levels = _checked_ann(model, weight_bits)
    weight_max = (1 << (weight_bits - 1)) - 1
    from lava_retrieval.ann.model import INPUT_SHAPE

    shape: tuple[int, ...] = INPUT_SHAPE
    layers = [SpikingLayer("input", "input", shape, shape, None, None, 1, float(INPUT_SCALE), 1.0)]
    step_in = 1.0 / INPUT_SCALE
    incoming = np.full(shape[0], INPUT_SCALE, np.int64)  # each channel's largest message
    exps, steps = [], [step_in]
    counts = {"conv": 0, "pool": 0, "dense": 0}
    for i, layer in enumerate(layers_ann):
        output = i == len(layers_ann) - 1
        step = 1.0 if output else layer.lam / levels
        ratio = step_in / step
        scaled = layer.weight * ratio
        if layer.kind == "dense":
            out_shape: tuple[int, ...] = (len(layer.weight),)
        else:
            kernel = layer.weight.shape[-1]
            height, width = (
                (n + 2 * layer.padding - kernel) // layer.stride + 1 for n in shape[1:]
            )
            out_shape = (len(layer.weight), height, width)
        counts[layer.kind] += 1
        name = f"{layer.kind}{counts[layer.kind]}"
        # The largest k whose weights fit the bits and whose sums and messages provably fit
        # the 24-bit state and the graded spike.
        for k in range(state_exp(float(np.abs(scaled).max()), weight_max), -1, -1):
            geometry = (name, tuple(shape), tuple(out_shape), step, ratio)
            candidate = _candidate(layer, geometry, scaled, k)
            largest, messages = layer_bound(candidate, (1 << k) // 2, incoming)
            biased = np.zeros(1, np.int64) if candidate.bias is None else candidate.bias
            fits = int(np.abs(biased + (1 << k) // 2).max()) <= MAX_BIAS
            if fits and largest <= MAX_STATE and (output or int(messages.max()) <= MAX_MESSAGE):
                break
        else:
            raise ConversionError(f"{name}: no state exponent keeps its sums inside 24 bits")
        layers.append(candidate)
        incoming = messages
        exps.append(k)
        steps.append(step)
        shape, step_in = out_shape, step
    manifest = {
        "source_sha256": source_sha256,
        "algorithm": "QCFS to sigma-delta (lava_retrieval.conversion.sdnn)",
        "thresholds": "powers of two (state_exp)",
        "sdnn": {
            "state_exp": exps,
            "weight_bits": weight_bits,
            "levels": levels,
            "steps": [float(s) for s in steps],
            "clip": None,
        },
    }
    return SpikingNetwork(
        layers=tuple(layers),
        embedding_layer=len(layers) - 2,
        reset="subtract",
        pool_mode="separate",
        arch=arch or (str(model.spec) if hasattr(model, "spec") else "custom"),
        manifest=manifest,
        initial_membrane=0.5,
        analog_input=True,
    )


def convert_sdnn_checkpoint(checkpoint, weight_bits: int = 8) -> SpikingNetwork:
    """:func:`convert_sdnn` of a loaded checkpoint, its hash and architecture recorded."""
    return convert_sdnn(
        checkpoint.model,
        source_sha256=checkpoint.meta.get("weights_sha256"),
        arch=str(checkpoint.model.spec),
        weight_bits=weight_bits,
    )
