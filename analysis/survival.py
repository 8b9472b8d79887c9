"""Survival statistics matching R ``survival``: Kaplan-Meier with Greenwood bands, R's median and Brookmeyer-Crowley
median CI, landmark rates, log-rank (unstratified and stratified) and Cox hazard ratios.

Spec: ``clinical-endpoints.md`` §8.1-8.2. Sources: R ``survival`` 3.5 (``survfit_confint``, ``survmean`` as used by
``print.survfit``/``summary.survfit``, ``survdiff``, ``coxph``); Brookmeyer & Crowley, Biometrics 1982;38:29;
lifelines ``CoxPHFitter`` (Efron ties) for the Cox model.

Kaplan-Meier (at every distinct observed time t_j, events d_j, at risk n_j)
---------------------------------------------------------------------------
``S(t) = Π_{t_j ≤ t} (1 − d_j/n_j)``; Greenwood on the log scale ``σ²(t) = Σ_{t_j ≤ t} d_j / (n_j (n_j − d_j))``
(R's ``std.err``; infinite when the last subjects all fail). Pointwise bands (z = Φ⁻¹(1 − α/2)), exactly as
``survival:::survfit_confint``:

* ``log`` (R default): ``exp(log S ± z·σ)``, upper capped at 1, NA where S = 0;
* ``log-log`` (SAS, lifelines): ``exp(−exp(log(−log S) ∓ z·σ/log S))``, NA where S ∈ {0, 1};
* ``plain`` (tern): ``S ± z·σ·S`` clipped to [0, 1].

Median and its CI (R ``survmean``/``print.survfit``): for a curve y (S, lower or upper band) on the time grid, take
the points with y < 0.5 + tol (tol = sqrt(machine eps), NA skipped); the quantile is the first such time, except when
that y equals 0.5 (within tol) and the curve drops lower later: then the midpoint between that time and the time of the
next drop (uncensored 1..6 -> 3.5). Median = rule on S; Brookmeyer-Crowley CI = {t : lower(t) ≤ 0.5 ≤ upper(t)} =
(rule on the lower band, rule on the upper band); NA (NaN) when never reached.

Landmark rate at m months (config ``landmark_months``): ``S(m · 30.4375 days)`` with its band - the estimate at the
last observed time ≤ the landmark (1 before the first time); NaN when the landmark is beyond the last observed time
(R ``summary.survfit(times=)`` without ``extend``). With integer days, 6 months = S(182), 12 months = S(365).

Log-rank (R ``survdiff``), stratified: within each stratum and distinct event time,
``O − E = Σ (d_g − d·n_g/n)``, ``V_gh = Σ d (n−d)/(n−1) · (n_g/n)(δ_gh − n_h/n)``; sums over strata;
``χ² = (O−E)ᵀ V⁻ (O−E)`` with k−1 df (two groups: ``(O−E)²/V``). lifelines has no stratified log-rank.

Cox PH: lifelines ``CoxPHFitter`` (Efron ties, as R ``coxph``), a 0/1 indicator of the non-reference group (HR =
group/reference), optional ``strata``; HR CI = Wald ``exp(β ± z·SE)``; tight convergence options so that the HR
matches R to < 1e-6 relative.

Blinded runs: :func:`survival_summary` with ``group_col=None`` computes pooled KM statistics and no comparison.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.endpoint_config import DEFAULT_CONFIG, CiTransform, EndpointConfig

_TOL = float(np.sqrt(np.finfo(float).eps))


# ------------------------------------------------------------------------------------------------ Kaplan-Meier


def _z(conf_level: float) -> float:
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def _bands(surv: np.ndarray, se: np.ndarray, conf_type: CiTransform, conf_level: float) -> tuple[np.ndarray, ...]:
    z = _z(conf_level)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if conf_type == "log":
            xx = np.where(surv == 0, np.nan, surv)
            lower = np.exp(np.log(xx) - z * se)
            upper = np.minimum(np.exp(np.log(xx) + z * se), 1.0)
        elif conf_type == "log-log":
            xx = np.where((surv == 0) | (surv == 1), np.nan, surv)
            se2 = z * se / np.log(xx)
            lower = np.exp(-np.exp(np.log(-np.log(xx)) - se2))
            upper = np.exp(-np.exp(np.log(-np.log(xx)) + se2))
        elif conf_type == "plain":
            se2 = se * surv * z
            lower = np.maximum(surv - se2, 0.0)
            upper = np.minimum(surv + se2, 1.0)
        else:
            raise ValueError(f"unknown conf_type {conf_type!r}")
    return lower, upper


def kaplan_meier(
    time: Sequence[float] | pd.Series | np.ndarray,
    event: Sequence[int] | pd.Series | np.ndarray,
    conf_type: CiTransform = "log",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Kaplan-Meier table at every distinct observed time (R ``survfit`` grid).

    Columns ``time, n_risk, n_event, n_censor, surv, std_err`` (σ of log S, R's ``std.err``), ``lower, upper``.
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    if t.shape != e.shape:
        raise ValueError("time and event differ in length")
    ok = ~np.isnan(t) & ~np.isnan(e)
    t, e = t[ok], e[ok]
    ut, inv = np.unique(t, return_inverse=True)
    n_obs = np.bincount(inv, minlength=ut.size).astype(float)
    d = np.bincount(inv, weights=e, minlength=ut.size)
    n_risk = n_obs[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n_risk)
        term = np.where(d > 0, d / (n_risk * (n_risk - d)), 0.0)
    se = np.sqrt(np.cumsum(term))
    lower, upper = _bands(surv, se, conf_type, conf_level)
    return pd.DataFrame(
        {
            "time": ut,
            "n_risk": n_risk.astype(int),
            "n_event": d.astype(int),
            "n_censor": (n_obs - d).astype(int),
            "surv": surv,
            "std_err": se,
            "lower": lower,
            "upper": upper,
        }
    )


def r_quantile_rule(times: np.ndarray, y: np.ndarray, p: float = 0.5) -> float:
    """R ``survmean``'s ``minmin`` rule: first time with y < p (+tol), midpoint over a flat segment at exactly p."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(times, dtype=float)
    keep = ~np.isnan(y) & (y < p + _TOL)
    if not keep.any():
        return math.nan
    x, y = x[keep], y[keep]
    if abs(y[0] - p) < _TOL:
        lower = np.flatnonzero(y < y[0])
        if lower.size:
            return float((x[0] + x[lower[0]]) / 2.0)
    return float(x[0])


