"""Faults: a run killed at the worst moment, a full disk and a read-only landing folder never lose or corrupt data.

* **SIGKILL** (the whole process group: the build and its dbt subprocess, as a power cut, the OOM killer or a
  cancelled CI job would) while the build is inside (a) raw loading, (b) dbt, (c) an analysis asset. The kills are
  chained on one warehouse file (each run starts from what the previous kill left). After every kill the file opens
  (DuckDB replays or discards its write-ahead log), the raw layer holds no row of an uncommitted load, the audit
  shows the killed run as ``started`` and never finished, and the published copy is untouched. A final undisturbed
  run then converges to exactly the marts and analysis results of an undisturbed build (same content hashes).
* **Disk full**: the warehouse on a small tmpfs; the build fails with a message naming the cause and a non-zero
  exit, the published copy keeps its previous content and the working file still opens (that the next run then
  converges is what the SIGKILL test shows). Needs ``mount`` (root in a privileged container); skipped with the
  reason otherwise. The
  injected-ENOSPC variant of the publish step is in test_publish_audit.py (always runs).
* **Read-only landing**: the loaders read a read-only bind mount of the landing folder (root ignores file modes,
  a read-only mount it does not) and leave every file's checksum unchanged; and an audit of every ``open`` the
  loaders make finds no write mode on a landing path (always runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from _reliability import (
    Reference,
    build_env,
    demo_trial,
    kill_group,
    output_hashes,
    reference_build,
    run_build,
    start_build,
    wait_for_group_exit,
)

from analysis.hashing import file_sha256
from orchestration import audit

#: (what, the step whose start line we wait for, seconds to let it work before the kill)
KILL_POINTS: tuple[tuple[str, str, float], ...] = (
    ("raw loading", "load_sequencing", 1.0),
    ("dbt", "dbt_models", 8.0),
    ("an analysis asset", "microbiome_alpha", 3.0),
)


def _kill_inside(landing: Path, warehouse: Path, step: str, delay: float) -> tuple[list[str], bool]:
    """Start a build, SIGKILL its process group ``delay`` seconds after ``step`` starts; returns the output lines
    and whether a write-ahead log was left behind."""
    proc = start_build(landing, warehouse)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.strip() == f"... {step}":
                time.sleep(delay)
                break
        else:
            raise AssertionError(f"the build ended before step {step} started:\n" + "\n".join(lines[-40:]))
        assert proc.poll() is None, "the build finished before it could be killed"
    finally:
        kill_group(proc)
        wait_for_group_exit(proc.pid)
    wal = warehouse.with_name(warehouse.name + ".wal")
    return lines, wal.exists()


def _check_after_kill(warehouse: Path, published: Path) -> dict[str, int]:
    """The killed warehouse opens read-only (WAL replayed in memory), every table reads, no raw row belongs to
    a load that did not commit, and then a read-write open replays the WAL for good."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()
        rows = {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}
        if "raw.load_manifest" in rows:
            for schema, table in tables:
                if schema == "raw" and table != "load_manifest":
                    orphans = con.execute(
                        f'select count(*) from raw."{table}" where _load_id not in '
                        "(select load_id from raw.load_manifest)"
                    ).fetchone()[0]
                    assert orphans == 0, f"raw.{table}: {orphans} rows of an uncommitted load"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
    assert not published.exists(), "a killed run must not publish"
    return rows


@pytest.mark.slow
def test_killed_runs_leave_a_readable_warehouse_and_the_next_run_converges(
    tmp_path_factory: pytest.TempPathFactory, record_property
) -> None:
    reference: Reference = reference_build(tmp_path_factory)
    folder = tmp_path_factory.mktemp("faults")
    warehouse = folder / "warehouse.duckdb"
    published = folder / "warehouse_published.duckdb"
    injected: list[dict[str, object]] = []
    for what, step, delay in KILL_POINTS:
        lines, wal = _kill_inside(reference.landing, warehouse, step, delay)
        assert warehouse.exists(), f"killed inside {what}: no warehouse file"
        _check_after_kill(warehouse, published)
        injected.append({"fault": f"SIGKILL inside {what}", "step": step, "wal_left": wal, "lines": len(lines)})
    done = run_build(reference.landing, warehouse, log=folder / "final.log")
    assert done.returncode == 0, done.stdout[-5000:]
    converged = output_hashes(warehouse)
    differences = sorted(
        k for k in set(converged) | set(reference.hashes) if converged.get(k) != reference.hashes.get(k)
    )
    assert differences == []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = audit.runs(con)
    # Every killed run that got as far as the warehouse left a "started" row that never finished.
    statuses = [r["status"] for r in runs]
    assert statuses[-1] == "succeeded" and statuses.count("succeeded") == 1
    assert all(r["status"] == "started" and r["finished_at"] is None for r in runs[:-1])
    assert len(runs) == len(KILL_POINTS) + 1
    assert published.exists()
    record_property("faults", json.dumps(injected))
    print(f"faults injected: {len(injected)}; converged: 1 final run, {len(differences)} differing tables")
    for fault in injected:
        print(f"  {fault}")


