"""The Dagster code location loads offline and runs end to end headless through `guttrial build`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from analysis.ingest.raw_schema import FAMILY_TABLES
from orchestration import cli
from orchestration import resources as res


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # `guttrial build` exports its settings as GUTTRIAL_* variables; monkeypatch restores them afterwards.
    for name in (res.ENV_LANDING, res.ENV_WAREHOUSE, res.ENV_CUTOFF, res.ENV_UNBLINDED, res.ENV_RANDOMISATION_LIST):
        monkeypatch.setenv(name, "")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def test_definitions_load_with_every_raw_table_as_an_asset() -> None:
    from orchestration.definitions import REFRESH_JOB, defs

    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    for tables in FAMILY_TABLES.values():
        for table in tables:
            assert f"raw/{table}" in keys
    assert defs.resolve_job_def(REFRESH_JOB) is not None
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert specs["raw/crf_dm"].group_name == "raw"


def test_build_command_runs_the_job_and_summarises(tmp_path: Path, clean_env: None, capsys) -> None:
    landing = tmp_path / "landing"
    (landing / "crf").mkdir(parents=True)
    (landing / "crf" / "rand.csv").write_text("STUDYID,SITEID,SUBJID,RANDNO,RANDDTC\nHCC,01,001,R001,2024-03-01\n")
    (landing / "crf" / "bs.csv").write_text("STUDYID;SITEID\n")
    warehouse = tmp_path / "out" / "w.duckdb"
    code = cli.main(["build", "--landing", str(landing), "--warehouse", str(warehouse)])
    out = capsys.readouterr().out
    # A rejected file fails its family's check; a randomisation record of an unknown study and patient fails the
    # blocking quality suite of raw, which stops the run before dbt (exit code 1), with both in the summary.
    assert code == 1
    assert "1 loaded, 1 rejected" in out
    assert "crf/bs.csv, row 1: the header is split by semicolons" in out
    assert "check failed: raw/crf_dm:files_accepted" in out
    assert "check failed: raw/crf_rand:quality_suite" in out
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select SUBJID from raw.crf_rand").fetchall() == [("001",)]


def test_unblinded_build_requires_an_explicit_list(tmp_path: Path, clean_env: None) -> None:
    (tmp_path / "landing").mkdir()
    assert cli.main(["build", "--landing", str(tmp_path / "landing"), "--unblinded"]) == 2
    assert cli.main(["build", "--landing", str(tmp_path / "landing"), "--randomisation-list", "x.csv"]) == 2


def test_settings_resolve_from_environment_at_run_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = res.TrialSettings()
    monkeypatch.setenv(res.ENV_WAREHOUSE, str(tmp_path / "x.duckdb"))
    monkeypatch.setenv(res.ENV_CUTOFF, "2025-01-31")
    monkeypatch.setenv(res.ENV_UNBLINDED, "")
    assert settings.warehouse == tmp_path / "x.duckdb"
    assert str(settings.cutoff) == "2025-01-31"
    assert not settings.is_unblinded
    assert res.TrialSettings(warehouse_path=str(tmp_path / "y.duckdb")).warehouse == tmp_path / "y.duckdb"
    assert isinstance(settings, dg.ConfigurableResource)


# ------------------------------------------------------------------------------------------------ the Dagster UI

#: Layers the issue asks for as groups (quality and reports join when their assets are registered).
LAYER_GROUPS = {"raw", "staging", "intermediate", "marts", "endpoints", "microbiome", "metabolomics", "restricted"}

#: Run in a fresh interpreter: refuse every network connection, record every subprocess, import the code location.
_OFFLINE_LOAD = r"""
import json, socket, subprocess, sys, time

commands = []
def _no_network(*args, **kwargs):
    raise OSError("network access while loading the definitions")
socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
socket.create_connection = _no_network
_popen_init = subprocess.Popen.__init__
def _recording_init(self, args, *rest, **kwargs):
    commands.append(args if isinstance(args, str) else [str(a) for a in args])
    return _popen_init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = _recording_init

