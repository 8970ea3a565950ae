"""Approximate indexes through faiss: against the exact index, saved and loaded with an image
index, their knobs and their errors (CLI, API and page)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lava_retrieval.cli import main
from lava_retrieval.search.approximate import (
    ApproximateIndex,
    factory_for,
    nlist_for,
    recall_at_k,
)
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import CosineIndex, RetrievalIndexError
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig

CONFIG = SimConfig(time_steps=8, timing="pipelined", readout="integrated")


@pytest.fixture(scope="module")
def clustered() -> CosineIndex:
    """3,000 vectors in 30 tight clusters of 64 dimensions (what embeddings of 10 classes look
    like to an index), some of them duplicated."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, 64))
    vectors = centres[rng.integers(0, 30, 3000)] + 0.3 * rng.standard_normal((3000, 64))
    vectors[100:110] = vectors[0]  # equal vectors: recall must not count them as misses
    return CosineIndex().add(vectors)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf", "ivf-pq", "IVF16,SQ8"])
def test_recall_against_the_exact_index(clustered, index_type):
    approximate = ApproximateIndex.build(clustered.vectors_, index_type)
    assert len(approximate) == len(clustered)
    recall = recall_at_k(clustered, approximate, sample=300)
    assert recall["k"] == 10 and recall["queries"] == 300
    assert recall["recall_at_k"] >= 0.9
    # Every vector finds itself (or an equal one) first; with 4-byte codes, among its first 10.
    queries = clustered.vectors_[:50]
    _, positions = approximate.search(queries, 10 if index_type == "ivf-pq" else 1)
    found = clustered.vectors_[positions]
    assert np.all(np.einsum("qd,qkd->qk", queries, found).max(1) > 1 - 1e-5)


def test_an_ivf_scanning_every_cluster_is_exact(clustered):
    """IVF with nprobe = nlist proposes the best candidates by its 8-bit codes, re-ranked by
    their exact scores: the exact index's scores."""
    approximate = ApproximateIndex.build(clustered.vectors_, "ivf")
    nlist = approximate.knobs()["nprobe"][1]
    assert nlist == nlist_for(3000) == 76
    queries = clustered.vectors_[::97]
    want, _ = clustered.search(queries, 10)
    got, positions = approximate.search(queries, 10, nprobe=nlist)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert recall_at_k(clustered, approximate, nprobe=nlist)["recall_at_k"] == 1.0
    # One cluster of 76: fewer than k found for some queries, marked -1 / -inf.
    few, where = approximate.search(queries, 200, nprobe=1)
    assert (where == -1).any() and np.all(np.isneginf(few[where == -1]))


def test_recall_is_measured_against_equal_scores():
    """Twenty copies of one vector: any ten of them are the ten nearest (recall 1.0), whatever
    order faiss returns them in."""
    vectors = np.repeat(np.eye(8, dtype=np.float32), 20, axis=0)
    exact = CosineIndex().add(vectors)
    approximate = ApproximateIndex.build(exact.vectors_, "hnsw")
    assert recall_at_k(exact, approximate)["recall_at_k"] == 1.0


def test_knobs_are_checked(clustered):
    hnsw = ApproximateIndex.build(clustered.vectors_, "hnsw")
    ivf = ApproximateIndex.build(clustered.vectors_, "ivf")
    assert hnsw.knobs() == {"ef": (1, 1 << 16)} and list(ivf.knobs()) == ["nprobe"]
    with pytest.raises(RetrievalIndexError, match="nprobe does not apply to this hnsw index"):
        hnsw.search(clustered.vectors_[:1], 3, nprobe=4)
    with pytest.raises(RetrievalIndexError, match="nprobe must be between 1 and 76, got 77"):
        ivf.search(clustered.vectors_[:1], 3, nprobe=77)
    with pytest.raises(RetrievalIndexError, match="ef must be an integer"):
        hnsw.search(clustered.vectors_[:1], 3, ef=2.5)
    # ef below k is raised to k: k results.
    assert (hnsw.search(clustered.vectors_[:2], 20, ef=1)[1] >= 0).all()


