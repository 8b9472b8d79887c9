"""Integration figures of the trial report (issue 8): genus–metabolite correlations and baseline diversity vs PFS.

Entry point: :func:`figures` ``(con, ctx)``; :data:`FIGURE_TABLES` lists the tables each figure reads (a figure
whose tables are missing or empty is left out; :func:`analysis.report.microbiome.missing_tables` names them).

Figures and tables

* ``int_genus_metabolite_heatmap``: Spearman ρ between the relative abundance of the *differential genera*
  (``analysis.metabolite_genus_correlations.genus_differential``: genus-level q < 0.1 in any analysis of
  ``analysis.differential_abundance``) and the differential metabolites, over the patient-visits measured by both
  platforms (:mod:`analysis.metabolomics.integration`), one panel per matrix. Rows and columns are ordered by
  average-linkage hierarchical clustering of their ρ profiles (Euclidean; scipy, deterministic). Marks: BH q of
  the table (over all pairs of a matrix): ``*`` q < 0.05, ``**`` q < 0.01, ``***`` q < 0.001.
* ``int_diversity_pfs_km`` and table ``int_diversity_pfs_cox``: baseline Shannon diversity vs progression-free
  survival (``analysis.adtte``, ``PARAMCD = 'PFS'``: RECIST 1.1, derived; event = ``CNSR == 0``; time ``AVAL``
  days, plotted in months of 30.4375 days).

  - Baseline Shannon: ``analysis.alpha_diversity`` (unrarefied mothur Shannon, natural log: deterministic and, unlike
    richness, little affected by depth; rarefied values depend on the subsampling) of the patient's sample at the
    baseline visit (``visit_order = 0``, which the marts call ``BASELINE``); a patient with two baseline libraries
    keeps the deeper one.
  - Tertiles: cut points at the 1/3 and 2/3 sample quantiles (R type 7 = numpy ``linear``), intervals closed on the
    right with the lowest value included (``pandas.qcut``, R ``cut(x, quantile(x, 0:3/3), include.lowest = TRUE)``):
    T1 lowest diversity ... T3 highest.
  - Kaplan–Meier per tertile (:func:`analysis.survival.kaplan_meier`, R ``survfit``), log-rank across tertiles
    (2 df, :func:`analysis.survival.logrank_test`).
  - Cox proportional hazards (Efron ties as R ``coxph``, :func:`analysis.report.coxph.cox_efron`; no strata):
    HR per 1-unit (1 nat) higher Shannon, and T2 and T3 vs T1, Wald 95 % CI ``exp(β ± 1.96 SE)`` and Wald p.
    Unblinded runs add a model adjusted for arm (Shannon + capsules indicator) and KM panels per arm (same cut
    points). Tested against R ``survival::coxph`` to 1e-6 (``tests/test_report_omics.py``).
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy import stats
from scipy.cluster.hierarchy import leaves_list, linkage

from analysis.report import style
from analysis.report.coxph import cox_efron
from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.microbiome import (
    ARMS,
    arm_label,
    fmt_p,
    missing_tables,
    new_figure,
    read_arms,
    read_table,
)
from analysis.survival import kaplan_meier, logrank_test, numbers_at_risk

__all__ = ["FIGURE_TABLES", "REQUIRED_TABLES", "cox_model", "figures", "missing_tables", "shannon_pfs_data"]

SECTION = "integration"
DAYS_PER_MONTH = 30.4375
TERTILES: tuple[str, ...] = ("T1 (lowest)", "T2", "T3 (highest)")
TERTILE_COLOURS: dict[str, str] = {
    TERTILES[0]: style.OKABE_ITO["vermillion"],
    TERTILES[1]: style.OKABE_ITO["orange"],
    TERTILES[2]: style.OKABE_ITO["bluish_green"],
}
#: Heat-map columns shown per matrix at most (the metabolites with the largest |ρ| with a differential genus).
MAX_HEATMAP_METABOLITES = 30
MATRICES: dict[str, str] = {"FAECES": "faecal", "SERUM": "serum"}

FIGURE_TABLES: dict[str, tuple[str, ...]] = {
    "int_genus_metabolite_heatmap": ("analysis.metabolite_genus_correlations",),
    "int_diversity_pfs_km": ("analysis.alpha_diversity", "analysis.adtte"),
    "int_diversity_pfs_cox": ("analysis.alpha_diversity", "analysis.adtte"),
}
REQUIRED_TABLES: tuple[str, ...] = tuple(dict.fromkeys(t for ts in FIGURE_TABLES.values() for t in ts))


# ================================================================================================ heat map


def significance_mark(q: float) -> str:
    if q is None or not np.isfinite(q):
        return ""
    return "***" if q < 0.001 else "**" if q < 0.01 else "*" if q < 0.05 else ""


def _cluster_order(matrix: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering of the rows (identity for < 3 rows or non-finite values)."""
    if matrix.shape[0] < 3 or not np.isfinite(matrix).all():
        return np.arange(matrix.shape[0])
    return leaves_list(linkage(matrix, method="average", metric="euclidean"))


