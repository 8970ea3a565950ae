"""Indexes of one's own images: build, add, search (simulator and Lava graph), the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.cli import main
from lava_retrieval.conversion.methods import get
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import RetrievalIndexError
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig

CONFIG = SimConfig(time_steps=8, timing="pipelined", readout="integrated")


@pytest.fixture(scope="module")
def network_file(fashion, tmp_path_factory):
    network = get("paper").network(fashion)
    return network.save(tmp_path_factory.mktemp("net") / "net.npz")


@pytest.fixture(scope="module")
def photos(fashion, tmp_path_factory):
    """Forty test images saved as a user's photos: dark on light, larger, in sub-folders,
    plus a broken file."""
    root = tmp_path_factory.mktemp("photos")
    for i, image in enumerate(fashion.test_images[:40]):
        folder = root / f"group{i % 3}"
        folder.mkdir(exist_ok=True)
        picture = Image.fromarray(255 - image).resize((56, 56), Image.Resampling.BICUBIC)
        picture.convert("RGB").save(folder / f"{i:02d}.png")
    (root / "group0" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_api_build_save_load_search(fashion, network_file, tmp_path):
    from lava_retrieval.snn.network import SpikingNetwork

    network = SpikingNetwork.load(network_file)
    index = ImageIndex(network, CONFIG).add(read_source("fashion-mnist:train", limit=600))
    assert len(index) == 600 and index.class_names[0] == "T-shirt/top"
    index.save(tmp_path / "idx")
    loaded = ImageIndex.load(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())["metadata"]
    assert manifest["network"]["fingerprint"] == network.fingerprint()
    assert manifest["simulation"] == CONFIG.settings()
    assert manifest["preprocessing"]["invert"] == "auto"
    queries = fashion.test_images[:12]
    hits = loaded.search(queries, k=5)
    assert [h.rank for h in hits[0]] == [1, 2, 3, 4, 5]
    assert hits[0][0].path.startswith("fashion-mnist:train:")
    agree = np.mean(
        [row[0].label == label for row, label in zip(hits, fashion.test_labels[:12], strict=True)]
    )
    assert agree >= 0.6
    # The Lava graph (encoder, layers, probe, CosineKNN) gives the same answer.
    lava = loaded.search(queries[:3], k=5, backend="lava")
    assert [[h.id for h in row] for row in lava] == [[h.id for h in row] for row in hits[:3]]
    np.testing.assert_allclose(
        [[h.score for h in row] for row in lava],
        [[h.score for h in row] for row in hits[:3]],
        rtol=1e-5,
    )
    # Another network cannot search this index: its embeddings are not comparable.
    other = replace(network, initial_membrane=0.5)
    with pytest.raises(RetrievalIndexError, match="differs from the index's"):
        loaded.check_network(other)


def test_cli_build_add_search(photos, network_file, tmp_path, capsys):
    out = tmp_path / "idx"
    argv = [
        "index",
        "build",
        str(photos),
        "--out",
        str(out),
        "--network",
        str(network_file),
        "--time-steps",
        "8",
        "--timing",
        "pipelined",
        "--readout",
        "integrated",
        "--json",
    ]
    assert main(argv) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["count"] == 40 and built["added"] == 40
    assert [s["path"].endswith("broken.jpg") for s in built["skipped"]] == [True]
    assert built["simulation"] == CONFIG.settings()
    # A second build into the same directory is refused; `index add` extends it.
    assert main(argv) == 2
    assert "already holds an index" in capsys.readouterr().err
    assert main(["index", "add", str(out), "fashion-mnist:test", "--limit", "5"]) == 2
    assert "labels" in capsys.readouterr().err  # photos have no labels, the split has
    more = tmp_path / "more"
    more.mkdir()
    Image.open(photos / "group1" / "01.png").save(more / "again.png")
    # A copy of an indexed photo is skipped, saying why, unless duplicates are allowed.
    assert main(["index", "add", str(out), str(more), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["count"] == 40 and answer["added"] == 0
    [duplicate] = answer["duplicates"]
    assert duplicate["path"].endswith("again.png") and "01.png" in duplicate["reason"]
    assert main(["index", "add", str(out), str(more), "--allow-duplicates", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 41
    # The photo of test image 1 finds itself and its copy first.
    query = photos / "group1" / "01.png"
    png = tmp_path / "grid.png"
    assert main(["search", str(out), str(query), "-k", "3", "--json", "--png", str(png)]) == 0
    answer = json.loads(capsys.readouterr().out)
    paths = [h["path"] for h in answer["queries"][0]["results"]]
    assert {p.rsplit("/", 1)[-1] for p in paths[:2]} == {"01.png", "again.png"}
    assert answer["queries"][0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert png.read_bytes()[:4] == b"\x89PNG"
    # Text output names each result.
    assert main(["search", str(out), str(query), "-k", "2"]) == 0
    assert "01.png" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "{idx}", "{photos}/group0/broken.jpg"], "broken.jpg: "),
        (["search", "{idx}", "{photos}/group0"], "is a directory"),
        (["search", "{idx}", "{photos}/group0/00.png", "-k", "0"], "not a positive integer"),
        (["search", "{idx}", "{photos}/group0/00.png", "-k", "99"], "k must be between 1"),
        (["search", "{tmp}", "{photos}/group0/00.png"], "not an index"),
        (["search", "{idx}", "fashion-mnist:test:99999"], "has 10,000 images"),
        (["index", "build", "{photos}", "--out", "{photos}"], "not an index"),
        (["index", "build", "{tmp}/nowhere", "--out", "{tmp}/x"], "no such folder"),
        # Output paths that cannot work are refused before the work, nothing left behind.
        (["index", "build", "{photos}", "--out", "{idx}/index.json/x"], "is not a directory"),
        (["index", "build", "{photos}", "--out", "{tmp}/" + "n" * 300], "name nnnn"),
        (["index", "build", "{photos}", "--out", "{tmp}/" + "n" * 300 + "/x"], "name nnnn"),
        (["search", "{idx}", "{photos}/group0/00.png", "--png", "{tmp}/" + "p" * 300], "too long"),
        (["search", "{idx}", "{photos}/group0/00.png", "--png", "{idx}/index.json/a.png"], "not a"),
    ],
)
def test_cli_errors(photos, network_file, tmp_path, capsys, argv, message):
    idx = tmp_path / "idx"
    assert (
        main(
            [
                "index",
                "build",
                str(photos / "group2"),
                "--out",
                str(idx),
                "--network",
                str(network_file),
                "--time-steps",
                "4",
            ]
        )
        == 0
    )
    capsys.readouterr()
    argv = [a.format(idx=idx, photos=photos, tmp=tmp_path) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_index_of_a_relative_folder_answers_from_any_directory(
    photos, network_file, tmp_path, monkeypatch
):
    from lava_retrieval.search.sources import read_query
    from lava_retrieval.snn.network import SpikingNetwork

    monkeypatch.chdir(photos)
    index = ImageIndex(SpikingNetwork.load(network_file), CONFIG)
    index.add(read_source("group1", progress=False)).save(tmp_path / "idx")
    monkeypatch.chdir(tmp_path)
    loaded = ImageIndex.load("idx")
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in loaded.paths)
    first = read_query(loaded.paths[0], loaded.preprocessing)
    assert first.shape == (28, 28) and first.any()
