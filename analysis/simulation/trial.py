"""``generate_trial``: write a complete, seeded demo trial (landing exports, randomisation list, truth).

Layout written under ``out_dir``::

    landing/crf/<form>.csv[.gz]                       CRF exports (lb and qs gzipped)
    landing/sequencing/SEQnn/...                      one feature-table format per batch + manifest.csv
    landing/metabolomics/MTB{F,S}nn/features.csv      wide feature table + injections.csv
    unblinding/randomisation_list.csv                 RANDNO, ARM (restricted; never in landing)
    truth/...                                         generating parameters and latent values

The same seed gives byte-identical files. Streams of random numbers are separate per component, so e.g.
changing ``n_asvs`` leaves the clinical data of a seed unchanged.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import contract
from analysis.simulation import catalogues as cat
from analysis.simulation import mess
from analysis.simulation._io import iso_dates, write_csv, write_text
from analysis.simulation.cohort import simulate_cohort
from analysis.simulation.forms import build_cm_ds, build_dm_rand_bl, build_specimens, build_vs_lb_qs
from analysis.simulation.metabolomics import differential_metabolites_table, simulate_matrix
from analysis.simulation.microbiome import SEQ_FORMATS, simulate_sequencing
from analysis.simulation.params import SimulationParams, TrialSummary, rng_for
from analysis.simulation.treatment import TreatmentResult, simulate_treatment
from analysis.simulation.tumour import TumourResult, simulate_tumour

#: CRF forms delivered gzipped (the contract allows any file to arrive as ``<name>.gz``).
GZIPPED_FORMS = ("lb", "qs")
OWNED_SUBDIRS = ("landing", "truth", "unblinding")


def crf_file_name(form: str) -> str:
    return f"{form}.csv.gz" if form in GZIPPED_FORMS else f"{form}.csv"


def _to_dates(origin: np.datetime64, values: pd.Series) -> np.ndarray:
    return iso_dates(origin, values.to_numpy(dtype=float))


def _finalise(form: str, df: pd.DataFrame, site_id: str) -> pd.DataFrame:
    """Add the key columns and check the form has every contract column."""
    spec = contract.CRF_FORMS[form]
    df = df.copy()
    df["STUDYID"] = contract.STUDY_ID
    df["SITEID"] = site_id
    for column in spec.columns:
        if column not in df.columns:
            raise KeyError(f"simulator does not produce {form}.{column}")
    return df


def _inject_mess(forms: dict[str, pd.DataFrame], p: SimulationParams, rng: np.random.Generator,
                 log: mess.MessLog) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Add the CRF mess the pipeline must clean, logging every cell (see ``mess``).

    The screening weight is never blanked: the lenvatinib dose band is checked against it, and a dose that
    cannot be checked is not the mess we want to test there.
    """
    pr, mm, cf, dup = p.partial_date_rate, p.missing_marker_rate, p.code_format_mess_rate, p.duplicate_row_rate
    f = {k: mess.add_rid(v) for k, v in forms.items()}
    mess.partial_dates(f["dm"], "dm", "BRTHDTC", 3 * pr, rng, log)
    mess.code_format(f["dm"], "dm", "SEX", cf, rng, log)
    mess.code_format(f["bl"], "bl", "AETIOL", 2 * cf, rng, log)
    mess.code_format(f["bl"], "bl", "ASCITES", cf, rng, log)
    mess.code_format(f["bl"], "bl", "MVI", cf, rng, log)
    mess.missing_markers(f["vs"], "vs", "VSORRES", mm, rng, log, mask=(f["vs"]["VISIT"] != "SCREENING").to_numpy())
    mess.code_format(f["ex"], "ex", "EXTRT", cf / 2, rng, log)
    mess.code_format(f["tr"], "tr", "TRCAT", cf / 2, rng, log)
    mess.missing_markers(f["tr"], "tr", "TRVIABDIAM", 2 * mm, rng, log, markers=("ND", "NA"))
    mess.code_format(f["rs"], "rs", "RSOVRLRESP", cf, rng, log)
    mess.partial_dates(f["ae"], "ae", "AESTDTC", pr, rng, log)
    mess.partial_dates(f["ae"], "ae", "AEENDTC", pr, rng, log)
    mess.code_format(f["ae"], "ae", "AESER", cf, rng, log)
    mess.code_format(f["ae"], "ae", "AEIRAE", cf, rng, log)
    lb = f["lb"]
    censored = lb["LBORRES"].str.startswith("<").to_numpy()
    note = "AFP under the lower limit of quantification; true value in truth/lab_values.csv.gz"
    for rid, subj, value in zip(lb["_rid"][censored], lb["SUBJID"][censored], lb["LBORRES"][censored], strict=True):
        log.add("below_lloq", "lb", rid, subj, "LBORRES", "", value, note)
    mess.missing_markers(lb, "lb", "LBORRES", mm, rng, log, mask=~censored)
    mess.code_format(lb, "lb", "LBTESTCD", cf / 4, rng, log)
    mess.missing_markers(f["qs"], "qs", "QSORRES", 0.02, rng, log, markers=("",), kind="missing_item")
    mess.partial_dates(f["cm"], "cm", "CMSTDTC", 5 * pr, rng, log)
    mess.code_format(f["ds"], "ds", "DSCAT", cf, rng, log)
    mess.code_format(f["bs"], "bs", "BSSPEC", cf / 2, rng, log)
    for form, rate in (("vs", dup), ("ae", 2 * dup), ("lb", dup), ("qs", dup / 2)):
        f[form] = mess.duplicates(f[form], form, rate, rng, log)
    return f


