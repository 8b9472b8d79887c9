"""Liver function covariates for HCC: ALBI score and grade, Child-Pugh score and class, over time.

Spec: ``clinical-endpoints.md`` §7. Sources: Johnson et al., J Clin Oncol 2015;33:550 (ALBI); Hiraoka et al., Liver
Cancer 2017;6:325 (modified ALBI grade 2a/2b); Child-Pugh (Pugh et al., Br J Surg 1973;60:646) with the MDCalc-style
boundaries quoted in the spec.

ALBI = ``0.66 · log10(bilirubin µmol/L) − 0.085 · albumin g/L`` (coefficients in config; 0.0852 in some calculators).
Grade 1: ≤ −2.60; grade 2: > −2.60 and ≤ −1.39; grade 3: > −1.39. Modified ALBI splits grade 2 at −2.27
(2a ≤ −2.27 < 2b). Units: bilirubin mg/dL × 17.1 = µmol/L; albumin g/dL × 10 = g/L.

Child-Pugh points (1/2/3): bilirubin < 34.2 / 34.2-51.3 / > 51.3 µmol/L; albumin > 35 / 28-35 / < 28 g/L; INR < 1.7 /
1.7-2.3 / > 2.3; ascites none / mild (diuretic-controlled) / moderate-severe (refractory); hepatic encephalopathy none
/ grade 1-2 (or suppressed with medication) / grade 3-4 (refractory). Middle bands are inclusive. Score 5-15; class
A 5-6, B 7-9, C 10-15 (``A5``/``A6`` reported separately). Any missing component -> missing score (no imputation).
Ascites and encephalopathy come from the clinical assessment (CRF), not labs.

:func:`hepatic_function` builds one row per subject and blood draw from ``marts.labs`` (``subject_id, lab_date,
test_code`` in BILI/ALB/INR, ``value`` in µmol/L, g/L, ratio) and optional clinical assessments (``subject_id,
assessment_date, ascites, encephalopathy``, the last one on or before the draw within
``child_pugh_clinical_window_days``). Baseline = last draw on or before randomisation with both bilirubin and albumin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig

ASCITES_POINTS: dict[str, int] = {
    "NONE": 1,
    "ABSENT": 1,
    "MILD": 2,
    "SLIGHT": 2,
    "DIURETIC-CONTROLLED": 2,
    "MODERATE": 3,
    "SEVERE": 3,
    "MODERATE-SEVERE": 3,
    "REFRACTORY": 3,
}
ENCEPHALOPATHY_POINTS: dict[str, int] = {
    "NONE": 1,
    "ABSENT": 1,
    "GRADE 1-2": 2,
    "SUPPRESSED": 2,
    "GRADE 3-4": 3,
    "REFRACTORY": 3,
}
BILIRUBIN_MGDL_TO_UMOLL = 17.1
ALBUMIN_GDL_TO_GL = 10.0


def bilirubin_mg_dl_to_umol_l(x: float | np.ndarray | pd.Series) -> float | np.ndarray | pd.Series:
    """Bilirubin mg/dL -> µmol/L (× 17.1)."""
    return x * BILIRUBIN_MGDL_TO_UMOLL


def albumin_g_dl_to_g_l(x: float | np.ndarray | pd.Series) -> float | np.ndarray | pd.Series:
    """Albumin g/dL -> g/L (× 10)."""
    return x * ALBUMIN_GDL_TO_GL


def albi_score(
    bilirubin_umol_l: float | np.ndarray | pd.Series,
    albumin_g_l: float | np.ndarray | pd.Series,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> float | np.ndarray | pd.Series:
    """ALBI linear predictor ``0.66·log10(bilirubin) − 0.085·albumin`` (µmol/L, g/L; coefficients from config)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return config.albi_bili_coef * np.log10(bilirubin_umol_l) - config.albi_albumin_coef * albumin_g_l


def albi_grade(score: float | np.ndarray | pd.Series, modified: bool = False) -> np.ndarray:
    """ALBI grade ``"1"/"2"/"3"`` (modified: ``"1"/"2a"/"2b"/"3"``); missing score -> ``None``."""
    s = np.asarray(score, dtype=float)
    if modified:
        out = np.select([s <= -2.60, s <= -2.27, s <= -1.39, s > -1.39], ["1", "2a", "2b", "3"], default="")
    else:
        out = np.select([s <= -2.60, s <= -1.39, s > -1.39], ["1", "2", "3"], default="")
    return np.where(np.isnan(s), None, out)


def _points(x: np.ndarray, low: float, high: float, increasing_is_worse: bool) -> np.ndarray:
    """1/2/3 points with the middle band [low, high] inclusive."""
    if increasing_is_worse:
        p = np.select([x < low, x <= high, x > high], [1, 2, 3], default=0)
    else:
        p = np.select([x > high, x >= low, x < low], [1, 2, 3], default=0)
    return np.where(np.isnan(x), np.nan, p)


