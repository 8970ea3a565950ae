"""Exact cosine-similarity nearest-neighbour index with the API retrieval people know.

``add(vectors)`` and ``search(queries, k) -> (scores, ids)``, both (n, k), best first, like faiss
and usearch. Vectors are L2-normalised on the way in and kept as float32; the score is the dot
product of normalised vectors (cosine similarity in [-1, 1]). A zero vector (a neuron layer that
never moved) has no direction: it is kept as zeros and scores 0 against everything. Equal scores
are ordered by insertion, so results are deterministic.

Search is brute force and exact, chunked over queries so that memory stays bounded
(``chunk_size`` x corpus scores at a time: 512 x 60,000 float32 is 123 MB).

``save(dir)`` writes ``embeddings-V.npy`` (normalised float32), ``ids-V.npy``, ``labels-V.npy``
(if any) and any extra files of the caller, each atomically under a fresh version tag ``V``, and
then ``index.json`` (dimension, count, the caller's metadata, the names of the files of its
version and the SHA-256 of each extra file, which :func:`check_file` compares when it is read),
itself atomically and last: whatever moment a crash or kill strikes, ``index.json``
names a complete set of files (the previous index or the new one). Files of older versions are
removed afterwards. ``save`` refuses a directory that holds anything but an index, so it never
deletes files it did not write.

Writers exclude each other (:func:`lava_retrieval.common.locking.exclusive`): ``save`` holds the
directory's lock, and refuses to replace a version other than the one this index was loaded
from (another writer's change would be lost). A reader that meets a version being replaced
under it reads again, so it always gets one whole version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

import numpy as np

from lava_retrieval.common.atomic import (
    atomic_path,
    is_full,
    no_room,
    write_bytes,
    write_text,
)
from lava_retrieval.common.locking import exclusive
from lava_retrieval.search.index_files import (
    _VERSIONED,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ExtraFile,
    Kept,
    NotInIndexError,
    RetrievalIndexError,
    _map,
    _names,
    _read_shards,
    check_index_directory,
    file_digest,
    manifest_digest,
    read_array,
    read_manifest,
    while_unchanged,
)
from lava_retrieval.search.shards import (
    Shards,
    check_npy,
    shard_rows,
)

NORMALIZE_ROWS = 8192  # rows normalised at once


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
    out = np.empty(vectors.shape, np.float32)
    # Norms in float64: integer membrane potentials can be large enough to overflow squares
    # in float32. In blocks of rows, so that the float64 temporaries stay small.
    for start in range(0, len(vectors), NORMALIZE_ROWS):
        block = vectors[start : start + NORMALIZE_ROWS]
        norms = np.sqrt(np.square(block, dtype=np.float64).sum(1, keepdims=True))
        out[start : start + NORMALIZE_ROWS] = block / np.where(norms == 0, 1.0, norms)
    return out


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
    vectors_ : Shards
        Normalised float32 corpus, (len, dim): row blocks that read like one array, memory-
        mapped files once saved (:mod:`lava_retrieval.search.shards`).
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
        self.vectors_ = Shards(dim or 0)
        self.ids_ = np.zeros(0, np.int64)
        self.labels_: np.ndarray | None = None
        self.source_: tuple[Path, str | None] | None = None  # (directory, manifest digest)

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
        if not len(self):
            self.vectors_ = Shards(vectors.shape[1])
        self.vectors_.append(normalize(vectors))
        if len(self):
            self.ids_ = np.concatenate([self.ids_, ids])
            if labels is not None:
                self.labels_ = np.concatenate([self.labels_, labels])
        else:
            self.ids_, self.labels_ = ids, labels
        self.dim_ = vectors.shape[1]
        return self

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar corpus vectors of each query; with ``allowed`` (a boolean
        per vector), only among those allowed.

        Returns
        -------
        (scores, ids)
            float32 cosine similarities and int64 ids, both (n_queries, k), best first; id -1
            and score -inf where fewer than ``k`` vectors are allowed.
        """
        scores, positions = self.search_positions(queries, k, allowed)
        return scores, np.where(positions >= 0, self.ids_[positions], -1)

    def search_positions(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, first: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search`, answering positions in the index instead of ids (-1 where fewer
        than ``k`` are allowed); ``first``: only the rows from there on (the shards before
        it are not read)."""
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
        if allowed is not None:
            allowed = np.asarray(allowed)
            if allowed.dtype != np.bool_ or allowed.shape != (len(self),):
                raise RetrievalIndexError(
                    f"allowed must be {len(self)} booleans, got {allowed.dtype} {allowed.shape}"
                )
            if not allowed.any():
                raise RetrievalIndexError("the filter matches no vector of the index")
        queries = normalize(_as_matrix(queries, "queries", self.dim_))
        n = len(queries)
        scores = np.full((n, k), -np.inf, np.float32)
        positions = np.full((n, k), -1, np.int64)
        # Query chunks outside, shards inside: a memory-mapped shard is read once per chunk
        # and released after it; each shard's best k join the best so far.
        for start in range(0, n, self.chunk_size):
            chunk = queries[start : start + self.chunk_size]
            rows = slice(start, start + len(chunk))
            best_scores, best = scores[rows], positions[rows]
            for start_row, part in self.vectors_.blocks():
                if start_row + len(part) <= first:
                    continue
                block = chunk @ part.T
                self.vectors_.release(part)
                if allowed is not None:
                    block[:, ~allowed[start_row : start_row + len(part)]] = -np.inf
                if start_row < first:
                    block[:, : first - start_row] = -np.inf
                top, top_scores = _top_k(block, k)
                merged = np.concatenate([best, top + start_row], 1)
                merged_scores = np.concatenate([best_scores, top_scores], 1)
                # Best first; equal scores by position (ids are added in order).
                order = np.lexsort((merged, -merged_scores), axis=1)[:, :k]
                best[:] = np.take_along_axis(merged, order, 1)
                best_scores[:] = np.take_along_axis(merged_scores, order, 1)
        positions[np.isneginf(scores)] = -1  # fewer allowed than k
        return scores, positions

    def remove(self, ids) -> int:
        """Remove the vectors of ``ids`` (every one must be in the index); returns how many.
        The others keep their order."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        missing = np.setdiff1d(ids, self.ids_)
        if len(missing):
            shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise NotInIndexError(f"not in the index: id {shown}")
        keep = ~np.isin(self.ids_, ids)
        self.vectors_, self.ids_ = self.vectors_.select(keep), self.ids_[keep]
        if self.labels_ is not None:
            self.labels_ = self.labels_[keep]
        return int((~keep).sum())

    def keep_rows(self, keep: np.ndarray, directory: str | os.PathLike | None = None) -> None:
        """Keep only the rows where ``keep`` (a boolean per row) is true, in their order: a
        shard that loses rows is written again at the next save, or at once into
        ``directory`` (its new version's shard, memory-mapped from there), so that memory
        holds one shard, not the index."""
        keep = np.asarray(keep, bool)
        if keep.shape != (len(self),):
            raise RetrievalIndexError(f"keep must be {len(self)} booleans, got {keep.shape}")
        write = None
        if directory is not None:
            home = Path(directory)
            if self.vectors_.home != home.resolve():
                self.vectors_.forget()  # (another directory's shards are written here anyway)

            def write(rows: np.ndarray) -> tuple[np.ndarray, str]:
                name = f"embeddings-{secrets.token_hex(4)}.npy"
                with atomic_path(home / name) as tmp:
                    np.save(tmp, rows)
                return _map(home / name), name

        self.vectors_, self.ids_ = self.vectors_.select(keep, write), self.ids_[keep]
        if self.labels_ is not None:
            self.labels_ = self.labels_[keep]

    def labels_of(self, ids: np.ndarray) -> np.ndarray:
        """Labels of the given ids (as returned by ``search``)."""
        if self.labels_ is None:
            raise RetrievalIndexError("this index has no labels")
        lookup = dict(zip(self.ids_.tolist(), range(len(self)), strict=True))
        flat = np.fromiter((lookup[i] for i in np.asarray(ids).ravel()), np.int64)
        return self.labels_[flat].reshape(np.shape(ids))

    def save(
        self, directory: str | os.PathLike, extra_files: dict[str, ExtraFile] | None = None
    ) -> Path:
        """Write the index into ``directory`` crash-consistently (replacing an older index
        there); see the module docstring. ``extra_files`` (name -> bytes, names like
        ``paths.json``) are versioned and replaced with the index; a callable writes its file
        itself, given the path."""
        directory = Path(directory)
        with exclusive(directory, what="writing this index"):
            return self._save(directory, extra_files)

    def _save(self, directory: Path, extra_files: dict[str, ExtraFile] | None) -> Path:
        previous = check_index_directory(directory)
        if (
            previous
            and self.source_ is not None
            and self.source_[0] == directory.resolve()
            and manifest_digest(directory) != self.source_[1]
        ):
            raise RetrievalIndexError(
                f"{directory}: another writer changed this index after it was loaded here; "
                "load it again and repeat the change (nothing was written)"
            )
        created = not directory.exists()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_full(exc, directory.parent):
                raise no_room(directory, exc) from None
            raise
        if self.vectors_.home != directory.resolve():
            self.vectors_.forget()  # saved elsewhere (or never): every shard is written here
        version = secrets.token_hex(4)
        files: dict[str, str] = {}
        written: list[tuple[int, int, str]] = []
        kept = {name for name, blob in (extra_files or {}).items() if isinstance(blob, Kept)}
        try:
            self._write_version(directory, version, files, extra_files, written)
        except BaseException:  # a full disk, Ctrl-C: what this save wrote goes, the old stays
            if not _names(directory, files):  # (unless its manifest made it to disk)
                ours = [file for name, file in files.items() if name not in kept]
                for name in [*ours, *(name for _, _, name in written)]:
                    (directory / name).unlink(missing_ok=True)
                if created:
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            raise
        for start, stop, name in written:  # committed: read from the files from now on
            self.vectors_.replace(start, stop, _map(directory / name), name)
        self.vectors_.home = directory.resolve()
        keep = set(files.values()) | set(self.vectors_.names) | {MANIFEST}
        for path in directory.iterdir():
            if path.name not in keep and _VERSIONED.match(path.name):
                path.unlink(missing_ok=True)
        self.source_ = (directory.resolve(), manifest_digest(directory))
        return directory

    def spill(self, directory: str | os.PathLike) -> None:
        """Write the full shards of the vectors added since the last save into ``directory``
        and read them from there from now on (memory-mapped), without a new version: what a
        long build calls as it goes, so that its memory stays one shard. Until the next
        :meth:`save` names them they belong to no version (a crash leaves them to be removed
        by the next save). Holds the directory's writer lock."""
        directory = Path(directory)
        rows = shard_rows(self.dim_ or 1)
        with exclusive(directory, what="writing this index"):
            directory.mkdir(parents=True, exist_ok=True)
            if self.vectors_.home != directory.resolve():
                self.vectors_.forget()
                self.vectors_.home = directory.resolve()
            for start, stop in self.vectors_.unsaved(rows):
                if stop - start == rows:
                    name = self._write_shard(directory, start, stop)
                    self.vectors_.replace(start, stop, _map(directory / name), name)

    def _write_shard(self, directory: Path, start: int, stop: int) -> str:
        """Write the rows ``start:stop`` (unsaved) as a new shard file; returns its name."""
        name = f"embeddings-{secrets.token_hex(4)}.npy"
        with atomic_path(directory / name) as tmp:
            np.save(tmp, self.vectors_[start:stop])
        return name

    def _write_version(
        self,
        directory: Path,
        version: str,
        files: dict[str, str],
        extra_files: dict[str, ExtraFile] | None,
        written: list[tuple[int, int, str]],
    ) -> None:
        """Write the files of one version (the shards not saved yet, then the rest), then the
        manifest that names them (the commit point); ``files`` and ``written`` (start, stop,
        name of each new shard) collect what is written as it is."""

        def versioned(name: str) -> Path:
            stem, _, suffix = name.partition(".")
            files[name] = f"{stem}-{version}.{suffix}"
            return directory / files[name]

        for start, stop in self.vectors_.unsaved(shard_rows(self.dim_ or 1)):
            written.append((start, stop, self._write_shard(directory, start, stop)))
        new = {start: (stop, name) for start, stop, name in written}
        shards = []
        for (start, part), name in zip(self.vectors_.blocks(), self.vectors_.names, strict=True):
            if name is not None:
                shards.append({"file": name, "count": len(part)})
                continue
            end = start + len(part)
            while start < end:  # an unsaved block, now written in pieces
                stop, piece = new[start]
                shards.append({"file": piece, "count": stop - start})
                start = stop
        arrays = {"ids.npy": self.ids_}
        if self.labels_ is not None:
            arrays["labels.npy"] = self.labels_
        for name, array in arrays.items():
            with atomic_path(versioned(name)) as tmp:
                np.save(tmp, array)
        checksums = {}
        for name, blob in (extra_files or {}).items():
            if not re.fullmatch(r"[a-z_]+\.[a-z]+", name) or name in arrays:
                raise RetrievalIndexError(f"bad extra index file name {name!r}")
            if isinstance(blob, Kept):  # the file of the version before, named again
                if not (directory / blob.file).is_file():
                    raise RetrievalIndexError(f"{directory / blob.file}: missing")
                files[name] = blob.file
                if blob.checksum is not None:
                    checksums[name] = blob.checksum
            elif callable(blob):
                with atomic_path(versioned(name)) as tmp:
                    blob(tmp)
                    checksums[name] = file_digest(tmp)
            else:
                write_bytes(versioned(name), blob)
                checksums[name] = hashlib.sha256(blob).hexdigest()
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "dimension": self.dim_,
            "count": len(self),
            "has_labels": self.labels_ is not None,
            "files": files,
            "shards": shards,
            "checksums": checksums,
            "metadata": self.metadata or {},
        }
        write_text(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    read_manifest = staticmethod(lambda directory: read_manifest(directory))

    @classmethod
    def load(cls, directory: str | os.PathLike, chunk_size: int = 512) -> CosineIndex:
        """Read an index written by :meth:`save`, validating every array against the manifest
        (one whole version, even while a writer replaces it)."""
        directory = Path(directory)
        return while_unchanged(directory, lambda: cls._load(directory, chunk_size))

    @classmethod
    def _load(cls, directory: Path, chunk_size: int) -> CosineIndex:
        digest = manifest_digest(directory)
        manifest = cls.read_manifest(directory)
        dim, count, files = manifest["dimension"], manifest["count"], manifest["files"]
        index = cls(dim, chunk_size, manifest.get("metadata"))

        def array(name: str, shape: tuple, kinds: str) -> np.ndarray:
            path = directory / files.get(name, name)
            # The header first (memory-mapped): nothing is allocated for a false shape.
            value = read_array(path, _checked_map)
            if value.shape != shape or value.dtype.kind not in kinds or value.dtype.itemsize > 8:
                raise RetrievalIndexError(
                    f"{path}: {value.dtype} array of shape {value.shape}, the manifest says {shape}"
                )
            return np.array(value)

        index.vectors_ = _read_shards(directory, manifest)
        index.ids_ = array("ids.npy", (count,), "iu").astype(np.int64)
        if manifest.get("has_labels"):
            index.labels_ = array("labels.npy", (count,), "iu").astype(np.int64)
            if count and index.labels_.min() < 0:
                raise RetrievalIndexError(f"{directory}: negative labels")
        index.source_ = (directory.resolve(), digest)
        return index


def _top_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, scores) of the ``k`` best of each row of ``block`` (all when it has at most
    ``k``), unordered, equal scores at the k-th boundary taken by column: the same set the
    full sort by (score descending, column) starts with.

    >>> _top_k(np.array([[0.5, 0.9, 0.5, 0.5]], np.float32), 2)[0].tolist()
    [[1, 0]]
    """
    if k >= block.shape[1]:
        top = np.broadcast_to(np.arange(block.shape[1]), block.shape).copy()
        return top, block
    top = np.argpartition(-block, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(block, top, 1)
    kth = top_scores.min(1)
    ties = np.flatnonzero((block >= kth[:, None]).sum(1) > k)
    for row in ties.tolist():  # more columns tie with the k-th than fit: the first ones
        columns = np.flatnonzero(block[row] >= kth[row])
        columns = columns[np.lexsort((columns, -block[row, columns]))[:k]]
        top[row], top_scores[row] = columns, block[row, columns]
    return top, top_scores


def _checked_map(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only, its header checked first."""
    check_npy(path)
    return np.load(path, mmap_mode="r", allow_pickle=False)
