"""A full disk anywhere ends a command in one `error:` line and status 2, with every file as it
was before and no temporary file left: an index that was being extended still holds its old
version, a new index or output never appears. The file system is a small tmpfs mounted in a
mount namespace of the test's own (``unshare``), filled to the byte count each case names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NETWORK = ROOT / "tests" / "lava_retrieval" / "golden" / "small-net.npz"
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]

#: More than the 1 MiB an output path needs to pass the check before the work, less than the
#: 5,000 embeddings of the small network (2.2 MB) take: the write itself fails.
MID_WRITE = 3 << 19
#: Less than the check before the work asks for: refused before anything is embedded.
BEFORE = 1 << 18


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.slow,  # not in the fast tier (make test-fast)
    pytest.mark.skipif(
        not _namespaces_work(), reason="needs `unshare --user --mount` to mount a small tmpfs"
    ),
]


@pytest.fixture(scope="module")
def setup(small_index, tmp_path_factory) -> Path:
    """What is on the disk before each command: an index of 20 images."""
    directory = tmp_path_factory.mktemp("disk")
    shutil.copytree(small_index, directory / "idx")
    return directory


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "lava_retrieval.cli", *argv]


CASES = {
    "index add": (
        MID_WRITE,
        ["index", "add", "{disk}/idx", "fashion-mnist:test", "--limit", "5000"],
    ),
    "index build": (
        MID_WRITE,
        ["index", "build", "fashion-mnist:test", "--limit", "5000", "--out", "{disk}/new"],
    ),
    "index build, no room at all": (
        BEFORE,
        ["index", "build", "fashion-mnist:test", "--limit", "50", "--out", "{disk}/new"],
    ),
    "embed": (
        MID_WRITE,
        ["embed", "--split", "test", "--limit", "5000", "--out", "{disk}/e.npy"],
    ),
    "search --png": (
        BEFORE,
        ["search", "{disk}/idx", "fashion-mnist:test:0", "--png", "{disk}/answer.png"],
    ),
    "convert": (BEFORE, ["convert", "--out", "{disk}/net.npz"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_full_disk_changes_nothing(tmp_path, setup, case):
    free, argv = CASES[case]
    disk = tmp_path / "disk"
    argv = [a.format(disk=disk) for a in argv]
    if argv[0] in ("index",) and argv[1] == "build" or argv[0] == "embed":
        argv += ["--network", str(NETWORK), "--time-steps", "8"]
    driver = [sys.executable, str(HERE / "on_a_full_disk.py"), str(disk), str(free), str(setup)]
    run = subprocess.run(
        [*UNSHARE, *driver, "--", *_cli(*argv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    err = report["stderr"]
    assert report["returncode"] == 2, err[-3000:]
    lines = [line for line in err.strip().splitlines() if "%|" not in line]  # less progress bars
    assert len(lines) == 1 and lines[0].startswith("error:"), err[-3000:]
    assert "No space left" in err or "no space left" in err
    assert report["after"] == report["before"]  # the old index whole, nothing new, no temporary
