"""Every SQL example of docs/querying.md runs, read-only, against a demo warehouse and returns rows."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from _warehouse import ROOT, DemoWarehouse, shared_demo_warehouse

DOC = ROOT / "docs" / "querying.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    return shared_demo_warehouse(tmp_path_factory)


def test_the_guide_has_the_promised_examples() -> None:
    text = DOC.read_text()
    assert "duckdb -readonly data/warehouse.duckdb" in text
    assert 'duckdb.connect("data/warehouse.duckdb", read_only=True)' in text
    assert len(QUERIES) >= 4
    for topic in ("arm_code", "treatment_emergent_fl", "nominal_visit", "read_count"):
        assert any(topic in q for q in QUERIES), topic


@pytest.fixture(scope="module")
def analysed(demo: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo warehouse with the microbiome analysis tables (for the guide's ``analysis.*`` examples;
    the shared warehouse holds the marts only). Few iterations and permutations: the examples only need rows."""
    import shutil

    import dagster as dg

    from orchestration.assets.microbiome import microbiome_assets
    from orchestration.resources import TrialSettings

    path = tmp_path_factory.mktemp("querying_analysis") / "warehouse.duckdb"
    shutil.copy(demo.warehouse, path)
    config = {"iterations": 10, "permutations": 99}
    result = dg.materialize(
        microbiome_assets,
        resources={"settings": TrialSettings(warehouse_path=str(path), unblinded="false")},
        run_config={"ops": {a.node_def.name: {"config": config} for a in microbiome_assets}},
    )
    assert result.success
    return path


@pytest.mark.parametrize("query", QUERIES, ids=[f"query{i + 1}" for i in range(len(QUERIES))])
def test_example_query_runs_read_only(demo: DemoWarehouse, query: str, request: pytest.FixtureRequest) -> None:
    warehouse = request.getfixturevalue("analysed") if "analysis." in query else demo.warehouse
    # Exactly as the guide says: the Python client, read-only.
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(query).fetchall()
    finally:
        con.close()
    assert rows, query


def test_itt_by_arm_code_is_blinded(demo: DemoWarehouse) -> None:
    with duckdb.connect(str(demo.warehouse), read_only=True) as con:
        rows = con.execute(QUERIES[0]).fetchall()
    assert [r[0] for r in rows] == ["BLINDED"]
    assert rows[0][1] == con_count(demo)


def con_count(demo: DemoWarehouse) -> int:
    with duckdb.connect(str(demo.warehouse), read_only=True) as con:
        return con.execute("select count(*) from raw.crf_rand").fetchone()[0]


def test_read_only_connection_cannot_write(demo: DemoWarehouse) -> None:
    with duckdb.connect(str(Path(demo.warehouse)), read_only=True) as con, pytest.raises(duckdb.Error):
        con.execute("create table marts.scratch as select 1")
