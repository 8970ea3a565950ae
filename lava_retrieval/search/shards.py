"""Row shards: the vectors of an index as a list of row blocks, each a memory-mapped file of
a saved index or an array added since, that reads like one ``(N, dim)`` float32 array.

A saved index keeps its embeddings in shards of at most :func:`shard_rows` rows (about
:data:`SHARD_BYTES` each), written once and never changed: a save writes only the shards that
are new (or lost rows to a removal) and names the others again, so that adding to an index of
a million images does not rewrite it. Loaded shards are memory-mapped: an index is searched
without reading its embeddings into memory, and what a full scan read in is handed back to the
page cache after each shard (:meth:`Shards.release`), so that the resident memory of a large
index stays what its searches use, not its size.

>>> shards = Shards(2, [np.eye(2, dtype=np.float32), np.ones((1, 2), np.float32)])
>>> len(shards), shards.shape, shards[[2, 0]].tolist()
(3, (3, 2), [[1.0, 1.0], [1.0, 0.0]])
>>> [(start, len(part)) for start, part in shards.blocks()]
[(0, 2), (2, 1)]
"""

from __future__ import annotations

import functools
import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SHARD_BYTES = 1 << 28
"""About this many bytes of embeddings per shard file (256 MiB: 65,536 rows of 1,024)."""
RELEASE_BYTES = 1 << 30
"""Memory-mapped shards of an index larger than this are released after each full scan."""


def shard_rows(dim: int) -> int:
    """Rows of a full shard of ``dim``-dimensional float32 vectors.

    >>> shard_rows(1024)
    65536
    """
    return max(1, SHARD_BYTES // (4 * max(1, int(dim))))


class Shards:
    """Float32 row blocks that read as one ``(N, dim)`` array (see the module docstring).

    Parameters
    ----------
    dim : int
        Columns of every block.
    parts : list of numpy.ndarray, optional
        The blocks, in order.
    names : list of (str or None), optional
        The shard file each block was read from (None: not saved yet); a saved block is
        never written again.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, dim: int, parts=None, names=None) -> None:
        self.dim = int(dim)
        self.parts: list[np.ndarray] = [p for p in (parts or []) if len(p)]
        given = list(names) if names is not None else [None] * len(parts or [])
        self.names: list[str | None] = [
            n for p, n in zip(parts or [], given, strict=True) if len(p)
        ]
        self.home: Path | None = None  # the directory whose files the names are
        self._starts()

    def _starts(self) -> None:
        self.starts = np.cumsum([0] + [len(p) for p in self.parts], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.dim)

    @property
    def nbytes(self) -> int:
        return len(self) * self.dim * 4

    @property
    def mapped(self) -> bool:
        """Whether any block is a memory-mapped file."""
        return any(isinstance(p, np.memmap) for p in self.parts)

    def __array__(self, dtype=None, copy=None):
        whole = np.concatenate(self.parts) if self.parts else np.zeros((0, self.dim), np.float32)
        return whole if dtype is None else whole.astype(dtype)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, block) of each block, in order."""
        yield from zip(self.starts[:-1].tolist(), self.parts, strict=True)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._range(start, max(start, stop))
            key = np.arange(start, stop, step)
        if isinstance(key, (int, np.integer)):
            if not -len(self) <= key < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            return self.take(np.array([key % len(self)]))[0]
        if isinstance(key, tuple) or (hasattr(key, "dtype") and key.dtype == np.bool_):
            return np.asarray(self)[key]
        return self.take(key)

    def _range(self, start: int, stop: int) -> np.ndarray:
        pieces = []
        for first, part in self.blocks():
            lo, hi = max(start, first), min(stop, first + len(part))
            if lo < hi:
                pieces.append(np.asarray(part[lo - first : hi - first]))
        return np.concatenate(pieces) if pieces else np.zeros((0, self.dim), np.float32)

    def take(self, positions) -> np.ndarray:
        """The rows at ``positions`` (any shape of integers), gathered from their blocks."""
        positions = np.asarray(positions, np.int64)
        flat = positions.reshape(-1)
        if len(flat) and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} vectors")
        out = np.empty((len(flat), self.dim), np.float32)
        which = np.searchsorted(self.starts, flat, side="right") - 1
        for b in np.unique(which).tolist():
            rows = np.flatnonzero(which == b)
            part = self.parts[b]
            if getattr(part, "reader", None) is not None:
                read_rows(part, flat[rows] - self.starts[b], out, rows)
            else:
                out[rows] = part[flat[rows] - self.starts[b]]
        return out.reshape(*positions.shape, self.dim)

    def append(self, vectors: np.ndarray) -> None:
        """Add rows (an unsaved block; joined to the last one when that is unsaved too)."""
        vectors = np.ascontiguousarray(vectors, np.float32)
        if not len(vectors):
            return
        if self.parts and self.names[-1] is None:
            self.parts[-1] = np.concatenate([self.parts[-1], vectors])
        else:
            self.parts.append(vectors)
            self.names.append(None)
        self._starts()

    def select(self, keep: np.ndarray, write=None) -> Shards:
        """The rows where ``keep`` (a boolean per row) is true: a block that keeps all its
        rows stays as it is (saved blocks are not written again), one that loses some
        becomes unsaved, or, with ``write`` (rows -> (memory-mapped block, file name)), is
        written at once, so that memory holds one block at a time."""
        parts, names = [], []
        for (start, part), name in zip(self.blocks(), self.names, strict=True):
            mask = keep[start : start + len(part)]
            if mask.all():
                parts.append(part)
                names.append(name)
            elif mask.any():
                rows = np.asarray(part)[mask]
                self.release(part)
                if write is None:
                    parts.append(rows)
                    names.append(None)
                else:
                    written, file = write(rows)
                    parts.append(written)
                    names.append(file)
        out = Shards(self.dim, parts, names)
        out.home = self.home
        return out

    def unsaved(self, rows: int) -> list[tuple[int, int]]:
        """(start, stop) row ranges of the shards to write: the unsaved blocks cut into
        pieces of at most ``rows`` rows."""
        out = []
        for (start, part), name in zip(self.blocks(), self.names, strict=True):
            if name is None:
                stop = start + len(part)
                out += [(s, min(s + rows, stop)) for s in range(start, stop, rows)]
        return out

    def replace(self, start: int, stop: int, block: np.ndarray, name: str) -> None:
        """Put ``block`` (the rows ``start:stop``, now saved as ``name``) in place of those
        rows of their unsaved block."""
        b = int(np.searchsorted(self.starts, start, side="right") - 1)
        first, part = int(self.starts[b]), self.parts[b]
        if self.names[b] is not None or stop > first + len(part):
            raise ValueError(f"rows {start}:{stop} are not inside one unsaved block")
        pieces = [
            (part[: start - first], None),
            (block, name),
            (part[stop - first :], None),
        ]
        new = [(p, n) for p, n in pieces if len(p)]
        self.parts[b : b + 1] = [p for p, _ in new]
        self.names[b : b + 1] = [n for _, n in new]
        self._starts()

    def forget(self) -> None:
        """Treat every block as unsaved (to be written where the index is saved next)."""
        self.names = [None] * len(self.parts)

    def release(self, part: np.ndarray) -> None:
        """Hand the pages of a memory-mapped block back to the page cache (read again when
        next used), when the index is larger than :data:`RELEASE_BYTES`: a full scan keeps
        one block resident at a time, not the whole index."""
        if self.nbytes > RELEASE_BYTES:
            drop_pages(part)


