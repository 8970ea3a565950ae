"""The committed accuracy tables, tied to the code: a fixed subset of each (500 queries, 5,000
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
    assert (COMMITTED["corpus"], COMMITTED["queries"]) == (5000, 500)


@pytest.mark.parametrize("name", sorted(COMMITTED["tables"]))
def test_the_subset_of_each_table_recomputes_to_its_committed_numbers(name):
    assert subset.differences(name, COMMITTED["tables"][name]) == []
