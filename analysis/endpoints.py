"""Clinical endpoints from the dbt marts: adapters to the pure derivations and one function per output table.

Pure (pandas only, no Dagster, no database): ``orchestration/assets/endpoints.py`` reads the marts, calls
:func:`compute_endpoints` (or one of the per-domain functions) and writes the returned tables to DuckDB schema
``analysis``; ``guttrial endpoints`` prints :func:`efficacy_summary` of them. Every study choice comes from
:class:`~analysis.endpoint_config.EndpointConfig` (the spec's [SAP] items); the derivations themselves live in
:mod:`analysis.recist`, :mod:`analysis.response`, :mod:`analysis.tte`, :mod:`analysis.survival`,
:mod:`analysis.safety`, :mod:`analysis.qol` and :mod:`analysis.hepatic` (spec:
``/work/shared/reference/clinical-endpoints.md``).

Inputs (``marts``: a dict of DataFrames named after the mart tables)
-------------------------------------------------------------------
``adsl``, ``tumor_measurements``, ``investigator_responses``, ``adverse_events``, ``labs``, ``qol_items``,
``exposure`` (columns in :data:`MART_COLUMNS`), and optionally ``subsequent_therapy`` (``subject_id, start_date``:
new anti-cancer therapies, used for the NACT censoring rule when ``adsl`` has no ``nact_date`` column).

Adapters (mart columns -> the pure modules' input contracts)
------------------------------------------------------------
* subjects (``adsl``): ``last_known_alive_date`` -> ``last_alive_date``; ``randomisation_stratum`` -> ``stratum``;
  ``measurable_disease_fl``/``response_evaluable_fl``/``safety_fl`` -> booleans; ``arm_code`` -> ``arm`` in unblinded
  runs only (a blinded run drops the column before anything is derived, so no output can carry it);
  ``nact_date`` = ``adsl.nact_date`` when the mart has it, else the earliest ``subsequent_therapy.start_date`` on or
  after randomisation (spec §3.1: NACTDT = earliest on-treatment new anti-cancer therapy, locoregional included);
  ``has_baseline_assessment`` from the lesion records (:func:`analysis.recist.baseline_disease`).
* lesions (``tumor_measurements``): ``lesion_category`` -> ``category``, ``is_nodal`` -> ``is_node``,
  ``lesion_status`` -> ``nontarget_status``; a lesion row whose scan date is unknown (partial date without a month)
  takes the earliest known date of the same visit; visits with no known date at all are left out.
* investigator responses (``investigator_responses``): ``overall_response``, ``assessment_number`` -> ``seq``.
* adverse events: ``system_organ_class`` -> ``soc``, ``ctcae_term`` -> ``term``, ``analysis_start_date`` ->
  ``start_date``, ``ctcae_grade`` -> ``grade``, ``serious_fl``, ``relationship_*`` -> ``related_*`` (causality text),
  ``action_*``, ``immune_related_fl``, ``ae_sequence`` -> ``ae_seq``.
* labs: ``collection_date`` -> ``lab_date``, ``standard_value`` -> ``value``, ``lower_limit``/``upper_limit`` ->
  ``lln``/``uln``. Exposure: ``dose_frequency`` -> ``frequency``. QoL: ``questionnaire_date`` ->
  ``assessment_date``, ``item_number`` -> ``item``.
* alive dates for OS (LSTALVDT): ``adsl.last_known_alive_date`` plus every complete (not imputed) record date of the
  record-level marts, so that a cut-off earlier than the build's still finds the last contact before it.

Data cut-off (spec §0): :func:`apply_cutoff` drops subjects randomised after it and every record dated after it
(AEs and exposure records starting after it; an AE or dosing record running past it ends "ongoing" at it), and the
time-to-event functions apply :func:`analysis.tte.apply_data_cutoff` to the subject-level dates. The marts are
already cut at the build's cut-off; applying the same date again changes nothing, an earlier one re-cuts.

Groups: unblinded runs analyse by randomised arm (``arm``: CAPSULE vs reference PLACEBO; the safety tables use the
same arm on the safety population, as no actual-treatment variable exists), stratified by ``stratum``. Blinded
runs produce pooled estimates only (``group = "POOLED"``) and no comparisons.

Output tables (:data:`TABLES` lists them by domain; all keyed by ``subject_id`` where subject-level)
-----------------------------------------------------------------------------------------------------
Efficacy (:func:`compute_efficacy`):

* ``recist_timepoint_responses`` - derived time-point responses per subject, visit and ``criterion``
  (``RECIST 1.1``; ``mRECIST`` for subjects with viable-tumour diameters), with SOD, baseline, nadir, % changes,
  TL/NTL/NL and overall response (:func:`analysis.recist.timepoint_responses_all`).
* ``best_overall_response`` - BOR per subject, ``criterion``, ``evaluator`` (DERIVED / INVESTIGATOR) and
  ``confirmed`` (:func:`analysis.response.best_overall_response`).
* ``response_concordance`` - derived RECIST 1.1 vs investigator agreement and Cohen's kappa per visit, per patient
  BOR and confirmed BOR; ``response_concordance_by_patient``; ``response_discordant_visits`` - every visit that
  disagrees or exists on one side only, with both readings' components for QA.
* ``adtte`` - ADTTE rows (``PARAMCD`` PFS, OS, DOR, TTR from derived RECIST 1.1; ``*_MR`` from mRECIST;
  ``*_INV`` from the investigator's responses); DOR/TTR are among *confirmed* responders.
* ``km_estimates`` - KM curves with numbers at risk and pointwise CIs; ``survival_summary`` - n, events, median
  with Brookmeyer-Crowley CI, 6/12-month rates; ``survival_comparisons`` - log-rank (unstratified and stratified by
  ``stratum``) and Cox HR (CAPSULE vs PLACEBO) for the PFS and OS parameters (empty in blinded runs).
* ``response_rates`` - ORR and DCR with Clopper-Pearson CIs per ``criterion``, ``evaluator``, ``confirmed``,
  ``population`` (ITT, RESPONSE-EVALUABLE) and group; ``response_rate_differences`` - Miettinen-Nurminen CIs,
  unstratified and stratified (empty in blinded runs).
* ``endpoint_run`` - one row: cut-off, blinding, configuration (JSON) and row counts of this computation.

Safety (:func:`compute_safety`): ``ae_summary`` (TEAE overview), ``ae_by_soc_term``, ``lab_grades`` (every draw
with CTCAE v5 grade), ``lab_toxicity`` (baseline and worst post-baseline grade per subject and test),
``lab_toxicity_summary``, ``hys_law``, ``dose_intensity``, ``exposure_summary``.

Quality of life (:func:`compute_qol`): ``qol_scores`` (QLQ-C30 scales and summary score with change from
baseline), ``qol_change_summary``, ``qol_deterioration`` (ADTTE shape, ``TTD_<scale>``),
``qol_deterioration_summary``.

Hepatic (:func:`compute_hepatic`): ``hepatic_function`` (ALBI score/grade and Child-Pugh per draw; the CRF records
ascites and encephalopathy at baseline only, so Child-Pugh is available for the baseline draw only).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import hepatic, qol, recist, response, safety, survival, tte
from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig

ARM_COL = "arm"
STRATUM_COL = "stratum"
REFERENCE_ARM = "PLACEBO"
POOLED = "POOLED"
BLINDED_ARM_CODE = "BLINDED"
DERIVED = "DERIVED"
INVESTIGATOR = "INVESTIGATOR"
ITT = "ITT"
RESPONSE_EVALUABLE = "RESPONSE-EVALUABLE"

#: Mart columns this module reads (the contract with the dbt marts).
MART_COLUMNS: dict[str, tuple[str, ...]] = {
    "adsl": (
        "subject_id", "randomisation_date", "randomisation_stratum", "arm_code", "treatment_start_date",
        "treatment_end_date", "measurable_disease_fl", "response_evaluable_fl", "safety_fl", "death_date",
        "last_known_alive_date", "ascites", "encephalopathy",
    ),
    "tumor_measurements": (
        "subject_id", "visit", "assessment_date", "assessment_date_flag", "lesion_id", "lesion_category",
        "location", "is_nodal", "diameter_mm", "viable_diameter_mm", "lesion_status",
    ),
    "investigator_responses": (
        "subject_id", "visit", "assessment_date", "assessment_date_flag", "assessment_number", "target_response",
        "non_target_response", "new_lesions", "overall_response", "sum_of_diameters_mm",
    ),
    "adverse_events": (
        "subject_id", "ae_spid", "ae_sequence", "system_organ_class", "ctcae_term", "start_date_flag",
        "analysis_start_date", "end_date", "ctcae_grade", "serious_fl", "relationship_lenvatinib",
        "relationship_pd1", "relationship_capsules", "action_lenvatinib", "action_pd1", "immune_related_fl",
        "treatment_emergent_fl",
    ),
    "labs": (
        "subject_id", "visit", "collection_date", "collection_date_flag", "test_code", "standard_value",
        "lower_limit", "upper_limit",
    ),
    "qol_items": ("subject_id", "visit", "questionnaire_date", "questionnaire_date_flag", "item_number", "response"),
    "exposure": (
        "subject_id", "drug", "start_date", "start_date_flag", "end_date", "end_date_flag", "dose",
        "dose_frequency", "planned_dose", "capsules_taken",
    ),
}  # fmt: skip
#: Optional mart columns used when present.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"adsl": ("nact_date",), "subsequent_therapy": ("therapy",)}

EFFICACY_TABLES: tuple[str, ...] = (
    "recist_timepoint_responses", "best_overall_response", "response_concordance",
    "response_concordance_by_patient", "response_discordant_visits", "adtte", "km_estimates", "survival_summary",
    "survival_comparisons", "response_rates", "response_rate_differences", "endpoint_run",
)  # fmt: skip
SAFETY_TABLES: tuple[str, ...] = (
    "ae_summary", "ae_by_soc_term", "lab_grades", "lab_toxicity", "lab_toxicity_summary", "hys_law",
    "dose_intensity", "exposure_summary",
)  # fmt: skip
QOL_TABLES: tuple[str, ...] = ("qol_scores", "qol_change_summary", "qol_deterioration", "qol_deterioration_summary")
HEPATIC_TABLES: tuple[str, ...] = ("hepatic_function",)
TABLES: dict[str, tuple[str, ...]] = {
    "efficacy": EFFICACY_TABLES,
    "safety": SAFETY_TABLES,
    "qol": QOL_TABLES,
    "hepatic": HEPATIC_TABLES,
}
#: Marts each domain reads.
DOMAIN_MARTS: dict[str, tuple[str, ...]] = {
    "efficacy": (
        "adsl", "tumor_measurements", "investigator_responses", "labs", "adverse_events", "exposure", "qol_items",
    ),
    "safety": ("adsl", "adverse_events", "labs", "exposure"),
    "qol": ("adsl", "qol_items"),
    "hepatic": ("adsl", "labs"),
}  # fmt: skip
#: Time-to-event parameters compared between arms (DOR/TTR are conditional on response: descriptive only).
COMPARED_PARAMS: tuple[str, ...] = ("PFS", "PFS_MR", "PFS_INV", "OS")
#: Order of the efficacy summary (``guttrial endpoints``).
SUMMARY_PARAMS: tuple[str, ...] = ("PFS", "OS", "DOR", "PFS_MR", "DOR_MR", "PFS_INV", "DOR_INV")

CutoffLike = dt.date | str | pd.Timestamp | None


# ================================================================================================ helpers


def _ts(cutoff: CutoffLike) -> pd.Timestamp | None:
    return None if cutoff is None or cutoff == "" else pd.Timestamp(cutoff)


def _yn(s: pd.Series) -> pd.Series:
    return s.astype("str").str.strip().str.upper().isin(["Y", "YES", "TRUE", "1"]).astype(bool)


def _need(frame: pd.DataFrame, name: str, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise KeyError(f"mart {name} lacks column(s) {missing} that the endpoint derivations need")


def _ids(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["subject_id"] = out["subject_id"].astype("str")
    return out


def _group_col(blinded: bool) -> str | None:
    return None if blinded else ARM_COL


def _with_arm(frame: pd.DataFrame, subjects: pd.DataFrame, blinded: bool, position: int = 1) -> pd.DataFrame:
    """Insert the subject's ``arm`` (unblinded runs only) after ``subject_id``."""
    if blinded or "subject_id" not in frame.columns or ARM_COL in frame.columns:
        return frame
    arm = subjects.drop_duplicates("subject_id").set_index("subject_id")[ARM_COL]
    out = frame.copy()
    out.insert(min(position, len(out.columns)), ARM_COL, out["subject_id"].astype("str").map(arm))
    return out


