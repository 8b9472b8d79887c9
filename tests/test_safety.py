"""Safety derivations: TEAE flag, AE tables at maximum grade, CTCAE v5 lab grades, Hy's law, exposure (spec §5)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.safety import (
    ae_by_soc_term,
    ae_overview,
    ctcae_grade,
    dose_intensity,
    exposure_summary,
    flag_first_worst,
    flag_teae,
    grade_labs,
    hys_law_screen,
    worst_lab_grades,
)

TRTS = pd.Timestamp("2024-01-10")
TRTE = pd.Timestamp("2024-06-30")


def d(days):
    return TRTS + pd.Timedelta(days=days)


def subjects(n=4, arms=("CAPSULE", "PLACEBO")):
    return pd.DataFrame(
        {
            "subject_id": [f"S{i}" for i in range(n)],
            "treatment_start_date": TRTS,
            "treatment_end_date": TRTE,
            "arm": [arms[i % len(arms)] for i in range(n)],
        }
    )


def ae_row(sid, start, end=None, grade=1, soc="GI", term="Diarrhoea", **kw):
    return {"subject_id": sid, "soc": soc, "term": term, "start_date": start, "end_date": end, "grade": grade} | kw


# ------------------------------------------------------------------------------------------------ TEAE


def test_teae_rules_in_order():
    s = subjects(2)
    s.loc[1, "treatment_start_date"] = pd.NaT
    ae = pd.DataFrame(
        [
            ae_row("S0", d(5)),  # on treatment
            ae_row("S0", d(-20), d(-2)),  # ended before treatment
            ae_row("S0", None),  # start missing -> TEAE (conservative)
            ae_row("S0", TRTE + pd.Timedelta(days=30)),  # last day of the 30-day window
            ae_row("S0", TRTE + pd.Timedelta(days=31)),  # outside 30, inside 90
            ae_row("S0", d(-5), None, grade=3, initial_grade=1),  # pre-existing, worsened
            ae_row("S0", d(-5), None, grade=1, initial_grade=1),  # pre-existing, not worsened
            ae_row("S1", d(5)),  # not treated
        ]
    )
    out = flag_teae(ae, s)
    assert out["trtemfl"].tolist() == [True, False, True, True, False, True, False, False]
    assert out["trtemfl_extended"].tolist() == [True, False, True, True, True, True, False, False]
    s2 = subjects(1)
    s2["treatment_end_date"] = pd.NaT  # still on treatment: open-ended
    assert flag_teae(pd.DataFrame([ae_row("S0", d(400))]), s2)["trtemfl"].tolist() == [True]


# ------------------------------------------------------------------------------------------------ AE tables


def test_subject_counted_once_at_maximum_grade():
    s = subjects(4)
    ae = pd.DataFrame(
        [
            ae_row("S0", d(1), grade=2),
            ae_row("S0", d(9), grade=5, soc="CARDIAC", term="Cardiac arrest"),
            ae_row("S0", d(3), grade=1),
            ae_row("S2", d(2), grade=3),
            ae_row("S2", d(4), grade=None, soc="SKIN", term="Rash"),  # missing grade
            ae_row("S1", d(2), grade=4, soc="SKIN", term="Rash"),
        ]
    )
    tab = ae_by_soc_term(ae, s, "arm")
    key = tab.set_index(["level", "soc", "term", "grade_group", "group"])["n"]
    # S0 (CAPSULE): max 5 overall -> Any, Grade 5, Grade 3-5, not Grade 3-4
    assert key[("OVERALL", "ANY", "ANY", "Grade 5", "CAPSULE")] == 1
    assert key[("OVERALL", "ANY", "ANY", "Grade 3-4", "CAPSULE")] == 1  # S2 (grade 3)
    assert key[("OVERALL", "ANY", "ANY", "Grade 3-5", "CAPSULE")] == 2
    assert key[("OVERALL", "ANY", "ANY", "Grade 1-2", "CAPSULE")] == 0
    assert key[("SOC", "GI", "ANY", "Grade 1-2", "CAPSULE")] == 1  # S0's GI max is 2
    assert key[("PT", "GI", "Diarrhoea", "Any Grade", "CAPSULE")] == 2
    assert key[("SOC", "SKIN", "ANY", "Any Grade", "CAPSULE")] == 0  # S2's rash has no grade: excluded
    assert key[("SOC", "SKIN", "ANY", "Grade 3-4", "PLACEBO")] == 1
    assert (tab["N"] == 2).all()
    # SOC order: by descending overall frequency (GI 2 > SKIN 1 = CARDIAC 1, then alphabetical)
    socs = tab[tab["level"].eq("SOC")]["soc"].drop_duplicates().tolist()
    assert socs == ["GI", "CARDIAC", "SKIN"]
    imp = ae_by_soc_term(ae, s, "arm", replace(DEFAULT_CONFIG, ae_missing_grade="impute"))
    k2 = imp.set_index(["level", "soc", "term", "grade_group", "group"])["n"]
    assert k2[("SOC", "SKIN", "ANY", "Grade 3-4", "CAPSULE")] == 1
    pooled = ae_by_soc_term(ae, s)
    assert set(pooled["group"]) == {"POOLED"} and (pooled["N"] == 4).all()


def test_ae_overview_rows():
    s = subjects(4)
    ae = pd.DataFrame(
        [
            ae_row("S0", d(1), grade=3, serious="Y", related_lenvatinib="PROBABLE", related_pd1="UNLIKELY",
                   related_capsule="NOT RELATED", action_lenvatinib="DOSE REDUCED", action_pd1="DOSE NOT CHANGED",
                   immune_related="N"),
            ae_row("S1", d(1), grade=2, serious="N", related_lenvatinib="NOT RELATED", related_pd1="DEFINITE",
                   related_capsule="NOT RELATED", action_lenvatinib="DOSE NOT CHANGED", action_pd1="DRUG WITHDRAWN",
                   immune_related="Y"),
            ae_row("S1", d(210), grade=2, serious="Y", related_lenvatinib="NOT RELATED", related_pd1="NOT RELATED",
                   related_capsule="NOT RELATED", action_lenvatinib="DOSE NOT CHANGED", action_pd1="DOSE NOT CHANGED",
                   immune_related="Y"),
        ]
    )  # fmt: skip
    ov = ae_overview(ae, s, "arm")
    get = ov.set_index(["category", "group"])["n"]
    assert get[("Any TEAE", "CAPSULE")] == 1 and get[("Any TEAE", "PLACEBO")] == 1
    assert get[("TEAE related to lenvatinib", "CAPSULE")] == 1
    assert get[("TEAE related to PD-1 antibody", "PLACEBO")] == 1
    assert get[("Grade >=3 TEAE", "CAPSULE")] == 1
    assert get[("Serious TEAE", "PLACEBO")] == 0  # the SAE started 38 days after the last dose (TRTE = day 172)
    assert get[("Serious TEAE (90-day window)", "PLACEBO")] == 1
    assert get[("TEAE leading to lenvatinib dose reduction", "CAPSULE")] == 1
    assert get[("TEAE leading to PD-1 antibody discontinuation", "PLACEBO")] == 1
    assert get[("Immune-related TEAE", "PLACEBO")] == 1
    assert (ov["N"] == 2).all() and ov["pct"].max() == 50.0


def test_first_worst_flags():
    ae = pd.DataFrame(
        [ae_row("S0", d(3), grade=2), ae_row("S0", d(1), grade=3), ae_row("S0", d(2), grade=3, soc="SKIN", term="Rash")]
    )
    out = flag_first_worst(flag_teae(ae, subjects(1)))
    assert out["aoccifl"].tolist() == [False, True, False]
    assert out["aoccsifl"].tolist() == [False, True, True]


# ------------------------------------------------------------------------------------------------ lab grades


def _grade(code, value, lln=np.nan, uln=np.nan, base=np.nan, base_high=False):
    n = len(value)
    as_s = lambda v: pd.Series(v if isinstance(v, list) else [v] * n)  # noqa: E731
    g = ctcae_grade(as_s(code), as_s(value), as_s(lln), as_s(uln), as_s(base), as_s(base_high))
    return [None if pd.isna(x) else int(x) for x in g]


def test_alt_grades_depend_on_baseline():
    # normal baseline (ULN 40): >ULN 1, >3x 2, >5x 3, >20x 4
    assert _grade("ALT", [40, 41, 120, 121, 201, 801], uln=40) == [0, 1, 1, 2, 3, 4]
    # abnormal baseline 80: 1.0-1.5x baseline grade 0, >=1.5x 1, >3x 2, >5x 3, >20x 4
    assert _grade("ALT", [100, 119, 120, 241, 401, 1601], uln=40, base=80, base_high=True) == [0, 0, 1, 2, 3, 4]
    assert _grade("AST", [119, 120], uln=40, base=80, base_high=True) == [0, 1]


def test_bilirubin_alp_creatinine_grades():
    assert _grade("BILI", [21, 22, 31, 32, 64, 211], uln=21) == [0, 1, 1, 2, 3, 4]
    assert _grade("BILI", [30, 31, 46, 91, 301], uln=21, base=30, base_high=True) == [0, 1, 2, 3, 4]
    assert _grade("ALP", [199, 200, 251], uln=120, base=100, base_high=True) == [0, 1, 2]
    # creatinine: worst of the ULN and baseline criteria
    assert _grade("CREAT", [100, 101, 136, 151, 271, 601], uln=100, base=90) == [0, 1, 2, 2, 3, 4]


def test_low_direction_and_inr_grades():
    assert _grade("PLAT", [150, 149, 74, 49, 24], lln=150) == [0, 1, 2, 3, 4]
    assert _grade("PLAT", [149, 74], lln=np.nan) == [None, 2]  # grade 1 needs the LLN
    assert _grade("NEUT", [1.9, 1.4, 0.9, 0.4], lln=2.0) == [1, 2, 3, 4]
    assert _grade("ALB", [35, 34, 29, 19], lln=35) == [0, 1, 2, 3]
    assert _grade("INR", [1.2, 1.21, 1.6, 2.6]) == [0, 1, 2, 3]
    assert _grade("AFP", [1000.0]) == [None]


def test_grade_labs_baseline_and_worst():
    s = subjects(2)
    labs = pd.DataFrame(
        {
            "subject_id": ["S0"] * 4 + ["S1"] * 3,
            "test_code": ["ALT"] * 4 + ["ALT"] * 3,
            "lab_date": [d(-10), d(0), d(30), d(60), d(-3), d(20), d(40)],
            "value": [70, 80, 110, 130, 30, 130, 90],
            "lln": 0,
            "uln": 40,
        }
    )
    g = grade_labs(labs, s)
    s0 = g[g["subject_id"].eq("S0")]
    assert s0["ablfl"].tolist() == [False, True, False, False]
    assert s0["bnrind"].iloc[0] == "HIGH" and s0["base"].iloc[0] == 80
    assert s0["atoxgr"].tolist() == [0, 0, 0, 1]  # baseline-relative: 110 < 120, 130 >= 120
    s1 = g[g["subject_id"].eq("S1")]
    assert s1["atoxgr"].tolist() == [0, 2, 1]  # normal baseline: ULN-relative
    w = worst_lab_grades(g).set_index("subject_id")
    assert w.loc["S0", "worst_grade"] == 1 and w.loc["S1", "worst_grade"] == 2
    assert w.loc["S1", "shift"] == "0 -> 2"


def test_hys_law_screen():
    labs = pd.DataFrame(
        {
            "subject_id": ["A", "A", "B", "B", "C", "C"],
            "test_code": ["ALT", "BILI", "AST", "BILI", "ALT", "BILI"],
            "lab_date": [d(10), d(20), d(10), d(25), d(10), d(5)],
            "value": [130, 45, 125, 50, 200, 60],
            "uln": [40, 21, 40, 21, 40, 21],
        }
    )
    out = hys_law_screen(labs).set_index("subject_id")
    assert out["hys_law"].to_dict() == {"A": True, "B": False, "C": False}  # B: 15 days; C: bilirubin before
    assert out.loc["A", "alt_ast_xref"] == pytest.approx(3.25)
    # baseline variant: A's baseline ALT 60 makes 130 < 3 x 60
    base = pd.DataFrame({"subject_id": ["A"], "test_code": ["ALT"], "lab_date": [d(-1)], "value": [60], "uln": [40]})
    out2 = hys_law_screen(pd.concat([labs, base]), subjects(1).assign(subject_id="A"), reference="baseline")
    assert not out2.set_index("subject_id").loc["A", "hys_law"]


# ------------------------------------------------------------------------------------------------ exposure


def test_dose_intensity_and_capsule_compliance():
    ex = pd.DataFrame(
        [
            {"drug": "LENVATINIB", "start_date": d(0), "end_date": d(9), "dose": 12, "frequency": "QD"},
            {"drug": "LENVATINIB", "start_date": d(10), "end_date": d(19), "dose": 8, "frequency": "QD"},
            {"drug": "PD-1 ANTIBODY", "start_date": d(0), "end_date": d(0), "dose": 200, "frequency": "Q3W"},
            {"drug": "PD-1 ANTIBODY", "start_date": d(21), "end_date": d(21), "dose": 200, "frequency": "Q3W"},
            {"drug": "PD-1 ANTIBODY", "start_date": d(63), "end_date": d(63), "dose": 200, "frequency": "Q3W"},
        ]
        + [
            {
                "drug": "STUDY CAPSULES",
                "start_date": d(21 * k),
                "end_date": d(21 * k + 9),
                "dose": 6,
                "frequency": "QD",
                "capsules_taken": taken,
            }
            for k, taken in enumerate([60, 60, 30, 60])
        ]
    )
    ex["subject_id"] = "S0"
    ex["planned_dose"] = ex["drug"].map({"LENVATINIB": 12, "PD-1 ANTIBODY": 200, "STUDY CAPSULES": 6})
    di = dose_intensity(ex).set_index("drug")
    assert di.loc["LENVATINIB", "cumulative_dose"] == 200
    assert di.loc["LENVATINIB", "planned_cumulative_dose"] == 240
    assert di.loc["LENVATINIB", "relative_dose_intensity_pct"] == pytest.approx(100 * 200 / 240)
    assert di.loc["LENVATINIB", "duration_days"] == 20
    assert di.loc["PD-1 ANTIBODY", "duration_days"] == 84  # last infusion day 63 + 21
    assert di.loc["PD-1 ANTIBODY", "relative_dose_intensity_pct"] == pytest.approx(75.0)  # 3 of 4 cycles
    assert di.loc["STUDY CAPSULES", "capsule_compliance_pct"] == pytest.approx(87.5)
    assert bool(di.loc["STUDY CAPSULES", "compliant"])
    summ = exposure_summary(di.reset_index(), subjects(1))
    comp = summ[summ["variable"].eq("compliant")]
    assert comp["pct_yes"].tolist() == [100.0]
