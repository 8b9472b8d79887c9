"""Publishing, the audit trail, content hashes and owner-only permissions, on small hand-made warehouses.

Fast: no dbt, no full build (the end-to-end behaviour is covered by test_faults.py, test_concurrency.py,
test_reproducibility.py and test_blinding_privacy.py on real builds).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from analysis.hashing import TableHash, diff_hashes, file_sha256, table_hash, warehouse_hashes
from orchestration import audit, publish
from orchestration.assets.unblinding import randomisation_list
from orchestration.permissions import is_owner_only, owner_only_umask, restrict, restrict_if_unblinded
from orchestration.resources import TrialSettings

ROOT = Path(__file__).resolve().parents[1]


def make_warehouse(path: Path, rows: int = 50) -> Path:
    """A warehouse with a raw CRF holding identifiers, a view over it, a mart and an analysis table."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw; create schema staging; create schema marts; create schema analysis")
        con.execute(
            "create table raw.crf_dm as select '01-' || lpad(i::varchar, 4, '0') as SUBJID, "
            "(80000000 + i)::varchar as MRN, 'PATIENT Name' || i as PATNAME, 'PN' as INITIALS, "
            "'1960-01-0' || (1 + i % 9) as BRTHDTC, 'M' as SEX from range(?) t(i)",
            [rows],
        )
        con.execute("create view staging.stg_dm as select SUBJID, SEX from raw.crf_dm")
        con.execute("create table marts.adsl as select SUBJID as subject_id, SEX as sex, random() as x from raw.crf_dm")
        con.execute(
            "create table analysis.summary as select sex, count(*) as n, avg(x) as mean_x from marts.adsl group by 1"
        )
        con.execute(
            "create table analysis.endpoint_run as select now()::timestamp as computed_at, 'config' as config_json"
        )
    return path


# ---------------------------------------------------------------------------------------------- hashing


def test_content_hash_ignores_row_order_and_storage_but_sees_every_value(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "h.duckdb"))
    con.execute("create schema s")
    con.execute("create table s.a as select i, i * 0.1::double as x, 'v' || i as v from range(1000) t(i)")
    con.execute("create table s.b as select * from s.a order by random()")
    a, b = table_hash(con, "s", "a"), table_hash(con, "s", "b")
    assert a.content_hash == b.content_hash and a.rows == 1000
    # One double changed in its last bit, one value set to NULL, a renamed column, a changed type: all differ.
    con.execute("update s.b set x = nextafter(x, 1e9) where i = 500")
    assert table_hash(con, "s", "b").content_hash != a.content_hash
    con.execute("create or replace table s.c as select * replace (case when i = 7 then null else v end as v) from s.a")
    assert table_hash(con, "s", "c").content_hash != a.content_hash
    con.execute("create or replace table s.d as select i, x, v as w from s.a")
    assert table_hash(con, "s", "d").content_hash != a.content_hash
    con.execute("create or replace table s.e as select i::integer as i, x, v from s.a")
    assert table_hash(con, "s", "e").content_hash != a.content_hash
    # Duplicated rows count: a table with one row twice is not the table with it once.
    con.execute("create or replace table s.f as select * from s.a union all select * from s.a where i = 3")
    assert table_hash(con, "s", "f").content_hash != a.content_hash
    # Excluded (volatile) columns are left out and named.
    hashed = table_hash(con, "s", "a", exclude=["X"])
    assert hashed.excluded == ("x",) and hashed.columns == 2


