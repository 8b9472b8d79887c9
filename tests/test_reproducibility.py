"""Reproducibility: the same landing folder and configuration give identical marts and analysis results.

* Two independent ``guttrial build`` runs of the demo trial into two warehouse files: every mart and analysis table
  has the same content hash (:mod:`analysis.hashing`: order-independent, exact to the last bit of every double),
  the distance-matrix files are byte-identical, and each run recorded exactly these hashes in its audit.
* Row order is not content: the marts of a built warehouse are rewritten in a random physical order and the analysis
  assets recomputed; every analysis table must come out identical. This catches results that depend on the order
  DuckDB happens to return rows in (floating-point sums over unsorted reads), which two builds only reveal by luck.

Columns that legitimately differ (a computation timestamp, a file path that follows the warehouse location) are
excluded by name in :data:`analysis.hashing.VOLATILE_COLUMNS`; run ids and load times live in ``raw.load_manifest``
and ``audit``, which are not outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from _reliability import ITERATIONS, Reference, output_hashes, reference_build, run_build

from analysis.hashing import diff_hashes, file_sha256, warehouse_hashes
from orchestration import audit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return reference_build(tmp_path_factory)


@pytest.fixture(scope="module")
def second_build(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    warehouse = tmp_path_factory.mktemp("second") / "other_name.duckdb"
    done = run_build(reference.landing, warehouse, log=warehouse.with_suffix(".log"))
    assert done.returncode == 0, done.stdout[-5000:]
    return warehouse


def _distance_files(warehouse: Path) -> dict[str, str]:
    folder = warehouse.parent / f"{warehouse.stem}_microbiome"
    return {p.name: file_sha256(p) for p in sorted(folder.glob("*"))} if folder.is_dir() else {}


def test_two_builds_give_identical_marts_and_results(reference: Reference, second_build: Path) -> None:
    again = output_hashes(second_build)
    assert len(reference.hashes) >= 60 and any(k.startswith("marts.") for k in reference.hashes)
    assert diff_hashes_by_name(reference.hashes, again) == []
    assert _distance_files(reference.warehouse) == _distance_files(second_build) != {}


def diff_hashes_by_name(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return [
        f"{name}: {'missing' if name not in a or name not in b else 'content differs'}"
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name)
    ]


def test_each_run_recorded_the_hashes_of_what_it_produced(reference: Reference, second_build: Path) -> None:
    for warehouse in (reference.warehouse, second_build):
        with duckdb.connect(str(warehouse), read_only=True) as con:
            (run,) = [r for r in audit.runs(con) if r["status"] == "succeeded"][-1:]
            recorded = audit.output_hashes(con, run["run_id"])
            now = {k: h.content_hash for k, h in warehouse_hashes(con).items()}
            assert recorded == now
            assert run["n_input_files"] >= 20
            checks = con.execute(
                "select count(*) filter (where passed), count(*) filter (where not passed) from audit.run_checks "
                "where run_id = ?",
                [run["run_id"]],
            ).fetchone()
            assert checks == (run["checks_passed"], run["checks_failed"]) and checks[0] > 0
            excluded = dict(
                con.execute(
                    "select schema_name || '.' || table_name, excluded_columns from audit.run_outputs "
                    "where run_id = ? and len(excluded_columns) > 0",
                    [run["run_id"]],
                ).fetchall()
            )
            assert excluded == {"analysis.endpoint_run": ["computed_at"], "analysis.beta_distance_files": ["path"]}


def _recompute_on_shuffled_marts(reference: Reference, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.assets.endpoints import endpoint_assets
    from orchestration.assets.metabolomics import metabolite_genus_correlations, metabolomics_analysis
    from orchestration.assets.microbiome import microbiome_assets
    from orchestration.resources import TrialSettings

    shutil.copyfile(reference.warehouse, target)
    target.chmod(0o644)
    with duckdb.connect(str(target)) as con:
        con.execute("select setseed(0.2024)")
        for (table,) in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall():
            con.execute(f'create or replace table marts."{table}" as select * from marts."{table}" order by random()')
        con.execute("drop schema analysis cascade")
    monkeypatch.setenv("GUTTRIAL_MICROBIOME_ITERATIONS", ITERATIONS)
    settings = TrialSettings(warehouse_path=str(target), landing_dir=str(reference.landing), unblinded="false")
    result = dg.materialize(
        [*endpoint_assets, metabolomics_analysis, metabolite_genus_correlations, *microbiome_assets],
        resources={"settings": settings},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success


@pytest.fixture(scope="module")
def shuffled(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("shuffled") / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        _recompute_on_shuffled_marts(reference, target, mp)
    with duckdb.connect(str(target), read_only=True) as con:
        return {k: h.content_hash for k, h in warehouse_hashes(con, ["analysis"]).items()}


def test_results_do_not_depend_on_the_physical_order_of_the_marts(reference: Reference, shuffled: dict) -> None:
    expected = {k: v for k, v in reference.hashes.items() if k.startswith("analysis.")}
    assert diff_hashes_by_name(expected, shuffled) == []


def test_the_hash_comparison_would_notice_a_difference(reference: Reference, tmp_path: Path) -> None:
    """Guard against a comparison that is blind: one changed value in one mart shows up as exactly that table."""
    copy = tmp_path / "changed.duckdb"
    shutil.copyfile(reference.warehouse, copy)
    copy.chmod(0o644)
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "update marts.labs set standard_value = standard_value + 1e-9 "
            "where rowid = (select min(rowid) from marts.labs where standard_value is not null)"
        )
        changed = warehouse_hashes(con)
    with duckdb.connect(str(reference.warehouse), read_only=True) as con:
        original = warehouse_hashes(con)
    rows = changed["marts.labs"].rows
    assert diff_hashes(original, changed) == [f"marts.labs: content differs ({rows} vs {rows} rows)"]
