"""An analog input: the converter's scaling, the network file, the ANN's input quantiser, the
operation counts, and the refusals (the engines themselves are held to the reference by the
conformance suite and the closed-form test)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.ann.config import TrainConfig
from lava_retrieval.ann.model import ConvNet
from lava_retrieval.cli import main
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.conversion.algorithm import (
    ANALOG_THRESHOLD,
    ConversionConfig,
    ConversionError,
    convert,
)
from lava_retrieval.evaluation.energy import op_counts
from lava_retrieval.loihi import lowering
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork
from lava_retrieval.snn.neuron import V_MAX, input_current
from lava_retrieval.snn.synapse import SynapticOp


@pytest.fixture(scope="module")
def calibration(fashion):
    return fashion.split("train")[0][:300]


@pytest.fixture(scope="module")
def qcfs_ann():
    """A QCFS ANN whose input quantiser has 255 levels (the 8-bit image as it is): the shipped
    L = 8 one."""
    return load_checkpoint("lava_retrieval/pretrained/32-64-10-qcfs8a").model


def test_the_input_quantiser_of_255_levels_is_the_8_bit_image():
    net = ConvNet("4-8-10", activation="qcfs", levels=4, input_levels=255)
    pixels = torch.arange(256, dtype=torch.float64).view(1, 1, 16, 16) / 255
    out = net.layers[0](pixels.float())
    assert torch.equal(torch.round(out * 255), torch.arange(256.0).view(1, 1, 16, 16))
    assert ConvNet("4-8-10", activation="qcfs", levels=4).input_levels == 4
    with pytest.raises(LavaRetrievalError, match="input_levels"):
        ConvNet("4-8-10", input_levels=255)
    with pytest.raises(LavaRetrievalError, match="input_levels=255"):
        TrainConfig(input_levels=255)  # only with --activation qcfs
    assert TrainConfig(activation="qcfs", levels=8, input_levels=255).model().input_levels == 255


def test_the_pixel_current_is_p_units_and_the_first_threshold_fits_the_budget(
    qcfs_ann, calibration
):
    net = convert(qcfs_ann, calibration, ConversionConfig(analog_input=True))
    levels = net.manifest["analog_input"]["levels"]
    assert net.analog_input and net.layers[0].param_scale == levels < 255
    # P was lowered from the ANN's 255 to fit the 24-bit budget; the weights kept W_MAX.
    assert net.layers[1].threshold <= ANALOG_THRESHOLD
    assert net.manifest["analog_input"]["first_layer_scale_factor"] == 1.0
    assert int(np.abs(net.layers[1].weight).max()) == ConversionConfig().w_max
    # Given levels are kept, and the weights made coarser instead where needed.
    coarse = convert(qcfs_ann, calibration, ConversionConfig(analog_input=True, input_levels=255))
    assert coarse.layers[0].param_scale == 255
    assert coarse.manifest["analog_input"]["first_layer_scale_factor"] < 1.0
    assert coarse.layers[1].threshold <= ANALOG_THRESHOLD
    assert (33 * coarse.layers[1].threshold) <= V_MAX
    # Only the first layer: every later one keeps the full weight range.
    for later in coarse.layers[2:]:
        assert int(np.abs(later.weight).max()) == ConversionConfig().w_max, later.name


def test_a_threshold_scales_with_the_levels(qcfs_ann, calibration):
    """The learned threshold is lambda x param_scale x P: twice the levels, twice the
    threshold (same weights)."""
    one, two = (
        convert(qcfs_ann, calibration, ConversionConfig(analog_input=True, input_levels=p))
        for p in (8, 16)
    )
    np.testing.assert_array_equal(one.layers[1].weight, two.layers[1].weight)
    assert abs(two.layers[1].threshold - 2 * one.layers[1].threshold) <= 1
    assert one.layers[0].param_scale == 8 and two.layers[0].param_scale == 16


def test_input_levels_need_an_analog_input():
    with pytest.raises(ConversionError, match="input_levels=16"):
        ConversionConfig(input_levels=16)
    with pytest.raises(ConversionError, match="input_levels=300"):
        ConversionConfig(analog_input=True, input_levels=300)


def test_the_file_keeps_the_analog_input_and_the_fingerprint_tells_it_apart(tmp_path):
    network = SpikingNetwork.load("results/snn-32-64-10-qcfs16-analog.npz")
    assert network.analog_input
    again = SpikingNetwork.load(network.save(tmp_path / "n.npz"))
    assert again.equals(network) and again.fingerprint() == network.fingerprint()
    spiking = replace(network, analog_input=False)
    assert spiking.fingerprint() != network.fingerprint() and not spiking.equals(network)
    with pytest.raises(LavaRetrievalError, match="analog_input"):
        replace(network, analog_input="yes")


def test_loihi_and_netx_refuse_it_with_the_reason():
    network = SpikingNetwork.load("results/snn-32-64-10-qcfs16-analog.npz")
    for target in ("loihi", "netx"):
        assert any("analog" in p for p in lowering.problems(network, target))
    found = lowering.config_problems(
        "netx", pool_mode="folded", reset="zero", weight_bits=8, analog_input=True
    )
    assert len(found) == 1 and "--analog-input" in found[0]


def test_convert_cli_writes_it_and_refuses_a_netx_export_first(tmp_path, capsys):
    out = tmp_path / "analog.npz"
    argv = ["convert", "--checkpoint", "lava_retrieval/pretrained/32-64-10-qcfs16"]
    assert main([*argv, "--analog-input", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["layers"][0]["threshold"] == 16  # the ANN's input quantiser: 16 levels
    assert SpikingNetwork.load(out).analog_input
    h5 = tmp_path / "n.h5"
    assert main([*argv, "--analog-input", "--out", str(tmp_path / "x.npz"), "--export-netx",
                 str(h5)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "analog" in err
    assert not h5.exists() and not (tmp_path / "x.npz").exists()
    assert main([*argv, "--input-levels", "8", "--out", str(tmp_path / "y.npz")]) == 2
    assert "input_levels=8" in capsys.readouterr().err


def test_operation_counts_count_pixel_messages(fashion):
    """With an analog input every non-zero pixel current is one message per step it is sent
    (once with graded timing), fanning out to the first layer's synapses; graded layers send
    one message per neuron with a non-zero count."""
    network = SpikingNetwork.load("results/snn-32-64-10-qcfs16-analog.npz")
    images = fashion.test_images[:5]
    sent = input_current(images, network.layers[0].param_scale) > 0
    nonzero = float(sent.sum()) / len(images)
    exact = op_counts(network, images, SimConfig(4, timing="exact_count", readout="membrane"))
    assert exact["layers"][0]["spikes"] == pytest.approx(4 * nonzero)
    ones = replace(network.layers[1], weight=np.ones_like(network.layers[1].weight), bias=None)
    fan_out = SynapticOp(ones)(sent[:, None].astype(np.float32)).sum() / len(images)
    assert exact["layers"][0]["synaptic_ops"] == pytest.approx(4 * fan_out)
    graded = op_counts(network, images, SimConfig(4, timing="graded", readout="membrane"))
    assert graded["layers"][0]["spikes"] == pytest.approx(nonzero)
    from lava_retrieval.engines.sim import simulate

    counts = simulate(
        network, images, SimConfig(4, timing="graded", readout="membrane")
    ).spike_counts
    for i in (1, 2):
        assert graded["layers"][i]["spikes"] == pytest.approx(
            float((np.asarray(counts[i]) > 0).sum()) / len(images)
        )


def test_synaptic_input_of_large_values_is_exact():
    """Currents and counts times the weights past float32's exact range go to float64."""
    from lava_retrieval.snn.network import SpikingLayer

    weight = np.full((1, 1, 2, 2), 40_001, np.int32)
    layer = SpikingLayer("c", "conv", (1, 2, 2), (1, 1, 1), weight, None, 1, 1.0, 1.0)
    op = SynapticOp(layer)
    x = np.array([[[[255, 254], [253, 251]]]])
    assert op(x)[0, 0, 0, 0] == 40_001 * (255 + 254 + 253 + 251)  # odd: float32 rounds it
    assert op.dtype == np.float32  # one spike each would still fit


def test_the_default_checkpoint_loads_with_its_input_levels():
    checkpoint = load_checkpoint("lava_retrieval/pretrained/32-64-10-qcfs8a")
    assert checkpoint.model.input_levels == 255 and checkpoint.model.levels == 8