# ---------------------------------------------------------------------------------------------- disk full


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill the disk ({done.stderr.strip() or 'mount failed'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.mark.slow
def test_disk_full_fails_cleanly_and_keeps_the_published_copy(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    reference: Reference = reference_build(tmp_path_factory)
    size = reference.warehouse.stat().st_size + reference.published.stat().st_size
    with tmpfs(tmp_path / "small", size_mb=size // 2**20 + 6) as disk:
        warehouse = disk / "warehouse.duckdb"
        published = disk / "warehouse_published.duckdb"
        for source, target in ((reference.warehouse, warehouse), (reference.published, published)):
            target.write_bytes(source.read_bytes())
        published.chmod(0o444)
        before = file_sha256(published)
        done = run_build(reference.landing, warehouse)
        output = done.stdout + done.stderr
        assert done.returncode == 1, output[-3000:]
        assert "FAILED" in done.stdout
        assert "DISK FULL in" in done.stdout or "a full disk may be the cause" in done.stdout, output[-3000:]
        assert "Traceback" not in done.stdout  # a message, not a crash dump on the terminal
        assert file_sha256(published) == before
        with duckdb.connect(str(published), read_only=True) as con:
            assert con.execute("select count(*) from marts.adsl").fetchone()[0] > 0
        with duckdb.connect(str(warehouse), read_only=True) as con:
            assert con.execute("select count(*) from raw.load_manifest").fetchone()[0] > 0
        # The failed run is on record (the failure hook may itself have hit the full disk: then "started").
        with duckdb.connect(str(warehouse), read_only=True) as con:
            assert audit.runs(con)[-1]["status"] in ("failed", "started")


# ---------------------------------------------------------------------------------------------- landing


_LOAD_WITH_OPEN_AUDIT = textwrap.dedent(
    """
    import json, os, sys
    landing, warehouse = sys.argv[1:3]
    writes = []
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.realpath(os.fsdecode(args[0]))
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            )
            if writing and path.startswith(os.path.realpath(landing)):
                writes.append([path, str(mode), flags])
    sys.addaudithook(hook)
    import duckdb
    from analysis.ingest import load_family
    from analysis.ingest.raw_schema import FAMILY_TABLES
    counts = {}
    with duckdb.connect(warehouse) as con:
        for family in FAMILY_TABLES:
            report = load_family(con, landing, family)
            counts[family] = {s: report.count(s) for s in ("loaded", "unchanged", "rejected")}
    print(json.dumps({"writes": writes, "counts": counts}))
    """
)


def _landing_checksums(landing: Path) -> dict[str, str]:
    return {str(p.relative_to(landing)): file_sha256(p) for p in sorted(landing.rglob("*")) if p.is_file()}


def _load_all(landing: Path, warehouse: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_WITH_OPEN_AUDIT, str(landing), str(warehouse)],
        env=build_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loaders_never_open_a_landing_file_for_writing(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    landing = demo_trial(tmp_path_factory) / "landing"
    before = _landing_checksums(landing)
    result = _load_all(landing, tmp_path / "warehouse.duckdb")
    assert result["writes"] == []
    assert all(c["rejected"] == 0 and c["loaded"] > 0 for c in result["counts"].values()), result["counts"]
    assert _landing_checksums(landing) == before


def test_loaders_work_from_a_read_only_mount(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    landing = demo_trial(tmp_path_factory) / "landing"
    mounted = tmp_path / "landing_ro"
    mounted.mkdir()
    bind = subprocess.run(["mount", "--bind", str(landing), str(mounted)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount the landing folder read-only ({bind.stderr.strip() or 'mount failed'})")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only ({remount.stderr.strip()})")
        with pytest.raises(OSError):  # really read-only, even for root
            (mounted / "probe").write_text("x")
        before = _landing_checksums(mounted)
        result = _load_all(mounted, tmp_path / "warehouse.duckdb")
        assert all(c["rejected"] == 0 and c["loaded"] > 0 for c in result["counts"].values()), result["counts"]
        # Loading twice from the read-only folder is idempotent: everything unchanged the second time.
        again = _load_all(mounted, tmp_path / "warehouse.duckdb")
        assert all(c["loaded"] == 0 and c["unchanged"] > 0 for c in again["counts"].values()), again["counts"]
        assert _landing_checksums(mounted) == before
    finally:
        subprocess.run(["umount", "-l", str(mounted)], capture_output=True, check=False)
    assert not os.path.ismount(mounted)


# ---------------------------------------------------------------------------------------------- write-ahead log

_WAL_WRITER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("set checkpoint_threshold = '1GB'")  # keep the committed work in the WAL, as mid-run
    con.execute("create table t as select range as i from range(1000)")
    con.execute("insert into t select range + 1000 from range(1000)")
    con.execute("begin transaction")
    con.execute("insert into t select -1 from range(5)")  # never committed
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_writer_leaves_a_wal_that_replays_committed_work_only(tmp_path: Path) -> None:
    """The builds above are rarely killed with a WAL on disk (DuckDB checkpoints often); this forces one, with an
    uncommitted transaction, then tears the WAL's tail as a crash mid-write would."""
    path = tmp_path / "w.duckdb"
    wal = tmp_path / "w.duckdb.wal"
    proc = subprocess.Popen([sys.executable, "-c", _WAL_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert wal.exists() and wal.stat().st_size > 0
    with duckdb.connect(str(path), read_only=True) as con:  # replayed in memory, file untouched
        assert con.execute("select count(*), min(i), max(i) from t").fetchone() == (2000, 0, 1999)
    with open(wal, "ab") as fh:  # a torn tail: half-written bytes after the last complete entry
        fh.write(os.urandom(4096))
    with duckdb.connect(str(path)) as con:  # read-write: replayed for good
        assert con.execute("select count(*), min(i), max(i) from t").fetchone() == (2000, 0, 1999)
    assert not wal.exists()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select count(*) from t").fetchone() == (2000,)
