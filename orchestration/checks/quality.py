"""Great-expectations suites as Dagster asset checks, batched per layer.

Every suite of every layer (``expectations.suites``: raw tables, dbt staging models, marts, analysis tables) is
one asset check on its table's asset: ``quality_suite`` for a table's main suite, ``quality_<aspect>`` for a
second suite on the same table (e.g. ``marts/labs:quality_plausibility``). Checks are evaluated in batches,
one Dagster step per batch, because GX's cost is a fixed overhead per expectation and per Data Docs page
(see ``expectations.runner``) and a step per table would add its own overhead a hundred times over:

* ``quality_raw`` — every raw table (upstream of the one dbt step, so a failure stops dbt itself);
* ``quality_staging`` — every dbt staging model;
* ``quality_marts`` — every mart; it also waits for the staging checks, so a failed staging suite stops it
  and, through it, everything that reads the marts;
* ``quality_<asset>`` — the tables of each analysis asset (``quality_endpoints_efficacy``,
  ``quality_microbiome_alpha``, ...): one batch per producing asset, because analysis assets read each other's
  tables (the microbiome assets read the best overall response) and a batch spanning a producer and its
  consumer would wait for itself.

Blocking. A critical suite's check is ``blocking``: when one of its critical expectations fails, the check
fails with severity ERROR, Dagster fails the batch's step, and every asset downstream of that step's blocking
checks is skipped (Dagster 1.13: a downstream asset's input from a checked asset also waits for the blocking
checks on it; the step raises ``DagsterAssetCheckFailedError`` after all its results are recorded). So no
endpoint is computed on data that broke a contract. Warnings (non-critical suites, or expectations with
``severity="warning"``) fail with severity WARN and block nothing.

Each batch writes, before it reports: the Data Docs pages of its validations and the index
(``settings.data_docs_index``), and its rows of ``quality.quarantine`` / ``quality.validations`` (one
transaction; a re-run of the batch in the same run replaces them). The check metadata links to the
validation's page and to the index. In a blinded run no suite of a restricted table runs, direct identifiers
are redacted and arm values masked before validation (``expectations.runner.protect``).
"""

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from expectations import QualityRunner, SuiteSpec, quarantine
from expectations.runner import ValidationSummary, read_frame
from expectations.suites import raw_suites, staging_suites
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.resources import TrialSettings

CHECK_NAME = "quality_suite"
LAYERS: tuple[str, ...] = ("raw", "staging", "marts", "analysis")
#: Schemas never validated in a blinded run (they hold the randomisation list).
RESTRICTED_SCHEMAS = frozenset({"restricted"})

SuiteFactory = Callable[[dt.date | None], dict[str, SuiteSpec]]


def suite_factories() -> dict[str, SuiteFactory]:
    """The suites of every layer (``marts`` and ``analysis`` once their modules exist)."""
    factories: dict[str, SuiteFactory] = {"raw": raw_suites, "staging": staging_suites}
    try:
        from expectations.suites.marts import mart_suites

        factories["marts"] = mart_suites
    except ImportError:  # pragma: no cover - the marts suites arrive with their own change
        pass
    try:
        from expectations.suites.analysis import analysis_suites

        factories["analysis"] = analysis_suites
    except ImportError:  # pragma: no cover
        pass
    return factories


def check_name(spec: SuiteSpec) -> str:
    aspect = spec.aspect.replace(".", "_").replace("-", "_")
    return f"quality_{aspect}" if aspect else CHECK_NAME


def asset_key(spec: SuiteSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.layer, spec.table])


@dataclass(frozen=True)
class Batch:
    """One check step: a layer's suites (or one analysis asset's) and what else it must wait for."""

    name: str
    layer: str
    #: The suites this batch evaluates (built without a cut-off: names, tables and severities do not depend on
    #: it), keyed by the key of their layer's factory (``crf_ae``, ``labs.plausibility``).
    specs: dict[str, SuiteSpec]
    #: Assets whose blocking checks this batch waits for (the marts batch waits for the staging checks).
    waits_for: tuple[dg.AssetKey, ...] = ()


