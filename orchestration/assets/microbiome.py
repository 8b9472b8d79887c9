"""Microbiome (16S) analyses: Python assets that read the omics marts and write DuckDB schema ``analysis``.

Five multi-assets (group ``microbiome``), each computing its tables together (:mod:`analysis.microbiome.pipeline`)
and replacing them in one transaction (``create or replace table analysis.<name> as select * from <frame>``,
:func:`orchestration.analysis_io.write_tables`):

* ``microbiome_qc``: library sizes, negative controls and their genera, mock community vs expected, sample flags;
* ``microbiome_alpha``: mothur alpha indices unrarefied and rarefied (depth by ``choose_depth``, libraries below
  it listed, ``iterations`` seeded subsamples, default 1,000), rarefaction curves;
* ``microbiome_alpha_tests``: Kruskal–Wallis / Wilcoxon with BH and paired change from baseline (reads the alpha
  tables back);
* ``microbiome_beta``: Bray–Curtis / Jaccard / Aitchison on genus-collapsed counts (mothur OTU ids are per batch,
  so cross-batch analyses use lineage-collapsed taxa) and, when batches delivered a phylogeny
  (``staging.stg_seq__trees``), weighted and unweighted UniFrac on the features of the batches sharing the tree;
  written as ``.npz`` files in ``<warehouse>_microbiome/`` and listed in ``analysis.beta_distance_files``; PCoA
  (Bray–Curtis, UniFrac), NMDS (Bray–Curtis, stress) and PCA (CLR) coordinates with visit (arm only unblinded);
  PERMANOVA / PERMDISP / ANOSIM by visit (within patients) and by response (whole patients; and per visit), by
  arm only unblinded; distance to own baseline;
* ``microbiome_differential``: CLR-based differential abundance per rank (phylum .. genus) by visit, by response
  and, unblinded, by arm x visit (Wilcoxon; CLR mixed models with a patient random intercept, all taxa at once;
  ANCOM-BC per visit at genus rank).

Blinding: a blinded run never reads ``marts.adsl.arm_code``; no table, file or metadata it writes has an arm.
When the warehouse has no patient sequencing data the assets drop their tables (nothing stale survives) and
report zero rows instead of failing the run.

Run configuration (launchpad ``ops: microbiome_alpha: config: iterations: ...``; ``GUTTRIAL_MICROBIOME_ITERATIONS``
overrides the default for headless builds): ``iterations`` (1,000), ``permutations`` (999) and ``blas_threads`` (1).
"""

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from analysis.microbiome import pipeline as mb
from orchestration.analysis_io import ANALYSIS_SCHEMA, write_tables
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.resources import TrialSettings

MICROBIOME_GROUP = "microbiome"
OWNERS = ["team:bioinformatics"]
PREVIEW_ROWS = 10
ENV_ITERATIONS = "GUTTRIAL_MICROBIOME_ITERATIONS"

MART_DEPS: list[dg.AssetKey] = [
    dg.AssetKey(["marts", name])
    for name in ("taxa_counts", "taxonomy", "samples", "sequencing_controls", "sequencing_control_counts", "adsl")
]
#: Responder status comes from the endpoint tables (confirmed BOR, RECIST 1.1, derived).
RESPONSE_DEP = dg.AssetKey([ANALYSIS_SCHEMA, "best_overall_response"])

