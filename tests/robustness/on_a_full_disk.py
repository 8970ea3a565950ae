"""Run one command of the project with its output on an almost full file system, and report.

``python on_a_full_disk.py DISK FREE SETUP -- COMMAND...``: in a mount namespace of its own (the
test runs it under ``unshare``), mounts a small tmpfs at DISK, copies the directory SETUP into
it, fills it until FREE bytes are left, runs COMMAND and prints one JSON object: the command's
status and standard error, and every file on the disk (name -> size and digest) before and
after, so the caller can check that nothing changed. Not a test itself: the tmpfs exists only
while this runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SIZE = 16 << 20


def listing(disk: Path) -> dict[str, str]:
    files = {}
    for path in sorted(disk.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            files[str(path.relative_to(disk))] = f"{path.stat().st_size}:{digest}"
        elif path.is_dir():
            files[str(path.relative_to(disk)) + "/"] = "dir"
    return files


def main() -> None:
    disk, free, setup = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    command = sys.argv[sys.argv.index("--") + 1 :]
    disk.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(disk)], check=True)
    shutil.copytree(setup, disk, dirs_exist_ok=True)
    stats = os.statvfs(disk)
    filler = stats.f_bavail * stats.f_frsize - free
    with open(disk / ".filler", "wb") as f:
        f.write(b"\0" * max(filler, 0))
    before = listing(disk)
    run = subprocess.run(command, capture_output=True, text=True)
    stats = os.statvfs(disk)
    report = {
        "returncode": run.returncode,
        "stderr": run.stderr,
        "free_before": free,
        "free_after": stats.f_bavail * stats.f_frsize,
        "before": before,
        "after": listing(disk),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
