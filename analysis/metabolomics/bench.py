"""Benchmark: ``prepare`` + prcomp-exact PCA on a large simulated table (default 5,000 injections × 10,000 features).

Run ``python -m analysis.metabolomics.bench [--injections N] [--features P] [--drift]``. Prints one JSON
object: wall and CPU seconds per stage and the peak resident memory (``ru_maxrss``, monotone) after each stage.
BLAS threads matter on a shared machine: an oversubscribed multi-threaded OpenBLAS can be 10-50x slower
than ``OPENBLAS_NUM_THREADS=1``; the JSON records the setting. The simulated table has pooled QCs every
10th injection, 10 blanks, 4 batches with a smooth drift, ~5 % left-censored missing values; feature
levels are log-normal.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import pandas as pd

from analysis.metabolomics.pca import prcomp
from analysis.metabolomics.steps import PrepareConfig, prepare
from analysis.metabolomics.table import MetaboliteTable, build_features


def peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def simulate(n_injections: int, n_features: int, seed: int = 0) -> MetaboliteTable:
    rng = np.random.default_rng(seed)
    kinds = np.full(n_injections, "SAMPLE", dtype=object)
    kinds[::10] = "QC"
    kinds[np.linspace(1, n_injections - 2, 10).astype(int)] = "BLANK"
    batch = np.repeat(np.arange(4), -(-n_injections // 4))[:n_injections]
    order = np.arange(1, n_injections + 1)
    level = rng.lognormal(mean=10, sigma=1.5, size=n_features)
    values = rng.lognormal(sigma=0.3, size=(n_features, n_injections))  # features x injections
    qc = kinds == "QC"
    values[:, qc] = rng.lognormal(sigma=0.05, size=(n_features, int(qc.sum())))  # pooled QCs: technical noise only
    values *= level[:, None]
    values *= (1 + 0.3 * np.sin(order / 300.0) + 0.1 * batch)[None, :]
    values[:, kinds == "BLANK"] *= 0.01
    limit = np.quantile(values[:, :200], 0.05, axis=1)
    values[values < limit[:, None]] = np.nan
    features = build_features(
        {
            "feature_id": np.arange(n_features).astype(str),
            "ion_mode": np.full(n_features, "POS", dtype=object),
            "mz": rng.uniform(70, 1000, n_features),
            "rt_min": rng.uniform(0.5, 20, n_features),
        },
        n_features,
    )
    injections = pd.DataFrame(
        {
            "injection_id": [f"INJ{i:05d}" for i in range(n_injections)],
            "sample_type": kinds,
            "run_order": order,
            "batch": batch.astype(str),
        }
    )
    return MetaboliteTable(features=features, intensities=values, injections=injections)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--injections", type=int, default=5000)
    parser.add_argument("--features", type=int, default=10000)
    parser.add_argument("--drift", action="store_true", help="include QC drift correction")
    args = parser.parse_args(argv)
    out: dict[str, object] = {
        "injections": args.injections,
        "features": args.features,
        "drift": args.drift,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }
    t, c = time.perf_counter(), time.process_time()
    table = simulate(args.injections, args.features)
    out["simulate_s"], out["peak_mib_after_simulate"] = round(time.perf_counter() - t, 2), peak_mib()
    t, c = time.perf_counter(), time.process_time()
    prepared, log = prepare(table, PrepareConfig(drift_correction=args.drift))
    out["prepare_s"], out["prepare_cpu_s"] = round(time.perf_counter() - t, 2), round(time.process_time() - c, 2)
    out["peak_mib_after_prepare"] = peak_mib()
    out["prepared_shape"] = list(prepared.values.shape)
    out["steps"] = log[["name", "features_after"]].values.tolist()
    del table
    t, c = time.perf_counter(), time.process_time()
    pca = prcomp(prepared.values)
    qc_scores = pca.project(prepared.qc_values)
    out["pca_s"], out["pca_cpu_s"] = round(time.perf_counter() - t, 2), round(time.process_time() - c, 2)
    out["peak_mib_after_pca"] = peak_mib()
    out["components"] = pca.n_components
    out["qc_projected"] = list(qc_scores.shape)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
