# The two commands of the README: `make run` and `make test`. Everything else is a helper of these.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_SYSTEM_CERTS := 1
STAMP := $(VENV)/.installed

.PHONY: run test venv lint lock bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/frontdesk serve --seed-if-empty

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Re-pin after changing dependencies in pyproject.toml (no download addresses are written).
lock: | $(BIN)/python
	$(BIN)/uv pip compile pyproject.toml --group dev -o requirements.lock --quiet --no-header

# Benchmarks (bench/): figures to bench/results.json; docs/performance.md records the last full run.
bench: $(STAMP)
	$(BIN)/python -m bench --postgres $(BENCH_ARGS)

# The same measurements at small sizes, in under two minutes: a quick look after any change.
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick --postgres $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
