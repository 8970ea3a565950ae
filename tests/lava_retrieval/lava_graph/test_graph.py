"""The Lava process graph's own behaviour: batching, windows, kNN, refusals, the CLI.

Its agreement with the reference, backend by backend, is ``test_conformance.py``'s."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lava_retrieval.ann.checkpoint import load_checkpoint
from lava_retrieval.cli import main
from lava_retrieval.conversion.algorithm import ConversionConfig, calibration_indices, convert
from lava_retrieval.engines.sim import readout_of, simulate
from lava_retrieval.lava_graph.graph import GraphError, build, embed
from lava_retrieval.search.index import CosineIndex, normalize
from lava_retrieval.snn.config import SimConfig

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)

PAPER = SimConfig(16, "delay", "membrane")  # method paper's settings


@pytest.fixture(scope="module")
def calibration(fashion):
    train_images, _ = fashion.split("train")
    return train_images[
        calibration_indices(len(train_images), ConversionConfig(calibration_size=400))
    ]


@pytest.fixture(scope="module")
def network(calibration):
    return convert(load_checkpoint().model, calibration, ConversionConfig(calibration_size=400))


@pytest.fixture(scope="module")
def queries(fashion):
    return fashion.test_images[:32]


def test_batch_of_four_equals_four_runs_of_one(network, queries):
    batched = embed(
        network,
        queries[:4],
        SimConfig(16, timing="delay", readout="membrane"),
        batch_size=4,
        progress=False,
    )
    single = [
        embed(
            network,
            queries[i : i + 1],
            SimConfig(16, timing="delay", readout="membrane"),
            batch_size=1,
            progress=False,
        )
        for i in range(4)
    ]
    np.testing.assert_array_equal(batched, np.concatenate(single))


def test_nothing_leaks_from_one_image_to_the_next(network, queries):
    # Three windows of batch 2 (the last one half empty): every image as if presented alone.
    together = embed(
        network,
        queries[:5],
        SimConfig(16, readout="integrated", timing="delay"),
        batch_size=2,
        progress=False,
    )
    alone = embed(
        network,
        queries[4:5],
        SimConfig(16, readout="integrated", timing="delay"),
        batch_size=1,
        progress=False,
    )
    np.testing.assert_array_equal(together[4], alone[0])
    reversed_order = embed(
        network,
        queries[:5][::-1],
        SimConfig(16, timing="delay", readout="membrane"),
        batch_size=2,
        progress=False,
    )
    np.testing.assert_array_equal(
        reversed_order[::-1],
        embed(
            network,
            queries[:5],
            SimConfig(16, timing="delay", readout="membrane"),
            batch_size=2,
            progress=False,
        ),
    )


def test_loihi_path_refuses_what_it_cannot_run(network, queries):
    with pytest.raises(GraphError, match="convert with --reset zero"):
        build(network, queries[:1], PAPER, backend="loihi")
    zero = _lowerable(queries)
    with pytest.raises(
        GraphError, match="timings delay and pipelined, not exact_count; .*membrane"
    ):
        build(
            zero,
            queries[:2],
            SimConfig(timing="exact_count", readout="integrated", time_steps=16),
            backend="loihi",
        )
    with pytest.raises(GraphError, match="lava-loihi"):
        build(zero, queries[:1], PAPER, backend="loihi-hw")


def _lowerable(images):
    return convert(
        load_checkpoint().model,
        images,
        ConversionConfig(
            reset="zero", num_weight_bits=8, calibration_size=32, initial_membrane=0.5
        ),
    )


@pytest.mark.parametrize("timing", ["delay", "pipelined"])
def test_the_loihi_path_streams_each_image_as_if_alone(queries, timing):
    """One run embeds image after image on Lava's LIFReset (with an initial potential, so a
    clock pulse starts every window), each as its own graph of one image would."""
    network = _lowerable(queries)
    config = SimConfig(6, timing=timing, readout="membrane")
    graph = build(network, queries[:5], config, backend="loihi")
    # A lead step per window (delay's flush; pipelined, for the initial potential's pulse),
    # and under pipelined the embedding layer's depth at the end.
    assert graph.time_steps == 7 and graph.num_windows == 5
    assert graph.offset == (network.embedding_layer if timing == "pipelined" else 0)
    streamed = graph.run(progress=False).embeddings
    # The last image as a graph of its own embeds it (what the Loihi path did before it streamed).
    alone = embed(network, queries[4:5], config, backend="loihi", progress=False)
    np.testing.assert_array_equal(streamed[4:], alone)
    want = readout_of(network, simulate(network, queries[:5], config), "membrane")
    np.testing.assert_array_equal(streamed, want)
    assert len(np.unique(streamed, axis=0)) == 5


@pytest.mark.parametrize("timing", ["delay", "pipelined"])
def test_cosine_knn_in_the_graph_matches_brute_force(network, fashion, queries, timing):
    """Pipelined, every image's answer leaves the graph ``embedding_layer`` steps after its
    window: the kNN and the sinks follow the probe's clock."""
    images = fashion.train_images[:300]
    corpus = readout_of(
        network,
        simulate(network, images, SimConfig(16, timing=timing, readout="membrane")),
        "membrane",
    )
    labels = fashion.train_labels[:300]
    result = build(
        network,
        queries[:6],
        SimConfig(16, timing=timing, readout="membrane"),
        batch_size=4,
        index=CosineIndex().add(corpus, labels=labels),
        k=3,
    )
    got = result.run(progress=False)
    expected_embeddings = readout_of(
        network, simulate(network, queries[:6], SimConfig(16, timing=timing, readout="membrane"))
    )
    np.testing.assert_array_equal(got.embeddings, expected_embeddings)
    sims = normalize(got.embeddings) @ normalize(corpus).T
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(got.ids, expected)
    np.testing.assert_allclose(got.scores, np.take_along_axis(sims, expected, 1), atol=1e-6)


def test_bad_input(network):
    with pytest.raises(GraphError, match="images must be"):
        build(network, np.zeros((2, 32, 32), np.uint8), PAPER)
    with pytest.raises(GraphError, match="backend must be"):
        build(network, np.zeros((2, 28, 28), np.uint8), PAPER, backend="gpu")
    with pytest.raises(GraphError, match="use pipelined, its equal"):
        build(
            network,
            np.zeros((2, 28, 28), np.uint8),
            SimConfig(timing="no_delay", time_steps=16, readout="membrane"),
        )


def test_cli_embed(network, tmp_path, capsys):
    path = network.save(tmp_path / "net.npz")
    out = tmp_path / "emb.npy"
    argv = ["embed", "--network", str(path), "--limit", "20", "--out", str(out), "--json"]
    assert main([*argv, "--time-steps", "8", "--batch-size", "8"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["shape"] == [20, 1024] and payload["backend"] == "lava"
    lava = np.load(out)
    assert json.loads(out.with_suffix(".json").read_text())["readout"] == "membrane"
    assert main([*argv, "--time-steps", "8", "--backend", "sim"]) == 0
    np.testing.assert_array_equal(np.load(out), lava)