def km_median(km: pd.DataFrame, p: float = 0.5) -> tuple[float, float, float]:
    """``(median, lcl, ucl)`` from a :func:`kaplan_meier` table: R's rule on S, the lower and the upper band."""
    t = km["time"].to_numpy()
    return (
        r_quantile_rule(t, km["surv"].to_numpy(), p),
        r_quantile_rule(t, km["lower"].to_numpy(), p),
        r_quantile_rule(t, km["upper"].to_numpy(), p),
    )


def km_at(km: pd.DataFrame, at: Sequence[float], n: int | None = None) -> pd.DataFrame:
    """KM estimate and band at arbitrary times (landmarks): last grid time ≤ t; 1 before the first time; NaN after the
    last observed time. Also the number at risk at t (subjects with time ≥ t). Columns ``at, n_risk, surv, lower,
    upper``."""
    t = km["time"].to_numpy()
    at_arr = np.asarray(list(at), dtype=float)
    idx = np.searchsorted(t, at_arr, side="right") - 1
    total = int(km["n_risk"].iloc[0]) if n is None and len(km) else (n or 0)
    surv = np.where(idx >= 0, km["surv"].to_numpy()[np.maximum(idx, 0)], 1.0)
    lower = np.where(idx >= 0, km["lower"].to_numpy()[np.maximum(idx, 0)], 1.0)
    upper = np.where(idx >= 0, km["upper"].to_numpy()[np.maximum(idx, 0)], 1.0)
    beyond = at_arr > (t[-1] if t.size else -np.inf)
    surv, lower, upper = (np.where(beyond, np.nan, v) for v in (surv, lower, upper))
    # number at risk at t = subjects whose time >= t
    nxt = np.searchsorted(t, at_arr, side="left")
    n_risk = np.where(nxt < t.size, km["n_risk"].to_numpy()[np.minimum(nxt, max(t.size - 1, 0))], 0)
    n_risk = np.where(idx < 0, total, n_risk)
    return pd.DataFrame({"at": at_arr, "n_risk": n_risk.astype(int), "surv": surv, "lower": lower, "upper": upper})


