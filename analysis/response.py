"""Best overall response (unconfirmed and confirmed), ORR/DCR with exact and score CIs, and response concordance.

Spec: ``clinical-endpoints.md`` §3 (admiralonco ``R/response_sources.R``, ``vignettes/adrs.Rmd``, RECIST 1.1 Table 3)
and §8.3 (Clopper-Pearson; Miettinen & Nurminen, Stat Med 1985;4:213).

Inputs
------
``responses`` - one row per subject and assessment (the output of :func:`analysis.recist.timepoint_responses`, or
``marts.investigator_responses``): ``subject_id``, ``assessment_date``, ``overall_response`` (CR, PR, SD,
NON-CR/NON-PD, PD, NE; other names through ``response_col``), optional ``visit``.

``subjects`` - one row per ITT subject (``marts.adsl``): ``subject_id``, ``randomisation_date``, optional ``nact_date``
(first new anti-cancer therapy, §3.1), optional group and flag columns named by the caller.

Derivation (admiralonco semantics)
----------------------------------
* Input restriction (:func:`prepare_ovr`, §3.1): non-missing responses with ``ADT >= RANDDT`` (and ``ADT < NACTDT``);
  several records on one date -> keep the worst (NE < CR < PR < SD < NON-CR/NON-PD < PD); keep records up to and
  including the first PD.
* Unconfirmed BOR (§3.2), first event met wins: any CR -> any PR -> SD (CR/PR/SD with ``ADT >= RANDDT + sd_min_days``)
  -> NON-CR/NON-PD (same window) -> any PD -> NE (any CR/PR/SD/NON-CR/NON-PD/NE) -> MISSING (no record). The BOR date is
  the first record of the winning event.
* Confirmed BOR (§3.3, admiralonco ``cbor_cr``/``cbor_pr`` ``event_joined`` semantics): for a CR (PR) at t1 the
  confirming record is the *first* later CR (CR or PR) at ``t2 >= t1 + confirmation_days``; every record in (t1, t2]
  must be CR or NE (CR, PR or NE; with ``confirmation_accept_sd`` one SD), with at most ``confirmation_max_ne`` NE,
  and for PR no PR after a CR in the window. Then SD -> NON-CR/NON-PD -> PD -> NE -> MISSING as above, so unconfirmed
  CR/PR at or after the SD window become SD. Departure from admiralonco: its ``bor_ne`` only lists SD/NON-CR/NON-PD/NE,
  so a lone unconfirmed CR/PR before the SD window gives MISSING there and NE here (the spec's list). RECIST Table 3
  "CR then SD -> PD when the SD minimum is not met" is the option ``cbor_cr_then_sd_is_pd``.
* The confirmed response date (DOR start) is t1 of the earliest confirmed pair (CR or PR); unconfirmed: the first
  CR/PR.
* ORR = BOR in {CR, PR}; DCR = BOR in {CR, PR, SD, NON-CR/NON-PD} (SD and NON-CR/NON-PD only after the SD window,
  admiralonco ``cb_y``). Denominator: every subject of the population (MISSING and NE are non-responders).
* Clopper-Pearson: ``[Beta⁻¹(α/2; x, n−x+1), Beta⁻¹(1−α/2; x+1, n−x)]``.
* Miettinen-Nurminen difference CI: ``{δ : Z(δ)² ≤ z²}`` with
  ``Z(δ) = Σ_s w_s (p̂1s − p̂2s − δ) / sqrt(Σ_s w_s² Ṽ_s(δ))``,
  ``Ṽ_s = [p̃1s(1−p̃1s)/n1s + p̃2s(1−p̃2s)/n2s] · N_s/(N_s−1)`` (the MN correction), ``p̃`` the restricted MLE under
  ``p1 − p2 = δ`` (closed-form cubic root, Farrington & Manning 1990 / MN 1985 appendix), and CMH weights
  ``w_s = n1s·n2s/(n1s+n2s)`` (one stratum: the unstratified MN interval). The point estimate is
  ``Σ w_s d_s / Σ w_s``. At δ = 0, Z² equals the CMH statistic without continuity correction. statsmodels 0.15
  ``confint_proportions_2indep(method="score", correction=True)`` is not used: its restricted-MLE cubic for
  ``compare="diff"`` has ``count0 * diff`` where ``nobs0 * diff`` belongs (wrong intervals whenever δ ≠ 0 matters),
  and its root bracketing fails on the spec's 8/20 vs 3/20 vector. The tests check this implementation against a
  direct numerical maximisation of the restricted likelihood and the spec's vector (−0.0316, 0.5018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig

#: Severity order used to keep the worst record of a date (admiralonco: NE < CR < PR < SD < NON-CR/NON-PD < PD).
SEVERITY: dict[str, int] = {"NE": 0, "CR": 1, "PR": 2, "SD": 3, "NON-CR/NON-PD": 4, "PD": 5}
#: admiralonco ``aval_resp`` coding of AVALC.
AVAL_RESP: dict[str, int] = {"CR": 1, "PR": 2, "SD": 3, "NON-CR/NON-PD": 4, "PD": 5, "NE": 6, "MISSING": 7}
RESPONDER = ("CR", "PR")
DISEASE_CONTROL = ("CR", "PR", "SD", "NON-CR/NON-PD")


# ------------------------------------------------------------------------------------------------ input restriction


def _subjects(subjects: pd.DataFrame) -> pd.DataFrame:
    s = subjects.copy()
    s["subject_id"] = s["subject_id"].astype("str")
    s["randomisation_date"] = pd.to_datetime(s["randomisation_date"])
    if "nact_date" in s.columns:
        s["nact_date"] = pd.to_datetime(s["nact_date"])
    return s.drop_duplicates("subject_id")


def prepare_ovr(
    responses: pd.DataFrame,
    subjects: pd.DataFrame,
    response_col: str = "overall_response",
    apply_nact: bool = True,
) -> pd.DataFrame:
    """The admiralonco ``ovr`` dataset (§3.1): valid post-randomisation records, worst per date, up to first PD.

    Returns ``subject_id, assessment_date, response, randomisation_date`` (plus ``visit``, ``seq`` and ``nact_date``
    when given), one row per subject and date, sorted by subject and date.
    """
    s = _subjects(subjects)
    keep = ["subject_id", "assessment_date", response_col] + [c for c in ("visit", "seq") if c in responses.columns]
    r = responses[keep].rename(columns={response_col: "response"}).copy()
    r["subject_id"] = r["subject_id"].astype("str")
    r["assessment_date"] = pd.to_datetime(r["assessment_date"])
    r["response"] = r["response"].astype("str").str.strip().str.upper()
    r = r[r["response"].isin(list(SEVERITY)) & r["assessment_date"].notna()]
    cols = ["subject_id", "randomisation_date"] + (["nact_date"] if "nact_date" in s.columns else [])
    r = r.merge(s[cols], on="subject_id", how="inner")
    r = r[r["assessment_date"] >= r["randomisation_date"]]
    if apply_nact and "nact_date" in r.columns:
        r = r[r["nact_date"].isna() | (r["assessment_date"] < r["nact_date"])]
    r = r.assign(_sev=r["response"].map(SEVERITY))
    r = r.sort_values(["subject_id", "assessment_date", "_sev"], kind="mergesort")
    r = r.drop_duplicates(["subject_id", "assessment_date"], keep="last")
    # ANL02FL: up to and including the first PD.
    pd_seen = r["response"].eq("PD").astype(int).groupby(r["subject_id"]).cumsum()
    before = pd_seen.groupby(r["subject_id"]).shift(1).fillna(0)
    r = r[before.eq(0)]
    return r.drop(columns=["_sev"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ BOR


def _first_event(ovr: pd.DataFrame, mask: pd.Series, label: str) -> pd.DataFrame:
    hit = ovr[mask]
    first = hit.groupby("subject_id", as_index=False)["assessment_date"].min()
    return first.assign(bor=label)


def _confirmed_pairs(ovr: pd.DataFrame, config: EndpointConfig) -> pd.DataFrame:
    """Records t1 (CR or PR) with their confirmation status (admiralonco ``event_joined`` semantics)."""
    o = ovr[["subject_id", "assessment_date", "response"]].copy().reset_index(drop=True)
    o["pos"] = o.groupby("subject_id").cumcount()
    g = o["subject_id"]
    for name, vals in {
        "ne": ("NE",),
        "cr": ("CR",),
        "pr": ("PR",),
        "sd": ("SD",),
        "bad_cr": ("PR", "SD", "NON-CR/NON-PD", "PD"),
        "bad_pr": ("SD", "NON-CR/NON-PD", "PD"),
    }.items():
        o[f"c_{name}"] = o["response"].isin(vals).astype(int).groupby(g).cumsum()
    cr_pos = o["pos"].where(o["response"].eq("CR"))
    o["next_cr"] = cr_pos.groupby(g).bfill().groupby(g).shift(-1)
    o["next_cr"] = o["next_cr"].where(o["next_cr"].notna(), np.inf)  # first CR strictly after this record
    # Pair every CR/PR with every later candidate confirmation.
    first = o[o["response"].isin(RESPONDER)]
    pairs = first.merge(o, on="subject_id", suffixes=("", "_j"))
    days = (pairs["assessment_date_j"] - pairs["assessment_date"]).dt.days
    cand = (pairs["pos_j"] > pairs["pos"]) & days.ge(config.confirmation_days)
    cand &= np.where(pairs["response"].eq("CR"), pairs["response_j"].eq("CR"), pairs["response_j"].isin(RESPONDER))
    pairs = pairs[cand]
    # admiralonco: the window ends at the *first* candidate.
    pairs = pairs.sort_values(["subject_id", "pos", "pos_j"]).drop_duplicates(["subject_id", "pos"], keep="first")

    def between(col: str) -> pd.Series:
        return pairs[f"{col}_j"] - pairs[col]

    ne_ok = between("c_ne").le(config.confirmation_max_ne)
    is_cr = pairs["response"].eq("CR")
    ok_cr = is_cr & between("c_bad_cr").eq(0) & ne_ok
    n_bad_pr = between("c_bad_pr")
    n_sd = between("c_sd")
    bad_pr_ok = n_bad_pr.eq(0) | (config.confirmation_accept_sd & n_bad_pr.eq(n_sd) & n_sd.le(1))
    # "no PR after CR": with k the first CR after t1, no PR in (k, t2].
    k = pairs["next_cr"]
    cr_in_window = k <= pairs["pos_j"]
    k_idx = pairs["subject_id"].to_frame().assign(pos=k.where(cr_in_window, -1).astype(int))
    pr_at_k = k_idx.merge(o[["subject_id", "pos", "c_pr"]], on=["subject_id", "pos"], how="left")["c_pr"].to_numpy()
    pr_after_cr = cr_in_window.to_numpy() & ((pairs["c_pr_j"].to_numpy() - np.nan_to_num(pr_at_k)) > 0)
    ok_pr = ~is_cr & bad_pr_ok & ne_ok & ~pr_after_cr
    pairs = pairs.assign(confirmed=(ok_cr | ok_pr).to_numpy())
    return pairs[pairs["confirmed"]][["subject_id", "assessment_date", "response", "assessment_date_j"]]


def best_overall_response(
    responses: pd.DataFrame,
    subjects: pd.DataFrame,
    confirmed: bool = False,
    config: EndpointConfig = DEFAULT_CONFIG,
    response_col: str = "overall_response",
    ovr: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Best overall response per subject (every subject of ``subjects`` gets a row).

    Returns ``subject_id, bor, aval (admiralonco coding), bor_date, first_response_date, responder, disease_control,
    confirmed`` with ``confirmed`` telling which derivation (unconfirmed BOR or confirmed CBOR) was run. Rules in the
    module docstring. ``ovr`` may be passed when :func:`prepare_ovr` was already run.
    """
    s = _subjects(subjects)
    o = prepare_ovr(responses, s, response_col) if ovr is None else ovr
    win = o["assessment_date"] >= o["randomisation_date"] + pd.to_timedelta(config.sd_min_days, unit="D")
    resp = o["response"]
    events: list[pd.DataFrame] = []
    if confirmed:
        pairs = _confirmed_pairs(o, config)
        for lab in RESPONDER:
            p = pairs[pairs["response"].eq(lab)]
            events.append(p.groupby("subject_id", as_index=False)["assessment_date"].min().assign(bor=lab))
        first_resp = pairs.groupby("subject_id", as_index=False)["assessment_date"].min()
    else:
        events.append(_first_event(o, resp.eq("CR"), "CR"))
        events.append(_first_event(o, resp.eq("PR"), "PR"))
        first_resp = o[resp.isin(RESPONDER)].groupby("subject_id", as_index=False)["assessment_date"].min()
    events.append(_first_event(o, resp.isin(["CR", "PR", "SD"]) & win, "SD"))
    events.append(_first_event(o, resp.eq("NON-CR/NON-PD") & win, "NON-CR/NON-PD"))
    events.append(_first_event(o, resp.eq("PD"), "PD"))
    if confirmed and config.cbor_cr_then_sd_is_pd:
        prior_cr = resp.eq("CR").astype(int).groupby(o["subject_id"]).cummax().astype(bool)
        events.append(_first_event(o, prior_cr & resp.isin(["SD", "NON-CR/NON-PD"]), "PD"))
    events.append(_first_event(o, resp.isin(["CR", "PR", "SD", "NON-CR/NON-PD", "NE"]), "NE"))
    ev = pd.concat([e.assign(event_nr=i) for i, e in enumerate(events)], ignore_index=True)
    ev = ev.sort_values(["subject_id", "event_nr", "assessment_date"], kind="mergesort")
    ev = ev.drop_duplicates("subject_id", keep="first").rename(columns={"assessment_date": "bor_date"})
    out = s[["subject_id"]].merge(ev[["subject_id", "bor", "bor_date"]], on="subject_id", how="left")
    out["bor"] = out["bor"].fillna("MISSING").astype("str")
    out["aval"] = out["bor"].map(AVAL_RESP).astype(int)
    out = out.merge(first_resp.rename(columns={"assessment_date": "first_response_date"}), on="subject_id", how="left")
    out["responder"] = out["bor"].isin(RESPONDER)
    out.loc[~out["responder"], "first_response_date"] = pd.NaT
    out["disease_control"] = out["bor"].isin(DISEASE_CONTROL)
    out["confirmed"] = confirmed
    return out


