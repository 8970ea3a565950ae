"""Approximate nearest-neighbour search through faiss, beside the exact :class:`CosineIndex`.

An :class:`ApproximateIndex` holds a faiss index over the exact index's normalised vectors with
the inner-product metric. Its labels are positions in the exact index. Its vectors are
compressed (8-bit scalar quantisation, or product quantisation), so that the index of a million
1,024-dimensional embeddings fits in about a gigabyte beside the memory-mapped float32 ones; it
proposes ``R`` x ``k`` candidates, which are re-ranked by their exact cosine score against the
full vectors (read from the exact index's shards), so that the scores it answers are exact and
only the candidate set is approximate. Types:

``hnsw``
    ``HNSW32,SQ8``: a graph over 8-bit vectors, built with :data:`EF_CONSTRUCTION` candidates
    per insertion; search knob ``ef`` (faiss's ``efSearch``, default 128, at least the
    candidates re-ranked), the candidates kept while walking the graph. ``R`` = 4.
``ivf``
    ``IVF{nlist},SQ8``: 8-bit vectors in ``nlist`` clusters (about 4 sqrt(N), at least 39
    training vectors each); search knob ``nprobe`` (default 16), the clusters scanned. ``R`` = 4.
``ivf-pq``
    ``IVF{nlist},PQ{m}x{bits}``: product-quantised codes of ``m`` bytes (a sixty-fourth of the
    float32 vector); knob ``nprobe``. ``R`` = :data:`REFINE_FACTOR` (16).
a faiss factory string
    Anything :func:`faiss.index_factory` builds with the inner-product metric, e.g.
    ``"IVF256,Flat"``; its knobs are those of its IVF or HNSW part; ``R`` is 16 with product
    quantisation, 4 otherwise.

Trained (IVF, PQ, SQ) on a seeded sample of at most :data:`TRAIN_SAMPLE` vectors, then filled
shard by shard. The re-ranked candidates are ordered like the exact search's (score, then
position); a query may get fewer than ``k`` results from an IVF index whose probed clusters
hold fewer vectors (the missing ones are dropped).

:func:`recall_at_k` measures an index against the exact search on a sample of its own vectors
(the build records it); a hit counts when its exact score reaches the exact ``k``-th best, so
that equal scores (duplicate images) are not counted as misses.
"""

from __future__ import annotations

import functools
import math
import os
import re
import signal

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.search.index import CosineIndex, RetrievalIndexError, normalize
from lava_retrieval.search.shards import Shards

INDEX_TYPES = ("exact", "hnsw", "ivf", "ivf-pq")
TRAIN_SAMPLE = 100_000
"""At most this many vectors train an IVF or PQ index."""
RECALL_K = 10
RECALL_SAMPLE = 1000
"""Queries (own vectors) :func:`recall_at_k` takes by default."""
DEFAULT_EF = 128
DEFAULT_NPROBE = 16
DEFAULT_KNOBS = {"ef": DEFAULT_EF, "nprobe": DEFAULT_NPROBE}
REFINE_FACTOR = 16
"""A product-quantised index (``ivf-pq``) re-ranks this many times k candidates."""
RERANK_FACTOR = 4
"""Any other approximate index re-ranks this many times k candidates."""
EF_CONSTRUCTION = 128
"""Candidates an ``hnsw`` index keeps while inserting a vector (faiss's default is 40): a
better graph, higher recall at the same ``ef``, for a slower build."""
MAX_KNOB = 1 << 16
ADD_ROWS = 16384
"""Vectors handed to faiss at once while filling an index (the progress bar's step)."""
_FACTORY = re.compile(r"[A-Za-z0-9_,.()x=+-]{1,200}")