# ================================================================================================ adapters


def subjects_from_adsl(adsl: pd.DataFrame, blinded: bool) -> pd.DataFrame:
    """ADSL -> the ``subjects`` contract of the pure modules (see module docstring).

    Raises ``ValueError`` when an unblinded run meets the blinded placeholder arm (the marts were built blinded).
    """
    _need(adsl, "adsl", ["subject_id", "randomisation_date"])
    a = _ids(adsl).drop_duplicates("subject_id")
    out = pd.DataFrame({"subject_id": a["subject_id"], "randomisation_date": pd.to_datetime(a["randomisation_date"])})
    out[STRATUM_COL] = a["randomisation_stratum"].astype("str") if "randomisation_stratum" in a else "ALL"
    if not blinded:
        _need(adsl, "adsl", ["arm_code"])
        arm = a["arm_code"].astype("str").str.strip().str.upper()
        if len(arm) and arm.eq(BLINDED_ARM_CODE).all():
            raise ValueError(
                "unblinded endpoint run, but adsl.arm_code is the BLINDED placeholder: build the marts unblinded first"
            )
        out[ARM_COL] = arm
    for col in ("treatment_start_date", "treatment_end_date", "death_date", "nact_date"):
        if col in a.columns:
            out[col] = pd.to_datetime(a[col])
    out["last_alive_date"] = pd.to_datetime(a["last_known_alive_date"]) if "last_known_alive_date" in a else pd.NaT
    out["measurable_disease"] = _yn(a["measurable_disease_fl"]) if "measurable_disease_fl" in a else True
    if "response_evaluable_fl" in a.columns:
        out["response_evaluable"] = _yn(a["response_evaluable_fl"])
    else:
        out["response_evaluable"] = out["measurable_disease"]
    if "safety_fl" in a.columns:
        out["safety"] = _yn(a["safety_fl"])
    else:
        out["safety"] = out["treatment_start_date"].notna() if "treatment_start_date" in out else True
    for col in ("ascites", "encephalopathy"):
        if col in a.columns:
            out[col] = a[col]
    return out.reset_index(drop=True)


