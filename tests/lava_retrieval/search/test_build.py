"""``index build`` in stages: in one process, chunk by chunk into shards, and on a real
two-node Ray cluster (``ray.cluster_utils.Cluster``), whose embeddings must equal the
in-process ones bit for bit; the augmented catalogue source; the errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.cli import main
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.data.augment import augment
from lava_retrieval.search import build as build_module
from lava_retrieval.search import index as index_module
from lava_retrieval.search.build import build_index, check_ray_address
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import plan_source, read_query, read_source
from lava_retrieval.snn.config import SimConfig

CONFIG = SimConfig(time_steps=8, timing="pipelined", readout="integrated")


@pytest.fixture(scope="module")
def network(fashion):
    from lava_retrieval.conversion.methods import get

    return get("paper").network(fashion)


@pytest.fixture(scope="module")
def folder(fashion, tmp_path_factory):
    """40 test images as PNG files in two subfolders, and one file that is no image."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(40):
        sub = root / ("a" if i < 20 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(255 - fashion.test_images[i]).resize((56, 56)).save(sub / f"{i:02d}.png")
    (root / "a" / "broken.png").write_bytes(b"not a png at all")
    return root


def as_arrays(index: ImageIndex) -> dict:
    return {
        "vectors": np.asarray(index.index.vectors_),
        "ids": index.index.ids_,
        "labels": index.index.labels_,
        "paths": index.paths,
    }


def assert_same(a: ImageIndex, b: ImageIndex) -> None:
    left, right = as_arrays(a), as_arrays(b)
    np.testing.assert_array_equal(left["vectors"], right["vectors"])  # bit for bit
    np.testing.assert_array_equal(left["ids"], right["ids"])
    assert (left["labels"] is None) == (right["labels"] is None)
    if left["labels"] is not None:
        np.testing.assert_array_equal(left["labels"], right["labels"])
    assert left["paths"] == right["paths"]


def test_a_build_in_chunks_equals_one_add(network, folder, tmp_path, monkeypatch):
    """Chunks of 16 images, shards of 8 rows: the same index as embedding all at once."""
    monkeypatch.setattr(index_module, "shard_rows", lambda dim: 8)
    whole = ImageIndex(network, CONFIG).add(read_source(folder))
    index = ImageIndex(network, CONFIG)
    report = build_index(index, plan_source(folder), tmp_path / "idx", chunk=16)
    assert report.count == 40 and report.workers == "this process"
    assert [(p.endswith("broken.png"), "broken.png" in r) for p, r in report.bad] == [(1, 1)]
    loaded = ImageIndex.load(tmp_path / "idx")
    assert_same(loaded, whole)
    assert len(loaded.index.vectors_.parts) == 5
    assert loaded.sources == [{"count": 40, "skipped": 1}]


def test_an_interrupted_build_leaves_nothing(network, fashion, tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "shard_rows", lambda dim: 8)
    real = build_module.embedded_here

    def broken(*args, **kwargs):
        for n, chunk in enumerate(real(*args, **kwargs)):
            if n == 3:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(build_module, "embedded_here", broken)
    plan = plan_source("fashion-mnist:test", limit=100)
    with pytest.raises(KeyboardInterrupt):
        build_index(ImageIndex(network, CONFIG), plan, tmp_path / "idx", chunk=10)
    assert not (tmp_path / "idx").exists()  # three chunks of shards were spilled, then removed


def test_the_augmented_catalogue(fashion):
    plan = plan_source("fashion-mnist:augmented:100000")
    assert plan.count == 100_000 and plan.has_labels
    part = plan.read(69_998, 70_003)
    base = np.concatenate([fashion.train_images, fashion.test_images])
    np.testing.assert_array_equal(part.images, augment(base, 69_998, 70_003, seed=0))
    labels = np.concatenate([fashion.train_labels, fashion.test_labels])
    assert part.labels.tolist() == labels[[69_998, 69_999, 0, 1, 2]].tolist()
    assert part.paths[0] == "fashion-mnist:augmented:69998"
    prep = plan.preprocessing
    np.testing.assert_array_equal(read_query("fashion-mnist:augmented:70001", prep), part.images[3])
    for bad in ("fashion-mnist:augmented:0", "fashion-mnist:augmented:x", "fashion-mnist:big"):
        with pytest.raises(LavaRetrievalError, match="augmented"):
            plan_source(bad)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1: Connection refused"),
        ("nonsense", "give HOST:PORT"),
        ("host:99999", "give HOST:PORT"),
    ],
)
def test_ray_addresses_that_cannot_be_used(address, message):
    with pytest.raises(LavaRetrievalError, match=message):
        check_ray_address(address)


def test_cli_refuses_an_unreachable_cluster_before_any_work(network, tmp_path, capsys):
    net = network.save(tmp_path / "net.npz")
    out = tmp_path / "idx"
    args = ["index", "build", "fashion-mnist:test", "--out", str(out), "--network", str(net)]
    assert main([*args, "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot reach a Ray cluster at 127.0.0.1:1")
    assert main([*args, "--ray", "--backend", "lava"]) == 2
    assert "--ray embeds with the simulator" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_a_ray_build_on_two_nodes_equals_the_one_process_build(
    network, folder, cluster, tmp_path, capsys
):
    """Files (with a broken one) and a Fashion-MNIST split, each through the CLI on the
    cluster and in one process: the same index, bit for bit."""
    net = network.save(tmp_path / "net.npz")
    options = ["--network", str(net), "--time-steps", "8", "--timing", "pipelined"]
    options += ["--readout", "integrated", "--chunk", "16", "--json"]
    for name, source in (("files", str(folder)), ("fashion", "fashion-mnist:test")):
        here, there = tmp_path / f"{name}-here", tmp_path / f"{name}-ray"
        build = ["index", "build", source, "--limit", "60", *options]
        assert main([*build, "--out", str(here)]) == 0
        assert json.loads(capsys.readouterr().out)["stages"]["workers"] == "this process"
        assert main([*build, "--out", str(there), "--ray", cluster.address]) == 0
        payload = json.loads(io.StringIO(capsys.readouterr().out).read())
        assert payload["stages"]["workers"] == "1 Ray actor"  # two CPUs: one left to reading
        assert len(payload["skipped"]) == (1 if name == "files" else 0)
        assert_same(ImageIndex.load(there), ImageIndex.load(here))
    # `index add --ray` streams through the same stages: the first 60 are skipped (indexed
    # already), the next 20 added, as in one process.
    add = ["index", "add", "", "fashion-mnist:test", "--limit", "80", "--chunk", "16", "--json"]
    for where, extra in (("fashion-here", []), ("fashion-ray", ["--ray", cluster.address])):
        add[2] = str(tmp_path / where)
        assert main([*add, *extra]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert (payload["added"], payload["skipped_duplicates"]) == (20, {"already indexed": 60})
        assert payload["workers"] == ("1 Ray actor" if extra else "this process")
    here, there = (ImageIndex.load(tmp_path / f"fashion-{w}") for w in ("here", "ray"))
    assert_same(there, here)
