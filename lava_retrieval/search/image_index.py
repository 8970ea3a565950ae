"""An index of one's own images: build it, add to it, search it (what ``index`` and ``search``
and the web page use). Its directory and how it is written: :mod:`.index_directory`.

Sources are a folder of images (recursive), a list file, or a Fashion-MNIST split
(:mod:`.sources`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.strict import MAX_ID
from lava_retrieval.data.images import (
    Preprocessing,
)
from lava_retrieval.search import index_directory
from lava_retrieval.search.approximate import (
    ApproximateIndex,
    check_index_type,
    recall_at_k,
)
from lava_retrieval.search.index import (
    CosineIndex,
    NotInIndexError,
    RetrievalIndexError,
)
from lava_retrieval.search.index_directory import COMPACT_FRACTION  # noqa: F401 (its home)
from lava_retrieval.search.searching import Hit, Hits, Searching  # noqa: F401 (re-exported)
from lava_retrieval.search.sources import (
    Images,
    check_item_path,
    stored_path,
)
from lava_retrieval.snn.config import SimConfig
from lava_retrieval.snn.network import SpikingNetwork

SEARCH_BACKENDS = registry.names("index")
TAIL_FRACTION = 0.01
"""Rows added since the approximate index was last filled are searched exactly, beside it,
until they are more than this fraction of the index; then a save adds them to it (an upsert of
a few images does not rewrite the 1.3 GB faiss file of a million)."""
RECALL_AGAIN = 0.1
"""The recall of an approximate index is measured again at a save once it grew by more than
this fraction since it was last measured."""


class ImageIndex(Searching):
    """A spiking network, its settings and a :class:`CosineIndex` of images it embedded.

    Parameters
    ----------
    network : SpikingNetwork
    config : SimConfig
        Time steps, timing and readout of every embedding in the index.
    preprocessing : Preprocessing, optional
        How image files become input (default: automatic inversion).

    >>> from lava_retrieval.search.sources import read_source
    >>> index = ImageIndex(net, SimConfig(16, "delay", "membrane"))
    >>> len(index.add(read_source("fashion-mnist:test", limit=50, progress=False)))
    50
    >>> index.search(images[:1], k=1)[0][0].path
    'fashion-mnist:test:0'
    """

    def __init__(
        self,
        network: SpikingNetwork,
        config: SimConfig,
        preprocessing: Preprocessing | None = None,
        index_type: str = "exact",
    ) -> None:
        self.network = network
        self.config = config
        self.preprocessing = preprocessing or Preprocessing()
        dim = int(np.prod(network.embedding_shape))
        check_index_type(index_type, dim)  # a bad type fails now, not after the embedding
        self.index_type = index_type
        self.approximate: ApproximateIndex | None = None
        self.recall: dict | None = None
        self.index = CosineIndex(dim=dim)
        self.paths: list[str] = []
        self.class_names: list[str] | None = None
        self.sources: list[dict] = []
        self.next_id = 0  # the id the next new image gets: ids are never reused
        self.hashes = np.zeros(0, np.uint64)  # content_hashes of each row (0: not known)
        self.removed: np.ndarray | None = None  # a boolean per row: removed (a tombstone)
        self._positions: dict[int, int] | None = None
        self._kept: dict = {}  # files of the version loaded that a save may name again
        self.searcher: Any = None  # a RaySearcher: the search sharded over Ray actors
        self._unread: tuple | None = None  # where its faiss file is, when loaded without it

    def __len__(self) -> int:
        """The images it holds (its rows less the removed ones)."""
        return self.rows - self.tombstones

    @property
    def rows(self) -> int:
        """Its stored rows, removed images (tombstones) included: what positions count."""
        return len(self.index)

    @property
    def tombstones(self) -> int:
        """Rows of removed images, left in place until :meth:`compact`."""
        return 0 if self.removed is None else int(self.removed.sum())

    @property
    def live(self) -> np.ndarray | None:
        """A boolean per row, true for the images it holds; None when none was removed."""
        return None if self.removed is None else ~self.removed

    def _changed(self, *names: str) -> None:
        """Forget the files that a change makes stale (a save writes them again)."""
        for name in names:
            self._kept.pop(name, None)
        self._positions = None

    def _sync_approximate(self, progress: bool = False) -> None:
        """Build the approximate index, or add the rows it lacks once they are more than
        :data:`TAIL_FRACTION` of the index (until then they are searched exactly, beside it,
        and its file is not written again), and measure its recall (again only once it grew
        by :data:`RECALL_AGAIN` since it was last measured: a measurement scans the whole
        index once per sampled query)."""
        if self.index_type == "exact" or not self.rows:
            return
        if self._unread is not None:  # loaded without its faiss file
            have = (self._unread[2].get("faiss") or {}).get("count")
        else:
            have = 0 if self.approximate is None else len(self.approximate)
        if have and self.rows - have <= TAIL_FRACTION * self.rows:
            return  # a short tail: searched exactly, the faiss file named again
        if self._unread is not None:
            index_directory.read_approximate(self)  # read now, then grown
        self._changed("faiss.index")
        if self.approximate is None:
            self.approximate = ApproximateIndex.build(
                self.index.vectors_, self.index_type, progress=progress
            )
        else:
            self.approximate.add(self.index.vectors_, progress=progress)
        # (a recall recorded without its count of images was measured at the build)
        measured = (self.recall or {}).get("images", have or None)
        if not isinstance(measured, int) or self.rows > measured * (1 + RECALL_AGAIN):
            self.recall = {**recall_at_k(self.index, self.approximate), "images": self.rows}

    def embed(self, images: np.ndarray, backend: str = "sim", progress: bool = False) -> np.ndarray:
        """Embeddings of prepared (N, 28, 28) images with the index's network and settings."""
        from lava_retrieval.embedding.files import embed

        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return embed(self.network, images, self.config, backend=backend, progress=progress)

    def add(
        self,
        source: Images,
        backend: str = "sim",
        progress: bool = False,
        *,
        ids=None,
        upsert: bool = False,
        allow_duplicates: bool = False,
    ) -> ImageIndex:
        """Embed and append images (labels only if the index has them or is empty).

        Each image gets the next free id, or its id from ``ids`` (distinct non-negative
        integers): an id already in the index is replaced. Without ``ids``, an image whose
        path is already indexed, or whose pixels (:func:`content_hashes`) are, is skipped
        (:class:`~lava_retrieval.search.catalogue.Admission`; ``allow_duplicates``: added
        again, with a new id); with ``upsert``, an image whose path is indexed replaces that
        entry, keeping its id, when its pixels changed. What was skipped, and why, is left
        in :attr:`skipped` as (path, reason) pairs."""
        from lava_retrieval.search.catalogue import Admission

        self._check_addable(source)
        self.skipped: list[tuple[str, str]] = []
        if ids is None:
            admission = Admission(self, upsert=upsert, allow_duplicates=allow_duplicates)
            keep, ids = admission.decide(source)
            source, self.skipped = source.subset(keep), admission.duplicates
        else:
            ids = self._given_ids(source, ids)  # bad ids fail before the embedding
        return self._append(source, self.embed(source.images, backend, progress), ids)

    @staticmethod
    def _given_ids(source: Images, ids) -> np.ndarray:
        """``ids`` checked: one distinct non-negative integer per image of ``source``."""
        n = len(source.paths)
        ids = np.asarray(ids)
        if ids.shape != (n,) or (n and ids.dtype.kind not in "iu"):
            raise RetrievalIndexError(f"need {n} integer ids, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
        if n and (ids.min() < 0 or len(np.unique(ids)) != n):
            raise RetrievalIndexError("ids must be distinct non-negative integers")
        return ids

    @property
    def ids(self) -> np.ndarray:
        """The ids of the images it holds, in row order."""
        live = self.live
        return self.index.ids_ if live is None else self.index.ids_[live]

    def live_positions(self) -> np.ndarray:
        """The positions of the images it holds (removed ones left out)."""
        live = self.live
        return np.arange(self.rows) if live is None else np.flatnonzero(live)

    def _check_addable(self, source: Images) -> None:
        if self.rows and (source.labels is None) != (self.index.labels_ is None):
            raise RetrievalIndexError(
                "this index "
                + ("has" if self.index.labels_ is not None else "has no")
                + " labels; add images that "
                + ("have" if self.index.labels_ is not None else "have no")
                + " labels too"
            )
        if source.class_names and self.class_names and source.class_names != self.class_names:
            raise RetrievalIndexError("these images' class names differ from the index's")

    @property
    def dim(self) -> int:
        """The embeddings' dimension."""
        if self.index.dim_ is None:  # (set by the constructor)
            raise RetrievalIndexError("the index has no dimension")
        return int(self.index.dim_)

    def spill(
        self, source: Images, embeddings: np.ndarray, directory: str | os.PathLike, ids=None
    ) -> None:
        """Add a chunk of a staged build or change (:mod:`lava_retrieval.search.build`,
        :mod:`lava_retrieval.search.catalogue`) under ``ids`` (default: the next free ones) and
        write its embeddings into ``directory`` as shards (:meth:`CosineIndex.spill`), so that
        memory holds one shard; the manifest comes with :meth:`save`, or :meth:`discard`
        removes the shards."""
        self._append(source, embeddings, ids, record=False)
        self.index.spill(directory)

    def shard_names(self) -> set[str]:
        """The shard files its embeddings are read from now."""
        return {name for name in self.index.vectors_.names if name is not None}

    def discard(self, directory: str | os.PathLike, keep: Iterable[str] = ()) -> None:
        """Remove the shards :meth:`spill` wrote into ``directory`` (a build or change that
        failed), those named in ``keep`` (:meth:`shard_names` before it started) left."""
        home, vectors = Path(directory).resolve(), self.index.vectors_
        if vectors.home != home:
            return
        gone = self.shard_names() - set(keep)
        for name in gone:
            (home / name).unlink(missing_ok=True)
        # (their rows stay readable, memory-mapped: a later save writes them again)
        vectors.names = [None if n in gone else n for n in vectors.names]

    @property
    def has_labels(self) -> bool:
        """Whether its images carry class labels (a Fashion-MNIST source)."""
        return self.index.labels_ is not None

    def put(self, source: Images, embeddings: np.ndarray, ids) -> ImageIndex:
        """Add ``source``'s images with their ``embeddings`` (made by :meth:`embed`) under
        ``ids``, replacing the images those ids had (an upsert); what ``PUT /api/items/<id>``
        does under the writers' lock."""
        return self._append(source, embeddings, ids)

    def _append(
        self, source: Images, embeddings: np.ndarray, ids=None, *, record: bool = True
    ) -> ImageIndex:
        n = len(source.paths)
        if ids is None:
            ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        ids = np.asarray(ids, np.int64)
        if len(ids) and int(ids.max()) >= MAX_ID:  # its next id would not fit in 64 bits
            raise RetrievalIndexError(f"id {int(ids.max())} is beyond the largest, {MAX_ID - 1}")
        hashes = source.content_hashes()
        replaced = ids[np.isin(ids, self.index.ids_[self.live_positions()])]
        if len(replaced):  # upsert: the old entries go (tombstones), the new ones come last
            self.remove(replaced)
        self.index.add(embeddings, ids=ids, labels=source.labels)
        # Files by absolute path, so that the index answers from any working directory.
        self.paths += [stored_path(p) for p in source.paths]
        self.hashes = np.concatenate([self.hashes, hashes])
        if self.removed is not None:
            self.removed = np.concatenate([self.removed, np.zeros(n, bool)])
        self._positions = None
        if len(ids):
            self.next_id = max(self.next_id, int(ids.max()) + 1)
        self.class_names = self.class_names or source.class_names
        if record:  # (a build in chunks records its source once, at the end)
            self.sources.append({"count": len(source.paths), "skipped": len(source.bad)})
        return self

    def remove(self, ids, keep_one: bool = False) -> int:
        """Remove the images of ``ids`` (all must be indexed); returns how many. Their ids
        are not given out again. Their rows stay, as tombstones that no search returns,
        until :meth:`compact` (which a save runs past
        :data:`~.index_directory.COMPACT_FRACTION`): nothing is
        rebuilt. ``keep_one``: refuse (changing nothing) to remove every image."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        positions = self.live_positions()
        held = self.index.ids_[positions]
        missing = np.setdiff1d(ids, held)
        if len(missing):
            shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise NotInIndexError(f"not in the index: id {shown}")
        if keep_one and len(self) and len(ids) >= len(held):
            raise RetrievalIndexError(
                "that would remove every image; an index keeps at least one (nothing was changed)"
            )
        if self.removed is None:
            self.removed = np.zeros(self.rows, bool)
        self.removed[positions[np.isin(held, ids)]] = True
        self._positions = None
        return len(ids)

    def compact(self, directory: str | os.PathLike | None = None) -> int:
        """Drop the rows of removed images (tombstones): shards that lost rows are written
        again (at once into ``directory``, the one it is saved to next, holding its lock:
        memory holds one shard) and an approximate part is built again at the next save
        (positions move). Returns how many rows went."""
        gone, removed = self.tombstones, self.removed
        if gone and removed is not None:
            keep = ~removed
            self.index.keep_rows(keep, directory)
            self.paths = [p for p, kept in zip(self.paths, keep, strict=True) if kept]
            self.hashes = self.hashes[keep]
            self.approximate, self.recall, self._unread = None, None, None
            self._changed("faiss.index")
        self.removed = None
        self._positions = None
        return gone

    def check_paths(self, data_dir: str | None = None) -> None:
        """Refuse an index holding a path that no image can be read back from
        (:func:`check_item_path`: a control character, a ``fashion-mnist:`` image that does not
        exist), naming the first such item and the command that removes it."""
        for position in self.live_positions().tolist():
            try:
                check_item_path(self.paths[position], data_dir)
            except LavaRetrievalError as exc:
                item = int(self.index.ids_[position])
                where = str(self.index.source_[0]) if self.index.source_ else "INDEX"
                raise RetrievalIndexError(
                    f"{where}: item {item} has a bad path ({exc}); remove it with "
                    f"`lava-retrieval index remove {shlex.quote(where)} {item}`"
                ) from None

    def position(self, id_: int) -> int:
        """Where the image of id ``id_`` is stored (an error if it is not indexed)."""
        if self._positions is None:
            live = self.live_positions()
            self._positions = dict(zip(self.index.ids_[live].tolist(), live.tolist(), strict=True))
        try:
            return self._positions[int(id_)]
        except (KeyError, TypeError, ValueError):
            raise NotInIndexError(f"not in the index: id {id_}") from None

    # The index directory and its write protocol: lava_retrieval.search.index_directory.

    @property
    def metadata(self) -> dict:
        """What the manifest records of the index (network, settings, sources, ...)."""
        return index_directory.metadata(self)

    @property
    def search_info(self) -> dict:
        """How it searches: the approximate index's type, factory and recall, if any."""
        return index_directory.search_info(self)

    def save(
        self, directory: str | os.PathLike, *, new: bool = False, progress: bool = False
    ) -> Path:
        """Write the index directory (:func:`.index_directory.save`)."""
        return index_directory.save(self, directory, new=new, progress=progress)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, approximate: bool = True) -> ImageIndex:
        """The index saved in ``directory`` (:func:`.index_directory.load`; without
        ``approximate``, its faiss file is not read)."""
        return index_directory.load(cls, directory, approximate)

    @classmethod
    def extend(cls, directory: str | os.PathLike, source: Images, **options) -> ImageIndex:
        """Embed ``source`` (images already read) and append it to the index in
        ``directory``: :func:`lava_retrieval.search.catalogue.add`, whose options it takes."""
        from lava_retrieval.search.catalogue import add, in_memory

        return add(cls, directory, in_memory(source), **options).index

    @classmethod
    def remove_from(
        cls, directory: str | os.PathLike, ids, *, log: Callable[[str], None] | None = None
    ) -> ImageIndex:
        """Remove images by id from the index in ``directory``
        (:func:`.index_directory.remove_from`)."""
        return index_directory.remove_from(cls, directory, ids, log=log)

    @classmethod
    def compact_at(cls, directory: str | os.PathLike, **options) -> tuple[ImageIndex, int]:
        """Drop the removed images' rows of the index in ``directory``
        (:func:`.index_directory.compact`)."""
        return index_directory.compact(cls, directory, **options)

    def check_network(self, network: SpikingNetwork) -> None:
        """Refuse ``network`` unless it computes what this index's network computes."""
        index_directory.check_network(self, network)

    @staticmethod
    def check_new(directory: str | os.PathLike) -> None:
        """Refuse a directory that already holds an index (:func:`.index_directory.check_new`)."""
        index_directory.check_new(directory)
