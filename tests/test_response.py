"""BOR / confirmed BOR, ORR/DCR confidence intervals and concordance (spec §3, §8.3)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.recist import timepoint_responses
from analysis.response import (
    best_overall_response,
    clopper_pearson,
    miettinen_nurminen,
    mn_score_statistic,
    prepare_ovr,
    response_concordance,
    response_rates,
)

RAND = pd.Timestamp("2024-01-01")


def seq(*pairs, subject="S"):
    """Responses from (study day, response) pairs; day 0 = randomisation."""
    return pd.DataFrame(
        {
            "subject_id": subject,
            "assessment_date": [RAND + pd.Timedelta(days=d) for d, _ in pairs],
            "overall_response": [r for _, r in pairs],
            "visit": [f"V{i}" for i in range(len(pairs))],
        }
    )


def subj(*ids):
    return pd.DataFrame({"subject_id": list(ids) or ["S"], "randomisation_date": RAND})


def bor(pairs, confirmed=False, config=DEFAULT_CONFIG):
    out = best_overall_response(seq(*pairs), subj(), confirmed, config)
    return out.iloc[0]


# ------------------------------------------------------------------------------------------------ CIs (§8.3)


def test_clopper_pearson_test_vectors():
    assert clopper_pearson(8, 20) == pytest.approx((0.1912, 0.6395), abs=5e-5)
    assert clopper_pearson(3, 20) == pytest.approx((0.0321, 0.3789), abs=5e-5)
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    for x, n in [(0, 7), (1, 7), (13, 40), (40, 40)]:
        ci = stats.binomtest(x, n).proportion_ci(method="exact")
        assert clopper_pearson(x, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_miettinen_nurminen_test_vector():
    est, lo, hi = miettinen_nurminen(8, 20, 3, 20)
    assert est == pytest.approx(0.25)
    assert (lo, hi) == pytest.approx((-0.0316, 0.5018), abs=5e-5)


def _numeric_mn_z(x1, n1, x2, n2, delta):
    """MN score statistic with the restricted MLE found by direct numerical maximisation (independent check)."""
    from scipy import optimize

    def nll(p1):
        p2 = p1 - delta
        a, b = np.clip([p1, p2], 1e-300, 1 - 1e-16)
        return -(x1 * np.log(a) + (n1 - x1) * np.log1p(-a) + x2 * np.log(b) + (n2 - x2) * np.log1p(-b))

    res = optimize.minimize_scalar(nll, bounds=(max(0, delta), min(1, 1 + delta)), method="bounded",
                                   options={"xatol": 1e-14})  # fmt: skip
    p1, p2 = res.x, res.x - delta
    n = n1 + n2
    var = (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2) * n / (n - 1)
    return (x1 / n1 - x2 / n2 - delta) / np.sqrt(var)


def test_miettinen_nurminen_bounds_solve_the_score_equation():
    """At each bound the MN score statistic (restricted MLE by numerical maximisation) equals ±z. statsmodels 0.15
    is not usable as the oracle: its restricted-MLE cubic for ``compare="diff"`` uses ``count0 * diff`` where
    ``nobs0 * diff`` belongs, and its CI bracketing fails on the spec's vector."""
    z = stats.norm.ppf(0.975)
    rng = np.random.default_rng(3)
    cases = [(8, 20, 3, 20), (3, 20, 8, 20), (15, 15, 10, 18), (30, 60, 20, 55), (1, 40, 3, 35)]
    cases += [tuple(int(v) for v in (rng.integers(1, 39), 40, rng.integers(1, 34), 35)) for _ in range(5)]
    for x1, n1, x2, n2 in cases:
        _, lo, hi = miettinen_nurminen(x1, n1, x2, n2)
        assert _numeric_mn_z(x1, n1, x2, n2, lo) == pytest.approx(z, abs=2e-6)
        assert _numeric_mn_z(x1, n1, x2, n2, hi) == pytest.approx(-z, abs=2e-6)
    # boundary cases: 0 % and 100 % responders
    est, lo, hi = miettinen_nurminen(0, 15, 4, 18)
    assert lo < est < hi and _numeric_mn_z(0, 15, 4, 18, hi) == pytest.approx(-z, abs=2e-6)
    assert miettinen_nurminen(10, 10, 0, 10)[2] == 1.0


def test_stratified_mn_reduces_to_unstratified_and_to_cmh_at_zero():
    from statsmodels.stats.contingency_tables import StratifiedTable

    assert miettinen_nurminen([8], [20], [3], [20]) == pytest.approx(miettinen_nurminen(8, 20, 3, 20))
    x1, n1, x2, n2 = [8, 12, 5], [20, 25, 15], [3, 9, 4], [20, 24, 16]
    tables = [np.array([[a, n - a], [b, m - b]]) for a, n, b, m in zip(x1, n1, x2, n2, strict=True)]
    cmh = StratifiedTable(tables).test_null_odds(correction=False).statistic
    assert mn_score_statistic(x1, n1, x2, n2, 0.0) == pytest.approx(cmh, rel=1e-10)
    est, lo, hi = miettinen_nurminen(x1, n1, x2, n2)
    w = np.array(n1) * np.array(n2) / (np.array(n1) + np.array(n2))
    d = np.array(x1) / np.array(n1) - np.array(x2) / np.array(n2)
    assert est == pytest.approx(float((w * d).sum() / w.sum()))
    assert lo < est < hi
    assert (lo > 0) == (stats.chi2.sf(cmh, 1) < 0.05)


