"""The patients: baseline covariates, stratified block randomisation and latent event times.

All times are days from the patient's randomisation (day 0); ``rand_day`` places that day on the trial
calendar (days from ``start_date``). Event times are drawn first and everything observable (scans,
treatment, deaths in the CRF) is derived from them, never the other way round.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.simulation import catalogues
from analysis.simulation.params import SimulationParams

AETIOLOGIES = ("HBV", "HCV", "ALCOHOL", "NASH", "OTHER")
AETIOLOGY_P = (0.80, 0.05, 0.07, 0.03, 0.05)
BLOCK_SIZES = (4, 6)


def albi(bilirubin_umol_l: np.ndarray, albumin_g_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ALBI score and grade (Johnson et al. 2015): grade 1 <= -2.60 < grade 2 <= -1.39 < grade 3."""
    score = 0.66 * np.log10(bilirubin_umol_l) - 0.085 * albumin_g_l
    grade = np.where(score <= -2.60, 1, np.where(score <= -1.39, 2, 3))
    return score, grade


def block_randomise(strata: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[str], pd.DataFrame]:
    """Permuted blocks of 4 or 6 within each stratum, numbers pre-printed per stratum ("1xxxx", "2xxxx").

    Returns the RANDNO and arm of each patient (in enrolment order) and the full randomisation list, which
    like a real pre-generated list also holds the unused numbers of each stratum's last block.
    """
    randno = [""] * len(strata)
    arm = [""] * len(strata)
    rows: list[tuple[str, str]] = []
    for s_index, stratum in enumerate(sorted(set(strata.tolist()))):
        patients = np.flatnonzero(strata == stratum)
        sequence: list[str] = []
        while len(sequence) < len(patients):
            size = int(rng.choice(BLOCK_SIZES))
            block = ["CAPSULE"] * (size // 2) + ["PLACEBO"] * (size // 2)
            sequence.extend(rng.permutation(block).tolist())
        for k, value in enumerate(sequence):
            number = f"{s_index + 1}{k + 1:04d}"
            rows.append((number, value))
            if k < len(patients):
                randno[patients[k]] = number
                arm[patients[k]] = value
    rand_list = pd.DataFrame(rows, columns=["RANDNO", "ARM"]).sort_values("RANDNO", ignore_index=True)
    return randno, arm, rand_list


def simulate_cohort(p: SimulationParams, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per patient with every latent value, and the randomisation list."""
    n = p.n_patients
    # Staggered enrolment: uniform over the enrolment window, patients numbered in enrolment order.
    rand_day = np.sort(rng.integers(0, p.enrolment_days + 1, size=n))
    consent_offset = rng.integers(7, 29, size=n)  # informed consent 1-4 weeks before randomisation
    screening_offset = np.minimum(consent_offset, rng.integers(2, 15, size=n))
    c1d1 = rng.integers(0, 4, size=n)

    sex = np.where(rng.random(n) < 0.84, "M", "F")
    male = sex == "M"
    age = np.clip(np.round(rng.normal(57, 10, n)), 30, 80).astype(int)
    weight = np.where(male, rng.normal(66, 9, n), rng.normal(56, 8, n))
    weight = np.clip(np.round(weight, 1), 38.0, 105.0)
    # A few patients weigh exactly the band limit: the "<= 60 kg" rule must be applied inclusively.
    weight[rng.random(n) < 0.03] = p.weight_band_kg
    height = np.clip(np.round(np.where(male, rng.normal(169, 6, n), rng.normal(158, 5, n))), 140, 195)

    bclc = np.where(rng.random(n) < 0.65, "C", "B")
    is_c = bclc == "C"
    ehs = is_c & (rng.random(n) < 0.6)
    mvi = is_c & (~ehs | (rng.random(n) < 0.4))
    aetiology = rng.choice(AETIOLOGIES, size=n, p=AETIOLOGY_P)
    ecog = np.where(rng.random(n) < 0.55, 0, 1)
    ascites = np.where(rng.random(n) < 0.85, "NONE", "MILD")
    enceph = np.where(rng.random(n) < 0.97, "NONE", "GRADE 1-2")

    albumin = np.clip(rng.normal(39.0, 4.5, n), 27.0, 50.0)
    bilirubin = np.clip(np.exp(rng.normal(np.log(14.0), 0.45, n)), 4.0, 45.0)
    albi_score, albi_grade = albi(bilirubin, albumin)
    afp = np.clip(np.exp(rng.normal(np.log(150.0), 2.2, n)), 1.0, 250000.0)
    alt = np.clip(np.exp(rng.normal(np.log(34.0), 0.4, n)), 8.0, 160.0)
    ast = np.clip(np.exp(rng.normal(np.log(40.0), 0.4, n)), 10.0, 180.0)
    platelets = np.clip(rng.normal(150.0, 50.0, n), 60.0, 420.0)
    inr = np.clip(rng.normal(1.05, 0.08, n), 0.85, 1.5)
    creatinine = np.clip(np.where(male, rng.normal(78, 14, n), rng.normal(62, 11, n)), 35.0, 130.0)

    randno, arm, rand_list = block_randomise(bclc, rng)
    capsule = np.array([a == "CAPSULE" for a in arm])

    # Proportional hazards on the PFS scale: one linear predictor multiplies both the Weibull progression
    # hazard and the exponential hazard of death without progression, so min() of the two keeps the HR.
    lp_cov = (
        np.log(p.hr_albi_grade_2plus) * (albi_grade >= 2)
        + np.log(p.hr_bclc_c) * is_c
        + np.log(p.hr_afp_400) * (afp >= 400)
        + np.log(p.hr_ecog_1) * (ecog == 1)
    )
    lp = lp_cov + np.log(p.pfs_hr_capsule) * capsule
    k = p.progression_weibull_shape
    scale = p.progression_median_ref_days / np.log(2.0) ** (1.0 / k)
    t_prog = scale * (rng.exponential(1.0, n) / np.exp(lp)) ** (1.0 / k)
    t_dwp = rng.exponential(1.0, n) / (np.log(2.0) / p.death_without_progression_median_ref_days * np.exp(lp))
    t_prog = np.maximum(t_prog, 10.0)
    t_dwp = np.maximum(t_dwp, 10.0)
    progressed_first = t_prog < t_dwp
    pps = rng.exponential(1.0, n) / (np.log(2.0) / p.post_progression_median_days * np.exp(0.5 * lp_cov))
    t_death = np.where(progressed_first, t_prog + np.maximum(pps, 5.0), t_dwp)
    prog_day = np.where(progressed_first, np.ceil(t_prog), np.inf)
    death_day = np.ceil(t_death)

    u = rng.random(n)
    dropout_type = np.where(u < p.withdrawal_rate, "WITHDRAWAL BY SUBJECT", "")
    dropout_type = np.where(
        (u >= p.withdrawal_rate) & (u < p.withdrawal_rate + p.lost_to_followup_rate), "LOST TO FOLLOW-UP", dropout_type
    )
    dropout_day = np.where(dropout_type == "", np.inf, rng.integers(30, 400, size=n).astype(float))

    cutoff_abs = int(rand_day.max()) + p.followup_days_after_lpi
    cutoff_rel = (cutoff_abs - rand_day).astype(float)

    pfs_latent = np.minimum(np.ceil(t_prog), np.ceil(t_dwp))
    censor = np.minimum(dropout_day, cutoff_rel)
    pfs_event = pfs_latent <= censor
    pfs_days = np.minimum(pfs_latent, censor)
    os_event = death_day <= censor
    os_days = np.minimum(death_day, censor)

    # Response: patients who progress before the second scan cannot respond; longer control, likelier PR.
    logit = (
        p.responder_logit_placebo
        + p.responder_logit_capsule_shift * capsule
        + 0.5 * np.log(np.minimum(t_prog, 720.0) / 180.0)
        - 0.3 * (afp >= 400)
    )
    responder = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))) & (t_prog >= 84)
    complete = responder & (rng.random(n) < p.complete_response_share)
    nadir = np.where(responder, rng.uniform(0.30, 0.62, n), rng.uniform(0.80, 1.06, n))
    nadir = np.where(complete, 0.0, nadir)
    tau = rng.uniform(25.0, 60.0, n)

    ids = np.arange(1, n + 1)
    surname = rng.choice(catalogues.SURNAMES, size=n)
    given_m = rng.choice(catalogues.GIVEN_NAMES_M, size=n)
    given_f = rng.choice(catalogues.GIVEN_NAMES_F, size=n)
    given = np.where(male, given_m, given_f)
    mrn = 10_000_000 + rng.choice(90_000_000, size=n, replace=False)
    birth_offset = age * 365 + rng.integers(0, 365, size=n)  # days before consent

    df = pd.DataFrame(
        {
            "SUBJID": [f"{p.site_id}-{i:04d}" for i in ids],
            "RANDNO": randno,
            "arm": arm,
            "rand_day": rand_day,
            "consent_offset": consent_offset,
            "screening_offset": screening_offset,
            "c1d1_offset": c1d1,
            "sex": sex,
            "age": age,
            "birth_offset": birth_offset,
            "name": [f"{s} {g}" for s, g in zip(surname, given, strict=True)],
            "initials": [f"{s[0]}{g[0]}".upper() for s, g in zip(surname, given, strict=True)],
            "mrn": mrn.astype(str),
            "weight_kg": weight,
            "height_cm": height,
            "bclc": bclc,
            "mvi": np.where(mvi, "Y", "N"),
            "ehs": np.where(ehs, "Y", "N"),
            "aetiology": aetiology,
            "ecog": ecog,
            "ascites": ascites,
            "enceph": enceph,
            "albumin_g_l": np.round(albumin, 1),
            "bilirubin_umol_l": np.round(bilirubin, 1),
            "albi_score": np.round(albi_score, 3),
            "albi_grade": albi_grade,
            "afp_ng_ml": np.round(afp, 1),
            "alt_u_l": np.round(alt),
            "ast_u_l": np.round(ast),
            "platelets_10e9_l": np.round(platelets),
            "inr": np.round(inr, 2),
            "creatinine_umol_l": np.round(creatinine),
            "linear_predictor": np.round(lp, 4),
            "true_progression_day": prog_day,
            "true_death_day": death_day,
            "death_without_progression": ~progressed_first,
            "dropout_type": dropout_type,
            "dropout_day": dropout_day,
            "cutoff_day": cutoff_rel,
            "true_pfs_days": pfs_days,
            "pfs_event": pfs_event.astype(int),
            "true_os_days": os_days,
            "os_event": os_event.astype(int),
            "responder": responder,
            "complete_response": complete,
            "nadir_fraction": np.round(nadir, 4),
            "shrink_tau_days": np.round(tau, 2),
        }
    )
    # Observation ends at death, dropout or data cut-off, whichever is first (days from randomisation).
    df["obs_end_day"] = np.minimum(np.minimum(df["true_death_day"], df["dropout_day"]), df["cutoff_day"])
    return df, rand_list
