"""Group tests on distances and alpha indices: PERMANOVA (adonis2), PERMDISP (betadisper), ANOSIM,
Kruskal–Wallis / Wilcoxon with BH, and within-patient change from baseline.

Reference: ``omics.md`` §3.3 (skbio permanova/anosim/permdisp), §4 (QIIME 2 alpha-group-significance), §5 and
vegan 2.6-4 sources (``adonis2``, ``permutest.cca``, ``betadisper``, ``permutest.betadisper``, ``anosim``).

* **PERMANOVA** = vegan ``adonis2(d ~ term1 + term2 ..., by="terms")``: sequential (type I) sums of squares of the
  Gower matrix ``G = -1/2 J D² J`` projected on the centred design, ``R² = SS / SS_total``, pseudo-F against the
  residual of the full model. One permutation of the samples is applied to all terms at once (vegan's
  ``model="reduced"`` with no conditioning terms is exactly that). p = (#{F* >= F - sqrt(eps)} + 1)/(P + 1).
  For one factor, F and R² equal skbio ``permanova`` and vegan to rounding.
* **Permutation schemes.** ``strata``: permute only within blocks (vegan ``strata=`` / ``how(blocks=)``), for
  factors that vary within a patient (visit). ``whole_plots``: permute whole patients (vegan ``how(plots =
  Plots(strata = patient, type = "free"), within = Within(type = "none"))``, :func:`whole_plot_permutations`),
  i.e. shuffle the factor's per-patient values among patients (the factor must be constant within a patient,
  e.g. arm or response); this is the exchangeable unit when patients contribute several samples, and works
  with unequal plot sizes (which permute refuses). A multi-term :func:`adonis2` with ``plots=patient`` tests
  each between-patient term by whole-patient permutations and each within-patient term by permutations
  within patients, in one call.
* **PERMDISP** = vegan ``betadisper`` (type ``"median"`` by default, or ``"centroid"``): PCoA on every axis with a
  non-zero eigenvalue, distances to the group spatial median / centroid computed separately on positive and
  negative axes, ``z = sqrt(d²₊ - d²₋)``; ANOVA F; permutation p as ``permutest.betadisper`` (permuting the
  residuals ``z - group mean``). Centroid type equals vegan to rounding. For the median type we solve for the
  spatial median exactly (Weiszfeld), while vegan stops R's BFGS ``optim`` at a relative objective change of
  1e-8, which leaves its median ~1e-4 from the optimum in many dimensions: distances agree to ~1e-3 relative,
  F to ~1e-2. skbio ``permdisp`` differs from both (10 axes only).
* **ANOSIM** = vegan ``anosim``: ``R = (r̄_B - r̄_W) / (M/2)`` on average ranks of the M condensed distances.

Permutations are vectorised: a batch of B permutations becomes one n x (B·k) matrix of permuted (scaled)
design or indicator columns, and ``G @ Z`` (one BLAS call) gives every permuted statistic of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import squareform

from analysis.microbiome.beta import BetaDistances
from analysis.microbiome.ordination import distance_input

__all__ = [
    "PermutationTest",
    "adonis2",
    "alpha_change_tests",
    "alpha_group_tests",
    "anosim",
    "baseline_distance_tests",
    "bh",
    "distance_to_baseline",
    "permanova",
    "permdisp",
    "permutation_matrix",
    "signed_rank_test",
    "whole_plot_permutations",
]

EPS = float(np.sqrt(np.finfo(float).eps))
_BATCH_ELEMENTS = 1 << 24  # n * batch * columns per BLAS call (~128 MiB of float64)


@dataclass(frozen=True)
class PermutationTest:
    """Result of a permutation test: the statistic, its p-value and what went in."""

    method: str
    statistic_name: str
    statistic: float
    p_value: float
    permutations: int
    sample_size: int
    number_of_groups: int
    details: dict[str, Any] = field(default_factory=dict)

    def as_series(self) -> pd.Series:
        return pd.Series(
            {
                "method name": self.method,
                "test statistic name": self.statistic_name,
                "sample size": self.sample_size,
                "number of groups": self.number_of_groups,
                "test statistic": self.statistic,
                "p-value": self.p_value,
                "number of permutations": self.permutations,
                **{k: v for k, v in self.details.items() if np.isscalar(v)},
            }
        )


# ------------------------------------------------------------------------------------------- helpers


def bh(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values (NaN p-values stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def _aligned(
    dist: Any, grouping: Any, ids: Sequence[str] | None, extra: dict[str, Any] | None = None
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, dict[str, np.ndarray | None]]:
    """Square distances, ids and grouping values aligned to the distance ids; samples with a missing group
    (or missing extra value) are dropped."""
    square, dist_ids = distance_input(dist, ids)
    values = _align_values(grouping, dist_ids)
    aligned_extra = {k: (None if v is None else _align_values(v, dist_ids)) for k, v in (extra or {}).items()}
    keep = ~pd.isna(values)
    for v in aligned_extra.values():
        if v is not None:
            keep &= ~pd.isna(v)
    if not keep.all():
        idx = np.flatnonzero(keep)
        square = square[np.ix_(idx, idx)]
        dist_ids = tuple(dist_ids[i] for i in idx)
        values = values[idx]
        aligned_extra = {k: (None if v is None else v[idx]) for k, v in aligned_extra.items()}
    return square, dist_ids, values, aligned_extra


def _align_values(values: Any, ids: tuple[str, ...]) -> np.ndarray:
    if isinstance(values, pd.Series):
        index = values.index.astype(str)
        if set(ids) <= set(index):
            return values.set_axis(index).reindex(list(ids)).to_numpy(dtype=object)
        if len(values) == len(ids):
            return values.to_numpy(dtype=object)
        missing = sorted(set(ids) - set(index))[:5]
        raise ValueError(f"grouping has no value for samples {missing}")
    arr = np.asarray(values, dtype=object)
    if arr.shape != (len(ids),):
        raise ValueError(f"grouping has {arr.shape[0]} values for {len(ids)} samples")
    return arr


def _codes(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    cat = pd.Categorical(values)
    return np.asarray(cat.codes, dtype=np.intp), list(cat.categories)


def _gower(square: np.ndarray) -> np.ndarray:
    g = -0.5 * square * square
    row = g.mean(axis=1)
    return g - row[:, None] - row[None, :] + row.mean()


def permutation_matrix(n: int, permutations: int, seed: int | None, *, strata: np.ndarray | None = None) -> np.ndarray:
    """``(permutations, n)`` seeded index permutations, free or only within ``strata`` (vegan ``how(blocks=)``).

    Whole-plot permutations (a patient-level factor shuffled among patients) are made by :func:`_plot_labels`.
    """
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.argsort(rng.random((permutations, n)), axis=1)
    codes, _ = _codes(strata)
    out = np.tile(np.arange(n), (permutations, 1))
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        if members.size > 1:
            shuffled = members[np.argsort(rng.random((permutations, members.size)), axis=1)]
            out[:, members] = shuffled
    return out


def whole_plot_permutations(plots: Any, permutations: int, seed: int | None) -> np.ndarray:
    """``(permutations, n)`` donor rows of seeded whole-plot permutations (vegan/permute
    ``how(plots = Plots(strata = plots, type = "free"), within = Within(type = "none"))``).

    Each permutation shuffles the plots (patients): sample ``s``, the j-th sample of plot ``i`` (in data order), takes
    its plot-level values from ``donor[b, s]``, the j-th sample of plot ``π_b(i)`` (``j`` modulo that plot's size).
    With equal plot sizes this is exactly permute's ``shuffleStrata`` (a row permutation; permute refuses unequal
    sizes); with unequal sizes the rows of a factor constant within plots are still that factor shuffled among
    plots, which is all :func:`adonis2` and :func:`permanova` use it for.
    """
    plot_codes, _ = _codes(np.asarray(plots, dtype=object))
    n = plot_codes.size
    n_plots = int(plot_codes.max()) + 1 if n else 0
    order = np.argsort(plot_codes, kind="stable")
    sizes = np.bincount(plot_codes, minlength=n_plots)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.empty(n, dtype=np.intp)
    position[order] = np.arange(n) - np.repeat(starts, sizes)  # j: rank of the sample within its plot
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((permutations, n_plots)), axis=1)
    target = perm[:, plot_codes]  # (P, n): the plot each sample takes its values from
    return order[starts[target] + position[None, :] % sizes[target]]


def _plot_labels(labels: np.ndarray, plots: np.ndarray, permutations: int, seed: int | None) -> np.ndarray:
    """``(permutations, n)`` permuted label codes, shuffling the per-plot label among plots (whole plots)."""
    _check_constant_within(labels, plots, "the factor")
    return labels[whole_plot_permutations(plots, permutations, seed)]


def _check_constant_within(values: np.ndarray, plots: np.ndarray, what: str) -> None:
    plot_codes, _ = _codes(np.asarray(plots, dtype=object))
    value_codes, _ = _codes(np.asarray(values, dtype=object))
    pairs = np.unique(np.c_[plot_codes, value_codes], axis=0)
    if len(pairs) != len(np.unique(plot_codes)):
        raise ValueError(
            f"whole-plot permutation needs {what} to be constant within each plot (patient): "
            "test within-patient terms with permutations within patients"
        )


def _p_value(observed: float, permuted: np.ndarray) -> float:
    return float((np.count_nonzero(permuted >= observed - EPS) + 1) / (permuted.size + 1))


# ------------------------------------------------------------------------------------------- PERMANOVA


def _term_matrix(values: pd.Series) -> np.ndarray:
    """Design columns of one term: treatment-coded dummies for a factor, the values for a numeric column."""
    if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        return values.to_numpy(dtype=np.float64)[:, None]
    dummies = pd.get_dummies(pd.Categorical(values), drop_first=True, dtype=np.float64)
    return dummies.to_numpy()


def _sequential_bases(columns: list[np.ndarray], tol: float = 1e-7) -> list[np.ndarray]:
    """Orthonormal bases of each term's contribution after the previous terms (centred design, as R's QR)."""
    n = columns[0].shape[0] if columns else 0
    basis = np.zeros((n, 0))
    out: list[np.ndarray] = []
    for block in columns:
        x = block - block.mean(axis=0)
        x = x - basis @ (basis.T @ x)
        if x.size == 0:
            out.append(np.zeros((n, 0)))
            continue
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        scale = max(1.0, float(np.abs(block).max(initial=0.0))) * np.sqrt(n)
        q = u[:, s > tol * scale]
        out.append(q)
        basis = np.hstack([basis, q])
    return out


Scheme = Literal["free", "within", "whole_plots"]


def _is_plot_constant(values: pd.Series, plots: np.ndarray) -> bool:
    frame = pd.DataFrame({"v": values.astype(object).to_numpy(), "p": plots})
    return bool((frame.groupby("p", sort=False)["v"].nunique(dropna=False) <= 1).all())


def adonis2(
    dist: Any,
    data: pd.DataFrame,
    terms: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    permutations: int = 999,
    seed: int | None = 0,
    strata: str | np.ndarray | pd.Series | None = None,
    plots: str | np.ndarray | pd.Series | None = None,
    schemes: dict[str, Scheme] | None = None,
) -> pd.DataFrame:
    """vegan ``adonis2(d ~ terms, data, by="terms")``: sequential PERMANOVA table, each term tested under its own
    permutation scheme.

    ``data`` is indexed by sample id (or aligned with the distance order). Returns the adonis2 table: rows
    ``terms..., Residual, Total``; columns ``Df, SumOfSqs, R2, F, Pr(>F)`` and ``scheme`` (how each term was
    permuted). F and R² do not depend on the permutations. Rows with a missing value in any term, in ``strata``
    or ``plots`` are dropped (vegan's ``na.action = na.fail`` would stop instead); ``attrs["n"]`` gives the
    sample size.

    Permutation schemes (``Pr(>F)`` of a term = (#{F* >= F - sqrt(eps)} + 1) / (P + 1) over its scheme's
    permutations):

    * ``"free"``: rows permuted freely (vegan's default);
    * ``"within"``: rows permuted only within ``strata`` (vegan ``strata = patient``, i.e.
      ``how(blocks = patient)``), or within ``plots`` when no ``strata`` is given: for terms that vary within a
      patient (visit);
    * ``"whole_plots"``: whole ``plots`` (patients) permuted, samples keeping their position within the plot
      (vegan ``how(plots = Plots(strata = patient, type = "free"), within = Within(type = "none"))``, rows from
      :func:`whole_plot_permutations`): for terms constant within a patient (arm, response). The plot-constant
      terms' design rows are taken from the donor plots, terms that vary within plots stay as observed, and the
      sequential sums of squares are recomputed (a batched QR per block of permutations). With equal plot sizes
      and the same visit order in every plot this is vegan's row permutation exactly (there a within-plot
      term keeps its F, so its p is 1); unequal plot sizes, which permute refuses, are handled the same way.

    ``schemes`` maps terms to a scheme. Without it: ``plots`` given → each term constant within every plot is
    tested by ``"whole_plots"``, every other term by ``"within"`` (the repeated-measures design: between-patient
    terms permute patients, within-patient terms permute within patients); else ``strata`` given → ``"within"``;
    else ``"free"``. One seeded set of permutations per scheme, shared by the terms of that scheme (as vegan
    applies one permutation matrix to all terms).
    """
    square, dist_ids = distance_input(dist, ids)
    frame = data.copy()
    extra: dict[str, Any] = {"strata": strata, "plots": plots}
    for key, value in extra.items():
        if isinstance(value, str):
            extra[key] = frame[value]
    if set(dist_ids) <= set(frame.index.astype(str)):
        frame = frame.set_axis(frame.index.astype(str)).reindex(list(dist_ids))
        for key, value in extra.items():
            if isinstance(value, pd.Series):
                extra[key] = value.set_axis(value.index.astype(str)).reindex(list(dist_ids))
    elif len(frame) != len(dist_ids):
        raise ValueError("data must be indexed by the sample ids or have one row per sample in distance order")
    keep = frame[list(terms)].notna().all(axis=1).to_numpy()
    arrays = {k: None if v is None else np.asarray(v, dtype=object) for k, v in extra.items()}
    for value in arrays.values():
        if value is not None:
            keep = keep & ~pd.isna(value)
    idx = np.flatnonzero(keep)
    square = square[np.ix_(idx, idx)]
    frame = frame.iloc[idx]
    strata_arr = None if arrays["strata"] is None else arrays["strata"][idx]
    plots_arr = None if arrays["plots"] is None else arrays["plots"][idx]
    n = square.shape[0]
    chosen = _term_schemes(frame, terms, strata_arr, plots_arr, schemes)
    g = _gower(square)
    total = float(np.trace(g))
    blocks = [_term_matrix(frame[t]) for t in terms]
    bases = _sequential_bases(blocks)
    dfs = np.array([b.shape[1] for b in bases])
    resid_df = n - 1 - int(dfs.sum())
    if resid_df <= 0:
        raise ValueError("no residual degrees of freedom")
    q_all = np.hstack(bases)
    term_of_col = np.repeat(np.arange(len(bases)), dfs)
    ss = _term_ss(g, q_all[:, :, None] if q_all.size else np.zeros((n, 0, 1)), term_of_col, len(bases))[0]
    resid = total - float(ss.sum())
    f_obs = (ss / np.maximum(dfs, 1)) / (resid / resid_df)
    p = np.full(len(terms), np.nan)
    f_null = np.full((permutations, len(terms)), np.nan)
    for k_scheme, scheme in enumerate(dict.fromkeys(chosen.values())):
        members = [i for i, t in enumerate(terms) if chosen[t] == scheme]
        if not permutations:
            continue
        perm_seed = None if seed is None else seed + k_scheme
        if scheme == "whole_plots":
            f_perm = _whole_plot_f(g, total, blocks, frame, terms, plots_arr, dfs, resid_df, permutations, perm_seed)
        else:
            within = strata_arr if strata_arr is not None else plots_arr
            perm_idx = permutation_matrix(n, permutations, perm_seed, strata=within if scheme == "within" else None)
            f_perm = _row_permutation_f(g, total, q_all, term_of_col, dfs, resid_df, perm_idx)
        for k in members:
            p[k] = _p_value(f_obs[k], f_perm[:, k])
            f_null[:, k] = f_perm[:, k]
    table = pd.DataFrame(
        {
            "Df": [*dfs.tolist(), resid_df, n - 1],
            "SumOfSqs": [*ss.tolist(), resid, total],
            "R2": [*(ss / total).tolist(), resid / total, 1.0],
            "F": [*f_obs.tolist(), np.nan, np.nan],
            "Pr(>F)": [*p.tolist(), np.nan, np.nan],
            "scheme": [*(chosen[t] for t in terms), None, None],
        },
        index=[*terms, "Residual", "Total"],
    )
    table.attrs.update(
        n=n,
        permutations=permutations,
        seed=seed,
        stratified=strata_arr is not None,
        schemes=dict(chosen),
        n_plots=None if plots_arr is None else int(pd.unique(plots_arr).size),
        F_perm=f_null,  # permutations x terms: each term's null distribution under its scheme
    )
    return table


def _term_schemes(
    frame: pd.DataFrame,
    terms: Sequence[str],
    strata: np.ndarray | None,
    plots: np.ndarray | None,
    schemes: dict[str, Scheme] | None,
) -> dict[str, Scheme]:
    chosen: dict[str, Scheme] = {}
    for t in terms:
        if schemes and t in schemes:
            scheme = schemes[t]
        elif plots is not None:
            scheme = "whole_plots" if _is_plot_constant(frame[t], plots) else "within"
        elif strata is not None:
            scheme = "within"
        else:
            scheme = "free"
        if scheme not in ("free", "within", "whole_plots"):
            raise ValueError(f"unknown permutation scheme {scheme!r} for term {t!r}")
        if scheme == "whole_plots":
            if plots is None:
                raise ValueError(f"term {t!r}: whole-plot permutation needs plots=")
            _check_constant_within(frame[t].to_numpy(dtype=object), plots, f"term {t!r}")
        if scheme == "within" and strata is None and plots is None:
            raise ValueError(f"term {t!r}: permutation within blocks needs strata= or plots=")
        chosen[t] = scheme
    return chosen


def _term_ss(g: np.ndarray, q: np.ndarray, term_of_col: np.ndarray, n_terms: int) -> np.ndarray:
    """Per-term SS ``Σ_{j in term} q_jᵀ G q_j`` for a batch of bases ``q`` (n x r x B) -> (B x terms)."""
    n, r, b = q.shape
    flat = q.reshape(n, r * b)
    col = np.einsum("ij,ij->j", flat, g @ flat).reshape(r, b)
    out = np.zeros((b, n_terms))
    np.add.at(out.T, term_of_col, col)
    return out


def _row_permutation_f(
    g: np.ndarray,
    total: float,
    q_all: np.ndarray,
    term_of_col: np.ndarray,
    dfs: np.ndarray,
    resid_df: int,
    perm_idx: np.ndarray,
) -> np.ndarray:
    """Pseudo-F of every term for every row permutation (design rows permuted, as vegan's ``permutest``)."""
    n, r = q_all.shape
    f_perm = np.zeros((perm_idx.shape[0], len(dfs)))
    batch = max(1, _BATCH_ELEMENTS // max(1, n * max(r, 1)))
    for b0 in range(0, perm_idx.shape[0], batch):
        block = perm_idx[b0 : b0 + batch]
        qp = q_all[block.T].transpose(0, 2, 1)  # (n, r, B): row i of permutation b is q_all[block[b, i]]
        ss_b = _term_ss(g, qp, term_of_col, len(dfs))
        resid_b = total - ss_b.sum(axis=1)
        f_perm[b0 : b0 + batch] = (ss_b / np.maximum(dfs, 1)) / (resid_b / resid_df)[:, None]
    return f_perm


def _whole_plot_designs(design: np.ndarray, moving: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """(B x n x p) permuted designs: the ``moving`` (plot-constant) columns from the donor rows, the rest as is."""
    out = np.broadcast_to(design, (donors.shape[0], *design.shape)).copy()
    out[:, :, moving] = design[donors][:, :, moving]
    return out


def _whole_plot_f(
    g: np.ndarray,
    total: float,
    blocks: list[np.ndarray],
    frame: pd.DataFrame,
    terms: Sequence[str],
    plots: np.ndarray,
    dfs: np.ndarray,
    resid_df: int,
    permutations: int,
    seed: int | None,
) -> np.ndarray:
    """Pseudo-F of every term under whole-plot permutations: plot-constant terms take the donor plots' rows,
    the other terms stay; sequential SS from a batched QR of the centred design (columns in term order)."""
    n = g.shape[0]
    design = np.hstack(blocks)
    widths = [b.shape[1] for b in blocks]
    col_term = np.repeat(np.arange(len(blocks)), widths)
    moving = np.repeat([_is_plot_constant(frame[t], plots) for t in terms], widths)
    donors = whole_plot_permutations(plots, permutations, seed)
    scale = np.maximum(np.abs(design).max(axis=0, initial=0.0), 1.0) * np.sqrt(n)
    p_cols = design.shape[1]
    f_perm = np.zeros((permutations, len(blocks)))
    batch = max(1, (_BATCH_ELEMENTS // 4) // max(1, n * max(p_cols, 1)))  # x, q and the donor rows: 3 copies
    for b0 in range(0, permutations, batch):
        x = _whole_plot_designs(design, moving, donors[b0 : b0 + batch])
        x -= x.mean(axis=1, keepdims=True)
        q, r = np.linalg.qr(x)
        independent = np.abs(np.diagonal(r, axis1=1, axis2=2)) > 1e-7 * scale  # (B, p): dependent columns add 0
        q = q * independent[:, None, :]
        ss_b = _term_ss(g, q.transpose(1, 2, 0), col_term, len(blocks))
        resid_b = total - ss_b.sum(axis=1)
        f_perm[b0 : b0 + batch] = (ss_b / np.maximum(dfs, 1)) / (resid_b / resid_df)[:, None]
    return f_perm


def permanova(
    dist: Any,
    grouping: Any,
    *,
    ids: Sequence[str] | None = None,
    permutations: int = 999,
    seed: int | None = 0,
    strata: Any = None,
    whole_plots: Any = None,
) -> PermutationTest:
    """One-factor PERMANOVA (pseudo-F, R² as adonis2, permutation p).

    ``strata``: permute within blocks. ``whole_plots``: permute the factor among whole plots (patients); the
    factor must be constant within a plot. ``grouping``/``strata``/``whole_plots`` are Series indexed by sample
    id or arrays in distance order; samples missing any of them are dropped.
    """
    square, _, values, extra = _aligned(dist, grouping, ids, {"strata": strata, "plots": whole_plots})
    labels, levels = _codes(values)
    n, k = labels.size, len(levels)
    if k < 2 or k >= n:
        raise ValueError("PERMANOVA needs at least 2 groups and fewer groups than samples")
    g = _gower(square)
    total = float(np.trace(g))
    sizes = np.bincount(labels, minlength=k).astype(np.float64)

    def between(label_rows: np.ndarray) -> np.ndarray:
        """SS between groups for each row of permuted labels (B x n)."""
        b = label_rows.shape[0]
        z = np.zeros((n, b * k))
        cols = label_rows + (np.arange(b) * k)[:, None]
        z[np.tile(np.arange(n), b), cols.ravel()] = 1.0
        z /= np.sqrt(np.tile(sizes, b))[None, :]
        gz = g @ z
        return np.einsum("ij,ij->j", z, gz).reshape(b, k).sum(axis=1)

    ss_a = float(between(labels[None, :])[0])
    ss_w = total - ss_a
    f_obs = (ss_a / (k - 1)) / (ss_w / (n - k))
    perm_labels = _permuted_labels(labels, permutations, seed, extra["strata"], extra["plots"])
    f_perm = np.empty(perm_labels.shape[0])
    batch = max(1, _BATCH_ELEMENTS // (n * k))
    for b0 in range(0, perm_labels.shape[0], batch):
        ss_b = between(perm_labels[b0 : b0 + batch])
        f_perm[b0 : b0 + batch] = (ss_b / (k - 1)) / ((total - ss_b) / (n - k))
    p = _p_value(f_obs, f_perm) if permutations else float("nan")
    details = {
        "R2": ss_a / total,
        "SS_between": ss_a,
        "SS_within": ss_w,
        "SS_total": total,
        "df_between": k - 1,
        "df_within": n - k,
        "levels": levels,
        "scheme": _scheme(extra),
        "seed": seed,
    }
    return PermutationTest("PERMANOVA", "pseudo-F", f_obs, p, permutations, n, k, details)


def _scheme(extra: dict[str, np.ndarray | None]) -> str:
    if extra.get("plots") is not None:
        return "whole_plots"
    return "within_strata" if extra.get("strata") is not None else "free"


def _permuted_labels(
    labels: np.ndarray, permutations: int, seed: int | None, strata: np.ndarray | None, plots: np.ndarray | None
) -> np.ndarray:
    if permutations <= 0:
        return np.zeros((0, labels.size), dtype=np.intp)
    if plots is not None:
        if strata is not None:
            raise ValueError("give either strata or whole_plots, not both")
        return _plot_labels(labels, plots, permutations, seed)
    return labels[permutation_matrix(labels.size, permutations, seed, strata=strata)]


# --------------------------------------------------------------------------------------------- ANOSIM


def anosim(
    dist: Any,
    grouping: Any,
    *,
    ids: Sequence[str] | None = None,
    permutations: int = 999,
    seed: int | None = 0,
    strata: Any = None,
    whole_plots: Any = None,
) -> PermutationTest:
    """ANOSIM R = (mean between rank - mean within rank) / (M/2), average ranks (vegan ``anosim``)."""
    square, _, values, extra = _aligned(dist, grouping, ids, {"strata": strata, "plots": whole_plots})
    labels, levels = _codes(values)
    n, k = labels.size, len(levels)
    if k < 2:
        raise ValueError("ANOSIM needs at least 2 groups")
    condensed = squareform(square, checks=False)
    m = condensed.size
    ranks = squareform(stats.rankdata(condensed), checks=False)  # zero diagonal
    total_rank = float(ranks.sum()) / 2.0
    sizes = np.bincount(labels, minlength=k)
    n_within = float(np.sum(sizes * (sizes - 1) / 2))
    if n_within == 0:
        raise ValueError("ANOSIM needs replicates within groups")
    div = m / 2.0

    def statistic(label_rows: np.ndarray) -> np.ndarray:
        b = label_rows.shape[0]
        z = np.zeros((n, b * k))
        z[np.tile(np.arange(n), b), (label_rows + (np.arange(b) * k)[:, None]).ravel()] = 1.0
        within = np.einsum("ij,ij->j", z, ranks @ z).reshape(b, k).sum(axis=1) / 2.0
        return ((total_rank - within) / (m - n_within) - within / n_within) / div

    r_obs = float(statistic(labels[None, :])[0])
    perm_labels = _permuted_labels(labels, permutations, seed, extra["strata"], extra["plots"])
    r_perm = np.empty(perm_labels.shape[0])
    batch = max(1, _BATCH_ELEMENTS // (n * k))
    for b0 in range(0, perm_labels.shape[0], batch):
        r_perm[b0 : b0 + batch] = statistic(perm_labels[b0 : b0 + batch])
    p = _p_value(r_obs, r_perm) if permutations else float("nan")
    details = {"levels": levels, "scheme": _scheme(extra), "seed": seed}
    return PermutationTest("ANOSIM", "R", r_obs, p, permutations, n, k, details)


# -------------------------------------------------------------------------------------------- PERMDISP


def _spatial_median(points: np.ndarray, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """Geometric median (Weiszfeld with the Vardi–Zhang fix for landing on a data point)."""
    if points.shape[1] == 0:
        return np.zeros(0)
    y = np.median(points, axis=0)
    scale = max(1.0, float(np.abs(points).max()))
    for _ in range(max_iter):
        diff = points - y
        dist = np.sqrt(np.sum(diff * diff, axis=1))
        zero = dist < 1e-15 * scale
        w = 1.0 / np.where(zero, 1.0, dist)
        w[zero] = 0.0
        t = (w[:, None] * points).sum(axis=0) / w.sum()
        n_zero = int(zero.sum())
        if n_zero:
            r = np.linalg.norm(((points - y) * w[:, None]).sum(axis=0))
            gamma = min(1.0, n_zero / r) if r > 0 else 1.0
            t = (1 - gamma) * t + gamma * y
        if np.linalg.norm(t - y) <= tol * scale:
            return t
        y = t
    return y


def permdisp(
    dist: Any,
    grouping: Any,
    *,
    ids: Sequence[str] | None = None,
    type: Literal["median", "centroid"] = "median",
    permutations: int = 999,
    seed: int | None = 0,
) -> PermutationTest:
    """Homogeneity of multivariate dispersions (vegan ``betadisper`` + ``permutest``), ANOVA F and permutation p.

    ``details`` holds the per-sample ``distances`` to the group centre (Series), ``group_distances`` (mean per
    group), the eigenvalues used and ``F_parametric_p``.
    """
    square, dist_ids, values, _ = _aligned(dist, grouping, ids)
    labels, levels = _codes(values)
    n, k = labels.size, len(levels)
    if k < 2:
        raise ValueError("PERMDISP needs at least 2 groups")
    g = _gower(square)
    eig, vec = np.linalg.eigh(g)
    order = np.argsort(eig)[::-1]
    eig, vec = eig[order], vec[:, order]
    tol = np.sqrt(np.finfo(float).eps)
    want = np.abs(eig) > max(tol, tol * eig[0])
    eig, vec = eig[want], vec[:, want] * np.sqrt(np.abs(eig[want]))
    pos = eig > 0
    d_pos = np.zeros(n)
    d_neg = np.zeros(n)
    for c in range(k):
        members = labels == c
        for mask, acc in ((pos, d_pos), (~pos, d_neg)):
            pts = vec[members][:, mask]
            if pts.shape[1] == 0:
                continue
            centre = pts.mean(axis=0) if type == "centroid" else _spatial_median(pts)
            acc[members] = np.sum((pts - centre) ** 2, axis=1)
    z = np.sqrt(np.maximum(d_pos - d_neg, 0.0))
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    means = np.bincount(labels, weights=z, minlength=k) / sizes

    def f_stat(rows: np.ndarray) -> np.ndarray:
        """One-way ANOVA F for each row of values (B x n), groups fixed."""
        grand = rows.mean(axis=1, keepdims=True)
        gm = np.stack([rows[:, labels == c].mean(axis=1) for c in range(k)], axis=1)
        ss_b = (sizes[None, :] * (gm - grand) ** 2).sum(axis=1)
        ss_w = ((rows - gm[:, labels]) ** 2).sum(axis=1)
        return (ss_b / (k - 1)) / (ss_w / (n - k))

    f_obs = float(f_stat(z[None, :])[0])
    resid = z - means[labels]
    perms = permutation_matrix(n, permutations, seed) if permutations else np.zeros((0, n), int)
    f_perm = f_stat(resid[perms]) if permutations else np.zeros(0)
    p = _p_value(f_obs, f_perm) if permutations else float("nan")
    details = {
        "type": type,
        "distances": pd.Series(z, index=list(dist_ids), name="distance_to_centre"),
        "group_distances": pd.Series(means, index=levels),
        "eigenvalues": eig,
        "F_parametric_p": float(stats.f.sf(f_obs, k - 1, n - k)),
        "levels": levels,
        "seed": seed,
    }
    return PermutationTest("PERMDISP", "F-value", f_obs, p, permutations, n, k, details)


# ------------------------------------------------------------------------------------ alpha diversity


def alpha_group_tests(
    alpha: pd.DataFrame, groups: pd.Series, *, indices: Sequence[str] | None = None, pairwise: bool = True
) -> pd.DataFrame:
    """Kruskal–Wallis per index across groups (tie-corrected, as QIIME 2) and pairwise Wilcoxon rank-sum
    (Mann–Whitney U, two-sided) between every pair of groups, each family BH-corrected.

    ``alpha`` is samples x indices (index = sample id); ``groups`` a Series by sample id. Returns a long table:
    ``index, test, group_a, group_b, n_a, n_b, statistic, p_value, q_value, median_a, median_b``; the
    Kruskal–Wallis rows have ``test == "kruskal"`` and q-values over indices, the pairwise rows
    ``test == "wilcoxon_ranksum"`` and q-values over all (index, pair) rows.
    """
    indices = list(indices or alpha.columns)
    g = groups.reindex(alpha.index)
    rows: list[dict[str, Any]] = []
    levels = sorted(pd.unique(g.dropna()), key=str)
    level_masks = [(g == lv).to_numpy(dtype=bool) for lv in levels]  # numpy once: the loop below is per index
    table = alpha[indices].to_numpy(dtype=np.float64)
    for k, name in enumerate(indices):
        values = table[:, k]
        present = ~np.isnan(values)
        samples = [values[mask & present] for mask in level_masks]
        usable = [s for s in samples if s.size > 0]
        if len(usable) >= 2 and np.ptp(np.concatenate(usable)) > 0:
            h, p = stats.kruskal(*usable)
        else:
            h, p = np.nan, np.nan
        rows.append(
            {
                "index": name,
                "test": "kruskal",
                "group_a": None,
                "group_b": None,
                "n_a": int(sum(s.size for s in usable)),
                "n_b": None,
                "statistic": h,
                "p_value": p,
                "median_a": None,
                "median_b": None,
            }
        )
        if pairwise:
            for i in range(len(levels)):
                for j in range(i + 1, len(levels)):
                    a, b = samples[i], samples[j]
                    if a.size and b.size:
                        u, pu = stats.mannwhitneyu(a, b, alternative="two-sided")
                    else:
                        u, pu = np.nan, np.nan
                    rows.append(
                        {
                            "index": name,
                            "test": "wilcoxon_ranksum",
                            "group_a": levels[i],
                            "group_b": levels[j],
                            "n_a": a.size,
                            "n_b": b.size,
                            "statistic": u,
                            "p_value": pu,
                            "median_a": np.median(a) if a.size else np.nan,
                            "median_b": np.median(b) if b.size else np.nan,
                        }
                    )
    out = pd.DataFrame(rows)
    out["q_value"] = np.nan
    for test in out["test"].unique():
        sel = out["test"] == test
        out.loc[sel, "q_value"] = bh(out.loc[sel, "p_value"].to_numpy(float))
    return out


#: scipy's ``wilcoxon(method="auto")`` runs an exact permutation test for n <= 13 with ties or zeros
_EXACT_PERMUTATION_MAX_N = 13


def signed_rank_test(d: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.wilcoxon(d)`` (two-sided, ``zero_method="wilcox"``, ``method="auto"``): ``(statistic, p)``.

    Identical results. scipy (>= 1.15) answers n <= 13 differences with ties or zeros by an exact permutation
    test over all 2^n sign flips, evaluating the statistic once per flip in Python (about 1 s for n = 13); here
    that null is one matrix product: with ``r`` the average ranks of ``|d|`` among the non-zero differences (zeros
    get rank 0: scipy drops them), ``T+ = Σ r_i [s_i d_i > 0]`` for every sign vector ``s``; two-sided
    ``p = min(1, 2 min(P(T+* <= T+), P(T+* >= T+)))`` with scipy's relative tolerance ``100 eps |T+|``.
    The statistic is ``min(T+, T-)``. Every other case is passed to scipy.
    """
    d = np.asarray(d, dtype=np.float64)
    nonzero = d != 0
    n = d.size
    ranks = np.zeros(n)
    ranks[nonzero] = stats.rankdata(np.abs(d[nonzero]))
    ties = np.unique(np.abs(d[nonzero])).size < int(nonzero.sum())
    if n > _EXACT_PERMUTATION_MAX_N or not (ties or (~nonzero).any()) or not nonzero.any() or np.isnan(d).any():
        res = stats.wilcoxon(d)
        return float(res.statistic), float(res.pvalue)
    positive = (d > 0).astype(np.float64)
    r_plus = float(positive @ ranks)
    r_minus = float((d < 0).astype(np.float64) @ ranks)
    flips = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)  # 1 = sign flipped
    null = (np.where(flips, d[None, :] < 0, d[None, :] > 0).astype(np.float64)) @ ranks
    gamma = abs(np.finfo(np.float64).eps * 100 * r_plus)
    p_less = np.count_nonzero(null <= r_plus + gamma) / null.size
    p_greater = np.count_nonzero(null >= r_plus - gamma) / null.size
    return min(r_plus, r_minus), float(np.clip(2 * min(p_less, p_greater), 0.0, 1.0))


def alpha_change_tests(
    alpha: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    patient: str,
    visit: str,
    baseline: Any,
    group: str | None = None,
    indices: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Change of each alpha index from the patient's own baseline sample, per visit.

    Within each group (or overall): Wilcoxon signed-rank test of the paired change (H0: median change 0).
    Between groups (two groups): Wilcoxon rank-sum on the changes. BH over all rows of each test type.
    ``meta`` is indexed by sample id with the ``patient``, ``visit`` (and ``group``) columns.
    """
    indices = list(indices or alpha.columns)
    m = meta.reindex(alpha.index)
    base = m[m[visit] == baseline]
    base_by_patient = pd.Series(base.index, index=base[patient]).groupby(level=0).first()
    rows: list[dict[str, Any]] = []
    for v in sorted(pd.unique(m[visit].dropna()), key=str):
        if v == baseline:
            continue
        cur = m[m[visit] == v]
        cur = cur[cur[patient].isin(base_by_patient.index)]
        pairs = pd.DataFrame({"sample": cur.index, "base": base_by_patient.loc[cur[patient]].to_numpy()})
        grp = cur[group].to_numpy() if group else np.array(["all"] * len(cur), dtype=object)
        levels = sorted(pd.unique(grp), key=str)
        changes = alpha.loc[pairs["sample"], indices].to_numpy(float) - alpha.loc[pairs["base"], indices].to_numpy(
            float
        )
        for k, name in enumerate(indices):
            change = changes[:, k]
            ok = np.isfinite(change)
            for lv in levels:
                d = change[(grp == lv) & ok]
                stat, p = signed_rank_test(d) if d.size and np.any(d != 0) else (np.nan, np.nan)
                rows.append(
                    {
                        "index": name,
                        "visit": v,
                        "test": "wilcoxon_signedrank",
                        "group_a": lv,
                        "group_b": None,
                        "n": d.size,
                        "statistic": stat,
                        "p_value": p,
                        "median_change_a": np.median(d) if d.size else np.nan,
                        "median_change_b": np.nan,
                    }
                )
            if len(levels) == 2:
                a, b = change[(grp == levels[0]) & ok], change[(grp == levels[1]) & ok]
                u, pu = stats.mannwhitneyu(a, b, alternative="two-sided") if a.size and b.size else (np.nan, np.nan)
                rows.append(
                    {
                        "index": name,
                        "visit": v,
                        "test": "wilcoxon_ranksum",
                        "group_a": levels[0],
                        "group_b": levels[1],
                        "n": a.size + b.size,
                        "statistic": u,
                        "p_value": pu,
                        "median_change_a": np.median(a) if a.size else np.nan,
                        "median_change_b": np.median(b) if b.size else np.nan,
                    }
                )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q_value"] = np.nan
    for test in out["test"].unique():
        sel = out["test"] == test
        out.loc[sel, "q_value"] = bh(out.loc[sel, "p_value"].to_numpy(float))
    return out


# ------------------------------------------------------------------------------ change from baseline


def distance_to_baseline(
    dist: BetaDistances | Any,
    meta: pd.DataFrame,
    *,
    patient: str,
    visit: str,
    baseline: Any,
    ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Distance of every post-baseline sample to its own patient's baseline sample.

    ``meta`` is indexed by sample id. Returns ``sample_id, patient, visit, baseline_sample_id, distance`` plus
    every other ``meta`` column; patients without a baseline sample are left out (listed in ``attrs``).
    """
    square, dist_ids = distance_input(dist, ids)
    pos = {s: i for i, s in enumerate(dist_ids)}
    m = meta.copy()
    m.index = m.index.astype(str)
    m = m[m.index.isin(pos)]
    base = m[m[visit] == baseline]
    dup = base[patient][base[patient].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"patients with more than one baseline sample: {dup[:5]}")
    base_of = dict(zip(base[patient], base.index, strict=True))
    post = m[m[visit] != baseline]
    has = post[patient].isin(base_of)
    missing = sorted(post.loc[~has, patient].astype(str).unique().tolist())
    post = post[has]
    base_ids = post[patient].map(base_of)
    i = np.array([pos[s] for s in post.index], dtype=np.intp)
    j = np.array([pos[s] for s in base_ids], dtype=np.intp)
    out = post.copy()
    out.insert(0, "baseline_sample_id", base_ids.to_numpy())
    out.insert(0, "distance", square[i, j] if i.size else np.zeros(0))
    out = out.reset_index(names="sample_id")
    out.attrs["patients_without_baseline"] = missing
    return out


def baseline_distance_tests(changes: pd.DataFrame, *, visit: str, group: str, value: str = "distance") -> pd.DataFrame:
    """Per visit, compare distance-to-baseline between groups: Wilcoxon rank-sum (2 groups) or
    Kruskal–Wallis (more), BH over visits."""
    rows: list[dict[str, Any]] = []
    for v, sub in changes.groupby(visit, sort=True):
        levels = sorted(pd.unique(sub[group].dropna()), key=str)
        samples = [sub.loc[sub[group] == lv, value].to_numpy(float) for lv in levels]
        row: dict[str, Any] = {visit: v, "n": int(sum(s.size for s in samples))}
        for lv, s in zip(levels, samples, strict=True):
            row[f"median_{lv}"] = float(np.median(s)) if s.size else np.nan
        if len(levels) == 2 and all(s.size for s in samples):
            row["test"] = "wilcoxon_ranksum"
            row["statistic"], row["p_value"] = stats.mannwhitneyu(*samples, alternative="two-sided")
        elif len(levels) > 2:
            row["test"] = "kruskal"
            row["statistic"], row["p_value"] = stats.kruskal(*[s for s in samples if s.size])
        else:
            row["test"], row["statistic"], row["p_value"] = None, np.nan, np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        out["q_value"] = bh(out["p_value"].to_numpy(float))
    return out