def nact_dates(therapies: pd.DataFrame | None, subjects: pd.DataFrame) -> pd.Series:
    """NACTDT per subject (spec §3.1): earliest therapy start on or after randomisation; NaT when none.

    ``therapies``: ``subject_id, start_date`` (one row per new anti-cancer therapy; unknown dates ignored).
    Returns a Series indexed like ``subjects``.
    """
    if therapies is None or therapies.empty:
        return pd.Series(pd.NaT, index=subjects.index, dtype="datetime64[us]")
    t = _ids(therapies)[["subject_id", "start_date"]]
    t["start_date"] = pd.to_datetime(t["start_date"])
    t = t.merge(subjects[["subject_id", "randomisation_date"]], on="subject_id")
    t = t[t["start_date"].notna() & t["start_date"].ge(t["randomisation_date"])]
    first = t.groupby("subject_id")["start_date"].min()
    return subjects["subject_id"].map(first)


def lesions_from_tumor_measurements(tm: pd.DataFrame) -> pd.DataFrame:
    """``marts.tumor_measurements`` -> the lesion contract of :mod:`analysis.recist` (see module docstring)."""
    _need(tm, "tumor_measurements", MART_COLUMNS["tumor_measurements"])
    t = _ids(tm)
    date = pd.to_datetime(t["assessment_date"])
    date = date.fillna(date.groupby([t["subject_id"], t["visit"]]).transform("min"))
    out = pd.DataFrame(
        {
            "subject_id": t["subject_id"],
            "visit": t["visit"].astype("str"),
            "assessment_date": date,
            "lesion_id": t["lesion_id"].astype("str"),
            "category": t["lesion_category"],
            "is_node": t["is_nodal"],
            "diameter_mm": pd.to_numeric(t["diameter_mm"], errors="coerce"),
            "viable_diameter_mm": pd.to_numeric(t["viable_diameter_mm"], errors="coerce"),
            "nontarget_status": t["lesion_status"],
            "location": t["location"],
        }
    )
    for opt in ("measurement_status", "new_lesion_status"):
        if opt in t.columns:
            out[opt] = t[opt]
    return out[out["assessment_date"].notna()].reset_index(drop=True)


def responses_from_investigator(ir: pd.DataFrame) -> pd.DataFrame:
    """``marts.investigator_responses`` -> ``subject_id, visit, assessment_date, overall_response, seq`` + the
    recorded components (for the QA listing)."""
    _need(ir, "investigator_responses", ["subject_id", "visit", "assessment_date", "overall_response"])
    r = _ids(ir)
    out = pd.DataFrame(
        {
            "subject_id": r["subject_id"],
            "visit": r["visit"].astype("str"),
            "assessment_date": pd.to_datetime(r["assessment_date"]),
            "overall_response": r["overall_response"].astype("str").str.strip().str.upper(),
            "seq": pd.to_numeric(r.get("assessment_number"), errors="coerce"),
        }
    )
    for src, dst in (
        ("target_response", "inv_tl_response"),
        ("non_target_response", "inv_ntl_response"),
        ("new_lesions", "inv_new_lesion"),
        ("sum_of_diameters_mm", "inv_sod"),
    ):
        if src in r.columns:
            out[dst] = r[src]
    return out[out["assessment_date"].notna()].reset_index(drop=True)


def ae_from_mart(ae: pd.DataFrame) -> pd.DataFrame:
    """``marts.adverse_events`` -> the AE contract of :mod:`analysis.safety`."""
    a = _ids(ae)
    start = a["analysis_start_date"] if "analysis_start_date" in a else a["start_date"]
    out = pd.DataFrame(
        {
            "subject_id": a["subject_id"],
            "ae_spid": a.get("ae_spid"),
            "ae_seq": pd.to_numeric(a.get("ae_sequence"), errors="coerce"),
            "soc": a["system_organ_class"],
            "term": a["ctcae_term"],
            "start_date": pd.to_datetime(start),
            "end_date": pd.to_datetime(a["end_date"]),
            "grade": pd.to_numeric(a["ctcae_grade"], errors="coerce"),
            "serious": a["serious_fl"],
            "related_lenvatinib": a["relationship_lenvatinib"],
            "related_pd1": a["relationship_pd1"],
            "related_capsule": a["relationship_capsules"],
            "action_lenvatinib": a["action_lenvatinib"],
            "action_pd1": a["action_pd1"],
            "immune_related": a["immune_related_fl"],
        }
    )
    if "treatment_emergent_fl" in a.columns:
        out["mart_trtemfl"] = a["treatment_emergent_fl"]
    return out


def labs_from_mart(labs: pd.DataFrame) -> pd.DataFrame:
    """``marts.labs`` -> ``subject_id, visit, test_code, lab_date, value, lln, uln`` (standard units)."""
    lb = _ids(labs)
    return pd.DataFrame(
        {
            "subject_id": lb["subject_id"],
            "visit": lb["visit"],
            "test_code": lb["test_code"].astype("str").str.strip().str.upper(),
            "lab_date": pd.to_datetime(lb["collection_date"]),
            "value": pd.to_numeric(lb["standard_value"], errors="coerce"),
            "lln": pd.to_numeric(lb["lower_limit"], errors="coerce"),
            "uln": pd.to_numeric(lb["upper_limit"], errors="coerce"),
        }
    ).dropna(subset=["lab_date"])


def exposure_from_mart(ex: pd.DataFrame) -> pd.DataFrame:
    """``marts.exposure`` -> the exposure contract of :func:`analysis.safety.dose_intensity`."""
    e = _ids(ex)
    return pd.DataFrame(
        {
            "subject_id": e["subject_id"],
            "drug": e["drug"],
            "start_date": pd.to_datetime(e["start_date"]),
            "end_date": pd.to_datetime(e["end_date"]),
            "dose": pd.to_numeric(e["dose"], errors="coerce"),
            "frequency": e["dose_frequency"],
            "planned_dose": pd.to_numeric(e["planned_dose"], errors="coerce"),
            "capsules_taken": pd.to_numeric(e.get("capsules_taken"), errors="coerce"),
        }
    ).dropna(subset=["start_date"])