def plan_batches(
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec], factories: Mapping[str, SuiteFactory]
) -> list[Batch]:
    """Group every suite whose table is an asset of ``assets`` into check steps (see the module docstring)."""
    producer: dict[dg.AssetKey, str] = {}
    for definition in assets:
        if not isinstance(definition, dg.AssetsDefinition) or not definition.is_executable:
            continue
        for key in definition.keys:
            producer[key] = definition.node_def.name
    batches: dict[str, dict[str, SuiteSpec]] = {}
    layer_of: dict[str, str] = {}
    for layer, factory in factories.items():
        for factory_key, spec in factory(None).items():
            key = asset_key(spec)
            if key not in producer or spec.layer in RESTRICTED_SCHEMAS:
                continue
            batch = f"quality_{producer[key]}" if layer == "analysis" else f"quality_{layer}"
            batches.setdefault(batch, {})[factory_key] = spec
            layer_of[batch] = layer
    staging_keys = tuple(
        sorted({asset_key(s) for b, specs in batches.items() if layer_of[b] == "staging" for s in specs.values()})
    )
    return [
        Batch(name, layer_of[name], specs, staging_keys if layer_of[name] == "marts" else ())
        for name, specs in sorted(batches.items())
    ]


@cache
def _runner(project_dir: str) -> QualityRunner:
    # One runner per quality folder and process: suites are fingerprinted and saved once, not once per step.
    return QualityRunner(project_dir)  # type: ignore[arg-type]


def _validate(
    context: dg.AssetCheckExecutionContext, settings: TrialSettings, batch: Batch, specs: Sequence[SuiteSpec]
) -> tuple[QualityRunner, list[ValidationSummary]]:
    runner = _runner(str(settings.quality_dir))
    blinded = not settings.is_unblinded
    summaries: list[ValidationSummary] = []
    with settings.connect() as con:
        for spec in specs:
            if blinded and spec.restricted:
                continue
            try:
                frame = read_frame(con, spec.query)
            except duckdb.CatalogException as error:
                # A missing table: its asset dropped it on purpose (e.g. the microbiome tables of a trial without
                # sequencing data) or never wrote it; reported, not blocking.
                context.log.warning(f"{spec.name}: table not found: {error}")
                message = f"table not found: {str(error).splitlines()[0]}"
                summaries.append(runner.unreadable(spec, message, run_name=context.run.run_id, blocks=False))
                continue
            except duckdb.Error as error:
                # A missing column or a type change breaks the suite's contract: blocking for a critical suite.
                context.log.error(f"{spec.name}: table could not be validated: {error}")
                message = f"could not be read: {str(error).splitlines()[0]}"
                summaries.append(runner.unreadable(spec, message, run_name=context.run.run_id))
                continue
            summaries.append(runner.validate(spec, frame, run_name=context.run.run_id, blinded=blinded))
        assets = {spec.name: asset_key(spec).to_user_string() for spec in specs}
        started = time.perf_counter()
        runner.build_docs(summaries, layer=batch.layer, assets=assets, blinded=blinded)
        docs_seconds = time.perf_counter() - started
        quarantined = quarantine.write(
            con,
            run_id=context.run.run_id,
            layer=batch.layer,
            suites=[spec.name for spec in specs],
            summaries=summaries,
            assets=assets,
            row_ids={spec.name: spec.row_id for spec in specs},
        )
    context.log.info(
        f"{batch.name}: validation {sum(s.seconds for s in summaries):.1f} s, Data Docs {docs_seconds:.1f} s, "
        f"{quarantined} rows quarantined"
    )
    return runner, summaries


