"""RECIST 1.1 and mRECIST time-point (visit) responses computed from lesion measurements.

Spec: ``clinical-endpoints.md`` §1 (RECIST 1.1) and §2 (mRECIST). Sources: Eisenhauer et al., EJC 2009;45:228
(RECIST 1.1, Tables 1-2); EORTC RECIST FAQ/clarifications; CDISC RECIST TA supplement; admiralonco
``vignettes/adtr.Rmd`` (SOD, nadir, PCHG/PCHGNAD); Lencioni & Llovet, Semin Liver Dis 2010;30:52 (mRECIST).

Input: one row per lesion per assessment (``marts.tumor_measurements``), columns

==========================  =================================================================================
``subject_id``              subject identifier
``visit``                   visit label, unique per subject and assessment (number repeated unscheduled
                            visits); the scans of one visit may span several dates
``assessment_date``         scan date (date or ISO string)
``lesion_id``               lesion identifier, stable across visits (TRLNKID)
``category``                ``TARGET`` / ``NON-TARGET`` / ``NEW`` (category at baseline decides for follow-ups)
``is_node``                 lymph node (bool or ``Y``/``N``)
``diameter_mm``             long axis; **short axis for nodes**. Fragments of a split lesion may be given as several
                            rows with the same ``lesion_id`` (they are summed); coalesced lesions: 0 for the others
``nontarget_status``        non-target rows: ``PRESENT`` / ``ABSENT`` / ``UNEQUIVOCAL PROGRESSION``
``viable_diameter_mm``      optional: mRECIST longest diameter of the viable (arterially enhancing) tumour
``measurement_status``      optional: ``TOO SMALL TO MEASURE`` (-> 5 mm), ``DISAPPEARED`` (-> 0 mm),
                            ``NOT EVALUABLE`` (-> not assessed); anything else: the recorded value is used
``new_lesion_status``       optional, NEW rows: ``UNEQUIVOCAL`` (default) or ``EQUIVOCAL``
``nontarget_status_mrecist`` optional: mRECIST non-target status (enhancement); defaults to ``nontarget_status``
``location``                optional: organ; the mRECIST new-lesion size rule applies to liver lesions only when
                            present (``LIVER``/``HEPATIC`` in the text), to every new lesion otherwise
==========================  =================================================================================

and optionally ``subjects`` (``marts.adsl``) with ``subject_id`` and ``randomisation_date``.

Rules (RECIST 1.1 unless noted)
-------------------------------
* Baseline = the last visit whose first scan is on or before randomisation; without a randomisation date (or no such
  visit), the first visit. Visits before the baseline are ignored. The baseline target set = lesions categorised
  ``TARGET`` at baseline with a measured value; non-target set likewise (§1.1).
* ``SOD = Σ LD(non-nodal targets) + Σ SA(nodal targets)``; node short axes are recorded even when < 10 mm (§1.2).
* A visit is *complete* when every baseline target lesion has a value there (admiralonco ``LSEXP == LSASS``).
  ``NADIR(t) = min SOD over prior complete visits, baseline included`` (never the current one);
  ``PCHG = 100·(SOD−BASE)/BASE``, ``CHGNAD = SOD−NADIR``, ``PCHGNAD = 100·CHGNAD/NADIR`` (NA when NADIR = 0).
* Target response, in this order (§1.3): ``NA`` no targets; ``NE`` incomplete (unless the partial sum already meets
  PD -> ``PD``); ``CR`` all non-nodal targets 0 mm and all target nodes < 10 mm (SOD may be > 0); ``PD``
  ``SOD ≥ 1.2·NADIR`` and ``SOD − NADIR ≥ 5 mm`` (checked **before** PR); ``PR`` ``SOD ≤ 0.7·BASE``; else ``SD``.
  With NADIR = 0, PD needs an increase > 0 that meets the absolute floor.
* Non-target response (§1.4): ``NA`` none at baseline; ``PD`` unequivocal progression; ``NE`` a baseline non-target
  not assessed; ``CR`` all absent (a node with short axis < 10 mm counts as absent); else ``NON-CR/NON-PD``.
* New lesions (§1.4): ``Y`` when an unequivocal new lesion is seen. An equivocal lesion counts as ``N`` at that
  visit, but when the same ``lesion_id`` is later unequivocal, PD is back-dated to the visit where it first appeared.
* Overall response: RECIST Table 1 and, for non-measurable disease only, Table 2 (see :func:`overall_response`).
* Reappearance after CR (EORTC FAQ; config ``reappearance_after_cr_is_pd``): once an earlier visit was overall CR,
  a target (non-nodal > 0 mm, node ≥ 10 mm) or non-target (present again) reappearing is PD.
* Time-point labelling after PR (config ``timepoint_pr_after_response``, §1.6).
* Response date (§1.5): PD -> earliest date of a scan showing it (new lesion, unequivocal non-target progression,
  or the last target scan of the visit for a sum-based PD); otherwise the latest (config) scan date of the visit.

mRECIST differences (§2): each lesion is measured by its viable diameter when one was recorded at baseline (nodes
and atypical, non-enhancing HCC keep the RECIST measurement); CR = no viable tumour in any target (nodes < 10 mm);
PD needs +20 % over the viable nadir and ``mrecist_pd_min_increase_mm`` (default 0, i.e. no 5 mm floor); a new
intrahepatic lesion is unequivocal only when ≥ 10 mm (smaller ones equivocal, back-dated once they grow). The
porta-hepatis node (≥ 20 mm) and cytology-proven effusion rules are target-selection/reading rules, not derivable
from these columns: they must be applied when the lesions are recorded.

Thresholds are compared on unrounded values with a 1e-9 tolerance on the percent scale, or on values rounded to
``percent_decimals`` (config).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig

RECIST = "RECIST 1.1"
MRECIST = "mRECIST"
CRITERIA: tuple[str, ...] = (RECIST, MRECIST)

TL_RESPONSES: tuple[str, ...] = ("CR", "PR", "SD", "PD", "NE", "NA")
NTL_RESPONSES: tuple[str, ...] = ("CR", "NON-CR/NON-PD", "PD", "NE", "NA")
OVERALL_RESPONSES: tuple[str, ...] = ("CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE")

_PR_PCT = 30.0
_PD_PCT = 20.0
_NODE_NORMAL_MM = 10.0
_TOL = 1e-9

_REQUIRED = ("subject_id", "visit", "assessment_date", "lesion_id", "category", "is_node", "diameter_mm")


def _as_bool(s: pd.Series) -> pd.Series:
    """``True``/``False``/``Y``/``N``/``1``/``0`` -> bool (missing -> False)."""
    if pd.api.types.is_bool_dtype(s):
        return s.fillna(False).astype(bool)
    txt = s.astype("str").str.strip().str.upper()
    return txt.isin(["Y", "YES", "TRUE", "1", "1.0"]).astype(bool)


def _upper(s: pd.Series) -> pd.Series:
    return s.astype("str").str.strip().str.upper()


def _prepare(lesions: pd.DataFrame, criterion: str, config: EndpointConfig) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in lesions.columns]
    if missing:
        raise ValueError(f"lesion table lacks columns {missing}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, not {criterion!r}")
    df = pd.DataFrame(
        {
            "subject_id": lesions["subject_id"].astype("str"),
            "visit": lesions["visit"].astype("str"),
            "date": pd.to_datetime(lesions["assessment_date"]),
            "lesion_id": lesions["lesion_id"].astype("str"),
            "category": _upper(lesions["category"]),
            "is_node": _as_bool(lesions["is_node"]),
            "diameter": pd.to_numeric(lesions["diameter_mm"], errors="coerce").astype(float),
        }
    )
    status_col = "nontarget_status"
    if criterion == MRECIST and "nontarget_status_mrecist" in lesions.columns:
        status_col = "nontarget_status_mrecist"
    df["nt_status"] = (
        _upper(lesions[status_col]) if status_col in lesions.columns else pd.Series(np.nan, index=df.index)
    )
    mstat = _upper(lesions["measurement_status"]) if "measurement_status" in lesions.columns else None
    df["new_equivocal"] = (
        _upper(lesions["new_lesion_status"]).eq("EQUIVOCAL") if "new_lesion_status" in lesions.columns else False
    )
    df["location"] = _upper(lesions["location"]) if "location" in lesions.columns else ""
    df["viable"] = (
        pd.to_numeric(lesions["viable_diameter_mm"], errors="coerce").astype(float)
        if "viable_diameter_mm" in lesions.columns
        else np.nan
    )

    def apply_status(values: pd.Series) -> pd.Series:
        if mstat is None:
            return values
        out = values.mask(mstat.eq("TOO SMALL TO MEASURE"), config.too_small_to_measure_mm)
        out = out.mask(mstat.eq("DISAPPEARED"), 0.0)
        return out.mask(mstat.eq("NOT EVALUABLE"), np.nan)

    df["diameter"] = apply_status(df["diameter"])
    df["viable"] = apply_status(df["viable"])
    return df


def _visits(df: pd.DataFrame, subjects: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (subject, visit) from baseline on, with its sequence number and baseline flag."""
    v = df.groupby(["subject_id", "visit"], as_index=False).agg(first_date=("date", "min"), last_date=("date", "max"))
    v = v.sort_values(["subject_id", "first_date", "last_date", "visit"], kind="mergesort").reset_index(drop=True)
    v["vis_seq"] = v.groupby("subject_id").cumcount()
    if subjects is not None and "randomisation_date" in subjects.columns:
        rand = subjects[["subject_id", "randomisation_date"]].copy()
        rand["subject_id"] = rand["subject_id"].astype("str")
        rand["randomisation_date"] = pd.to_datetime(rand["randomisation_date"])
        v = v.merge(rand.drop_duplicates("subject_id"), on="subject_id", how="left")
        pre = v["first_date"].le(v["randomisation_date"])
    else:
        pre = pd.Series(False, index=v.index)
    last_pre = v["vis_seq"].where(pre).groupby(v["subject_id"]).transform("max")
    base_seq = last_pre.fillna(0).astype(int)
    v["ablfl"] = v["vis_seq"].eq(base_seq)
    v = v[v["vis_seq"] >= base_seq].copy()
    v["vis_seq"] = v["vis_seq"] - base_seq.loc[v.index]
    return v.drop(columns=[c for c in ("randomisation_date",) if c in v.columns])


