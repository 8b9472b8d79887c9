"""dbt layer: every dbt model and seed is an asset (``staging/*``, ``intermediate/*``, ``marts/*``) and every
dbt data test an asset check, downstream of the raw assets (the dbt source ``raw`` maps to the keys
``raw/<table>`` the raw loaders write).

Nothing heavy happens at import time: the manifest is read by the cached factory :func:`dbt_model_assets`
when the definitions are built. ``make demo/test/ui`` (target ``dbt-parse``) write
``dbt_project/target/manifest.json`` with ``dbt parse`` beforehand; if it is missing or older than a file of the
dbt project (e.g. a bare ``guttrial build`` or ``pytest`` on a fresh checkout or after editing a model), it is
produced here, once, offline, by the same ``dbt parse`` (under a file lock, so parallel test workers wait for
one parse instead of racing).

dbt runs as a subprocess (``DbtCliResource``), in pool ``duckdb`` like every other writer of the warehouse
file, with ``GUTTRIAL_WAREHOUSE`` pointing at the run's warehouse and ``--vars`` carrying the blinding
switch and the data cut-off. dbt unit tests are excluded from orchestrated runs (they run in CI).
"""

import fcntl
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from orchestration.assets.raw import DUCKDB_POOL
from orchestration.assets.unblinding import RANDOMISATION_LIST_KEY
from orchestration.resources import DEFAULT_WAREHOUSE, ENV_WAREHOUSE, TrialSettings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
LAYERS: tuple[str, ...] = ("staging", "intermediate", "marts")
#: The model that reads the restricted randomisation list (only in unblinded builds).
ARM_MODEL = "int_subjects__arm"


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def dbt_executable() -> str:
    """The dbt of this virtual environment (never a ``dbtf``/Fusion binary that may be on PATH)."""
    # `dagster dev` may start code servers through the interpreter's resolved path, outside the venv's bin/,
    # so look beside the interpreter and in the active environment's prefix before PATH.
    for local in (Path(sys.executable).with_name("dbt"), Path(sys.prefix) / "bin" / "dbt"):
        if local.exists():
            return str(local)
    return shutil.which("dbt") or "dbt"


