"""Every output option of every command is checked before any work: a path that exists as
anything but a regular file (a character device, a FIFO, a directory, a symbolic link to
one) is refused with one ``error:`` line and left as it is; two outputs naming one file, an
empty name, and an option that needs another are refused too. The nodes live in the test's
own temporary directory, never at a system path."""

from __future__ import annotations

import os
import stat

import pytest

from lava_retrieval.cli import main
from lava_retrieval.common.atomic import OutputPathError, atomic_path

#: (command line with OUT where the output goes, whether OUT is a directory)
OUTPUTS = [
    (["convert", "--out", "OUT"], False),
    (["convert", "--out", "ok.npz", "--export-netx", "OUT"], False),
    (["convert", "--out", "ok.npz", "--export-nir", "OUT"], False),
    (["convert", "--out", "ok.npz", "--loihi-report", "OUT"], False),
    (["calibrate", "--out", "OUT"], False),
    (["embed", "--network", "n.npz", "--out", "OUT"], False),
    (["demo", "--out", "OUT"], False),
    (["search", "IDX", "fashion-mnist:test:0", "--png", "OUT"], False),
    (["evaluate", "--out-dir", "OUT"], True),
    (["index", "build", "fashion-mnist:test", "--out", "OUT"], True),
    (["train", "--out", "OUT"], True),
    (["reproduce", "--out-dir", "OUT"], True),
]


def make(kind: str, path) -> None:
    if kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "file":
        path.write_bytes(b"kept")
    elif kind == "link-to-device":
        make("device", path.with_name("node"))
        path.symlink_to(path.with_name("node"))


def kind_of(path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


#: Each output option against each kind of path it must refuse (a directory option takes a
#: directory, a file option a regular file).
CASES = [
    pytest.param(argv, kind, id=f"{' '.join(argv)}-{kind}")
    for argv, directory in OUTPUTS
    for kind in ("device", "fifo", "link-to-device", "file" if directory else "directory")
]


@pytest.mark.parametrize(("argv", "kind"), CASES)
def test_an_output_that_is_no_regular_file_is_refused_and_kept(
    argv, kind, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "target"
    make(kind, out)
    before = kind_of(out)
    assert main([str(out) if a == "OUT" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "not a" in err and "target" in err
    assert kind_of(out) == before
    if kind == "file":
        assert out.read_bytes() == b"kept"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert", "--out", "a.npz", "--export-nir", "a.npz"], "name the same file"),
        (["convert", "--out", "a.npz", "--export-netx", "./a.npz"], "name the same file"),
        (["convert", "--out", "a.h5", "--loihi-report", "sub/../a.h5"], "name the same file"),
        (["embed", "--network", "n", "--out", "e.json"], "name the same file"),
        (["convert", "--out", "a.npz", "--export-nir", ""], "an empty name"),
        (["convert", "--out", ""], "an empty name"),
        (["search", "IDX", "--png", ""], "an empty name"),
        (["embed", "--network", "n", "--out", "/"], "is a directory, not a file"),
        (["embed", "--network", "n", "--out", "."], "is a directory, not a file"),
        (["index", "build", "x", "--out", "n" * 300], "is too long"),
        (["convert", "--out", "a.npz", "--nir-timing", "pipelined"], "without --export-nir"),
    ],
)
def test_outputs_that_clash_are_empty_or_alone_are_refused(
    argv, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "a.npz").exists()


def test_a_node_made_while_writing_is_not_replaced(tmp_path):
    """The check is made again just before the rename."""
    out = tmp_path / "late"
    with pytest.raises(OutputPathError, match="is a FIFO"):
        with atomic_path(out) as tmp:
            tmp.write_text("x")
            os.mkfifo(out)
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["late"]  # the temporary file is gone
