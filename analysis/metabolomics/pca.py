"""PCA equal to R ``prcomp(x, center = TRUE, scale. = FALSE)``, with QC projection.

R's ``stats:::prcomp.default`` (R 4.2; ``omics.md`` §7.3)::

    x <- scale(x, center = center, scale = scale.)     # centre by column means; scale. uses sd (n - 1)
    s <- svd(x, nu = 0, nv = k)                        # LAPACK dgesdd (La.svd)
    sdev <- s$d / sqrt(max(1, n - 1))                  # all min(n, p) values, never truncated
    rotation <- s$v[, 1:k]                             # k = min(n, p), or rank., or fewer by tol
    x <- x %*% rotation                                # scores ($x)

Here: ``Xc = X − colMeans(X)`` (÷ ``sd`` if ``scale=True``; a zero-variance column is an error as in R),
``U, d, Vt = numpy.linalg.svd(Xc, full_matrices=False)`` (also LAPACK ``gesdd``: a **full** SVD — a
randomized or truncated SVD would not be prcomp-exact), ``sdev = d/√max(1, n−1)``, ``rotation = Vtᵀ``,
``scores = Xc @ rotation`` (the product R computes, not ``U·d``). ``tol`` keeps components with
``sdev > tol·sdev[1]``; ``rank`` keeps the first ``rank``.

Importance (``summary.prcomp``): ``var_k = sdev_k² / Σ sdev²`` over **all** min(n, p) components;
rows ``Standard deviation`` (unrounded), ``Proportion of Variance`` = ``round(var, 5)``,
``Cumulative Proportion`` = ``round(cumsum(var), 5)``. :func:`format_importance` prints it as
``print(summary(prcomp(...)))`` does (``digits = max(3, getOption("digits") − 3) = 4``; R's
``formatReal`` column by column: fixed notation unless it is wider than scientific).

Sign convention: R does not normalise signs (they depend on the LAPACK build), so every component is
flipped to make its **largest-|value| loading positive** (scikit-learn ``svd_flip(u_based_decision=False)``;
the first such loading on ties); scores flip with it. Compare with R only up to a sign per component,
or flip R's output the same way (:func:`flip_signs`).

Projection (``predict.prcomp``): ``scores_new = ((X_new − center)/scale) @ rotation`` — pooled QCs are
projected onto the model built from the study samples, so drift shows as QC scatter/trend in PC space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SIGN_CONVENTIONS: tuple[str, ...] = ("max_abs_loading_positive", "none")
IMPORTANCE_ROWS: tuple[str, ...] = ("Standard deviation", "Proportion of Variance", "Cumulative Proportion")


def flip_signs(rotation: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Flip each column so its largest-|value| loading is positive (scores flipped alike)."""
    rotation = np.array(rotation, dtype="float64", copy=True)
    if rotation.size == 0:
        return rotation, None if scores is None else np.array(scores, dtype="float64", copy=True)
    idx = np.argmax(np.abs(rotation), axis=0)
    signs = np.sign(rotation[idx, np.arange(rotation.shape[1])])
    signs[signs == 0] = 1.0
    rotation *= signs
    if scores is None:
        return rotation, None
    return rotation, np.asarray(scores, dtype="float64") * signs


