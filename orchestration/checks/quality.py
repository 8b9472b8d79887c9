"""Great-expectations suites as Dagster asset checks.

Critical suites are blocking: when one fails, the assets downstream of the bad table do not run, so no
endpoint is computed on data that broke a contract. Warning suites report without blocking. Each check
rebuilds the Data Docs site so QA sees the failure even when the rest of the run stops there.
"""

import time

import dagster as dg

from expectations import QualityRunner, SuiteSpec
from orchestration.resources import TrialSettings

CHECK_NAME = "quality_suite"


def build_quality_check(asset_key: dg.AssetKey, spec: SuiteSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name=CHECK_NAME,
        description=f"great-expectations suite `{spec.name}` ({'critical' if spec.critical else 'warning'}). "
        f"{spec.description}",
        blocking=spec.critical,
        pool="duckdb",
    )
    def _check(context: dg.AssetCheckExecutionContext, settings: TrialSettings) -> dg.AssetCheckResult:
        started = time.perf_counter()
        with settings.connect() as con:
            frame = con.execute(spec.query).df()
        runner = QualityRunner(settings.quality_dir)
        summary = runner.validate(spec, frame)
        docs = runner.build_docs()
        if not summary.success:
            for failure in summary.failed:
                context.log.warning(f"{spec.name}: {failure.describe()}; sample {failure.sample[:3]}")
        return dg.AssetCheckResult(
            passed=summary.success,
            severity=dg.AssetCheckSeverity.ERROR if spec.critical else dg.AssetCheckSeverity.WARN,
            description="; ".join(f.describe() for f in summary.failed[:5]) or None,
            metadata={
                "suite": spec.name,
                "rows_validated": summary.n_rows,
                "expectations_evaluated": summary.evaluated,
                "expectations_failed": len(summary.failed),
                "failures": dg.MetadataValue.md(summary.failures_markdown()),
                "data_docs": dg.MetadataValue.url(docs.resolve().as_uri()),
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    return _check


def build_quality_checks(specs: dict[dg.AssetKey, SuiteSpec]) -> list[dg.AssetChecksDefinition]:
    return [build_quality_check(key, spec) for key, spec in specs.items()]
