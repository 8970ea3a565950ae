"""MkDocs hooks of the documentation site (``mkdocs.yml``): the figures under ``results/`` are
served at ``results/`` beside the Results pages, so that the pages and
``results/REPRODUCTION.md`` (included whole) show the committed plots without copies."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("*.png", "*.svg")


def on_files(files, config):
    for pattern in FIGURES:
        for path in sorted((ROOT / "results").glob(pattern)):
            files.append(
                File(
                    f"results/{path.name}",
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files
