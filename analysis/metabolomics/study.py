"""The trial's metabolomics analysis: warehouse marts (long frames) -> per-matrix tables -> prepared matrices,
PCA, QC RSD, annotation and differential metabolites, as tidy frames ready to be stored.

No DuckDB and no Dagster here: :mod:`orchestration.assets.metabolomics` reads the marts into frames, calls
:func:`matrix_tables` and :func:`analyse_matrix`, and writes the results. Blinding is the caller's duty:
the ``subjects`` frame carries an ``arm`` column **only** in unblinded runs, and nothing here invents one.

From marts to one :class:`~analysis.metabolomics.table.MetaboliteTable` per matrix (:func:`matrix_tables`)
    Study samples come from ``marts.metabolite_intensities`` (patient specimens, linked), pooled QCs and
    blanks from ``marts.metabolomics_qc_intensities``/``_qc_injections`` (a QC without a matrix takes its
    batch's). Injections are keyed ``<batch_id>/<injection_id>`` (ids are unique per delivery batch only);
    ``batch`` is the delivery batch, within which ``run_order`` counts, so drift correction works per batch.
    Features of all batches of a matrix are aligned on the feature key ``<ion_mode>:<feature_id>`` (the
    core processes a matrix with one feature list; a feature absent from a batch is missing there and the
    missing-value filter decides), annotated from the first batch (by ``batch_id``) that lists it. Visits
    come from ``marts.samples`` by specimen barcode (``nominal_visit``, ``nominal_visit_order``; order 0 is
    the baseline).

Per matrix (:func:`analyse_matrix`; :class:`StudyConfig`)
    * :func:`~analysis.metabolomics.steps.prepare` once without scaling (``differential``: group
      differences stay in glog10 units, ``log2FC = Δ·log2(10)``), then the recipe's scaling (Pareto by
      default) for ``pca`` (:func:`rescale`, identical to a second ``prepare`` run). Both step logs are kept
      (``purpose``).
      The recipe is :class:`PrepareConfig`'s defaults **plus QC-based LOWESS drift correction**, so QC RSD
      is reported before and after correction.
    * PCA (R ``prcomp(center=TRUE, scale.=FALSE)``, :func:`~analysis.metabolomics.pca.prcomp`) on all study
      samples (scope ``ALL``) and on each visit with at least ``min_samples_pca`` samples (scope = visit);
      pooled QCs projected onto every model (``projected = True``). Scores and loadings keep the first
      ``n_components`` PCs; the importance table keeps all.
    * Annotation (:func:`~analysis.metabolomics.annotation.annotate`) of every feature of the matrix, with
      ``in_analysis`` telling whether it survived preparation; rejected identifiers in their own frame.
    * Differential metabolites on the ``differential`` matrix (study samples only). For each analysis, per
      visit: fold change, Welch t and Wilcoxon rank-sum with BH q (:func:`compare_groups`), and one linear
      mixed model with a patient random intercept over all visits (:func:`mixed_model`, vectorised REML):

      - ``visit_vs_baseline``: each visit vs baseline; model ``y ~ visit`` (the per-visit term is the
        within-patient change from baseline), plus a joint Wald test of all visit terms (contrast
        ``any visit vs <baseline> (joint)``).
      - ``responder`` (when ``subjects`` has a ``responder`` column): responders vs non-responders at each
        visit; model ``y ~ responder + visit`` (the responder term, over all visits, is the row of contrast
        ``RESPONDER vs NON-RESPONDER (all visits)``).
      - ``arm_x_visit`` (only when ``subjects`` has ``arm``): CAPSULE vs PLACEBO at each visit; model
        ``y ~ arm * visit``: at baseline the arm term, at visit v the arm × v interaction (the difference in
        change from baseline); plus a joint Wald test of all interaction terms (contrast
        ``CAPSULE vs PLACEBO: arm x visit interaction (joint)``).

      A group needs ``min_per_group`` samples; visits below that are left out of that analysis (and of its
      model). Mixed-model estimates are reported as log2 fold changes (``lmm_log2fc``).

Integration (:func:`integrate`)
    Spearman correlations (:func:`analysis.metabolomics.integration.spearman_pairs`) between genus relative
    abundances (:func:`genus_table`, from the 16S marts) and the prepared metabolite values
    (:func:`prepared_long`) of the same patient and visit, for the differential genera of the microbiome
    analysis plus the common genera, and the differential metabolites; BH q over the pairs of a matrix.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.metabolomics import normalise
from analysis.metabolomics.annotation import annotate
from analysis.metabolomics.differential import attach_annotation, compare_groups, mixed_model
from analysis.metabolomics.integration import spearman_pairs
from analysis.metabolomics.pca import prcomp
from analysis.metabolomics.steps import PrepareConfig, PreparedMatrix, prepare
from analysis.metabolomics.table import MetaboliteTable, build_features

LOG2_10 = float(np.log2(10.0))
ARMS = ("CAPSULE", "PLACEBO")
RESPONDER_LABELS = ("RESPONDER", "NON-RESPONDER")
ALL_VISITS = "ALL"


@dataclass(frozen=True)
class StudyConfig:
    """Parameters of :func:`analyse_matrix` (recorded next to the step log)."""

    prepare: PrepareConfig = field(default_factory=lambda: PrepareConfig(drift_correction=True))
    #: PCs kept in the scores and loadings tables (the importance table keeps all).
    n_components: int = 10
    #: Study samples a visit needs for its own PCA.
    min_samples_pca: int = 6
    #: Samples each group of a two-group comparison needs.
    min_per_group: int = 3
    mixed_models: bool = True
    wilcoxon_method: str = "asymptotic"

    def record(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------- marts -> tables


def injection_key(batch: pd.Series, injection: pd.Series) -> pd.Series:
    """``<batch_id>/<injection_id>``: injection ids are unique within a delivery batch only."""
    return batch.astype("str") + "/" + injection.astype("str")


def feature_key(ion_mode: pd.Series, feature_id: pd.Series) -> pd.Series:
    """``<ion_mode>:<feature_id>``, as :attr:`MetaboliteTable.feature_keys`."""
    return ion_mode.astype("str") + ":" + feature_id.astype("str")


def matrix_tables(
    values: pd.DataFrame,
    injections: pd.DataFrame,
    features: pd.DataFrame,
    samples: pd.DataFrame,
) -> dict[str, MetaboliteTable]:
    """One table per matrix (FAECES, SERUM, ...) from long frames shaped like the marts (see module docstring).

    * ``values``: one row per observed intensity of a study sample, pooled QC or blank: ``injection``
      (:func:`injection_key`), ``feature`` (:func:`feature_key`), ``intensity``.
    * ``injections``: one row per injection: ``injection`` (key), ``batch_id``, ``injection_id``,
      ``sample_type`` (SAMPLE/QC/BLANK), ``matrix`` (QCs and blanks: their batch's), ``run_order``, and for
      study samples ``specimen_barcode``, ``subject_id``.
    * ``features``: ``marts.metabolite_features`` (``batch_id, feature_id, ion_mode, mz, rt_min,
      metabolite_name, formula, kegg_id, hmdb_id, compound_class, evidence``).
    * ``samples``: ``marts.samples`` (``specimen_barcode, visit, nominal_visit, nominal_visit_order``).
    """
    visits = samples[["specimen_barcode", "visit", "nominal_visit", "nominal_visit_order"]].drop_duplicates(
        "specimen_barcode"
    )
    inj = injections.drop_duplicates("injection").merge(visits, on="specimen_barcode", how="left")
    batch_matrix = inj.dropna(subset=["matrix"]).drop_duplicates("batch_id").set_index("batch_id")["matrix"]
    feats = features.copy()
    feats["feature"] = feature_key(feats["ion_mode"], feats["feature_id"])
    feats["matrix"] = feats["batch_id"].map(batch_matrix)
    value_matrix = values["injection"].map(inj.set_index("injection")["matrix"])

    tables: dict[str, MetaboliteTable] = {}
    for matrix in sorted(inj["matrix"].dropna().unique()):
        part = values[(value_matrix == matrix).to_numpy()]
        meta = inj[inj["matrix"] == matrix].sort_values(["batch_id", "run_order", "injection_id"], kind="stable")
        annotation = (
            feats[feats["matrix"] == matrix]
            .sort_values(["batch_id"], kind="stable")
            .drop_duplicates("feature")
            .set_index("feature")
        )
        keys = pd.Index(pd.unique(pd.concat([annotation.index.to_series(), part["feature"]], ignore_index=True)))
        keys = keys.sort_values()
        row = keys.get_indexer(part["feature"])
        col = pd.Index(meta["injection"]).get_indexer(part["injection"])
        matrix_values = np.full((len(keys), len(meta)), np.nan)
        ok = col >= 0
        matrix_values[row[ok], col[ok]] = part["intensity"].to_numpy(dtype="float64")[ok]
        ann = annotation.reindex(keys)
        mode_id = keys.to_series().str.split(":", n=1, expand=True)
        table_features = build_features(
            {
                "feature_id": mode_id[1].to_numpy(dtype=object),
                "ion_mode": mode_id[0].to_numpy(dtype=object),
                "mz": ann["mz"].to_numpy(dtype="float64", na_value=np.nan),
                "rt_min": ann["rt_min"].to_numpy(dtype="float64", na_value=np.nan),
                "name": ann["metabolite_name"].to_numpy(dtype=object),
                "formula": ann["formula"].to_numpy(dtype=object),
                "kegg_id": ann["kegg_id"].to_numpy(dtype=object),
                "hmdb_id": ann["hmdb_id"].to_numpy(dtype=object),
                "compound_class": ann["compound_class"].to_numpy(dtype=object),
                "evidence": ann["evidence"].to_numpy(dtype=object),
            },
            len(keys),
        )
        meta = meta.rename(columns={"injection_id": "source_injection_id", "injection": "injection_id"})
        meta["batch"] = meta["batch_id"]
        meta["run_order"] = pd.to_numeric(meta["run_order"], errors="coerce")
        tables[str(matrix)] = MetaboliteTable(
            features=table_features,
            intensities=matrix_values,
            injections=meta.reset_index(drop=True),
            source=f"marts ({matrix})",
            vendor="warehouse",
        )
    return tables


# ---------------------------------------------------------------------------------------------- results


@dataclass
class MatrixResults:
    """Everything :func:`analyse_matrix` produces for one matrix (tidy frames, ``matrix`` column first)."""

    steps: pd.DataFrame
    annotation: pd.DataFrame
    annotation_invalid: pd.DataFrame
    importance: pd.DataFrame
    scores: pd.DataFrame
    loadings: pd.DataFrame
    qc_rsd: pd.DataFrame
    differential: pd.DataFrame
    summary: dict[str, object] = field(default_factory=dict)
    #: The unscaled prepared matrix the differential tests used (kept in memory for the integration).
    prepared: PreparedMatrix | None = None


def _pc_columns(k: int) -> list[str]:
    return [f"PC{i}" for i in range(1, k + 1)]


def _pca_frames(
    matrix: str,
    scope: str,
    prepared: PreparedMatrix,
    rows: np.ndarray,
    n_keep: int,
    annotation: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Importance, scores (samples + projected QCs) and loadings of one PCA model."""
    X = prepared.values[rows]
    samples = prepared.samples.iloc[np.flatnonzero(rows)].reset_index(drop=True)
    keep = np.ptp(X, axis=0) > 0  # a feature constant within the scope carries no variance
    X = X[:, keep]
    keys = np.asarray(prepared.feature_keys, dtype=object)[keep]
    pca = prcomp(X, sample_ids=samples["injection_id"].tolist(), feature_ids=keys.tolist())
    imp = pca.importance().T.reset_index(names="component")
    imp.columns = ["component", "standard_deviation", "proportion_of_variance", "cumulative_proportion"]
    imp.insert(0, "pc", np.arange(1, len(imp) + 1))
    imp.insert(0, "n_features", X.shape[1])
    imp.insert(0, "n_samples", X.shape[0])
    imp.insert(0, "scope", scope)
    imp.insert(0, "matrix", matrix)
    k = min(n_keep, pca.n_components)
    cols = _pc_columns(n_keep)

    def score_block(values: np.ndarray, meta: pd.DataFrame, projected: bool) -> pd.DataFrame:
        block = pd.DataFrame(np.full((len(meta), n_keep), np.nan), columns=cols)
        block.iloc[:, :k] = values[:, :k]
        info = pd.DataFrame(
            {
                "matrix": matrix,
                "scope": scope,
                "batch_id": meta["batch_id"].to_numpy(dtype=object),
                "injection_id": meta["source_injection_id"].to_numpy(dtype=object),
                "sample_type": meta["sample_type"].to_numpy(dtype=object),
                "projected": projected,
                "specimen_barcode": meta["specimen_barcode"].to_numpy(dtype=object)
                if "specimen_barcode" in meta
                else None,
                "subject_id": meta["subject_id"].to_numpy(dtype=object) if "subject_id" in meta else None,
                "visit": meta["nominal_visit"].to_numpy(dtype=object) if "nominal_visit" in meta else None,
                "visit_order": pd.array(meta["nominal_visit_order"], dtype="Int64")
                if "nominal_visit_order" in meta
                else pd.array([pd.NA] * len(meta), dtype="Int64"),
                "run_order": pd.array(meta["run_order"], dtype="Int64"),
            }
        )
        return pd.concat([info, block], axis=1)

    parts = [score_block(pca.scores, samples, False)]
    if len(prepared.qc_values):
        parts.append(score_block(pca.project(prepared.qc_values[:, keep]), prepared.qcs, True))
    scores = pd.concat(parts, ignore_index=True)
    for column in ("specimen_barcode", "subject_id", "visit"):
        scores[column] = scores[column].astype("str")

    load = pd.DataFrame(np.full((len(keys), n_keep), np.nan), columns=cols)
    load.iloc[:, :k] = pca.rotation[:, :k]
    names = annotation.set_index("feature")["name"].reindex(keys)
    info = pd.DataFrame(
        {
            "matrix": matrix,
            "scope": scope,
            "feature": keys,
            "ion_mode": [s.split(":", 1)[0] for s in keys],
            "feature_id": [s.split(":", 1)[1] for s in keys],
            "name": names.to_numpy(dtype=object),
        }
    )
    loadings = pd.concat([info, load], axis=1)
    ratio = pca.explained_variance_ratio
    summary = {"pc1": float(ratio[0]), "pc2": float(ratio[1]) if len(ratio) > 1 else 0.0}
    return imp, scores, loadings, summary


# ---------------------------------------------------------------------------------------------- differential


def _as_bool(value: object) -> bool | None:
    """True/False from a boolean or a Y/N, YES/NO, TRUE/FALSE, 1/0 flag; anything else is unknown."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().upper() if value is not None and not pd.isna(value) else ""
    return {"Y": True, "YES": True, "TRUE": True, "1": True, "N": False, "NO": False, "FALSE": False, "0": False}.get(
        text
    )


def _model_rows(analysis: str, contrast: str, keys: list[str], test: str, reference: str) -> pd.DataFrame:
    """Rows for a model-only contrast (a joint test or an all-visits term): no two-group statistics."""
    return pd.DataFrame(
        {"analysis": analysis, "contrast": contrast, "feature": keys, "test_group": test, "reference_group": reference}
    )


def _joint_columns(frame: pd.DataFrame, fits: pd.DataFrame, contrast: str, term: str) -> pd.DataFrame:
    """``lmm_chi2``/``lmm_df`` on the joint-test rows; a joint test has no single estimate."""
    if fits.empty or frame.empty:
        return frame
    chi = fits.loc[fits["term"] == term, ["feature", "chi2", "df"]].rename(columns={"chi2": "lmm_chi2", "df": "lmm_df"})
    chi["contrast"] = contrast
    frame = frame.merge(chi, on=["contrast", "feature"], how="left")
    is_joint = (frame["contrast"] == contrast).to_numpy()
    frame.loc[is_joint, "lmm_log2fc"] = np.nan
    frame.loc[is_joint, "lmm_se"] = np.nan
    return frame


def _differential(
    matrix: str,
    prepared: PreparedMatrix,
    subjects: pd.DataFrame | None,
    annotation: pd.DataFrame,
    cfg: StudyConfig,
) -> pd.DataFrame:
    X = prepared.values
    samples = prepared.samples
    keys = prepared.feature_keys
    design = pd.DataFrame(
        {
            "subject_id": samples["subject_id"].astype("str").to_numpy(dtype=object),
            "visit": samples["nominal_visit"].to_numpy(dtype=object),
            "visit_order": pd.to_numeric(samples["nominal_visit_order"], errors="coerce").to_numpy(),
        }
    )
    if subjects is not None:
        lookup = subjects.drop_duplicates("subject_id").set_index("subject_id")
        for column in ("arm", "responder"):
            if column in lookup.columns:
                design[column] = design["subject_id"].map(lookup[column]).to_numpy(dtype=object)
    usable = design["visit"].notna().to_numpy() & np.isfinite(design["visit_order"].to_numpy(dtype="float64"))
    X, design = X[usable], design.loc[usable].reset_index(drop=True)
    if not len(design):
        return pd.DataFrame()
    order = design.groupby("visit")["visit_order"].min().sort_values(kind="stable")
    codes = {visit: f"V{i:02d}" for i, visit in enumerate(order.index)}
    design["visit_code"] = design["visit"].map(codes)
    baseline = next((v for v, o in order.items() if o == 0), None)
    parts: list[pd.DataFrame] = []

    def two_groups(rows: np.ndarray, labels: np.ndarray, test: str, ref: str, **info: object) -> pd.DataFrame | None:
        n_test, n_ref = int((labels[rows] == test).sum()), int((labels[rows] == ref).sum())
        if min(n_test, n_ref) < max(cfg.min_per_group, 2):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = compare_groups(
                X[rows],
                labels[rows],
                test,
                ref,
                feature_ids=keys,
                log_base=10,
                wilcoxon_method=cfg.wilcoxon_method,
            )
        res = res.rename(columns={"test": "test_group", "reference": "reference_group"})
        for name, value in reversed(list(info.items())):
            res.insert(0, name, value)
        return res

    def lmm(rows: np.ndarray, formula: str, joint: dict[str, str] | None = None) -> pd.DataFrame:
        if not cfg.mixed_models or rows.sum() < 4:
            return pd.DataFrame()
        sub = design.loc[rows].reset_index(drop=True)
        try:
            return mixed_model(X[rows], sub, formula, patient="subject_id", feature_ids=keys, joint=joint)
        except (ValueError, np.linalg.LinAlgError):
            return pd.DataFrame()

    def attach(frame: pd.DataFrame, fits: pd.DataFrame, term_of: dict[str, str]) -> pd.DataFrame:
        """Add lmm_* columns: the model term that answers each contrast (term_of: contrast -> term)."""
        if fits.empty or frame.empty:
            return frame
        wanted = pd.DataFrame({"contrast": list(term_of), "lmm_term": list(term_of.values())})
        frame = frame.merge(wanted, on="contrast", how="left")
        cols = fits[["feature", "term", "estimate", "se", "p", "q"]].rename(
            columns={"term": "lmm_term", "estimate": "lmm_log2fc", "se": "lmm_se", "p": "lmm_p", "q": "lmm_q"}
        )
        frame = frame.merge(cols, on=["feature", "lmm_term"], how="left")
        frame["lmm_log2fc"] *= LOG2_10
        frame["lmm_se"] *= LOG2_10
        return frame

    visits = list(order.index)
    visit_labels = design["visit"].to_numpy(dtype=object)

    # 1. each visit vs baseline
    if baseline is not None:
        frames, term_of, included = [], {}, {baseline}
        for visit in visits:
            if visit == baseline:
                continue
            rows = np.isin(visit_labels, [visit, baseline])
            contrast = f"{visit} vs {baseline}"
            res = two_groups(rows, visit_labels, visit, baseline, analysis="visit_vs_baseline", contrast=contrast)
            if res is not None:
                res.insert(2, "visit", visit)
                frames.append(res)
                included.add(visit)
                term_of[contrast] = f"C(visit_code, Treatment('V00'))[T.{codes[visit]}]"
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            rows = np.isin(visit_labels, list(included))
            joint_name = "visit effect (joint)"
            fits = lmm(rows, "C(visit_code, Treatment('V00'))", joint={joint_name: r"^C\(visit_code"})
            joint = f"any visit vs {baseline} (joint)"
            if not fits.empty:
                frame = pd.concat(
                    [frame, _model_rows("visit_vs_baseline", joint, keys, "any visit", baseline)], ignore_index=True
                )
                term_of[joint] = joint_name
            parts.append(_joint_columns(attach(frame, fits, term_of), fits, joint, joint_name))

    # 2. responders vs non-responders
    if "responder" in design.columns:
        flags = design["responder"].map(_as_bool)
        labels = flags.map({True: RESPONDER_LABELS[0], False: RESPONDER_LABELS[1]}).to_numpy(dtype=object)
        frames, included = [], []
        for visit in visits:
            rows = (visit_labels == visit) & pd.notna(labels)
            contrast = f"{RESPONDER_LABELS[0]} vs {RESPONDER_LABELS[1]} at {visit}"
            res = two_groups(rows, labels, *RESPONDER_LABELS, analysis="responder", contrast=contrast)
            if res is not None:
                res.insert(2, "visit", visit)
                frames.append(res)
                included.append(visit)
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            rows = np.isin(visit_labels, included) & pd.notna(labels)
            design["responder_label"] = labels
            fits = lmm(rows, f"C(responder_label, Treatment('{RESPONDER_LABELS[1]}')) + C(visit_code)")
            overall = f"{RESPONDER_LABELS[0]} vs {RESPONDER_LABELS[1]} (all visits)"
            term = f"C(responder_label, Treatment('{RESPONDER_LABELS[1]}'))[T.{RESPONDER_LABELS[0]}]"
            if not fits.empty:
                frame = pd.concat(
                    [frame, _model_rows("responder", overall, keys, *RESPONDER_LABELS)], ignore_index=True
                )
            parts.append(attach(frame, fits, {overall: term}))

    # 3. arm x visit (unblinded runs only: the caller passes an arm column only then)
    if "arm" in design.columns:
        arms = design["arm"].to_numpy(dtype=object)
        frames, term_of, included = [], {}, []
        arm_term = "C(arm, Treatment('PLACEBO'))[T.CAPSULE]"
        for visit in visits:
            rows = (visit_labels == visit) & np.isin(arms, ARMS)
            contrast = f"CAPSULE vs PLACEBO at {visit}"
            res = two_groups(rows, arms, "CAPSULE", "PLACEBO", analysis="arm_x_visit", contrast=contrast)
            if res is not None:
                res.insert(2, "visit", visit)
                frames.append(res)
                included.append(visit)
                term_of[contrast] = (
                    arm_term if visit == baseline else f"{arm_term}:C(visit_code, Treatment('V00'))[T.{codes[visit]}]"
                )
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            fits = pd.DataFrame()
            if baseline in included:
                rows = np.isin(visit_labels, included) & np.isin(arms, ARMS)
                fits = lmm(
                    rows,
                    "C(arm, Treatment('PLACEBO')) * C(visit_code, Treatment('V00'))",
                    joint={"arm x visit interaction (joint)": ":"},
                )
            joint = "CAPSULE vs PLACEBO: arm x visit interaction (joint)"
            joint_name = "arm x visit interaction (joint)"
            if not fits.empty:
                frame = pd.concat([frame, _model_rows("arm_x_visit", joint, keys, *ARMS)], ignore_index=True)
                term_of[joint] = joint_name
            parts.append(_joint_columns(attach(frame, fits, term_of), fits, joint, joint_name))

    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out = out.rename(columns={"mean_test": "mean_glog10_test", "mean_reference": "mean_glog10_reference"})
    out = attach_annotation(out, annotation, feature="feature")
    out.insert(0, "matrix", matrix)
    # rank within each contrast: the mixed model's p where there is one, else Welch's
    primary = out["lmm_p"] if "lmm_p" in out else pd.Series(np.nan, index=out.index)
    primary = primary.fillna(out["welch_p"]) if "welch_p" in out else primary
    out["rank"] = primary.groupby([out["analysis"], out["contrast"]]).rank(method="first").astype("Int64")
    columns = [
        "matrix",
        "analysis",
        "contrast",
        "visit",
        "test_group",
        "reference_group",
        "n_test",
        "n_reference",
        "feature",
        "ion_mode",
        "feature_id",
        "name",
        "kegg_ids",
        "hmdb_ids",
        "evidence",
        "mean_glog10_test",
        "mean_glog10_reference",
        "log2fc",
        "fc",
        "welch_t",
        "welch_df",
        "welch_p",
        "welch_q",
        "wilcoxon_u",
        "wilcoxon_p",
        "wilcoxon_q",
        "lmm_term",
        "lmm_log2fc",
        "lmm_se",
        "lmm_p",
        "lmm_q",
        "lmm_chi2",
        "lmm_df",
        "rank",
    ]
    for column in columns:
        if column not in out.columns:
            out[column] = np.nan
    out = out[columns].sort_values(["analysis", "contrast", "rank"], kind="stable").reset_index(drop=True)
    for column in ("n_test", "n_reference", "lmm_df"):
        out[column] = pd.array(out[column], dtype="Int64")
    for column in ("visit", "lmm_term", "test_group", "reference_group"):
        out[column] = out[column].astype("str")
    return out


# ---------------------------------------------------------------------------------------------- per matrix


def rescale(prepared: PreparedMatrix, log: pd.DataFrame, config: PrepareConfig) -> tuple[PreparedMatrix, pd.DataFrame]:
    """What :func:`prepare` with ``config`` gives, from its run with ``scaling="none"`` (same other settings).

    Scaling is prepare's last step (fitted on the study samples, applied to them and to the QCs), so
    applying it to the unscaled result reproduces that run, matrix and step log, without repeating the
    drift correction. Tested against a second ``prepare`` call.
    """
    if prepared.config.scaling != "none" or replace(prepared.config, scaling=config.scaling) != config:
        raise ValueError("rescale needs a scaling='none' run of the same recipe")
    scaling = normalise.fit_scaling(prepared.values, config.scaling)
    values = normalise.apply_scaling(prepared.values, scaling)
    qc_values = normalise.apply_scaling(prepared.qc_values, scaling)
    out = replace(prepared, values=values, qc_values=qc_values, config=config)
    log = log.copy()
    last = log.index[-1]
    if log.at[last, "name"] != "scaling":
        raise ValueError("the step log does not end with the scaling step")
    log.at[last, "parameters"] = json.dumps({"method": config.scaling, "fitted_on": "study samples"}, sort_keys=True)
    log.at[last, "applied"] = config.scaling != "none"
    return out, log


def analyse_matrix(
    matrix: str,
    table: MetaboliteTable,
    subjects: pd.DataFrame | None = None,
    config: StudyConfig | None = None,
) -> MatrixResults:
    """Prepare, PCA, QC RSD, annotation and differential tests for one matrix (see module docstring).

    ``subjects``: one row per ``subject_id`` with optional ``responder`` (bool) and — in unblinded runs
    only — ``arm`` (CAPSULE/PLACEBO).
    """
    cfg = config or StudyConfig()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    diff_cfg = replace(cfg.prepare, scaling="none")
    diff_prep, diff_log = prepare(table, diff_cfg)
    pca_prep, pca_log = rescale(diff_prep, diff_log, cfg.prepare)
    timings["prepare_s"] = time.perf_counter() - started
    steps = pd.concat(
        [pca_log.assign(purpose="pca", config=json.dumps(asdict(cfg.prepare), sort_keys=True)),
         diff_log.assign(purpose="differential", config=json.dumps(asdict(diff_cfg), sort_keys=True))],
        ignore_index=True,
    )  # fmt: skip
    steps.insert(0, "matrix", matrix)

    ann = annotate(table.features)
    annotation = ann.features.copy()
    annotation.insert(0, "feature", annotation["ion_mode"].astype("str") + ":" + annotation["feature_id"].astype("str"))
    annotation.insert(0, "matrix", matrix)
    for column in ("mz", "rt_min"):
        annotation[column] = table.features[column].to_numpy()
    annotation["in_analysis"] = annotation["feature"].isin(pca_prep.feature_keys)
    invalid = ann.invalid.copy()
    invalid.insert(0, "matrix", matrix)

    started = time.perf_counter()
    all_rows = np.ones(len(pca_prep.samples), dtype=bool)
    imp, scores, loadings, pcs = _pca_frames(matrix, ALL_VISITS, pca_prep, all_rows, cfg.n_components, annotation)
    parts = [(imp, scores, loadings)]
    if "nominal_visit" in pca_prep.samples:
        visit_order = pca_prep.samples.groupby("nominal_visit")["nominal_visit_order"].min().sort_values(kind="stable")
        for visit in visit_order.index:
            rows = (pca_prep.samples["nominal_visit"] == visit).to_numpy()
            if rows.sum() >= max(cfg.min_samples_pca, 3):
                parts.append(_pca_frames(matrix, str(visit), pca_prep, rows, cfg.n_components, annotation)[:3])
    importance = pd.concat([p[0] for p in parts], ignore_index=True)
    scores = pd.concat([p[1] for p in parts], ignore_index=True)
    loadings = pd.concat([p[2] for p in parts], ignore_index=True)
    timings["pca_s"] = time.perf_counter() - started

    qc_rsd = pca_prep.qc_rsd.copy()
    if "qc_rsd_after_drift" not in qc_rsd:
        qc_rsd["qc_rsd_after_drift"] = np.nan
    qc_rsd = qc_rsd.rename(columns={"qc_rsd_after_drift": "qc_rsd_after", "kept": "kept_by_rsd_filter"})
    qc_rsd.insert(1, "ion_mode", qc_rsd["feature"].str.split(":", n=1).str[0])
    qc_rsd.insert(2, "feature_id", qc_rsd["feature"].str.split(":", n=1).str[1])
    qc_rsd.insert(0, "matrix", matrix)
    qc_rsd["n_qc"] = len(pca_prep.qcs)

    started = time.perf_counter()
    differential = _differential(matrix, diff_prep, subjects, annotation, cfg)
    timings["differential_s"] = time.perf_counter() - started

    summary: dict[str, object] = {
        "samples": len(pca_prep.samples),
        "qcs": len(pca_prep.qcs),
        "features_in": table.n_features,
        "features_prepared": len(pca_prep.feature_keys),
        "pc1_variance": pcs["pc1"],
        "pc2_variance": pcs["pc2"],
        "qc_rsd_median_before": float(np.nanmedian(qc_rsd["qc_rsd_before"])) if qc_rsd["qc_rsd_before"].notna().any()
        else None,
        "qc_rsd_median_after": float(np.nanmedian(qc_rsd["qc_rsd_after"])) if qc_rsd["qc_rsd_after"].notna().any()
        else None,
        **{k: round(v, 3) for k, v in timings.items()},
    }  # fmt: skip
    return MatrixResults(
        steps=steps,
        annotation=annotation,
        annotation_invalid=invalid,
        importance=importance,
        scores=scores,
        loadings=loadings,
        qc_rsd=qc_rsd,
        differential=differential,
        summary=summary,
        prepared=diff_prep,
    )


def top_features(differential: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` best-ranked features per analysis (by the analysis' smallest primary p over its contrasts)."""
    if differential.empty:
        return differential
    primary = differential["lmm_p"].fillna(differential["welch_p"])
    frame = differential.assign(_p=primary)
    best = frame.sort_values("_p", kind="stable").drop_duplicates(["matrix", "analysis", "feature"])
    return best.groupby(["matrix", "analysis"], sort=True).head(n).drop(columns="_p").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- integration


def genus_table(counts: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Genus relative abundances per (patient, visit): one row per ``subject_id, visit``, one column per genus.

    ``counts``: ``specimen_barcode, subject_id, genus, relative_abundance`` (one row per library and taxon;
    features without a genus are left out). Relative abundances are summed per library and genus, averaged
    over the libraries of a specimen and over the specimens of a visit.
    """
    visits = samples[["specimen_barcode", "nominal_visit"]].drop_duplicates("specimen_barcode")
    frame = counts.dropna(subset=["genus"]).merge(visits, on="specimen_barcode", how="inner")
    if frame.empty:
        return pd.DataFrame(columns=["subject_id", "visit"])
    per_library = frame.groupby(["library", "specimen_barcode", "subject_id", "nominal_visit", "genus"], sort=False)[
        "relative_abundance"
    ].sum()
    wide = per_library.unstack("genus", fill_value=0.0)
    wide = wide.groupby(level=["subject_id", "nominal_visit"], sort=True).mean()
    wide.index = wide.index.set_names(["subject_id", "visit"])
    return wide.reset_index()


def prepared_long(matrix: str, prepared: PreparedMatrix) -> pd.DataFrame:
    """The prepared study-sample matrix as a long frame (``matrix, batch_id, injection_id, subject_id, visit,
    feature, value``): what the differential tests and the integration use, stored for reproducibility."""
    samples = prepared.samples
    n, p = prepared.values.shape
    rows = np.repeat(np.arange(n), p)

    def col(name: str) -> np.ndarray:
        return samples[name].to_numpy(dtype=object)[rows] if name in samples else np.full(n * p, None, dtype=object)

    return pd.DataFrame(
        {
            "matrix": matrix,
            "batch_id": col("batch_id"),
            "injection_id": col("source_injection_id"),
            "subject_id": col("subject_id"),
            "visit": col("nominal_visit"),
            "feature": np.tile(np.asarray(prepared.feature_keys, dtype=object), n),
            "value": prepared.values.reshape(-1),
        }
    )


def integrate(
    genera: pd.DataFrame,
    prepared: pd.DataFrame,
    differential: pd.DataFrame,
    annotation: pd.DataFrame,
    *,
    differential_genera: Sequence[str] = (),
    q_threshold: float = 0.1,
    top_metabolites: int = 20,
    max_genera: int = 40,
    min_prevalence: float = 0.2,
    min_pairs: int = 10,
) -> pd.DataFrame:
    """Spearman correlations of genera with metabolites within the same patient and visit, BH-corrected.

    ``genera``: :func:`genus_table`. ``prepared``: :func:`prepared_long` of every matrix. ``differential`` and
    ``annotation``: the ``differential_metabolites`` and ``metabolite_annotation`` tables.

    Genera: ``differential_genera`` (the microbiome analysis' differential genera) plus the most abundant
    genera present in at least ``min_prevalence`` of the (patient, visit) rows, up to ``max_genera``.
    Metabolites per matrix: every feature with a q-value (mixed model, else Welch) below ``q_threshold`` in any
    contrast, else the ``top_metabolites`` smallest p. Values: relative abundances and the prepared (glog,
    unscaled) metabolite values, averaged per (patient, visit); Spearman is rank-based, so a per-feature
    monotone transform changes nothing. q: BH over all pairs of a matrix (:func:`spearman_pairs`).
    """
    columns = ["matrix", "genus", "genus_differential", "feature", "ion_mode", "feature_id", "name", "kegg_ids",
               "metabolite_best_q", "n", "rho", "p", "q"]  # fmt: skip
    empty = pd.DataFrame({c: pd.Series(dtype="float64" if c in ("rho", "p", "q") else "object") for c in columns})
    if genera.shape[1] <= 2 or prepared.empty or differential.empty:
        return empty
    taxa = genera.drop(columns=["subject_id", "visit"])
    prevalence = (taxa > 0).mean()
    common = taxa.mean()[prevalence >= min_prevalence].sort_values(ascending=False, kind="stable")
    flagged = [g for g in dict.fromkeys(differential_genera) if g in taxa.columns]
    chosen = list(dict.fromkeys([*flagged, *common.index]))[: max(max_genera, len(flagged))]
    left = genera[["subject_id", "visit", *chosen]]
    parts = []
    for matrix, diff in differential.groupby("matrix", sort=True):
        q = diff["lmm_q"].fillna(diff["welch_q"])
        p = diff["lmm_p"].fillna(diff["welch_p"])
        best = pd.DataFrame({"feature": diff["feature"], "q": q, "p": p}).groupby("feature").min()
        picked = best.index[best["q"] < q_threshold]
        if len(picked) == 0:
            picked = best.sort_values("p", kind="stable").index[:top_metabolites]
        values = prepared[(prepared["matrix"] == matrix) & prepared["feature"].isin(picked)]
        right = values.pivot_table(index=["subject_id", "visit"], columns="feature", values="value", aggfunc="mean")
        pairs = spearman_pairs(
            left, right.reset_index(), on=("subject_id", "visit"), names=("genus", "feature"), min_pairs=min_pairs
        )
        pairs.insert(0, "matrix", matrix)
        pairs["genus_differential"] = pairs["genus"].isin(flagged)
        pairs["metabolite_best_q"] = pairs["feature"].map(best["q"])
        own = annotation[annotation["matrix"] == matrix]
        parts.append(attach_annotation(pairs, own, feature="feature"))
    if not parts:
        return empty
    out = pd.concat(parts, ignore_index=True)
    return out[columns].sort_values(["matrix", "p"], kind="stable", na_position="last").reset_index(drop=True)
