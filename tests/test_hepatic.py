"""ALBI and Child-Pugh (spec §7)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.endpoint_config import DEFAULT_CONFIG
from analysis.hepatic import (
    albi_grade,
    albi_score,
    albumin_g_dl_to_g_l,
    bilirubin_mg_dl_to_umol_l,
    child_pugh,
    hepatic_function,
)


@pytest.mark.parametrize(
    ("bili", "alb", "score", "grade"),
    [(17.1, 40, -2.586, "2"), (10, 45, -3.165, "1"), (34.2, 30, -1.538, "2")],
)
def test_albi_check_cases(bili, alb, score, grade):
    s = albi_score(bili, alb)
    assert s == pytest.approx(score, abs=5e-4)
    assert albi_grade(s)[()] == grade


def test_albi_coefficient_option_and_units():
    cfg = replace(DEFAULT_CONFIG, albi_albumin_coef=0.0852)
    assert albi_score(17.1, 40, cfg) == pytest.approx(-2.594, abs=5e-4)
    assert bilirubin_mg_dl_to_umol_l(1.0) == pytest.approx(17.1)
    assert albumin_g_dl_to_g_l(4.0) == pytest.approx(40.0)
    assert albi_score(bilirubin_mg_dl_to_umol_l(1.0), albumin_g_dl_to_g_l(4.0)) == pytest.approx(-2.586, abs=5e-4)


def test_albi_grade_boundaries_and_modified():
    s = np.array([-2.60, -2.5999, -2.27, -2.2699, -1.39, -1.3899, np.nan])
    assert albi_grade(s).tolist() == ["1", "2", "2", "2", "2", "3", None]
    assert albi_grade(s, modified=True).tolist() == ["1", "2a", "2a", "2b", "2b", "3", None]


def test_child_pugh_boundaries_classes_and_missing():
    cp = child_pugh(
        [20, 34.2, 51.3, 51.4, 20, 20],
        [40, 35, 28, 27.9, 35.1, 40],
        [1.0, 1.7, 2.3, 2.4, 1.69, np.nan],
        ["NONE", "MILD", "NONE", "MODERATE-SEVERE", "NONE", "NONE"],
        ["NONE", "NONE", "GRADE 1-2", "GRADE 3-4", "NONE", "NONE"],
    )
    assert cp["cp_bili_points"].tolist()[:4] == [1, 2, 2, 3]
    assert cp["cp_alb_points"].tolist()[:5] == [1, 2, 2, 3, 1]
    assert cp["cp_inr_points"].tolist()[:5] == [1, 2, 2, 3, 1]
    assert cp["cp_score"].tolist()[:5] == [5, 9, 9, 15, 5]
    assert cp["cp_class"].tolist()[:5] == ["A", "B", "B", "C", "A"]
    assert cp["cp_class_score"].tolist()[:2] == ["A5", "B9"]
    assert pd.isna(cp["cp_score"].iloc[5]) and pd.isna(cp["cp_class"].iloc[5])  # INR missing: no imputation
    six = child_pugh([40], [40], [1.0], ["NONE"], ["NONE"])
    assert six["cp_class_score"].tolist() == ["A6"]
    ten = child_pugh([40], [30], [2.0], ["MILD"], ["GRADE 1-2"])
    assert ten["cp_class_score"].tolist() == ["C10"]


def test_hepatic_function_over_time():
    labs = pd.DataFrame(
        {
            "subject_id": "S",
            "lab_date": ["2024-01-05"] * 3 + ["2024-03-01"] * 3 + ["2024-05-01"] * 2,
            "test_code": ["BILI", "ALB", "INR"] * 2 + ["BILI", "ALB"],
            "value": [17.1, 40, 1.1, 34.2, 30, 1.8, 10, 45],
        }
    )
    clinical = pd.DataFrame(
        {
            "subject_id": ["S", "S"],
            "assessment_date": ["2024-01-03", "2024-02-27"],
            "ascites": ["NONE", "MILD"],
            "encephalopathy": ["NONE", "NONE"],
        }
    )
    subj = pd.DataFrame({"subject_id": ["S"], "randomisation_date": ["2024-01-08"]})
    out = hepatic_function(labs, clinical, subj)
    assert out["albi_score"].round(3).tolist() == [-2.586, -1.538, -3.165]
    assert out["albi_grade"].tolist() == ["2", "2", "1"]
    assert out["ablfl"].tolist() == [True, False, False]
    assert out["cp_class_score"].tolist()[:2] == ["A5", "B9"]  # 5 x 1 point; 2+2+2+2 (mild ascites 3 days before)+1
    assert out["cp_score"].isna().iloc[2]  # no INR on the last draw