def numbers_at_risk(time: Sequence[float] | np.ndarray, at: Sequence[float]) -> np.ndarray:
    """Number of subjects with observed time ≥ each value of ``at`` (the KM plot's risk table)."""
    t = np.sort(np.asarray(time, dtype=float))
    return t.size - np.searchsorted(t, np.asarray(list(at), dtype=float), side="left")


# ------------------------------------------------------------------------------------------------ log-rank


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank test: ``chi2`` with ``df`` degrees of freedom and p-value; per group observed, expected, O−E, and
    the variance matrix (``groups`` gives the order). For two groups ``z = (O−E)/√V`` of the first group."""

    chi2: float
    df: int
    p: float
    groups: tuple[str, ...]
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    variance: np.ndarray
    stratified: bool

    @property
    def z(self) -> float:
        """Signed z of the first group (negative = fewer events than expected)."""
        return (self.observed[0] - self.expected[0]) / math.sqrt(self.variance[0, 0])


def logrank_test(
    time: Sequence[float] | np.ndarray | pd.Series,
    event: Sequence[int] | np.ndarray | pd.Series,
    group: Sequence[object] | np.ndarray | pd.Series,
    strata: Sequence[object] | np.ndarray | pd.Series | None = None,
) -> LogRankResult:
    """Log-rank test as R ``survdiff(Surv(time, event) ~ group [+ strata(strata)])`` (formulas in module docstring)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    g_codes, g_levels = pd.factorize(pd.Series(np.asarray(group)).astype("str"), sort=True)
    s_codes = (
        np.zeros(t.size, dtype=int) if strata is None else pd.factorize(pd.Series(np.asarray(strata)).astype("str"))[0]
    )
    k = len(g_levels)
    obs = np.zeros(k)
    exp_ = np.zeros(k)
    var = np.zeros((k, k))
    for s in np.unique(s_codes):
        m = s_codes == s
        ts, es, gs = t[m], e[m], g_codes[m]
        ut, inv = np.unique(ts, return_inverse=True)
        n_tg = np.zeros((ut.size, k))
        d_tg = np.zeros((ut.size, k))
        np.add.at(n_tg, (inv, gs), 1.0)
        np.add.at(d_tg, (inv, gs), es)
        risk = n_tg[::-1].cumsum(axis=0)[::-1]
        n = risk.sum(axis=1)
        d = d_tg.sum(axis=1)
        keep = d > 0
        risk, d_tg, n, d = risk[keep], d_tg[keep], n[keep], d[keep]
        frac = risk / n[:, None]
        obs += d_tg.sum(axis=0)
        exp_ += (d[:, None] * frac).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            fac = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
        var += np.diag((fac[:, None] * frac).sum(axis=0)) - np.einsum("t,tg,th->gh", fac, frac, frac)
    oe = obs - exp_
    if k < 2:
        return LogRankResult(math.nan, 0, math.nan, tuple(g_levels), tuple(obs), tuple(exp_), var, strata is not None)
    vv = var[:-1, :-1]
    chi2 = float(oe[:-1] @ np.linalg.pinv(vv) @ oe[:-1])
    df = int(np.linalg.matrix_rank(vv))
    p = float(stats.chi2.sf(chi2, df)) if df > 0 else math.nan
    return LogRankResult(chi2, df, p, tuple(map(str, g_levels)), tuple(obs), tuple(exp_), var, strata is not None)


# ------------------------------------------------------------------------------------------------ Cox


