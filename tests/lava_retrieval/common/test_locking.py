"""The writer's lock: another process waits (bounded) or fails with one clear error; a killed
holder never leaves the lock held; the lock file goes with its holder."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from lava_retrieval.common.locking import LockedError, exclusive, lock_path

HOLD = """
import sys, time
from lava_retrieval.common.locking import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(target, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_another_process_makes_a_writer_fail_or_wait(tmp_path):
    target = tmp_path / "index"
    holder = _holder(target, 60)
    try:
        with pytest.raises(LockedError, match="another process is writing this"):
            with exclusive(target, wait=0, what="writing this"):
                pass
        said = []
        start = time.monotonic()
        with pytest.raises(LockedError, match=r"waited 0.3 s"):
            with exclusive(target, wait=0.3, log=said.append):
                pass
        assert time.monotonic() - start >= 0.3 and len(said) == 1 and "waiting" in said[0]
    finally:
        holder.kill()
        holder.wait()
    # Killed while holding it: the lock is free at once (the kernel released it).
    with exclusive(target, wait=0):
        assert lock_path(target).exists()
    assert not lock_path(target).exists()  # the holder removes its file


def test_a_waiting_writer_goes_once_the_holder_is_done(tmp_path):
    target = tmp_path / "index"
    holder = _holder(target, 0.5)
    start = time.monotonic()
    with exclusive(target, wait=30):
        waited = time.monotonic() - start
    holder.wait()
    assert 0.2 < waited < 30


def test_reentrant_in_a_thread_exclusive_between_threads(tmp_path):
    target = tmp_path / "index"
    inside, errors = [], []

    def other():
        try:
            with exclusive(target, wait=0):
                pass
        except LockedError as exc:
            errors.append(exc)

    with exclusive(target):
        with exclusive(target):  # the same thread again: no deadlock
            inside.append(True)
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert inside == [True] and len(errors) == 1


def test_one_run_at_a_time_trains_into_a_directory_or_reproduces_into_one(tmp_path, capsys):
    from lava_retrieval.cli import main

    for argv, message in (
        (["train", "--arch", "4-8-10", "--epochs", "1", "--train-limit", "64"], "training into"),
        (["reproduce", "--only", "fig3", "--out-dir"], "reproducing into"),
    ):
        out = tmp_path / argv[0]
        holder = _holder(out, 60)
        try:
            option = [] if argv[-1] == "--out-dir" else ["--out"]
            assert main([*argv, *option, str(out)]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
        finally:
            holder.kill()
            holder.wait()
        assert not (out / "checkpoint.json").exists() and not (out / "fig3.json").exists()
