"""An index of one's own images: build it, add to it, search it (what ``index`` and ``search``
and the web page use).

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
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.atomic import check_output
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.locking import exclusive
from lava_retrieval.common.strict import MAX_ID, ParseError, integer, loads
from lava_retrieval.data.images import (
    Preprocessing,
)
from lava_retrieval.search.approximate import (
    DEFAULT_KNOBS,
    INDEX_TYPES,
    ApproximateIndex,
    check_index_type,
    recall_at_k,
)
from lava_retrieval.search.index import (
    MANIFEST,
    CosineIndex,
    NotInIndexError,
    RetrievalIndexError,
    check_file,
    check_index_directory,
    normalize,
    read_checked,
    while_unchanged,
)
from lava_retrieval.search.sources import (
    FASHION_PREFIX,
    SCHEME,
    Images,
    check_item_path,
    read_query,
)
from lava_retrieval.snn.config import SimConfig, cache_key
from lava_retrieval.snn.network import SpikingNetwork

SEARCH_BACKENDS = registry.names("index")
MAX_PATHS_BYTES = 1 << 33  # paths.json: 8 GiB is past any index this package can hold


@dataclass
class Hit:
    """One search result."""

    rank: int
    id: int
    score: float
    path: str
    label: int | None
    label_name: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Hits(list):
    """The hits of one query, best first; ``silent`` when its embedding is all zeros (the
    embedding layer got no input in the time steps: every score is 0, the order meaningless)."""

    silent: bool = False


def _stored_path(path: str) -> str:
    """A path as the index stores it: absolute (so that the index answers from any working
    directory), or ``fashion-mnist:SPLIT:I`` as it is."""
    return path if SCHEME.match(path) else os.path.abspath(path)


def _label_number(text: str, class_names: list[str] | None) -> int | None:
    """``text`` as a class number (ASCII digits, below the number of classes), else None."""
    high = len(class_names) - 1 if class_names else 2**31 - 1
    try:
        return integer(text, "a class number", 0, high)
    except ParseError:
        return None


class ImageIndex:
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
        self._positions: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def metadata(self) -> dict:
        """What the manifest records about the embeddings."""
        return {
            "network": {
                "fingerprint": self.network.fingerprint(),
                "arch": self.network.arch,
                "initial_membrane": self.network.initial_membrane,
                "embedding_layer": self.network.layers[self.network.embedding_layer].name,
            },
            "simulation": self.config.settings(),
            "cache_key": cache_key(self.network, self.config),
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": self.class_names,
            "sources": self.sources,
            "next_id": self.next_id,
            "search": self.search_info,
        }

    @property
    def search_info(self) -> dict:
        """How the index searches: its type and, when approximate, the faiss factory string,
        the knobs with their defaults and the recall@10 measured at the last save."""
        if self.index_type == "exact":
            return {"index_type": "exact"}
        info = {"index_type": self.index_type}
        if self.approximate is not None:
            info["factory"] = self.approximate.factory
            info["faiss"] = self.approximate.describe()
            info["knobs"] = {
                name: {"default": DEFAULT_KNOBS[name], "min": low, "max": high}
                for name, (low, high) in self.approximate.knobs().items()
            }
        if self.recall is not None:
            info["recall"] = self.recall
        return info

    def _sync_approximate(self, progress: bool = False) -> None:
        """Build the approximate index, or add the vectors it lacks, and measure its recall."""
        if self.index_type == "exact" or not len(self):
            return
        have = 0 if self.approximate is None else len(self.approximate)
        if have == len(self):
            return
        if self.approximate is None:
            self.approximate = ApproximateIndex.build(
                self.index.vectors_, self.index_type, progress=progress
            )
        else:
            self.approximate.add(self.index.vectors_, progress=progress)
        self.recall = recall_at_k(self.index, self.approximate)

    def embed(self, images: np.ndarray, backend: str = "sim", progress: bool = False) -> np.ndarray:
        """Embeddings of prepared (N, 28, 28) images with the index's network and settings."""
        from lava_retrieval.embedding.files import embed

        return embed(self.network, images, self.config, backend=backend, progress=progress)

    def add(
        self,
        source: Images,
        backend: str = "sim",
        progress: bool = False,
        *,
        ids=None,
        upsert: bool = False,
    ) -> ImageIndex:
        """Embed and append images (labels only if the index has them or is empty).

        Each image gets the next free id, or its id from ``ids`` (distinct non-negative
        integers): an id already in the index is replaced (upsert). With ``upsert``, an image
        whose path is already indexed replaces that entry and keeps its id."""
        self._check_addable(source)
        ids = self._ids_for(source, ids, upsert)  # bad ids fail before the embedding
        return self._append(source, self.embed(source.images, backend, progress), ids)

    def _ids_for(self, source: Images, ids, upsert: bool) -> np.ndarray:
        """The id of each image of ``source``: given, its indexed path's (``upsert``), or
        the next free ones."""
        n = len(source.paths)
        if ids is not None:
            ids = np.asarray(ids)
            if ids.shape != (n,) or (n and ids.dtype.kind not in "iu"):
                raise RetrievalIndexError(f"need {n} integer ids, got {ids.dtype} {ids.shape}")
            ids = ids.astype(np.int64)
            if n and (ids.min() < 0 or len(np.unique(ids)) != n):
                raise RetrievalIndexError("ids must be distinct non-negative integers")
            return ids
        out = np.full(n, -1, np.int64)
        if upsert:
            where = {p: i for p, i in zip(self.paths, self.index.ids_.tolist(), strict=True)}
            out[:] = [where.get(_stored_path(p), -1) for p in source.paths]
        fresh = out < 0
        out[fresh] = np.arange(self.next_id, self.next_id + fresh.sum())
        if upsert and len(np.unique(out)) != n:
            raise RetrievalIndexError("the source names an indexed image twice: cannot upsert it")
        return out

    def _check_addable(self, source: Images) -> None:
        if len(self) and (source.labels is None) != (self.index.labels_ is None):
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
        ids = self._ids_for(source, None, False) if ids is None else np.asarray(ids, np.int64)
        if len(ids) and int(ids.max()) >= MAX_ID:  # its next id would not fit in 64 bits
            raise RetrievalIndexError(f"id {int(ids.max())} is beyond the largest, {MAX_ID - 1}")
        replaced = ids[np.isin(ids, self.index.ids_)]
        if len(replaced):  # upsert: the old entries go, the new ones come last
            self.remove(replaced)
        self.index.add(embeddings, ids=ids, labels=source.labels)
        # Files by absolute path, so that the index answers from any working directory.
        self.paths += [_stored_path(p) for p in source.paths]
        self._positions = None  # id -> position, built again when asked
        if len(ids):
            self.next_id = max(self.next_id, int(ids.max()) + 1)
        self.class_names = self.class_names or source.class_names
        if record:  # (a build in chunks records its source once, at the end)
            self.sources.append({"count": len(source.paths), "skipped": len(source.bad)})
        return self

    def remove(self, ids, keep_one: bool = False) -> int:
        """Remove the images of ``ids`` (all must be indexed); returns how many. Their ids
        are not given out again; an approximate part is rebuilt at the next save.
        ``keep_one``: refuse (changing nothing) to remove every image."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if keep_one and len(self) and np.isin(self.index.ids_, ids).all():
            raise RetrievalIndexError(
                "that would remove every image; an index keeps at least one (nothing was changed)"
            )
        keep = ~np.isin(self.index.ids_, ids)
        removed = self.index.remove(ids)
        self.paths = [p for p, kept in zip(self.paths, keep, strict=True) if kept]
        self._positions = None
        self.approximate, self.recall = None, None  # positions moved: built again
        return removed

    @classmethod
    def remove_from(
        cls,
        directory: str | os.PathLike,
        ids,
        *,
        log: Callable[[str], None] | None = None,
    ) -> ImageIndex:
        """Remove images by id from the index in ``directory`` (holding its lock, from its
        newest version)."""
        with exclusive(directory, what="writing this index", log=log):
            latest = cls.load(directory)
            latest.remove(ids)
            if not len(latest):
                raise RetrievalIndexError(
                    "that would remove every image; an index keeps at least one (nothing was "
                    "changed)"
                )
            latest.save(directory)
        return latest

    @classmethod
    def extend(
        cls,
        directory: str | os.PathLike,
        source: Images,
        *,
        backend: str = "sim",
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        loaded: ImageIndex | None = None,
        upsert: bool = False,
    ) -> ImageIndex:
        """Embed ``source`` with the settings of the index in ``directory`` and append it there
        (``upsert``: an image whose path is indexed replaces that entry, keeping its id).

        Writers of one index can run at once: each embeds outside the index's lock, then, holding
        it, appends to the newest version and saves, so every writer's images are there exactly
        once. ``log`` hears it if this writer waits for another. ``loaded``: the index as the
        caller already read it from ``directory`` (its settings; not read again).
        """
        index = loaded or cls.load(directory)
        index._check_addable(source)
        check_output(Path(directory) / MANIFEST)  # before the long work
        embeddings = index.embed(source.images, backend, progress)
        with exclusive(directory, what="writing this index", log=log):
            latest = cls.load(directory)
            latest.check_network(index.network)
            latest._check_addable(source)
            latest._append(source, embeddings, latest._ids_for(source, None, upsert))
            latest.save(directory)
        return latest

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        backend: str = "sim",
        graph=None,
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        exact: bool = False,
        labels: list[int | str] | None = None,
        path_prefix: str | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best corpus images of each prepared (N, 28, 28) query; with ``labels``
        (class numbers or names) or ``path_prefix``, only among the images that match both
        (fewer than ``k`` where fewer match; :meth:`matching`).

        An index with an approximate part searches through it (knobs ``nprobe`` or ``ef``,
        see :mod:`lava_retrieval.search.approximate`), unless ``exact``; an IVF index may
        answer fewer than ``k``. The Lava graph's kNN process always searches exactly.

        ``backend="lava"`` answers through the Lava process graph (encoder, layers, probe and a
        CosineKNN process over the index's embeddings); ``sim`` embeds with the simulator and
        searches on the host; ``loihi`` embeds on Lava's own built-in processes (a
        sigma-delta network: Delta/Conv/SigmaDelta/Dense/Sigma; otherwise Conv/Dense/LIFReset)
        and searches on the host. ``graph``, a :class:`~lava_retrieval.lava_graph.resident.
        ResidentGraph` of the index's network and settings (:meth:`resident_graph`), embeds
        instead, without starting a graph per call, and the host searches. All give the same
        answer.
        """
        registry.get(backend, "index")
        if len(self) == 0:
            raise RetrievalIndexError("the index is empty")
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise RetrievalIndexError(f"k must be between 1 and {len(self)}, got {k!r}")
        queries = np.asarray(queries)
        if queries.ndim == 2:
            queries = queries[None]
        lava = backend == "lava" and graph is None
        approximate, allowed = self._plan(k, nprobe, ef, exact, labels, path_prefix, lava)
        if graph is not None:
            if graph.network is not self.network or graph.config != self.config:
                raise LavaRetrievalError(
                    "the resident graph runs another network or other settings than the index"
                )
            embeddings = graph.embed(queries)
            scores, ids = self._nearest(embeddings, k, approximate, nprobe, ef, allowed)
        elif backend == "loihi":  # Lava's built-ins embed, the host searches
            embeddings = self.embed(queries, "loihi")
            scores, ids = self._nearest(embeddings, k, approximate, nprobe, ef, allowed)
        elif backend == "lava":
            from lava_retrieval.lava_graph.graph import build

            graph = build(
                self.network,
                queries,
                self.config,
                batch_size=len(queries),
                index=CosineIndex().add(np.asarray(self.index.vectors_)),  # ids: positions
                k=k,
            )
            answer = graph.run(progress=False)
            scores, ids = answer.scores, answer.ids  # positions
            embeddings = answer.embeddings
        else:
            embeddings = self.embed(queries)
            scores, ids = self._nearest(embeddings, k, approximate, nprobe, ef, allowed)
        return self._results(scores, ids, embeddings)

    def search_by_id(self, ids, k: int = 10, **options) -> list[Hits]:
        """:meth:`search` with indexed images as the queries, by id: their stored embeddings
        answer, nothing is simulated (each finds itself first unless filtered out);
        ``options``: the knobs and filters of :meth:`search_embeddings`."""
        positions = [self.position(i) for i in np.asarray(ids).reshape(-1).tolist()]
        if not positions:
            raise RetrievalIndexError("no ids to search with")
        return self.search_embeddings(self.index.vectors_[positions], k, **options)

    def search_embeddings(
        self,
        embeddings: np.ndarray,
        k: int = 10,
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        exact: bool = False,
        labels: list[int | str] | None = None,
        path_prefix: str | None = None,
    ) -> list[Hits]:
        """:meth:`search` with embeddings already made (by this index's network and
        settings) as the queries."""
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self):
            raise RetrievalIndexError(f"k must be between 1 and {len(self)}, got {k!r}")
        approximate, allowed = self._plan(k, nprobe, ef, exact, labels, path_prefix, False)
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.index.dim_)
        scores, found = self._nearest(embeddings, k, approximate, nprobe, ef, allowed)
        return self._results(scores, found, embeddings)

    def _plan(self, k, nprobe, ef, exact, labels, path_prefix, lava: bool):
        """(approximate part or None, allowed images or None) of a search, its knobs and
        filters checked before any work (``lava``: through the Lava graph's exact kNN)."""
        knobs = {name: v for name, v in (("nprobe", nprobe), ("ef", ef)) if v is not None}
        approximate = None if exact or lava else self.approximate
        allowed = self.matching(labels, path_prefix)
        if allowed is not None and lava:
            raise RetrievalIndexError(
                "filters need the simulator backend (the Lava graph's kNN searches everything)"
            )
        if knobs and approximate is None:
            why = (
                "the Lava graph searches exactly"
                if lava
                else "this search is exact"
                if exact
                else "this index is exact (build it with an approximate index type)"
            )
            raise RetrievalIndexError(f"{' and '.join(knobs)} cannot be used: {why}")
        if approximate is not None:
            approximate.parameters(k, nprobe, ef)  # bad knobs fail before the embedding
        return approximate, allowed

    def _results(self, scores, positions, embeddings) -> list[Hits]:
        """Each query's hits (positions -1, not found, left out)."""
        results = []
        for row_scores, row_ids, row in zip(scores, positions, embeddings, strict=True):
            found = row_ids >= 0  # an IVF index may find fewer than k
            hits = Hits(
                self.hit(rank, i, score)
                for rank, (score, i) in enumerate(
                    zip(row_scores[found], row_ids[found], strict=True), 1
                )
            )
            hits.silent = not np.any(row)
            results.append(hits)
        return results

    def _nearest(self, embeddings, k, approximate, nprobe, ef, allowed):
        """(scores, positions) of the ``k`` nearest (among ``allowed``), exactly or through
        ``approximate`` (position -1 where fewer were found)."""
        if approximate is None:
            return self.index.search_positions(np.asarray(embeddings, np.float32), k, allowed)
        approximate.vectors = self.index.vectors_
        return approximate.search(normalize(embeddings), k, nprobe=nprobe, ef=ef, allowed=allowed)

    def matching(
        self, labels: list[int | str] | None = None, path_prefix: str | None = None
    ) -> np.ndarray | None:
        """Which indexed images a filter keeps (a boolean per image), None without one.
        ``labels``: class numbers or names (the index's class names); ``path_prefix``: the
        start of the image's path (a folder or file path is made absolute first, as the
        index stores them; ``fashion-mnist:SPLIT`` as it is). A filter that no image matches,
        or a label the index does not have, is refused."""
        if not labels and path_prefix is None:
            return None
        keep = np.ones(len(self), bool)
        if labels:
            if self.index.labels_ is None:
                raise RetrievalIndexError("this index has no labels to filter by")
            wanted = []
            for label in labels:
                text = str(label)
                if self.class_names and text in self.class_names:
                    wanted.append(self.class_names.index(text))
                elif (number := _label_number(text, self.class_names)) is not None:
                    wanted.append(number)
                else:
                    names = ", ".join(self.class_names or [])
                    raise RetrievalIndexError(
                        f"unknown label {text!r}" + (f"; the index has: {names}" if names else "")
                    )
            keep &= np.isin(self.index.labels_, wanted)
        if path_prefix is not None:
            prefix = str(path_prefix)
            if not prefix.startswith(FASHION_PREFIX):
                folder = prefix.endswith(os.sep)
                prefix = os.path.abspath(prefix)
                if folder and not prefix.endswith(os.sep):  # ("/" stays "/")
                    prefix += os.sep
            keep &= np.fromiter((p.startswith(prefix) for p in self.paths), bool, len(self))
        if not keep.any():
            raise RetrievalIndexError("the filter matches no indexed image")
        return keep

    def resident_graph(self, backend: str = "lava"):
        """A :class:`~lava_retrieval.lava_graph.resident.ResidentGraph` of the index's network
        and settings, started now and kept running until closed (``with`` or ``close()``), for
        :meth:`search`'s ``graph``."""
        from lava_retrieval.lava_graph.resident import ResidentGraph

        return ResidentGraph(self.network, self.config, backend=backend)

    def hit(self, rank: int, position: int, score: float) -> Hit:
        """The result record of the indexed image at ``position``."""
        i = int(position)
        label = None if self.index.labels_ is None else int(self.index.labels_[i])
        name = None if label is None or not self.class_names else self.class_names[label]
        return Hit(rank, int(self.index.ids_[i]), float(score), self.paths[i], label, name)

    def check_paths(self, data_dir: str | None = None) -> None:
        """Refuse an index holding a path that no image can be read back from
        (:func:`check_item_path`: a control character, a ``fashion-mnist:`` image that does not
        exist), naming the first such item and the command that removes it."""
        for position, path in enumerate(self.paths):
            try:
                check_item_path(path, data_dir)
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
            self._positions = dict(zip(self.index.ids_.tolist(), range(len(self)), strict=True))
        try:
            return self._positions[int(id_)]
        except (KeyError, TypeError, ValueError):
            raise NotInIndexError(f"not in the index: id {id_}") from None

    def search_files(
        self,
        queries: list[str | os.PathLike],
        k: int = 10,
        *,
        backend: str = "sim",
        invert: str | bool | None = None,
        data_dir: str | None = None,
    ) -> list[Hits]:
        """:meth:`search` with image files (or ``fashion-mnist:SPLIT:I``), prepared like the
        corpus (``invert`` overrides the index's rule for these queries)."""
        prep = self.preprocessing if invert is None else Preprocessing(invert=invert)
        images = np.stack([read_query(q, prep, data_dir=data_dir) for q in queries])
        return self.search(images, k, backend)

    def save(
        self, directory: str | os.PathLike, *, new: bool = False, progress: bool = False
    ) -> Path:
        """Write the index directory (see the module docstring); atomic and crash-consistent,
        holding the directory's writer lock. ``new``: refuse a directory that already holds an
        index (checked under the lock, so of two builders into one directory one fails).
        ``progress``: a bar while an approximate index is filled."""
        self._sync_approximate(progress)
        self.index.metadata = self.metadata
        extra = {
            "paths.json": json.dumps(self.paths).encode(),
            "network.npz": self.network.to_bytes(),
        }
        if self.approximate is not None:
            extra["faiss.index"] = self.approximate.write
        with exclusive(directory, what="writing this index"):
            if new:
                self.check_new(directory)
            return self.index.save(directory, extra)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ImageIndex:
        """Read an index directory, checking that its network is the one it was built with (one
        whole version, even while a writer replaces it)."""
        directory = Path(directory)
        return while_unchanged(directory, lambda: cls._load(directory))

    @classmethod
    def _load(cls, directory: Path) -> ImageIndex:
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
            raise RetrievalIndexError(f"{directory}: {len(paths)} paths for {len(index)} vectors")
        if len(index) and (index.ids_.min() < 0 or len(np.unique(index.ids_)) != len(index)):
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
        out._load_search(directory, meta.get("search") or {"index_type": "exact"}, manifest)
        return out

    def _load_search(self, directory: Path, search: dict, manifest: dict) -> None:
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
        self.index_type = index_type
        if index_type == "exact" or not len(self):  # an empty index has no faiss part yet
            return
        if "faiss.index" not in manifest["files"] or not isinstance(factory, str):
            raise RetrievalIndexError(
                f"{directory}: a {index_type} index without its faiss file or factory string"
            )
        path = check_file(directory, manifest, "faiss.index")
        self.approximate = ApproximateIndex.read(
            path, index_type, factory, self.index.vectors_, expect=search.get("faiss")
        )
        self.recall = recall if isinstance(recall, dict) else None

    def check_network(self, network: SpikingNetwork) -> None:
        """Refuse a network other than the index's (its embeddings would not be comparable)."""
        if network.fingerprint() != self.network.fingerprint():
            raise RetrievalIndexError(
                "this network differs from the index's (fingerprint "
                f"{network.fingerprint()[:12]} vs {self.network.fingerprint()[:12]}): its "
                "embeddings cannot be compared with the index's; build a new index"
            )

    @staticmethod
    def check_new(directory: str | os.PathLike) -> None:
        """Refuse to build over an existing index or a non-empty directory, or where an index
        cannot be written (a file on the way, not writable, no space, a name too long)."""
        check_output(Path(directory) / MANIFEST)
        if check_index_directory(directory):
            raise RetrievalIndexError(
                f"{directory}: already holds an index; use `index add` to extend it or choose "
                "another --out"
            )
