# One command sets up and runs each job on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench schemas docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	@# Byte-compile the editable source: with PYTHONDONTWRITEBYTECODE set, every `platform`
	@# start would otherwise recompile it (measured: 60-95 ms of start-up).
	$(BIN)/python -m compileall -q platform plugins
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/platform validate specs/
	$(BIN)/platform plan specs/

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check platform tests plugins bench
	$(BIN)/ruff format --check platform tests plugins bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/validate_bench.py

schemas: $(STAMP)
	$(BIN)/platform schema --out schemas/

docs: $(STAMP)
	$(BIN)/python -m agent_platform.docs_gen docs/spec-reference.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