def _measure(df: pd.DataFrame, criterion: str) -> pd.Series:
    """The value a lesion contributes to the sum under ``criterion``."""
    if criterion == RECIST:
        return df["diameter"]
    # mRECIST: lesions with a viable diameter at baseline are followed by it; others (nodes, atypical HCC) by RECIST.
    return df["viable"].where(df["uses_viable"], df["diameter"])


def _lesion_sets(df: pd.DataFrame, visits: pd.DataFrame, criterion: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    base_rows = df.merge(visits.loc[visits["ablfl"], ["subject_id", "visit"]], on=["subject_id", "visit"])
    if criterion == MRECIST:
        uses = (
            base_rows.assign(u=base_rows["viable"].notna() & ~base_rows["is_node"])
            .groupby(["subject_id", "lesion_id"], as_index=False)["u"]
            .any()
            .rename(columns={"u": "uses_viable"})
        )
        base_rows = base_rows.merge(uses, on=["subject_id", "lesion_id"], how="left")
    else:
        base_rows["uses_viable"] = False
    base_rows["value"] = _measure(base_rows, criterion)
    tl = (
        base_rows[base_rows["category"].eq("TARGET")]
        .groupby(["subject_id", "lesion_id"], as_index=False)
        .agg(
            is_node=("is_node", "first"),
            base_value=("value", "sum"),
            n_measured=("value", "count"),
            uses_viable=("uses_viable", "first"),
        )
    )
    tl = tl[tl["n_measured"].gt(0)].drop(columns="n_measured")
    ntl = (
        base_rows[base_rows["category"].eq("NON-TARGET")]
        .groupby(["subject_id", "lesion_id"], as_index=False)
        .agg(is_node=("is_node", "first"))
    )
    return tl, ntl


def sum_of_diameters(
    lesions: pd.DataFrame,
    subjects: pd.DataFrame | None = None,
    criterion: str = RECIST,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """Target-lesion sums per visit (ADTR-like), baseline visit included.

    Returns one row per subject and visit from baseline on with ``subject_id, visit, criterion, vis_seq, ablfl,
    first_date, last_date, target_date`` (last target scan date), ``n_target_expected, n_target_assessed,
    target_complete, sod, base, nadir, pchg, chgnad, pchgnad, nonnodal_all_zero, nodes_all_normal,
    target_reappeared``. Subjects without target lesions get ``n_target_expected = 0`` and missing sums. Formulas in
    the module docstring (§1.2).
    """
    df = _prepare(lesions, criterion, config)
    visits = _visits(df, subjects)
    return _sod_table(df, visits, criterion)[0]


def _sod_table(
    df: pd.DataFrame, visits: pd.DataFrame, criterion: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    tl, ntl = _lesion_sets(df, visits, criterion)
    # Grid: every visit from baseline on x every baseline target lesion of the subject.
    grid = visits[["subject_id", "visit", "vis_seq"]].merge(tl, on="subject_id", how="inner")
    rows = df[df["category"].ne("NEW")].merge(
        tl[["subject_id", "lesion_id", "uses_viable"]], on=["subject_id", "lesion_id"]
    )
    rows["value"] = _measure(rows, criterion)
    meas = rows.groupby(["subject_id", "visit", "lesion_id"], as_index=False).agg(
        value=("value", "sum"), n_measured=("value", "count"), tdate=("date", "max")
    )
    meas["value"] = meas["value"].where(meas["n_measured"].gt(0))
    meas = meas.drop(columns="n_measured")
    grid = grid.merge(meas, on=["subject_id", "visit", "lesion_id"], how="left")
    grid["assessed"] = grid["value"].notna()
    grid["nonnodal_pos"] = grid["assessed"] & ~grid["is_node"] & grid["value"].gt(0)
    grid["node_abn"] = grid["assessed"] & grid["is_node"] & grid["value"].ge(_NODE_NORMAL_MM)
    agg = grid.groupby(["subject_id", "visit"], as_index=False).agg(
        n_target_expected=("lesion_id", "size"),
        n_target_assessed=("assessed", "sum"),
        sod=("value", "sum"),
        any_nonnodal_pos=("nonnodal_pos", "any"),
        any_node_abn=("node_abn", "any"),
        target_date=("tdate", "max"),
    )
    out = visits.merge(agg, on=["subject_id", "visit"], how="left")
    out["n_target_expected"] = out["n_target_expected"].fillna(0).astype(int)
    out["n_target_assessed"] = out["n_target_assessed"].fillna(0).astype(int)
    has_tl = out["n_target_expected"].gt(0)
    out["sod"] = out["sod"].where(has_tl & out["n_target_assessed"].gt(0))
    out["target_complete"] = has_tl & out["n_target_assessed"].eq(out["n_target_expected"])
    out["nonnodal_all_zero"] = ~out["any_nonnodal_pos"].fillna(False).astype(bool)
    out["nodes_all_normal"] = ~out["any_node_abn"].fillna(False).astype(bool)
    out["target_reappeared"] = has_tl & ~(out["nonnodal_all_zero"] & out["nodes_all_normal"])
    out = out.drop(columns=["any_nonnodal_pos", "any_node_abn"])
    out = out.sort_values(["subject_id", "vis_seq"], kind="mergesort").reset_index(drop=True)
    out["base"] = out["sod"].where(out["ablfl"]).groupby(out["subject_id"]).transform("max")
    # NADIR = min over *prior* complete visits (baseline included): cummin of complete sums, carried forward, shifted.
    complete_sod = out["sod"].where(out["target_complete"])
    running = complete_sod.groupby(out["subject_id"]).cummin().groupby(out["subject_id"]).ffill()
    out["nadir"] = running.groupby(out["subject_id"]).shift(1)
    out["nadir"] = out["nadir"].groupby(out["subject_id"]).ffill()
    out["pchg"] = 100.0 * (out["sod"] - out["base"]) / out["base"]
    out["chgnad"] = out["sod"] - out["nadir"]
    out["pchgnad"] = (100.0 * out["chgnad"] / out["nadir"]).where(out["nadir"].gt(0))
    out["criterion"] = criterion
    cols = [
        "subject_id", "visit", "criterion", "vis_seq", "ablfl", "first_date", "last_date", "target_date",
        "n_target_expected", "n_target_assessed", "target_complete", "sod", "base", "nadir", "pchg", "chgnad",
        "pchgnad", "nonnodal_all_zero", "nodes_all_normal", "target_reappeared",
    ]  # fmt: skip
    return out[cols], tl, ntl


def overall_response(tl: pd.Series, ntl: pd.Series, new_lesion: pd.Series) -> pd.Series:
    """RECIST 1.1 overall time-point response from target, non-target and new-lesion responses (Tables 1 and 2).

    ``tl`` in CR/PR/SD/PD/NE/NA (NA = no target lesions), ``ntl`` in CR/NON-CR/NON-PD/PD/NE/NA (NA = no non-target
    lesions), ``new_lesion`` in Y/N. Table 1: any PD or a new lesion -> PD; CR + (CR or NA) -> CR; CR + NON-CR/NON-PD
    or NE -> PR; PR + non-PD -> PR; SD + non-PD -> SD; NE + non-PD -> NE. Table 2 (no targets): CR -> CR,
    NON-CR/NON-PD -> NON-CR/NON-PD, NE -> NE. No disease at baseline at all (NA + NA) without new lesions -> NE.
    """
    tl = tl.astype("str").reset_index(drop=True)
    ntl = ntl.astype("str").reset_index(drop=True)
    nl = new_lesion.astype("str").reset_index(drop=True)
    conds = [
        nl.eq("Y") | tl.eq("PD") | ntl.eq("PD"),
        tl.eq("CR") & ntl.isin(["CR", "NA"]),
        tl.eq("CR") & ntl.isin(["NON-CR/NON-PD", "NE"]),
        tl.eq("PR"),
        tl.eq("SD"),
        tl.eq("NE"),
        tl.eq("NA") & ntl.eq("CR"),
        tl.eq("NA") & ntl.eq("NON-CR/NON-PD"),
    ]
    choices = ["PD", "CR", "PR", "PR", "SD", "NE", "CR", "NON-CR/NON-PD"]
    return pd.Series(np.select(conds, choices, default="NE"), dtype="str")


def _prior_any(flag: pd.Series, subject: pd.Series) -> pd.Series:
    """Per subject (rows in visit order): was ``flag`` true at any *earlier* row?"""
    running = flag.astype(int).groupby(subject).cummax()
    return running.groupby(subject).shift(1).fillna(0).astype(bool)


def _pct_ge(num: pd.Series, den: pd.Series, pct: float, decimals: int | None) -> pd.Series:
    """``100·num/den >= pct`` (rounded to ``decimals`` or with a 1e-9 tolerance)."""
    if decimals is None:
        return (100.0 * num - pct * den).ge(-_TOL * np.maximum(1.0, den.abs()))
    return (100.0 * num / den).round(decimals).ge(pct)


def timepoint_responses(
    lesions: pd.DataFrame,
    subjects: pd.DataFrame | None = None,
    criterion: str = RECIST,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """Time-point responses per post-baseline visit under ``criterion`` (``"RECIST 1.1"`` or ``"mRECIST"``).

    Returns one row per subject and post-baseline visit, ordered by subject and visit sequence, with
    ``subject_id, visit, criterion, vis_seq, assessment_date`` (the response date, see module docstring),
    ``first_date, last_date, n_target_expected, n_target_assessed, target_complete, sod, base, nadir, pchg, chgnad,
    pchgnad, tl_response, ntl_response, new_lesion (Y/N), new_lesion_equivocal (bool), reappearance_pd (bool),
    overall_response``. Rules in the module docstring.
    """
    df = _prepare(lesions, criterion, config)
    visits = _visits(df, subjects)
    sod, _, ntl_set = _sod_table(df, visits, criterion)
    post = sod[~sod["ablfl"]].copy().reset_index(drop=True)
    if post.empty:
        return _empty_result()
    min_abs = config.recist_pd_min_increase_mm if criterion == RECIST else config.mrecist_pd_min_increase_mm
    dec = config.percent_decimals

    # ---------------------------------------------------------------- target lesions
    has_tl = post["n_target_expected"].gt(0)
    inc = post["sod"] - post["nadir"]
    pd_rule = (
        (
            has_tl
            & inc.gt(_TOL)
            & inc.ge(min_abs - _TOL)
            & (post["nadir"].eq(0) | _pct_ge(inc, post["nadir"], _PD_PCT, dec))
        )
        .fillna(False)
        .astype(bool)
    )
    pr_rule = _pct_ge(post["base"] - post["sod"], post["base"], _PR_PCT, dec).fillna(False).astype(bool)
    complete = post["target_complete"].astype(bool)
    cr_rule = complete & post["nonnodal_all_zero"] & post["nodes_all_normal"]
    tl = np.select(
        [~has_tl, ~complete & ~pd_rule, cr_rule, pd_rule, pr_rule],
        ["NA", "NE", "CR", "PD", "PR"],
        default="SD",
    )
    post["tl_response"] = pd.Series(tl, dtype="str")
    if config.timepoint_pr_after_response == "sticky":
        prior = _prior_any(post["tl_response"].isin(["PR", "CR"]), post["subject_id"])
        post.loc[prior & post["tl_response"].eq("SD"), "tl_response"] = "PR"

    # ---------------------------------------------------------------- non-target lesions
    pv = post[["subject_id", "visit"]]
    ngrid = pv.merge(ntl_set, on="subject_id", how="inner")
    nrows = df[df["category"].ne("NEW")].merge(ntl_set[["subject_id", "lesion_id"]], on=["subject_id", "lesion_id"])
    nrows["absent"] = nrows["nt_status"].eq("ABSENT") | (nrows["is_node"] & nrows["diameter"].lt(_NODE_NORMAL_MM))
    nrows["upd"] = nrows["nt_status"].eq("UNEQUIVOCAL PROGRESSION")
    nrows["assessed"] = nrows["nt_status"].isin(["ABSENT", "PRESENT", "UNEQUIVOCAL PROGRESSION"]) | nrows["absent"]
    nrows["upd_date"] = nrows["date"].where(nrows["upd"])
    nles = nrows.groupby(["subject_id", "visit", "lesion_id"], as_index=False).agg(
        assessed=("assessed", "any"), absent=("absent", "all"), upd=("upd", "any"), upd_date=("upd_date", "min")
    )
    ngrid = ngrid.merge(nles, on=["subject_id", "visit", "lesion_id"], how="left")
    ngrid["assessed"] = ngrid["assessed"].fillna(False).astype(bool)
    ngrid["upd"] = ngrid["upd"].fillna(False).astype(bool)
    ngrid["present"] = ngrid["assessed"] & ~ngrid["absent"].fillna(False).astype(bool)
    nagg = ngrid.groupby(["subject_id", "visit"], as_index=False).agg(
        n_ntl=("lesion_id", "size"),
        n_ntl_assessed=("assessed", "sum"),
        ntl_any_present=("present", "any"),
        ntl_upd=("upd", "any"),
        ntl_upd_date=("upd_date", "min"),
    )
    post = post.merge(nagg, on=["subject_id", "visit"], how="left")
    n_ntl = post["n_ntl"].fillna(0)
    ntl_upd = post["ntl_upd"].fillna(False).astype(bool)
    ntl_present = post["ntl_any_present"].fillna(False).astype(bool)
    ntl = np.select(
        [n_ntl.eq(0), ntl_upd, post["n_ntl_assessed"].fillna(0).lt(n_ntl), ~ntl_present],
        ["NA", "PD", "NE", "CR"],
        default="NON-CR/NON-PD",
    )
    post["ntl_response"] = pd.Series(ntl, dtype="str")

    # ---------------------------------------------------------------- new lesions (with back-dating)
    new = df[df["category"].eq("NEW")].merge(pv, on=["subject_id", "visit"])
    unequivocal = ~new["new_equivocal"].astype(bool)
    if criterion == MRECIST:
        loc = new["location"]
        liver = loc.str.contains("LIVER|HEPATIC", regex=True).fillna(False).astype(bool) | loc.isna() | loc.eq("")
        size = new["viable"].fillna(new["diameter"])
        small = liver & size.notna() & size.lt(config.mrecist_new_lesion_min_mm)
        unequivocal = unequivocal & ~small
    new["unequivocal"] = unequivocal.astype(bool)
    confirmed = new.groupby(["subject_id", "lesion_id"])["unequivocal"].transform("any").astype(bool)
    new["confirmed"] = confirmed
    new["nl_date"] = new["date"].where(confirmed)
    nl = new.groupby(["subject_id", "visit"], as_index=False).agg(
        nl_yes=("confirmed", "any"), nl_any=("lesion_id", "size"), nl_date=("nl_date", "min")
    )
    post = post.merge(nl, on=["subject_id", "visit"], how="left")
    nl_yes = post["nl_yes"].fillna(False).astype(bool)
    post["new_lesion"] = pd.Series(np.where(nl_yes, "Y", "N"), dtype="str")
    post["new_lesion_equivocal"] = post["nl_any"].fillna(0).gt(0) & ~nl_yes

    # ---------------------------------------------------------------- overall response
    post["overall_response"] = overall_response(post["tl_response"], post["ntl_response"], post["new_lesion"]).values
    post["reappearance_pd"] = False
    if config.reappearance_after_cr_is_pd:
        prior_cr = _prior_any(post["overall_response"].eq("CR"), post["subject_id"])
        tl_back = prior_cr & post["target_reappeared"].astype(bool) & post["tl_response"].ne("PD")
        ntl_back = prior_cr & ntl_present & post["ntl_response"].ne("PD")
        hit = (tl_back | ntl_back) & post["overall_response"].ne("PD")
        post.loc[tl_back, "tl_response"] = "PD"
        post.loc[ntl_back, "ntl_response"] = "PD"
        post.loc[hit, "overall_response"] = "PD"
        post["reappearance_pd"] = hit

    # ---------------------------------------------------------------- response date
    tl_pd_date = post["target_date"].where(post["tl_response"].eq("PD"))
    ntl_pd_date = post["ntl_upd_date"].where(post["ntl_response"].eq("PD") & ntl_upd)
    ntl_pd_date = ntl_pd_date.fillna(post["last_date"].where(post["ntl_response"].eq("PD")))
    nl_pd_date = post["nl_date"].where(nl_yes)
    pd_date = pd.concat([tl_pd_date, ntl_pd_date, nl_pd_date], axis=1).min(axis=1)
    other = post["last_date"] if config.nonpd_response_date == "latest" else post["first_date"]
    post["assessment_date"] = pd_date.where(post["overall_response"].eq("PD")).fillna(other)
    post["assessment_date"] = post["assessment_date"].fillna(other)

    cols = [
        "subject_id", "visit", "criterion", "vis_seq", "assessment_date", "first_date", "last_date",
        "n_target_expected", "n_target_assessed", "target_complete", "sod", "base", "nadir", "pchg", "chgnad",
        "pchgnad", "tl_response", "ntl_response", "new_lesion", "new_lesion_equivocal", "reappearance_pd",
        "overall_response",
    ]  # fmt: skip
    return post[cols].sort_values(["subject_id", "vis_seq"], kind="mergesort").reset_index(drop=True)


def _empty_result() -> pd.DataFrame:
    cols = [
        "subject_id", "visit", "criterion", "vis_seq", "assessment_date", "first_date", "last_date",
        "n_target_expected", "n_target_assessed", "target_complete", "sod", "base", "nadir", "pchg", "chgnad",
        "pchgnad", "tl_response", "ntl_response", "new_lesion", "new_lesion_equivocal", "reappearance_pd",
        "overall_response",
    ]  # fmt: skip
    return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})


def timepoint_responses_all(
    lesions: pd.DataFrame,
    subjects: pd.DataFrame | None = None,
    criteria: Sequence[str] = CRITERIA,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """Time-point responses under several criteria stacked (column ``criterion``, the spec's PARCAT3).

    mRECIST is derived only for subjects with at least one viable-tumour diameter recorded (and skipped entirely when
    the ``viable_diameter_mm`` column is absent).
    """
    parts = []
    for crit in criteria:
        data = lesions
        if crit == MRECIST:
            if "viable_diameter_mm" not in lesions.columns:
                continue
            has = lesions["viable_diameter_mm"].notna().groupby(lesions["subject_id"]).transform("any")
            data = lesions[has.astype(bool)]
            if data.empty:
                continue
        parts.append(timepoint_responses(data, subjects, crit, config))
    if not parts:
        return _empty_result()
    return pd.concat(parts, ignore_index=True)


def baseline_disease(lesions: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """Per subject of ``subjects`` (``subject_id, randomisation_date``): ``has_baseline_assessment`` (a tumour
    assessment on or before randomisation) and ``measurable_disease`` (admiralonco MDIS: a TARGET lesion with a
    measurement at that baseline), for the PFS "no baseline" censoring and the response-evaluable population."""
    df = _prepare(lesions, RECIST, DEFAULT_CONFIG)
    s = subjects[["subject_id", "randomisation_date"]].copy()
    s["subject_id"] = s["subject_id"].astype("str")
    s["randomisation_date"] = pd.to_datetime(s["randomisation_date"])
    visits = _visits(df, s).merge(s, on="subject_id", how="left")
    base = visits[visits["ablfl"] & visits["first_date"].le(visits["randomisation_date"])]
    rows = df.merge(base[["subject_id", "visit"]], on=["subject_id", "visit"])
    measurable = rows.loc[rows["category"].eq("TARGET") & rows["diameter"].notna(), "subject_id"].unique()
    out = s[["subject_id"]].drop_duplicates().copy()
    out["has_baseline_assessment"] = out["subject_id"].isin(base["subject_id"].unique())
    out["measurable_disease"] = out["subject_id"].isin(measurable)
    return out.reset_index(drop=True)


def check_target_selection(
    lesions: pd.DataFrame,
    subjects: pd.DataFrame | None = None,
    max_baseline_days_before: int = 28,
) -> pd.DataFrame:
    """QA listing of baseline target selections that break RECIST 1.1 §1.1 (one row per finding).

    Checks: more than 5 targets; more than 2 targets in one organ (``location``; all nodes count as one organ);
    non-nodal target < 10 mm; target node short axis < 15 mm; baseline scan more than ``max_baseline_days_before``
    days before randomisation. Columns ``subject_id, lesion_id, finding``.
    """
    df = _prepare(lesions, RECIST, DEFAULT_CONFIG)
    visits = _visits(df, subjects)
    base = df.merge(visits.loc[visits["ablfl"], ["subject_id", "visit"]], on=["subject_id", "visit"])
    tgt = base[base["category"].eq("TARGET")].drop_duplicates(["subject_id", "lesion_id"])
    findings: list[pd.DataFrame] = []
    n = tgt.groupby("subject_id")["lesion_id"].transform("size")
    findings.append(tgt.loc[n.gt(5), ["subject_id", "lesion_id"]].assign(finding="more than 5 target lesions"))
    organ = tgt["location"].where(~tgt["is_node"], "LYMPH NODE")
    per_organ = tgt.groupby([tgt["subject_id"], organ])["lesion_id"].transform("size")
    findings.append(
        tgt.loc[per_organ.gt(2) & organ.ne(""), ["subject_id", "lesion_id"]].assign(
            finding="more than 2 targets in one organ"
        )
    )
    findings.append(
        tgt.loc[~tgt["is_node"] & tgt["diameter"].lt(10), ["subject_id", "lesion_id"]].assign(
            finding="non-nodal target < 10 mm"
        )
    )
    findings.append(
        tgt.loc[tgt["is_node"] & tgt["diameter"].lt(15), ["subject_id", "lesion_id"]].assign(
            finding="target node short axis < 15 mm"
        )
    )
    if subjects is not None and "randomisation_date" in subjects.columns:
        rand = subjects[["subject_id", "randomisation_date"]].astype({"subject_id": "str"})
        b = visits[visits["ablfl"]].merge(rand, on="subject_id")
        late = (pd.to_datetime(b["randomisation_date"]) - b["first_date"]).dt.days.gt(max_baseline_days_before)
        findings.append(
            b.loc[late, ["subject_id"]].assign(
                lesion_id=pd.NA, finding=f"baseline scan > {max_baseline_days_before} days before randomisation"
            )
        )
    out = pd.concat(findings, ignore_index=True)
    return out.sort_values(["subject_id", "lesion_id"], kind="mergesort").reset_index(drop=True)
