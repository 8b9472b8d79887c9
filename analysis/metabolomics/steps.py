"""The preparation pipeline, step by step, with a log of what each step did.

:func:`prepare` turns a :class:`~analysis.metabolomics.table.MetaboliteTable` into the matrix PCA and the
differential tests use, in this fixed order (``omics.md`` §7.2–7.3; MetaboAnalyst 4.3.0 applies the
missing filter, then the QC RSD filter, then imputation)::

    zeros -> missing | blank filter | drop blanks | missing-value filter | [QC drift correction]
    | QC RSD filter | imputation | drop still-missing features | row normalisation | transform
    | drop constant features | scaling            -> then prcomp(center=TRUE, scale.=FALSE)

Which injections take part: **study samples** (``sample_type == SAMPLE``) form the model: the
missing-value filter, λ of the transform, the scaling centre/scale and PCA use them only. **Pooled QCs**
drive the drift correction, the RSD filter and (by default) the PQN reference, and are carried through
every transformation with the model's parameters so they can be projected onto the PCA
(``PreparedMatrix.qc_values``). **Blanks** serve the blank filter and are then dropped. Anything else
(e.g. MS-DIAL ``Standard``) is dropped at the start.

Every step appends one row to the step log (:data:`STEP_LOG_COLUMNS`): its name, its parameters (JSON),
features and injections before/after, and what it measured (JSON: counts, λ, median QC RSD before and
after drift correction...). A skipped step is logged with ``applied = False`` and the reason, so the log
always reads as the whole recipe. The log is meant to be stored as an ``analysis`` table next to the
results it produced.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis.metabolomics import normalise, preprocess
from analysis.metabolomics.table import MetaboliteTable

STEP_LOG_COLUMNS: tuple[str, ...] = (
    "step",
    "name",
    "applied",
    "parameters",
    "features_before",
    "features_after",
    "injections_before",
    "injections_after",
    "detail",
)


@dataclass(frozen=True)
class PrepareConfig:
    """Parameters of :func:`prepare` (all recorded in the step log)."""

    zeros_are_missing: bool = True
    blank_filter: bool = True
    blank_fold: float = 3.0
    #: Fraction in (0, 1]: keep a feature iff its missing fraction among study samples is < this.
    max_missing: float = 0.2
    #: Injection column holding the group for the group-wise missing rule (any group passes); None = overall.
    missing_group_column: str | None = None
    drift_correction: bool = False
    drift_frac: float = 0.75
    drift_iterations: int = 3
    drift_min_qc: int = 5
    #: Percent; None skips the QC RSD filter.
    qc_rsd_threshold: float | None = 30.0
    impute: str = "lod"
    knn_neighbors: int = 10
    row_normalisation: str = "pqn"
    #: ``qc`` (median spectrum of the pooled QCs; falls back to samples, logged, if there are none) or ``samples``.
    pqn_reference: str = "qc"
    pqn_statistic: str = "median"
    transform: str = "glog"
    #: Offset of the ``log10`` transform; None = MetaboAnalyst's λ = min|x≠0|/10.
    log10_offset: float | None = None
    scaling: str = "pareto"
    remove_constant: bool = True

    def __post_init__(self) -> None:
        if self.impute not in preprocess.IMPUTE_METHODS:
            raise ValueError(f"impute must be one of {preprocess.IMPUTE_METHODS}")
        if self.row_normalisation not in normalise.ROW_METHODS:
            raise ValueError(f"row_normalisation must be one of {normalise.ROW_METHODS}")
        if self.transform not in normalise.TRANSFORMS:
            raise ValueError(f"transform must be one of {normalise.TRANSFORMS}")
        if self.scaling not in normalise.SCALINGS:
            raise ValueError(f"scaling must be one of {normalise.SCALINGS}")
        if self.pqn_reference not in ("qc", "samples"):
            raise ValueError("pqn_reference must be 'qc' or 'samples'")


@dataclass(eq=False)
class PreparedMatrix:
    """Result of :func:`prepare`: model rows (study samples), QC rows, and their labels."""

    values: np.ndarray
    qc_values: np.ndarray
    features: pd.DataFrame
    samples: pd.DataFrame
    qcs: pd.DataFrame
    #: Per-feature QC RSD (%) as measured at the QC step (before/after drift correction), all features
    #: that reached that step, with ``kept`` telling whether the RSD filter kept them.
    qc_rsd: pd.DataFrame = field(default_factory=pd.DataFrame)
    config: PrepareConfig = field(default_factory=PrepareConfig)

    @property
    def feature_keys(self) -> list[str]:
        return (self.features["ion_mode"].astype("str") + ":" + self.features["feature_id"].astype("str")).tolist()

    @property
    def sample_ids(self) -> list[str]:
        return self.samples["injection_id"].astype("str").tolist()

    @property
    def qc_ids(self) -> list[str]:
        return self.qcs["injection_id"].astype("str").tolist()


class _Log:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def add(
        self,
        name: str,
        params: dict[str, object],
        features: tuple[int, int],
        injections: tuple[int, int],
        detail: dict[str, object] | None = None,
        *,
        applied: bool = True,
    ) -> None:
        self.rows.append(
            {
                "step": len(self.rows) + 1,
                "name": name,
                "applied": applied,
                "parameters": json.dumps(params, sort_keys=True, default=_jsonable),
                "features_before": features[0],
                "features_after": features[1],
                "injections_before": injections[0],
                "injections_after": injections[1],
                "detail": json.dumps(detail or {}, sort_keys=True, default=_jsonable),
            }
        )

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=list(STEP_LOG_COLUMNS))
        for column in ("name", "parameters", "detail"):
            frame[column] = frame[column].astype("str")
        return frame


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def prepare(table: MetaboliteTable, config: PrepareConfig | None = None) -> tuple[PreparedMatrix, pd.DataFrame]:
    """Run the preparation pipeline; return the prepared matrix and the step log (see module docstring)."""
    cfg = config or PrepareConfig()
    log = _Log()
    types = np.asarray(table.sample_types(), dtype=object)
    injections = table.injections.reset_index(drop=True)
    use = np.isin(types, ["SAMPLE", "QC", "BLANK"])
    n_features = table.n_features
    if not (types == "SAMPLE").any():
        raise ValueError("no study-sample injections (sample_type SAMPLE) to prepare")
    log.add(
        "select_injections",
        {"kept_types": ["SAMPLE", "QC", "BLANK"]},
        (n_features, n_features),
        (table.n_injections, int(use.sum())),
        {t: int((types == t).sum()) for t in pd.unique(types)},
    )
    rows = np.flatnonzero(use)
    X = np.ascontiguousarray(table.intensities.T[rows])  # injections x features: one copy, ours to modify
    types = types[rows]
    injections = injections.iloc[rows].reset_index(drop=True)
    features = table.features.reset_index(drop=True)
    sample, qc, blank = types == "SAMPLE", types == "QC", types == "BLANK"

    def keep_features(mask: np.ndarray) -> None:
        nonlocal X, features
        X = np.ascontiguousarray(X[:, mask])
        features = features.loc[mask].reset_index(drop=True)

    # 1. zeros -> missing
    if cfg.zeros_are_missing:
        zeros = X == 0
        n_zero = int(zeros.sum())
        X[zeros] = np.nan
        del zeros
        log.add("zeros_to_missing", {}, (X.shape[1],) * 2, (X.shape[0],) * 2, {"zeros_replaced": n_zero})
    else:
        log.add("zeros_to_missing", {}, (X.shape[1],) * 2, (X.shape[0],) * 2, {"reason": "disabled"}, applied=False)

    # 2. blank filter, then drop blanks
    before = X.shape[1]
    if cfg.blank_filter and blank.any():
        result = preprocess.blank_filter(X, sample, blank, cfg.blank_fold)
        keep_features(result.keep)
        log.add(
            "blank_filter",
            {"fold": cfg.blank_fold, "rule": result.rule},
            (before, X.shape[1]),
            (X.shape[0],) * 2,
            {"blanks": int(blank.sum()), "removed": result.n_removed},
        )
    else:
        reason = "disabled" if not cfg.blank_filter else "no blank injections"
        log.add(
            "blank_filter",
            {"fold": cfg.blank_fold},
            (before, before),
            (X.shape[0],) * 2,
            {"reason": reason},
            applied=False,
        )
    if blank.any():
        n_before = X.shape[0]
        X = np.ascontiguousarray(X[~blank])
        injections = injections.loc[~blank].reset_index(drop=True)
        types = types[~blank]
        sample, qc = types == "SAMPLE", types == "QC"
        log.add("drop_blanks", {}, (X.shape[1],) * 2, (n_before, X.shape[0]))

    # 3. missing-value filter over study samples
    before = X.shape[1]
    groups = None
    if cfg.missing_group_column is not None:
        if cfg.missing_group_column not in injections.columns:
            raise ValueError(f"missing_group_column {cfg.missing_group_column!r} is not an injection column")
        groups = injections.loc[sample, cfg.missing_group_column].to_numpy()
    result = preprocess.missing_filter(X[sample], cfg.max_missing, groups, group_wise=groups is not None)
    keep_features(result.keep)
    log.add(
        "missing_filter",
        {
            "max_missing": cfg.max_missing,
            "group_column": cfg.missing_group_column,
            "rule": result.rule,
            "over": "study samples",
        },
        (before, X.shape[1]),
        (X.shape[0],) * 2,
        {"removed": result.n_removed},
    )

    # 4. QC drift correction (optional) and 5. QC RSD filter
    keys = (features["ion_mode"].astype("str") + ":" + features["feature_id"].astype("str")).to_numpy()
    rsd_table = pd.DataFrame({"feature": keys})
    rsd_before = preprocess.rsd(X, qc) if qc.sum() >= 2 else np.full(X.shape[1], np.nan)
    rsd_table["qc_rsd_before"] = rsd_before
    drift_params = {"frac": cfg.drift_frac, "iterations": cfg.drift_iterations, "min_qc": cfg.drift_min_qc}
    if cfg.drift_correction:
        if "run_order" not in injections.columns or qc.sum() < max(2, cfg.drift_min_qc):
            raise ValueError("drift correction needs run_order and at least drift_min_qc QC injections")
        batches = injections["batch"].to_numpy() if "batch" in injections.columns else None
        drift = preprocess.drift_correct(
            X,
            injections["run_order"].to_numpy(dtype="float64"),
            qc,
            batches,
            frac=cfg.drift_frac,
            it=cfg.drift_iterations,
            min_qc=cfg.drift_min_qc,
        )
        X = drift.corrected
        rsd_table["qc_rsd_after_drift"] = drift.rsd_after
        log.add(
            "drift_correction",
            {**drift_params, "method": "QC-RLSC LOWESS per feature per batch"},
            (X.shape[1],) * 2,
            (X.shape[0],) * 2,
            {
                "batches": drift.batches,
                "uncorrected_feature_batches": drift.uncorrected,
                "median_qc_rsd_before": _median(drift.rsd_before),
                "median_qc_rsd_after": _median(drift.rsd_after),
            },
        )
    else:
        log.add(
            "drift_correction",
            drift_params,
            (X.shape[1],) * 2,
            (X.shape[0],) * 2,
            {"reason": "disabled"},
            applied=False,
        )
    before = X.shape[1]
    if cfg.qc_rsd_threshold is not None and qc.sum() >= 2:
        result = preprocess.qc_rsd_filter(X, qc, cfg.qc_rsd_threshold)
        rsd_table["kept"] = result.keep
        keep_features(result.keep)
        log.add(
            "qc_rsd_filter",
            {"threshold_percent": cfg.qc_rsd_threshold, "rule": result.rule},
            (before, X.shape[1]),
            (X.shape[0],) * 2,
            {"qcs": int(qc.sum()), "removed": result.n_removed, "median_qc_rsd": _median(result.statistic)},
        )
    else:
        reason = "disabled" if cfg.qc_rsd_threshold is None else f"{int(qc.sum())} QC injections (need 2)"
        rsd_table["kept"] = True
        log.add(
            "qc_rsd_filter",
            {"threshold_percent": cfg.qc_rsd_threshold},
            (before, before),
            (X.shape[0],) * 2,
            {"reason": reason},
            applied=False,
        )

    # 6. imputation (samples and QCs together, as MetaboAnalyst imputes the whole matrix)
    X, report = preprocess.impute(X, cfg.impute, knn_neighbors=cfg.knn_neighbors)
    log.add(
        "impute",
        {"method": cfg.impute, **({"knn_neighbors": cfg.knn_neighbors} if cfg.impute == "knn" else {})},
        (X.shape[1],) * 2,
        (X.shape[0],) * 2,
        report,
    )
    before = X.shape[1]
    complete = np.isfinite(X).all(axis=0)
    if not complete.all():
        keep_features(complete)
    log.add(
        "drop_incomplete",
        {"rule": "every injection has a finite value"},
        (before, X.shape[1]),
        (X.shape[0],) * 2,
        {"removed": before - X.shape[1]},
        applied=not complete.all(),
    )

    # 7. row normalisation
    detail: dict[str, object] = {}
    reference = None
    if cfg.row_normalisation == "pqn":
        ref_rows = qc if cfg.pqn_reference == "qc" else sample
        used = cfg.pqn_reference
        if not ref_rows.any():
            ref_rows, used = sample, "samples (no QC injections)"
        reference = normalise.pqn_reference(X, ref_rows, cfg.pqn_statistic)
        detail["reference"] = used
    X, row_info = normalise.normalise_rows(X, cfg.row_normalisation, reference=reference)
    detail["factor_min"] = float(np.nanmin(row_info.factors)) if len(row_info.factors) else None
    detail["factor_max"] = float(np.nanmax(row_info.factors)) if len(row_info.factors) else None
    log.add(
        "row_normalisation",
        {"method": cfg.row_normalisation, "pqn_reference": cfg.pqn_reference, "pqn_statistic": cfg.pqn_statistic}
        if cfg.row_normalisation == "pqn"
        else {"method": cfg.row_normalisation},
        (X.shape[1],) * 2,
        (X.shape[0],) * 2,
        detail,
        applied=cfg.row_normalisation != "none",
    )
    bad_rows = ~np.isfinite(row_info.factors) | (row_info.factors == 0)
    if bad_rows.any():
        raise ValueError(f"row normalisation failed for injections {injections['injection_id'][bad_rows].tolist()}")

    # 8. transform (lambda from study samples, reused for QCs)
    lam = normalise.glog_lambda(X[sample]) if cfg.transform in ("glog", "log10", "sqrt") else None
    Xs, t_info = normalise.transform(X[sample], cfg.transform, lam=lam, offset=cfg.log10_offset)
    Xq, _ = normalise.transform(X[qc], cfg.transform, lam=lam, offset=cfg.log10_offset)
    del X
    log.add(
        "transform",
        {"method": cfg.transform, **({"offset": cfg.log10_offset} if cfg.transform == "log10" else {})},
        (Xs.shape[1],) * 2,
        (len(Xs) + len(Xq),) * 2,
        {k: v for k, v in t_info.items() if k != "method"},
        applied=cfg.transform != "none",
    )

    # 9. constant features (MetaboAnalyst SanityCheckData / CleanDataMatrix)
    before = Xs.shape[1]
    if cfg.remove_constant:
        varying = np.ptp(Xs, axis=0) > 0 if len(Xs) else np.ones(before, dtype=bool)
        if not varying.all():
            Xs, Xq = np.ascontiguousarray(Xs[:, varying]), np.ascontiguousarray(Xq[:, varying])
            features = features.loc[varying].reset_index(drop=True)
    log.add(
        "drop_constant",
        {"rule": "max > min over study samples"},
        (before, Xs.shape[1]),
        (len(Xs) + len(Xq),) * 2,
        {"removed": before - Xs.shape[1]},
        applied=cfg.remove_constant,
    )

    # 10. scaling (fitted on study samples)
    scaling = normalise.fit_scaling(Xs, cfg.scaling)
    Xs, Xq = normalise.apply_scaling(Xs, scaling), normalise.apply_scaling(Xq, scaling)
    log.add(
        "scaling",
        {"method": cfg.scaling, "fitted_on": "study samples"},
        (Xs.shape[1],) * 2,
        (len(Xs) + len(Xq),) * 2,
        applied=cfg.scaling != "none",
    )

    prepared = PreparedMatrix(
        values=Xs,
        qc_values=Xq,
        features=features,
        samples=injections.loc[sample].reset_index(drop=True),
        qcs=injections.loc[qc].reset_index(drop=True),
        qc_rsd=rsd_table,
        config=cfg,
    )
    return prepared, log.frame()


def config_record(config: PrepareConfig) -> str:
    """The configuration as a JSON string (for lineage next to the step log)."""
    return json.dumps(asdict(config), sort_keys=True)