TABLE_DESCRIPTIONS: dict[str, str] = {
    "microbiome_qc_library_sizes": "Library-size distribution (n, min, quartiles, mean, sd, cv) per batch and "
    "overall, for patient libraries, negative controls and mock communities.",
    "microbiome_qc_negative_controls": "Per negative control: reads, features, ratio to its batch's median and "
    "smallest patient library, dominant genera, contamination flag (> 10 % of the batch median).",
    "microbiome_qc_negative_taxa": "Genera seen in negative controls: prevalence and read share there vs prevalence "
    "and mean relative abundance in patient samples; contaminant candidates.",
    "microbiome_qc_mock_community": "Per mock-community library: expected genera recovered, unexpected read share, "
    "Bray-Curtis between observed and expected genus composition (ZymoBIOMICS D6300 theoretical 16S).",
    "microbiome_qc_mock_taxa": "Per mock library and genus: observed vs expected fraction and log2 ratio.",
    "microbiome_qc_sample_flags": "Every patient library: size, unassigned shares and flags (below rarefaction "
    "depth, low depth, high unassigned, duplicate library of a specimen).",
    "alpha_diversity": "mothur summary.single indices (with CIs) per sample, unrarefied, with visit.",
    "alpha_diversity_rarefied": "Rarefied alpha diversity: mean and SD (<index>_sd) over seeded subsamples at the "
    "chosen depth (mothur subsample=T semantics); samples below depth are absent (see rarefaction_below_depth).",
    "rarefaction_depth": "The rarefaction depth chosen (rule, keep fraction, floor), samples kept and below depth, "
    "iterations and seed.",
    "rarefaction_below_depth": "Samples with fewer reads than the rarefaction depth (left out of rarefied analyses).",
    "rarefaction_curves": "Expected observed richness per sample at log-spaced depths (exact, Hurlbert 1971).",
    "alpha_group_tests": "Kruskal-Wallis and pairwise Wilcoxon rank-sum (BH) on alpha indices by visit, by response "
    "per visit (by arm per visit in unblinded runs), unrarefied and rarefied.",
    "alpha_change_tests": "Change of alpha indices from the patient's own baseline per visit: signed-rank within "
    "groups, rank-sum between groups (BH).",
    "beta_distance_files": "Distance matrices stored as condensed .npz files beside the warehouse (load with "
    "analysis.microbiome.beta.load_npz): metric (Bray-Curtis, Jaccard, Aitchison; weighted and unweighted UniFrac "
    "when a phylogeny was delivered), feature level, transform, samples, path.",
    "ordination_coordinates": "Per sample and ordination (PCoA Bray-Curtis and UniFrac, NMDS Bray-Curtis, PCA on "
    "CLR): axes 1-5 with subject, visit, batch and response (arm only in unblinded runs).",
    "ordination_axes": "Per ordination axis: eigenvalue and proportion explained (PCoA, PCA) or stress (NMDS).",
    "beta_group_tests": "PERMANOVA (R2 as adonis2), ANOSIM and PERMDISP by visit (permuted within patients), by "
    "response (whole patients, and per visit); by arm in unblinded runs; BH per test and metric.",
    "beta_distance_to_baseline": "Bray-Curtis distance of every post-baseline sample to its patient's baseline.",
    "beta_baseline_tests": "Distance to own baseline compared between responders and non-responders (and arms, "
    "unblinded) per visit.",
    "differential_abundance": "CLR-based differential abundance per rank (phylum..genus) and visit: responder vs "
    "non-responder, paired change from baseline, and (unblinded) arm and arm x visit; Wilcoxon, CLR mixed models "
    "(patient random intercept) and ANCOM-BC (genus, per visit), method in `method`; effects, q-values, ranks.",
}

ASSET_TABLES: dict[str, tuple[str, ...]] = {
    "qc": (
        "microbiome_qc_library_sizes",
        "microbiome_qc_negative_controls",
        "microbiome_qc_negative_taxa",
        "microbiome_qc_mock_community",
        "microbiome_qc_mock_taxa",
        "microbiome_qc_sample_flags",
    ),
    "alpha": (
        "alpha_diversity",
        "alpha_diversity_rarefied",
        "rarefaction_depth",
        "rarefaction_below_depth",
        "rarefaction_curves",
    ),
    "alpha_tests": ("alpha_group_tests", "alpha_change_tests"),
    "beta": (
        "beta_distance_files",
        "ordination_coordinates",
        "ordination_axes",
        "beta_group_tests",
        "beta_distance_to_baseline",
        "beta_baseline_tests",
    ),
    "differential": ("differential_abundance",),
}
DESCRIPTIONS: dict[str, str] = {
    "qc": "Sequencing QC: library sizes, negative controls, mock community vs expected, flagged samples.",
    "alpha": "Alpha diversity (mothur calculators) unrarefied and rarefied, rarefaction depth and curves.",
    "alpha_tests": "Group tests and change from baseline on alpha diversity.",
    "beta": "Beta diversity files (UniFrac when a tree was delivered), PCoA/NMDS/PCA coordinates, "
    "PERMANOVA/PERMDISP/ANOSIM, distance to baseline.",
    "differential": "Differential abundance of taxa per rank (CLR + Wilcoxon, paired change from baseline, CLR "
    "mixed models; ANCOM-BC at genus rank).",
}


