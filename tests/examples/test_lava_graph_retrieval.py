"""The hand-wired example graph runs and answers what the simulator and the exact index answer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lava_retrieval.engines.sim import embed
from lava_retrieval.search.index import CosineIndex
from lava_retrieval.snn.config import SimConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lava_graph_retrieval.py"


@pytest.mark.slow
def test_the_example_graph_answers_like_the_simulator():
    spec = importlib.util.spec_from_file_location("lava_graph_retrieval", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.answer(corpus_size=200, num_queries=3, time_steps=8)
    network, config = result["network"], SimConfig(8, timing="delay", readout="membrane")
    corpus = embed(network, example.load_fashion_mnist().train_images[:200], config, progress=False)
    np.testing.assert_array_equal(corpus, result["corpus"])  # the Lava graph's corpus embeddings
    queries = embed(network, result["queries"], config, progress=False)
    scores, ids = CosineIndex().add(corpus).search(queries, 3)
    np.testing.assert_array_equal(result["ids"], ids)
    np.testing.assert_allclose(result["scores"], scores, rtol=1e-5)
    assert result["ids"].shape == (3, 3)
