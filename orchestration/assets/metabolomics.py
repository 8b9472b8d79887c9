"""Metabolomics analysis assets: marts -> ``analysis.metabolomics_*`` tables (issue 6).

One multi-asset reads the metabolomics marts once, runs the per-matrix analysis of
:mod:`analysis.metabolomics.study` (FAECES and SERUM: QC-based drift correction + ``prepare`` defaults, prcomp
PCA overall and per visit with pooled QCs projected, annotation, differential metabolites) and replaces its
nine tables in **one transaction** (``create or replace table analysis.X as select * from df``), so a reader
never sees a mix of two runs:

========================================  =====================================================================
``analysis.metabolomics_steps``           the preparation recipe, step by step, with parameters (JSON) and
                                          what each step did, per matrix and purpose (``pca``/``differential``)
``analysis.metabolite_annotation``        one row per feature: names/classes as exported, validated KEGG and
                                          HMDB IDs, ``in_analysis``
``analysis.metabolite_annotation_invalid``  identifier tokens that failed validation, with the reason
``analysis.metabolomics_pca_importance``  ``summary(prcomp(...))$importance`` per matrix and scope (ALL/visit)
``analysis.metabolomics_pca_scores``      scores per study sample + projected pooled QCs (``projected``)
``analysis.metabolomics_pca_loadings``    loadings per feature
``analysis.metabolomics_qc_rsd``          pooled-QC RSD (%) per feature before and after drift correction
``analysis.differential_metabolites``     per feature and contrast: FC, Welch, Wilcoxon, mixed model, BH q,
                                          KEGG/HMDB IDs
``analysis.metabolomics_prepared``        the prepared (glog, unscaled) study-sample values, long
========================================  =====================================================================

A second asset, ``analysis.metabolite_genus_correlations``, correlates genus relative abundances (16S marts)
with the prepared metabolite values of the same patient and visit (Spearman, BH), for the microbiome
analysis' differential genera (``analysis.differential_abundance``, genus rank, q < 0.1) plus the common
genera and the differential metabolites. It is separate so a failing microbiome analysis never blocks the
metabolomics tables.

Blinding: a blinded run (the default) never reads ``adsl.arm_code`` and analyses visits (each vs baseline)
and, when the warehouse has a responder flag, responder status. Only a run with
``TrialSettings.is_unblinded`` adds the arm × visit analysis. Before anything is written, a blinded run
checks that no table has an arm column or an arm value (CAPSULE/PLACEBO) and fails otherwise.

Responder status: ``marts.adsl.responder_fl`` if the ADSL carries one, else the endpoint assets'
``analysis.best_overall_response`` restricted to :data:`RESPONDER_DEFINITION` (derived RECIST 1.1, confirmed
best overall response: CR or PR). That table is a declared dependency, so in a full refresh the endpoints run
first; with neither source the responder analysis is skipped (logged).
"""

import re
import time
from collections.abc import Iterator

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from analysis.metabolomics.study import (
    ARMS,
    MatrixResults,
    StudyConfig,
    analyse_matrix,
    genus_table,
    integrate,
    matrix_tables,
    prepared_long,
    top_features,
)
from orchestration.analysis_io import table_metadata
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.groups import group_owners
from orchestration.resources import TrialSettings

