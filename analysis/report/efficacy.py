"""Efficacy figures of the trial report: Kaplan-Meier curves (PFS, OS, DOR), PFS subgroup forest plot, waterfall,
swimmer and spider plots.

Every number drawn comes from the warehouse's ``analysis`` tables written by the endpoint assets, so the figures
agree with the tables analysts query:

* KM curves and 95 % bands are the stored ``analysis.km_estimates`` (R ``survfit`` grid, pointwise band with the
  configured transform, ``log`` by default: ``exp(log S ± z·σ)``, Greenwood σ). An independent product-limit fit
  (:mod:`analysis.report.coxph`, checked against lifelines' ``KaplanMeierFitter`` in the tests) is refitted on
  ``analysis.adtte`` as a check of the stored point estimates (a stale or inconsistent table
  stops the report instead of drawing a curve that differs from the numbers in the tables). Medians with
  Brookmeyer-Crowley 95 % CIs come from ``analysis.survival_summary``; in unblinded runs the stratified Cox HR (Efron
  ties, Wald CI) and the stratified log-rank p come from ``analysis.survival_comparisons``. Numbers at risk at time t
  = patients with ``AVAL ≥ t`` (:func:`analysis.survival.numbers_at_risk`); censoring marks at every censored time.
* Subgroup forest (PFS, ITT). A treatment HR needs the arms, so the figure differs by blinding status:

  - blinded: a *prognostic* forest, pooled over arms: the HR of each level of a baseline factor vs its reference
    level from a univariable Cox model ``h(t) = h0(t)·exp(Σ β_l·1[factor = l])``; it says nothing about treatment.
  - unblinded: the treatment HR (capsules vs placebo) within each level, unstratified Cox ``h0(t)·exp(β·1[arm])``
    fitted in that level, and the interaction p of the factor from the likelihood-ratio test of
    ``arm + factor + arm×factor`` vs ``arm + factor`` (χ² with levels−1 df).

  Both use a Cox fit with Efron ties (R ``coxph`` default; :func:`analysis.report.coxph.cox_efron`, equal to
  lifelines' ``CoxPHFitter`` and to R to < 1e-6) and Wald CIs ``exp(β ± z·SE)``; a level
  whose compared groups lack an event is shown as not estimable (NE). Factors (``marts.adsl``): ALBI grade, BCLC
  stage, aetiology, AFP < 400 vs ≥ 400 ng/mL, lenvatinib weight band.
* Waterfall: best (minimum) percentage change of the sum of target diameters from baseline over post-baseline
  assessments with every target measured (``analysis.recist_timepoint_responses``, derived RECIST 1.1), one bar per
  patient with measurable disease and such an assessment, coloured by the confirmed derived RECIST 1.1 BOR; lines at
  +20 % (PD threshold, which also needs +5 mm over the nadir) and −30 % (PR).
* Swimmer: time on treatment (first to last dose, ``marts.adsl``) per treated patient, with the first confirmed
  response, the first derived RECIST 1.1 PD and death; an arrow marks treatment ongoing at the data cut-off.
* Spider: the same percentage change over weeks since randomisation, one line per patient.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory
from scipy import stats

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.report.coxph import cox_efron, km_product_limit
from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.style import (
    BOR_COLOURS,
    BOR_ORDER,
    OKABE_ITO,
    group_colour,
    group_label,
    new_figure,
    report_style,
)
from analysis.survival import numbers_at_risk

SECTION = "efficacy"
POOLED = "POOLED"
REFERENCE_ARM = "PLACEBO"
ITT_POPULATION = "ITT (all randomised patients)"
#: Time-to-event parameters drawn, with their title and analysis population.
KM_PARAMS: dict[str, tuple[str, str]] = {
    "PFS": ("Progression-free survival (RECIST 1.1, derived)", ITT_POPULATION),
    "OS": ("Overall survival", ITT_POPULATION),
    "DOR": ("Duration of response (RECIST 1.1, derived)", "patients with a confirmed response (CR/PR)"),
}
#: Baseline subgroup factors of the forest plot: adsl column -> (label, reference level, level order).
SUBGROUPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "albi_grade": ("ALBI grade", "1", ("1", "2", "3")),
    "bclc_stage": ("BCLC stage", "B", ("A", "B", "C")),
    "aetiology": ("Aetiology", "HBV", ("HBV", "HCV", "ALCOHOL", "NASH", "OTHER")),
    "afp_group": ("AFP (ng/mL)", "<400", ("<400", ">=400")),
    "weight_band": ("Weight band", ">60 kg", ("<=60 kg", ">60 kg")),
}
RESPONSE_CODES = ("CR", "PR")


# ------------------------------------------------------------------------------------------------ helpers


def _df(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.sql(sql).df()


def days_per_month(con: duckdb.DuckDBPyConnection) -> float:
    """The month length the endpoint run used (``analysis.endpoint_run.config_json``), default 30.4375 days."""
    try:
        cfg = json.loads(_df(con, "select config_json from analysis.endpoint_run").iloc[0, 0])
        return float(cfg.get("days_per_month", DEFAULT_CONFIG.days_per_month))
    except (duckdb.CatalogException, IndexError, ValueError, TypeError):
        return DEFAULT_CONFIG.days_per_month


def fmt_num(x: float | None, digits: int = 1) -> str:
    """A number for a caption or legend; NR (not reached) for a missing median/limit."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or pd.isna(x):
        return "NR"
    return f"{x:.{digits}f}"


def fmt_ci(est: float, lo: float, hi: float, digits: int = 1) -> str:
    return f"{fmt_num(est, digits)} ({fmt_num(lo, digits)}–{fmt_num(hi, digits)})"