def dbt_env(warehouse: Path | str | None = None) -> dict[str, str]:
    """Environment for a dbt subprocess: the warehouse path (absolute) and no telemetry."""
    path = warehouse or os.environ.get(ENV_WAREHOUSE) or DEFAULT_WAREHOUSE
    return {
        **os.environ,
        ENV_WAREHOUSE: str(Path(path).expanduser().resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


#: The vars of a default (blinded, no cut-off) build: parsing with the same vars lets that build reuse dbt's
#: partial parse instead of re-parsing the whole project.
DEFAULT_VARS: dict[str, Any] = {"unblinded": False, "cutoff": ""}
_PROJECT_INPUTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "tests")


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR) -> bool:
    """True when ``target/manifest.json`` is missing or older than any file of the dbt project."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    for name in _PROJECT_INPUTS:
        path = project_dir / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        if any(f.stat().st_mtime > built for f in files):
            return True
    return False


def parse_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Write ``target/manifest.json`` with ``dbt parse`` (offline, no database connection)."""
    subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
            # the manifest Dagster loads, even when DBT_TARGET_PATH sends dbt runs elsewhere (tests/bench/run.py)
            "--target-path",
            str(project_dir / "target"),
            "--vars",
            json.dumps(DEFAULT_VARS),
        ],
        check=True,
        cwd=project_dir,
        env=dbt_env(),
    )
    return project_dir / "target" / "manifest.json"


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Parse the project unless an up-to-date manifest exists (one parse at a time per checkout)."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest_is_stale(project_dir):
        return manifest
    (project_dir / "target").mkdir(exist_ok=True)
    with open(project_dir / "target" / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest_is_stale(project_dir):  # another process may have parsed while we waited
            parse_manifest(project_dir)
    return manifest


@cache
def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    # Not `project.prepare_if_dev()`: under `dagster dev` it runs a `dbt` looked up on PATH, which is not the
    # venv's when the venv is not activated. `ensure_manifest` re-parses with this venv's dbt whenever a model
    # changed, which also gives `dagster dev` its reload-on-edit behaviour.
    ensure_manifest(DBT_PROJECT_DIR)
    return project


class GuttrialDbtTranslator(DagsterDbtTranslator):
    """Keys ``[<schema>, <name>]`` and groups named after the layer schema (``staging``, ``intermediate``,
    ``marts``); sources keep dagster-dbt's default ``[<source>, <table>]`` = the raw asset keys."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props.get("schema")
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot") and schema in LAYERS:
            return schema
        return super().get_group_name(dbt_resource_props)

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "model" and props["name"] == ARM_MODEL:
            # The manifest is parsed blinded, where the model does not reference the restricted list at all;
            # the explicit dependency orders the (unblinded-only) load of the list before it.
            spec = spec.merge_attributes(deps=[RANDOMISATION_LIST_KEY])
        return spec


def dbt_vars(settings: TrialSettings) -> dict[str, Any]:
    """The dbt ``--vars`` of a run: blinding switch and data cut-off come from the run's settings."""
    cutoff = settings.cutoff
    return {"unblinded": settings.is_unblinded, "cutoff": cutoff.isoformat() if cutoff else ""}


def dbt_build_args(settings: TrialSettings) -> list[str]:
    return ["build", "--exclude-resource-type", "unit_test", "--vars", json.dumps(dbt_vars(settings))]


#: Lines of dbt's output kept for the failure message of a failed ``dbt build``.
DBT_OUTPUT_TAIL_LINES = 40


def quiet_events(events: Iterator[Any], tail: deque[str]) -> Iterator[Any]:
    """``events`` (a dagster-dbt event stream) passed on one by one as dbt emits them, with the dbt log lines
    dagster-dbt echoes to stdout kept out of the terminal (``guttrial build`` stays readable; dbt writes its full
    log to the run's target folder anyway): the last lines are kept in ``tail`` for a failure message.

    Events go on to Dagster while dbt is still running, so Dagster's bookkeeping of each model and check (event
    log writes) overlaps dbt's own work on the other core instead of following it. stdout is redirected only
    while dagster-dbt produces the next event, never while Dagster handles the one yielded.
    """
    iterator = iter(events)
    while True:
        echo = io.StringIO()
        with redirect_stdout(echo):
            event = next(iterator, None)
        tail.extend(echo.getvalue().splitlines())
        if event is None:
            return
        yield event


@cache
def dbt_model_assets() -> dg.AssetsDefinition:
    project = dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        name="dbt_models",
        pool=DUCKDB_POOL,
        dagster_dbt_translator=GuttrialDbtTranslator(),
    )
    def _dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: TrialSettings) -> Iterator[Any]:
        """staging -> intermediate -> marts in the warehouse file (dbt build: models, seeds, data tests)."""
        if settings.is_unblinded:
            context.log.warning("UNBLINDED dbt build: adsl.arm_code carries the randomised arm")
        # profiles.yml reads GUTTRIAL_WAREHOUSE; the subprocess inherits this process's environment when it
        # starts (inside cli()), so point it at this run's warehouse just for that moment.
        with _environ(ENV_WAREHOUSE, str(settings.warehouse)):
            invocation = dbt.cli(dbt_build_args(settings), context=context, raise_on_error=False)
        tail: deque[str] = deque(maxlen=DBT_OUTPUT_TAIL_LINES)
        yield from quiet_events(invocation.stream(), tail)
        log_file = invocation.target_path / "dbt.log"
        if not invocation.is_successful():
            raise dg.Failure(f"dbt build failed (full log: {log_file})", metadata={"dbt_output_tail": "\n".join(tail)})
        context.log.info(f"dbt build finished; full log: {log_file}")
        prune_run_targets(invocation.target_path.parent)

    return _dbt_models


#: dagster-dbt gives every invocation its own target folder (~10 MB: manifest, compiled SQL, logs); keep the
#: newest few for debugging and drop the rest, but never a folder touched within the last hour (a run in progress).
KEEP_RUN_TARGETS = 5


def prune_run_targets(target_dir: Path, keep: int = KEEP_RUN_TARGETS, min_age_seconds: float = 3600) -> list[Path]:
    """Delete all but the newest ``keep`` per-run folders ``dbt_models-*`` under ``target_dir``."""
    runs = sorted(
        (p for p in target_dir.glob("dbt_models-*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    now = time.time()
    removed = []
    for old in runs[keep:]:
        if now - old.stat().st_mtime > min_age_seconds:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


class GuttrialDbtCliResource(DbtCliResource):
    """``DbtCliResource`` without two start-up costs of every ``dbt.cli()`` call that this project never uses.

    * dagster-dbt runs ``dbt --version`` in a subprocess (a full dbt start-up, ~3 s of CPU) to tell dbt Core
      from the Fusion engine. The dbt we run is this environment's (:func:`dbt_executable`), so its version is
      the installed ``dbt-core`` package's.
    * dagster-dbt builds a dbt adapter in this process (loading and parsing every dbt macro, several seconds)
      before starting dbt; it serves only ``fetch_row_counts()`` / ``fetch_column_metadata()``, which the dbt
      asset does not call (row counts would cost a query per model). No adapter: dbt starts at once.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        executable = Path(self.dbt_executable)
        ours = {Path(sys.executable).with_name("dbt"), Path(sys.prefix) / "bin" / "dbt"}
        if executable in ours:
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


def dbt_resource() -> DbtCliResource:
    return GuttrialDbtCliResource(
        project_dir=dbt_project(), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
