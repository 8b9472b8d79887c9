"""The trial report's clinical sections (issue 8): efficacy and safety figures and tables against the warehouse.

Warehouses: the shared full demo warehouses (``_warehouse.full_demo_warehouse``: 30 patients, every analysis asset
and the report asset ``reports/trial_report`` run on the shared raw + dbt marts, blinded, and an unblinded twin whose
``marts.adsl.arm_code`` comes from the demo's randomisation list). They are built once per session (file lock,
shared with ``test_report_html.py``, ``test_report_omics.py`` and the xdist workers) and opened read-only.

Values are asserted against the stored endpoint tables and direct SQL on the marts; the subgroup Cox hazard ratios
against R ``survival::coxph`` when ``Rscript`` with ``survival`` is installed (oracle tests).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from _warehouse import full_demo_warehouse

from analysis.report import efficacy, safety
from analysis.report.build import ARM_PATTERN, scan_for_arms
from analysis.report.coxph import km_product_limit
from analysis.report.figure import ReportContext, ReportFigure
from analysis.report.style import BlindingError

pytestmark = pytest.mark.slow

RSCRIPT = shutil.which("Rscript")


# ------------------------------------------------------------------------------------------------ warehouses


@dataclass(frozen=True)
class ReportWarehouses:
    blinded: Path
    unblinded: Path
    #: what the two Dagster runs reported about the trial report asset (path, figures, tables, checks)
    runs: dict

    def report(self, unblinded: bool) -> Path:
        return Path(self.runs["unblinded" if unblinded else "blinded"]["path"])

    def connect(self, unblinded: bool) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.unblinded if unblinded else self.blinded), read_only=True)


def report_warehouses(tmp_path_factory: pytest.TempPathFactory) -> ReportWarehouses:
    """The shared full warehouses (``_warehouse.full_demo_warehouse``, built once per session), blinded and unblinded,
    with the trial report their refresh wrote."""
    blinded = full_demo_warehouse(tmp_path_factory)
    unblinded = full_demo_warehouse(tmp_path_factory, unblinded=True)
    runs = {"blinded": blinded.build["report"], "unblinded": unblinded.build["report"]}
    return ReportWarehouses(blinded.warehouse, unblinded.warehouse, runs)


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> ReportWarehouses:
    return report_warehouses(tmp_path_factory)


def ctx_for(unblinded: bool) -> ReportContext:
    return ReportContext(cutoff=None, unblinded=unblinded, run_date=dt.date(2025, 1, 1))


def df(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.sql(sql).df()


# ------------------------------------------------------------------------------------------------ Kaplan-Meier


@pytest.mark.parametrize("unblinded", [False, True])
def test_km_curves_medians_and_numbers_at_risk_match_the_stored_tables(wh: ReportWarehouses, unblinded: bool) -> None:
    ctx = ctx_for(unblinded)
    with wh.connect(unblinded) as con:
        figs = {f.slug: f for f in efficacy.km_figures(con, ctx)}
        summary = df(con, "select * from analysis.survival_summary")
        km = df(con, "select * from analysis.km_estimates")
        comps = df(con, "select * from analysis.survival_comparisons")
    assert {"km_pfs", "km_os"} <= set(figs)
    month = 30.4375
    for param in ("PFS", "OS"):
        fig = figs[f"km_{param.lower()}"]
        s = summary[summary["PARAMCD"].eq(param)].set_index("group")
        assert set(s.index) == ({"CAPSULE", "PLACEBO"} if unblinded else {"POOLED"})
        ax, risk_ax = fig.figure.axes[0], fig.figure.axes[1]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        for group, row in s.iterrows():
            # median (95% CI) in the legend equals analysis.survival_summary
            med = efficacy.fmt_num(row["median"] / month)
            label = [t for t in legend if t.startswith("All patients" if group == "POOLED" else group.capitalize())]
            assert len(label) == 1 and f"n = {int(row['n'])}, {int(row['events'])} events" in label[0]
            assert (f"median {med} months" in label[0]) if math.isfinite(row["median"]) else "not reached" in label[0]
            assert f"95% CI {efficacy.fmt_num(row['lcl'] / month)}–" in label[0]
        # the drawn step curves are the stored KM estimates (0 -> 1 prepended)
        steps = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        assert len(steps) == len(s)
        for line, group in zip(steps, sorted(s.index), strict=True):
            k = km[km["PARAMCD"].eq(param) & km["group"].eq(group)].sort_values("time")
            np.testing.assert_allclose(line.get_ydata()[1:], k["surv"].to_numpy(), rtol=0, atol=1e-12)
            np.testing.assert_allclose(line.get_xdata()[1:], k["time"].to_numpy() / month, rtol=1e-12)
        # numbers at risk: the first column (t = 0) equals N of each group
        at_zero = sorted(int(t.get_text()) for t in risk_ax.texts if t.get_position()[0] == 0)
        assert at_zero == sorted(int(n) for n in s["n"])
        if unblinded:
            strat = comps[comps["PARAMCD"].eq(param) & comps["stratified"]].iloc[0]
            assert any(f"{strat['hr']:.2f} (95% CI {strat['hr_lcl']:.2f}–{strat['hr_ucl']:.2f})" in t for t in legend)
        else:
            assert not any("HR" in t for t in legend)


def test_km_figure_refuses_a_km_table_that_does_not_describe_the_adtte(wh: ReportWarehouses) -> None:
    with wh.connect(False) as con:
        km = df(con, "select * from analysis.km_estimates where PARAMCD = 'PFS'")
        adtte = df(con, "select * from analysis.adtte where PARAMCD = 'PFS'")
    assert efficacy.check_km_against_adtte(km, adtte) < 1e-12
    bad = km.copy()
    bad.loc[bad.index[3], "surv"] += 0.01
    with pytest.raises(ValueError, match="differs"):
        efficacy.check_km_against_adtte(bad, adtte)
    # the check's product-limit refit is lifelines' KaplanMeierFitter
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(adtte["AVAL"].astype(float), adtte["CNSR"].eq(0).astype(int))
    times = np.r_[0.0, km["time"].to_numpy(float), km["time"].to_numpy(float) + 0.5]
    np.testing.assert_allclose(
        km_product_limit(adtte["AVAL"], adtte["CNSR"].eq(0), times),
        kmf.survival_function_at_times(times).to_numpy(),
        rtol=0,
        atol=1e-14,
    )


def test_lifelines_median_equals_the_survival_summary(wh: ReportWarehouses) -> None:
    from lifelines import KaplanMeierFitter

    with wh.connect(False) as con:
        adtte = df(con, "select * from analysis.adtte where PARAMCD = 'PFS'")
        median = float(df(con, "select median from analysis.survival_summary where PARAMCD = 'PFS'").iloc[0, 0])
    kmf = KaplanMeierFitter().fit(adtte["AVAL"], adtte["CNSR"].eq(0))
    # lifelines takes the first time with S <= 0.5; R (survival_summary) the midpoint of a flat segment at exactly
    # 0.5: equal unless S hits 0.5 exactly
    s_at = float(kmf.survival_function_at_times([kmf.median_survival_time_]).iloc[0])
    if abs(s_at - 0.5) > 1e-12:
        assert kmf.median_survival_time_ == median
    else:
        assert median >= kmf.median_survival_time_


def test_a_blinded_context_refuses_arm_groups(wh: ReportWarehouses) -> None:
    with wh.connect(True) as con, pytest.raises(BlindingError):
        efficacy.km_figures(con, ctx_for(False))


# ------------------------------------------------------------------------------------------------ forest


def test_forest_blinded_is_prognostic_and_unblinded_is_by_treatment(wh: ReportWarehouses) -> None:
    with wh.connect(False) as con:
        items = efficacy.forest_items(con, ctx_for(False))
    fig, table = items
    assert isinstance(fig, ReportFigure)
    t = table.frame
    assert set(t["factor"]) == set(efficacy.SUBGROUPS)
    refs = t[t["level"].eq(t["reference"])]
    assert (refs["hr"] == 1.0).all()
    assert "prognostic" in fig.caption and "not treatment effects" in fig.caption
    # every level's n adds up to the ITT population per factor
    with wh.connect(False) as con:
        n_itt = int(df(con, "select count(*) from marts.adsl where itt_fl = 'Y'").iloc[0, 0])
    assert (t.groupby("factor")["n"].sum() <= n_itt).all()
    with wh.connect(True) as con:
        _fig_u, table_u = efficacy.forest_items(con, ctx_for(True))
    tu = table_u.frame
    assert tu.iloc[0]["factor"] == "ALL" and tu.iloc[0]["n"] == n_itt
    assert {"n_CAPSULE", "n_PLACEBO", "interaction_p"} <= set(tu.columns)
    assert (tu["n_CAPSULE"] + tu["n_PLACEBO"] == tu["n"]).all()


def _rscript(code: str) -> list[float]:
    out = subprocess.run([RSCRIPT, "-e", code], capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0 and "there is no package called" in out.stderr:
        pytest.skip("R package survival not installed")
    assert out.returncode == 0, out.stderr
    return [float(x) for x in re.findall(r"VALUE=(\S+)", out.stdout)]


@pytest.mark.oracle
@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not installed (apt install r-base-core r-cran-survival)")
def test_forest_hazard_ratios_match_r_coxph(wh: ReportWarehouses, tmp_path: Path) -> None:
    """Blinded prognostic HR (multi-level factor) and unblinded treatment HR within a subgroup and the
    interaction LR p, each against R ``coxph`` (Efron ties) to 1e-6 relative."""
    with wh.connect(False) as con:
        blind = efficacy.pfs_subgroup_data(con, ctx_for(False))
    with wh.connect(True) as con:
        unbl = efficacy.pfs_subgroup_data(con, ctx_for(True))
    prog = efficacy.prognostic_subgroups(blind)
    row = prog[prog["factor"].eq("bclc_stage") & ~prog["level"].eq("B") & prog["hr"].notna()].iloc[0]
    treat = efficacy.treatment_subgroups(unbl)
    trow = treat[treat["factor"].eq("weight_band") & treat["hr"].notna()].iloc[0]
    blind.to_csv(tmp_path / "blind.csv", index=False)
    unbl.to_csv(tmp_path / "unbl.csv", index=False)
    r = _rscript(
        f"""
        suppressPackageStartupMessages(library(survival))
        b <- read.csv("{tmp_path / "blind.csv"}", colClasses = c(bclc_stage = "character"))
        b$f <- relevel(factor(b$bclc_stage), ref = "B")
        fit <- coxph(Surv(AVAL, event) ~ f, data = b, ties = "efron")
        cat(sprintf("VALUE=%.12g\\n", exp(coef(fit)[["f{row["level"]}"]])))
        cat(sprintf("VALUE=%.12g\\n", exp(confint(fit)[["f{row["level"]}", 1]])))
        u <- read.csv("{tmp_path / "unbl.csv"}", colClasses = c(weight_band = "character"))
        u$trt <- as.numeric(u$arm == "CAPSULE")
        s <- u[u$weight_band == "{trow["level"]}", ]
        fit2 <- coxph(Surv(AVAL, event) ~ trt, data = s, ties = "efron")
        cat(sprintf("VALUE=%.12g\\n", exp(coef(fit2)[["trt"]])))
        m0 <- coxph(Surv(AVAL, event) ~ trt + weight_band, data = u)
        m1 <- coxph(Surv(AVAL, event) ~ trt * weight_band, data = u)
        cat(sprintf("VALUE=%.12g\\n", anova(m0, m1)[["Pr(>|Chi|)"]][2]))
        """
    )
    hr_r, lcl_r, trt_hr_r, inter_r = r
    assert row["hr"] == pytest.approx(hr_r, rel=1e-6)
    assert row["lcl"] == pytest.approx(lcl_r, rel=1e-6)
    assert trow["hr"] == pytest.approx(trt_hr_r, rel=1e-6)
    usable = unbl.groupby(["weight_band", "arm"])["event"].sum()
    if len(usable) == 4 and (usable > 0).all():  # else levels without events are left out of our LR test
        assert trow["interaction_p"] == pytest.approx(inter_r, rel=1e-5)


def test_report_cox_fit_equals_lifelines(wh: ReportWarehouses) -> None:
    """The report's Cox fit (numpy, Efron ties) against lifelines' CoxPHFitter, without R: a multi-level factor
    (blinded prognostic model) and the arm x factor interaction model (unblinded), coefficients, SEs and the
    log-likelihood of the LR tests."""
    import warnings

    from lifelines import CoxPHFitter

    from analysis.report.coxph import cox_efron

    with wh.connect(False) as con:
        blind = efficacy.pfs_subgroup_data(con, ctx_for(False))
    with wh.connect(True) as con:
        unbl = efficacy.pfs_subgroup_data(con, ctx_for(True))
    d = blind.dropna(subset=["bclc_stage"])
    # a multi-level factor: every stage present except the commonest (the reference)
    stages = d["bclc_stage"].value_counts().index[1:]
    assert len(stages) >= 1
    x_blind = pd.DataFrame({f"L{lv}": d["bclc_stage"].eq(lv).astype(float) for lv in stages})
    arm = unbl["arm"].eq("CAPSULE").astype(float)
    heavy = unbl["weight_band"].eq(">60 kg").astype(float)
    x_unbl = pd.DataFrame({"arm": arm, "heavy": heavy, "armx": arm * heavy})
    cases = [(d["AVAL"], d["event"], x_blind), (unbl["AVAL"], unbl["event"], x_unbl)]
    for time, event, x in cases:
        mine = cox_efron(time, event, x.to_numpy())
        frame = x.reset_index(drop=True).assign(_T=time.to_numpy(float), _E=event.to_numpy(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = CoxPHFitter().fit(
                frame,
                "_T",
                "_E",
                fit_options={"precision": 1e-12, "r_precision": 1e-14, "step_size": 0.95, "max_steps": 500},
            )
        assert mine.converged
        np.testing.assert_allclose(mine.coef, ref.params_[list(x.columns)].to_numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(mine.se, ref.standard_errors_[list(x.columns)].to_numpy(), rtol=1e-6)
        assert mine.log_likelihood == pytest.approx(ref.log_likelihood_, rel=1e-9)
        assert mine.log_likelihood >= ref.log_likelihood_ - 1e-9  # at least as close to the maximum
    # a monotone likelihood (every event of one group before the other's) runs off and is reported not estimable
    t = np.arange(1.0, 21.0)
    fit = efficacy.fit_cox(t, np.ones(20), pd.DataFrame({"g": (t > 10).astype(float)}))
    assert abs(fit.coef[0]) > efficacy.MAX_ABS_LOG_HR
    assert all(math.isnan(v) for v in efficacy._wald(float(fit.coef[0]), float(fit.se[0]), 1.96))


def test_subgroup_cox_on_a_known_vector() -> None:
    """clinical-endpoints.md §8.2 test data, unstratified: R ``coxph(Surv(t, e) ~ arm)`` (survival 3.5) gives
    HR 0.4645147125 (0.1458050745, 1.4798793448); stratified by s it is the spec's 0.4715."""
    t = [2, 3, 3, 5, 6, 8, 9, 12, 14, 15, 4, 6, 7, 7, 10, 11, 13, 16, 18, 20]
    e = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0]
    arm = ["PLACEBO"] * 10 + ["CAPSULE"] * 10
    data = pd.DataFrame({"AVAL": t, "event": e, "arm": arm, "g": ["x"] * 20})
    out = efficacy.treatment_subgroups(data, {"g": ("G", "x", ("x",))})
    assert out.iloc[0]["hr"] == pytest.approx(0.4645147125, rel=1e-6)
    assert out.iloc[0]["lcl"] == pytest.approx(0.1458050745, rel=1e-6)
    assert out.iloc[0]["ucl"] == pytest.approx(1.4798793448, rel=1e-6)
    # blinded: the same split as a factor (level PLACEBO vs reference CAPSULE) gives 1 / HR
    prog = efficacy.prognostic_subgroups(data.assign(f=data["arm"]), {"f": ("F", "CAPSULE", ("CAPSULE", "PLACEBO"))})
    assert prog.set_index("level").loc["PLACEBO", "hr"] == pytest.approx(1 / 0.4645147125, rel=1e-6)


