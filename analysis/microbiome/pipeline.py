"""The trial's microbiome analyses from the dbt marts to ``analysis`` tables (no Dagster here).

:mod:`orchestration.assets.microbiome` calls these functions; tests and notebooks can call them on any warehouse.

**Inputs** (:func:`read_inputs`): ``marts.taxa_counts`` (patient libraries, long, non-zero counts),
``marts.taxonomy``, ``marts.samples`` (visit of every specimen), ``marts.sequencing_controls`` and
``marts.sequencing_control_counts``, ``analysis.best_overall_response`` (responder = confirmed BOR CR/PR, RECIST
1.1, derived; when the endpoint assets have written it) and, **only in unblinded runs**, ``marts.adsl.arm_code``.
A blinded run never reads the arm column, and no table, file or metadata it writes has an arm.

**Samples.** One library per specimen: when a specimen was sequenced more than once, the deepest library is
kept and the others are listed in the QC flags (``duplicate_library``). Rows are specimens
(``sample_id`` = specimen barcode), the key every ``analysis`` table and the marts share.

**Features and batches.** The feature key is ``(batch_id, feature_id)``: ASV ids (MD5 of the sequence) are
global, but mothur numbers OTUs per batch (``Otu0001`` of two batches are different organisms). The
samples x features matrix (:func:`feature_matrix`) therefore has one column per ``(batch_id, feature_id)``;
per-sample analyses (alpha diversity, rarefaction) are unaffected. **Cross-sample analyses (beta diversity,
ordination, group tests, differential abundance) use taxa collapsed by lineage** (genus by default, features
without a genus rolled up to their deepest assigned rank, e.g. ``Lachnospiraceae (unassigned genus)``), which
is the level at which OTU and ASV batches agree. Alpha diversity of mothur OTU batches (97 % OTUs) is not
comparable in magnitude with ASV batches; ``alpha_diversity`` carries ``batch_id`` so models can adjust for it.

**Rarefaction**: depth from :func:`analysis.microbiome.rarefaction.choose_depth` (largest depth keeping >= 90 %
of the libraries, floor 1,000 reads), libraries below it listed in ``rarefaction_below_depth`` and flagged;
``subsampled_alpha`` with ``iterations`` (default 1,000, mothur's) seeded draws: mean and SD per index.

**Beta diversity** on the genus table: Bray–Curtis on relative abundances (total-sum scaling, so unequal depths
do not count as dissimilarity), Jaccard on presence/absence after one seeded rarefaction to the chosen depth
(libraries below it left out: presence depends on depth), Aitchison on ``clr(counts + 1)``. Square matrices
are stored as condensed ``.npz`` files (:meth:`BetaDistances.save_npz`) in ``<warehouse>_microbiome/`` beside
the warehouse file and listed in ``analysis.beta_distance_files``; nothing n² goes into DuckDB.

**UniFrac** (when sequencing batches delivered a phylogeny, ``staging.stg_seq__trees``; :func:`phylogeny_counts`):
on the features (not genera) of the batches that share one tree (ASV ids are global, so the batches' columns merge
by feature id; the group of batches with the most samples when several trees were delivered), weighted UniFrac on
relative abundances (not normalised, the skbio/QIIME 2 default), unweighted UniFrac on presence/absence after the
same seeded rarefaction as Jaccard; files, PCoA and PERMANOVA as for the other metrics, ``feature_level =
'feature'``.

**Tests.** Visit effects: PERMANOVA/ANOSIM permuting within patients (``strata``; a patient contributes one
sample per visit); between-patient factors (response; arm in unblinded runs): overall with whole-patient
permutations, and per visit (one sample per patient, free permutations). PERMDISP per factor. Alpha indices:
Kruskal–Wallis and pairwise Wilcoxon rank-sum with BH, and within-patient change from baseline (signed rank).
ANOSIM and PERMDISP run on Bray–Curtis only (PERMANOVA on all three metrics).

**Differential abundance** per rank (phylum .. genus; taxa kept when present in >= 10 % of samples; CLR with
pseudocount 0.5 on the kept taxa), one long table with an ``analysis`` column:

* ``responder_by_visit``: responders vs non-responders at each visit (CLR + Wilcoxon rank-sum,
  :func:`analysis.microbiome.differential.by_visit`); ``responder_pooled``: per-patient mean CLR over all visits;
* ``change_from_baseline``: paired CLR change from the patient's baseline at each visit (signed rank), pooled
  over arms (the blinded view of time effects);
* CLR linear mixed models with a random intercept per patient (:func:`mixed_model_tests`, REML, all taxa at once):
  ``visit_lmm`` (each visit vs baseline), ``responder_lmm`` (adjusted for visit) and, unblinded, ``arm_x_visit_lmm``
  (the arm x visit interaction at each visit); method ``clr_lmm``;
* ANCOM-BC (skbio) at :attr:`MicrobiomeConfig.ancombc_rank` (genus) per visit, one sample per patient:
  ``responder_by_visit_ancombc`` and, unblinded, ``arm_by_visit_ancombc``; method ``ancombc``;
* unblinded only: ``arm_by_visit`` (CAPSULE vs PLACEBO at each visit), ``arm_x_visit`` (difference between arms
  in CLR change from baseline at each visit: the arm x visit interaction), ``arm_on_treatment`` (per-patient
  mean CLR over the scheduled on-treatment visits) and ``arm_x_visit_pooled`` (per-patient mean CLR change from
  baseline over those visits). The pooled analyses are summary measures (Matthews et al. 1990, BMJ 300:230):
  one value per patient, so repeated visits neither inflate the sample size nor need a mixed model (the mixed
  models above are the model-based counterpart).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from analysis.microbiome import qc
from analysis.microbiome.alpha import MOTHUR_DEFAULT_SEED, alpha_diversity, subsampled_alpha
from analysis.microbiome.beta import BetaDistances, aitchison, bray_curtis, jaccard, unifrac
from analysis.microbiome.beta import clr as clr_transform
from analysis.microbiome.differential import DEFAULT_CLR_PSEUDOCOUNT, by_visit, clr_lmm, prevalence_filter
from analysis.microbiome.group_tests import (
    PermutationTest,
    alpha_change_tests,
    alpha_group_tests,
    anosim,
    baseline_distance_tests,
    bh,
    distance_to_baseline,
    permanova,
    permdisp,
)
from analysis.microbiome.ordination import Ordination, nmds, pca_clr, pcoa
from analysis.microbiome.rarefaction import DepthChoice, choose_depth, rarefaction_curves
from analysis.microbiome.taxa import RANKS, collapse

__all__ = [
    "ALPHA_TEST_INDICES",
    "FeatureMatrix",
    "MicrobiomeConfig",
    "MicrobiomeInputs",
    "compute_alpha",
    "compute_alpha_tests",
    "compute_beta",
    "compute_differential",
    "compute_qc",
    "distance_dir",
    "feature_matrix",
    "read_inputs",
]

#: Alpha indices tested between groups (the protocol's "Chao, Shannon, Simpson, ACE and Coverage" + sobs).
ALPHA_TEST_INDICES: tuple[str, ...] = ("sobs", "chao", "ace", "shannon", "simpson", "invsimpson", "coverage")
#: The mart column of each taxonomic rank (the marts say ``kingdom`` where :data:`RANKS` says ``domain``).
MART_RANK_COLUMNS: dict[str, str] = {"domain": "kingdom", **{r: r for r in RANKS if r != "domain"}}
TREE_COLUMNS: tuple[str, ...] = ("batch_id", "newick_sha256", "newick", "rooted")


@dataclass(frozen=True)
class MicrobiomeConfig:
    """Every choice of the microbiome analyses (recorded as JSON in ``analysis.microbiome_run``)."""

    keep_fraction: float = 0.9  #: rarefaction depth keeps at least this share of libraries
    depth_floor: int = 1000  #: ... and is never below this many reads
    iterations: int = 1000  #: subsampling iterations for rarefied alpha (mothur's default)
    seed: int = MOTHUR_DEFAULT_SEED
    curve_points: int = 25  #: depths per rarefaction curve (log-spaced, plus the chosen depth)
    beta_rank: str = "genus"  #: features collapsed to this rank for beta diversity and ordination
    pcoa_axes: int = 5
    nmds_starts: int = 4
    permutations: int = 999
    da_ranks: tuple[str, ...] = ("phylum", "class", "order", "family", "genus")
    da_min_prevalence: float = 0.1
    ancombc_rank: str | None = "genus"  #: ANCOM-BC per visit at this rank only (None: never); ~1 s per contrast
    low_depth: int = 5000  #: QC flag below this many reads
    max_unassigned: float = 0.1  #: QC flag above this share of reads without a phylum
    negative_max_ratio: float = 0.1  #: negative control flagged above this share of its batch's median depth
    mock_expected: dict[str, float] = field(default_factory=lambda: dict(qc.ZYMOBIOMICS_16S_GENUS))
    mock_detection: float = 0.001
    baseline_visit: str = "BASELINE"
    #: visits ordered at or after this (``PROGRESSION`` = 90) are event-driven, not on-treatment time points
    unscheduled_order: int = 90
    arm_reference: str = "PLACEBO"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# ------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class FeatureMatrix:
    """Samples x features counts (CSR, int64) with the row and column keys."""

    counts: sp.csr_matrix
    sample_ids: tuple[str, ...]  #: specimen barcodes, one row each
    features: pd.DataFrame  #: ``batch_id, feature_id`` per column
    libraries: pd.DataFrame  #: per row: ``sample_id, batch_id, library_id, subject_id, library_size``

    @property
    def library_sizes(self) -> pd.Series:
        return pd.Series(np.asarray(self.counts.sum(axis=1)).ravel(), index=list(self.sample_ids), name="reads")


def feature_matrix(long: pd.DataFrame) -> tuple[FeatureMatrix, pd.DataFrame]:
    """Sparse matrix from long counts ``batch_id, sample_id, specimen_barcode, subject_id, feature_id,
    read_count`` (vectorised: pandas categorical codes -> ``scipy.sparse.coo`` -> CSR).

    Returns the matrix of one library per specimen (the deepest; ties: the first batch) and the table of all
    libraries with ``kept`` and ``duplicate_library`` columns.
    """
    batch = pd.Categorical(long["batch_id"])
    library = pd.Categorical(long["sample_id"])
    lib_code = batch.codes.astype(np.int64) * max(len(library.categories), 1) + library.codes
    lib_uniq, lib_row = np.unique(lib_code, return_inverse=True)
    feature = pd.Categorical(long["feature_id"])
    feat_code = batch.codes.astype(np.int64) * max(len(feature.categories), 1) + feature.codes
    feat_uniq, feat_col = np.unique(feat_code, return_inverse=True)
    reads = long["read_count"].to_numpy(dtype=np.int64)
    matrix = sp.coo_matrix((reads, (lib_row, feat_col)), shape=(lib_uniq.size, feat_uniq.size)).tocsr()
    matrix.sum_duplicates()
    first = np.zeros(lib_uniq.size, dtype=np.int64)
    first[lib_row[::-1]] = np.arange(len(long) - 1, -1, -1)  # first long row of every library
    libs = pd.DataFrame(
        {
            "batch_id": long["batch_id"].to_numpy()[first],
            "library_id": long["sample_id"].to_numpy()[first],
            "sample_id": long["specimen_barcode"].to_numpy()[first],
            "subject_id": long["subject_id"].to_numpy()[first],
            "library_size": np.asarray(matrix.sum(axis=1)).ravel().astype(np.int64),
            "n_features": np.diff(matrix.indptr),
        }
    )
    order = libs.sort_values(["sample_id", "library_size", "batch_id"], ascending=[True, False, True], kind="stable")
    keep = ~order["sample_id"].duplicated()
    libs["kept"] = False
    libs.loc[order.index[keep.to_numpy()], "kept"] = True
    dup_specimens = set(libs.loc[~libs["kept"], "sample_id"])
    libs["duplicate_library"] = libs["sample_id"].isin(dup_specimens)
    rows = np.flatnonzero(libs["kept"].to_numpy())
    rows = rows[np.argsort(libs["sample_id"].to_numpy()[rows], kind="stable")]
    features = pd.DataFrame(
        {
            "batch_id": np.asarray(batch.categories, dtype=object)[feat_uniq // max(len(feature.categories), 1)],
            "feature_id": np.asarray(feature.categories, dtype=object)[feat_uniq % max(len(feature.categories), 1)],
        }
    )
    kept = libs.iloc[rows].reset_index(drop=True)
    fm = FeatureMatrix(
        sp.csr_matrix(matrix[rows]),
        tuple(str(s) for s in kept["sample_id"]),
        features,
        kept[["sample_id", "batch_id", "library_id", "subject_id", "library_size", "n_features"]],
    )
    return fm, libs


@dataclass
class MicrobiomeInputs:
    """Everything the analyses read from the warehouse (see the module docstring)."""

    matrix: FeatureMatrix
    all_libraries: pd.DataFrame
    long_counts: pd.DataFrame
    taxonomy: pd.DataFrame  #: ``batch_id, feature_id`` + the :data:`RANKS` columns
    meta: pd.DataFrame  #: index sample_id: subject_id, batch_id, visit, visit_order, study_day, responder[, arm]
    controls: pd.DataFrame
    control_counts: pd.DataFrame
    unblinded: bool
    responder_source: str | None
    #: ``batch_id, newick_sha256, newick, rooted`` of the delivered phylogenies (``staging.stg_seq__trees``; empty
    #: when no batch has a tree)
    trees: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(TREE_COLUMNS)))

    @property
    def feature_taxonomy(self) -> pd.DataFrame:
        """Taxonomy aligned to the matrix columns (rank columns only; missing features unassigned)."""
        keys = pd.MultiIndex.from_frame(self.matrix.features[["batch_id", "feature_id"]])
        tax = self.taxonomy.set_index(["batch_id", "feature_id"])[list(RANKS)]
        return tax.reindex(keys).reset_index(drop=True)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def read_inputs(con: duckdb.DuckDBPyConnection, *, unblinded: bool) -> MicrobiomeInputs:
    """Read the marts (and, unblinded only, the arm) into :class:`MicrobiomeInputs`."""
    for table in ("taxa_counts", "taxonomy", "samples", "sequencing_controls", "sequencing_control_counts"):
        if not _table_exists(con, "marts", table):
            raise LookupError(f"marts.{table} does not exist: build the marts first (guttrial build)")
    long = con.execute(
        "select batch_id, sample_id, specimen_barcode, subject_id, feature_id, read_count "
        "from marts.taxa_counts where read_count > 0 order by batch_id, sample_id, feature_id"
    ).df()
    if long.empty:
        raise LookupError("marts.taxa_counts has no patient sample counts")
    matrix, libs = feature_matrix(long)
    rank_cols = ", ".join(f'"{MART_RANK_COLUMNS[r]}" as "{r}"' for r in RANKS)
    taxonomy = con.execute(
        f"select batch_id, feature_id, {rank_cols} from marts.taxonomy order by batch_id, feature_id"
    ).df()
    taxonomy = taxonomy.drop_duplicates(["batch_id", "feature_id"])
    samples = con.execute(
        "select specimen_barcode as sample_id, subject_id, specimen_type, nominal_visit as visit, "
        "nominal_visit_order as visit_order, study_day from marts.samples order by specimen_barcode"
    ).df()
    meta = matrix.libraries[["sample_id", "batch_id", "library_id", "library_size"]].merge(
        samples, on="sample_id", how="left"
    )
    meta["subject_id"] = meta["subject_id"].fillna(
        matrix.libraries.set_index("sample_id")["subject_id"].reindex(meta["sample_id"]).reset_index(drop=True)
    )
    responder_source = None
    meta["responder"] = pd.Series(pd.NA, index=meta.index, dtype="boolean")
    if _table_exists(con, "analysis", "best_overall_response"):
        bor = con.execute(
            "select subject_id, bool_or(responder) as responder from analysis.best_overall_response "
            "where criterion = 'RECIST 1.1' and evaluator = 'DERIVED' and confirmed "
            "group by subject_id order by subject_id"
        ).df()
        meta["responder"] = meta["subject_id"].map(bor.set_index("subject_id")["responder"]).astype("boolean")
        responder_source = "analysis.best_overall_response (RECIST 1.1, derived, confirmed CR/PR)"
    if unblinded:
        arm = con.execute("select subject_id, arm_code from marts.adsl order by subject_id").df()
        meta["arm"] = meta["subject_id"].map(arm.set_index("subject_id")["arm_code"])
    meta = meta.set_index("sample_id")
    controls = con.execute(
        "select batch_id, sample_id, sample_role, library_size, n_features from marts.sequencing_controls "
        "order by batch_id, sample_id"
    ).df()
    control_counts = con.execute(
        "select batch_id, sample_id, sample_role, feature_id, read_count from marts.sequencing_control_counts "
        "order by batch_id, sample_id, feature_id"
    ).df()
    trees = pd.DataFrame(columns=list(TREE_COLUMNS))
    if _table_exists(con, "staging", "stg_seq__trees"):
        trees = con.execute(
            f"select {', '.join(TREE_COLUMNS)} from staging.stg_seq__trees order by batch_id, _source_file"
        ).df()
    return MicrobiomeInputs(
        matrix, libs, long, taxonomy, meta, controls, control_counts, unblinded, responder_source, trees
    )


def distance_dir(warehouse: Path) -> Path:
    """Folder of the distance files of a warehouse: ``<warehouse stem>_microbiome/`` beside it."""
    return warehouse.parent / f"{warehouse.stem}_microbiome"


# ------------------------------------------------------------------------------------------------ helpers


class Timer:
    """Wall and CPU seconds per named step (reported in the run record and the asset metadata). On a shared,
    loaded machine wall time mostly measures the other processes; CPU time (this process, all threads) the step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)
            self.cpu_seconds[name] = round(self.cpu_seconds.get(name, 0.0) + time.process_time() - cpu, 3)


