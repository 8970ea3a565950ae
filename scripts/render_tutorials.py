"""Execute the tutorial notebooks of ``examples/`` and write them, with their outputs, to
``docs/tutorials/`` (the site renders them with mkdocs-jupyter).

``python scripts/render_tutorials.py`` runs each notebook from the repository root with
``LAVA_RETRIEVAL_SMALL=1`` (the small data the test suite uses, minutes in all), as
``tests/examples/test_notebooks.py`` does; ``--check`` only compares the cells' sources with
``examples/`` (a test runs it) and exits 1 when a rendered tutorial is stale.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "examples"
RENDERED = ROOT / "docs" / "tutorials"


def _sources(path: Path) -> list[tuple[str, str]]:
    notebook = nbformat.read(path, as_version=4)
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def stale() -> list[str]:
    """The tutorials whose rendered copy is missing or has other cells than ``examples/``."""
    out = []
    for source in sorted(SOURCES.glob("*.ipynb")):
        rendered = RENDERED / source.name
        if not rendered.is_file() or _sources(rendered) != _sources(source):
            out.append(source.name)
    return out


def execute(source: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    for cell in notebook.cells:  # run times and kernel ids would change every rendering
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    return notebook


def main(argv: list[str]) -> int:
    if "--check" in argv:
        out = stale()
        for name in out:
            print(f"docs/tutorials/{name} is stale: run python scripts/render_tutorials.py")
        return 1 if out else 0
    os.environ["LAVA_RETRIEVAL_SMALL"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    RENDERED.mkdir(parents=True, exist_ok=True)
    for source in sorted(SOURCES.glob("*.ipynb")):
        if argv and source.stem not in argv:
            continue
        print(f"executing {source.name}", file=sys.stderr)
        nbformat.write(execute(source), RENDERED / source.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
