"""The index directory of an :class:`~lava_retrieval.search.image_index.ImageIndex` and its
write protocol: saving, loading and changing it in place, each under the writers' lock.

An index directory holds, all written crash-consistently by :meth:`CosineIndex.save`:

``index.json``
    The manifest: count, dimension, and under ``metadata`` the network's fingerprint (a hash of
    its content, :meth:`SpikingNetwork.fingerprint`), the simulation settings (time steps,
    timing, readout) and :func:`lava_retrieval.engines.sim.cache_key`, the network's initial
    membrane,
    the preprocessing of images (:class:`lava_retrieval.data.images.Preprocessing`), class names and
    the sources added.
``embeddings-V.npy``, ``ids-V.npy``, ``labels-V.npy``
    The normalised embeddings, ids and labels (when known: Fashion-MNIST sources). Ids are
    stable: given in order (the manifest's ``next_id``), kept through removals and upserts,
    never given out again.
``paths-V.json``
    One absolute path (or ``fashion-mnist:SPLIT:I``) per embedding, so that an index answers
    from any working directory.
``hashes-V.npy``
    A 64-bit hash of each image's prepared pixels
    (:func:`~lava_retrieval.search.sources.content_hashes`; 0: not known, an index written
    before they were kept): what ``index add`` and ``index sync`` compare.
``removed-V.npy``
    When images were removed since the last compaction: a boolean per row, true for a
    removed image (a tombstone). Its row stays, so that nothing is rebuilt; no search returns
    it. A save compacts (drops those rows, rebuilds the approximate part) by itself once more
    than :data:`COMPACT_FRACTION` of the rows are
    tombstones; ``index compact`` does it at once.
``network-V.npz``
    The spiking network itself, so that a query is embedded by exactly the network, and with
    exactly the settings, of the corpus: a search never mixes embeddings of two networks.
``faiss-V.index``
    An approximate index (:mod:`lava_retrieval.search.approximate`) over the embeddings, when
    the index was built with an ``index_type`` other than ``exact``; the manifest's
    ``metadata.search`` records its type, faiss factory string and its recall@10 against the
    exact search, measured on a sample of its own embeddings at every save.

Sources are a folder of images (recursive), a list file, or a Fashion-MNIST split
(``fashion-mnist:train``, ``:test``, ``:validation``, ``:full_train``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lava_retrieval.common.atomic import check_output
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.locking import exclusive
from lava_retrieval.common.strict import MAX_ID, loads
from lava_retrieval.data.images import (
    Preprocessing,
)
from lava_retrieval.search.approximate import (
    DEFAULT_KNOBS,
    INDEX_TYPES,
    ApproximateIndex,
)
from lava_retrieval.search.index import CosineIndex
from lava_retrieval.search.index_files import (
    MANIFEST,
    ExtraFile,
    Kept,
    RetrievalIndexError,
    check_file,
    check_index_directory,
    manifest_digest,
    read_checked,
    while_unchanged,
)
from lava_retrieval.snn.config import SimConfig, cache_key
from lava_retrieval.snn.network import SpikingNetwork

if TYPE_CHECKING:
    from lava_retrieval.search.image_index import ImageIndex

MAX_PATHS_BYTES = 1 << 33  # paths.json: 8 GiB is past any index this package can hold
COMPACT_FRACTION = 0.2
"""A save compacts the index by itself (:meth:`ImageIndex.compact`) when more than this
fraction of its rows are removed images (tombstones)."""


def metadata(index: ImageIndex) -> dict:
    """What the manifest records about the embeddings."""
    return {
        "count": len(index),
        "removed": index.tombstones,
        "network": {
            "fingerprint": index.network.fingerprint(),
            "arch": index.network.arch,
            "initial_membrane": index.network.initial_membrane,
            "embedding_layer": index.network.layers[index.network.embedding_layer].name,
        },
        "simulation": index.config.settings(),
        "cache_key": cache_key(index.network, index.config),
        "preprocessing": index.preprocessing.to_dict(),
        "class_names": index.class_names,
        "sources": index.sources,
        "next_id": index.next_id,
        "search": index.search_info,
    }


def search_info(index: ImageIndex) -> dict:
    """How the index searches: its type and, when approximate, the faiss factory string,
    the knobs with their defaults and the recall@10 measured at the last save."""
    if index.index_type == "exact":
        return {"index_type": "exact"}
    if index.approximate is None and index._unread is not None:  # not read: as recorded
        recorded = {k: v for k, v in index._unread[2].items() if k != "recall"}
        return {**recorded, **({"recall": index.recall} if index.recall is not None else {})}
    info: dict[str, object] = {"index_type": index.index_type}
    if index.approximate is not None:
        info["factory"] = index.approximate.factory
        info["faiss"] = index.approximate.describe()
        info["knobs"] = {
            name: {"default": DEFAULT_KNOBS[name], "min": low, "max": high}
            for name, (low, high) in index.approximate.knobs().items()
        }
    if index.recall is not None:
        info["recall"] = index.recall
    return info


def remove_from(
    cls: type[ImageIndex],
    directory: str | os.PathLike,
    ids,
    *,
    log: Callable[[str], None] | None = None,
) -> ImageIndex:
    """Remove images by id from the index in ``directory`` (holding its lock, from its
    newest version)."""
    with exclusive(directory, what="writing this index", log=log):
        latest = cls.load(directory, approximate=False)  # (tombstones: faiss file unchanged)
        latest.remove(ids, keep_one=True)
        latest.save(directory)
    return latest


def compact(
    cls: type[ImageIndex],
    directory: str | os.PathLike,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[ImageIndex, int]:
    """Drop the removed images' rows of the index in ``directory`` and save it (its
    approximate part built again); returns the index and how many rows went."""
    with exclusive(directory, what="writing this index", log=log):
        latest = cls.load(directory, approximate=False)  # (built again: not read)
        before, digest = latest.shard_names(), manifest_digest(directory)
        try:
            gone = latest.compact(directory)
            latest.save(directory, progress=progress)
        except BaseException:
            discard_uncommitted(latest, directory, before, digest)
            raise
    return latest, gone


def save(
    index: ImageIndex, directory: str | os.PathLike, *, new: bool = False, progress: bool = False
) -> Path:
    """Write the index directory (see the module docstring); atomic and crash-consistent,
    holding the directory's writer lock. ``new``: refuse a directory that already holds an
    index (checked under the lock, so of two builders into one directory one fails).
    ``progress``: a bar while an approximate index is filled."""
    with exclusive(directory, what="writing this index"):  # (its compacted shards too)
        return _save(index, Path(directory), new, progress)


def _save(index: ImageIndex, directory: Path, new: bool, progress: bool) -> Path:
    before, digest = index.shard_names(), manifest_digest(directory)
    try:
        return _write(index, directory, new, progress)
    except BaseException:  # (the shards a compaction wrote go with it, unless committed)
        discard_uncommitted(index, directory, before, digest)
        raise


def discard_uncommitted(
    index: ImageIndex, directory: str | os.PathLike, before: set[str], digest: str | None
) -> None:
    """After a change that failed: remove the shards it wrote into ``directory`` (those not
    in ``before``), unless its manifest was written (``directory``'s manifest is no longer
    the one of SHA-256 ``digest``): then they are the new version's."""
    if manifest_digest(directory) == digest:
        index.discard(directory, keep=before)


