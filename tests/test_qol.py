"""EORTC QLQ-C30 scoring (manual rules), change from baseline and time to deterioration (spec §6)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.qol import QLQ_C30_SCALES, change_from_baseline, score_qlq_c30, time_to_deterioration

RAND = pd.Timestamp("2024-01-10")


def items(answers: dict[int, float | None], sid="S", visit="BL", date=RAND, code_style=False):
    return pd.DataFrame(
        {
            "subject_id": sid,
            "visit": visit,
            "assessment_date": date,
            "item": [f"QLQ{i:02d}" if code_style else i for i in answers],
            "response": list(answers.values()),
        }
    )


def scores_of(df):
    s = score_qlq_c30(df)
    return s.set_index("scale")["score"]


def test_spec_check_cases_pf_and_ql():
    """Items 1-5 = (1, 2, 1, 1, 1) -> RS 1.2 -> PF = 93.33; item 29 = 5 with 30 missing -> QL = 66.67."""
    s = scores_of(items({1: 1, 2: 2, 3: 1, 4: 1, 5: 1, 29: 5, 30: None}))
    assert s["PF2"] == pytest.approx(93.333333, abs=1e-5)
    assert s["QL2"] == pytest.approx(66.666667, abs=1e-5)


def test_item_codes_are_accepted():
    s = scores_of(items({1: 1, 2: 2, 3: 1, 4: 1, 5: 1}, code_style=True))
    assert s["PF2"] == pytest.approx(93.333333, abs=1e-5)


def test_half_items_rule():
    # FA (3 items) needs 2; EF (4 items) needs 2; PF (5 items) needs 3; RF (2 items) needs 1
    s = scores_of(items({10: 2, 21: 1, 22: 3, 1: 2, 2: 2, 6: 4}))
    assert np.isnan(s["FA"])
    assert s["EF"] == pytest.approx(100 * (1 - (2 - 1) / 3))
    assert np.isnan(s["PF2"])
    assert s["RF2"] == pytest.approx(0.0)
    s = scores_of(items({10: 2, 12: 3, 1: 2, 2: 2, 3: 2}))
    assert s["FA"] == pytest.approx(100 * (2.5 - 1) / 3)
    assert s["PF2"] == pytest.approx(100 * (1 - 1 / 3))


def test_transformations_and_ranges():
    worst = {i: 4 for i in range(1, 29)} | {29: 1, 30: 1}
    best = {i: 1 for i in range(1, 29)} | {29: 7, 30: 7}
    w, b = scores_of(items(worst)), scores_of(items(best))
    for name, sc in QLQ_C30_SCALES.items():
        if sc.kind == "symptom":
            assert (w[name], b[name]) == (100.0, 0.0)
        else:
            assert (w[name], b[name]) == (0.0, 100.0)
    assert w["SUMSC"] == 0.0 and b["SUMSC"] == 100.0


def test_summary_score_needs_all_13_components():
    answers = {i: 2 for i in range(1, 31)}
    s = scores_of(items(answers))
    func = [s[k] for k in ("PF2", "RF2", "EF", "CF", "SF")]
    sym = [100 - s[k] for k in ("FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI")]
    assert s["SUMSC"] == pytest.approx(np.mean(func + sym))
    answers[8] = None  # DY missing -> summary missing; QL2 and FI are not components
    assert np.isnan(scores_of(items(answers))["SUMSC"])
    answers[8], answers[28] = 2, None
    assert not np.isnan(scores_of(items(answers))["SUMSC"])


def _longitudinal(pf_answers, days, sid="S"):
    parts = [
        items({1: a, 2: a, 3: a, 4: a, 5: a, 10: a, 12: a, 18: a}, sid, f"V{k}", RAND + pd.Timedelta(days=d))
        for k, (a, d) in enumerate(zip(pf_answers, days, strict=True))
    ]
    return pd.concat(parts, ignore_index=True)


def test_change_from_baseline():
    sc = score_qlq_c30(_longitudinal([1, 2, 1], [-2, 42, 84]))
    ch = change_from_baseline(sc, pd.DataFrame({"subject_id": ["S"], "randomisation_date": [RAND]}))
    pf = ch[ch["scale"].eq("PF2")]
    assert pf["ablfl"].tolist() == [True, False, False]
    assert pf["chg"].round(6).tolist() == [0.0, -33.333333, 0.0]


@pytest.mark.parametrize(
    ("definition", "answers", "expected"),
    [
        ("first", [1, 2, 1, 1], (0, 43)),  # PF drops 33 points at day 42
        ("definitive", [1, 2, 1, 1], (1, 127)),  # recovered later: censored at the last assessment
        ("definitive", [1, 1, 2, 2], (0, 85)),
        ("confirmed", [1, 2, 1, 2], (0, 43)),  # second worsening >= 7 days later
        ("confirmed", [1, 1, 1, 2], (1, 127)),  # worsening at the last assessment, subject alive
    ],
)
def test_time_to_deterioration(definition, answers, expected):
    sc = score_qlq_c30(_longitudinal(answers, [-2, 42, 84, 126]))
    subj = pd.DataFrame({"subject_id": ["S"], "randomisation_date": [RAND]})
    cfg = replace(DEFAULT_CONFIG, deterioration_definition=definition)
    ttd = time_to_deterioration(sc, subj, scales=["PF2", "FA"], config=cfg).set_index("PARAMCD")
    assert (ttd.loc["TTD_PF2", "CNSR"], ttd.loc["TTD_PF2", "AVAL"]) == expected
    # FA (symptom) moves with PF in this design: an increase is the worsening
    assert ttd.loc["TTD_FA", "CNSR"] == expected[0]


def test_ttd_confirmed_by_death_and_missing_baseline():
    sc = score_qlq_c30(pd.concat([_longitudinal([1, 1, 2], [-2, 42, 84]), _longitudinal([1, 2], [42, 84], "N")]))
    subj = pd.DataFrame(
        {
            "subject_id": ["S", "N", "Z"],
            "randomisation_date": [RAND] * 3,
            "death_date": [RAND + pd.Timedelta(days=90)] + [pd.NaT] * 2,
        }
    )
    cfg = replace(DEFAULT_CONFIG, deterioration_definition="confirmed")
    ttd = time_to_deterioration(sc, subj, scales=["PF2"], config=cfg).set_index("subject_id")
    assert ttd.loc["S", ["CNSR", "AVAL"]].tolist() == [0, 85]
    assert ttd.loc["N", ["CNSR", "AVAL", "EVNTDESC"]].tolist() == [5, 1, "NO BASELINE ASSESSMENT"]
    assert ttd.loc["Z", ["CNSR", "AVAL"]].tolist() == [5, 1]
