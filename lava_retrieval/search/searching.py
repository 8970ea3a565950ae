"""The searches of an :class:`~lava_retrieval.search.image_index.ImageIndex` (a mixin of
it): by image, file, id or embedding, exact or through its approximate part (the rows added
since it was filled searched exactly beside it), filtered by label or path, never returning a
removed image; or through the groups of a search sharded over Ray
(:mod:`lava_retrieval.search.sharded`, :attr:`Searching.searcher`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lava_retrieval.backends import registry
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.strict import ParseError, integer
from lava_retrieval.data.images import Preprocessing
from lava_retrieval.search import index_directory
from lava_retrieval.search.index import CosineIndex, RetrievalIndexError, normalize
from lava_retrieval.search.sources import FASHION_PREFIX, read_query

if TYPE_CHECKING:
    from lava_retrieval.search.approximate import ApproximateIndex
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork


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


def _label_number(text: str, class_names: list[str] | None) -> int | None:
    """``text`` as a class number (ASCII digits, below the number of classes), else None."""
    high = len(class_names) - 1 if class_names else 2**31 - 1
    try:
        return integer(text, "a class number", 0, high)
    except ParseError:
        return None


class Searching:
    """The search methods of :class:`~lava_retrieval.search.image_index.ImageIndex`."""

    if TYPE_CHECKING:  # what ImageIndex holds and does, that they use
        network: SpikingNetwork
        config: SimConfig
        preprocessing: Preprocessing
        index: CosineIndex
        approximate: ApproximateIndex | None
        searcher: Any
        index_type: str
        paths: list[str]
        class_names: list[str] | None
        _unread: tuple | None

        def __len__(self) -> int: ...

        @property
        def rows(self) -> int: ...

        @property
        def live(self) -> np.ndarray | None: ...

        @property
        def dim(self) -> int: ...

        def embed(
            self, images: np.ndarray, backend: str = "sim", progress: bool = False
        ) -> np.ndarray: ...

        def position(self, id_: int) -> int: ...

        def live_positions(self) -> np.ndarray: ...

        def _sync_approximate(self, progress: bool = False) -> None: ...

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
    ) -> list[Hits]:
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
                # (its ids: the positions of the images it holds)
                index=CosineIndex().add(
                    self.index.vectors_.take(live := self.live_positions()), ids=live
                ),
                k=k,
            )
            answer = graph.run(progress=False)
            scores, ids = answer.scores, answer.ids  # positions
            embeddings = answer.embeddings
        else:
            embeddings = self.embed(queries)
            scores, ids = self._nearest(embeddings, k, approximate, nprobe, ef, allowed)
        return self._results(scores, ids, embeddings)

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
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.dim)
        scores, found = self._nearest(embeddings, k, approximate, nprobe, ef, allowed)
        return self._results(scores, found, embeddings)

    def _plan(self, k, nprobe, ef, exact, labels, path_prefix, lava: bool):
        """(approximate part or None, allowed images or None) of a search, its knobs and
        filters checked before any work (``lava``: through the Lava graph's exact kNN)."""
        knobs = {name: v for name, v in (("nprobe", nprobe), ("ef", ef)) if v is not None}
        if self._unread is not None and self.searcher is None and not (exact or lava):
            index_directory.read_approximate(self)  # type: ignore[arg-type]  # (an ImageIndex)
        approximate = None if exact or lava else self.approximate
        if self.searcher is not None and not (exact or lava or self.index_type == "exact"):
            approximate = self.searcher  # (sharded: each group has its own)
        allowed = self.matching(labels, path_prefix)
        if (labels or path_prefix is not None) and lava:
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
            if approximate is self.approximate and len(approximate) != self.rows:
                self._sync_approximate()
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
        ``approximate`` (position -1 where fewer were found); sharded: by the groups of
        :attr:`searcher` (:class:`~lava_retrieval.search.sharded.RaySearcher`)."""
        if self.searcher is not None:
            approximate = approximate is not None
            return self.searcher.nearest(embeddings, k, approximate, nprobe, ef, allowed, self)
        embeddings = np.asarray(embeddings, np.float32)
        if approximate is None:
            return self.index.search_positions(embeddings, k, allowed)
        approximate.vectors = self.index.vectors_
        have = len(approximate)
        head = None if allowed is None else allowed[:have]
        scores, positions = approximate.search(
            normalize(embeddings), k, nprobe=nprobe, ef=ef, allowed=head
        )
        if have == self.rows or (allowed is not None and not allowed[have:].any()):
            return scores, positions
        # The rows added since it was filled (the tail), exactly; the two merged.
        tail = self.index.search_positions(embeddings, k, allowed, first=have)
        scores = np.concatenate([scores, tail[0]], 1)
        positions = np.concatenate([positions, tail[1]], 1)
        order = np.lexsort((np.where(positions >= 0, positions, self.rows), -scores), axis=1)
        scores = np.take_along_axis(scores, order[:, :k], 1)
        positions = np.take_along_axis(positions, order[:, :k], 1)
        positions[np.isneginf(scores)] = -1
        return scores, positions

    def matching(
        self, labels: list[int | str] | None = None, path_prefix: str | None = None
    ) -> np.ndarray | None:
        """Which rows a search may return (a boolean per row): the images it holds (not
        removed ones) that a filter keeps; None when that is every row.
        ``labels``: class numbers or names (the index's class names); ``path_prefix``: the
        start of the image's path (a folder or file path is made absolute first, as the
        index stores them; ``fashion-mnist:SPLIT`` as it is). A filter that no image matches,
        or a label the index does not have, is refused."""
        if not labels and path_prefix is None:
            return self.live
        keep = np.ones(self.rows, bool) if self.live is None else self.live
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
            keep &= np.fromiter((p.startswith(prefix) for p in self.paths), bool, self.rows)
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
