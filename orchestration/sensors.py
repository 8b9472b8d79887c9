"""The landing-folder sensor: a new or changed export starts a refresh of the whole warehouse.

What counts as a change is the file's content, not its timestamp: each file of the landing folder (found by the
loader's own scan, so hidden in-transfer files and editor leftovers are ignored the same way) is identified by its
path and SHA-256. The cursor keeps, for every file, ``(size, mtime_ns, sha256)``; a file whose size and mtime did
not move is not read again, so a tick over an unchanged folder of large exports only lists it.

* A run's ``run_key`` is a digest of the sorted ``(path, sha256)`` pairs that changed. Dagster never launches two
  runs with the same key from one sensor, so the same file content never triggers twice, even if a delivery is
  reverted and re-sent, or the cursor is reset.
* A file modified less than :data:`SETTLE_SECONDS` ago is still being written (copied, unzipped): it is left out of
  this tick and looked at again in the next.
* While a ``refresh_all`` run is queued or running, the sensor waits (cursor not advanced), so refreshes never pile
  up and the waiting changes start one refresh once it ends.
* A deleted file changes nothing in the warehouse (raw keeps every version), so it only updates the cursor.

The sensor is stopped by default: turn it on in the UI (Automation -> ``landing_folder_sensor``) for the
deployment whose landing folder it should watch (``settings`` resource: ``landing_dir`` / ``$GUTTRIAL_LANDING``).
"""

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from analysis.ingest.landing import FAMILIES, scan_landing, sha256_of
from orchestration.resources import TrialSettings

SENSOR_NAME = "landing_folder_sensor"
#: Seconds between evaluations: exports arrive a few times a day, and each tick lists the folder.
MINIMUM_INTERVAL_SECONDS = 60
#: A file younger than this (by mtime) may still be in transfer.
SETTLE_SECONDS = 30.0
CURSOR_VERSION = 1
#: Run statuses during which another refresh must not be requested.
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
#: Tag values are for people reading the run list: cap the list of changed files shown.
TAG_MAX_CHARS = 200


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class LandingScan:
    """One look at the landing folder: the settled files' states and the paths still being written."""

    files: dict[str, FileState]
    settling: list[str]


def scan_states(
    landing: Path, previous: Mapping[str, FileState], settle_seconds: float = SETTLE_SECONDS, now: float | None = None
) -> LandingScan:
    """Path -> state of every settled landing file; a checksum is computed only for new or touched files."""
    now = time.time() if now is None else now
    files: dict[str, FileState] = {}
    settling: list[str] = []
    for family in FAMILIES:
        for found in scan_landing(landing, family):
            try:
                stat = found.path.stat()
            except FileNotFoundError:  # moved away between listing and stat
                continue
            if now - stat.st_mtime < settle_seconds:
                settling.append(found.relpath)
                continue
            before = previous.get(found.relpath)
            if before is not None and before.size == stat.st_size and before.mtime_ns == stat.st_mtime_ns:
                files[found.relpath] = before
            elif found.kind == "unknown":
                # a file the loader rejects by name is never read (it may be a misplaced randomisation list):
                # its size and mtime stand in for the checksum in the cursor
                files[found.relpath] = FileState(
                    stat.st_size, stat.st_mtime_ns, f"unread:{stat.st_size}:{stat.st_mtime_ns}"
                )
            else:
                files[found.relpath] = FileState(stat.st_size, stat.st_mtime_ns, sha256_of(found.path))
    return LandingScan(files, settling)


def changed_files(previous: Mapping[str, FileState], current: Mapping[str, FileState]) -> dict[str, str]:
    """Path -> SHA-256 of every file that is new or whose content differs from the previous state."""
    return {
        path: state.sha256
        for path, state in sorted(current.items())
        if path not in previous or previous[path].sha256 != state.sha256
    }


def run_key_for(changes: Mapping[str, str]) -> str:
    """A stable key for a set of changed files: the digest of their sorted ``(path, sha256)`` pairs."""
    payload = json.dumps(sorted(changes.items()), separators=(",", ":"))
    return "landing-" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def encode_cursor(files: Mapping[str, FileState]) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "files": {p: [s.size, s.mtime_ns, s.sha256] for p, s in sorted(files.items())}},
        separators=(",", ":"),
    )


def decode_cursor(cursor: str | None) -> dict[str, FileState]:
    """The file states a cursor holds (empty for no cursor or an unreadable/older one: every file is then new,
    and a run whose changes were already launched is still deduplicated by its run key)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            return {}
        return {p: FileState(int(s[0]), int(s[1]), str(s[2])) for p, s in data["files"].items()}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return {}


def _changes_tag(changes: Mapping[str, str]) -> str:
    text = ", ".join(changes)
    return text if len(text) <= TAG_MAX_CHARS else text[: TAG_MAX_CHARS - 3] + "..."


def active_runs(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Ids of the job's runs that are queued or in progress."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES), limit=5)
    return [run.run_id for run in runs]


def build_landing_sensor(
    job: UnresolvedAssetJobDefinition | dg.JobDefinition, settle_seconds: float = SETTLE_SECONDS
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts refresh_all when a new or changed export (by path and SHA-256) arrives in the landing "
        f"folder. Files younger than {settle_seconds:.0f} s are treated as still in transfer; no new run while a "
        "refresh is queued or running; the same file content never triggers twice.",
    )
    def landing_folder_sensor(
        context: dg.SensorEvaluationContext, settings: TrialSettings
    ) -> dg.RunRequest | dg.SkipReason:
        landing = settings.landing
        if not landing.is_dir():
            return dg.SkipReason(f"landing folder {landing} does not exist")
        previous = decode_cursor(context.cursor)
        scan = scan_states(landing, previous, settle_seconds)
        # A file still being written keeps its previous state, so it counts as changed once it has settled.
        current = {**{p: previous[p] for p in scan.settling if p in previous}, **scan.files}
        changes = changed_files(previous, current)
        waiting = f"; {len(scan.settling)} file(s) still being written" if scan.settling else ""
        if not changes:
            if current != previous:  # touched or deleted files: remember, so they are not hashed again
                context.update_cursor(encode_cursor(current))
            return dg.SkipReason(f"no new or changed export in {landing} ({len(current)} files){waiting}")
        busy = active_runs(context.instance, job.name)
        if busy:
            return dg.SkipReason(
                f"{len(changes)} new or changed file(s) wait for refresh run {busy[0][:8]} to finish{waiting}"
            )
        context.update_cursor(encode_cursor(current))
        context.log.info(f"{len(changes)} new or changed file(s) in {landing}: {', '.join(changes)}")
        return dg.RunRequest(
            run_key=run_key_for(changes),
            tags={
                "guttrial/trigger": SENSOR_NAME,
                "guttrial/changed_files": str(len(changes)),
                "guttrial/changed": _changes_tag(changes),
            },
        )

    return landing_folder_sensor
