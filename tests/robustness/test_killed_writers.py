"""A writer killed at any moment (SIGKILL: no clean-up of its own) leaves the index it was
changing at its old version or its new one, whole; what it left half-written is removed by the
next writer, so no temporary file outlives it."""

from __future__ import annotations

import json
import re
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


def _state(directory: Path) -> dict[str, tuple[int, int]]:
    """Path -> (id, pixel hash) of every image the index in ``directory`` holds."""
    index = ImageIndex.load(directory)
    return {
        index.paths[p]: (int(index.index.ids_[p]), int(index.hashes[p]))
        for p in index.live_positions()
    }


@pytest.fixture(scope="module")
def sync_case(tmp_path_factory, fashion):
    """An index of a folder of 400 photos, the folder changed since (100 deleted, 100
    changed, 800 added), and the states of the index before and after a whole sync."""
    from PIL import Image

    from lava_retrieval.search import catalogue
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork

    root = tmp_path_factory.mktemp("sync")
    folder = root / "photos"
    folder.mkdir()

    def photo(name: str, number: int) -> None:
        Image.fromarray(255 - fashion.test_images[number]).save(folder / f"{name}.png")

    for n in range(400):
        photo(f"p{n}", n)
    index = ImageIndex(
        SpikingNetwork.load(NETWORK), SimConfig(8, timing="delay", readout="membrane")
    )
    index.add(read_source(folder, progress=False)).save(root / "idx")
    for n in range(100):
        (folder / f"p{n}.png").unlink()
        photo(f"p{n + 100}", 5000 + n)
    for n in range(400, 1200):
        photo(f"p{n}", n)
    synced = shutil.copytree(root / "idx", root / "synced")
    catalogue.sync(ImageIndex, synced, folder)
    return root / "idx", folder, _state(root / "idx"), _state(synced)


def _when(process: subprocess.Popen, percent: int) -> None:
    """Return once ``process`` reports (its progress bar on stderr) ``percent`` of its
    images done, or has ended."""
    seen = b""
    while process.poll() is None:
        seen += process.stderr.read1(4096)
        done = [int(m) for m in re.findall(rb"embedding:\s+([0-9]+)%", seen)]
        if done and max(done) >= percent:
            return


@pytest.mark.parametrize(
    ("how", "percent"),
    [
        (signal.SIGKILL, 20),
        (signal.SIGKILL, 60),
        (signal.SIGKILL, 100),  # (its save has begun)
        (signal.SIGINT, 40),
        (signal.SIGINT, 100),
    ],
)
def test_an_interrupted_index_sync_leaves_a_whole_version(tmp_path, sync_case, how, percent):
    """``index sync`` killed (kill -9) or interrupted (Ctrl-C) at several moments of its work
    (the share of its images its progress bar shows done): the index is its old version or
    its new one, whole, and the next sync finishes the work."""
    original, folder, old, new = sync_case
    directory = shutil.copytree(original, tmp_path / "idx")
    process = subprocess.Popen(
        [sys.executable, "-m", "lava_retrieval.cli", "index", "sync", str(directory)]
        + [str(folder), "--chunk", "20"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _when(process, percent)
    process.send_signal(how)
    process.communicate(timeout=60)  # (what it says as it ends is read, not left to block it)
    code = process.returncode
    state = _state(directory)
    assert state in (old, new)
    if percent < 100:
        assert state == old and code == (130 if how == signal.SIGINT else -9)
    from lava_retrieval.search import catalogue

    catalogue.sync(ImageIndex, directory, folder)
    assert _state(directory) == new
    _only_the_manifests_files(directory)
