"""Untargeted LC-MS metabolomics of faeces and serum, delivered as wide feature tables per batch.

Model (natural-log intensities): feature mean + patient effect + sample noise + true arm-by-time effect,
then the instrument: a per-batch offset and a smooth drift along run order,
``a * x + b * (x**2 - 1/3)`` with ``x`` = run order scaled to [-1, 1] (coefficients per batch and feature in
``truth/metabolite_drift.csv``), technical noise, and values under the feature's limit of detection
delivered as empty cells. Every batch starts and ends with blanks and has a pooled QC every
``mtb_qc_every`` samples; the sample order is randomised within the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import contract
from analysis.simulation import catalogues as cat
from analysis.simulation._io import write_csv, write_wide_csv
from analysis.simulation.params import SimulationParams

LOG2 = np.log(2.0)
ANNOTATION_COLUMNS = ("feature_id", "ion_mode", "mz", "rt_min", "name", "formula", "kegg_id", "hmdb_id",
                      "compound_class", "evidence")  # fmt: skip


def _old_hmdb(hmdb: str) -> str:
    """HMDB's pre-2017 5-digit accession (``HMDB0000122`` -> ``HMDB00122``), still common in exports."""
    return "HMDB" + hmdb[-5:] if hmdb.startswith("HMDB00") else hmdb


def build_features(matrix: str, n_features: int, rng: np.random.Generator) -> pd.DataFrame:
    """Feature annotation table for one matrix; truth columns (``true_*``) are dropped before delivery."""
    prefix = "FAE" if matrix == "FAECES" else "SER"
    rows: list[dict] = []
    for met in cat.METABOLITES:
        if matrix not in met.matrices:
            continue
        mass = cat.monoisotopic_mass(met.formula)
        for mode in met.modes:
            mz = mass + cat.PROTON if mode == "POS" else mass - cat.PROTON
            hmdb = _old_hmdb(met.hmdb) if rng.random() < 0.35 else met.hmdb
            rows.append({"ion_mode": mode, "mz": mz, "name": met.name, "formula": met.formula, "kegg_id": met.kegg,
                         "hmdb_id": hmdb, "compound_class": met.compound_class,
                         "evidence": "MSI level 1" if rng.random() < 0.5 else "MSI level 2"})  # fmt: skip
    # An isomer pair the annotation cannot separate: multi-ID cells in both identifier columns.
    if matrix == "FAECES":
        mass = cat.monoisotopic_mass("C24H40O4")
        rows.append({"ion_mode": "NEG", "mz": mass - cat.PROTON, "name": "Deoxycholic acid / Chenodeoxycholic acid",
                     "formula": "C24H40O4", "kegg_id": "C04483;C02528", "hmdb_id": "HMDB0000626;HMDB00518",
                     "compound_class": "Bile acids", "evidence": "MSI level 2"})  # fmt: skip
    rows = rows[:n_features]
    n_rest = n_features - len(rows)
    modes = rng.choice(contract.MTB_ION_MODES, size=n_rest, p=(0.55, 0.45))
    mzs = np.exp(rng.uniform(np.log(70.0), np.log(1000.0), n_rest))
    for k in range(n_rest):
        annotated = rng.random() < 0.15
        rows.append({"ion_mode": str(modes[k]), "mz": float(mzs[k]), "name": "", "formula": "", "kegg_id": "",
                     "hmdb_id": "", "compound_class": str(rng.choice(cat.COMPOUND_CLASSES)) if annotated else "",
                     "evidence": "MSI level 3" if annotated else ""})  # fmt: skip
    df = pd.DataFrame(rows)
    df["rt_min"] = np.round(rng.uniform(0.6, 18.0, len(df)), 2)
    df["mz"] = np.round(df["mz"], 4)
    df = df.sort_values(["ion_mode", "mz", "rt_min"], kind="stable", ignore_index=True)
    df.insert(0, "feature_id", [f"{prefix}{i:04d}" for i in range(1, len(df) + 1)])
    df["true_log_mean"] = np.round(rng.normal(13.0, 1.5, len(df)), 4)
    df["true_log_lod"] = np.round(df["true_log_mean"] - rng.uniform(1.0, 2.8, len(df)), 4)
    # True arm-by-time effects (log2 at full ramp): the named ones plus a few unannotated features.
    effect = np.zeros(len(df))
    for name, lfc in cat.METABOLITE_EFFECTS[matrix].items():
        effect[(df["name"] == name).to_numpy()] = lfc
    unnamed = np.flatnonzero((df["name"] == "").to_numpy())
    picks = rng.choice(unnamed, size=min(cat.N_UNNAMED_DIFFERENTIAL, len(unnamed)), replace=False)
    for k, j in enumerate(np.sort(picks)):
        effect[j] = (1 if k % 2 == 0 else -1) * round(float(rng.uniform(0.6, 1.2)), 3)
    df["true_log2_effect"] = effect
    return df.loc[:, [*ANNOTATION_COLUMNS, "true_log_mean", "true_log_lod", "true_log2_effect"]]


@dataclass
class MetabolomicsResult:
    batches: list[str]
    n_injections: int
    n_features: dict[str, int]
    files: list[Path]


