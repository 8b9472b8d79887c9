"""Safety section of the trial report: TEAE tables, lab shift tables and ALBI over time.

All counts come from the tables the safety endpoint asset wrote (``analysis.ae_summary``, ``analysis.ae_by_soc_term``,
``analysis.lab_toxicity``, ``analysis.hepatic_function``), so the report and the warehouse agree:

* TEAE overview and TEAEs by SOC / preferred term: subjects counted once per row at their worst CTCAE grade
  (tern/chevron AET04), ``n (%)`` with ``% = 100·n/N`` and N = the safety population of the column (patients who
  received any study treatment; per arm in unblinded runs, pooled otherwise). "Grade ≥3" is the stored grade group
  ``Grade 3-5``.
* Lab shift tables (CTCAE v5, baseline-dependent for ALT/AST/bilirubin, spec §5.3): patients by baseline grade
  (rows) and worst post-baseline grade (columns), "Missing" where no graded draw exists; every patient of the
  safety population with a lab record of the test appears once, so each table's total equals the patients in
  ``analysis.lab_toxicity`` for that test (and group).
* ALBI score over time (Johnson et al., JCO 2015;33:550: ``ALBI = 0.66·log10(bilirubin µmol/L) − 0.085·albumin g/L``;
  grade 1 ≤ −2.60 < grade 2 ≤ −1.39 < grade 3): median and interquartile range per nominal visit (the lab visit of the
  draw), visits with at least :data:`MIN_PATIENTS_PER_VISIT` patients.
"""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd

from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.style import OKABE_ITO, group_colour, group_label, new_figure, report_style

SECTION = "safety"
SAFETY_POPULATION = "safety population (patients who received any study treatment)"
ALBI_CUTOFFS: tuple[float, float] = (-2.60, -1.39)
MIN_PATIENTS_PER_VISIT = 10
#: Display order of the lab tests in the shift tables.
LAB_ORDER: tuple[str, ...] = ("ALT", "AST", "BILI", "ALP", "GGT", "ALB", "PLAT", "NEUT", "INR", "CREAT")
GRADES: tuple[int, ...] = (0, 1, 2, 3, 4)
MISSING = "Missing"