# ------------------------------------------------------------------------------------------------ tumour response


@pytest.mark.parametrize("unblinded", [False, True])
def test_waterfall_has_one_bar_per_measurable_patient_with_a_post_baseline_assessment(
    wh: ReportWarehouses, unblinded: bool
) -> None:
    ctx = ctx_for(unblinded)
    with wh.connect(unblinded) as con:
        fig = efficacy.waterfall_figure(efficacy.best_percent_change(con, ctx), ctx)
        expected = df(
            con,
            """
            select t.subject_id, min(t.pchg) as best
            from analysis.recist_timepoint_responses as t
            join marts.adsl as a using (subject_id)
            where a.measurable_disease_fl = 'Y' and t.criterion = 'RECIST 1.1' and t.target_complete
              and t.pchg is not null
            group by t.subject_id
            """,
        )
    bars = [p for ax in fig.figure.axes for p in ax.patches]
    assert len(bars) == len(expected) > 0
    assert fig.key_values["waterfall patients"] == str(len(expected))
    assert f"n = {len(expected)};" in fig.caption
    heights = sorted(b.get_height() for b in bars)
    np.testing.assert_allclose(heights, sorted(expected["best"]), atol=1e-12)


def test_swimmer_and_spider_cover_the_expected_patients(wh: ReportWarehouses) -> None:
    ctx = ctx_for(False)
    with wh.connect(False) as con:
        sw = efficacy.swimmer_figure(efficacy.swimmer_data(con, ctx), ctx, 30.4375)
        spider = efficacy.spider_figure(con, ctx)
        n_safety = int(df(con, "select count(*) from marts.adsl where safety_fl = 'Y'").iloc[0, 0])
        n_spider = int(
            df(
                con,
                "select count(distinct subject_id) from analysis.recist_timepoint_responses "
                "where criterion = 'RECIST 1.1' and target_complete and pchg is not null",
            ).iloc[0, 0]
        )
    assert len(sw.figure.axes[0].patches) == n_safety
    assert f"n = {n_safety};" in sw.caption
    assert len(spider.figure.axes[0].get_lines()) == n_spider + 3  # one per patient + the 3 reference lines