def simulate_matrix(
    landing: Path,
    matrix: str,
    specimens: pd.DataFrame,
    n_features: int,
    n_patients: int,
    p: SimulationParams,
    rng: np.random.Generator,
) -> tuple[MetabolomicsResult, pd.DataFrame, pd.DataFrame]:
    feats = build_features(matrix, n_features, rng)
    nf = len(feats)
    mu = feats["true_log_mean"].to_numpy()
    lod = feats["true_log_lod"].to_numpy()
    effect = feats["true_log2_effect"].to_numpy() * LOG2
    patient = rng.normal(0.0, 0.35, (n_patients, nf))

    spec = specimens[rng.random(len(specimens)) >= 0.01].sort_values(["day", "BSREFID"], kind="stable")
    spec = spec.reset_index(drop=True)
    n_batches = max(1, int(np.ceil(len(spec) / p.mtb_batch_size)))
    letter = "F" if matrix == "FAECES" else "S"
    width = max(2, len(str(n_batches)))  # zero-padded so batch folders sort in delivery order
    files: list[Path] = []
    drift_rows: list[pd.DataFrame] = []
    batches: list[str] = []
    n_inj = 0
    for b, idx in enumerate(np.array_split(np.arange(len(spec)), n_batches)):
        batch = f"MTB{letter}{b + 1:0{width}d}"
        batches.append(batch)
        sub = spec.iloc[rng.permutation(idx)] if len(idx) else spec.iloc[idx]
        # Injection sequence: blanks, conditioning QCs, samples with a QC every `mtb_qc_every`, QC, blank.
        seq: list[tuple[str, int]] = [("BLANK", -1), ("BLANK", -1), ("QC", -1), ("QC", -1)]
        for k in range(len(sub)):
            seq.append(("SAMPLE", k))
            if (k + 1) % p.mtb_qc_every == 0:
                seq.append(("QC", -1))
        seq += [("QC", -1), ("BLANK", -1)]
        n_run = len(seq)
        x = np.linspace(-1.0, 1.0, n_run)
        offset = rng.normal(0.0, 0.15, nf)
        a = rng.normal(0.0, 0.2, nf)
        c = rng.normal(0.0, 0.12, nf)
        drift = offset[None, :] + x[:, None] * a[None, :] + (x[:, None] ** 2 - 1.0 / 3.0) * c[None, :]
        types = np.array([t for t, _ in seq])
        logi = np.empty((n_run, nf))
        samp_rows = np.flatnonzero(types == "SAMPLE")
        sample_pos = np.array([k for t, k in seq if t == "SAMPLE"], dtype=int)
        if len(samp_rows):
            s = sub.iloc[sample_pos]
            ramp = np.array([cat.CAPSULE_RAMP[t] for t in s["timepoint"].to_numpy()])
            on = (s["arm"].to_numpy() == "CAPSULE") * ramp
            logi[samp_rows] = (
                mu[None, :]
                + patient[s["patient_index"].to_numpy().astype(int)]
                + rng.normal(0.0, 0.45, (len(samp_rows), nf))
                + on[:, None] * effect[None, :]
            )
        qc_rows = np.flatnonzero(types == "QC")
        logi[qc_rows] = mu[None, :] + rng.normal(0.0, 0.04, (len(qc_rows), nf))
        blank_rows = np.flatnonzero(types == "BLANK")
        logi[blank_rows] = mu[None, :] - 4.0 + rng.normal(0.0, 1.0, (len(blank_rows), nf))
        logi += drift + rng.normal(0.0, 0.07, (n_run, nf))
        values = np.exp(logi)
        values[logi < lod[None, :]] = np.nan
        values[rng.random(values.shape) < 0.005] = np.nan  # sporadic integration failures
        inj_ids = [f"{batch}_{r:04d}" for r in range(1, n_run + 1)]
        barcodes = np.full(n_run, "", dtype=object)
        if len(samp_rows):
            barcodes[samp_rows] = sub.iloc[sample_pos]["BSREFID"].to_numpy()
        injections = pd.DataFrame(
            {
                "injection_id": inj_ids,
                "sample_type": types,
                "specimen_barcode": barcodes,
                "matrix": matrix,
                "run_order": np.arange(1, n_run + 1),
                "batch": batch,
            }
        )
        folder = landing / "metabolomics" / batch
        # Peak areas are delivered as integers, as most vendor and MS-DIAL exports do.
        write_wide_csv(folder / "features.csv", feats.loc[:, list(ANNOTATION_COLUMNS)], values.T, inj_ids)
        write_csv(injections, folder / "injections.csv")
        files += [folder / "features.csv", folder / "injections.csv"]
        n_inj += n_run
        drift_rows.append(
            pd.DataFrame(
                {
                    "batch": batch,
                    "matrix": matrix,
                    "feature_id": feats["feature_id"],
                    "batch_offset_log": np.round(offset, 5),
                    "drift_linear": np.round(a, 5),
                    "drift_quadratic": np.round(c, 5),
                    "n_injections": n_run,
                }
            )
        )
    result = MetabolomicsResult(batches, n_inj, {matrix: nf}, files)
    return result, feats, pd.concat(drift_rows, ignore_index=True)


def differential_metabolites_table(feats: pd.DataFrame, matrix: str) -> pd.DataFrame:
    hits = feats[feats["true_log2_effect"] != 0]
    rows = []
    for _, f in hits.iterrows():
        for tp, ramp in cat.CAPSULE_RAMP.items():
            if tp == "baseline":
                continue
            rows.append({"matrix": matrix, "feature_id": f["feature_id"], "name": f["name"], "ion_mode": f["ion_mode"],
                         "contrast": "capsule_vs_placebo", "timepoint": tp,
                         "log2_fold_change": round(float(f["true_log2_effect"]) * ramp, 4)})  # fmt: skip
    return pd.DataFrame(rows)
