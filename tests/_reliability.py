"""Helpers of the reliability tests (faults, concurrency, reproducibility, blinding and privacy scans).

Every build here is a real ``guttrial build`` subprocess (the command users run), on a small seeded demo trial
(:data:`N_PATIENTS` patients, :data:`ITERATIONS` rarefaction iterations) so a build takes a minute or two.

:func:`reference_build` is built once per test session and shared by the modules (and xdist workers) that need an
undisturbed blinded build: a file lock in the session's shared temporary folder makes the first caller build and
the others wait. It runs with its own persistent ``DAGSTER_HOME`` so the scans can read the run's event log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from analysis.hashing import warehouse_hashes

ROOT = Path(__file__).resolve().parents[1]
GUTTRIAL = str(Path(sys.executable).with_name("guttrial"))
N_PATIENTS = 20
SEED = 20240501
ITERATIONS = "10"
BUILD_TIMEOUT = 1800


def build_env(dagster_home: Path | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for a build subprocess: no GUTTRIAL_* from the caller, few rarefaction iterations,
    an ephemeral Dagster instance unless ``dagster_home`` is given (then with the repository's dagster.yaml)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUTTRIAL_") and k != "DAGSTER_HOME"}
    env.update(
        {
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "GX_ANALYTICS_ENABLED": "false",
            "GUTTRIAL_MICROBIOME_ITERATIONS": ITERATIONS,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if dagster_home is not None:
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        env["DAGSTER_HOME"] = str(dagster_home)
    env.update(extra)
    return env


def build_command(landing: Path, warehouse: Path, *extra: str) -> list[str]:
    return [GUTTRIAL, "build", "--landing", str(landing), "--warehouse", str(warehouse), *extra]


def run_build(
    landing: Path, warehouse: Path, *extra: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``guttrial build`` to completion; stdout and stderr also saved to ``log`` (for the scans)."""
    done = subprocess.run(
        build_command(landing, warehouse, *extra),
        env=env or build_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if log is not None:
        log.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr, encoding="utf-8")
    return done


def start_build(landing: Path, warehouse: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``guttrial build`` in its own process group (so a kill takes its dbt subprocess too), stdout piped."""
    return subprocess.Popen(
        build_command(landing, warehouse, *extra),
        env=env or build_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the build and every process it started, and reap it (idempotent)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


def wait_for_group_exit(pgid: int, timeout: float = 60) -> None:
    """Wait until no process of the group is left (a killed dbt must not keep writing the warehouse)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} still alive after SIGKILL")


def output_hashes(warehouse: Path) -> dict[str, str]:
    """``schema.table`` -> content hash of every mart and analysis table (read-only open)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {name: h.content_hash for name, h in warehouse_hashes(con).items()}


@dataclass(frozen=True)
class Reference:
    """An undisturbed blinded build of the demo trial."""

    out_dir: Path
    warehouse: Path
    dagster_home: Path
    log: Path
    hashes: dict[str, str]

    @property
    def landing(self) -> Path:
        return self.out_dir / "landing"

    @property
    def randomisation_list(self) -> Path:
        return self.out_dir / "unblinding" / "randomisation_list.csv"

    @property
    def published(self) -> Path:
        return self.warehouse.with_name(f"{self.warehouse.stem}_published.duckdb")


def _shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    shared.mkdir(exist_ok=True)
    return shared


def demo_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded demo trial's folder (landing, unblinding, truth), generated once per session."""
    from analysis.simulation import generate_trial

    shared = _shared_dir(tmp_path_factory, "guttrial_reliability_demo")
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            generate_trial(shared / "demo", n_patients=N_PATIENTS, seed=SEED, overwrite=True)
            (shared / "done").write_text("ok")
    return shared / "demo"


def reference_build(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    out_dir = demo_trial(tmp_path_factory)
    shared = _shared_dir(tmp_path_factory, "guttrial_reliability_reference")
    record = shared / "build.json"
    warehouse = shared / "warehouse.duckdb"
    dagster_home = shared / "dagster_home"
    log = shared / "build.log"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            done = run_build(out_dir / "landing", warehouse, env=build_env(dagster_home), log=log)
            record.write_text(json.dumps({"returncode": done.returncode}))
    built = json.loads(record.read_text())
    assert built["returncode"] == 0, "reference build failed:\n" + log.read_text()[-5000:]
    return Reference(out_dir, warehouse, dagster_home, log, output_hashes(warehouse))
