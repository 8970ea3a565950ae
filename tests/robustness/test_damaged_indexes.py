"""A tampered index directory ends in one `error:` line naming it (a project exception from
Python), never a traceback or a wrong answer."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lava_retrieval.cli import main
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.search.image_index import ImageIndex
from lava_retrieval.search.sources import read_source
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An HNSW index of 20 test images (an exact part and a faiss file)."""
    network = SpikingNetwork.load(ROOT / "results" / "snn-32-64-10.npz")
    index = ImageIndex(
        network, SimConfig(time_steps=8, timing="delay", readout="membrane"), index_type="hnsw"
    )
    index.add(read_source("fashion-mnist:test", limit=20, progress=False))
    return index.save(tmp_path_factory.mktemp("built") / "idx")


def _manifest(directory: Path, change) -> None:
    path = directory / "index.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _file(directory: Path, name: str) -> Path:
    """The file of ``name`` in the manifest (``embeddings.npy``: its first shard)."""
    manifest = json.loads((directory / "index.json").read_text())
    if name == "embeddings.npy":
        return directory / manifest["shards"][0]["file"]
    return directory / manifest["files"][name]


def _array(directory: Path, name: str, change) -> None:
    path = _file(directory, name)
    np.save(path, change(np.load(path)))


def _set(*keys, value):
    def change(manifest):
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return lambda d: _manifest(d, change)


def _huge_header(directory: Path) -> None:
    """An embeddings file whose header claims 10^12 rows (terabytes) over a few bytes of data."""
    path = _file(directory, "embeddings.npy")
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 1024)}
        )
        f.write(b"\0" * 64)


def _rewrite(name: str, content, checksum: bool = True):
    """Replace the versioned file ``name`` by ``content`` (bytes, or a function of the old
    bytes); ``checksum``: record the new file's checksum too, so that what reads it is tested
    rather than the checksum."""
    import hashlib

    def change(directory: Path):
        path = _file(directory, name)
        data = content(path.read_bytes()) if callable(content) else content
        path.write_bytes(data)
        if checksum:
            _set("checksums", name, value=hashlib.sha256(data).hexdigest())(directory)

    return change


def _paths(value):
    return _rewrite("paths.json", json.dumps(value).encode())


def _damaged_header(data: bytes) -> bytes:
    """An .npy header whose dict is never closed: numpy's parser tokenizes it as Python and
    raises tokenize.TokenError, no ValueError."""
    return data.replace(b"}", b" ", 1)


def _other_faiss(directory: Path) -> None:
    """The faiss file of an IVF index where the manifest says HNSW (checksum recorded)."""
    import faiss

    index = faiss.index_factory(1024, "IVF2,Flat", faiss.METRIC_INNER_PRODUCT)
    vectors = np.load(_file(directory, "embeddings.npy")).astype(np.float32)
    index.train(vectors)
    index.add(vectors)
    _rewrite("faiss.index", faiss.serialize_index(index).tobytes())(directory)


TAMPERED = {
    "manifest-not-object": lambda d: (d / "index.json").write_text("[1, 2]"),
    "manifest-nested": lambda d: (d / "index.json").write_text("[" * 100_000 + "]" * 100_000),
    "dimension-text": _set("dimension", value="1024"),
    "dimension-bool": _set("dimension", value=True),
    "count-negative": _set("count", value=-1),
    "metadata-list": _set("metadata", value=[1]),
    "has-labels-text": _set("has_labels", value="yes"),
    "time-steps-absurd": _set("metadata", "simulation", "time_steps", value=10**12),
    "simulation-text": _set("metadata", "simulation", value="fast"),
    "class-names-numbers": _set("metadata", "class_names", value=[1, 2, 3]),
    "sources-text": _set("metadata", "sources", value="everything"),
    "label-beyond-classes": lambda d: _array(d, "labels.npy", lambda a: a + 99),
    "label-negative": lambda d: _array(d, "labels.npy", lambda a: a - 100),
    "embeddings-not-unit": lambda d: _array(d, "embeddings.npy", lambda a: a * 1e19),
    "embeddings-huge-header": _huge_header,
    "paths-not-strings": _paths([{"x": 1}] * 20),
    "paths-not-list": _paths("a"),
    "paths-nested": _rewrite("paths.json", b"[" * 100_000 + b"]" * 100_000),
    "paths-changed-unrecorded": _rewrite("paths.json", b'["a"]', checksum=False),
    "ids-header-damaged": _rewrite("ids.npy", _damaged_header, checksum=False),
    "embeddings-header-damaged": lambda d: _file(d, "embeddings.npy").write_bytes(
        _damaged_header(_file(d, "embeddings.npy").read_bytes())
    ),
    "next-id-beyond-int64": _set("metadata", "next_id", value=2**63),
    "next-id-bool": _set("metadata", "next_id", value=True),
    "index-type-bogus": _set("metadata", "search", "index_type", value="bogus"),
    "factory-disagrees": _set("metadata", "search", "factory", value="IVF16,Flat"),
    "faiss-type-disagrees": _set("metadata", "search", "faiss", "type", value="IndexFlatIP"),
    "faiss-file-changed": _rewrite("faiss.index", lambda b: b[:-1] + bytes([b[-1] ^ 1]), False),
    "faiss-file-of-ivf": _other_faiss,
    "checksums-text": _set("checksums", value="none"),
    "ids-a-fifo": lambda d: (_file(d, "ids.npy").unlink(), os.mkfifo(_file(d, "ids.npy"))),
    "manifest-a-fifo": lambda d: ((d / "index.json").unlink(), os.mkfifo(d / "index.json")),
}


@pytest.mark.parametrize("variant", sorted(TAMPERED))
def test_a_tampered_index_is_one_clear_error(built, tmp_path, capsys, variant):
    directory = tmp_path / "idx"
    shutil.copytree(built, directory)
    TAMPERED[variant](directory)
    with pytest.raises(LavaRetrievalError, match=str(directory)):
        ImageIndex.load(directory)
    assert main(["search", str(directory), "fashion-mnist:test:0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(directory) in err[0]


def test_the_untampered_copy_loads(built, tmp_path):
    directory = tmp_path / "idx"
    shutil.copytree(built, directory)
    assert len(ImageIndex.load(directory)) == 20