def fmt_p(p: float | None) -> str:
    if p is None or pd.isna(p):
        return "NE"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _groups(frame: pd.DataFrame, ctx: ReportContext) -> list[str]:
    """Group labels present, arms only when unblinded (a blinded report meeting an arm stops: see style)."""
    groups = sorted(frame["group"].astype(str).unique())
    for g in groups:
        group_colour(g, ctx.unblinded)  # raises BlindingError for an arm in a blinded context
    return groups


def _arm_column(frame: pd.DataFrame, ctx: ReportContext) -> pd.Series:
    """The arm of each row in unblinded runs, ``POOLED`` otherwise (never reads ``arm`` in a blinded run)."""
    if ctx.unblinded and "arm" in frame.columns:
        return frame["arm"].astype(str)
    return pd.Series(POOLED, index=frame.index)


# ------------------------------------------------------------------------------------------------ Kaplan-Meier


def check_km_against_adtte(km: pd.DataFrame, adtte: pd.DataFrame, tol: float = 1e-9) -> float:
    """Largest |S_stored(t) − S(t)| over the stored grid of one parameter and group, S refitted from the ADTTE with
    an independent product-limit estimator (:func:`analysis.report.coxph.km_product_limit`; the tests check it
    against lifelines' ``KaplanMeierFitter``); raises ValueError above ``tol`` (the stored table does not describe
    this ADTTE)."""
    refit = km_product_limit(adtte["AVAL"].to_numpy(dtype=float), adtte["CNSR"].eq(0).to_numpy(), km["time"])
    diff = float(np.max(np.abs(refit - km["surv"].to_numpy(dtype=float)))) if len(km) else 0.0
    if diff > tol or len(km) != adtte["AVAL"].nunique():
        raise ValueError(f"analysis.km_estimates differs from analysis.adtte (max |ΔS| = {diff:.3g})")
    return diff


def _step_xy(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curve starting at (0, 1) for a ``where='post'`` step plot."""
    return np.concatenate([[0.0], times]), np.concatenate([[1.0], values])


def km_figure(
    param: str,
    km: pd.DataFrame,
    adtte: pd.DataFrame,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    ctx: ReportContext,
    month_days: float = DEFAULT_CONFIG.days_per_month,
) -> ReportFigure:
    """KM curve of one parameter (all rows of ``km``/``adtte``/``summary`` are that parameter's)."""
    title, population = KM_PARAMS.get(param, (param, ITT_POPULATION))
    adtte = adtte.assign(group=_arm_column(adtte, ctx))
    groups = _groups(km, ctx)
    if set(adtte["group"].unique()) != set(groups):
        raise ValueError(f"{param}: km_estimates groups {groups} differ from the ADTTE's")
    summ = summary.set_index(summary["group"].astype(str))
    max_months = float(adtte["AVAL"].max()) / month_days if len(adtte) else 1.0
    step = 3 if max_months <= 30 else 6
    ticks = np.arange(0, max_months + step, step)
    n_rows = len(groups)
    key_values: dict[str, str] = {}
    with report_style():
        n_legend = n_rows + 1 + int(ctx.unblinded and not comparisons.empty)
        legend_in = 0.45 + 0.16 * n_legend  # title + legend lines above the axes
        height = 4.4 + 0.28 * n_rows + legend_in
        fig = new_figure(height_in=height)
        gs = fig.add_gridspec(2, 1, height_ratios=[5.0, 0.5 + 0.3 * n_rows], hspace=0.42)
        ax = fig.add_subplot(gs[0])
        risk_ax = fig.add_subplot(gs[1], sharex=ax)
        handles: list[Line2D] = []
        labels: list[str] = []
        for i, g in enumerate(groups):
            colour = group_colour(g, ctx.unblinded)
            k = km[km["group"].astype(str).eq(g)].sort_values("time")
            sub = adtte[adtte["group"].eq(g)]
            check_km_against_adtte(k, sub)
            t = k["time"].to_numpy(dtype=float) / month_days
            x, s = _step_xy(t, k["surv"].to_numpy(dtype=float))
            _, lo = _step_xy(t, k["lower"].to_numpy(dtype=float))
            _, hi = _step_xy(t, k["upper"].to_numpy(dtype=float))
            ax.step(x, s, where="post", color=colour, lw=1.6)
            ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.15, lw=0)
            cens = k[k["n_censor"].gt(0)]
            ax.plot(cens["time"] / month_days, cens["surv"], ls="none", marker="|", ms=7, mew=1.1, color=colour)
            r = summ.loc[g]
            med = fmt_ci(r["median"] / month_days, r["lcl"] / month_days, r["ucl"] / month_days)
            ci_text = f"(95% CI {fmt_num(r['lcl'] / month_days)}–{fmt_num(r['ucl'] / month_days)})"
            reached = pd.notna(r["median"]) and math.isfinite(r["median"])
            med_text = f"{fmt_num(r['median'] / month_days)} months {ci_text}" if reached else f"not reached {ci_text}"
            label = group_label(g, ctx.unblinded)
            labels.append(f"{label}: n = {int(r['n'])}, {int(r['events'])} events; median {med_text}")
            handles.append(Line2D([], [], color=colour, lw=1.6))
            key_values[f"{param} median months (95% CI) [{label}]"] = med
            key_values[f"{param} events/n [{label}]"] = f"{int(r['events'])}/{int(r['n'])}"
            at_risk = numbers_at_risk(sub["AVAL"].to_numpy(dtype=float), ticks * month_days)
            y = n_rows - 1 - i
            for tk, n_at in zip(ticks, at_risk, strict=True):
                risk_ax.text(tk, y, str(int(n_at)), ha="center", va="center", fontsize=8, color=colour)
            risk_ax.text(
                -0.03,
                y,
                label,
                transform=blended_transform_factory(risk_ax.transAxes, risk_ax.transData),
                ha="right",
                va="center",
                fontsize=8,
                color=colour,
            )
        comp = comparisons
        if ctx.unblinded and not comp.empty:
            strat = comp[comp["stratified"].astype(bool)]
            row = (strat if not strat.empty else comp).iloc[0]
            how = "stratified" if bool(row["stratified"]) else "unstratified"
            hr = fmt_ci(row["hr"], row["hr_lcl"], row["hr_ucl"], 2)
            arm, ref = group_label(str(row["group"]), True), group_label(str(row["reference"]), True)
            hr_text = f"{fmt_num(row['hr'], 2)} (95% CI {fmt_num(row['hr_lcl'], 2)}–{fmt_num(row['hr_ucl'], 2)})"
            labels.append(f"HR {arm} vs {ref}: {hr_text}, {how} Cox; {how} log-rank p = {fmt_p(row['logrank_p'])}")
            handles.append(Line2D([], [], ls="none"))
            key_values[f"{param} HR {arm} vs {ref} (95% CI, {how})"] = hr
            key_values[f"{param} log-rank p ({how})"] = fmt_p(row["logrank_p"])
        labels.append("shaded: pointwise 95% CI; | censored")
        handles.append(Line2D([], [], ls="none"))
        ax.axhline(0.5, color=OKABE_ITO["grey"], lw=0.6, ls=":")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, ticks[-1])
        ax.set_xticks(ticks)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel(f"{param} probability")
        ax.set_xlabel(f"Months since {'response' if param == 'DOR' else 'randomisation'}")
        fig.suptitle(title, x=0.02, y=1 - 0.1 / height, ha="left", va="top", fontsize=10, fontweight="bold")
        # above the axes: a legend inside would hide curves or bands in one run or another
        ax.legend(
            handles,
            labels,
            loc="lower left",
            bbox_to_anchor=(0.0, 1.02),
            borderaxespad=0.0,
            handlelength=1.6,
            fontsize=7.5,
        )
        risk_ax.set_ylim(-0.6, n_rows - 0.4)
        risk_ax.set_yticks([])
        risk_ax.tick_params(bottom=False, labelbottom=False)
        for side in ("left", "top", "right", "bottom"):
            risk_ax.spines[side].set_visible(False)
        risk_ax.set_title("Number at risk", loc="left", fontsize=8, fontweight="bold")
        fig.subplots_adjust(left=0.2, right=0.97, top=1 - legend_in / height, bottom=0.03)
    n_total = int(summary["n"].sum())
    caption = ctx.caption(
        f"Kaplan-Meier estimate of {title[0].lower() + title[1:]} with pointwise 95% confidence band "
        f"({str(km['conf_type'].iloc[0]) if 'conf_type' in km and len(km) else 'log'} transform), censoring marks and "
        "numbers at risk; median with Brookmeyer-Crowley 95% CI"
        + ("; hazard ratio from the stratified Cox model (Efron ties)" if ctx.unblinded and not comp.empty else ""),
        population,
        n_total,
    )
    return ReportFigure(f"km_{param.lower()}", SECTION, f"Kaplan-Meier: {title}", caption, fig, key_values)


