# `make demo` and `make test` set themselves up: the stamp below is rebuilt only when
# pyproject.toml or the set-up script changes, or .venv is missing.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.setup-done
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup demo test test-fast lint clean reproduce reproduce-quick

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
	$(PYTEST) -q -n 2 --dist worksteal

test-fast: $(STAMP)
	$(PYTEST) -q -n 2 --dist worksteal -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check lava_retrieval procs tests examples benchmarks scripts conftest.py
	$(VENV)/bin/ruff format --check lava_retrieval procs tests examples benchmarks scripts conftest.py
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
