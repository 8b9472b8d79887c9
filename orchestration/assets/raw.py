"""Raw layer: one multi-asset per source family loads the landing folder into DuckDB schema ``raw``.

Each raw table is its own asset key (``raw/<table>``), matching the dbt sources, so lineage runs from the
landing files through staging to the marts. A file that breaks the contract does not fail the run: it is
recorded as rejected and reported by the family's ``files_accepted`` check, while the family's other files
load.

``raw/current_files`` (the view naming the current version of every landing file, which every staging model
reads) is declared in group ``raw`` but materialised by no step of its own: the view is maintained by all three
loaders, and giving it upstream edges would draw every raw table into the lineage of every staging model. Each
loader records an observation on it instead (its family's current files, and what this load did), shown on the
asset's page. Raw assets never preview table rows: raw CRF tables hold direct identifiers, which must not reach the
event log.
"""

import dagster as dg
import duckdb
import pandas as pd

from analysis import contract
from analysis.ingest import LoadReport, load_family
from analysis.ingest.raw_schema import FAMILY_TABLES
from orchestration.groups import group_owners
from orchestration.resources import TrialSettings

RAW_GROUP = "raw"
DUCKDB_POOL = "duckdb"
OWNERS = group_owners(RAW_GROUP)

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
    "seq_trees": "Optional phylogenetic tree of a sequencing batch (Newick text as delivered, or the payload of a "
    "QIIME 2 tree artifact), for UniFrac: one row per tree file version.",
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


CURRENT_FILES_KEY = raw_key("current_files")
#: Rows of a family's current-files listing shown in the UI (a trial has a few dozen files; more are summarised).
CURRENT_FILES_PREVIEW = 60

current_files = dg.AssetSpec(
    CURRENT_FILES_KEY,
    group_name=RAW_GROUP,
    kinds={"duckdb"},
    owners=OWNERS,
    description="View `raw.current_files`: the latest successfully loaded version of every landing file (path, "
    "SHA-256, rows, load), which every staging model reads. A rejected re-delivery leaves the previous good version "
    "current. Kept up to date by the three loaders; each records an observation here listing its family's files.",
)


def current_files_observation(con: duckdb.DuckDBPyConnection, family: str, report: LoadReport) -> dg.AssetObservation:
    """What ``raw.current_files`` holds for ``family`` after a load, for the asset's page."""
    files = con.execute(
        "select path, left(sha256, 12) as sha256, n_rows as rows, batch_id, loaded_at, load_id = ? as this_load "
        "from raw.current_files where family = ? order by path",
        [report.load_id, family],
    ).df()
    shown = files.head(CURRENT_FILES_PREVIEW)
    listing = shown.to_markdown(index=False) if len(shown) else "_no current file_"
    if len(files) > len(shown):
        listing += f"\n\n_first {len(shown)} of {len(files)} files_"
    return dg.AssetObservation(
        asset_key=CURRENT_FILES_KEY,
        metadata={
            "family": family,
            "current files": dg.MetadataValue.int(len(files)),
            "loaded by this load": dg.MetadataValue.int(int(files["this_load"].sum()) if len(files) else 0),
            "files unchanged": report.count("unchanged"),
            "files rejected": report.count("rejected"),
            "listing": dg.MetadataValue.md(listing),
        },
    )


def _build_family_asset(family: str) -> dg.AssetsDefinition:
    tables = FAMILY_TABLES[family]
    check_name = "files_accepted"

    @dg.multi_asset(
        name=f"load_{family}",
        specs=[
            dg.AssetSpec(
                raw_key(table),
                # A table added to the raw schema without a description here still loads (the UI must not break).
                description=_TABLE_DESCRIPTIONS.get(table, f"Raw table `{table}` as delivered, with lineage columns."),
                group_name=RAW_GROUP,
                kinds={"duckdb", "python"},
                owners=OWNERS,
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
            context.log_event(current_files_observation(con, family, report))
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