def test_warehouse_hashes_leave_out_the_documented_volatile_columns(tmp_path: Path) -> None:
    first = make_warehouse(tmp_path / "one.duckdb")
    with duckdb.connect(str(first)) as con:
        before = warehouse_hashes(con)
        con.execute("update analysis.endpoint_run set computed_at = computed_at + interval 1 day")
        after = warehouse_hashes(con)
        assert set(before) == {"marts.adsl", "analysis.summary", "analysis.endpoint_run"}
        assert diff_hashes(before, after) == []
        assert after["analysis.endpoint_run"].excluded == ("computed_at",)
        con.execute("update marts.adsl set sex = 'F' where subject_id = '01-0001'")
        assert diff_hashes(after, warehouse_hashes(con)) == ["marts.adsl: content differs (50 vs 50 rows)"]
    assert diff_hashes({"a.b": TableHash("a", "b", 1, 1, "x")}, {}) == ["a.b: only in the first"]


# ---------------------------------------------------------------------------------------------- publishing


def test_publish_withholds_identifiers_keeps_everything_else_and_is_read_only(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path / "warehouse.duckdb")
    target = tmp_path / "warehouse_published.duckdb"
    result = publish.publish_copy(warehouse, target, run_id="run-1")
    assert result.withheld == {"raw.crf_dm": ("MRN", "PATNAME", "INITIALS", "BRTHDTC")}
    assert stat.S_IMODE(target.stat().st_mode) == publish.PUBLISHED_MODE
    with duckdb.connect(str(warehouse), read_only=True) as src, duckdb.connect(str(target), read_only=True) as pub:
        assert diff_hashes(warehouse_hashes(src), warehouse_hashes(pub)) == []
        assert pub.execute("select count(*) from staging.stg_dm").fetchone()[0] == 50  # views work in the copy
        assert pub.execute(
            "select count(MRN) + count(PATNAME) + count(INITIALS) + count(BRTHDTC) from raw.crf_dm"
        ).fetchone() == (0,)
        assert pub.execute("select count(SUBJID), count(SEX) from raw.crf_dm").fetchone() == (50, 50)
        assert pub.execute("select run_id, withheld_columns from audit.publication").fetchone() == (
            "run-1",
            ["raw.crf_dm.MRN", "raw.crf_dm.PATNAME", "raw.crf_dm.INITIALS", "raw.crf_dm.BRTHDTC"],
        )
    # The identifier bytes never reach the file (built table by table, not copied and blanked).
    data = target.read_bytes()
    assert b"80000017" not in data and b"PATIENT Name17" not in data
    assert b"80000017" in warehouse.read_bytes() or True  # (the working file may compress them; not asserted)


def test_publish_swaps_atomically_and_a_reader_keeps_its_snapshot(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path / "warehouse.duckdb")
    target = tmp_path / "warehouse_published.duckdb"
    publish.publish_copy(warehouse, target)
    stale = target.with_name(target.name + publish.TMP_MARK + "999-dead")
    stale.write_bytes(b"half a copy from a killed publish")
    # A reader in another process holds the published copy open across the next publish.
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, duckdb
                con = duckdb.connect({str(target)!r}, read_only=True)
                print(con.execute("select count(*) from marts.adsl").fetchone()[0], flush=True)
                sys.stdin.readline()
                print(con.execute("select count(*) from marts.adsl").fetchone()[0], flush=True)
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "50"
        with duckdb.connect(str(warehouse)) as con:
            con.execute("insert into marts.adsl select subject_id || 'b', sex, x from marts.adsl")
        publish.publish_copy(warehouse, target)  # the writer is not blocked by the reader
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "50"  # the old snapshot, complete
    finally:
        reader.kill()
        reader.wait()
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("select count(*) from marts.adsl").fetchone()[0] == 100  # a new open: the new copy
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb", "warehouse_published.duckdb"]


