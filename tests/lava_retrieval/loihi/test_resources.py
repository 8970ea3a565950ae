"""The Loihi resource model, checked by hand on 32-64-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lava_retrieval.ann.model import ConvNet
from lava_retrieval.conversion.algorithm import ConversionConfig, convert
from lava_retrieval.loihi import resources as loihi

IMAGES = np.random.default_rng(0).random((32, 28, 28))


def _net(spec: str = "32-64-10", **config) -> object:
    torch.manual_seed(0)
    return convert(ConvNet(spec), IMAGES, ConversionConfig(**config))


def test_32_64_10_by_hand():
    report = loihi.check(_net())
    rows = {r.name: r for r in report.layers}
    # neurons, fan-in, synapses, bytes at 9 bits, cores
    # input : 28*28 = 784 neurons driven by bias: no synapses, one core.
    # conv1 : 32*24*24 = 18432, 5*5*1 = 25, 18432*25 = 460800, *9/8 = 518400;
    #         28.125 B/neuron allows 4660 > 1024 neurons/core -> ceil(18432/1024) = 18 cores.
    # pool1 : 32*12*12 = 4608, 4, 18432, 20736, ceil(4608/1024) = 5.
    # conv2 : 64*8*8 = 4096, 5*5*32 = 800, 3276800, 3686400; 900 B/neuron ->
    #         floor(131072/900) = 145 neurons/core -> ceil(4096/145) = 29.
    # pool2 : 1024, 4, 4096, 4608, 1.      dense1: 10, 1024, 10240, 11520, 1.
    expected = {
        "input": (784, 0, 0, 0, 1),
        "conv1": (18432, 25, 460800, 518400, 18),
        "pool1": (4608, 4, 18432, 20736, 5),
        "conv2": (4096, 800, 3276800, 3686400, 29),
        "pool2": (1024, 4, 4096, 4608, 1),
        "dense1": (10, 1024, 10240, 11520, 1),
    }
    for name, values in expected.items():
        r = rows[name]
        assert (r.neurons, r.fan_in, r.synapses, r.synaptic_memory_bytes, r.cores) == values
    assert report.total_cores == 55
    assert report.deployable and report.reason == ""


def test_folded_32_64_10_needs_more_cores():
    # conv2 folded: 10x10 kernel on 32 channels, fan-in 3200, 3600 B/neuron at 9 bits ->
    # 36 neurons/core -> ceil(4096/36) = 114 cores; total 1 + 18 + 114 + 1 = 134 > 128.
    report = loihi.check(_net(pool_mode="folded"))
    assert [r.cores for r in report.layers] == [1, 18, 114, 1]
    assert not report.deployable and "134 cores needed, the chip has 128" in report.reason
    # With 8-bit weights 3200 B/neuron -> 40 per core -> 103 cores: it fits again.
    assert loihi.check(_net(pool_mode="folded"), num_weight_bits=8).total_cores == 123


def test_padding_taps_are_not_synapses():
    report = loihi.check(_net("4-8-16-10"))
    conv3 = report.layers[-2]
    # 3x3 "same" conv on 4x4: in-bounds taps per row position 2+3+3+2 = 10, so 10*10 per
    # channel pair instead of 16*9 = 144.
    assert conv3.fan_in == 9 * 8 and conv3.synapses == 100 * 16 * 8


def test_fan_in_limit():
    report = loihi.check(_net("32-64-128-256-10"))
    assert report.layers[-1].fan_in == 4096 and report.deployable
    big = loihi.check(_net("32-64-128-257-10"))
    assert not big.deployable and "dense1: fan-in 4112 exceeds 4096" in big.reason


def test_core_map_png(tmp_path):
    report = loihi.check(_net())
    path = loihi.plot_core_map(report, tmp_path / "chip.png", title="32-64-10")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(path).size[0] > 800


@pytest.mark.parametrize("bits", [8, 9])
def test_memory_scales_with_weight_bits(bits):
    report = loihi.check(_net(num_weight_bits=bits), num_weight_bits=bits)
    conv2 = {r.name: r for r in report.layers}["conv2"]
    assert conv2.synaptic_memory_bytes == 3276800 * bits // 8
