# Set-up and everyday commands. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_PATIENTS ?= 120
WAREHOUSE ?= data/warehouse.duckdb
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install demo build test test-fast lint ui bench clean

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## demo: generate the demo trial and build the whole warehouse from it
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/guttrial demo --out $(DEMO_DIR) --patients $(DEMO_PATIENTS) --overwrite
	$(BIN)/guttrial build --landing $(DEMO_DIR)/landing --warehouse $(WAREHOUSE)

## test: the whole test suite
test: install
	$(BIN)/pytest -q -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check analysis orchestration expectations tests

## ui: the Dagster UI on the demo warehouse (http://127.0.0.1:3000)
ui: install $(DAGSTER_HOME)/dagster.yaml
	GUTTRIAL_LANDING=$(CURDIR)/$(DEMO_DIR)/landing GUTTRIAL_WAREHOUSE=$(CURDIR)/$(WAREHOUSE) \
		$(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000

## bench: load throughput and memory on the default and a large trial
bench: install
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(DEMO_DIR) data .dagster_home
