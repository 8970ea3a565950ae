"""Sharded, memory-mapped embeddings: what a save writes (only new shards), what a load maps,
and that an exact search over shards answers what one over a single array does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lava_retrieval.search import index as index_module
from lava_retrieval.search import shards as shards_module
from lava_retrieval.search.index import CosineIndex, RetrievalIndexError
from lava_retrieval.search.shards import Shards


@pytest.fixture
def seven(monkeypatch):
    """Shards of 7 rows, so that small indexes have several."""
    monkeypatch.setattr(index_module, "shard_rows", lambda dim: 7)


def shard_files(path) -> list[str]:
    return [s["file"] for s in json.loads((path / "index.json").read_text())["shards"]]


def reference(vectors: np.ndarray, queries: np.ndarray, k: int):
    """The exact answer by a full sort: score descending, then position."""
    scores = queries @ vectors.T
    order = np.lexsort((np.broadcast_to(np.arange(len(vectors)), scores.shape), -scores))
    return np.take_along_axis(scores, order, 1)[:, :k], order[:, :k]


def test_shards_read_like_one_array():
    a, b = np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((2, 2), np.float32)
    shards = Shards(2, [a, b], ["x", None])
    whole = np.concatenate([a, b])
    np.testing.assert_array_equal(np.asarray(shards), whole)
    np.testing.assert_array_equal(shards[1:4], whole[1:4])
    np.testing.assert_array_equal(shards[[[4, 0], [2, 3]]], whole[[[4, 0], [2, 3]]])
    np.testing.assert_array_equal(shards[-1], whole[-1])
    np.testing.assert_array_equal(shards[whole[:, 0] > 1], whole[whole[:, 0] > 1])
    with pytest.raises(IndexError):
        shards.take([5])
    shards.append(np.zeros((1, 2)))  # joins the unsaved last block
    assert [len(p) for p in shards.parts] == [3, 3] and shards.names == ["x", None]
    kept = shards.select(np.array([True, True, True, False, True, True]))
    assert kept.names == ["x", None] and len(kept) == 5  # the saved block kept as it is
    assert shards.select(np.array([True, False, True, True, True, True])).names == [None, None]
    assert shards.unsaved(2) == [(3, 5), (5, 6)]


def test_a_search_over_shards_is_the_full_ranking(seven, tmp_path):
    """Equal scores across shard boundaries go by position, as a full sort orders them."""
    rng = np.random.default_rng(0)
    vectors = rng.integers(-1, 2, (40, 3)).astype(np.float32)  # many equal vectors
    vectors[vectors.sum(1) == 0] = [1, 0, 0]
    index = CosineIndex().add(vectors).save(tmp_path / "idx")
    loaded = CosineIndex.load(index)
    assert [len(p) for p in loaded.vectors_.parts] == [7] * 5 + [5]
    assert all(isinstance(p, np.memmap) for p in loaded.vectors_.parts)
    queries = rng.integers(-1, 2, (9, 3)).astype(np.float32)
    queries[queries.sum(1) == 0] = [0, 1, 0]
    for k in (1, 5, 12, 40):
        scores, positions = loaded.search_positions(queries, k)
        vectors = np.asarray(loaded.vectors_)
        want_scores, want = reference(vectors, index_module.normalize(queries), k)
        np.testing.assert_array_equal(positions, want)
        np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    allowed = np.arange(40) % 3 == 0
    _, positions = loaded.search_positions(queries, 20, allowed)
    assert (positions[:, :14] % 3 == 0).all() and (positions[:, 14:] == -1).all()


def test_saves_write_only_new_shards(seven, tmp_path):
    rng = np.random.default_rng(1)
    path = CosineIndex().add(rng.standard_normal((16, 4))).save(tmp_path / "idx")
    first = shard_files(path)
    assert len(first) == 3
    stamps = {name: (path / name).stat().st_mtime_ns for name in first}
    index = CosineIndex.load(path)
    index.add(rng.standard_normal((3, 4)), ids=[16, 17, 18])
    index.save(path)
    second = shard_files(path)
    assert second[:3] == first and len(second) == 4  # the old three named again, not written
    assert {name: (path / name).stat().st_mtime_ns for name in first} == stamps
    # A removal writes the shard that lost rows, and only it.
    index.remove([8])
    index.save(path)
    third = shard_files(path)
    assert third[0] == first[0] and third[2:] == second[2:] and third[1] not in first
    assert sorted(p.name for p in path.glob("embeddings-*")) == sorted(third)  # old one gone
    loaded = CosineIndex.load(path)
    np.testing.assert_array_equal(np.asarray(loaded.vectors_), np.asarray(index.vectors_))
    assert loaded.ids_.tolist() == [i for i in range(19) if i != 8]
    # Saved elsewhere: every shard is written there (the copy does not lean on this one).
    index.save(tmp_path / "copy")
    assert not set(shard_files(tmp_path / "copy")) & set(third)
    np.testing.assert_array_equal(
        np.asarray(CosineIndex.load(tmp_path / "copy").vectors_), np.asarray(loaded.vectors_)
    )


def test_spilled_shards_of_an_interrupted_build_are_cleared(seven, tmp_path):
    index = CosineIndex().add(np.random.default_rng(2).standard_normal((15, 4)))
    index.spill(tmp_path / "idx")
    assert len(list((tmp_path / "idx").glob("embeddings-*"))) == 2  # the two full shards
    assert [n is not None for n in index.vectors_.names] == [True, True, False]
    index.save(tmp_path / "idx")  # they are named by the first version
    assert len(shard_files(tmp_path / "idx")) == 3
    # A build killed after spilling: its files alone do not block the directory, and the
    # next index saved there removes them.
    other = CosineIndex().add(np.random.default_rng(3).standard_normal((15, 4)))
    other.spill(tmp_path / "crashed")
    del other
    CosineIndex().add(np.eye(4)).save(tmp_path / "crashed")
    assert len(list((tmp_path / "crashed").glob("embeddings-*"))) == 1


def test_a_version_2_index_still_loads(tmp_path):
    vectors = index_module.normalize(np.random.default_rng(4).standard_normal((5, 3)))
    path = tmp_path / "old"
    path.mkdir()
    np.save(path / "embeddings-0000abcd.npy", vectors)
    np.save(path / "ids-0000abcd.npy", np.arange(5))
    manifest = {
        "format": "lava-retrieval-index",
        "version": 2,
        "dimension": 3,
        "count": 5,
        "files": {"embeddings.npy": "embeddings-0000abcd.npy", "ids.npy": "ids-0000abcd.npy"},
    }
    (path / "index.json").write_text(json.dumps(manifest))
    index = CosineIndex.load(path)
    np.testing.assert_array_equal(np.asarray(index.vectors_), vectors)
    index.add(np.eye(3))
    index.save(path)  # now version 3: the old file is its first shard
    assert json.loads((path / "index.json").read_text())["version"] == 3
    assert shard_files(path)[0] == "embeddings-0000abcd.npy"
    assert len(CosineIndex.load(path)) == 8


def test_bad_shard_lists_are_refused(tmp_path):
    path = CosineIndex().add(np.eye(3)).save(tmp_path / "idx")
    manifest = json.loads((path / "index.json").read_text())
    for shards, message in (
        ([{"file": "../x.npy", "count": 3}], "bad shard list"),
        ([{"file": manifest["shards"][0]["file"], "count": 2}], "hold 2 vectors, its count is 3"),
        ("nope", "bad shard list"),
    ):
        (path / "index.json").write_text(json.dumps({**manifest, "shards": shards}))
        with pytest.raises(RetrievalIndexError, match=message):
            CosineIndex.load(path)


def test_large_indexes_release_their_pages(seven, tmp_path, monkeypatch):
    """Above RELEASE_BYTES each shard's pages go back after a scan; answers do not change."""
    vectors = np.random.default_rng(5).standard_normal((30, 8))
    loaded = CosineIndex.load(CosineIndex().add(vectors).save(tmp_path / "idx"))
    want = loaded.search_positions(vectors[:4], 6)
    released = []
    monkeypatch.setattr(shards_module, "RELEASE_BYTES", 0)
    monkeypatch.setattr(shards_module, "drop_pages", lambda part: released.append(part))
    got = loaded.search_positions(vectors[:4], 6)
    assert len(released) == 5
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_scattered_rows_of_saved_shards_are_read_not_mapped(seven, tmp_path, monkeypatch):
    """A gather from memory-mapped shards (what re-ranking does) reads the rows with pread:
    the same values as indexing the arrays, without touching the mapping."""
    vectors = np.random.default_rng(6).standard_normal((30, 8))
    loaded = CosineIndex.load(CosineIndex().add(vectors).save(tmp_path / "idx"))
    positions = np.array([[29, 0, 7], [13, 13, 28]])
    want = np.asarray(loaded.vectors_)[positions]
    calls = []
    real = shards_module.read_rows
    monkeypatch.setattr(
        shards_module, "read_rows", lambda *args: calls.append(len(args[1])) or real(*args)
    )
    np.testing.assert_array_equal(loaded.vectors_.take(positions), want)
    assert sum(calls) == 6 and len(calls) == 3  # three shards met, six rows read
    part = loaded.vectors_.parts[0]
    part.reader.close()  # a shard whose file cannot be read any more: an error, not zeros
    with pytest.raises((OSError, ValueError)):
        loaded.vectors_.take([1])