def _meta_columns(inputs: MicrobiomeInputs) -> list[str]:
    cols = ["subject_id", "batch_id", "visit", "visit_order", "responder"]
    return [*cols, "arm"] if inputs.unblinded else cols


def _with_meta(frame: pd.DataFrame, inputs: MicrobiomeInputs, on: str = "sample_id") -> pd.DataFrame:
    """``frame`` with the sample metadata columns (arm only when unblinded) inserted after ``on``."""
    meta = inputs.meta[_meta_columns(inputs)]
    out = frame.merge(meta, left_on=on, right_index=True, how="left", suffixes=("", "_meta"))
    first = [on, *_meta_columns(inputs)]
    return out[first + [c for c in out.columns if c not in first]]


def depth_choice(inputs: MicrobiomeInputs, config: MicrobiomeConfig) -> DepthChoice:
    return choose_depth(inputs.matrix.library_sizes, config.keep_fraction, config.depth_floor)


def _visit_levels(meta: pd.DataFrame) -> list[str]:
    """Visits in protocol order (``visit_order``), those with a visit name only."""
    v = meta.dropna(subset=["visit"]).sort_values("visit_order", kind="stable")
    return list(dict.fromkeys(v["visit"].astype(str)))


# ------------------------------------------------------------------------------------------------ QC


