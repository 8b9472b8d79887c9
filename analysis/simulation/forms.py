"""The remaining CRF forms (dm, rand, bl, vs, lb, qs, cm, ds, bs) and the specimen lists the omics
simulators use.

Every form is returned as a frame of strings with exactly the contract's columns, dates already in ISO
8601 and rows sorted; the CRF mess (partial dates, missing markers, ...) is added later by ``mess``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.simulation._io import iso_dates
from analysis.simulation.catalogues import SUBSEQUENT_THERAPIES
from analysis.simulation.params import SimulationParams
from analysis.simulation.treatment import Episode, TreatmentResult
from analysis.simulation.tumour import TumourResult, burden_ratio

#: Upper limits of normal in SI units (used to place AE-driven lab excursions).
ULN = {"ALT": 40.0, "AST": 40.0, "BILI": 20.5}
AFP_NG_PER_IU = 1.21
AFP_LLOQ_NG_ML = 2.0
BILI_UMOL_PER_MG_DL = 17.1
LAB_SI_UNITS = {
    "ALT": "U/L", "AST": "U/L", "BILI": "umol/L", "ALB": "g/L", "PLAT": "10^9/L", "INR": "", "AFP": "ng/mL",
    "CREAT": "umol/L",
}  # fmt: skip
_ALT_GRADE_X_ULN = {1: 2.0, 2: 4.0, 3: 8.0, 4: 25.0}
_BILI_GRADE_X_ULN = {1: 1.3, 2: 2.2, 3: 4.5, 4: 12.0}
_PLAT_BY_GRADE = {1: 95.0, 2: 62.0, 3: 38.0, 4: 18.0}
QLQ_ITEMS = tuple(f"QLQ{i:02d}" for i in range(1, 31))


@dataclass
class Specimens:
    """Faecal and serum specimens actually collected (one row per specimen, sorted by barcode)."""

    faeces: pd.DataFrame
    serum: pd.DataFrame
    #: A barcode in no biospecimen log row: given to one sequenced sample (the orphan).
    orphan_barcode: str


def _dates(origin: np.datetime64, days: list[float] | np.ndarray) -> np.ndarray:
    return iso_dates(origin, np.asarray(days, dtype=float))


def build_dm_rand_bl(cohort: pd.DataFrame, p: SimulationParams, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    origin = np.datetime64(p.start_date)
    rand = cohort["rand_day"].to_numpy()
    consent = rand - cohort["consent_offset"].to_numpy()
    keys = {"SUBJID": cohort["SUBJID"]}
    dm = pd.DataFrame(
        {
            **keys,
            "MRN": cohort["mrn"],
            "PATNAME": cohort["name"],
            "INITIALS": cohort["initials"],
            "BRTHDTC": _dates(origin, consent - cohort["birth_offset"].to_numpy()),
            "SEX": cohort["sex"],
            "RFICDTC": _dates(origin, consent),
            "ETHNIC": np.where(rng.random(len(cohort)) < 0.93, "HAN CHINESE", "OTHER"),
        }
    )
    rnd = pd.DataFrame(
        {
            **keys,
            "RANDNO": cohort["RANDNO"],
            "RANDDTC": _dates(origin, rand),
            "RANDSTRAT": "BCLC " + cohort["bclc"],
        }
    )
    bl = pd.DataFrame(
        {
            **keys,
            "VISIT": "SCREENING",
            "DIAGDTC": _dates(origin, consent - rng.integers(14, 400, size=len(cohort))),
            "BCLC": cohort["bclc"],
            "AETIOL": cohort["aetiology"],
            "ECOG": cohort["ecog"].astype(str),
            "ASCITES": cohort["ascites"],
            "ENCEPH": cohort["enceph"],
            "MVI": cohort["mvi"],
            "EHS": cohort["ehs"],
        }
    )
    return {"dm": dm, "rand": rnd, "bl": bl}


def _cycle_days(c1d1: int, n_cycles: int, cycle: int) -> np.ndarray:
    return c1d1 + cycle * np.arange(n_cycles)


def build_vs_lb_qs(
    cohort: pd.DataFrame,
    tumour: TumourResult,
    treatment: TreatmentResult,
    p: SimulationParams,
    rng: np.random.Generator,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Vital signs, labs (as the local lab reports them) and QLQ-C30, plus the true lab values (SI)."""
    vs_rows: list[tuple] = []
    lb_rows: list[tuple] = []
    lb_truth: list[tuple] = []
    qs_rows: list[tuple] = []
    change_day = (p.bilirubin_unit_change_date - p.start_date).days
    item_offset = np.linspace(-0.6, 0.8, 28)[rng.permutation(28)]
    afp_in_iu = rng.random(len(cohort)) < 0.2  # some patients' AFP comes from a lab reporting IU/mL
    external_screen = rng.random(len(cohort)) < 0.3  # referral-hospital screening labs: albumin in g/dL

    for i, row in enumerate(cohort.itertuples(index=False)):
        subj, rday, c1d1 = row.SUBJID, int(row.rand_day), int(row.c1d1_offset)
        screen = -int(row.screening_offset)
        cyc = _cycle_days(c1d1, int(treatment.n_cycles[i]), p.cycle_days)
        episodes: list[Episode] = treatment.episodes[i]
        t_prog = row.true_progression_day

        # ---- vital signs: weight every cycle, height once
        lost = any(ep.term.decod == "Weight loss" for ep in episodes)
        slope = -1.5 if lost else rng.normal(-0.2, 0.4)
        vs_rows.append((subj, "SCREENING", rday + screen, "HEIGHT", f"{row.height_cm:.0f}", "cm"))
        vs_rows.append((subj, "SCREENING", rday + screen, "WEIGHT", f"{row.weight_kg:.1f}", "kg"))
        weights = row.weight_kg + slope * np.maximum(cyc, 0) / 100.0 + rng.normal(0, 0.4, len(cyc))
        for k, (day, wt) in enumerate(zip(cyc, weights, strict=True), start=1):
            vs_rows.append((subj, f"CYCLE {k} DAY 1", rday + day, "WEIGHT", f"{max(wt, 30.0):.1f}", "kg"))

        # ---- labs at screening and day 1 of every cycle from cycle 2
        days = np.concatenate([[screen], cyc[1:]]).astype(float)
        visits = ["SCREENING"] + [f"CYCLE {k} DAY 1" for k in range(2, len(cyc) + 1)]
        m = len(days)
        ratio = burden_ratio(
            row.nadir_fraction, row.shrink_tau_days, tumour.growth_start_day[i], tumour.growth_rate[i], days
        )
        after_prog = np.maximum(0.0, days - t_prog) if np.isfinite(t_prog) else np.zeros(m)
        true = {
            "ALT": row.alt_u_l * np.exp(rng.normal(0, 0.15, m)),
            "AST": row.ast_u_l * np.exp(rng.normal(0, 0.15, m)),
            "BILI": row.bilirubin_umol_l * np.exp(rng.normal(0, 0.12, m)) * (1 + 0.004 * after_prog),
            "ALB": row.albumin_g_l - 0.004 * np.maximum(days, 0) - 0.01 * after_prog + rng.normal(0, 1.0, m),
            "PLAT": row.platelets_10e9_l * np.exp(rng.normal(0, 0.1, m)),
            "INR": row.inr + rng.normal(0, 0.04, m),
            "AFP": row.afp_ng_ml * ratio**1.5 * np.exp(rng.normal(0, 0.2, m)),
            "CREAT": row.creatinine_umol_l * np.exp(rng.normal(0, 0.07, m)),
        }
        true["ALT"][0], true["AST"][0] = row.alt_u_l, row.ast_u_l
        true["BILI"][0], true["ALB"][0] = row.bilirubin_umol_l, row.albumin_g_l
        true["AFP"][0], true["PLAT"][0] = row.afp_ng_ml, row.platelets_10e9_l
        for ep in episodes:
            active = (days >= ep.onset) & (days <= ep.end)
            if not active.any() or ep.grade > 4:
                continue
            level = rng.uniform(0.9, 1.3)
            decod = ep.term.decod
            if decod in ("Alanine aminotransferase increased", "Immune-mediated hepatitis"):
                true["ALT"][active] = np.maximum(true["ALT"][active], _ALT_GRADE_X_ULN[ep.grade] * ULN["ALT"] * level)
            if decod in ("Aspartate aminotransferase increased", "Immune-mediated hepatitis"):
                true["AST"][active] = np.maximum(true["AST"][active], _ALT_GRADE_X_ULN[ep.grade] * ULN["AST"] * level)
            if decod == "Blood bilirubin increased":
                bili = _BILI_GRADE_X_ULN[ep.grade] * ULN["BILI"] * level
                true["BILI"][active] = np.maximum(true["BILI"][active], bili)
            if decod == "Platelet count decreased":
                true["PLAT"][active] = np.minimum(true["PLAT"][active], _PLAT_BY_GRADE[ep.grade] * level)
        true["ALB"] = np.clip(true["ALB"], 18.0, 55.0)
        true["INR"] = np.clip(true["INR"], 0.8, 3.0)
        male = row.sex == "M"
        # Python floats from here on: formatting numpy scalars one by one is several times slower.
        tv = {test: values.tolist() for test, values in true.items()}
        in_iu, ext = bool(afp_in_iu[i]), bool(external_screen[i])
        for j, (day, visit) in enumerate(zip(days.tolist(), visits, strict=True)):
            abs_day = rday + day
            bili_mg = abs_day < change_day
            alb_dl = ext and visit == "SCREENING"
            afp = tv["AFP"][j]
            if in_iu:
                afp_txt, afp_u, afp_hi = f"{afp / AFP_NG_PER_IU:.1f}", "IU/mL", "5.8"
            else:
                afp_txt, afp_u, afp_hi = f"{afp:.1f}", "ng/mL", "7.0"
            if afp < AFP_LLOQ_NG_ML:
                afp_txt = "<1.7" if in_iu else "<2.0"
            reported = (
                ("ALT", f"{tv['ALT'][j]:.0f}", "U/L", "9" if male else "7", "50" if male else "40"),
                ("AST", f"{tv['AST'][j]:.0f}", "U/L", "15" if male else "13", "40" if male else "35"),
                ("BILI", f"{tv['BILI'][j] / BILI_UMOL_PER_MG_DL:.2f}", "mg/dL", "0.20", "1.20")
                if bili_mg
                else ("BILI", f"{tv['BILI'][j]:.1f}", "umol/L", "3.4", "20.5"),
                ("ALB", f"{tv['ALB'][j] / 10:.1f}", "g/dL", "3.5", "5.0")
                if alb_dl
                else ("ALB", f"{tv['ALB'][j]:.1f}", "g/L", "40.0", "55.0"),
                ("PLAT", f"{tv['PLAT'][j]:.0f}", "10^9/L", "125", "350"),
                ("INR", f"{tv['INR'][j]:.2f}", "", "0.80", "1.20"),
                ("AFP", afp_txt, afp_u, "0.0", afp_hi),
                ("CREAT", f"{tv['CREAT'][j]:.0f}", "umol/L", "57" if male else "41", "111" if male else "81"),
            )
            for test, value, unit, lo, hi in reported:
                lb_rows.append((subj, visit, abs_day, test, value, unit, lo, hi))
                lb_truth.append((subj, visit, abs_day, test, round(tv[test][j], 4), LAB_SI_UNITS[test]))

        # ---- EORTC QLQ-C30 at screening and every second cycle (3, 5, 7, ...)
        qdays = [screen] + [int(d) for k, d in enumerate(cyc, start=1) if k >= 3 and k % 2 == 1]
        qvisits = ["SCREENING"] + [f"CYCLE {k} DAY 1" for k in range(3, len(cyc) + 1, 2)]
        h0 = rng.normal(0, 1)
        for day, visit in zip(qdays, qvisits, strict=True):
            if visit != "SCREENING" and rng.random() < 0.06:
                continue  # questionnaire not returned
            active = sum(1 for ep in episodes if ep.grade >= 2 and ep.onset <= day <= ep.end)
            h = h0 - 0.8 * (np.isfinite(t_prog) and day >= t_prog) - 0.25 * active + rng.normal(0, 0.3)
            latent = -0.8 * h + item_offset + rng.normal(0, 0.8, 28)
            scores = 1 + (latent > 0.5).astype(int) + (latent > 1.5) + (latent > 2.5)
            glob = np.clip(np.round(4.8 + 0.9 * h + rng.normal(0, 0.6, 2)), 1, 7).astype(int)
            answers = [str(x) for x in [*scores.tolist(), *glob.tolist()]]
            qs_rows.extend((subj, visit, rday + day, code, a) for code, a in zip(QLQ_ITEMS, answers, strict=True))

    origin = np.datetime64(p.start_date)
    vs = pd.DataFrame(vs_rows, columns=["SUBJID", "VISIT", "day", "VSTESTCD", "VSORRES", "VSORRESU"])
    vs.insert(2, "VSDTC", _dates(origin, vs.pop("day").to_numpy()))
    lb = pd.DataFrame(
        lb_rows, columns=["SUBJID", "VISIT", "day", "LBTESTCD", "LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI"]
    )
    lb.insert(2, "LBDTC", _dates(origin, lb.pop("day").to_numpy()))
    qs = pd.DataFrame(qs_rows, columns=["SUBJID", "VISIT", "day", "QSTESTCD", "QSORRES"])
    qs.insert(2, "QSDTC", _dates(origin, qs.pop("day").to_numpy()))
    truth = pd.DataFrame(lb_truth, columns=["SUBJID", "VISIT", "day", "LBTESTCD", "true_value", "si_unit"])
    truth.insert(2, "LBDTC", _dates(origin, truth.pop("day").to_numpy()))
    return {"vs": vs, "lb": lb, "qs": qs}, truth


