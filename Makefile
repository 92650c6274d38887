# galleryflow: `make demo` runs the pipeline on the samples; `make test` runs the tests.
# Each target does its own setup (a virtualenv in .venv, local Kafka and PostgreSQL under .data/).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration test-chaos lint bench services-up services-down clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/galleryflow demo

services-up: install
	$(BIN)/galleryflow services up

services-down: install
	$(BIN)/galleryflow services down

test: install
	$(BIN)/galleryflow services up
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

test-integration: install
	$(BIN)/galleryflow services up
	$(BIN)/pytest -q tests/integration -m "not chaos"

test-chaos: install
	$(BIN)/pytest -q tests/chaos -x

bench: install
	$(BIN)/galleryflow services up
	$(BIN)/python -m tests.bench.bench_pipeline --orders $${ORDERS:-20000}

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy pipeline connectors schemas

clean:
	rm -rf $(VENV) build *.egg-info
