"""Search sharded over a Ray cluster: groups of an index's shards, each on a Ray actor with its
own approximate index, answer every query together (``serve --ray``).

The index's shard files are split into groups of whole shards, as even in rows as they go, one
group per actor (:class:`ShardGroup`); the actors are spread over the cluster's nodes and read
their shards from the index directory, memory-mapped (every node sees the directory at the same
path: one machine, or a shared file system). A query fans out: each actor finds its best ``k``
among its rows (exactly, or through its own approximate index, re-ranked by the exact cosine
score as :class:`~lava_retrieval.search.approximate.ApproximateIndex` does) and answers their
scores and positions in the whole index; this process merges them, best score first and equal
scores by position, as the search of one process orders them.

**Exact mode answers what one process answers, bit for bit** (scores, ids, tie order): an actor
scores each of its shards against the query chunk with the same arithmetic, on the same blocks,
as :meth:`~lava_retrieval.search.index.CosineIndex.search_positions` does in one process.
Approximate mode reports its recall@10 against the exact mode (:attr:`RaySearcher.recall`).

**Writes** (``PUT``/``DELETE`` of the service) are made to the index directory under the
writers' lock, one version each, as without Ray; then the actor that owns the changed rows is
told: a removed image's tombstone goes to the actor of its shard, a new shard (an added image) to
the actor with the fewest rows, which adds it to its approximate index. A query always asks for
the rows of the version it runs on.

**An actor that dies** is restarted by Ray, empty; a query meanwhile gets
:class:`ShardsUnavailable` (the service's 503) naming it, never an answer without its rows, and
the actor is loaded again (its shards, at the version served) before it answers again.

What scales with nodes: the memory of the shards and approximate indexes (each node holds its
groups'), and the search work of a query (each actor scans its rows). What does not: the
query's embedding and the merge (this process), and the writes (one writer at a time).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.search.index import CosineIndex, RetrievalIndexError, normalize

if TYPE_CHECKING:
    from lava_retrieval.search.image_index import ImageIndex

LOAD_SECONDS = 3600.0
"""How long an actor may take to load its shards and build its approximate index."""
SEARCH_SECONDS = 60.0
"""How long a query waits for the groups' answers before it is a 503."""
RECALL_QUERIES = 200
"""Queries (the index's own embeddings, a seeded sample) the recall of the sharded approximate
search is measured on when it starts."""


class ShardsUnavailable(LavaRetrievalError):
    """A group of shards cannot answer now (its actor died and is being restarted)."""

    status = 503


