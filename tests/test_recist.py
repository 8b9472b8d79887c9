"""RECIST 1.1 / mRECIST time-point responses: the spec's worked check cases (§1.6) and the rules of §1-2."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.recist import (
    MRECIST,
    baseline_disease,
    check_target_selection,
    overall_response,
    sum_of_diameters,
    timepoint_responses,
    timepoint_responses_all,
)

RAND = "2024-01-05"
DATES = ["2024-01-01", "2024-02-16", "2024-03-29", "2024-05-10", "2024-06-21", "2024-08-02"]
VISITS = ["BL", "W6", "W12", "W18", "W24", "W30"]


def lesion(subject, k, lesion_id, category="TARGET", node=False, diameter=None, status=None, **extra):
    """One lesion row at visit index ``k``."""
    row = {
        "subject_id": subject,
        "visit": VISITS[k],
        "assessment_date": DATES[k],
        "lesion_id": lesion_id,
        "category": category,
        "is_node": node,
        "diameter_mm": diameter,
        "nontarget_status": status,
    }
    return row | extra


def target_series(subject, sums, node=False):
    return [lesion(subject, k, "T1", node=node, diameter=v) for k, v in enumerate(sums)]


def subjects_for(rows):
    ids = sorted({r["subject_id"] for r in rows})
    return pd.DataFrame({"subject_id": ids, "randomisation_date": RAND})


def run(rows, config=DEFAULT_CONFIG, criterion="RECIST 1.1"):
    df = pd.DataFrame(rows)
    return timepoint_responses(df, subjects_for(rows), criterion, config)


def responses(rows, col="overall_response", **kw):
    return run(rows, **kw)[col].tolist()


# ------------------------------------------------------------------------------------------------ §1.6 check cases


def test_pd_versus_nadir_although_below_baseline():
    """BASE 100, then 60 (PR, nadir 60), then 72: 72 >= 1.2*60 and +12 mm -> PD although -28 % vs baseline."""
    out = run(target_series("S", [100, 60, 72]))
    assert out["tl_response"].tolist() == ["PR", "PD"]
    assert out["overall_response"].tolist() == ["PR", "PD"]
    last = out.iloc[-1]
    assert last["nadir"] == 60 and last["base"] == 100
    assert last["pchg"] == pytest.approx(-28.0)
    assert last["pchgnad"] == pytest.approx(20.0)
    assert last["chgnad"] == pytest.approx(12.0)


def test_twenty_percent_but_under_five_mm_is_sd():
    """BASE 20, nadir 20, then 24: +20 % but only +4 mm -> SD (5 mm rule)."""
    out = run(target_series("S", [20, 24]))
    assert out["tl_response"].tolist() == ["SD"]
    assert out["pchgnad"].iloc[0] == pytest.approx(20.0)


def test_nodes_below_10mm_are_cr_with_positive_sum():
    """Two target nodes, SA 16+18 at baseline, then 8+9 = 17 (> 0) -> target CR."""
    rows = [
        lesion("S", 0, "N1", node=True, diameter=16),
        lesion("S", 0, "N2", node=True, diameter=18),
        lesion("S", 1, "N1", node=True, diameter=8),
        lesion("S", 1, "N2", node=True, diameter=9),
    ]
    out = run(rows)
    assert out["sod"].iloc[0] == 17
    assert out["tl_response"].iloc[0] == "CR"
    assert out["overall_response"].iloc[0] == "CR"


def test_node_at_10mm_is_not_cr():
    rows = [
        lesion("S", 0, "N1", node=True, diameter=16),
        lesion("S", 1, "N1", node=True, diameter=10),
    ]
    assert run(rows)["tl_response"].iloc[0] == "PR"  # 10 <= 0.7*16 = 11.2, node not < 10 mm


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("threshold", ["PR", "PR", "SD", "SD"]), ("sticky", ["PR", "PR", "PR", "PR"])],
)
def test_eortc_faq_managing_pr(mode, expected):
    """Sums 100 -> 70 -> 70 -> 80 -> 80: time-point labels under both SAP choices (BOR tested in test_response)."""
    cfg = replace(DEFAULT_CONFIG, timepoint_pr_after_response=mode)
    assert responses(target_series("S", [100, 70, 70, 80, 80]), config=cfg) == expected


# ------------------------------------------------------------------------------------------------ target rules


def test_pd_is_checked_before_pr():
    """-35 % vs baseline but +30 % / +15 mm vs nadir 50 -> PD."""
    out = run(target_series("S", [100, 50, 65]))
    assert out["pchg"].iloc[-1] == pytest.approx(-35.0)
    assert out["tl_response"].tolist() == ["PR", "PD"]


def test_exact_thresholds():
    assert responses(target_series("S", [100, 70])) == ["PR"]  # exactly -30 %
    assert responses(target_series("S", [100, 71])) == ["SD"]
    assert responses(target_series("S", [50, 60])) == ["PD"]  # exactly +20 % and +10 mm
    assert responses(target_series("S", [25, 30])) == ["PD"]  # exactly +20 % and exactly +5 mm


def test_unrounded_decimal_sums():
    # 12.3 + 22.9 = 35.2 baseline; 24.64 is exactly -30 % in decimal arithmetic, not in binary floating point
    rows = [lesion("S", 0, "T1", diameter=12.3), lesion("S", 0, "T2", diameter=22.9)]
    rows += [lesion("S", 1, "T1", diameter=8.61), lesion("S", 1, "T2", diameter=16.03)]
    assert run(rows)["tl_response"].iloc[0] == "PR"


def test_percent_rounding_option():
    # -29.96 % is SD unrounded, PR when percent changes are rounded to 1 decimal (-30.0)
    rows = target_series("S", [250.0, 175.1])
    assert responses(rows) == ["SD"]
    assert responses(rows, config=replace(DEFAULT_CONFIG, percent_decimals=1)) == ["PR"]


def test_missing_target_is_ne_unless_partial_sum_is_pd():
    rows = [lesion("S", 0, "T1", diameter=30), lesion("S", 0, "T2", diameter=30)]
    rows += [lesion("S", 1, "T1", diameter=20)]  # T2 not assessed
    rows += [lesion("S", 2, "T1", diameter=80)]  # partial sum 80 >= 1.2*60 and +20 mm -> PD
    out = run(rows)
    assert out["tl_response"].tolist() == ["NE", "PD"]
    assert out["target_complete"].tolist() == [False, False]


def test_not_evaluable_measurement_is_not_assessed():
    rows = target_series("S", [30, 20])
    rows[1]["measurement_status"] = "NOT EVALUABLE"
    assert responses(rows, col="tl_response") == ["NE"]


def test_nadir_uses_prior_complete_assessments_only():
    rows = [lesion("S", 0, "T1", diameter=50), lesion("S", 0, "T2", diameter=50)]
    rows += [lesion("S", 1, "T1", diameter=40)]  # incomplete: partial sum 40 must not become the nadir
    rows += [lesion("S", 2, "T1", diameter=45), lesion("S", 2, "T2", diameter=45)]
    rows += [lesion("S", 3, "T1", diameter=40), lesion("S", 3, "T2", diameter=40)]
    rows += [lesion("S", 4, "T1", diameter=50), lesion("S", 4, "T2", diameter=50)]
    out = run(rows)
    assert out["nadir"].tolist() == [100, 100, 90, 80]
    assert out["tl_response"].tolist() == ["NE", "SD", "SD", "PD"]  # 100 vs nadir 80: +25 %, +20 mm


def test_nadir_is_never_the_current_value():
    sod = sum_of_diameters(pd.DataFrame(target_series("S", [100, 90, 80, 85])), subjects_for([{"subject_id": "S"}]))
    assert sod["nadir"].tolist()[1:] == [100, 90, 80]
    assert sod["ablfl"].tolist() == [True, False, False, False]


def test_too_small_and_disappeared():
    rows = target_series("S", [20, None, None])
    rows[1]["measurement_status"] = "TOO SMALL TO MEASURE"
    rows[2]["measurement_status"] = "DISAPPEARED"
    out = run(rows)
    assert out["sod"].tolist() == [5.0, 0.0]
    assert out["tl_response"].tolist() == ["PR", "CR"]


def test_split_lesion_fragments_are_summed():
    rows = target_series("S", [40])
    rows += [lesion("S", 1, "T1", diameter=15), lesion("S", 1, "T1", diameter=10)]
    assert run(rows)["sod"].iloc[0] == 25


def test_reappearance_after_cr_is_pd():
    rows = target_series("S", [20, 0, 3])
    assert responses(rows) == ["CR", "PD"]
    out = run(rows)
    assert bool(out["reappearance_pd"].iloc[-1])
    off = replace(DEFAULT_CONFIG, reappearance_after_cr_is_pd=False)
    assert responses(rows, config=off) == ["CR", "PR"]  # 3 mm: below the 5 mm floor, 3 <= 0.7*20


def test_baseline_is_last_assessment_on_or_before_randomisation():
    rows = [
        {**lesion("S", 0, "T1", diameter=50), "visit": "SCR1", "assessment_date": "2023-12-01"},
        {**lesion("S", 0, "T1", diameter=40), "visit": "SCR2", "assessment_date": "2024-01-03"},
        lesion("S", 1, "T1", diameter=28),
    ]
    out = run(rows)
    assert out["base"].iloc[0] == 40 and out["visit"].tolist() == ["W6"]
    assert out["tl_response"].iloc[0] == "PR"
    # without a randomisation date the first assessment is the baseline
    out2 = timepoint_responses(pd.DataFrame(rows))
    assert out2["base"].iloc[0] == 50


# ------------------------------------------------------------------------------------------------ non-target, new


def _with_ntl(statuses, sums=(30, 0)):
    rows = target_series("S", list(sums))
    rows += [lesion("S", k, "NT1", "NON-TARGET", status=s) for k, s in enumerate(statuses)]
    return rows


def test_non_target_responses():
    assert responses(_with_ntl(["PRESENT", "ABSENT"]), col="ntl_response") == ["CR"]
    assert responses(_with_ntl(["PRESENT", "ABSENT"])) == ["CR"]
    assert responses(_with_ntl(["PRESENT", "PRESENT"])) == ["PR"]  # TL CR + NON-CR/NON-PD
    assert responses(_with_ntl(["PRESENT", None])) == ["PR"]  # TL CR + NTL NE
    assert responses(_with_ntl(["PRESENT", None]), col="ntl_response") == ["NE"]
    assert responses(_with_ntl(["PRESENT", "UNEQUIVOCAL PROGRESSION"])) == ["PD"]
    assert responses(_with_ntl(["PRESENT", "PRESENT"], sums=(30, 20)), col="ntl_response") == ["NON-CR/NON-PD"]


def test_non_target_node_below_10mm_counts_as_absent():
    rows = target_series("S", [30, 0])
    rows += [lesion("S", 0, "NN", "NON-TARGET", node=True, diameter=12, status="PRESENT")]
    rows += [lesion("S", 1, "NN", "NON-TARGET", node=True, diameter=8, status="PRESENT")]
    assert responses(rows) == ["CR"]


def test_non_measurable_disease_only_table_2():
    rows = [lesion("S", k, "NT1", "NON-TARGET", status=s) for k, s in enumerate(["PRESENT", "PRESENT", "ABSENT"])]
    out = run(rows)
    assert out["tl_response"].tolist() == ["NA", "NA"]
    assert out["overall_response"].tolist() == ["NON-CR/NON-PD", "CR"]


def test_new_lesion_is_pd_and_equivocal_is_back_dated():
    base = target_series("S", [30, 28, 27, 26])
    # unequivocal new lesion
    rows = [*base, lesion("S", 2, "NEW1", "NEW", diameter=12)]
    assert responses(rows) == ["SD", "PD", "SD"]
    # equivocal at W6, confirmed at W12 -> PD back-dated to W6
    rows = [
        *base,
        lesion("S", 1, "NEW1", "NEW", diameter=6, new_lesion_status="EQUIVOCAL"),
        lesion("S", 2, "NEW1", "NEW", diameter=12, new_lesion_status="UNEQUIVOCAL"),
    ]
    out = run(rows)
    assert out["overall_response"].tolist()[:2] == ["PD", "PD"]
    assert out["assessment_date"].iloc[0] == pd.Timestamp(DATES[1])
    # equivocal never confirmed -> not PD
    rows = [*base, lesion("S", 1, "NEW1", "NEW", diameter=6, new_lesion_status="EQUIVOCAL")]
    out = run(rows)
    assert out["overall_response"].tolist() == ["SD", "SD", "SD"]
    assert bool(out["new_lesion_equivocal"].iloc[0])


@pytest.mark.parametrize(
    ("tl", "ntl", "nl", "expected"),
    [
        ("CR", "CR", "N", "CR"),
        ("CR", "NA", "N", "CR"),
        ("CR", "NON-CR/NON-PD", "N", "PR"),
        ("CR", "NE", "N", "PR"),
        ("PR", "NON-CR/NON-PD", "N", "PR"),
        ("PR", "NE", "N", "PR"),
        ("PR", "NA", "N", "PR"),
        ("PR", "CR", "N", "PR"),
        ("SD", "NON-CR/NON-PD", "N", "SD"),
        ("SD", "NE", "N", "SD"),
        ("NE", "NON-CR/NON-PD", "N", "NE"),
        ("PD", "CR", "N", "PD"),
        ("CR", "PD", "N", "PD"),
        ("CR", "CR", "Y", "PD"),
        ("NA", "CR", "N", "CR"),
        ("NA", "NON-CR/NON-PD", "N", "NON-CR/NON-PD"),
        ("NA", "NE", "N", "NE"),
        ("NA", "PD", "N", "PD"),
        ("NA", "CR", "Y", "PD"),
    ],
)
def test_overall_response_table(tl, ntl, nl, expected):
    got = overall_response(pd.Series([tl]), pd.Series([ntl]), pd.Series([nl]))
    assert got.iloc[0] == expected


def test_pd_date_is_earliest_scan_showing_pd_and_other_dates_latest():
    rows = target_series("S", [30, 30])
    rows += [lesion("S", 0, "NT1", "NON-TARGET", status="PRESENT")]
    rows += [{**lesion("S", 1, "NT1", "NON-TARGET", status="PRESENT"), "assessment_date": "2024-02-20"}]
    out = run(rows)
    assert out["overall_response"].iloc[0] == "SD"
    assert out["assessment_date"].iloc[0] == pd.Timestamp("2024-02-20")  # latest scan of the visit
    rows += [{**lesion("S", 1, "NEW1", "NEW", diameter=15), "assessment_date": "2024-02-18"}]
    out = run(rows)
    assert out["overall_response"].iloc[0] == "PD"
    assert out["assessment_date"].iloc[0] == pd.Timestamp("2024-02-18")


# ------------------------------------------------------------------------------------------------ mRECIST


def test_mrecist_viable_tumour_cr_and_no_5mm_floor():
    rows = [
        lesion("S", k, "T1", diameter=d, viable_diameter_mm=v) for k, (d, v) in enumerate([(50, 40), (48, 0), (47, 0)])
    ]
    assert responses(rows) == ["SD", "SD"]
    assert responses(rows, criterion=MRECIST) == ["CR", "CR"]
    rows = [
        lesion("S", k, "T1", diameter=d, viable_diameter_mm=v)
        for k, (d, v) in enumerate([(30, 10), (30, 10), (32, 12)])
    ]
    assert responses(rows, criterion=MRECIST) == ["SD", "PD"]  # +20 %, +2 mm: PD without the 5 mm floor
    with_floor = replace(DEFAULT_CONFIG, mrecist_pd_min_increase_mm=5.0)
    assert responses(rows, criterion=MRECIST, config=with_floor) == ["SD", "SD"]


def test_mrecist_small_new_intrahepatic_lesion_is_equivocal_until_it_grows():
    rows = [lesion("S", k, "T1", diameter=40, viable_diameter_mm=30) for k in range(4)]
    rows += [lesion("S", 1, "NEW1", "NEW", diameter=8, location="LIVER")]
    assert responses(rows, criterion=MRECIST) == ["SD", "SD", "SD"]
    assert responses(rows) == ["PD", "SD", "SD"]  # RECIST 1.1: any unequivocal new lesion
    rows += [lesion("S", 3, "NEW1", "NEW", diameter=12, location="LIVER")]
    assert responses(rows, criterion=MRECIST)[0] == "PD"  # back-dated to its first appearance


def test_nodes_and_atypical_lesions_keep_recist_measurement_under_mrecist():
    rows = [lesion("S", 0, "T1", diameter=40, viable_diameter_mm=30), lesion("S", 0, "N1", node=True, diameter=20)]
    rows += [lesion("S", 1, "T1", diameter=40, viable_diameter_mm=15), lesion("S", 1, "N1", node=True, diameter=19)]
    out = run(rows, criterion=MRECIST)
    assert out["base"].iloc[0] == 50 and out["sod"].iloc[0] == 34


def test_both_criteria_stacked():
    rows = [lesion("S", k, "T1", diameter=50, viable_diameter_mm=v) for k, v in enumerate([40, 0])]
    rows += target_series("R", [40, 20])
    out = timepoint_responses_all(pd.DataFrame(rows), subjects_for(rows))
    got = {(r.subject_id, r.criterion): r.overall_response for r in out.itertuples()}
    assert got == {("R", "RECIST 1.1"): "PR", ("S", "RECIST 1.1"): "SD", ("S", "mRECIST"): "CR"}


# ------------------------------------------------------------------------------------------------ QA, scale


def test_target_selection_findings():
    rows = [lesion("S", 0, f"T{i}", diameter=20, location="LIVER") for i in range(3)]
    rows += [lesion("S", 0, "N1", node=True, diameter=12), lesion("S", 0, "T9", diameter=8, location="LUNG")]
    rows += [lesion("S", 0, "T8", diameter=30, location="BONE")]
    found = check_target_selection(pd.DataFrame(rows))
    kinds = set(found["finding"])
    assert {
        "more than 5 target lesions",
        "more than 2 targets in one organ",
        "non-nodal target < 10 mm",
        "target node short axis < 15 mm",
    } <= kinds


def test_vectorised_speed_on_a_large_trial():
    rng = np.random.default_rng(1)
    rows = []
    n_subj, n_vis, n_les = 250, 8, 4
    sid = np.repeat(np.arange(n_subj), n_vis * n_les)
    vis = np.tile(np.repeat(np.arange(n_vis), n_les), n_subj)
    les = np.tile(np.arange(n_les), n_subj * n_vis)
    diam = np.round(rng.uniform(10, 60, sid.size) * (1 + 0.05 * (vis - 3)), 1)
    start = pd.Timestamp("2024-01-01")
    rows = pd.DataFrame(
        {
            "subject_id": [f"S{i:04d}" for i in sid],
            "visit": [f"V{v}" for v in vis],
            "assessment_date": start + pd.to_timedelta(vis * 42, unit="D"),
            "lesion_id": [f"T{x}" for x in les],
            "category": "TARGET",
            "is_node": les == 3,
            "diameter_mm": diam,
            "nontarget_status": None,
        }
    )
    t0 = time.perf_counter()
    out = timepoint_responses(rows)
    assert time.perf_counter() - t0 < 10
    assert len(out) == n_subj * (n_vis - 1)
    assert set(out["overall_response"]) <= {"CR", "PR", "SD", "PD", "NE"}


def test_baseline_disease_flags():
    rows = target_series("M", [30, 20])
    rows += [lesion("N", k, "NT1", "NON-TARGET", status="PRESENT") for k in range(2)]
    rows += [{**lesion("L", 1, "T1", diameter=30)}]  # first scan after randomisation: no baseline
    subj = pd.DataFrame({"subject_id": ["M", "N", "L", "X"], "randomisation_date": RAND})
    out = baseline_disease(pd.DataFrame(rows), subj).set_index("subject_id")
    assert out["has_baseline_assessment"].to_dict() == {"M": True, "N": True, "L": False, "X": False}
    assert out["measurable_disease"].to_dict() == {"M": True, "N": False, "L": False, "X": False}
