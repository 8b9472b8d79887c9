"""The trial report asset (group ``reports``): figures and tables from the warehouse, one HTML report per run date.

``reports/trial_report`` runs after every analysis asset (endpoints, microbiome, metabolomics) and writes
``settings.reports_dir / <run date> / index.html`` (with ``figures/*.svg``, ``figures/*.png`` when the run config
sets ``png_dpi``, ``tables/*.csv`` and ``manifest.json``; see :mod:`analysis.report.build` and
:mod:`analysis.report.html`). It reads the warehouse read-only; cut-off and blinding are the ones recorded in the
warehouse (``analysis.endpoint_run``), and a run whose blinding setting disagrees with the warehouse fails instead of
publishing. The folder is written to a temporary sibling and renamed into place (atomic); unblinded reports are
owner-only (folders 0o700, files 0o600).

A section whose input tables are missing (e.g. omics assets not run) appears in the report as "not available";
a section that fails is shown as failed and makes the non-blocking check ``sections_built`` fail, so the
clinical report is still produced and the run summary shows the problem.
"""

import datetime as dt
import time

import dagster as dg
import duckdb
from pydantic import Field

from analysis.report.build import build_report, context_from_warehouse
from orchestration.assets.endpoints import endpoint_assets
from orchestration.assets.metabolomics import metabolite_genus_correlations, metabolomics_analysis
from orchestration.assets.microbiome import microbiome_assets
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.groups import group_owners
from orchestration.permissions import restrict_if_unblinded
from orchestration.resources import TrialSettings

REPORTS_GROUP = "reports"


class TrialReportConfig(dg.Config):
    """Launchpad options of ``reports/trial_report``."""

    png_dpi: int = Field(
        default=0,
        ge=0,
        le=600,
        description="Also write every figure as PNG at this resolution (e.g. 150); 0 = SVG only. The page inlines "
        "the SVGs either way; each PNG is a second full draw of its figure (about doubles the report's CPU time).",
    )


REPORT_KEY = dg.AssetKey(["reports", "trial_report"])
SECTIONS_CHECK = "sections_built"


def _analysis_keys() -> list[dg.AssetKey]:
    """Every ``analysis/*`` asset the report sections read (all endpoint, microbiome and metabolomics tables)."""
    keys: list[dg.AssetKey] = []
    for a in (*endpoint_assets, *microbiome_assets, metabolomics_analysis, metabolite_genus_correlations):
        keys.extend(a.keys)
    return sorted(set(keys), key=lambda k: k.to_user_string())


def _connect_read_only(
    settings: TrialSettings, log: dg.DagsterLogManager, attempts: int = 12, wait_s: float = 5.0
) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting while another process (a check or a run outside the pool) holds the write
    lock, so a brief overlap delays the report instead of failing it."""
    for attempt in range(1, attempts + 1):
        try:
            return settings.connect(read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == attempts:
                raise
            log.info(f"warehouse locked by another process; retrying in {wait_s:.0f} s ({attempt}/{attempts})")
            time.sleep(wait_s)
    raise AssertionError("unreachable")


@dg.asset(
    key=REPORT_KEY,
    group_name=REPORTS_GROUP,
    deps=_analysis_keys(),
    kinds={"python", "html"},
    owners=group_owners(REPORTS_GROUP),
    # Reads the warehouse: never at the same time as a writer holds the DuckDB lock.
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            SECTIONS_CHECK,
            asset=REPORT_KEY,
            description="Every report section was built or is explicitly not available (input tables missing); "
            "fails when a section raised an error.",
        )
    ],
    description="The trial report: KM curves, subgroup forest, waterfall/swimmer/spider plots, AE and lab shift "
    "tables, ALBI over time, and the microbiome/metabolomics/integration figures, as SVG files (PNG on request) plus "
    "one self-contained HTML page per run date (<warehouse>_reports/<run date>/index.html). Blinded runs carry no arm.",
)
def trial_report(
    context: dg.AssetExecutionContext, config: TrialReportConfig, settings: TrialSettings
) -> dg.MaterializeResult:
    with _connect_read_only(settings, context.log) as con:
        ctx = context_from_warehouse(con, run_date=dt.date.today(), expect_unblinded=settings.is_unblinded)
        if settings.cutoff != ctx.cutoff:
            context.log.warning(
                f"run cut-off {settings.cutoff or 'none'} differs from the warehouse's endpoint cut-off "
                f"{ctx.cutoff or 'none'}: the report uses the warehouse's"
            )
        result = build_report(
            con,
            ctx,
            settings.reports_dir,
            warehouse=settings.warehouse,
            run_id=context.run.run_id,
            png_dpi=config.png_dpi or None,
        )
    restrict_if_unblinded(settings.reports_dir, settings)
    for s in result.sections:
        if s.status != "ok":
            (context.log.error if s.status == "failed" else context.log.warning)(
                f"report section {s.name}: {s.message}"
            )
    context.log.info(
        f"trial report: {result.index} ({result.n_figures} figures, {result.n_tables} tables, "
        f"{'UNBLINDED' if ctx.unblinded else 'blinded'}) in {result.seconds:.1f} s ({result.cpu_seconds:.1f} s CPU)"
    )
    failed = result.failed
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.index)),
            "figures": dg.MetadataValue.int(result.n_figures),
            "tables": dg.MetadataValue.int(result.n_tables),
            "blinded": not ctx.unblinded,
            "cutoff": ctx.cutoff.isoformat() if ctx.cutoff else "none",
            "seconds": dg.MetadataValue.float(round(result.seconds, 1)),
            "cpu seconds": dg.MetadataValue.float(round(result.cpu_seconds, 1)),
            "sections": dg.MetadataValue.md(
                "\n".join(f"* {s.name}: {s.status}{' - ' + s.message if s.message else ''}" for s in result.sections)
            ),
            **{k: dg.MetadataValue.text(v) for k, v in result.key_values.items()},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=SECTIONS_CHECK,
                passed=not failed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "failed": dg.MetadataValue.text("; ".join(f"{s.name}: {s.message}" for s in failed) or "none"),
                    "not available": dg.MetadataValue.text(
                        "; ".join(f"{s.name}: {s.message}" for s in result.unavailable) or "none"
                    ),
                },
            )
        ],
    )


report_assets: list[dg.AssetsDefinition] = [trial_report]
