"""A catalogue's daily changes to an index: adding a source without silent duplicates, and
making an index match a folder (``index add`` and ``index sync``).

Both run the stages of ``index build`` (:mod:`lava_retrieval.search.build`): the source is
listed, read and prepared in chunks, each chunk is decided on (:class:`Admission`), the images
to index are embedded (here, or on a Ray cluster) and their embeddings written into the index
directory as shards as they come, so that memory holds a chunk and a shard, not the source.
The writers' lock of the index is held throughout, and the manifest is written once, last: a
change that is killed or interrupted at any moment leaves the index at its old version (what
it had written is removed, now or by the next writer), one that ends leaves the new one.

**Duplicates.** Every indexed image keeps a 64-bit hash of its prepared pixels
(:func:`~lava_retrieval.search.sources.content_hashes`: what the network sees, so two files of
one hash have one embedding). ``add`` skips an image whose path is indexed already, or whose
hash is (or was met earlier in the same source), and says which and why;
``allow_duplicates`` adds them all again, with new ids. With ``upsert`` an image whose path is
indexed replaces that entry, keeping its id, when its pixels changed (unchanged: nothing to do).

**Sync** mirrors a folder: each readable image file of it is one entry (content duplicates
within the folder included), added when its path is new, updated (its id kept) when its
pixels changed, and the entries under the folder whose file is gone are removed
(tombstones: :meth:`~lava_retrieval.search.image_index.ImageIndex.remove`). A file that cannot
be read is reported and its entry, if any, left as it is. ``dry_run`` reads and compares
everything and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.common.locking import exclusive
from lava_retrieval.search import index_directory
from lava_retrieval.search.build import CHUNK, embedded_with_ray, ranges
from lava_retrieval.search.index import RetrievalIndexError
from lava_retrieval.search.sources import Images, SourcePlan, plan_source, stored_path

if TYPE_CHECKING:
    from lava_retrieval.search.image_index import ImageIndex


LISTED = 1000
"""Duplicates listed by path and reason (all are counted, by reason)."""


class Admission:
    """What each image of a source does to ``index``, decided chunk by chunk in the source's
    order (see the module docstring): ``decide`` answers which images to embed and their ids;
    ``added`` and ``updated`` (stored paths), ``unchanged`` (a count), ``skipped`` (a count
    per reason) and ``duplicates`` (the first :data:`LISTED` (path, reason) pairs) grow as it
    goes. ``mirror``: a sync (no content duplicates, every path indexed once)."""

    def __init__(
        self,
        index: ImageIndex,
        *,
        upsert: bool = False,
        allow_duplicates: bool = False,
        mirror: bool = False,
    ) -> None:
        self.index, self.upsert, self.mirror = index, upsert or mirror, mirror
        self.by_content = not (allow_duplicates or mirror)
        live = index.live_positions()
        self.by_path = {index.paths[p]: int(p) for p in live.tolist()}
        hashes = index.hashes[live]
        known = hashes != 0
        # (the first row of each hash: np.unique keeps the first occurrence's index)
        first = np.unique(hashes[known], return_index=True)
        self.hash_values = first[0]
        self.hash_rows = live[known][first[1]]
        self.met: dict[int, str] = {}  # hash -> the path of this source that brought it
        self.seen: set[str] = set()
        self.next_id = index.next_id
        self.added: list[str] = []
        self.updated: list[str] = []
        self.unchanged = 0
        self.skipped: dict[str, int] = {}
        self.duplicates: list[tuple[str, str]] = []

    def _skip(self, path: str, kind: str, reason: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        if len(self.duplicates) < LISTED:
            self.duplicates.append((path, reason))

    def _indexed(self, value: int) -> int | None:
        """The position of an indexed image of hash ``value``, if any."""
        at = int(np.searchsorted(self.hash_values, value))
        if at < len(self.hash_values) and int(self.hash_values[at]) == value:
            return int(self.hash_rows[at])
        return None

    def decide(self, images: Images) -> tuple[np.ndarray, np.ndarray]:
        """(which images of this chunk to embed, a boolean each; the ids of those)."""
        index, keep, ids = self.index, np.zeros(len(images.paths), bool), []
        for i, (path, value) in enumerate(
            zip(images.paths, images.content_hashes().tolist(), strict=True)
        ):
            stored = stored_path(path)
            row = self.by_path.get(stored)
            if stored in self.seen:
                self._skip(path, "named twice", "named twice in the source")
                continue
            if row is None or self.upsert:  # (an indexed path named twice: skipped anyway)
                self.seen.add(stored)
            if row is not None and self.upsert:
                if int(index.hashes[row]) == value:
                    self.unchanged += 1
                    continue
                keep[i] = True
                ids.append(int(index.index.ids_[row]))
                self.updated.append(stored)
                continue
            if row is not None and self.by_content:
                item = int(index.index.ids_[row])
                self._skip(path, "already indexed", f"already indexed (id {item})")
                continue
            if self.by_content:
                twin = self._indexed(value)
                if twin is not None:
                    item = int(index.index.ids_[twin])
                    reason = f"same pixels as indexed id {item} ({index.paths[twin]})"
                    self._skip(path, "same pixels", reason)
                    continue
                if value in self.met:
                    self._skip(path, "same pixels", f"same pixels as {self.met[value]}")
                    continue
                self.met[value] = path
            keep[i] = True
            ids.append(self.next_id)
            self.next_id += 1
            self.added.append(stored)
        return keep, np.asarray(ids, np.int64)


@dataclass
class Change:
    """What :func:`add` or :func:`sync` did (``dry_run``: would do): stored paths added,
    updated and removed, how many were unchanged, and the files skipped ((path, reason):
    unreadable, or duplicates)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # duplicates, by reason
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # the first LISTED
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    workers: str = "this process"
    dry_run: bool = False
    index: Any = None  # the index after the change (an ImageIndex)


