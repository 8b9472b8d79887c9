"""Raw layer: one multi-asset per source family loads the landing folder into DuckDB schema ``raw``.

Each raw table is its own asset key (``raw/<table>``), matching the dbt sources, so lineage runs from the
landing files through staging to the marts. A file that breaks the contract does not fail the run: it is
recorded as rejected and reported by the family's ``files_accepted`` check, while the family's other files
load.
"""

import dagster as dg
import pandas as pd

from analysis import contract
from analysis.ingest import LoadReport, load_family
from analysis.ingest.raw_schema import FAMILY_TABLES
from orchestration.resources import TrialSettings

RAW_GROUP = "raw"
DUCKDB_POOL = "duckdb"

_TABLE_DESCRIPTIONS: dict[str, str] = {
    **{
        form.raw_table: f"CRF form `{form.code}` ({form.title}) as exported by the EDC, text as delivered; "
        f"{form.grain}, per file version, with lineage columns."
        for form in contract.CRF_FORMS.values()
    },
    "seq_counts": "16S feature counts, long and sparse: one row per sample per feature with a non-zero count.",
    "seq_samples": "One row per sequencing sample per feature-table version: library size and feature count.",
    "seq_features": "One row per feature per source file: the taxonomy string as delivered.",
    "seq_manifest": "Sequencing manifest: one row per sequencing sample, mapping it to a specimen barcode.",
    "mtb_intensities": "Metabolomics intensities, long: one row per feature per injection with an observed value.",
    "mtb_features": "Metabolomics feature annotation as delivered (m/z, RT, name, KEGG, HMDB), one row per feature.",
    "mtb_injections": "Injection list: one row per injection (sample, pooled QC or blank) with run order.",
}

_FAMILY_DESCRIPTIONS: dict[str, str] = {
    "crf": "CRF (EDC) exports: one CSV per form",
    "sequencing": "16S sequencing batches: feature table, taxonomy and manifest per batch",
    "metabolomics": "Metabolomics batches: wide feature table and injection list per batch",
}


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def _outcome_table(report: LoadReport) -> str:
    frame = pd.DataFrame(
        [{"file": o.path, "status": o.status, "rows": o.rows, "reason": o.reason or ""} for o in report.outcomes]
    )
    if frame.empty:
        return "_no files in the landing folder for this family_"
    return frame.to_markdown(index=False)


def _build_family_asset(family: str) -> dg.AssetsDefinition:
    tables = FAMILY_TABLES[family]
    check_name = "files_accepted"

    @dg.multi_asset(
        name=f"load_{family}",
        specs=[
            dg.AssetSpec(
                raw_key(table),
                description=_TABLE_DESCRIPTIONS[table],
                group_name=RAW_GROUP,
                kinds={"duckdb", "python"},
                owners=["team:data-engineering"],
                skippable=True,
            )
            for table in tables
        ],
        check_specs=[
            dg.AssetCheckSpec(
                check_name,
                asset=raw_key(tables[0]),
                description=f"Every {family} file in the landing folder met the raw exports contract "
                "(rejected files are listed with the reason; the other files still load).",
            )
        ],
        pool=DUCKDB_POOL,
        description=f"{_FAMILY_DESCRIPTIONS[family]} -> DuckDB raw schema, idempotent and transactional.",
    )
    def _load(context: dg.AssetExecutionContext, settings: TrialSettings):
        landing = settings.landing
        if not landing.is_dir():
            raise dg.Failure(f"landing folder {landing} does not exist (set GUTTRIAL_LANDING or landing_dir)")

        def log_outcome(outcome) -> None:
            if outcome.status == "rejected":
                context.log.error(f"rejected {outcome.reason}")
            else:
                context.log.info(f"{outcome.status} {outcome.path} ({outcome.rows:,} rows)")

        with settings.connect() as con:
            report = load_family(con, landing, family, load_id=context.run.run_id, on_file=log_outcome)
        summary = _outcome_table(report)
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=raw_key(table),
                metadata={
                    "dagster/row_count": dg.MetadataValue.int(report.current_rows.get(table, 0)),
                    "files_loaded": report.count("loaded"),
                    "files_unchanged": report.count("unchanged"),
                    "files_rejected": report.count("rejected"),
                    "load_id": report.load_id,
                },
            )
        rejected = report.rejected
        yield dg.AssetCheckResult(
            check_name=check_name,
            asset_key=raw_key(tables[0]),
            passed=not rejected,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "files_seen": len(report.outcomes),
                "files_rejected": len(rejected),
                "outcomes": dg.MetadataValue.md(summary),
            },
            description="; ".join(o.reason or "" for o in rejected[:5]) or None,
        )

    return _load


raw_family_assets: list[dg.AssetsDefinition] = [_build_family_asset(f) for f in FAMILY_TABLES]