# ------------------------------------------------------------------------------------------------ confidence intervals


def clopper_pearson(x: int, n: int, conf_level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) CI for a binomial proportion ``x/n``: Beta quantiles (§8.3)."""
    if n <= 0:
        return (math.nan, math.nan)
    a = 1.0 - conf_level
    lo = 0.0 if x == 0 else float(stats.beta.ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(stats.beta.ppf(1 - a / 2, x + 1, n - x))
    return lo, hi


def _restricted_mle(p1: np.ndarray, p2: np.ndarray, n1: np.ndarray, n2: np.ndarray, delta: float) -> tuple:
    """MLE of (p1, p2) under ``p1 - p2 = delta`` (Miettinen & Nurminen 1985; Farrington & Manning 1990)."""
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    d = -p1 * delta * (1.0 + delta)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a**2) + d / (2.0 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(u == 0, 0.0, v / np.where(u == 0, 1.0, u**3))
    w = (math.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3.0
    pt1 = np.clip(2.0 * u * np.cos(w) - b / (3.0 * a), 0.0, 1.0)
    pt2 = np.clip(pt1 - delta, 0.0, 1.0)
    return pt1, pt2


def _mn_z(delta: float, x1, n1, x2, n2, w) -> float:
    p1, p2 = x1 / n1, x2 / n2
    pt1, pt2 = _restricted_mle(p1, p2, n1, n2, delta)
    big_n = n1 + n2
    var = (pt1 * (1 - pt1) / n1 + pt2 * (1 - pt2) / n2) * big_n / (big_n - 1.0)
    num = float(np.sum(w * (p1 - p2 - delta)))
    den = math.sqrt(float(np.sum(w * w * var)))
    if den == 0.0:
        return math.copysign(math.inf, num) if num != 0 else 0.0
    return num / den


def miettinen_nurminen(
    x1: int | Sequence[int],
    n1: int | Sequence[int],
    x2: int | Sequence[int],
    n2: int | Sequence[int],
    conf_level: float = 0.95,
) -> tuple[float, float, float]:
    """Difference ``p1 − p2`` with its Miettinen-Nurminen score CI (N/(N−1) correction), optionally stratified.

    Scalars give the unstratified interval; sequences (one value per stratum) the stratified one with CMH weights
    ``w = n1·n2/(n1+n2)`` (formulas in the module docstring). Returns ``(difference, lower, upper)``.
    """
    x1a, n1a, x2a, n2a = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x1, n1, x2, n2))
    keep = (n1a > 0) & (n2a > 0)
    x1a, n1a, x2a, n2a = x1a[keep], n1a[keep], x2a[keep], n2a[keep]
    if x1a.size == 0:
        return (math.nan, math.nan, math.nan)
    w = n1a * n2a / (n1a + n2a)
    est = float(np.sum(w * (x1a / n1a - x2a / n2a)) / np.sum(w))
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))

    def f(delta: float) -> float:  # Z decreases in delta: lower bound solves Z = +z, upper bound Z = -z
        return _mn_z(delta, x1a, n1a, x2a, n2a, w) - z

    def g(delta: float) -> float:
        return _mn_z(delta, x1a, n1a, x2a, n2a, w) + z

    eps = 1e-12
    hi_end, lo_end = 1.0 - eps, -1.0 + eps
    opts = {"xtol": 1e-14, "rtol": 4 * np.finfo(float).eps}
    upper = hi_end if g(hi_end) >= 0 else optimize.brentq(g, min(est, hi_end), hi_end, **opts)
    lower = lo_end if f(lo_end) <= 0 else optimize.brentq(f, lo_end, max(est, lo_end), **opts)
    upper = 1.0 if upper >= hi_end else upper
    lower = -1.0 if lower <= lo_end else lower
    return est, float(lower), float(upper)


def mn_score_statistic(
    x1: int | Sequence[int], n1: int | Sequence[int], x2: int | Sequence[int], n2: int | Sequence[int], delta: float = 0
) -> float:
    """Squared MN score statistic ``Z(δ)²`` (at δ = 0 the CMH statistic without continuity correction)."""
    x1a, n1a, x2a, n2a = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x1, n1, x2, n2))
    w = n1a * n2a / (n1a + n2a)
    return _mn_z(delta, x1a, n1a, x2a, n2a, w) ** 2


# ------------------------------------------------------------------------------------------------ rates


def response_rates(
    bor: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str | None = None,
    reference: str | None = None,
    population_col: str | None = None,
    strata_col: str | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ORR and DCR per group with Clopper-Pearson CIs, and group differences with Miettinen-Nurminen CIs.

    ``bor``: output of :func:`best_overall_response`. ``subjects``: the analysis population (ITT = every row) with
    ``subject_id`` and, when comparing, ``group_col`` (e.g. the arm) and optionally ``strata_col``.
    ``population_col``: a boolean column restricting the population (e.g. ``measurable_disease`` for the
    response-evaluable set); subjects without a BOR row count as non-responders. ``group_col=None`` is the pooled,
    blinded mode: one pooled row per endpoint and no differences. ``reference`` is the control group (difference =
    other − reference); by default the last group in sorted order.

    Returns ``(rates, differences)``: ``rates`` columns ``endpoint (ORR/DCR), group, n, x, rate, lcl, ucl, method``;
    ``differences`` columns ``endpoint, group, reference, difference, lcl, ucl, method`` (plus a stratified row when
    ``strata_col`` is given).
    """
    s = subjects.copy()
    s["subject_id"] = s["subject_id"].astype("str")
    if population_col is not None:
        s = s[s[population_col].fillna(False).astype(bool)]
    b = bor[["subject_id", "responder", "disease_control"]].copy()
    b["subject_id"] = b["subject_id"].astype("str")
    d = s.merge(b, on="subject_id", how="left")
    d["responder"] = d["responder"].fillna(False).astype(bool)
    d["disease_control"] = d["disease_control"].fillna(False).astype(bool)
    d["_group"] = "POOLED" if group_col is None else d[group_col].astype("str")
    rows = []
    diffs = []
    for endpoint, col in (("ORR", "responder"), ("DCR", "disease_control")):
        for grp, sub in d.groupby("_group", sort=True):
            n, x = len(sub), int(sub[col].sum())
            lo, hi = clopper_pearson(x, n, config.conf_level)
            rows.append(
                {"endpoint": endpoint, "group": grp, "n": n, "x": x, "rate": x / n if n else math.nan}
                | {"lcl": lo, "ucl": hi, "method": "Clopper-Pearson"}
            )
        if group_col is None:
            continue
        groups = sorted(d["_group"].unique())
        ref = reference if reference is not None else groups[-1]
        for grp in [g for g in groups if g != ref]:
            a, r = d[d["_group"].eq(grp)], d[d["_group"].eq(ref)]
            est, lo, hi = miettinen_nurminen(int(a[col].sum()), len(a), int(r[col].sum()), len(r), config.conf_level)
            diffs.append(
                {"endpoint": endpoint, "group": grp, "reference": ref, "difference": est, "lcl": lo, "ucl": hi}
                | {"method": "Miettinen-Nurminen"}
            )
            if strata_col is not None:
                two = d[d["_group"].isin([grp, ref])]
                tab = two.groupby([strata_col, "_group"])[col].agg(["sum", "size"]).unstack("_group").fillna(0)
                est, lo, hi = miettinen_nurminen(
                    tab[("sum", grp)].astype(int).tolist(),
                    tab[("size", grp)].astype(int).tolist(),
                    tab[("sum", ref)].astype(int).tolist(),
                    tab[("size", ref)].astype(int).tolist(),
                    config.conf_level,
                )
                diffs.append(
                    {"endpoint": endpoint, "group": grp, "reference": ref, "difference": est, "lcl": lo, "ucl": hi}
                    | {"method": f"Miettinen-Nurminen stratified by {strata_col} (CMH weights)"}
                )
    diff_cols = ["endpoint", "group", "reference", "difference", "lcl", "ucl", "method"]
    return pd.DataFrame(rows), pd.DataFrame(diffs, columns=diff_cols)


