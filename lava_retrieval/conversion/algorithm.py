"""ANN -> SNN conversion: Algorithm 1 of Liu et al. (PLoS ONE 2022), exactly as published.

Algorithm 1 walks the SNN layers together with the ANN layers, carrying a ``slope`` (SNN spike rate
per unit of ANN activation) and the simulated ``spikerate`` of the previous layer::

    W_MAX = 2**(num_weight_bits-1) - 1, b_MAX = 2**(num_bias_bits-1) - 1, slope = 1
    input layer:  param_scale = W_MAX;  dvdt = input * param_scale
    other layers: bias = bias * slope
                  weight_norm = percentile(|weight|, param_percentile)
                  bias_norm   = percentile(|bias|,   param_percentile)
                  param_scale = min(W_MAX / weight_norm, b_MAX / bias_norm)
                  weight = int(weight * param_scale);  bias = int(bias * param_scale)
                  dvdt = ReLU(weight . spikerate + bias)
    every layer:  threshold = int(percentile(dvdt, activation_percentile))
                  spikerate = min(dvdt / threshold, 1)
                  slope = slope * param_scale / threshold

Where the paper leaves a choice open, this module decides as follows.

* ``int()`` truncates toward zero (``numpy.trunc``), as Python's ``int`` does.
* Weights and biases are clipped to [-W_MAX, W_MAX] and [-b_MAX, b_MAX] after truncation: with a
  percentile below 100 a few parameters exceed the norm and would not fit the bit width.
  Percentile 100 (the preprint's max-based variant) never clips.
* A layer without bias (pooling), or whose biases are all zero, has ``bias_norm = 0``: its
  ``bias_ratio`` is infinite and ``param_scale = W_MAX / weight_norm``.
* The input layer's current is ``round(pixel * W_MAX)``, not ``int()``: pixels are k/255, and
  truncating a float product such as 0.99999... * 255 would lose one unit on exact integers.
* Percentiles use numpy's default linear interpolation over every element (zeros included) of
  the calibration activations.
* A threshold that truncates to 0 raises :class:`ConversionError` (the layer would never be
  able to represent its activations; use more calibration images or a higher percentile).
* ReLU is the neurons' own rectification; dropout is the identity at inference and is dropped;
  ``Flatten`` is the torch (C, H, W) order.
* Average pooling, ``pool_mode="separate"`` (default, the paper's reading): its own layer of
  neurons, a depthwise convolution with equal weights 1/k^2 in the ANN, scaled like any other
  layer (no bias, so ``param_scale = W_MAX * k^2`` and every integer weight is W_MAX).
  ``pool_mode="folded"``: pooling is linear, so it is merged into the next layer's weights
  (a 5x5 convolution after 2x2 pooling becomes a 10x10 convolution of stride 2 with weights
  W/4, a dense layer after pooling sees the unpooled map with weights W/4); exact in the ANN,
  one neuron layer fewer per pooling, and four times the fan-in of that layer.
* The embedding layer is the SNN layer before the output layer: with separate pooling the last
  pooling layer (4 x 4 x 64 for 32-64-10), with folded pooling the last convolution (8 x 8 x 64).

An ANN trained with QCFS activations (``train --activation qcfs``,
:class:`lava_retrieval.ann.model.QCFS`)
has learned its thresholds: the input's QCFS and the one after each convolution and pooling give
their layer's lambda, and the threshold becomes ``round(lambda * param_scale * slope)`` instead of a
percentile of simulated rates (a layer's current is ``param_scale * slope`` times the ANN's
pre-activation, so this threshold makes its rate ``activation / lambda``); the initial membrane
defaults to half the threshold, the shift of the QCFS floor. Weights and biases are still scaled
with ``param_percentile``; the output layer, which has no QCFS, keeps the percentile threshold.
Such an ANN must be converted with separate pooling (its pooling layers are quantised too).

With an analog input (``analog_input=True``) there are no input neurons: the first synapse layer
integrates the pixel current ``round(pixel * P)`` itself, P units per unit of pixel (the slope
after the input is P, and the first layer's bias may use P times ``b_MAX``, being in that unit).
Its threshold then grows with P; to count up to ``ANALOG_STEPS`` spikes under the
``exact_count``/``graded`` timings without saturating the 24-bit membrane it must stay at most
``V_MAX // (ANALOG_STEPS + 1)``: the converter lowers P (when it was not given) and, failing
that, the first layer's weight scale. The manifest records P and that scale factor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lava_retrieval.ann.model import INPUT_SHAPE, QCFS, ConvNet
from lava_retrieval.conversion.ann_layers import (
    ConversionError,
    _AnnLayer,
    _leaf_modules,
    _output_shape,
    fold_pooling,
    parse_ann,
)
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.neuron import RESET_MODES, V_MAX

POOL_MODES = ("separate", "folded")
ANALOG_STEPS = 32
"""After an analog input, the first synapse layer's threshold is kept at most
``V_MAX // (ANALOG_STEPS + 1)`` (its weights made coarser where needed), so that the
``exact_count`` and ``graded`` timings count up to T = ANALOG_STEPS spikes in its 24-bit membrane
without saturating."""
ANALOG_THRESHOLD = V_MAX // (ANALOG_STEPS + 1)


@dataclass(frozen=True)
class ConversionConfig:
    """Settings of Algorithm 1 and of the artifact it produces.

    Attributes
    ----------
    num_weight_bits, num_bias_bits : int
        Signed bit widths; W_MAX = 2**(bits-1) - 1 (9 bits: 255). Default 9 and 9.
    param_percentile : float
        Percentile of |weight| and |bias| that maps to W_MAX / b_MAX. Default 99.999.
    activation_percentile : float
        Percentile of a layer's simulated input rate that becomes its threshold. Default 99.999.
        100 for both gives the preprint's max-based variant.
    calibration_size : int
        Number of training images used for the thresholds. Default 2,000.
    calibration_seed : int
        Seed of the choice of calibration images. Default 0.
    pool_mode : str
        ``separate`` (default) or ``folded``, see the module docstring.
    reset : str
        ``subtract`` (soft reset, default) or ``zero`` (hard reset, for Lava's LIF and netx).
    initial_membrane : float or None
        Every neuron's potential at the start of each window, as a fraction of its threshold
        in [0, 1): 0 (the paper's) or 0.5 (the conversion literature's choice). ``None``
        (default): 0.5 for an ANN trained with QCFS activations, else 0.
    analog_input : bool
        The image enters the first synapse layer directly, as a graded current of
        ``input_levels`` levels per pixel, instead of through a layer of input neurons
        (default ``False``); see the module docstring.
    input_levels : int or None
        Levels of the analog pixel current (1..255). ``None`` (default): the levels of the
        ANN's input quantiser (an ANN trained with QCFS activations; 255 for one trained with
        ``--input-levels 255``), else W_MAX, lowered to the most that keep the first layer's
        threshold within the 24-bit budget (:data:`ANALOG_STEPS`) at full weight precision.

    >>> ConversionConfig().w_max, ConversionConfig(num_weight_bits=8).w_max
    (255, 127)
    """

    num_weight_bits: int = 9
    num_bias_bits: int = 9
    param_percentile: float = 99.999
    activation_percentile: float = 99.999
    calibration_size: int = 2000
    calibration_seed: int = 0
    pool_mode: str = "separate"
    reset: str = "subtract"
    initial_membrane: float | None = None
    analog_input: bool = False
    input_levels: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 2 <= self.num_weight_bits <= 16:
            problems.append(f"num_weight_bits={self.num_weight_bits} (2..16)")
        if not 2 <= self.num_bias_bits <= 16:
            problems.append(f"num_bias_bits={self.num_bias_bits} (2..16)")
        for name in ("param_percentile", "activation_percentile"):
            if not 0 < getattr(self, name) <= 100:
                problems.append(f"{name}={getattr(self, name)} (0 < p <= 100)")
        if self.calibration_size < 1:
            problems.append(f"calibration_size={self.calibration_size} (>= 1)")
        if self.pool_mode not in POOL_MODES:
            problems.append(f"pool_mode={self.pool_mode!r} ({' or '.join(POOL_MODES)})")
        if self.reset not in RESET_MODES:
            problems.append(f"reset={self.reset!r} ({' or '.join(RESET_MODES)})")
        if self.initial_membrane is not None and not 0.0 <= self.initial_membrane < 1.0:
            problems.append(f"initial_membrane={self.initial_membrane} (0 <= f < 1)")
        if self.input_levels is not None and not (
            self.analog_input
            and isinstance(self.input_levels, int)
            and 1 <= self.input_levels <= 255
        ):
            problems.append(f"input_levels={self.input_levels} (1..255, with analog_input only)")
        if problems:
            raise ConversionError("invalid conversion configuration: " + ", ".join(problems))

    @property
    def w_max(self) -> int:
        """Largest integer weight."""
        return 2 ** (self.num_weight_bits - 1) - 1

    @property
    def b_max(self) -> int:
        """Largest integer bias."""
        return 2 ** (self.num_bias_bits - 1) - 1

    def resolved(self, learned_thresholds: bool) -> ConversionConfig:
        """This configuration with the default initial membrane filled in.

        >>> ConversionConfig().resolved(True).initial_membrane
        0.5
        """
        if self.initial_membrane is not None:
            return self
        return replace(self, initial_membrane=0.5 if learned_thresholds else 0.0)


def _synaptic(
    layer: _AnnLayer | SpikingLayer, weight: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    if layer.kind == "dense":
        return x.flatten(1) @ weight.T
    return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding, groups=layer.groups)


CALIBRATION_CHUNK = 128  # images per step of the rate simulation: bounds its memory


def _input_rates(
    layer: _AnnLayer, weight: np.ndarray, bias: np.ndarray | None, spikerate: np.ndarray
) -> np.ndarray:
    """``ReLU(weight . spikerate + bias)`` (Algorithm 1, line 16), a chunk of images at a time
    (a folded 10 x 10 convolution of 2,000 images at once would unfold to gigabytes)."""
    out = []
    weight_t = torch.from_numpy(weight)
    with torch.no_grad():
        for start in range(0, len(spikerate), CALIBRATION_CHUNK):
            chunk = torch.from_numpy(spikerate[start : start + CALIBRATION_CHUNK])
            current = _synaptic(layer, weight_t, chunk)
            if bias is not None:
                view = (1, -1) if layer.kind == "dense" else (1, -1, 1, 1)
                current = current + torch.from_numpy(bias).view(*view)
            out.append(torch.relu(current).numpy())
    return np.concatenate(out)


def check_calibration_images(images: np.ndarray) -> np.ndarray:
    """Validate calibration images and return them as float64 (N, 1, 28, 28) in [0, 1].

    uint8 images are divided by 255; float images must already lie in [0, 1].

    >>> check_calibration_images(np.zeros((2, 28, 28), np.uint8)).shape
    (2, 1, 28, 28)
    """
    images = np.asarray(images)
    if images.size == 0:
        raise ConversionError("the calibration set is empty")
    if images.dtype == np.uint8:
        images = images.astype(np.float64) / 255.0
    elif not np.issubdtype(images.dtype, np.floating):
        raise ConversionError(f"calibration images must be uint8 or float, got {images.dtype}")
    images = images.astype(np.float64)
    if images.ndim == 3:
        images = images[:, None]
    if images.shape[1:] != INPUT_SHAPE:
        raise ConversionError(
            f"calibration images must be (N, 28, 28) or (N, 1, 28, 28), got {images.shape}"
        )
    if np.isnan(images).any():
        raise ConversionError("calibration images contain NaN")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise ConversionError(
            f"calibration images must lie in [0, 1], found values in [{lo:g}, {hi:g}]"
        )
    return images


def calibration_indices(num_train: int, config: ConversionConfig) -> np.ndarray:
    """The fixed, seeded choice of calibration images among ``num_train`` training images.

    >>> calibration_indices(10, ConversionConfig(calibration_size=3)).tolist()
    [5, 6, 9]
    """
    size = min(config.calibration_size, num_train)
    rng = np.random.default_rng(config.calibration_seed)
    return np.sort(rng.choice(num_train, size=size, replace=False))


def _threshold(
    dvdt: np.ndarray, config: ConversionConfig, name: str, learned: float | None = None
) -> int:
    if learned is not None:  # lambda * param_scale * slope, see the module docstring
        threshold = int(np.rint(learned))
        if threshold < 1:
            raise ConversionError(
                f"{name}: its learned threshold scales to {learned:g} < 1/2 integer units"
            )
        return threshold
    threshold = int(np.percentile(dvdt, config.activation_percentile))
    if threshold < 1:
        raise ConversionError(
            f"{name}: the threshold truncates to {threshold} (the {config.activation_percentile} "
            f"percentile of its input rate is {np.percentile(dvdt, config.activation_percentile):g}"
            "); the layer is nearly silent on the calibration images"
        )
    return threshold


def _input_layer(
    ann: nn.Module, images: np.ndarray, config: ConversionConfig, input_lam: float | None
) -> tuple[SpikingLayer, np.ndarray, int]:
    """The input layer, the rates it sends and, for an analog input, its pixel levels."""
    w_max = config.w_max
    if config.analog_input:
        # No input neurons: the first synapse layer integrates the pixel current
        # round(pixel * P) itself, P units per unit of pixel (its slope).
        levels = config.input_levels or _input_levels(ann) or min(w_max, 255)
        first = SpikingLayer(
            "input", "input", INPUT_SHAPE, INPUT_SHAPE, None, None, levels, levels, float(levels)
        )
        return first, np.rint(images * levels), levels
    # Input layer (Algorithm 1, lines 4-6).
    dvdt = np.rint(images * w_max)
    learned = None if input_lam is None else input_lam * w_max
    threshold = _threshold(dvdt, config, "input", learned)
    slope = 1.0 * w_max / threshold
    first = SpikingLayer(
        "input", "input", INPUT_SHAPE, INPUT_SHAPE, None, None, threshold, float(w_max), slope
    )
    return first, np.minimum(dvdt / threshold, 1.0), 0


def _spiking(name, layer, shape, out_shape, weights, threshold, param_scale, slope):
    """The :class:`SpikingLayer` of an ANN layer converted to ``weights`` (integer)."""
    weight_int, bias_int = weights
    return SpikingLayer(
        name,
        layer.kind,
        shape,
        out_shape,
        weight_int.astype(np.int32),
        None if bias_int is None else bias_int.astype(np.int32),
        threshold,
        float(param_scale),
        float(slope),
        stride=layer.stride,
        padding=layer.padding,
        groups=layer.groups,
    )


def _analog_record(levels: int, reduction: float) -> dict:
    """What the manifest records of an analog input."""
    return {
        "levels": levels,
        "exact_count_steps": ANALOG_STEPS,
        "first_layer_scale_factor": reduction,
    }


def _integer_layer(layer, name: str, config: ConversionConfig, scale: tuple, spikerate):
    """Algorithm 1, lines 8-21, for one layer: its integer weights and bias, the input rates
    they give (simulated), its threshold and the scale of its parameters. ``scale``: the
    weights' percentile norm, the slope of the layer below, a reduction of the scale (after an
    analog input) and whether the layer is the first after an analog input (its bias is then
    in units of the pixel current, P times wider)."""
    weight_norm, slope, reduction, analog_first = scale
    w_max, bias_max = config.w_max, config.b_max * (slope if analog_first else 1)
    ratio = w_max / weight_norm
    bias = None
    if layer.bias is not None:
        bias = layer.bias * slope
        bias_norm = float(np.percentile(np.abs(bias), config.param_percentile))
        if bias_norm > 0.0:
            ratio = min(ratio, bias_max / bias_norm)
    param_scale = ratio * reduction
    weight_int = np.clip(np.trunc(layer.weight * param_scale), -w_max, w_max)
    bias_int = None
    if bias is not None:
        bias_int = np.clip(np.trunc(bias * param_scale), -bias_max, bias_max)
    # Line 16: simulate the rate of the integer layer.
    dvdt = _input_rates(layer, weight_int, bias_int, spikerate)
    # Lines 18-21 (a QCFS network's threshold is its learned lambda in integer units).
    scaled = None if layer.lam is None else layer.lam * param_scale * slope
    return weight_int, bias_int, dvdt, _threshold(dvdt, config, name, scaled), param_scale


def convert(
    ann: nn.Module,
    calibration_images: np.ndarray,
    config: ConversionConfig | None = None,
    *,
    source_sha256: str | None = None,
    arch: str | None = None,
) -> SpikingNetwork:
    """Convert a trained ANN into a :class:`SpikingNetwork` with Algorithm 1.

    Parameters
    ----------
    ann : ConvNet or nn.Sequential
        The trained network (put in eval mode here; dropout is dropped).
    calibration_images : numpy.ndarray
        (N, 28, 28) uint8 or float in [0, 1] (:func:`calibration_indices`: the seeded subset).
    config : ConversionConfig, optional
        Defaults to ``ConversionConfig()`` (the paper's settings).
    source_sha256 : str, optional
        Hash of the source checkpoint, recorded in the manifest.
    arch : str, optional
        Architecture spec; taken from a ``ConvNet`` when omitted.

    Returns
    -------
    SpikingNetwork

    >>> from lava_retrieval.ann.checkpoint import load_checkpoint
    >>> net = convert(load_checkpoint().model, np.random.default_rng(0).random((64, 28, 28)))
    >>> [layer.name for layer in net.layers]
    ['input', 'conv1', 'pool1', 'conv2', 'pool2', 'dense1']
    >>> net.embedding_shape
    (64, 4, 4)
    """
    ann.eval()
    images = check_calibration_images(calibration_images)
    ann_layers, input_lam = parse_ann(ann)
    learned = input_lam is not None
    config = (config or ConversionConfig()).resolved(learned)
    if config.pool_mode == "folded":
        ann_layers = fold_pooling(ann_layers, INPUT_SHAPE)

    first, spikerate, levels = _input_layer(ann, images, config, input_lam)
    layers, slope = [first], first.slope
    shape: tuple[int, ...] = INPUT_SHAPE
    counts = {"conv": 0, "pool": 0, "dense": 0}
    reduction = 1.0  # of the first layer's scale, after an analog input
    for layer in ann_layers:
        counts[layer.kind] += 1
        name = f"{layer.kind}{counts[layer.kind]}"
        # Lines 8-15: scale the parameters to integers.
        weight_norm = float(np.percentile(np.abs(layer.weight), config.param_percentile))
        if weight_norm == 0.0:
            raise ConversionError(f"{name}: all weights are zero")
        # After an analog input the bias is in units of the pixel current (P times wider).
        analog_first = config.analog_input and len(layers) == 1
        for attempt in range(4):
            scale = (weight_norm, slope, reduction if analog_first else 1.0, analog_first)
            weight_int, bias_int, dvdt, threshold, param_scale = _integer_layer(
                layer, name, config, scale, spikerate
            )
            if not analog_first or threshold <= ANALOG_THRESHOLD:
                break
            # The first layer after an analog input would need more than the 24-bit membrane
            # to count up to ANALOG_STEPS spikes in one window: fewer pixel levels (unless
            # they were given), else coarser weights.
            if config.input_levels is None and attempt < 2 and levels > 1:
                levels = max(1, int(levels * ANALOG_THRESHOLD / threshold))
                spikerate, slope = np.rint(images * levels), float(levels)
                layers[0] = replace(layers[0], threshold=levels, param_scale=levels, slope=slope)
            else:
                reduction *= ANALOG_THRESHOLD / threshold
        spikerate = np.minimum(dvdt / threshold, 1.0)
        slope = slope * param_scale / threshold
        out_shape, integers = _output_shape(layer, shape), (weight_int, bias_int)
        layers.append(
            _spiking(name, layer, shape, out_shape, integers, threshold, param_scale, slope)
        )
        shape = out_shape
    if arch is None:
        arch = str(ann.spec) if isinstance(ann, ConvNet) else "custom"
    manifest = {
        "converter": asdict(config),
        "calibration_size": int(len(images)),
        "source_sha256": source_sha256,
        "algorithm": "Liu et al. 2022, Algorithm 1",
        "thresholds": "learned (QCFS)" if learned else "activation percentile",
    }
    if config.analog_input:
        manifest["analog_input"] = _analog_record(levels, reduction)
    return SpikingNetwork(
        layers=tuple(layers),
        embedding_layer=len(layers) - 2,
        reset=config.reset,
        pool_mode=config.pool_mode,
        arch=arch,
        manifest=manifest,
        initial_membrane=float(config.initial_membrane or 0.0),  # (resolved above)
        analog_input=config.analog_input,
    )


def _input_levels(ann: nn.Module) -> int | None:
    """The levels of the ANN's input quantiser (its first module, a QCFS), if it has one."""
    leaves = _leaf_modules(ann)
    if leaves and isinstance(leaves[0], QCFS):
        return min(int(leaves[0].levels), 255)
    return None


def convert_checkpoint(
    checkpoint, dataset, config: ConversionConfig | None = None
) -> SpikingNetwork:
    """Convert a trained checkpoint, calibrated on the fixed seeded subset of its training split.

    Parameters
    ----------
    checkpoint : lava_retrieval.ann.checkpoint.Checkpoint
    dataset : lava_retrieval.data.fashion_mnist.FashionMNIST
    config : ConversionConfig, optional

    >>> convert_checkpoint(load_checkpoint(), load_fashion_mnist()).arch
    '32-64-10'
    """
    config = config or ConversionConfig()
    images, _ = dataset.split("train", checkpoint.config.validation_fraction)
    return convert(
        checkpoint.model,
        images[calibration_indices(len(images), config)],
        config,
        source_sha256=checkpoint.meta.get("weights_sha256"),
        arch=str(checkpoint.model.spec),
    )
