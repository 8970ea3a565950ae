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
