"""Peak memory (resident set) of every command on the shipped data, against a 4 GB budget.

    .venv/bin/python benchmarks/memory.py [--out results/bench-memory.json] [--quick]

Each command runs as its own process on the full data (``--quick``: reduced sizes, for a look).
Two peaks: the main process's resident memory, from the kernel (``wait4``'s ``ru_maxrss``), and
the whole command's, its process and every process it started (the Lava runtime's, Ray's)
together: the sum of their proportional set sizes (PSS: a page shared by n processes counts
1/n in each, so that the sum is what the command holds), sampled every 0.2 s (a peak shorter
than that can be missed). The budget holds for the larger of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from checks import command

from lava_retrieval.common.atomic import write_text

BUDGET_MB = 4096


def commands(tmp: Path, quick: bool) -> dict[str, list[str]]:
    limit = ["--limit", "2000"] if quick else []
    corpus = ["--limit-corpus", "5000", "--limit-queries", "1000"] if quick else []
    return {
        "convert (paper)": ["convert", "--out", str(tmp / "paper.npz")],
        "convert (netx export, folded)": [
            "convert",
            "--reset",
            "zero",
            "--weight-bits",
            "8",
            "--pool-mode",
            "folded",
            "--out",
            str(tmp / "netx.npz"),
            "--export-netx",
            str(tmp / "netx.h5"),
        ],
        "calibrate": ["calibrate", "--percentiles", "99.9", "99.99", *limit],
        "embed (sim, 60,000 images)": [
            "embed",
            "--network",
            str(tmp / "paper.npz"),
            "--backend",
            "sim",
            "--split",
            "full_train",
            "--out",
            str(tmp / "e.npy"),
            *limit,
        ],
        "embed (Lava graph, 1,000 images)": [
            "embed",
            "--network",
            str(tmp / "paper.npz"),
            "--backend",
            "lava",
            "--limit",
            "1000",
            "--out",
            str(tmp / "l.npy"),
        ],
        "evaluate (T = 16)": [
            "evaluate",
            "--time-steps",
            "16",
            "--out-dir",
            str(tmp / "ev"),
            *corpus,
        ],
        "index build (60,000 images)": [
            "index",
            "build",
            "fashion-mnist:full_train",
            "--out",
            str(tmp / "index"),
            *limit,
        ],
        "search (Lava graph)": [
            "search",
            str(tmp / "index"),
            "fashion-mnist:test:0",
            "--backend",
            "lava",
        ],
        "demo": ["demo", "--out", str(tmp / "demo.png")],
    }


def _tree_peak(pid: int, done: threading.Event, peak: list[int]) -> None:
    """Until ``done``: the largest sum of the PSS of ``pid`` and its descendants, into
    ``peak[0]`` (bytes)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not done.is_set():
        total = 0
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                total += process.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        peak[0] = max(peak[0], total)
        done.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench-memory.json")
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        for name, argv in commands(Path(tmp), args.quick).items():
            start = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "lava_retrieval.cli", *argv, "--json"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
            done, tree = threading.Event(), [0]
            watcher = threading.Thread(target=_tree_peak, args=(process.pid, done, tree))
            watcher.start()
            _, status, usage = os.wait4(process.pid, 0)
            done.set()
            watcher.join()
            err = process.stderr.read().decode()[-500:]
            rows.append(
                {
                    "command": name,
                    "argv": argv,
                    "status": os.waitstatus_to_exitcode(status),
                    "peak_mb": round(usage.ru_maxrss / 1024, 1),
                    "peak_with_children_mb": round(tree[0] / 2**20, 1),
                    "seconds": round(time.perf_counter() - start, 1),
                    **({"stderr": err} if os.waitstatus_to_exitcode(status) else {}),
                }
            )
            print(rows[-1], flush=True)
    report = {
        "command": command(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "quick": args.quick,
        "budget_mb": BUDGET_MB,
        "commands": rows,
        "within_budget": all(
            max(r["peak_mb"], r["peak_with_children_mb"]) <= BUDGET_MB and r["status"] == 0
            for r in rows
        ),
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
