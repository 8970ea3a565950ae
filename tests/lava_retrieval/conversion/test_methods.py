"""The named methods: the shipped QCFS checkpoint, its conversion, and the defaults they set."""

from __future__ import annotations

import numpy as np
import pytest

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.ann.inference import accuracy
from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS, get, of_network
from lava_retrieval.engines.sim import simulate
from lava_retrieval.reproduce import steps
from lava_retrieval.search.metrics import predict_classes
from lava_retrieval.snn.config import SimConfig


@pytest.mark.slow
def test_the_qcfs_checkpoint_is_within_half_a_point_of_the_relu_one(fashion):
    images, labels = fashion.split("test")
    qcfs = get("qcfs").checkpoint()
    relu = load_checkpoint()
    assert (qcfs.config.activation, qcfs.config.levels) == ("qcfs", 16)
    assert qcfs.meta["command"][:2] == ["lava-retrieval", "train"]
    ours = 100 * accuracy(qcfs.model, images, labels)
    assert ours == pytest.approx(qcfs.final["test_accuracy"], abs=1e-3)
    assert ours >= relu.final["test_accuracy"] - 0.5


@pytest.fixture(scope="module")
def qcfs_network(fashion):
    return get("qcfs").network(fashion)


def test_its_conversion_uses_the_learned_thresholds(qcfs_network):
    assert qcfs_network.manifest["thresholds"] == "learned (QCFS)"
    assert qcfs_network.initial_membrane == 0.5
    assert of_network(qcfs_network) is METHODS["qcfs"]
    assert get("qcfs").timing == "pipelined"


def test_its_spiking_network_classifies_like_its_ann_at_16_steps(qcfs_network, fashion):
    """An accuracy floor on real data: 1,000 test images, pipelined timing (the method's)."""
    images, labels = fashion.test_images[:1000], fashion.test_labels[:1000]
    ann = 100 * accuracy(get("qcfs").checkpoint().model, images, labels)
    result = simulate(
        qcfs_network, images, SimConfig(16, timing="pipelined", readout="membrane"), layers=(-1,)
    )
    snn = 100 * np.mean(predict_classes(result.spike_counts[-1], result.membrane[-1]) == labels)
    assert snn >= ann - 1.0


def test_the_exact_count_method_classifies_like_its_ann(qcfs_network, fashion):
    """An accuracy floor on real data for ``qcfs-exact``: the same network, the exact-count
    schedule; at 16 steps within half a point of its ANN on 1,000 test images."""
    method = get("qcfs-exact")
    assert (method.timing, method.readout) == ("exact_count", "integrated")
    assert method.checkpoint_path == get("qcfs").checkpoint_path
    graded = get("qcfs-graded")
    assert (graded.timing, graded.checkpoint_path) == ("graded", method.checkpoint_path)
    images, labels = fashion.test_images[:1000], fashion.test_labels[:1000]
    ann = 100 * accuracy(method.checkpoint().model, images, labels)
    result = simulate(
        qcfs_network, images, SimConfig(16, timing="exact_count", readout="membrane"), layers=(-1,)
    )
    snn = 100 * np.mean(predict_classes(result.spike_counts[-1], result.membrane[-1]) == labels)
    assert snn >= ann - 0.5


def test_unknown_method():
    from lava_retrieval.common.errors import LavaRetrievalError

    with pytest.raises(LavaRetrievalError, match="unknown method 'fast'"):
        get("fast")


# --- the one resolver of --method, --network and --checkpoint ------------------------------

PAPER_NET = "results/snn-32-64-10.npz"


def _anonymous(network):
    """``network`` without the record of the ANN it came from."""
    from dataclasses import replace

    manifest = {k: v for k, v in network.manifest.items() if k != "source_sha256"}
    return replace(network, manifest=manifest)


def test_a_network_brings_its_method_and_flags_override_its_parts():
    from lava_retrieval.conversion.methods import resolve

    chosen = resolve(network=PAPER_NET)
    assert chosen.method is METHODS["paper"]
    assert (chosen.config.timing, chosen.config.readout) == ("delay", "membrane")
    assert chosen.checkpoint_path == METHODS["paper"].checkpoint_path
    chosen = resolve(network=PAPER_NET, timing="pipelined", readout="integrated", time_steps=8)
    assert chosen.config == SimConfig(8, timing="pipelined", readout="integrated")
    assert chosen.method is METHODS["paper"]


def test_without_a_network_the_methods_ann_is_converted(analog_network, fashion):
    from lava_retrieval.conversion.methods import resolve

    notes = []
    chosen = resolve(dataset=fashion, log=notes.append)
    assert chosen.method is METHODS[DEFAULT_METHOD]
    assert chosen.network.fingerprint() == analog_network.fingerprint()
    assert len(notes) == 1 and "converting 32-64-10-qcfs8a" in notes[0]
    # The method's own T unless told otherwise: the levels its ANN was trained for.
    assert chosen.config.time_steps == 8
    assert resolve(network=PAPER_NET).config.time_steps == 16
    assert resolve(network=analog_network, time_steps=16).config.time_steps == 16
    with pytest.raises(Exception, match="needs the dataset"):
        resolve()


