"""Reading a trained ANN for Algorithm 1: its layers in order (convolutions, pools, dense),
their weights, biases and learned QCFS thresholds (:func:`parse_ann`), and average pooling
folded into the next convolution (:func:`fold_pooling`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from lava_retrieval.ann.model import INPUT_SHAPE, QCFS, ConvNet
from lava_retrieval.common.errors import LavaRetrievalError


class ConversionError(LavaRetrievalError):
    """The ANN or the calibration images cannot be converted."""


@dataclass
class _AnnLayer:
    """One synaptic layer of the ANN in float64, before scaling."""

    kind: str  # conv, pool or dense
    weight: np.ndarray
    bias: np.ndarray | None
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lam: float | None = None  # the learned threshold of the QCFS that follows, if any


def _pool_as_conv(channels: int, kernel: int) -> _AnnLayer:
    weight = np.full((channels, 1, kernel, kernel), 1.0 / kernel**2)
    return _AnnLayer("pool", weight, None, stride=kernel, groups=channels)


def _leaf_modules(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, ConvNet):
        model = model.layers
    if not isinstance(model, nn.Sequential):
        raise ConversionError(
            f"cannot convert a {type(model).__name__}: pass a ConvNet or an nn.Sequential"
        )
    leaves: list[nn.Module] = []
    for module in model:
        leaves += _leaf_modules(module) if isinstance(module, nn.Sequential) else [module]
    return leaves


def _int_param(value: int | tuple[int, ...], what: str, index: int) -> int:
    values = {value} if isinstance(value, int) else set(value)
    if len(values) != 1:
        raise ConversionError(f"layer {index}: non-square {what} {value} is not supported")
    return int(values.pop())


def _qcfs_threshold(module: QCFS, name: str) -> float:
    lam = float(module.threshold)
    if not (np.isfinite(lam) and lam > 0):
        raise ConversionError(f"{name}: its learned threshold is {lam}, not a positive number")
    return lam


def parse_ann(model: nn.Module) -> tuple[list[_AnnLayer], float | None]:
    """The synaptic layers of ``model`` with pooling as depthwise layers; rejects the rest.

    Returns the layers and the input's learned threshold (``None`` unless the ANN was trained
    with QCFS activations, in which case every layer but the output carries its ``lam``).
    """
    leaves = _leaf_modules(model)
    layers: list[_AnnLayer] = []
    input_lam: float | None = None
    channels = INPUT_SHAPE[0]
    for i, module in enumerate(leaves):
        name = f"layer {i} ({type(module).__name__})"
        if isinstance(module, QCFS):
            lam = _qcfs_threshold(module, name)
            if not layers:
                if input_lam is not None:
                    raise ConversionError(f"{name}: two QCFS activations in a row")
                input_lam = lam
            elif layers[-1].lam is not None:
                raise ConversionError(f"{name}: two QCFS activations in a row")
            else:
                layers[-1].lam = lam
        elif isinstance(module, nn.Conv2d):
            if _int_param(module.dilation, "dilation", i) != 1 or module.groups != 1:
                raise ConversionError(f"{name}: dilation and groups are not supported")
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ConversionError(f"{name}: only numeric zero padding is supported")
            _int_param(module.kernel_size, "kernel", i)
            layers.append(
                _AnnLayer(
                    "conv",
                    module.weight.detach().double().numpy(),
                    None if module.bias is None else module.bias.detach().double().numpy(),
                    stride=_int_param(module.stride, "stride", i),
                    padding=_int_param(module.padding, "padding", i),
                )
            )
            channels = module.out_channels
        elif isinstance(module, nn.AvgPool2d):
            kernel = _int_param(module.kernel_size, "kernel", i)
            stride = _int_param(module.stride or module.kernel_size, "stride", i)
            if stride != kernel or _int_param(module.padding, "padding", i) != 0:
                raise ConversionError(f"{name}: only non-overlapping pooling without padding")
            if module.ceil_mode:
                raise ConversionError(f"{name}: ceil_mode is not supported")
            layers.append(_pool_as_conv(channels, kernel))
        elif isinstance(module, nn.Linear):
            layers.append(
                _AnnLayer(
                    "dense",
                    module.weight.detach().double().numpy(),
                    None if module.bias is None else module.bias.detach().double().numpy(),
                )
            )
            channels = module.out_features
        elif isinstance(module, nn.ReLU):
            if not layers:
                raise ConversionError(f"{name}: a ReLU must follow a convolution or dense layer")
        elif isinstance(module, (nn.Dropout, nn.Flatten, nn.Identity)):
            continue
        elif isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
            raise ConversionError(f"{name}: max pooling cannot be converted; use average pooling")
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise ConversionError(
                f"{name}: batch-norm must be folded into the preceding convolution first"
            )
        else:
            raise ConversionError(
                f"{name} is not supported (convertible: Conv2d, AvgPool2d, Linear, ReLU, "
                "Dropout, Flatten)"
            )
    # Every synaptic layer but the output layer must be rectified: IF neurons cannot go negative.
    synaptic = [i for i, m in enumerate(leaves) if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i in synaptic[:-1]:
        following = [m for m in leaves[i + 1 :] if not isinstance(m, (nn.Dropout, nn.Identity))]
        if not following or not isinstance(following[0], (nn.ReLU, QCFS)):
            raise ConversionError(
                f"layer {i} ({type(leaves[i]).__name__}) is not followed by ReLU; spiking "
                "neurons rectify, so every hidden layer must"
            )
    if not layers or layers[-1].kind != "dense":
        raise ConversionError("the network must end with a dense (nn.Linear) output layer")
    if layers[-1].lam is not None:
        raise ConversionError("the output layer must not be quantised (no QCFS after it)")
    learned = [layer.lam is not None for layer in layers[:-1]] + [input_lam is not None]
    if any(learned) and not all(learned):
        raise ConversionError(
            "a QCFS network needs a QCFS activation after the input and after every "
            "convolution and pooling layer (each becomes a layer of spiking neurons); "
            "do not mix QCFS and ReLU"
        )
    return layers, input_lam


def fold_pooling(layers: list[_AnnLayer], input_shape: tuple[int, ...]) -> list[_AnnLayer]:
    """Merge each pooling layer into the next layer's weights (exact for average pooling)."""
    folded: list[_AnnLayer] = []
    shape = input_shape
    pending: int | None = None  # kernel of a pooling waiting to be folded
    for layer in layers:
        if layer.kind == "pool":
            if pending is not None:
                raise ConversionError("two consecutive pooling layers cannot be folded")
            if layer.lam is not None:
                raise ConversionError(
                    "a QCFS network quantises after each pooling; convert it with separate pooling"
                )
            k = layer.stride
            if shape[1] % k or shape[2] % k:
                raise ConversionError(f"cannot fold {k}x{k} pooling of a {shape} map")
            pending = k
            shape = (shape[0], shape[1] // k, shape[2] // k)
            continue
        if pending is not None:
            k = pending
            if layer.kind == "conv":
                if layer.stride != 1:
                    raise ConversionError("folding needs a stride-1 convolution after pooling")
                weight = layer.weight.repeat(k, axis=2).repeat(k, axis=3) / k**2
                layer = replace(layer, weight=weight, stride=k, padding=layer.padding * k)
            else:
                c, h, w = shape
                weight = layer.weight.reshape(-1, c, h, w).repeat(k, axis=2).repeat(k, axis=3)
                layer = replace(layer, weight=weight.reshape(len(weight), -1) / k**2)
            shape = (shape[0], shape[1] * k, shape[2] * k)
            pending = None
        folded.append(layer)
        shape = _output_shape(layer, shape)
    if pending is not None:
        raise ConversionError("pooling at the end of the network cannot be folded")
    return folded


def _output_shape(layer: _AnnLayer, shape: tuple[int, ...]) -> tuple[int, ...]:
    if layer.kind == "dense":
        if layer.weight.shape[1] != int(np.prod(shape)):
            raise ConversionError(
                f"dense layer expects {layer.weight.shape[1]} inputs, the previous layer "
                f"gives {int(np.prod(shape))} {shape}"
            )
        return (layer.weight.shape[0],)
    k = layer.weight.shape[-1]
    h = (shape[1] + 2 * layer.padding - k) // layer.stride + 1
    w = (shape[2] + 2 * layer.padding - k) // layer.stride + 1
    return (layer.weight.shape[0], h, w)
