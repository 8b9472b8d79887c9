"""The landing-folder sensor: new or changed exports (by path and SHA-256) start one refresh, never twice."""

import datetime as dt
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from orchestration import sensors
from orchestration.resources import TrialSettings
from orchestration.schedules import build_nightly_schedule

JOB_NAME = "refresh_all"


@dg.asset
def _placeholder() -> None:
    """Stands in for the warehouse graph: the sensor only needs a job to target."""


JOB = dg.define_asset_job(JOB_NAME, selection=[_placeholder])
SENSOR = sensors.build_landing_sensor(JOB)


def _write(path: Path, text: str, age_seconds: float = 120.0) -> None:
    """Write ``text`` and date the file ``age_seconds`` back, as a delivery that finished arriving."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))


def _tick(
    landing: Path, cursor: str | None, instance: dg.DagsterInstance | None = None
) -> tuple[dg.RunRequest | dg.SkipReason, str | None]:
    # A context manager: the settings resource has set-up/tear-down hooks (orchestration/resources.py).
    with dg.build_sensor_context(
        cursor=cursor,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"settings": TrialSettings(landing_dir=str(landing))},
    ) as context:
        result = SENSOR(context)
        return result, context.cursor


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    (root / "crf").mkdir(parents=True)
    return root


def test_sensor_is_stopped_by_default_and_targets_the_job() -> None:
    assert SENSOR.default_status == dg.DefaultSensorStatus.STOPPED
    assert SENSOR.job_name == JOB_NAME
    assert SENSOR.minimum_interval_seconds == sensors.MINIMUM_INTERVAL_SECONDS


def test_missing_or_empty_landing_folder_is_skipped(tmp_path: Path, landing: Path) -> None:
    result, _ = _tick(tmp_path / "absent", None)
    assert isinstance(result, dg.SkipReason)
    assert "does not exist" in result.skip_message
    result, _ = _tick(landing, None)
    assert isinstance(result, dg.SkipReason)
    assert "no new or changed export" in result.skip_message


def test_new_file_starts_a_run_and_the_same_state_does_not(landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(landing / "crf" / "dm.csv", "STUDYID,SUBJID\nHCC,001\n")
    first, cursor = _tick(landing, None)
    assert isinstance(first, dg.RunRequest)
    assert first.run_key == sensors.run_key_for({"crf/dm.csv": sensors.sha256_of(landing / "crf" / "dm.csv")})
    assert first.tags["guttrial/changed_files"] == "1"
    assert first.tags["guttrial/changed"] == "crf/dm.csv"
    assert set(sensors.decode_cursor(cursor)) == {"crf/dm.csv"}

    # An unchanged file (same size and mtime) is not read again: the tick only lists the folder.
    hashed: list[Path] = []
    monkeypatch.setattr(sensors, "sha256_of", lambda path: hashed.append(path) or "never used")
    again, cursor_again = _tick(landing, cursor)
    assert isinstance(again, dg.SkipReason)
    assert "no new or changed export" in again.skip_message and "(1 files)" in again.skip_message
    assert hashed == []
    assert cursor_again == cursor


def test_changed_content_gets_a_new_run_key_and_a_revert_reuses_the_old_one(landing: Path) -> None:
    path = landing / "crf" / "dm.csv"
    _write(path, "STUDYID,SUBJID\nHCC,001\n", age_seconds=300)
    first, cursor = _tick(landing, None)
    _write(path, "STUDYID,SUBJID\nHCC,001\nHCC,002\n", age_seconds=200)
    second, cursor = _tick(landing, cursor)
    assert isinstance(first, dg.RunRequest) and isinstance(second, dg.RunRequest)
    assert second.run_key != first.run_key
    # Re-sending the first content is the same (path, sha256): the same key, which Dagster never launches twice.
    _write(path, "STUDYID,SUBJID\nHCC,001\n", age_seconds=100)
    third, _ = _tick(landing, cursor)
    assert isinstance(third, dg.RunRequest)
    assert third.run_key == first.run_key


def test_touched_file_with_the_same_content_does_not_trigger(landing: Path) -> None:
    path = landing / "crf" / "dm.csv"
    _write(path, "STUDYID,SUBJID\nHCC,001\n", age_seconds=300)
    _, cursor = _tick(landing, None)
    _write(path, "STUDYID,SUBJID\nHCC,001\n", age_seconds=100)  # re-delivered unchanged: new mtime only
    result, new_cursor = _tick(landing, cursor)
    assert isinstance(result, dg.SkipReason)
    # The new mtime is remembered, so the next tick does not hash the file again.
    assert (
        sensors.decode_cursor(new_cursor)["crf/dm.csv"].mtime_ns != sensors.decode_cursor(cursor)["crf/dm.csv"].mtime_ns
    )


def test_only_the_changed_files_are_in_the_run_key(landing: Path) -> None:
    _write(landing / "crf" / "dm.csv", "a\n1\n")
    _, cursor = _tick(landing, None)
    _write(landing / "sequencing" / "B01" / "manifest.csv", "sample,barcode\n")
    result, _ = _tick(landing, cursor)
    assert isinstance(result, dg.RunRequest)
    manifest = landing / "sequencing" / "B01" / "manifest.csv"
    assert result.run_key == sensors.run_key_for({"sequencing/B01/manifest.csv": sensors.sha256_of(manifest)})
    assert result.tags["guttrial/changed"] == "sequencing/B01/manifest.csv"


def test_file_still_being_written_waits_until_it_settles(landing: Path) -> None:
    path = landing / "crf" / "ae.csv"
    _write(path, "partial", age_seconds=0)
    result, cursor = _tick(landing, None)
    assert isinstance(result, dg.SkipReason)
    assert "1 file(s) still being written" in result.skip_message
    assert sensors.decode_cursor(cursor) == {}
    _write(path, "partial and now complete", age_seconds=120)
    result, _ = _tick(landing, cursor)
    assert isinstance(result, dg.RunRequest)


def test_hidden_transfer_files_are_ignored(landing: Path) -> None:
    _write(landing / "crf" / ".dm.csv.part", "in transfer")
    _write(landing / "crf" / "dm.csv~", "editor backup")
    result, _ = _tick(landing, None)
    assert isinstance(result, dg.SkipReason)


def test_deleted_file_updates_the_cursor_without_a_run(landing: Path) -> None:
    _write(landing / "crf" / "dm.csv", "a\n1\n")
    _write(landing / "crf" / "ae.csv", "b\n2\n")
    _, cursor = _tick(landing, None)
    (landing / "crf" / "ae.csv").unlink()
    result, new_cursor = _tick(landing, cursor)
    assert isinstance(result, dg.SkipReason)
    assert set(sensors.decode_cursor(new_cursor)) == {"crf/dm.csv"}


def test_waits_while_a_refresh_is_running(landing: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name=JOB_NAME, run_id=run_id, status=dg.DagsterRunStatus.STARTED))
    _write(landing / "crf" / "dm.csv", "a\n1\n")
    result, cursor = _tick(landing, None, instance)
    assert isinstance(result, dg.SkipReason)
    assert f"wait for refresh run {run_id[:8]}" in result.skip_message
    assert cursor is None  # not advanced: the change is picked up once the run has ended
    instance.report_run_canceled(instance.get_run_by_id(run_id))
    result, _ = _tick(landing, cursor, instance)
    assert isinstance(result, dg.RunRequest)


def test_unreadable_or_old_cursor_counts_every_file_as_new(landing: Path) -> None:
    _write(landing / "crf" / "dm.csv", "a\n1\n")
    for cursor in ("not json", '{"v": 0, "files": {}}', '{"v": 1}'):
        assert sensors.decode_cursor(cursor) == {}
        result, _ = _tick(landing, cursor)
        assert isinstance(result, dg.RunRequest)


def test_nightly_schedule_is_stopped_and_skips_while_a_refresh_runs() -> None:
    schedule = build_nightly_schedule(JOB)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == JOB_NAME
    night = dt.datetime(2025, 3, 4, 2, 0, tzinfo=dt.UTC)
    # A schedule context needs an instance it can reference (an ephemeral one has none).
    with dg.instance_for_test() as instance:
        request = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=night))
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == "nightly-2025-03-04"
        instance.add_run(DagsterRun(job_name=JOB_NAME, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED))
        skipped = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=night))
        assert isinstance(skipped, dg.SkipReason)
        assert "still queued or running" in skipped.skip_message