NPY_HEADER_BYTES = 10_000  # numpy's own bound on a header it parses safely


def check_npy(path) -> None:
    """Refuse a ``.npy`` file whose header is not one numpy writes: the magic string, a known
    version, a header of at most :data:`NPY_HEADER_BYTES` holding a plain dict of dtype, order
    and shape. The bytes of a damaged header are never handed to numpy's parser unbounded
    (it tokenizes them as Python source and raises what Python raises on bad source)."""
    from lava_retrieval.common.atomic import not_a_file
    from lava_retrieval.common.errors import LavaRetrievalError

    if (what := not_a_file(path)) is not None:  # (opening a FIFO would wait for a writer)
        raise LavaRetrievalError(f"{path}: is {what}, not a .npy file")
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format._read_array_header  # type: ignore[attr-defined]
            read_header(f, version, max_header_size=NPY_HEADER_BYTES)
        except Exception as exc:  # ValueError, SyntaxError, tokenize.TokenError, EOFError...
            raise LavaRetrievalError(
                f"{path}: not a .npy file of this package (its header is damaged: "
                f"{type(exc).__name__})"
            ) from None


def map_shard(path) -> np.ndarray:
    """A saved shard (``.npy``), memory-mapped read-only, with its file kept open for
    :func:`read_rows` (a shard replaced by a newer version stays readable); its header is
    checked first (:func:`check_npy`)."""
    check_npy(path)
    part = np.load(path, mmap_mode="r", allow_pickle=False)
    if isinstance(part, np.memmap):
        part.reader = open(path, "rb")  # type: ignore[attr-defined]  # noqa: SIM115 (closed with the array)
    return part


def read_rows(part: np.memmap, rows: np.ndarray, out: np.ndarray, where: np.ndarray) -> None:
    """``out[where] = part[rows]``, read with ``pread`` instead of through the mapping:
    scattered rows of a memory-mapped file would each map their neighbourhood (the kernel's
    fault-around maps 16 pages per fault), so that a search's few re-ranked rows would leave
    gigabytes resident; read, they leave only the page cache warm."""
    size = part.shape[1] * part.itemsize
    if not (out.flags.c_contiguous and out.dtype == part.dtype and out.shape[1:] == part.shape[1:]):
        raise ValueError("read_rows needs a C-contiguous output of the shard's rows")
    rows = np.ascontiguousarray(rows, np.int64)
    where = np.ascontiguousarray(where, np.int64)
    reader = part.reader  # type: ignore[attr-defined]
    failed = _pread_rows()(reader.fileno(), part.offset, size, rows, out.ctypes.data, where)
    if failed >= 0:
        raise OSError(f"{part.filename}: short read at row {rows[failed]}")


@functools.cache
def _pread_rows():
    """A compiled loop of ``pread(2)`` calls, one per row (about 2 us each; a Python loop
    takes five times as long)."""
    import ctypes

    import numba

    libc = ctypes.CDLL(None, use_errno=True)
    pread = libc.pread
    # (the buffer's address passed as an integer: numba calls ctypes functions of numbers)
    pread.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_size_t, ctypes.c_long]
    pread.restype = ctypes.c_long

    @numba.njit
    def loop(fd, offset, size, rows, address, where):  # pragma: no cover - compiled
        for i in range(len(rows)):
            if pread(fd, address + where[i] * size, size, offset + rows[i] * size) != size:
                return i
        return -1

    return loop


def drop_pages(part: np.ndarray) -> None:
    """Hand the resident pages of a memory-mapped array back to the page cache (nothing for
    an array in memory)."""
    handle = getattr(part, "_mmap", None)
    if handle is not None:
        handle.madvise(mmap.MADV_DONTNEED)
