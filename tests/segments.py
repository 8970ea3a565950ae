"""Shared-memory segments a test leaves behind, told apart from those of tests running at the
same time: a segment counts as left behind when it is new since the test began and no live
process maps it (a running Lava graph maps its own; a stopped one has unlinked them)."""

from __future__ import annotations

import os

SHM = "/dev/shm"


def segments() -> set[str]:
    """The shared-memory segments of Python's ``multiprocessing`` now in /dev/shm."""
    if not os.path.isdir(SHM):
        return set()
    return {name for name in os.listdir(SHM) if name.startswith("psm_")}


def mapped() -> set[str]:
    """The segments of /dev/shm that some live process maps."""
    names = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as f:
                text = f.read()
        except OSError:  # gone, or not ours to read
            continue
        for line in text.splitlines():
            at = line.find(f"{SHM}/")
            if at >= 0:
                names.add(line[at + len(SHM) + 1 :].split()[0])
    return names


def left_behind(before: set[str]) -> set[str]:
    """Segments new since ``before`` that no live process maps."""
    new = segments() - before
    return new - mapped() if new else new
