"""What the robustness tests share: a small index, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

NETWORK = Path(__file__).resolve().parents[1] / "lava_retrieval" / "golden" / "small-net.npz"


@pytest.fixture(scope="session")
def small_index(tmp_path_factory) -> Path:
    """An index of 20 test images embedded by the small golden network (T = 8, the default
    timing); copy it before changing it."""
    from lava_retrieval.search.image_index import ImageIndex
    from lava_retrieval.search.sources import read_source
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork

    directory = tmp_path_factory.mktemp("small-index") / "idx"
    index = ImageIndex(
        SpikingNetwork.load(NETWORK), SimConfig(8, timing="delay", readout="membrane")
    )
    index.add(read_source("fashion-mnist:test", limit=20, progress=False)).save(directory)
    return directory
