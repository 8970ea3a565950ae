"""A fixed subset of every committed accuracy table, recomputed: the first 250 test queries
against the first 2,000 training images, the ANN row and the table's SNN rows at its smallest
and largest T up to 16, run by the command the table records (an ``evaluate`` command; a table
written by ``reproduce`` runs as the ``evaluate`` command of its protocol).

``results/subset.json`` holds the numbers; ``tests/lava_retrieval/evaluation/
test_committed_results.py`` recomputes them, so that a change of the code that moves a
committed number fails a test even though the full tables take an hour to recompute::

    .venv/bin/python scripts/subset.py            # recompute and compare (exit 1 on a change)
    .venv/bin/python scripts/subset.py --write    # after a change of the numbers on purpose
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from lava_retrieval.common.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
SUBSET = RESULTS / "subset.json"
COMMAND = ".venv/bin/python scripts/subset.py --write"
CORPUS, QUERIES = 2000, 250
#: One query of 250: the ANN's float products may order a tie otherwise on another CPU.
TOLERANCE = 0.4
METRICS = ("classification", "top1", "top3", "mAP")
#: Flags of a recorded command that say where its files go, not what it computes.
OUTPUT_FLAGS = {"--out-dir": 1, "--stem": 1, "--json": 0, "--no-progress": 0}


def tables() -> dict[str, dict]:
    """Every committed accuracy table (a JSON file with a protocol and rows of retrieval
    metrics, one per model)."""
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        rows = data.get("rows") if isinstance(data, dict) else None
        if "protocol" in data and rows and all("model" in r and "top1" in r for r in rows):
            found[path.name] = data
    return found


def _steps(table: dict) -> list[int]:
    steps = sorted(
        int(row["model"][4:-1]) for row in table["rows"] if row["model"].startswith("SNN(")
    )
    small = [t for t in steps if t <= 16]
    return sorted({small[0], small[-1]}) if small else []


def subset_command(table: dict) -> list[str]:
    """The ``evaluate`` arguments that compute the table's subset."""
    recorded = list(table["command"])
    if recorded[1] == "evaluate":
        argv, skip = [], 0
        for arg in recorded[1:]:
            if skip:
                skip -= 1
            elif arg in OUTPUT_FLAGS:
                skip = OUTPUT_FLAGS[arg]
            else:
                argv.append(arg)
        # Drop the recorded --time-steps and its values.
        if "--time-steps" in argv:
            i = argv.index("--time-steps")
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                j += 1
            argv = argv[:i] + argv[j:]
    else:  # written by reproduce: the evaluate command of its protocol
        protocol = table["protocol"]
        method = protocol.get("method", "paper")
        argv = ["evaluate", "--method", method]
        argv += ["--timing", protocol["timing"], "--readout", protocol["readout"]]
        if method == "paper":  # reproduce converts it as the committed file was
            argv += ["--network", "results/snn-32-64-10.npz"]
    steps = [str(t) for t in _steps(table)]
    return [*argv, "--time-steps", *steps, "--limit-corpus", str(CORPUS)] + [
        "--limit-queries",
        str(QUERIES),
    ]


def recompute(argv: list[str]) -> list[dict]:
    """The rows of ``argv`` (run in this process, from the repository root)."""
    from lava_retrieval.cli import main

    out, here = io.StringIO(), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out):
        os.chdir(ROOT)  # the recorded paths are the repository's
        try:
            code = main([*argv, "--json", "--no-progress", "--out-dir", tmp])
        finally:
            os.chdir(here)
    if code != 0:
        raise RuntimeError(f"lava-retrieval {' '.join(argv)} exited with {code}")
    rows = json.loads(out.getvalue())["rows"]
    return [{"model": r["model"], **{m: r[m] for m in METRICS}} for r in rows]


def differences(name: str, want: dict) -> list[str]:
    """What differs between the committed subset of table ``name`` and a recomputation."""
    got = recompute(want["command"])
    if [r["model"] for r in got] != [r["model"] for r in want["rows"]]:
        return [f"{name}: rows {[r['model'] for r in got]}, committed {want['rows']}"]
    return [
        f"{name} {mine['model']} {m}: {mine[m]} (committed {theirs[m]})"
        for mine, theirs in zip(got, want["rows"], strict=True)
        for m in METRICS
        if abs(mine[m] - theirs[m]) > TOLERANCE
    ]


def write() -> None:
    subset = {
        "command": COMMAND,
        "corpus": CORPUS,
        "queries": QUERIES,
        "tolerance": TOLERANCE,
        "tables": {},
    }
    for name, table in tables().items():
        argv = subset_command(table)
        subset["tables"][name] = {"command": argv, "rows": recompute(argv)}
        print(f"{name}: {' '.join(argv)}", file=sys.stderr)
    write_text(SUBSET, json.dumps(subset, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write results/subset.json")
    args = parser.parse_args(argv)
    if args.write:
        write()
        return 0
    committed = json.loads(SUBSET.read_text())["tables"]
    changed = [d for name, want in committed.items() for d in differences(name, want)]
    print("\n".join(changed) or f"{len(committed)} tables: the committed subset")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