def _write(index: ImageIndex, directory: Path, new: bool, progress: bool) -> Path:
    if new:
        check_new(directory)
    if index.tombstones > COMPACT_FRACTION * index.rows:
        index.compact(directory)
    index._sync_approximate(progress)
    index.index.metadata = index.metadata
    extra: dict[str, ExtraFile] = {
        "paths.json": json.dumps(index.paths).encode(),
        "hashes.npy": _npy(index.hashes),
        "network.npz": index.network.to_bytes(),
    }
    if index.removed is not None:
        extra["removed.npy"] = _npy(index.removed)
    source = index.index.source_
    same = source is not None and source[0] == Path(directory).resolve()
    if index._unread is not None and (not same or "faiss.index" not in index._kept):
        read_approximate(index)  # (its faiss file is not read, and cannot be named again)
    if index.approximate is not None:
        extra["faiss.index"] = index.approximate.write
    elif index._unread is not None:  # not read, unchanged: named again
        extra["faiss.index"] = index._kept["faiss.index"]
    if same:
        kept = dict(index._kept)
        if kept.pop("approximate", None) is not index.approximate:  # replaced since
            kept.pop("faiss.index", None)
        extra.update({k: v for k, v in kept.items() if k in extra})  # not written again
    out = index.index.save(directory, extra)
    index._kept = _kept(index, directory)
    return out


def _npy(array: np.ndarray) -> Callable[[Path], None]:
    """The writer of a ``.npy`` file of ``array``."""
    return lambda path: np.save(path, array)


KEPT = ("faiss.index", "network.npz")
"""The files a save names again, unchanged, rather than writing them (the faiss index of a
million images is 1.3 GB): only :meth:`ImageIndex._sync_approximate` and
:meth:`ImageIndex.compact` change them, and say so."""


