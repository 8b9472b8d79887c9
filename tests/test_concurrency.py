"""Concurrency: analysts reading while a refresh writes neither block the refresh nor see half-written marts.

Readers use the published copy (``<warehouse stem>_published.duckdb``), which the refresh replaces by an atomic
rename at its very end (orchestration/publish.py). While a real ``guttrial build`` rewrites the warehouse with a
different cut-off (so old and new marts differ), a reader process opens the published copy read-only in a loop and
reads, in one query, the number of audited runs, the cut-off of the last run and the row counts of three marts.
Every observation must be exactly the old snapshot or exactly the new one (never a mix, never an error); the build
must succeed (DuckDB raises at once on a lock conflict, so success means the writer was never blocked by the
readers); and a second reader that held the old copy open across the swap still reads the old snapshot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _reliability import Reference, build_env, reference_build, run_build

pytestmark = pytest.mark.slow

#: A cut-off that removes later visits: the rebuilt marts differ from the reference's.
CUTOFF = "2025-06-30"

SNAPSHOT_SQL = (
    "select (select count(*) from audit.runs) as runs, "
    "(select cast(max_by(cutoff_date, started_at) as varchar) from audit.runs where status = 'succeeded') as cutoff, "
    "(select count(*) from marts.tumor_measurements) as tumor, "
    "(select count(*) from marts.labs) as labs, "
    "(select count(*) from analysis.adtte) as adtte"
)

_LOOP_READER = textwrap.dedent(
    f"""
    import json, sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    import os
    while not os.path.exists(stop):
        try:
            with duckdb.connect(path, read_only=True) as con:
                row = con.execute({SNAPSHOT_SQL!r}).fetchone()
            print(json.dumps({{"ok": list(row)}}), flush=True)
        except Exception as exc:  # every failure is reported, the test fails on any
            print(json.dumps({{"error": f"{{type(exc).__name__}}: {{exc}}"}}), flush=True)
        time.sleep(0.05)
    """
)

_HOLDING_READER = textwrap.dedent(
    f"""
    import json, sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print(json.dumps(list(con.execute({SNAPSHOT_SQL!r}).fetchone())), flush=True)
    sys.stdin.readline()
    print(json.dumps(list(con.execute({SNAPSHOT_SQL!r}).fetchone())), flush=True)
    """
)


def _snapshot(path: Path) -> list:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import json, duckdb; print(json.dumps(list(duckdb.connect({str(path)!r}, read_only=True)"
            f".execute({SNAPSHOT_SQL!r}).fetchone())))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_readers_of_the_published_copy_never_block_the_refresh_nor_see_a_half_written_state(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, record_property
) -> None:
    reference: Reference = reference_build(tmp_path_factory)
    warehouse = tmp_path / "warehouse.duckdb"
    published = tmp_path / "warehouse_published.duckdb"
    shutil.copyfile(reference.warehouse, warehouse)
    shutil.copyfile(reference.published, published)
    published.chmod(0o444)
    old = _snapshot(published)
    stop = tmp_path / "stop"
    env = build_env()
    loop = subprocess.Popen(
        [sys.executable, "-c", _LOOP_READER, str(published), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDING_READER, str(published)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert json.loads(holder.stdout.readline()) == old
        done = run_build(reference.landing, warehouse, "--cutoff", CUTOFF, log=tmp_path / "build.log")
        new = _snapshot(published)
        stop.write_text("stop")
        observations = [json.loads(line) for line in loop.communicate(timeout=120)[0].splitlines()]
        holder.stdin.write("\n")
        holder.stdin.flush()
        held = json.loads(holder.stdout.readline())
    finally:
        stop.write_text("stop")
        for proc in (loop, holder):
            proc.kill()
            proc.wait()
    assert done.returncode == 0, done.stdout[-5000:]
    assert new != old and new[0] == old[0] + 1 and new[1] == CUTOFF and new[2] < old[2]
    errors = [o["error"] for o in observations if "error" in o]
    seen = [o["ok"] for o in observations if "ok" in o]
    assert errors == []
    assert len(seen) >= 20, "the reader loop hardly ran"
    mixed = [s for s in seen if s not in (old, new)]
    assert mixed == []
    assert seen[0] == old and seen[-1] == new
    assert held == old  # the reader that held the old copy still reads it, complete
    record_property("reads", len(seen))
    print(f"reads during the refresh: {len(seen)} ({seen.count(old)} old snapshot, {seen.count(new)} new); errors 0")
