"""The files of an index directory, read with checks: the manifest (:func:`read_manifest`),
the shards it names, digests of the extra files, and whether a directory holds an index. The
format and how a save writes it: :mod:`lava_retrieval.search.index`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, Union

import numpy as np

from lava_retrieval.common.atomic import (
    not_a_file,
)
from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.strict import ParseError, loads
from lava_retrieval.search.shards import (
    RELEASE_BYTES,
    Shards,
    drop_pages,
    map_shard,
)

FORMAT = "lava-retrieval-index"
FORMAT_VERSION = 3
MANIFEST = "index.json"
MAX_MANIFEST_CHARS = 1 << 26  # 64 MiB of metadata is no index manifest
T = TypeVar("T")


@dataclass(frozen=True)
class Kept:
    """An extra file of the version being replaced, named again by the next one unchanged
    (not written again): ``file``, its name in the directory, and its SHA-256."""

    file: str
    checksum: str | None


ExtraFile = Union[bytes, memoryview, Callable[[Path], None], Kept]  # noqa: UP007 (an alias)
#: Files of some version of an index, and the temporaries of a writer killed mid-save (of a
#: versioned file or of the manifest): everything a save removes that its manifest does not name.
_VERSIONED = re.compile(
    r"^(?:\.)?[A-Za-z_]+-[0-9a-f]{8}\.[a-z]+(?:\.[0-9a-f]{8}\.tmp\.[a-z]+)?$"
    r"|^\.index\.json\.[0-9a-f]{8}\.tmp\.json$"
)


class RetrievalIndexError(LavaRetrievalError):
    """Bad input to a :class:`CosineIndex` (dimension, k, empty index, unreadable files)."""


class NotInIndexError(RetrievalIndexError):
    """An id that the index does not hold."""


def read_manifest(directory: str | os.PathLike) -> dict:
    """The validated ``index.json`` of an index directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RetrievalIndexError(f"{directory}: no such index directory")
    try:
        if (what := not_a_file(directory / MANIFEST)) is not None:  # a FIFO would block
            raise RetrievalIndexError(f"{directory}/{MANIFEST}: is {what}, not a file")
        text = (directory / MANIFEST).read_text()
        if len(text) > MAX_MANIFEST_CHARS:
            raise RetrievalIndexError(f"{directory}/{MANIFEST}: larger than an index manifest")
        manifest = loads(text, f"{directory}/{MANIFEST}", MAX_MANIFEST_CHARS)
    except FileNotFoundError:
        raise RetrievalIndexError(f"{directory}: no {MANIFEST}, not an index") from None
    except UnicodeDecodeError as exc:
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: not valid JSON ({exc})") from None
    except ParseError as exc:
        raise RetrievalIndexError(str(exc)) from None
    except OSError as exc:
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: unreadable ({exc.strerror})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RetrievalIndexError(f"{directory}: {MANIFEST} is not an index manifest")
    if manifest.get("version") not in range(1, FORMAT_VERSION + 1):
        raise RetrievalIndexError(
            f"{directory}: index version {manifest.get('version')!r}, this package reads "
            f"1 to {FORMAT_VERSION}"
        )
    dim, count = manifest.get("dimension"), manifest.get("count")
    whole = not isinstance(dim, bool) and not isinstance(count, bool)
    if not (
        isinstance(dim, int)
        and isinstance(count, int)
        and whole
        and 1 <= dim <= 1 << 20
        and 0 <= count <= 1 << 40
    ):
        raise RetrievalIndexError(
            f"{directory}/{MANIFEST}: bad dimension {dim!r} or count {count!r}"
        )
    files = manifest.get("files") or {
        name: name for name in ("embeddings.npy", "ids.npy", "labels.npy")
    }
    if not isinstance(files, dict) or not all(
        isinstance(v, str) and "/" not in v and v not in ("", ".", "..") for v in files.values()
    ):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: bad file list")
    if not isinstance(manifest.get("metadata") or {}, dict):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: metadata is not an object")
    checksums = manifest.get("checksums") or {}
    if not isinstance(checksums, dict) or not all(
        isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) for v in checksums.values()
    ):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: bad checksums")
    if not isinstance(manifest.get("has_labels", False), bool):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: has_labels is not true or false")
    manifest["files"] = files
    return manifest


def read_array(path: Path, load: Callable[[Path], np.ndarray]) -> np.ndarray:
    """``load(path)``, a missing or unreadable file (or a damaged header) told as a
    :class:`RetrievalIndexError` naming the file."""
    try:
        return load(path)
    except FileNotFoundError:
        raise RetrievalIndexError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise RetrievalIndexError(f"{path}: unreadable ({exc})") from None
    except LavaRetrievalError as exc:
        raise RetrievalIndexError(str(exc)) from None


def _map(path: Path) -> np.ndarray:
    """A saved shard, memory-mapped read-only (:func:`~lava_retrieval.search.shards.
    map_shard`)."""
    return map_shard(path)


