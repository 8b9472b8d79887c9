"""Lesion-level tumour assessments (form ``tr``) and the investigator's RECIST 1.1 responses (form ``rs``).

The latent tumour burden follows a shrink-then-regrow curve per patient; each lesion follows it with its
own sensitivity and measurement noise. Responses are derived from the *measured* (rounded, noisy)
diameters exactly as an investigator would, so a responder may be read as SD and a slow progressor may be
caught one scan late; a small share of visits gets a deliberately discordant investigator call (truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.simulation.params import SimulationParams

EXTRAHEPATIC_TARGET_ORGANS = ("LUNG", "LYMPH NODE", "ADRENAL GLAND", "PERITONEUM")
NEW_LESION_SITES = ("LIVER", "LUNG", "BONE", "LYMPH NODE", "PERITONEUM")
NEW_LESION_P = (0.45, 0.25, 0.12, 0.12, 0.06)
#: (median mm, log sd, min, max) of baseline long axis by organ; lymph nodes are short axis.
SIZE = {
    "LIVER": (42.0, 0.5, 12, 160),
    "LUNG": (18.0, 0.35, 10, 60),
    "ADRENAL GLAND": (25.0, 0.3, 10, 70),
    "PERITONEUM": (24.0, 0.35, 10, 70),
    "LYMPH NODE": (20.0, 0.25, 15, 40),
}
#: Scheduled scans: every 6 weeks to week 48, then every 9 weeks (days from randomisation).
WINDOW_DAYS = 7

TR_COLUMNS = (
    "SUBJID", "VISIT", "day", "TRMETHOD", "TRLNKID", "TRCAT", "TRLOC", "TRNODE", "TRAXIS", "TRDIAM", "TRNTSTAT",
    "TRVIABDIAM",
)  # fmt: skip
RS_COLUMNS = ("SUBJID", "VISIT", "day", "RSTLRESP", "RSNTRESP", "RSNLRESP", "RSOVRLRESP")


def scheduled_scan_weeks(max_day: float) -> list[int]:
    """Protocol weeks of scheduled scans up to ``max_day`` days after randomisation."""
    weeks = [6 * k for k in range(1, 9)]
    while True:
        nxt = weeks[-1] + 9
        if nxt * 7 > max_day + 30:
            break
        weeks.append(nxt)
    return [w for w in weeks if w * 7 <= max_day + 30]


def burden_ratio(nadir: float, tau: float, growth_start: float, growth_rate: float, t: np.ndarray) -> np.ndarray:
    """Latent sum of diameters relative to baseline at days ``t``: exponential shrinkage towards the nadir,
    then exponential regrowth from ``growth_start`` (inf when the patient never progresses)."""
    t = np.asarray(t, dtype=float)
    tc = np.minimum(np.maximum(t, 0.0), growth_start)
    shrink = nadir + (1.0 - nadir) * np.exp(-tc / tau)
    return shrink * np.exp(growth_rate * np.maximum(0.0, t - growth_start))


def recist(
    values: np.ndarray,
    is_node: np.ndarray,
    baseline_sod: float,
    nadir_sod: float,
    nt_status: list[str],
    new_lesion: bool,
) -> tuple[str, str, str, str]:
    """RECIST 1.1 target, non-target, new-lesion and overall response of one assessment."""
    sod = float(values.sum())
    if np.all(values[~is_node] == 0) and np.all(values[is_node] < 10):
        tl = "CR"
    elif sod >= 1.2 * nadir_sod and sod - nadir_sod >= 5:
        tl = "PD"
    elif sod <= 0.7 * baseline_sod:
        tl = "PR"
    else:
        tl = "SD"
    if not nt_status:
        nt = "NA"
    elif "UNEQUIVOCAL PROGRESSION" in nt_status:
        nt = "PD"
    elif all(s == "ABSENT" for s in nt_status):
        nt = "CR"
    else:
        nt = "NON-CR/NON-PD"
    nl = "Y" if new_lesion else "N"
    if tl == "PD" or nt == "PD" or new_lesion:
        overall = "PD"
    elif tl == "CR" and nt in ("CR", "NA"):
        overall = "CR"
    elif tl in ("CR", "PR"):
        overall = "PR"
    else:
        overall = "SD"
    return tl, nt, nl, overall


@dataclass
class TumourResult:
    tr: pd.DataFrame
    rs: pd.DataFrame
    #: Truth: every planned or performed scan with its status (DONE, LATE, MISSED, UNSCHEDULED).
    visits: pd.DataFrame
    #: Truth: visits where the investigator's call differs from the RECIST derivation.
    discordance: pd.DataFrame
    #: Per patient (cohort order).
    observed_pd_day: np.ndarray
    progression_mode: list[str]
    growth_start_day: np.ndarray
    growth_rate: np.ndarray
    baseline_sod: np.ndarray
    method: list[str]


def _baseline_lesions(rng: np.random.Generator, ehs: bool, mvi: bool) -> list[dict]:
    lesions: list[dict] = []
    n_liver = 1 if rng.random() < 0.35 else 2
    organs = ["LIVER"] * n_liver
    if ehs:
        n_extra = int(rng.integers(1, 4))
        per_organ: dict[str, int] = {}
        for organ in rng.choice(EXTRAHEPATIC_TARGET_ORGANS, size=n_extra, p=(0.45, 0.3, 0.15, 0.1)):
            organ = str(organ)
            if per_organ.get(organ, 0) < 2 and len(organs) < 5:  # RECIST: max 2 per organ, 5 in total
                per_organ[organ] = per_organ.get(organ, 0) + 1
                organs.append(organ)
    for k, organ in enumerate(organs, start=1):
        median, sd, lo, hi = SIZE[organ]
        size = float(np.clip(np.exp(rng.normal(np.log(median), sd)), lo, hi))
        lesions.append(
            {
                "id": f"T{k:02d}",
                "cat": "TARGET",
                "loc": organ,
                "node": organ == "LYMPH NODE",
                "base": size,
                "w": float(np.exp(rng.normal(0.0, 0.15))),
                "viable": float(rng.uniform(0.85, 1.0)) if organ == "LIVER" else None,
            }
        )
    nontarget = ["LIVER"] * int(rng.choice([0, 1, 2], p=(0.45, 0.35, 0.2)))
    if mvi:
        nontarget.append("PORTAL VEIN")
    if ehs and rng.random() < 0.3:
        nontarget.append("BONE")
    if ehs and rng.random() < 0.25:
        nontarget.append("LUNG")
    for k, organ in enumerate(nontarget, start=1):
        lesions.append({"id": f"NT{k:02d}", "cat": "NON-TARGET", "loc": organ, "node": False})
    return lesions


def simulate_tumour(cohort: pd.DataFrame, p: SimulationParams, rng: np.random.Generator) -> TumourResult:
    tr_rows: list[tuple] = []
    rs_rows: list[tuple] = []
    visit_rows: list[tuple] = []
    discord_rows: list[tuple] = []
    n = len(cohort)
    observed_pd = np.full(n, np.nan)
    modes: list[str] = []
    growth_start = np.full(n, np.inf)
    growth_rate = np.zeros(n)
    base_sod = np.zeros(n)
    methods: list[str] = []

    for i, row in enumerate(cohort.itertuples(index=False)):
        subj = row.SUBJID
        lesions = _baseline_lesions(rng, row.ehs == "Y", row.mvi == "Y")
        targets = [les for les in lesions if les["cat"] == "TARGET"]
        nontargets = [les for les in lesions if les["cat"] == "NON-TARGET"]
        is_node = np.array([les["node"] for les in targets])
        base = np.array([les["base"] for les in targets])
        w = np.array([les["w"] for les in targets])
        sod0 = float(base.sum())
        method = "MRI" if rng.random() < 0.15 else "CT"
        methods.append(method)

        t_prog = row.true_progression_day
        nadir, tau = row.nadir_fraction, row.shrink_tau_days
        if np.isfinite(t_prog):
            u = rng.random()
            if nadir == 0.0 or (u >= 0.55 and u < 0.85) or (u >= 0.85 and not nontargets):
                mode = "NEW LESION"
            elif u < 0.55:
                mode = "TARGET GROWTH"
            else:
                mode = "NON-TARGET PROGRESSION"
            if mode == "TARGET GROWTH":
                g_start = max(t_prog - rng.uniform(42, 120), 0.0)
                level = float(burden_ratio(nadir, tau, np.inf, 0.0, np.array([g_start]))[0])
                # >= 20% over the nadir and >= 5 mm absolute (with a margin for measurement noise).
                mult = max(1.25, (sod0 * level + 7.0) / (sod0 * level))
                g_rate = np.log(mult) / max(t_prog - g_start, 1.0)
            else:
                g_start, g_rate = float(t_prog), np.log(1.08) / 42.0
            extra_new = mode == "TARGET GROWTH" and rng.random() < 0.3
        else:
            mode, g_start, g_rate, extra_new = "NONE", np.inf, 0.0, False
        modes.append(mode)
        growth_start[i], growth_rate[i], base_sod[i] = g_start, g_rate, sod0
        n_new = int(rng.integers(1, 3))
        new_sites = [str(s) for s in rng.choice(NEW_LESION_SITES, size=n_new, p=NEW_LESION_P)]
        nt_prog_lesion = int(rng.integers(0, len(nontargets))) if nontargets else -1

        # ---- scan calendar (days from randomisation): (day, visit, status, nominal day)
        end = row.obs_end_day
        calendar: list[tuple[float, str, str, float]] = [(-float(rng.integers(3, 22)), "SCREENING", "DONE", np.nan)]
        for week in scheduled_scan_weeks(end):
            nominal = float(week * 7)
            u = rng.random()
            if u < p.ct_visit_missed_rate:
                if nominal < end:
                    calendar.append((nominal, f"WEEK {week}", "MISSED", nominal))
                continue
            if u < p.ct_visit_missed_rate + p.ct_visit_late_rate:
                day, status = nominal + float(rng.integers(WINDOW_DAYS + 1, 22)), "LATE"
            else:
                day, status = nominal + float(np.clip(np.round(rng.normal(0, 2.5)), -WINDOW_DAYS, WINDOW_DAYS)), "DONE"
            if day >= end:
                break
            calendar.append((day, f"WEEK {week}", status, nominal))
        if rng.random() < p.unscheduled_scan_rate:
            # Unscheduled scans mostly follow clinical suspicion of progression.
            if np.isfinite(t_prog) and t_prog + 30 < end and rng.random() < 0.7:
                day = t_prog + float(rng.integers(3, 30))
            else:
                day = float(rng.integers(20, max(int(min(end, 700)), 21)))
            if day < end:
                calendar.append((day, "UNSCHEDULED", "UNSCHEDULED", np.nan))
        calendar.sort(key=lambda s: (s[0], s[1] == "UNSCHEDULED"))

        # ---- all measurements of the patient at once (noise, "too small" floor, disappearance) ...
        done = [c for c in calendar if c[2] != "MISSED"]
        days = np.array([c[0] for c in done])
        ratios = burden_ratio(nadir, tau, g_start, g_rate, days)
        noise = np.exp(rng.normal(0.0, p.measurement_cv, (len(done), len(targets))))
        values = base[None, :] * ratios[:, None] ** w[None, :] * noise
        values = np.where(is_node[None, :], np.maximum(values, 5.0), values)
        values = np.where(~is_node[None, :] & (values < 5.0), 5.0, values)  # "too small to measure" default
        gone = ratios < 0.08
        healed_nodes = rng.uniform(5.0, 9.0, values.shape)
        values[gone] = np.where(is_node[None, :], healed_nodes, 0.0)[gone]
        values = np.round(values)
        discord_u = rng.random(len(done))
        value_rows = values.astype(int).tolist()
        viable_frac = [les["viable"] for les in targets]

        # ---- ... then read scan by scan, as the investigator does, until the first PD
        nadir_sod = np.inf
        baseline_measured = 0.0
        n_unscheduled = 0
        k_done = -1
        for day, visit, status, nominal in calendar:
            if status == "MISSED":
                visit_rows.append((subj, visit, nominal, np.nan, "MISSED"))
                continue
            k_done += 1
            if visit == "UNSCHEDULED":
                n_unscheduled += 1
                visit = f"UNSCHEDULED {n_unscheduled}"
            visit_rows.append((subj, visit, nominal, day, status))
            ratio = float(ratios[k_done])
            scan_gone = bool(gone[k_done])
            abs_day = row.rand_day + day
            for les, value, vf in zip(targets, value_rows[k_done], viable_frac, strict=True):
                viable = "" if vf is None else str(round(value * vf * min(1.0, ratio) ** 0.5))
                tr_rows.append(
                    (subj, visit, abs_day, method, les["id"], "TARGET", les["loc"], "Y" if les["node"] else "N",
                     "SHORT" if les["node"] else "LONG", str(value), "", viable)
                )  # fmt: skip
            progressed = np.isfinite(t_prog) and day >= t_prog
            statuses: list[str] = []
            for k, les in enumerate(nontargets):
                if mode == "NON-TARGET PROGRESSION" and progressed and k == nt_prog_lesion:
                    nt_status = "UNEQUIVOCAL PROGRESSION"
                elif scan_gone:
                    nt_status = "ABSENT"
                else:
                    nt_status = "PRESENT"
                statuses.append(nt_status)
                tr_rows.append(
                    (subj, visit, abs_day, method, les["id"], "NON-TARGET", les["loc"], "N", "", "", nt_status, "")
                )
            new_lesion = progressed and (mode == "NEW LESION" or extra_new)
            if new_lesion:
                for k, site in enumerate(new_sites, start=1):
                    tr_rows.append(
                        (subj, visit, abs_day, method, f"NEW{k:02d}", "NEW", site,
                         "Y" if site == "LYMPH NODE" else "N", "", "", "", "")
                    )  # fmt: skip
            sod = float(values[k_done].sum())
            if visit == "SCREENING":
                baseline_measured = sod
                nadir_sod = sod
                continue
            tl, nt, nl, overall = recist(values[k_done], is_node, baseline_measured, nadir_sod, statuses, new_lesion)
            nadir_sod = min(nadir_sod, sod)
            rec_tl, rec_ov = tl, overall
            if overall != "PD" and discord_u[k_done] < p.investigator_discordance_rate:
                # Investigator reads the scan differently (never about progression, which would end
                # treatment and change the whole timeline).
                swap = {"CR": "PR", "PR": "SD", "SD": "PR"}
                rec_ov = swap[overall]
                rec_tl = rec_ov
                discord_rows.append((subj, visit, abs_day, tl, overall, rec_tl, rec_ov))
            rs_rows.append((subj, visit, abs_day, rec_tl, nt, nl, rec_ov))
            if overall == "PD":
                observed_pd[i] = day
                break

    tr = pd.DataFrame(tr_rows, columns=list(TR_COLUMNS))
    rs = pd.DataFrame(rs_rows, columns=list(RS_COLUMNS))
    visits = pd.DataFrame(visit_rows, columns=["SUBJID", "VISIT", "nominal_day", "actual_day", "status"])
    discordance = pd.DataFrame(
        discord_rows,
        columns=["SUBJID", "VISIT", "day", "derived_tl", "derived_overall", "recorded_tl", "recorded_overall"],
    )
    return TumourResult(tr, rs, visits, discordance, observed_pd, modes, growth_start, growth_rate, base_sod, methods)
