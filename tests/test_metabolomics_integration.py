"""Spearman integration of two feature tables matched by patient and visit, against scipy.stats.spearmanr."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.metabolomics.integration import spearman_matrix, spearman_pairs


def scipy_pair(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    ok = ~np.isnan(x) & ~np.isnan(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue), int(ok.sum())


def make_tables(seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    keys = [(f"P{p:02d}", v) for p in range(15) for v in ("BASELINE", "WEEK 6", "WEEK 12")]
    genus = pd.DataFrame(keys, columns=["subject_id", "visit"])
    latent = rng.normal(size=len(keys))
    for g in range(6):
        genus[f"G{g}"] = np.round(np.exp(latent * (g % 3) + rng.normal(size=len(keys))), 1)  # rounding -> ties
    genus["G_zero"] = 0.0  # absent genus: constant
    metab = pd.DataFrame(list(reversed(keys[3:])), columns=["subject_id", "visit"])  # other order, fewer rows
    lat = pd.Series(latent, index=pd.MultiIndex.from_tuples(keys)).loc[list(reversed(keys[3:]))].to_numpy()
    for m in range(5):
        metab[f"M{m}"] = lat * (m - 2) + rng.normal(size=len(metab))
    metab.loc[[2, 7, 11], "M3"] = np.nan  # missing: pairwise complete rows
    metab.loc[[0, 1], "M4"] = np.nan
    metab["M_ties"] = rng.integers(0, 3, len(metab)).astype(float)
    return genus, metab


def test_equals_scipy_spearmanr_pair_by_pair() -> None:
    genus, metab = make_tables()
    out = spearman_pairs(genus, metab, names=("genus", "metabolite"), min_pairs=5)
    assert out.attrs["matched_rows"] == 42
    assert len(out) == 7 * 6
    joined = genus.merge(metab, on=["subject_id", "visit"])
    for row in out.itertuples():
        rho, p, n = scipy_pair(joined[row.genus].to_numpy(), joined[row.metabolite].to_numpy())
        assert row.n == n
        if np.isnan(rho):
            assert np.isnan(row.rho) and np.isnan(row.p)
        else:
            assert row.rho == pytest.approx(rho, rel=1e-12, abs=1e-14)
            assert row.p == pytest.approx(p, rel=1e-9, abs=1e-300)
    # the constant genus correlates with nothing
    assert out.loc[out["genus"] == "G_zero", "rho"].isna().all()
    # BH over the finite p-values, as scipy's false_discovery_control
    finite = out["p"].notna()
    np.testing.assert_allclose(out.loc[finite, "q"], stats.false_discovery_control(out.loc[finite, "p"]), rtol=1e-12)
    assert out["q"][~finite].isna().all()
    # sorted by p
    assert out["p"][finite].is_monotonic_increasing


def test_matrix_form_and_perfect_correlation() -> None:
    x = np.arange(10.0)[:, None] * np.array([1.0, -1.0])
    y = np.c_[np.exp(np.arange(10.0)), np.r_[np.arange(9.0), np.nan]]
    rho, p, n = spearman_matrix(x, y)
    np.testing.assert_allclose(rho, [[1, 1], [-1, -1]])
    assert (p < 1e-40).all()
    np.testing.assert_array_equal(n, [[10, 9], [10, 9]])


def test_duplicates_and_too_few_pairs() -> None:
    genus, metab = make_tables()
    doubled = pd.concat([metab, metab.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="several rows"):
        spearman_pairs(genus, doubled)
    averaged = spearman_pairs(genus, doubled, duplicates="mean")
    assert averaged.attrs["matched_rows"] == 42
    few = spearman_pairs(genus.iloc[:8], metab, min_pairs=6)  # 5 shared rows
    assert few["rho"].isna().all() and (few["n"] == 5).all()
    with pytest.raises(ValueError, match="key column"):
        spearman_pairs(genus.drop(columns="visit"), metab)
