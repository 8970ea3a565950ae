"""The README and the documentation site say what the code and the committed results say: their
blocks are rendered from the results, the references from the code, the tutorials from
``examples/``; the README's example runs; no page types a measured number by hand."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return module


def test_every_block_is_rendered_from_the_results_and_the_code():
    render = _script("render_docs")
    assert render.stale() == [], "stale pages: run python scripts/render_docs.py"


def test_a_changed_number_makes_its_page_stale(tmp_path):
    render = _script("render_docs")
    page = (ROOT / "docs" / "concepts" / "methods.md").read_text()
    changed = page.replace("| `paper` | 16 | `delay` |", "| `paper` | 32 | `delay` |", 1)
    assert changed != page and render.render(changed, up="../") != changed


def test_the_tutorials_are_the_examples_rendered():
    assert _script("render_tutorials").stale() == []


def test_the_readme_fits_on_two_screens_and_links_into_the_site():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for target in re.findall(r"\]\(((?:docs|results)/[^)#]+)\)", readme):
        assert (ROOT / target).is_file(), target


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python example, as written (its index goes to a temporary directory)."""
    readme = (ROOT / "README.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "lr." in b)
    assert '"runs/readme-index"' in example
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[0].startswith("1 Ankle boot")
    assert lines[3] == "0" and lines[4] == "(2, 1024)"
    assert (tmp_path / "runs" / "readme-index" / "index.json").is_file()


# A measured quantity: a number with a unit of time, memory, rate, energy or a percentage.
MEASURED = re.compile(
    r"(?<![\w.^/-])\d[\d,.]*\s?(?:%|ms\b|s\b|seconds?\b|minutes?\b|hours?\b|GiB\b|MiB\b|GB\b|MB\b"
    r"|kB\b|images/s\b|queries/s\b|q/s\b|mJ\b|µJ\b|W\b|×(?!\s?\d)|x\b|points?\b)"
)
# Numbers in prose that are settings, limits or definitions, not measurements.
ALLOWED = re.compile(
    r"within 1e-3|30 s|120 s|allow it 20 s|64 MiB|8 MiB|of 256 MiB|capped at 256 MiB"
    r"|at most 1 MiB|above 1 GiB|2\^\d+|10 %|1 %|20 %"
)


def _prose(text: str) -> str:
    """``text`` without its rendered blocks, code, tables of settings and HTML comments."""
    text = re.sub(r"<!-- BEGIN ([\w-]+) -->.*?<!-- END \1 -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"^--8<--.*$", "", text, flags=re.M)


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_types_a_measured_number(page):
    found = []
    for line in _prose(page.read_text()).splitlines():
        for match in MEASURED.finditer(line):
            near = line[max(0, match.start() - 12) : match.end() + 12]
            if not ALLOWED.search(near):
                found.append(f"{match.group(0)!r} in: {line.strip()[:120]}")
    assert found == [], "render it from a result file (scripts/render_docs.py):\n" + "\n".join(
        found
    )


def test_the_check_of_measured_numbers_can_fail():
    assert MEASURED.search("the index loads in 0.19 s, 3,449 images/s")
    assert not MEASURED.search("the layer `conv1` of 32-64-10")


def test_no_doctest_reads_a_path_relative_to_the_repository():
    """Doctests run from any working directory (the wheel's are run from an empty one)."""
    relative = re.compile(
        r""">>>.*["'](?:results|checkpoints|runs|examples|tests|docs|lava_retrieval)/"""
    )
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in sorted(
            [*(ROOT / "lava_retrieval").rglob("*.py"), *(ROOT / "procs").rglob("*.py")]
        )
        for line in path.read_text().splitlines()
        if relative.search(line)
    ]
    assert found == []