def test_a_written_index_comes_back_the_same(clustered, tmp_path):
    approximate = ApproximateIndex.build(clustered.vectors_, "ivf-pq")
    approximate.write(tmp_path / "a.index")
    vectors = clustered.vectors_
    again = ApproximateIndex.read(tmp_path / "a.index", "ivf-pq", approximate.factory, vectors)
    queries = clustered.vectors_[:20]
    for a, b in zip(approximate.search(queries, 5), again.search(queries, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "bad.index").write_bytes(b"garbage!" * 10)
    with pytest.raises(RetrievalIndexError, match="here: not a faiss index"):
        ApproximateIndex.read(tmp_path / "bad.index", "ivf-pq", "x", vectors, "here")
    with pytest.raises(RetrievalIndexError, match="holds 3000 vectors, the manifest says 2999"):
        ApproximateIndex.read(tmp_path / "a.index", "ivf-pq", "x", vectors[:2999], "here")
    with pytest.raises(RetrievalIndexError, match="64 dimensions"):
        ApproximateIndex.read(tmp_path / "a.index", "ivf-pq", "x", vectors[:, :32], "here")


@pytest.mark.parametrize(
    ("index_type", "message"),
    [
        ("exact", "unknown index type 'exact'"),
        ("hnsw;rm", "unknown index type"),
        ("IVF99999,Flat", "cannot train"),
        ("PQ7", "cannot build"),
        ("nonsense", "could not parse"),
        ("HNSW16,PQ16,RFlat", "does not keep the inner-product metric"),
    ],
)
def test_bad_index_types(clustered, index_type, message):
    with pytest.raises(RetrievalIndexError, match=message):
        ApproximateIndex.build(clustered.vectors_, index_type)


def test_factory_strings():
    assert factory_for("hnsw", 10, 8) == "HNSW32,SQ8"
    assert factory_for("ivf", 1_000_000, 1024) == "IVF4000,SQ8"
    # Few vectors: fewer clusters and fewer PQ bits, each trained on at least 39 vectors.
    assert factory_for("ivf-pq", 500, 1024) == "IVF12,PQ64x3"
    assert factory_for("ivf-pq", 500, 100) == "IVF12,PQ5x3"


@pytest.fixture(scope="module")
def network(fashion):
    from lava_retrieval.conversion.methods import get

    return get("paper").network(fashion)


def test_image_index_with_hnsw(network, fashion, tmp_path):
    """Built, saved with its recall, loaded, extended and searched; ``exact=True`` answers as
    an exact index of the same images does."""
    source = read_source("fashion-mnist:train", limit=600)
    exact = ImageIndex(network, CONFIG).add(source)
    index = ImageIndex(network, CONFIG, index_type="hnsw")
    index._append(source, exact.index.vectors_)  # the same embeddings, not simulated again
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())["metadata"]["search"]
    assert meta["index_type"] == "hnsw" and meta["factory"] == "HNSW32,SQ8"
    assert meta["knobs"] == {"ef": {"default": 128, "min": 1, "max": 1 << 16}}
    assert meta["recall"]["recall_at_k"] >= 0.95 and meta["recall"]["queries"] == 600
    assert meta["recall"]["images"] == 600  # (the images it held when measured)
    files = sorted(p.name.split("-")[0] for p in (tmp_path / "idx").iterdir())
    assert "faiss" in files

    loaded = ImageIndex.load(tmp_path / "idx")
    assert len(loaded.approximate) == 600 and loaded.recall == meta["recall"]
    queries = fashion.test_images[:8]
    want = [[h.id for h in hits] for hits in exact.search(queries, 5)]
    assert [[h.id for h in hits] for hits in loaded.search(queries, 5, exact=True)] == want
    approximate = [[h.id for h in hits] for hits in loaded.search(queries, 5, ef=200)]
    assert np.mean([len(set(a) & set(w)) for a, w in zip(approximate, want, strict=True)]) >= 4.5
    with pytest.raises(RetrievalIndexError, match="nprobe does not apply"):
        loaded.search(queries, 5, nprobe=3)
    with pytest.raises(RetrievalIndexError, match="ef cannot be used: this search is exact"):
        loaded.search(queries, 5, ef=30, exact=True)

    # `index add`: the faiss index grows with the exact one; its recall is measured again
    # once it grew by more than RECALL_AGAIN (10 %) since the last measurement.
    more = ImageIndex.extend(tmp_path / "idx", read_source("fashion-mnist:test", limit=50))
    assert len(more.approximate) == 650 and more.recall == {**meta["recall"], "images": 600}
    more = ImageIndex.extend(tmp_path / "idx", read_source("fashion-mnist:test", limit=70))
    again = ImageIndex.load(tmp_path / "idx")
    assert len(more) == len(again.approximate) == 670
    assert again.recall["queries"] == again.recall["images"] == 670
    hits = again.search(fashion.test_images[:3], 1, ef=100)
    assert [h[0].path for h in hits] == [f"fashion-mnist:test:{i}" for i in range(3)]

    # Knobs on an exact index are refused, naming why.
    with pytest.raises(RetrievalIndexError, match="this index is exact"):
        exact.search(queries, 5, ef=10)


