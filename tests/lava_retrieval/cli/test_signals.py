"""Ctrl-C and SIGTERM stop a command within seconds with `interrupted` and status 130, also in a
Lava run; nothing of its session survives (SIGKILL included) and no shared memory leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NETWORK = Path(__file__).parents[1] / "golden" / "small-net.npz"


def _session(sid: int) -> list[str]:
    lines = subprocess.run(
        ["ps", "-eo", "pid,sid,stat"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    return [line for line in lines if int(line.split()[1]) == sid and "Z" not in line.split()[2]]


def _start(tmp_path: Path, backend: str) -> subprocess.Popen:
    out = tmp_path / "embeddings.npy"
    command = [
        sys.executable,
        "-m",
        "lava_retrieval.cli",
        "embed",
        "--network",
        str(NETWORK),
        "--backend",
        backend,
        "--time-steps",
        "64",
        "--batch-size",
        "16",
        "--split",
        "full_train",
        "--out",
        str(out),
        "--json",
    ]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


def _wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(
    ("signum", "whole_group", "backend", "when"),
    [
        (signal.SIGINT, True, "lava", "running"),  # Ctrl-C in a terminal
        (signal.SIGTERM, True, "lava", "running"),
        (signal.SIGTERM, False, "lava", "running"),
        (signal.SIGINT, True, "lava", "start-up"),
        (signal.SIGTERM, False, "sim", "running"),
        (signal.SIGKILL, False, "lava", "running"),
    ],
)
def test_a_signalled_command_leaves_nothing_behind(tmp_path, signum, whole_group, backend, when):
    shm = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    process = _start(tmp_path, backend)
    try:
        if when == "start-up":
            time.sleep(1.0)
        elif backend == "lava":  # the runtime's processes are up
            assert _wait_for(lambda: len(_session(process.pid)) >= 6, 60), "Lava did not start"
            time.sleep(1.0)
        else:
            time.sleep(4.0)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        (os.killpg if whole_group else os.kill)(process.pid, signum)
        _, err = process.communicate(timeout=20)
        if signum == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:
            assert process.returncode == 130, err.decode()[-2000:]
            assert err.decode().rstrip().endswith("interrupted")
            assert "Traceback" not in err.decode()
        assert _wait_for(lambda: not _session(process.pid), 10), _session(process.pid)
        if shm:
            assert _wait_for(lambda: not (set(os.listdir("/dev/shm")) - shm), 10)
        assert not any(tmp_path.iterdir())  # no output, no temporary file
    finally:
        for line in _session(process.pid):
            os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_ends_as_interrupted(tmp_path, signum):
    """The web server (waitress, which swallows the interrupt itself) ends with `interrupted`
    and status 130, not 0, and leaves nothing of its session."""
    from lava_retrieval.search.image_index import ImageIndex, read_source
    from lava_retrieval.snn.config import SimConfig
    from lava_retrieval.snn.network import SpikingNetwork

    index = ImageIndex(SpikingNetwork.load(ROOT / "results" / "snn-32-64-10.npz"), SimConfig(8))
    index.add(read_source("fashion-mnist:test", limit=20, progress=False)).save(tmp_path / "idx")
    command = [
        sys.executable,
        "-m",
        "lava_retrieval.cli",
        "serve",
        "--index",
        str(tmp_path / "idx"),
        "--port",
        "0",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        assert b"serving 20 images" in process.stdout.readline()
        os.killpg(process.pid, signum)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130 and err.decode().strip().endswith("interrupted")
    assert _wait_for(lambda: not _session(process.pid), 10)
