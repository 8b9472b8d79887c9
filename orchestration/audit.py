"""The audit trail: schema ``audit`` in the warehouse, one row per run in ``audit.runs``.

Who (OS user, host), when (started / finished, UTC), code version (git commit, or the package version outside a
checkout; never a network call), configuration (cut-off, blinded or not, landing and warehouse paths, the
``GUTTRIAL_*`` settings; never the content of the randomisation list), input files with their SHA-256, a content
hash of every output table, and the run's check results.

* ``audit.runs``         one row per run: ``status`` is ``started`` from the first moment the run touches the
                         warehouse (:func:`record_run_start`, called when the ``settings`` resource starts), then
                         ``succeeded`` (written by the publish asset, the last step) or ``failed`` (failure hook).
                         A row still ``started`` with no ``finished_at`` is a run that was killed, crashed, is
                         still running, or ran only part of the graph without the publish step.
* ``audit.run_inputs``   files the run read: every landing file it saw (from ``raw.load_manifest``, so the checksum
                         is the one the loader verified) and, for an unblinded run, the randomisation list's path
                         and checksum (the list's content never leaves ``restricted``).
* ``audit.run_outputs``  per ``marts``/``analysis`` table: rows, columns and content hash
                         (:mod:`analysis.hashing`), with the volatile columns left out of the hash named.
* ``audit.run_checks``   every asset check evaluated in the run: asset, check, passed, severity.

An unblinded run writes its audit into its own (unblinded) warehouse, with ``blinded = false``; the audit
tables are excluded from the output hashes (they differ from run to run by design).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb

from analysis.hashing import TableHash, file_sha256

AUDIT_SCHEMA = "audit"
REPO_ROOT = Path(__file__).resolve().parents[1]

_DDL = (
    f"create schema if not exists {AUDIT_SCHEMA}",
    f"""create table if not exists {AUDIT_SCHEMA}.runs (
        run_id varchar primary key,
        status varchar not null,
        started_at timestamp not null,
        finished_at timestamp,
        failed_step varchar,
        os_user varchar,
        host varchar,
        pid integer,
        code_version varchar,
        git_commit varchar,
        git_dirty boolean,
        package_version varchar,
        python_version varchar,
        duckdb_version varchar,
        dagster_version varchar,
        blinded boolean not null,
        cutoff_date date,
        landing_dir varchar,
        warehouse_path varchar,
        published_path varchar,
        randomisation_list_path varchar,
        config_json varchar,
        n_input_files integer,
        n_outputs integer,
        checks_passed integer,
        checks_failed integer,
        failed_checks varchar[],
        hash_seconds double
    )""",
    f"""create table if not exists {AUDIT_SCHEMA}.run_inputs (
        run_id varchar not null,
        role varchar not null,
        family varchar,
        path varchar not null,
        sha256 varchar,
        size_bytes bigint,
        status varchar
    )""",
    f"""create table if not exists {AUDIT_SCHEMA}.run_outputs (
        run_id varchar not null,
        schema_name varchar not null,
        table_name varchar not null,
        n_rows bigint,
        n_columns integer,
        content_hash varchar not null,
        excluded_columns varchar[]
    )""",
    f"""create table if not exists {AUDIT_SCHEMA}.run_checks (
        run_id varchar not null,
        asset_key varchar not null,
        check_name varchar not null,
        passed boolean not null,
        severity varchar,
        description varchar
    )""",
)


@dataclass(frozen=True)
class CheckResult:
    asset_key: str
    check_name: str
    passed: bool
    severity: str | None = None
    description: str | None = None

    @property
    def name(self) -> str:
        return f"{self.asset_key}:{self.check_name}"


@dataclass(frozen=True)
class RunConfig:
    """What decided this run's results (paths, cut-off, blinding and the other GUTTRIAL_* settings)."""

    landing_dir: str
    warehouse_path: str
    published_path: str
    cutoff_date: dt.date | None
    unblinded: bool
    randomisation_list_path: str | None
    #: GUTTRIAL_* environment variables in effect (e.g. GUTTRIAL_MICROBIOME_ITERATIONS).
    environment: Mapping[str, str]

    def to_json(self) -> str:
        return json.dumps(
            {
                "landing_dir": self.landing_dir,
                "warehouse_path": self.warehouse_path,
                "published_path": self.published_path,
                "cutoff_date": self.cutoff_date.isoformat() if self.cutoff_date else None,
                "unblinded": self.unblinded,
                "randomisation_list_path": self.randomisation_list_path,
                "environment": dict(sorted(self.environment.items())),
            },
            sort_keys=True,
        )


