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


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python example, as written (its index goes to a temporary directory)."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "ImageIndex" in b)
    assert '"runs/readme-index"' in example
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[0].startswith("1 Ankle boot")
    assert lines[4] == lines[3]  # through the resident Lava graph: the simulator's answer
    assert (tmp_path / "runs" / "readme-index" / "index.json").is_file()