@dataclass(frozen=True, eq=False)
class PCAResult:
    """What R's ``prcomp`` returns, plus labels. ``sdev`` has all min(n, p) values (as in R)."""

    sdev: np.ndarray
    rotation: np.ndarray
    scores: np.ndarray
    center: np.ndarray
    scale: np.ndarray | None
    sample_ids: list[str]
    feature_ids: list[str]
    sign_convention: str = "max_abs_loading_positive"

    @property
    def n_components(self) -> int:
        return self.rotation.shape[1]

    @property
    def component_names(self) -> list[str]:
        return [f"PC{i}" for i in range(1, self.n_components + 1)]

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """Unrounded ``sdev²/Σsdev²`` over all components."""
        var = self.sdev**2
        total = var.sum()
        return var / total if total > 0 else np.zeros_like(var)

    def importance(self) -> pd.DataFrame:
        """``summary(prcomp(...))$importance``: 3 rows × all min(n, p) components (proportions rounded to 5)."""
        ratio = self.explained_variance_ratio
        names = [f"PC{i}" for i in range(1, len(self.sdev) + 1)]
        return pd.DataFrame(
            [self.sdev, np.round(ratio, 5), np.round(np.cumsum(ratio), 5)], index=list(IMPORTANCE_ROWS), columns=names
        )

    def project(self, X_new: np.ndarray) -> np.ndarray:
        """Scores of new rows on this model (R ``predict.prcomp``)."""
        X_new = np.asarray(X_new, dtype="float64")
        if X_new.ndim != 2 or X_new.shape[1] != self.rotation.shape[0]:
            raise ValueError(f"new data must have {self.rotation.shape[0]} features")
        if not np.isfinite(X_new).all():
            raise ValueError("new data contain missing or infinite values")
        centred = X_new - self.center
        if self.scale is not None:
            centred = centred / self.scale
        return centred @ self.rotation

    def scores_frame(self, X_new: np.ndarray | None = None, ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Scores as a frame (``sample_id`` + PC columns); of ``X_new`` if given (projection)."""
        values = self.scores if X_new is None else self.project(X_new)
        labels = self.sample_ids if X_new is None else (list(ids) if ids is not None else list(range(len(values))))
        frame = pd.DataFrame(values, columns=self.component_names)
        frame.insert(0, "sample_id", labels)
        return frame

    def loadings_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rotation, columns=self.component_names)
        frame.insert(0, "feature_id", self.feature_ids)
        return frame


def prcomp(
    X: np.ndarray,
    *,
    center: bool = True,
    scale: bool = False,
    rank: int | None = None,
    tol: float | None = None,
    sign_convention: str = "max_abs_loading_positive",
    sample_ids: Sequence[object] | None = None,
    feature_ids: Sequence[object] | None = None,
) -> PCAResult:
    """R ``prcomp`` on samples × features ``X`` (see module docstring)."""
    if sign_convention not in SIGN_CONVENTIONS:
        raise ValueError(f"sign_convention must be one of {SIGN_CONVENTIONS}")
    X = np.asarray(X, dtype="float64")
    if X.ndim != 2:
        raise ValueError("X must be 2-D (samples x features)")
    n, p = X.shape
    if n == 0 or p == 0:
        raise ValueError("prcomp needs at least one sample and one feature")
    if not np.isfinite(X).all():
        raise ValueError("infinite or missing values in X (impute or filter first)")
    mean = X.mean(axis=0) if center else np.zeros(p)
    Xc = X - mean
    sd = None
    if scale:
        sd = np.sqrt((Xc**2).sum(axis=0) / max(1, n - 1)) if center else np.sqrt((X**2).sum(axis=0) / max(1, n - 1))
        if np.any(sd == 0):
            raise ValueError("cannot rescale a constant/zero column to unit variance")
        Xc /= sd
    _, d, vt = np.linalg.svd(Xc, full_matrices=False)
    sdev = d / math.sqrt(max(1, n - 1))
    k = min(n, p) if rank is None else min(int(rank), n, p)
    if rank is not None and int(rank) < 1:
        raise ValueError("rank must be >= 1")
    if tol is not None:
        k = min(k, int(np.sum(sdev > sdev[0] * tol)))
        k = max(k, 1)
    rotation = np.ascontiguousarray(vt[:k].T)
    del vt
    if sign_convention == "max_abs_loading_positive":
        rotation, _ = flip_signs(rotation)
    scores = Xc @ rotation
    return PCAResult(
        sdev=sdev,
        rotation=rotation,
        scores=scores,
        center=mean,
        scale=sd,
        sample_ids=[str(s) for s in (sample_ids if sample_ids is not None else range(1, n + 1))],
        feature_ids=[str(f) for f in (feature_ids if feature_ids is not None else range(1, p + 1))],
        sign_convention=sign_convention,
    )


# ---------------------------------------------------------------------------------------------- printing


def _scientific(x: float, digits: int) -> tuple[bool, int, int, bool]:
    """R ``format.c: scientific()``: (negative, kpower, nsig, rounding widens)."""
    if x == 0 or not math.isfinite(x):
        return (x < 0, 0, 1, False)
    alpha = abs(x)
    kp = math.floor(math.log10(alpha)) - digits + 1
    r_prec = alpha / 10.0**kp
    if r_prec < 10.0 ** (digits - 1):
        r_prec *= 10.0
        kp -= 1
    a = float(round(r_prec))  # nearbyint: half to even
    nsig = digits
    for _ in range(digits):
        a /= 10.0
        if a == math.floor(a):
            nsig -= 1
        else:
            break
    if nsig == 0 and digits > 0:
        nsig = 1
        kp += 1
    kpower = kp + digits - 1
    rgt = min(max(digits - kpower, 0), 22)
    fuzz = 0.5 / 10.0**rgt
    widens = 0 < kpower <= 22 and alpha < 10.0**kpower - fuzz
    return (x < 0, kpower, nsig, widens)


def format_column(values: Sequence[float], digits: int = 4) -> list[str]:
    """Format one column the way R's ``formatReal`` does for ``print(matrix, digits=)``."""
    neg = False
    mxsl = rgt = mxns = -(10**9)
    mxe, mne = -(10**9), 10**9
    for x in values:
        if not math.isfinite(x):
            continue
        is_neg, kpower, nsig, widens = _scientific(float(x), digits)
        left = kpower + 1 - (1 if widens else 0)
        sleft = int(is_neg) + (1 if left <= 0 else left)
        rgt = max(rgt, nsig - left)
        mxsl = max(mxsl, sleft)
        mxns = max(mxns, nsig)
        mxe, mne = max(mxe, kpower), min(mne, kpower)
        neg = neg or is_neg
    if mxns < 0:
        return [str(v) for v in values]
    rgt = max(rgt, 0)
    width_fixed = mxsl + rgt + (1 if rgt else 0)
    e = 2 if (mxe >= 100 or mne <= -99) else 1
    d = mxns - 1
    width_sci = int(neg) + (1 if d > 0 else 0) + d + 4 + e
    if width_fixed <= width_sci:
        return [f"{v:.{rgt}f}" for v in values]
    out = []
    for v in values:
        mantissa, exponent = f"{v:.{d}e}".split("e")
        out.append(f"{mantissa}e{int(exponent):+03d}" if e == 1 else f"{mantissa}e{int(exponent):+04d}")
    return out


def format_importance(result: PCAResult, digits: int = 4, width: int = 80) -> str:
    """``print(summary(prcomp(...)))`` text: 'Importance of components:' and the 3-row table.

    Columns are formatted one by one as R's ``formatReal`` does and wrapped into blocks no wider than
    ``width`` (R's ``options(width = 80)``), repeating the row labels, as R's ``printMatrix`` does.
    """
    table = result.importance()
    k = result.n_components
    if k < len(result.sdev):
        title = f"Importance of first k={k} (out of {len(result.sdev)}) components:"
        table = table.iloc[:, :k]
    else:
        title = "Importance of components:"
    columns = [format_column(table[c].tolist(), digits) for c in table.columns]
    widths = [max(len(name), *(len(v) for v in col)) for name, col in zip(table.columns, columns, strict=True)]
    label_width = max(len(r) for r in table.index)
    lines = [title]
    start = 0
    while start < len(columns):
        end, used = start, label_width
        while True:  # R: do { width += w[jmax]; jmax++ } while (jmax < c && width + w[jmax] < R_print.width)
            used += widths[end] + 1
            end += 1
            if not (end < len(columns) and used + widths[end] + 1 < width):
                break
        block = range(start, end)
        lines.append(" " * label_width + "".join(" " + table.columns[j].rjust(widths[j]) for j in block))
        for i, row in enumerate(table.index):
            lines.append(row.ljust(label_width) + "".join(" " + columns[j][i].rjust(widths[j]) for j in block))
        start = end
    return "\n".join(lines)
