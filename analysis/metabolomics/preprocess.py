"""Feature filtering, missing-value imputation, QC RSD and QC-based drift correction.

All functions take ``X`` as **injections × features** (rows are injections, as in MetaboAnalyst and R
``prcomp``), float64, ``NaN`` = missing, and never modify their input. Sources: MetaboAnalystR 4.3.0
(``R/util_missing.R``, ``R/general_proc_utils.R``; ``omics.md`` §7.2) unless stated.

Zeros (:func:`zeros_to_missing`)
    Vendors write 0 for "not detected"; MetaboAnalyst's LoD imputation treats ``NA``, ``0`` and
    non-finite alike. Converting zeros to NaN first makes the missing-value filter count them too.

Blank filter (:func:`blank_filter`)
    ``ratio_f = mean(x_f | samples) / mean(x_f | blanks)``, means over non-missing values. Keep iff
    ``ratio_f > fold`` (default 3); a feature never seen in a blank is kept, one never seen in a sample is
    dropped. This is MetaboAnalyst's ``blankfeatureFiltering`` rule with a fixed, documented threshold
    instead of its data-driven elbow (``bede``) estimate.

Missing-value filter (:func:`missing_filter`, MetaboAnalyst ``RemoveMissingByPercent``)
    ``miss_f = #NA_f / n``; keep iff ``miss_f < max_missing`` (strict). ``group_wise``: the fraction is
    computed per group and a feature is kept iff **any** group passes (the "modified 80 % rule").

Imputation (:func:`impute`, MetaboAnalyst ``ImputeMissingVar``)
    * ``lod`` (default): every NaN/0/non-finite value of feature f becomes ``min{x_f > 0}/5``
      (``ReplaceMissingByLoD``), 1/5 of the feature's smallest positive value.
    * ``half_min`` (MetaboAnalyst ``colmin``): NaN -> ``min{x_f}/2`` over the observed values.
    * ``mean`` / ``median``: NaN -> the feature's mean / median over the observed values.
    * ``knn``: scikit-learn ``KNNImputer`` over **features** (neighbours are the k most similar features,
      nan-Euclidean distance; MetaboAnalyst ``knn_var`` uses ``impute::impute.knn`` on the transposed
      matrix, which also works feature-wise but is a different implementation: not bit-identical).
    * ``none``: leave NaN (PCA will then refuse the matrix).
    A feature with no usable value stays NaN and is reported.

QC relative standard deviation (:func:`rsd`, :func:`qc_rsd_filter`, MetaboAnalyst ``FilterVariable``)
    ``RSD_f = 100 · sd(x_f | QC) / |mean(x_f | QC)|`` with R's ``sd`` (n−1) over non-missing QC values;
    keep iff ``RSD_f < threshold`` (strict, default 30 %); a non-finite RSD is dropped; at least 2 QC
    injections are required.

Drift correction (:func:`drift_correct`; QC-RLSC, Dunn et al. 2011 Nat Protoc 6:1060, with LOWESS,
Cleveland 1979 JASA 74:829)
    Per batch and feature: a LOWESS curve ``f(t)`` through the QC intensities against run order ``t``
    (local linear, tricube weights over the ``int(frac·n)`` nearest QCs, ``it`` bisquare robustness
    passes — exactly ``statsmodels.nonparametric.lowess(delta=0)``, vectorised over features that share
    a QC missingness pattern and checked against statsmodels in the tests), linearly interpolated to every
    injection of the batch (constant beyond the first/last QC). Corrected ``x' = x · m_f / f(t)`` where
    ``m_f`` is the median of the feature's QC values over all batches, so between-batch offsets are
    removed too. A feature/batch with fewer than ``min_qc`` observed QCs, or a non-positive fit, is left
    uncorrected and counted. The QC RSD is reported before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

IMPUTE_METHODS: tuple[str, ...] = ("lod", "half_min", "mean", "median", "knn", "none")


@dataclass(frozen=True)
class FilterResult:
    """A keep-mask over features with the statistic it was decided on (one value per feature)."""

    keep: np.ndarray
    statistic: np.ndarray
    rule: str

    @property
    def n_removed(self) -> int:
        return int((~self.keep).sum())


def _as_matrix(X: np.ndarray) -> np.ndarray:
    arr = np.asarray(X, dtype="float64")
    if arr.ndim != 2:
        raise ValueError("X must be 2-D (injections x features)")
    return arr


def _mask(values: np.ndarray | Sequence[bool], n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=bool)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per injection ({n})")
    return arr


def zeros_to_missing(X: np.ndarray) -> tuple[np.ndarray, int]:
    """Copy of ``X`` with exact zeros replaced by NaN, and the number replaced."""
    out = _as_matrix(X).copy()
    zero = out == 0
    n = int(zero.sum())
    out[zero] = np.nan
    return out, n


def blank_filter(
    X: np.ndarray, is_sample: np.ndarray | Sequence[bool], is_blank: np.ndarray | Sequence[bool], fold: float = 3.0
) -> FilterResult:
    """Keep features whose sample mean exceeds ``fold`` × their blank mean (see module docstring)."""
    X = _as_matrix(X)
    sample = _mask(is_sample, X.shape[0], "is_sample")
    blank = _mask(is_blank, X.shape[0], "is_blank")
    if not blank.any():
        raise ValueError("blank filter needs at least one blank injection")
    with np.errstate(invalid="ignore", divide="ignore"):
        sample_mean = _nanmean(X[sample])
        blank_mean = _nanmean(X[blank])
        ratio = sample_mean / blank_mean
    keep = np.where(np.isnan(sample_mean), False, np.where(np.isnan(blank_mean), True, ratio > fold))
    return FilterResult(keep.astype(bool), ratio, f"mean(samples)/mean(blanks) > {fold}")


def _nanmean(block: np.ndarray) -> np.ndarray:
    """Column means over non-missing values; NaN for an all-missing column (no warning)."""
    present = ~np.isnan(block)
    count = present.sum(axis=0)
    total = np.where(present, block, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def missing_fraction(X: np.ndarray) -> np.ndarray:
    """Fraction of NaN per feature."""
    X = _as_matrix(X)
    return np.isnan(X).mean(axis=0) if X.shape[0] else np.zeros(X.shape[1])


def missing_filter(
    X: np.ndarray,
    max_missing: float = 0.2,
    groups: np.ndarray | Sequence[object] | None = None,
    *,
    group_wise: bool = False,
) -> FilterResult:
    """Keep a feature iff its missing fraction is < ``max_missing`` (overall, or in any group)."""
    X = _as_matrix(X)
    if not 0 < max_missing <= 1:
        raise ValueError("max_missing is a fraction in (0, 1]")
    if not group_wise:
        frac = missing_fraction(X)
        return FilterResult(frac < max_missing, frac, f"missing fraction < {max_missing}")
    if groups is None:
        raise ValueError("group_wise=True needs groups")
    labels = pd.Series(list(groups), dtype="str").fillna("<NA>").to_numpy()
    if len(labels) != X.shape[0]:
        raise ValueError("groups must have one label per injection")
    best = np.full(X.shape[1], np.inf)
    for label in pd.unique(labels):
        best = np.minimum(best, missing_fraction(X[labels == label]))
    return FilterResult(best < max_missing, best, f"missing fraction < {max_missing} in at least one group")


def impute(X: np.ndarray, method: str = "lod", *, knn_neighbors: int = 10) -> tuple[np.ndarray, dict[str, object]]:
    """Replace missing values (see module docstring); returns the new matrix and a small report."""
    X = _as_matrix(X)
    if method not in IMPUTE_METHODS:
        raise ValueError(f"unknown imputation {method!r}; choose from {IMPUTE_METHODS}")
    out = X.copy()
    if method == "none":
        return out, {"method": method, "imputed": 0}
    if method == "lod":
        bad = ~np.isfinite(out) | (out == 0)
        positive = np.where(np.isfinite(out) & (out > 0), out, np.inf)
        floor = positive.min(axis=0) / 5.0
        floor[np.isinf(floor)] = np.nan  # no positive value at all
        fill = np.broadcast_to(floor, out.shape)
        out[bad] = fill[bad]
        filled = int((bad & ~np.isnan(fill)).sum())
        return out, {"method": method, "imputed": filled, "unfillable_features": int(np.isnan(floor).sum())}
    bad = np.isnan(out)
    if method == "knn":
        from sklearn.impute import KNNImputer

        # neighbours are features: rows of X.T; all-missing features are kept as NaN
        empty = bad.all(axis=0)
        if (~empty).any():
            imputer = KNNImputer(n_neighbors=knn_neighbors, keep_empty_features=True)
            out[:, ~empty] = imputer.fit_transform(out[:, ~empty].T).T
        return out, {"method": method, "imputed": int(bad[:, ~empty].sum()), "unfillable_features": int(empty.sum())}
    with np.errstate(invalid="ignore"):
        observed = np.where(bad, np.nan, out)
        if method == "half_min":
            fill_value = np.where(bad.all(axis=0), np.nan, np.nanmin(np.where(bad, np.inf, out), axis=0)) / 2.0
        elif method == "mean":
            fill_value = _nanmean(observed)
        else:
            fill_value = _nanmedian(observed)
    fill = np.broadcast_to(fill_value, out.shape)
    out[bad] = fill[bad]
    filled = int((bad & ~np.isnan(fill)).sum())
    return out, {"method": method, "imputed": filled, "unfillable_features": int(np.isnan(fill_value).sum())}


def _nanmedian(block: np.ndarray) -> np.ndarray:
    all_missing = np.isnan(block).all(axis=0)
    result = np.full(block.shape[1], np.nan)
    if (~all_missing).any():
        result[~all_missing] = np.nanmedian(block[:, ~all_missing], axis=0)
    return result


def rsd(X: np.ndarray, rows: np.ndarray | Sequence[bool] | None = None) -> np.ndarray:
    """Relative standard deviation in percent per feature: ``100·sd/|mean|`` (sd with n−1, NaN ignored).

    Features with fewer than 2 observed values, or a zero mean, give NaN.
    """
    X = _as_matrix(X)
    block = X if rows is None else X[_mask(rows, X.shape[0], "rows")]
    present = ~np.isnan(block)
    count = present.sum(axis=0)
    mean = _nanmean(block)
    dev = np.where(present, block - mean, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt((dev**2).sum(axis=0) / (count - 1))
        out = 100.0 * sd / np.abs(mean)
    out[(count < 2) | ~np.isfinite(out)] = np.nan
    return out


def qc_rsd_filter(X: np.ndarray, is_qc: np.ndarray | Sequence[bool], threshold: float = 30.0) -> FilterResult:
    """Keep features with QC RSD < ``threshold`` percent (non-finite RSD dropped; needs ≥ 2 QCs)."""
    X = _as_matrix(X)
    qc = _mask(is_qc, X.shape[0], "is_qc")
    if qc.sum() < 2:
        raise ValueError(f"QC RSD filter needs at least 2 QC injections, found {int(qc.sum())}")
    values = rsd(X, qc)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(values) & (values < threshold)
    return FilterResult(keep, values, f"QC RSD < {threshold}%")


# ---------------------------------------------------------------------------------------------- LOWESS


def _neighbourhoods(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """statsmodels' sliding k-nearest window for each sorted x: left, right (exclusive), radius."""
    n = len(x)
    left = np.empty(n, dtype=np.intp)
    right = np.empty(n, dtype=np.intp)
    radius = np.empty(n)
    lo, hi = 0, k
    for i in range(n):  # n = QC injections of one batch; O(n)
        xval = x[i]
        while hi < n and xval > (x[lo] + x[hi]) / 2.0:
            lo += 1
            hi += 1
        left[i], right[i] = lo, hi
        radius[i] = max(xval - x[lo], x[hi - 1] - xval)
    return left, right, radius


