# Set-up and everyday commands. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_PATIENTS ?= 120
# Rarefied alpha diversity repeats the subsampling this many times. Real runs default to mothur's 1000; the
# demo uses 100 so `make demo` stays under a minute on 2 cores (means agree to well within their SD).
DEMO_ITERATIONS ?= 100
WAREHOUSE ?= data/warehouse.duckdb
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install dbt-parse demo demo-unblinded build test test-fast lint ui docs bench clean

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The dbt manifest Dagster loads (offline; same warehouse path and vars as a blinded build, so dbt's partial
# parsing is reused by the build that follows).
DBT := GUTTRIAL_WAREHOUSE=$(CURDIR)/$(WAREHOUSE) $(CURDIR)/$(BIN)/dbt
DBT_DIRS := --project-dir $(CURDIR)/dbt_project --profiles-dir $(CURDIR)/dbt_project
dbt-parse: install
	$(DBT) parse --quiet $(DBT_DIRS) --vars '{"unblinded": false, "cutoff": ""}'

## demo: generate the demo trial and build the whole warehouse from it
demo: install dbt-parse $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/guttrial demo --out $(DEMO_DIR) --patients $(DEMO_PATIENTS) --overwrite
	GUTTRIAL_MICROBIOME_ITERATIONS=$(DEMO_ITERATIONS) \
		$(BIN)/guttrial build --landing $(DEMO_DIR)/landing --warehouse $(WAREHOUSE)

## demo-unblinded: the SYNTHETIC demo trial built UNBLINDED into its own file (never for real data)
UNBLINDED_WAREHOUSE ?= data/warehouse_unblinded.duckdb
demo-unblinded: install dbt-parse $(DAGSTER_HOME)/dagster.yaml
	@echo "*** UNBLINDED build of the synthetic demo trial -> $(UNBLINDED_WAREHOUSE) (adsl.arm_code = CAPSULE/PLACEBO) ***"
	test -f $(DEMO_DIR)/unblinding/randomisation_list.csv || $(BIN)/guttrial demo --out $(DEMO_DIR) --patients $(DEMO_PATIENTS)
	GUTTRIAL_MICROBIOME_ITERATIONS=$(DEMO_ITERATIONS) \
		$(BIN)/guttrial build --landing $(DEMO_DIR)/landing --warehouse $(UNBLINDED_WAREHOUSE) \
		--unblinded --randomisation-list $(DEMO_DIR)/unblinding/randomisation_list.csv

## test: the whole test suite
test: install dbt-parse
	$(BIN)/pytest -q -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check analysis orchestration expectations tests

## ui: the Dagster UI on the demo warehouse (http://127.0.0.1:3000)
ui: install dbt-parse $(DAGSTER_HOME)/dagster.yaml
	GUTTRIAL_LANDING=$(CURDIR)/$(DEMO_DIR)/landing GUTTRIAL_WAREHOUSE=$(CURDIR)/$(WAREHOUSE) \
		$(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000

## docs: dbt docs (models, columns, lineage) for the warehouse, offline (http://127.0.0.1:8080)
docs: install
	$(DBT) docs generate $(DBT_DIRS)
	$(DBT) docs serve $(DBT_DIRS) --host 127.0.0.1 --port 8080 --no-browser

## bench: load throughput and memory on the default and a large trial
bench: install
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(DEMO_DIR) data .dagster_home
