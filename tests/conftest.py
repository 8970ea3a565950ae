"""Shared fixtures: the real Fashion-MNIST, loaded once per session."""

from __future__ import annotations

import pytest

from lava_retrieval.data.fashion_mnist import FashionMNIST, load_fashion_mnist


@pytest.fixture(scope="session")
def fashion() -> FashionMNIST:
    """The real data set, found by the project's own lookup (``make setup`` provides it)."""
    return load_fashion_mnist(download=False)
