"""Blank and missing-value filters, imputation, QC RSD and QC-based drift correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.nonparametric.smoothers_lowess import lowess

from analysis.metabolomics.preprocess import (
    blank_filter,
    drift_correct,
    impute,
    lowess_fit,
    missing_filter,
    qc_rsd_filter,
    rsd,
    zeros_to_missing,
)

NAN = np.nan


def test_zeros_to_missing() -> None:
    X = np.array([[0.0, 1.0], [2.0, 0.0]])
    out, n = zeros_to_missing(X)
    assert n == 2 and np.isnan(out[0, 0]) and np.isnan(out[1, 1])
    assert X[0, 0] == 0  # input untouched


def test_blank_filter() -> None:
    # rows: 3 samples, 2 blanks; features: clean, contaminant, never in blanks, never in samples
    X = np.array(
        [
            [100.0, 10.0, 5.0, NAN],
            [120.0, 12.0, NAN, NAN],
            [80.0, 11.0, 7.0, NAN],
            [1.0, 10.0, NAN, 3.0],
            [3.0, NAN, NAN, 4.0],
        ]
    )
    sample = np.array([1, 1, 1, 0, 0], dtype=bool)
    result = blank_filter(X, sample, ~sample, fold=3)
    np.testing.assert_allclose(result.statistic[:2], [100 / 2, 11 / 10])
    assert result.keep.tolist() == [True, False, True, False]
    assert result.n_removed == 2
    assert blank_filter(X, sample, ~sample, fold=60).keep.tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="blank"):
        blank_filter(X, sample, np.zeros(5, dtype=bool))


def test_missing_filter_overall_and_group_wise() -> None:
    X = np.array(
        [
            [1.0, NAN, NAN, 1.0],
            [1.0, NAN, 1.0, 1.0],
            [1.0, 1.0, NAN, NAN],
            [1.0, 1.0, NAN, 1.0],
            [NAN, 1.0, 1.0, 1.0],
        ]
    )
    overall = missing_filter(X, 0.4)  # fractions 0.2, 0.4, 0.6, 0.2; keep iff < 0.4 (strict, as MetaboAnalyst)
    np.testing.assert_allclose(overall.statistic, [0.2, 0.4, 0.6, 0.2])
    assert overall.keep.tolist() == [True, False, False, True]
    groups = ["A", "A", "B", "B", "B"]
    gw = missing_filter(X, 0.4, groups, group_wise=True)
    # feature 1: A 100 % missing, B 0 % -> kept because group B passes; feature 2: A 50 %, B 67 % -> dropped
    np.testing.assert_allclose(gw.statistic, [0, 0, 0.5, 0])
    assert gw.keep.tolist() == [True, True, False, True]
    with pytest.raises(ValueError):
        missing_filter(X, 0.4, group_wise=True)


def test_impute_lod_is_fifth_of_min_positive() -> None:
    X = np.array([[10.0, NAN, NAN], [0.0, 4.0, NAN], [NAN, 2.0, NAN], [5.0, np.inf, NAN]])
    out, report = impute(X, "lod")
    # feature 0: min positive 5 -> 1; NaN and 0 both replaced; feature 1: min 2 -> 0.4, Inf replaced
    np.testing.assert_allclose(out[:, 0], [10, 1, 1, 5])
    np.testing.assert_allclose(out[:, 1], [0.4, 4, 2, 0.4])
    assert np.isnan(out[:, 2]).all()  # nothing to derive a LoD from
    assert report["imputed"] == 4 and report["unfillable_features"] == 1
    assert np.isnan(X[0, 1])  # input untouched


@pytest.mark.parametrize(
    ("method", "expected"),
    [("half_min", [4.0, 1.0]), ("mean", [14 / 3, 4.0]), ("median", [4.0, 4.0])],
)
def test_impute_alternatives(method: str, expected: list[float]) -> None:
    X = np.array([[NAN, 2.0], [8.0, NAN], [4.0, 6.0], [2.0, 4.0]])
    out, _ = impute(X, method)
    np.testing.assert_allclose([out[0, 0], out[1, 1]], [expected[0] if method != "half_min" else 1.0, expected[1]])
    assert not np.isnan(out).any()


def test_impute_knn_and_none() -> None:
    rng = np.random.default_rng(0)
    base = rng.lognormal(size=(20, 1))
    X = base * np.array([1.0, 2.0, 3.0, 4.0]) + rng.normal(scale=0.01, size=(20, 4))
    X[3, 1] = NAN
    out, report = impute(X, "knn", knn_neighbors=2)
    assert report["imputed"] == 1 and not np.isnan(out).any()
    untouched, _ = impute(X, "none")
    assert np.isnan(untouched[3, 1])
    with pytest.raises(ValueError):
        impute(X, "bpca")


def test_rsd_and_filter() -> None:
    X = np.array([[10.0, 1.0, 5.0, 0.0], [12.0, 1.0, NAN, 0.0], [14.0, 4.0, NAN, 0.0], [99.0, 99.0, 99.0, 99.0]])
    qc = np.array([True, True, True, False])
    values = rsd(X, qc)
    # feature 0: mean 12, sd 2 -> 16.67 %; feature 1: mean 2, sd sqrt(3) -> 86.6 %; 1 value -> NaN; mean 0 -> NaN
    np.testing.assert_allclose(values[:2], [100 * 2 / 12, 100 * math.sqrt(3) / 2])
    assert np.isnan(values[2:]).all()
    result = qc_rsd_filter(X, qc, threshold=30)
    assert result.keep.tolist() == [True, False, False, False]
    assert qc_rsd_filter(X, qc, threshold=100 * 2 / 12).keep.tolist() == [False, False, False, False]  # strict <
    with pytest.raises(ValueError, match="at least 2"):
        qc_rsd_filter(X, np.array([True, False, False, False]))


@pytest.mark.parametrize("frac", [0.3, 0.75, 1.0])
@pytest.mark.parametrize("it", [0, 3])
def test_lowess_fit_equals_statsmodels(frac: float, it: int) -> None:
    rng = np.random.default_rng(5)
    x = np.sort(rng.choice(500, size=40, replace=False)).astype(float)
    Y = 100 + 20 * np.sin(x / 80)[None, :] + rng.standard_t(2, size=(12, 40))
    ours = lowess_fit(x, Y, frac=frac, it=it)
    ref = np.array([lowess(y, x, frac=frac, it=it, delta=0.0, return_sorted=False) for y in Y])
    np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=1e-9)


def simulate_drift(seed: int = 7) -> dict[str, np.ndarray]:
    """Two batches of 120 injections, a pooled QC every 6th; multiplicative smooth drift and a batch offset."""
    rng = np.random.default_rng(seed)
    n_feat = 40
    order = np.concatenate([np.arange(1, 121), np.arange(1, 121)]).astype(float)
    batch = np.repeat(["B1", "B2"], 120)
    qc = (np.arange(240) % 6) == 0
    level = rng.lognormal(mean=9, sigma=1, size=n_feat)
    truth = np.where(qc[:, None], level, level * rng.lognormal(sigma=0.3, size=(240, n_feat)))
    phase = rng.uniform(0, 2 * np.pi, size=n_feat)
    drift = 1 + 0.35 * np.sin(order[:, None] / 40 + phase) - 0.002 * order[:, None]
    drift[batch == "B2"] *= 0.6  # batch effect
    noise = rng.lognormal(sigma=0.03, size=(240, n_feat))
    return {"X": truth * drift * noise, "truth": truth, "order": order, "batch": batch, "qc": qc}


def test_drift_correction_recovers_smooth_drift() -> None:
    sim = simulate_drift()
    X = sim["X"].copy()
    X[0, 3] = NAN  # a missing QC value: that feature is fitted on its own observed QCs
    result = drift_correct(X, sim["order"], sim["qc"], sim["batch"], frac=0.5, it=3)
    assert result.uncorrected == 0 and result.batches == ["B1", "B2"]
    before, after = np.nanmedian(result.rsd_before), np.nanmedian(result.rsd_after)
    assert before > 15 and after < 5  # drift + batch effect inflate QC RSD; the 3 % noise remains
    assert (result.rsd_after < result.rsd_before).all()
    # study samples: corrected/true ratio is the QC median level / true level -> constant per feature
    sample = ~sim["qc"]
    ratio = result.corrected[sample] / sim["truth"][sample]
    assert np.nanmedian(np.nanstd(np.log(ratio), axis=0)) < 0.06  # drift (±35 %, ×0.6) removed
    report = result.report([f"F{i}" for i in range(X.shape[1])])
    assert list(report.columns) == ["feature", "qc_rsd_before", "qc_rsd_after"]
    assert np.isnan(X[0, 3])  # input untouched


def test_drift_correction_matches_per_feature_statsmodels() -> None:
    sim = simulate_drift(3)
    X = sim["X"][:120, :3]  # batch 1 only
    qc, order = sim["qc"][:120], sim["order"][:120]
    result = drift_correct(X, order, qc, frac=0.75, it=3)
    target = np.median(X[qc], axis=0)
    for f in range(3):
        fit = lowess(X[qc, f], order[qc], frac=0.75, it=3, return_sorted=False)
        curve = np.interp(order, order[qc], fit)
        np.testing.assert_allclose(result.corrected[:, f], X[:, f] / curve * target[f], rtol=1e-10)


def test_drift_correction_too_few_qcs_left_alone() -> None:
    sim = simulate_drift()
    X = sim["X"][:, :2].copy()
    X[sim["qc"] & (sim["batch"] == "B1"), 0] = NAN
    result = drift_correct(X, sim["order"], sim["qc"], sim["batch"], min_qc=5)
    assert result.uncorrected == 1
    b1 = sim["batch"] == "B1"
    np.testing.assert_array_equal(result.corrected[b1, 0], X[b1, 0])
    with pytest.raises(ValueError, match="run order"):
        drift_correct(X, np.ones(len(X)), sim["qc"])
