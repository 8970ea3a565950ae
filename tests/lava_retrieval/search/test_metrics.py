"""Metrics against small cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lava_retrieval.common.errors import LavaRetrievalError
from lava_retrieval.search.metrics import (
    average_precision,
    classification_accuracy,
    mean_average_precision,
    predict_classes,
    top_k_accuracy,
)


def test_prediction_ties_broken_by_membrane_then_index():
    counts = np.array([[3, 3, 1], [0, 0, 0], [1, 4, 4], [2, 2, 2]])
    membrane = np.array([[10, 20, 99], [5, -1, 5], [7, 7, 6], [-5, -3, -4]])
    # row 0: tie 3-3, membrane 20 > 10 -> 1; row 1: all 0 spikes, membrane tie 5/5 -> 0;
    # row 2: tie 4-4, membrane 7 > 6 -> 1; row 3: all tie, highest membrane -3 -> 1.
    assert predict_classes(counts, membrane).tolist() == [1, 0, 1, 1]
    assert predict_classes(counts).tolist() == [0, 0, 1, 0]


def test_prediction_with_huge_membranes():
    counts = np.array([[1, 1]])
    membrane = np.array([[2**40, 2**40 + 1]])
    assert predict_classes(counts, membrane).tolist() == [1]


def test_classification_accuracy():
    assert classification_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    with pytest.raises(LavaRetrievalError):
        classification_accuracy(np.array([0, 1]), np.array([0]))


def test_top_k_by_hand():
    neighbours = np.array([[5, 5, 1], [2, 1, 1], [3, 3, 3], [0, 9, 0]])
    labels = np.array([1, 2, 4, 0])
    # top-1 hits: query 1 (2) and query 3 (0) -> 2/4; top-3 adds query 0 (1 third) -> 3/4.
    assert top_k_accuracy(neighbours, labels, 1) == 0.5
    assert top_k_accuracy(neighbours, labels, 3) == 0.75
    with pytest.raises(LavaRetrievalError):
        top_k_accuracy(neighbours, labels, 4)


def test_average_precision_by_hand():
    rel = np.array(
        [
            [1, 0, 1, 0, 0, 1],  # (1/1 + 2/3 + 3/6) / 3 = 0.72222
            [0, 0, 0, 0, 0, 1],  # (1/6) / 1
            [0, 0, 0, 0, 0, 0],  # nothing relevant -> 0
            [1, 1, 1, 0, 0, 0],  # 1
        ],
        dtype=bool,
    )
    np.testing.assert_allclose(average_precision(rel), [(1 + 2 / 3 + 0.5) / 3, 1 / 6, 0, 1])


def test_map_ranks_the_whole_corpus():
    corpus = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5], [0.1, 0.9]])
    corpus_labels = np.array([0, 1, 1, 0, 0])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    query_labels = np.array([0, 1])
    # query 0 ranks corpus 0, 1, 3, 4, 2 -> relevance 1,0,1,1,0 -> (1 + 2/3 + 3/4)/3
    # query 1 ranks corpus 2, 4, 3, 1, 0 -> relevance 1,0,0,1,0 -> (1 + 2/4)/2
    expected = ((1 + 2 / 3 + 3 / 4) / 3 + (1 + 2 / 4) / 2) / 2
    for chunk in (1, 256):
        got = mean_average_precision(queries, query_labels, corpus, corpus_labels, chunk_size=chunk)
        assert got == pytest.approx(expected)


def test_the_ranking_is_a_stable_sort_of_the_scores():
    """mAP's ranking equals numpy's stable argsort of the negated scores, ties (equal scores,
    +0.0 and -0.0, negative scores) by position."""
    from lava_retrieval.search.metrics import _best_first

    rng = np.random.default_rng(5)
    sims = rng.standard_normal((40, 2000)).astype(np.float32)
    sims[:, :100] = 0.0
    sims[:, 100:200] = -0.0
    sims[:, 200:300] = sims[:, 300:400]  # duplicated scores
    sims[:, 400:500] = np.round(sims[:, 400:500], 1)  # many equal values
    want = np.argsort(-sims, axis=1, kind="stable")
    np.testing.assert_array_equal(_best_first(sims), want)


def _stable_reference(queries, query_labels, corpus, corpus_labels, ks):
    """mAP and top-k from numpy's stable argsort of the same scores."""
    from lava_retrieval.search.index import normalize

    sims = normalize(queries) @ normalize(corpus).T
    order = np.argsort(-sims, axis=1, kind="stable")
    relevant = np.asarray(corpus_labels)[order] == np.asarray(query_labels)[:, None]
    return average_precision(relevant).mean(), {k: relevant[:, :k].any(1).mean() for k in ks}


def test_ranked_retrieval_is_one_stable_ranking():
    """Top-k and mAP both come from the ranking with ties by corpus order: the equal corpus
    vectors at the k-th place are taken lowest position first."""
    from lava_retrieval.search.metrics import ranked_retrieval

    rng = np.random.default_rng(11)

    def vectors(n):
        # Four entries +-1 of eight: unit vectors of +-0.5, so every score (a multiple of
        # 0.25) is exact in any order of summation, and many are equal.
        out = np.zeros((n, 8), np.float32)
        for row in out:
            row[rng.choice(8, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
        return out

    corpus, queries = vectors(700), vectors(90)
    corpus[100:300] = corpus[0]  # 201 equal vectors, crossing every k
    queries[:30] = corpus[0]
    corpus_labels = rng.integers(0, 7, 700)
    query_labels = rng.integers(0, 7, 90)
    want_map, want_top = _stable_reference(queries, query_labels, corpus, corpus_labels, (1, 3, 50))
    for chunk in (1, 7, 128):
        got = ranked_retrieval(
            queries, query_labels, corpus, corpus_labels, ks=(1, 3, 50), chunk_size=chunk
        )
        assert got["top"] == want_top
        assert got["mAP"] == pytest.approx(want_map, rel=1e-12, abs=0)
    # All queries tied with corpus[0]'s copies: each one's top-3 is corpus 0, 100, 101.
    tied = ranked_retrieval(queries[:30], query_labels[:30], corpus, corpus_labels, ks=(3,))
    first3 = corpus_labels[[0, 100, 101]]
    assert tied["top"][3] == np.isin(query_labels[:30], first3).mean()


def test_ranked_retrieval_labels_and_errors():
    from lava_retrieval.search.metrics import ranked_retrieval

    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    by_name = ranked_retrieval(
        np.array([[1.0, 0.0]]), np.array(["shirt"]), corpus, np.array(["bag", "bag", "shirt"])
    )
    assert by_name == {"mAP": 0.5, "top": {1: 0.0, 3: 1.0}}
    # A query whose class is not in the corpus has AP 0 and no hit.
    assert ranked_retrieval(np.array([[1.0, 0.0]]), np.array([9]), corpus, np.array([1, 1, 0])) == {
        "mAP": 0.0,
        "top": {1: 0.0, 3: 0.0},
    }
    with pytest.raises(LavaRetrievalError, match="labels"):
        ranked_retrieval(corpus, np.array([0, 1]), corpus, np.array([0, 1, 1]))
    with pytest.raises(LavaRetrievalError, match="at least one"):
        ranked_retrieval(np.zeros((0, 2)), np.array([]), corpus, np.array([0, 1, 1]))
