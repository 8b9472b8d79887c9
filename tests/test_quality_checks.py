"""Quality checks as Dagster asset checks: blocking semantics, batching and wiring into the definitions.

The first tests pin down what Dagster 1.13 does with checks defined *apart* from their asset, in one
``multi_asset_check`` (the shape ``orchestration.checks.quality`` uses): a failed blocking check with
severity ERROR stops the assets downstream, a warning or a non-blocking spec does not, and a check step
that waits for another layer's checks (``additional_deps``) is skipped with everything after it. The last
tests check that the real definitions wire the batches as designed. (No ``from __future__ import annotations``:
Dagster reads the decorated functions' annotations.)
"""

from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan

from orchestration.checks.quality import CHECK_NAME, plan_batches, suite_factories

UP = dg.AssetKey("upstream")
STAGE = dg.AssetKey(["staging", "model"])
MART = dg.AssetKey(["marts", "table"])


def _graph(outcome: str, ran: list[str]) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """upstream -> downstream -> further, and one batch check step on upstream with a blocking and a
    non-blocking spec. ``outcome``: "pass", "error" (blocking spec fails with ERROR), "warn" (blocking spec
    fails with WARN), "nonblocking" (only the non-blocking spec fails, with ERROR)."""

    @dg.asset(key=UP)
    def upstream() -> None:
        ran.append("upstream")

    @dg.asset(deps=[UP])
    def downstream() -> None:
        ran.append("downstream")

    @dg.asset(deps=[downstream])
    def further() -> None:
        ran.append("further")

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(CHECK_NAME, asset=UP, blocking=True),
            dg.AssetCheckSpec("quality_warnings", asset=UP, blocking=False),
        ],
        can_subset=True,
    )
    def quality_batch() -> Iterator[dg.AssetCheckResult]:
        ran.append("checks")
        yield dg.AssetCheckResult(
            asset_key=UP,
            check_name=CHECK_NAME,
            passed=outcome in ("pass", "nonblocking"),
            severity=dg.AssetCheckSeverity.WARN if outcome == "warn" else dg.AssetCheckSeverity.ERROR,
        )
        yield dg.AssetCheckResult(
            asset_key=UP,
            check_name="quality_warnings",
            passed=outcome != "nonblocking",
            severity=dg.AssetCheckSeverity.ERROR,
        )

    return [upstream, downstream, further, quality_batch]


def _started(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}