@dataclass(frozen=True)
class CoxResult:
    """Cox PH hazard ratio of ``group`` vs ``reference`` with Wald CI and p-value."""

    group: str
    reference: str
    coef: float
    se: float
    hr: float
    lcl: float
    ucl: float
    p: float
    strata: tuple[str, ...]


def cox_hr(
    data: pd.DataFrame,
    duration_col: str,
    event_col: str,
    group_col: str,
    reference: str,
    strata: Sequence[str] = (),
    conf_level: float = 0.95,
) -> CoxResult:
    """Hazard ratio (non-reference vs ``reference``) from lifelines ``CoxPHFitter`` with Efron ties (R ``coxph``
    default), optionally stratified. ``data`` must hold exactly two groups in ``group_col``."""
    from lifelines import CoxPHFitter

    groups = sorted(data[group_col].astype("str").unique())
    if reference not in groups or len(groups) != 2:
        raise ValueError(f"need two groups including the reference {reference!r}; got {groups}")
    other = next(g for g in groups if g != reference)
    df = pd.DataFrame(
        {
            "T": data[duration_col].astype(float).to_numpy(),
            "E": data[event_col].astype(int).to_numpy(),
            "X": (data[group_col].astype("str") == other).astype(float).to_numpy(),
        }
    )
    for i, c in enumerate(strata):
        df[f"_s{i}"] = data[c].astype("str").to_numpy()
    cph = CoxPHFitter()
    with warnings.catch_warnings():
        # lifelines 0.30 calls DataFrame.mean(0)/std(0) positionally, which pandas 3.1 flags for pandas 4
        warnings.filterwarnings("ignore", message=".*keyword-only.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*keyword-only.*", category=DeprecationWarning)
        cph.fit(
            df,
            duration_col="T",
            event_col="E",
            strata=[f"_s{i}" for i in range(len(strata))] or None,
            fit_options={"precision": 1e-12, "r_precision": 1e-14, "step_size": 0.95, "max_steps": 500},
        )
    coef = float(cph.params_["X"])
    se = float(cph.standard_errors_["X"])
    z = _z(conf_level)
    p = float(2 * stats.norm.sf(abs(coef / se)))
    lo, hi = math.exp(coef - z * se), math.exp(coef + z * se)
    return CoxResult(other, reference, coef, se, math.exp(coef), lo, hi, p, tuple(strata))


# ------------------------------------------------------------------------------------------------ summaries


def _landmark_days(config: EndpointConfig) -> list[float]:
    return [m * config.days_per_month for m in config.landmark_months]


def _mlabel(m: float) -> str:
    return f"{m:g}m"


