"""The ANN family: spec parsing and output shapes for all twelve architectures of Table 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lava_retrieval.ann.model import QCFS, TABLE1_SPECS, ArchSpec, ConvNet
from lava_retrieval.common.errors import SpecError


@pytest.mark.parametrize("spec", TABLE1_SPECS)
def test_output_and_embedding_shapes(spec):
    parsed = ArchSpec.parse(spec)
    net = ConvNet(spec).eval()
    x = torch.rand(3, 1, 28, 28)
    assert net(x).shape == (3, 10)
    c, h, w = parsed.embedding_shape
    assert (h, w) == (4, 4) and c == parsed.conv_channels[-1]
    assert net.embed(x).shape == (3, c * h * w)
    assert str(parsed) == spec


@pytest.mark.parametrize("spec", TABLE1_SPECS)
def test_only_convertible_layers(spec):
    allowed = (nn.Conv2d, nn.ReLU, nn.AvgPool2d, nn.Flatten, nn.Dropout, nn.Linear)
    layers = list(ConvNet(spec).layers)
    assert all(isinstance(layer, allowed) for layer in layers)
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    assert len(convs) == len(ArchSpec.parse(spec).conv_channels)
    assert sum(isinstance(layer, nn.AvgPool2d) for layer in layers) == 2


def test_paper_network_32_64_10():
    net = ConvNet("32-64-10")
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "AvgPool2d",
        "Conv2d",
        "ReLU",
        "AvgPool2d",
        "Flatten",
        "Dropout",
        "Linear",
    ]
    conv1, conv2, dense = net.layers[0], net.layers[3], net.layers[8]
    assert conv1.kernel_size == conv2.kernel_size == (5, 5)
    assert conv1.padding == conv2.padding == (0, 0)
    assert dense.in_features == 1024
    # 32*25+32 + 64*32*25+64 + 1024*10+10
    assert net.num_parameters == 832 + 51264 + 10250 == 62346


def test_embedding_is_the_input_of_the_dense_layer():
    net = ConvNet("8-16-10").eval()
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(net.layers[-1](net.embed(x)), net(x))


@pytest.mark.parametrize(
    "spec", ["", "32", "32-10", "1-2-3-4-5-10", "32-x-10", "32-0-10", "32--64-10", 3264]
)
def test_bad_specs(spec):
    with pytest.raises(SpecError):
        ArchSpec.parse(spec)


def test_bad_dropout():
    with pytest.raises(SpecError, match="dropout"):
        ConvNet("4-8-10", dropout=1.0)


def test_qcfs_network_quantises_every_spiking_layer():
    net = ConvNet("8-16-32-10", activation="qcfs", levels=4)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == [
        "QCFS",
        "Conv2d",
        "QCFS",
        "AvgPool2d",
        "QCFS",
        "Conv2d",
        "QCFS",
        "AvgPool2d",
        "QCFS",
        "Conv2d",
        "QCFS",
        "Flatten",
        "Dropout",
        "Linear",
    ]
    # The input's threshold is fixed at 1 (pixels in [0, 1]); the others are learned.
    assert not net.layers[0].threshold.requires_grad and float(net.layers[0].threshold) == 1.0
    learned = [m for m in net.layers[1:] if isinstance(m, QCFS)]
    assert all(m.threshold.requires_grad and m.levels == 4 for m in learned)
    assert net.num_parameters == ConvNet("8-16-32-10").num_parameters + len(learned)
    # Every embedding value is a multiple of its layer's threshold / L.
    emb = net.eval().embed(torch.rand(2, 1, 28, 28))
    steps = emb / (float(net.layers[-4].threshold) / 4)
    torch.testing.assert_close(steps, steps.round())


def test_qcfs_values_and_straight_through_gradients():
    base = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 0.6
    g = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    q = QCFS(8, threshold=0.7)
    x = base.clone().requires_grad_()
    out = q(x)
    (out * g).sum().backward()
    # The definition, with the floor's gradient passed straight through, by autograd.
    lam = torch.tensor(0.7, requires_grad=True)
    x2 = base.clone().requires_grad_()
    y = torch.clamp(x2 / lam, 0, 1)
    levels = torch.floor(y * 8 + 0.5) / 8
    expected = lam * (y + (levels - y).detach())
    (expected * g).sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(q.threshold.grad, lam.grad)
    assert len(torch.unique(out.detach())) == 9  # 0, lam/8, ..., lam


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "qcfs"}, "levels is required"),
        ({"levels": 4}, "levels is required"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"activation": "qcfs", "levels": 0}, "at least one level"),
    ],
)
def test_bad_activation(kwargs, message):
    with pytest.raises(SpecError, match=message):
        ConvNet("4-8-10", **kwargs)