def partition(shards: list[tuple[str, int, int]], groups: int) -> list[list[int]]:
    """The shards (file, first row, rows) split into at most ``groups`` runs of whole shards,
    as even in rows as they go: the shard indexes of each.

    >>> partition([("a", 0, 4), ("b", 4, 4), ("c", 8, 4), ("d", 12, 2)], 2)
    [[0, 1], [2, 3]]
    """
    n = len(shards)
    groups = max(1, min(groups, n))
    done = np.cumsum([0] + [rows for _, _, rows in shards])  # rows before each shard
    cuts = [0]
    for j in range(1, groups):  # each cut where the rows before it come nearest j/groups
        target = done[-1] * j / groups
        cuts.append(
            min(range(cuts[-1] + 1, n - groups + j + 1), key=lambda i: abs(done[i] - target))
        )
    cuts.append(n)
    return [list(range(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)]


class ShardGroup:
    """A Ray actor: a group of an index's shards (memory-mapped from its directory), its
    tombstones and its own approximate index; empty until :meth:`load`."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.exact: CosineIndex | None = None
        self.approximate: Any = None
        self.positions = np.zeros(0, np.int64)

    def ready(self) -> bool:
        return True

    def memory(self) -> dict:
        """Its process and resident memory (now and at its peak), MiB."""
        import os
        import re

        status = Path("/proc/self/status").read_text() if Path("/proc/self").exists() else ""
        found = dict(re.findall(r"^(VmRSS|VmHWM):\s+([0-9]+) kB", status, re.M))
        return {
            "pid": os.getpid(),
            "rss_mib": int(found.get("VmRSS", 0)) // 1024,
            "peak_mib": int(found.get("VmHWM", 0)) // 1024,
        }

    def loaded(self) -> bool:
        """Whether it holds its shards (a restarted actor does not until :meth:`load`)."""
        return self.exact is not None

    def load(
        self,
        directory: str,
        shards: list[tuple[str, int, int]],
        removed: bytes | None,
        index_type: str,
    ) -> dict:
        """Hold ``shards`` (file, first row, rows) of the index in ``directory``, with the
        tombstones of their rows (packed bits, None: none); keep what it holds already when
        its files are the first of them (an approximate index grows by the new rows)."""
        from lava_retrieval.search.approximate import ApproximateIndex
        from lava_retrieval.search.shards import Shards, map_shard

        files = [file for file, _, _ in shards]
        if self.exact is None or files[: len(self.files)] != self.files:
            self.exact, self.approximate, self.files = None, None, []
            parts: list = []
        else:
            parts = list(self.exact.vectors_.parts)
        for file, _, rows in shards[len(self.files) :]:
            part = map_shard(Path(directory) / file)
            if len(part) != rows:
                raise RetrievalIndexError(f"{directory}/{file}: {len(part)} rows, not {rows}")
            parts.append(part)
        vectors = Shards(parts[0].shape[1], parts, files)
        exact = CosineIndex(vectors.shape[1])
        exact.vectors_, exact.ids_ = vectors, np.arange(len(vectors), dtype=np.int64)
        self.positions = np.concatenate(
            [first + np.arange(rows, dtype=np.int64) for _, first, rows in shards]
        )
        self.live = None
        if removed is not None:
            bits = np.unpackbits(np.frombuffer(removed, np.uint8), count=len(vectors))
            self.live = bits == 0
        if index_type != "exact":
            if self.approximate is None:
                self.approximate = ApproximateIndex.build(vectors, index_type)
            else:
                self.approximate.add(vectors)
        self.exact, self.files = exact, files
        knobs = {} if self.approximate is None else self.approximate.knobs()
        return {"rows": len(vectors), "knobs": knobs}

    def search(
        self,
        embeddings: np.ndarray,
        k: int,
        approximate: bool,
        nprobe: int | None,
        ef: int | None,
        allowed: bytes | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, positions in the whole index) of the best ``k`` of its rows for each
        query (fewer: position -1); ``allowed``: packed bits of its rows (None: all but its
        tombstones)."""
        if self.exact is None:
            raise ShardsUnavailable("this group of shards is not loaded")
        rows = len(self.exact)
        keep = self.live
        if allowed is not None:
            keep = np.unpackbits(np.frombuffer(allowed, np.uint8), count=rows).astype(bool)
        k = min(k, rows)
        if keep is not None and not keep.any():
            n = len(embeddings)
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        if approximate:
            scores, found = self.approximate.search(
                normalize(embeddings), k, nprobe=nprobe, ef=ef, allowed=keep
            )
        else:
            scores, found = self.exact.search_positions(np.asarray(embeddings, np.float32), k, keep)
        return scores, np.where(found >= 0, self.positions[np.maximum(found, 0)], -1)


def _narrowest(knobs: list[dict]) -> dict:
    """The knob ranges every group takes (an IVF group's nprobe: up to its fewest clusters)."""
    out = dict(knobs[0])
    for other in knobs[1:]:
        out = {
            name: (max(low, other[name][0]), min(high, other[name][1]))
            for name, (low, high) in out.items()
            if name in other
        }
    return out


class _ReadWrite:
    """Many readers or one writer (queries read the groups' state, a refresh writes it)."""

    def __init__(self) -> None:
        self.cond, self.readers, self.writing = threading.Condition(), 0, False
        self.waiting = 0  # writers waiting: new readers wait behind them

    @contextlib.contextmanager
    def read(self):
        with self.cond:
            self.cond.wait_for(lambda: not self.writing and not self.waiting)
            self.readers += 1
        try:
            yield
        finally:
            with self.cond:
                self.readers -= 1
                self.cond.notify_all()

    @contextlib.contextmanager
    def write(self):
        with self.cond:
            self.waiting += 1
            self.cond.wait_for(lambda: not self.writing and self.readers == 0)
            self.waiting -= 1
            self.writing = True
        try:
            yield
        finally:
            with self.cond:
                self.writing = False
                self.cond.notify_all()


class RaySearcher:
    """The search of an :class:`ImageIndex` sharded over Ray actors (module docstring);
    ``index.searcher`` once made. ``address``: a Ray address as ``index build --ray`` takes
    it; ``actors``: how many (default: one per node of the cluster)."""

    def __init__(
        self,
        index: ImageIndex,
        directory: str | os.PathLike,
        address: str = "local",
        *,
        actors: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        from lava_retrieval.search.build import _connect, _ray_module

        self.ray = ray = _ray_module()
        self.directory, self.log = str(Path(directory).resolve()), log
        self.started = _connect(ray, address, log)
        self.lock = _ReadWrite()
        self.restarting: dict[int, Any] = {}  # group -> the future of its reload
        self.restart_lock = threading.Lock()
        try:
            if not index.rows:
                raise RetrievalIndexError("an empty index cannot be served over Ray")
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            wanted = actors or max(1, len(nodes))
            self.index = index
            self.groups = partition(self._shards(index), wanted)
            remote = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(ShardGroup)
            self.actors = [
                remote.options(scheduling_strategy="SPREAD").remote() for _ in self.groups
            ]
            answers = ray.get([self._load(g) for g in range(len(self.groups))])
            self.rows = [a["rows"] for a in answers]
            self.knobs = _narrowest([a["knobs"] for a in answers])
            self.recall = self._measure() if index.index_type != "exact" else None
        except BaseException:
            self.close()
            raise
        index.searcher = self

    @staticmethod
    def _shards(index: ImageIndex) -> list[tuple[str, int, int]]:
        vectors = index.index.vectors_
        out = []
        for (first, part), name in zip(vectors.blocks(), vectors.names, strict=True):
            if name is None:
                raise RetrievalIndexError("an index served over Ray must be saved first")
            out.append((name, first, len(part)))
        return out

    def _load(self, group: int):
        """The future of actor ``group`` loading its shards of :attr:`index`."""
        shards = self._shards(self.index)
        mine = [shards[i] for i in self.groups[group]]
        removed = None
        if self.index.removed is not None:
            rows = np.concatenate([first + np.arange(n) for _, first, n in mine])
            removed = np.packbits(self.index.removed[rows]).tobytes()
        return self.actors[group].load.remote(self.directory, mine, removed, self.index.index_type)

    def describe(self) -> dict:
        """What ``/api/info`` says of it."""
        return {
            "actors": len(self.actors),
            "rows": self.rows,
            "shards": [len(g) for g in self.groups],
            "recall": self.recall,
        }

    def _measure(self) -> dict:
        """Recall@10 of the sharded approximate search against the sharded exact one, on a
        seeded sample of the index's own embeddings."""
        index = self.index
        live = index.live_positions()
        rng = np.random.default_rng(0)
        picked = np.sort(rng.choice(live, min(RECALL_QUERIES, len(live)), replace=False))
        queries = index.index.vectors_.take(picked)
        k = min(10, len(live))
        exact, _ = self.nearest(queries, k, False, None, None, index.live, index)
        scores, _ = self.nearest(queries, k, True, None, None, index.live, index)
        kth = exact[:, -1:]
        hits = (scores >= kth - 1e-6) & np.isfinite(scores)
        return {"recall_at_k": float(hits.sum() / hits.size), "k": k, "queries": len(picked)}

    def nearest(self, embeddings, k, approximate, nprobe, ef, allowed, index):
        """(scores, positions) of the ``k`` best of ``index`` (the version the query runs on)
        for each query, ``allowed`` rows only: every group asked, their answers merged."""
        ray = self.ray
        embeddings = np.ascontiguousarray(embeddings, np.float32)
        with self.lock.read():
            if index is not self.index and not self._appended_to(index):
                raise ShardsUnavailable(
                    "the index was compacted while this query ran (its positions moved); ask again"
                )
            self._check_restarting()
            futures = []
            for g, actor in enumerate(self.actors):
                mine = None
                if allowed is not None or index is not self.index:
                    rows = self._rows(g)
                    keep = np.zeros(len(rows), bool)
                    inside = rows < index.rows
                    keep[inside] = True if allowed is None else allowed[rows[inside]]
                    mine = np.packbits(keep).tobytes()
                futures.append(actor.search.remote(embeddings, k, approximate, nprobe, ef, mine))
            try:
                answers = ray.get(futures, timeout=SEARCH_SECONDS)
            except ray.exceptions.GetTimeoutError:
                raise ShardsUnavailable(
                    f"the shard groups did not answer within {SEARCH_SECONDS:.0f} s"
                ) from None
            except ray.exceptions.RayError as exc:
                raise self._unavailable(futures, exc) from None
        scores = np.concatenate([s for s, _ in answers], 1)
        positions = np.concatenate([p for _, p in answers], 1)
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        order = np.lexsort((np.where(positions >= 0, positions, np.iinfo(np.int64).max), -scores))
        order = order[:, :k]
        scores = np.take_along_axis(scores, order, 1)
        positions = np.take_along_axis(positions, order, 1)
        positions[np.isneginf(scores)] = -1
        if positions.shape[1] < k:
            pad = k - positions.shape[1]
            positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return scores, positions

    def _appended_to(self, older: ImageIndex) -> bool:
        """Whether the version served now only adds to ``older`` (its shards in place), so
        that ``older``'s positions still name the same rows."""
        now = {(name, first) for name, first, _ in self._shards(self.index)}
        return all((name, first) in now for name, first, _ in self._shards(older))

    def _rows(self, group: int) -> np.ndarray:
        shards = self._shards(self.index)
        return np.concatenate([shards[i][1] + np.arange(shards[i][2]) for i in self.groups[group]])

    def parameters(self, k: int, nprobe: int | None, ef: int | None) -> None:
        """Refuse knobs the groups' approximate indexes do not take (as one index would)."""
        from lava_retrieval.search.approximate import check_knobs

        check_knobs(self.knobs, self.index.index_type, nprobe, ef)

    def _unavailable(self, futures, exc) -> ShardsUnavailable:
        """The error of a query that an actor could not answer; its reload is started."""
        ray = self.ray
        done, _ = ray.wait(futures, num_returns=len(futures), timeout=0)
        for g, future in enumerate(futures):
            if future not in done:
                continue
            try:
                ray.get(future)
            except ray.exceptions.RayError:
                with self.restart_lock:
                    self.restarting.setdefault(g, None)
        reason = type(exc).__name__
        return ShardsUnavailable(
            f"shard group {', '.join(map(str, sorted(self.restarting)))} of "
            f"{len(self.actors)} is restarting ({reason}); try again in a few seconds"
        )

    def _check_restarting(self) -> None:
        """Refuse (503) while a group's actor is being restarted and loaded again; start its
        reload when it is back."""
        if not self.restarting:
            return
        with self.restart_lock:
            self._advance_restarts()

    def _advance_restarts(self) -> None:
        ray = self.ray
        for g, future in list(self.restarting.items()):
            if future is None:
                future = self.actors[g].ready.remote()
                self.restarting[g] = ("ready", future)
                continue
            stage, pending = future
            done, _ = ray.wait([pending], timeout=0)
            if not done:
                continue
            try:
                answer = ray.get(pending)
            except ray.exceptions.RayError:
                self.restarting[g] = None  # died again: start over
                continue
            if stage == "ready":
                self.restarting[g] = ("load", self._load(g))
            else:
                self.rows[g] = answer["rows"]
                self.restarting.pop(g, None)
        if self.restarting:
            raise ShardsUnavailable(
                f"shard group {', '.join(map(str, sorted(self.restarting)))} of "
                f"{len(self.actors)} is restarting; try again in a few seconds"
            )

    def refresh(self, index: ImageIndex) -> None:
        """Serve ``index`` (a newer version of the same directory, just saved): the groups
        whose shards or tombstones changed are told; a compaction (shards gone) loads every
        group again."""
        ray = self.ray
        with self.lock.write():
            old = {name for name, _, _ in self._shards(self.index)}
            shards = self._shards(index)
            names = [name for name, _, _ in shards]
            if not old <= set(names):  # compacted: everything again
                self.groups = partition(shards, len(self.actors))
                for actor in self.actors[len(self.groups) :]:  # (fewer shards than actors)
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                self.actors = self.actors[: len(self.groups)]
            else:
                before = self._shards(self.index)
                known = {before[i][0]: g for g, group in enumerate(self.groups) for i in group}
                groups: list[list[int]] = [[] for _ in self.actors]
                for i, name in enumerate(names):
                    if name in known:
                        groups[known[name]].append(i)
                for i, name in enumerate(names):
                    if name not in known:  # a new shard: to the group with fewest rows
                        sizes = [sum(shards[j][2] for j in group) for group in groups]
                        groups[int(np.argmin(sizes))].append(i)
                self.groups = groups
            self.index = index
            futures = [self._load(g) for g in range(len(self.actors))]
            for g, future in enumerate(futures):  # (the write is saved: this must not fail)
                try:
                    self.rows[g] = ray.get(future, timeout=LOAD_SECONDS)["rows"]
                except (ray.exceptions.RayError, LavaRetrievalError):
                    with self.restart_lock:
                        self.restarting[g] = None  # loaded again before it answers
            self.rows = self.rows[: len(self.actors)]

    def close(self) -> None:
        """End the actors (and Ray, if this process started it)."""
        from lava_retrieval.search.build import _end

        for actor in getattr(self, "actors", []):
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: S110 (an actor already gone)
                pass
        started, self.started = self.started, False
        _end(self.ray, started)
