"""``results/COMMANDS.md``: every committed result file, the command that wrote it, and how the
test suite checks it against the code.

    .venv/bin/python scripts/results_index.py            # write it
    .venv/bin/python scripts/results_index.py --check    # exit 1 if it is stale

A test (``tests/lava_retrieval/evaluation/test_committed_results.py``) fails when it is stale.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from lava_retrieval.common.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
OUT = RESULTS / "COMMANDS.md"
#: Results a test produces again in seconds by their recorded commands and compares
#: (``tests/lava_retrieval/evaluation/test_committed_results.py``; the ANN's accuracies,
#: ``evaluate-ann-32-64-10.json``, by ``tests/lava_retrieval/ann/test_training.py``).
CHEAP = (
    "convert-32-64-10.json",
    "convert-32-64-10-initial-half.json",
    "convert-32-64-10-qcfs16.json",
    "convert-32-64-10-qcfs8-analog.json",
    "convert-32-64-10-qcfs4-analog.json",
    "convert-32-64-10-qcfs16-analog.json",
    "evaluate-ann-32-64-10.json",
)


def _subset():
    spec = importlib.util.spec_from_file_location("subset", ROOT / "scripts" / "subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def producer(path: Path) -> str | None:
    """The command that wrote a result file: the one it records, or the benchmark whose
    default output it is."""
    data = json.loads(path.read_text())
    command = data.get("command") if isinstance(data, dict) else None
    if command:
        return " ".join(command) if isinstance(command, list) else command
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if f'default="results/{path.name}"' in script.read_text():
            return f"python benchmarks/{script.name}"
    return None


def check(path: Path, subset: dict) -> str:
    """How the tests hold ``path`` to the code."""
    data = json.loads(path.read_text())
    if path.name in subset:
        return "a fixed subset recomputed (`results/subset.json`)"
    if path.name in CHEAP:
        return "produced again by its command and compared"
    if path.name == "subset.json":
        return "recomputed by the tests"
    if not isinstance(data, dict):
        return "its command recorded"
    if data.get("verified"):
        count = len(data["verified"])
        return f"its answers checked before it was written ({count} comparison{'s' * (count > 1)})"
    if any("recall" in row for row in data.get("rows", [])):
        return "every row's recall@10 measured against the exact index"
    if "budget_mb" in data:
        return "every command's exit status and peaks, against the budget"
    if "key" in data:
        return "`reproduce` re-runs it when the code or its inputs change"
    return "its command recorded"


def render() -> str:
    subset = json.loads(_subset().SUBSET.read_text())["tables"]
    lines = [
        "# Where each result comes from",
        "",
        "Every result file of this directory, the command that wrote it and how the tests hold "
        "it to the code. Written by `python scripts/results_index.py` (a test fails when it is "
        "stale).",
        "",
        "| file | command | checked |",
        "| --- | --- | --- |",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        command = producer(path)
        shown = f"`{command}`" if command else "**none recorded**"
        lines.append(f"| `{path.name}` | {shown} | {check(path, subset)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/results_index.py", file=sys.stderr)
            return 1
        return 0
    write_text(OUT, text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
