"""The sigma-delta method (``qcfs8-sdnn``): its conversion, its closed form, its lowering onto
Lava's own sigma-delta processes and why the streamed mode brings its own ``SigmaDelta`` model.

Engine-by-engine equality with the reference is the conformance suite's (the ``sdnn-*`` cases);
this file holds what is particular to the method."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.conversion.sdnn import convert_sdnn, convert_sdnn_checkpoint
from lava_retrieval.loihi import sdnn_lowering
from lava_retrieval.snn.network import SpikingLayer, SpikingNetwork
from lava_retrieval.snn.reference import readout_of, simulate_reference

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "lava_retrieval" / "pretrained" / "32-64-10-qcfs8s"


@pytest.fixture(scope="module")
def network():
    return convert_sdnn_checkpoint(load_checkpoint(SHIPPED))


def test_the_conversion_gives_what_the_chip_holds(network):
    """Power-of-two thresholds (the recorded state exponents), 8-bit weights, the rounding half
    as the initial potential, provably inside the 24-bit state and the 16-bit messages."""
    exps = network.manifest["sdnn"]["state_exp"]
    assert [layer.threshold for layer in network.layers[1:]] == [1 << k for k in exps]
    assert all(int(np.abs(x.weight).max()) <= 127 for x in network.layers[1:])
    assert max(int(np.abs(x.weight).max()) for x in network.layers[1:]) >= 64  # bits used
    assert [network.neuron(i).v_init for i in range(1, 6)] == [1 << (k - 1) for k in exps]
    assert network.analog_input and network.layers[0].param_scale == 255.0
    assert sdnn_lowering.problems(network) == []
    bounds = sdnn_lowering.bounds(network)
    assert max(b.largest_sum for b in bounds) <= sdnn_lowering.MAX_STATE
    # pooling is a grouped convolution of one equal weight per layer
    for pool in (network.layers[2], network.layers[4]):
        assert pool.kind == "pool" and pool.groups == pool.weight.shape[0]
        assert len(np.unique(pool.weight)) == 1


def test_saved_and_loaded_it_computes_the_same(network, tmp_path):
    path = network.save(tmp_path / "sdnn.npz")
    loaded = SpikingNetwork.load(path)
    assert loaded.equals(network) and loaded.fingerprint() == network.fingerprint()


def forward_pass(path: Path, images: np.ndarray) -> list[np.ndarray]:
    """Each layer's message from the file's numbers alone, in float64 torch ops (exact for
    these integers): ``m = floor(max(W . m_prev + bias + v_init, 0) / threshold)``, the
    first layer's ``m_prev`` the pixel ``round(pixel x param_scale)``."""
    network = SpikingNetwork.load(path)
    messages = [np.zeros((len(images), *network.layers[0].output_shape))]
    sent = torch.from_numpy(np.rint(images / 255.0 * network.layers[0].param_scale)[:, None])
    for layer in network.layers[1:]:
        weight = torch.from_numpy(np.asarray(layer.weight, np.float64))
        if layer.kind == "dense":
            total = sent.flatten(1) @ weight.T
        else:
            total = F.conv2d(
                sent, weight, stride=layer.stride, padding=layer.padding, groups=layer.groups
            )
        if layer.bias is not None:
            shape = (1, -1) + (1,) * (total.dim() - 2)
            total = total + torch.from_numpy(layer.bias.astype(np.float64)).view(shape)
        v_init = int(np.floor(network.initial_membrane * layer.threshold))
        sent = torch.div((total + v_init).clamp(min=0), layer.threshold, rounding_mode="floor")
        messages.append(sent.numpy())
    return messages


def test_every_layer_is_the_closed_form(network, fashion, tmp_path):
    path = network.save(tmp_path / "sdnn.npz")
    images = fashion.test_images[:32]
    want = forward_pass(path, images)
    got = simulate_reference(network, images, 1, "sigma_delta")
    for i in range(1, len(network.layers)):
        np.testing.assert_array_equal(got.spike_counts[i], want[i], err_msg=network.layers[i].name)
    assert int(got.spike_counts[4].sum()) > 0


def test_the_ann_trained_in_the_loop_computes_the_network(network, fashion):
    """The checkpoint's forward pass (``sdnn``: the conversion's weights in the loop) and the
    integer network classify the same images the same way (float32 ties aside)."""
    model = load_checkpoint(SHIPPED).model.eval()
    assert model.sdnn
    images = fashion.test_images[:500]
    with torch.no_grad():
        ann = model(torch.from_numpy(images[:, None].astype(np.float32) / 255)).argmax(1).numpy()
    result = simulate_reference(network, images, 1, "sigma_delta")
    sums = readout_of(replace(network, embedding_layer=4), result, "spike_count")
    assert sums.shape == (500, 1024)
    last = len(network.layers) - 1
    out = result.spike_counts[last] * network.layers[last].threshold + result.membrane[last]
    assert (out.argmax(1) == ann).mean() >= 0.99


