"""Network fingerprints and cache keys: what identifies a network and a set of embeddings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.embedding.files import embed, embed_to_file
from lava_retrieval.snn.config import SimConfig, cache_key
from lava_retrieval.snn.network import SpikingNetwork

PAPER = SimConfig(16, "delay", "membrane")  # method paper's settings

GOLDEN = Path(__file__).parents[1] / "golden" / "small-net.npz"


@pytest.fixture
def network() -> SpikingNetwork:
    return SpikingNetwork.load(GOLDEN)


def _unpadded(network):
    """conv1 without its padding (12 x 12 instead of 13 x 13; pool1 still gives 6 x 6)."""
    layers = list(network.layers)
    layers[1] = replace(layers[1], padding=0, output_shape=(3, 12, 12))
    layers[2] = replace(layers[2], input_shape=(3, 12, 12))
    return replace(network, layers=tuple(layers))


def _with_layer(network, index, **changes):
    layers = list(network.layers)
    layers[index] = replace(layers[index], **changes)
    return replace(network, layers=tuple(layers))


def test_fingerprint_covers_what_the_network_computes(network, tmp_path):
    base = network.fingerprint()
    assert len(base) == 64 and base == network.fingerprint()
    # Saving and loading keeps it; the file's bytes are not what is hashed.
    assert SpikingNetwork.load(network.save(tmp_path / "n.npz")).fingerprint() == base
    weight = network.layers[1].weight.copy()
    weight[0, 0, 0, 0] += 1
    changed = [
        replace(network, reset="zero"),
        _with_layer(network, 1, weight=weight),
        _with_layer(network, 1, threshold=network.layers[1].threshold + 1),
        _unpadded(network),
        _with_layer(network, 0, param_scale=254.0),
        _with_layer(network, 3, bias=None),
    ]
    fingerprints = {c.fingerprint() for c in changed}
    assert base not in fingerprints and len(fingerprints) == len(changed)
    # Names, bookkeeping and provenance are not the computation.
    same = [
        _with_layer(network, 1, name="renamed", slope=0.5, param_scale=3.0),
        replace(network, manifest={"note": "another run"}, arch="other"),
    ]
    assert {c.fingerprint() for c in same} == {base}


def test_cache_key_covers_every_setting_that_changes_embeddings(network):
    base = cache_key(network, SimConfig(time_steps=16, timing="delay", readout="membrane"))
    assert base == cache_key(
        network,
        SimConfig(time_steps=16, engine="torch", chunk_size=3, timing="delay", readout="membrane"),
    )
    others = {
        cache_key(network, SimConfig(time_steps=8, timing="delay", readout="membrane")),
        cache_key(network, SimConfig(time_steps=16, timing="no_delay", readout="membrane")),
        cache_key(network, SimConfig(time_steps=16, readout="spike_count", timing="delay")),
        cache_key(
            replace(network, reset="zero"),
            SimConfig(time_steps=16, timing="delay", readout="membrane"),
        ),
        cache_key(
            network, SimConfig(time_steps=16, timing="delay", readout="membrane"), images="abc"
        ),
    }
    assert base not in others and len(others) == 5


def test_embedding_file_and_its_sidecar(network, fashion, tmp_path):
    images = fashion.test_images[:5]
    config = SimConfig(time_steps=6, readout="integrated", timing="delay")
    out = tmp_path / "sub" / "emb.npy"
    payload = embed_to_file(network, images, out, config, progress=False, describe={"split": "x"})
    saved = np.load(out)
    assert saved.dtype == np.float32 and saved.shape == (5, network.embedding_dim)
    np.testing.assert_array_equal(saved, embed(network, images, config, progress=False))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar == payload
    assert sidecar["network_fingerprint"] == network.fingerprint()
    assert sidecar["cache_key"] == cache_key(network, config)
    assert (sidecar["time_steps"], sidecar["readout"], sidecar["split"]) == (6, "integrated", "x")
    assert sorted(p.name for p in out.parent.iterdir()) == ["emb.json", "emb.npy"]


def test_embedding_refuses_what_it_cannot_do(network, fashion):
    images = fashion.test_images[:2]
    with pytest.raises(LavaRetrievalError, match="backend must be one of"):
        embed(network, images, PAPER, backend="gpu")
    with pytest.raises(LavaRetrievalError, match="use pipelined, its equal"):
        embed(
            network,
            images,
            SimConfig(timing="no_delay", time_steps=16, readout="membrane"),
            backend="lava",
        )


def test_initial_membrane_travels_with_the_network(network, tmp_path):
    half = replace(network, initial_membrane=0.5)
    assert [half.neuron(i).v_init for i in range(4)] == [
        layer.threshold // 2 for layer in network.layers
    ]
    loaded = SpikingNetwork.load(half.save(tmp_path / "half.npz"))
    assert loaded.initial_membrane == 0.5 and loaded.equals(half)
    assert (
        half.fingerprint()
        != network.fingerprint()
        == replace(half, initial_membrane=0).fingerprint()
    )
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(LavaRetrievalError, match="initial_membrane must be a fraction"):
            replace(network, initial_membrane=bad)
