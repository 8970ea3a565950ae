"""Algorithm 1: a hand-computed example, invariants, slope bookkeeping, pooling modes, errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.ann.model import QCFS, ConvNet
from lava_retrieval.conversion.algorithm import (
    ConversionConfig,
    ConversionError,
    calibration_indices,
    convert,
)
from lava_retrieval.engines.sim import simulate
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import NetworkError, SpikingNetwork

MAX_BASED = ConversionConfig(param_percentile=100.0, activation_percentile=100.0)


def _two_layer_ann() -> nn.Sequential:
    """784 -> 2 -> 2 with hand-picked parameters; only pixels 0 and 1 matter."""
    ann = nn.Sequential(nn.Flatten(), nn.Linear(784, 2), nn.ReLU(), nn.Linear(2, 2)).double()
    with torch.no_grad():
        ann[1].weight.zero_()
        ann[1].weight[:, :2] = _f64([[0.8, -0.4], [0.3, 0.6]])
        ann[1].bias[:] = _f64([0.1, -0.05])
        ann[3].weight[:] = _f64([[1.0, -0.5], [0.25, 0.75]])
        ann[3].bias[:] = _f64([0.0, 0.2])
    return ann


def _f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _two_images() -> np.ndarray:
    images = np.zeros((2, 28, 28))
    images[0, 0, 0], images[0, 0, 1] = 1.0, 0.5
    images[1, 0, 0] = 0.2
    return images


def test_hand_computed_two_layer_example():
    """Every number below was computed by hand from Algorithm 1 (W_MAX = b_MAX = 255, max)."""
    net = convert(_two_layer_ann(), _two_images(), MAX_BASED, arch="hand")
    inp, hidden, out = net.layers
    # Input: currents round(255 * [1, .5]) = [255, 128] and [51, 0]; threshold = max = 255.
    assert inp.threshold == 255 and inp.param_scale == 255.0 and inp.slope == 1.0
    # Layer 1: bias*slope = [.1, -.05]; weight_norm .8, bias_norm .1;
    # param_scale = min(255/.8, 255/.1) = 318.75; int() truncates toward zero.
    assert hidden.param_scale == 318.75
    assert hidden.weight[:, :2].tolist() == [[255, -127], [95, 191]]  # -127.5 -> -127
    assert not hidden.weight[:, 2:].any()
    assert hidden.bias.tolist() == [31, -15]  # 31.875 -> 31, -15.9375 -> -15
    # dvdt: image 0: 255 - 127*128/255 + 31 = 222.25..., 95 + 191*128/255 - 15 = 175.87...
    #       image 1: 255*.2 + 31 = 82, 95*.2 - 15 = 4     -> threshold int(222.25) = 222
    assert hidden.threshold == 222
    assert hidden.slope == pytest.approx(318.75 / 222)
    # Layer 2: bias = [0, .2 * 318.75/222]; weight_norm 1, bias_norm .28716 -> param_scale 255.
    assert out.param_scale == 255.0
    assert out.weight.tolist() == [[255, -127], [63, 191]]
    assert out.bias.tolist() == [0, 73]  # .2 * 1.4358 * 255 = 73.23 -> 73
    # Rates of layer 1: image 0: [min(222.25/222, 1), 175.87/222] = [1, .79223];
    # output dvdt of image 0, neuron 1: 63 + 191 * .79223 + 73 = 287.32 -> threshold 287.
    assert out.threshold == 287
    assert out.slope == pytest.approx(318.75 / 222 * 255 / 287)
    assert net.embedding_layer == 1 and net.embedding_shape == (2,)


def test_percentile_below_100_clips_to_w_max():
    ann = _two_layer_ann()
    with torch.no_grad():
        ann[1].weight[:, 2:] = 0.011  # many small weights: the median of |W| is 0.011
        ann[1].bias[:] = _f64([0.1, -0.052])
    config = ConversionConfig(param_percentile=50.0, activation_percentile=100.0)
    hidden = convert(ann, _two_images(), config).layers[1]
    # param_scale = min(255 / .011, 255 / median(.1, .052)) = 255 / .076 = 3355.26
    assert hidden.param_scale == pytest.approx(255 / 0.076)
    assert hidden.weight[:, :2].tolist() == [[255, -255], [255, 255]]  # clipped to W_MAX
    assert (hidden.weight[:, 2:] == 36).all()  # .011 * 3355.26 = 36.9
    assert hidden.bias.tolist() == [255, -174]  # 335.5 clipped to b_MAX; -174.47


@pytest.mark.parametrize("spec", ["4-8-10", "8-16-32-10", "4-8-16-32-10"])
@pytest.mark.parametrize("pool_mode", ["separate", "folded"])
@pytest.mark.parametrize("percentile", [99.999, 100.0])
def test_invariants_on_random_networks(spec, pool_mode, percentile):
    torch.manual_seed(0)
    ann = ConvNet(spec)
    config = ConversionConfig(
        pool_mode=pool_mode, param_percentile=percentile, activation_percentile=percentile
    )
    images = np.random.default_rng(0).random((64, 28, 28))
    net = convert(ann, images, config)
    kinds = [layer.kind for layer in net.layers]
    assert kinds[0] == "input" and kinds[-1] == "dense"
    assert ("pool" in kinds) == (pool_mode == "separate")
    for layer in net.layers:
        assert layer.threshold >= 1
        if layer.weight is not None:
            assert layer.weight.dtype == np.int32
            assert np.abs(layer.weight).max() <= config.w_max
        if layer.bias is not None:
            assert np.abs(layer.bias).max() <= config.b_max
    c = ann.spec.conv_channels[-1]
    expected = (c, 4, 4) if pool_mode == "separate" else (c, 8, 8)
    if len(ann.spec.conv_channels) > 2 and pool_mode == "folded":
        expected = (c, 4, 4)  # the extra 3x3 convolutions run after the pooling
    assert net.embedding_shape == expected


def test_slope_bookkeeping_on_a_linear_stack():
    """With no rectification and no rate clipping active, SNN rate = ANN activation x slope."""
    torch.manual_seed(1)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():  # non-negative parameters keep every ReLU in its linear part
        for layer in (ann[1], ann[3]):
            layer.weight.uniform_(0.0, 0.02)
            layer.bias.uniform_(0.0, 0.1)
    images = np.random.default_rng(1).random((32, 28, 28))
    net = convert(ann, images, MAX_BASED)  # max-based: every rate stays <= 1
    steps = 2000
    result = simulate(net, images, SimConfig(steps, timing="no_delay", readout="membrane"))
    with torch.no_grad():
        x = torch.from_numpy(images).float()[:, None]
        hidden = ann[:3](x).numpy()
        output = ann(x).numpy()
    for index, activation in ((1, hidden), (2, output)):
        rate = result.spike_counts[index] / steps
        predicted = activation * net.layers[index].slope
        # int() of the max-based threshold can leave the top rate a little above 1.
        assert predicted.max() <= 1.05
        predicted = np.minimum(predicted, 1.0)
        # Stated tolerance: truncating weights to integers (< 1 of 255 per weight, a few
        # percent of a rate) and the 1/T resolution of a spike count.
        np.testing.assert_allclose(rate, predicted, atol=0.03)


@pytest.fixture(scope="module")
def shipped_pair(fashion):
    ckpt = load_checkpoint()
    train_images, _ = fashion.split("train")
    config = ConversionConfig(calibration_size=500)
    calibration = train_images[calibration_indices(len(train_images), config)]
    separate = convert(ckpt.model, calibration, config)
    folded = convert(
        ckpt.model, calibration, ConversionConfig(calibration_size=500, pool_mode="folded")
    )
    return separate, folded


def test_pooling_modes_agree_in_the_rate_domain(shipped_pair, fashion):
    separate, folded = shipped_pair
    images = fashion.test_images[:32]
    steps = 256
    estimates = []
    for net in (separate, folded):
        counts = simulate(
            net, images, SimConfig(steps, timing="no_delay", readout="membrane")
        ).spike_counts[-1]
        estimates.append(counts / steps / net.layers[-1].slope)  # back to ANN logit units
    a, b = estimates
    # Positive logits (the output neurons rectify) agree within 10 % of the largest one.
    assert np.abs(a - b).max() <= 0.1 * max(a.max(), b.max())
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9


def test_save_load_round_trip_is_exact(shipped_pair, tmp_path):
    for net in shipped_pair:
        path = net.save(tmp_path / f"{net.pool_mode}.npz")
        loaded = SpikingNetwork.load(path)
        assert loaded.equals(net)
        assert loaded.manifest["converter"]["pool_mode"] == net.pool_mode
        assert loaded.manifest["calibration_size"] == 500
        for a, b in zip(loaded.layers, net.layers, strict=True):
            assert a.param_scale == b.param_scale and a.slope == b.slope  # exact floats


def test_load_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, header=np.frombuffer(b'{"format": "x", "version": 9}', dtype=np.uint8))
    with pytest.raises(NetworkError, match="format 'x' version 9"):
        SpikingNetwork.load(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(NetworkError, match="not a spiking-network file"):
        SpikingNetwork.load(tmp_path / "junk.npz")


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (nn.MaxPool2d(2), r"layer 2 \(MaxPool2d\): max pooling cannot be converted"),
        (nn.BatchNorm2d(4), r"layer 2 \(BatchNorm2d\): batch-norm must be folded"),
        (nn.Sigmoid(), r"layer 2 \(Sigmoid\) is not supported"),
    ],
)
def test_unsupported_layers_are_named(module, message):
    ann = nn.Sequential(
        nn.Conv2d(1, 4, 5), nn.ReLU(), module, nn.Flatten(), nn.Linear(4 * 24 * 24, 10)
    )
    with pytest.raises(ConversionError, match=message):
        convert(ann, np.zeros((2, 28, 28)) + 0.5)


def test_missing_relu_is_refused():
    ann = nn.Sequential(nn.Conv2d(1, 4, 5), nn.Flatten(), nn.Linear(4 * 24 * 24, 10))
    with pytest.raises(ConversionError, match=r"layer 0 \(Conv2d\) is not followed by ReLU"):
        convert(ann, np.full((2, 28, 28), 0.5))


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((0, 28, 28)), "empty"),
        (np.full((2, 28, 28), 1.5), r"must lie in \[0, 1\], found values in \[1.5, 1.5\]"),
        (np.full((2, 28, 28), -0.1), r"must lie in \[0, 1\]"),
        (np.full((2, 28, 28), np.nan), "contain NaN"),
        (np.zeros((2, 32, 32)), r"must be \(N, 28, 28\)"),
        (np.zeros((2, 28, 28), np.int64), "must be uint8 or float"),
    ],
)
def test_bad_calibration_images(images, message):
    with pytest.raises(ConversionError, match=message):
        convert(_two_layer_ann(), images)


def test_threshold_that_truncates_to_zero_raises():
    with pytest.raises(ConversionError, match="input: the threshold truncates to 0"):
        convert(_two_layer_ann(), np.zeros((2, 28, 28)))
    ann = _two_layer_ann()
    with torch.no_grad():
        ann[1].bias[:] = -10.0  # layer 1 never fires on these images
    with pytest.raises(ConversionError, match="dense1: the threshold truncates to 0"):
        convert(ann, _two_images(), MAX_BASED)


def test_bad_config():
    with pytest.raises(ConversionError, match="pool_mode='max'"):
        ConversionConfig(pool_mode="max")
    with pytest.raises(ConversionError, match="param_percentile=0"):
        ConversionConfig(param_percentile=0)


def test_calibration_choice_is_fixed_and_seeded():
    config = ConversionConfig()
    a = calibration_indices(54000, config)
    assert len(a) == 2000 and len(np.unique(a)) == 2000
    np.testing.assert_array_equal(a, calibration_indices(54000, config))
    assert not np.array_equal(a, calibration_indices(54000, ConversionConfig(calibration_seed=1)))


def _qcfs_two_layer_ann(levels: int = 8) -> nn.Sequential:
    """The hand-picked 784 -> 2 -> 2 network with QCFS activations (hidden lambda 0.5)."""
    relu = _two_layer_ann()
    hidden = QCFS(levels, threshold=0.5)
    return nn.Sequential(
        QCFS(levels, 1.0, trainable=False), relu[0], relu[1], hidden, relu[3]
    ).double()


def test_learned_thresholds_by_hand():
    network = convert(_qcfs_two_layer_ann(), _two_images(), MAX_BASED)
    inp, hidden, out = network.layers
    # Input: lambda 1 -> threshold W_MAX, slope 1.
    assert inp.threshold == 255 and inp.slope == 1.0
    # Hidden: param_scale = min(255 / 0.8, 255 / 0.1) = 318.75 (max-based), threshold =
    # round(0.5 * 318.75 * 1) = 159, slope = 318.75 / 159.
    assert hidden.param_scale == pytest.approx(318.75)
    assert hidden.threshold == 159
    assert hidden.slope == pytest.approx(318.75 / 159)
    np.testing.assert_array_equal(hidden.weight[:, :2], [[255, -127], [95, 191]])
    # The output layer has no QCFS and keeps Algorithm 1's percentile threshold.
    assert out.threshold == int(np.percentile(_output_rates(network), 100.0))
    # The QCFS shift is half a level: every window starts half-way to the threshold.
    assert network.initial_membrane == 0.5
    assert network.manifest["thresholds"] == "learned (QCFS)"
    assert network.manifest["converter"]["initial_membrane"] == 0.5
    explicit = convert(_qcfs_two_layer_ann(), _two_images(), replace(MAX_BASED, initial_membrane=0))
    assert explicit.initial_membrane == 0.0
    relu = convert(_two_layer_ann(), _two_images(), MAX_BASED)
    assert relu.initial_membrane == 0.0 and relu.manifest["thresholds"] == "activation percentile"


def _output_rates(network) -> np.ndarray:
    """Algorithm 1's simulated input rate of the output layer on the two images."""
    images = _two_images().reshape(2, -1)
    rate = np.minimum(np.rint(images * 255) / 255, 1.0)
    hidden = network.layers[1]
    dvdt = np.maximum(rate @ hidden.weight.T + hidden.bias, 0)
    rate = np.minimum(dvdt / hidden.threshold, 1.0)
    out = network.layers[2]
    return np.maximum(rate @ out.weight.T + out.bias, 0)


