"""Sample normalisation, transformation and scaling, as MetaboAnalystR 4.3.0 defines them.

Source: MetaboAnalystR ``R/general_norm_utils.R`` (``Normalization``, ``SumNorm``, ``MedianNorm``,
``ProbNorm``, ``LogNorm``, ``SquareRootNorm``, ``AutoNorm``, ``ParetoNorm``, ``MeanCenter``,
``RangeNorm``) as summarised in ``omics.md`` §7.2, and Dieterle et al. 2006 (Anal Chem 78:4281) for PQN.
``X`` is injections × features; nothing is modified in place. ``x_i·`` is an injection (row), ``x_·f``
a feature (column).

Row (sample) normalisation — :func:`normalise_rows`
    * ``sum``:    ``x_if ← 1000 · x_if / Σ_f x_if``  (``SumNorm``; missing values ignored in the sum)
    * ``median``: ``x_if ← x_if / median_f(x_i·)``  (``MedianNorm``; if that median is 0, the median of
      the row's non-zero values is used, per ``omics.md`` §7.2)
    * ``pqn``:    ``r_f = median`` (or mean) of ``x_·f`` over the reference injections — the pooled QCs
      (``reference="qc"``) or the study samples (``"samples"``); ``q_i = median_f(x_if / r_f)`` over the
      finite ratios > 0; ``x_if ← x_if / q_i`` (``ProbNorm``; MetaboAnalyst's ``GroupPQN`` uses the mean
      of a reference group, Dieterle's PQN the median spectrum — both are offered, median is default).
      No prior integral normalisation is done (MetaboAnalyst does none).
    * ``none``.

Transformation — :func:`transform`; ``λ = min{|x| : x ≠ 0}/10`` over the whole matrix (MetaboAnalyst's
``min.val``; computed on the model rows and reused for projected QCs)
    * ``glog``:  ``log10((x + √(x² + λ²))/2)`` — MetaboAnalyst's ``LogNorm`` ("Log10 Normalization"), a
      generalised log that tolerates 0 and negatives and tends to ``log10 x`` for ``x ≫ λ``.
    * ``log10``: ``log10(x + c)`` with the offset ``c = λ`` by default (``offset=0`` gives the plain
      ``log10 x`` and rejects non-positive values). Not a MetaboAnalyst option; offered for the
      ``--transform log10`` of the command line and recorded with its offset.
    * ``sqrt``:  ``((x + √(x² + λ²))/2)^½`` (``SquareRootNorm``); ``cuberoot``: ``sign(x)·|x|^⅓`` (``CrNorm``).
    * ``none``.

Scaling, per feature — :func:`fit_scaling` / :func:`apply_scaling` (``sd`` is R's, n − 1)
    * ``mean`` (centre only): ``x − mean``  (``MeanCenter``)
    * ``auto``:   ``(x − mean)/sd``  (``AutoNorm``, unit variance)
    * ``pareto``: ``(x − mean)/√sd``  (``ParetoNorm``)
    * ``range``:  ``(x − mean)/(max − min)``; a constant feature is returned unchanged (``RangeNorm``)
    * ``none``.
    The centre and scale are estimated on the model rows (study samples) and applied unchanged to
    projected rows (QCs), as R ``predict.prcomp`` applies ``center``/``scale``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROW_METHODS: tuple[str, ...] = ("none", "sum", "median", "pqn")
TRANSFORMS: tuple[str, ...] = ("none", "glog", "log10", "sqrt", "cuberoot")
SCALINGS: tuple[str, ...] = ("none", "mean", "auto", "pareto", "range")


def _as_matrix(X: np.ndarray) -> np.ndarray:
    arr = np.asarray(X, dtype="float64")
    if arr.ndim != 2:
        raise ValueError("X must be 2-D (injections x features)")
    return arr


def _row_median(X: np.ndarray) -> np.ndarray:
    """Row medians over non-missing values (NaN for an all-missing row, no warning)."""
    out = np.full(X.shape[0], np.nan)
    has = ~np.isnan(X).all(axis=1)
    if has.any():
        out[has] = np.nanmedian(X[has], axis=1)
    return out


def pqn_reference(X: np.ndarray, rows: np.ndarray | Sequence[bool], statistic: str = "median") -> np.ndarray:
    """The PQN reference spectrum: per-feature median (or mean) over the reference injections."""
    X = _as_matrix(X)
    ref_rows = np.asarray(rows, dtype=bool)
    if ref_rows.shape != (X.shape[0],) or not ref_rows.any():
        raise ValueError("PQN needs at least one reference injection (one flag per injection)")
    block = X[ref_rows]
    if statistic == "median":
        out = np.full(X.shape[1], np.nan)
        has = ~np.isnan(block).all(axis=0)
        out[has] = np.nanmedian(block[:, has], axis=0)
        return out
    if statistic == "mean":
        present = ~np.isnan(block)
        count = present.sum(axis=0)
        total = np.where(present, block, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    raise ValueError("statistic must be 'median' or 'mean'")


@dataclass(frozen=True)
class RowNormalisation:
    """What :func:`normalise_rows` did: the per-row divisor (``x_i· ← x_i· / factor_i``)."""

    method: str
    factors: np.ndarray
    reference: np.ndarray | None = None


def normalise_rows(
    X: np.ndarray,
    method: str = "none",
    *,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, RowNormalisation]:
    """Row-wise (per injection) normalisation; ``reference`` is the PQN reference spectrum (see
    :func:`pqn_reference`). Returns the normalised matrix and the per-row factors."""
    X = _as_matrix(X)
    if method not in ROW_METHODS:
        raise ValueError(f"unknown row normalisation {method!r}; choose from {ROW_METHODS}")
    if method == "none":
        return X.copy(), RowNormalisation(method, np.ones(X.shape[0]))
    if method == "sum":
        factors = np.nansum(X, axis=1) / 1000.0
    elif method == "median":
        factors = _row_median(X)
        zero = factors == 0
        if zero.any():
            nonzero = np.where(X[zero] == 0, np.nan, X[zero])
            factors[zero] = _row_median(nonzero)
    else:
        if reference is None:
            raise ValueError("PQN needs a reference spectrum (pqn_reference)")
        ref = np.asarray(reference, dtype="float64")
        if ref.shape != (X.shape[1],):
            raise ValueError("reference must have one value per feature")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = X / ref
        ratio[~(np.isfinite(ratio) & (ratio > 0))] = np.nan
        factors = _row_median(ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = X / factors[:, None]
    return out, RowNormalisation(method, factors, None if method != "pqn" else np.asarray(reference, dtype="float64"))


def glog_lambda(X: np.ndarray) -> float:
    """MetaboAnalyst's ``min.val``: ``min{|x| : x ≠ 0}/10`` over the finite values of the whole matrix."""
    X = _as_matrix(X)
    values = np.abs(X[np.isfinite(X) & (X != 0)])
    if values.size == 0:
        raise ValueError("no non-zero value to derive the glog lambda from")
    return float(values.min() / 10.0)


