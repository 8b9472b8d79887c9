"""A small demo warehouse shared by the warehouse tests (test_marts.py, test_querying_docs.py, ...).

Built once per test session by the Dagster assets ``guttrial build`` runs (landing -> raw -> dbt marts, blinded;
in-process, ephemeral instance), and reused by every module and every xdist worker (a file lock in the session's
shared temporary folder makes the first caller build and the others wait).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"
N_PATIENTS = 30
SEED = 20240501
STUDY_ID = "HCC-GUT-01"


@dataclass(frozen=True)
class DemoWarehouse:
    out_dir: Path
    warehouse: Path
    #: What the build reported: success, seconds, materialized asset keys, checks and failed checks.
    build: dict

    @property
    def landing(self) -> Path:
        return self.out_dir / "landing"

    @property
    def truth(self) -> Path:
        return self.out_dir / "truth"

    @property
    def randomisation_list(self) -> Path:
        return self.out_dir / "unblinding" / "randomisation_list.csv"

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.warehouse), read_only=True)


def clean_env() -> dict[str, str]:
    """The environment of a subprocess build: no GUTTRIAL_* settings and an ephemeral Dagster instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUTTRIAL_") and k != "DAGSTER_HOME"}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


def subject_id(subjid: str) -> str:
    return f"{STUDY_ID}-{subjid}"


def build_warehouse(landing: Path, warehouse: Path) -> dict:
    """Run the refresh job's raw, unblinding and dbt assets in-process (the code path of `guttrial build`,
    without the downstream analysis assets, whose own tests cover them)."""
    import dagster as dg

    from orchestration.assets.dbt import dbt_model_assets, dbt_resource
    from orchestration.assets.raw import raw_family_assets
    from orchestration.assets.unblinding import randomisation_list
    from orchestration.resources import TrialSettings

    settings = TrialSettings(landing_dir=str(landing), warehouse_path=str(warehouse), unblinded="false")
    started = time.perf_counter()
    result = dg.materialize(
        [*raw_family_assets, randomisation_list, dbt_model_assets()],
        resources={"settings": settings, "dbt": dbt_resource()},
        raise_on_error=False,
    )
    evaluations = result.get_asset_check_evaluations()
    return {
        "success": result.success,
        "seconds": time.perf_counter() - started,
        "materialized": sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events()),
        "checks": len(evaluations),
        "failed_checks": sorted(f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed),
        "failures": [str(e.event_specific_data.error)[-3000:] for e in result.get_step_failure_events()],
    }


def shared_demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    from analysis.simulation import generate_trial

    # Under xdist each worker's base temp folder sits in the session's folder, which all workers share.
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "guttrial_demo_warehouse"
    shared.mkdir(exist_ok=True)
    record = shared / "build.json"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            out_dir = shared / "demo"
            generate_trial(out_dir, n_patients=N_PATIENTS, seed=SEED)
            record.write_text(json.dumps(build_warehouse(out_dir / "landing", shared / "warehouse.duckdb")))
    built = json.loads(record.read_text())
    assert built["success"], "warehouse build failed:\n" + "\n".join(built["failures"])
    return DemoWarehouse(shared / "demo", shared / "warehouse.duckdb", built)


def dbt_command(
    args: list[str], warehouse: Path, target: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt (this venv's) on the project with its own target/log folder, so tests never touch the
    project's ``target/manifest.json`` (the one Dagster loads) nor each other's files."""
    env = {**clean_env(), "GUTTRIAL_WAREHOUSE": str(warehouse), **(extra_env or {})}
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            *args,
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(target),
            "--log-path",
            str(target),
        ],
        cwd=DBT_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