started = time.perf_counter()
from orchestration.definitions import defs
keys = defs.resolve_asset_graph().get_all_asset_keys()
print(json.dumps({"seconds": time.perf_counter() - started, "assets": len(keys), "commands": commands}))
"""


def test_definitions_load_offline_without_running_dbt(clean_env: None) -> None:
    import json
    import subprocess
    import sys

    from orchestration.assets.dbt import ensure_manifest

    # The manifest is a build product (`make dbt-parse`); with an up-to-date one, loading must run nothing.
    ensure_manifest()
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_LOAD],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    # (The interpreter may ask `file` about itself via platform.architecture(); only dbt would be a problem.)
    dbt_runs = [
        c
        for c in loaded["commands"]
        if any("dbt" in Path(part).name for part in (c.split() if isinstance(c, str) else c))
    ]
    assert dbt_runs == []
    assert loaded["assets"] > 100
    print(f"definitions loaded in {loaded['seconds']:.1f} s ({loaded['assets']} assets)")


def test_every_asset_has_a_declared_group_description_owners_and_kinds() -> None:
    from orchestration.definitions import defs
    from orchestration.groups import GROUPS, LAYER_METADATA_KEY

    specs = list(defs.resolve_all_asset_specs())
    problems = []
    for spec in specs:
        name = spec.key.to_user_string()
        if spec.group_name not in GROUPS:
            problems.append(f"{name}: group {spec.group_name!r} is not declared in orchestration/groups.py")
        if not (spec.description or "").strip():
            problems.append(f"{name}: no description")
        if not spec.owners:
            problems.append(f"{name}: no owners")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
        if not str(spec.metadata.get(LAYER_METADATA_KEY, "")).startswith(f"{spec.group_name}: "):
            problems.append(f"{name}: no '{LAYER_METADATA_KEY}' metadata")
    assert problems == []
    groups = {spec.group_name for spec in specs}
    assert groups >= LAYER_GROUPS
    by_key = {spec.key.to_user_string(): spec for spec in specs}
    assert by_key["raw/current_files"].group_name == "raw"
    # Declared, not materialised: its upstream would otherwise be every raw table (see orchestration/assets/raw.py).
    assert not defs.resolve_asset_graph().get(dg.AssetKey(["raw", "current_files"])).is_materializable
    assert by_key["marts/adsl"].owners == ["team:data-engineering"]
    assert {"dbt", "duckdb"} <= by_key["marts/adsl"].kinds
    assert by_key["analysis/survival_summary"].owners == ["team:biostatistics"]
    for group in GROUPS.values():
        assert group.description and group.owners and all(o.startswith("team:") for o in group.owners)


def test_lineage_runs_from_raw_through_marts_to_endpoints() -> None:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()

    def upstream(key: str) -> set[str]:
        seen: set[dg.AssetKey] = set()
        todo = [dg.AssetKey.from_user_string(key)]
        while todo:
            for parent in graph.get(todo.pop()).parent_keys:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return {k.to_user_string() for k in seen}

    pfs = upstream("analysis/adtte")
    assert {"marts/adsl", "marts/tumor_measurements", "raw/crf_tr", "raw/crf_rand", "raw/current_files"} <= pfs
    # Lineage stays specific: the CRF endpoints do not come from the omics exports.
    assert not {"raw/seq_counts", "raw/mtb_intensities"} & pfs
    assert any(k.startswith("staging/") for k in pfs) and any(k.startswith("intermediate/") for k in pfs)
    assert {"raw/seq_counts", "marts/taxa_counts"} <= upstream("analysis/alpha_diversity")
    assert {"raw/mtb_intensities", "marts/metabolite_intensities"} <= upstream("analysis/differential_metabolites")


def test_refresh_job_shows_cutoff_and_blinding_in_the_launchpad() -> None:
    from orchestration.definitions import REFRESH_JOB, REFRESH_JOB_CONFIG, defs

    job = defs.resolve_job_def(REFRESH_JOB)
    assert job.run_config == REFRESH_JOB_CONFIG
    settings = job.run_config["resources"]["settings"]["config"]
    assert set(settings) == {"cutoff_date", "unblinded", "randomisation_list", "landing_dir", "warehouse_path"}
    assert set(settings.values()) == {""}  # empty = the GUTTRIAL_* variable, so `guttrial build` still steers runs
    # The launchpad shows each field's description next to it.
    schema = job.run_config_schema.config_type.fields["resources"].config_type.fields["settings"]
    fields = schema.config_type.fields["config"].config_type.fields
    assert "YYYY-MM-DD" in fields["cutoff_date"].description
    assert "randomisation_list" in fields["unblinded"].description
    assert "unblinded" in fields["unblinded"].description and "warehouse_path" in fields["unblinded"].description
    # The job covers every asset.
    assert set(job.asset_layer.selected_asset_keys) == set(defs.resolve_asset_graph().materializable_asset_keys)
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    schedule = defs.resolve_schedule_def("nightly_refresh")
    assert sensor.job_name == schedule.job_name == REFRESH_JOB
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_settings_refuse_a_malformed_cutoff_or_blinding_switch() -> None:
    with pytest.raises(ValueError, match="cutoff_date must be YYYY-MM-DD"):
        res.TrialSettings(cutoff_date="31/01/2025")
    with pytest.raises(ValueError, match="unblinded must be 'true' or 'false'"):
        res.TrialSettings(unblinded="ture")
    assert res.TrialSettings(cutoff_date=" 2025-01-31 ").cutoff is not None
    assert res.TrialSettings(unblinded="false").is_unblinded is False


def test_pools_keep_one_duckdb_writer() -> None:
    """Every step that opens the warehouse file is in pool ``duckdb`` (limit 1 in dagster.yaml)."""
    import yaml

    from orchestration.definitions import defs

    job = defs.resolve_job_def("refresh_all")
    pools = {node.name: node.definition.pool for node in job.graph.node_dict.values()}
    assert pools and all(pool == "duckdb" for pool in pools.values()), pools
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1


# ------------------------------------------------------------------------------------------------ whole graph


@pytest.mark.slow
def test_whole_graph_materialises_in_process_on_a_small_trial(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every asset of the definitions materialises in one in-process run of ``refresh_all`` on a small trial.

    The run is the test session's reference build (``tests/_reliability.py``: ``guttrial build`` on a 20-patient
    trial, which executes the job in process with ``execute_in_process`` and records it in its own
    ``DAGSTER_HOME``), read back from that instance's event log: the whole graph is built once per test session,
    not once per module."""
    from _reliability import N_PATIENTS, reference_build

    from orchestration.definitions import REFRESH_JOB, defs

    reference = reference_build(tmp_path_factory)
    warehouse = reference.warehouse
    with dg.DagsterInstance.from_config(str(reference.dagster_home)) as instance:
        runs = [r for r in instance.get_runs() if r.job_name == REFRESH_JOB]
        run = min(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event is not None]

    def of_type(kind: str) -> list:
        return [e for e in events if e.event_type_value == kind]

    materializations = of_type("ASSET_MATERIALIZATION")
    materialized = {e.asset_key for e in materializations}
    assert materialized == set(defs.resolve_asset_graph().materializable_asset_keys)
    failed_errors = [
        f"{c.asset_key.to_user_string()}:{c.check_name}"
        for c in (e.event_specific_data for e in of_type("ASSET_CHECK_EVALUATION"))
        if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed_errors == []

    meta = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata for e in materializations}
    # Each loader records what raw.current_files holds for its family.
    observed = [
        e.event_specific_data.asset_observation.metadata
        for e in of_type("ASSET_OBSERVATION")
        if e.asset_key == dg.AssetKey(["raw", "current_files"])
    ]
    n_landing_files = sum(1 for f in reference.landing.rglob("*") if f.is_file())
    assert sorted(o["family"].value for o in observed) == ["crf", "metabolomics", "sequencing"]
    assert sum(o["current files"].value for o in observed) == n_landing_files
    assert sum(o["loaded by this load"].value for o in observed) == n_landing_files
    assert meta["raw/crf_dm"]["dagster/row_count"].value == N_PATIENTS
    assert "MRN" not in str(meta["raw/crf_dm"])  # raw rows (direct identifiers) are never previewed
    # Every table Python writes reports its row count (dbt models carry dagster-dbt's metadata; reports and the
    # published copy are files).
    python_tables = ("raw/", "restricted/", "analysis/")
    assert [k for k, v in meta.items() if k.startswith(python_tables) and "dagster/row_count" not in v] == []
    assert meta["marts/adsl"]["unique_id"].value == "model.guttrial.adsl"
    survival = meta["analysis/survival_summary"]
    assert "PFS [POOLED] median months (95% CI)" in survival
    assert survival["blinded"].value is True
    assert meta["analysis/survival_comparisons"]["arm comparison"].value.startswith("not computed: blinded run")
    assert not any(" HR " in key for key in meta["analysis/survival_comparisons"])
    # Analysis tables carry a markdown preview of their first rows, with the columns as a table schema.
    assert meta["analysis/adtte"]["preview"].value.startswith("| ")
    assert "subject_id" in meta["analysis/adtte"]["preview"].value
    assert "paramcd" in [c.name.lower() for c in meta["analysis/adtte"]["dagster/column_schema"].schema.columns]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from marts.adsl").fetchone()[0] == N_PATIENTS
        assert con.execute("select count(*) from analysis.adtte").fetchone()[0] > 0
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}
    assert "restricted" not in schemas
