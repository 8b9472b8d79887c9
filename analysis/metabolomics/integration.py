"""Integration: Spearman correlations between two feature tables measured on the same patient and visit.

Typical use (issue 6, item 7): genus relative abundances (microbiome) against metabolite intensities, each
table with one row per (patient, visit). :func:`spearman_pairs` matches rows on the key columns (inner join:
only patient-visits present in both tables count), and correlates every left feature with every right
feature.

Statistic (equal to ``scipy.stats.spearmanr`` on each pair; tested):

* ``ρ`` = Pearson correlation of the ranks (``scipy.stats.rankdata(method="average")``: ties get their
  mean rank), computed for all pairs at once as ``Zxᵀ Zy`` with ``Z`` the centred, unit-norm rank columns.
* p-value: two-sided, from ``t = ρ·√((n − 2)/(1 − ρ²))`` with ``n − 2`` degrees of freedom (scipy's and
  R ``cor.test(method="spearman", exact=FALSE)``'s asymptotic t approximation); ``|ρ| = 1`` gives p = 0.
* A constant column (within the rows used) has no ranks to correlate: ``ρ`` and p are NaN (scipy warns and
  returns NaN too). Pairs with fewer than ``min_pairs`` complete rows get NaN.
* Missing values: pairwise complete rows, as ``spearmanr(nan_policy="omit")`` on each pair — ranks are
  recomputed within the rows both features observe. Vectorised by missingness pattern: columns sharing a
  pattern (usually all of them) are ranked and correlated together.
* q: Benjamini–Hochberg over every pair with a finite p (:func:`analysis.metabolomics.differential.bh_qvalues`).

Output: one tidy row per pair — ``<x>, <y>, n, rho, p, q`` — sorted by p (then names), where ``<x>``/``<y>``
are the ``names`` given (e.g. ``genus``, ``metabolite``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.metabolomics.differential import bh_qvalues

DUPLICATE_RULES: tuple[str, ...] = ("error", "mean")


def _keyed(frame: pd.DataFrame, on: Sequence[str], duplicates: str, label: str) -> pd.DataFrame:
    """Numeric feature columns indexed by the key columns; duplicate keys raise or are averaged."""
    missing = [c for c in on if c not in frame.columns]
    if missing:
        raise ValueError(f"{label} table lacks key column(s) {missing}")
    values = frame.set_index(list(on))
    values = values.apply(pd.to_numeric, errors="raise").astype("float64")
    if values.index.has_duplicates:
        if duplicates == "error":
            first = values.index[values.index.duplicated()][0]
            raise ValueError(f"{label} table has several rows for {dict(zip(on, np.atleast_1d(first), strict=False))}")
        values = values.groupby(level=list(range(len(on))), sort=False).mean()
    return values


def _standardised_ranks(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred, unit-norm average ranks per column, and whether the column varies."""
    ranks = stats.rankdata(block, method="average", axis=0) if len(block) else block.copy()
    ranks -= ranks.mean(axis=0)
    norm = np.sqrt((ranks**2).sum(axis=0))
    varies = norm > 1e-12 * max(1.0, len(block))
    with np.errstate(invalid="ignore", divide="ignore"):
        ranks = np.where(varies, ranks / np.where(varies, norm, 1.0), np.nan)
    return ranks, varies


def spearman_matrix(x: np.ndarray, y: np.ndarray, *, min_pairs: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ρ, two-sided p and n for every column pair of ``x`` (rows × p) and ``y`` (rows × q), same rows."""
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError("x and y must be 2-D with the same rows")
    p_, q_ = x.shape[1], y.shape[1]
    rho = np.full((p_, q_), np.nan)
    n = np.zeros((p_, q_), dtype=np.int64)
    present_x, present_y = ~np.isnan(x), ~np.isnan(y)
    # group columns by missingness pattern: one rank/correlation block per pair of patterns
    pat_x, inv_x = np.unique(present_x.T, axis=0, return_inverse=True)
    pat_y, inv_y = np.unique(present_y.T, axis=0, return_inverse=True)
    inv_x, inv_y = inv_x.ravel(), inv_y.ravel()
    for a, rows_a in enumerate(pat_x):
        cols_x = np.flatnonzero(inv_x == a)
        for b, rows_b in enumerate(pat_y):
            cols_y = np.flatnonzero(inv_y == b)
            rows = rows_a & rows_b
            k = int(rows.sum())
            n[np.ix_(cols_x, cols_y)] = k
            if k < max(min_pairs, 3):
                continue
            zx, _ = _standardised_ranks(x[np.ix_(rows, cols_x)])
            zy, _ = _standardised_ranks(y[np.ix_(rows, cols_y)])
            rho[np.ix_(cols_x, cols_y)] = np.clip(zx.T @ zy, -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = n - 2.0
        t = rho * np.sqrt(df / ((1.0 - rho) * (1.0 + rho)))
        p = 2.0 * stats.t.sf(np.abs(t), df)
    p = np.where(np.isfinite(rho) & (np.abs(rho) >= 1.0), 0.0, p)
    p[~np.isfinite(rho)] = np.nan
    return rho, p, n


def spearman_pairs(
    left: pd.DataFrame,
    right: pd.DataFrame,
    *,
    on: Sequence[str] = ("subject_id", "visit"),
    names: tuple[str, str] = ("x", "y"),
    min_pairs: int = 5,
    duplicates: str = "error",
) -> pd.DataFrame:
    """Spearman ρ of every left feature with every right feature over the shared (patient, visit) rows.

    ``left`` and ``right`` are wide: the ``on`` key columns plus one numeric column per feature. Rows are
    matched on the keys (inner join); ``duplicates="mean"`` averages several rows with one key (e.g. two
    specimens of one visit), ``"error"`` (default) refuses them. See the module docstring for the statistic.
    """
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_RULES}")
    if names[0] == names[1]:
        raise ValueError("names must differ")
    a = _keyed(left, on, duplicates, "left")
    b = _keyed(right, on, duplicates, "right")
    shared = a.index.intersection(b.index, sort=False)
    a, b = a.loc[shared], b.loc[shared]
    rho, p, n = spearman_matrix(a.to_numpy(), b.to_numpy(), min_pairs=min_pairs)
    out = pd.DataFrame(
        {
            names[0]: np.repeat(np.asarray(a.columns, dtype=object), b.shape[1]),
            names[1]: np.tile(np.asarray(b.columns, dtype=object), a.shape[1]),
            "n": n.ravel(),
            "rho": rho.ravel(),
            "p": p.ravel(),
        }
    )
    out["q"] = bh_qvalues(out["p"].to_numpy())
    out = out.sort_values(["p", names[0], names[1]], na_position="last", kind="stable").reset_index(drop=True)
    out.attrs["matched_rows"] = len(shared)
    return out
