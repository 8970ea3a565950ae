"""Classification and retrieval metrics, as the paper reports them.

Classification accuracy
    The predicted class is the output neuron with the most spikes; ties are broken by the higher
    membrane potential at the last step, and remaining ties by the lower class index.
Top-k retrieval accuracy
    A query is a hit when any of its k nearest corpus images has the query's class (top-1: the
    nearest one).
Mean average precision (mAP)
    For each query the whole corpus is ranked by cosine similarity (ties by corpus order);
    relevance is "same class". Average precision is the mean, over the relevant corpus images, of
    the precision at each one's rank: ``AP = (1/R) * sum_k P(k) * rel(k)``, with R the number of
    relevant images. mAP is the mean over queries (a query with no relevant image scores 0).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.engines.compiled import jit
from lava_retrieval.search.index import normalize


def predict_classes(spike_counts: np.ndarray, membrane: np.ndarray | None = None) -> np.ndarray:
    """Most spikes wins; ties go to the higher membrane potential, then the lower index.

    >>> predict_classes(np.array([[2, 5, 5]]), np.array([[0, 3, 9]])).tolist()
    [2]
    """
    counts = np.asarray(spike_counts, dtype=np.int64)
    if membrane is None:
        return counts.argmax(1)
    membrane = np.asarray(membrane, dtype=np.int64)
    # Rank membrane potentials within each row (equal potentials: the lower index ranks higher),
    # so that the combined key cannot overflow.
    minus_index = np.broadcast_to(-np.arange(counts.shape[1]), membrane.shape)
    rank = np.lexsort((minus_index, membrane), axis=1).argsort(1)
    return (counts * counts.shape[1] + rank).argmax(1)


def classification_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions.

    >>> classification_accuracy(np.array([1, 2, 3]), np.array([1, 2, 0]))
    0.6666666666666666
    """
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or predicted.size == 0:
        raise LavaRetrievalError(f"{predicted.shape} predictions for {labels.shape} labels")
    return float((predicted == labels).mean())