# ------------------------------------------------------------------------------------------------ input restriction


def test_prepare_ovr_worst_per_date_first_pd_nact_and_randomisation():
    r = seq((-3, "PR"), (42, "SD"), (42, "PD"), (84, "PR"), subject="A")
    o = prepare_ovr(r, subj("A"))
    assert o["response"].tolist() == ["PD"]  # pre-randomisation dropped, worst of day 42 kept, nothing after PD
    r = seq((42, "SD"), (84, "PR"), (126, "CR"), subject="B")
    s = subj("B").assign(nact_date=RAND + pd.Timedelta(days=100))
    assert prepare_ovr(r, s)["response"].tolist() == ["SD", "PR"]
    assert prepare_ovr(r, s, apply_nact=False)["response"].tolist() == ["SD", "PR", "CR"]


# ------------------------------------------------------------------------------------------------ BOR (§3.2)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([(42, "PR"), (84, "SD"), (126, "PD")], "PR"),
        ([(42, "SD"), (84, "CR")], "CR"),
        ([(30, "SD")], "NE"),
        ([(41, "SD"), (84, "NE")], "NE"),
        ([(42, "SD")], "SD"),
        ([(50, "NON-CR/NON-PD")], "NON-CR/NON-PD"),
        ([(30, "SD"), (60, "PD")], "PD"),
        ([(30, "NE")], "NE"),
        ([], "MISSING"),
    ],
)
def test_unconfirmed_bor(pairs, expected):
    row = bor(pairs) if pairs else best_overall_response(seq(), subj()).iloc[0]
    assert row["bor"] == expected


def test_sd_window_is_a_config_value():
    cfg = replace(DEFAULT_CONFIG, sd_min_days=49)
    assert bor([(45, "SD")])["bor"] == "SD"
    assert bor([(45, "SD")], config=cfg)["bor"] == "NE"


# ------------------------------------------------------------------------------------------------ confirmed BOR (§3.3)


@pytest.mark.parametrize(
    ("pairs", "expected", "date"),
    [
        ([(42, "PR"), (84, "PR")], "PR", 42),
        ([(42, "PR"), (63, "PR")], "SD", 42),  # second PR only 21 days later
        ([(42, "PR"), (84, "SD"), (126, "PR")], "SD", 42),  # SD in between
        ([(42, "PR"), (63, "NE"), (84, "PR")], "PR", 42),  # one NE allowed
        ([(42, "PR"), (56, "NE"), (63, "NE"), (84, "PR")], "SD", 42),  # two NE not
        ([(42, "CR"), (63, "CR"), (84, "CR")], "CR", 42),
        ([(42, "CR"), (84, "PR")], "SD", 42),  # CR not confirmed by PR
        ([(42, "PR"), (63, "CR"), (84, "PR")], "SD", 42),  # PR after CR
        ([(42, "PR"), (84, "CR"), (126, "CR")], "CR", 84),
        ([(21, "PR"), (35, "PD")], "PD", 35),
        ([(21, "PR")], "NE", 21),  # admiralonco would give MISSING (its bor_ne omits CR/PR)
        ([(28, "CR"), (35, "SD")], "NE", 28),
    ],
)
def test_confirmed_bor(pairs, expected, date):
    row = bor(pairs, confirmed=True)
    assert row["bor"] == expected
    assert row["bor_date"] == RAND + pd.Timedelta(days=date)


def test_confirmed_response_date_is_first_of_the_pair():
    row = bor([(42, "PR"), (84, "CR"), (126, "CR")], confirmed=True)
    assert row["first_response_date"] == RAND + pd.Timedelta(days=42)  # PR confirmed by CR counts from day 42
    assert bool(row["responder"]) and bool(row["disease_control"])


def test_confirmation_options():
    pairs = [(42, "PR"), (84, "SD"), (126, "PR")]
    assert bor(pairs, True, replace(DEFAULT_CONFIG, confirmation_accept_sd=True))["bor"] == "PR"
    assert bor([(42, "PR"), (63, "PR")], True, replace(DEFAULT_CONFIG, confirmation_days=21))["bor"] == "PR"
    cr_then_sd = [(28, "CR"), (35, "SD")]
    assert bor(cr_then_sd, True, replace(DEFAULT_CONFIG, cbor_cr_then_sd_is_pd=True))["bor"] == "PD"