def test_qcfs_input_layer_counts_equal_the_quantised_pixels(fashion):
    """An IF neuron with threshold lambda and initial potential lambda / 2 fires exactly
    QCFS(x) * L / lambda times in L steps of a constant input x: the input layer shows it."""
    images = fashion.test_images[:20]
    ann = ConvNet("4-8-10", activation="qcfs", levels=8).eval()
    network = convert(ann, images)
    result = simulate(
        network, images, SimConfig(8, timing="no_delay", readout="membrane"), layers=(0,)
    )
    with torch.no_grad():
        quantised = ann.layers[0](torch.from_numpy(images / 255.0)).numpy()
    np.testing.assert_array_equal(result.spike_counts[0].reshape(images.shape), quantised * 8)


@pytest.mark.parametrize(
    ("ann", "config", "message"),
    [
        (
            lambda: ConvNet("4-8-10", activation="qcfs", levels=4),
            ConversionConfig(pool_mode="folded"),
            "convert it with separate pooling",
        ),
        (
            lambda: nn.Sequential(
                QCFS(4, 1.0, False), nn.Flatten(), nn.Linear(784, 2), nn.ReLU(), nn.Linear(2, 2)
            ),
            None,
            "do not mix QCFS and ReLU",
        ),
        (
            lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 2), QCFS(4), nn.Linear(2, 2)),
            None,
            "do not mix QCFS and ReLU",
        ),
        (
            lambda: nn.Sequential(
                nn.Flatten(), nn.Linear(784, 2), QCFS(4), QCFS(4), nn.Linear(2, 2)
            ),
            None,
            "two QCFS activations in a row",
        ),
        (
            lambda: nn.Sequential(
                QCFS(4, 1.0, False),
                nn.Flatten(),
                nn.Linear(784, 2),
                QCFS(4),
                nn.Linear(2, 2),
                QCFS(4),
            ),
            None,
            "output layer must not be",
        ),
    ],
)
def test_bad_qcfs_networks(ann, config, message):
    with pytest.raises(ConversionError, match=message):
        convert(ann(), _two_images(), config)


def test_non_positive_learned_threshold_is_refused():
    ann = _qcfs_two_layer_ann()
    with torch.no_grad():
        ann[3].threshold.fill_(-1.0)
    with pytest.raises(ConversionError, match="learned threshold is -1"):
        convert(ann, _two_images())
