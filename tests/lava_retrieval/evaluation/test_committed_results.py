"""The committed accuracy tables, tied to the code: a fixed subset of each (250 queries, 2,000
corpus images, the ANN and the smallest and largest T up to 16) recomputed by the command the
table records and compared with the numbers committed for that subset
(``scripts/subset.py --write`` wrote them)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("subset", ROOT / "scripts" / "subset.py")
subset = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(subset)
COMMITTED = json.loads(subset.SUBSET.read_text())

pytestmark = pytest.mark.slow


def test_every_accuracy_table_has_its_subset_committed():
    """A new table, or a table whose recorded command changed, needs its subset written."""
    tables = subset.tables()
    assert sorted(COMMITTED["tables"]) == sorted(tables), subset.COMMAND
    for name, table in tables.items():
        assert COMMITTED["tables"][name]["command"] == subset.subset_command(table), name
    assert (COMMITTED["corpus"], COMMITTED["queries"]) == (subset.CORPUS, subset.QUERIES)


@pytest.mark.parametrize("name", sorted(COMMITTED["tables"]))
def test_the_subset_of_each_table_recomputes_to_its_committed_numbers(name):
    assert subset.differences(name, COMMITTED["tables"][name]) == []


RESULTS = ROOT / "results"
_spec = importlib.util.spec_from_file_location(
    "results_index", ROOT / "scripts" / "results_index.py"
)
results_index = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results_index)


def test_every_result_names_the_command_that_wrote_it():
    producers = {p.name: results_index.producer(p) for p in sorted(RESULTS.glob("*.json"))}
    assert [name for name, command in producers.items() if command is None] == []


def test_the_index_of_the_results_is_up_to_date():
    assert results_index.main(["--check"]) == 0, "run python scripts/results_index.py"


@pytest.mark.parametrize("name", [n for n in results_index.CHEAP if n.startswith("convert-")])
def test_a_cheap_result_is_what_its_recorded_command_writes(name, tmp_path, capsys):
    """The recorded command, run again with its ``results/`` paths in a scratch directory,
    writes the same result (and the same network, array for array)."""
    import numpy as np

    from lava_retrieval.cli import main

    committed = json.loads((RESULTS / name).read_text())
    argv = [
        str(tmp_path / Path(arg).name) if arg.startswith("results/") else arg
        for arg in committed["command"][1:]
    ]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out.replace(str(tmp_path), "results"))
    for key in ("command", "checkpoint"):  # argv with the scratch paths; an absolute path
        got.pop(key), committed.pop(key)
    assert got == committed
    if "network" in got:
        with np.load(RESULTS / Path(got["network"]).name) as want:
            with np.load(tmp_path / Path(got["network"]).name) as mine:
                for key in want.files:
                    if key != "header":
                        np.testing.assert_array_equal(mine[key], want[key], err_msg=key)
