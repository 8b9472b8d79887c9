"""ADTTE derivation: PFS censoring rules, OS, DOR, TTR and the data cut-off (spec §0, §4)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.response import best_overall_response
from analysis.tte import (
    ADTTE_COLUMNS,
    apply_data_cutoff,
    derive_adtte,
    derive_dor,
    derive_os,
    derive_pfs,
    derive_ttr,
    missed_assessments,
)

RAND = pd.Timestamp("2024-01-01")


def day(d):
    return RAND + pd.Timedelta(days=d)


def subject(sid="S", death=None, alive=400, nact=None, baseline=True):
    return {
        "subject_id": sid,
        "randomisation_date": RAND,
        "death_date": None if death is None else day(death),
        "last_alive_date": None if alive is None else day(alive),
        "nact_date": None if nact is None else day(nact),
        "has_baseline_assessment": baseline,
        "arm": "A",
    }


def resp(pairs, sid="S"):
    return pd.DataFrame(
        {
            "subject_id": sid,
            "assessment_date": [day(d) for d, _ in pairs],
            "overall_response": [r for _, r in pairs],
            "seq": list(range(1, len(pairs) + 1)),
        }
    )


def pfs(pairs, config=DEFAULT_CONFIG, cutoff=None, **subj):
    s = pd.DataFrame([subject(**subj)])
    r = resp(pairs) if pairs else resp([]).astype({"assessment_date": "datetime64[ns]"})
    return derive_pfs(s, r, cutoff, config, carry=["arm"]).iloc[0]


# ------------------------------------------------------------------------------------------------ PFS


def test_pd_is_the_event_with_aval_plus_one():
    row = pfs([(42, "SD"), (84, "PD")])
    assert (row["CNSR"], row["ADT"], row["AVAL"]) == (0, day(84), 85)
    assert row["EVNTDESC"] == "PROGRESSIVE DISEASE"
    assert (row["SRCDOM"], row["SRCVAR"], row["SRCSEQ"]) == ("ADRS", "ADT", 2)
    assert row["arm"] == "A"


def test_death_before_pd_and_same_day_tie():
    row = pfs([(42, "SD")], death=70)
    assert (row["CNSR"], row["ADT"], row["EVNTDESC"], row["SRCVAR"]) == (0, day(70), "DEATH", "DTHDT")
    row = pfs([(42, "SD"), (84, "PD")], death=84)
    assert row["EVNTDESC"] == "PROGRESSIVE DISEASE"


def test_censored_at_last_adequate_assessment_never_ne():
    row = pfs([(42, "SD"), (84, "PR"), (126, "NE")])
    assert (row["CNSR"], row["ADT"], row["AVAL"]) == (1, day(84), 85)
    assert row["CNSDTDSC"] == "LAST ADEQUATE ASSESSMENT" and row["SRCSEQ"] == 2


def test_no_post_baseline_assessment_censored_at_randomisation():
    row = pfs([])
    assert (row["CNSR"], row["ADT"], row["AVAL"]) == (4, RAND, 1)
    assert row["CNSDTDSC"] == "RANDOMIZATION DATE" and row["SRCVAR"] == "RANDDT"
    row = pfs([(42, "NE")])
    assert (row["CNSR"], row["AVAL"]) == (4, 1)
    row = pfs([(42, "SD")], baseline=False)
    assert (row["CNSR"], row["AVAL"]) == (5, 1)


def test_new_anticancer_therapy_censors_before_it():
    row = pfs([(42, "SD"), (84, "SD"), (126, "PD")], nact=100)
    assert (row["CNSR"], row["ADT"]) == (2, day(84))
    assert row["EVNTDESC"] == "NEW ANTI-CANCER THERAPY"
    row = pfs([(42, "SD"), (84, "SD")], nact=84)  # scan on the NACT day is not "before" it
    assert (row["CNSR"], row["ADT"]) == (2, day(42))
    row = pfs([(42, "SD"), (84, "PD")], nact=100)  # NACT after PD: the event stands
    assert row["CNSR"] == 0
    off = replace(DEFAULT_CONFIG, pfs_apply_nact_rule=False)
    assert pfs([(42, "SD"), (84, "SD"), (126, "PD")], config=off, nact=100)["CNSR"] == 0


@pytest.mark.parametrize(
    ("event_day", "cnsr"),
    [(175, 0), (176, 3)],  # L = day 84: E − L > 2·42 + 7 = 91 -> censored
)
def test_two_missed_assessments_boundary(event_day, cnsr):
    row = pfs([(42, "SD"), (84, "SD"), (event_day, "PD")])
    assert row["CNSR"] == cnsr
    if cnsr:
        assert row["ADT"] == day(84) and row["EVNTDESC"] == "EVENT AFTER >= 2 MISSED ASSESSMENTS"


def test_missed_assessment_rule_uses_late_schedule_after_week_48():
    # L = day 336 (week 48); next scheduled 399, 462; E − L > 2·63 + 7 = 133 -> censored
    assert pfs([(336, "SD"), (336 + 133, "PD")])["CNSR"] == 0
    assert pfs([(336, "SD"), (336 + 134, "PD")])["CNSR"] == 3
    assert missed_assessments(np.array([84.0]), np.array([176.0])).tolist() == [2]
    assert missed_assessments(np.array([0.0]), np.array([91.0])).tolist() == [1]


def test_death_without_scans():
    assert pfs([], death=60)["CNSR"] == 0  # before two scheduled assessments were missed
    row = pfs([], death=120)
    assert (row["CNSR"], row["ADT"], row["AVAL"]) == (3, RAND, 1)


def test_ne_visits_and_the_missed_assessment_clock():
    pairs = [(42, "SD"), (84, "NE"), (126, "NE"), (160, "PD")]
    assert pfs(pairs)["CNSR"] == 3  # NE counts as missed (default)
    cfg = replace(DEFAULT_CONFIG, pfs_ne_counts_as_missed=False)
    row = pfs(pairs, config=cfg)
    assert (row["CNSR"], row["ADT"]) == (0, day(160))
    off = replace(DEFAULT_CONFIG, pfs_apply_missed_assessment_rule=False)
    assert pfs(pairs, config=off)["CNSR"] == 0


def test_data_cutoff_drops_later_events():
    row = pfs([(42, "SD"), (84, "SD"), (126, "PD")], cutoff=day(100))
    assert (row["CNSR"], row["ADT"]) == (1, day(84))
    row = pfs([(42, "SD")], cutoff=day(100), death=150)
    assert row["CNSR"] == 1


# ------------------------------------------------------------------------------------------------ OS


def test_os_event_and_censoring_and_cutoff():
    s = pd.DataFrame([subject("D", death=200, alive=190), subject("A", alive=300), subject("L", death=500, alive=450)])
    os_ = derive_os(s).set_index("subject_id")
    assert os_.loc["D", ["CNSR", "AVAL", "EVNTDESC"]].tolist() == [0, 201, "DEATH"]
    assert os_.loc["A", ["CNSR", "AVAL", "CNSDTDSC"]].tolist() == [6, 301, "LAST KNOWN ALIVE DATE"]
    r = resp([(84, "SD"), (350, "SD")], sid="L")
    cut = derive_os(s, cutoff=day(400), responses=r).set_index("subject_id")
    assert cut.loc["L", ["CNSR", "ADT"]].tolist() == [6, day(350)]  # last known alive <= cut-off
    cfg = replace(DEFAULT_CONFIG, os_censor_at_cutoff_when_known_alive=True)
    cut = derive_os(s, cutoff=day(400), config=cfg).set_index("subject_id")
    assert cut.loc["L", ["CNSR", "ADT", "CNSDTDSC"]].tolist() == [6, day(400), "DATA CUT-OFF"]
    assert cut.loc["A", "ADT"] == day(300)
    alive = pd.DataFrame({"subject_id": ["A", "A"], "date": [day(320), day(420)]})
    cut = derive_os(s, cutoff=day(400), alive_dates=alive).set_index("subject_id")
    assert cut.loc["A", "ADT"] == day(320)


def test_os_never_before_randomisation():
    s = pd.DataFrame([subject("X", alive=None)])
    row = derive_os(s).iloc[0]
    assert (row["CNSR"], row["AVAL"]) == (6, 1)


def test_cutoff_drops_subjects_randomised_later():
    s = pd.DataFrame([subject("X"), {**subject("Y"), "randomisation_date": day(50)}])
    kept, _, _ = apply_data_cutoff(day(40), s)
    assert kept["subject_id"].tolist() == ["X"]


# ------------------------------------------------------------------------------------------------ DOR, TTR


def test_dor_from_first_response_and_ttr():
    s = pd.DataFrame([subject("R"), subject("C"), subject("N")])
    r = pd.concat(
        [
            resp([(42, "PR"), (84, "PR"), (126, "PD")], "R"),
            resp([(42, "SD"), (84, "PR"), (126, "PR"), (168, "NE")], "C"),
            resp([(42, "SD"), (84, "PD")], "N"),
        ]
    )
    b = best_overall_response(r, s, confirmed=True)
    dor = derive_dor(s, r, b).set_index("subject_id")
    assert sorted(dor.index) == ["C", "R"]
    assert dor.loc["R", ["STARTDT", "ADT", "AVAL", "CNSR"]].tolist() == [day(42), day(126), 85, 0]
    assert dor.loc["C", ["STARTDT", "ADT", "AVAL", "CNSR"]].tolist() == [day(84), day(126), 43, 1]
    ttr = derive_ttr(s, b).set_index("subject_id")
    assert ttr.loc["C", ["AVAL", "CNSR"]].tolist() == [85, 0]
    all_ = derive_adtte(s, r, b, carry=["arm"])
    assert list(all_.columns) == [*ADTTE_COLUMNS, "arm"]
    assert all_.groupby("PARAMCD").size().to_dict() == {"DOR": 2, "OS": 3, "PFS": 3, "TTR": 2}
    assert all_["AVAL"].min() >= 1
    assert set(all_["CNSR"]) <= {0, 1, 2, 3, 4, 5, 6}
    mr = derive_adtte(s, r, b, paramcd_suffix="_MR")
    assert set(mr["PARAMCD"]) == {"PFS_MR", "DOR_MR", "TTR_MR"}


def test_dor_censoring_rules_follow_pfs():
    s = pd.DataFrame([subject("R", nact=130)])
    r = resp([(42, "PR"), (84, "PR"), (126, "SD"), (168, "PD")], "R")
    b = best_overall_response(r, s.drop(columns="nact_date"), confirmed=True)
    row = derive_dor(s, r, b).iloc[0]
    assert (row["CNSR"], row["ADT"], row["AVAL"]) == (2, day(126), 85)