class MicrobiomeRunConfig(dg.Config):
    """Per-run settings of the microbiome assets (0 = the default: 1,000 iterations, 999 permutations).

    ``blas_threads``: BLAS/LAPACK threads while an asset computes (0 = the library's default, one per core). The
    default 1: the matrices are a few hundred to a few thousand samples wide, where a second OpenBLAS thread saves
    little and, on a machine shared with Dagster, DuckDB and other runs, spin-waits: measured on the 120-patient
    demo (2 cores, loaded), the beta asset took 13 s CPU with 2 threads and 7 s with 1, and less wall time too.
    """

    iterations: int = 0
    permutations: int = 0
    blas_threads: int = 1


@contextmanager
def _blas_threads(threads: int) -> Iterator[None]:
    """Limit BLAS threads (threadpoolctl) for the block; ``threads <= 0`` leaves the library default."""
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def analysis_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([ANALYSIS_SCHEMA, table])


def microbiome_config(run: MicrobiomeRunConfig) -> mb.MicrobiomeConfig:
    """The analysis configuration of a run: run config, else ``GUTTRIAL_MICROBIOME_ITERATIONS``, else defaults."""
    default = mb.MicrobiomeConfig()
    iterations = run.iterations or int(os.environ.get(ENV_ITERATIONS) or default.iterations)
    permutations = run.permutations or default.permutations
    return mb.MicrobiomeConfig(iterations=iterations, permutations=permutations)


# ------------------------------------------------------------------------------------------------ metadata


def _preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    if frame.empty:
        return "_empty_"
    head = frame.head(rows).copy()
    for col in head.columns:
        if pd.api.types.is_float_dtype(head[col]):
            head[col] = head[col].round(4)
    return head.to_markdown(index=False)


def _column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])


def _table_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": _column_schema(frame),
        "preview": dg.MetadataValue.md(_preview(frame)),
    }


def _drop_tables(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> None:
    con.execute("begin transaction")
    try:
        for table in tables:
            con.execute(f'drop table if exists {ANALYSIS_SCHEMA}."{table}"')
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _has_sequencing(con: duckdb.DuckDBPyConnection) -> bool:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'marts' and table_name = 'taxa_counts'"
    ).fetchone()[0]
    return bool(exists) and bool(con.execute("select count(*) from marts.taxa_counts").fetchone()[0])


