"""EORTC QLQ-C30 scoring, change from baseline and time to deterioration.

Spec: ``clinical-endpoints.md`` §6. Sources: Fayers et al., EORTC QLQ-C30 Scoring Manual, 3rd ed. (2001), as
implemented in ``raybaser/PROscorer: R/qlq_c30.R``; Giesinger et al., J Clin Epidemiol 2016;69:79 (C30 summary score);
Osoba et al., J Clin Oncol 1998;16:139 (10-point minimal important difference); admiral ``vignettes/questionnaires.Rmd``
(deterioration endpoints).

Input: ``items`` (``marts.qol_items``), one row per subject, visit and item: ``subject_id, visit, assessment_date,
item`` (1-30 or ``QLQ01``..``QLQ30``), ``response`` (1-4; items 29-30: 1-7; missing = not answered).

Scoring (manual §2): raw score ``RS = mean of the answered items``, computed only when at least half the scale's items
are answered (config ``qol_min_answered_fraction``; equals imputing missing items by the mean of the answered ones);
``range`` = 3 (items 1-28) or 6 (items 29-30).

* functional scales (PF2, RF2, EF, CF, SF): ``S = (1 − (RS − 1)/range) · 100``
* symptom scales and single items (FA, NV, PA, DY, SL, AP, CO, DI, FI): ``S = (RS − 1)/range · 100``
* global health status QL2: ``S = (RS − 1)/6 · 100``

Summary score SUMSC (Giesinger 2016) = mean of PF2, RF2, EF, CF, SF and ``100 − S`` of FA, NV, PA, DY, SL, AP, CO,
DI (QL2 and FI excluded); all 13 components required (PROscorer ``okmiss = 0``).

Change from baseline: baseline = last non-missing score on or before randomisation (per scale); ``CHG = S − BASE``.

Deterioration (§6.3): a post-baseline score worsens when ``CHG ≤ −threshold`` for functional scales, QL2 and SUMSC, or
``CHG ≥ threshold`` for symptom scales (config ``deterioration_threshold``, 10). Time to deterioration (ADTTE shape,
``PARAMCD = TTD_<scale>``): STARTDT = randomisation; event (CNSR 0) at the first worsening that is

* ``first``: any worsening;
* ``confirmed``: followed by another worsening ≥ 7 days later, or the last assessment and the subject died
  (``death_due_to_pd`` when ``subjects`` has it, else any death) (config);
* ``definitive``: worsening at every later assessment;

otherwise censored at the last non-missing post-baseline assessment (CNSR 1), or at randomisation when there is no
baseline (CNSR 5) or no post-baseline score (CNSR 4). Codes as in :mod:`analysis.tte`. HCC18 can be scored with
:func:`score_scales` once its item map is taken from the official EORTC scoring sheet (spec §6.2); it is not built in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig
from analysis.tte import apply_data_cutoff, finalise_adtte


@dataclass(frozen=True)
class Scale:
    """One questionnaire scale: its items, type (``functional``/``symptom``/``global``) and item range."""

    items: tuple[int, ...]
    kind: str
    item_range: int
    label: str


QLQ_C30_SCALES: dict[str, Scale] = {
    "QL2": Scale((29, 30), "global", 6, "Global health status/QoL"),
    "PF2": Scale((1, 2, 3, 4, 5), "functional", 3, "Physical functioning"),
    "RF2": Scale((6, 7), "functional", 3, "Role functioning"),
    "EF": Scale((21, 22, 23, 24), "functional", 3, "Emotional functioning"),
    "CF": Scale((20, 25), "functional", 3, "Cognitive functioning"),
    "SF": Scale((26, 27), "functional", 3, "Social functioning"),
    "FA": Scale((10, 12, 18), "symptom", 3, "Fatigue"),
    "NV": Scale((14, 15), "symptom", 3, "Nausea and vomiting"),
    "PA": Scale((9, 19), "symptom", 3, "Pain"),
    "DY": Scale((8,), "symptom", 3, "Dyspnoea"),
    "SL": Scale((11,), "symptom", 3, "Insomnia"),
    "AP": Scale((13,), "symptom", 3, "Appetite loss"),
    "CO": Scale((16,), "symptom", 3, "Constipation"),
    "DI": Scale((17,), "symptom", 3, "Diarrhoea"),
    "FI": Scale((28,), "symptom", 3, "Financial difficulties"),
}
SUMMARY_FUNCTIONAL = ("PF2", "RF2", "EF", "CF", "SF")
SUMMARY_SYMPTOM = ("FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI")
SUMMARY_SCALE = "SUMSC"
_KEYS = ["subject_id", "visit", "assessment_date"]


def _item_number(item: pd.Series) -> pd.Series:
    txt = item.astype("str").str.upper().str.replace("QLQ", "", regex=False).str.strip()
    return pd.to_numeric(txt, errors="coerce").astype("Int64")


def score_scales(
    items: pd.DataFrame,
    scales: Mapping[str, Scale] = QLQ_C30_SCALES,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """Scale scores (0-100) per subject and visit (long): ``subject_id, visit, assessment_date, scale, kind,
    n_items, n_answered, raw_score, score`` (score missing when fewer than half the items were answered)."""
    it = items.copy()
    it["subject_id"] = it["subject_id"].astype("str")
    it["visit"] = it["visit"].astype("str")
    it["assessment_date"] = pd.to_datetime(it["assessment_date"])
    it["item_no"] = _item_number(it["item"])
    it["response"] = pd.to_numeric(it["response"], errors="coerce")
    smap = pd.DataFrame(
        [(name, i, sc.kind, sc.item_range, len(sc.items)) for name, sc in scales.items() for i in sc.items],
        columns=["scale", "item_no", "kind", "item_range", "n_items"],
    ).astype({"item_no": "Int64"})
    visits = it[_KEYS].drop_duplicates()
    grid = visits.merge(smap, how="cross")
    grid = grid.merge(it[[*_KEYS, "item_no", "response"]], on=[*_KEYS, "item_no"], how="left")
    out = grid.groupby([*_KEYS, "scale", "kind", "item_range", "n_items"], as_index=False, sort=False).agg(
        n_answered=("response", "count"), raw_score=("response", "mean")
    )
    enough = out["n_answered"].ge(np.ceil(config.qol_min_answered_fraction * out["n_items"] - 1e-12)) & out[
        "n_answered"
    ].gt(0)
    rs = out["raw_score"].where(enough)
    lin = (rs - 1.0) / out["item_range"] * 100.0
    out["raw_score"] = rs
    out["score"] = np.where(out["kind"].eq("functional"), 100.0 - lin, lin)
    out = out.drop(columns=["item_range"])
    order = {name: i for i, name in enumerate(scales)}
    out = out.sort_values(["subject_id", "assessment_date", "visit"], kind="mergesort")
    out = out.assign(_o=out["scale"].map(order)).sort_values(
        ["subject_id", "assessment_date", "visit", "_o"], kind="mergesort"
    )
    return out.drop(columns=["_o"]).reset_index(drop=True)


def summary_score(scores: pd.DataFrame) -> pd.DataFrame:
    """QLQ-C30 summary score rows (``scale = SUMSC``) from :func:`score_scales` output (all 13 components needed)."""
    comp = scores[scores["scale"].isin(SUMMARY_FUNCTIONAL + SUMMARY_SYMPTOM)].copy()
    comp["contrib"] = np.where(comp["scale"].isin(SUMMARY_SYMPTOM), 100.0 - comp["score"], comp["score"])
    agg = comp.groupby(_KEYS, as_index=False).agg(n_answered=("contrib", "count"), score=("contrib", "mean"))
    n_comp = len(SUMMARY_FUNCTIONAL) + len(SUMMARY_SYMPTOM)
    agg["score"] = agg["score"].where(agg["n_answered"].eq(n_comp))
    return agg.assign(scale=SUMMARY_SCALE, kind="functional", n_items=n_comp, raw_score=np.nan)[
        [*_KEYS, "scale", "kind", "n_items", "n_answered", "raw_score", "score"]
    ]


def score_qlq_c30(items: pd.DataFrame, config: EndpointConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """All 15 QLQ-C30 scale scores plus the summary score (long, see :func:`score_scales`)."""
    s = score_scales(items, QLQ_C30_SCALES, config)
    return pd.concat([s, summary_score(s)], ignore_index=True)


def change_from_baseline(scores: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """Scores with ``ablfl`` (baseline record), ``base``, ``chg`` and ``post_baseline`` (after randomisation).

    ``subjects``: ``subject_id, randomisation_date``. Baseline = last non-missing score on/before randomisation.
    """
    s = subjects[["subject_id", "randomisation_date"]].copy()
    s["subject_id"] = s["subject_id"].astype("str")
    s["randomisation_date"] = pd.to_datetime(s["randomisation_date"])
    d = scores.merge(s.drop_duplicates("subject_id"), on="subject_id", how="inner")
    d = d.sort_values(["subject_id", "scale", "assessment_date"], kind="mergesort").reset_index(drop=True)
    pre = d["assessment_date"].le(d["randomisation_date"]) & d["score"].notna()
    last = d[pre].drop_duplicates(["subject_id", "scale"], keep="last")
    d["ablfl"] = d.index.isin(last.index)
    d = d.merge(
        last[["subject_id", "scale", "score"]].rename(columns={"score": "base"}), on=["subject_id", "scale"], how="left"
    )
    d["chg"] = d["score"] - d["base"]
    d["post_baseline"] = d["assessment_date"].gt(d["randomisation_date"])
    return d


def worsening(chg: pd.Series, kind: pd.Series, threshold: float) -> pd.Series:
    """Deterioration flag: ``chg ≤ −threshold`` (functional, global, summary) or ``chg ≥ threshold`` (symptom)."""
    sym = kind.eq("symptom")
    return (sym & chg.ge(threshold)) | (~sym & chg.le(-threshold))


def time_to_deterioration(
    scores: pd.DataFrame,
    subjects: pd.DataFrame,
    scales: Sequence[str] | None = None,
    cutoff: str | pd.Timestamp | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """Time to deterioration per scale in the ADTTE shape (``PARAMCD = TTD_<scale>``; rules in the module docstring).

    ``scores``: :func:`score_qlq_c30` output; ``subjects``: ``subject_id, randomisation_date``, optional
    ``death_date`` and ``death_due_to_pd`` (for the confirmed definition) and the ``carry`` columns.
    """
    s, _, _ = apply_data_cutoff(cutoff, subjects)
    sc = scores if scales is None else scores[scores["scale"].isin(list(scales))]
    if cutoff is not None:
        sc = sc[pd.to_datetime(sc["assessment_date"]).le(pd.Timestamp(cutoff))]
    d = change_from_baseline(sc, s[["subject_id", "randomisation_date"]])
    post = d[d["post_baseline"] & d["score"].notna()].copy()
    post["w"] = worsening(post["chg"], post["kind"], config.deterioration_threshold) & post["base"].notna()
    post = post.sort_values(["subject_id", "scale", "assessment_date"], kind="mergesort")
    key = [post["subject_id"], post["scale"]]
    if config.deterioration_definition == "definitive":
        later_all = post["w"][::-1].astype(int).groupby([k[::-1] for k in key]).cummin()[::-1].astype(bool)
        post["qual"] = post["w"] & later_all
    elif config.deterioration_definition == "confirmed":
        wdate = post["assessment_date"].where(post["w"])
        last_w = wdate.groupby(key).transform("max")
        confirmed_later = last_w.ge(post["assessment_date"] + pd.to_timedelta(config.deterioration_confirm_days, "D"))
        is_last = post["assessment_date"].eq(post.groupby(["subject_id", "scale"])["assessment_date"].transform("max"))
        died = s.set_index("subject_id")
        dcol = "death_due_to_pd" if "death_due_to_pd" in s.columns else None
        dead = died["death_date"].notna() if dcol is None else died[dcol].fillna(False).astype(bool)
        post["qual"] = post["w"] & (
            confirmed_later | (is_last & post["subject_id"].map(dead).fillna(False).astype(bool))
        )
    else:
        post["qual"] = post["w"]
    first = post[post["qual"]].drop_duplicates(["subject_id", "scale"])[["subject_id", "scale", "assessment_date"]]
    last = post.drop_duplicates(["subject_id", "scale"], keep="last")[["subject_id", "scale", "assessment_date"]]
    has_base = d[d["ablfl"]][["subject_id", "scale"]].assign(has_base=True)
    scale_list = sorted(sc["scale"].unique()) if scales is None else list(scales)
    grid = s[["subject_id", "randomisation_date"]].merge(pd.DataFrame({"scale": scale_list}), how="cross")
    grid = grid.merge(first.rename(columns={"assessment_date": "ev"}), on=["subject_id", "scale"], how="left")
    grid = grid.merge(last.rename(columns={"assessment_date": "lst"}), on=["subject_id", "scale"], how="left")
    grid = grid.merge(has_base, on=["subject_id", "scale"], how="left")
    grid["has_base"] = grid["has_base"].fillna(False).astype(bool)
    event = grid["ev"].notna()
    grid["CNSR"] = np.select([event, ~grid["has_base"], grid["lst"].isna()], [0, 5, 4], default=1)
    grid["STARTDT"] = grid["randomisation_date"]
    grid["ADT"] = grid["ev"].where(event, grid["lst"])
    grid.loc[grid["CNSR"].isin([4, 5]), "ADT"] = grid["randomisation_date"]
    grid["EVNTDESC"] = np.select(
        [event, grid["CNSR"].eq(5), grid["CNSR"].eq(4)],
        ["DETERIORATION", "NO BASELINE ASSESSMENT", "NO POST-BASELINE ASSESSMENT"],
        default="LAST ASSESSMENT",
    )
    grid["CNSDTDSC"] = np.where(event, "", np.where(grid["CNSR"].isin([4, 5]), "RANDOMIZATION DATE", "LAST ASSESSMENT"))
    grid["SRCDOM"] = np.where(grid["CNSR"].isin([4, 5]), "ADSL", "ADQS")
    grid["SRCVAR"] = np.where(grid["CNSR"].isin([4, 5]), "RANDDT", "ADT")
    grid["SRCSEQ"] = np.nan
    parts = []
    for scale, sub in grid.groupby("scale", sort=False):
        label = QLQ_C30_SCALES[scale].label if scale in QLQ_C30_SCALES else scale
        parts.append(finalise_adtte(sub, f"TTD_{scale}", carry, s, param=f"Time to deterioration: {label} (days)"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
