"""``guttrial build``'s faster SQLite event log (orchestration/headless.py): same events stored, nothing left
patched or open afterwards."""

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from orchestration import headless


@dg.asset
def _one() -> int:
    return 1


@dg.asset_check(asset=_one)
def _one_is_one() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _run(instance: dg.DagsterInstance, run_id: str, fast: bool) -> dg.ExecuteInProcessResult:
    job = dg.Definitions(assets=[_one], asset_checks=[_one_is_one]).resolve_implicit_global_asset_job_def()
    if not fast:
        return job.execute_in_process(instance=instance, run_id=run_id)
    with headless.fast_event_log(instance, run_id):
        return job.execute_in_process(instance=instance, run_id=run_id)


def test_fast_event_log_stores_the_same_events_and_restores_dagster(tmp_path: Path) -> None:
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.runs.sqlite import sqlite_run_storage

    original = (sqlite_event_log.create_engine, sqlite_run_storage.create_engine)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert _run(instance, "00000000-0000-4000-8000-000000000001", fast=False).success
        assert _run(instance, "00000000-0000-4000-8000-000000000002", fast=True).success
        kinds = [
            [r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(run_id).records]
            for run_id in ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")
        ]
        assert kinds[0] == kinds[1] and dg.DagsterEventType.ASSET_CHECK_EVALUATION in kinds[1]
        assert instance.get_run_by_id("00000000-0000-4000-8000-000000000002").is_success
        shard = Path(instance.event_log_storage.path_for_shard("00000000-0000-4000-8000-000000000002"))
    assert (sqlite_event_log.create_engine, sqlite_run_storage.create_engine) == original
    # No connection was left open: the write-ahead log was checkpointed away when the last one closed.
    assert shard.exists() and not shard.with_name(shard.name + "-wal").exists()
    with sqlite3.connect(shard) as con:
        assert con.execute("select count(*) from event_logs").fetchone()[0] == len(kinds[1])


def test_fast_event_log_leaves_other_instances_alone() -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert _run(instance, "00000000-0000-4000-8000-000000000003", fast=True).success


def test_fast_event_log_never_fails_a_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("dagster internals changed")

    monkeypatch.setattr(headless, "_sqlite_paths", boom)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert _run(instance, "00000000-0000-4000-8000-000000000004", fast=True).success
