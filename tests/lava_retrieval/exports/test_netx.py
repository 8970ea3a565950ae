"""The netx export's file layout and refusals (its spikes are held to the reference by
``test_conformance.py``)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert
from lava_retrieval.exports.netx import NetxExportError, export_netx

NETX_CONFIG = ConversionConfig(
    pool_mode="folded", reset="zero", num_weight_bits=8, calibration_size=300
)


@pytest.fixture(scope="module")
def zero_reset_network(fashion):
    train_images, _ = fashion.split("train")
    calibration = train_images[calibration_indices(len(train_images), NETX_CONFIG)]
    return convert(load_checkpoint().model, calibration, NETX_CONFIG)


def test_file_layout(zero_reset_network, tmp_path):
    path = export_netx(zero_reset_network, tmp_path / "net.h5")
    with h5py.File(path) as f:
        types = [f[f"layer/{i}/type"][0].decode() for i in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        conv2 = zero_reset_network.layers[2]
        np.testing.assert_array_equal(f["layer/2/weight"][()], conv2.weight)
        assert f["layer/2/stride"][()].tolist() == [2, 2]
        assert f["layer/2/neuron/vThMant"][()] == conv2.threshold - 1
        assert f["layer/4/neuron/iDecay"][()] == 4096


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ConversionConfig(reset="zero", num_weight_bits=8), "--pool-mode folded"),
        (ConversionConfig(pool_mode="folded", num_weight_bits=8), "--reset zero"),
        (ConversionConfig(pool_mode="folded", reset="zero"), "--weight-bits 8"),
        # Every reason at once, in one message.
        (ConversionConfig(), "--pool-mode folded.*--reset zero.*--weight-bits 8"),
    ],
)
def test_inexact_exports_are_refused(config, message, tmp_path):
    rng = np.random.default_rng(0)
    from lava_retrieval.ann.model import ConvNet

    network = convert(ConvNet("4-8-10"), rng.random((16, 28, 28)), config)
    with pytest.raises(NetxExportError, match=message):
        export_netx(network, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