def _figures_qc(tables: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    flags = tables["microbiome_qc_sample_flags"]
    mock = tables["microbiome_qc_mock_community"]
    neg = tables["microbiome_qc_negative_controls"]
    sizes = tables["microbiome_qc_library_sizes"]
    overall = sizes[(sizes["batch_id"] == "ALL") & (sizes["role"] == "SAMPLE")]
    out: dict[str, dict[str, Any]] = {
        "microbiome_qc_sample_flags": {
            "flagged libraries": int(flags["flagged"].sum()),
            "below rarefaction depth": int(flags["below_rarefaction_depth"].sum()),
            "low depth": int(flags["low_depth"].sum()),
            "high unassigned": int(flags["high_unassigned"].sum()),
        },
        "microbiome_qc_negative_controls": {
            "negative controls": len(neg),
            "flagged for contamination": int(neg["flag_contamination"].sum()) if len(neg) else 0,
            "max reads in a negative": float(neg["reads"].max()) if len(neg) else 0.0,
        },
        "microbiome_qc_mock_community": {
            "mock libraries": len(mock),
            "max Bray-Curtis to expected": float(mock["braycurtis_to_expected"].max()) if len(mock) else float("nan"),
            "min expected genera recovered": int(mock["n_recovered"].min()) if len(mock) else 0,
        },
    }
    if len(overall):
        row = overall.iloc[0]
        out["microbiome_qc_library_sizes"] = {
            "median library size": float(row["median"]),
            "min library size": float(row["min"]),
            "max library size": float(row["max"]),
        }
    return out


# ------------------------------------------------------------------------------------------------ assets

Tables = dict[str, pd.DataFrame]
Figures = dict[str, dict[str, Any]]
Compute = Callable[
    [mb.MicrobiomeInputs, mb.MicrobiomeConfig, TrialSettings, duckdb.DuckDBPyConnection, mb.Timer],
    tuple[Tables, Figures],
]


def _compute_qc(
    inputs: mb.MicrobiomeInputs,
    config: mb.MicrobiomeConfig,
    settings: TrialSettings,
    con: duckdb.DuckDBPyConnection,
    timer: mb.Timer,
) -> tuple[Tables, Figures]:
    with timer("qc"):
        tables = mb.compute_qc(inputs, config)
    return tables, _figures_qc(tables)


def _compute_alpha(
    inputs: mb.MicrobiomeInputs,
    config: mb.MicrobiomeConfig,
    settings: TrialSettings,
    con: duckdb.DuckDBPyConnection,
    timer: mb.Timer,
) -> tuple[Tables, Figures]:
    tables, depth = mb.compute_alpha(inputs, config, timer)
    figures = {
        "rarefaction_depth": {
            "depth": depth.depth,
            "rule": depth.reason,
            "n below depth": len(depth.below_depth),
            "iterations": config.iterations,
        },
        "alpha_diversity_rarefied": {"depth": depth.depth, "iterations": config.iterations},
        "rarefaction_below_depth": {"n below depth": len(depth.below_depth)},
    }
    return tables, figures


def _compute_alpha_tests(
    inputs: mb.MicrobiomeInputs,
    config: mb.MicrobiomeConfig,
    settings: TrialSettings,
    con: duckdb.DuckDBPyConnection,
    timer: mb.Timer,
) -> tuple[Tables, Figures]:
    alpha_tables = {
        name: con.execute(f"select * from {ANALYSIS_SCHEMA}.{name}").df()
        for name in ("alpha_diversity", "alpha_diversity_rarefied")
    }
    with timer("alpha_tests"):
        tables = mb.compute_alpha_tests(alpha_tables, inputs, config)
    kw = tables["alpha_group_tests"]
    kw = kw[(kw["test"] == "kruskal") & (kw["factor"] == "visit") & (kw["source"] == "unrarefied")]
    figures = {
        "alpha_group_tests": {
            f"Kruskal-Wallis by visit p ({r['index']})": float(r["p_value"]) for _, r in kw.iterrows()
        }
    }
    return tables, figures


def _compute_beta(
    inputs: mb.MicrobiomeInputs,
    config: mb.MicrobiomeConfig,
    settings: TrialSettings,
    con: duckdb.DuckDBPyConnection,
    timer: mb.Timer,
) -> tuple[Tables, Figures]:
    depth = mb.depth_choice(inputs, config)
    tables, fig = mb.compute_beta(inputs, config, mb.distance_dir(settings.warehouse), depth.depth, timer)
    tests = tables["beta_group_tests"]
    perm = tests[(tests["test"] == "PERMANOVA") & (tests["visit"] == "ALL")]
    test_figs: dict[str, Any] = {}
    for _, r in perm.iterrows():
        test_figs[f"PERMANOVA {r['metric']} ~ {r['factor']} R2"] = float(r["r2"])
        test_figs[f"PERMANOVA {r['metric']} ~ {r['factor']} p"] = float(r["p_value"])
    figures = {
        "ordination_coordinates": {
            "NMDS stress (Bray-Curtis)": fig["nmds_stress"],
            "PCoA axis 1 proportion explained": fig["pcoa_axis1_share"],
            "PCoA axis 2 proportion explained": fig["pcoa_axis2_share"],
            "samples": fig["n_samples"],
            "taxa": fig["n_taxa"],
        },
        "ordination_axes": {"NMDS stress (Bray-Curtis)": fig["nmds_stress"]},
        "beta_group_tests": test_figs,
        "beta_distance_files": {"folder": dg.MetadataValue.path(str(mb.distance_dir(settings.warehouse)))},
    }
    return tables, figures


def _compute_differential(
    inputs: mb.MicrobiomeInputs,
    config: mb.MicrobiomeConfig,
    settings: TrialSettings,
    con: duckdb.DuckDBPyConnection,
    timer: mb.Timer,
) -> tuple[Tables, Figures]:
    tables, tops = mb.compute_differential(inputs, config, timer)
    figures = {
        "differential_abundance": {
            f"top genera: {analysis}": dg.MetadataValue.md("\n".join(f"- {t}" for t in lines))
            for analysis, lines in tops.items()
        }
    }
    return tables, figures


COMPUTE: dict[str, Compute] = {
    "qc": _compute_qc,
    "alpha": _compute_alpha,
    "alpha_tests": _compute_alpha_tests,
    "beta": _compute_beta,
    "differential": _compute_differential,
}
#: The delivered phylogenies (optional; UniFrac) are read from staging: there is no mart of trees.
TREES_DEP = dg.AssetKey(["staging", "stg_seq__trees"])
EXTRA_DEPS: dict[str, list[dg.AssetKey]] = {
    "qc": [],
    "alpha": [],
    "alpha_tests": [analysis_key("alpha_diversity"), analysis_key("alpha_diversity_rarefied")],
    "beta": [TREES_DEP],
    "differential": [],
}


def _build_asset(name: str) -> dg.AssetsDefinition:
    tables = ASSET_TABLES[name]

    @dg.multi_asset(
        name=f"microbiome_{name}",
        specs=[
            dg.AssetSpec(
                analysis_key(t),
                description=TABLE_DESCRIPTIONS[t],
                group_name=MICROBIOME_GROUP,
                kinds={"python", "duckdb"},
                owners=OWNERS,
                deps=[*MART_DEPS, RESPONSE_DEP, *EXTRA_DEPS[name]],
            )
            for t in tables
        ],
        pool=DUCKDB_POOL,
        can_subset=False,
        description=DESCRIPTIONS[name] + " Writes DuckDB schema `analysis` in one transaction.",
    )
    def _asset(
        context: dg.AssetExecutionContext, settings: TrialSettings, config: MicrobiomeRunConfig
    ) -> Iterator[dg.MaterializeResult]:
        blinded = not settings.is_unblinded
        cfg = microbiome_config(config)
        timer = mb.Timer()
        started, cpu_started = time.perf_counter(), time.process_time()
        with settings.connect() as con:
            if not _has_sequencing(con):
                _drop_tables(con, tables)
                context.log.warning("no patient sequencing data in marts.taxa_counts: microbiome tables dropped")
                for t in tables:
                    yield dg.MaterializeResult(
                        asset_key=analysis_key(t),
                        metadata={"dagster/row_count": dg.MetadataValue.int(0), "skipped": "no sequencing data"},
                    )
                return
            with timer("read_inputs"):
                inputs = mb.read_inputs(con, unblinded=not blinded)
            with _blas_threads(config.blas_threads):
                out, figures = COMPUTE[name](inputs, cfg, settings, con, timer)
            with timer("write"):
                write_tables(con, out)
        seconds = round(time.perf_counter() - started, 2)
        cpu_seconds = round(time.process_time() - cpu_started, 2)
        context.log.info(
            f"microbiome_{name}: wrote {len(out)} tables to {ANALYSIS_SCHEMA} in {seconds} s ({cpu_seconds} s CPU) "
            f"({'blinded' if blinded else 'UNBLINDED'}; {inputs.matrix.counts.shape[0]} samples); steps {timer.seconds}"
        )
        for t in tables:
            yield dg.MaterializeResult(
                asset_key=analysis_key(t),
                metadata={
                    **_table_metadata(out[t]),
                    "blinded": blinded,
                    "seconds (whole asset)": dg.MetadataValue.float(seconds),
                    "cpu seconds (whole asset)": dg.MetadataValue.float(cpu_seconds),
                    "step seconds": dg.MetadataValue.json(timer.seconds),
                    "step cpu seconds": dg.MetadataValue.json(timer.cpu_seconds),
                    **figures.get(t, {}),
                },
            )

    return _asset


microbiome_assets: list[dg.AssetsDefinition] = [_build_asset(n) for n in ASSET_TABLES]