def compute_qc(inputs: MicrobiomeInputs, config: MicrobiomeConfig) -> dict[str, pd.DataFrame]:
    """QC tables: library sizes, negative controls (+ their genera), mock community (+ per genus), sample flags."""
    libs = inputs.all_libraries
    depth = depth_choice(inputs, config)
    tax = inputs.taxonomy
    long = inputs.long_counts
    genus_known = long.merge(
        tax[["batch_id", "feature_id", "phylum", "genus"]], on=["batch_id", "feature_id"], how="left"
    )
    per_lib = (
        genus_known.assign(
            unassigned_phylum_reads=np.where(genus_known["phylum"].isna(), genus_known["read_count"], 0),
            unassigned_genus_reads=np.where(genus_known["genus"].isna(), genus_known["read_count"], 0),
        )
        .groupby(["batch_id", "sample_id"], as_index=False)[["unassigned_phylum_reads", "unassigned_genus_reads"]]
        .sum()
    )
    flags_in = libs.rename(columns={"sample_id": "specimen_barcode"}).merge(
        per_lib.rename(columns={"sample_id": "library_id"}), on=["batch_id", "library_id"], how="left"
    )
    flags_in["duplicate_library"] = ~flags_in["kept"]
    flags = qc.flag_samples(
        flags_in, depth=depth.depth, low_depth=config.low_depth, max_unassigned=config.max_unassigned
    )
    flags = flags.rename(columns={"specimen_barcode": "sample_id"})
    flags = flags.merge(inputs.meta[["visit"]], left_on="sample_id", right_index=True, how="left")
    flag_cols = [
        "sample_id",
        "batch_id",
        "library_id",
        "subject_id",
        "visit",
        "kept",
        "library_size",
        "n_features",
        "unassigned_phylum_share",
        "unassigned_genus_share",
        "below_rarefaction_depth",
        "low_depth",
        "high_unassigned",
        "duplicate_library",
        "flagged",
        "flags",
    ]
    sizes = qc.library_size_summary(libs[libs["kept"]])
    sizes.insert(1, "role", "SAMPLE")
    ctrl = inputs.controls
    ctrl_sizes = [
        qc.library_size_summary(ctrl[ctrl["sample_role"] == role]).assign(role=role)
        for role in ("NEGATIVE_CONTROL", "MOCK")
        if (ctrl["sample_role"] == role).any()
    ]
    sizes = pd.concat([sizes, *[f[sizes.columns] for f in ctrl_sizes]], ignore_index=True)
    sample_sizes = libs.loc[libs["kept"], ["batch_id", "library_size"]]
    negatives = qc.negative_control_summary(
        ctrl, inputs.control_counts, tax, sample_sizes, max_ratio=config.negative_max_ratio
    )
    neg_taxa = qc.negative_control_taxa(
        ctrl,
        inputs.control_counts,
        long.merge(
            libs.loc[libs["kept"], ["batch_id", "library_id"]],
            left_on=["batch_id", "sample_id"],
            right_on=["batch_id", "library_id"],
        ),
        tax,
        n_samples=int(libs["kept"].sum()),
    )
    mock, mock_taxa = qc.mock_community_comparison(
        ctrl, inputs.control_counts, tax, config.mock_expected, detection=config.mock_detection
    )
    return {
        "microbiome_qc_library_sizes": sizes,
        "microbiome_qc_negative_controls": negatives,
        "microbiome_qc_negative_taxa": neg_taxa,
        "microbiome_qc_mock_community": mock,
        "microbiome_qc_mock_taxa": mock_taxa,
        "microbiome_qc_sample_flags": flags[flag_cols],
    }


