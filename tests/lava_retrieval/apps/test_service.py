"""The JSON search service: hits by upload and by id, writes (remove, upsert) to the served
index directory, large indexes served without their images in memory, and several requests at
once through waitress."""

from __future__ import annotations

import io
import json
import threading
import urllib.request

import numpy as np
import pytest
from PIL import Image

from lava_retrieval.apps import service as service_module
from lava_retrieval.apps.web import SearchService, create_app, make_server
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig

CONFIG = SimConfig(time_steps=8, timing="pipelined", readout="integrated")


@pytest.fixture(scope="module")
def network(fashion):
    from lava_retrieval.conversion.methods import get

    return get("paper").network(fashion)


def png(fashion, i: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(255 - fashion.test_images[i]).resize((56, 56)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def served(network, fashion, tmp_path):
    """An index of 30 image files (no labels) in a directory, and a writable app over it."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i:02d}.png").write_bytes(png(fashion, i))
    directory = tmp_path / "idx"
    ImageIndex(network, CONFIG, index_type="hnsw").add(read_source(folder)).save(directory)
    service = SearchService(ImageIndex.load(directory), checkpoint=False, directory=directory)
    return service, create_app(service, k=3, allow_writes=True).test_client(), directory


def test_hits_by_upload_and_by_id_are_the_index_answers(served, fashion):
    service, client, _ = served
    answer = client.post(
        "/api/search", data={"image": (io.BytesIO(png(fashion, 4)), "q.png"), "view": "hits"}
    ).json
    assert set(answer) == {"k", "hits", "warning"} and answer["k"] == 3
    want = service.index.search_files([service.index.paths[4]], 3)[0]
    assert [h["id"] for h in answer["hits"]] == [h.id for h in want] and want[0].id == 4
    assert answer["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    by_id = client.post("/api/search", data={"id": "4", "view": "hits", "k": "5"}).json
    assert by_id["hits"][0]["id"] == 4 and len(by_id["hits"]) == 5
    for form, message in (
        ({"id": "4", "view": "thumbnails"}, "view must be one of page, hits"),
        ({"id": "4", "view": "hits", "nprobe": "3"}, "nprobe does not apply"),
        ({"id": "4", "view": "hits", "ef": "0"}, "'0' is not a valid ef (1..65536)"),
        ({"id": "99", "view": "hits"}, "not in the index: id 99"),
    ):
        response = client.post("/api/search", data=form)
        assert response.status_code == 400 and message in response.json["error"]


def test_writes_change_the_served_index_and_its_directory(served, fashion):
    service, client, directory = served
    assert client.delete("/api/items/7").json == {"removed": 7, "count": 29}
    assert client.get("/api/items/7").status_code == 404
    assert client.delete("/api/items/7").status_code == 404
    assert 7 not in ImageIndex.load(directory).ids
    hits = client.post("/api/search", data={"id": "8", "view": "hits", "k": "29"}).json["hits"]
    assert 7 not in [h["id"] for h in hits]
    # Upsert: a new image under id 7 again, and another over id 3.
    for item, picture in ((7, 40), (3, 41)):
        response = client.put(
            f"/api/items/{item}",
            data={"image": (io.BytesIO(png(fashion, picture)), "new.png"), "path": f"new/{item}"},
        )
        assert response.status_code == 200, response.json
        assert response.json["id"] == item
    assert client.get("/api/items/3").json["path"] == "upload:new/3"
    loaded = ImageIndex.load(directory)
    assert len(loaded) == 30 and loaded.paths[loaded.position(7)] == "upload:new/7"
    assert json.loads((directory / "index.json").read_text())["metadata"]["next_id"] == 30
    hits = client.post("/api/search", data={"id": "3", "view": "hits"}).json["hits"]
    assert hits[0]["id"] == 3 and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    bad = client.put("/api/items/5", data={"image": (io.BytesIO(b"nope"), "x.png")})
    assert bad.status_code == 400 and "error" in bad.json
    assert client.put("/api/items/5").status_code == 400
    assert client.delete("/api/items/x").status_code == 400
    read_only = create_app(service, k=3).test_client()
    assert read_only.delete("/api/items/3").status_code == 403
    assert 3 in service.index.ids


def test_a_labelled_index_takes_no_uploaded_items(web_service, fashion):
    client = create_app(web_service, k=3, allow_writes=True).test_client()
    response = client.put("/api/items/5", data={"image": (io.BytesIO(png(fashion, 1)), "a.png")})
    assert response.status_code == 409 and "labels" in response.json["error"]
    assert client.delete("/api/items/5").status_code == 409  # built in memory: no directory


def test_a_large_index_reads_the_images_it_shows(network, monkeypatch):
    """Above CORPUS_IN_MEMORY the images shown are read from their paths when asked."""
    monkeypatch.setattr(service_module, "CORPUS_IN_MEMORY", 50)
    index = ImageIndex(network, CONFIG).add(read_source("fashion-mnist:augmented:120"))
    service = SearchService(index)
    assert service.corpus is None and service.ann is None and "100,000" not in service.ann_note
    client = create_app(service, k=3).test_client()
    page = client.post("/api/search", data={"id": "110"}).json
    assert page["snn"][0]["id"] == 110 and page["snn"][0]["image"].startswith("data:image/png")
    assert page["ann"] is None
    item = client.get("/api/items/110").json
    assert item["path"] == "fashion-mnist:augmented:110" and item["label_name"]
    np.testing.assert_array_equal(
        service.image_at(110), read_source("fashion-mnist:augmented:111").images[110]
    )


def test_eight_clients_at_once(served, fashion):
    """A waitress server, eight clients sending 12 queries each at the same time: every
    answer comes, each the one a lone client gets."""
    service, _, _ = served
    app = create_app(service, k=3)
    server = make_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}/api/search"

    def ask(item: int) -> list[int]:
        body = f"id={item}&view=hits".encode()
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as reply:
            return [h["id"] for h in json.loads(reply.read())["hits"]]

    try:
        alone = {i: ask(i) for i in range(12)}
        answers: dict[tuple[int, int], list[int]] = {}

        def client(c: int) -> None:
            for i in range(12):
                answers[(c, i)] = ask((i + c) % 12)

        clients = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=120)
        assert len(answers) == 96
        assert all(answers[(c, i)] == alone[(i + c) % 12] for c, i in answers)
    finally:
        server.close()