# ------------------------------------------------------------------------------------------------ safety


def _count(cell: str) -> int:
    return int(str(cell).split(" ")[0])


@pytest.mark.parametrize("unblinded", [False, True])
def test_ae_table_counts_match_direct_sql(wh: ReportWarehouses, unblinded: bool) -> None:
    ctx = ctx_for(unblinded)
    with wh.connect(unblinded) as con:
        table = safety.ae_soc_term_table(con, ctx).frame
        direct = df(
            con,
            """
            select s.arm_code as grp, ae.ctcae_term as term, count(distinct ae.subject_id) as n_any,
                   count(distinct case when ae.ctcae_grade >= 3 then ae.subject_id end) as n_g3,
                   any_value(d.n_safety) as n_safety
            from marts.adverse_events as ae
            join marts.adsl as s on ae.subject_id = s.subject_id and s.safety_fl = 'Y'
            join (select arm_code, count(*) as n_safety from marts.adsl where safety_fl = 'Y' group by arm_code)
              as d on d.arm_code = s.arm_code
            where ae.treatment_emergent_fl = 'Y' and ae.ctcae_grade is not null
            group by all
            """,
        )
    assert not unblinded or set(direct["grp"]) == {"CAPSULE", "PLACEBO"}
    terms = table[~table["Preferred term"].eq("(any term)")].set_index("Preferred term")
    assert set(terms.index) == set(direct["term"])
    for _, r in direct.iterrows():
        label = "All patients" if not unblinded else {"CAPSULE": "Capsule arm", "PLACEBO": "Placebo arm"}[r["grp"]]
        head = f"{label} (N={int(r['n_safety'])})"
        assert _count(terms.loc[r["term"], f"{head}: any grade"]) == r["n_any"], r["term"]
        assert _count(terms.loc[r["term"], f"{head}: grade ≥3"]) == r["n_g3"], r["term"]
        assert f"({100 * r['n_any'] / r['n_safety']:.1f}%)" in terms.loc[r["term"], f"{head}: any grade"]
    if not unblinded:
        assert [c for c in table.columns if "N=" in c] == [c for c in table.columns if c.startswith("All patients (N=")]