def lowess_fit(x: np.ndarray, Y: np.ndarray, frac: float = 0.75, it: int = 3) -> np.ndarray:
    """LOWESS fitted values of every row of ``Y`` (features × n) at the sorted, distinct ``x`` (n,).

    The algorithm of ``statsmodels.nonparametric.smoothers_lowess.lowess`` with ``delta=0`` (its Cython
    ``_smoothers_lowess.pyx``), vectorised over rows: ``k = max(2, min(n, int(frac·n + 1e-10)))``
    neighbours; tricube weights ``(1 − (|x_j − x_i|/r_i)³)³`` times bisquare residual weights; a point with
    fewer than 2 weights > 1e-12 keeps its own value; local linear fit through weighted means with the
    weighted x variance floored at 1e-12; ``it`` robustness passes with ``u = |e|/(6·median|e|)``
    clipped at 1, weight ``(1 − u²)²`` (all-or-nothing when the median residual is 0).
    """
    x = np.asarray(x, dtype="float64")
    Y = np.atleast_2d(np.asarray(Y, dtype="float64"))
    n = len(x)
    if Y.shape[1] != n:
        raise ValueError("Y must be features x len(x)")
    if n == 0:
        return Y.copy()
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing (sorted, distinct run orders)")
    if not 0 <= frac <= 1:
        raise ValueError("frac must be in [0, 1]")
    k = min(n, max(2, int(frac * n + 1e-10)))
    left, right, radius = _neighbourhoods(x, k)
    resid_w = np.ones_like(Y)
    fit = np.empty_like(Y)
    for robiter in range(it + 1):
        for i in range(n):
            lo, hi = left[i], right[i]
            xj = x[lo:hi]
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.abs(xj - x[i]) / radius[i]
            tri = (1.0 - d**3) ** 3
            w = tri[None, :] * resid_w[:, lo:hi]
            ok = (w > 1e-12).sum(axis=1) >= 2
            with np.errstate(divide="ignore", invalid="ignore"):
                w = w / w.sum(axis=1, keepdims=True)
                mean_x = (w * xj).sum(axis=1)
                dev = xj[None, :] - mean_x[:, None]
                sq = np.maximum((w * dev**2).sum(axis=1), 1e-12)
                p = w * (1.0 + (x[i] - mean_x)[:, None] * dev / sq[:, None])
                fit[:, i] = np.where(ok, (p * Y[:, lo:hi]).sum(axis=1), Y[:, i])
        if robiter < it:
            resid = np.abs(Y - fit)
            median = np.median(resid, axis=1)
            zero = median == 0
            with np.errstate(divide="ignore", invalid="ignore"):
                u = np.where(zero[:, None], (resid > 0).astype(float), resid / (6.0 * median[:, None]))
            u = np.minimum(u, 1.0)
            resid_w = (1.0 - u**2) ** 2
    return fit


