"""Differential metabolites: fold change, Welch t, Wilcoxon rank-sum with BH q-values, and a linear mixed
model for repeated visits.

``X`` is injections × features (study samples only — QCs and blanks never enter group statistics,
``omics.md`` §7.1), normally the prepared (imputed, normalised, transformed) matrix.

Fold change (:func:`fold_change`)
    On a linear scale (``log_base=None``; MetaboAnalyst computes FC on row-normalised, untransformed
    data): ``FC = mean(test)/mean(reference)``, ``log2FC = log2 FC``. On log-transformed data
    (``log_base=10`` after glog/log10): ``log2FC = (mean(test) − mean(reference))·log2(base)``, i.e. the
    ratio of geometric means; ``FC = 2^log2FC``.

Welch t (:func:`compare_groups`): ``scipy.stats.ttest_ind(equal_var=False, axis=0)`` — R ``t.test``'s
default (Welch–Satterthwaite df), vectorised over features.

Wilcoxon rank-sum: ``scipy.stats.mannwhitneyu(axis=0, use_continuity=True, alternative="two-sided")``.
``method="asymptotic"`` (default here) is R ``wilcox.test(exact=FALSE, correct=TRUE)``: normal
approximation with tie and continuity corrections. ``method="auto"`` uses scipy's exact null for small
samples without ties (scipy's threshold is ≤ 8 per group, R's is < 50: the two differ in between).
Missing values propagate (NaN p) — impute first.

BH q-values (:func:`bh_qvalues`; Benjamini & Hochberg 1995): for the m finite p-values sorted
ascending, ``q_(i) = min_{j ≥ i} min(1, m·p_(j)/j)``; NaN p stay NaN and do not count in m. Equal to
``statsmodels.stats.multitest.multipletests(method="fdr_bh")`` and R ``p.adjust(method="BH")``.

Linear mixed model (:func:`mixed_model`): per feature
``y_ij = x_ijᵀβ + b_i + ε_ij``, ``b_i ~ N(0, γσ²)`` (patient random intercept), ``ε ~ N(0, σ²)``, fitted
by REML (the fixed-effects design is built once with patsy from a formula right-hand side such as
``"C(arm, Treatment('PLACEBO')) * C(visit)"``; rows with a missing outcome are dropped per feature).
Two engines give the same fit:

* ``engine="statsmodels"``: ``statsmodels`` ``MixedLM(y, X, groups=patient).fit(reml=True)`` one feature
  at a time (~0.2–0.5 s per feature: hours for 10,000 features);
* ``engine="vectorised"`` (default): the same REML criterion, profiled in closed form and optimised over
  all features at once. With ``V_i = σ²(I + γ11ᵀ)`` for patient i (n_i rows), ``c_i = γ/(1 + γn_i)``,
  ``s_i = X_iᵀ1``, ``t_i = 1ᵀy_i``: ``A(γ) = Σ X_iᵀX_i − c_i s_i s_iᵀ``, ``b(γ) = Σ X_iᵀy_i − c_i s_i t_i``,
  ``β̂ = A⁻¹b``, ``r(γ) = Σ y_iᵀy_i − c_i t_i² − bᵀβ̂``, and
  ``−2ℓ_REML(γ) = (N − p)·log r(γ) + Σ log(1 + γn_i) + log|A(γ)|`` (+ const), with ``σ̂² = r/(N − p)``.
  ``γ ≥ 0`` is found by a grid over ``log γ`` (and γ = 0) refined by golden-section search;
  ``Cov(β̂) = σ̂²A(γ̂)⁻¹`` (the GLS covariance that R ``nlme``/``lme4`` report). Estimates equal
  statsmodels' to optimiser tolerance; statsmodels' SEs come from the inverse of its full observed
  Hessian (with β–variance cross terms) and can differ from σ̂²A⁻¹ in the 3rd–4th digit (tested).

Reported per fixed-effect term: estimate, SE, Wald z and two-sided normal p (as statsmodels); optional
joint Wald χ² tests over groups of terms (e.g. all arm × visit interaction terms,
``χ² = β̂ᵀ V̂⁻¹ β̂`` on their covariance block, df = number of terms); BH q per term across features.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats_mixed import random_intercept_reml as _ri_reml
from analysis.stats_mixed import statsmodels_random_intercept as _statsmodels_fits


def bh_qvalues(p: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN-aware; see module docstring)."""
    p = np.asarray(p, dtype="float64")
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return out
    values = p[finite]
    order = np.argsort(values, kind="stable")
    ranked = values[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    out[finite] = q
    return out


def fold_change(
    X: np.ndarray, test: np.ndarray, reference: np.ndarray, *, log_base: float | None = None
) -> pd.DataFrame:
    """Per-feature group means, FC and log2 FC of ``test`` vs ``reference`` rows (boolean masks)."""
    X = np.asarray(X, dtype="float64")
    a, b = X[np.asarray(test, dtype=bool)], X[np.asarray(reference, dtype=bool)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_a, mean_b = np.nanmean(a, axis=0), np.nanmean(b, axis=0)
        if log_base is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                fc = mean_a / mean_b
                log2fc = np.log2(fc)
        else:
            log2fc = (mean_a - mean_b) * np.log2(log_base)
            fc = np.exp2(log2fc)
    return pd.DataFrame({"mean_test": mean_a, "mean_reference": mean_b, "fc": fc, "log2fc": log2fc})


def compare_groups(
    X: np.ndarray,
    groups: Sequence[object] | np.ndarray,
    test: object,
    reference: object,
    *,
    feature_ids: Sequence[object] | None = None,
    log_base: float | None = None,
    wilcoxon_method: str = "asymptotic",
) -> pd.DataFrame:
    """Fold change, Welch t and Wilcoxon rank-sum of ``test`` vs ``reference`` for every feature, with BH q.

    ``groups`` labels each row of ``X``; rows with other labels are ignored.
    """
    X = np.asarray(X, dtype="float64")
    labels = np.asarray(pd.Series(list(groups), dtype="object"), dtype=object)
    if len(labels) != X.shape[0]:
        raise ValueError("groups must label every row of X")
    a_mask, b_mask = labels == test, labels == reference
    if a_mask.sum() < 2 or b_mask.sum() < 2:
        raise ValueError(f"need at least 2 rows per group (found {int(a_mask.sum())} and {int(b_mask.sum())})")
    a, b = X[a_mask], X[b_mask]
    out = fold_change(X, a_mask, b_mask, log_base=log_base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = stats.ttest_ind(a, b, axis=0, equal_var=False)
        rank = stats.mannwhitneyu(a, b, axis=0, alternative="two-sided", use_continuity=True, method=wilcoxon_method)
    out.insert(0, "n_reference", int(b_mask.sum()))
    out.insert(0, "n_test", int(a_mask.sum()))
    out.insert(0, "feature", list(feature_ids) if feature_ids is not None else np.arange(X.shape[1]))
    out["welch_t"] = np.asarray(welch.statistic, dtype="float64")
    out["welch_df"] = np.asarray(welch.df, dtype="float64")
    out["welch_p"] = np.asarray(welch.pvalue, dtype="float64")
    out["welch_q"] = bh_qvalues(out["welch_p"].to_numpy())
    out["wilcoxon_u"] = np.asarray(rank.statistic, dtype="float64")
    out["wilcoxon_p"] = np.asarray(rank.pvalue, dtype="float64")
    out["wilcoxon_q"] = bh_qvalues(out["wilcoxon_p"].to_numpy())
    out["test"], out["reference"] = str(test), str(reference)
    return out


def compare_by_stratum(
    X: np.ndarray,
    design: pd.DataFrame,
    group: str,
    test: object,
    reference: object,
    stratum: str,
    **options: object,
) -> pd.DataFrame:
    """:func:`compare_groups` within each level of ``stratum`` (e.g. arm within each visit); q per stratum."""
    parts = []
    for level in pd.unique(design[stratum].dropna()):
        rows = (design[stratum] == level).to_numpy()
        part = compare_groups(X[rows], design[group].to_numpy()[rows], test, reference, **options)  # type: ignore[arg-type]
        part.insert(1, stratum, level)
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def mixed_model(
    X: np.ndarray,
    design: pd.DataFrame,
    formula: str,
    *,
    patient: str = "patient",
    feature_ids: Sequence[object] | None = None,
    joint: Mapping[str, str] | None = None,
    reml: bool = True,
    engine: str = "vectorised",
) -> pd.DataFrame:
    """Per-feature linear mixed model with a patient random intercept (see module docstring).

    ``formula`` is the fixed-effects right-hand side (patsy), evaluated once on ``design`` (one row per
    row of ``X``). ``joint`` maps a test name to a regex over term names; every term matching it is
    tested jointly (Wald χ²). Returns one row per (feature, term) with ``estimate, se, z, p, q`` (q:
    BH across features within the term), ``converged``, and for joint tests ``chi2, df``. Also
    ``group_var`` (σ_b²) and ``resid_var`` (σ²) per feature.
    """
    import patsy

    X = np.asarray(X, dtype="float64")
    if len(design) != X.shape[0]:
        raise ValueError("design must have one row per row of X")
    if engine not in ("vectorised", "statsmodels"):
        raise ValueError("engine must be 'vectorised' or 'statsmodels'")
    exog_frame = patsy.dmatrix(formula, design, return_type="dataframe", NA_action="raise")
    exog = exog_frame.to_numpy(dtype="float64")
    terms = list(exog_frame.columns)
    groups = design[patient].astype("str").to_numpy()
    ids = list(feature_ids) if feature_ids is not None else list(range(X.shape[1]))
    if engine == "vectorised":
        fit = _ri_reml(X, exog, groups, reml=reml)
    else:
        fit = _statsmodels_fits(X, exog, groups, reml=reml)
    beta, cov, converged = fit["beta"], fit["cov"], fit["converged"]
    n_feat, k = beta.shape
    se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / se
    p = 2.0 * stats.norm.sf(np.abs(z))
    frames = [
        pd.DataFrame(
            {
                "feature": np.repeat(np.asarray(ids, dtype=object), k),
                "term": np.tile(np.asarray(terms, dtype=object), n_feat),
                "estimate": beta.ravel(),
                "se": se.ravel(),
                "z": z.ravel(),
                "p": p.ravel(),
                "converged": np.repeat(converged, k),
                "group_var": np.repeat(fit["group_var"], k),
                "resid_var": np.repeat(fit["resid_var"], k),
            }
        )
    ]
    for name, rx in (joint or {}).items():
        index = [i for i, t in enumerate(terms) if re.search(rx, t)]
        chi2 = np.full(n_feat, np.nan)
        if index:
            b = beta[:, index]
            block = cov[:, index][:, :, index]
            ok = np.isfinite(b).all(axis=1) & np.isfinite(block).all(axis=(1, 2))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if ok.any():
                    sol = np.linalg.solve(block[ok], b[ok][..., None])[..., 0]
                    chi2[ok] = np.einsum("fi,fi->f", b[ok], sol)
        frames.append(
            pd.DataFrame(
                {
                    "feature": np.asarray(ids, dtype=object),
                    "term": name,
                    "chi2": chi2,
                    "df": len(index),
                    "p": stats.chi2.sf(chi2, len(index)) if index else np.nan,
                    "converged": converged,
                    "group_var": fit["group_var"],
                    "resid_var": fit["resid_var"],
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["q"] = out.groupby("term", sort=False)["p"].transform(
        lambda s: pd.Series(bh_qvalues(s.to_numpy()), index=s.index)
    )
    return out


def attach_annotation(results: pd.DataFrame, annotation: pd.DataFrame, *, feature: str = "feature") -> pd.DataFrame:
    """Add ``ion_mode, feature_id, name, kegg_ids, hmdb_ids, evidence`` to per-feature results.

    ``results[feature]`` holds feature keys ``"<ION_MODE>:<feature_id>"``
    (:attr:`MetaboliteTable.feature_keys`); ``annotation`` is :attr:`Annotation.features`.
    """
    keys = annotation["ion_mode"].astype("str") + ":" + annotation["feature_id"].astype("str")
    cols = [c for c in ("ion_mode", "feature_id", "name", "kegg_ids", "hmdb_ids", "evidence") if c in annotation]
    lookup = annotation[cols].set_axis(pd.Index(keys, name=feature), axis=0)
    joined = lookup.reindex(results[feature].astype("str")).reset_index(drop=True)
    return pd.concat([results.reset_index(drop=True), joined], axis=1)
