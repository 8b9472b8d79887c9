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

.PHONY: FORCE install dbt-parse demo demo-unblinded build test test-fast lint ui ui-screenshots docs data-docs bench clean fuzz

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
# parsing is reused by the build that follows). Re-parsed only when a file of the dbt project, the installed
# packages or the warehouse path changed since (a dbt start-up alone costs ~4 s of CPU).
DBT := GUTTRIAL_WAREHOUSE=$(abspath $(WAREHOUSE)) $(CURDIR)/$(BIN)/dbt
DBT_DIRS := --project-dir $(CURDIR)/dbt_project --profiles-dir $(CURDIR)/dbt_project
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_PROJECT_FILES := $(shell find dbt_project/dbt_project.yml dbt_project/profiles.yml dbt_project/models \
	dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null)
# dbt's partial parse is tied to the warehouse path (profile); the stamp changes only when the path does.
DBT_PARSED_FOR := dbt_project/target/.parsed_for_warehouse
$(DBT_PARSED_FOR): FORCE
	@mkdir -p $(@D)
	@echo '$(abspath $(WAREHOUSE))' | cmp -s - $@ || echo '$(abspath $(WAREHOUSE))' > $@
$(DBT_MANIFEST): $(BIN)/.installed $(DBT_PROJECT_FILES) $(DBT_PARSED_FOR)
	$(DBT) parse --quiet $(DBT_DIRS) --vars '{"unblinded": false, "cutoff": ""}'
	touch $@
dbt-parse: $(DBT_MANIFEST)
FORCE:

## demo: generate the demo trial and build the whole warehouse from it
demo: install $(DAGSTER_HOME)/dagster.yaml
	@# The dbt parse (only when the project changed) and the demo generation each keep one core busy: side by side.
	$(MAKE) --no-print-directory dbt-parse & parse=$$!; \
		$(BIN)/guttrial demo --out $(DEMO_DIR) --patients $(DEMO_PATIENTS) --overwrite; status=$$?; \
		wait $$parse && exit $$status
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

## ui-screenshots: open the UI headless (Chromium) on the demo warehouse, check it, save PNGs to data/ui_screenshots
ui-screenshots: install dbt-parse $(DAGSTER_HOME)/dagster.yaml
	test -f $(WAREHOUSE) || $(MAKE) demo
	$(BIN)/python scripts/ui_screenshots.py --landing $(CURDIR)/$(DEMO_DIR)/landing --warehouse $(CURDIR)/$(WAREHOUSE) \
		--dagster-home $(DAGSTER_HOME) --out $(CURDIR)/data/ui_screenshots

## data-docs: print where the Data Docs (great-expectations quality reports) of the warehouse are
data-docs: install
	@$(BIN)/python -c "from orchestration.resources import TrialSettings as S; p = S(warehouse_path='$(WAREHOUSE)').data_docs_index; \
		print(f'Data Docs (quality reports, open in a browser): {p}' if p.exists() else f'no Data Docs yet (run make demo): {p}')"

## docs: print the Data Docs path, then serve dbt docs (models, columns, lineage), offline (http://127.0.0.1:8080)
docs: install data-docs
	$(DBT) docs generate $(DBT_DIRS)
	$(DBT) docs serve $(DBT_DIRS) --host 127.0.0.1 --port 8080 --no-browser

## bench: load throughput and memory on the default and a large trial
bench: install
	$(BIN)/python tests/bench/run.py

## fuzz: hostile-input fuzz campaign over every reader for FUZZ_MINUTES (default 10); exit 1 on any finding
FUZZ_MINUTES ?= 10
fuzz: install
	$(BIN)/python tests/fuzz/fuzz_readers.py --minutes $(FUZZ_MINUTES)

clean:
	rm -rf $(DEMO_DIR) data .dagster_home