def _df(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.sql(sql).df()


def _check_groups(frame: pd.DataFrame, ctx: ReportContext, col: str = "group") -> list[str]:
    groups = sorted(frame[col].astype(str).unique())
    for g in groups:
        group_colour(g, ctx.unblinded)  # BlindingError for an arm in a blinded report
    return groups


def n_pct(n: int, big_n: int) -> str:
    """``n (x.x%)``; ``0`` without a percentage."""
    return f"{n} ({100.0 * n / big_n:.1f}%)" if n and big_n else "0"


def _group_header(g: str, big_n: int, ctx: ReportContext) -> str:
    label = "All patients" if g == "POOLED" else group_label(g, ctx.unblinded)
    return f"{label} (N={big_n})"


# ------------------------------------------------------------------------------------------------ AE tables


def ae_overview_table(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> ReportTable:
    s = _df(con, "select * from analysis.ae_summary")
    groups = _check_groups(s, ctx)
    big_n = s.groupby("group")["n_population"].max().astype(int)
    order = list(dict.fromkeys(s["category"]))
    out = pd.DataFrame({"Category": [c.replace(">=", "≥") for c in order]})
    for g in groups:
        sub = s[s["group"].eq(g)].set_index("category")
        out[_group_header(g, int(big_n[g]), ctx)] = [
            n_pct(int(sub.loc[c, "n"]), int(big_n[g])) if c in sub.index else "0" for c in order
        ]
    caption = ctx.caption(
        "Overview of treatment-emergent adverse events: patients with at least one event of each category, n (%) of "
        "the column's safety population",
        SAFETY_POPULATION,
        int(big_n.sum()),
    )
    return ReportTable("ae_overview", SECTION, "Treatment-emergent adverse events: overview", caption, out)


def ae_soc_term_table(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> ReportTable:
    """Worst grade per patient by SOC and preferred term: any grade and grade ≥3, n (%) per group."""
    a = _df(
        con,
        "select * from analysis.ae_by_soc_term where grade_group in ('Any Grade', 'Grade 3-5')",
    )
    groups = _check_groups(a, ctx)
    big_n = a.groupby("group")["n_population"].max().astype(int)
    # keep the stored order (SOC by descending frequency, then PT by descending frequency)
    cells = a[["level", "soc", "term"]].drop_duplicates().reset_index(drop=True)
    wide = a.pivot_table(index=["level", "soc", "term"], columns=["group", "grade_group"], values="n", aggfunc="sum")
    rows = []
    for _, c in cells.iterrows():
        key = (c["level"], c["soc"], c["term"])
        row = {
            "System organ class": "Any TEAE" if c["level"] == "OVERALL" else c["soc"],
            "Preferred term": "" if c["level"] == "PT" else "(any term)",
        }
        if c["level"] == "PT":
            row["Preferred term"] = c["term"]
        for g in groups:
            head = _group_header(g, int(big_n[g]), ctx)
            for gg, label in (("Any Grade", "any grade"), ("Grade 3-5", "grade ≥3")):
                n = wide.loc[key, (g, gg)] if (g, gg) in wide.columns else 0
                row[f"{head}: {label}"] = n_pct(int(0 if pd.isna(n) else n), int(big_n[g]))
        rows.append(row)
    out = pd.DataFrame(rows)
    caption = ctx.caption(
        "Treatment-emergent adverse events by system organ class and CTCAE term: patients counted once per row at "
        "their worst CTCAE grade, n (%) of the column's safety population (any grade; grade 3 or worse). SOC and "
        "terms ordered by descending frequency",
        SAFETY_POPULATION,
        int(big_n.sum()),
    )
    return ReportTable("ae_by_soc_term", SECTION, "TEAEs by system organ class and term (worst grade)", caption, out)


# ------------------------------------------------------------------------------------------------ lab shifts


def _grade_label(x: object) -> str:
    return MISSING if x is None or pd.isna(x) else str(int(x))


def lab_shift_frame(tox: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    """Shift table (long-wide): one row per group, test and baseline grade; columns worst post-baseline grade 0-4,
    Missing and Total (patients)."""
    t = tox.copy()
    t["group"] = t["arm"].astype(str) if ctx.unblinded and "arm" in t.columns else "POOLED"
    groups = _check_groups(t, ctx)
    t["base"] = t["baseline_grade"].map(_grade_label)
    t["worst"] = t["worst_grade"].map(_grade_label)
    cols = [str(g) for g in GRADES] + [MISSING]
    tests = [c for c in LAB_ORDER if c in set(t["test_code"])] + sorted(set(t["test_code"]) - set(LAB_ORDER))
    rows = []
    for g in groups:
        for test in tests:
            sub = t[t["group"].eq(g) & t["test_code"].eq(test)]
            term = str(sub["term"].dropna().iloc[0]) if sub["term"].notna().any() else ""
            counts = pd.crosstab(sub["base"], sub["worst"]).reindex(columns=cols, fill_value=0)
            present = [b for b in cols if b in counts.index]
            for b in present:
                row: dict[str, object] = {}
                if ctx.unblinded:
                    row["Group"] = group_label(g, True)
                row |= {"Test": f"{test} ({term})" if term else test, "Baseline grade": b}
                row |= {f"Worst grade {c}": int(counts.loc[b, c]) for c in cols}
                row["Total"] = int(counts.loc[b].sum())
                rows.append(row)
    return pd.DataFrame(rows)


def lab_shift_table(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> ReportTable:
    tox = _df(con, "select * from analysis.lab_toxicity")
    out = lab_shift_frame(tox, ctx)
    n = tox["subject_id"].nunique()
    caption = ctx.caption(
        "Lab shift tables (CTCAE v5 grades; ALT, AST and bilirubin graded against baseline when the baseline is "
        "abnormal): patients by baseline grade (rows) and worst post-baseline grade (columns) per test; Missing = "
        "no graded draw. "
        "Each test's rows add up to the patients with a record of that test",
        SAFETY_POPULATION,
        n,
    )
    return ReportTable(
        "lab_shift", SECTION, "Lab shift tables: baseline vs worst post-baseline CTCAE grade", caption, out
    )


# ------------------------------------------------------------------------------------------------ ALBI


def _visit_order(visit: str) -> tuple[int, str]:
    if visit.upper().startswith("SCREEN") or visit.upper() == "BASELINE":
        return (0, visit)
    m = re.search(r"CYCLE\s*(\d+)", visit.upper())
    return (int(m.group(1)) if m else 10_000, visit)


def _visit_label(visit: str) -> str:
    if visit.upper().startswith("SCREEN") or visit.upper() == "BASELINE":
        return "BL"
    m = re.search(r"CYCLE\s*(\d+)", visit.upper())
    return f"C{m.group(1)}" if m else visit


def albi_by_visit(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> pd.DataFrame:
    """ALBI score per patient and nominal lab visit (the draw's visit in ``marts.labs``), with the arm if unblinded."""
    arm = ", h.arm" if ctx.unblinded else ""
    return _df(
        con,
        f"""
        with visits as (
            select subject_id, collection_date, min(visit) as visit
            from marts.labs
            where test_code in ('BILI', 'ALB')
            group by subject_id, collection_date
        )
        select h.subject_id, v.visit, h.albi_score{arm}
        from analysis.hepatic_function as h
        join visits as v on v.subject_id = h.subject_id and v.collection_date = h.lab_date
        where h.albi_score is not null
        order by h.subject_id, h.lab_date
        """,
    )


def albi_summary(d: pd.DataFrame, ctx: ReportContext, min_patients: int = MIN_PATIENTS_PER_VISIT) -> pd.DataFrame:
    """Per group and visit: patients, median, Q1 and Q3 of the ALBI score (one value per patient and visit: the
    mean of same-visit draws); visits with fewer than ``min_patients`` patients are dropped."""
    d = d.assign(group=d["arm"].astype(str) if ctx.unblinded and "arm" in d.columns else "POOLED")
    per = d.groupby(["group", "visit", "subject_id"], as_index=False)["albi_score"].mean()
    out = per.groupby(["group", "visit"])["albi_score"].agg(
        n="size", median="median", q1=lambda s: s.quantile(0.25), q3=lambda s: s.quantile(0.75)
    )
    out = out.reset_index()
    out = out[out["n"].ge(min_patients)]
    out["order"] = out["visit"].map(lambda v: _visit_order(str(v))[0])
    return out.sort_values(["group", "order"]).reset_index(drop=True)


def albi_figure(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> ReportFigure:
    raw = albi_by_visit(con, ctx)
    summ = albi_summary(raw, ctx)
    groups = _check_groups(summ, ctx) if len(summ) else []
    visits = sorted(summ["visit"].unique(), key=lambda v: _visit_order(str(v)))
    xpos = {v: i for i, v in enumerate(visits)}
    offsets = {g: (i - (len(groups) - 1) / 2) * 0.22 for i, g in enumerate(groups)}
    with report_style():
        fig = new_figure(height_in=4.4)
        ax = fig.add_axes((0.1, 0.17, 0.8, 0.75))
        lo = min(float(summ["q1"].min()) - 0.2, -3.2) if len(summ) else -3.2
        hi = max(float(summ["q3"].max()) + 0.2, -1.1) if len(summ) else -1.1
        for cut in ALBI_CUTOFFS:
            ax.axhline(cut, color=OKABE_ITO["grey"], lw=0.9, ls="--")
        for y0, y1, text in (
            (lo, ALBI_CUTOFFS[0], "grade 1"),
            (ALBI_CUTOFFS[0], ALBI_CUTOFFS[1], "grade 2"),
            (ALBI_CUTOFFS[1], hi, "grade 3"),
        ):
            ax.text(
                1.01,
                (max(y0, lo) + min(y1, hi)) / 2,
                f"ALBI\n{text}",
                transform=ax.get_yaxis_transform(),
                ha="left",
                va="center",
                fontsize=7.5,
                color="#555555",
            )
        for cut in ALBI_CUTOFFS:
            ax.text(
                1.01,
                cut,
                f"{cut:.2f}".replace("-", "\u2212"),
                transform=ax.get_yaxis_transform(),
                ha="left",
                va="center",
                fontsize=7,
                color="#555555",
            )
        for g in groups:
            s = summ[summ["group"].eq(g)]
            x = np.array([xpos[v] for v in s["visit"]]) + offsets[g]
            colour = group_colour(g, ctx.unblinded)
            label = "All patients" if g == "POOLED" else group_label(g, True)
            ax.errorbar(
                x,
                s["median"],
                yerr=[s["median"] - s["q1"], s["q3"] - s["median"]],
                color=colour,
                marker="o",
                ms=4,
                lw=1.2,
                capsize=2,
                label=f"{label}: median (IQR)",
            )
        n_visit = summ.groupby("visit")["n"].sum()
        ax.set_xticks(range(len(visits)), [f"{_visit_label(str(v))}\n{int(n_visit[v])}" for v in visits])
        ax.set_xlim(-0.7, len(visits) - 0.3)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("Visit and patients (BL = screening/baseline, Cn = cycle n day 1; 21-day cycles)")
        ax.set_ylabel("ALBI score")
        ax.legend(loc="upper left", fontsize=7.5)
        ax.set_title("ALBI score over time", loc="left")
    n = int(raw["subject_id"].nunique())
    caption = ctx.caption(
        "ALBI score (0.66·log10 bilirubin [µmol/L] − 0.085·albumin [g/L]) by visit: median and interquartile range; "
        f"dashed lines at the grade cut-offs −2.60 and −1.39 (higher = worse liver function); visits with at least "
        f"{MIN_PATIENTS_PER_VISIT} patients",
        "patients with a bilirubin and albumin result on the same day",
        n,
    )
    kv = {}
    if len(summ):
        base = summ[summ["order"].eq(0)]
        for _, r in base.iterrows():
            label = "All patients" if r["group"] == "POOLED" else group_label(str(r["group"]), True)
            kv[f"baseline ALBI median (IQR) [{label}]"] = f"{r['median']:.2f} ({r['q1']:.2f} to {r['q3']:.2f})"
    return ReportFigure("albi_over_time", SECTION, "ALBI score over time", caption, fig, kv)


# ------------------------------------------------------------------------------------------------ section


def figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure | ReportTable]:
    """Every safety item (the section contract shared by the report modules)."""
    return [ae_overview_table(con, ctx), ae_soc_term_table(con, ctx), lab_shift_table(con, ctx), albi_figure(con, ctx)]
