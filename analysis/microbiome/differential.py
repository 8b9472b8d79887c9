"""Differential abundance of taxa between groups: prevalence/abundance filter, CLR + Wilcoxon, CLR + linear
mixed model (patient random intercept) and ANCOM-BC (scikit-bio 0.7.4 ``skbio.stats.composition.ancombc``).

All methods take a samples x taxa count matrix (sparse or dense; usually :func:`analysis.microbiome.taxa.collapse`
output), the taxon labels and sample metadata (a DataFrame indexed by sample id, in the same order as the
matrix rows or re-indexable to ``sample_ids``). Each returns one row per taxon (and term/contrast) with an
effect size, a test statistic, a p-value and a BH q-value, plus prevalence and mean relative abundance.

Effect sizes are on the natural-log scale of the CLR (or ANCOM-BC's bias-corrected log fold change):

* ``clr_wilcoxon``: ``effect`` = mean CLR(group) - mean CLR(reference); Wilcoxon rank-sum (Mann–Whitney U,
  two-sided) p; BH over taxa. Compositionally aware through the CLR (a log-ratio to the sample's geometric
  mean), which is robust when only a minority of taxa change.
* ``clr_lmm``: linear mixed model of the CLR on the fixed-effect formula with a random intercept per patient
  (repeated visits), REML, fitted for all taxa at once (:mod:`analysis.stats_mixed`; equal to statsmodels
  ``MixedLM`` per taxon, with its standard errors); Wald z p per coefficient; BH over taxa within each
  coefficient. With ``"arm * C(visit)"`` the ``arm:visit`` interactions are the difference between arms in change
  from baseline.
* ``ancombc``: skbio ANCOM-BC on ``counts + 1`` (the R package's ``pseudo=1``), BH-adjusted.

The CLR uses a pseudocount (default 0.5) added to the counts of the *filtered* taxa; features removed by the
filter are not part of the geometric mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from analysis.microbiome.beta import clr
from analysis.microbiome.group_tests import bh

__all__ = [
    "DEFAULT_CLR_PSEUDOCOUNT",
    "ancombc",
    "by_visit",
    "clr_lmm",
    "clr_wilcoxon",
    "differential_abundance",
    "prevalence_filter",
]

DEFAULT_CLR_PSEUDOCOUNT = 0.5


def _dense(counts: Any) -> np.ndarray:
    return np.asarray(counts.toarray() if sp.issparse(counts) else counts, dtype=np.float64)


def _summary(x: np.ndarray) -> pd.DataFrame:
    totals = x.sum(axis=1, keepdims=True)
    rel = np.divide(x, totals, out=np.zeros_like(x), where=totals > 0)
    return pd.DataFrame({"prevalence": (x > 0).mean(axis=0), "mean_rel_abundance": rel.mean(axis=0)})


def prevalence_filter(
    counts: Any,
    *,
    min_prevalence: float = 0.1,
    min_mean_abundance: float = 0.0,
    min_count: float = 1.0,
    groups: Sequence[Any] | None = None,
) -> np.ndarray:
    """Boolean mask of taxa to keep.

    A taxon is kept when its prevalence (share of samples with at least ``min_count`` reads) is at least
    ``min_prevalence`` and its mean relative abundance is at least ``min_mean_abundance``. With ``groups`` the
    prevalence rule only needs to hold in one group (a taxon present in one arm only is kept).
    """
    x = _dense(counts)
    totals = x.sum(axis=1, keepdims=True)
    rel = np.divide(x, totals, out=np.zeros_like(x), where=totals > 0)
    present = x >= min_count
    if groups is None:
        prev_ok = present.mean(axis=0) >= min_prevalence
    else:
        g = np.asarray(groups, dtype=object)
        prev_ok = np.zeros(x.shape[1], dtype=bool)
        for level in pd.unique(g[~pd.isna(g)]):
            prev_ok |= present[g == level].mean(axis=0) >= min_prevalence
    return prev_ok & (rel.mean(axis=0) >= min_mean_abundance)


def _prepare(
    counts: Any, taxa: Sequence[str], meta: pd.DataFrame, sample_ids: Sequence[str] | None
) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    x = _dense(counts)
    taxa = [str(t) for t in taxa]
    if x.shape[1] != len(taxa):
        raise ValueError(f"{len(taxa)} taxon labels for {x.shape[1]} columns")
    if sample_ids is not None:
        meta = meta.set_axis(meta.index.astype(str)).reindex([str(s) for s in sample_ids])
    elif len(meta) != x.shape[0]:
        raise ValueError("meta must have one row per sample (or pass sample_ids)")
    return x, taxa, meta


def _levels(values: pd.Series, reference: Any | None) -> tuple[Any, list[Any]]:
    levels = sorted(pd.unique(values.dropna()), key=str)
    if len(levels) < 2:
        raise ValueError(f"{values.name!r} needs at least two levels, found {levels}")
    ref = levels[0] if reference is None else reference
    if ref not in levels:
        raise ValueError(f"reference {ref!r} is not a level of {values.name!r} ({levels})")
    return ref, [lv for lv in levels if lv != ref]


def clr_wilcoxon(
    counts: Any,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    group: str,
    reference: Any | None = None,
    sample_ids: Sequence[str] | None = None,
    pseudocount: float = DEFAULT_CLR_PSEUDOCOUNT,
) -> pd.DataFrame:
    """CLR + Wilcoxon rank-sum per taxon, each non-reference level of ``group`` against ``reference``.

    Columns: ``taxon, contrast, effect`` (mean CLR difference, natural log), ``median_difference, statistic``
    (U), ``p_value, q_value, n_ref, n_other, prevalence, mean_rel_abundance, method``; sorted by p within
    contrast.
    """
    x, taxa, meta = _prepare(counts, taxa, meta, sample_ids)
    g = meta[group]
    ok = g.notna().to_numpy()
    x, g = x[ok], g[ok]
    ref, others = _levels(g, reference)
    z = clr(x, pseudocount)
    info = _summary(x)
    frames = []
    for level in others:
        a, b = z[(g == ref).to_numpy()], z[(g == level).to_numpy()]
        u, p = stats.mannwhitneyu(b, a, alternative="two-sided", axis=0)
        frame = pd.DataFrame(
            {
                "taxon": taxa,
                "contrast": f"{group}: {level} vs {ref}",
                "effect": b.mean(axis=0) - a.mean(axis=0),
                "median_difference": np.median(b, axis=0) - np.median(a, axis=0),
                "statistic": u,
                "p_value": p,
                "n_ref": a.shape[0],
                "n_other": b.shape[0],
            }
        )
        frame["q_value"] = bh(frame["p_value"].to_numpy())
        frames.append(pd.concat([frame, info], axis=1))
    out = pd.concat(frames, ignore_index=True)
    out["method"] = "clr_wilcoxon"
    return out.sort_values(["contrast", "p_value", "taxon"], kind="stable").reset_index(drop=True)


def clr_lmm(
    counts: Any,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    formula: str,
    patient: str,
    terms: Sequence[str] | None = None,
    sample_ids: Sequence[str] | None = None,
    pseudocount: float = DEFAULT_CLR_PSEUDOCOUNT,
    engine: Literal["vectorised", "statsmodels"] = "vectorised",
) -> pd.DataFrame:
    """CLR + linear mixed model ``clr ~ formula + (1 | patient)`` for every taxon (REML).

    ``formula`` is the right-hand side (e.g. ``"arm"``, ``"arm * C(visit)"``, ``"response + C(visit)"``), built
    once with patsy; rows missing the patient or a formula variable are dropped. ``engine="vectorised"`` (default)
    fits all taxa at once with :func:`analysis.stats_mixed.random_intercept_reml` and statsmodels' covariance
    (``covariance="observed"``: the inverse observed Hessian in (β, γ)), so estimates, SEs and p-values equal
    statsmodels ``MixedLM(...).fit(reml=True)`` to its optimiser tolerance (tested to 1e-5);
    ``engine="statsmodels"`` fits statsmodels ``MixedLM`` per taxon (BFGS, then Powell and Nelder–Mead when an
    optimiser fails; the reference).

    ``terms`` selects coefficients to report (default: all but the intercept). Columns: ``taxon, term, effect``
    (coefficient, CLR units), ``se, statistic`` (Wald z), ``p_value`` (two-sided normal), ``q_value`` (BH over taxa
    within a term), ``converged, optimizer, error, group_var`` (patient variance), ``resid_var, n, prevalence,
    mean_rel_abundance, method``. A taxon whose model cannot be fitted gets NaN and an ``error`` message.
    """
    import patsy

    from analysis.stats_mixed import random_intercept_reml

    x, taxa, meta = _prepare(counts, taxa, meta, sample_ids)
    data = meta.reset_index(drop=True)
    ok = data[patient].notna().to_numpy()
    design = patsy.dmatrix(formula, data[ok], return_type="dataframe", NA_action="drop")
    rows = np.flatnonzero(ok)[design.index.to_numpy()]
    z = clr(x, pseudocount)[rows]
    groups = data[patient].to_numpy()[rows].astype(str)
    exog = design.to_numpy(dtype=np.float64)
    names = list(design.columns)
    report = [t for t in names if t != "Intercept"] if terms is None else list(terms)
    unknown = sorted(set(report) - set(names))
    if unknown:
        raise ValueError(f"terms {unknown} are not in the design {names}")
    idx = [names.index(t) for t in report]
    info = _summary(x)
    if engine == "vectorised":
        fit = random_intercept_reml(z, exog, groups, reml=True, covariance="observed")
        optimizer = np.full(z.shape[1], "vectorised REML", dtype=object)
        errors = np.where(fit["converged"], None, "singular design or no residual variance").astype(object)
    elif engine == "statsmodels":
        fit, optimizer, errors = _statsmodels_per_taxon(z, exog, groups, names)
    else:
        raise ValueError(f"unknown engine {engine!r}")
    beta, cov = fit["beta"][:, idx], fit["cov"][:, idx][:, :, idx]
    se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        zstat = beta / se
    p = 2.0 * stats.norm.sf(np.abs(zstat))
    n_taxa, n_terms = beta.shape
    out = pd.DataFrame(
        {
            "taxon": np.repeat(np.asarray(taxa, dtype=object), n_terms),
            "term": np.tile(np.asarray(report, dtype=object), n_taxa),
            "effect": beta.ravel(),
            "se": se.ravel(),
            "statistic": zstat.ravel(),
            "p_value": p.ravel(),
            "converged": np.repeat(np.asarray(fit["converged"], dtype=bool), n_terms),
            "optimizer": np.repeat(optimizer, n_terms),
            "error": np.repeat(np.asarray(errors, dtype=object), n_terms),
            "group_var": np.repeat(fit["group_var"], n_terms),
            "resid_var": np.repeat(fit["resid_var"], n_terms),
            "n": len(rows),
        }
    )
    out["q_value"] = np.nan
    for term in report:
        sel = (out["term"] == term).to_numpy()
        out.loc[sel, "q_value"] = bh(out.loc[sel, "p_value"].to_numpy(float))
    out = out.merge(info.assign(taxon=taxa), on="taxon", how="left")
    out["method"] = "clr_lmm"
    return out.sort_values(["term", "p_value", "taxon"], kind="stable", na_position="last").reset_index(drop=True)


def _statsmodels_per_taxon(
    z: np.ndarray, exog: np.ndarray, groups: np.ndarray, names: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """statsmodels MixedLM per column of ``z`` (REML), with :func:`_fit_mixedlm`'s optimiser fall-backs."""
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    n_taxa, k = z.shape[1], exog.shape[1]
    fit = {
        "beta": np.full((n_taxa, k), np.nan),
        "cov": np.full((n_taxa, k, k), np.nan),
        "group_var": np.full(n_taxa, np.nan),
        "resid_var": np.full(n_taxa, np.nan),
        "converged": np.zeros(n_taxa, dtype=bool),
    }
    optimizer = np.full(n_taxa, None, dtype=object)
    errors = np.full(n_taxa, None, dtype=object)
    for j in range(n_taxa):
        try:
            res, converged, name = _fit_mixedlm(lambda j=j: MixedLM(z[:, j], exog, groups=groups), ConvergenceWarning)
        except Exception as exc:  # singular designs, a taxon constant in every sample, ...
            errors[j] = f"{type(exc).__name__}: {exc}"
            continue
        fit["beta"][j] = np.asarray(res.fe_params, dtype=np.float64)
        fit["cov"][j] = np.asarray(res.cov_params(), dtype=np.float64)[:k, :k]
        fit["group_var"][j] = float(np.asarray(res.cov_re).ravel()[0])
        fit["resid_var"][j] = float(res.scale)
        fit["converged"][j] = converged
        optimizer[j] = name
    return fit, optimizer, errors


