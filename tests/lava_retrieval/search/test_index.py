"""CosineIndex against numpy brute force; errors; atomic save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lava_retrieval.search.index import CosineIndex, RetrievalIndexError


def _brute_force(corpus, queries, k):
    c = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ c.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, 1), order


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("chunk_size", [1, 7, 512])
def test_matches_brute_force(k, chunk_size):
    rng = np.random.default_rng(k)
    corpus, queries = rng.normal(size=(300, 24)), rng.normal(size=(40, 24))
    index = CosineIndex(chunk_size=chunk_size).add(corpus)
    scores, ids = index.search(queries, k)
    expected_scores, expected_ids = _brute_force(corpus, queries, k)
    assert scores.shape == ids.shape == (40, k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_ties_and_zero_vectors():
    index = CosineIndex().add(np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
    scores, ids = index.search(np.array([[5.0, 0.0]]), k=4)
    assert ids.tolist() == [[0, 2, 1, 3]]  # equal scores keep insertion order
    np.testing.assert_allclose(scores, [[1.0, 1.0, 0.0, 0.0]])


def test_integer_membrane_potentials_do_not_overflow():
    big = np.full((2, 1024), 100_000, dtype=np.int64)
    big[1, 0] = -100_000
    scores, ids = CosineIndex().add(big).search(big[:1], 2)
    assert ids.tolist() == [[0, 1]] and scores[0, 0] == pytest.approx(1.0)


def test_ids_and_labels():
    index = CosineIndex().add(np.eye(4), ids=[10, 11, 12, 13], labels=[3, 2, 1, 0])
    _, ids = index.search(np.eye(4)[2:], 1)
    assert ids.ravel().tolist() == [12, 13]
    assert index.labels_of(ids).ravel().tolist() == [1, 0]
    index.add(np.ones((1, 4)), labels=[7])
    assert index.ntotal == 5 and index.ids_[-1] == 4


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.search(np.ones((1, 3)), 1), "dimension 3, the index has 4"),
        (lambda i: i.search(np.ones((1, 4)), 0), "k must be a positive integer"),
        (lambda i: i.search(np.ones((1, 4)), 6), "k=6 is larger than the index"),
        (lambda i: i.add(np.ones((2, 5)), labels=[0, 0]), "dimension 5"),
        (lambda i: i.add(np.full((1, 4), np.nan), labels=[0]), "NaN"),
        (lambda i: i.add(np.ones((2, 4))), "pass labels="),
        (lambda i: i.add(np.ones((2, 4)), labels=[1]), "1 labels for 2 embeddings"),
    ],
)
def test_errors(call, message):
    index = CosineIndex().add(np.eye(4) + 0.1, labels=[0, 1, 2, 3])
    with pytest.raises(RetrievalIndexError, match=message):
        call(index)


def test_empty_index():
    with pytest.raises(RetrievalIndexError, match="empty"):
        CosineIndex(dim=4).search(np.ones((1, 4)), 1)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    meta = {"readout": "membrane", "time_steps": 16, "network_sha256": "ab"}
    index = CosineIndex(metadata=meta).add(rng.normal(size=(50, 8)), labels=rng.integers(0, 3, 50))
    path = index.save(tmp_path / "idx")
    index.save(path)  # replacing an existing index works
    manifest = json.loads((path / "index.json").read_text())
    assert manifest["dimension"] == 8 and manifest["count"] == 50
    assert manifest["metadata"] == meta
    loaded = CosineIndex.load(path)
    np.testing.assert_array_equal(loaded.vectors_, index.vectors_)
    np.testing.assert_array_equal(loaded.labels_, index.labels_)
    queries = rng.normal(size=(5, 8))
    for a, b in zip(loaded.search(queries, 3), index.search(queries, 3), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary left behind


def test_load_errors(tmp_path):
    with pytest.raises(RetrievalIndexError, match="no index.json"):
        CosineIndex.load(tmp_path)
    path = CosineIndex().add(np.eye(4)).save(tmp_path / "idx")
    manifest = json.loads((path / "index.json").read_text())
    embeddings = path / manifest["shards"][0]["file"]
    good = embeddings.read_bytes()
    embeddings.write_bytes(good[:-7])
    with pytest.raises(RetrievalIndexError, match="unreadable"):
        CosineIndex.load(path)
    np.save(embeddings, np.full((4, 4), np.nan, np.float32))
    with pytest.raises(RetrievalIndexError, match="NaN"):
        CosineIndex.load(path)
    np.save(embeddings, np.zeros((3, 4), np.float32))
    with pytest.raises(RetrievalIndexError, match=r"shape \(3, 4\), the manifest says \(4, 4\)"):
        CosineIndex.load(path)
    embeddings.write_bytes(good)
    (path / "index.json").write_text("{")
    with pytest.raises(RetrievalIndexError, match="not valid JSON"):
        CosineIndex.load(path)
    (path / "index.json").write_text(json.dumps({**manifest, "files": {"ids.npy": "../x"}}))
    with pytest.raises(RetrievalIndexError, match="bad file list"):
        CosineIndex.load(path)


def test_save_never_writes_over_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(RetrievalIndexError, match="not an index"):
        CosineIndex().add(np.eye(3)).save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    assert (tmp_path / "mine.txt").read_text() == "a user's file"
    with pytest.raises(RetrievalIndexError, match="is not a directory"):
        CosineIndex().add(np.eye(3)).save(tmp_path / "mine.txt")


def test_replacing_an_index_is_crash_consistent(tmp_path, monkeypatch):
    """The manifest is written last and names its files: a crash before it leaves the old
    index whole; a finished save leaves only the new version's files."""
    from lava_retrieval.search import index as index_module

    path = CosineIndex().add(np.eye(3)).save(tmp_path / "idx")
    old_files = sorted(p.name for p in path.iterdir())

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(index_module, "write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        CosineIndex().add(2 * np.eye(5)).save(path)
    monkeypatch.undo()
    assert len(CosineIndex.load(path)) == 3  # the old index, whole
    CosineIndex().add(np.eye(5)).save(path)
    assert len(CosineIndex.load(path)) == 5
    files = sorted(p.name for p in path.iterdir())
    assert len(files) == 3 and not set(files) & (set(old_files) - {"index.json"})


def test_constructor_arguments_are_kept_as_given():
    """Parameters stay what the caller passed; what adding vectors learns ends in ``_``."""
    metadata = {"readout": "membrane"}
    index = CosineIndex(metadata=metadata)
    index.add(np.eye(4))
    assert index.dim is None and index.dim_ == 4 and index.metadata is metadata
    assert metadata == {"readout": "membrane"}
    with pytest.raises(RetrievalIndexError, match="dimension 3, the index has 4"):
        index.add(np.ones((1, 3)))


@pytest.mark.parametrize("chunk_size", [0, -2])
def test_chunk_size_must_be_positive(chunk_size):
    index = CosineIndex(chunk_size=chunk_size).add(np.eye(3))
    with pytest.raises(RetrievalIndexError, match="chunk_size must be a positive integer"):
        index.search(np.eye(3), 1)