def transform(
    X: np.ndarray,
    method: str = "none",
    *,
    lam: float | None = None,
    offset: float | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Apply a transformation (see module docstring). ``lam`` (λ) defaults to :func:`glog_lambda` of ``X``;
    pass the model's λ when transforming projected rows. Returns the matrix and its parameters."""
    X = _as_matrix(X)
    if method not in TRANSFORMS:
        raise ValueError(f"unknown transform {method!r}; choose from {TRANSFORMS}")
    if method == "none":
        return X.copy(), {"method": method}
    if method == "cuberoot":
        return np.cbrt(X), {"method": method}
    lam_value = glog_lambda(X) if lam is None else float(lam)
    if method == "glog":
        return np.log10((X + np.sqrt(X**2 + lam_value**2)) / 2.0), {"method": method, "lambda": lam_value}
    if method == "sqrt":
        return np.sqrt((X + np.sqrt(X**2 + lam_value**2)) / 2.0), {"method": method, "lambda": lam_value}
    c = lam_value if offset is None else float(offset)
    shifted = X + c
    if np.any(shifted[np.isfinite(shifted)] <= 0):
        raise ValueError(f"log10 of a non-positive value (offset {c}); use glog or a larger offset")
    return np.log10(shifted), {"method": method, "offset": c}


@dataclass(frozen=True)
class Scaling:
    """Per-feature centre and scale: ``x ← (x − center)/scale``."""

    method: str
    center: np.ndarray
    scale: np.ndarray

    def apply(self, X: np.ndarray) -> np.ndarray:
        return apply_scaling(X, self)


def fit_scaling(X: np.ndarray, method: str = "none") -> Scaling:
    """Estimate the centre and scale of ``method`` per feature (NaN ignored; ``sd`` with n − 1)."""
    X = _as_matrix(X)
    if method not in SCALINGS:
        raise ValueError(f"unknown scaling {method!r}; choose from {SCALINGS}")
    p = X.shape[1]
    if method == "none":
        return Scaling(method, np.zeros(p), np.ones(p))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns give NaN, as R's mean(NA)
        center = np.nanmean(X, axis=0) if X.shape[0] else np.full(p, np.nan)
        if method == "mean":
            return Scaling(method, center, np.ones(p))
        if method == "range":
            span = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
            constant = span == 0
            return Scaling(method, np.where(constant, 0.0, center), np.where(constant, 1.0, span))
        sd = np.nanstd(X, axis=0, ddof=1)
    if method == "auto":
        return Scaling(method, center, sd)
    return Scaling(method, center, np.sqrt(sd))


def apply_scaling(X: np.ndarray, scaling: Scaling) -> np.ndarray:
    X = _as_matrix(X)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (X - scaling.center) / scaling.scale


def scale(X: np.ndarray, method: str = "none") -> np.ndarray:
    """Fit and apply in one step (MetaboAnalyst's ``AutoNorm`` etc. applied column-wise)."""
    return apply_scaling(X, fit_scaling(X, method))
