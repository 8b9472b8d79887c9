"""Time-to-event analysis dataset (ADTTE shape): PFS, OS, DOR and TTR, one row per subject per parameter.

Spec: ``clinical-endpoints.md`` §0 (AVAL, CNSR, cut-off), §4 (admiral ``derive_param_tte()`` semantics, admiralonco
``tte_sources.R``/``ad_adtte.R``, FDA "Clinical Trial Endpoints" 2018 App. 2-3, FDA NSCLC endpoints guidance).

Inputs
------
``subjects`` (``marts.adsl``), one row per randomised subject: ``subject_id``, ``randomisation_date``,
``death_date`` (missing if alive), ``last_alive_date``, optional ``nact_date`` (first new anti-cancer therapy incl.
locoregional HCC therapy, §3.1), optional ``has_baseline_assessment`` (bool; missing = True), and any columns to carry
(arm, strata) named in ``carry``.

``responses``: time-point overall responses of one evaluator and one criterion (``subject_id, assessment_date,
overall_response``, optional ``seq`` = source record number for SRCSEQ), e.g. from
:func:`analysis.recist.timepoint_responses`.

``bor``: :func:`analysis.response.best_overall_response` output (``subject_id, responder, first_response_date``) for
DOR and TTR.

``alive_dates`` (optional): long table ``subject_id, date`` of every date a subject was known alive (visits, labs,
AEs, exposure, contacts) for LSTALVDT.

Data cut-off (:func:`apply_data_cutoff`, §0): subjects randomised after the cut-off are dropped; assessments, deaths,
alive dates and NACT starts after it are removed before anything is derived.

Common rules (admiral ``derive_param_tte``)
-------------------------------------------
``STARTDT`` = randomisation date (response date for DOR); ``ADT = max(ADT, STARTDT)``;
``AVAL = ADT − STARTDT + 1`` days (admiral ``add_one = TRUE``: censored at randomisation -> AVAL = 1); ``AVALU =
"DAYS"``. Months = days / 30.4375 only for display.

PFS (§4.2) and DOR (§4.3)
-------------------------
``E`` = earliest of the first PD (admiralonco ``ovr``: on/after randomisation, worst per date) and death; on the same
date PD wins. "Adequate" assessment = CR, PR, SD or NON-CR/NON-PD; ``L`` = last adequate assessment on/after STARTDT,
on/before E and before NACT; no such assessment -> ``L = STARTDT``. NE scans are never censoring dates.
Missed-assessment rule (FDA App. 3; config ``pfs_*``): with the protocol schedule (day 42, 84, ... 336, then every
63 days) and window ``W``, the number of scheduled assessments missed between L and E is the number of scheduled
days ``s`` with ``ℓ + W < s < e − W`` (ℓ, e = study days of L and E; with ``pfs_ne_counts_as_missed = False`` ℓ is
the last assessment of any result). For a constant interval I and L on schedule this is the spec's
``E − L > 2·I + W``.

CNSR code list (one meaning per code across parameters)
--------------------------------------------------------
====  =========================================================  ===========================  ======================
CNSR  EVNTDESC                                                   ADT                          parameters
====  =========================================================  ===========================  ======================
0     ``PROGRESSIVE DISEASE`` / ``DEATH`` / ``RESPONSE``         event date                   all
1     ``LAST ADEQUATE ASSESSMENT``                               L                            PFS, DOR
2     ``NEW ANTI-CANCER THERAPY``                                L before NACT                PFS, DOR
3     ``EVENT AFTER >= 2 MISSED ASSESSMENTS``                    L                            PFS, DOR
4     ``NO ADEQUATE POST-BASELINE ASSESSMENT``                   randomisation date           PFS
5     ``NO BASELINE ASSESSMENT``                                 randomisation date           PFS
6     ``ALIVE AT LAST CONTACT``                                  last known alive             OS
====  =========================================================  ===========================  ======================

Precedence for PFS/DOR: an event before NACT and not after missed assessments -> 0; NACT before the event (or
without event) -> 2; missed assessments -> 3; no event: no baseline -> 5, no adequate assessment -> 4, else 1.
``CNSDTDSC`` names the censoring date (``LAST ADEQUATE ASSESSMENT``, ``RANDOMIZATION DATE``, ``LAST KNOWN ALIVE
DATE``, ``DATA CUT-OFF``); ``SRCDOM``/``SRCVAR``/``SRCSEQ`` point at the record used (``ADRS``/``ADT``/``seq`` for
assessments, ``ADSL``/``DTHDT``/``RANDDT``/``LSTALVDT`` for subject-level dates).

OS (§4.1): event = death (any cause); censored (CNSR 6) at ``max(LSTALVDT, RANDDT)`` where LSTALVDT is the latest
alive date on or before the cut-off (config ``os_censor_at_cutoff_when_known_alive``). No NACT or missed-visit rule.

TTR (§4.3): responders only, STARTDT = randomisation, ADT = first response date, all events (descriptive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig
from analysis.response import DISEASE_CONTROL, prepare_ovr

CNSR_CODES: dict[int, str] = {
    0: "EVENT",
    1: "LAST ADEQUATE ASSESSMENT",
    2: "NEW ANTI-CANCER THERAPY",
    3: "EVENT AFTER >= 2 MISSED ASSESSMENTS",
    4: "NO ADEQUATE POST-BASELINE ASSESSMENT",
    5: "NO BASELINE ASSESSMENT",
    6: "ALIVE AT LAST CONTACT",
}
PARAMS: dict[str, str] = {
    "PFS": "Progression-free survival (days)",
    "OS": "Overall survival (days)",
    "DOR": "Duration of response (days)",
    "TTR": "Time to response (days)",
}
ADTTE_COLUMNS: tuple[str, ...] = (
    "subject_id", "PARAMCD", "PARAM", "STARTDT", "ADT", "AVAL", "AVALU", "CNSR", "EVNTDESC", "CNSDTDSC",
    "SRCDOM", "SRCVAR", "SRCSEQ",
)  # fmt: skip


# ------------------------------------------------------------------------------------------------ cut-off


def _dates(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    out = df.copy()
    out["subject_id"] = out["subject_id"].astype("str")
    for c in cols:
        if c in out.columns:
            out[c] = pd.to_datetime(out[c])
    return out


def apply_data_cutoff(
    cutoff: str | pd.Timestamp | None,
    subjects: pd.DataFrame,
    responses: pd.DataFrame | None = None,
    alive_dates: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Remove everything after the data cut-off (§0). ``cutoff=None`` only normalises types.

    Subjects randomised after the cut-off are dropped; ``death_date``, ``last_alive_date`` and ``nact_date`` after it
    become missing (a column ``known_alive_after_cutoff`` records that the subject was seen alive or died after the
    cut-off); responses and alive dates after it are dropped.
    """
    s = _dates(subjects, ["randomisation_date", "death_date", "last_alive_date", "nact_date"])
    for c in ("death_date", "last_alive_date", "nact_date"):
        if c not in s.columns:
            s[c] = pd.NaT
    r = None if responses is None else _dates(responses, ["assessment_date"])
    a = None if alive_dates is None else _dates(alive_dates, ["date"])
    s["known_alive_after_cutoff"] = False
    if cutoff is None:
        return s, r, a
    dco = pd.Timestamp(cutoff)
    s = s[s["randomisation_date"].le(dco)].copy()
    after = s["death_date"].gt(dco) | s["last_alive_date"].gt(dco)
    if a is not None:
        late = a.loc[a["date"].gt(dco), "subject_id"].unique()
        after |= s["subject_id"].isin(late)
        a = a[a["date"].le(dco)]
    s["known_alive_after_cutoff"] = after
    for c in ("death_date", "last_alive_date", "nact_date"):
        s[c] = s[c].where(s[c].le(dco))
    if r is not None:
        r = r[r["assessment_date"].le(dco)]
    return s, r, a