METABOLOMICS_GROUP = "metabolomics"
ANALYSIS_SCHEMA = "analysis"
#: The marts this analysis reads (dbt asset keys ``[schema, model]``).
MART_KEYS: tuple[dg.AssetKey, ...] = tuple(
    dg.AssetKey(["marts", name])
    for name in (
        "metabolite_features",
        "metabolite_intensities",
        "metabolomics_qc_injections",
        "metabolomics_qc_intensities",
        "samples",
        "adsl",
    )
)
#: Output table -> description.
TABLES: dict[str, str] = {
    "metabolomics_steps": "Metabolomics preparation recipe, one row per step per matrix and purpose (pca/"
    "differential): parameters and detail as JSON, features and injections before/after.",
    "metabolite_annotation": "One row per metabolomics feature and matrix: name, formula, class and evidence as "
    "exported; validated KEGG COMPOUND and HMDB IDs (';'-joined); in_analysis = survived preparation.",
    "metabolite_annotation_invalid": "Identifier tokens of the exports that are not valid KEGG COMPOUND / HMDB "
    "IDs, with the reason (reported, never silently dropped).",
    "metabolomics_pca_importance": "PCA importance as R summary(prcomp(x, center=TRUE, scale.=FALSE)) per matrix "
    "and scope (ALL visits or one visit): standard deviation, proportion and cumulative proportion per PC.",
    "metabolomics_pca_scores": "PCA scores (PC1..PC10) per study sample, plus pooled QCs projected onto the same "
    "model (projected = true), per matrix and scope.",
    "metabolomics_pca_loadings": "PCA loadings (PC1..PC10) per feature, per matrix and scope; signs follow the "
    "largest-|loading|-positive convention.",
    "metabolomics_qc_rsd": "Pooled-QC relative standard deviation (%) per feature before and after QC-based "
    "LOWESS drift correction, and whether the RSD filter kept it.",
    "differential_metabolites": "Differential metabolites per matrix, analysis, contrast and feature: fold "
    "change, Welch t, Wilcoxon rank-sum, linear mixed model (patient random intercept), BH q, KEGG/HMDB IDs.",
    "metabolomics_prepared": "The prepared study-sample values (glog10 after drift correction, imputation and PQN; "
    "unscaled) the differential tests used, long: one row per injection and feature.",
}
INTEGRATION_TABLE = "metabolite_genus_correlations"
INTEGRATION_DESCRIPTION = (
    "Spearman correlations between genus relative abundances and metabolite values of the same patient and visit "
    "(differential genera of the microbiome analysis plus common genera x differential metabolites), BH q per matrix."
)
#: The microbiome analysis table whose genus-level q-values flag the differential genera.
DIFFERENTIAL_TAXA_KEY = dg.AssetKey(["analysis", "differential_abundance"])
GENUS_Q_THRESHOLD = 0.1
#: The endpoint table with per-subject best overall response (a dependency: endpoints run first).
BOR_KEY = dg.AssetKey(["analysis", "best_overall_response"])
#: Which rows of ``analysis.best_overall_response`` define a responder here (SQL predicates, all must hold).
RESPONDER_DEFINITION: dict[str, str] = {
    "criterion": "criterion = 'RECIST 1.1'",
    "evaluator": "evaluator = 'DERIVED'",
    "confirmed": "confirmed",
}
_ARM_COLUMN = re.compile(r"(^|_)(arm|arm_code|actarm|trt\w*)(_|$)", re.IGNORECASE)


def table_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([ANALYSIS_SCHEMA, name])


# ---------------------------------------------------------------------------------------------- reading