@pytest.mark.parametrize(
    ("outcome", "downstream_runs"),
    [("pass", True), ("error", False), ("warn", True), ("nonblocking", True)],
)
def test_blocking_multi_asset_check_gates_downstream(outcome: str, downstream_runs: bool) -> None:
    ran: list[str] = []
    defs = _graph(outcome, ran)
    job = dg.Definitions(assets=defs[:3], asset_checks=defs[3:]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(raise_on_error=False)
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert ran[:2] == ["upstream", "checks"]  # the check step runs before anything downstream of upstream
    assert (dg.AssetKey("downstream") in materialized) is downstream_runs
    assert (dg.AssetKey("further") in materialized) is downstream_runs
    assert ("further" in ran) is downstream_runs
    # The run fails exactly when a blocking check failed with ERROR; the evaluations are recorded either way.
    assert result.success is downstream_runs
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {CHECK_NAME, "quality_warnings"}
    assert evaluations[CHECK_NAME].passed is (outcome in ("pass", "nonblocking"))
    if not downstream_runs:
        assert _started(result) == {"upstream", "quality_batch"}


def _chain(staging_passes: bool, ran: list[str]) -> dg.Definitions:
    """dbt-like step writing staging + marts, a staging check batch, a marts check batch that waits for the
    staging checks (additional_deps), and an analysis asset reading the mart."""

    @dg.multi_asset(specs=[dg.AssetSpec(STAGE), dg.AssetSpec(MART, deps=[STAGE])])
    def dbt_models() -> Iterator[dg.MaterializeResult]:
        ran.append("dbt")
        yield dg.MaterializeResult(asset_key=STAGE)
        yield dg.MaterializeResult(asset_key=MART)

    @dg.multi_asset_check(specs=[dg.AssetCheckSpec(CHECK_NAME, asset=STAGE, blocking=True)], name="quality_staging")
    def staging_checks() -> Iterator[dg.AssetCheckResult]:
        ran.append("staging checks")
        yield dg.AssetCheckResult(asset_key=STAGE, passed=staging_passes, severity=dg.AssetCheckSeverity.ERROR)

    @dg.multi_asset_check(
        specs=[dg.AssetCheckSpec(CHECK_NAME, asset=MART, blocking=True, additional_deps=[STAGE])],
        name="quality_marts",
    )
    def mart_checks() -> Iterator[dg.AssetCheckResult]:
        ran.append("marts checks")
        yield dg.AssetCheckResult(asset_key=MART, passed=True)

    @dg.asset(deps=[MART])
    def endpoint() -> None:
        ran.append("endpoint")

    return dg.Definitions(assets=[dbt_models, endpoint], asset_checks=[staging_checks, mart_checks])


@pytest.mark.parametrize("staging_passes", [True, False])
def test_failed_staging_check_stops_everything_after_the_marts(staging_passes: bool) -> None:
    ran: list[str] = []
    job = _chain(staging_passes, ran).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(raise_on_error=False)
    if staging_passes:
        assert ran == ["dbt", "staging checks", "marts checks", "endpoint"]
        assert result.success
    else:
        # dbt is one step: its marts are already built; the marts' checks and the endpoint do not run.
        assert ran == ["dbt", "staging checks"]
        assert not result.success
        assert _started(result) == {"dbt_models", "quality_staging"}


# ------------------------------------------------------------------------------------ the real definitions


@pytest.fixture(scope="module")
def refresh_plan():
    from orchestration.definitions import REFRESH_JOB, defs

    job = defs.resolve_job_def(REFRESH_JOB)
    return defs, create_execution_plan(job)


def test_every_suite_is_a_check_on_its_asset(refresh_plan) -> None:
    defs, _ = refresh_plan
    graph = defs.resolve_asset_graph()
    check_keys = set(graph.asset_check_keys)
    factories = suite_factories()
    for layer, factory in factories.items():
        for spec in factory(None).values():
            key = dg.AssetKey([spec.layer, spec.table])
            if not graph.has(key):
                continue
            name = CHECK_NAME if not spec.aspect else f"quality_{spec.aspect.replace('.', '_')}"
            assert dg.AssetCheckKey(key, name) in check_keys, f"{layer}: {spec.name} is not a check on {key}"
    # Every raw table, staging model and mart of the definitions has a suite.
    for layer in ("raw", "staging", "marts"):
        keys = {k for k in graph.get_all_asset_keys() if k.path[0] == layer and graph.get(k).is_executable}
        if layer == "staging":  # seeds (controlled terminology) live in schema staging too
            keys = {k for k in keys if k.path[1].startswith("stg_")}
        unchecked = {k for k in keys if dg.AssetCheckKey(k, CHECK_NAME) not in check_keys}
        assert not unchecked, f"{layer} assets without a quality suite: {sorted(k.to_user_string() for k in unchecked)}"


def test_batches_are_one_step_per_layer_and_per_analysis_asset(refresh_plan) -> None:
    defs, plan = refresh_plan
    steps = {s.key for s in plan.steps}
    assert {"quality_raw", "quality_staging", "quality_marts"} <= steps
    assert {"quality_endpoints_efficacy", "quality_microbiome_alpha"} <= steps
    # Raw checks gate the one dbt step; the marts batch waits for the staging batch; analysis assets wait for
    # the marts batch; consumers of another analysis asset's tables wait for that asset's batch.
    assert "quality_raw" in plan.get_step_by_key("dbt_models").get_execution_dependency_keys()
    assert "quality_staging" in plan.get_step_by_key("quality_marts").get_execution_dependency_keys()
    assert "quality_marts" in plan.get_step_by_key("endpoints_efficacy").get_execution_dependency_keys()
    assert "quality_endpoints_efficacy" in plan.get_step_by_key("microbiome_alpha").get_execution_dependency_keys()
    batches = plan_batches(
        [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)],  # type: ignore[union-attr]
        suite_factories(),
    )
    raw = next(b for b in batches if b.name == "quality_raw")
    assert {s.table for s in raw.specs.values()} >= {"crf_dm", "crf_ae", "seq_counts", "mtb_intensities"}
    assert not any(s.layer == "restricted" for b in batches for s in b.specs.values())