def guttrial_environment() -> dict[str, str]:
    """The GUTTRIAL_* variables of this process (paths and numbers; the list's content is never in one)."""
    return {k: v for k, v in os.environ.items() if k.startswith("GUTTRIAL_")}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid {os.getuid()}"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("guttrial")
    except PackageNotFoundError:
        return "unknown"


@cache
def code_version() -> dict[str, str | bool | None]:
    """Git commit of the checkout (and whether tracked files differ from it), else the package version.

    Local only: ``git rev-parse`` and ``git status`` read the repository, nothing is fetched. Cached per process
    (the code does not change under a running process)."""
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    pkg = package_version()
    label = commit + ("-dirty" if dirty else "") if commit else f"guttrial {pkg}"
    return {"code_version": label, "git_commit": commit, "git_dirty": dirty, "package_version": pkg}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        dagster_version = version("dagster")
    except PackageNotFoundError:
        dagster_version = "unknown"
    return {
        "python_version": platform.python_version(),
        "duckdb_version": duckdb.__version__,
        "dagster_version": dagster_version,
    }


def ensure_audit_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _DDL:
        con.execute(statement)


def record_run_start(
    con: duckdb.DuckDBPyConnection, run_id: str, config: RunConfig, started_at: dt.datetime | None = None
) -> bool:
    """Insert the run's ``started`` row unless the run already has one. True when a row was inserted."""
    ensure_audit_schema(con)
    exists = con.execute(f"select count(*) from {AUDIT_SCHEMA}.runs where run_id = ?", [run_id]).fetchone()[0]
    if exists:
        return False
    version = code_version()
    con.execute(
        f"""insert into {AUDIT_SCHEMA}.runs (run_id, status, started_at, os_user, host, pid, code_version,
            git_commit, git_dirty, package_version, python_version, duckdb_version, dagster_version, blinded,
            cutoff_date, landing_dir, warehouse_path, published_path, randomisation_list_path, config_json)
            values (?, 'started', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            run_id,
            started_at or utc_now(),
            os_user(),
            socket.gethostname(),
            os.getpid(),
            version["code_version"],
            version["git_commit"],
            version["git_dirty"],
            version["package_version"],
            *_versions().values(),
            not config.unblinded,
            config.cutoff_date,
            config.landing_dir,
            config.warehouse_path,
            config.published_path,
            config.randomisation_list_path if config.unblinded else None,
            config.to_json(),
        ],
    )
    return True


def landing_inputs(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, object]]:
    """Every landing file the run's loaders saw, with the checksum they verified (``raw.load_manifest``)."""
    have = con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'raw' and table_name = 'load_manifest'"
    ).fetchone()[0]
    if not have:
        return []
    rows = con.execute(
        "select family, path, sha256, size_bytes, status from raw.load_manifest where load_id = ? order by path",
        [run_id],
    ).fetchall()
    return [
        {"role": "landing", "family": f, "path": p, "sha256": s, "size_bytes": n, "status": st}
        for f, p, s, n, st in rows
    ]


def randomisation_list_input(path: Path | None) -> list[dict[str, object]]:
    """The randomisation list as an input of an unblinded run: path, size and checksum only."""
    if path is None or not path.is_file():
        return []
    return [
        {
            "role": "randomisation_list",
            "family": "restricted",
            "path": str(path),
            "sha256": file_sha256(path),
            "size_bytes": path.stat().st_size,
            "status": "read",
        }
    ]


