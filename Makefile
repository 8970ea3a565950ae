# `make demo` and `make test` set themselves up: the stamp below is rebuilt only when
# pyproject.toml or the set-up script changes, or .venv is missing.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.setup-done
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup demo test test-fast lint docs docs-serve docs-screenshot wheel-check clean reproduce reproduce-quick

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lava-retrieval demo

# Every table and figure of the paper into results/ and results/REPRODUCTION.md (about an
# hour and a quarter on 2 cores; steps already up to date are skipped). reproduce-quick: fewer
# images, minutes.
reproduce: $(STAMP)
	$(VENV)/bin/lava-retrieval reproduce

reproduce-quick: $(STAMP)
	$(VENV)/bin/lava-retrieval reproduce --quick

# Everything, in parallel (pytest-xdist, one process per core; a worker that runs out of tests
# takes some of the other's, so that the run does not end on one core). test-fast: every module,
# without the slow tier (the Lava, Loihi, netx and sinabs conformance rows, notebooks, signals,
# training, reproduce, the committed results' recomputation, the browser).
test: $(STAMP)
	$(PYTEST) -q -n 2 --dist worksteal --durations=15

test-fast: $(STAMP)
	$(PYTEST) -q -n 2 --dist worksteal -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check lava_retrieval procs tests examples benchmarks scripts conftest.py
	$(VENV)/bin/ruff format --check lava_retrieval procs tests examples benchmarks scripts conftest.py
	$(VENV)/bin/mypy

# The documentation site (MkDocs + Material, mkdocs.yml): `make docs` builds it into site/ with
# --strict (a broken link, anchor or reference fails); `make docs-serve` serves it on
# http://127.0.0.1:8000 and rebuilds on edits. The result blocks and the CLI and HTTP references
# are rendered by `python scripts/render_docs.py`, the tutorials by scripts/render_tutorials.py.
docs: $(STAMP)
	$(VENV)/bin/python scripts/render_docs.py --check
	$(VENV)/bin/python scripts/render_tutorials.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# The screenshot of the web page in the site, taken by the browser test.
docs-screenshot: $(STAMP)
	LAVA_RETRIEVAL_SCREENSHOT=docs/assets/web-page.png $(PYTEST) -q \
		tests/lava_retrieval/apps/test_web.py -k browser

# The built wheel, installed into a fresh environment, run from an empty directory: demo,
# index build, search, serve (scripts/check_wheel.sh).
wheel-check: $(STAMP)
	bash scripts/check_wheel.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site build