# ------------------------------------------------------------------------------------------------ helpers


def _n_scheduled(day: np.ndarray, config: EndpointConfig) -> np.ndarray:
    """Number of scheduled assessments on study days 1..day (day 42, 84, ..., switch, then every late interval)."""
    i1, i2 = config.pfs_scan_interval_days, config.pfs_scan_interval_late_days
    n_early = config.pfs_interval_switch_day // i1
    last_early = n_early * i1
    d = np.asarray(day, dtype=float)
    early = np.floor(np.maximum(d, 0) / i1)
    late = n_early + np.floor((d - last_early) / i2)
    return np.where(d <= last_early, early, late)


def missed_assessments(l_day: np.ndarray, e_day: np.ndarray, config: EndpointConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Scheduled assessments missed between study days ``l_day`` and ``e_day``: ``#{s : ℓ + W < s < e − W}``."""
    w = config.pfs_visit_window_days
    lo = np.asarray(l_day, dtype=float) + w
    hi = np.asarray(e_day, dtype=float) - w - 1  # integer days: s < e − W  <=>  s <= e − W − 1
    return np.maximum(_n_scheduled(hi, config) - _n_scheduled(lo, config), 0)


def finalise_adtte(
    df: pd.DataFrame, paramcd: str, carry: Sequence[str], subjects: pd.DataFrame, param: str | None = None
) -> pd.DataFrame:
    """Common ADTTE tail: ``ADT = max(ADT, STARTDT)``, ``AVAL = ADT − STARTDT + 1``, PARAMCD/PARAM, column order and
    carried subject columns. ``df`` needs ``subject_id, STARTDT, ADT, CNSR, EVNTDESC, CNSDTDSC, SRCDOM, SRCVAR`` and
    optionally ``SRCSEQ``."""
    df = df.copy()
    df["ADT"] = df[["ADT", "STARTDT"]].max(axis=1)
    df["AVAL"] = (df["ADT"] - df["STARTDT"]).dt.days + 1
    df["AVALU"] = "DAYS"
    df["PARAMCD"] = paramcd
    df["PARAM"] = param if param is not None else PARAMS.get(paramcd.split("_")[0], paramcd)
    df["CNSR"] = df["CNSR"].astype(int)
    df["SRCSEQ"] = pd.array(df["SRCSEQ"], dtype="Int64") if "SRCSEQ" in df.columns else pd.NA
    out = df[list(ADTTE_COLUMNS)]
    if carry:
        out = out.merge(subjects[["subject_id", *carry]], on="subject_id", how="left")
    return out.sort_values("subject_id", kind="mergesort").reset_index(drop=True)


def _last_before(ovr: pd.DataFrame, mask: pd.Series, limit: pd.Series, inclusive: bool) -> pd.DataFrame:
    """Per subject: last record with ``mask`` and date before (or on) the subject's ``limit`` (NaT = no limit)."""
    ok = mask & (limit.isna() | (ovr["assessment_date"].le(limit) if inclusive else ovr["assessment_date"].lt(limit)))
    sub = ovr[ok].sort_values(["subject_id", "assessment_date"], kind="mergesort")
    last = sub.drop_duplicates("subject_id", keep="last")
    cols = ["subject_id", "assessment_date"] + (["seq"] if "seq" in sub.columns else [])
    return last[cols]


# ------------------------------------------------------------------------------------------------ PFS / DOR engine


def _progression_tte(
    start: pd.DataFrame,
    ovr: pd.DataFrame,
    config: EndpointConfig,
    rand_censor: bool,
) -> pd.DataFrame:
    """PFS-type rows for the subjects in ``start`` (``subject_id, STARTDT, randomisation_date, death_date,
    nact_date, has_baseline_assessment``) from the ``ovr`` records (not NACT-restricted)."""
    d = start.copy()
    o = ovr.merge(d[["subject_id", "STARTDT"]], on="subject_id", how="inner")
    o = o[o["assessment_date"].ge(o["STARTDT"])]
    has_seq = "seq" in o.columns
    pd_rec = o[o["response"].eq("PD")].sort_values(["subject_id", "assessment_date"]).drop_duplicates("subject_id")
    pd_cols = ["subject_id", "assessment_date"] + (["seq"] if has_seq else [])
    d = d.merge(
        pd_rec[pd_cols].rename(columns={"assessment_date": "pd_date", "seq": "pd_seq"}), on="subject_id", how="left"
    )
    is_pd = d["pd_date"].notna() & (d["death_date"].isna() | d["pd_date"].le(d["death_date"]))
    d["E"] = d["pd_date"].where(is_pd, d["death_date"])
    nact = d["nact_date"] if config.pfs_apply_nact_rule else pd.Series(pd.NaT, index=d.index)
    # Limit for L: on/before E and before NACT.
    oo = o.merge(d[["subject_id", "E"]].assign(nact=nact.to_numpy()), on="subject_id")
    adequate = oo["response"].isin(DISEASE_CONTROL)
    lim_e = oo["E"]
    ok = (
        adequate
        & (lim_e.isna() | oo["assessment_date"].le(lim_e))
        & (oo["nact"].isna() | oo["assessment_date"].lt(oo["nact"]))
    )
    last = _last_before(oo, ok, pd.Series(pd.NaT, index=oo.index), inclusive=True)
    last = last.rename(columns={"assessment_date": "L", "seq": "L_seq"})
    d = d.merge(last, on="subject_id", how="left")
    d["no_adequate"] = d["L"].isna()
    d["L"] = d["L"].fillna(d["STARTDT"])
    if config.pfs_ne_counts_as_missed:
        gap_from = d["L"]
    else:
        anyrec = _last_before(oo, pd.Series(True, index=oo.index), oo["E"], inclusive=False)
        anyrec = anyrec.rename(columns={"assessment_date": "L_any"})[["subject_id", "L_any"]]
        d = d.merge(anyrec, on="subject_id", how="left")
        gap_from = d[["L", "L_any"]].max(axis=1)
    rand = d["randomisation_date"]
    l_day = (gap_from - rand).dt.days.to_numpy(dtype=float)
    e_day = (d["E"] - rand).dt.days.to_numpy(dtype=float)
    missed = np.where(np.isnan(e_day), 0, missed_assessments(l_day, np.nan_to_num(e_day), config))
    has_e = d["E"].notna()
    nact_first = nact.notna() & (~has_e | nact.lt(d["E"]))
    gap = has_e & config.pfs_apply_missed_assessment_rule & (missed >= config.pfs_missed_assessments)
    no_base = ~d["has_baseline_assessment"].fillna(True).astype(bool)
    cnsr = np.select(
        [nact_first, gap, has_e, rand_censor & no_base, rand_censor & d["no_adequate"]],
        [2, 3, 0, 5, 4],
        default=1,
    )
    d["CNSR"] = cnsr
    event = d["CNSR"].eq(0)
    d["ADT"] = d["E"].where(event, d["L"])
    d.loc[d["CNSR"].isin([4, 5]), "ADT"] = d["STARTDT"]
    ev_desc = np.where(is_pd, "PROGRESSIVE DISEASE", "DEATH")
    d["EVNTDESC"] = np.where(event, ev_desc, d["CNSR"].map(CNSR_CODES))
    at_start = ~event & d["ADT"].eq(d["STARTDT"]) & (d["no_adequate"] | d["CNSR"].isin([4, 5]))
    d["CNSDTDSC"] = np.where(event, "", np.where(at_start, "RANDOMIZATION DATE", "LAST ADEQUATE ASSESSMENT"))
    d["SRCDOM"] = np.where(event & ~is_pd, "ADSL", np.where(at_start, "ADSL", "ADRS"))
    d["SRCVAR"] = np.where(event & ~is_pd, "DTHDT", np.where(at_start, "RANDDT", "ADT"))
    if has_seq:
        d["SRCSEQ"] = np.where(event & is_pd, d["pd_seq"], np.where(~event & ~at_start, d["L_seq"], np.nan))
    else:
        d["SRCSEQ"] = np.nan
    d["missed_assessments"] = missed
    return d


def _start_frame(s: pd.DataFrame) -> pd.DataFrame:
    if "has_baseline_assessment" not in s.columns:
        s = s.assign(has_baseline_assessment=True)
    return s


def derive_pfs(
    subjects: pd.DataFrame,
    responses: pd.DataFrame,
    cutoff: str | pd.Timestamp | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    carry: Sequence[str] = (),
    paramcd: str = "PFS",
) -> pd.DataFrame:
    """PFS rows (ADTTE shape, columns ``ADTTE_COLUMNS`` + ``carry``). Rules in the module docstring (§4.2)."""
    s, r, _ = apply_data_cutoff(cutoff, subjects, responses)
    s = _start_frame(s).assign(STARTDT=lambda x: x["randomisation_date"])
    ovr = prepare_ovr(r, s, apply_nact=False)
    d = _progression_tte(s, ovr, config, rand_censor=True)
    return finalise_adtte(d, paramcd, carry, s)


def derive_dor(
    subjects: pd.DataFrame,
    responses: pd.DataFrame,
    bor: pd.DataFrame,
    cutoff: str | pd.Timestamp | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    carry: Sequence[str] = (),
    paramcd: str = "DOR",
) -> pd.DataFrame:
    """DOR rows for responders (``bor.responder``), STARTDT = ``bor.first_response_date`` (§4.3).

    Events PD or death; censoring at the last adequate assessment with the PFS NACT and missed-assessment rules and
    no randomisation censor. Pass the BOR derived on the same cut-off (confirmed BOR for the confirmed analysis).
    """
    s, r, _ = apply_data_cutoff(cutoff, subjects, responses)
    b = bor[["subject_id", "responder", "first_response_date"]].copy()
    b["subject_id"] = b["subject_id"].astype("str")
    b["first_response_date"] = pd.to_datetime(b["first_response_date"])
    b = b[b["responder"].fillna(False).astype(bool) & b["first_response_date"].notna()]
    s = _start_frame(s).merge(b[["subject_id", "first_response_date"]], on="subject_id", how="inner")
    s = s.assign(STARTDT=s["first_response_date"])
    ovr = prepare_ovr(r, s, apply_nact=False)
    d = _progression_tte(s, ovr, config, rand_censor=False)
    d["CNSDTDSC"] = d["CNSDTDSC"].replace({"RANDOMIZATION DATE": "FIRST RESPONSE DATE"})
    d.loc[d["CNSDTDSC"].eq("FIRST RESPONSE DATE"), ["SRCDOM", "SRCVAR"]] = ["ADRS", "ADT"]
    return finalise_adtte(d, paramcd, carry, s)


def derive_ttr(
    subjects: pd.DataFrame,
    bor: pd.DataFrame,
    cutoff: str | pd.Timestamp | None = None,
    carry: Sequence[str] = (),
    paramcd: str = "TTR",
) -> pd.DataFrame:
    """Time to response among responders: randomisation -> first response, all events (descriptive, §4.3)."""
    s, _, _ = apply_data_cutoff(cutoff, subjects)
    b = bor[["subject_id", "responder", "first_response_date"]].copy()
    b["subject_id"] = b["subject_id"].astype("str")
    b["first_response_date"] = pd.to_datetime(b["first_response_date"])
    b = b[b["responder"].fillna(False).astype(bool) & b["first_response_date"].notna()]
    if cutoff is not None:
        b = b[b["first_response_date"].le(pd.Timestamp(cutoff))]
    d = s.merge(b, on="subject_id", how="inner")
    d = d.assign(
        STARTDT=d["randomisation_date"], ADT=d["first_response_date"], CNSR=0, EVNTDESC="RESPONSE", CNSDTDSC="",
        SRCDOM="ADRS", SRCVAR="ADT", SRCSEQ=np.nan,
    )  # fmt: skip
    return finalise_adtte(d, paramcd, carry, s)


def derive_os(
    subjects: pd.DataFrame,
    cutoff: str | pd.Timestamp | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    responses: pd.DataFrame | None = None,
    alive_dates: pd.DataFrame | None = None,
    carry: Sequence[str] = (),
    paramcd: str = "OS",
) -> pd.DataFrame:
    """OS rows (§4.1): death is the event; otherwise censored (CNSR 6) at the last known alive date.

    LSTALVDT = latest of ``last_alive_date``, ``alive_dates`` and response assessment dates on or before the cut-off;
    never before randomisation.
    """
    s, r, a = apply_data_cutoff(cutoff, subjects, responses, alive_dates)
    parts = [s[["subject_id", "last_alive_date"]].rename(columns={"last_alive_date": "date"}).assign(src="LSTALVDT")]
    if r is not None:
        parts.append(r[["subject_id", "assessment_date"]].rename(columns={"assessment_date": "date"}).assign(src="ADT"))
    if a is not None:
        parts.append(a[["subject_id", "date"]].assign(src="ALIVE"))
    alive = pd.concat(parts, ignore_index=True).dropna(subset=["date"])
    alive = alive.sort_values(["subject_id", "date"], kind="mergesort").drop_duplicates("subject_id", keep="last")
    d = s.merge(alive.rename(columns={"date": "lstalvdt"}), on="subject_id", how="left")
    d["STARTDT"] = d["randomisation_date"]
    event = d["death_date"].notna()
    cens_date = d[["lstalvdt", "randomisation_date"]].max(axis=1)
    at_dco = pd.Series(False, index=d.index)
    if cutoff is not None and config.os_censor_at_cutoff_when_known_alive:
        at_dco = ~event & d["known_alive_after_cutoff"].astype(bool)
        cens_date = cens_date.where(~at_dco, pd.Timestamp(cutoff))
    d["ADT"] = d["death_date"].where(event, cens_date)
    d["CNSR"] = np.where(event, 0, 6)
    d["EVNTDESC"] = np.where(event, "DEATH", CNSR_CODES[6])
    d["CNSDTDSC"] = np.where(event, "", np.where(at_dco, "DATA CUT-OFF", "LAST KNOWN ALIVE DATE"))
    d["SRCDOM"] = "ADSL"
    d["SRCVAR"] = np.where(event, "DTHDT", np.where(at_dco, "DCUTDT", "LSTALVDT"))
    d["SRCSEQ"] = np.nan
    return finalise_adtte(d, paramcd, carry, s)


def derive_adtte(
    subjects: pd.DataFrame,
    responses: pd.DataFrame,
    bor: pd.DataFrame | None = None,
    cutoff: str | pd.Timestamp | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    alive_dates: pd.DataFrame | None = None,
    carry: Sequence[str] = (),
    paramcd_suffix: str = "",
) -> pd.DataFrame:
    """All parameters stacked: PFS, OS, and (with ``bor``) DOR and TTR. ``paramcd_suffix`` (e.g. ``"_MR"``) names a
    second criterion's parameters; OS is criterion-independent and only added without a suffix."""
    parts = [derive_pfs(subjects, responses, cutoff, config, carry, "PFS" + paramcd_suffix)]
    if not paramcd_suffix:
        parts.append(derive_os(subjects, cutoff, config, responses, alive_dates, carry))
    if bor is not None:
        parts.append(derive_dor(subjects, responses, bor, cutoff, config, carry, "DOR" + paramcd_suffix))
        parts.append(derive_ttr(subjects, bor, cutoff, carry, "TTR" + paramcd_suffix))
    return pd.concat(parts, ignore_index=True)
