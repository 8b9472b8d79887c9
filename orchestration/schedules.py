"""The nightly refresh: ``refresh_all`` at 02:00 UTC, stopped by default.

Stopped by default because a schedule that starts itself would write whichever warehouse the deployment points at
(``make ui`` points at the demo's): a data engineer turns it on in the UI (Automation -> ``nightly_refresh``) for
the deployment that should refresh nightly. The run uses the job's default configuration (blinded, no cut-off
unless ``$GUTTRIAL_CUTOFF`` / ``$GUTTRIAL_UNBLINDED`` say otherwise). A night on which a refresh is already queued
or running (e.g. one the landing sensor started) is skipped rather than queued behind it.
"""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.sensors import active_runs

SCHEDULE_NAME = "nightly_refresh"
NIGHTLY_CRON = "0 2 * * *"
TIMEZONE = "UTC"


def build_nightly_schedule(job: UnresolvedAssetJobDefinition | dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Refresh the whole warehouse every night at 02:00 {TIMEZONE} (stopped by default; skipped "
        "while another refresh is queued or running).",
    )
    def nightly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        busy = active_runs(context.instance, job.name)
        if busy:
            return dg.SkipReason(f"refresh run {busy[0][:8]} is still queued or running")
        # One run per scheduled night; the key makes a re-evaluated tick idempotent.
        scheduled = context.scheduled_execution_time
        key = scheduled.strftime("%Y-%m-%d") if scheduled else None
        return dg.RunRequest(run_key=f"nightly-{key}" if key else None, tags={"guttrial/trigger": SCHEDULE_NAME})

    return nightly_refresh
