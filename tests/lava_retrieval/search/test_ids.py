"""Stable image ids: removal, upsert by id or by path, never reused; on disk, in the CLI and
behind the page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lava_retrieval.cli import main
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import RetrievalIndexError
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig

CONFIG = SimConfig(time_steps=8, timing="pipelined", readout="integrated")


@pytest.fixture(scope="module")
def network(fashion):
    from lava_retrieval.conversion.methods import get

    return get("paper").network(fashion)


@pytest.fixture(scope="module")
def built(network):
    """200 training images (ids 0..199) and their embeddings, simulated once."""
    index = ImageIndex(network, CONFIG).add(read_source("fashion-mnist:train", limit=200))
    return index


def _copy(index: ImageIndex, tmp_path, index_type: str = "exact") -> ImageIndex:
    """A fresh copy of ``index`` (the same embeddings, not simulated again)."""
    copy = ImageIndex(index.network, index.config, index_type=index_type)
    copy._append(read_source("fashion-mnist:train", limit=200), index.index.vectors_)
    return copy


def _ids(hits) -> list[list[int]]:
    return [[h.id for h in row] for row in hits]


def test_ids_survive_removal_and_are_never_reused(built, fashion, tmp_path):
    index = _copy(built, tmp_path)
    queries = fashion.train_images[[50, 120]]  # indexed images: each finds itself first
    assert [row[0] for row in _ids(index.search(queries, 3))] == [50, 120]
    assert index.remove([3, 5, 7]) == 3 and len(index) == 197
    hits = index.search(queries, 197)
    assert [row[0].id for row in hits] == [50, 120]
    assert [row[0].path for row in hits] == ["fashion-mnist:train:50", "fashion-mnist:train:120"]
    assert not {3, 5, 7} & {h.id for row in hits for h in row}
    with pytest.raises(RetrievalIndexError, match="not in the index: id 3, 999"):
        index.remove([3, 999])
    assert len(index) == 197  # nothing removed by a refused call
    index.save(tmp_path / "idx")
    loaded = ImageIndex.load(tmp_path / "idx")
    assert loaded.next_id == 200 and 3 not in loaded.ids and loaded.tombstones == 3
    # New images get new ids, after every id ever given.
    more = ImageIndex.extend(tmp_path / "idx", read_source("fashion-mnist:test", limit=4))
    assert more.index.ids_[-4:].tolist() == [200, 201, 202, 203]
    # (removed images leave their rows, tombstones, until the index is compacted)
    assert more.position(201) == 201 and more.hit(1, 201, 0.5).path == "fashion-mnist:test:1"
    with pytest.raises(RetrievalIndexError, match="not in the index: id 3"):
        more.position(3)


def test_upsert_by_id_and_by_path(built, fashion, tmp_path):
    index = _copy(built, tmp_path)
    # By id: test image 0 takes id 7 (training image 7 leaves), and gets a new id 500.
    test = read_source("fashion-mnist:test", limit=2)
    index.add(test, ids=[7, 500])
    assert len(index) == 201 and index.next_id == 501
    hits = index.search(fashion.test_images[:1], 1)
    assert (hits[0][0].id, hits[0][0].path) == (7, "fashion-mnist:test:0")
    for bad, message in [([1], "need 2 integer ids"), ([4, 4], "distinct"), ([-1, 2], "non-")]:
        with pytest.raises(RetrievalIndexError, match=message):
            index.add(test, ids=bad)
    # By path: training images 0-9 again replace their entries, keeping their ids; image 7,
    # no longer indexed (id 7 went to a test image), comes back with a new id.
    index.save(tmp_path / "idx")
    again = ImageIndex.extend(
        tmp_path / "idx", read_source("fashion-mnist:train", limit=10), upsert=True
    )
    held = [again.paths[p] for p in again.live_positions()]
    assert len(again) == 202 and held.count("fashion-mnist:train:3") == 1
    where = dict(zip(held, again.ids.tolist(), strict=True))
    assert [where[f"fashion-mnist:train:{i}"] for i in range(10)] == [*range(7), 501, 8, 9]
    # Without upsert the same images are skipped (indexed already), unless duplicates are
    # allowed: then they come in a second time, with new ids.
    same = read_source("fashion-mnist:train", limit=2)
    assert len(ImageIndex.extend(tmp_path / "idx", same)) == 202
    twice = ImageIndex.extend(tmp_path / "idx", same, allow_duplicates=True)
    assert len(twice) == 204 and twice.index.ids_[-2:].tolist() == [502, 503]


def test_removal_rebuilds_the_approximate_part(built, fashion, tmp_path):
    index = _copy(built, tmp_path, "hnsw")
    index.save(tmp_path / "idx")
    ImageIndex.remove_from(tmp_path / "idx", list(range(0, 200, 2)))
    loaded = ImageIndex.load(tmp_path / "idx")
    assert len(loaded) == len(loaded.approximate) == 100
    assert loaded.recall["queries"] == 100
    hits = loaded.search(fashion.train_images[[51, 52]], 5, ef=100)
    assert hits[0][0].id == 51 and all(h.id % 2 for row in hits for h in row)


def test_damaged_ids_are_refused(built, tmp_path):
    _copy(built, tmp_path).save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "index.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["metadata"]["next_id"] = 150
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RetrievalIndexError, match="bad next_id 150"):
        ImageIndex.load(tmp_path / "idx")
    manifest["metadata"]["next_id"] = 200
    manifest_path.write_text(json.dumps(manifest))
    ids_file = tmp_path / "idx" / manifest["files"]["ids.npy"]
    np.save(ids_file.with_suffix(""), np.zeros(200, np.int64))  # np.save adds .npy
    with pytest.raises(RetrievalIndexError, match="not distinct"):
        ImageIndex.load(tmp_path / "idx")


def test_cli_remove_and_upsert(built, tmp_path, capsys):
    out = tmp_path / "idx"
    _copy(built, tmp_path).save(out)
    assert main(["index", "remove", str(out), "3", "5", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["removed"], answer["count"], answer["was"]) == ([3, 5], 198, 200)
    assert main(["index", "remove", str(out), "4"]) == 0
    assert "removed 1 images, 197 left" in capsys.readouterr().out
    before = sorted(p.name for p in out.iterdir())
    for argv, message in [
        (["index", "remove", str(out), "3"], "not in the index: id 3"),
        (["index", "remove", str(out), "x1"], "'x1' is not an image id"),
        (["index", "remove", str(out), *map(str, range(200))], "not in the index: id 3, 4, 5"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    every = [str(i) for i in ImageIndex.load(out).ids]
    assert main(["index", "remove", str(out), *every]) == 2
    assert "that would remove every image" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before  # nothing changed
    assert len(ImageIndex.load(out)) == 197
    argv = ["index", "add", str(out), "fashion-mnist:train", "--limit", "10", "--json"]
    assert main([*argv, "--upsert"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 200  # 0-9 replaced, 3-5 back


def test_page_shows_the_right_images_after_removal(built, fashion, tmp_path):
    from lava_retrieval.apps.web import SearchService, create_app, png_data_url

    index = _copy(built, tmp_path)
    index.remove(list(range(10)))
    client = create_app(SearchService(index), k=2).test_client()
    body = client.post("/api/search", data={"test_id": "0"}).json
    for hit in body["snn"] + body["ann"]:
        number = int(hit["path"].rsplit(":", 1)[1])
        assert hit["id"] == number >= 10
        assert hit["image"] == png_data_url(fashion.train_images[number], 2)


def test_search_by_id(built, fashion, tmp_path, capsys):
    index = _copy(built, tmp_path)
    index.remove([0, 1])
    by_id = index.search_by_id([50, 120], 4)
    by_image = index.search(fashion.train_images[[50, 120]], 4)
    assert _ids(by_id) == _ids(by_image) and [row[0].id for row in by_id] == [50, 120]
    assert {h.label_name for h in index.search_by_id([50], 3, labels=["Bag"])[0]} == {"Bag"}
    with pytest.raises(RetrievalIndexError, match="not in the index: id 0"):
        index.search_by_id([0], 3)
    out = tmp_path / "idx"
    index.save(out)
    assert main(["search", str(out), "--id", "50", "--id", "120", "-k", "2", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [q["query"] for q in answer["queries"]] == ["id:50", "id:120"]
    assert [q["results"][0]["id"] for q in answer["queries"]] == [50, 120]
    png = tmp_path / "grid.png"
    assert main(["search", str(out), "--id", "7", "--png", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    for argv, message in [
        (["search", str(out)], "give query images or --id"),
        (["search", str(out), "fashion-mnist:test:0", "--id", "3"], "not both"),
        (["search", str(out), "--id", "1"], "not in the index: id 1"),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_service_items_id_queries_and_batches(built, fashion, tmp_path):
    from lava_retrieval.apps.web import MAX_BATCH, SearchService, create_app, png_data_url

    index = _copy(built, tmp_path)
    index.remove([0])
    client = create_app(SearchService(index), k=3).test_client()
    item = client.get("/api/items/5").json
    assert (item["id"], item["path"], item["label"]) == (5, "fashion-mnist:train:5", 2)
    assert item["image"] == png_data_url(fashion.train_images[5], 2)
    for url, status in [("/api/items/0", 404), ("/api/items/x", 400)]:
        assert client.get(url).status_code == status
    body = client.post("/api/search", data={"id": "5"}).json
    assert body["snn"][0]["id"] == 5
    assert client.post("/api/search", data={"id": "0"}).status_code == 400
    answer = client.post("/api/search/batch", json={"ids": [5, 9], "k": 2}).json
    assert [[h["id"] for h in r["hits"]][0] for r in answer["results"]] == [5, 9]
    bag = client.post("/api/search/batch", json={"ids": [5], "k": 2, "labels": ["Bag"]}).json
    assert all(h["label_name"] == "Bag" for h in bag["results"][0]["hits"])
    for body, message in [
        ([1, 2], "JSON object"),
        ({"ids": []}, "list of 1 to"),
        ({"ids": list(range(MAX_BATCH + 1))}, "list of 1 to"),
        ({"ids": [1.5]}, "every id must be an integer"),
        ({"ids": [5], "exact": 1}, "exact must be of type bool"),
        ({"ids": [5], "ef": True}, "ef must be an integer (1..65536), not True"),
        ({"ids": [0]}, "not in the index: id 0"),
        ({"ids": [5], "ef": 10}, "this index is exact"),
    ]:
        answer = client.post("/api/search/batch", json=body)
        assert answer.status_code == 400 and message in answer.json["error"], body