def test_a_damaged_faiss_file_is_refused(network, tmp_path):
    index = ImageIndex(network, CONFIG, index_type="ivf")
    index.add(read_source("fashion-mnist:train", limit=100)).save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    faiss_file = tmp_path / "idx" / manifest["files"]["faiss.index"]
    blob = faiss_file.read_bytes()
    faiss_file.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(RetrievalIndexError, match="differs from what the manifest records"):
        ImageIndex.load(tmp_path / "idx")
    del manifest["checksums"]  # as an index saved before checksums were recorded
    (tmp_path / "idx" / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(RetrievalIndexError, match="not a faiss index"):
        ImageIndex.load(tmp_path / "idx")
    faiss_file.unlink()
    with pytest.raises(RetrievalIndexError, match="faiss-[0-9a-f]{8}.index: missing"):
        ImageIndex.load(tmp_path / "idx")
    del manifest["files"]["faiss.index"]
    (tmp_path / "idx" / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(RetrievalIndexError, match="without its faiss file"):
        ImageIndex.load(tmp_path / "idx")


def test_cli_approximate_build_and_search(network, tmp_path, capsys):
    out = tmp_path / "idx"
    network_file = network.save(tmp_path / "net.npz")
    build = ["index", "build", "fashion-mnist:train", "--limit", "300", "--out", str(out)]
    build += ["--network", str(network_file), "--time-steps", "8", "--timing", "pipelined"]
    assert main([*build, "--index-type", "ivf"]) == 0
    text = capsys.readouterr().out
    assert "approximate search: ivf (IVF7,SQ8), recall@10 " in text and "nprobe 16" in text
    query = "fashion-mnist:train:5"
    assert main(["search", str(out), query, "-k", "3", "--nprobe", "7", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["search"] == "ivf"
    assert answer["queries"][0]["results"][0]["path"] == query
    assert main(["search", str(out), query, "-k", "3", "--exact", "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert exact["search"] == "exact"
    # nprobe = nlist: every image scored, the exact answer (float32 scores of another sum).
    pairs = zip(answer["queries"][0]["results"], exact["queries"][0]["results"], strict=True)
    for got, want in pairs:
        assert got["path"] == want["path"] and got["score"] == pytest.approx(want["score"])

    for argv, message in [
        (["search", str(out), query, "--ef", "10"], "ef does not apply to this ivf index"),
        (["search", str(out), query, "--nprobe", "8"], "nprobe must be between 1 and 7"),
        (["search", str(out), query, "--nprobe", "0"], "not a positive integer"),
        ([*build[:-2], "--out", str(tmp_path / "b"), "--index-type", "bogus"], "could not parse"),
        ([*build[:-2], "--out", str(tmp_path / "b"), "--index-type", "x;y"], "unknown index type"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") or "usage:" in err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_page_knobs(web_service):
    from lava_retrieval.apps.web import create_app

    client = create_app(web_service, k=3).test_client()
    assert client.get("/api/info").json["search"] == {"index_type": "exact"}
    for data, message in [
        ({"test_id": "1", "ef": "10"}, "ef cannot be used: this index is exact"),
        ({"test_id": "1", "nprobe": "x"}, "'x' is not a valid nprobe"),
        ({"test_id": "1", "exact": "maybe"}, "exact must be true or false"),
    ]:
        answer = client.post("/api/search", data=data)
        assert answer.status_code == 400 and message in answer.json["error"]
    assert client.post("/api/search", data={"test_id": "1", "exact": "true"}).status_code == 200


def test_filtered_search_is_search_of_the_allowed_vectors(clustered):
    """Exact and IVF (every cluster scanned) search among the allowed vectors equal a search
    of an index of only those vectors; fewer allowed than k: ids -1."""
    allowed = np.zeros(len(clustered), bool)
    allowed[np.random.default_rng(1).choice(len(clustered), 400, replace=False)] = True
    only = CosineIndex().add(clustered.vectors_[allowed], ids=np.flatnonzero(allowed))
    queries = clustered.vectors_[:30]
    want_scores, want_ids = only.search(queries, 10)
    scores, ids = clustered.search(queries, 10, allowed)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    ivf = ApproximateIndex.build(clustered.vectors_, "ivf")
    got_scores, positions = ivf.search(queries, 10, nprobe=76, allowed=allowed)
    assert allowed[positions].all()
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
    hnsw = ApproximateIndex.build(clustered.vectors_, "hnsw")
    assert allowed[hnsw.search(queries, 10, ef=200, allowed=allowed)[1]].all()
    few = np.zeros(len(clustered), bool)
    few[[3, 7]] = True
    scores, ids = clustered.search(queries[:2], 4, few)
    assert ids[:, 2:].tolist() == [[-1, -1]] * 2 and set(ids[0, :2]) == {3, 7}
    assert np.isneginf(scores[:, 2:]).all()
    with pytest.raises(RetrievalIndexError, match="matches no vector"):
        clustered.search(queries, 3, np.zeros(len(clustered), bool))


def test_image_index_filters(network, fashion, tmp_path, capsys):
    index = ImageIndex(network, CONFIG).add(read_source("fashion-mnist:train", limit=300))
    names = index.class_names
    queries = fashion.test_images[:4]
    for labels in (["Pullover"], [2], ["2"]):
        hits = index.search(queries, 5, labels=labels)
        assert all(h.label_name == "Pullover" for row in hits for h in row)
    two = index.search(queries, 8, labels=["Bag", "Sandal"])
    assert {h.label_name for row in two for h in row} <= {"Bag", "Sandal"}
    hits = index.search(queries, 5, path_prefix="fashion-mnist:train:1")
    assert all(h.path.startswith("fashion-mnist:train:1") for row in hits for h in row)
    # Only 111 images start with fashion-mnist:train:1 (1, 10-19, 100-199): k = 200 gives those.
    assert len(index.search(queries[:1], 200, path_prefix="fashion-mnist:train:1")[0]) == 111
    for kwargs, message in [
        ({"labels": ["Hat"]}, f"unknown label 'Hat'; the index has: {', '.join(names)}"),
        ({"labels": ["10"]}, "unknown label '10'"),
        ({"labels": ["Bag"], "path_prefix": "fashion-mnist:test"}, "matches no indexed image"),
        ({"labels": ["Bag"], "backend": "lava"}, "filters need the simulator backend"),
    ]:
        with pytest.raises(RetrievalIndexError, match=message):
            index.search(queries, 3, **kwargs)

    out = tmp_path / "idx"
    index.save(out)
    argv = ["search", str(out), "fashion-mnist:test:0", "-k", "4", "--json"]
    assert main([*argv, "--label", "Bag", "--label", "Coat"]) == 0
    results = json.loads(capsys.readouterr().out)["queries"][0]["results"]
    assert len(results) == 4 and {r["label_name"] for r in results} <= {"Bag", "Coat"}
    assert main([*argv, "--label", "Hat"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown label 'Hat'")


def test_page_filters(web_service):
    from lava_retrieval.apps.web import create_app

    client = create_app(web_service, k=3).test_client()
    body = client.post("/api/search", data={"test_id": "0", "label": ["Bag", "Coat"]}).json
    for column in ("snn", "ann"):
        assert len(body[column]) == 3
        assert {h["label_name"] for h in body[column]} <= {"Bag", "Coat"}
    answer = client.post("/api/search", data={"test_id": "0", "label": "Hat"})
    assert answer.status_code == 400 and "unknown label 'Hat'" in answer.json["error"]