def km_estimates(
    adtte: pd.DataFrame,
    group_col: str | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """KM tables for every ``PARAMCD`` (and group): ADTTE columns ``PARAMCD, AVAL, CNSR`` (event = ``CNSR == 0``).

    Returns the :func:`kaplan_meier` columns plus ``PARAMCD, group, conf_type``.
    """
    parts = []
    for (param, grp), sub in _by_param_group(adtte, group_col):
        km = kaplan_meier(sub["AVAL"], sub["CNSR"].eq(0).astype(int), config.ci_transform, config.conf_level)
        parts.append(km.assign(PARAMCD=param, group=grp, conf_type=config.ci_transform))
    cols = ["PARAMCD", "group", "time", "n_risk", "n_event", "n_censor", "surv", "std_err", "lower", "upper"]
    return pd.concat(parts, ignore_index=True)[[*cols, "conf_type"]] if parts else pd.DataFrame(columns=cols)


def _by_param_group(adtte: pd.DataFrame, group_col: str | None):
    d = adtte.assign(_group="POOLED" if group_col is None else adtte[group_col].astype("str"))
    return d.groupby(["PARAMCD", "_group"], sort=True)


def survival_summary(
    adtte: pd.DataFrame,
    group_col: str | None = None,
    reference: str | None = None,
    strata_cols: Sequence[str] = (),
    config: EndpointConfig = DEFAULT_CONFIG,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per ``PARAMCD`` and group: n, events, censored, median with CI and landmark rates; and group comparisons.

    ``group_col=None`` is the blinded mode: pooled rows only and an empty comparison table. With groups,
    ``reference`` is the control arm (default: last group in sorted order); comparisons give the unstratified and
    (with ``strata_cols``) stratified log-rank χ²/p and Cox HR with CI.

    Returns ``(summary, comparisons)``. ``summary`` columns: ``PARAMCD, group, n, events, censored, median, lcl, ucl,
    conf_type`` and for each landmark m: ``surv_<m>m, lcl_<m>m, ucl_<m>m, n_risk_<m>m`` (times in days, as AVAL).
    ``comparisons`` columns: ``PARAMCD, group, reference, stratified, strata, logrank_chi2, logrank_p, hr, hr_lcl,
    hr_ucl, hr_p``.
    """
    rows = []
    lm_days = _landmark_days(config)
    for (param, grp), sub in _by_param_group(adtte, group_col):
        ev = sub["CNSR"].eq(0).astype(int)
        km = kaplan_meier(sub["AVAL"], ev, config.ci_transform, config.conf_level)
        med, lcl, ucl = km_median(km)
        row: dict[str, object] = {
            "PARAMCD": param, "group": grp, "n": len(sub), "events": int(ev.sum()),
            "censored": int(len(sub) - ev.sum()), "median": med, "lcl": lcl, "ucl": ucl,
            "conf_type": config.ci_transform,
        }  # fmt: skip
        lm = km_at(km, lm_days, n=len(sub))
        for m, (_, r) in zip(config.landmark_months, lm.iterrows(), strict=True):
            lab = _mlabel(m)
            row |= {f"surv_{lab}": r["surv"], f"lcl_{lab}": r["lower"], f"ucl_{lab}": r["upper"]}
            row[f"n_risk_{lab}"] = int(r["n_risk"])
        rows.append(row)
    summary = pd.DataFrame(rows)
    comp_cols = [
        "PARAMCD", "group", "reference", "stratified", "strata", "logrank_chi2", "logrank_p", "hr", "hr_lcl",
        "hr_ucl", "hr_p",
    ]  # fmt: skip
    if group_col is None:
        return summary, pd.DataFrame(columns=comp_cols)
    comps = []
    for param, sub in adtte.groupby("PARAMCD", sort=True):
        groups = sorted(sub[group_col].astype("str").unique())
        if len(groups) < 2:
            continue
        ref = reference if reference is not None else groups[-1]
        for grp in [g for g in groups if g != ref]:
            two = sub[sub[group_col].astype("str").isin([grp, ref])]
            ev = two["CNSR"].eq(0).astype(int)
            variants: list[tuple[bool, Sequence[str]]] = [(False, ())]
            if strata_cols:
                variants.append((True, tuple(strata_cols)))
            for stratified, st in variants:
                strata = None
                if stratified:
                    strata = two[list(st)].astype("str").agg("|".join, axis=1)
                lr = logrank_test(two["AVAL"], ev, two[group_col], strata)
                events_per_group = ev.groupby(two[group_col].astype("str")).sum()
                try:
                    if (events_per_group == 0).any():
                        raise ValueError("a group without events: the hazard ratio is not estimable")
                    cox = cox_hr(two.assign(_E=ev), "AVAL", "_E", group_col, ref, st, config.conf_level)
                    hr = (cox.hr, cox.lcl, cox.ucl, cox.p)
                except Exception:  # no events in a group or no convergence: report the log-rank only
                    hr = (math.nan,) * 4
                comps.append(
                    {
                        "PARAMCD": param,
                        "group": grp,
                        "reference": ref,
                        "stratified": stratified,
                        "strata": ",".join(st),
                        "logrank_chi2": lr.chi2,
                        "logrank_p": lr.p,
                        "hr": hr[0],
                        "hr_lcl": hr[1],
                        "hr_ucl": hr[2],
                        "hr_p": hr[3],
                    }
                )
    return summary, pd.DataFrame(comps, columns=comp_cols)