def test_eortc_faq_bor_stays_pr_under_both_timepoint_labellings():
    dates = ["2024-01-01", "2024-02-12", "2024-03-25", "2024-05-06", "2024-06-17"]
    rows = pd.DataFrame(
        {
            "subject_id": "S",
            "visit": [f"V{i}" for i in range(5)],
            "assessment_date": dates,
            "lesion_id": "T1",
            "category": "TARGET",
            "is_node": False,
            "diameter_mm": [100, 70, 70, 80, 80],
            "nontarget_status": None,
        }
    )
    s = pd.DataFrame({"subject_id": ["S"], "randomisation_date": ["2024-01-02"]})
    for mode in ("threshold", "sticky"):
        cfg = replace(DEFAULT_CONFIG, timepoint_pr_after_response=mode)
        tp = timepoint_responses(rows, s, config=cfg)
        for confirmed in (False, True):
            assert best_overall_response(tp, s, confirmed, cfg).iloc[0]["bor"] == "PR"


# ------------------------------------------------------------------------------------------------ rates


def _trial():
    rows, subjects = [], []
    for i in range(20):
        arm = "ACTIVE" if i < 10 else "PLACEBO"
        resp = "PR" if (arm == "ACTIVE" and i < 6) or (arm == "PLACEBO" and i < 12) else "SD"
        rows.append(seq((42, resp), (84, resp), subject=f"S{i:02d}"))
        subjects.append({"subject_id": f"S{i:02d}", "arm": arm, "measurable": i % 5 != 4, "stratum": "AB"[i % 2]})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(subjects).assign(randomisation_date=RAND)


def test_response_rates_itt_evaluable_and_blinded():
    resp, s = _trial()
    b = best_overall_response(resp, s, confirmed=True)
    rates, diffs = response_rates(b, s, "arm", reference="PLACEBO")
    orr = rates[rates["endpoint"].eq("ORR")].set_index("group")
    assert orr.loc["ACTIVE", ["n", "x"]].tolist() == [10, 6]
    assert orr.loc["PLACEBO", ["n", "x"]].tolist() == [10, 2]
    assert (orr.loc["ACTIVE", "lcl"], orr.loc["ACTIVE", "ucl"]) == pytest.approx(clopper_pearson(6, 10))
    d = diffs[diffs["endpoint"].eq("ORR")].iloc[0]
    assert d["difference"] == pytest.approx(0.4)
    assert (d["lcl"], d["ucl"]) == pytest.approx(miettinen_nurminen(6, 10, 2, 10)[1:])
    dcr = rates[rates["endpoint"].eq("DCR")]
    assert dcr["x"].tolist() == [10, 10]
    ev, _ = response_rates(b, s, "arm", "PLACEBO", population_col="measurable")
    assert ev[ev["endpoint"].eq("ORR")]["n"].tolist() == [8, 8]
    _, strat = response_rates(b, s, "arm", "PLACEBO", strata_col="stratum")
    assert strat["method"].str.contains("stratified").sum() == 2
    pooled, none = response_rates(b, s)
    assert pooled["group"].unique().tolist() == ["POOLED"] and none.empty
    assert pooled[pooled["endpoint"].eq("ORR")]["x"].iloc[0] == 8


def test_subjects_without_assessments_are_non_responders():
    s = subj("A", "B")
    b = best_overall_response(seq((42, "PR"), (84, "PR"), subject="A"), s, confirmed=True)
    assert b.set_index("subject_id")["bor"].to_dict() == {"A": "PR", "B": "MISSING"}
    rates, _ = response_rates(b, s)
    assert rates.iloc[0][["n", "x"]].tolist() == [2, 1]


# ------------------------------------------------------------------------------------------------ concordance


def test_concordance_lists_discordant_visits_and_patients():
    derived = pd.concat([seq((42, "PR"), (84, "PR"), subject="A"), seq((42, "SD"), (84, "PD"), subject="B")])
    inv = pd.concat([seq((42, "PR"), (84, "SD"), subject="A"), seq((42, "SD"), subject="B")])
    c = response_concordance(derived, inv, subj("A", "B"))
    assert len(c.by_visit) == 4
    listing = c.discordant[["subject_id", "visit", "derived", "investigator", "status"]]
    assert listing.to_dict("records") == [
        {"subject_id": "A", "visit": "V1", "derived": "PR", "investigator": "SD", "status": "both"},
        {"subject_id": "B", "visit": "V1", "derived": "PD", "investigator": np.nan, "status": "derived only"},
    ]
    vis = c.summary.set_index("level").loc["visit"]
    assert vis["n"] == 3 and vis["n_agree"] == 2
    p = c.by_patient.set_index("subject_id")
    assert p.loc["A", "bor_agree"] and not p.loc["A", "cbor_agree"]  # confirmed PR vs unconfirmed
    assert p.loc["B", "bor_derived"] == "SD" and p.loc["B", "bor_agree"]  # SD at day 42 before the PD