def test_publish_on_a_full_disk_fails_cleanly_and_keeps_the_previous_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = make_warehouse(tmp_path / "warehouse.duckdb")
    target = tmp_path / "warehouse_published.duckdb"
    publish.publish_copy(warehouse, target)
    before = file_sha256(target)
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:  # the temporary copy is written, then the disk is full at fsync
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(publish.os, "fsync", full_disk)
    with pytest.raises(publish.PublishError, match=r"previous copy is unchanged: disk full"):
        publish.publish_copy(warehouse, target)
    monkeypatch.setattr(publish.os, "fsync", real_fsync)
    assert file_sha256(target) == before
    assert publish.stale_temporaries(target) == []

    def duckdb_full(*args: object, **kwargs: object) -> int:
        raise duckdb.IOException('IO Error: Could not write file "x": No space left on device')

    monkeypatch.setattr(publish, "_copy_database", duckdb_full)
    with pytest.raises(publish.PublishError, match="disk full"):
        publish.publish_copy(warehouse, target)
    assert file_sha256(target) == before and publish.stale_temporaries(target) == []


# ---------------------------------------------------------------------------------------------- audit


def _config(tmp_path: Path, unblinded: bool = False) -> audit.RunConfig:
    return audit.RunConfig(
        landing_dir=str(tmp_path / "landing"),
        warehouse_path=str(tmp_path / "w.duckdb"),
        published_path=str(tmp_path / "w_published.duckdb"),
        cutoff_date=None,
        unblinded=unblinded,
        randomisation_list_path=str(tmp_path / "list.csv") if unblinded else None,
        environment={"GUTTRIAL_MICROBIOME_ITERATIONS": "10"},
    )


def test_audit_records_start_end_and_failure(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    config = _config(tmp_path)
    assert audit.record_run_start(con, "r1", config)
    assert not audit.record_run_start(con, "r1", config)  # idempotent (one row per run, several processes)
    audit.record_run_start(con, "r2", config)
    audit.record_run_failure(con, "r2", config, "dbt_models")
    audit.record_run_failure(con, "r2", config, "later_step")  # the first failing step is kept
    audit.record_run_start(con, "r3", config)  # killed: never finished
    hashes = {"marts.adsl": TableHash("marts", "adsl", 3, 2, "abc")}
    checks = [audit.CheckResult("marts/adsl", "unique", True), audit.CheckResult("raw/crf_dm", "files_ok", False)]
    inputs = [{"role": "landing", "family": "crf", "path": "crf/dm.csv", "sha256": "f" * 64, "size_bytes": 10}]
    audit.record_run_end(con, "r1", config, status="succeeded", inputs=inputs, outputs=hashes, checks=checks)
    rows = {r["run_id"]: r for r in audit.runs(con)}
    assert rows["r1"]["status"] == "succeeded" and rows["r1"]["finished_at"] is not None
    assert rows["r1"]["checks_passed"] == 1 and rows["r1"]["failed_checks"] == ["raw/crf_dm:files_ok"]
    assert rows["r1"]["n_input_files"] == 1 and rows["r1"]["n_outputs"] == 1
    assert rows["r2"]["status"] == "failed" and rows["r2"]["failed_step"] == "dbt_models"
    assert rows["r3"]["status"] == "started" and rows["r3"]["finished_at"] is None
    assert audit.output_hashes(con, "r1") == {"marts.adsl": "abc"}
    first = rows["r1"]
    assert first["os_user"] and first["host"] and first["blinded"] is True and first["pid"] == os.getpid()
    assert json.loads(first["config_json"])["environment"] == {"GUTTRIAL_MICROBIOME_ITERATIONS": "10"}
    assert "list.csv" not in first["config_json"]


def test_code_version_is_the_git_commit_offline() -> None:
    version = audit.code_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert version["git_commit"] == head.stdout.strip()
    assert str(version["code_version"]).startswith(head.stdout.strip())


def test_a_run_is_audited_and_published_by_the_last_step(tmp_path: Path) -> None:
    """The real publish asset at the end of a small graph: audit row, output hashes, checks, published copy."""
    warehouse = make_warehouse(tmp_path / "warehouse.duckdb")

    @dg.asset(key=dg.AssetKey(["marts", "touch"]), check_specs=[dg.AssetCheckSpec("ok", asset=["marts", "touch"])])
    def touch(settings: TrialSettings):
        with settings.connect() as con:
            con.execute("create or replace table marts.touch as select 1 as x")
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(passed=False, check_name="ok", severity=dg.AssetCheckSeverity.WARN)

    settings = TrialSettings(warehouse_path=str(warehouse), landing_dir=str(tmp_path), unblinded="false")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [touch, publish.build_publish_asset([touch])], resources={"settings": settings}, instance=instance
    )
    assert result.success
    published = tmp_path / "warehouse_published.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        (run,) = audit.runs(con)
        assert run["run_id"] == result.run_id and run["status"] == "succeeded" and run["blinded"] is True
        assert run["failed_checks"] == ["marts/touch:ok"] and run["checks_passed"] == 0
        recorded = audit.output_hashes(con, result.run_id)
        assert recorded == {k: h.content_hash for k, h in warehouse_hashes(con).items()}
        assert "marts.touch" in recorded