# ------------------------------------------------------------------------------------------------ alpha


def compute_alpha(
    inputs: MicrobiomeInputs, config: MicrobiomeConfig, timer: Timer | None = None
) -> tuple[dict[str, pd.DataFrame], DepthChoice]:
    """Unrarefied and rarefied alpha diversity, the depth choice, libraries below depth, rarefaction curves."""
    timer = timer or Timer()
    m = inputs.matrix
    ids = list(m.sample_ids)
    with timer("alpha_unrarefied"):
        raw = alpha_diversity(m.counts, ids).reset_index()
    depth = depth_choice(inputs, config)
    with timer("alpha_rarefied"):
        ave, std = subsampled_alpha(m.counts, ids, size=depth.depth, iters=config.iterations, seed=config.seed)
    rarefied = ave.add_suffix("").reset_index()
    for col in std.columns:
        rarefied[f"{col}_sd"] = std[col].to_numpy()
    rarefied.insert(1, "depth", depth.depth)
    rarefied.insert(2, "iterations", config.iterations)
    sizes = m.library_sizes
    below = pd.DataFrame({"sample_id": list(depth.below_depth)})
    below["library_size"] = sizes.reindex(below["sample_id"]).to_numpy(dtype=np.int64)
    below["depth"] = depth.depth
    below["reads_short"] = depth.depth - below["library_size"]
    with timer("rarefaction_curves"):
        top = int(sizes.max())
        points = np.unique(np.round(np.geomspace(10, max(top, 11), config.curve_points)).astype(np.int64))
        points = np.unique(np.append(points, depth.depth))
        curves = rarefaction_curves(m.counts, ids, points)
    run = pd.DataFrame(
        [
            {
                "depth": depth.depth,
                "rule": depth.reason,
                "keep_fraction": depth.keep_fraction,
                "floor": depth.floor,
                "n_samples": depth.n_samples,
                "n_kept": depth.n_kept,
                "n_below_depth": len(depth.below_depth),
                "iterations": config.iterations,
                "seed": config.seed,
            }
        ]
    )
    tables = {
        "alpha_diversity": _with_meta(raw, inputs),
        "alpha_diversity_rarefied": _with_meta(rarefied, inputs),
        "rarefaction_depth": run,
        "rarefaction_below_depth": _with_meta(below, inputs),
        "rarefaction_curves": curves,
    }
    return tables, depth


def _alpha_frame(table: pd.DataFrame, indices: Sequence[str]) -> pd.DataFrame:
    return table.set_index("sample_id")[[c for c in indices if c in table.columns]]


def compute_alpha_tests(
    alpha_tables: dict[str, pd.DataFrame], inputs: MicrobiomeInputs, config: MicrobiomeConfig
) -> dict[str, pd.DataFrame]:
    """Kruskal–Wallis / Wilcoxon (BH) on alpha indices by visit, by response per visit (and by arm per visit
    when unblinded), unrarefied and rarefied; within-patient change from baseline per visit."""
    meta = inputs.meta
    group_rows, change_rows = [], []
    for source, name in (("unrarefied", "alpha_diversity"), ("rarefied", "alpha_diversity_rarefied")):
        alpha = _alpha_frame(alpha_tables[name], ALPHA_TEST_INDICES)
        m = meta.reindex(alpha.index)
        res = alpha_group_tests(alpha, m["visit"])
        group_rows.append(res.assign(source=source, factor="visit", visit="ALL"))
        factors = ["responder", "arm"] if inputs.unblinded else ["responder"]
        for factor in factors:
            values = m[factor].astype(object).where(m[factor].notna(), None)
            for visit in _visit_levels(m):
                sel = (m["visit"] == visit).to_numpy()
                g = values[sel]
                if g.dropna().nunique() < 2:
                    continue
                res = alpha_group_tests(alpha[sel], g.astype(str).where(g.notna(), None))
                group_rows.append(res.assign(source=source, factor=factor, visit=visit))
        md = m.assign(patient=m["subject_id"])
        for group in [None, "responder", *(["arm"] if inputs.unblinded else [])]:
            use = md if group is None else md[md[group].notna()].assign(**{group: md[group].dropna().astype(str)})
            if use.empty:
                continue
            res = alpha_change_tests(
                alpha.loc[use.index],
                use,
                patient="patient",
                visit="visit",
                baseline=config.baseline_visit,
                group=group,
            )
            if not res.empty:
                change_rows.append(res.assign(source=source, factor=group or "all"))
    groups = pd.concat(group_rows, ignore_index=True)
    groups = groups[
        ["source", "factor", "visit", *[c for c in groups.columns if c not in ("source", "factor", "visit")]]
    ]
    for col in ("group_a", "group_b"):
        groups[col] = (
            groups[col].astype(object).where(groups[col].notna(), None).map(lambda v: None if v is None else str(v))
        )
    changes = pd.concat(change_rows, ignore_index=True) if change_rows else pd.DataFrame()
    if not changes.empty:
        changes = changes[["source", "factor", *[c for c in changes.columns if c not in ("source", "factor")]]]
        for col in ("group_a", "group_b"):
            changes[col] = changes[col].map(lambda v: None if v is None or pd.isna(v) else str(v))
    return {"alpha_group_tests": groups, "alpha_change_tests": changes}


# ------------------------------------------------------------------------------------------------ beta


def collapsed_counts(inputs: MicrobiomeInputs, rank: str) -> tuple[sp.csr_matrix, list[str], pd.DataFrame]:
    """Samples x taxa counts at ``rank`` (features without it rolled up to their deepest assigned rank)."""
    col = collapse(inputs.matrix.counts, inputs.feature_taxonomy, rank, unassigned="parent")
    return col.counts, list(col.taxa), col.lineage


