"""Normalisation, transformation and scaling against MetaboAnalyst's formulas on tiny hand-worked inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.metabolomics.normalise import (
    apply_scaling,
    fit_scaling,
    glog_lambda,
    normalise_rows,
    pqn_reference,
    scale,
    transform,
)

X = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 8.0]])


def test_sum_norm() -> None:
    # SumNorm: 1000 * x / sum(x); sums 6 and 12
    out, info = normalise_rows(X, "sum")
    np.testing.assert_allclose(out, [[1000 / 6, 2000 / 6, 3000 / 6], [4000 / 12, 0, 8000 / 12]])
    np.testing.assert_allclose(info.factors, [0.006, 0.012])
    with_missing, _ = normalise_rows(np.array([[1.0, np.nan, 3.0]]), "sum")  # na.rm = TRUE
    np.testing.assert_allclose(with_missing, [[250, np.nan, 750]])


def test_median_norm_with_zero_median_fallback() -> None:
    out, _ = normalise_rows(X, "median")  # medians 2 and 4
    np.testing.assert_allclose(out, [[0.5, 1, 1.5], [1, 0, 2]])
    out, info = normalise_rows(np.array([[0.0, 0.0, 5.0, 10.0, 0.0]]), "median")  # median 0 -> median(5, 10)
    assert info.factors[0] == 7.5
    np.testing.assert_allclose(out, [[0, 0, 5 / 7.5, 10 / 7.5, 0]])


def test_pqn() -> None:
    Y = np.array([[1.0, 2.0, 4.0], [2.0, 4.0, 8.0], [3.0, 3.0, 3.0], [0.0, 6.0, 12.0]])
    qc = np.array([True, True, False, False])
    ref = pqn_reference(Y, qc)  # median of rows 0, 1 per feature
    np.testing.assert_allclose(ref, [1.5, 3, 6])
    np.testing.assert_allclose(pqn_reference(Y, qc, "mean"), [1.5, 3, 6])
    out, info = normalise_rows(Y, "pqn", reference=ref)
    # quotients: row0 all 2/3; row1 all 4/3; row2 (2, 1, 0.5) -> 1; row3 (0 excluded) (2, 2) -> 2
    np.testing.assert_allclose(info.factors, [2 / 3, 4 / 3, 1, 2])
    np.testing.assert_allclose(out, [[1.5, 3, 6], [1.5, 3, 6], [3, 3, 3], [0, 3, 6]])
    with pytest.raises(ValueError, match="reference"):
        normalise_rows(Y, "pqn")
    samples_ref = pqn_reference(Y, ~qc)  # median of rows 2, 3: (1.5, 4.5, 7.5)
    np.testing.assert_allclose(samples_ref, [1.5, 4.5, 7.5])


def test_glog_is_metaboanalyst_lognorm() -> None:
    Z = np.array([[0.0, 1.0], [10.0, -2.0], [0.5, 3.0]])
    lam = 0.5 / 10  # min(|x| != 0) / 10 over the whole matrix
    assert glog_lambda(Z) == lam
    out, info = transform(Z, "glog")
    assert info == {"method": "glog", "lambda": lam}
    expected = [
        [math.log10((0 + math.sqrt(0 + lam**2)) / 2), math.log10((1 + math.sqrt(1 + lam**2)) / 2)],
        [math.log10((10 + math.sqrt(100 + lam**2)) / 2), math.log10((-2 + math.sqrt(4 + lam**2)) / 2)],
        [math.log10((0.5 + math.sqrt(0.25 + lam**2)) / 2), math.log10((3 + math.sqrt(9 + lam**2)) / 2)],
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert out[0, 0] == pytest.approx(math.log10(lam / 2))
    assert out[1, 0] == pytest.approx(1.0, abs=1e-4)  # glog(x) -> log10(x) for x >> lambda
    qc, _ = transform(np.array([[10.0, 0.0]]), "glog", lam=lam)  # projected rows reuse the model's lambda
    np.testing.assert_allclose(qc, [[expected[1][0], expected[0][0]]])


def test_log10_with_min_over_10_offset() -> None:
    Z = np.array([[0.0, 1.0], [10.0, 100.0]])
    out, info = transform(Z, "log10")
    assert info == {"method": "log10", "offset": 0.1}
    np.testing.assert_allclose(out, [[-1.0, math.log10(1.1)], [math.log10(10.1), math.log10(100.1)]])
    plain, _ = transform(np.array([[1.0, 1000.0]]), "log10", offset=0)
    np.testing.assert_allclose(plain, [[0.0, 3.0]])
    with pytest.raises(ValueError, match="non-positive"):
        transform(Z, "log10", offset=0)


def test_sqrt_and_cuberoot() -> None:
    Z = np.array([[4.0, -8.0], [0.0, 27.0]])
    lam = 0.4
    out, _ = transform(Z, "sqrt")
    np.testing.assert_allclose(out[0, 0], math.sqrt((4 + math.sqrt(16 + lam**2)) / 2))
    cube, _ = transform(Z, "cuberoot")
    np.testing.assert_allclose(cube, [[4 ** (1 / 3), -2], [0, 3]])


def test_scalings() -> None:
    col = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [6.0, 5.0]])
    mean, sd = 3.0, math.sqrt(((1 - 3) ** 2 + 1 + 0 + 9) / 3)  # R sd: n - 1
    np.testing.assert_allclose(scale(col, "mean")[:, 0], col[:, 0] - mean)
    np.testing.assert_allclose(scale(col, "auto")[:, 0], (col[:, 0] - mean) / sd)
    np.testing.assert_allclose(scale(col, "pareto")[:, 0], (col[:, 0] - mean) / math.sqrt(sd))
    np.testing.assert_allclose(scale(col, "range")[:, 0], (col[:, 0] - mean) / 5)
    np.testing.assert_allclose(scale(col, "range")[:, 1], 5.0)  # RangeNorm leaves a constant column as is
    np.testing.assert_allclose(scale(col, "none"), col)
    auto = scale(col, "auto")
    assert np.isnan(auto[:, 1]).all()  # R: (x - mean)/0
    fitted = fit_scaling(col[:2], "auto")  # fitted on samples, applied to a QC row unchanged
    np.testing.assert_allclose(apply_scaling(np.array([[4.0, 5.0]]), fitted)[0, 0], (4 - 1.5) / math.sqrt(0.5))


def test_unknown_methods() -> None:
    with pytest.raises(ValueError):
        normalise_rows(X, "quantile")
    with pytest.raises(ValueError):
        transform(X, "log2")
    with pytest.raises(ValueError):
        scale(X, "vast")