def qol_items_from_mart(q: pd.DataFrame) -> pd.DataFrame:
    """``marts.qol_items`` -> ``subject_id, visit, assessment_date, item, response`` (:mod:`analysis.qol`)."""
    it = _ids(q)
    return pd.DataFrame(
        {
            "subject_id": it["subject_id"],
            "visit": it["visit"].astype("str"),
            "assessment_date": pd.to_datetime(it["questionnaire_date"]),
            "item": it["item_number"],
            "response": pd.to_numeric(it["response"], errors="coerce"),
        }
    ).dropna(subset=["assessment_date"])


_ALIVE_SOURCES: tuple[tuple[str, str, str | None], ...] = (
    ("tumor_measurements", "assessment_date", "assessment_date_flag"),
    ("investigator_responses", "assessment_date", "assessment_date_flag"),
    ("labs", "collection_date", "collection_date_flag"),
    ("qol_items", "questionnaire_date", "questionnaire_date_flag"),
    ("exposure", "start_date", "start_date_flag"),
    ("exposure", "end_date", "end_date_flag"),
    ("adverse_events", "analysis_start_date", "start_date_flag"),
)


def alive_dates_from_marts(marts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Long ``subject_id, date`` table of complete record dates (imputation flag empty) across the record-level
    marts, for LSTALVDT after a re-cut (spec §4.1). Dates after a death are dropped by the caller's logic (a dead
    subject's OS is the death date)."""
    parts = []
    for name, col, flag in _ALIVE_SOURCES:
        m = marts.get(name)
        if m is None or col not in m.columns:
            continue
        ok = m[flag].isna() if flag is not None and flag in m.columns else pd.Series(True, index=m.index)
        parts.append(pd.DataFrame({"subject_id": m.loc[ok, "subject_id"].astype("str"), "date": m.loc[ok, col]}))
    if not parts:
        return pd.DataFrame({"subject_id": pd.Series(dtype="str"), "date": pd.Series(dtype="datetime64[us]")})
    out = pd.concat(parts, ignore_index=True)
    out["date"] = pd.to_datetime(out["date"])
    return out.dropna(subset=["date"]).drop_duplicates().reset_index(drop=True)


def apply_cutoff(marts: Mapping[str, pd.DataFrame], cutoff: CutoffLike) -> dict[str, pd.DataFrame]:
    """Record-level cut-off (spec §0): subjects randomised after it and records dated after it are dropped; AE and
    dosing records running past it end "ongoing" (end date missing) at it; ``treatment_end_date`` after it becomes
    the cut-off. Subject-level death/alive/NACT dates are left to :func:`analysis.tte.apply_data_cutoff`."""
    dco = _ts(cutoff)
    out = {k: v for k, v in marts.items()}
    if dco is None:
        return out

    def keep_le(name: str, col: str) -> None:
        if name in out and col in out[name].columns:
            m = out[name]
            d = pd.to_datetime(m[col])
            out[name] = m[d.isna() | d.le(dco)].copy()

    if "adsl" in out:
        a = out["adsl"].copy()
        a = a[pd.to_datetime(a["randomisation_date"]).le(dco)]
        if "treatment_end_date" in a.columns:
            te = pd.to_datetime(a["treatment_end_date"])
            a["treatment_end_date"] = te.where(te.isna() | te.le(dco), dco)
        out["adsl"] = a
        kept = set(a["subject_id"].astype("str"))
        for name in list(out):
            if name != "adsl" and "subject_id" in out[name].columns:
                out[name] = out[name][out[name]["subject_id"].astype("str").isin(kept)]
    keep_le("tumor_measurements", "assessment_date")
    keep_le("investigator_responses", "assessment_date")
    keep_le("labs", "collection_date")
    keep_le("qol_items", "questionnaire_date")
    keep_le("exposure", "start_date")
    ae = out.get("adverse_events")
    keep_le("adverse_events", "analysis_start_date" if ae is not None and "analysis_start_date" in ae else "start_date")
    keep_le("subsequent_therapy", "start_date")
    for name in ("exposure", "adverse_events"):
        if name in out and "end_date" in out[name].columns:
            m = out[name].copy()
            end = pd.to_datetime(m["end_date"])
            m["end_date"] = end.where(end.isna() | end.le(dco))
            out[name] = m
    return out


def prepare_subjects(
    marts: Mapping[str, pd.DataFrame], blinded: bool, lesions: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, str]:
    """Subjects with ``nact_date`` and ``has_baseline_assessment``; also returns where NACTDT came from."""
    subjects = subjects_from_adsl(marts["adsl"], blinded)
    if "nact_date" in subjects.columns:
        source = "adsl.nact_date"
    elif marts.get("subsequent_therapy") is not None:
        subjects["nact_date"] = nact_dates(marts["subsequent_therapy"], subjects)
        source = "subsequent_therapy.start_date"
    else:
        subjects["nact_date"] = pd.NaT
        source = "none (NACT censoring rule not applied: no therapy data)"
    if lesions is not None and not lesions.empty:
        base = recist.baseline_disease(lesions, subjects[["subject_id", "randomisation_date"]])
        subjects = subjects.merge(base[["subject_id", "has_baseline_assessment"]], on="subject_id", how="left")
        subjects["has_baseline_assessment"] = subjects["has_baseline_assessment"].fillna(False).astype(bool)
    else:
        subjects["has_baseline_assessment"] = False
    return subjects, source


# ================================================================================================ efficacy


def _response_sources(
    derived: pd.DataFrame, investigator: pd.DataFrame, subjects: pd.DataFrame
) -> list[tuple[str, str, str, pd.DataFrame, pd.DataFrame]]:
    """(criterion, evaluator, PARAMCD suffix, responses, population) per response source."""
    out = []
    rec = derived[derived["criterion"].eq(recist.RECIST)]
    out.append((recist.RECIST, DERIVED, "", rec, subjects))
    mr = derived[derived["criterion"].eq(recist.MRECIST)]
    if not mr.empty:
        out.append((recist.MRECIST, DERIVED, "_MR", mr, subjects[subjects["subject_id"].isin(mr["subject_id"])]))
    out.append((recist.RECIST, INVESTIGATOR, "_INV", investigator, subjects))
    return out


def _bor_table(
    sources: list[tuple[str, str, str, pd.DataFrame, pd.DataFrame]], config: EndpointConfig
) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    parts = []
    confirmed_bor: dict[tuple[str, str], pd.DataFrame] = {}
    for crit, evaluator, _, resp, pop in sources:
        ovr = response.prepare_ovr(resp, pop)
        for confirmed in (False, True):
            b = response.best_overall_response(resp, pop, confirmed, config, ovr=ovr)
            if confirmed:
                confirmed_bor[(crit, evaluator)] = b
            parts.append(b.assign(criterion=crit, evaluator=evaluator))
    bor = pd.concat(parts, ignore_index=True)
    cols = ["criterion", "evaluator", "confirmed", "subject_id", "bor", "aval", "bor_date", "first_response_date"]
    cols += ["responder", "disease_control"]
    return bor[cols], confirmed_bor


def _rates(
    bor: pd.DataFrame,
    sources: list[tuple[str, str, str, pd.DataFrame, pd.DataFrame]],
    blinded: bool,
    config: EndpointConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rates, diffs = [], []
    group_col = _group_col(blinded)
    for crit, evaluator, _, _, pop in sources:
        for confirmed in (False, True):
            b = bor[bor["criterion"].eq(crit) & bor["evaluator"].eq(evaluator) & bor["confirmed"].eq(confirmed)]
            for population, pop_col in ((ITT, None), (RESPONSE_EVALUABLE, "response_evaluable")):
                r, d = response.response_rates(
                    b,
                    pop,
                    group_col=group_col,
                    reference=None if blinded else REFERENCE_ARM,
                    population_col=pop_col,
                    strata_col=None if blinded else STRATUM_COL,
                    config=config,
                )
                keys = {"criterion": crit, "evaluator": evaluator, "confirmed": confirmed, "population": population}
                rates.append(r.assign(**keys))
                if not d.empty:
                    diffs.append(d.assign(**keys))
    key_cols = ["criterion", "evaluator", "confirmed", "population"]
    rate_cols = [*key_cols, "endpoint", "group", "n", "x", "rate", "lcl", "ucl", "method"]
    diff_cols = [*key_cols, "endpoint", "group", "reference", "difference", "lcl", "ucl", "method"]
    rates_df = pd.concat(rates, ignore_index=True).reindex(columns=rate_cols)
    diffs_df = pd.concat(diffs, ignore_index=True)[diff_cols] if diffs else _empty(diff_cols, {"confirmed": "bool"})
    return rates_df, diffs_df


def _empty(cols: Sequence[str], dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """An empty table with typed columns: known text and date columns as such, others float unless told."""
    dtypes = dict(dtypes or {})
    data = {}
    for c in cols:
        default = "str" if c in _TEXT_COLUMNS else "datetime64[us]" if c in ("STARTDT", "ADT") else "float64"
        data[c] = pd.Series(dtype=dtypes.get(c, default))
    return pd.DataFrame(data)


_TEXT_COLUMNS = frozenset(
    {
        "subject_id", "arm", "stratum", "group", "reference", "strata", "criterion", "evaluator", "population",
        "endpoint", "method", "conf_type", "category", "drug", "variable", "test_code", "PARAMCD", "PARAM", "AVALU",
        "EVNTDESC", "CNSDTDSC", "SRCDOM", "SRCVAR",
    }
)  # fmt: skip


def _concordance_tables(
    derived: pd.DataFrame, investigator: pd.DataFrame, subjects: pd.DataFrame, config: EndpointConfig
) -> dict[str, pd.DataFrame]:
    rec = derived[derived["criterion"].eq(recist.RECIST)]
    conc = response.response_concordance(rec, investigator, subjects, config)
    disc = conc.discordant.copy()
    extra_d = rec[
        ["subject_id", "visit", "sod", "base", "nadir", "pchg", "pchgnad", "tl_response", "ntl_response", "new_lesion"]
    ]
    disc = disc.merge(extra_d, on=["subject_id", "visit"], how="left")
    inv_cols = [c for c in ("inv_tl_response", "inv_ntl_response", "inv_new_lesion", "inv_sod") if c in investigator]
    if inv_cols:
        disc = disc.merge(
            investigator[["subject_id", "visit", *inv_cols]].drop_duplicates(["subject_id", "visit"]),
            on=["subject_id", "visit"],
            how="left",
        )
    disc = disc.rename(columns={"derived": "derived_response", "investigator": "investigator_response"})
    by_visit_summary = conc.summary.copy()
    return {
        "response_concordance": by_visit_summary,
        "response_concordance_by_patient": conc.by_patient,
        "response_discordant_visits": disc,
    }


def compute_efficacy(
    marts: Mapping[str, pd.DataFrame],
    config: EndpointConfig = DEFAULT_CONFIG,
    cutoff: CutoffLike = None,
    blinded: bool = True,
) -> dict[str, pd.DataFrame]:
    """Efficacy tables (names in :data:`EFFICACY_TABLES`; contents in the module docstring)."""
    m = apply_cutoff(marts, cutoff)
    lesions = lesions_from_tumor_measurements(m["tumor_measurements"])
    subjects, nact_source = prepare_subjects(m, blinded, lesions)
    investigator = responses_from_investigator(m["investigator_responses"])
    rand = subjects[["subject_id", "randomisation_date"]]
    derived = recist.timepoint_responses_all(lesions, rand, recist.CRITERIA, config)
    derived["seq"] = pd.to_numeric(derived["vis_seq"], errors="coerce")
    derived["evaluator"] = DERIVED
    sources = _response_sources(derived, investigator, subjects)

    bor, confirmed_bor = _bor_table(sources, config)
    rates, diffs = _rates(bor, sources, blinded, config)

    carry = (STRATUM_COL,) if blinded else (ARM_COL, STRATUM_COL)
    alive = alive_dates_from_marts(m)
    adtte_parts = []
    for crit, evaluator, suffix, resp, pop in sources:
        part = tte.derive_adtte(
            pop,
            resp,
            confirmed_bor[(crit, evaluator)],
            _ts(cutoff),
            config,
            alive_dates=alive if not suffix else None,
            carry=carry,
            paramcd_suffix=suffix,
        )
        adtte_parts.append(part.assign(criterion=crit, evaluator=evaluator))
    adtte = pd.concat(adtte_parts, ignore_index=True)
    adtte.loc[adtte["PARAMCD"].eq("OS"), ["criterion", "evaluator"]] = ["", ""]

    km = survival.km_estimates(adtte, _group_col(blinded), config)
    summary = km_summary(adtte, blinded, config)
    comparisons = arm_comparisons(adtte, blinded, config)

    tables: dict[str, pd.DataFrame] = {
        "recist_timepoint_responses": _with_arm(derived.drop(columns=["seq"]), subjects, blinded),
        "best_overall_response": _with_arm(bor, subjects, blinded, position=4),
        **_concordance_tables(derived, investigator, subjects, config),
        "adtte": adtte,
        "km_estimates": km,
        "survival_summary": summary,
        "survival_comparisons": comparisons,
        "response_rates": rates,
        "response_rate_differences": diffs,
    }
    tables["endpoint_run"] = run_record(tables, config, cutoff, blinded, nact_source=nact_source)
    return tables


def km_summary(adtte: pd.DataFrame, blinded: bool, config: EndpointConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """:func:`analysis.survival.survival_summary` rows per ``PARAMCD`` and group (pooled when blinded), without the
    group comparisons (no Cox fits for parameters that are not compared)."""
    if adtte.empty:
        return _empty(survival_summary_columns(config), {"n": "int64", "events": "int64", "censored": "int64"})
    if blinded:
        return survival.survival_summary(adtte, None, config=config)[0]
    parts = [
        survival.survival_summary(sub, None, config=config)[0].assign(group=grp)
        for grp, sub in adtte.groupby(adtte[ARM_COL].astype("str"), sort=True)
    ]
    return (
        pd.concat(parts, ignore_index=True).sort_values(["PARAMCD", "group"], kind="mergesort").reset_index(drop=True)
    )


def survival_summary_columns(config: EndpointConfig = DEFAULT_CONFIG) -> list[str]:
    """Columns of :func:`analysis.survival.survival_summary`'s summary (for empty tables)."""
    cols = ["PARAMCD", "group", "n", "events", "censored", "median", "lcl", "ucl", "conf_type"]
    for m in config.landmark_months:
        cols += [f"{p}_{m:g}m" for p in ("surv", "lcl", "ucl", "n_risk")]
    return cols


def arm_comparisons(adtte: pd.DataFrame, blinded: bool, config: EndpointConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """Log-rank (unstratified and stratified by ``stratum``) and Cox HR with Wald CI, each arm vs PLACEBO, for the
    :data:`COMPARED_PARAMS` (spec §8.2); an empty table (same columns) in blinded runs."""
    cols = [
        "PARAMCD", "group", "reference", "stratified", "strata", "logrank_chi2", "logrank_p", "hr", "hr_lcl",
        "hr_ucl", "hr_p",
    ]  # fmt: skip
    compared = adtte[adtte["PARAMCD"].isin(COMPARED_PARAMS)] if not adtte.empty else adtte
    if blinded or compared.empty:
        return _empty(cols, {"stratified": "bool"})
    _, comparisons = survival.survival_summary(compared, ARM_COL, REFERENCE_ARM, (STRATUM_COL,), config)
    return comparisons[cols].reset_index(drop=True) if not comparisons.empty else _empty(cols, {"stratified": "bool"})


def run_record(
    tables: Mapping[str, pd.DataFrame],
    config: EndpointConfig,
    cutoff: CutoffLike,
    blinded: bool,
    nact_source: str = "",
) -> pd.DataFrame:
    """The ``endpoint_run`` row: cut-off, blinding, configuration (JSON), NACT source and table row counts."""
    dco = _ts(cutoff)
    return pd.DataFrame(
        {
            "computed_at": [pd.Timestamp.now(tz="UTC").tz_localize(None)],
            "cutoff_date": pd.Series([dco], dtype="datetime64[us]"),
            "blinded": [blinded],
            "nact_source": [nact_source],
            "config_json": [json.dumps(config.as_dict(), sort_keys=True, default=list)],
            "row_counts_json": [json.dumps({k: len(v) for k, v in tables.items()}, sort_keys=True)],
        }
    )


# ================================================================================================ safety


def compute_safety(
    marts: Mapping[str, pd.DataFrame],
    config: EndpointConfig = DEFAULT_CONFIG,
    cutoff: CutoffLike = None,
    blinded: bool = True,
) -> dict[str, pd.DataFrame]:
    """Safety tables (:data:`SAFETY_TABLES`) on the safety population (``adsl.safety_fl = Y``)."""
    m = apply_cutoff(marts, cutoff)
    subjects = subjects_from_adsl(m["adsl"], blinded)
    safe = subjects[subjects["safety"]].reset_index(drop=True)
    group_col = _group_col(blinded)
    ae = ae_from_mart(m["adverse_events"])
    ae = ae[ae["subject_id"].isin(safe["subject_id"])]
    flagged = safety.flag_first_worst(safety.flag_teae(ae, safe, config))
    if safe.empty:  # nobody dosed yet
        overview = _empty(["category", "group", "n", "N", "pct"], {"n": "int64", "N": "int64"})
        by_soc = _empty(
            ["level", "soc", "term", "grade_group", "group", "n", "N", "pct"],
            {"level": "str", "soc": "str", "term": "str", "grade_group": "str", "n": "int64", "N": "int64"},
        )
    else:
        overview = safety.ae_overview(flagged, safe, group_col, config)
        by_soc = safety.ae_by_soc_term(flagged, safe, group_col, config)

    labs = labs_from_mart(m["labs"])
    labs = labs[labs["subject_id"].isin(safe["subject_id"])]
    graded = safety.grade_labs(labs, safe)
    grade_cols = [
        "subject_id", "visit", "test_code", "term", "direction", "lab_date", "value", "lln", "uln", "ablfl",
        "post_baseline", "base", "base_uln", "bnrind", "atoxgr", "atoxgrh", "atoxgrl",
    ]  # fmt: skip
    graded = graded[grade_cols]
    worst = safety.worst_lab_grades(graded)
    worst.insert(2, "term", worst["test_code"].map(lambda c: safety.LAB_TERMS.get(c, ("", ""))[0]))
    worst = _with_arm(worst, safe, blinded)
    tox_summary = _lab_toxicity_summary(worst, safe, group_col)
    hys = pd.concat(
        [safety.hys_law_screen(labs, safe, config, reference=ref).assign(reference=ref) for ref in ("uln", "baseline")],
        ignore_index=True,
    )
    exposure = exposure_from_mart(m["exposure"])
    exposure = exposure[exposure["subject_id"].isin(safe["subject_id"])]
    per_subject = safety.dose_intensity(exposure, config)
    ex_summary = safety.exposure_summary(per_subject, safe, group_col)
    if ex_summary.empty:
        ex_cols = ["drug", "group", "variable", "n", "mean", "sd", "median", "min", "max", "n_yes", "pct_yes"]
        ex_summary = _empty(ex_cols)
    # ``N`` (population size) and ``n`` would collide in DuckDB, whose identifiers are case-insensitive.
    return {
        "ae_summary": overview.rename(columns={"N": "n_population"}),
        "ae_by_soc_term": by_soc.rename(columns={"N": "n_population"}),
        "lab_grades": _with_arm(graded, safe, blinded),
        "lab_toxicity": worst,
        "lab_toxicity_summary": tox_summary,
        "hys_law": _with_arm(hys, safe, blinded),
        "dose_intensity": _with_arm(per_subject, safe, blinded),
        "exposure_summary": ex_summary,
    }


def _lab_toxicity_summary(worst: pd.DataFrame, safe: pd.DataFrame, group_col: str | None) -> pd.DataFrame:
    """Per test and group: subjects with a post-baseline grade, by worst grade (0-4) and grade >= 3 (n, N, %)."""
    w = worst.dropna(subset=["worst_grade"]).copy()
    w["_group"] = POOLED if group_col is None else w[group_col].astype("str")
    pop = safe.assign(_group=POOLED if group_col is None else safe[group_col].astype("str"))
    big_n = pop.groupby("_group")["subject_id"].nunique()
    rows = []
    for (test, grp), sub in w.groupby(["test_code", "_group"], sort=True):
        g = sub["worst_grade"].astype(int)
        n_tested = len(sub)
        row: dict[str, Any] = {"test_code": test, "group": grp, "n_population": int(big_n.get(grp, 0))}
        row["n_tested"] = n_tested
        for k in range(5):
            row[f"grade_{k}"] = int(g.eq(k).sum())
        row["grade_3_plus"] = int(g.ge(3).sum())
        row["pct_grade_3_plus"] = 100.0 * row["grade_3_plus"] / n_tested if n_tested else math.nan
        rows.append(row)
    cols = ["test_code", "group", "n_population", "n_tested", *(f"grade_{k}" for k in range(5)), "grade_3_plus"]
    return pd.DataFrame(rows) if rows else _empty([*cols, "pct_grade_3_plus"])


# ================================================================================================ QoL and hepatic


def compute_qol(
    marts: Mapping[str, pd.DataFrame],
    config: EndpointConfig = DEFAULT_CONFIG,
    cutoff: CutoffLike = None,
    blinded: bool = True,
) -> dict[str, pd.DataFrame]:
    """QLQ-C30 tables (:data:`QOL_TABLES`): scores with change from baseline, mean change per visit, time to
    deterioration (ADTTE shape) and its KM summary."""
    m = apply_cutoff(marts, cutoff)
    subjects = subjects_from_adsl(m["adsl"], blinded)
    items = qol_items_from_mart(m["qol_items"])
    scores = qol.score_qlq_c30(items, config)
    cfb = qol.change_from_baseline(scores, subjects[["subject_id", "randomisation_date"]])
    cfb = cfb.drop(columns=["randomisation_date"])
    cfb = _with_arm(cfb, subjects, blinded)
    group_col = _group_col(blinded)
    carry = (STRATUM_COL,) if blinded else (ARM_COL, STRATUM_COL)
    if scores.empty:  # no questionnaire yet
        ttd = _empty([*tte.ADTTE_COLUMNS, *carry])
    else:
        ttd = qol.time_to_deterioration(scores, subjects, None, _ts(cutoff), config, carry=carry)
    ttd_summary = km_summary(ttd, blinded, config)
    change = _qol_change_summary(cfb, group_col)
    return {
        "qol_scores": cfb,
        "qol_change_summary": change,
        "qol_deterioration": ttd,
        "qol_deterioration_summary": ttd_summary,
    }


def _qol_change_summary(cfb: pd.DataFrame, group_col: str | None) -> pd.DataFrame:
    """Per scale, visit and group: n, mean score and mean change from baseline (post-baseline visits)."""
    d = cfb.assign(group=POOLED if group_col is None else cfb[group_col].astype("str"))
    d = d[d["score"].notna()]
    out = d.groupby(["scale", "visit", "group"], as_index=False).agg(
        n=("score", "size"),
        first_date=("assessment_date", "min"),
        mean_score=("score", "mean"),
        sd_score=("score", "std"),
        n_change=("chg", "count"),
        mean_change=("chg", "mean"),
        sd_change=("chg", "std"),
    )
    order = {s: i for i, s in enumerate([*qol.QLQ_C30_SCALES, qol.SUMMARY_SCALE])}
    out = out.assign(_o=out["scale"].map(order)).sort_values(["_o", "first_date", "visit", "group"])
    return out.drop(columns=["_o"]).reset_index(drop=True)


def compute_hepatic(
    marts: Mapping[str, pd.DataFrame],
    config: EndpointConfig = DEFAULT_CONFIG,
    cutoff: CutoffLike = None,
    blinded: bool = True,
) -> dict[str, pd.DataFrame]:
    """ALBI and Child-Pugh per draw (:func:`analysis.hepatic.hepatic_function`); baseline ascites/encephalopathy
    from ``adsl`` are attached to the baseline draw (the CRF records them at baseline only)."""
    m = apply_cutoff(marts, cutoff)
    subjects = subjects_from_adsl(m["adsl"], blinded)
    labs = labs_from_mart(m["labs"])
    hf = hepatic.hepatic_function(labs, None, subjects[["subject_id", "randomisation_date"]], config)
    if {"ascites", "encephalopathy"} <= set(subjects.columns):
        clin = subjects.set_index("subject_id")[["ascites", "encephalopathy"]]
        base = hf["ablfl"].astype(bool)
        hf["ascites"] = hf["subject_id"].map(clin["ascites"]).where(base)
        hf["encephalopathy"] = hf["subject_id"].map(clin["encephalopathy"]).where(base)
        cp = hepatic.child_pugh(
            hf["bilirubin_umol_l"], hf["albumin_g_l"], hf["inr"], hf["ascites"], hf["encephalopathy"]
        )
        hf[cp.columns] = cp.set_index(hf.index)
    return {"hepatic_function": _with_arm(hf, subjects, blinded)}


def compute_endpoints(
    marts: Mapping[str, pd.DataFrame],
    config: EndpointConfig = DEFAULT_CONFIG,
    cutoff: CutoffLike = None,
    blinded: bool = True,
) -> dict[str, pd.DataFrame]:
    """Every output table (:data:`TABLES`) from the marts (module docstring)."""
    out: dict[str, pd.DataFrame] = {}
    for fn in (compute_efficacy, compute_safety, compute_qol, compute_hepatic):
        out.update(fn(marts, config, cutoff, blinded))
    return out


# ================================================================================================ summaries


def _num(x: Any) -> float | None:
    """JSON-friendly float (NaN/inf/None -> None)."""
    if x is None or x is pd.NA:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def efficacy_summary(
    survival_summary: pd.DataFrame,
    survival_comparisons: pd.DataFrame,
    response_rates: pd.DataFrame,
    response_rate_differences: pd.DataFrame,
    config: EndpointConfig = DEFAULT_CONFIG,
    params: Sequence[str] = SUMMARY_PARAMS,
) -> dict[str, Any]:
    """Key efficacy figures, machine-readable (``guttrial endpoints --json`` and the asset metadata).

    ``survival``: one entry per parameter (``params`` order) and group with n, events, censored, median and its CI
    in days and months (days / ``days_per_month``), landmark rates with CIs, and - unblinded, for the compared
    parameters - HR with CI and log-rank p, unstratified and stratified. ``response``: ORR and DCR per criterion,
    evaluator, confirmation, population and group with Clopper-Pearson CIs, plus the Miettinen-Nurminen
    differences. Missing values are ``None``.
    """
    dpm = config.days_per_month
    surv_rows: list[dict[str, Any]] = []
    comp = survival_comparisons
    for param in params:
        sub = survival_summary[survival_summary["PARAMCD"].eq(param)]
        for _, r in sub.iterrows():
            row: dict[str, Any] = {
                "endpoint": param,
                "group": r["group"],
                "n": int(r["n"]),
                "events": int(r["events"]),
                "censored": int(r["censored"]),
                "median_days": _num(r["median"]),
                "median_lcl_days": _num(r["lcl"]),
                "median_ucl_days": _num(r["ucl"]),
            }
            for key in ("median", "median_lcl", "median_ucl"):
                v = row[f"{key}_days"]
                row[f"{key}_months"] = None if v is None else v / dpm
            for mth in config.landmark_months:
                lab = f"{mth:g}m"
                row[f"rate_{lab}"] = _num(r.get(f"surv_{lab}"))
                row[f"rate_{lab}_lcl"] = _num(r.get(f"lcl_{lab}"))
                row[f"rate_{lab}_ucl"] = _num(r.get(f"ucl_{lab}"))
            row["ci_transform"] = r.get("conf_type")
            c = comp[comp["PARAMCD"].eq(param) & comp["group"].astype("str").eq(str(r["group"]))]
            for label, stratified in (("", False), ("stratified_", True)):
                cc = c[c["stratified"].astype(bool).eq(stratified)]
                if cc.empty:
                    continue
                x = cc.iloc[0]
                row |= {
                    f"{label}hr": _num(x["hr"]),
                    f"{label}hr_lcl": _num(x["hr_lcl"]),
                    f"{label}hr_ucl": _num(x["hr_ucl"]),
                    f"{label}logrank_p": _num(x["logrank_p"]),
                    f"{label}logrank_chi2": _num(x["logrank_chi2"]),
                    "reference": x["reference"],
                }
                if stratified:
                    row["strata"] = x["strata"]
            surv_rows.append(row)
    resp_rows = [
        {
            "endpoint": r["endpoint"],
            "criterion": r["criterion"],
            "evaluator": r["evaluator"],
            "confirmed": bool(r["confirmed"]),
            "population": r["population"],
            "group": r["group"],
            "n": int(r["n"]),
            "x": int(r["x"]),
            "rate": _num(r["rate"]),
            "lcl": _num(r["lcl"]),
            "ucl": _num(r["ucl"]),
            "method": r["method"],
        }
        for _, r in response_rates.iterrows()
    ]
    diff_rows = [
        {
            "endpoint": r["endpoint"],
            "criterion": r["criterion"],
            "evaluator": r["evaluator"],
            "confirmed": bool(r["confirmed"]),
            "population": r["population"],
            "group": r["group"],
            "reference": r["reference"],
            "difference": _num(r["difference"]),
            "lcl": _num(r["lcl"]),
            "ucl": _num(r["ucl"]),
            "method": r["method"],
        }
        for _, r in response_rate_differences.iterrows()
    ]
    return {"survival": surv_rows, "response": resp_rows, "response_differences": diff_rows}


def _fmt(x: float | None, digits: int = 1) -> str:
    return "NE" if x is None else f"{x:.{digits}f}"


def _fmt_ci(est: float | None, lo: float | None, hi: float | None, digits: int = 1, scale: float = 1.0) -> str:
    def s(v: float | None) -> str:
        return "NE" if v is None else f"{v * scale:.{digits}f}"

    return f"{s(est)} ({s(lo)}, {s(hi)})"


def format_efficacy_summary(figures: Mapping[str, Any], config: EndpointConfig = DEFAULT_CONFIG) -> str:
    """The efficacy summary as a plain-text table (months for medians, percent for rates; NE = not estimable).

    Survival: one row per parameter and group; HR and log-rank p are the stratified ones when available (spec
    §8.2), else unstratified. Response: one row per endpoint, source (criterion/evaluator), confirmation and
    population, one column per group (x/n, % with Clopper-Pearson CI) and, unblinded, the difference vs the
    reference with the (unstratified) Miettinen-Nurminen CI.
    """
    lines: list[str] = []
    lm = [f"{m:g}m" for m in config.landmark_months]
    head = ["Endpoint", "Group", "N", "Events", "Median mo (95% CI)", *[f"{x} % (95% CI)" for x in lm]]
    compared = any("reference" in r for r in figures.get("survival", []))
    if compared:
        head += ["HR (95% CI)", "Log-rank p"]
    rows = []
    for r in figures.get("survival", []):
        pre = "stratified_" if r.get("stratified_hr") is not None or r.get("stratified_logrank_p") is not None else ""
        hr = _fmt_ci(r.get(f"{pre}hr"), r.get(f"{pre}hr_lcl"), r.get(f"{pre}hr_ucl"), 2) if "reference" in r else ""
        p = r.get(f"{pre}logrank_p")
        rows.append(
            [
                r["endpoint"],
                str(r["group"]),
                str(r["n"]),
                str(r["events"]),
                _fmt_ci(r["median_months"], r["median_lcl_months"], r["median_ucl_months"]),
                *[_fmt_ci(r[f"rate_{x}"], r[f"rate_{x}_lcl"], r[f"rate_{x}_ucl"], 1, 100.0) for x in lm],
            ]
            + ([hr, "" if "reference" not in r else ("NE" if p is None else f"{p:.4f}")] if compared else [])
        )
    lines += _text_table(head, rows)
    lines.append("")
    lines += _response_text(figures)
    return "\n".join(lines)


def _response_text(figures: Mapping[str, Any]) -> list[str]:
    resp = figures.get("response", [])
    if not resp:
        return []
    groups = list(dict.fromkeys(str(r["group"]) for r in resp))
    keys = list(
        dict.fromkeys((r["endpoint"], r["criterion"], r["evaluator"], r["confirmed"], r["population"]) for r in resp)
    )
    cell = {
        (r["endpoint"], r["criterion"], r["evaluator"], r["confirmed"], r["population"], str(r["group"])): r
        for r in resp
    }
    diff = {
        (r["endpoint"], r["criterion"], r["evaluator"], r["confirmed"], r["population"]): r
        for r in figures.get("response_differences", [])
        if r["method"] == "Miettinen-Nurminen"
    }
    ref = next(iter(diff.values()))["reference"] if diff else None
    head = ["Endpoint", "Source", "Confirmed", "Population", *[f"{g} x/n % (95% CI)" for g in groups]]
    if diff:
        head.append(f"Difference vs {ref} % (MN 95% CI)")
    rows = []
    for key in keys:
        endpoint, crit, evaluator, confirmed, population = key
        row = [endpoint, f"{crit} {evaluator.lower()}", "Y" if confirmed else "N", population]
        for g in groups:
            r = cell.get((*key, g))
            row.append("" if r is None else f"{r['x']}/{r['n']} {_fmt_ci(r['rate'], r['lcl'], r['ucl'], 1, 100.0)}")
        if diff:
            d = diff.get(key)
            row.append("" if d is None else _fmt_ci(d["difference"], d["lcl"], d["ucl"], 1, 100.0))
        rows.append(row)
    return _text_table(head, rows)


def _text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head).rstrip(), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*r).rstrip() for r in rows]
    return out


def as_json(obj: Any) -> str:
    """JSON with dates as ISO strings and numpy scalars as numbers."""

    def default(o: Any) -> Any:
        if isinstance(o, dt.date | pd.Timestamp):
            return o.isoformat()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(obj, indent=2, default=default)
