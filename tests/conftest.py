"""Shared fixtures: the real Fashion-MNIST, loaded once per session."""

from __future__ import annotations

import pytest

from lava_retrieval.data.fashion_mnist import FashionMNIST, load_fashion_mnist


@pytest.fixture(scope="session")
def fashion() -> FashionMNIST:
    """The real data set, found by the project's own lookup (``make setup`` provides it)."""
    return load_fashion_mnist(download=False)


@pytest.fixture(scope="session")
def web_service(fashion):
    """The web page's search service over 800 training images (the paper's network, T = 8)."""
    from lava_retrieval.apps.web import SearchService
    from lava_retrieval.conversion.methods import get
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import read_source
    from lava_retrieval.snn.config import SimConfig

    network = get("paper").network(fashion)
    config = SimConfig(time_steps=8, timing="pipelined", readout="integrated")
    index = ImageIndex(network, config).add(read_source("fashion-mnist:train", limit=800))
    return SearchService(index)
