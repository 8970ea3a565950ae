"""The task functions of the top level: paths as a person writes them, bad arguments as one
clear error, the same index as the command line builds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import lava_retrieval as lr
from lava_retrieval.common.errors import LavaRetrievalError

FAST = "qcfs8-sdnn"  # one step a layer, no calibration: the cheapest method to convert and run


@pytest.fixture
def home(tmp_path, monkeypatch, fashion):
    """A home directory with a folder of twelve pictures."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "pictures").mkdir()
    for i in range(12):
        Image.fromarray(255 - fashion.test_images[i]).save(tmp_path / "pictures" / f"{i:02d}.png")
    return tmp_path


def test_paths_may_start_with_a_tilde(home):
    index = lr.build_index("~/pictures", "~/index", method=FAST)
    assert len(index) == 12 and (home / "index" / "index.json").is_file()
    hits = lr.open_index("~/index").search_files(["~/pictures/03.png"], k=1)[0]
    assert hits[0].path == str(home / "pictures" / "03.png") and hits[0].score > 0.999
    network = lr.convert_checkpoint(method=FAST, out="~/net.npz")
    assert (home / "net.npz").is_file()
    vectors = lr.embed_images(lr.load_fashion_mnist().test_images[:2], network="~/net.npz")
    assert np.array_equal(vectors, lr.embed_images(lr.load_fashion_mnist().test_images[:2], FAST))
    assert vectors.shape == (2, network.embedding_dim)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lr.build_index(["a.png"]), "source must be a path, not list"),
        (lambda: lr.build_index("~/pictures", limit=0), "limit must be a whole number"),
        (lambda: lr.build_index("~/pictures", index_type="hnsw"), "give a directory"),
        (lambda: lr.build_index("~/nowhere", method=FAST), "no such"),
        (lambda: lr.build_index("~/pictures", method="fast"), "fast"),
        (lambda: lr.embed_images(np.zeros((1, 28, 28)), FAST, time_steps=0), "time_steps"),
        (lambda: lr.open_index("~/pictures"), "not an index"),
        (lambda: lr.convert_checkpoint(method=FAST, out="/dev/null"), "out /dev/null: is a"),
    ],
)
def test_bad_arguments_are_one_clear_error(home, call, message):
    with pytest.raises(LavaRetrievalError, match=message):
        call()


def test_an_index_is_never_built_over_another(home):
    lr.build_index("~/pictures", "~/index", method=FAST, limit=3)
    with pytest.raises(LavaRetrievalError, match="already holds an index"):
        lr.build_index("~/pictures", "~/index", method=FAST)
    assert len(lr.open_index("~/index")) == 3
