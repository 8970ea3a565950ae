# `make demo` and `make test` set themselves up: the stamp below is rebuilt only when
# pyproject.toml or the set-up script changes, or .venv is missing.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.setup-done
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lava-retrieval demo

test: $(STAMP)
	$(PYTEST) -q

lint: $(STAMP)
	$(VENV)/bin/ruff check lava_retrieval procs tests examples benchmarks
	$(VENV)/bin/ruff format --check lava_retrieval procs tests examples benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
