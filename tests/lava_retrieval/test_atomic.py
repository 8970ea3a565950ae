"""Atomic writes: whole or not at all, no temporary files left, ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from lava_retrieval.atomic import atomic_path, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "table.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["table.json"]


def test_new_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "deep" / "out.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "x"


def test_suffix_for_writers_that_insist_on_one(tmp_path):
    import numpy as np

    with atomic_path(tmp_path / "e.npy", suffix=".npy") as tmp:
        assert tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    assert np.load(tmp_path / "e.npy").tolist() == [0, 1, 2]
