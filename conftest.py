"""The names the package's doctests use (``net``, ``images``, ``model``, ...), so that every
``>>>`` example runs: the shipped paper's network, the real Fashion-MNIST test images and the
shipped ANN."""

from __future__ import annotations

import functools

import pytest


@functools.cache
def _doctest_names() -> dict:
    import numpy as np

    from lava_retrieval.ann.checkpoint import load_checkpoint
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork

    net = SpikingNetwork.load("results/snn-32-64-10.npz")
    return {
        "np": np,
        "net": net,
        "layer": net.layers[1],
        "images": load_fashion_mnist(download=False).test_images,
        "model": load_checkpoint().model,
        "load_checkpoint": load_checkpoint,
        "load_fashion_mnist": load_fashion_mnist,
        "SimConfig": SimConfig,
        "SpikingNetwork": SpikingNetwork,
    }


@pytest.fixture(autouse=True)
def _names_for_doctests(request, doctest_namespace):
    from _pytest.doctest import DoctestItem

    if isinstance(request.node, DoctestItem):
        doctest_namespace.update(_doctest_names())
