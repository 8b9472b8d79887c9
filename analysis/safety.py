"""Safety: treatment-emergent AE flag, AE summary tables, CTCAE v5 lab grades, Hy's law screen, dose intensity and
capsule compliance.

Spec: ``clinical-endpoints.md`` §5. Sources: admiral ``derive_var_trtemfl()`` and ADAE template (``end_window =
30``), PHUSE WP-087; tern ``s_count_occurrences_by_grade``, chevron AET04; admiral ``data-raw/adlb_grading/
ncictcaev5.json`` and ``vignettes/lab_grading.Rmd``; admiral ``vignettes/hys_law.Rmd``; NCI CTCAE v5.0.

Inputs
------
``ae`` (``marts.adverse_events``), one row per AE: ``subject_id, soc, term, start_date, end_date, grade`` (1-5),
``serious`` (bool/Y/N), ``related_lenvatinib``, ``related_pd1``, ``related_capsule`` (causality: NOT RELATED, UNLIKELY,
POSSIBLE, PROBABLE, DEFINITE), ``action_lenvatinib``, ``action_pd1``, optional ``action_capsule`` (DOSE NOT CHANGED,
DOSE REDUCED, DRUG INTERRUPTED, DRUG WITHDRAWN), optional ``immune_related`` (bool/Y/N, the sponsor's irAE basket),
optional ``initial_grade`` (grade before treatment of a pre-existing AE), optional ``ae_seq``.

``subjects`` (``marts.adsl``; the safety population, analysed by actual treatment): ``subject_id,
treatment_start_date, treatment_end_date`` and the grouping column (e.g. actual arm).

``labs`` (``marts.labs``), one row per test per draw, **standard units**: ``subject_id, test_code, lab_date, value,
lln, uln``; test codes and units ALT, AST, ALP, GGT (U/L), BILI (µmol/L), CREAT (µmol/L), ALB (g/L), PLAT and NEUT
(10⁹/L), INR (ratio).

``exposure`` (``marts.exposure``), one row per dosing record: ``subject_id, drug`` (LENVATINIB, PD-1 ANTIBODY, STUDY
CAPSULES), ``start_date, end_date, dose`` (mg/day for QD, mg per infusion for Q3W, capsules/day for capsule courses),
``frequency`` (QD/Q3W), ``planned_dose`` (protocol dose per administration: lenvatinib 8 or 12 mg by weight, 200 mg,
6 capsules), optional ``capsules_taken`` (per capsule course).

Rules
-----
TEAE (§5.1, first matching case wins): no TRTSDT -> not TEAE; AE end < TRTSDT -> not TEAE; AE start missing -> TEAE;
``TRTSDT ≤ ASTDT ≤ TRTEDT + window`` (TRTEDT missing = still on treatment: open-ended) -> TEAE; start before TRTSDT,
not ended before it, and ``grade > initial_grade`` -> TEAE (worsened pre-existing). ``trtemfl`` uses
``teae_window_days`` (30), ``trtemfl_extended`` ``teae_window_days_extended`` (90, for SAE/irAE sensitivity tables).

Summary tables (§5.2): each subject counted once per cell at their **maximum** grade; grade groups Any Grade (1-5),
Grade 1-2, Grade 3-4, Grade 5 and Grade 3-5; denominator = safety population per group; SOC then PT sorted by
descending overall frequency. Missing grades are excluded from by-grade rows (config ``ae_missing_grade``) but count
in "any" rows of the overview.

CTCAE v5 lab grades (§5.3; admiral JSON inequalities), baseline = last value on/before treatment start,
``BNRIND = HIGH`` when baseline > ULN:

* ALT/AST: normal baseline G1 >ULN, G2 >3×ULN, G3 >5×ULN, G4 >20×ULN; abnormal baseline G1 ≥1.5×BASE, G2 >3×BASE,
  G3 >5×BASE, G4 >20×BASE.
* Bilirubin: normal G1 >ULN, G2 >1.5×ULN, G3 >3×ULN, G4 >10×ULN; abnormal G1 >BASE, G2 >1.5×, G3 >3×, G4 >10×BASE.
* ALP/GGT: normal G1 >ULN, G2 >2.5×ULN, G3 >5×ULN, G4 >20×ULN; abnormal G1 ≥2×BASE, G2 >2.5×, G3 >5×, G4 >20×BASE.
* Creatinine: G1 >ULN; G2 >1.5×ULN or >1.5×BASE; G3 >3×ULN or >3×BASE; G4 >6×ULN (worst of the two criteria).
* Platelets: G1 <LLN, G2 <75, G3 <50, G4 <25 ×10⁹/L. Neutrophils: G1 <LLN, G2 <1.5, G3 <1.0, G4 <0.5 ×10⁹/L.
  Albumin: G1 <LLN, G2 <30, G3 <20 g/L. INR (not anticoagulated): G1 >1.2, G2 >1.5, G3 >2.5.
* With an abnormal baseline the baseline record itself is grade 0 (admiral). Grade 1 needs the ULN/LLN it refers to
  (missing -> grade missing unless a higher grade applies).

Hy's law screen (§5.3): ALT or AST ≥ 3×ULN and total bilirubin ≥ 2×ULN drawn 0-14 days after (config); variant
``reference="baseline"`` uses max(ULN, baseline) as the reference for subjects with abnormal baseline.

Exposure: duration = last − first dose date + 1 (Q3W: + 21 for the last cycle); cumulative dose = Σ dose × days (QD)
or Σ dose (Q3W, one row per infusion); relative dose intensity = actual / planned cumulative dose × 100 with the
planned dose over the same duration. Capsule compliance = capsules taken / (courses started × 6 capsules × 10 days)
× 100 (config), compliant when ≥ 80 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig

DRUGS: dict[str, str] = {"lenvatinib": "lenvatinib", "pd1": "PD-1 antibody", "capsule": "study capsules"}
GRADE_GROUPS: dict[str, tuple[int, ...]] = {
    "Any Grade": (1, 2, 3, 4, 5),
    "Grade 1-2": (1, 2),
    "Grade 3-4": (3, 4),
    "Grade 3-5": (3, 4, 5),
    "Grade 5": (5,),
}
ACTIONS: dict[str, str] = {
    "DOSE REDUCED": "dose reduction",
    "DRUG INTERRUPTED": "interruption",
    "DRUG WITHDRAWN": "discontinuation",
}
LAB_TERMS: dict[str, tuple[str, str]] = {
    "ALT": ("Alanine aminotransferase increased", "H"),
    "AST": ("Aspartate aminotransferase increased", "H"),
    "BILI": ("Blood bilirubin increased", "H"),
    "ALP": ("Alkaline phosphatase increased", "H"),
    "GGT": ("GGT increased", "H"),
    "CREAT": ("Creatinine increased", "H"),
    "PLAT": ("Platelet count decreased", "L"),
    "NEUT": ("Neutrophil count decreased", "L"),
    "ALB": ("Hypoalbuminemia", "L"),
    "INR": ("INR increased", "H"),
}
_BASELINE_DEPENDENT = ("ALT", "AST", "BILI", "ALP", "GGT")
_FREQ_DAYS = {"QD": 1, "Q3W": 21}


def _yn(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.fillna(False).astype(bool)
    return s.astype("str").str.strip().str.upper().isin(["Y", "YES", "TRUE", "1"]).astype(bool)


def _ids(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["subject_id"] = out["subject_id"].astype("str")
    return out


# ------------------------------------------------------------------------------------------------ TEAE


def flag_teae(ae: pd.DataFrame, subjects: pd.DataFrame, config: EndpointConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """``ae`` with ``trtemfl`` and ``trtemfl_extended`` (bool) added (rules in the module docstring, §5.1)."""
    a = _ids(ae)
    s = _ids(subjects)[["subject_id", "treatment_start_date", "treatment_end_date"]].drop_duplicates("subject_id")
    a = a.drop(columns=[c for c in ("treatment_start_date", "treatment_end_date") if c in a.columns])
    a = a.merge(s, on="subject_id", how="left")
    for c in ("start_date", "end_date", "treatment_start_date", "treatment_end_date"):
        a[c] = pd.to_datetime(a[c])
    trts, trte = a["treatment_start_date"], a["treatment_end_date"]
    ast, aen = a["start_date"], a["end_date"]
    grade = pd.to_numeric(a["grade"], errors="coerce")
    worsened = pd.Series(False, index=a.index)
    if "initial_grade" in a.columns:
        init = pd.to_numeric(a["initial_grade"], errors="coerce")
        worsened = ast.lt(trts) & (aen.isna() | aen.ge(trts)) & grade.gt(init)

    def flag(window: int) -> pd.Series:
        in_window = ast.ge(trts) & (trte.isna() | ast.le(trte + pd.to_timedelta(window, unit="D")))
        res = np.select(
            [trts.isna(), aen.notna() & aen.lt(trts), ast.isna(), in_window, worsened],
            [False, False, True, True, True],
            default=False,
        )
        return pd.Series(res.astype(bool), index=a.index)

    a["trtemfl"] = flag(config.teae_window_days)
    a["trtemfl_extended"] = flag(config.teae_window_days_extended)
    return a


def flag_first_worst(ae: pd.DataFrame) -> pd.DataFrame:
    """admiral AOCCIFL/AOCCSIFL/AOCCPIFL: first occurrence of the worst TEAE per subject (overall, per SOC, per PT),
    ordered by descending grade, start date, ``ae_seq``. Needs ``trtemfl``."""
    a = ae.copy()
    order = a.assign(_g=-pd.to_numeric(a["grade"], errors="coerce").fillna(0), _d=pd.to_datetime(a["start_date"]))
    sort_cols = ["subject_id", "_g", "_d"] + (["ae_seq"] if "ae_seq" in a.columns else [])
    order = order[order["trtemfl"].astype(bool)].sort_values(sort_cols, kind="mergesort")
    for flag, keys in (
        ("aoccifl", ["subject_id"]),
        ("aoccsifl", ["subject_id", "soc"]),
        ("aoccpifl", ["subject_id", "soc", "term"]),
    ):
        first = order.drop_duplicates(keys).index
        a[flag] = a.index.isin(first)
    return a


# ------------------------------------------------------------------------------------------------ AE tables


def _population(subjects: pd.DataFrame, group_col: str | None) -> pd.DataFrame:
    s = _ids(subjects).drop_duplicates("subject_id")
    s["_group"] = "POOLED" if group_col is None else s[group_col].astype("str")
    return s[["subject_id", "_group"]]


def _related(s: pd.Series, config: EndpointConfig) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.fillna(False).astype(bool)
    return s.astype("str").str.strip().str.upper().isin([v.upper() for v in config.related_causalities]).astype(bool)


def ae_overview(
    ae: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
) -> pd.DataFrame:
    """Standard TEAE overview (§5.2): subjects with ≥ 1 TEAE in each category, ``n`` and ``pct`` of the safety
    population ``N`` per group. ``ae`` without ``trtemfl`` is flagged with :func:`flag_teae` first.

    Columns ``category, group, n, N, pct``; ``group_col=None`` gives the pooled (blinded) table.
    """
    a = ae if "trtemfl" in ae.columns else flag_teae(ae, subjects, config)
    a = _ids(a)
    pop = _population(subjects, group_col)
    a = a.merge(pop, on="subject_id", how="inner")
    grade = pd.to_numeric(a["grade"], errors="coerce")
    te = a["trtemfl"].astype(bool)
    te_ext = a["trtemfl_extended"].astype(bool) if "trtemfl_extended" in a.columns else te
    rel = {k: _related(a[f"related_{k}"], config) for k in DRUGS if f"related_{k}" in a.columns}
    any_rel = pd.concat(rel.values(), axis=1).any(axis=1) if rel else pd.Series(False, index=a.index)
    serious = _yn(a["serious"]) if "serious" in a.columns else pd.Series(False, index=a.index)
    irae = _yn(a["immune_related"]) if "immune_related" in a.columns else None
    cats: list[tuple[str, pd.Series]] = [
        ("Any TEAE", te),
        ("Treatment-related TEAE", te & any_rel),
    ]
    cats += [(f"TEAE related to {DRUGS[k]}", te & v) for k, v in rel.items()]
    cats += [
        ("Grade >=3 TEAE", te & grade.ge(3)),
        ("Treatment-related grade >=3 TEAE", te & any_rel & grade.ge(3)),
        ("Serious TEAE", te & serious),
        ("Treatment-related serious TEAE", te & serious & any_rel),
        (f"Serious TEAE ({config.teae_window_days_extended}-day window)", te_ext & serious),
        ("Fatal TEAE (grade 5)", te & grade.eq(5)),
    ]
    for k in DRUGS:
        col = f"action_{k}"
        if col not in a.columns:
            continue
        act = a[col].astype("str").str.strip().str.upper()
        for code, label in ACTIONS.items():
            cats.append((f"TEAE leading to {DRUGS[k]} {label}", te & act.eq(code)))
    if irae is not None:
        cats.append(("Immune-related TEAE", te & irae))
        cats.append((f"Immune-related TEAE ({config.teae_window_days_extended}-day window)", te_ext & irae))
    big_n = pop.groupby("_group")["subject_id"].nunique()
    rows = []
    for label, mask in cats:
        n = a[mask].groupby("_group")["subject_id"].nunique().reindex(big_n.index, fill_value=0)
        for grp in big_n.index:
            rows.append({"category": label, "group": grp, "n": int(n[grp]), "N": int(big_n[grp])})
    out = pd.DataFrame(rows)
    out["pct"] = 100.0 * out["n"] / out["N"]
    return out


def ae_by_soc_term(
    ae: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    subset: pd.Series | None = None,
) -> pd.DataFrame:
    """TEAEs by SOC and preferred term with subjects counted once at their maximum grade (tern/chevron AET04).

    ``subset`` (boolean, aligned to ``ae``) restricts the AEs (e.g. related or serious ones). Returns long rows
    ``level (OVERALL/SOC/PT), soc, term, grade_group, group, n, N, pct`` sorted by SOC and PT by descending overall
    frequency (Any Grade, all groups).
    """
    a = ae if "trtemfl" in ae.columns else flag_teae(ae, subjects, config)
    if subset is not None:
        a = a[subset.reindex(a.index).fillna(False).astype(bool)]
    a = _ids(a[a["trtemfl"].astype(bool)])
    pop = _population(subjects, group_col)
    a = a.merge(pop, on="subject_id", how="inner")
    a["grade"] = pd.to_numeric(a["grade"], errors="coerce")
    if config.ae_missing_grade == "impute":
        a["grade"] = a["grade"].fillna(config.ae_missing_grade_imputed)
    a = a[a["grade"].notna()]
    big_n = pop.groupby("_group")["subject_id"].nunique()
    parts = []
    for level, keys in (("OVERALL", []), ("SOC", ["soc"]), ("PT", ["soc", "term"])):
        mx = a.groupby(["_group", *keys, "subject_id"], as_index=False)["grade"].max()
        for gg, grades in GRADE_GROUPS.items():
            cnt = mx[mx["grade"].isin(grades)].groupby(["_group", *keys], as_index=False)["subject_id"].nunique()
            cnt = cnt.rename(columns={"subject_id": "n"}).assign(level=level, grade_group=gg)
            parts.append(cnt)
    out = pd.concat(parts, ignore_index=True)
    for c in ("soc", "term"):
        if c not in out.columns:
            out[c] = pd.NA
    out.loc[out["level"].eq("OVERALL"), ["soc", "term"]] = "ANY"
    out.loc[out["level"].eq("SOC"), "term"] = "ANY"
    out = out.rename(columns={"_group": "group"})
    # complete the grid so every cell has every group and grade group (n = 0)
    cells = out[["level", "soc", "term"]].drop_duplicates()
    grid = cells.merge(pd.DataFrame({"grade_group": list(GRADE_GROUPS)}), how="cross").merge(
        pd.DataFrame({"group": list(big_n.index)}), how="cross"
    )
    out = grid.merge(out, on=["level", "soc", "term", "grade_group", "group"], how="left")
    out["n"] = out["n"].fillna(0).astype(int)
    out["N"] = out["group"].map(big_n).astype(int)
    out["pct"] = 100.0 * out["n"] / out["N"]
    anyg = out[out["grade_group"].eq("Any Grade")]
    soc_freq = anyg[anyg["level"].eq("SOC")].groupby("soc")["n"].sum()
    pt_freq = anyg[anyg["level"].eq("PT")].groupby(["soc", "term"])["n"].sum()
    out["_lvl"] = out["level"].map({"OVERALL": 0, "SOC": 1, "PT": 1})
    out["_socf"] = -out["soc"].map(soc_freq).fillna(np.inf)
    out["_pt"] = out["level"].map({"OVERALL": 0, "SOC": 0, "PT": 1})
    out["_ptf"] = -pd.Series(list(zip(out["soc"], out["term"], strict=True)), index=out.index).map(pt_freq).fillna(0)
    out["_gg"] = out["grade_group"].map({g: i for i, g in enumerate(GRADE_GROUPS)})
    out = out.sort_values(["_lvl", "_socf", "soc", "_pt", "_ptf", "term", "_gg", "group"], kind="mergesort")
    cols = ["level", "soc", "term", "grade_group", "group", "n", "N", "pct"]
    return out[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ labs


def _baseline_labs(labs: pd.DataFrame, subjects: pd.DataFrame | None) -> pd.DataFrame:
    lb = _ids(labs)
    lb["test_code"] = lb["test_code"].astype("str").str.strip().str.upper()
    lb["lab_date"] = pd.to_datetime(lb["lab_date"])
    for c in ("value", "lln", "uln"):
        lb[c] = pd.to_numeric(lb[c], errors="coerce") if c in lb.columns else np.nan
    ref_col = None
    if subjects is not None:
        s = _ids(subjects)
        ref_col = "treatment_start_date" if "treatment_start_date" in s.columns else "randomisation_date"
        s = s[["subject_id", ref_col]].drop_duplicates("subject_id").rename(columns={ref_col: "_ref"})
        s["_ref"] = pd.to_datetime(s["_ref"])
        lb = lb.merge(s, on="subject_id", how="left")
    else:
        lb["_ref"] = lb.groupby("subject_id")["lab_date"].transform("min")
    lb = lb.sort_values(["subject_id", "test_code", "lab_date"], kind="mergesort").reset_index(drop=True)
    pre = lb["lab_date"].le(lb["_ref"]) & lb["value"].notna()
    cand = lb[pre]
    last = cand.drop_duplicates(["subject_id", "test_code"], keep="last")
    lb["ablfl"] = lb.index.isin(last.index)
    base = last[["subject_id", "test_code", "value", "uln", "lln"]].rename(
        columns={"value": "base", "uln": "base_uln", "lln": "base_lln"}
    )
    lb = lb.merge(base, on=["subject_id", "test_code"], how="left")
    lb["post_baseline"] = lb["lab_date"].gt(lb["_ref"])
    return lb.drop(columns=["_ref"])


def ctcae_grade(
    test_code: pd.Series, value: pd.Series, lln: pd.Series, uln: pd.Series, base: pd.Series, base_high: pd.Series
) -> pd.Series:
    """CTCAE v5 grade (0-4, ``<NA>`` when not gradable) per record (vectorised; rules in the module docstring)."""
    tc = test_code.astype("str").str.upper().to_numpy()
    v, lo, hi, b = (pd.to_numeric(x, errors="coerce").to_numpy(dtype=float) for x in (value, lln, uln, base))
    bh = base_high.fillna(False).astype(bool).to_numpy()
    g = np.full(v.shape, np.nan)

    def ladder(mask: np.ndarray, steps: list[tuple[np.ndarray, int]]) -> None:
        """Assign the highest grade whose condition holds (steps from grade 4 down), 0 otherwise when gradable."""
        out = np.zeros(v.shape)
        done = np.zeros(v.shape, dtype=bool)
        for cond, grade in steps:
            hit = mask & ~done & np.nan_to_num(cond, nan=0).astype(bool)
            out[hit] = grade
            done |= hit
        g[mask] = out[mask]

    with np.errstate(invalid="ignore"):
        for code, m1, m2, m3, m4, g1_abn_ge in (
            ("ALT", 1, 3, 5, 20, 1.5),
            ("AST", 1, 3, 5, 20, 1.5),
            ("BILI", 1, 1.5, 3, 10, None),
            ("ALP", 1, 2.5, 5, 20, 2.0),
            ("GGT", 1, 2.5, 5, 20, 2.0),
        ):
            is_t = (tc == code) & ~np.isnan(v)
            norm = is_t & ~bh & ~np.isnan(hi)
            abn = is_t & bh & ~np.isnan(b)
            ladder(norm, [(v > m4 * hi, 4), (v > m3 * hi, 3), (v > m2 * hi, 2), (v > m1 * hi, 1)])
            g1 = (v >= g1_abn_ge * b) if g1_abn_ge is not None else (v > b)
            ladder(abn, [(v > m4 * b, 4), (v > m3 * b, 3), (v > m2 * b, 2), (g1, 1)])
        is_c = (tc == "CREAT") & ~np.isnan(v)
        has_b = ~np.isnan(b)
        ladder(
            is_c & ~np.isnan(hi),
            [
                (v > 6 * hi, 4),
                ((v > 3 * hi) | (has_b & (v > 3 * b)), 3),
                ((v > 1.5 * hi) | (has_b & (v > 1.5 * b)), 2),
                (v > hi, 1),
            ],
        )
        for code, cuts in (("PLAT", (25, 50, 75)), ("NEUT", (0.5, 1.0, 1.5))):
            is_t = (tc == code) & ~np.isnan(v)
            ladder(is_t, [(v < cuts[0], 4), (v < cuts[1], 3), (v < cuts[2], 2), (v < lo, 1)])
            g[is_t & (g == 0) & np.isnan(lo)] = np.nan  # grade 1 needs the LLN
        is_a = (tc == "ALB") & ~np.isnan(v)
        ladder(is_a, [(v < 20, 3), (v < 30, 2), (v < lo, 1)])
        g[is_a & (g == 0) & np.isnan(lo)] = np.nan
        is_i = (tc == "INR") & ~np.isnan(v)
        ladder(is_i, [(v > 2.5, 3), (v > 1.5, 2), (v > 1.2, 1)])
    return pd.Series(g, index=test_code.index).astype("Int64")


def grade_labs(labs: pd.DataFrame, subjects: pd.DataFrame | None = None) -> pd.DataFrame:
    """Lab records with baseline and CTCAE v5 grades (§5.3).

    ``subjects`` gives the baseline reference date (``treatment_start_date``, else ``randomisation_date``); without it
    the first draw per test is the baseline. Adds ``ablfl, base, base_uln, bnrind (HIGH/NORMAL/LOW), post_baseline,
    term, direction (H/L), atoxgr`` (0-4 or <NA>), ``atoxgrh`` / ``atoxgrl`` (the grade in the term's direction, 0 in
    the other). Tests without CTCAE criteria here (e.g. AFP) get ``atoxgr = <NA>``.
    """
    lb = _baseline_labs(labs, subjects)
    lb["bnrind"] = np.select(
        [lb["base"].gt(lb["base_uln"]), lb["base"].lt(lb["base_lln"]), lb["base"].notna()],
        ["HIGH", "LOW", "NORMAL"],
        default=None,
    )
    base_high = lb["bnrind"].eq("HIGH") & lb["test_code"].isin(_BASELINE_DEPENDENT)
    lb["atoxgr"] = ctcae_grade(lb["test_code"], lb["value"], lb["lln"], lb["uln"], lb["base"], base_high)
    # admiral: with an abnormal baseline the baseline record itself is grade 0
    lb.loc[lb["ablfl"] & base_high & lb["atoxgr"].notna(), "atoxgr"] = 0
    lb["term"] = lb["test_code"].map(lambda c: LAB_TERMS.get(c, ("", ""))[0])
    lb["direction"] = lb["test_code"].map(lambda c: LAB_TERMS.get(c, ("", ""))[1])
    lb["atoxgrh"] = lb["atoxgr"].where(lb["direction"].eq("H"), 0).astype("Int64")
    lb["atoxgrl"] = lb["atoxgr"].where(lb["direction"].eq("L"), 0).astype("Int64")
    return lb


def worst_lab_grades(graded: pd.DataFrame) -> pd.DataFrame:
    """Per subject and test: baseline grade, worst post-baseline grade and the shift (``baseline -> worst``)."""
    g = graded[graded["atoxgr"].notna()]
    base = g[g["ablfl"]].groupby(["subject_id", "test_code"])["atoxgr"].max().rename("baseline_grade")
    worst = g[g["post_baseline"]].groupby(["subject_id", "test_code"])["atoxgr"].max().rename("worst_grade")
    out = pd.concat([base, worst], axis=1).reset_index()
    out["baseline_grade"] = out["baseline_grade"].astype("Int64")
    out["worst_grade"] = out["worst_grade"].astype("Int64")
    out["shift"] = out["baseline_grade"].astype("str") + " -> " + out["worst_grade"].astype("str")
    return out


def hys_law_screen(
    labs: pd.DataFrame,
    subjects: pd.DataFrame | None = None,
    config: EndpointConfig = DEFAULT_CONFIG,
    reference: str = "uln",
) -> pd.DataFrame:
    """Potential Hy's law cases: ALT/AST ≥ 3× reference with bilirubin ≥ 2× reference 0-14 days later (§5.3).

    ``reference="uln"`` (admiral) or ``"baseline"`` (max(ULN, baseline value), a variant for abnormal baseline LFTs).
    With ``subjects`` (treatment start) only post-baseline draws are screened; without it every draw is.
    Returns one row per subject with ``subject_id, hys_law (bool), transaminase_date, bilirubin_date, alt_ast_xref,
    bili_xref`` (first qualifying pair; empty dates when none).
    """
    lb = _baseline_labs(labs, subjects)
    ref = lb["uln"]
    if reference == "baseline":
        ref = pd.concat([lb["uln"], lb["base"]], axis=1).max(axis=1)
    lb["xref"] = lb["value"] / ref
    on_study = lb["post_baseline"] if subjects is not None else pd.Series(True, index=lb.index)
    tr = lb[on_study & lb["test_code"].isin(["ALT", "AST"]) & lb["xref"].ge(config.hys_law_alt_ast_uln)]
    bi = lb[on_study & lb["test_code"].eq("BILI") & lb["xref"].ge(config.hys_law_bili_uln)]
    pairs = tr[["subject_id", "lab_date", "xref"]].merge(
        bi[["subject_id", "lab_date", "xref"]], on="subject_id", suffixes=("_t", "_b")
    )
    gap = (pairs["lab_date_b"] - pairs["lab_date_t"]).dt.days
    pairs = pairs[gap.between(0, config.hys_law_window_days)]
    pairs = pairs.sort_values(["subject_id", "lab_date_t", "lab_date_b"]).drop_duplicates("subject_id")
    out = pd.DataFrame({"subject_id": lb["subject_id"].unique()}).merge(
        pairs.rename(
            columns={
                "lab_date_t": "transaminase_date",
                "lab_date_b": "bilirubin_date",
                "xref_t": "alt_ast_xref",
                "xref_b": "bili_xref",
            }
        ),
        on="subject_id",
        how="left",
    )
    out["hys_law"] = out["transaminase_date"].notna()
    return out[["subject_id", "hys_law", "transaminase_date", "bilirubin_date", "alt_ast_xref", "bili_xref"]]


# ------------------------------------------------------------------------------------------------ exposure


def dose_intensity(exposure: pd.DataFrame, config: EndpointConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """Per subject and drug: duration, cumulative and planned dose, dose intensity and relative dose intensity; for
    the study capsules also courses, capsules taken/planned, compliance % and ``compliant`` (rules in the module
    docstring)."""
    ex = _ids(exposure)
    ex["drug"] = ex["drug"].astype("str").str.strip().str.upper()
    ex["frequency"] = ex["frequency"].astype("str").str.strip().str.upper()
    ex["start_date"] = pd.to_datetime(ex["start_date"])
    ex["end_date"] = pd.to_datetime(ex["end_date"]).fillna(ex["start_date"])
    ex["dose"] = pd.to_numeric(ex["dose"], errors="coerce").fillna(0.0)
    ex["planned_dose"] = pd.to_numeric(ex["planned_dose"], errors="coerce")
    interval = ex["frequency"].map(_FREQ_DAYS).fillna(1).astype(int)
    ex["interval"] = interval
    days = (ex["end_date"] - ex["start_date"]).dt.days + 1
    is_cap = ex["drug"].str.contains("CAPSULE")
    ex["actual"] = np.where(interval.gt(1), ex["dose"], ex["dose"] * days)
    if "capsules_taken" in ex.columns:
        taken = pd.to_numeric(ex["capsules_taken"], errors="coerce")
        ex["actual"] = np.where(is_cap & taken.notna(), taken, ex["actual"])
    g = ex.groupby(["subject_id", "drug"], as_index=False).agg(
        first_dose_date=("start_date", "min"),
        last_dose_date=("end_date", "max"),
        last_start=("start_date", "max"),
        n_records=("start_date", "size"),
        cumulative_dose=("actual", "sum"),
        planned_dose=("planned_dose", "max"),
        interval=("interval", "max"),
    )
    q3w = g["interval"].gt(1)
    g["duration_days"] = np.where(
        q3w,
        (g["last_start"] - g["first_dose_date"]).dt.days + g["interval"],
        (g["last_dose_date"] - g["first_dose_date"]).dt.days + 1,
    )
    g["planned_cumulative_dose"] = np.where(
        q3w, g["planned_dose"] * np.ceil(g["duration_days"] / g["interval"]), g["planned_dose"] * g["duration_days"]
    )
    cap = g["drug"].str.contains("CAPSULE")
    courses = ex[is_cap].groupby(["subject_id", "drug"]).size().rename("courses")
    g = g.merge(courses.reset_index(), on=["subject_id", "drug"], how="left")
    per_course = config.capsules_per_day * config.capsule_days_per_course
    g.loc[cap, "planned_cumulative_dose"] = g.loc[cap, "courses"] * per_course
    g["dose_intensity_per_day"] = g["cumulative_dose"] / g["duration_days"]
    g["relative_dose_intensity_pct"] = 100.0 * g["cumulative_dose"] / g["planned_cumulative_dose"]
    g["capsule_compliance_pct"] = g["relative_dose_intensity_pct"].where(cap)
    g["compliant"] = g["capsule_compliance_pct"].ge(config.compliance_threshold_pct).where(cap)
    return g.drop(columns=["last_start", "planned_dose", "interval"])


def exposure_summary(
    per_subject: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str | None = None,
    variables: Sequence[str] = ("duration_days", "cumulative_dose", "relative_dose_intensity_pct"),
) -> pd.DataFrame:
    """Descriptive statistics (n, mean, SD, median, min, max) of :func:`dose_intensity` variables per drug and group,
    plus the number and percent of capsule-compliant subjects (``variable = "compliant"``)."""
    pop = _population(subjects, group_col)
    d = _ids(per_subject).merge(pop, on="subject_id", how="inner")
    rows = []
    for (drug, grp), sub in d.groupby(["drug", "_group"], sort=True):
        for var in variables:
            x = pd.to_numeric(sub[var], errors="coerce").dropna()
            rows.append(
                {"drug": drug, "group": grp, "variable": var, "n": len(x), "mean": x.mean(), "sd": x.std()}
                | {"median": x.median(), "min": x.min(), "max": x.max()}
            )
        comp = sub["compliant"].dropna()
        if len(comp):
            k = int(comp.astype(bool).sum())
            rows.append({"drug": drug, "group": grp, "variable": "compliant", "n": len(comp), "n_yes": k,
                         "pct_yes": 100.0 * k / len(comp)})  # fmt: skip
    out = pd.DataFrame(rows)
    if "pct_yes" not in out.columns:
        out["n_yes"], out["pct_yes"] = math.nan, math.nan
    return out