@pytest.mark.parametrize("unblinded", [False, True])
def test_lab_shift_table_totals(wh: ReportWarehouses, unblinded: bool) -> None:
    ctx = ctx_for(unblinded)
    with wh.connect(unblinded) as con:
        shift = safety.lab_shift_table(con, ctx).frame
        tox = df(con, "select * from analysis.lab_toxicity")
        summ = df(con, "select * from analysis.lab_toxicity_summary")
    shift["code"] = shift["Test"].str.split(" ").str[0]
    keys = ["Group", "code"] if unblinded else ["code"]
    totals = shift.groupby(keys)["Total"].sum()
    grp = tox["arm"].map({"CAPSULE": "Capsule arm", "PLACEBO": "Placebo arm"}) if unblinded else None
    expected = tox.groupby([grp, tox["test_code"]] if unblinded else tox["test_code"]).size()
    assert totals.to_dict() == {k: int(v) for k, v in expected.items()}
    # column sums of worst grade k equal analysis.lab_toxicity_summary (patients with a post-baseline grade)
    for _, r in summ.iterrows():
        sel = shift["code"].eq(r["test_code"])
        if unblinded:
            sel &= shift["Group"].eq({"CAPSULE": "Capsule arm", "PLACEBO": "Placebo arm"}[r["group"]])
        for k in range(5):
            assert shift.loc[sel, f"Worst grade {k}"].sum() == r[f"grade_{k}"]