# ------------------------------------------------------------------------------------------------ concordance


@dataclass(frozen=True)
class Concordance:
    """Derived vs investigator responses.

    ``by_visit``: outer join on subject and visit with ``derived, investigator, agree, status``; ``discordant``: the
    rows of ``by_visit`` that disagree or exist on one side only (the QA listing); ``by_patient``: BOR (unconfirmed
    and confirmed) from each source with agreement flags; ``confusion``: visit-level cross-table; ``summary``: one row
    per level (visit, patient BOR, patient confirmed BOR) with ``n, n_agree, agreement, kappa``.
    """

    by_visit: pd.DataFrame
    discordant: pd.DataFrame
    by_patient: pd.DataFrame
    confusion: pd.DataFrame
    summary: pd.DataFrame


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    """Cohen's kappa of two categorical ratings of the same items."""
    tab = pd.crosstab(a, b)
    cats = tab.index.union(tab.columns)
    tab = tab.reindex(index=cats, columns=cats, fill_value=0).to_numpy(dtype=float)
    n = tab.sum()
    if n == 0:
        return math.nan
    po = np.trace(tab) / n
    pe = float((tab.sum(axis=0) * tab.sum(axis=1)).sum()) / (n * n)
    return math.nan if pe == 1 else (po - pe) / (1 - pe)


