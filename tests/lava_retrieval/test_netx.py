"""The netx export loads in lava-dl and spikes exactly like the project's own simulation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lava_retrieval.conversion import ConversionConfig, calibration_indices, convert
from lava_retrieval.netx import NetxExportError, export_netx, run_netx
from lava_retrieval.sim import simulate
from lava_retrieval.train import load_checkpoint

STEPS = 6
NETX_CONFIG = ConversionConfig(
    pool_mode="folded", reset="zero", num_weight_bits=8, calibration_size=300
)


@pytest.fixture(scope="module")
def zero_reset_network(fashion):
    train_images, _ = fashion.split("train")
    calibration = train_images[calibration_indices(len(train_images), NETX_CONFIG)]
    return convert(load_checkpoint().model, calibration, NETX_CONFIG)


def test_netx_spikes_match_the_integer_simulation(zero_reset_network, fashion, tmp_path):
    path = export_netx(zero_reset_network, tmp_path / "net.h5")
    images = fashion.test_images[:2]
    ours = simulate(zero_reset_network, images, STEPS, record_spikes=True).spikes
    total_spikes = 0
    for n, image in enumerate(images):
        theirs = run_netx(path, zero_reset_network, image, STEPS)
        assert len(theirs) == len(zero_reset_network.layers)
        for layer, mine, got in zip(zero_reset_network.layers, ours, theirs, strict=True):
            mine = mine[:, n]
            if mine.ndim == 4:  # (T, C, H, W) -> netx's (T, W, H, C)
                mine = mine.transpose(0, 3, 2, 1)
            np.testing.assert_array_equal(got.astype(bool), mine, err_msg=layer.name)
            total_spikes += int(mine.sum())
    assert total_spikes > 1000  # the comparison is not between two silent networks


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
    ],
)
def test_inexact_exports_are_refused(config, message, tmp_path):
    rng = np.random.default_rng(0)
    from lava_retrieval.ann import ConvNet

    network = convert(ConvNet("4-8-10"), rng.random((16, 28, 28)), config)
    with pytest.raises(NetxExportError, match=message):
        export_netx(network, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