def read_marts(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The metabolomics marts as the long frames :func:`analysis.metabolomics.study.matrix_tables` takes.

    Keys (``<batch_id>/<injection_id>``, ``<ion_mode>:<feature_id>``) are built here, in DuckDB; a QC or blank
    without a matrix takes the matrix of its batch's study samples.
    """
    queries = {
        "values": """
            select batch_id || '/' || injection_id as injection, ion_mode || ':' || feature_id as feature, intensity
            from marts.metabolite_intensities
            union all
            select batch_id || '/' || injection_id, ion_mode || ':' || feature_id, intensity
            from marts.metabolomics_qc_intensities""",
        "injections": """
            with samples as (
                select distinct batch_id, injection_id, 'SAMPLE' as sample_type, matrix, run_order, specimen_barcode,
                    subject_id
                from marts.metabolite_intensities
            ),
            batch_matrix as (
                select batch_id, min(matrix) as matrix from samples where matrix is not null group by batch_id
            )
            select batch_id || '/' || injection_id as injection, * from samples
            union all by name
            select q.batch_id || '/' || q.injection_id as injection, q.batch_id, q.injection_id, q.sample_type,
                coalesce(q.matrix, b.matrix) as matrix, q.run_order, null as specimen_barcode, null as subject_id
            from marts.metabolomics_qc_injections q left join batch_matrix b using (batch_id)""",
        "features": "select batch_id, feature_id, ion_mode, mz, rt_min, metabolite_name, formula, kegg_id, hmdb_id, "
        "compound_class, evidence from marts.metabolite_features",
        "samples": "select specimen_barcode, visit, nominal_visit, nominal_visit_order from marts.samples",
    }
    return {name: con.execute(sql).df() for name, sql in queries.items()}


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "select lower(column_name) from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return {r[0] for r in rows}


def responder_query(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """SQL giving ``subject_id, responder`` (one row per subject) and its description, or None (see module doc)."""
    if "responder_fl" in _columns(con, "marts", "adsl"):
        return "select subject_id, responder_fl as responder from marts.adsl", "marts.adsl.responder_fl"
    bor = _columns(con, "analysis", "best_overall_response")
    if {"subject_id", "responder"} <= bor and set(RESPONDER_DEFINITION) <= bor:
        where = " and ".join(RESPONDER_DEFINITION.values())
        return (
            f"select subject_id, bool_or(responder) as responder from analysis.best_overall_response where {where} "
            "group by subject_id",
            f"analysis.best_overall_response ({where})",
        )
    return None


def read_subjects(
    con: duckdb.DuckDBPyConnection, *, unblinded: bool, log: dg.DagsterLogManager | None = None
) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """``subject_id`` + ``responder`` (if any) + ``arm`` (**only** when ``unblinded``), and where they came from."""
    frames: list[pd.DataFrame] = []
    sources: dict[str, str] = {}
    source = responder_query(con)
    if source is not None:
        frames.append(con.execute(source[0]).df().drop_duplicates("subject_id"))
        sources["responder"] = source[1]
    elif log is not None:
        log.info("no responder status in the warehouse (adsl.responder_fl, analysis.best_overall_response): skipped")
    if unblinded:
        arm = con.execute(
            "select subject_id, arm_code as arm from marts.adsl where arm_code in (?, ?)", list(ARMS)
        ).df()
        if len(arm):
            frames.append(arm)
            sources["arm"] = "marts.adsl.arm_code"
        elif log is not None:
            log.warning("unblinded run but marts.adsl carries no CAPSULE/PLACEBO arm: arm x visit analysis skipped")
    if not frames:
        return None, sources
    out = frames[0]
    for frame in frames[1:]:
        out = out.merge(frame, on="subject_id", how="outer")
    return out.drop_duplicates("subject_id"), sources


# ---------------------------------------------------------------------------------------------- blinding guard


def arm_leaks(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Where a table carries arm information: an arm-like column name or a CAPSULE/PLACEBO value."""
    found: list[str] = []
    values = set(ARMS)
    for name, frame in tables.items():
        for column in frame.columns:
            if _ARM_COLUMN.search(str(column)):
                found.append(f"{name}.{column} (column name)")
            series = frame[column]
            if pd.api.types.is_string_dtype(series) or series.dtype == object:
                text = pd.Series(series.dropna().astype("str").unique(), dtype="str")  # distinct values only
                if text.str.upper().str.contains("|".join(values), regex=True).any():
                    found.append(f"{name}.{column} (values)")
    return found


# ---------------------------------------------------------------------------------------------- writing


def write_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame]) -> None:
    """``create or replace table analysis.<name> as select * from df`` for every table, in one transaction."""
    con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {ANALYSIS_SCHEMA}")
        for name, df in tables.items():
            con.register("_metabolomics_df", df)
            try:
                con.execute(f"create or replace table {ANALYSIS_SCHEMA}.{name} as select * from _metabolomics_df")
            finally:
                con.unregister("_metabolomics_df")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def combine(results: dict[str, MatrixResults]) -> dict[str, pd.DataFrame]:
    """Stack the per-matrix results into the eight output tables (empty, with the right columns, if none)."""
    attrs = {
        "metabolomics_steps": "steps",
        "metabolite_annotation": "annotation",
        "metabolite_annotation_invalid": "annotation_invalid",
        "metabolomics_pca_importance": "importance",
        "metabolomics_pca_scores": "scores",
        "metabolomics_pca_loadings": "loadings",
        "metabolomics_qc_rsd": "qc_rsd",
        "differential_metabolites": "differential",
    }
    out: dict[str, pd.DataFrame] = {}
    for table, attr in attrs.items():
        frames = [getattr(r, attr) for r in results.values() if len(getattr(r, attr).columns)]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"matrix": pd.Series(dtype="str")})
        out[table] = frame
    prepared = [prepared_long(m, r.prepared) for m, r in results.items() if r.prepared is not None]
    out["metabolomics_prepared"] = (
        pd.concat(prepared, ignore_index=True) if prepared else pd.DataFrame({"matrix": pd.Series(dtype="str")})
    )
    return out


