"""The README's result tables are the committed result files, formatted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_the_result_files():
    spec = importlib.util.spec_from_file_location(
        "render_readme", ROOT / "scripts" / "render_readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.render(readme) == readme, "README is stale: run python scripts/render_readme.py"