def test_albi_summary_uses_the_grade_cutoffs_and_visit_medians(wh: ReportWarehouses) -> None:
    ctx = ctx_for(False)
    with wh.connect(False) as con:
        fig = safety.albi_figure(con, ctx)
        raw = safety.albi_by_visit(con, ctx)
    ax = fig.figure.axes[0]
    hlines = sorted({round(line.get_ydata()[0], 2) for line in ax.get_lines() if len(set(line.get_ydata())) == 1})
    assert {-2.6, -1.39} <= set(hlines)
    summ = safety.albi_summary(raw, ctx)
    base = raw[raw["visit"].str.upper().str.startswith("SCREEN")].groupby("subject_id")["albi_score"].mean()
    assert summ.iloc[0]["median"] == pytest.approx(float(base.median()))


# ------------------------------------------------------------------------------------------------ reports


def test_report_assets_ran_and_checks_passed(wh: ReportWarehouses) -> None:
    for name in ("blinded", "unblinded"):
        run = wh.runs[name]
        assert run["checks"] == {"sections_built": True}
        assert run["figures"] >= 8
        assert Path(run["path"]).name == "index.html" and Path(run["path"]).parent.name == dt.date.today().isoformat()


def test_blinded_report_contains_no_arm_strings(wh: ReportWarehouses) -> None:
    folder = wh.report(False).parent
    assert scan_for_arms(folder) == []
    for path in folder.rglob("*"):
        if path.suffix in {".html", ".svg", ".csv", ".json"}:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"CAPSULE|PLACEBO|Capsule arm|Placebo arm", text), path
    html = wh.report(False).read_text(encoding="utf-8")
    assert "BLINDED" in html and "UNBLINDED" not in html


