"""Adverse events (form ``ae``) and study-drug exposure (form ``ex``).

Toxicity drives dosing, as in the clinic: adverse events are drawn first (incidence scaled by time on
treatment), the investigator's action for each drug follows from grade and attribution, and the exposure
records (lenvatinib constant-dose periods, PD-1 infusions, capsule courses) are built from those actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.simulation.catalogues import AE_TERMS, FATAL_AE, AeTerm
from analysis.simulation.params import SimulationParams

RELATED = ("POSSIBLE", "PROBABLE", "DEFINITE")
LENVATINIB_REDUCTION = {12: 8, 8: 4}
#: Grade-2 lenvatinib toxicities the label says to manage by interruption or reduction.
LENVATINIB_MANAGED_AT_G2 = {
    "Hypertension", "Proteinuria", "Palmar-plantar erythrodysesthesia syndrome", "Fatigue", "Diarrhea",
}  # fmt: skip

AE_COLUMNS = (
    "SUBJID", "AESPID", "AETERM", "AEDECOD", "AEBODSYS", "st_day", "en_day", "AETOXGR", "AESER", "AERELLEN",
    "AERELPD1", "AERELCAP", "AEACNLEN", "AEACNPD1", "AEOUT", "AEIRAE",
)  # fmt: skip
EX_COLUMNS = (
    "SUBJID", "VISIT", "EXTRT", "st_day", "en_day", "EXDOSE", "EXDOSU", "EXDOSFRQ", "EXADJ", "EXCAPTKN",
)  # fmt: skip


@dataclass
class Episode:
    term: AeTerm
    onset: int  # days from randomisation
    end: int
    grade: int
    rel_len: str = "NOT RELATED"
    rel_pd1: str = "NOT RELATED"
    rel_cap: str = "NOT RELATED"
    acn_len: str = ""
    acn_pd1: str = ""


@dataclass
class TreatmentResult:
    ae: pd.DataFrame
    ex: pd.DataFrame
    #: Per patient (cohort order): end-of-treatment day (from randomisation), its reason, cycles started.
    eot_day: np.ndarray
    eot_reason: list[str]
    n_cycles: np.ndarray
    courses_received: np.ndarray
    lenvatinib_start_dose: np.ndarray
    lenvatinib_expected_dose: np.ndarray
    #: Truth: lenvatinib starting dose that does not match the weight band (protocol deviations).
    deviations: pd.DataFrame
    #: Episodes per patient, used by the lab simulator (ALT/AST/bilirubin/platelets follow the AEs).
    episodes: list[list[Episode]]


def _relatedness(rng: np.random.Generator, plausible: bool) -> str:
    if plausible:
        return str(rng.choice(RELATED, p=(0.45, 0.40, 0.15))) if rng.random() < 0.9 else "UNLIKELY"
    return str(rng.choice(("NOT RELATED", "UNLIKELY"), p=(0.75, 0.25)))


def _draw_episodes(
    rng: np.random.Generator, c1d1: int, stop: int, capsule: bool, death_day: float, eot_reason: str
) -> list[Episode]:
    episodes: list[Episode] = []
    on_treatment = max(stop - c1d1, 1)
    scale = (1.0 - np.exp(-on_treatment / 120.0)) / (1.0 - np.exp(-180.0 / 120.0))
    for term in AE_TERMS:
        ratio = term.capsule_incidence_ratio if capsule else 1.0
        if rng.random() >= min(0.95, term.incidence * ratio * scale):
            continue
        onset = c1d1 + float(np.exp(rng.normal(np.log(term.onset_median_days), 0.6)))
        if onset >= stop:
            onset = c1d1 + (stop - c1d1) * rng.uniform(0.1, 0.95)
        for _episode in range(2):
            grade = int(rng.choice([1, 2, 3, 4], p=term.grades))
            duration = max(1, round(np.exp(rng.normal(np.log(term.duration_median_days), 0.7))))
            start = max(int(onset), c1d1 + 1)  # treatment-emergent: after the first dose
            episodes.append(Episode(term, start, start + duration, grade))
            onset = start + duration + float(np.exp(rng.normal(np.log(60.0), 0.5)))
            if term.duration_median_days > 60 or onset >= stop or rng.random() > 0.15:
                break
    if eot_reason == "DEATH" and rng.random() < 0.2:
        onset = max(c1d1, int(death_day) - int(rng.integers(2, 11)))
        episodes.append(Episode(FATAL_AE, onset, int(death_day), 5))
    episodes.sort(key=lambda e: (e.onset, e.term.decod))
    for ep in episodes:
        ep.rel_len = _relatedness(rng, ep.term.by_lenvatinib)
        ep.rel_pd1 = _relatedness(rng, ep.term.by_pd1)
        ep.rel_cap = (
            str(rng.choice(("POSSIBLE", "UNLIKELY", "NOT RELATED"), p=(0.35, 0.45, 0.2)))
            if ep.term.by_capsule
            else str(rng.choice(("NOT RELATED", "UNLIKELY"), p=(0.8, 0.2)))
        )
    return episodes


def _lenvatinib_action(rng: np.random.Generator, ep: Episode) -> str:
    if ep.rel_len not in RELATED or ep.grade == 5:
        return "DOSE NOT CHANGED"
    if ep.grade == 4:
        return str(rng.choice(("DRUG WITHDRAWN", "DOSE REDUCED"), p=(0.5, 0.5)))
    if ep.grade == 3:
        return str(rng.choice(("DRUG INTERRUPTED", "DOSE REDUCED", "DRUG WITHDRAWN"), p=(0.35, 0.55, 0.10)))
    if ep.grade == 2 and ep.term.decod in LENVATINIB_MANAGED_AT_G2:
        return str(rng.choice(("DRUG INTERRUPTED", "DOSE REDUCED", "DOSE NOT CHANGED"), p=(0.25, 0.10, 0.65)))
    return "DOSE NOT CHANGED"


def _pd1_action(rng: np.random.Generator, ep: Episode) -> str:
    if ep.rel_pd1 not in RELATED or ep.grade == 5:
        return "DOSE NOT CHANGED"
    if ep.term.immune:
        if ep.grade >= 4:
            return "DRUG WITHDRAWN"
        if ep.grade == 3:
            return str(rng.choice(("DRUG INTERRUPTED", "DRUG WITHDRAWN"), p=(0.6, 0.4)))
        if ep.grade == 2:
            return "DRUG INTERRUPTED"
    elif ep.grade >= 3 and rng.random() < 0.5:
        return "DRUG INTERRUPTED"
    return "DOSE NOT CHANGED"


def simulate_treatment(
    cohort: pd.DataFrame, observed_pd_day: np.ndarray, p: SimulationParams, rng: np.random.Generator
) -> TreatmentResult:
    ae_rows: list[tuple] = []
    ex_rows: list[tuple] = []
    dev_rows: list[tuple] = []
    n = len(cohort)
    eot_day = np.zeros(n, dtype=int)
    eot_reason: list[str] = []
    n_cycles = np.zeros(n, dtype=int)
    courses = np.zeros(n, dtype=int)
    start_dose = np.zeros(n, dtype=int)
    expected_dose = np.zeros(n, dtype=int)
    all_episodes: list[list[Episode]] = []
    cyc = p.cycle_days

    for i, row in enumerate(cohort.itertuples(index=False)):
        subj, rday = row.SUBJID, int(row.rand_day)
        c1d1 = int(row.c1d1_offset)
        # Treatment would stop at the first of: observed PD, death, dropout, data cut-off.
        candidates = [(float(row.cutoff_day), "ONGOING")]
        if np.isfinite(observed_pd_day[i]):
            candidates.append((observed_pd_day[i] + float(rng.integers(0, 6)), "PROGRESSIVE DISEASE"))
        candidates.append((float(row.true_death_day), "DEATH"))
        if row.dropout_type:
            candidates.append((float(row.dropout_day), row.dropout_type))
        stop_f, reason = min(candidates, key=lambda c: c[0])
        stop = max(int(stop_f), c1d1 + 1)

        episodes = _draw_episodes(rng, c1d1, stop, row.arm == "CAPSULE", row.true_death_day, reason)

        expected = p.lenvatinib_low_mg if row.weight_kg <= p.weight_band_kg else p.lenvatinib_high_mg
        dose0 = expected
        if rng.random() < p.dose_band_deviation_rate:
            dose0 = p.lenvatinib_high_mg if expected == p.lenvatinib_low_mg else p.lenvatinib_low_mg
            dev_rows.append((subj, row.weight_kg, expected, dose0, "LENVATINIB DOSE NOT MATCHING WEIGHT BAND"))
        expected_dose[i], start_dose[i] = expected, dose0

        # ---- lenvatinib: constant-dose periods broken by AE-driven interruptions and reductions
        segments: list[list] = []  # [start, last dose day, dose, EXADJ]
        cur_start, cur_dose, cur_adj = c1d1, dose0, ""
        len_stop = stop  # first day without lenvatinib
        pd1_stop = stop
        pd1_held: list[tuple[int, int]] = []
        for ep in episodes:
            if cur_start < 0 or ep.onset >= min(len_stop, stop):
                ep.acn_len = ""  # not on lenvatinib any more: not applicable
            else:
                act = _lenvatinib_action(rng, ep)
                if act == "DOSE REDUCED" and cur_dose not in LENVATINIB_REDUCTION:
                    act = "DRUG WITHDRAWN"  # already at the lowest dose
                ep.acn_len = act
                if act != "DOSE NOT CHANGED":
                    gap = int(rng.integers(7, 15))
                    if ep.onset < cur_start:  # already interrupted: the break gets longer
                        if act == "DRUG WITHDRAWN":
                            len_stop = ep.onset
                            cur_start = -1
                        else:
                            cur_start = max(cur_start, ep.onset + 1 + gap)
                            if act == "DOSE REDUCED":
                                cur_dose, cur_adj = LENVATINIB_REDUCTION[cur_dose], "DOSE REDUCED"
                    else:
                        segments.append([cur_start, ep.onset, cur_dose, cur_adj])
                        if act == "DRUG WITHDRAWN":
                            segments[-1][3] = "DRUG WITHDRAWN"
                            len_stop = ep.onset + 1
                            cur_start = -1
                        else:
                            cur_start = ep.onset + 1 + gap
                            if act == "DOSE REDUCED":
                                cur_dose, cur_adj = LENVATINIB_REDUCTION[cur_dose], "DOSE REDUCED"
                            else:
                                cur_adj = "DRUG INTERRUPTED"
            if ep.onset >= min(pd1_stop, stop):
                ep.acn_pd1 = ""
            else:
                act = _pd1_action(rng, ep)
                ep.acn_pd1 = act
                if act == "DRUG WITHDRAWN":
                    pd1_stop = ep.onset + 1
                elif act == "DRUG INTERRUPTED":
                    pd1_held.append((ep.onset, ep.end))
        if cur_start >= 0 and cur_start < len_stop:
            segments.append([cur_start, len_stop - 1, cur_dose, cur_adj])
        len_stop = min(len_stop, stop)

        # End of treatment: when every drug has stopped (both withdrawn for toxicity) or the stop above.
        if len_stop < stop and pd1_stop < stop:
            eot, reason = max(len_stop, pd1_stop), "ADVERSE EVENT"
        else:
            eot = stop
        eot_day[i], eot_reason_i = eot, reason
        eot_reason.append(eot_reason_i)
        ongoing = reason == "ONGOING"

        for start, last, dose, adj in segments:
            if start >= eot:
                continue
            last = min(last, eot - 1)
            cycle = (start - c1d1) // cyc + 1
            en = np.nan if (ongoing and last == eot - 1) else rday + last
            ex_rows.append((subj, f"CYCLE {cycle}", "LENVATINIB", rday + start, en, str(dose), "mg", "QD", adj, ""))

        # ---- PD-1: one infusion per 21-day cycle, withheld while an immune AE is active
        cycle_days = [c1d1 + cyc * k for k in range(0, max(0, (eot - c1d1 - 1) // cyc + 1))]
        n_cycles[i] = len(cycle_days)
        skipped = False
        for k, day in enumerate(cycle_days, start=1):
            if day >= pd1_stop:
                break
            if any(a <= day <= b for a, b in pd1_held):
                skipped = True
                continue
            adj = "DRUG INTERRUPTED" if skipped else ""
            skipped = False
            ex_rows.append(
                (subj, f"CYCLE {k} DAY 1", "PD-1 ANTIBODY", rday + day, rday + day, str(p.pd1_dose_mg), "mg", "Q3W",
                 adj, "")
            )  # fmt: skip

        # ---- capsules (active or placebo): 6/day for 10 days at the start of cycles 1..4
        adherence = rng.beta(12, 1.2)
        for k in range(1, p.capsule_courses + 1):
            start = c1d1 + cyc * (k - 1)
            if start >= eot:
                break
            last = min(start + p.capsule_days_per_course - 1, eot - 1)
            planned = p.capsules_per_day * (last - start + 1)
            taken = int(rng.binomial(planned, adherence))
            courses[i] = k
            ex_rows.append(
                (subj, f"CYCLE {k}", "STUDY CAPSULES", rday + start, rday + last, str(p.capsules_per_day),
                 "capsule", "QD", "", str(taken))
            )  # fmt: skip

        # ---- adverse events (only those starting by 30 days after the end of treatment)
        kept = [ep for ep in episodes if ep.onset <= eot + 30 and ep.onset < row.obs_end_day]
        all_episodes.append(kept)
        obs_end = row.obs_end_day
        for k, ep in enumerate(kept, start=1):
            if ep.grade == 5:
                end, outcome = rday + ep.end, "FATAL"
            elif ep.end <= obs_end:
                end, outcome = rday + ep.end, "RECOVERED"
            else:
                end, outcome = np.nan, ("NOT RECOVERED" if rng.random() < 0.5 else "RECOVERING")
            serious_p = {1: 0.01, 2: 0.05, 3: 0.35, 4: 0.8, 5: 1.0}[ep.grade]
            irae = "Y" if ep.term.immune and ep.rel_pd1 in RELATED else "N"
            ae_rows.append(
                (subj, str(k), str(rng.choice(ep.term.verbatims)), ep.term.decod, ep.term.soc, rday + ep.onset,
                 end, str(ep.grade), "Y" if rng.random() < serious_p else "N", ep.rel_len, ep.rel_pd1, ep.rel_cap,
                 ep.acn_len, ep.acn_pd1, outcome, irae)
            )  # fmt: skip

    ae = pd.DataFrame(ae_rows, columns=list(AE_COLUMNS))
    ex = pd.DataFrame(ex_rows, columns=list(EX_COLUMNS))
    deviations = pd.DataFrame(
        dev_rows, columns=["SUBJID", "baseline_weight_kg", "expected_dose_mg", "given_dose_mg", "deviation"]
    )
    return TreatmentResult(
        ae, ex, eot_day, eot_reason, n_cycles, courses, start_dose, expected_dose, deviations, all_episodes
    )