def test_a_failing_run_is_audited_as_failed_by_the_hook(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"

    @dg.asset
    def broken(settings: TrialSettings) -> None:
        raise RuntimeError("boom")

    job = dg.define_asset_job("j", hooks={publish.audit_failure_hook})
    defs = dg.Definitions(
        assets=[broken], jobs=[job], resources={"settings": TrialSettings(warehouse_path=str(warehouse))}
    )
    result = defs.resolve_job_def("j").execute_in_process(raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (run,) = audit.runs(con)
    assert run["status"] == "failed" and run["failed_step"] == "broken" and run["run_id"] == result.run_id


def test_publish_step_runs_last_after_every_terminal_asset() -> None:
    from orchestration.definitions import REFRESH_JOB, defs

    graph = defs.resolve_asset_graph()
    parents = graph.get(publish.PUBLISH_KEY).parent_keys
    others = {k for k in graph.get_all_asset_keys() if k != publish.PUBLISH_KEY}
    # Every other asset is upstream of the publish step (directly or through a terminal asset).
    upstream = graph.get_ancestor_asset_keys(publish.PUBLISH_KEY) if hasattr(graph, "get_ancestor_asset_keys") else None
    assert parents
    if upstream is not None:
        assert others <= set(upstream)
    job = defs.resolve_job_def(REFRESH_JOB)
    assert publish.audit_failure_hook in job.hook_defs
    node = next(n for n in job.graph.node_defs if n.name == "published_warehouse")
    assert node.tags.get("dagster/priority") == publish.PUBLISH_PRIORITY


# ---------------------------------------------------------------------------------------------- permissions


def test_owner_only_helpers(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "page.html").write_text("x")
    (folder / "ro.duckdb").write_text("x")
    os.chmod(folder / "ro.duckdb", 0o444)
    os.chmod(folder, 0o755)

    class Blinded:
        is_unblinded = False

    class Unblinded:
        is_unblinded = True

    assert restrict_if_unblinded(folder, Blinded()) == []
    assert not is_owner_only(folder)
    restrict_if_unblinded([folder], Unblinded())
    assert all(is_owner_only(p) for p in [folder, *folder.rglob("*")])
    assert stat.S_IMODE((folder / "ro.duckdb").stat().st_mode) == 0o400  # read-only stays read-only
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert restrict(tmp_path / "missing") == []
    with owner_only_umask():
        (tmp_path / "new.txt").write_text("x")
        (tmp_path / "newdir").mkdir()
    assert is_owner_only(tmp_path / "new.txt") and is_owner_only(tmp_path / "newdir")


def test_unblinded_connection_makes_the_warehouse_owner_only(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse_unblinded.duckdb"
    with TrialSettings(warehouse_path=str(warehouse), unblinded="true").connect() as con:
        con.execute("create table t as select 1")
    assert is_owner_only(warehouse)
    blinded = tmp_path / "warehouse.duckdb"
    with TrialSettings(warehouse_path=str(blinded), unblinded="false").connect() as con:
        con.execute("create table t as select 1")
    assert not is_owner_only(blinded)


# ---------------------------------------------------------------------------------------------- unblinding control

_OPEN_AUDIT = textwrap.dedent(
    """
    import json, sys
    opened = []
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            opened.append(str(args[0]))
    sys.addaudithook(hook)
    import dagster as dg
    from orchestration.assets.unblinding import randomisation_list
    from orchestration.resources import TrialSettings
    warehouse, listing, unblinded = sys.argv[1:4]
    settings = TrialSettings(warehouse_path=warehouse, unblinded=unblinded, randomisation_list=listing)
    result = dg.materialize([randomisation_list], resources={"settings": settings}, raise_on_error=False)
    print(json.dumps({"success": result.success, "opened": opened}))
    """
)


def _materialise_with_open_audit(warehouse: Path, listing: Path, unblinded: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_AUDIT, str(warehouse), str(listing), unblinded],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GUTTRIAL_") and k != "DAGSTER_HOME"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_blinded_run_never_opens_the_randomisation_list_even_when_given(tmp_path: Path) -> None:
    listing = tmp_path / "restricted" / "randomisation_list.csv"
    listing.parent.mkdir()
    listing.write_text("RANDNO,ARM\n10001,PLACEBO\n10002,CAPSULE\n")
    blinded = _materialise_with_open_audit(tmp_path / "warehouse.duckdb", listing, "false")
    assert blinded["success"]
    assert not [p for p in blinded["opened"] if "randomisation_list" in p]
    # Positive control: the same audit sees the unblinded run open it.
    unblinded = _materialise_with_open_audit(tmp_path / "warehouse_unblinded.duckdb", listing, "true")
    assert unblinded["success"]
    assert str(listing) in unblinded["opened"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from duckdb_schemas() where schema_name = 'restricted'").fetchone()[0] == 0


def test_an_unblinded_run_into_a_blinded_file_is_refused_before_any_write(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("RANDNO,ARM\n10001,PLACEBO\n")
    settings = TrialSettings(
        warehouse_path=str(tmp_path / "warehouse.duckdb"), unblinded="true", randomisation_list=str(listing)
    )
    result = dg.materialize([randomisation_list], resources={"settings": settings}, raise_on_error=False)
    assert not result.success
    assert not (tmp_path / "warehouse.duckdb").exists()  # not even an audit row in the blinded file


def test_the_build_summary_names_the_root_cause_of_a_full_disk(tmp_path: Path) -> None:
    @dg.asset
    def writer() -> None:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "warehouse.duckdb.wal")
        except OSError as exc:
            raise RuntimeError("could not write the table") from exc

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([writer], instance=instance, raise_on_error=False)
    lines = publish.failure_lines(instance, result.run_id, tmp_path / "warehouse.duckdb")
    assert lines[0].startswith("  step writer failed: OSError: [Errno 28] No space left on device")
    assert lines[1].startswith(f"  DISK FULL in {tmp_path}")


def test_a_randomisation_list_dropped_into_the_landing_folder_leaves_no_trace_of_its_content(tmp_path: Path) -> None:
    from analysis.ingest import load_family

    landing = tmp_path / "landing"
    (landing / "crf").mkdir(parents=True)
    (landing / "crf" / "rand.csv").write_text(
        "STUDYID,SITEID,SUBJID,RANDNO,RANDDTC\nHCC-GUT-01,01,01-0001,10001,2024-03-01\n"
    )
    listing = landing / "crf" / "randomisation_list.csv"
    listing.write_text("RANDNO,ARM\n10001,PLACEBO\n")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        report = load_family(con, landing, "crf")
        assert [o.status for o in report.outcomes if o.path.endswith("randomisation_list.csv")] == ["rejected"]
        cells = con.execute("select * from raw.load_manifest").fetchall()
    text = json.dumps(cells, default=str)
    assert "PLACEBO" not in text
    assert file_sha256(listing) not in text