def rarefy_once(counts: sp.csr_matrix, depth: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """One seeded subsample without replacement of ``depth`` reads per row (rows below depth dropped).

    Returns the rarefied rows and the indices of the rows kept. Uses numpy's multivariate hypergeometric draw
    per row (exactly mothur's / vegan ``rrarefy``'s distribution)."""
    csr = sp.csr_matrix(counts)
    totals = np.asarray(csr.sum(axis=1)).ravel()
    keep = np.flatnonzero(totals >= depth)
    rng = np.random.default_rng(seed)
    data = csr.data.astype(np.int64)
    out = []
    for i in keep:
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        out.append(rng.multivariate_hypergeometric(data[lo:hi], depth))
    new = sp.csr_matrix(csr[keep], dtype=np.int64, copy=True)
    new.data = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    new.eliminate_zeros()
    return new, keep


def _permutation_row(test: PermutationTest, **extra: Any) -> dict[str, Any]:
    details = test.details
    return {
        **extra,
        "test": test.method,
        "statistic_name": test.statistic_name,
        "statistic": float(test.statistic),
        "r2": float(details["R2"]) if "R2" in details else np.nan,
        "p_value": float(test.p_value),
        "n": int(test.sample_size),
        "n_groups": int(test.number_of_groups),
        "permutations": int(test.permutations),
    }


def _distance_tests(
    dist: BetaDistances,
    meta: pd.DataFrame,
    metric: str,
    between: Sequence[str],
    config: MicrobiomeConfig,
    *,
    full: bool,
    feature_level: str | None = None,
) -> list[dict[str, Any]]:
    """PERMANOVA by visit (permutations within patients) and by each between-patient factor (whole-patient
    permutations; and, when ``full``, per visit with free permutations); ANOSIM and PERMDISP alongside when
    ``full`` (the primary metric, Bray–Curtis: they cost a rank transform / a full PCoA each)."""
    m = meta.reindex(list(dist.ids))
    visit, patient = m["visit"], m["subject_id"]
    perm: dict[str, Any] = {"permutations": config.permutations, "seed": 0}
    base = {"metric": metric, "feature_level": feature_level or config.beta_rank}
    rows = [
        _permutation_row(
            permanova(dist, visit, strata=patient, **perm), **base, factor="visit", visit="ALL", scheme="within patient"
        )
    ]
    if full:
        rows.append(
            _permutation_row(
                anosim(dist, visit, strata=patient, **perm),
                **base,
                factor="visit",
                visit="ALL",
                scheme="within patient",
            )
        )
        rows.append(_permutation_row(permdisp(dist, visit, **perm), **base, factor="visit", visit="ALL", scheme="free"))
    for factor in between:
        values = m[factor].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
        if values.dropna().nunique() < 2:
            continue
        rows.append(
            _permutation_row(
                permanova(dist, values, whole_plots=patient, **perm),
                **base,
                factor=factor,
                visit="ALL",
                scheme="whole patients",
            )
        )
        if not full:
            continue
        rows.append(
            _permutation_row(
                anosim(dist, values, whole_plots=patient, **perm),
                **base,
                factor=factor,
                visit="ALL",
                scheme="whole patients",
            )
        )
        rows.append(_permutation_row(permdisp(dist, values, **perm), **base, factor=factor, visit="ALL", scheme="free"))
        for v in _visit_levels(m):
            sel = (visit == v).to_numpy()
            vals = values[sel]
            if vals.dropna().nunique() < 2 or vals.dropna().value_counts().min() < 2:
                continue
            sub = dist.subset([s for s, k in zip(dist.ids, sel, strict=True) if k])
            rows.append(_permutation_row(permanova(sub, vals, **perm), **base, factor=factor, visit=v, scheme="free"))
    return rows


def _ordination_rows(
    ordination: Ordination, metric: str, n_axes: int, feature_level: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    coords = ordination.coordinates[:, :n_axes]
    frame = pd.DataFrame(
        {
            "method": ordination.method,
            "metric": metric,
            "feature_level": feature_level,
            "sample_id": list(ordination.ids),
        }
    )
    for k in range(n_axes):
        frame[f"axis{k + 1}"] = coords[:, k] if k < coords.shape[1] else np.nan
    axes = ordination.axes_frame().head(n_axes)
    axes.insert(0, "metric", metric)
    axes.insert(0, "method", ordination.method)
    axes["stress"] = ordination.stress if ordination.stress is not None else np.nan
    for col in ("eigenvalue", "proportion_explained"):
        if col not in axes.columns:
            axes[col] = np.nan
    return frame, axes[["method", "metric", "axis", "name", "eigenvalue", "proportion_explained", "stress"]]


@dataclass(frozen=True)
class PhylogenyCounts:
    """Feature counts of the samples that share one delivered tree (see :func:`phylogeny_counts`)."""

    counts: sp.csr_matrix  #: samples x features on the tree (features merged across batches by id)
    ids: tuple[str, ...]
    features: tuple[str, ...]
    tree: Any  #: rooted ``skbio.TreeNode``
    batches: tuple[str, ...]
    newick_sha256: str
    reads_off_tree: int  #: reads of features that are not tips (0 when the loader's check held)


def phylogeny_counts(inputs: MicrobiomeInputs) -> PhylogenyCounts | None:
    """The samples and feature counts for UniFrac, or None when no batch delivered a tree.

    Batches that deliver the same tree (equal ``newick_sha256``) form a group; the group with the most samples is
    used (ties: the first tree by hash). Its batches' feature columns are merged by feature id (ASV ids are global),
    features that are not tips are dropped (counted in ``reads_off_tree``), samples left without reads dropped. The
    tree is parsed with :func:`analysis.readers.tree.parse_newick` (midpoint-rooted when delivered unrooted).
    """
    from analysis.readers.tree import parse_newick

    trees = inputs.trees
    if trees is None or trees.empty:
        return None
    libs = inputs.matrix.libraries
    per_batch = libs.groupby("batch_id").size()
    groups = trees.groupby("newick_sha256")["batch_id"].agg(lambda b: tuple(sorted(set(b))))
    ranked = sorted(groups.items(), key=lambda kv: (-int(per_batch.reindex(list(kv[1])).fillna(0).sum()), kv[0]))
    sha, batches = ranked[0]
    row = trees[trees["newick_sha256"] == sha].iloc[0]
    tree, _ = parse_newick(
        str(row["newick"]), f"staging.stg_seq__trees ({row['batch_id']})", rooted=row["rooted"] == "Y"
    )
    rows = np.flatnonzero(libs["batch_id"].isin(batches).to_numpy())
    cols = np.flatnonzero(inputs.matrix.features["batch_id"].isin(batches).to_numpy())
    if rows.size < 2 or cols.size == 0:
        return None
    feature_ids = inputs.matrix.features["feature_id"].to_numpy(dtype=object)[cols]
    uniq, inverse = np.unique(feature_ids.astype(str), return_inverse=True)
    merge = sp.csr_matrix((np.ones(cols.size), (np.arange(cols.size), inverse)), shape=(cols.size, uniq.size))
    counts = sp.csr_matrix(inputs.matrix.counts[rows][:, cols] @ merge)
    tips = {node.name for node in tree.tips()}
    on_tree = np.array([f in tips for f in uniq], dtype=bool)
    reads_off = int(np.rint(counts[:, ~on_tree].sum()))
    counts = sp.csr_matrix(counts[:, on_tree])
    keep = np.asarray(counts.sum(axis=1)).ravel() > 0
    ids = tuple(np.asarray(inputs.matrix.sample_ids, dtype=object)[rows][keep])
    counts = sp.csr_matrix(counts[keep])
    counts.data = np.round(counts.data)
    return PhylogenyCounts(counts, ids, tuple(uniq[on_tree]), tree, batches, str(sha), reads_off)


def compute_beta(
    inputs: MicrobiomeInputs,
    config: MicrobiomeConfig,
    out_dir: Path,
    depth: int,
    timer: Timer | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Distances (files), ordinations, PERMANOVA/PERMDISP/ANOSIM and distance to baseline; see the module
    docstring. Returns the tables and key figures for metadata."""
    timer = timer or Timer()
    ids = list(inputs.matrix.sample_ids)
    counts, taxa, _ = collapsed_counts(inputs, config.beta_rank)
    counts = sp.csr_matrix(counts)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    nonempty = totals > 0
    ids_ne = [s for s, k in zip(ids, nonempty, strict=True) if k]
    counts = counts[nonempty]
    totals = totals[nonempty]
    distances: dict[str, BetaDistances] = {}
    with timer("braycurtis"):
        rel = sp.csr_matrix(sp.diags(1.0 / totals) @ counts)
        distances["braycurtis"] = bray_curtis(rel, ids_ne)
    with timer("jaccard"):
        rarefied, kept = rarefy_once(counts, depth, config.seed)
        distances["jaccard"] = jaccard(rarefied, [ids_ne[i] for i in kept])
    with timer("aitchison"):
        distances["aitchison"] = aitchison(counts, ids_ne, pseudocount=1.0)
    level = dict.fromkeys(distances, config.beta_rank)
    n_features = dict.fromkeys(distances, len(taxa))
    transform = {
        "braycurtis": "relative abundance (total-sum scaling)",
        "jaccard": f"presence/absence after one rarefaction to {depth} reads (seed {config.seed})",
        "aitchison": "clr(counts + 1)",
    }
    with timer("unifrac"):
        phylo = phylogeny_counts(inputs)
        if phylo is not None:
            where = f"features of batches {', '.join(phylo.batches)} on their tree (sha256 {phylo.newick_sha256[:12]})"
            if phylo.reads_off_tree:
                where += f"; {phylo.reads_off_tree} reads of features not on the tree left out"
            distances["weighted_unifrac"] = unifrac(phylo.counts, phylo.ids, phylo.features, phylo.tree, weighted=True)
            transform["weighted_unifrac"] = f"relative abundance of {where}; not normalised (skbio/QIIME 2 default)"
            rare, kept_rows = rarefy_once(phylo.counts, depth, config.seed)
            if kept_rows.size >= 3:
                kept_ids = [phylo.ids[i] for i in kept_rows]
                distances["unweighted_unifrac"] = unifrac(rare, kept_ids, phylo.features, phylo.tree)
                transform["unweighted_unifrac"] = (
                    f"presence/absence of {where} after one rarefaction to {depth} reads (seed {config.seed})"
                )
            for metric in ("weighted_unifrac", "unweighted_unifrac"):
                level[metric], n_features[metric] = "feature", len(phylo.features)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for metric, dist in distances.items():
        path = dist.save_npz(out_dir / f"{metric}_{level[metric]}.npz")
        files.append(
            {
                "metric": metric,
                "feature_level": level[metric],
                "n_samples": dist.n,
                "n_features": n_features[metric],
                "path": str(path.resolve()),
                "bytes": path.stat().st_size,
                "transform": transform[metric],
                "loader": "analysis.microbiome.beta.load_npz(path)",
            }
        )
    coords, axes = [], []
    bc = distances["braycurtis"]
    with timer("pcoa_braycurtis"):
        full = bc.n <= 2000
        ord_pcoa = pcoa(bc, dimensions=None if full else config.pcoa_axes, exact_proportions=False)
        f, a = _ordination_rows(ord_pcoa, "braycurtis", config.pcoa_axes)
        coords.append(f)
        axes.append(a)
    with timer("nmds_braycurtis"):
        ord_nmds = nmds(bc, n_starts=config.nmds_starts, seed=config.seed % (2**31))
        f, a = _ordination_rows(ord_nmds, "braycurtis", config.pcoa_axes)
        coords.append(f)
        axes.append(a)
    with timer("pca_clr"):
        ord_pca = pca_clr(counts, ids_ne, pseudocount=1.0, n_components=config.pcoa_axes)
        f, a = _ordination_rows(ord_pca, "aitchison", config.pcoa_axes)
        coords.append(f)
        axes.append(a)
    for metric in ("weighted_unifrac", "unweighted_unifrac"):
        if metric in distances:
            with timer(f"pcoa_{metric}"):
                dist = distances[metric]
                ordination = pcoa(
                    dist, dimensions=None if dist.n <= 2000 else config.pcoa_axes, exact_proportions=False
                )
                f, a = _ordination_rows(ordination, metric, config.pcoa_axes, level[metric])
                coords.append(f)
                axes.append(a)
    coordinates = _with_meta(pd.concat(coords, ignore_index=True), inputs)
    coordinates["feature_level"] = coordinates["feature_level"].fillna(config.beta_rank)
    front = ["method", "metric", "feature_level", "sample_id", *_meta_columns(inputs)]
    coordinates = coordinates[front + [c for c in coordinates.columns if c not in front]]
    meta = inputs.meta
    with timer("group_tests"):
        between = ["responder", "arm"] if inputs.unblinded else ["responder"]
        tests = [
            row
            for metric, dist in distances.items()
            for row in _distance_tests(
                dist, meta, metric, between, config, full=metric == "braycurtis", feature_level=level[metric]
            )
        ]
    test_frame = pd.DataFrame(tests)
    test_frame["q_value"] = np.nan
    for _key, idx in test_frame.groupby(["test", "metric"]).groups.items():
        test_frame.loc[idx, "q_value"] = bh(test_frame.loc[idx, "p_value"].to_numpy(float))
    with timer("distance_to_baseline"):
        md = meta.reindex(list(bc.ids))
        dtb = distance_to_baseline(
            bc, md[["subject_id", "visit"]], patient="subject_id", visit="visit", baseline=config.baseline_visit
        )
        dtb = dtb[["sample_id", "baseline_sample_id", "distance"]]
        dtb.insert(0, "metric", "braycurtis")
        dtb = _with_meta(dtb, inputs)
        rows = []
        for factor in between:
            sub = dtb[dtb[factor].notna()].assign(**{factor: lambda d, f=factor: d[f].astype(str)})
            if sub[factor].nunique() >= 2:
                res = baseline_distance_tests(sub, visit="visit", group=factor)
                rows.append(res.assign(factor=factor))
        dtb_tests = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        if dtb_tests.empty:  # no group known (e.g. responses not derived yet): an empty table, not a column-less one
            dtb_tests = pd.DataFrame(
                {
                    "metric": pd.Series(dtype=str),
                    "factor": pd.Series(dtype=str),
                    "visit": pd.Series(dtype=str),
                    "n": pd.Series(dtype="int64"),
                    "test": pd.Series(dtype=str),
                    "statistic": pd.Series(dtype=float),
                    "p_value": pd.Series(dtype=float),
                    "q_value": pd.Series(dtype=float),
                }
            )
        else:
            dtb_tests.insert(0, "metric", "braycurtis")
            front = ["metric", "factor", "visit"]
            dtb_tests = dtb_tests[front + [c for c in dtb_tests.columns if c not in front]]
    figures = {
        "nmds_stress": float(ord_nmds.stress or np.nan),
        "nmds_stresses": ord_nmds.details["stresses"],
        "pcoa_axis1_share": float(ord_pcoa.proportion_explained[0]),
        "pcoa_axis2_share": float(ord_pcoa.proportion_explained[1]),
        "n_samples": bc.n,
        "n_taxa": len(taxa),
    }
    tables = {
        "beta_distance_files": pd.DataFrame(files),
        "ordination_coordinates": coordinates,
        "ordination_axes": pd.concat(axes, ignore_index=True),
        "beta_group_tests": test_frame,
        "beta_distance_to_baseline": dtb,
        "beta_baseline_tests": dtb_tests,
    }
    return tables, figures


# ------------------------------------------------------------------------------------------------ differential


def clr_change_tests(
    z: np.ndarray,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    visit: str,
    baseline: str,
    group: str | None,
    reference: str | None = None,
) -> pd.DataFrame:
    """CLR change from the patient's baseline sample per taxon and visit (``z``: CLR rows aligned with ``meta``).

    ``group=None``: Wilcoxon signed-rank of the changes (H0: median change 0), effect = mean change.
    With a two-level ``group``: Wilcoxon rank-sum of the changes between groups (the group x visit
    interaction), effect = mean change(other) - mean change(reference). BH over taxa per visit.
    """
    m = meta.reset_index(drop=True)
    base = m[m["visit"] == baseline]
    base_row = pd.Series(base.index.to_numpy(), index=base["subject_id"].to_numpy())
    base_row = base_row[~base_row.index.duplicated()]
    frames = []
    for v in [x for x in dict.fromkeys(m.loc[m["visit"] != baseline, "visit"].dropna()) if x != baseline]:
        cur = m[(m["visit"] == v) & m["subject_id"].isin(base_row.index)]
        if cur.empty:
            continue
        change = z[cur.index.to_numpy()] - z[base_row.loc[cur["subject_id"]].to_numpy()]
        if group is None:
            if len(cur) < 3:
                continue
            with np.errstate(all="ignore"):
                res = stats.wilcoxon(change, axis=0, zero_method="wilcox", nan_policy="omit")
            frame = pd.DataFrame(
                {
                    "taxon": list(taxa),
                    "contrast": f"{v} vs {baseline} (paired)",
                    "effect": change.mean(axis=0),
                    "statistic": res.statistic,
                    "p_value": res.pvalue,
                    "n_ref": len(cur),
                    "n_other": len(cur),
                }
            )
        else:
            g = cur[group].astype(str).to_numpy()
            ref = reference if reference is not None else sorted(set(g))[0]
            others = sorted(set(g) - {ref})
            if len(others) != 1:
                continue
            a, b = change[g == ref], change[g == others[0]]
            if len(a) < 2 or len(b) < 2:
                continue
            u, p = stats.mannwhitneyu(b, a, alternative="two-sided", axis=0)
            frame = pd.DataFrame(
                {
                    "taxon": list(taxa),
                    "contrast": f"{group}: {others[0]} vs {ref}, change {v} - {baseline}",
                    "effect": b.mean(axis=0) - a.mean(axis=0),
                    "statistic": u,
                    "p_value": p,
                    "n_ref": len(a),
                    "n_other": len(b),
                }
            )
        frame.insert(0, "visit", v)
        frame["q_value"] = bh(frame["p_value"].to_numpy(float))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pooled_group_tests(
    z: np.ndarray,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    group: str,
    visits: Sequence[str],
    reference: str,
    baseline: str | None = None,
) -> pd.DataFrame:
    """Summary-measure comparison (Matthews et al. 1990, BMJ 300:230) of a between-patient ``group``.

    Per patient, the mean CLR over its samples at ``visits`` (or, with ``baseline``, the mean CLR change from
    its own baseline sample over those visits: the group x visit interaction pooled over visits); then one
    Wilcoxon rank-sum per taxon between the two groups, effect = difference of the group means (CLR, natural
    log), BH over taxa. One value per patient, so repeated visits do not inflate the sample size.
    """
    m = meta.reset_index(drop=True)
    sel = m[m["visit"].isin(list(visits)) & m[group].notna()]
    values = z[sel.index.to_numpy()]
    if baseline is not None:
        base = m[m["visit"] == baseline].drop_duplicates("subject_id")
        base_row = pd.Series(base.index.to_numpy(), index=base["subject_id"].to_numpy())
        has = sel["subject_id"].isin(base_row.index).to_numpy()
        sel = sel[has]
        values = values[has] - z[base_row.loc[sel["subject_id"]].to_numpy()]
    if sel.empty:
        return pd.DataFrame()
    per = pd.DataFrame(values, columns=list(taxa)).groupby(sel["subject_id"].to_numpy()).mean()
    labels = sel.drop_duplicates("subject_id").set_index("subject_id")[group].astype(str).reindex(per.index)
    others = sorted(set(labels) - {reference})
    if reference not in set(labels) or len(others) != 1:
        return pd.DataFrame()
    a, b = per[labels == reference].to_numpy(), per[labels == others[0]].to_numpy()
    if len(a) < 2 or len(b) < 2:
        return pd.DataFrame()
    u, p = stats.mannwhitneyu(b, a, alternative="two-sided", axis=0)
    what = "mean CLR change from baseline" if baseline is not None else "mean CLR"
    out = pd.DataFrame(
        {
            "visit": "POOLED",
            "taxon": list(taxa),
            "contrast": f"{group}: {others[0]} vs {reference}, per-patient {what} over {', '.join(visits)}",
            "effect": b.mean(axis=0) - a.mean(axis=0),
            "statistic": u,
            "p_value": p,
            "n_ref": len(a),
            "n_other": len(b),
        }
    )
    out["q_value"] = bh(out["p_value"].to_numpy(float))
    return out


_LEVEL = re.compile(r"\[T\.(.*?)\]")


def mixed_model_tests(
    counts: np.ndarray,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    baseline: str,
    responder_reference: str = "non-responder",
    arm_reference: str | None = None,
) -> dict[str, pd.DataFrame]:
    """CLR linear mixed models with a random intercept per patient (:func:`clr_lmm`, all taxa at once, REML).

    ``counts`` (samples x kept taxa) rows are aligned with ``meta`` (columns ``subject_id, visit, responder``
    [, ``arm``]); the CLR uses pseudocount :data:`DEFAULT_CLR_PSEUDOCOUNT` over the kept taxa. Models and the
    analyses they give (one row per taxon and reported coefficient; effect = coefficient in CLR units, statistic
    = Wald z, BH over taxa per coefficient):

    * ``visit_lmm``: ``clr ~ C(visit, Treatment(baseline))``, one row per post-baseline visit: mean change from
      baseline, patients' repeated samples handled by the random intercept;
    * ``responder_lmm``: ``clr ~ responder + C(visit)`` on patients with a known response: responders vs
      non-responders adjusted for visit (``visit = "ALL"``);
    * ``arm_x_visit_lmm`` (``arm_reference`` given, unblinded runs only): ``clr ~ arm * C(visit)``, the arm x visit
      interaction at each post-baseline visit (difference between arms in change from baseline).
    """
    m = meta.reset_index(drop=True)
    x = np.asarray(counts)
    out: dict[str, pd.DataFrame] = {}
    if baseline not in set(m["visit"].dropna()):
        return out
    visit_term = f"C(visit, Treatment(reference={baseline!r}))"

    def sizes(mask_ref: np.ndarray, mask_other: np.ndarray) -> tuple[int, int]:
        return int(mask_ref.sum()), int(mask_other.sum())

    def rows(frame: pd.DataFrame, sub: pd.DataFrame, kind: str, group: str | None, ref: str | None) -> pd.DataFrame:
        result = []
        for term, part in frame.groupby("term", sort=False):
            lv = _LEVEL.findall(str(term))
            if kind == "visit":
                v = lv[-1]
                n_ref, n_other = sizes((sub["visit"] == baseline).to_numpy(), (sub["visit"] == v).to_numpy())
                contrast = f"visit: {v} vs {baseline} (mixed model, patient random intercept)"
            elif kind == "group":
                v = "ALL"
                g = sub[group].astype(str)
                n_ref, n_other = sizes((g == ref).to_numpy(), (g == lv[0]).to_numpy())
                contrast = f"{group}: {lv[0]} vs {ref}, adjusted for visit (mixed model, patient random intercept)"
            else:
                v = lv[-1]
                at = (sub["visit"] == v).to_numpy()
                g = sub[group].astype(str).to_numpy()
                n_ref, n_other = sizes(at & (g == ref), at & (g == lv[0]))
                contrast = f"{group} x visit: {lv[0]} vs {ref}, change {v} - {baseline} (mixed model)"
            result.append(
                part.assign(visit=v, contrast=contrast, n_ref=n_ref, n_other=n_other)[
                    ["visit", "taxon", "contrast", "effect", "statistic", "p_value", "q_value", "n_ref", "n_other"]
                ]
            )
        return pd.concat(result, ignore_index=True) if result else pd.DataFrame()

    sub = m[m["visit"].notna() & m["subject_id"].notna()]
    if sub["visit"].nunique() >= 2:
        fit = clr_lmm(x[sub.index.to_numpy()], taxa, sub, formula=visit_term, patient="subject_id")
        out["visit_lmm"] = rows(fit, sub, "visit", None, None)
    sub = m[m["visit"].notna() & m["responder"].notna()]
    if sub["responder"].nunique() == 2 and responder_reference in set(sub["responder"]):
        term = f"C(responder, Treatment(reference={responder_reference!r}))"
        fit = clr_lmm(x[sub.index.to_numpy()], taxa, sub, formula=f"{term} + {visit_term}", patient="subject_id")
        fit = fit[fit["term"].astype(str).str.startswith(term)]
        out["responder_lmm"] = rows(fit, sub, "group", "responder", responder_reference)
    if arm_reference is not None and "arm" in m.columns:
        sub = m[m["visit"].notna() & m["arm"].notna()]
        if sub["arm"].nunique() == 2 and arm_reference in set(sub["arm"]):
            term = f"C(arm, Treatment(reference={arm_reference!r}))"
            fit = clr_lmm(x[sub.index.to_numpy()], taxa, sub, formula=f"{term} * {visit_term}", patient="subject_id")
            fit = fit[fit["term"].astype(str).str.contains(":")]
            out["arm_x_visit_lmm"] = rows(fit, sub, "interaction", "arm", arm_reference)
    return {k: v for k, v in out.items() if not v.empty}


def compute_differential(
    inputs: MicrobiomeInputs, config: MicrobiomeConfig, timer: Timer | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Differential abundance per rank in :attr:`MicrobiomeConfig.da_ranks` (see the module docstring).

    One long table ``differential_abundance``: ``analysis, rank, visit, contrast, taxon, effect`` (natural-log
    CLR units; ``effect_log2`` = effect / ln 2), ``statistic, p_value, q_value, n_ref, n_other, prevalence,
    mean_rel_abundance, method, rank_in_test`` (1 = smallest p within analysis, rank, visit and contrast).
    """
    timer = timer or Timer()
    meta = inputs.meta.reindex(list(inputs.matrix.sample_ids))
    frames = []
    for rank in config.da_ranks:
        with timer(f"differential_{rank}"):
            counts, taxa, _ = collapsed_counts(inputs, rank)
            x = counts.toarray()
            md = meta.reset_index()
            ok = x.sum(axis=1) > 0
            x, md = x[ok], md[ok].reset_index(drop=True)
            md_resp = md.assign(responder=md["responder"].map({True: "responder", False: "non-responder"}))
            if md_resp["responder"].notna().any() and md_resp["responder"].nunique() == 2:
                res = by_visit(
                    x,
                    taxa,
                    md_resp,
                    group="responder",
                    visit="visit",
                    reference="non-responder",
                    min_prevalence=config.da_min_prevalence,
                )
                frames.append(res.assign(analysis="responder_by_visit", rank=rank))
            keep = prevalence_filter(x, min_prevalence=config.da_min_prevalence)
            xf = x[:, keep]
            tf = [t for t, k in zip(taxa, keep, strict=True) if k]
            z = clr_transform(xf, DEFAULT_CLR_PSEUDOCOUNT)
            info = _taxon_summary(xf).assign(taxon=tf)
            visits = _visit_levels(md)
            on_treatment = _on_treatment_visits(md, config)

            def add(
                frame: pd.DataFrame, analysis: str, method: str, rank: str = rank, info: pd.DataFrame = info
            ) -> None:
                if not frame.empty:
                    frames.append(frame.merge(info, on="taxon").assign(analysis=analysis, rank=rank, method=method))

            add(
                clr_change_tests(z, tf, md, visit="visit", baseline=config.baseline_visit, group=None),
                "change_from_baseline",
                "clr_paired_wilcoxon",
            )
            add(
                pooled_group_tests(z, tf, md_resp, group="responder", visits=visits, reference="non-responder"),
                "responder_pooled",
                "clr_patient_mean_wilcoxon",
            )
            with timer("mixed_models"):  # all ranks together (also counted in each rank's step)
                models = mixed_model_tests(
                    xf,
                    tf,
                    md_resp,
                    baseline=config.baseline_visit,
                    arm_reference=config.arm_reference if inputs.unblinded else None,
                )
            for analysis, frame in models.items():
                add(frame, analysis, "clr_lmm")
            if rank == config.ancombc_rank:
                for group, reference, analysis in (
                    ("responder", "non-responder", "responder_by_visit_ancombc"),
                    *((("arm", config.arm_reference, "arm_by_visit_ancombc"),) if inputs.unblinded else ()),
                ):
                    data = md_resp if group == "responder" else md
                    if data[group].notna().any() and data[group].nunique() == 2:
                        with warnings.catch_warnings(), timer("ancombc"):
                            warnings.simplefilter("ignore", RuntimeWarning)
                            res = by_visit(
                                x,
                                taxa,
                                data,
                                group=group,
                                visit="visit",
                                reference=reference,
                                method="ancombc",
                                min_prevalence=config.da_min_prevalence,
                            )
                        frames.append(res.assign(analysis=analysis, rank=rank))
            if inputs.unblinded and md["arm"].notna().any():
                res = by_visit(
                    x,
                    taxa,
                    md,
                    group="arm",
                    visit="visit",
                    reference=config.arm_reference,
                    min_prevalence=config.da_min_prevalence,
                )
                frames.append(res.assign(analysis="arm_by_visit", rank=rank))
                add(
                    clr_change_tests(
                        z,
                        tf,
                        md,
                        visit="visit",
                        baseline=config.baseline_visit,
                        group="arm",
                        reference=config.arm_reference,
                    ),
                    "arm_x_visit",
                    "clr_change_wilcoxon",
                )
                add(
                    pooled_group_tests(z, tf, md, group="arm", visits=on_treatment, reference=config.arm_reference),
                    "arm_on_treatment",
                    "clr_patient_mean_wilcoxon",
                )
                add(
                    pooled_group_tests(
                        z,
                        tf,
                        md,
                        group="arm",
                        visits=on_treatment,
                        reference=config.arm_reference,
                        baseline=config.baseline_visit,
                    ),
                    "arm_x_visit_pooled",
                    "clr_patient_mean_change_wilcoxon",
                )
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    figures: dict[str, Any] = {}
    if not out.empty:
        out["effect_log2"] = out["effect"] / np.log(2.0)
        out["rank_in_test"] = (
            out.groupby(["analysis", "rank", "visit", "contrast"])["p_value"].rank(method="first").astype("Int64")
        )
        cols = [
            "analysis",
            "rank",
            "visit",
            "contrast",
            "taxon",
            "effect",
            "effect_log2",
            "statistic",
            "p_value",
            "q_value",
            "n_ref",
            "n_other",
            "prevalence",
            "mean_rel_abundance",
            "method",
            "rank_in_test",
        ]
        out = out[cols].sort_values(["analysis", "rank", "visit", "contrast", "rank_in_test"], kind="stable")
        out = out.reset_index(drop=True)
        for analysis in out["analysis"].unique():
            top = out[(out["analysis"] == analysis) & (out["rank"] == "genus")].sort_values("p_value").head(5)
            figures[analysis] = [
                f"{r.taxon} @ {r.visit} (log2 {r.effect_log2:+.2f}, q={r.q_value:.3g})" for r in top.itertuples()
            ]
    return {"differential_abundance": out}, figures


def _on_treatment_visits(meta: pd.DataFrame, config: MicrobiomeConfig) -> list[str]:
    """Scheduled post-baseline visits (``0 < visit_order < config.unscheduled_order``), in protocol order."""
    v = meta.dropna(subset=["visit", "visit_order"])
    v = v[(v["visit_order"] > 0) & (v["visit_order"] < config.unscheduled_order)]
    return _visit_levels(v)


def _taxon_summary(x: np.ndarray) -> pd.DataFrame:
    totals = x.sum(axis=1, keepdims=True)
    rel = np.divide(x, totals, out=np.zeros_like(x, dtype=float), where=totals > 0)
    return pd.DataFrame({"prevalence": (x > 0).mean(axis=0), "mean_rel_abundance": rel.mean(axis=0)})
