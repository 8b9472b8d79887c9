"""The dbt project on its own: unit tests pass on an empty build, docs generate offline, no deprecated YAML,
every mart column typed and described, and the cleaning macros follow the raw exports contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from _warehouse import DBT_PROJECT, dbt_command

from analysis import contract
from analysis.ingest.raw_schema import ensure_raw_schema

pytestmark = pytest.mark.slow

UNIT_TESTS = {
    "partial_dates_are_parsed_with_imputation_flags",
    "exact_duplicates_collapse_to_the_first_copy",
    "lab_units_are_converted_to_one_standard_unit_per_test",
    "teae_window_first_dose_to_last_dose_plus_30_days",
    "weight_band_is_inclusive_at_60_kg_and_uses_the_pre_dose_weight",
    "albi_and_child_pugh_from_baseline_labs",
    "last_known_alive_is_the_latest_complete_date_before_death_and_cutoff",
    "last_known_alive_respects_the_data_cutoff",
    "study_day_has_no_day_zero",
    "data_cutoff_drops_later_records_and_leaves_running_ones_ongoing",
    "nact_counts_a_year_only_start_after_the_randomisation_year",
}


@pytest.fixture(scope="module")
def empty_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`dbt build --empty` on a warehouse holding only the (empty) raw schema: every relation exists, so unit
    tests can run (stack.md P11)."""
    tmp = tmp_path_factory.mktemp("dbt_empty")
    warehouse = tmp / "empty.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ensure_raw_schema(con)
    target = tmp / "target"
    proc = dbt_command(
        # models and seeds only: data tests on empty relations prove nothing and cost a query each
        ["build", "--empty", "--resource-type", "model", "--resource-type", "seed", "--show-all-deprecations"],
        warehouse,
        target,
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    # dbt 1.11 YAML (data_tests:, arguments:, ...): no deprecation warning at all (stack.md P10).
    assert "deprecat" not in proc.stdout.lower(), proc.stdout[-5000:]
    return warehouse, target


def test_unit_tests_pass(empty_build: tuple[Path, Path]) -> None:
    warehouse, target = empty_build
    proc = dbt_command(["test", "--select", "test_type:unit"], warehouse, target)
    assert proc.returncode == 0, proc.stdout[-5000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    ran = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in results}
    assert set(ran) >= UNIT_TESTS, UNIT_TESTS - set(ran)
    assert set(ran.values()) == {"pass"}, ran


def test_docs_generate_offline_with_every_mart_column_typed_and_described(empty_build: tuple[Path, Path]) -> None:
    warehouse, target = empty_build
    # --no-compile: the parsed manifest is enough for the site; the catalog is read from the warehouse (offline)
    proc = dbt_command(["docs", "generate", "--no-compile"], warehouse, target)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert (target / "index.html").exists() and (target / "catalog.json").exists()
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    marts = {name: node for name, node in models.items() if node["schema"] == "marts"}
    assert {"adsl", "tumor_measurements", "investigator_responses", "exposure", "adverse_events", "labs",
            "qol_items", "samples", "taxa_counts", "taxonomy", "metabolite_features",
            "metabolite_intensities"} <= set(marts)  # fmt: skip
    for name, node in marts.items():
        assert node["config"]["contract"]["enforced"], name
        assert node["config"]["materialized"] == "table", name
        assert "one row per" in node["description"].lower(), name
        built = catalog["nodes"][node["unique_id"]]["columns"]
        assert set(node["columns"]) == {c.lower() for c in built}, name
        for column in node["columns"].values():
            assert column["data_type"] and column["description"].strip(), (name, column["name"])
    for name, node in models.items():
        assert node["schema"] in ("staging", "intermediate", "marts"), name
        assert node["description"].strip(), name
        if node["config"]["materialized"] != "ephemeral":
            assert "one row per" in node["description"].lower(), name
    assert {n["schema"] for n in manifest["nodes"].values() if n["resource_type"] == "seed"} == {"staging"}
    # Blinded (default) build: no model even references the restricted randomisation list.
    restricted = "source.guttrial.restricted.randomisation_list"
    assert restricted in manifest["sources"]
    assert not [n for n in manifest["nodes"].values() if restricted in n.get("depends_on", {}).get("nodes", [])]
    assert "restricted" not in models["int_subjects__arm"]["raw_code"].split("{% else %}")[1]


def test_empty_build_creates_every_layer_without_deprecations(empty_build: tuple[Path, Path]) -> None:
    warehouse, _ = empty_build
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select distinct table_schema from information_schema.tables").fetchall()}
    assert {"raw", "staging", "intermediate", "marts"} <= schemas
    assert not [s for s in schemas if s.startswith("main_")]


def test_every_raw_table_is_a_source_and_has_a_staging_model() -> None:
    sources = (DBT_PROJECT / "models" / "staging" / "_raw__sources.yml").read_text()
    from analysis.ingest.raw_schema import OMICS_TABLES

    staging = {p.stem for p in (DBT_PROJECT / "models" / "staging").rglob("stg_*.sql")}
    for form in contract.CRF_FORMS.values():
        assert f"- name: {form.raw_table}\n" in sources
        assert f"stg_crf__{form.code}" in staging
    for table in OMICS_TABLES:
        assert f"- name: {table}\n" in sources
        family, entity = table.split("_", 1)
        assert f"stg_{family}__{entity}" in staging


def test_missing_markers_macro_is_the_contract_list() -> None:
    macro = (DBT_PROJECT / "macros" / "cleaning.sql").read_text()
    listed = re.search(r"macro missing_markers\(\).*?return\(\[(.*?)\]\)", macro, re.S)
    assert listed is not None
    assert tuple(re.findall(r"'([^']*)'", listed.group(1))) == contract.MISSING_MARKERS


def test_no_packages_and_no_identifier_in_compiled_staging() -> None:
    assert not (DBT_PROJECT / "packages.yml").exists() and not (DBT_PROJECT / "dependencies.yml").exists()
    # No model reads a direct identifier: the loader never stores them (the age at consent replaces the birth date).
    for path in (DBT_PROJECT / "models").rglob("*.sql"):
        text = re.sub(r"--[^\n]*", "", path.read_text().lower())  # SQL comments may name them
        for identifier in ("mrn", "patname", "initials", "brthdtc"):
            assert not re.search(rf"\b{identifier}\b", text), (path.name, identifier)
    assert not list((DBT_PROJECT / "models").rglob("stg_crf__dm_birth_dates.sql"))


def test_mart_not_null_constraints_are_enforced_and_not_duplicated_by_tests(empty_build: tuple[Path, Path]) -> None:
    """Marts check not-null through their contract (the column is NOT NULL in DuckDB: a NULL fails the model's
    build), not through a separate data test per column; staging models are tables (read by many tests)."""
    warehouse, target = empty_build
    manifest = json.loads((target / "manifest.json").read_text())
    nodes = manifest["nodes"].values()
    marts = {n["name"]: n for n in nodes if n["resource_type"] == "model" and n["schema"] == "marts"}
    declared = {
        (name, column["name"])
        for name, node in marts.items()
        for column in node["columns"].values()
        if any(c["type"] == "not_null" for c in column.get("constraints", []))
    }
    assert ("adsl", "subject_id") in declared and ("taxa_counts", "read_count") in declared
    with duckdb.connect(str(warehouse), read_only=True) as con:
        not_nullable = set(
            con.execute(
                "select table_name, column_name from duckdb_columns() where schema_name = 'marts' and not is_nullable"
            ).fetchall()
        )
        staging = dict(
            con.execute(
                "select table_name, 'table' from duckdb_tables() where schema_name = 'staging' "
                "union all select view_name, 'view' from duckdb_views() where schema_name = 'staging'"
            ).fetchall()
        )
    assert declared <= not_nullable, declared - not_nullable
    duplicated = [
        (n["attached_node"], n["column_name"])
        for n in nodes
        if n["resource_type"] == "test"
        and n.get("test_metadata", {}).get("name") == "not_null"
        and not n["config"].get("where")
        and (n["attached_node"].rsplit(".", 1)[-1], n["column_name"]) in declared
    ]
    assert duplicated == []
    assert staging and set(staging.values()) == {"table"}, staging
