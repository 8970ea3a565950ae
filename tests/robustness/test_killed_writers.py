"""A writer killed at any moment (SIGKILL: no clean-up of its own) leaves the index it was
changing at its old version or its new one, whole; what it left half-written is removed by the
next writer, so no temporary file outlives it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import read_source

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)

ROOT = Path(__file__).resolve().parents[2]
NETWORK = ROOT / "tests" / "lava_retrieval" / "golden" / "small-net.npz"

#: What a writer killed half-way through a save leaves in the index directory: temporaries of
#: the manifest and of an array, and the files of a version whose manifest never came.
LEFTOVERS = [
    ".index.json.1a2b3c4d.tmp.json",
    ".embeddings-0badc0de.npy.5e6f7a8b.tmp.npy",
    "embeddings-0badc0de.npy",
    "paths-0badc0de.json",
]


def _only_the_manifests_files(directory: Path) -> None:
    manifest = json.loads((directory / "index.json").read_text())
    shards = [shard["file"] for shard in manifest["shards"]]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [*manifest["files"].values(), *shards, "index.json"]
    )
    assert not list(directory.parent.glob(".*.lock"))


def test_the_next_writer_removes_what_a_killed_one_left(tmp_path, small_index):
    directory = shutil.copytree(small_index, tmp_path / "idx")
    for name in LEFTOVERS:
        (directory / name).write_bytes(b"half")
    added = read_source("fashion-mnist:validation", limit=3, progress=False)
    assert len(ImageIndex.extend(directory, added)) == 23
    _only_the_manifests_files(directory)
    assert len(ImageIndex.load(directory)) == 23


@pytest.mark.parametrize("delay", [0.5, 1.5, 2.0, 2.5, 3.0, 3.5])
def test_a_killed_index_add_leaves_a_whole_version(tmp_path, small_index, delay):
    directory = shutil.copytree(small_index, tmp_path / "idx")
    command = [sys.executable, "-m", "lava_retrieval.cli", "index", "add", str(directory)]
    process = subprocess.Popen(
        [*command, "fashion-mnist:full_train", "--limit", "20000"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert len(ImageIndex.load(directory)) in (20, 20_020)  # the old version or the new, whole
    added = read_source("fashion-mnist:validation", limit=3, progress=False)
    before = len(ImageIndex.load(directory))
    assert len(ImageIndex.extend(directory, added)) == before + 3
    _only_the_manifests_files(directory)