def heatmap_matrix(corr: pd.DataFrame, matrix: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ρ, q) as genus x metabolite frames for one matrix: differential genera only, at most
    :data:`MAX_HEATMAP_METABOLITES` metabolites (largest max |ρ|), rows and columns in clustering order."""
    sub = corr[(corr["matrix"] == matrix) & corr["genus_differential"].fillna(False).astype(bool)].copy()
    if sub.empty:
        return pd.DataFrame(), pd.DataFrame()
    name = sub["name"].astype(object).where(sub["name"].notna(), None)
    sub["metabolite"] = name.fillna(sub["feature"]).astype(str)
    # a name shared by two features (e.g. both ion modes) must stay two columns
    # (tagged with the ion mode when that tells them apart, else with the feature key)
    dup = sub.groupby("metabolite")["feature"].transform("nunique") > 1
    modes_differ = sub.groupby("metabolite")["ion_mode"].transform("nunique") == sub.groupby("metabolite")[
        "feature"
    ].transform("nunique")
    tag = np.where(modes_differ, sub["ion_mode"].astype(str), sub["feature"].astype(str))
    sub.loc[dup, "metabolite"] = sub.loc[dup, "metabolite"] + " [" + pd.Series(tag, index=sub.index)[dup] + "]"
    rho = sub.pivot_table(index="genus", columns="metabolite", values="rho", aggfunc="first")
    q = sub.pivot_table(index="genus", columns="metabolite", values="q", aggfunc="first")
    strongest = rho.abs().max(axis=0).sort_values(ascending=False, kind="stable")
    keep = sorted(strongest.index[:MAX_HEATMAP_METABOLITES])
    rho, q = rho[keep], q[keep]
    filled = rho.fillna(0.0).to_numpy(float)
    rows = _cluster_order(filled)
    cols = _cluster_order(filled.T)
    rho = rho.iloc[rows, cols]
    return rho, q.loc[rho.index, rho.columns]


def heatmap_figure(corr: pd.DataFrame, ctx: ReportContext) -> ReportFigure | None:
    """Heat map of Spearman ρ, differential genera x differential metabolites, one panel per matrix."""
    panels = [(m, *heatmap_matrix(corr, m)) for m in MATRICES if (corr["matrix"] == m).any()]
    panels = [p for p in panels if not p[1].empty]
    if not panels:
        return None
    vmax = max(float(np.nanmax(np.abs(p[1].to_numpy(float)))) for p in panels)
    vmax = math.ceil(vmax * 10) / 10 or 0.1
    heights = [max(len(p[1]), 2) + 6 for p in panels]
    key: dict[str, str] = {}
    with style.report_style():
        fig = new_figure(min(1.0 + 0.2 * sum(heights), 11.0))
        axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights}).ravel()
        image = None
        for ax, (matrix, rho, q) in zip(axes, panels, strict=True):
            values = rho.to_numpy(float)
            image = ax.imshow(values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
            for i in range(values.shape[0]):
                for j in range(values.shape[1]):
                    mark = significance_mark(float(q.iat[i, j]))
                    if mark:
                        colour = "white" if abs(values[i, j]) > 0.6 * vmax else "black"
                        ax.text(j, i, mark, ha="center", va="center", fontsize=6, color=colour, gid="mark")
            ax.set_yticks(range(len(rho.index)), list(rho.index), fontsize=7)
            ax.set_xticks(range(len(rho.columns)), list(rho.columns), rotation=60, ha="right", fontsize=6.5)
            ax.set_title(f"{MATRICES[matrix].capitalize()} metabolites", loc="left", fontsize=9)
            for spine in ax.spines.values():
                spine.set_visible(False)
            n_pairs = int(corr.loc[corr["matrix"] == matrix, "n"].max())
            n_sig = int((q.to_numpy(float) < 0.05).sum())
            key[f"{MATRICES[matrix]}: pairs with q < 0.05"] = f"{n_sig} of {values.size}"
            key[f"{MATRICES[matrix]}: paired samples"] = str(n_pairs)
        cbar = fig.colorbar(image, ax=list(axes), shrink=0.6, aspect=25, pad=0.01)
        cbar.set_label("Spearman ρ")
    sizes = " and ".join(f"{int(corr.loc[corr['matrix'] == m, 'n'].max())} {MATRICES[m]}" for m, _, _ in panels)
    sizes += " patient-visits with both measurements"
    text = (
        "Spearman correlation between the relative abundance of the differentially abundant genera (q < 0.1 in any "
        "microbiome analysis) and the differential metabolites (glog10, drift-corrected), over the samples of the "
        "same patient and visit; rows and columns ordered by hierarchical clustering. * q < 0.05, ** q < 0.01, "
        f"*** q < 0.001 (Benjamini–Hochberg over all genus–metabolite pairs of a matrix). Up to "
        f"{MAX_HEATMAP_METABOLITES} metabolites per matrix (largest |ρ|)"
    )
    return ReportFigure(
        slug="int_genus_metabolite_heatmap",
        section=SECTION,
        title="Genus–metabolite correlations",
        caption=ctx.caption(
            text, "all patients with a sequenced faecal sample and a metabolomics profile at the same visit", sizes
        ),
        figure=fig,
        key_values=key,
    )


# ================================================================================================ diversity vs PFS


def shannon_pfs_data(alpha: pd.DataFrame, adtte: pd.DataFrame, arms: pd.Series | None = None) -> pd.DataFrame:
    """One row per patient with a baseline Shannon and a PFS record: ``subject_id, sample_id, shannon, time,
    event, months, tertile`` (and ``arm`` when ``arms`` is given; see the module docstring)."""
    base = alpha[pd.to_numeric(alpha["visit_order"], errors="coerce") == 0]
    base = base.sort_values(["subject_id", "nseqs", "sample_id"], ascending=[True, False, True], kind="stable")
    base = base.drop_duplicates("subject_id")[["subject_id", "sample_id", "visit", "shannon"]]
    pfs = adtte.loc[adtte["PARAMCD"] == "PFS", ["subject_id", "AVAL", "CNSR"]].drop_duplicates("subject_id")
    data = base.merge(pfs, on="subject_id", how="inner").dropna(subset=["shannon", "AVAL", "CNSR"])
    data = data.assign(time=data["AVAL"].astype(float), event=(data["CNSR"].astype(int) == 0).astype(int))
    data["months"] = data["time"] / DAYS_PER_MONTH
    data["tertile"] = pd.qcut(data["shannon"], 3, labels=list(TERTILES)).astype(str)
    if arms is not None and len(arms):
        data["arm"] = data["subject_id"].map(arms)
    return data.drop(columns=["AVAL", "CNSR"]).sort_values("subject_id").reset_index(drop=True)


def tertile_bounds(shannon: pd.Series) -> list[tuple[float, float]]:
    """(low, high] Shannon bounds of the three tertiles (the first includes its low end)."""
    _, edges = pd.qcut(shannon, 3, retbins=True)
    return [(float(edges[k]), float(edges[k + 1])) for k in range(3)]


def cox_model(data: pd.DataFrame, covariates: list[str], conf_level: float = 0.95) -> pd.DataFrame:
    """Cox PH fit of ``time``/``event`` on ``covariates`` (numeric columns of ``data``): one row per term with
    ``coef, se, hr, lcl, ucl, p`` (Wald), Efron ties (R ``coxph`` default; :func:`analysis.report.coxph.cox_efron`)."""
    frame = data[["time", "event", *covariates]].astype(float)
    fit = cox_efron(frame["time"].to_numpy(), frame["event"].to_numpy(), frame[covariates].to_numpy())
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    coef, se = fit.coef, fit.se
    return pd.DataFrame(
        {
            "term": covariates,
            "coef": coef,
            "se": se,
            "hr": np.exp(coef),
            "lcl": np.exp(coef - z * se),
            "ucl": np.exp(coef + z * se),
            "p": 2 * stats.norm.sf(np.abs(coef / se)),
        }
    )


def cox_table(data: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    """The Cox models of the figure (see module docstring) as one table."""
    d = data.copy()
    d["T2"] = (d["tertile"] == TERTILES[1]).astype(float)
    d["T3"] = (d["tertile"] == TERTILES[2]).astype(float)
    n, events = len(d), int(d["event"].sum())
    rows = []
    res = cox_model(d, ["shannon"]).assign(model="Shannon (continuous)", term="per 1-unit higher Shannon")
    rows.append(res)
    res = cox_model(d, ["T2", "T3"]).assign(model="Shannon tertiles (T1 = reference)")
    res["term"] = [f"{TERTILES[1]} vs {TERTILES[0]}", f"{TERTILES[2]} vs {TERTILES[0]}"]
    rows.append(res)
    if ctx.unblinded and "arm" in d.columns and set(ARMS) <= set(d["arm"].dropna()):
        da = d[d["arm"].isin(ARMS)].assign(capsule=lambda x: (x["arm"] == "CAPSULE").astype(float))
        res = cox_model(da, ["shannon", "capsule"]).assign(model="Shannon + arm")
        res["term"] = [
            "per 1-unit higher Shannon (adjusted for arm)",
            f"{arm_label('CAPSULE', ctx)} vs {arm_label('PLACEBO', ctx)}",
        ]
        rows.append(res.assign(n=len(da), events=int(da["event"].sum())))
    out = pd.concat(rows, ignore_index=True)
    out["n"] = out["n"].fillna(n).astype(int) if "n" in out.columns else n
    out["events"] = out["events"].fillna(events).astype(int) if "events" in out.columns else events
    return out[["model", "term", "n", "events", "coef", "se", "hr", "lcl", "ucl", "p"]]


def _hr_text(row: pd.Series) -> str:
    return f"HR {row['hr']:.3f} (95 % CI {row['lcl']:.3f}–{row['ucl']:.3f}), p = {fmt_p(float(row['p']))}"


def _km_panel(ax: Axes, data: pd.DataFrame, title: str, at_months: np.ndarray) -> list[list[int]]:
    """KM curves per tertile on ``ax`` (censor ticks); returns numbers at risk per tertile at ``at_months``."""
    risk = []
    for tertile in TERTILES:
        sub = data[data["tertile"] == tertile]
        if sub.empty:
            risk.append([0] * len(at_months))
            continue
        km = kaplan_meier(sub["months"], sub["event"])
        t = np.concatenate([[0.0], km["time"].to_numpy(float)])
        s = np.concatenate([[1.0], km["surv"].to_numpy(float)])
        ax.step(t, s, where="post", color=TERTILE_COLOURS[tertile], lw=1.5, label=f"{tertile} (n={len(sub)})", gid="km")
        cens = km[km["n_censor"] > 0]
        ax.plot(cens["time"], cens["surv"], ls="", marker="|", markersize=6, color=TERTILE_COLOURS[tertile])
        risk.append(list(numbers_at_risk(sub["months"], at_months)))
    ax.set_ylim(0, 1.03)
    ax.set_title(title, loc="left", fontsize=9)
    ax.legend(loc="lower left", fontsize=6.5)
    return risk


def diversity_pfs_figure(data: pd.DataFrame, cox: pd.DataFrame, ctx: ReportContext) -> ReportFigure:
    """KM of PFS by baseline Shannon tertile (unblinded: also within each arm), Cox HRs in the caption."""
    split = ctx.unblinded and "arm" in data.columns and set(ARMS) <= set(data["arm"].dropna())
    groups: list[tuple[str, pd.DataFrame]] = [("All patients", data)]
    if split:
        groups += [(arm_label(a, ctx), data[data["arm"] == a]) for a in ARMS]
    horizon = float(np.ceil(data["months"].max() / 3.0) * 3.0) if len(data) else 3.0
    at = np.arange(0.0, horizon + 1e-9, 3.0 if horizon <= 24 else 6.0)
    lr = logrank_test(data["time"], data["event"], data["tertile"])
    with style.report_style():
        fig = new_figure(4.6 if not split else 4.4, 6.4 if not split else style.FIGURE_WIDTH_IN)
        grid = fig.add_gridspec(2, len(groups), height_ratios=[4.0, 1.0])
        first = None
        for k, (title, sub) in enumerate(groups):
            ax = fig.add_subplot(grid[0, k], sharey=first)
            first = first or ax
            risk = _km_panel(ax, sub, title, at)
            ax.set_xlim(0, horizon)
            ax.set_xticks(at)
            if k == 0:
                ax.set_ylabel("progression-free survival")
            table = fig.add_subplot(grid[1, k], sharex=ax)
            for i, (tertile, counts) in enumerate(zip(TERTILES, risk, strict=True)):
                for x, c in zip(at, counts, strict=True):
                    table.text(
                        x, 2 - i, str(int(c)), ha="center", va="center", fontsize=6.5, color=TERTILE_COLOURS[tertile]
                    )
            table.set_ylim(-0.6, 2.6)
            table.set_yticks([2, 1, 0], ["T1", "T2", "T3"] if k == 0 else ["", "", ""], fontsize=7)
            table.tick_params(axis="x", labelsize=7)
            table.set_xlabel("months since randomisation")
            for side in ("left", "top", "right"):
                table.spines[side].set_visible(False)
            table.tick_params(axis="y", length=0, pad=14)  # keeps T1..T3 clear of the counts at month 0
            if k == 0:
                table.set_title("numbers at risk", loc="left", fontsize=7, fontweight="normal")
            ax.tick_params(labelbottom=False)
    bounds = tertile_bounds(data["shannon"])
    cont = cox[cox["model"] == "Shannon (continuous)"].iloc[0]
    t2, t3 = (cox[cox["model"].str.startswith("Shannon tertiles")].iloc[i] for i in (0, 1))
    text = (
        "Progression-free survival (RECIST 1.1, derived) by tertile of baseline Shannon diversity (unrarefied, "
        f"natural log; T1 {bounds[0][0]:.2f}–{bounds[0][1]:.2f}, T2 ≤ {bounds[1][1]:.2f}, T3 ≤ {bounds[2][1]:.2f}); "
        f"Kaplan–Meier with censoring ticks. Log-rank across tertiles χ² = {lr.chi2:.2f} ({lr.df} df), "
        f"p = {fmt_p(lr.p)}. Cox model (Efron ties): {_hr_text(cont)} per 1-unit higher Shannon; T2 vs T1 "
        f"{_hr_text(t2)}; T3 vs T1 {_hr_text(t3)}"
    )
    if split:
        adj = cox[cox["model"] == "Shannon + arm"].iloc[0]
        text += f"; adjusted for arm {_hr_text(adj)} per unit. Panels per arm use the same tertile cut points"
    counts = data["tertile"].value_counts().reindex(list(TERTILES)).fillna(0).astype(int)
    n = f"{len(data)} patients ({int(data['event'].sum())} PFS events; tertiles " + "/".join(map(str, counts)) + ")"
    key = {
        "Cox HR per 1-unit Shannon": _hr_text(cont),
        "Cox HR T2 vs T1": _hr_text(t2),
        "Cox HR T3 vs T1": _hr_text(t3),
        "log-rank p (tertiles)": fmt_p(lr.p),
    }
    return ReportFigure(
        slug="int_diversity_pfs_km",
        section=SECTION,
        title="Baseline diversity and progression-free survival",
        caption=ctx.caption(text, "randomised patients with a sequenced baseline faecal sample", n),
        figure=fig,
        key_values=key,
    )


# ================================================================================================ entry point


def figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure | ReportTable]:
    """Every integration figure/table the warehouse has the tables for (see :data:`FIGURE_TABLES`)."""
    lacking = missing_tables(con, FIGURE_TABLES)
    out: list[ReportFigure | ReportTable] = []
    if "int_genus_metabolite_heatmap" not in lacking:
        corr = read_table(con, "analysis.metabolite_genus_correlations")
        if len(corr) and "genus_differential" in corr.columns:
            fig = heatmap_figure(corr, ctx)
            if fig is not None:
                out.append(fig)
    if "int_diversity_pfs_km" not in lacking:
        alpha = read_table(con, "analysis.alpha_diversity")
        adtte = read_table(con, "analysis.adtte")
        data = shannon_pfs_data(alpha.drop(columns=["arm"], errors="ignore"), adtte, read_arms(con, ctx))
        if len(data) >= 6 and data["event"].sum() > 0:
            cox = cox_table(data, ctx)
            out.append(diversity_pfs_figure(data, cox, ctx))
            out.append(
                ReportTable(
                    slug="int_diversity_pfs_cox",
                    section=SECTION,
                    title="Cox models: baseline Shannon diversity and PFS",
                    caption=ctx.caption(
                        "Cox proportional-hazards models of progression-free survival (RECIST 1.1, derived; Efron "
                        "ties) on baseline Shannon diversity: continuous (per 1 unit) and by tertile (T1 = "
                        "reference); Wald 95 % CI and p" + ("; and adjusted for arm" if ctx.unblinded else ""),
                        "randomised patients with a sequenced baseline faecal sample",
                        f"{len(data)} patients, {int(data['event'].sum())} events",
                    ),
                    frame=cox,
                )
            )
    return out
