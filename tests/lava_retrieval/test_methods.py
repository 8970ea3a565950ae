"""The named methods: the shipped QCFS checkpoint, its conversion, and the defaults they set."""

from __future__ import annotations

import numpy as np
import pytest

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.ann.inference import accuracy
from lava_retrieval.conversion.methods import DEFAULT_METHOD, METHODS, get, of_network
from lava_retrieval.engines.sim import simulate
from lava_retrieval.search.metrics import predict_classes
from lava_retrieval.snn.config import SimConfig


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
    assert DEFAULT_METHOD == "qcfs" and get("qcfs").timing == "pipelined"


def test_its_spiking_network_classifies_like_its_ann_at_16_steps(qcfs_network, fashion):
    """An accuracy floor on real data: 1,000 test images, pipelined timing (the method's)."""
    images, labels = fashion.test_images[:1000], fashion.test_labels[:1000]
    ann = 100 * accuracy(get("qcfs").checkpoint().model, images, labels)
    result = simulate(qcfs_network, images, SimConfig(16, timing="pipelined"), layers=(-1,))
    snn = 100 * np.mean(predict_classes(result.spike_counts[-1], result.membrane[-1]) == labels)
    assert snn >= ann - 1.0


def test_unknown_method():
    from lava_retrieval.common.errors import LavaRetrievalError

    with pytest.raises(LavaRetrievalError, match="unknown method 'fast'"):
        get("fast")
