"""Atomic writes: whole or not at all, no temporary files left, ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from lava_retrieval.common.atomic import atomic_path, write_text


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


def test_output_paths_that_cannot_be_files_are_refused_before_writing(tmp_path):
    from lava_retrieval.common.atomic import OutputPathError, check_output

    (tmp_path / "a-file").write_text("x")
    for bad, message in ((tmp_path, "is a directory"), (tmp_path / "a-file" / "o", "not a dir")):
        with pytest.raises(OutputPathError, match=message), atomic_path(bad) as tmp:
            tmp.write_text("never")
        with pytest.raises(OutputPathError, match=message):
            check_output(bad)
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_full_disks_and_long_names_are_refused_before_writing(tmp_path, monkeypatch):
    from lava_retrieval.common import atomic
    from lava_retrieval.common.atomic import OutputPathError, check_output

    with pytest.raises(OutputPathError, match="the file name is too long"):
        check_output(tmp_path / ("x" * 250))
    monkeypatch.setattr(atomic, "MIN_FREE_BYTES", 1 << 62)  # no file system has this free
    with pytest.raises(OutputPathError, match="no space left"):
        write_text(tmp_path / "out.txt", "never")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["calibrate", "embed", "convert"])
def test_commands_refuse_a_directory_as_output_before_working(command, tmp_path, capsys):
    from lava_retrieval.cli import main

    argv = {
        "calibrate": ["calibrate", "--limit", "5", "--out", str(tmp_path)],
        "embed": ["embed", "--network", "missing.npz", "--out", str(tmp_path)],
        "convert": ["convert", "--out", str(tmp_path)],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {tmp_path}: is a directory, not a file\n"
    assert os.listdir(tmp_path) == []