# ------------------------------------------------------------------------------- the factory on a tiny warehouse


def _tiny_suites(cutoff: object = None) -> dict:
    from expectations import SuiteSpec

    def build() -> list:
        import great_expectations.expectations as gxe

        return [gxe.ExpectColumnValuesToBeBetween(column="count", min_value=0)]

    def warn() -> list:
        import great_expectations.expectations as gxe

        return [gxe.ExpectColumnValuesToBeBetween(column="count", max_value=10)]

    return {
        "counts": SuiteSpec("raw.counts", "select * from raw.counts", build, row_id=("id",)),
        "counts.size": SuiteSpec("raw.counts.size", "select * from raw.counts", warn, critical=False, row_id=("id",)),
        "dropped": SuiteSpec("raw.dropped", "select * from raw.dropped", build),
        "renamed": SuiteSpec("raw.renamed", "select id, count from raw.renamed", build),
    }


@pytest.mark.parametrize("case", ["clean", "negative count", "renamed column"])
def test_the_factory_blocks_on_critical_failures_only(tmp_path, case: str) -> None:
    """The real check factory over three tiny tables. Not blocking: a count above 10 (a warning suite) and a table
    its asset did not write. Blocking: a negative count (critical suite) and a column the suite needs missing."""
    import duckdb

    from orchestration.checks.quality import quality_checks
    from orchestration.resources import TrialSettings

    settings = TrialSettings(warehouse_path=str(tmp_path / "wh.duckdb"), unblinded="")
    ran: list[str] = []

    @dg.multi_asset(specs=[dg.AssetSpec(["raw", t]) for t in ("counts", "dropped", "renamed")])
    def load(settings: TrialSettings) -> Iterator[dg.MaterializeResult]:
        values = "(1, 5), (2, -1), (3, 50)" if case == "negative count" else "(1, 5), (3, 50)"
        column = "n" if case == "renamed column" else "count"
        with settings.connect() as con:
            con.execute("create schema if not exists raw")
            con.execute(f"create or replace table raw.counts as select * from (values {values}) t(id, count)")
            con.execute(f"create or replace table raw.renamed as select 1 as id, 2 as {column}")
        for t in ("counts", "dropped", "renamed"):
            yield dg.MaterializeResult(asset_key=["raw", t])

    @dg.asset(deps=[dg.AssetKey(["raw", "counts"])])
    def uses_counts() -> None:
        ran.append("uses_counts")

    @dg.asset(deps=[dg.AssetKey(["raw", "dropped"])])
    def uses_dropped() -> None:
        ran.append("uses_dropped")

    checks = quality_checks([load], {"raw": _tiny_suites})
    assert [c.node_def.name for c in checks] == ["quality_raw"]
    result = dg.materialize(
        [load, uses_counts, uses_dropped, *checks], resources={"settings": settings}, raise_on_error=False
    )
    evaluations = {e.asset_key.path[-1] + ":" + e.check_name: e for e in result.get_asset_check_evaluations()}
    outcome = {k: (e.passed, e.severity.value) for k, e in evaluations.items()}
    assert outcome == {
        "counts:quality_suite": (case != "negative count", "ERROR"),
        "counts:quality_size": (False, "WARN"),
        "dropped:quality_suite": (False, "WARN"),
        "renamed:quality_suite": (case != "renamed column", "ERROR"),
    }
    assert "table not found" in (evaluations["dropped:quality_suite"].description or "")
    blocked = case != "clean"
    assert result.success is not blocked
    # One batch step: a blocking failure anywhere in it stops every consumer of its blocking checks.
    assert sorted(ran) == ([] if blocked else ["uses_counts", "uses_dropped"])
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        flagged = con.execute("select suite, severity, row_key from quality.quarantine order by suite").fetchall()
        statuses = dict(con.execute("select suite, status from quality.validations").fetchall())
    expected = [("raw.counts.size", "warning", '{"id": 3}')]
    if case == "negative count":
        expected.insert(0, ("raw.counts", "critical", '{"id": 2}'))
    assert flagged == expected
    assert statuses["raw.dropped"] == "warning"
    assert statuses["raw.renamed"] == ("failed" if case == "renamed column" else "passed")
    index = settings.data_docs_index
    assert index.exists() and "raw.counts.size" in index.read_text()