def km_figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure]:
    month_days = days_per_month(con)
    km = _df(con, "select * from analysis.km_estimates")
    adtte = _df(con, "select * from analysis.adtte")
    summary = _df(con, "select * from analysis.survival_summary")
    comparisons = _df(con, "select * from analysis.survival_comparisons")
    out = []
    for param in KM_PARAMS:
        k = km[km["PARAMCD"].eq(param)]
        if k.empty:
            continue
        out.append(
            km_figure(
                param,
                k,
                adtte[adtte["PARAMCD"].eq(param)],
                summary[summary["PARAMCD"].eq(param)],
                comparisons[comparisons["PARAMCD"].eq(param)],
                ctx,
                month_days,
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ Cox subgroups


@dataclass(frozen=True)
class CoxFit:
    coef: np.ndarray
    se: np.ndarray
    log_likelihood: float
    names: tuple[str, ...]


def fit_cox(time: np.ndarray, event: np.ndarray, covariates: pd.DataFrame) -> CoxFit:
    """Cox PH (Efron ties, :func:`analysis.report.coxph.cox_efron`) on numeric covariates; returns coefficients,
    SEs and log-likelihood."""
    fit = cox_efron(time, event, covariates.to_numpy(dtype=float))
    return CoxFit(fit.coef, fit.se, fit.log_likelihood, tuple(covariates.columns))


#: |log HR| or its SE beyond this means a monotone likelihood (a level where one group has all the events first):
#: the estimate runs off to infinity and is reported not estimable.
MAX_ABS_LOG_HR = 10.0


def _wald(coef: float, se: float, z: float) -> tuple[float, float, float, float]:
    if not (math.isfinite(coef) and math.isfinite(se)) or abs(coef) > MAX_ABS_LOG_HR or se > MAX_ABS_LOG_HR:
        return (math.nan,) * 4
    return math.exp(coef), math.exp(coef - z * se), math.exp(coef + z * se), float(2 * stats.norm.sf(abs(coef / se)))


def _median_months(aval: pd.Series, event: pd.Series, month_days: float) -> float:
    from analysis.survival import kaplan_meier, km_median

    km = kaplan_meier(aval, event)
    return km_median(km)[0] / month_days if len(km) else math.nan


def prognostic_subgroups(
    data: pd.DataFrame,
    factors: dict[str, tuple[str, str, tuple[str, ...]]] = SUBGROUPS,
    conf_level: float = 0.95,
    month_days: float = DEFAULT_CONFIG.days_per_month,
) -> pd.DataFrame:
    """Blinded subgroup table: per factor, the HR of each level vs the reference from a univariable Cox model.

    ``data``: one row per patient with ``AVAL``, ``event`` (1/0) and the factor columns. Levels with no event are
    left out of the model and reported NE. Columns ``factor, label, level, reference, n, events, median_months, hr,
    lcl, ucl, p, factor_p`` (``factor_p``: likelihood-ratio test of the factor, levels−1 df).
    """
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    rows = []
    for col, (label, reference, order) in factors.items():
        d = data[["AVAL", "event", col]].dropna()
        d = d.assign(level=d[col].astype(str))
        present = [lv for lv in order if lv in set(d["level"])] + sorted(set(d["level"]) - set(order))
        ev = d.groupby("level")["event"].sum()
        fit_levels = [lv for lv in present if ev.get(lv, 0) > 0]
        res: dict[str, tuple[float, float, float, float]] = {}
        factor_p = math.nan
        if reference in fit_levels and len(fit_levels) >= 2:
            dd = d[d["level"].isin(fit_levels)]
            others = [lv for lv in fit_levels if lv != reference]
            x = pd.DataFrame({f"L{i}": dd["level"].eq(lv).astype(float).to_numpy() for i, lv in enumerate(others)})
            fit = fit_cox(dd["AVAL"].to_numpy(), dd["event"].to_numpy(), x)
            null_ll = _null_log_likelihood(dd["AVAL"].to_numpy(), dd["event"].to_numpy())
            factor_p = float(stats.chi2.sf(2 * (fit.log_likelihood - null_ll), len(others)))
            for i, lv in enumerate(others):
                res[lv] = _wald(float(fit.coef[i]), float(fit.se[i]), z)
        for lv in present:
            sub = d[d["level"].eq(lv)]
            hr = (1.0, math.nan, math.nan, math.nan) if lv == reference and lv in fit_levels else res.get(lv)
            rows.append(
                {
                    "factor": col,
                    "label": label,
                    "level": lv,
                    "reference": reference,
                    "n": len(sub),
                    "events": int(sub["event"].sum()),
                    "median_months": _median_months(sub["AVAL"], sub["event"], month_days),
                    "hr": hr[0] if hr else math.nan,
                    "lcl": hr[1] if hr else math.nan,
                    "ucl": hr[2] if hr else math.nan,
                    "p": hr[3] if hr else math.nan,
                    "factor_p": factor_p,
                }
            )
    return pd.DataFrame(rows)


def _null_log_likelihood(time: np.ndarray, event: np.ndarray) -> float:
    """Partial log-likelihood of the model without covariates (Efron ties; equals Breslow's with no covariates)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=int)
    ll = 0.0
    for tj in np.unique(t[e == 1]):
        d = int(((t == tj) & (e == 1)).sum())
        n = int((t >= tj).sum())
        # Efron: Σ_{l<d} log(n − l·d/d) = Σ log(n − l) with all risk scores 1
        ll -= float(np.sum(np.log(n - np.arange(d))))
    return ll


def treatment_subgroups(
    data: pd.DataFrame,
    factors: dict[str, tuple[str, str, tuple[str, ...]]] = SUBGROUPS,
    reference_arm: str = REFERENCE_ARM,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Unblinded subgroup table: treatment HR (non-reference arm vs ``reference_arm``) within each level and the
    interaction p per factor (LR test of ``arm + factor + arm×factor`` vs ``arm + factor``).

    ``data``: one row per patient with ``AVAL``, ``event``, ``arm`` and the factor columns. The first row is all
    patients (``factor = 'ALL'``). Columns ``factor, label, level, n, events, n_<arm>, events_<arm> ..., hr, lcl,
    ucl, p, interaction_p``.
    """
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    arms = sorted(data["arm"].astype(str).unique())
    if reference_arm not in arms or len(arms) != 2:
        raise ValueError(f"need two arms including {reference_arm!r}; got {arms}")
    active = next(a for a in arms if a != reference_arm)

    def hr_in(sub: pd.DataFrame) -> tuple[float, float, float, float]:
        per_arm = sub.groupby(sub["arm"].astype(str))["event"].sum()
        if per_arm.reindex(arms).fillna(0).eq(0).any():
            return (math.nan,) * 4
        x = pd.DataFrame({"arm": sub["arm"].astype(str).eq(active).astype(float).to_numpy()})
        try:
            fit = fit_cox(sub["AVAL"].to_numpy(), sub["event"].to_numpy(), x)
        except Exception:
            return (math.nan,) * 4
        return _wald(float(fit.coef[0]), float(fit.se[0]), z)

    def row(factor: str, label: str, level: str, sub: pd.DataFrame, inter: float) -> dict[str, object]:
        out: dict[str, object] = {
            "factor": factor,
            "label": label,
            "level": level,
            "n": len(sub),
            "events": int(sub["event"].sum()),
        }
        for a in arms:
            s = sub[sub["arm"].astype(str).eq(a)]
            out[f"n_{a}"] = len(s)
            out[f"events_{a}"] = int(s["event"].sum())
        out.update(zip(("hr", "lcl", "ucl", "p"), hr_in(sub), strict=True))
        out["interaction_p"] = inter
        return out

    rows = [row("ALL", "All patients", "All", data, math.nan)]
    for col, (label, reference, order) in factors.items():
        d = data[["AVAL", "event", "arm", col]].dropna()
        d = d.assign(level=d[col].astype(str))
        present = [lv for lv in order if lv in set(d["level"])] + sorted(set(d["level"]) - set(order))
        inter = interaction_p(d, active, reference, present)
        for lv in present:
            rows.append(row(col, label, lv, d[d["level"].eq(lv)], inter))
    return pd.DataFrame(rows)


def interaction_p(d: pd.DataFrame, active: str, reference: str, levels: Sequence[str]) -> float:
    """LR test p of the arm × factor interaction (levels with an event in both arms only)."""
    ok = [
        lv
        for lv in levels
        if (d[d["level"].eq(lv)].groupby("arm")["event"].sum().reindex(d["arm"].unique()).fillna(0) > 0).all()
    ]
    if len(ok) < 2:
        return math.nan
    ref = reference if reference in ok else ok[0]
    dd = d[d["level"].isin(ok)]
    arm = dd["arm"].astype(str).eq(active).astype(float).to_numpy()
    main = {f"L{i}": dd["level"].eq(lv).astype(float).to_numpy() for i, lv in enumerate(x for x in ok if x != ref)}
    x0 = pd.DataFrame({"arm": arm, **main})
    x1 = x0.assign(**{f"armx{k}": arm * v for k, v in main.items()})
    try:
        f0 = fit_cox(dd["AVAL"].to_numpy(), dd["event"].to_numpy(), x0)
        f1 = fit_cox(dd["AVAL"].to_numpy(), dd["event"].to_numpy(), x1)
    except Exception:
        return math.nan
    return float(stats.chi2.sf(max(2 * (f1.log_likelihood - f0.log_likelihood), 0.0), len(main)))


def pfs_subgroup_data(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> pd.DataFrame:
    """PFS (derived RECIST 1.1, ITT) joined with the baseline factors of ``marts.adsl`` (and the arm, unblinded)."""
    cols = ", ".join(f"s.{c}" for c in SUBGROUPS)
    arm = ", a.arm" if ctx.unblinded else ""
    d = _df(
        con,
        f"select a.subject_id, a.AVAL, case when a.CNSR = 0 then 1 else 0 end as event{arm}, {cols} "
        "from analysis.adtte as a join marts.adsl as s on a.subject_id = s.subject_id "
        "where a.PARAMCD = 'PFS' and s.itt_fl = 'Y' order by a.subject_id",
    )
    for c in SUBGROUPS:
        d[c] = d[c].astype("string").astype(object).where(d[c].notna(), None)
    return d


def forest_figure(table: pd.DataFrame, ctx: ReportContext, n: int) -> ReportFigure:
    """Draw :func:`prognostic_subgroups` (blinded) or :func:`treatment_subgroups` (unblinded) as a forest plot."""
    blinded = not ctx.unblinded
    lines: list[tuple[str, str, pd.Series | None]] = []  # (left text, right text, row)
    for factor, sub in table.groupby("factor", sort=False):
        if factor == "ALL":
            lines.append(("All patients", "", sub.iloc[0]))
            continue
        head_p = sub["factor_p"].iloc[0] if blinded else sub["interaction_p"].iloc[0]
        lines.append((str(sub["label"].iloc[0]), f"{'LR' if blinded else 'interaction'} p = {fmt_p(head_p)}", None))
        for _, r in sub.iterrows():
            ref = blinded and r["level"] == r["reference"]
            level = str(r["level"]).replace(">=", "≥").replace("<=", "≤")
            level = level.capitalize() if level.isupper() and len(level) > 4 else level
            lines.append((f"   {level}" + (" (reference)" if ref else ""), "", r))
    n_lines = len(lines)
    key_values: dict[str, str] = {}
    with report_style():
        fig = new_figure(height_in=1.3 + 0.21 * n_lines)
        ax = fig.add_axes((0.42, 0.75 / fig.get_figheight(), 0.3, 1 - 1.3 / fig.get_figheight()))
        tr = blended_transform_factory(fig.transFigure, ax.transData)
        ys = np.arange(n_lines)[::-1]
        finite = table[["lcl", "ucl"]].to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        lo = max(min(0.1, finite.min() * 0.8) if finite.size else 0.1, 0.01)
        hi = min(max(10.0, finite.max() * 1.25) if finite.size else 10.0, 100.0)
        for y, (left, right, r) in zip(ys, lines, strict=True):
            bold = r is None or r["factor"] == "ALL"
            fig.text(
                0.02, y, left, transform=tr, ha="left", va="center", fontsize=8, fontweight="bold" if bold else "normal"
            )
            if r is None:
                fig.text(0.98, y, right, transform=tr, ha="right", va="center", fontsize=7.5, style="italic")
                continue
            n_ev = f"{int(r['n'])} ({int(r['events'])})"
            fig.text(0.36, y, n_ev, transform=tr, ha="right", va="center", fontsize=8)
            is_ref = blinded and r["level"] == r["reference"]
            if is_ref:
                txt = "1 (reference)"
                ax.plot([1.0], [y], marker="D", ms=4, color=OKABE_ITO["grey"])
            elif np.isfinite(r["hr"]):
                txt = fmt_ci(r["hr"], r["lcl"], r["ucl"], 2)
                colour = OKABE_ITO["black"] if blinded else OKABE_ITO["blue"]
                ax.plot([max(r["lcl"], lo), min(r["ucl"], hi)], [y, y], color=colour, lw=1.2)
                ax.plot([r["hr"]], [y], marker="s", ms=5, color=colour)
                key_values[f"PFS HR [{r['label']}: {r['level']}]"] = txt
            else:
                txt = "NE (too few events)"
            fig.text(0.98, y, txt, transform=tr, ha="right", va="center", fontsize=8)
        top = n_lines - 0.2
        fig.text(0.02, top, "Subgroup", transform=tr, ha="left", va="bottom", fontweight="bold", fontsize=8)
        fig.text(0.36, top, "n (events)", transform=tr, ha="right", va="bottom", fontweight="bold", fontsize=8)
        fig.text(0.98, top, "HR (95% CI)", transform=tr, ha="right", va="bottom", fontweight="bold", fontsize=8)
        ax.axvline(1.0, color=OKABE_ITO["grey"], lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.7, n_lines - 0.3)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        grid = (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30) if lo < 0.1 or hi > 10 else (0.1, 0.25, 0.5, 1, 2, 4, 10)
        ticks = [t for t in grid if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        if blinded:
            ax.set_xlabel("HR vs reference level (pooled)\n← lower hazard   higher hazard →", fontsize=8)
            title = "PFS by baseline subgroup: prognostic hazard ratios (arms pooled)"
        else:
            ax.set_xlabel("HR capsule arm vs placebo arm\n← favours capsule arm   favours placebo arm →", fontsize=8)
            title = "PFS by baseline subgroup: treatment hazard ratio within subgroups"
        fig.suptitle(title, x=0.02, ha="left", fontsize=10, fontweight="bold")
    if blinded:
        text = (
            "Forest plot of progression-free survival (derived RECIST 1.1) by baseline subgroup. Blinded run: a "
            "treatment effect cannot be estimated, so each square is the hazard ratio of a subgroup level versus the "
            "reference level of the same factor (univariable Cox model, Efron ties, Wald 95% CI, arms pooled), with "
            "the likelihood-ratio p of the factor; these are prognostic associations, not treatment effects. NE: a "
            "level without events"
        )
    else:
        text = (
            "Forest plot of the progression-free survival hazard ratio (capsule arm vs placebo arm, derived RECIST "
            "1.1) within each baseline subgroup (unstratified Cox model per subgroup, Efron ties, Wald 95% CI) and the "
            "likelihood-ratio p of the treatment-by-subgroup interaction. NE: an arm without events in the subgroup"
        )
    caption = ctx.caption(text, ITT_POPULATION, n)
    return ReportFigure("forest_pfs_subgroups", SECTION, title, caption, fig, key_values)


def forest_items(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure | ReportTable]:
    data = pfs_subgroup_data(con, ctx)
    table = treatment_subgroups(data) if ctx.unblinded else prognostic_subgroups(data, month_days=days_per_month(con))
    fig = forest_figure(table, ctx, len(data))
    shown = table.copy()
    for c in ("hr", "lcl", "ucl"):
        shown[c] = shown[c].round(4)
    for c in [c for c in shown.columns if c.endswith("_p") or c == "p" or c == "median_months"]:
        shown[c] = shown[c].round(4)
    tab = ReportTable(
        "forest_pfs_subgroups_table",
        SECTION,
        fig.title + " (table)",
        ctx.caption(
            "The numbers of the subgroup forest plot (HR with Wald 95% CI; p-values)", ITT_POPULATION, len(data)
        ),
        shown,
    )
    return [fig, tab]


# ------------------------------------------------------------------------------------------------ tumour response


def best_percent_change(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> pd.DataFrame:
    """Per patient with measurable disease and a complete post-baseline assessment: best (minimum) % change of the
    sum of target diameters from baseline (derived RECIST 1.1) and the confirmed derived BOR."""
    arm = ", max(r.arm) as arm" if ctx.unblinded else ""
    return _df(
        con,
        f"""
        select r.subject_id, min(r.pchg) as best_pchg, max(b.bor) as bor{arm}
        from analysis.recist_timepoint_responses as r
        join marts.adsl as s on r.subject_id = s.subject_id
        left join analysis.best_overall_response as b
          on b.subject_id = r.subject_id and b.criterion = 'RECIST 1.1' and b.evaluator = 'DERIVED' and b.confirmed
        where r.criterion = 'RECIST 1.1' and r.target_complete and r.pchg is not null
          and s.measurable_disease_fl = 'Y'
        group by r.subject_id
        order by best_pchg desc, r.subject_id
        """,
    )


def _bor_legend(ax, present: Sequence[str]) -> None:
    handles = [Patch(color=BOR_COLOURS[b], label=b) for b in BOR_ORDER if b in present]
    ax.legend(
        handles=handles,
        title="Best overall response (confirmed)",
        loc="upper right",
        ncol=len(handles),
        fontsize=7.5,
        title_fontsize=7.5,
    )


def _panels(frame: pd.DataFrame, ctx: ReportContext) -> list[tuple[str, pd.DataFrame]]:
    if ctx.unblinded and "arm" in frame.columns:
        return [(g, frame[frame["arm"].astype(str).eq(g)]) for g in sorted(frame["arm"].astype(str).unique())]
    return [(POOLED, frame)]


def waterfall_figure(best: pd.DataFrame, ctx: ReportContext) -> ReportFigure:
    best = best.assign(bor=best["bor"].fillna("MISSING").astype(str))
    panels = _panels(best, ctx)
    top = max(40.0, float(best["best_pchg"].max()) + 10 if len(best) else 40.0)
    with report_style():
        fig = new_figure(height_in=3.8 * len(panels) if len(panels) > 1 else 4.4)
        axes = fig.subplots(len(panels), 1, sharey=True, squeeze=False)[:, 0]
        for ax, (g, sub) in zip(axes, panels, strict=True):
            sub = sub.sort_values(["best_pchg", "subject_id"], ascending=[False, True])
            colours = [BOR_COLOURS.get(b, BOR_COLOURS["NE"]) for b in sub["bor"]]
            ax.bar(np.arange(len(sub)), sub["best_pchg"], width=0.85, color=colours, lw=0)
            ax.axhline(20, color=OKABE_ITO["vermillion"], lw=0.8, ls="--")
            ax.axhline(-30, color=OKABE_ITO["blue"], lw=0.8, ls="--")
            ax.axhline(0, color="black", lw=0.6)
            tr = blended_transform_factory(ax.transAxes, ax.transData)
            ax.text(1.005, 20, "+20%", transform=tr, ha="left", va="center", fontsize=7, color=OKABE_ITO["vermillion"])
            ax.text(1.005, -30, "−30%", transform=tr, ha="left", va="center", fontsize=7, color=OKABE_ITO["blue"])
            ax.set_xlim(-1, max(len(sub), 1))
            ax.set_ylim(-105, top * 1.35)
            ax.set_xticks([])
            ax.set_ylabel("Best change in sum of\ntarget diameters (%)")
            head = "All patients" if g == POOLED else group_label(g, True)
            ax.set_title(f"{head} (n = {len(sub)})", loc="left", fontsize=9)
            _bor_legend(ax, set(sub["bor"]))
        axes[-1].set_xlabel("Patients, ordered by best percentage change")
        fig.suptitle(
            "Waterfall: best percentage change from baseline in the sum of target diameters",
            x=0.02,
            ha="left",
            fontsize=10,
            fontweight="bold",
        )
        fig.subplots_adjust(left=0.12, right=0.93, top=0.86 if len(panels) == 1 else 0.91, bottom=0.08, hspace=0.3)
    caption = ctx.caption(
        "Best (minimum) percentage change from baseline in the sum of target-lesion diameters over post-baseline "
        "assessments with every target lesion measured (derived RECIST 1.1), one bar per patient, coloured by the "
        "confirmed best overall response; dashed lines at +20% (progression threshold, which also needs +5 mm over "
        "the nadir) and −30% (partial response)",
        "patients with measurable disease at baseline and at least one complete post-baseline tumour assessment",
        len(best),
    )
    kv = {"waterfall patients": str(len(best))}
    if len(best):
        kv["patients with >=30% shrinkage"] = str(int(best["best_pchg"].le(-30).sum()))
    return ReportFigure("waterfall_best_change", SECTION, "Waterfall plot", caption, fig, kv)


def spider_figure(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> ReportFigure:
    arm = ", r.arm" if ctx.unblinded else ""
    d = _df(
        con,
        f"""
        select r.subject_id, r.pchg, date_diff('day', s.randomisation_date, r.assessment_date) / 7.0 as weeks,
               coalesce(b.bor, 'MISSING') as bor{arm}
        from analysis.recist_timepoint_responses as r
        join marts.adsl as s on r.subject_id = s.subject_id
        left join analysis.best_overall_response as b
          on b.subject_id = r.subject_id and b.criterion = 'RECIST 1.1' and b.evaluator = 'DERIVED' and b.confirmed
        where r.criterion = 'RECIST 1.1' and r.target_complete and r.pchg is not null
          and s.measurable_disease_fl = 'Y'
        order by r.subject_id, weeks
        """,
    )
    panels = _panels(d, ctx)
    with report_style():
        fig = new_figure(height_in=3.6 * len(panels) if len(panels) > 1 else 4.4)
        axes = fig.subplots(len(panels), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
        for ax, (g, sub) in zip(axes, panels, strict=True):
            for _sid, p in sub.groupby("subject_id", sort=True):
                bor = str(p["bor"].iloc[0])
                colour = BOR_COLOURS.get(bor, BOR_COLOURS["NE"])
                # stable disease, the bulk, underneath the responders and progressors
                ax.plot(
                    np.r_[0.0, p["weeks"].to_numpy()],
                    np.r_[0.0, p["pchg"].to_numpy()],
                    color=colour,
                    lw=0.9,
                    alpha=0.75,
                    marker="o",
                    ms=2,
                    zorder=1.5 if bor == "SD" else 2.5,
                )
            ax.axhline(20, color=OKABE_ITO["vermillion"], lw=0.8, ls="--")
            ax.axhline(-30, color=OKABE_ITO["blue"], lw=0.8, ls="--")
            ax.axhline(0, color="black", lw=0.6)
            ax.set_ylabel("Change in sum of\ntarget diameters (%)")
            head = "All patients" if g == POOLED else group_label(g, True)
            ax.set_title(f"{head} (n = {sub['subject_id'].nunique()})", loc="left", fontsize=9)
            _bor_legend(ax, set(sub["bor"].astype(str)))
            ax.set_ylim(-105, max(60.0, float(sub["pchg"].max()) * 1.3 if len(sub) else 60.0))
        axes[-1].set_xlabel("Weeks since randomisation")
        fig.suptitle(
            "Spider plot: change from baseline in the sum of target diameters over time",
            x=0.02,
            ha="left",
            fontsize=10,
            fontweight="bold",
        )
        fig.subplots_adjust(left=0.12, right=0.98, top=0.86 if len(panels) == 1 else 0.91, bottom=0.1, hspace=0.3)
    caption = ctx.caption(
        "Percentage change from baseline in the sum of target-lesion diameters at each complete post-baseline "
        "assessment (derived RECIST 1.1), one line per patient starting at 0 at baseline, coloured by the confirmed "
        "best overall response; dashed lines at +20% and −30%",
        "patients with measurable disease at baseline and at least one complete post-baseline tumour assessment",
        d["subject_id"].nunique(),
    )
    return ReportFigure("spider_change", SECTION, "Spider plot", caption, fig, {})


def swimmer_data(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> pd.DataFrame:
    """Per treated patient: months on treatment, ongoing flag, first confirmed response, first PD and death (months
    since the first dose)."""
    arm = ", s.arm_code as arm" if ctx.unblinded else ""
    return _df(
        con,
        f"""
        with pd_first as (
            select subject_id, min(assessment_date) as pd_date
            from analysis.recist_timepoint_responses
            where criterion = 'RECIST 1.1' and overall_response = 'PD'
            group by subject_id
        )
        select s.subject_id{arm},
               s.treatment_start_date as start_date,
               coalesce(s.treatment_end_date, s.treatment_start_date) as end_date,
               coalesce(upper(s.end_of_treatment_reason) = 'ONGOING', s.treatment_end_date is null) as ongoing,
               b.first_response_date, p.pd_date, s.death_date
        from marts.adsl as s
        left join analysis.best_overall_response as b
          on b.subject_id = s.subject_id and b.criterion = 'RECIST 1.1' and b.evaluator = 'DERIVED' and b.confirmed
             and b.responder
        left join pd_first as p on p.subject_id = s.subject_id
        where s.safety_fl = 'Y' and s.treatment_start_date is not null
        order by s.subject_id
        """,
    )


def swimmer_figure(d: pd.DataFrame, ctx: ReportContext, month_days: float) -> ReportFigure:
    d = d.copy()
    start = pd.to_datetime(d["start_date"])

    def months(col: str) -> pd.Series:
        return (pd.to_datetime(d[col]) - start).dt.days / month_days

    d["dur"] = ((pd.to_datetime(d["end_date"]) - start).dt.days + 1) / month_days
    d["resp"], d["pd"], d["death"] = months("first_response_date"), months("pd_date"), months("death_date")
    d["group"] = _arm_column(d, ctx)
    d = d.sort_values(["dur", "subject_id"], ascending=[True, False]).reset_index(drop=True)
    n = len(d)
    with report_style():
        fig = new_figure(height_in=1.6 + 0.075 * max(n, 10))
        height = fig.get_figheight()
        ax = fig.add_axes((0.08, 0.55 / height, 0.9, 1 - 1.6 / height))
        y = np.arange(n)
        colours = [group_colour(g, ctx.unblinded) if g != POOLED else OKABE_ITO["grey"] for g in d["group"]]
        ax.barh(y, d["dur"], height=0.7, color=colours, lw=0)
        xmax = float(np.nanmax(d[["dur", "resp", "pd", "death"]].to_numpy(dtype=float))) if n else 1.0
        ax.plot(d["resp"], y, ls="none", marker="^", ms=4, color=OKABE_ITO["bluish_green"], mec="black", mew=0.3)
        # white-filled diamonds: visible on the vermillion placebo bars as on the blue and grey ones
        ax.plot(d["pd"], y, ls="none", marker="D", ms=3.5, mfc="white", mec="black", mew=0.8)
        ax.plot(d["death"], y, ls="none", marker="x", ms=4, color="black", mew=1.0)
        on = d["ongoing"].fillna(False).astype(bool).to_numpy()
        ax.plot(d["dur"][on] + xmax * 0.012, y[on], ls="none", marker=">", ms=4, color="black")
        ax.set_ylim(-1, n)
        ax.set_yticks([])
        ax.set_xlim(0, xmax * 1.05)
        ax.set_xlabel("Months since first dose")
        ax.set_ylabel("Patients (ordered by time on treatment)")
        handles = [
            Line2D(
                [],
                [],
                ls="none",
                marker="^",
                ms=5,
                color=OKABE_ITO["bluish_green"],
                mec="black",
                mew=0.3,
                label="first confirmed response (CR/PR)",
            ),
            Line2D(
                [], [], ls="none", marker="D", ms=4.5, mfc="white", mec="black", mew=0.8, label="first progression (PD)"
            ),
            Line2D([], [], ls="none", marker="x", ms=5, color="black", label="death"),
            Line2D([], [], ls="none", marker=">", ms=5, color="black", label="on treatment at cut-off"),
        ]
        if ctx.unblinded:
            handles += [Patch(color=group_colour(g, True), label=group_label(g, True)) for g in sorted(set(d["group"]))]
        else:
            handles.append(Patch(color=OKABE_ITO["grey"], label="time on treatment"))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=3, fontsize=7.5)
        fig.suptitle(
            "Swimmer plot: time on treatment with response and progression",
            x=0.02,
            ha="left",
            fontsize=10,
            fontweight="bold",
            y=1 - 0.12 / height,
        )
    caption = ctx.caption(
        "Time on treatment (first to last dose) per patient, with the first confirmed response (derived RECIST 1.1), "
        "the first progression (derived RECIST 1.1 time-point PD) and death, in months since the first dose; an "
        "arrow marks treatment ongoing at the data cut-off",
        "safety population (patients who received any study treatment)",
        n,
    )
    kv = {
        "median months on treatment": fmt_num(float(d["dur"].median()) if n else None),
        "on treatment at cut-off": str(int(on.sum())),
    }
    return ReportFigure("swimmer_treatment", SECTION, "Swimmer plot", caption, fig, kv)


# ------------------------------------------------------------------------------------------------ section


def figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure | ReportTable]:
    """Every efficacy item (the section contract shared by the report modules)."""
    items: list[ReportFigure | ReportTable] = [*km_figures(con, ctx)]
    items += forest_items(con, ctx)
    items.append(waterfall_figure(best_percent_change(con, ctx), ctx))
    items.append(swimmer_figure(swimmer_data(con, ctx), ctx, days_per_month(con)))
    items.append(spider_figure(con, ctx))
    return items
