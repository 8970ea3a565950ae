"""The ANN family of the paper's Table 1, built from a spec string such as ``32-64-10``.

A spec lists the output channels of each convolution, then the width of the dense output layer.
Every network takes (N, 1, 28, 28) images in [0, 1] (no mean subtraction: the spiking input layer
drives neurons with pixel x W_MAX, so the ANN must see the same linear input).

Two convolutions (the paper's Fig. 2), exactly::

    conv 5x5 valid -> ReLU -> avgpool 2 -> conv 5x5 valid -> ReLU -> avgpool 2
    -> flatten (4 x 4 x C) -> dropout -> dense

28 -> 24 -> 12 -> 8 -> 4, so 32-64-10 has a 4 x 4 x 64 = 1,024-dimensional embedding.

Three and four convolutions: the spatial path of the two-convolution network is kept and each
further convolution is a 3x3 convolution with padding 1 ("same") followed by ReLU, applied at the
4 x 4 resolution after the second pooling::

    ... -> avgpool 2 -> [conv 3x3 same -> ReLU] x (n_conv - 2) -> flatten -> dropout -> dense

Why: 28 x 28 inputs leave no room for a third 5x5 valid convolution and pooling (4 -> 0), pooling
below 4 x 4 would shrink the embedding to a few values per channel, and "same" 3x3 convolutions keep
every network's embedding at 4 x 4 x C_last, so embeddings of the family are comparable. The fan-in
of these layers (9 x C_in) stays far below Loihi's 4,096; the dense layer's fan-in is
16 x C_last (4,096 for 32-64-128-256-10, the limit).

Only layers the ANN-to-SNN converter accepts are used: convolution, average pooling, ReLU,
dropout (identity at inference), flatten and dense. No max pooling and no batch-norm.

Training for conversion (``activation="qcfs"``): every ReLU is replaced by a quantisation-clip-
floor-shift activation (:class:`QCFS`, Bu et al., ICLR 2022) with L levels and a trainable
threshold lambda, and every layer the converter turns into a layer of spiking neurons gets one,
so the ANN computes what the spiking network can represent: the input (lambda fixed at 1, pixels
in [0, 1]), each convolution and each pooling::

    QCFS(1) -> conv 5x5 -> QCFS -> avgpool 2 -> QCFS -> conv 5x5 -> QCFS -> avgpool 2 -> QCFS
    -> [conv 3x3 same -> QCFS] x (n_conv - 2) -> flatten -> dropout -> dense

An integrate-and-fire neuron with threshold lambda, soft reset and initial potential lambda / 2
that receives a constant input x for L steps fires exactly ``QCFS(x) * L / lambda`` times; the
converter makes each learned lambda its layer's threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lava_retrieval.common.errors import SpecError

INPUT_SHAPE = (1, 28, 28)
ACTIVATIONS = ("relu", "qcfs")
MAX_WIDTH = 4096  # channels or classes: wider layers would not fit a Loihi chip, or memory
QCFS_INITIAL_THRESHOLD = 2.0

TABLE1_SPECS = (
    "4-8-10",
    "8-16-10",
    "16-32-10",
    "32-64-10",
    "4-8-16-10",
    "8-16-32-10",
    "16-32-64-10",
    "32-64-128-10",
    "4-8-16-32-10",
    "8-16-32-64-10",
    "16-32-64-128-10",
    "32-64-128-256-10",
)


@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture spec.

    Attributes
    ----------
    conv_channels : tuple of int
        Output channels of each convolution (2 to 4 of them).
    num_classes : int
        Width of the dense output layer.

    >>> ArchSpec.parse("32-64-10")
    ArchSpec(conv_channels=(32, 64), num_classes=10)
    >>> str(ArchSpec.parse("32-64-10"))
    '32-64-10'
    """

    conv_channels: tuple[int, ...]
    num_classes: int

    @classmethod
    def parse(cls, spec: str) -> ArchSpec:
        """Parse ``"c1-c2[-c3[-c4]]-classes"``."""
        if not isinstance(spec, str):
            raise SpecError(f"architecture spec must be a string like '32-64-10', got {spec!r}")
        parts = spec.strip().split("-")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise SpecError(
                f"architecture spec {spec!r} is not hyphen-separated integers like '32-64-10'"
            ) from None
        if not 3 <= len(numbers) <= 5:
            raise SpecError(
                f"architecture spec {spec!r} needs 2 to 4 convolution widths and an output width"
            )
        if any(n <= 0 for n in numbers):
            raise SpecError(f"architecture spec {spec!r} has a non-positive width")
        if any(n > MAX_WIDTH for n in numbers):
            raise SpecError(f"architecture spec {spec!r} has a width above {MAX_WIDTH:,}")
        return cls(tuple(numbers[:-1]), numbers[-1])

    def __str__(self) -> str:
        return "-".join(str(n) for n in (*self.conv_channels, self.num_classes))

    @property
    def embedding_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the layer before the output layer."""
        return (self.conv_channels[-1], 4, 4)


class _QCFSFunction(torch.autograd.Function):
    """QCFS forward with the straight-through gradients in one pass (saves memory traffic)."""

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, lam: torch.Tensor, levels: int, ceiling: bool = True
    ) -> torch.Tensor:
        y = x / lam
        out = torch.floor(y.clamp(0.0, 1.0 if ceiling else None) * levels + 0.5) * (lam / levels)
        ctx.save_for_backward(y, out, lam)
        ctx.ceiling = ceiling
        return out

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        (grad,) = grads
        y, out, lam = ctx.saved_tensors
        inside = (y > 0) & (y < 1) if ctx.ceiling else y > 0
        grad_x = grad * inside
        # d out / d lambda: q - x / lambda inside the clip, 1 above it, 0 below it.
        grad_lam = torch.where(inside, out / lam - y, (y >= 1).to(y.dtype))
        return grad_x, (grad * grad_lam).sum().reshape(lam.shape), None, None


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation: ``lambda * clip(floor(x L / lambda + 1/2) / L,
    0, 1)``, with a straight-through gradient for the floor (Bu et al., ICLR 2022).

    Parameters
    ----------
    levels : int
        L, the number of non-zero output levels.
    threshold : float
        Initial lambda, the largest output. Default 2.0.
    trainable : bool
        Whether lambda is learned (a parameter) or fixed (a buffer, as for the input).

    >>> q = QCFS(4, threshold=1.0, trainable=False)
    >>> q(torch.tensor([-1.0, 0.1, 0.2, 0.5, 0.9, 3.0])).tolist()
    [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    """

    def __init__(
        self,
        levels: int,
        threshold: float = QCFS_INITIAL_THRESHOLD,
        trainable: bool = True,
        ceiling: bool = True,
    ) -> None:
        super().__init__()
        self.ceiling = bool(ceiling)
        if levels < 1:
            raise SpecError(f"QCFS needs at least one level, got {levels}")
        if not threshold > 0:
            raise SpecError(f"QCFS threshold must be positive, got {threshold}")
        self.levels = int(levels)
        value = torch.tensor(float(threshold))
        if trainable:
            self.threshold = nn.Parameter(value)
        else:
            self.register_buffer("threshold", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _QCFSFunction.apply(x, self.threshold.clamp(min=1e-3), self.levels, self.ceiling)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, threshold={float(self.threshold):.4g}"


#: Largest state exponent the sigma-delta conversion chooses (the threshold ``2**k`` stays far
#: below the 24-bit state).
MAX_STATE_EXP = 16


def state_exp(scaled_max: float, weight_max: int = 127) -> int:
    """The largest ``k <=`` :data:`MAX_STATE_EXP` with ``round(2**k scaled_max) <= weight_max``.

    >>> state_exp(0.5), state_exp(0.0966)
    (7, 10)
    """
    if not scaled_max > 0:
        return MAX_STATE_EXP
    k = math.floor(math.log2((weight_max + 0.5) / scaled_max))
    while k > 0 and round(2.0**k * scaled_max) > weight_max:
        k -= 1
    return max(0, min(k, MAX_STATE_EXP))


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` with the gradient of the identity."""
    return x + (torch.round(x) - x).detach()


def _sdnn_scale(scaled: torch.Tensor, weight_max: int = 127) -> float:
    """``2**k``, the largest power of two (k <= 16) with ``round(2**k max|scaled|) <= 127``
    (:func:`state_exp`, as the sigma-delta conversion chooses it)."""
    return 2.0 ** state_exp(float(scaled.detach().abs().max()), weight_max)


def _sdnn_quantised(scaled: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """The weights the sigma-delta conversion makes of ``scaled = W x ratio``, in ANN units:
    ``round(2**k scaled) / (2**k ratio)``."""
    scale = _sdnn_scale(scaled)
    return _round_ste(scaled * scale) / (scale * ratio)


class ConvNet(nn.Module):
    """A network of the family; ``layers`` is a flat ``nn.Sequential`` the converter walks.

    Parameters
    ----------
    spec : str or ArchSpec
        Architecture, e.g. ``"32-64-10"``.
    dropout : float
        Dropout probability before the dense layer (training only).
    activation : str
        ``relu`` (the paper's) or ``qcfs`` (trained for conversion, see the module docstring).
    levels : int, optional
        L of every QCFS activation; required with ``qcfs``.
    input_levels : int, optional
        Levels of the input image's quantiser (``qcfs`` only; default ``levels``). 255 keeps
        the 8-bit image as it is: the ANN a network with an analog input converts from.
    sdnn : bool
        Train for the sigma-delta conversion (``qcfs`` with ``input_levels`` 255 only,
        :mod:`lava_retrieval.conversion.sdnn`): the forward pass uses the weights that
        conversion makes (each layer's ratio of steps, a power-of-two scale, 8 bits, rounded
        with a straight-through gradient) and the QCFS activations have no ceiling, so the
        ANN computes what the sigma-delta network will (up to the output layer's scale).

    >>> net = ConvNet("32-64-10")
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> net.embed(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 1024])
    """

    def __init__(
        self,
        spec: str | ArchSpec,
        dropout: float = 0.5,
        activation: str = "relu",
        levels: int | None = None,
        input_levels: int | None = None,
        sdnn: bool = False,
    ) -> None:
        super().__init__()
        self.spec = spec if isinstance(spec, ArchSpec) else ArchSpec.parse(spec)
        if not 0.0 <= dropout < 1.0:
            raise SpecError(f"dropout must lie in [0, 1), got {dropout}")
        if activation not in ACTIVATIONS:
            raise SpecError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if (activation == "qcfs") != (levels is not None):
            raise SpecError("levels is required with activation 'qcfs' and only with it")
        if input_levels is not None and not (activation == "qcfs" and input_levels >= 1):
            raise SpecError("input_levels is a positive number of levels, with 'qcfs' only")
        self.activation, self.levels = activation, levels
        self.input_levels = input_levels if input_levels is not None else levels
        qcfs = activation == "qcfs"
        if sdnn and not (qcfs and self.input_levels == 255):
            raise SpecError("sdnn training needs activation 'qcfs' and input_levels 255")
        self.sdnn = bool(sdnn)

        def act() -> list[nn.Module]:
            return [QCFS(int(levels or 0), ceiling=not sdnn)] if qcfs else [nn.ReLU()]

        channels = (INPUT_SHAPE[0], *self.spec.conv_channels)
        layers: list[nn.Module] = []
        if qcfs:  # the input, quantised to its levels
            layers.append(QCFS(int(self.input_levels or 0), 1.0, trainable=False))
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            if i < 2:
                layers += [nn.Conv2d(c_in, c_out, 5), *act(), nn.AvgPool2d(2)]
                layers += [QCFS(int(levels or 0), ceiling=not sdnn)] if qcfs else []
            else:
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), *act()]
        c, h, w = self.spec.embedding_shape
        layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * h * w, self.spec.num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of (N, 1, 28, 28) images in [0, 1]."""
        return self._sdnn_forward(x, len(self.layers)) if self.sdnn else self.layers(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened output of the layer before the dense layer (torch C, H, W order)."""
        if self.sdnn:
            return self._sdnn_forward(x, len(self.layers) - 2)
        return self.layers[:-2](x)

    def _sdnn_forward(self, x: torch.Tensor, end: int) -> torch.Tensor:
        """The first ``end`` modules with the sigma-delta conversion's weights (``sdnn``)."""
        modules = list(self.layers)
        step: Any = None  # the step of the activation the next synaptic layer receives
        for i, module in enumerate(modules[:end]):
            if isinstance(module, QCFS):
                x = module(x)
                step = module.threshold.clamp(min=1e-3) / module.levels
                continue
            if not isinstance(module, (nn.Conv2d, nn.AvgPool2d, nn.Linear)):
                x = module(x)
                continue
            after = next((m for m in modules[i + 1 :] if isinstance(m, QCFS)), None)
            out_step: Any = 1.0 if after is None else after.threshold.clamp(min=1e-3) / after.levels
            ratio = step / out_step
            if isinstance(module, nn.AvgPool2d):
                size = module.kernel_size
                area = size * size if isinstance(size, int) else size[0] * size[1]
                weight = _sdnn_quantised(ratio / area * torch.ones(1), ratio)
                x = F.avg_pool2d(x, module.kernel_size, divisor_override=1) * weight
                continue
            weight = _sdnn_quantised(module.weight * ratio, ratio)
            scale = _sdnn_scale(module.weight * ratio)
            bias = _round_ste(module.bias / out_step * scale) * out_step / scale
            if isinstance(module, nn.Conv2d):
                x = F.conv2d(x, weight, bias, module.stride, module.padding)
            else:
                x = F.linear(x, weight, bias)
        return x

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())