def build_cm_ds(
    cohort: pd.DataFrame,
    tumour: TumourResult,
    treatment: TreatmentResult,
    p: SimulationParams,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    cm_rows: list[tuple] = []
    ds_rows: list[tuple] = []
    last_scan = tumour.visits.groupby("SUBJID")["actual_day"].max()
    for i, row in enumerate(cohort.itertuples(index=False)):
        subj, rday = row.SUBJID, int(row.rand_day)
        obs_end = row.obs_end_day
        pd_day = tumour.observed_pd_day[i]
        last_activity = float(max(treatment.eot_day[i], last_scan.get(subj, 0.0)))
        if np.isfinite(pd_day) and obs_end - pd_day > 20 and rng.random() < 0.55:
            day = pd_day + float(rng.integers(14, 61))
            therapies = rng.permutation(SUBSEQUENT_THERAPIES)
            line = 0
            while day < obs_end and line < 2:
                cm_rows.append((subj, str(therapies[line]), "SUBSEQUENT ANTI-CANCER THERAPY", rday + day))
                last_activity = max(last_activity, day)
                line += 1
                day += float(rng.integers(60, 200))
                if rng.random() > 0.25:
                    break

        eot = int(treatment.eot_day[i])
        reason = treatment.eot_reason[i]
        if reason == "ONGOING":
            ds_rows.append((subj, "END OF TREATMENT", "ONGOING", rday + row.cutoff_day, "ONGOING AT DATA CUT-OFF"))
        else:
            ds_rows.append((subj, "END OF TREATMENT", reason, rday + eot, ""))
        death_seen = row.true_death_day <= min(row.dropout_day, row.cutoff_day)
        if death_seen:
            fatal_ae = any(ep.grade == 5 for ep in treatment.episodes[i])
            cause = (
                "HEPATIC FAILURE"
                if fatal_ae
                else ("DISEASE PROGRESSION" if not row.death_without_progression else "OTHER")
            )
            ds_rows.append((subj, "END OF STUDY", "DEATH", rday + row.true_death_day, ""))
            ds_rows.append((subj, "DEATH", "DEATH", rday + row.true_death_day, cause))
        elif row.dropout_day <= row.cutoff_day:
            ds_rows.append((subj, "END OF STUDY", row.dropout_type, rday + row.dropout_day, ""))
            ds_rows.append((subj, "LAST CONTACT", "ALIVE", rday + row.dropout_day, ""))
        else:
            ds_rows.append((subj, "END OF STUDY", "COMPLETED", rday + row.cutoff_day, ""))
            contact = max(last_activity, row.cutoff_day - float(rng.integers(0, 46)))
            ds_rows.append((subj, "LAST CONTACT", "ALIVE", rday + min(contact, row.cutoff_day), ""))

    origin = np.datetime64(p.start_date)
    cm = pd.DataFrame(cm_rows, columns=["SUBJID", "CMTRT", "CMCAT", "day"])
    cm["CMSTDTC"] = _dates(origin, cm.pop("day").to_numpy())
    ds = pd.DataFrame(ds_rows, columns=["SUBJID", "DSCAT", "DSDECOD", "day", "DSTERM"])
    ds.insert(3, "DSSTDTC", _dates(origin, ds.pop("day").to_numpy()))
    return {"cm": cm, "ds": ds}


def build_specimens(
    cohort: pd.DataFrame,
    tumour: TumourResult,
    treatment: TreatmentResult,
    p: SimulationParams,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, Specimens]:
    """The biospecimen log (form ``bs``) and the specimen lists used by the omics simulators.

    ``timepoint`` says how much capsule exposure a specimen reflects: ``baseline``, ``1``..``4`` (end of
    that course) or ``post`` (after the courses); it drives the true arm-by-time effects.
    """
    rows: list[tuple] = []
    cyc = p.cycle_days
    for i, row in enumerate(cohort.itertuples(index=False)):
        subj, obs_end = row.SUBJID, row.obs_end_day
        c1d1 = int(row.c1d1_offset)
        received = int(treatment.courses_received[i])
        planned: list[tuple[str, float, str, str]] = [
            ("FAECES", -float(rng.integers(1, int(row.screening_offset) + 1)), "SCREENING", "baseline"),
            ("SERUM", -float(row.screening_offset), "SCREENING", "baseline"),
        ]
        for k in range(1, received + 1):
            planned.append(("FAECES", c1d1 + cyc * (k - 1) + p.capsule_days_per_course, f"COURSE {k} END", str(k)))
        if p.faecal_samples_per_patient is not None:
            course4_end = c1d1 + cyc * (p.capsule_courses - 1) + p.capsule_days_per_course
            for j in range(1, p.faecal_samples_per_patient - p.capsule_courses):
                planned.append(("FAECES", course4_end + cyc * j, f"FOLLOW-UP {j}", "post"))
        pd_day = tumour.observed_pd_day[i]
        if np.isfinite(pd_day):
            last_course_end = c1d1 + cyc * (received - 1) + p.capsule_days_per_course if received else -1
            if received == 0:
                tp = "baseline"
            elif received == p.capsule_courses and pd_day > last_course_end + cyc:
                tp = "post"
            else:
                tp = str(received)
            planned.append(("FAECES", pd_day + float(rng.integers(0, 8)), "PROGRESSION", tp))
        for k in range(3, int(treatment.n_cycles[i]) + 1, 2):
            done = min(k - 1, received)
            tp = "post" if k - 1 > p.capsule_courses + 1 else (str(done) if done else "baseline")
            planned.append(("SERUM", c1d1 + cyc * (k - 1), f"CYCLE {k} DAY 1", tp))
        for matrix, day, visit, tp in planned:
            if day < obs_end and rng.random() >= p.specimen_missed_rate:
                rows.append((subj, i, visit, int(row.rand_day + day), matrix, tp))

    spec = pd.DataFrame(rows, columns=["SUBJID", "patient_index", "VISIT", "day", "BSSPEC", "timepoint"])
    spec = spec.sort_values(["SUBJID", "day", "BSSPEC"], kind="stable", ignore_index=True)
    numbers = 10_000_000 + rng.choice(90_000_000, size=len(spec) + 1, replace=False)
    spec["BSREFID"] = [f"HG{x}" for x in numbers[:-1]]
    orphan = f"HG{numbers[-1]}"
    origin = np.datetime64(p.start_date)
    spec["BSDTC"] = _dates(origin, spec["day"].to_numpy())
    bs = spec.loc[:, ["SUBJID", "VISIT", "BSREFID", "BSSPEC", "BSDTC"]].copy()
    arm = cohort["arm"].to_numpy()
    responder = cohort["responder"].to_numpy()
    spec["arm"] = arm[spec["patient_index"].to_numpy()]
    spec["responder"] = responder[spec["patient_index"].to_numpy()]
    faeces = spec[spec["BSSPEC"] == "FAECES"].reset_index(drop=True)
    serum = spec[spec["BSSPEC"] == "SERUM"].reset_index(drop=True)
    return bs, Specimens(faeces, serum, orphan)
