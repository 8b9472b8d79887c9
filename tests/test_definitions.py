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
    assert code == 0
    assert "1 loaded, 1 rejected" in out
    assert "crf/bs.csv, row 1: the header is split by semicolons" in out
    assert "failed checks: 1" in out
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
