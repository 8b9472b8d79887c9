"""Dagster wiring of the dbt project (assets downstream of the raw keys, tests as asset checks) and the
unblinding asset (refuses blinded warehouses; blinded runs never read the list)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from _warehouse import DemoWarehouse, dbt_command, shared_demo_warehouse, subject_id

from analysis.ingest.raw_schema import FAMILY_TABLES
from orchestration.assets import dbt as dbt_assets
from orchestration.assets.unblinding import (
    RANDOMISATION_LIST_KEY,
    UnblindingRefused,
    check_unblinded_warehouse,
    randomisation_list,
    read_randomisation_list,
)
from orchestration.resources import TrialSettings

MARTS = (
    "adsl", "tumor_measurements", "investigator_responses", "exposure", "adverse_events", "labs", "qol_items",
    "samples", "taxa_counts", "taxonomy", "metabolite_features", "metabolite_intensities", "subsequent_therapy",
)  # fmt: skip


@pytest.fixture(scope="module")
def graph():
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def test_dbt_models_are_assets_downstream_of_the_raw_assets(graph) -> None:
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for tables in FAMILY_TABLES.values():
        for table in tables:
            assert f"raw/{table}" in keys
    for form in ("dm", "rand", "bl", "vs", "ex", "tr", "rs", "ae", "lb", "qs", "cm", "ds", "bs"):
        key = dg.AssetKey(["staging", f"stg_crf__{form}"])
        assert dg.AssetKey(["raw", f"crf_{form}"]) in graph.get(key).parent_keys
        assert graph.get(key).group_name == "staging"
    for mart in MARTS:
        assert graph.get(dg.AssetKey(["marts", mart])).group_name == "marts"
    assert graph.get(dg.AssetKey(["intermediate", "int_subjects"])).group_name == "intermediate"
    # The raw loader and dbt models share keys: staging reads exactly what the raw multi-assets write.
    assert dg.AssetKey(["raw", "seq_counts"]) in graph.get(dg.AssetKey(["staging", "stg_seq__counts"])).parent_keys
    # The birth-date model is gone (the loader derives the age; issue 9): int_subjects reads raw.crf_dm only
    # through staging.
    assert "staging/stg_crf__dm_birth_dates" not in keys
    assert graph.get(dg.AssetKey(["intermediate", "int_subjects"])).parent_keys == {
        dg.AssetKey(["staging", "stg_crf__dm"]),
        dg.AssetKey(["staging", "stg_crf__rand"]),
    }
    # The arm model waits for the (unblinded-only) randomisation list.
    assert RANDOMISATION_LIST_KEY in graph.get(dg.AssetKey(["intermediate", "int_subjects__arm"])).parent_keys
    assert {k.path[0] for k in dbt_assets.dbt_model_assets().keys} == {"staging", "intermediate", "marts"}


def test_dbt_tests_are_asset_checks_and_the_job_runs_everything(graph) -> None:
    from orchestration.definitions import REFRESH_JOB, defs

    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("marts/adsl", "unique_adsl_subject_id") in checks
    assert ("marts/adsl", "no_direct_identifiers_adsl_") in checks or any(
        a == "marts/adsl" and n.startswith("no_direct_identifiers") for a, n in checks
    )
    assert sum(1 for a, _ in checks if a.startswith("marts/")) > 50
    job = defs.resolve_job_def(REFRESH_JOB)
    assert "dbt_models" in {node.name for node in job.nodes_in_topological_order}


def test_dbt_assets_run_in_the_duckdb_pool_and_exclude_unit_tests() -> None:
    assets_def = dbt_assets.dbt_model_assets()
    assert assets_def.op.pool == "duckdb"
    args = dbt_assets.dbt_build_args(TrialSettings(unblinded="true", cutoff_date="2025-06-30"))
    assert args[:3] == ["build", "--exclude-resource-type", "unit_test"]
    assert json.loads(args[args.index("--vars") + 1]) == {"unblinded": True, "cutoff": "2025-06-30"}
    blinded = dbt_assets.dbt_build_args(TrialSettings(unblinded="", cutoff_date=""))
    assert json.loads(blinded[-1]) == {"unblinded": False, "cutoff": ""}


def test_old_per_run_target_folders_are_pruned(tmp_path: Path) -> None:
    import os
    import time

    for i in range(8):
        folder = tmp_path / f"dbt_models-{i:03d}"
        folder.mkdir()
        age = 7200 if i < 6 else 0  # the two newest were touched just now
        os.utime(folder, (time.time() - age - i, time.time() - age - i))
    (tmp_path / "manifest.json").write_text("{}")
    removed = dbt_assets.prune_run_targets(tmp_path, keep=3)
    left = sorted(p.name for p in tmp_path.glob("dbt_models-*"))
    assert len(removed) == 5 and left == ["dbt_models-000", "dbt_models-006", "dbt_models-007"]
    assert (tmp_path / "manifest.json").exists()


def test_unblinding_needs_an_unblinded_warehouse_file(tmp_path: Path) -> None:
    with pytest.raises(UnblindingRefused, match="name contains 'unblinded'"):
        check_unblinded_warehouse(tmp_path / "warehouse.duckdb")
    check_unblinded_warehouse(tmp_path / "warehouse_UNBLINDED.duckdb")


def test_randomisation_list_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "list.csv"
    good.write_text("RANDNO,ARM\n10001, placebo\n10002,CAPSULE\n")
    assert read_randomisation_list(good).values.tolist() == [["10001", "PLACEBO"], ["10002", "CAPSULE"]]
    bad = tmp_path / "bad.csv"
    bad.write_text("RANDNO,ARM\n10001,DRUG X\n")
    with pytest.raises(UnblindingRefused, match="unknown arm"):
        read_randomisation_list(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("RANDNO,ARM\n10001,PLACEBO\n10001,CAPSULE\n")
    with pytest.raises(UnblindingRefused, match="unique"):
        read_randomisation_list(dup)


def test_blinded_run_never_reads_the_list_and_removes_a_stale_copy(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema restricted")
        con.execute("create table restricted.randomisation_list as select '1' as randno, 'PLACEBO' as arm")
    settings = TrialSettings(warehouse_path=str(warehouse), unblinded="", randomisation_list=str(tmp_path / "nope.csv"))
    result = dg.materialize([randomisation_list], resources={"settings": settings})
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert (
            con.execute("select count(*) from information_schema.schemata where schema_name = 'restricted'").fetchone()[
                0
            ]
            == 0
        )


def test_unblinded_run_refuses_a_blinded_warehouse(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("RANDNO,ARM\n10001,PLACEBO\n")
    settings = TrialSettings(
        warehouse_path=str(tmp_path / "warehouse.duckdb"), unblinded="true", randomisation_list=str(listing)
    )
    result = dg.materialize([randomisation_list], resources={"settings": settings}, raise_on_error=False)
    assert not result.success
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.slow
def test_unblinded_build_carries_the_randomised_arm(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    demo: DemoWarehouse = shared_demo_warehouse(tmp_path_factory)
    warehouse = tmp_path / "warehouse_unblinded.duckdb"
    shutil.copyfile(demo.warehouse, warehouse)
    settings = TrialSettings(
        warehouse_path=str(warehouse), unblinded="true", randomisation_list=str(demo.randomisation_list)
    )
    assert dg.materialize([randomisation_list], resources={"settings": settings}).success
    proc = dbt_command(
        ["build", "--select", "int_subjects__arm+", "--exclude-resource-type", "unit_test",
         "--vars", json.dumps(dbt_assets.dbt_vars(settings))],
        warehouse,
        tmp_path / "target",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    truth = pd.read_csv(demo.truth / "patients.csv", dtype=str)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        arms = dict(con.execute("select subject_id, arm_code from marts.adsl").fetchall())
    assert arms == {subject_id(s): a for s, a in zip(truth["SUBJID"], truth["arm"], strict=True)}
    assert set(arms.values()) == {"CAPSULE", "PLACEBO"}


def test_dbt_resource_starts_dbt_without_a_version_probe_or_an_in_process_adapter(monkeypatch) -> None:
    import importlib.metadata
    import subprocess

    resource = dbt_assets.dbt_resource()
    assert isinstance(resource, dbt_assets.GuttrialDbtCliResource)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess {args}")

    # The version of this environment's dbt comes from the installed package, not from `dbt --version`.
    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    assert str(resource._cli_version) == importlib.metadata.version("dbt-core")
    assert resource._cli_version.major < 2  # dbt Core, not Fusion: dagster-dbt parses its events accordingly
    # No adapter (macro parsing) in this process: only fetch_row_counts()/fetch_column_metadata() would need one.
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_dbt_events_stream_through_one_by_one_with_the_echo_kept_off_the_terminal(capsys) -> None:
    import sys
    from collections import deque

    handled: list[str] = []

    def dagster_dbt_stream():
        for i in range(3):
            print(f"dbt log line {i}")  # what dagster-dbt echoes for every dbt event
            # The consumer has handled every earlier event before the next one is produced: no buffering.
            assert handled == [f"event {j}" for j in range(i)]
            yield f"event {i}"

    tail: deque[str] = deque(maxlen=2)
    for event in dbt_assets.quiet_events(dagster_dbt_stream(), tail):
        print(f"handled {event}", file=sys.stdout)  # the consumer's own output is not swallowed
        handled.append(event)
    out = capsys.readouterr().out
    assert "dbt log line" not in out
    assert out.splitlines() == ["handled event 0", "handled event 1", "handled event 2"]
    assert list(tail) == ["dbt log line 1", "dbt log line 2"]