_OPTIMIZERS = ("bfgs", "powell", "nm")


def _fit_mixedlm(make_model: Any, conv_warning: type) -> tuple[Any, bool, str]:
    """Fit with BFGS, falling back to Powell and Nelder–Mead when an optimizer fails or does not converge
    (L-BFGS and BFGS can step into a singular region when the random-intercept variance is near 0)."""
    last: Exception | None = None
    fallback: tuple[Any, bool, str] | None = None
    for name in _OPTIMIZERS:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", conv_warning)
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", UserWarning)
                fit = make_model().fit(reml=True, method=[name])
        except (np.linalg.LinAlgError, ValueError) as exc:
            last = exc
            continue
        converged = bool(fit.converged) and not any(issubclass(w.category, conv_warning) for w in caught)
        if converged and np.all(np.isfinite(fit.bse_fe)):
            return fit, True, name
        fallback = fallback or (fit, False, name)
    if fallback is not None:
        return fallback
    raise last if last is not None else RuntimeError("MixedLM failed")


def ancombc(
    counts: Any,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    formula: str,
    sample_ids: Sequence[str] | None = None,
    pseudocount: float = 1.0,
) -> pd.DataFrame:
    """ANCOM-BC (scikit-bio 0.7.4) on ``counts + pseudocount``; BH q-values per covariate.

    Columns: ``taxon, term, effect`` (bias-corrected log fold change, natural log), ``se, statistic`` (W),
    ``p_value, q_value, prevalence, mean_rel_abundance, method``. The intercept rows are dropped.
    """
    from skbio.stats.composition import ancombc as skbio_ancombc

    x, taxa, meta = _prepare(counts, taxa, meta, sample_ids)
    ids = [f"s{i}" for i in range(x.shape[0])]
    table = pd.DataFrame(x + pseudocount, index=ids, columns=taxa)
    md = meta.reset_index(drop=True).set_axis(ids)
    res = skbio_ancombc(table, md, formula=formula, p_adjust="bh").result.reset_index()
    res = res[res["Covariate"] != "Intercept"]
    out = pd.DataFrame(
        {
            "taxon": res["FeatureID"].astype(str).to_numpy(),
            "term": res["Covariate"].to_numpy(),
            "effect": res["Log(FC)"].to_numpy(float),
            "se": res["SE"].to_numpy(float),
            "statistic": res["W"].to_numpy(float),
            "p_value": res["pvalue"].to_numpy(float),
            "q_value": res["qvalue"].to_numpy(float),
        }
    )
    out = out.merge(_summary(x).assign(taxon=taxa), on="taxon", how="left")
    out["method"] = "ancombc"
    return out.sort_values(["term", "p_value", "taxon"], kind="stable").reset_index(drop=True)