def _check_out_dir(out: Path, overwrite: bool) -> None:
    existing = [out / d for d in OWNED_SUBDIRS if (out / d).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds a generated trial ({', '.join(d.name for d in existing)}); "
            "pass overwrite=True (CLI: --overwrite) to replace it"
        )
    for d in existing:
        shutil.rmtree(d)


def generate_trial(
    out_dir: Path | str,
    n_patients: int = 120,
    seed: int = 20240501,
    *,
    start_date: date = date(2024, 3, 1),
    n_asvs: int | None = None,
    faecal_samples_per_patient: int | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> TrialSummary:
    """Simulate the trial and write ``landing/``, ``unblinding/`` and ``truth/`` under ``out_dir``.

    ``n_asvs`` and ``faecal_samples_per_patient`` scale the microbiome for benchmarks; any other field of
    :class:`SimulationParams` can be overridden by keyword (e.g. ``n_faecal_features=50``).
    """
    p = SimulationParams(n_patients=n_patients, seed=seed, start_date=start_date)
    extra: dict[str, Any] = dict(overrides)
    if n_asvs is not None:
        extra["n_asvs"] = n_asvs
    if faecal_samples_per_patient is not None:
        extra["faecal_samples_per_patient"] = faecal_samples_per_patient
    p = replace(p, **extra)
    if p.n_patients < 2:
        raise ValueError("n_patients must be at least 2 (one per arm)")
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    landing, truth, unblinding = out / "landing", out / "truth", out / "unblinding"
    for d in (landing / "crf", truth, unblinding):
        d.mkdir(parents=True, exist_ok=True)
    origin = np.datetime64(p.start_date)

    # ---- clinical simulation
    cohort, rand_list = simulate_cohort(p, rng_for(seed, "cohort"))
    tumour = simulate_tumour(cohort, p, rng_for(seed, "tumour"))
    treatment = simulate_treatment(cohort, tumour.observed_pd_day, p, rng_for(seed, "treatment"))
    forms: dict[str, pd.DataFrame] = {}
    forms.update(build_dm_rand_bl(cohort, p, rng_for(seed, "baseline")))
    vlq, lab_truth = build_vs_lb_qs(cohort, tumour, treatment, p, rng_for(seed, "labs"))
    forms.update(vlq)
    forms.update(build_cm_ds(cohort, tumour, treatment, p, rng_for(seed, "disposition")))
    bs, specimens = build_specimens(cohort, tumour, treatment, p, rng_for(seed, "specimens"))
    forms["bs"] = bs

    tr = tumour.tr.copy()
    tr.insert(2, "TRDTC", _to_dates(origin, tr.pop("day")))
    forms["tr"] = tr
    rs = tumour.rs.copy()
    rs.insert(2, "RSDTC", _to_dates(origin, rs.pop("day")))
    forms["rs"] = rs
    ae = treatment.ae.copy()
    ae["AESTDTC"] = _to_dates(origin, ae.pop("st_day"))
    ae["AEENDTC"] = _to_dates(origin, ae.pop("en_day"))
    forms["ae"] = ae
    ex = treatment.ex.copy()
    ex["EXSTDTC"] = _to_dates(origin, ex.pop("st_day"))
    ex["EXENDTC"] = _to_dates(origin, ex.pop("en_day"))
    ex = ex.sort_values(["SUBJID", "EXSTDTC", "EXTRT"], kind="stable", ignore_index=True)
    forms["ex"] = ex

    # ---- CRF mess, then write
    log = mess.MessLog()
    forms = _inject_mess(forms, p, rng_for(seed, "mess"), log)
    line_of: dict[str, dict[int, int]] = {}
    file_of: dict[str, str] = {}
    crf_rows: dict[str, int] = {}
    for form in sorted(contract.CRF_FORMS):
        df = _finalise(form, forms[form], p.site_id)
        line_of[form] = mess.line_numbers(df)
        name = crf_file_name(form)
        file_of[form] = f"landing/crf/{name}"
        write_csv(df.loc[:, list(contract.CRF_FORMS[form].columns)], landing / "crf" / name)
        crf_rows[form] = len(df)

    # ---- omics
    seq = simulate_sequencing(
        landing, truth, specimens.faeces, specimens.orphan_barcode, len(cohort), p, rng_for(seed, "microbiome")
    )
    mtb_feats, mtb_drift, mtb_batches, n_inj, mtb_nf, diff_mtb = [], [], [], 0, {}, []
    for matrix, nfeat, spec in (
        ("FAECES", p.n_faecal_features, specimens.faeces),
        ("SERUM", p.n_serum_features, specimens.serum),
    ):
        res, feats, drift = simulate_matrix(
            landing, matrix, spec, nfeat, len(cohort), p, rng_for(seed, f"metabolomics-{matrix}")
        )
        mtb_batches += res.batches
        n_inj += res.n_injections
        mtb_nf[matrix] = len(feats)
        mtb_feats.append(feats.assign(matrix=matrix))
        mtb_drift.append(drift)
        diff_mtb.append(differential_metabolites_table(feats, matrix))

    # ---- unblinding list (restricted location, outside landing)
    write_csv(rand_list, unblinding / "randomisation_list.csv")

    # ---- truth
    orphan = seq.manifest[seq.manifest["orphan"]]
    for _, o in orphan.iterrows():
        note = f"sample {o['sample_id']} in {o['batch']}: barcode not in the biospecimen log"
        log.add("orphan_sequencing_sample", "sequencing", -1, "", "specimen_barcode", "", o["specimen_barcode"], note)
    file_of["sequencing"] = "landing/sequencing"
    write_csv(log.to_frame(line_of, file_of), truth / "mess.csv")
    patients = _patients_truth(cohort, tumour, treatment, p)
    write_csv(patients, truth / "patients.csv")
    visits = tumour.visits.merge(cohort[["SUBJID", "rand_day"]], on="SUBJID")
    visits["nominal_date"] = iso_dates(origin, (visits["rand_day"] + visits["nominal_day"]).to_numpy(dtype=float))
    visits["actual_date"] = iso_dates(origin, (visits["rand_day"] + visits["actual_day"]).to_numpy(dtype=float))
    write_csv(visits.drop(columns=["rand_day"]), truth / "visits.csv")
    disc = tumour.discordance.copy()
    disc.insert(2, "RSDTC", _to_dates(origin, disc.pop("day")))
    write_csv(disc, truth / "rs_discordance.csv")
    write_csv(treatment.deviations, truth / "protocol_deviations.csv")
    write_csv(lab_truth, truth / "lab_values.csv.gz")
    write_csv(pd.concat(diff_mtb, ignore_index=True), truth / "differential_metabolites.csv")
    write_csv(pd.concat(mtb_feats, ignore_index=True), truth / "metabolite_features.csv")
    write_csv(pd.concat(mtb_drift, ignore_index=True), truth / "metabolite_drift.csv.gz")
    cutoff = p.start_date + pd.Timedelta(days=int(cohort["rand_day"].max()) + p.followup_days_after_lpi)
    cutoff_date = date(cutoff.year, cutoff.month, cutoff.day)
    params: dict[str, Any] = {
        "params": p.to_json_dict(),
        "data_cutoff_date": cutoff_date.isoformat(),
        "sequencing_batches": seq.batches,
        "sequencing_formats_cycle": list(SEQ_FORMATS),
        "metabolomics_batches": mtb_batches,
        "metabolomics_drift_model": "log intensity += batch_offset_log + drift_linear*x "
        "+ drift_quadratic*(x**2 - 1/3), x = run order scaled to [-1, 1]",
        "capsule_ramp": cat.CAPSULE_RAMP,
        "capsule_genera_log2fc": {**cat.CAPSULE_GENERA_UP, **cat.CAPSULE_GENERA_DOWN},
        "responder_genera_log2fc": cat.RESPONDER_GENERA,
        "metabolite_effects_log2fc": cat.METABOLITE_EFFECTS,
        "mock_community": cat.MOCK_COMMUNITY,
        "orphan_barcode": specimens.orphan_barcode,
        "lab_units": {
            "BILI": f"mg/dL before {p.bilirubin_unit_change_date.isoformat()}, umol/L from that date (x17.1)",
            "ALB": "g/L, except g/dL at SCREENING for patients screened at a referring hospital",
            "AFP": "ng/mL for most patients, IU/mL (1 IU/mL = 1.21 ng/mL) for some; '<2.0'/'<1.7' under LLOQ",
        },
        "hazard_model": "PFS: Weibull progression and exponential death-without-progression sharing one linear "
        "predictor (log HRs: capsule, ALBI grade >= 2, BCLC C, AFP >= 400 ng/mL, ECOG 1)",
    }
    write_text(truth / "params.json", json.dumps(params, indent=2, sort_keys=True) + "\n")

    n_landing = sum(1 for f in landing.rglob("*") if f.is_file())
    return TrialSummary(
        out_dir=out,
        n_patients=len(cohort),
        n_capsule=int((cohort["arm"] == "CAPSULE").sum()),
        n_placebo=int((cohort["arm"] == "PLACEBO").sum()),
        cutoff_date=cutoff_date,
        n_landing_files=n_landing,
        n_crf_rows=crf_rows,
        n_faecal_specimens=len(specimens.faeces),
        n_serum_specimens=len(specimens.serum),
        n_sequenced_samples=len(seq.manifest),
        n_asvs=seq.n_features,
        seq_batches=seq.batches,
        n_metabolomics_injections=n_inj,
        n_faecal_features=mtb_nf["FAECES"],
        n_serum_features=mtb_nf["SERUM"],
        mtb_batches=mtb_batches,
    )


def _patients_truth(
    cohort: pd.DataFrame, tumour: TumourResult, treatment: TreatmentResult, p: SimulationParams
) -> pd.DataFrame:
    origin = np.datetime64(p.start_date)
    rand = cohort["rand_day"].to_numpy(dtype=float)

    def as_date(rel: np.ndarray) -> np.ndarray:
        rel = np.asarray(rel, dtype=float)
        return iso_dates(origin, np.where(np.isfinite(rel), rand + rel, np.nan))

    c = cohort
    out = pd.DataFrame(
        {
            "SUBJID": c["SUBJID"],
            "RANDNO": c["RANDNO"],
            "arm": c["arm"],
            "rand_date": as_date(np.zeros(len(c))),
            "c1d1_date": as_date(c["c1d1_offset"].to_numpy()),
            "sex": c["sex"],
            "age": c["age"],
            "weight_kg": c["weight_kg"],
            "height_cm": c["height_cm"],
            "bclc": c["bclc"],
            "ecog": c["ecog"],
            "aetiology": c["aetiology"],
            "mvi": c["mvi"],
            "ehs": c["ehs"],
            "albumin_g_l": c["albumin_g_l"],
            "bilirubin_umol_l": c["bilirubin_umol_l"],
            "albi_score": c["albi_score"],
            "albi_grade": c["albi_grade"],
            "afp_ng_ml": c["afp_ng_ml"],
            "linear_predictor": c["linear_predictor"],
            "responder": c["responder"].astype(int),
            "complete_response": c["complete_response"].astype(int),
            "nadir_fraction": c["nadir_fraction"],
            "progression_mode": tumour.progression_mode,
            "baseline_sod_mm": np.round(tumour.baseline_sod, 1),
            "tumour_method": tumour.method,
            "true_progression_day": c["true_progression_day"].replace(np.inf, np.nan),
            "true_progression_date": as_date(c["true_progression_day"].to_numpy()),
            "death_without_progression": c["death_without_progression"].astype(int),
            "true_death_day": c["true_death_day"],
            "true_death_date": as_date(c["true_death_day"].to_numpy()),
            "dropout_type": c["dropout_type"],
            "dropout_date": as_date(c["dropout_day"].to_numpy()),
            "cutoff_day": c["cutoff_day"],
            "true_pfs_days": c["true_pfs_days"],
            "pfs_event": c["pfs_event"],
            "true_os_days": c["true_os_days"],
            "os_event": c["os_event"],
            "observed_pd_date": as_date(tumour.observed_pd_day),
            "eot_date": as_date(treatment.eot_day.astype(float)),
            "eot_reason": treatment.eot_reason,
            "n_cycles": treatment.n_cycles,
            "capsule_courses": treatment.courses_received,
            "lenvatinib_expected_dose_mg": treatment.lenvatinib_expected_dose,
            "lenvatinib_start_dose_mg": treatment.lenvatinib_start_dose,
            "dose_band_deviation": (treatment.lenvatinib_expected_dose != treatment.lenvatinib_start_dose).astype(int),
        }
    )
    for col in ("true_progression_day", "true_death_day", "cutoff_day", "true_pfs_days", "true_os_days"):
        out[col] = out[col].astype("Int64")
    return out