def faiss_module():
    """faiss, or a one-line error naming the package to install."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        raise LavaRetrievalError("approximate indexes need faiss (pip install faiss-cpu)") from None
    from lava_retrieval.common.cores import threads_for

    faiss.omp_set_num_threads(threads_for(None))
    return faiss


def nlist_for(count: int) -> int:
    """Clusters of an IVF index of ``count`` vectors: about 4 sqrt(N), at least 39 vectors
    each (what faiss's k-means asks for).

    >>> nlist_for(60_000), nlist_for(1_000_000), nlist_for(100), nlist_for(10)
    (980, 4000, 2, 1)
    """
    return max(1, min(round(4 * math.sqrt(count)), count // 39))


def factory_for(index_type: str, count: int, dim: int) -> str:
    """The faiss factory string of ``index_type`` (one of :data:`INDEX_TYPES` but ``exact``, or
    a factory string, returned as it is) for ``count`` vectors of ``dim`` dimensions.

    >>> factory_for("ivf-pq", 60_000, 1024)
    'IVF980,PQ64x8'
    >>> factory_for("IVF256,Flat", 60_000, 1024)
    'IVF256,Flat'
    """
    if index_type == "hnsw":
        return "HNSW32,SQ8"
    if index_type == "ivf":
        return f"IVF{nlist_for(count)},SQ8"
    if index_type == "ivf-pq":
        # m bytes per vector (a divisor of dim, about dim / 16: a 64th of the float32
        # vector); 2**bits centroids per
        # sub-quantiser, at least 39 training vectors each.
        m = max(d for d in range(1, max(1, dim // 16) + 1) if dim % d == 0)
        bits = max(1, min(8, int(math.log2(max(2, count // 39)))))
        return f"IVF{nlist_for(count)},PQ{m}x{bits}"
    if index_type == "exact" or not _FACTORY.fullmatch(index_type):
        raise RetrievalIndexError(
            f"unknown index type {index_type!r}: use one of {', '.join(INDEX_TYPES)} or a faiss "
            "factory string such as 'IVF256,SQ8'"
        )
    return index_type


class ApproximateIndex:
    """A faiss index over the normalised vectors of a :class:`CosineIndex` (see the module
    docstring); labels are positions in it.

    >>> exact = CosineIndex().add(np.random.default_rng(0).standard_normal((500, 16)))
    >>> approximate = ApproximateIndex.build(exact.vectors_, "hnsw")
    >>> approximate.search(exact.vectors_[:2], 1)[1].tolist()
    [[0], [1]]
    """

    def __init__(self, index_type: str, factory: str, index, vectors) -> None:
        self.index_type = index_type
        self.factory = factory
        self.index = index
        self.vectors = vectors  # the full vectors, by position: what re-ranks candidates
        self.rerank = REFINE_FACTOR if "PQ" in factory else RERANK_FACTOR

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(
        cls, vectors, index_type: str, *, seed: int = 0, progress: bool = False
    ) -> ApproximateIndex:
        """Train (on a seeded sample) and fill an index of ``vectors`` (normalised float32: an
        array, or the :class:`~lava_retrieval.search.shards.Shards` of an exact index, added
        shard by shard). The index keeps ``vectors`` to re-rank its candidates."""
        faiss = faiss_module()
        if not isinstance(vectors, Shards):
            vectors = Shards(np.shape(vectors)[-1], [np.ascontiguousarray(vectors, np.float32)])
        if len(vectors) == 0:
            raise RetrievalIndexError("an approximate index needs at least one vector")
        factory = factory_for(index_type, len(vectors), vectors.shape[1])
        if index_type not in INDEX_TYPES:  # a string of the user's: tried in a child first
            probe_factory(factory, vectors.shape[1])
        index = _construct(faiss, factory, vectors.shape[1])
        if index_type == "hnsw":
            faiss.downcast_index(index).hnsw.efConstruction = EF_CONSTRUCTION
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            picked = np.arange(len(vectors))
            if len(vectors) > TRAIN_SAMPLE:
                picked = np.sort(rng.choice(len(vectors), TRAIN_SAMPLE, replace=False))
            sample = vectors.take(picked)
            try:
                index.train(sample)
            except RuntimeError as exc:
                raise RetrievalIndexError(
                    f"faiss cannot train {factory!r} on {len(sample)} vectors: {_faiss_reason(exc)}"
                ) from None
            del sample
        out = cls(index_type, factory, index, vectors)
        out.add(vectors, progress=progress)
        return out

    def add(self, vectors, progress: bool = False) -> ApproximateIndex:
        """Add the rows of ``vectors`` it lacks (its labels continue the positions): the
        rows from :func:`len` on of the full vectors, which it keeps from now on."""
        from tqdm.auto import tqdm

        if not isinstance(vectors, Shards):
            vectors = Shards(np.shape(vectors)[-1], [np.ascontiguousarray(vectors, np.float32)])
        have = len(self)
        with tqdm(
            total=len(vectors) - have, unit="vec", desc="indexing", disable=not progress
        ) as bar:
            for first, part in vectors.blocks():
                if first + len(part) <= have:
                    continue
                rows = np.ascontiguousarray(part[max(0, have - first) :], np.float32)
                for start in range(0, len(rows), ADD_ROWS):
                    self.index.add(rows[start : start + ADD_ROWS])
                    bar.update(len(rows[start : start + ADD_ROWS]))
                vectors.release(part)
        self.vectors = vectors
        return self

    def knobs(self) -> dict[str, tuple[int, int]]:
        """The search knobs this index takes, with their allowed ranges."""
        faiss = faiss_module()
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            return {"nprobe": (1, int(ivf.nlist))}
        if _hnsw(faiss, self.index) is not None:
            return {"ef": (1, MAX_KNOB)}
        return {}

    def knobs_used(
        self, candidates: int, nprobe: int | None = None, ef: int | None = None
    ) -> dict[str, int]:
        """The knob values a search proposing ``candidates`` uses (None: the default): ``ef``
        is raised to the candidates (faiss's HNSW keeps at least that many).

        >>> exact = CosineIndex().add(np.random.default_rng(0).standard_normal((500, 16)))
        >>> ApproximateIndex.build(exact.vectors_, "hnsw").knobs_used(40, None, 16)
        {'ef': 40}
        """
        allowed = self.knobs()
        if "nprobe" in allowed:
            return {"nprobe": int(nprobe or DEFAULT_NPROBE)}
        if "ef" in allowed:
            return {"ef": max(int(ef or DEFAULT_EF), candidates)}
        return {}

    def candidates(self, k: int) -> int:
        """How many candidates a search for ``k`` proposes before re-ranking."""
        return min(len(self), k * self.rerank)

    def parameters(self, k: int, nprobe: int | None, ef: int | None, selector=None):
        """faiss's search parameters for these knobs (None: the defaults), checked against
        :meth:`knobs`: one that does not apply or is out of range is refused. ``selector``: a
        faiss ``IDSelector`` of the positions searched."""
        faiss = faiss_module()
        check_knobs(self.knobs(), self.index_type, nprobe, ef)
        used = self.knobs_used(k, nprobe, ef)
        if "nprobe" in used:
            params = faiss.SearchParametersIVF(nprobe=used["nprobe"])
        elif "ef" in used:
            params = faiss.SearchParametersHNSW(efSearch=used["ef"])
        elif selector is not None:
            params = faiss.SearchParameters()
        else:
            return None
        if selector is not None:
            params.sel = selector
        if isinstance(faiss.downcast_index(self.index), faiss.IndexRefine):
            # Re-ranked: the base index proposes REFINE_FACTOR x k candidates.
            return faiss.IndexRefineSearchParameters(
                k_factor=REFINE_FACTOR, base_index_params=params
            )
        return params

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, positions), each (n, k), best first by exact cosine score (equal scores by
        position); position -1 (score -inf) where fewer than ``k`` were found (an IVF index's
        scanned clusters, a filter). ``queries``: normalised float32. The index proposes
        ``rerank`` x ``k`` candidates (``ef`` below that is raised to it), re-ranked against
        the full vectors. ``allowed``: a boolean per position, the only ones searched (a
        faiss ``IDSelectorBitmap``)."""
        faiss = faiss_module()
        selector = bitmap = None
        if allowed is not None:
            allowed = np.asarray(allowed, bool)
            if allowed.shape != (len(self),):
                raise RetrievalIndexError(f"allowed must be {len(self)} booleans")
            bitmap = np.packbits(allowed, bitorder="little")  # kept alive for the search
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        candidates = self.candidates(k)
        params = self.parameters(candidates, nprobe, ef, selector)
        queries = np.ascontiguousarray(queries, np.float32)
        _, found = self.index.search(queries, candidates, params=params)
        del bitmap
        return self._rerank(queries, found, k)

    def _rerank(self, queries: np.ndarray, found: np.ndarray, k: int):
        """The best ``k`` of the candidates ``found`` (-1: none) by their exact scores."""
        vectors = self.vectors.take(np.where(found >= 0, found, 0))
        scores = np.einsum("qd,qcd->qc", queries, vectors)
        scores[found < 0] = -np.inf
        order = np.lexsort((found, -scores), axis=1)[:, :k]
        scores = np.take_along_axis(scores, order, 1).astype(np.float32)
        positions = np.take_along_axis(found, order, 1)
        positions[np.isneginf(scores)] = -1
        if positions.shape[1] < k:  # fewer vectors than k in all
            pad = k - positions.shape[1]
            positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return scores, positions

    def write(self, path) -> None:
        """Write the faiss index to ``path`` (faiss's format, straight to the file)."""
        faiss_module().write_index(self.index, str(path))

    def describe(self) -> dict:
        """What the manifest records of the faiss index, to check the file against: its
        class, dimension and count."""
        faiss = faiss_module()
        return {
            "type": type(faiss.downcast_index(self.index)).__name__,
            "dimension": int(self.index.d),
            "count": int(self.index.ntotal),
        }

    @classmethod
    def read(
        cls,
        path,
        index_type: str,
        factory: str,
        vectors,
        where: str | None = None,
        expect: dict | None = None,
        count: int | None = None,
    ) -> ApproximateIndex:
        """An index written by :meth:`write`, checked against what its manifest says:
        ``vectors`` are the full vectors it was built on (an exact index's; ``count``: their
        first rows, when rows were added since); ``expect``: :meth:`describe` as recorded (its
        faiss class must be the file's); the factory string must be of the family
        ``index_type`` names."""
        faiss = faiss_module()
        where = where or str(path)
        rows, dim = vectors.shape
        count = rows if count is None else count
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise RetrievalIndexError(
                f"{where}: not a faiss index ({_faiss_reason(exc)})"
            ) from None
        if index.metric_type != faiss.METRIC_INNER_PRODUCT or index.d != dim:
            raise RetrievalIndexError(
                f"{where}: a faiss index of {index.d} dimensions and metric {index.metric_type}, "
                f"the manifest says {dim} and inner product"
            )
        if index.ntotal != count:
            raise RetrievalIndexError(
                f"{where}: the faiss index holds {index.ntotal} vectors, the manifest says {count}"
            )
        family = {"hnsw": "HNSW", "ivf": "IVF", "ivf-pq": "IVF"}.get(index_type)
        if family and not factory.startswith(family):
            raise RetrievalIndexError(
                f"{where}: the manifest's factory {factory!r} is no {index_type} index"
            )
        found = cls(index_type, factory, index, vectors)
        kind = found.describe()["type"]
        if isinstance(expect, dict) and expect.get("type") != kind:
            raise RetrievalIndexError(
                f"{where}: a faiss {kind}, the manifest says {expect.get('type')!r}"
            )
        if (
            family == "HNSW"
            and _hnsw(faiss, index) is None
            or (family == "IVF" and faiss.try_extract_index_ivf(index) is None)
        ):
            raise RetrievalIndexError(f"{where}: a faiss {kind} is no {index_type} index")
        return found


_PROBE = """
import sys
import faiss
import numpy as np
factory, dim = sys.argv[1], int(sys.argv[2])
index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
again = faiss.deserialize_index(faiss.serialize_index(index))
if again.metric_type != faiss.METRIC_INNER_PRODUCT:
    sys.exit(0)  # refused by the caller's own check, with its reason: nothing to try
vectors = np.random.default_rng(0).standard_normal((2000, dim)).astype("float32")
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
if not index.is_trained:
    index.train(vectors)
index.add(vectors[:200])
index.search(vectors[:2], 2)
"""
PROBE_SECONDS = 120


def check_knobs(
    allowed: dict[str, tuple[int, int]], index_type: str, nprobe: int | None, ef: int | None
) -> None:
    """Refuse a knob that an index of ``index_type`` taking ``allowed`` (name: (low, high))
    does not take, or one out of its range."""
    for name, value in {"nprobe": nprobe, "ef": ef}.items():
        if value is None:
            continue
        if name not in allowed:
            raise RetrievalIndexError(
                f"{name} does not apply to this {index_type} index"
                + (f" (it takes {', '.join(allowed)})" if allowed else " (it has no knobs)")
            )
        low, high = allowed[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise RetrievalIndexError(f"{name} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise RetrievalIndexError(f"{name} must be between {low} and {high}, got {value}")


@functools.lru_cache(maxsize=64)
def probe_factory(factory: str, dim: int) -> None:
    """Build, train, fill and search a small index of ``factory`` in a child process first:
    faiss ends the process on some factory strings (``HNSW0`` fails an assertion and aborts)
    instead of raising; such a string is refused here with one message. A factory that only
    raises (a Python error, as most bad ones do) passes: the caller reports faiss's reason.
    A factory of an index that takes its ids from the caller (``IDMap``) is refused by name:
    this index's labels are positions."""
    import subprocess
    import sys

    if re.search("IDMap", factory, re.I):
        raise RetrievalIndexError(
            f"{factory!r}: an IDMap index takes its ids from the caller (add_with_ids); an "
            "index of this package labels vectors by position: leave IDMap out"
        )
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, factory, str(dim)],
            capture_output=True,
            timeout=PROBE_SECONDS,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        raise RetrievalIndexError(
            f"faiss did not build a 2,000-vector {factory!r} index in {PROBE_SECONDS} s; "
            "choose another factory string"
        ) from None
    if done.returncode < 0:
        raise RetrievalIndexError(
            f"faiss cannot build {factory!r} for {dim} dimensions: it ends the process "
            f"({signal.Signals(-done.returncode).name}); choose another factory string"
        )


def _construct(faiss, factory: str, dim: int):
    """An empty faiss index of ``factory`` with the inner-product metric, refused (one
    message) where faiss cannot build it or would not read it back the same."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RetrievalIndexError(
            f"faiss cannot build {factory!r} for {dim} dimensions: {_faiss_reason(exc)}"
        ) from None
    # Every index is saved and read back by faiss: refuse one that would not come back the
    # same (faiss reads some refine indexes with the L2 metric), while it is empty.
    try:
        again = faiss.deserialize_index(faiss.serialize_index(index))
    except RuntimeError as exc:
        raise RetrievalIndexError(f"faiss cannot save {factory!r}: {_faiss_reason(exc)}") from None
    if again.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise RetrievalIndexError(
            f"faiss does not keep the inner-product metric of {factory!r} when it saves it; "
            "choose another factory string"
        )
    return index


def check_index_type(index_type: str, dim: int) -> None:
    """Refuse, before any work, an index type that cannot be built for ``dim`` dimensions: an
    unknown name, or a factory string faiss cannot build or save (what depends on the number
    of vectors, such as training, is checked when it is built)."""
    if index_type in INDEX_TYPES:
        return
    factory = factory_for(index_type, 1, dim)
    probe_factory(factory, dim)
    _construct(faiss_module(), factory, dim)


def _hnsw(faiss, index):
    """The HNSW index inside ``index`` (itself, or the base of a refine index), or None."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        index = faiss.downcast_index(index.base_index)
    return index if isinstance(index, faiss.IndexHNSW) else None


def _faiss_reason(exc: RuntimeError) -> str:
    """faiss's message without its C++ location."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^Error in .*? at \S+: ", "", text)


def recall_at_k(
    exact: CosineIndex,
    approximate: ApproximateIndex,
    *,
    queries: np.ndarray | None = None,
    k: int = RECALL_K,
    sample: int = RECALL_SAMPLE,
    seed: int = 0,
    nprobe: int | None = None,
    ef: int | None = None,
    truth: np.ndarray | None = None,
) -> dict:
    """Recall@k of ``approximate`` against the exact search: ``{"recall_at_k": float, "k": k,
    "queries": n}``. Queries: ``queries`` (any vectors), else a seeded sample of ``sample`` of
    the index's own vectors. A result counts when its exact cosine score reaches the exact
    k-th best score (less 1e-6). ``truth``: the exact k-th best score of each of ``queries``
    when already known (:func:`kth_scores`), not searched again."""
    n = len(exact)
    k = min(k, n)
    if queries is None:
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(n, min(sample, n), replace=False))
        queries = exact.vectors_[picked]
    else:
        queries = normalize(queries)
    kth = kth_scores(exact, queries, k) if truth is None else np.asarray(truth)
    _, positions = approximate.search(queries, k, nprobe=nprobe, ef=ef)
    found = positions >= 0
    scores = np.einsum("qd,qkd->qk", queries, exact.vectors_[np.where(found, positions, 0)])
    hits = found & (scores >= kth.reshape(-1, 1) - 1e-6)
    return {"recall_at_k": float(hits.sum() / (len(queries) * k)), "k": k, "queries": len(queries)}


def kth_scores(exact: CosineIndex, queries: np.ndarray, k: int = RECALL_K) -> np.ndarray:
    """The exact ``k``-th best score of each query (what :func:`recall_at_k` compares with)."""
    return exact.search(normalize(queries), min(k, len(exact)))[0][:, -1]
