"""Small demo warehouses shared by the warehouse tests, each built once per test session.

* :func:`shared_demo_warehouse` (test_marts.py, test_querying_docs.py, ...): 30 patients, landing -> raw -> dbt
  marts, blinded, by the Dagster assets ``guttrial build`` runs (in-process, ephemeral instance).
* :func:`full_demo_warehouse` (the report tests): a copy of that warehouse on which the rest of the refresh job
  ran: endpoint, microbiome, metabolomics and integration assets and the trial report asset, blinded; with
  ``unblinded=True`` its unblinded twin (arms filled from the demo's randomisation list, assets run unblinded).
  Few rarefaction iterations and permutations (:data:`FULL_ITERATIONS`, :data:`FULL_PERMUTATIONS`): tests compare
  figures and tables with the stored analysis tables, not the estimates' precision.

Each is reused by every module and every xdist worker: a file lock in the session's shared temporary folder makes
the first caller build and the others wait (the blinded and unblinded full warehouses have their own locks, so two
workers build them at the same time). Open them read-only (``connect()``); a test that writes needs its own copy.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
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
#: Rarefaction iterations and permutations of the full warehouse's microbiome assets (real runs: 1,000 and 999).
FULL_ITERATIONS = 20
FULL_PERMUTATIONS = 199


class TrialFolder:
    """Paths inside a generated trial's folder ``out_dir`` (``analysis.simulation.generate_trial``)."""

    out_dir: Path

    @property
    def landing(self) -> Path:
        return self.out_dir / "landing"

    @property
    def truth(self) -> Path:
        return self.out_dir / "truth"

    @property
    def randomisation_list(self) -> Path:
        return self.out_dir / "unblinding" / "randomisation_list.csv"


@dataclass(frozen=True)
class DemoWarehouse(TrialFolder):
    out_dir: Path
    warehouse: Path
    #: What the build reported: success, seconds, materialized asset keys, checks and failed checks.
    build: dict

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


def _session_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder shared by every xdist worker of the session (each worker's base temp folder sits in the session's
    folder, which all workers share)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    shared.mkdir(exist_ok=True)
    return shared


def shared_demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    from analysis.simulation import generate_trial

    shared = _session_folder(tmp_path_factory, "guttrial_demo_warehouse")
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


@dataclass(frozen=True)
class FullWarehouse:
    """The shared demo warehouse after the whole refresh job (see module docstring)."""

    demo: DemoWarehouse
    warehouse: Path
    unblinded: bool
    #: What the run reported: success, seconds, cpu_seconds, materialized, failed_checks, failures and ``report``
    #: (the trial report asset's metadata: path, figures, tables, seconds, cpu_seconds, and its check results).
    build: dict

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.warehouse), read_only=True)

    @property
    def report_index(self) -> Path:
        return Path(self.build["report"]["path"])

    @property
    def reports_dir(self) -> Path:
        return self.warehouse.with_name(f"{self.warehouse.stem}_reports")


def full_analysis_run_config(iterations: int = FULL_ITERATIONS, permutations: int = FULL_PERMUTATIONS) -> dict:
    """Run config of the microbiome assets with few iterations and permutations."""
    from orchestration.assets.microbiome import ASSET_TABLES

    config = {"iterations": iterations, "permutations": permutations}
    return {"ops": {f"microbiome_{name}": {"config": config} for name in ASSET_TABLES}}