def child_pugh(
    bilirubin_umol_l: np.ndarray | pd.Series,
    albumin_g_l: np.ndarray | pd.Series,
    inr: np.ndarray | pd.Series,
    ascites: pd.Series | np.ndarray,
    encephalopathy: pd.Series | np.ndarray,
) -> pd.DataFrame:
    """Child-Pugh points, score (5-15), class (A/B/C) and class with score (``A5``, ``A6``, ``B7`` ...).

    Ascites/encephalopathy are CRF codes (``NONE``, ``MILD``, ``MODERATE-SEVERE``; ``NONE``, ``GRADE 1-2``,
    ``GRADE 3-4`` and synonyms in ``ASCITES_POINTS``/``ENCEPHALOPATHY_POINTS``). Any missing component -> missing.
    """
    b = np.asarray(bilirubin_umol_l, dtype=float)
    a = np.asarray(albumin_g_l, dtype=float)
    i = np.asarray(inr, dtype=float)
    asc = pd.Series(np.asarray(ascites, dtype=object)).astype("str").str.strip().str.upper().map(ASCITES_POINTS)
    enc = pd.Series(np.asarray(encephalopathy, dtype=object)).astype("str").str.strip().str.upper()
    enc = enc.map(ENCEPHALOPATHY_POINTS)
    out = pd.DataFrame(
        {
            "cp_bili_points": _points(b, 34.2, 51.3, True),
            "cp_alb_points": _points(a, 28.0, 35.0, False),
            "cp_inr_points": _points(i, 1.7, 2.3, True),
            "cp_ascites_points": asc.to_numpy(dtype=float),
            "cp_enceph_points": enc.to_numpy(dtype=float),
        }
    )
    score = out.sum(axis=1, min_count=5)
    out["cp_score"] = score.astype("Int64")
    cls = np.select([score <= 6, score <= 9, score >= 10], ["A", "B", "C"], default="")
    out["cp_class"] = np.where(score.isna(), None, cls)
    out["cp_class_score"] = np.where(score.isna(), None, out["cp_class"].astype("str") + out["cp_score"].astype("str"))
    return out


def hepatic_function(
    labs: pd.DataFrame,
    clinical: pd.DataFrame | None = None,
    subjects: pd.DataFrame | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """ALBI and Child-Pugh per subject and draw date (rules in the module docstring).

    Returns ``subject_id, lab_date, bilirubin_umol_l, albumin_g_l, inr, albi_score, albi_grade, malbi_grade,
    ascites, encephalopathy`` + the :func:`child_pugh` columns + ``ablfl`` (when ``subjects`` with
    ``randomisation_date`` is given).
    """
    lb = labs.copy()
    lb["subject_id"] = lb["subject_id"].astype("str")
    lb["lab_date"] = pd.to_datetime(lb["lab_date"])
    lb["test_code"] = lb["test_code"].astype("str").str.strip().str.upper()
    lb["value"] = pd.to_numeric(lb["value"], errors="coerce")
    lb = lb[lb["test_code"].isin(["BILI", "ALB", "INR"])]
    wide = lb.pivot_table(index=["subject_id", "lab_date"], columns="test_code", values="value", aggfunc="mean")
    wide = wide.reindex(columns=["BILI", "ALB", "INR"]).reset_index()
    wide.columns.name = None
    wide = wide.rename(columns={"BILI": "bilirubin_umol_l", "ALB": "albumin_g_l", "INR": "inr"})
    wide = wide.sort_values(["lab_date", "subject_id"], kind="mergesort").reset_index(drop=True)
    wide["albi_score"] = albi_score(wide["bilirubin_umol_l"], wide["albumin_g_l"], config)
    wide["albi_grade"] = albi_grade(wide["albi_score"])
    wide["malbi_grade"] = albi_grade(wide["albi_score"], modified=True)
    if clinical is not None:
        cl = clinical[["subject_id", "assessment_date", "ascites", "encephalopathy"]].copy()
        cl["subject_id"] = cl["subject_id"].astype("str")
        cl["assessment_date"] = pd.to_datetime(cl["assessment_date"])
        cl = cl.dropna(subset=["assessment_date"]).sort_values(["assessment_date", "subject_id"], kind="mergesort")
        wide = pd.merge_asof(
            wide,
            cl,
            left_on="lab_date",
            right_on="assessment_date",
            by="subject_id",
            direction="backward",
            tolerance=pd.Timedelta(days=config.child_pugh_clinical_window_days),
        ).drop(columns=["assessment_date"])
    else:
        wide["ascites"] = None
        wide["encephalopathy"] = None
    cp = child_pugh(wide["bilirubin_umol_l"], wide["albumin_g_l"], wide["inr"], wide["ascites"], wide["encephalopathy"])
    wide = pd.concat([wide, cp.set_index(wide.index)], axis=1)
    wide = wide.sort_values(["subject_id", "lab_date"], kind="mergesort").reset_index(drop=True)
    if subjects is not None and "randomisation_date" in subjects.columns:
        s = subjects[["subject_id", "randomisation_date"]].copy()
        s["subject_id"] = s["subject_id"].astype("str")
        s["randomisation_date"] = pd.to_datetime(s["randomisation_date"])
        w = wide.merge(s.drop_duplicates("subject_id"), on="subject_id", how="left")
        ok = w["lab_date"].le(w["randomisation_date"]) & w["albi_score"].notna()
        last = w[ok].drop_duplicates("subject_id", keep="last").index
        wide["ablfl"] = wide.index.isin(last)
    return wide