def test_unblinded_report_shows_arms_and_is_owner_only(wh: ReportWarehouses) -> None:
    index = wh.report(True)
    html = index.read_text(encoding="utf-8")
    assert "UNBLINDED" in html and "Capsule arm" in html and "Placebo arm" in html
    assert ARM_PATTERN.search(html)
    folder = index.parent
    for path in [folder.parent, folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.parametrize("unblinded", [False, True])
def test_every_caption_states_population_cutoff_blinding_and_n(wh: ReportWarehouses, unblinded: bool) -> None:
    manifest = json.loads((wh.report(unblinded).parent / "manifest.json").read_text())
    ctx = ReportContext(None, unblinded, dt.date.today())
    items = manifest["items"]
    assert sum(i["kind"] == "figure" for i in items) >= 8
    for item in items:
        c = item["caption"]
        assert "Population: " in c and re.search(r"n = \d+", c), item["slug"]
        assert ctx.cutoff_text in c and ctx.blinding_text in c, item["slug"]
    html = wh.report(unblinded).read_text(encoding="utf-8")
    assert not re.search(r"https?://", html)
    assert {i["slug"] for i in items} >= {
        "km_pfs",
        "km_os",
        "km_dor",
        "forest_pfs_subgroups",
        "waterfall_best_change",
        "swimmer_treatment",
        "spider_change",
        "ae_overview",
        "ae_by_soc_term",
        "lab_shift",
        "albi_over_time",
    }