def top_k_accuracy(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """Fraction of queries with at least one of their first ``k`` neighbours of their class.

    >>> top_k_accuracy(np.array([[0, 1, 1], [2, 2, 0]]), np.array([1, 0]), 1)
    0.0
    >>> top_k_accuracy(np.array([[0, 1, 1], [2, 2, 0]]), np.array([1, 0]), 3)
    1.0
    """
    neighbour_labels = np.asarray(neighbour_labels)
    if neighbour_labels.ndim != 2 or neighbour_labels.shape[1] < k or k < 1:
        raise LavaRetrievalError(f"need (n, >= {k}) neighbour labels, got {neighbour_labels.shape}")
    hits = neighbour_labels[:, :k] == np.asarray(query_labels)[:, None]
    return float(hits.any(1).mean())


def average_precision(relevant_in_rank_order: np.ndarray) -> np.ndarray:
    """AP of each row of a boolean (n, corpus) relevance matrix in ranked order.

    >>> average_precision(np.array([[True, False, True, False]])).round(4).tolist()
    [0.8333]
    """
    rel = np.asarray(relevant_in_rank_order, dtype=bool)
    hits: np.ndarray = np.cumsum(rel, axis=1, dtype=np.int32 if rel.shape[1] < 2**31 else np.int64)
    ranks = np.arange(1, rel.shape[1] + 1)
    precision_sum = np.where(rel, hits / ranks, 0.0).sum(1)
    total = hits[:, -1]
    return np.where(total > 0, precision_sum / np.maximum(total, 1), 0.0)


@jit
def _rank_keys(bits, keys):
    """Each score's 64-bit sort key: an order-preserving 32-bit key of the score (negated, for
    best first; -0.0 as 0.0) above its 32-bit position. ``bits``: float32 scores viewed as
    uint32."""
    low = np.uint64(0xFFFFFFFF)
    for i in range(bits.shape[0]):
        for j in range(bits.shape[1]):
            b = np.uint64(bits[i, j])
            if b == np.uint64(0x80000000):  # -0.0
                b = np.uint64(0)
            if b >> np.uint64(31):
                ascending = b ^ low
            else:
                ascending = b | np.uint64(0x80000000)
            keys[i, j] = ((ascending ^ low) << np.uint64(32)) | np.uint64(j)


@jit
def _score_ranked(keys, labels, query_labels, ap, first_hit):
    """From sorted keys: each row's average precision and the rank (0-based) of its first
    relevant corpus item (the corpus size where none is)."""
    low = np.uint64(0xFFFFFFFF)
    for i in range(keys.shape[0]):
        hits = 0
        precision_sum = 0.0
        first = keys.shape[1]
        for r in range(keys.shape[1]):
            if labels[np.int64(keys[i, r] & low)] == query_labels[i]:
                hits += 1
                precision_sum += hits / (r + 1)
                if hits == 1:
                    first = r
        ap[i] = precision_sum / hits if hits else 0.0
        first_hit[i] = first


def _sorted_keys(sims: np.ndarray) -> np.ndarray:
    """Each row's sort keys (:func:`_rank_keys`), sorted: best first, equal scores by position.
    numpy sorts the unique 64-bit keys with its vectorised sort."""
    sims = np.ascontiguousarray(sims, np.float32)
    if sims.shape[1] > 0xFFFFFFFF:
        raise LavaRetrievalError(f"cannot rank {sims.shape[1]} items (at most 2**32 - 1)")
    keys = np.empty(sims.shape, np.uint64)
    _rank_keys(sims.view(np.uint32), keys)
    keys.sort(axis=1)
    return keys


def _best_first(sims: np.ndarray) -> np.ndarray:
    """Each row's positions best first, equal scores by position: what ``np.argsort(-sims,
    kind="stable")`` gives, several times faster."""
    return (_sorted_keys(sims) & np.uint64(0xFFFFFFFF)).view(np.int64)


def ranked_retrieval(
    queries: np.ndarray,
    query_labels: np.ndarray,
    corpus: np.ndarray,
    corpus_labels: np.ndarray,
    *,
    ks: tuple[int, ...] = (1, 3),
    chunk_size: int = 128,
    progress: bool = False,
) -> dict:
    """mAP and top-k retrieval accuracy (fractions) from one ranking of the whole corpus per
    query (cosine similarity, ties by corpus order, relevance = same class): ``{"mAP": float,
    "top": {k: float}}``. Memory is bounded by ``chunk_size`` x corpus size.

    >>> c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> ranked_retrieval(np.array([[1.0, 0.0]]), np.array([0]), c, np.array([1, 1, 0]), ks=(1, 2))
    {'mAP': 0.5, 'top': {1: 0.0, 2: 1.0}}
    """
    from tqdm.auto import tqdm

    from lava_retrieval.common.cores import threads_for

    q = normalize(queries)
    c = normalize(corpus)
    query_labels = np.asarray(query_labels)
    corpus_labels = np.asarray(corpus_labels)
    if len(q) != len(query_labels) or len(c) != len(corpus_labels):
        raise LavaRetrievalError(
            f"{len(q)} queries with {len(query_labels)} labels, "
            f"{len(c)} corpus items with {len(corpus_labels)} labels"
        )
    if len(q) == 0 or len(c) == 0:
        raise LavaRetrievalError("ranking needs at least one query and one corpus item")
    # Labels as small integers of one type (any labels: their codes in the sorted union).
    union, codes = np.unique(np.concatenate([corpus_labels, query_labels]), return_inverse=True)
    labels = codes[: len(c)].astype(np.int32 if len(union) < 2**31 else np.int64)
    wanted = codes[len(c) :].astype(labels.dtype)

    def chunk(start: int) -> tuple[float, np.ndarray]:
        stop = start + chunk_size
        keys = _sorted_keys(q[start:stop] @ c.T)
        ap = np.empty(len(keys))
        first_hit = np.empty(len(keys), np.int64)
        _score_ranked(keys, labels, wanted[start:stop], ap, first_hit)
        return float(ap.sum()), first_hit

    # Sorting dominates and numpy sorts one row at a time on one core: chunks go to a thread
    # per core (numpy and the compiled passes release the GIL), and their sums are added in
    # order, so the result does not depend on the number of threads.
    starts = range(0, len(q), chunk_size)
    workers = min(threads_for(None), len(starts))
    with ThreadPoolExecutor(workers) as pool:
        parts = list(
            tqdm(
                pool.map(chunk, starts),
                total=len(starts),
                desc="ranking",
                disable=not progress,
                leave=False,
            )
        )
    total = 0.0
    for part, _ in parts:
        total += part
    first_hit = np.concatenate([hit for _, hit in parts])
    return {
        "mAP": total / len(q),
        "top": {int(k): float((first_hit < k).mean()) for k in ks},
    }


def mean_average_precision(
    queries: np.ndarray,
    query_labels: np.ndarray,
    corpus: np.ndarray,
    corpus_labels: np.ndarray,
    *,
    chunk_size: int = 128,
    progress: bool = False,
) -> float:
    """mAP over the whole ranked corpus (cosine similarity, relevance = same class), from
    :func:`ranked_retrieval`.

    Memory is bounded by ``chunk_size`` x corpus size.

    >>> c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> mean_average_precision(np.array([[1.0, 0.0]]), np.array([0]), c, np.array([1, 1, 0]))
    0.5
    """
    return ranked_retrieval(
        queries,
        query_labels,
        corpus,
        corpus_labels,
        ks=(),
        chunk_size=chunk_size,
        progress=progress,
    )["mAP"]