def _read_shards(directory: Path, manifest: dict) -> Shards:
    """The embeddings of a validated manifest, memory-mapped shard by shard, each checked:
    its shape and type against the manifest, and every row finite and of unit length (or
    zero). A version 1 or 2 index has one file, read as one shard."""
    dim, count, files = manifest["dimension"], manifest["count"], manifest["files"]
    shards = manifest.get("shards")
    if shards is None:
        shards = [{"file": files.get("embeddings.npy", "embeddings.npy"), "count": count}]
    if not isinstance(shards, list) or not all(
        isinstance(x, dict)
        and isinstance(x.get("file"), str)
        and (_VERSIONED.match(x["file"]) is not None or x["file"] == "embeddings.npy")
        and isinstance(x.get("count"), int)
        and not isinstance(x["count"], bool)
        and x["count"] >= 0
        for x in shards
    ):
        raise RetrievalIndexError(f"{directory}/{MANIFEST}: bad shard list")
    if sum(x["count"] for x in shards) != count:
        raise RetrievalIndexError(
            f"{directory}/{MANIFEST}: its shards hold {sum(x['count'] for x in shards)} "
            f"vectors, its count is {count}"
        )
    parts, names = [], []
    large = count * dim * 4 > RELEASE_BYTES
    for shard in shards:
        path = directory / shard["file"]
        value = read_array(path, _map)  # the header first: nothing allocated for a false shape
        if value.shape != (shard["count"], dim) or value.dtype.kind != "f":
            raise RetrievalIndexError(
                f"{path}: {value.dtype} array of shape {value.shape}, the manifest says "
                f"{(shard['count'], dim)}"
            )
        if value.dtype != np.float32:  # an old index's other float type: read it in
            value = np.asarray(value, np.float32)
        for first in range(0, len(value), 8192):
            rows = np.asarray(value[first : first + 8192])
            # (a NaN or infinity makes its row's norm one; a finite norm: finite rows)
            norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
            if not np.isfinite(norms).all() and not np.isfinite(rows).all():
                raise RetrievalIndexError(f"{path}: embeddings contain NaN or infinite values")
            if not np.all((np.abs(norms - 1) < 1e-3) | (norms == 0)):
                raise RetrievalIndexError(
                    f"{path}: embeddings are not unit length (an index stores normalised ones)"
                )
        parts.append(value)
        names.append(shard["file"] if isinstance(value, np.memmap) else None)
        if large:  # released as checked: a large index is not read into memory
            drop_pages(value)
    out = Shards(dim, parts, names)
    out.home = directory.resolve()
    return out


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (read in 16 MiB pieces), as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 24):
            digest.update(piece)
    return digest.hexdigest()


def check_file(directory: Path, manifest: dict, name: str) -> Path:
    """The path of the versioned file ``name`` of a validated manifest, refused if it is
    missing or its SHA-256 differs from the one the manifest records (an index written before
    checksums were recorded has none to compare)."""
    path = _versioned_file(directory, manifest, name)
    _check_digest(path, manifest, name, lambda: file_digest(path))
    return path


def read_checked(directory: Path, manifest: dict, name: str) -> bytes:
    """The bytes of the versioned file ``name``, checked as :func:`check_file` checks it
    (read once)."""
    path = _versioned_file(directory, manifest, name)
    data = path.read_bytes()
    _check_digest(path, manifest, name, lambda: hashlib.sha256(data).hexdigest())
    return data


def _versioned_file(directory: Path, manifest: dict, name: str) -> Path:
    path = directory / manifest["files"][name]
    if not path.is_file():
        raise RetrievalIndexError(f"{path}: missing")
    return path


def _check_digest(path: Path, manifest: dict, name: str, digest: Callable[[], str]) -> None:
    want = (manifest.get("checksums") or {}).get(name)
    if want is not None and digest() != want:
        raise RetrievalIndexError(
            f"{path}: its content differs from what the manifest records (checksum); the file "
            "was changed or damaged after the index was saved"
        )


def manifest_digest(directory: str | os.PathLike) -> str | None:
    """SHA-256 of an index directory's ``index.json`` (which names its version), or None."""
    path = Path(directory) / MANIFEST
    if not_a_file(path) is not None:  # (a FIFO would block; read_manifest names the problem)
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def while_unchanged(directory: Path, read: Callable[[], T], attempts: int = 5) -> T:
    """``read()`` of an index directory, again if a writer replaced the version it was reading
    (its files are removed once the new manifest is in place): a reader gets one whole version.
    """
    for attempt in range(attempts):
        before = manifest_digest(directory)
        try:
            return read()
        except RetrievalIndexError:
            if attempt + 1 == attempts or manifest_digest(directory) == before:
                raise
    raise AssertionError("unreachable")


def check_index_directory(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds an index (True), is missing or empty (False), or neither
    (:class:`RetrievalIndexError`: an index is never written over other files)."""
    directory = Path(directory)
    if not directory.exists():
        return False
    if not directory.is_dir():
        raise RetrievalIndexError(f"{directory}: exists and is not a directory")
    if (directory / MANIFEST).is_file():
        read_manifest(directory)
        return True
    if any(not _VERSIONED.match(path.name) for path in directory.iterdir()):
        # (the files of an interrupted build alone are no obstacle: the save removes them)
        raise RetrievalIndexError(
            f"{directory}: a non-empty directory that is not an index; choose a new or empty "
            "directory (nothing was written)"
        )
    return False


def _names(directory: Path, files: dict[str, str]) -> bool:
    """Whether the manifest in ``directory`` names exactly ``files`` (a version committed)."""
    try:
        return json.loads((directory / MANIFEST).read_text()).get("files") == files
    except (OSError, ValueError, AttributeError):
        return False