def differential_abundance(
    counts: Any,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    group: str,
    method: Literal["clr_wilcoxon", "clr_lmm", "ancombc"] = "clr_wilcoxon",
    reference: Any | None = None,
    patient: str | None = None,
    covariates: Sequence[str] = (),
    sample_ids: Sequence[str] | None = None,
    min_prevalence: float = 0.1,
    min_mean_abundance: float = 0.0,
    pseudocount: float | None = None,
) -> pd.DataFrame:
    """Filter taxa, then test ``group`` (levels against ``reference``, default the first level).

    ``clr_lmm`` needs ``patient`` (random intercept) and may take ``covariates``; ``ancombc`` takes
    ``covariates`` as adjustment terms. The output has one row per taxon and contrast (``term`` for the
    model-based methods) and a ``contrast`` column naming what was compared.
    """
    x, taxa, meta = _prepare(counts, taxa, meta, sample_ids)
    ok = meta[group].notna().to_numpy()
    for c in covariates:
        if c in meta.columns:  # a covariate may also be a formula term such as "C(visit)"
            ok &= meta[c].notna().to_numpy()
    x, meta = x[ok], meta[ok]
    keep = prevalence_filter(
        x, min_prevalence=min_prevalence, min_mean_abundance=min_mean_abundance, groups=meta[group].to_numpy()
    )
    x = x[:, keep]
    taxa = [t for t, k in zip(taxa, keep, strict=True) if k]
    ref, _ = _levels(meta[group], reference)
    if method == "clr_wilcoxon":
        out = clr_wilcoxon(
            x,
            taxa,
            meta,
            group=group,
            reference=ref,
            pseudocount=DEFAULT_CLR_PSEUDOCOUNT if pseudocount is None else pseudocount,
        )
    else:
        md = meta.copy()
        levels = [ref] + [lv for lv in sorted(pd.unique(md[group].dropna()), key=str) if lv != ref]
        md[group] = pd.Categorical(md[group], categories=levels)
        formula = " + ".join([group, *covariates])
        if method == "clr_lmm":
            if patient is None:
                raise ValueError("clr_lmm needs the patient column for the random intercept")
            out = clr_lmm(
                x,
                taxa,
                md,
                formula=formula,
                patient=patient,
                pseudocount=DEFAULT_CLR_PSEUDOCOUNT if pseudocount is None else pseudocount,
            )
        elif method == "ancombc":
            out = ancombc(x, taxa, md, formula=formula, pseudocount=1.0 if pseudocount is None else pseudocount)
        else:
            raise ValueError(f"unknown method {method!r}")
        out = out[out["term"].astype(str).str.startswith(f"{group}[")].copy()
        level = out["term"].map(lambda t: str(t).split("T.", 1)[-1].rstrip("]"))
        out["contrast"] = level.map(lambda lv: f"{group}: {lv} vs {ref}")
        sizes = meta[group].astype(str).value_counts()
        out["n_ref"] = int(sizes.get(str(ref), 0))
        out["n_other"] = level.map(lambda lv: int(sizes.get(lv, 0))).astype(np.int64)
    out.attrs.update(n_samples=int(x.shape[0]), n_taxa_tested=len(taxa), n_taxa_filtered=int((~keep).sum()))
    return out.reset_index(drop=True)


def by_visit(
    counts: Any,
    taxa: Sequence[str],
    meta: pd.DataFrame,
    *,
    group: str,
    visit: str,
    method: Literal["clr_wilcoxon", "ancombc"] = "clr_wilcoxon",
    reference: Any | None = None,
    sample_ids: Sequence[str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """``group`` comparison separately at every visit (e.g. arm at each visit; responders vs non-responders at
    baseline). One sample per patient per visit, so no random effect is needed. q-values are BH within each
    visit (and contrast); the ``visit`` column says which. A visit at which ``group`` has fewer than two levels
    (e.g. no responder sampled yet at an early cut-off) has nothing to compare and is left out."""
    x, taxa, meta = _prepare(counts, taxa, meta, sample_ids)
    frames = []
    for v in sorted(pd.unique(meta[visit].dropna()), key=str):
        sel = (meta[visit] == v).to_numpy()
        if meta.loc[sel, group].nunique(dropna=True) < 2:
            continue
        res = differential_abundance(x[sel], taxa, meta[sel], group=group, method=method, reference=reference, **kwargs)
        res.insert(0, visit, v)
        frames.append(res)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