class _InMemory(SourcePlan):
    """A :class:`SourcePlan` of images already read (the Python API's ``extend``)."""

    def __init__(self, images: Images) -> None:
        super().__init__("the images given", len(images.paths), None)  # type: ignore[arg-type]
        self.images, self.unreadable = images, list(images.bad)
        self.class_names = images.class_names

    def read(self, start: int, stop: int) -> Images:
        keep = np.zeros(self.count, bool)
        keep[start:stop] = True
        return self.images.subset(keep)

    @property
    def has_labels(self) -> bool:
        return self.images.labels is not None


def in_memory(images: Images) -> SourcePlan:
    """A source plan of ``images`` already read (for :func:`add`)."""
    return _InMemory(images)


def _check_plan(index: ImageIndex, plan: SourcePlan) -> None:
    """Refuse a source whose labels or class names do not go with the index's."""
    if index.rows and plan.has_labels != index.has_labels:
        have = "has" if index.has_labels else "has no"
        need = "have" if index.has_labels else "have no"
        raise RetrievalIndexError(f"this index {have} labels; add images that {need} labels too")
    if plan.class_names and index.class_names and plan.class_names != index.class_names:
        raise RetrievalIndexError("these images' class names differ from the index's")


def _chunks(index, plan: SourcePlan, admission: Admission, *, backend, ray, chunk, log, dry):
    """(images to add, their embeddings, their ids, files of the chunk that could not be
    read, items of the chunk) of each chunk of ``plan``; a description of the workers."""
    if ray is not None and not dry:
        batches, workers = embedded_with_ray(index, plan, ray, chunk=chunk, log=log)

        def from_ray():
            with contextlib.closing(batches):
                for images, embeddings in batches:
                    keep, ids = admission.decide(images)
                    yield (
                        images.subset(keep),
                        embeddings[keep],
                        ids,
                        images.bad,
                        len(images.paths) + len(images.bad),
                    )

        return from_ray(), workers

    def here():
        for start, stop in ranges(plan.count, chunk):
            images = plan.read(start, stop)
            keep, ids = admission.decide(images)
            chosen = images.subset(keep)
            embeddings = (
                index.embed(chosen.images, backend)
                if len(chosen.paths) and not dry
                else np.zeros((len(chosen.paths), index.dim), np.float32)
            )
            yield chosen, embeddings, ids, images.bad, stop - start

    return here(), "this process"