def _kept(index: ImageIndex, directory: str | os.PathLike) -> dict[str, Kept]:
    """The :data:`KEPT` files of the version in ``directory`` (which ``index`` is), as a
    save of it there may name them again."""
    manifest = CosineIndex.read_manifest(directory)
    checksums = manifest.get("checksums") or {}
    kept: dict = {
        name: Kept(file, checksums.get(name))
        for name, file in manifest["files"].items()
        if name in KEPT
    }
    kept["approximate"] = index.approximate  # (the object its faiss file holds)
    return kept


def load(
    cls: type[ImageIndex], directory: str | os.PathLike, approximate: bool = True
) -> ImageIndex:
    """Read an index directory, checking that its network is the one it was built with (one
    whole version, even while a writer replaces it); without ``approximate``, its faiss file
    is not read (a search sharded over Ray actors builds its own per group)."""
    directory = Path(directory)
    return while_unchanged(directory, lambda: _load(cls, directory, approximate))


def _load(cls: type[ImageIndex], directory: Path, approximate: bool = True) -> ImageIndex:
    index = CosineIndex.load(directory)
    manifest = CosineIndex.read_manifest(directory)
    meta = index.metadata or {}
    files = manifest["files"]
    try:
        network = SpikingNetwork.load(check_file(directory, manifest, "network.npz"))
        paths = loads(
            read_checked(directory, manifest, "paths.json"),
            f"{directory}/{files['paths.json']}",
            MAX_PATHS_BYTES,
            max_depth=1,
        )
        config = SimConfig(**meta["simulation"])
        preprocessing = Preprocessing(**meta["preprocessing"])
    except RetrievalIndexError:  # a file missing or changed: said as it is
        raise
    except (KeyError, TypeError, ValueError, OSError, LavaRetrievalError) as exc:
        raise RetrievalIndexError(
            f"{directory}: not an image index of this package ({type(exc).__name__}: {exc})"
        ) from None
    if network.fingerprint() != meta.get("network", {}).get("fingerprint"):
        raise RetrievalIndexError(f"{directory}: its network does not match its manifest")
    if not isinstance(paths, list) or len(paths) != len(index):
        held = f"{len(paths)} paths" if isinstance(paths, list) else "no list of paths"
        raise RetrievalIndexError(f"{directory}: {held} for {len(index)} vectors")
    hashes = _extra_array(directory, manifest, "hashes.npy", len(index), "u")
    removed = _extra_array(directory, manifest, "removed.npy", len(index), "b")
    live_ids = index.ids_ if removed is None else index.ids_[~removed]
    if len(index) and (index.ids_.min() < 0 or len(np.unique(live_ids)) != len(live_ids)):
        raise RetrievalIndexError(f"{directory}: its ids are not distinct and non-negative")
    next_id = meta.get("next_id", int(index.ids_.max()) + 1 if len(index) else 0)
    if (
        not isinstance(next_id, int)
        or isinstance(next_id, bool)
        or not 0 <= next_id <= MAX_ID
        or (len(index) and next_id <= index.ids_.max())
    ):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: bad next_id {next_id!r}")
    if not all(isinstance(p, str) for p in paths):
        raise RetrievalIndexError(f"{directory}: {files['paths.json']} holds non-strings")
    class_names, sources = meta.get("class_names"), meta.get("sources") or []
    if class_names is not None and not (
        isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)
    ):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: class_names is not a list of names")
    if not isinstance(sources, list):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: sources is not a list")
    if index.labels_ is not None and len(index) and class_names is not None:
        if index.labels_.max() >= len(class_names):
            raise RetrievalIndexError(
                f"{directory}: label {int(index.labels_.max())} is not one of the "
                f"{len(class_names)} classes of its manifest"
            )
    out = cls(network, config, preprocessing)
    out.index, out.paths = index, list(paths)
    out.class_names = class_names
    out.sources = list(sources)
    out.next_id = next_id
    out.hashes = np.zeros(len(index), np.uint64) if hashes is None else hashes.astype(np.uint64)
    out.removed = removed if removed is not None and removed.any() else None
    search = meta.get("search") or {"index_type": "exact"}
    _load_search(out, directory, search, manifest, approximate)
    loaded = index.source_[1] if index.source_ is not None else None
    out._kept = _kept(out, directory) if manifest_digest(directory) == loaded else {}
    return out