def test_a_network_of_another_ann_is_refused_where_the_ann_is_needed():
    from lava_retrieval.common.errors import LavaRetrievalError
    from lava_retrieval.conversion.methods import resolve

    qcfs_ann = METHODS["qcfs"].checkpoint_path
    with pytest.raises(LavaRetrievalError, match="converted from another ANN"):
        resolve(network=PAPER_NET, checkpoint=qcfs_ann)
    with pytest.raises(LavaRetrievalError, match="converted from another ANN"):
        resolve(network=PAPER_NET, method="qcfs")
    # Where no ANN is needed (an index), it is simply not known.
    chosen = resolve(network=PAPER_NET, method="qcfs", need_ann=False)
    assert chosen.checkpoint_path is None and chosen.config.timing == "pipelined"
    with pytest.raises(LavaRetrievalError, match="not known"):
        chosen.checkpoint()


def test_a_network_without_provenance_gets_the_default_with_a_note():
    from lava_retrieval.conversion.methods import resolve
    from lava_retrieval.snn.network import SpikingNetwork

    anonymous = _anonymous(SpikingNetwork.load(PAPER_NET))
    assert of_network(anonymous) is None
    notes = []
    chosen = resolve(network=anonymous, log=notes.append)
    assert chosen.method is METHODS[DEFAULT_METHOD] and len(notes) == 1
    assert "does not record its ANN" in notes[0]
    assert resolve(network=anonymous, need_ann=False).checkpoint_path is None
    explicit = resolve(network=anonymous, checkpoint=METHODS["paper"].checkpoint_path)
    assert explicit.checkpoint_path == METHODS["paper"].checkpoint_path


def test_the_method_is_read_from_metadata_not_weights(monkeypatch):
    """Finding a network's method reads each shipped checkpoint's JSON, never its weights."""
    from lava_retrieval.ann import checkpoint as checkpoint_module
    from lava_retrieval.snn.network import SpikingNetwork

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(checkpoint_module, "load_checkpoint", refuse)
    assert of_network(SpikingNetwork.load(PAPER_NET)) is METHODS["paper"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qcfs8-analog", "qcfs4-analog"])
def test_the_analog_checkpoints_are_shipped_with_their_commands(name, fashion):
    """Each ANN trained at L = T with the 8-bit image as its input: its recorded command, its
    levels, and its test accuracy (the default's at most half a point below the ReLU one's)."""
    images, labels = fashion.split("test")
    checkpoint = get(name).checkpoint()
    levels = int(name[4])
    assert (checkpoint.config.levels, checkpoint.config.input_levels) == (levels, 255)
    assert checkpoint.meta["command"][:2] == ["lava-retrieval", "train"]
    assert "--input-levels" in checkpoint.meta["command"]
    ours = 100 * accuracy(checkpoint.model, images, labels)
    assert ours == pytest.approx(checkpoint.final["test_accuracy"], abs=1e-3)
    if name == DEFAULT_METHOD:
        assert ours >= load_checkpoint().final["test_accuracy"] - 0.5


@pytest.fixture(scope="module")
def analog_network(fashion):
    return get("qcfs8-analog").network(fashion)


def test_the_default_method_has_an_analog_input(analog_network):
    """The default: the analog-input network under the exact-count schedule; the reproduce
    report sweeps the same method; a network converted like it is recognised as it."""
    method = get(DEFAULT_METHOD)
    assert DEFAULT_METHOD == steps.DEFAULT == "qcfs8-analog"
    assert method.sim_config().settings() == {
        "time_steps": 8,
        "timing": "exact_count",
        "readout": "integrated",
    }
    assert steps.SWEEP_STEM == "sweep-qcfs8-analog-exact_count-integrated"
    assert analog_network.analog_input and analog_network.layers[0].param_scale > 1
    assert analog_network.manifest["analog_input"]["first_layer_scale_factor"] == 1.0
    assert of_network(analog_network) is method
    graded = get("qcfs8-analog-graded")
    assert (graded.timing, graded.checkpoint_path) == ("graded", method.checkpoint_path)


def test_the_analog_method_classifies_like_its_ann(analog_network, fashion):
    """An accuracy floor on real data for the default method: at 8 steps (the levels its ANN
    was trained at) within a point of its ANN on 1,000 test images (the full protocol's gap
    is in the README's tables)."""
    images, labels = fashion.test_images[:1000], fashion.test_labels[:1000]
    ann = 100 * accuracy(get(DEFAULT_METHOD).checkpoint().model, images, labels)
    result = simulate(
        analog_network, images, SimConfig(8, timing="exact_count", readout="membrane"), layers=(-1,)
    )
    snn = 100 * np.mean(predict_classes(result.spike_counts[-1], result.membrane[-1]) == labels)
    assert snn >= ann - 1.0