def _run(
    cls: type[ImageIndex],
    directory: str | os.PathLike,
    plan: SourcePlan | Callable[[Any], SourcePlan],
    *,
    sync_folder: str | None = None,
    upsert: bool = False,
    allow_duplicates: bool = False,
    dry_run: bool = False,
    backend: str = "sim",
    ray: str | None = None,
    chunk: int = CHUNK,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Change:
    from tqdm.auto import tqdm

    if ray is not None and backend != "sim":
        raise LavaRetrievalError("a Ray change embeds with the simulator (--backend sim)")
    start = time.perf_counter()
    change = Change(dry_run=dry_run)
    index_directory.read_manifest(directory)  # not an index: said before anything else
    lock: contextlib.AbstractContextManager
    if dry_run:
        lock = contextlib.nullcontext()
    else:
        index_directory.check_writable(directory)
        lock = exclusive(directory, what="writing this index", log=log)
    with lock:
        # (its faiss index is read at the save, after the embedding: not both in memory)
        index = cls.load(directory, approximate=False)
        plan = plan(index) if callable(plan) else plan
        _check_plan(index, plan)
        admission = Admission(
            index,
            upsert=upsert,
            allow_duplicates=allow_duplicates,
            mirror=sync_folder is not None,
        )
        change.unreadable = list(plan.unreadable)
        before = index.shard_names()
        digest = index_directory.manifest_digest(directory)
        chunks, change.workers = _chunks(
            index, plan, admission, backend=backend, ray=ray, chunk=chunk, log=log, dry=dry_run
        )
        verb = "reading" if dry_run else "embedding"
        try:
            with (
                contextlib.closing(chunks),
                tqdm(total=plan.count, unit="img", desc=verb, disable=not progress) as bar,
            ):
                for images, embeddings, ids, bad, items in chunks:
                    if len(images.paths) and not dry_run:
                        index.spill(images, embeddings, directory, ids)
                    change.unreadable += bad
                    bar.update(items)
            if sync_folder is not None:
                seen = admission.seen | {stored_path(p) for p, _ in change.unreadable}
                prefix = sync_folder
                gone = [
                    path
                    for path in admission.by_path
                    if path.startswith(prefix) and path not in seen
                ]
                change.removed = gone
                if gone and not dry_run:
                    index.remove(
                        [int(index.index.ids_[admission.by_path[p]]) for p in gone],
                        keep_one=True,
                    )
            if not dry_run and (admission.added or admission.updated or change.removed):
                index.class_names = index.class_names or plan.class_names
                index.sources.append(
                    {
                        "count": len(admission.added) + len(admission.updated),
                        "skipped": len(change.unreadable) + sum(admission.skipped.values()),
                    }
                )
                index.save(directory, progress=progress)
        except BaseException:
            if not dry_run:
                index_directory.discard_uncommitted(index, directory, before, digest)
            raise
    change.added, change.updated = admission.added, admission.updated
    change.unchanged, change.duplicates = admission.unchanged, admission.duplicates
    change.skipped = admission.skipped
    change.seconds, change.index = time.perf_counter() - start, index
    return change


def add(
    cls: type[ImageIndex],
    directory: str | os.PathLike,
    plan: SourcePlan | Callable[[Any], SourcePlan],
    *,
    upsert: bool = False,
    allow_duplicates: bool = False,
    **stages,
) -> Change:
    """Add the images of ``plan`` (a :class:`SourcePlan`, or a function of the loaded index
    that makes one with its preprocessing) to the index of class ``cls`` (an
    :class:`~lava_retrieval.search.image_index.ImageIndex`) in ``directory`` (module
    docstring). ``stages``: ``backend`` (``"sim"``), ``ray`` (a Ray address: embed on that
    cluster, as ``index build --ray``), ``chunk`` (:data:`~.build.CHUNK`), ``progress``,
    ``log``."""
    return _run(cls, directory, plan, upsert=upsert, allow_duplicates=allow_duplicates, **stages)


def sync(
    cls: type[ImageIndex],
    directory: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    dry_run: bool = False,
    data_dir: str | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    **stages,
) -> Change:
    """Make the index in ``directory`` match the image files of ``folder`` (module
    docstring), in one new version; ``dry_run``: say what would change, change nothing.
    ``data_dir``, ``max_bytes``, ``max_pixels``: as :func:`~.sources.plan_source` takes them;
    ``stages``: as :func:`add` takes them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LavaRetrievalError(f"{folder}: not a folder (index sync mirrors a folder of images)")
    prefix = os.path.join(os.path.abspath(folder), "")

    def plan(index) -> SourcePlan:
        from lava_retrieval.data.images import _walk

        if not _walk(folder)[0]:  # a folder emptied of images: its entries all go
            return SourcePlan(str(folder), 0, index.preprocessing, files=[])
        limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
        return plan_source(
            folder,
            index.preprocessing,
            data_dir=data_dir,
            **{name: value for name, value in limits.items() if value is not None},
        )

    return _run(cls, directory, plan, sync_folder=prefix, dry_run=dry_run, **stages)