def run_analysis(
    con: duckdb.DuckDBPyConnection,
    *,
    unblinded: bool,
    config: StudyConfig | None = None,
    log: dg.DagsterLogManager | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, MatrixResults], dict[str, object]]:
    """Read the marts, analyse every matrix, and return the output tables (not yet written)."""
    started = time.perf_counter()
    marts = read_marts(con)
    subjects, sources = read_subjects(con, unblinded=unblinded, log=log)
    read_s = time.perf_counter() - started
    tables = matrix_tables(marts["values"], marts["injections"], marts["features"], marts["samples"])
    results: dict[str, MatrixResults] = {}
    for matrix, table in tables.items():
        results[matrix] = analyse_matrix(matrix, table, subjects, config)
        if log is not None:
            log.info(f"{matrix}: {results[matrix].summary}")
    out = combine(results)
    if not unblinded:
        leaks = arm_leaks(out)
        if leaks:
            raise dg.Failure(f"blinded run would write arm information: {', '.join(leaks[:10])}")
    info: dict[str, object] = {"read_s": round(read_s, 3), "sources": sources, "seconds": time.perf_counter() - started}
    return out, results, info


# ---------------------------------------------------------------------------------------------- asset


def _per_matrix(results: dict[str, MatrixResults], key: str, digits: int = 4) -> dict[str, object]:
    return {
        f"{matrix}_{key}": (round(float(v), digits) if isinstance(v, float | np.floating) else v)
        for matrix, r in results.items()
        if (v := r.summary.get(key)) is not None
    }


def _metadata(
    name: str, frame: pd.DataFrame, results: dict[str, MatrixResults], info: dict[str, object], unblinded: bool
) -> dict[str, object]:
    meta: dict[str, object] = {**table_metadata(frame), "unblinded": unblinded}
    if name == "metabolomics_steps":
        meta.update(_per_matrix(results, "features_in"))
        meta.update(_per_matrix(results, "features_prepared"))
        meta.update(_per_matrix(results, "samples"))
        meta.update(_per_matrix(results, "qcs"))
        meta["seconds"] = round(float(info["seconds"]), 2)  # type: ignore[arg-type]
    elif name.startswith("metabolomics_pca"):
        meta.update(_per_matrix(results, "pc1_variance"))
        meta.update(_per_matrix(results, "pc2_variance"))
    elif name == "metabolomics_qc_rsd":
        meta.update(_per_matrix(results, "qc_rsd_median_before", 2))
        meta.update(_per_matrix(results, "qc_rsd_median_after", 2))
    elif name == "differential_metabolites":
        top = top_features(frame, 5)
        if len(top):
            columns = ["matrix", "analysis", "contrast", "feature", "name", "kegg_ids", "log2fc", "welch_q", "lmm_q"]
            meta["top_metabolites"] = dg.MetadataValue.md(top[columns].to_markdown(index=False, floatfmt=".3g"))
        meta["analyses"] = ", ".join(sorted(frame["analysis"].dropna().unique())) if "analysis" in frame else ""
        for source, where in dict(info.get("sources", {})).items():  # type: ignore[call-overload]
            meta[f"{source}_source"] = where
    elif name == "metabolite_annotation" and "annotated" in frame:
        meta["annotated_features"] = int(frame["annotated"].sum())
        meta["features_with_kegg"] = int(frame["kegg_ids"].notna().sum())
    return meta


@dg.multi_asset(
    name="metabolomics_analysis",
    specs=[
        dg.AssetSpec(
            table_key(name),
            description=description,
            group_name=METABOLOMICS_GROUP,
            kinds={"python", "duckdb"},
            owners=group_owners(METABOLOMICS_GROUP),
            deps=[*MART_KEYS, BOR_KEY],
        )
        for name, description in TABLES.items()
    ],
    pool=DUCKDB_POOL,
    description="Metabolomics (issue 6): per matrix, drift correction + prepare (MetaboAnalyst recipe), "
    "prcomp-exact PCA overall and per visit with projected QCs, KEGG/HMDB annotation, differential metabolites "
    "(visit vs baseline, responder status; arm x visit only in unblinded runs).",
)
def metabolomics_analysis(context: dg.AssetExecutionContext, settings: TrialSettings) -> Iterator[dg.MaterializeResult]:
    unblinded = settings.is_unblinded
    if unblinded:
        context.log.warning("UNBLINDED run: differential metabolites include the arm x visit analysis")
    from threadpoolctl import threadpool_limits

    # One BLAS thread, as the microbiome assets: the mixed models' estimates otherwise move in the 5th-6th digit
    # with the number of OpenBLAS threads (= cores), so two machines would disagree; it also costs less CPU here
    # (measured on the 120-patient demo: 4.4-5.5 s with 1 thread, 7-17 s with 2 on a shared 2-core machine).
    with settings.connect() as con, threadpool_limits(limits=1, user_api="blas"):
        tables, results, info = run_analysis(con, unblinded=unblinded, log=context.log)
        write_tables(con, tables)
    context.log.info(f"metabolomics analysis: {len(results)} matrices in {float(info['seconds']):.1f} s")  # type: ignore[arg-type]
    for name, frame in tables.items():
        yield dg.MaterializeResult(asset_key=table_key(name), metadata=_metadata(name, frame, results, info, unblinded))


