"""The tutorial notebooks of ``examples/`` run end to end (with small data, so that none can
rot) and are what ``scripts/make_notebooks.py`` writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # not in the fast tier (make test-fast)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_there_are_three_tutorials_and_they_are_up_to_date():
    assert [p.name for p in NOTEBOOKS] == [
        "01_process_graph.ipynb",
        "02_convert_your_ann.ipynb",
        "03_search_your_images.ipynb",
    ]
    check = [sys.executable, str(ROOT / "scripts" / "make_notebooks.py"), "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.setenv("LAVA_RETRIEVAL_SMALL", "1")
    # The kernel imports the package and procs/ from the repository root.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()  # a failing cell (a check that does not hold) raises CellExecutionError
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "every tutorial shows at least one plot"
