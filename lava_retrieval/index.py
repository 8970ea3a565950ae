"""Exact cosine-similarity nearest-neighbour index with the API retrieval people know.

``add(vectors)`` and ``search(queries, k) -> (scores, ids)``, both (n, k), best first, like faiss
and usearch. Vectors are L2-normalised on the way in and kept as float32; the score is the dot
product of normalised vectors (cosine similarity in [-1, 1]). A zero vector (a neuron layer that
never moved) has no direction: it is kept as zeros and scores 0 against everything. Equal scores
are ordered by insertion, so results are deterministic.

Search is brute force and exact, chunked over queries so that memory stays bounded
(``chunk_size`` x corpus scores at a time: 512 x 60,000 float32 is 123 MB).

``save(dir)`` writes ``embeddings.npy`` (normalised float32), ``ids.npy``, ``labels.npy`` (if any)
and ``index.json`` (dimension, count and the caller's metadata: readout, time steps, network hash)
into a temporary directory that is then renamed, so a crash never leaves half an index.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lava_retrieval.errors import LavaRetrievalError

FORMAT = "lava-retrieval-index"
FORMAT_VERSION = 1


class RetrievalIndexError(LavaRetrievalError):
    """Bad input to a :class:`CosineIndex` (dimension, k, empty index, unreadable files)."""


def _as_matrix(vectors: np.ndarray, what: str, dim: int | None) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim != 2:
        raise RetrievalIndexError(f"{what} must be 2-D (n, dim), got shape {vectors.shape}")
    if not (np.issubdtype(vectors.dtype, np.number) or vectors.dtype == np.bool_):
        raise RetrievalIndexError(f"{what} must be numeric, got {vectors.dtype}")
    if dim is not None and vectors.shape[1] != dim:
        raise RetrievalIndexError(f"{what} have dimension {vectors.shape[1]}, the index has {dim}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise RetrievalIndexError(f"{what} contain NaN or infinite values")
    return vectors


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32.

    >>> normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    # Norms in float64: integer membrane potentials can be large enough to overflow squares
    # in float32.
    norms = np.sqrt(np.square(vectors, dtype=np.float64).sum(1, keepdims=True))
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


class CosineIndex:
    """Exact cosine k-nearest-neighbour index.

    Parameters
    ----------
    dim : int, optional
        Vector dimension; fixed by the first ``add`` when omitted.
    chunk_size : int
        Queries scored at once in ``search`` (memory: chunk_size x len(index) float32).
    metadata : dict, optional
        Stored unchanged and saved in ``index.json`` (readout, time steps, network hash, ...).

    Attributes
    ----------
    dim_ : int or None
        Vector dimension of the index (``dim``, or fixed by the first ``add``).
    vectors_ : numpy.ndarray
        Normalised float32 corpus, (len, dim).
    ids_ : numpy.ndarray
        int64 id per vector.
    labels_ : numpy.ndarray or None
        int64 label per vector, when given.

    >>> index = CosineIndex().add(np.eye(3), labels=[0, 1, 2])
    >>> scores, ids = index.search(np.array([[1.0, 0.1, 0.0]]), k=2)
    >>> ids.tolist(), scores.astype(float).round(3).tolist()
    ([[0, 1]], [[0.995, 0.1]])
    """

    def __init__(
        self, dim: int | None = None, chunk_size: int = 512, metadata: dict | None = None
    ) -> None:
        # Parameters are stored as given; what adding vectors learns goes to ``dim_``.
        self.dim = dim
        self.chunk_size = chunk_size
        self.metadata = metadata
        self.dim_ = dim
        self.vectors_ = np.zeros((0, dim or 0), np.float32)
        self.ids_ = np.zeros(0, np.int64)
        self.labels_: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids_)

    @property
    def ntotal(self) -> int:
        """Number of vectors (faiss's name)."""
        return len(self)

    def add(
        self,
        embeddings: np.ndarray,
        ids: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> CosineIndex:
        """Add vectors (default ids continue from the current count); returns ``self``."""
        vectors = _as_matrix(embeddings, "embeddings", self.dim_)
        n = len(vectors)
        if ids is None:
            ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != n:
            raise RetrievalIndexError(f"{len(ids)} ids for {n} embeddings")
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64).reshape(-1)
            if len(labels) != n:
                raise RetrievalIndexError(f"{len(labels)} labels for {n} embeddings")
            if len(self) and self.labels_ is None:
                raise RetrievalIndexError("this index was built without labels")
        elif self.labels_ is not None:
            raise RetrievalIndexError("this index has labels: pass labels= with the embeddings")
        if len(self):
            self.vectors_ = np.concatenate([self.vectors_, normalize(vectors)])
            self.ids_ = np.concatenate([self.ids_, ids])
            if labels is not None:
                self.labels_ = np.concatenate([self.labels_, labels])
        else:
            self.vectors_, self.ids_, self.labels_ = normalize(vectors), ids, labels
        self.dim_ = vectors.shape[1]
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar corpus vectors of each query.

        Returns
        -------
        (scores, ids)
            float32 cosine similarities and int64 ids, both (n_queries, k), best first.
        """
        if len(self) == 0:
            raise RetrievalIndexError("the index is empty: add embeddings before searching")
        if not isinstance(k, (int, np.integer)) or k <= 0:
            raise RetrievalIndexError(f"k must be a positive integer, got {k!r}")
        if not isinstance(self.chunk_size, (int, np.integer)) or self.chunk_size < 1:
            raise RetrievalIndexError(
                f"chunk_size must be a positive integer, got {self.chunk_size!r}"
            )
        if k > len(self):
            raise RetrievalIndexError(f"k={k} is larger than the index ({len(self)} vectors)")
        queries = normalize(_as_matrix(queries, "queries", self.vectors_.shape[1]))
        n = len(queries)
        scores = np.empty((n, k), np.float32)
        positions = np.empty((n, k), np.int64)
        for start in range(0, n, self.chunk_size):
            block = queries[start : start + self.chunk_size] @ self.vectors_.T
            if k < len(self):
                top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(len(self)), block.shape).copy()
            top_scores = np.take_along_axis(block, top, 1)
            # Best first; equal scores by position (ids are added in order).
            order = np.lexsort((top, -top_scores), axis=1)
            positions[start : start + len(block)] = np.take_along_axis(top, order, 1)
            scores[start : start + len(block)] = np.take_along_axis(top_scores, order, 1)
        return scores, self.ids_[positions]

    def labels_of(self, ids: np.ndarray) -> np.ndarray:
        """Labels of the given ids (as returned by ``search``)."""
        if self.labels_ is None:
            raise RetrievalIndexError("this index has no labels")
        lookup = dict(zip(self.ids_.tolist(), range(len(self)), strict=True))
        flat = np.fromiter((lookup[i] for i in np.asarray(ids).ravel()), np.int64)
        return self.labels_[flat].reshape(np.shape(ids))

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index into ``directory`` atomically (replacing an older index there)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            np.save(tmp / "embeddings.npy", self.vectors_)
            np.save(tmp / "ids.npy", self.ids_)
            if self.labels_ is not None:
                np.save(tmp / "labels.npy", self.labels_)
            manifest = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "dimension": self.dim_,
                "count": len(self),
                "has_labels": self.labels_ is not None,
                "metadata": self.metadata or {},
            }
            (tmp / "index.json").write_text(json.dumps(manifest, indent=2) + "\n")
            old = None
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
            os.replace(tmp, directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, chunk_size: int = 512) -> CosineIndex:
        """Read an index written by :meth:`save`."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / "index.json").read_text())
        except FileNotFoundError:
            raise RetrievalIndexError(f"{directory}: no index.json, not an index") from None
        except json.JSONDecodeError as exc:
            raise RetrievalIndexError(f"{directory}/index.json: not valid JSON ({exc})") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise RetrievalIndexError(f"{directory}: not a version {FORMAT_VERSION} index")
        index = cls(manifest["dimension"], chunk_size, manifest.get("metadata"))
        index.dim_ = manifest["dimension"]
        try:
            index.vectors_ = np.load(directory / "embeddings.npy")
            index.ids_ = np.load(directory / "ids.npy")
            if manifest.get("has_labels"):
                index.labels_ = np.load(directory / "labels.npy")
        except (OSError, ValueError) as exc:
            raise RetrievalIndexError(f"{directory}: unreadable index files ({exc})") from None
        if index.vectors_.shape != (manifest["count"], manifest["dimension"]):
            raise RetrievalIndexError(
                f"{directory}: embeddings.npy has shape {index.vectors_.shape}, the manifest "
                f"says ({manifest['count']}, {manifest['dimension']})"
            )
        return index
