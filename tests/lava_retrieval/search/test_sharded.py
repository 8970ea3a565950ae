"""Search sharded over Ray actors on a local two-node cluster: exact mode answers what one
process answers, bit for bit (scores, ids, tie order, filters, tombstones); approximate mode
reports its recall; writes reach the actors; a killed actor is a 503, then answers again."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.apps.web import SearchService, create_app
from lava_retrieval.search import shards as shards_module
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sharded import RaySearcher, partition
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

pytestmark = pytest.mark.slow  # a Ray cluster: not in the fast tier

NETWORK = Path(__file__).resolve().parents[1] / "golden" / "small-net.npz"
CONFIG = SimConfig(8, timing="delay", readout="membrane")
ROWS = 40  # rows per shard file of the test's indexes (a million-image index: 65,536)


def _saved(index: ImageIndex, out: Path) -> Path:
    """``index`` saved into ``out`` in shards of :data:`ROWS` rows."""
    patch = pytest.MonkeyPatch()
    patch.setattr(shards_module, "SHARD_BYTES", ROWS * 4 * index.dim)
    try:
        index.save(out)
    finally:
        patch.undo()
    return out


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    """An HNSW index of 300 test images and 10 repeated ones (equal scores: ties), in shards
    of 40 rows, 12 of them removed (tombstones)."""
    index = ImageIndex(SpikingNetwork.load(NETWORK), CONFIG, index_type="hnsw")
    index.add(read_source("fashion-mnist:test", limit=300, progress=False))
    again = read_source("fashion-mnist:test", limit=10, progress=False)
    index.add(again, allow_duplicates=True)
    out = _saved(index, tmp_path_factory.mktemp("sharded") / "idx")
    ImageIndex.remove_from(out, list(range(20, 32)))
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory, fashion):
    """An HNSW index of 120 photos (a folder: no labels, so the service takes PUT), in
    shards of 40 rows."""
    root = tmp_path_factory.mktemp("photos")
    (root / "photos").mkdir()
    for n in range(120):
        Image.fromarray(255 - fashion.test_images[n]).save(root / "photos" / f"{n}.png")
    index = ImageIndex(SpikingNetwork.load(NETWORK), CONFIG, index_type="hnsw")
    index.add(read_source(root / "photos", progress=False))
    return _saved(index, root / "idx")


def _answers(hits) -> list[list[tuple[int, float]]]:
    return [[(h.id, h.score) for h in row] for row in hits]


def test_partition_keeps_whole_shards_in_order():
    shards = [(f"s{i}", 40 * i, 40) for i in range(8)] + [("s8", 320, 10)]
    groups = partition(shards, 2)
    assert groups == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    assert partition(shards, 20) == [[i] for i in range(9)]  # at most one group per shard


def test_exact_mode_answers_as_one_process_bit_for_bit(directory, cluster, fashion):
    here = ImageIndex.load(directory)
    sharded = ImageIndex.load(directory, approximate=False)
    searcher = RaySearcher(sharded, directory, cluster.address, actors=2)
    try:
        assert len(searcher.actors) == 2 and sum(searcher.rows) == here.rows == 310
        assert len(here.index.vectors_.parts) == 8  # 8 shards, 4 per actor
        queries = here.embed(fashion.test_images[:40])
        for options in (
            {"exact": True},
            {"exact": True, "path_prefix": "fashion-mnist:test"},
            {"exact": True, "labels": ["Sandal", "Bag"]},
        ):
            want = here.search_embeddings(queries, 25, **options)
            got = sharded.search_embeddings(queries, 25, **options)
            assert _answers(got) == _answers(want)  # ids, scores (floats, equal), order
        # Ties: an image indexed twice has two equal scores, answered by position.
        tied = sharded.search_by_id([3], 2, exact=True)[0]
        assert tied[0].score == tied[1].score and [h.id for h in tied] == [3, 303]
        removed = {h.id for row in sharded.search_embeddings(queries, 100, exact=True) for h in row}
        assert not removed & set(range(20, 32))
        # Approximate mode: each group's own HNSW, its recall measured against exact.
        assert searcher.recall["recall_at_k"] >= 0.95 and searcher.recall["queries"] == 200
        approximate = sharded.search_embeddings(queries, 10)
        exact = here.search_embeddings(queries, 10, exact=True)
        found = np.mean(
            [
                len({h.id for h in a} & {h.id for h in e}) / 10
                for a, e in zip(approximate, exact, strict=True)
            ]
        )
        assert found >= 0.9
        unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        for query, row in zip(unit, approximate, strict=True):  # its scores are exact ones
            for h in row:
                vector = here.index.vectors_[here.position(h.id)]
                assert h.score == pytest.approx(float(vector @ query), abs=1e-5)
        with pytest.raises(Exception, match="nprobe does not apply"):
            sharded.search_embeddings(queries[:1], 5, nprobe=3)
    finally:
        searcher.close()


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_writes_reach_the_actors_and_a_killed_actor_is_a_503(photos, cluster, fashion, tmp_path):
    import shutil

    import ray

    work = shutil.copytree(photos, tmp_path / "idx")
    index = ImageIndex.load(work, approximate=False)
    searcher = RaySearcher(index, work, cluster.address, actors=2)
    service = SearchService(index, checkpoint=False, directory=work)
    client = create_app(service, k=5, allow_writes=True).test_client()
    try:
        ask = {"id": "7", "view": "hits", "k": "5", "exact": "true"}
        before = client.post("/api/search", data=ask).json["hits"]
        assert [h["id"] for h in before][0] == 7
        # DELETE: its tombstone reaches the actor of its shard.
        assert client.delete(f"/api/items/{before[1]['id']}").status_code == 200
        after = client.post("/api/search", data=ask).json["hits"]
        assert before[1]["id"] not in {h["id"] for h in after}
        # PUT: a new shard goes to an actor, and the image finds itself.
        image = 255 - fashion.test_images[500]
        put = client.put("/api/items/900", data={"image": (io.BytesIO(_png(image)), "n.png")})
        assert put.status_code == 200, put.json
        found = client.post("/api/search", data={"id": "900", "view": "hits", "k": "1"})
        assert found.json["hits"][0]["id"] == 900
        # The sharded answers equal one process's on the directory now.
        here = ImageIndex.load(work)
        queries = here.embed(fashion.test_images[:20])
        got = service.index.search_embeddings(queries, 10, exact=True)
        assert _answers(got) == _answers(here.search_embeddings(queries, 10, exact=True))
        assert client.get("/api/info").json["ray"]["actors"] == 2

        # An actor killed: a 503 naming the restart, never a wrong answer; then the same.
        ray.kill(searcher.actors[0], no_restart=False)
        while True:  # until Ray has restarted it, empty
            try:
                if not ray.get(searcher.actors[0].loaded.remote()):
                    break
            except ray.exceptions.RayError:  # (restarting)
                pass
            time.sleep(0.1)
        statuses, answer = [], None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            response = client.post("/api/search", data=ask)
            statuses.append(response.status_code)
            if response.status_code == 200:
                answer = response.json["hits"]
                break
            assert response.status_code == 503
            assert "restarting" in response.json["error"]
            time.sleep(0.5)
        assert statuses[0] == 503 and answer == after
    finally:
        service.close()


def test_cli_refuses_bad_ray_options(capsys, tmp_path):
    from lava_retrieval.cli import main

    for argv, message in (
        (["serve", "--ray-actors", "2"], "--ray-actors needs --ray"),
        (["serve", "--ray"], "--ray serves an index directory: give --index DIR"),
        (["serve", "--index", str(tmp_path), "--ray", "x"], "--ray 'x': give HOST:PORT"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_an_unsaved_index_is_refused(cluster):
    index = ImageIndex(SpikingNetwork.load(NETWORK), CONFIG)
    index.add(read_source("fashion-mnist:test", limit=5, progress=False))
    with pytest.raises(Exception, match="must be saved first"):
        RaySearcher(index, "/nonexistent", cluster.address)