def _result(
    context: dg.AssetCheckExecutionContext, spec: SuiteSpec, summary: ValidationSummary, index: Path
) -> dg.AssetCheckResult:
    for failure in summary.failed:
        log = context.log.error if failure.blocking and spec.critical else context.log.warning
        log(f"{spec.name}: {failure.describe()}; rows {failure.sample[:3]}")
    # ERROR for a critical suite unless only its warnings failed; a warning suite's checks are always WARN.
    severity = (
        dg.AssetCheckSeverity.ERROR if spec.critical and summary.status != "warning" else dg.AssetCheckSeverity.WARN
    )
    metadata: dict[str, Any] = {
        "suite": spec.name,
        "status": summary.status,
        "rows_validated": summary.n_rows,
        "expectations_evaluated": summary.evaluated,
        "expectations_failed": len(summary.failed),
        "rows_flagged": summary.flagged_rows,
        "failures": dg.MetadataValue.md(summary.failures_markdown()),
        "data_docs": dg.MetadataValue.url(index.resolve().as_uri()),
        "seconds": summary.seconds,
    }
    if summary.docs_page is not None:
        metadata["validation_page"] = dg.MetadataValue.url(summary.docs_page.resolve().as_uri())
    description = "; ".join(f.describe() for f in summary.failed[:5]) or summary.error or None
    return dg.AssetCheckResult(
        asset_key=asset_key(spec),
        check_name=check_name(spec),
        passed=summary.status == "passed",
        severity=severity,
        description=description,
        metadata=metadata,
    )


def build_batch_check(batch: Batch, factory: SuiteFactory) -> dg.AssetChecksDefinition:
    keys_by_check = {dg.AssetCheckKey(asset_key(spec), check_name(spec)): key for key, spec in batch.specs.items()}
    check_specs = [
        dg.AssetCheckSpec(
            check_name(spec),
            asset=asset_key(spec),
            description=f"great-expectations suite `{spec.name}` "
            f"({'critical: blocks downstream assets' if spec.critical else 'warnings only'}). {spec.description}",
            blocking=spec.critical,
            additional_deps=list(batch.waits_for),
        )
        for spec in batch.specs.values()
    ]
    scope = f" ({batch.name.removeprefix('quality_')})" if batch.layer == "analysis" else ""

    @dg.multi_asset_check(
        specs=check_specs,
        name=batch.name,
        description=f"great-expectations suites of the {batch.layer} layer{scope}, validated together; Data Docs "
        "and quarantine written once per step.",
        can_subset=True,
        pool=DUCKDB_POOL,
    )
    def _check(context: dg.AssetCheckExecutionContext, settings: TrialSettings) -> Iterator[dg.AssetCheckResult]:
        started = time.perf_counter()
        selected = [keys_by_check[k] for k in context.selected_asset_check_keys if k in keys_by_check]
        # Suites are rebuilt for this run: their date bounds depend on the run's data cut-off.
        run_specs = factory(settings.cutoff)
        specs = [run_specs[key] for key in sorted(selected)]
        runner, summaries = _validate(context, settings, batch, specs)
        index = runner.docs_index
        context.log.info(
            f"{batch.name}: {len(summaries)} suites, {sum(s.evaluated for s in summaries)} expectations, "
            f"{sum(s.status == 'failed' for s in summaries)} failed, {sum(s.status == 'warning' for s in summaries)} "
            f"with warnings in {time.perf_counter() - started:.1f} s; Data Docs: {index}"
        )
        by_name = {s.suite: s for s in summaries}
        for spec in specs:
            summary = by_name.get(spec.name)
            if summary is None:  # a restricted suite in a blinded run: nothing read, nothing written
                yield dg.AssetCheckResult(
                    asset_key=asset_key(spec),
                    check_name=check_name(spec),
                    passed=True,
                    metadata={"skipped": "restricted data is never validated in a blinded run"},
                )
                continue
            yield _result(context, spec, summary, index)

    return _check


def quality_checks(
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec], factories: Mapping[str, SuiteFactory] | None = None
) -> list[dg.AssetChecksDefinition]:
    """One batched check step per layer (per producing asset for analysis tables) over ``assets``."""
    factories = dict(factories or suite_factories())
    return [build_batch_check(batch, factories[batch.layer]) for batch in plan_batches(assets, factories)]