def record_run_end(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    config: RunConfig,
    *,
    status: str,
    inputs: Sequence[Mapping[str, object]],
    outputs: Mapping[str, TableHash],
    checks: Sequence[CheckResult],
    hash_seconds: float | None = None,
    finished_at: dt.datetime | None = None,
) -> None:
    """Write the run's inputs, outputs and checks and close its ``runs`` row, in one transaction (a failure here
    leaves the ``started`` row as it was)."""
    ensure_audit_schema(con)
    con.execute("begin transaction")
    try:
        record_run_start(con, run_id, config)  # a run whose start was not recorded (e.g. lock held at start)
        for table in ("run_inputs", "run_outputs", "run_checks"):
            con.execute(f"delete from {AUDIT_SCHEMA}.{table} where run_id = ?", [run_id])
        if inputs:
            con.executemany(
                f"insert into {AUDIT_SCHEMA}.run_inputs values (?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        run_id,
                        i["role"],
                        i.get("family"),
                        i["path"],
                        i.get("sha256"),
                        i.get("size_bytes"),
                        i.get("status"),
                    ]
                    for i in inputs
                ],
            )
        if outputs:
            con.executemany(
                f"insert into {AUDIT_SCHEMA}.run_outputs values (?, ?, ?, ?, ?, ?, ?)",
                [
                    [run_id, h.schema, h.table, h.rows, h.columns, h.content_hash, list(h.excluded)]
                    for h in outputs.values()
                ],
            )
        if checks:
            con.executemany(
                f"insert into {AUDIT_SCHEMA}.run_checks values (?, ?, ?, ?, ?, ?)",
                [[run_id, c.asset_key, c.check_name, c.passed, c.severity, c.description] for c in checks],
            )
        failed = sorted(c.name for c in checks if not c.passed)
        con.execute(
            f"""update {AUDIT_SCHEMA}.runs set status = ?, finished_at = ?, n_input_files = ?, n_outputs = ?,
                checks_passed = ?, checks_failed = ?, failed_checks = ?, hash_seconds = ? where run_id = ?""",
            [
                status,
                finished_at or utc_now(),
                sum(1 for i in inputs if i["role"] == "landing"),
                len(outputs),
                sum(1 for c in checks if c.passed),
                len(failed),
                failed,
                hash_seconds,
                run_id,
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def record_run_failure(
    con: duckdb.DuckDBPyConnection, run_id: str, config: RunConfig, step: str, finished_at: dt.datetime | None = None
) -> None:
    """Mark the run failed at ``step`` (the first failing step is kept)."""
    record_run_start(con, run_id, config)
    con.execute(
        f"""update {AUDIT_SCHEMA}.runs set status = 'failed', finished_at = ?,
            failed_step = coalesce(failed_step, ?) where run_id = ? and status <> 'succeeded'""",
        [finished_at or utc_now(), step, run_id],
    )


def runs(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """All ``audit.runs`` rows, oldest first (empty when the warehouse has no audit yet)."""
    have = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = 'runs'", [AUDIT_SCHEMA]
    ).fetchone()[0]
    if not have:
        return []
    cursor = con.execute(f"select * from {AUDIT_SCHEMA}.runs order by started_at, run_id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def output_hashes(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """``schema.table`` -> content hash recorded for a run."""
    rows = con.execute(
        f"select schema_name, table_name, content_hash from {AUDIT_SCHEMA}.run_outputs where run_id = ?", [run_id]
    ).fetchall()
    return {f"{s}.{t}": h for s, t, h in rows}


def summarise_checks(checks: Iterable[CheckResult]) -> tuple[int, list[str]]:
    checks = list(checks)
    return sum(1 for c in checks if c.passed), sorted(c.name for c in checks if not c.passed)


def summary_line(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """One line for the build summary: how the run was recorded in ``audit.runs`` (None without an audit)."""
    rows = [r for r in runs(con) if r["run_id"] == run_id]
    if not rows:
        return None
    r = rows[0]
    blinding = "blinded" if r["blinded"] else "UNBLINDED"
    code = str(r["code_version"] or "?")
    outputs = f"{r['n_outputs']} output tables hashed" if r["n_outputs"] is not None else "no output hashes"
    return (
        f"  audit: run {run_id[:8]} {r['status']} ({blinding}) by {r['os_user']}@{r['host']}, code {code[:12]}"
        f"{'-dirty' if r['git_dirty'] else ''}; {outputs} (audit.runs, audit.run_inputs/outputs/checks)"
    )