def response_concordance(
    derived: pd.DataFrame,
    investigator: pd.DataFrame,
    subjects: pd.DataFrame | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    derived_col: str = "overall_response",
    investigator_col: str = "overall_response",
) -> Concordance:
    """Compare derived time-point responses with the investigator's, per visit and per patient.

    Both inputs need ``subject_id, visit, assessment_date`` and the response column. ``subjects`` (with
    ``randomisation_date``) enables the per-patient BOR comparison; without it ``by_patient`` is empty.
    """
    keys = ["subject_id", "visit"]

    def side(df: pd.DataFrame, col: str, name: str) -> pd.DataFrame:
        x = df[[*keys, "assessment_date", col]].rename(columns={col: name, "assessment_date": f"{name}_date"}).copy()
        x["subject_id"] = x["subject_id"].astype("str")
        x["visit"] = x["visit"].astype("str")
        x[name] = x[name].astype("str").str.strip().str.upper()
        return x.drop_duplicates(keys, keep="last")

    by_visit = side(derived, derived_col, "derived").merge(
        side(investigator, investigator_col, "investigator"), on=keys, how="outer", indicator=True
    )
    by_visit["status"] = by_visit["_merge"].map(
        {"both": "both", "left_only": "derived only", "right_only": "investigator only"}
    )
    by_visit = by_visit.drop(columns=["_merge"])
    by_visit["agree"] = by_visit["status"].eq("both") & by_visit["derived"].eq(by_visit["investigator"])
    by_visit = by_visit.sort_values([*keys], kind="mergesort").reset_index(drop=True)
    discordant = by_visit[~by_visit["agree"]].reset_index(drop=True)
    both = by_visit[by_visit["status"].eq("both")]
    confusion = pd.crosstab(both["derived"], both["investigator"], dropna=False)
    summary = [
        {
            "level": "visit",
            "n": len(both),
            "n_agree": int(both["agree"].sum()),
            "agreement": float(both["agree"].mean()) if len(both) else math.nan,
            "kappa": cohen_kappa(both["derived"], both["investigator"]),
        }
    ]
    by_patient = pd.DataFrame()
    if subjects is not None:
        parts = []
        for confirmed, label in ((False, "bor"), (True, "cbor")):
            dd = best_overall_response(derived, subjects, confirmed, config, derived_col)[["subject_id", "bor"]]
            ii = best_overall_response(investigator, subjects, confirmed, config, investigator_col)[
                ["subject_id", "bor"]
            ]
            m = dd.rename(columns={"bor": f"{label}_derived"}).merge(
                ii.rename(columns={"bor": f"{label}_investigator"}), on="subject_id"
            )
            m[f"{label}_agree"] = m[f"{label}_derived"].eq(m[f"{label}_investigator"])
            parts.append(m.set_index("subject_id"))
            summary.append(
                {
                    "level": "patient confirmed BOR" if confirmed else "patient BOR",
                    "n": len(m),
                    "n_agree": int(m[f"{label}_agree"].sum()),
                    "agreement": float(m[f"{label}_agree"].mean()) if len(m) else math.nan,
                    "kappa": cohen_kappa(m[f"{label}_derived"], m[f"{label}_investigator"]),
                }
            )
        by_patient = pd.concat(parts, axis=1).reset_index()
    return Concordance(by_visit, discordant, by_patient, confusion, pd.DataFrame(summary))
