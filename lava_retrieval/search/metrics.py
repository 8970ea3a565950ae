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
    hits = np.cumsum(rel, axis=1, dtype=np.int32 if rel.shape[1] < 2**31 else np.int64)
    ranks = np.arange(1, rel.shape[1] + 1)
    precision_sum = np.where(rel, hits / ranks, 0.0).sum(1)
    total = hits[:, -1]
    return np.where(total > 0, precision_sum / np.maximum(total, 1), 0.0)


def _best_first(sims: np.ndarray) -> np.ndarray:
    """Each row's positions best first, equal scores by position: what ``np.argsort(-sims,
    kind="stable")`` gives, several times faster. Each score becomes an order-preserving
    32-bit key (negated, for best first) above its 32-bit position, and the unique 64-bit keys
    are sorted, which numpy does with its vectorised sort."""
    bits = (np.asarray(sims, np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 -> 0.0
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    keys = (~ascending).astype(np.uint64) << np.uint64(32)
    keys |= np.arange(sims.shape[1], dtype=np.uint64)
    keys.sort(axis=1)
    keys &= np.uint64(0xFFFFFFFF)
    return keys.view(np.int64)


def mean_average_precision(
    queries: np.ndarray,
    query_labels: np.ndarray,
    corpus: np.ndarray,
    corpus_labels: np.ndarray,
    *,
    chunk_size: int = 128,
    progress: bool = False,
) -> float:
    """mAP over the whole ranked corpus (cosine similarity, relevance = same class).

    Memory is bounded by ``chunk_size`` x corpus size.

    >>> c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> mean_average_precision(np.array([[1.0, 0.0]]), np.array([0]), c, np.array([1, 1, 0]))
    0.5
    """
    from tqdm.auto import tqdm

    from lava_retrieval.common.cores import threads_for

    q = normalize(queries)
    c = normalize(corpus)
    query_labels = np.asarray(query_labels)
    corpus_labels = np.asarray(corpus_labels)

    labels = corpus_labels.astype(np.int32) if corpus_labels.size else corpus_labels

    def chunk_sum(start: int) -> float:
        sims = q[start : start + chunk_size] @ c.T
        order = _best_first(sims)
        relevant = labels[order] == query_labels[start : start + chunk_size, None]
        return float(average_precision(relevant).sum())

    # Sorting dominates and numpy sorts one row at a time on one core: chunks go to a thread
    # per core (numpy releases the GIL while it sorts), and their sums are added in order, so
    # the result does not depend on the number of threads.
    starts = range(0, len(q), chunk_size)
    workers = min(threads_for(None), len(starts))
    with ThreadPoolExecutor(workers) as pool:
        sums = list(
            tqdm(
                pool.map(chunk_sum, starts),
                total=len(starts),
                desc="mAP",
                disable=not progress,
                leave=False,
            )
        )
    total = 0.0
    for part in sums:
        total += part
    return total / len(q)