# ---------------------------------------------------------------------------------------------- integration


def read_genera(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Genus relative abundances per (patient, visit) from ``marts.taxa_counts`` + ``marts.taxonomy``."""
    counts = con.execute(
        "select c.batch_id || '/' || c.sample_id as library, c.specimen_barcode, c.subject_id, t.genus, "
        "c.relative_abundance from marts.taxa_counts c join marts.taxonomy t using (batch_id, feature_id)"
    ).df()
    samples = con.execute("select specimen_barcode, nominal_visit from marts.samples").df()
    return genus_table(counts, samples)


def read_differential_genera(con: duckdb.DuckDBPyConnection, threshold: float = GENUS_Q_THRESHOLD) -> list[str]:
    """Genera with a q-value below ``threshold`` in any analysis of ``analysis.differential_abundance``."""
    have = _columns(con, "analysis", "differential_abundance")
    if not {"rank", "taxon", "q_value"} <= have:
        return []
    rows = con.execute(
        "select taxon, min(q_value) as q from analysis.differential_abundance where lower(rank) = 'genus' "
        "group by taxon having min(q_value) < ? order by q, taxon",
        [threshold],
    ).fetchall()
    return [r[0] for r in rows]


@dg.asset(
    key=table_key(INTEGRATION_TABLE),
    description=INTEGRATION_DESCRIPTION,
    group_name=METABOLOMICS_GROUP,
    kinds={"python", "duckdb"},
    owners=group_owners(METABOLOMICS_GROUP),
    deps=[
        table_key("metabolomics_prepared"),
        table_key("differential_metabolites"),
        table_key("metabolite_annotation"),
        dg.AssetKey(["marts", "taxa_counts"]),
        dg.AssetKey(["marts", "taxonomy"]),
        dg.AssetKey(["marts", "samples"]),
        DIFFERENTIAL_TAXA_KEY,
    ],
    pool=DUCKDB_POOL,
)
def metabolite_genus_correlations(context: dg.AssetExecutionContext, settings: TrialSettings) -> dg.MaterializeResult:
    """Genus x metabolite Spearman correlations within patient and visit (issue 6, item 7)."""
    started = time.perf_counter()
    with settings.connect() as con:
        genera = read_genera(con)
        flagged = read_differential_genera(con)
        prepared = con.execute("select * from analysis.metabolomics_prepared").df()
        differential = con.execute("select * from analysis.differential_metabolites").df()
        annotation = con.execute("select * from analysis.metabolite_annotation").df()
        table = integrate(genera, prepared, differential, annotation, differential_genera=flagged)
        if not settings.is_unblinded and arm_leaks({INTEGRATION_TABLE: table}):
            raise dg.Failure("blinded run would write arm information into the integration table")
        write_tables(con, {INTEGRATION_TABLE: table})
    significant = table[table["q"] < 0.05] if len(table) else table
    top = table.head(10)
    context.log.info(f"{len(table)} genus x metabolite pairs, {len(significant)} with q < 0.05")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "differential_genera": len(flagged),
            "genera": int(table["genus"].nunique()) if len(table) else 0,
            "metabolites": int(table["feature"].nunique()) if len(table) else 0,
            "pairs_q_below_0_05": len(significant),
            "top_pairs": dg.MetadataValue.md(
                top[["matrix", "genus", "name", "feature", "n", "rho", "q"]].to_markdown(index=False, floatfmt=".3g")
            )
            if len(top)
            else "",
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