def _dense_network(weight: int, threshold: int, bias: int = 0) -> SpikingNetwork:
    w = np.full((2, 784), weight, np.int32)
    w[1] = -weight
    dense = SpikingLayer(
        "dense1", "dense", (1, 28, 28), (2,), w, np.array([bias, -bias]), threshold, 1.0, 1.0
    )
    out = SpikingLayer("dense2", "dense", (2,), (1,), np.ones((1, 2), np.int32), None, 1, 1.0, 1.0)
    pixels = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 1, 255.0, 1.0)
    return SpikingNetwork((pixels, dense, out), 1, "subtract", "folded", "hand", {}, 0.5, True)


def test_the_24_bit_bound_is_proved_at_its_edge():
    assert sdnn_lowering.problems(_dense_network(41, 1024)) == []
    (problem,) = sdnn_lowering.problems(_dense_network(42, 1024))
    assert "24-bit state" in problem and "dense1" in problem


def test_the_bound_covers_what_lava_s_conv_wraps():
    """Lava's Conv wraps its output, before the bias, at 24 bits; streamed it computes the
    synapses' sum of the *change* between two images, which reaches the positive and the
    negative weights' sums together: a layer whose neuron state always fits but whose streamed
    synaptic sum can pass 2**23 is refused."""
    w = np.zeros((1, 1, 28, 28), np.int32)
    w.reshape(-1)[:200], w.reshape(-1)[200:400] = 127, -127  # each half alone: 6.48 M
    conv = SpikingLayer("conv1", "conv", (1, 28, 28), (1, 1, 1), w, np.array([0]), 256, 1.0, 1.0)
    out = SpikingLayer(
        "dense1", "dense", (1, 1, 1), (1,), np.ones((1, 1), np.int32), None, 1, 1.0, 1.0
    )
    pixels = SpikingLayer("input", "input", (1, 28, 28), (1, 28, 28), None, None, 1, 255.0, 1.0)
    network = SpikingNetwork((pixels, conv, out), 1, "subtract", "folded", "hand", {}, 0.5, True)
    (problem,) = sdnn_lowering.problems(network)
    assert "conv1" in problem and "24-bit" in problem
    half = replace(conv, weight=np.where(w > 0, w, 0))  # one sign: 6.48 M either way
    assert sdnn_lowering.problems(replace(network, layers=(pixels, half, out))) == []


def test_every_reason_in_one_message():
    bad = _dense_network(200, 1000, bias=40_000)
    bad = replace(bad, reset="zero", analog_input=False)
    with pytest.raises(sdnn_lowering.SdnnLoweringError) as caught:
        sdnn_lowering.check(bad)
    message = str(caught.value)
    for what in ("analog", "subtraction", "power of two", "+-127", "16-bit bias"):
        assert what in message, what
    assert "\n" not in message


def test_lava_0_10_streamed_without_the_reset_is_not_exact(network, fashion):
    """Lava 0.10's own SigmaDelta model drops the bits each change loses in its shift: streamed
    without the per-image reset, the embeddings drift from the reference (the stream mode's
    own model, the conformance suite shows, does not)."""
    from lava_retrieval.lava_graph.sdnn_graph import SdnnGraph

    images = fashion.test_images[:4]
    stock = SdnnGraph(network, images, mode="stream", stock_stream=True).run()
    want = simulate_reference(network, images, 1, "sigma_delta").spike_counts[4].reshape(4, -1)
    wrong = [not np.array_equal(a, b) for a, b in zip(stock.embeddings, want, strict=True)]
    assert sum(wrong) >= 3
    exact = SdnnGraph(network, images, mode="stream").run()
    np.testing.assert_array_equal(exact.embeddings, want)
    last = len(network.layers) - 1
    reference = simulate_reference(network, images, 1, "sigma_delta")
    sums = (
        reference.spike_counts[last] * network.layers[last].threshold
        + reference.membrane[last]
        - network.neuron(last).v_init
    )
    np.testing.assert_array_equal(exact.outputs, sums)
    assert exact.steps == 4 + last  # one step per image, the last image's class sums after 5


def test_the_converter_refuses_an_ann_it_cannot_convert():
    from lava_retrieval.ann.model import ConvNet
    from lava_retrieval.conversion.algorithm import ConversionError

    with pytest.raises(ConversionError, match="QCFS"):
        convert_sdnn(ConvNet("4-8-10"))
    with pytest.raises(ConversionError, match="input-levels 255"):
        convert_sdnn(ConvNet("4-8-10", activation="qcfs", levels=8))


def test_the_conversion_lowers_the_exponent_until_the_bias_fits(network):
    """A bias that 16 bits hold only at a smaller scale: the conversion takes that scale (it
    keeps every other layer), and the network lowers."""
    model = load_checkpoint(SHIPPED).model
    with torch.no_grad():
        model.layers[1].bias[0] = 4.5  # 4.5 / step levels: beyond 16 bits at 2**10
    converted = convert_sdnn(model)
    assert converted.manifest["sdnn"]["state_exp"][0] < network.manifest["sdnn"]["state_exp"][0]
    assert converted.manifest["sdnn"]["state_exp"][1:] == network.manifest["sdnn"]["state_exp"][1:]
    assert sdnn_lowering.problems(converted) == []
