"""Writers of one index exclude each other and lose nothing; readers see one whole version."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading

import pytest

from lava_retrieval.conversion.methods import get
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.index import RetrievalIndexError
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)

SOURCES = {"fashion-mnist:test": 10, "fashion-mnist:validation": 7, "fashion-mnist:train": 5}


@pytest.fixture(scope="module")
def network(fashion):
    return get("paper").network(fashion)


@pytest.fixture
def index_dir(network, tmp_path):
    index = ImageIndex(network, SimConfig(time_steps=8, timing="delay", readout="membrane"))
    index.add(read_source("fashion-mnist:full_train", limit=3, progress=False))
    return index.save(tmp_path / "idx", new=True)


def test_concurrent_index_adds_keep_every_image_exactly_once(index_dir):
    """Three `index add` at once on one index (which used to leave only index.json, or drop a
    writer's images), while this process keeps reading it."""
    seen, errors, done = set(), [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.add(len(ImageIndex.load(index_dir)))
            except RetrievalIndexError as exc:  # a half-replaced version
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lava_retrieval.cli",
                "index",
                "add",
                str(index_dir),
                source,
                "--limit",
                str(limit),
                "--json",
                "--allow-duplicates",  # (the splits share images with full_train)
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source, limit in SOURCES.items()
    ]
    results = [writer.communicate(timeout=300) + (writer.returncode,) for writer in writers]
    done.set()
    reader.join()
    assert [code for _, _, code in results] == [0, 0, 0], [err for _, err, _ in results]
    index = ImageIndex.load(index_dir)
    counts = collections.Counter(index.paths)
    assert len(index) == 3 + sum(SOURCES.values()) and set(counts.values()) == {1}
    for source, limit in SOURCES.items():
        assert sum(p.startswith(source + ":") for p in index.paths) == limit
    # Readers saw whole versions only: the sizes the index had between writers.
    assert errors == [] and seen <= {3, 13, 10, 8, 20, 18, 15, 25}
    assert not any(p.name.startswith(".") for p in index_dir.parent.iterdir())  # no lock left


def test_a_save_over_a_version_it_did_not_load_is_refused(index_dir):
    first, second = ImageIndex.load(index_dir), ImageIndex.load(index_dir)
    first.add(read_source("fashion-mnist:validation", limit=2, progress=False)).save(index_dir)
    train = read_source("fashion-mnist:train", limit=2, progress=False)  # (as full_train's)
    second.add(train, allow_duplicates=True)
    with pytest.raises(RetrievalIndexError, match="another writer changed this index"):
        second.save(index_dir)
    kept = ImageIndex.load(index_dir)
    assert len(kept) == 5 and kept.paths[-1] == "fashion-mnist:validation:1"
    # Loading again and repeating the change works, and a saved index can be saved again.
    again = ImageIndex.load(index_dir)
    again.add(train, allow_duplicates=True).save(index_dir)
    again.add(read_source("fashion-mnist:test", limit=1, progress=False)).save(index_dir)
    assert len(ImageIndex.load(index_dir)) == 8


def test_of_two_builders_into_one_directory_the_second_fails(network, index_dir):
    other = ImageIndex(network, SimConfig(time_steps=8, timing="delay", readout="membrane"))
    other.add(read_source("fashion-mnist:train", limit=4, progress=False))
    with pytest.raises(RetrievalIndexError, match="already holds an index"):
        other.save(index_dir, new=True)
    assert len(ImageIndex.load(index_dir)) == 3
