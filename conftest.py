"""The names the package's doctests use (``net``, ``images``, ``model``, ...), so that every
``>>>`` example runs, from any working directory: the committed network of the paper's method,
the real Fashion-MNIST test images and the shipped ANN."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest


def _one_core_per_worker() -> None:
    """Under ``pytest -n N`` (``make test``), each worker keeps to a core of its own: the
    engines' thread pools (numba, torch) size themselves by the cores a process may use, and
    two workers each running a pool as wide as the machine slow each other far more than
    twice."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or os.environ.get("LAVA_RETRIEVAL_TEST_NO_PIN"):
        return
    cores = sorted(os.sched_getaffinity(0))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if len(cores) < 2 or workers < 2:
        return
    mine = {core for i, core in enumerate(cores) if i % workers == int(worker[2:]) % len(cores)}
    os.sched_setaffinity(0, mine or set(cores))
    import torch

    torch.set_num_threads(len(mine or cores))


_one_core_per_worker()


@functools.cache
def _doctest_names() -> dict:
    import numpy as np

    from lava_retrieval.ann.checkpoint import load_checkpoint
    from lava_retrieval.data.fashion_mnist import load_fashion_mnist
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork

    # The committed network of the paper's method, wherever pytest runs from.
    net = SpikingNetwork.load(Path(__file__).resolve().parent / "results" / "snn-32-64-10.npz")
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