def fill_arms(warehouse: Path, randomisation_list: Path) -> None:
    """``marts.adsl.arm_code`` from the restricted randomisation list: what an unblinded dbt build writes."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update marts.adsl set arm_code = r.ARM from read_csv(?, all_varchar = true) as r "
            "where marts.adsl.randno = r.RANDNO",
            [str(randomisation_list)],
        )


def build_full_warehouse(warehouse: Path, *, unblinded: bool, randomisation_list: Path | None) -> dict:
    """Run the refresh job's analysis assets (endpoints, microbiome, metabolomics, integration) and the trial report
    in-process on ``warehouse`` (raw + marts already built)."""
    import dagster as dg

    from orchestration.assets.endpoints import endpoint_assets
    from orchestration.assets.metabolomics import metabolite_genus_correlations, metabolomics_analysis
    from orchestration.assets.microbiome import microbiome_assets
    from orchestration.assets.reports import report_assets
    from orchestration.resources import TrialSettings

    settings = TrialSettings(
        warehouse_path=str(warehouse),
        unblinded="true" if unblinded else "false",
        randomisation_list=str(randomisation_list) if unblinded and randomisation_list else "",
    )
    started, cpu = time.perf_counter(), time.process_time()
    result = dg.materialize(
        [*endpoint_assets, *microbiome_assets, metabolomics_analysis, metabolite_genus_correlations, *report_assets],
        resources={"settings": settings},
        run_config=full_analysis_run_config(),
        raise_on_error=False,
    )
    evaluations = result.get_asset_check_evaluations()
    materializations = result.get_asset_materialization_events()
    report = [e.materialization.metadata for e in materializations if e.asset_key.path[0] == "reports"]
    meta = report[0] if report else {}
    return {
        "success": result.success,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "materialized": sorted(e.asset_key.to_user_string() for e in materializations),
        "failed_checks": sorted(f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed),
        "failures": [str(e.event_specific_data.error)[-3000:] for e in result.get_step_failure_events()],
        "report": {
            "path": str(meta["path"].value) if "path" in meta else "",
            "figures": int(meta["figures"].value) if "figures" in meta else 0,
            "tables": int(meta["tables"].value) if "tables" in meta else 0,
            "seconds": float(meta["seconds"].value) if "seconds" in meta else 0.0,
            "cpu_seconds": float(meta["cpu seconds"].value) if "cpu seconds" in meta else 0.0,
            "checks": {e.check_name: e.passed for e in evaluations if e.asset_key.path[0] == "reports"},
        },
    }


def full_demo_warehouse(tmp_path_factory: pytest.TempPathFactory, *, unblinded: bool = False) -> FullWarehouse:
    """The shared demo warehouse with every analysis table and the trial report (blinded, or its unblinded twin),
    built once per session (see module docstring). Read-only: copy it to change it."""
    demo = shared_demo_warehouse(tmp_path_factory)
    name = "unblinded" if unblinded else "blinded"
    shared = _session_folder(tmp_path_factory, f"guttrial_full_warehouse_{name}")
    # an unblinded warehouse's file name must say so (orchestration.resources refuses others)
    warehouse = shared / ("warehouse_unblinded.duckdb" if unblinded else "warehouse.duckdb")
    record = shared / "build.json"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            shutil.copyfile(demo.warehouse, warehouse)
            if unblinded:
                fill_arms(warehouse, demo.randomisation_list)
            built = build_full_warehouse(warehouse, unblinded=unblinded, randomisation_list=demo.randomisation_list)
            record.write_text(json.dumps(built))
    built = json.loads(record.read_text())
    assert built["success"], f"{name} full warehouse build failed:\n" + "\n".join(built["failures"])
    return FullWarehouse(demo, warehouse, unblinded, built)


#: The unblinded trial of the end-to-end endpoint and microbiome tests: enough patients for the simulated effects
#: (PFS hazard ratio, differential genera) to come out.
UNBLINDED_TRIAL_PATIENTS = 120
#: Rarefaction iterations of its microbiome assets (GUTTRIAL_MICROBIOME_ITERATIONS; real runs: 1,000).
UNBLINDED_TRIAL_ITERATIONS = 50
#: Asset groups it builds: the clinical path (raw -> dbt, all layers -> endpoints) and the microbiome analyses;
#: metabolomics and the report are tested on the smaller shared warehouses.
UNBLINDED_TRIAL_GROUPS = ("raw", "restricted", "staging", "intermediate", "marts", "endpoints", "microbiome")


@dataclass(frozen=True)
class UnblindedTrial(TrialFolder):
    """A seeded trial built unblinded in-process (see :func:`unblinded_trial`)."""

    out_dir: Path
    warehouse: Path
    #: step key -> seconds of the build
    step_seconds: dict[str, float]


def _build_unblinded(landing: Path, warehouse: Path, randomisation_list: Path) -> dict[str, float]:
    """The ``refresh_all`` job in-process, unblinded, restricted to :data:`UNBLINDED_TRIAL_GROUPS`. Returns the
    step durations (s)."""
    import dagster as dg

    from orchestration import resources as res
    from orchestration.assets.microbiome import ENV_ITERATIONS
    from orchestration.definitions import REFRESH_JOB, defs

    with pytest.MonkeyPatch.context() as mp:
        # Settings resolve from GUTTRIAL_* at run time, as under `guttrial build --unblinded`.
        mp.setenv(res.ENV_LANDING, str(landing))
        mp.setenv(res.ENV_WAREHOUSE, str(warehouse))
        mp.setenv(res.ENV_CUTOFF, "")
        mp.setenv(res.ENV_UNBLINDED, "true")
        mp.setenv(res.ENV_RANDOMISATION_LIST, str(randomisation_list))
        mp.setenv(ENV_ITERATIONS, str(UNBLINDED_TRIAL_ITERATIONS))
        mp.delenv("DAGSTER_HOME", raising=False)
        selection = dg.AssetSelection.groups(*UNBLINDED_TRIAL_GROUPS).resolve(defs.resolve_asset_graph())
        result = defs.resolve_job_def(REFRESH_JOB).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            asset_selection=list(selection),
            run_config={"loggers": {"progress": {"config": {"quiet": True}}}},
        )
    failures = [str(e.event_specific_data.error)[-3000:] for e in result.get_step_failure_events()]
    assert result.success, "unblinded build failed:\n" + "\n".join(failures)
    return {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}


def unblinded_trial(tmp_path_factory: pytest.TempPathFactory) -> UnblindedTrial:
    """A :data:`UNBLINDED_TRIAL_PATIENTS`-patient seeded trial built unblinded (clinical path and microbiome), once
    per test session and shared by the modules and xdist workers that need it (file lock). Read-only."""
    from analysis.simulation import generate_trial

    shared = _session_folder(tmp_path_factory, "guttrial_unblinded_trial")
    out_dir, warehouse, record = shared / "demo", shared / "warehouse_unblinded.duckdb", shared / "build.json"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            generate_trial(out_dir, n_patients=UNBLINDED_TRIAL_PATIENTS, seed=SEED, overwrite=True)
            steps = _build_unblinded(out_dir / "landing", warehouse, out_dir / "unblinding" / "randomisation_list.csv")
            record.write_text(json.dumps(steps))
    return UnblindedTrial(out_dir, warehouse, json.loads(record.read_text()))


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
