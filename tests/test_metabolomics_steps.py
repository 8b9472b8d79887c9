"""The prepare() pipeline: order of steps, the step log, QC handling, and an end-to-end simulated study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.metabolomics import normalise, preprocess
from analysis.metabolomics.differential import compare_groups
from analysis.metabolomics.pca import prcomp
from analysis.metabolomics.steps import STEP_LOG_COLUMNS, PrepareConfig, config_record, prepare
from analysis.metabolomics.table import MetaboliteTable, build_features
from analysis.metabolomics.vendors import read_msdial

MSDIAL = Path(__file__).parent / "fixtures" / "metabolomics" / "msdial_pos.txt"


def test_step_log_on_vendor_fixture() -> None:
    table = read_msdial(MSDIAL)
    prepared, log = prepare(table, PrepareConfig(max_missing=0.5))
    assert list(log.columns) == list(STEP_LOG_COLUMNS)
    assert log["name"].tolist() == [
        "select_injections",
        "zeros_to_missing",
        "blank_filter",
        "drop_blanks",
        "missing_filter",
        "drift_correction",
        "qc_rsd_filter",
        "impute",
        "drop_incomplete",
        "row_normalisation",
        "transform",
        "drop_constant",
        "scaling",
    ]
    assert log["step"].tolist() == list(range(1, 14))
    assert log.loc[log["name"] == "drop_blanks", ["injections_before", "injections_after"]].values.tolist() == [[8, 7]]
    miss = log[log["name"] == "missing_filter"].iloc[0]
    # feature 1 is missing (empty or 0) in 2 of 4 samples = 0.5, not < 0.5
    assert (miss["features_before"], miss["features_after"]) == (3, 2)
    assert json.loads(miss["parameters"])["max_missing"] == 0.5
    assert not log.loc[log["name"] == "drift_correction", "applied"].item()
    assert json.loads(log.loc[log["name"] == "transform", "detail"].item())["lambda"] > 0
    assert prepared.values.shape == (4, 2) and prepared.qc_values.shape == (3, 2)
    assert prepared.feature_keys == ["POS:0", "POS:2"]
    assert prepared.sample_ids == ["S01", "S02", "S03", "S04"]
    assert prepared.qc_ids == ["QC_01", "QC_02", "QC_03"]
    assert set(prepared.qc_rsd.columns) >= {"feature", "qc_rsd_before", "kept"}
    assert json.loads(config_record(prepared.config))["transform"] == "glog"


def test_prepare_equals_the_steps_done_by_hand() -> None:
    table = read_msdial(MSDIAL)
    cfg = PrepareConfig(
        max_missing=0.5, row_normalisation="sum", transform="log10", scaling="auto", qc_rsd_threshold=30
    )
    prepared, _ = prepare(table, cfg)
    X = table.matrix().astype(float)
    types = table.sample_types()
    X[X == 0] = np.nan
    keep = preprocess.blank_filter(X, types == "SAMPLE", types == "BLANK", 3).keep
    X, types = X[types != "BLANK"][:, keep], types[types != "BLANK"]
    X = X[:, preprocess.missing_filter(X[types == "SAMPLE"], 0.5).keep]
    X = X[:, preprocess.qc_rsd_filter(X, types == "QC", 30).keep]
    X, _ = preprocess.impute(X, "lod")
    X, _ = normalise.normalise_rows(X, "sum")
    lam = normalise.glog_lambda(X[types == "SAMPLE"])
    S, _ = normalise.transform(X[types == "SAMPLE"], "log10", lam=lam)
    Q, _ = normalise.transform(X[types == "QC"], "log10", lam=lam)
    scaling = normalise.fit_scaling(S, "auto")
    np.testing.assert_allclose(prepared.values, normalise.apply_scaling(S, scaling), rtol=1e-12)
    np.testing.assert_allclose(prepared.qc_values, normalise.apply_scaling(Q, scaling), rtol=1e-12)


def simulated_table(seed: int = 11, n_patients: int = 40, n_feat: int = 120) -> tuple[MetaboliteTable, np.ndarray]:
    """Samples of two arms with 6 truly differential features, pooled QCs every 5th injection, smooth drift,
    2 blanks, some missing values and a contaminant; returns the table and the indices of the true features."""
    rng = np.random.default_rng(seed)
    n_inj = n_patients + n_patients // 4 + 2
    kinds = np.array(["SAMPLE"] * n_inj, dtype=object)
    kinds[::5] = "QC"
    kinds[[1, n_inj - 2]] = "BLANK"
    order = np.arange(1, n_inj + 1, dtype=float)
    arm = np.where(rng.uniform(size=n_inj) < 0.5, "CAPSULE", "PLACEBO")
    level = rng.lognormal(mean=10, sigma=1.2, size=n_feat)
    X = level * rng.lognormal(sigma=0.25, size=(n_inj, n_feat))
    X[kinds == "QC"] = level * rng.lognormal(sigma=0.02, size=((kinds == "QC").sum(), n_feat))
    true = rng.choice(np.arange(1, n_feat), size=6, replace=False)
    X[np.ix_((kinds == "SAMPLE") & (arm == "CAPSULE"), true)] *= 2.5
    X *= (1 + 0.4 * np.sin(order / 15))[:, None]  # smooth drift in every feature
    X[kinds == "BLANK"] = 0.0
    X[np.ix_(kinds == "BLANK", [0])] = level[0] * 2  # feature 0 is a contaminant
    detection_limit = np.quantile(X[kinds == "SAMPLE"], 0.03, axis=0)
    X[(detection_limit > X) & (kinds != "BLANK")[:, None]] = 0.0  # not detected: the lowest 3 % (left-censored)
    injections = pd.DataFrame(
        {
            "injection_id": [f"I{i:03d}" for i in range(n_inj)],
            "sample_type": kinds,
            "run_order": order.astype(int),
            "batch": "B1",
            "arm": np.where(kinds == "SAMPLE", arm, None),
        }
    )
    features = build_features(
        {
            "feature_id": [f"F{i}" for i in range(n_feat)],
            "ion_mode": ["POS"] * n_feat,
            "mz": rng.uniform(70, 900, n_feat),
            "rt_min": rng.uniform(0.5, 15, n_feat),
        },
        n_feat,
    )
    table = MetaboliteTable(features=features, intensities=np.ascontiguousarray(X.T), injections=injections)
    return table, true


def test_end_to_end_drift_rsd_and_differential() -> None:
    table, true = simulated_table()
    cfg = PrepareConfig(
        drift_correction=True,
        drift_frac=0.6,
        transform="glog",
        scaling="none",
        row_normalisation="pqn",
        qc_rsd_threshold=20,
    )
    prepared, log = prepare(table, cfg)
    blank = json.loads(log.loc[log["name"] == "blank_filter", "detail"].item())
    assert blank["removed"] == 1 and "POS:F0" not in prepared.feature_keys
    drift = json.loads(log.loc[log["name"] == "drift_correction", "detail"].item())
    # QC RSD before correction matches the simulated drift (+ 2 % QC noise); after it only the noise remains
    qc_order = table.injections.loc[table.sample_types() == "QC", "run_order"].to_numpy(dtype=float)
    curve = 1 + 0.4 * np.sin(qc_order / 15)
    expected = 100 * np.hypot(curve.std(ddof=1) / curve.mean(), 0.02)
    assert drift["median_qc_rsd_before"] == pytest.approx(expected, abs=1.5)
    assert drift["median_qc_rsd_after"] < 3
    assert log.loc[log["name"] == "qc_rsd_filter", "features_after"].item() == len(prepared.feature_keys) + 0
    rsd = prepared.qc_rsd
    assert (rsd["qc_rsd_after_drift"] < rsd["qc_rsd_before"]).mean() > 0.95
    arms = prepared.samples["arm"].to_numpy()
    res = compare_groups(prepared.values, arms, "CAPSULE", "PLACEBO", feature_ids=prepared.feature_keys, log_base=10)
    top = set(res.nsmallest(len(true), "welch_p")["feature"])
    assert top == {f"POS:F{i}" for i in true}
    fc = res.set_index("feature").loc[[f"POS:F{i}" for i in true], "fc"]
    assert ((fc > 1.8) & (fc < 3.5)).all()  # simulated 2.5-fold
    pca = prcomp(prepared.values, sample_ids=prepared.sample_ids, feature_ids=prepared.feature_keys)
    qc_scores = pca.project(prepared.qc_values)
    assert qc_scores.shape == (len(prepared.qc_ids), pca.n_components)
    # pooled QCs cluster: their spread on PC1 is far below the samples'
    assert qc_scores[:, 0].std() < 0.3 * pca.scores[:, 0].std()


def test_prepare_per_visit_subset_and_errors() -> None:
    table, _ = simulated_table()
    half = table.select_injections(np.arange(table.n_injections) < table.n_injections // 2)
    prepared, _ = prepare(half, PrepareConfig(scaling="auto"))
    assert prepared.values.shape[0] == (half.sample_types() == "SAMPLE").sum()
    np.testing.assert_allclose(prepared.values.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(prepared.values.std(axis=0, ddof=1), 1, rtol=1e-12)
    only_qc = table.select_injections(table.sample_types() == "QC")
    with pytest.raises(ValueError, match="study-sample"):
        prepare(only_qc)
    with pytest.raises(ValueError):
        PrepareConfig(transform="log2")
    no_order = table.select_injections(np.ones(table.n_injections, dtype=bool))
    no_order = MetaboliteTable(no_order.features, no_order.intensities, no_order.injections.drop(columns="run_order"))
    with pytest.raises(ValueError, match="run_order"):
        prepare(no_order, PrepareConfig(drift_correction=True))