@dataclass
class DriftCorrection:
    """Result of :func:`drift_correct`."""

    corrected: np.ndarray
    rsd_before: np.ndarray
    rsd_after: np.ndarray
    #: (batch, feature) pairs left uncorrected: too few QCs or a non-positive fit.
    uncorrected: int
    batches: list[str] = field(default_factory=list)

    def report(self, feature_ids: Sequence[object] | None = None) -> pd.DataFrame:
        """Per-feature QC RSD (%) before and after correction."""
        ids = list(feature_ids) if feature_ids is not None else list(range(len(self.rsd_before)))
        return pd.DataFrame({"feature": ids, "qc_rsd_before": self.rsd_before, "qc_rsd_after": self.rsd_after})


def drift_correct(
    X: np.ndarray,
    run_order: np.ndarray | Sequence[float],
    is_qc: np.ndarray | Sequence[bool],
    batch: np.ndarray | Sequence[object] | None = None,
    *,
    frac: float = 0.75,
    it: int = 3,
    min_qc: int = 5,
) -> DriftCorrection:
    """QC-based LOWESS drift correction per feature and batch (see module docstring)."""
    X = _as_matrix(X)
    n_inj, n_feat = X.shape
    order = np.asarray(run_order, dtype="float64")
    qc = _mask(is_qc, n_inj, "is_qc")
    if order.shape != (n_inj,) or not np.isfinite(order).all():
        raise ValueError("run_order must be finite, one value per injection")
    labels = (
        np.zeros(n_inj, dtype=object) if batch is None else pd.Series(list(batch), dtype="str").fillna("").to_numpy()
    )
    target = _nanmedian(X[qc]) if qc.any() else np.full(n_feat, np.nan)
    out = X.copy()
    uncorrected = 0
    batches = [str(b) for b in pd.unique(labels)]
    for b in pd.unique(labels):
        rows = np.flatnonzero(labels == b)
        qc_rows = rows[qc[rows]]
        qc_rows = qc_rows[np.argsort(order[qc_rows], kind="stable")]
        x_qc = order[qc_rows]
        if len(np.unique(x_qc)) != len(x_qc):
            raise ValueError(f"batch {b!r}: QC injections share a run order")
        fit_rows = np.full((n_feat, len(rows)), np.nan)
        Yqc = X[qc_rows].T  # features x QCs
        present = ~np.isnan(Yqc)
        enough = present.sum(axis=1) >= max(min_qc, 2)
        if enough.any():
            patterns, inverse = np.unique(present[enough], axis=0, return_inverse=True)
            feat_idx = np.flatnonzero(enough)
            for p, pattern in enumerate(patterns):
                members = feat_idx[inverse.ravel() == p]
                xs = x_qc[pattern]
                fitted = lowess_fit(xs, Yqc[np.ix_(members, np.flatnonzero(pattern))], frac=frac, it=it)
                fit_rows[members] = _interp_rows(xs, fitted, order[rows])
        good = np.isfinite(fit_rows).all(axis=1) & (fit_rows > 0).all(axis=1) & np.isfinite(target)
        uncorrected += int((~good).sum())
        block = out[np.ix_(rows, np.flatnonzero(good))]
        with np.errstate(invalid="ignore"):
            out[np.ix_(rows, np.flatnonzero(good))] = block / fit_rows[good].T * target[good]
    return DriftCorrection(out, rsd(X, qc), rsd(out, qc), uncorrected, batches)


def _interp_rows(xs: np.ndarray, fitted: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``np.interp`` of every row of ``fitted`` (at ``xs``) onto ``targets``, constant beyond the ends."""
    if len(xs) == 1:
        return np.repeat(fitted, len(targets), axis=1)
    t = np.clip(targets, xs[0], xs[-1])
    hi = np.clip(np.searchsorted(xs, t, side="right"), 1, len(xs) - 1)
    lo = hi - 1
    a = (t - xs[lo]) / (xs[hi] - xs[lo])
    return fitted[:, lo] * (1.0 - a) + fitted[:, hi] * a