def _extra_array(
    directory: Path, manifest: dict, name: str, rows: int, kind: str
) -> np.ndarray | None:
    """The array of the extra file ``name`` (one value of ``kind`` per row), checked; None
    when the version has none."""
    if name not in manifest["files"]:
        return None
    path = check_file(directory, manifest, name)
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RetrievalIndexError(f"{path}: not a .npy array ({exc})") from None
    if value.shape != (rows,) or value.dtype.kind != kind or value.dtype.itemsize > 8:
        raise RetrievalIndexError(
            f"{path}: {value.dtype} array of shape {value.shape}, expected {rows} values"
        )
    return value


def _load_search(
    index: ImageIndex, directory: Path, search: dict, manifest: dict, read: bool = True
) -> None:
    """The approximate part named by the manifest's ``metadata.search``, checked: a known
    index type (or the factory string it names), the faiss file's checksum, and its type,
    dimension and count against what the manifest records."""
    index_type = search.get("index_type") if isinstance(search, dict) else None
    if not isinstance(index_type, str):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: bad search settings {search!r}")
    factory, recall = search.get("factory"), search.get("recall")
    if index_type not in (*INDEX_TYPES, factory):
        raise RetrievalIndexError(
            f"{directory}/{MANIFEST}: unknown index type {index_type!r} (this package "
            f"writes {', '.join(INDEX_TYPES)} or a faiss factory string)"
        )
    index.index_type = index_type
    index.recall = recall if isinstance(recall, dict) else None
    if index_type == "exact" or not index.rows:  # (an empty index: no faiss yet)
        return
    if "faiss.index" not in manifest["files"] or not isinstance(factory, str):
        raise RetrievalIndexError(
            f"{directory}: a {index_type} index without its faiss file or factory string"
        )
    index._unread = (directory, manifest, search)
    if read:
        read_approximate(index)


def forget_approximate(index: ImageIndex) -> None:
    """Drop the faiss index of an index just saved or loaded (its memory), leaving where to
    read it again (:func:`read_approximate`)."""
    if index.approximate is None or index.index.source_ is None:
        return
    directory = index.index.source_[0]
    manifest = CosineIndex.read_manifest(directory)
    search = (manifest.get("metadata") or {}).get("search") or {}
    index._unread = (directory, manifest, search)
    index.approximate = None


def read_approximate(index: ImageIndex) -> None:
    """Read the faiss file of an index loaded without it (``load(..., approximate=False)``),
    checked as a load checks it: what a save of it, or a search through it, needs first."""
    if index._unread is None:
        return
    directory, manifest, search = index._unread
    count = (search.get("faiss") or {}).get("count", manifest["count"])
    if not isinstance(count, int) or not 0 < count <= index.rows:
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: bad faiss count {count!r}")
    path = check_file(directory, manifest, "faiss.index")
    index.approximate = ApproximateIndex.read(
        path,
        index.index_type,
        search["factory"],
        index.index.vectors_,
        expect=search.get("faiss"),
        count=count,  # (the rows it was filled with: those after them are searched exactly)
    )
    index._unread = None
    if "faiss.index" in index._kept:
        index._kept["approximate"] = index.approximate


def check_network(index: ImageIndex, network: SpikingNetwork) -> None:
    """Refuse a network other than the index's (its embeddings would not be comparable)."""
    if network.fingerprint() != index.network.fingerprint():
        raise RetrievalIndexError(
            "this network differs from the index's (fingerprint "
            f"{network.fingerprint()[:12]} vs {index.network.fingerprint()[:12]}): its "
            "embeddings cannot be compared with the index's; build a new index"
        )


def check_new(directory: str | os.PathLike) -> None:
    """Refuse to build over an existing index or a non-empty directory, or where an index
    cannot be written (:func:`check_writable`, then :func:`check_free`)."""
    check_writable(directory)
    check_free(directory)


def read_manifest(directory: str | os.PathLike) -> dict:
    """The validated manifest of the index in ``directory`` (an error if there is none)."""
    return CosineIndex.read_manifest(directory)


def check_writable(directory: str | os.PathLike) -> None:
    """Refuse a place where an index cannot be written (a file or a device on the way, not
    writable, no space, a name too long): before anything, the lock file beside it included,
    is written there."""
    check_output(Path(directory) / MANIFEST)


def check_free(directory: str | os.PathLike) -> None:
    """Refuse a directory that already holds an index (under its writer's lock: of two
    builders into one directory, one fails)."""
    if check_index_directory(directory):
        raise RetrievalIndexError(
            f"{directory}: already holds an index; use `index add` to extend it or choose "
            "another --out"
        )
