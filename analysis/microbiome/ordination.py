"""Ordination: PCoA (scikit-bio convention and mothur's Lingoes-corrected variant), NMDS and PCA on CLR.

Reference spec ``omics.md`` §1.8 (mothur ``pcoa``), §3.3 (skbio ``pcoa``), §3.4 (NMDS), §7.3 (prcomp).

**PCoA.** ``G = -1/2 J D² J`` (Gower centring). ``G`` always has the constant vector as an eigenvector with
eigenvalue 0; it is split off exactly with a Householder reflection, so the n-1 remaining ("non-trivial")
eigenvalues are what the two conventions disagree about:

* ``correction=None`` (scikit-bio 0.7.4 ``pcoa(method="eigh")``): eigenvalues as computed, coordinates
  ``eigvec * sqrt(λ)`` with 0 for λ <= 0, ``proportion_explained = λ / Σ positive λ``.
* ``correction="lingoes"`` (mothur ``pcoa``; vegan ``add="lingoes"``): ``d'² = d² + 2c`` off the diagonal with
  ``c = -λ_min`` (0 when every non-trivial eigenvalue is positive). The Gower matrix becomes ``G + cJ``: same
  eigenvectors, every non-trivial eigenvalue shifted by ``c``, so ``loading = 100 (λ + c) / (tr G + (n-1) c)``.
  mothur prints n axes; the last ones (the constant axis and the one of ``λ_min``) are 0.

Full mode (``dimensions=None``) computes every eigenvalue with LAPACK ``eigh``. With ``dimensions=k`` only the
top ``k`` eigenpairs (and, for Lingoes, ``λ_min``) are found with ARPACK, which is what makes n = 5,000 feasible;
the Lingoes loadings stay exact (their denominator is a trace), while the uncorrected proportions then use the
trace of G (positive minus negative eigenvalues) as denominator unless ``exact_proportions=True`` (skbio does
the same when ``dimensions`` is given). ``details["proportion_basis"]`` records which.

**NMDS** (Kruskal 1964; de Leeuw & Mair 2009, R ``smacof``; vegan ``monoMDS`` conventions). The default engine
is a numpy non-metric SMACOF: the dissimilarities are argsorted once; every iteration computes the configuration
distances ``d``, re-sorts the pairs inside each block of tied dissimilarities by ``d`` (vegan's default
``weakties=TRUE``, the primary approach; one stable argsort that starts from the previous, nearly sorted,
order), fits the disparities ``d̂`` by monotone regression (pool-adjacent-violators, scipy
``optimize.isotonic_regression`` — what ``sklearn.isotonic.isotonic_regression`` runs — on the pre-sorted
vector), rescales them to ``Σ d̂² = n(n-1)/2`` and applies the Guttman
transform ``X ← B(X) X / n`` with ``b_ij = -d̂_ij / d_ij``, ``b_ii = Σ_{j≠i} d̂_ij / d_ij``. It stops when
*Kruskal stress-1* ``sqrt(Σ (d - d̂)² / Σ d²)`` falls by less than ``eps`` (relative) in one iteration. Start 0
is the classical-scaling (PCoA) configuration; the others are seeded random normal configurations, first
brought out of the degenerate equal-distance region by up to :data:`METRIC_WARMUP` relaxed metric SMACOF
iterations; a start still 5 % above the best stress so far after 40 iterations is abandoned. The start with
the lowest stress wins; its configuration is centred and rotated to principal axes
(vegan ``postMDS`` without its half-change scaling); compare configurations only up to a Procrustes rotation.
Stress is recomputed the way vegan ``monoMDS`` reports it (all pairs, primary ties), so it compares with
``metaMDS``'s ``stress``. 800 samples x 4 starts take ~3 s of CPU; ``engine="sklearn"`` keeps
``sklearn.manifold.MDS(metric_mds=False)`` as the reference implementation (97 s for 600 samples x 2 starts).

**PCA** on ``clr(counts + pseudocount)`` (CLR of relative abundances: closure does not change CLR), centred
only, via SVD like R ``prcomp(scale.=FALSE)``: ``sdev = d / sqrt(n-1)``. Signs follow sklearn ``svd_flip``
(the largest absolute loading of each component is positive). This is PCoA on Aitchison distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.sparse.linalg import eigsh
from scipy.spatial.distance import pdist, squareform

from analysis.microbiome.beta import DEFAULT_AITCHISON_PSEUDOCOUNT, BetaDistances, as_count_matrix, clr

__all__ = [
    "METRIC_WARMUP",
    "Ordination",
    "distance_input",
    "kruskal_stress",
    "nmds",
    "pca_clr",
    "pcoa",
    "procrustes",
    "write_mothur_pcoa",
]


@dataclass(frozen=True)
class Ordination:
    """Sample coordinates of an ordination, with eigenvalues / proportions (PCoA, PCA) or stress (NMDS)."""

    method: str
    ids: tuple[str, ...]
    coordinates: np.ndarray
    eigenvalues: np.ndarray | None = None
    proportion_explained: np.ndarray | None = None
    stress: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def axis_names(self) -> list[str]:
        prefix = {"pca": "PC", "nmds": "NMDS"}.get(self.method, "PCoA")
        return [f"{prefix}{k + 1}" for k in range(self.coordinates.shape[1])]

    def to_frame(self) -> pd.DataFrame:
        """Wide table: one row per sample, one column per axis."""
        return pd.DataFrame(self.coordinates, index=pd.Index(list(self.ids), name="sample_id"), columns=self.axis_names)

    def to_long(self) -> pd.DataFrame:
        """Long table ``sample_id, axis, value`` (axes numbered from 1), e.g. for DuckDB."""
        n, k = self.coordinates.shape
        return pd.DataFrame(
            {
                "sample_id": np.repeat(np.array(self.ids, dtype=object), k),
                "axis": np.tile(np.arange(1, k + 1), n),
                "value": self.coordinates.ravel(),
            }
        )

    def axes_frame(self) -> pd.DataFrame:
        """One row per axis: eigenvalue and proportion explained (when defined)."""
        k = self.coordinates.shape[1]
        frame = pd.DataFrame({"axis": np.arange(1, k + 1), "name": self.axis_names})
        if self.eigenvalues is not None:
            frame["eigenvalue"] = self.eigenvalues[:k]
        if self.proportion_explained is not None:
            frame["proportion_explained"] = self.proportion_explained[:k]
        return frame


# ------------------------------------------------------------------------------------------------ input


def distance_input(dist: Any, ids: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(square float64 matrix, ids)`` from BetaDistances, skbio DistanceMatrix, condensed or square array."""
    if isinstance(dist, BetaDistances):
        return dist.square(), dist.ids
    if hasattr(dist, "data") and hasattr(dist, "ids") and not isinstance(dist, np.ndarray):  # skbio DistanceMatrix
        return np.asarray(dist.data, dtype=np.float64), tuple(str(s) for s in dist.ids)
    if isinstance(dist, pd.DataFrame):
        ids = ids or [str(s) for s in dist.index]
        dist = dist.to_numpy(dtype=np.float64)
    arr = np.asarray(dist, dtype=np.float64)
    square = squareform(arr, checks=False) if arr.ndim == 1 else arr
    if square.ndim != 2 or square.shape[0] != square.shape[1]:
        raise ValueError("distances must be a condensed vector or a square matrix")
    if not np.allclose(square, square.T, rtol=0, atol=1e-12) or np.any(np.abs(np.diag(square)) > 1e-12):
        raise ValueError("distance matrix must be symmetric with a zero diagonal")
    n = square.shape[0]
    ids = tuple(str(s) for s in ids) if ids is not None else tuple(f"S{i + 1}" for i in range(n))
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} samples")
    return square, ids


def _gower(square: np.ndarray) -> np.ndarray:
    """``-1/2 J D² J`` (new array)."""
    g = square * square
    g *= -0.5
    row = g.mean(axis=1)
    g -= row[:, None]
    g -= row[None, :]  # symmetric: column means equal row means
    g += row.mean()
    return g


def _householder(n: int) -> tuple[np.ndarray, float]:
    """``v, s`` of the reflection ``H = I - 2 v vᵀ / s`` whose first column is ``1/sqrt(n)``."""
    v = np.full(n, 1.0 / np.sqrt(n))
    v[0] -= 1.0
    return v, float(v @ v)


def _deflate(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``K = (H G H)[1:, 1:]``: G restricted to the complement of the constant vector."""
    n = g.shape[0]
    v, s = _householder(n)
    if s == 0.0:  # n == 1
        return g[1:, 1:], v, s
    w = g @ v
    alpha = float(v @ w)
    hgh = g - (2.0 / s) * (np.outer(v, w) + np.outer(w, v)) + (4.0 * alpha / (s * s)) * np.outer(v, v)
    k = hgh[1:, 1:]
    return (k + k.T) / 2.0, v, s


def _lift(u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """Map eigenvectors of K (rows 1..n-1) back to sample space: ``H [0; u]``."""
    y = np.vstack([np.zeros((1, u.shape[1])), u])
    if s == 0.0:
        return y
    return y - (2.0 / s) * np.outer(v, v @ y)


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Deterministic signs: the entry with the largest absolute value of each column is positive."""
    if vectors.size == 0:
        return vectors
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


# --------------------------------------------------------------------------------------------------- PCoA


def pcoa(
    dist: Any,
    ids: Sequence[str] | None = None,
    *,
    dimensions: int | None = None,
    correction: Literal["lingoes"] | None = None,
    exact_proportions: bool = False,
    seed: int = 0,
) -> Ordination:
    """Principal coordinates analysis; see the module docstring for the two conventions.

    ``dimensions=None`` returns every axis with a positive eigenvalue (full LAPACK decomposition). An integer
    asks for the top ``dimensions`` axes only (ARPACK; use it for thousands of samples). ``seed`` fixes
    ARPACK's start vector. ``details`` holds ``lingoes_constant``, ``trace``, ``sum_positive`` (full mode),
    ``negative_sum`` and ``proportion_basis``.
    """
    square, ids = distance_input(dist, ids)
    n = square.shape[0]
    if n < 3:
        raise ValueError("PCoA needs at least 3 samples")
    g = _gower(square)
    trace = float(np.trace(g))
    details: dict[str, Any] = {"correction": correction, "trace": trace}
    full = dimensions is None or dimensions >= n - 2
    if full:
        k_mat, v, s = _deflate(g)
        del g
        values, vectors = scipy.linalg.eigh(k_mat, driver="evd", overwrite_a=True)
        order = np.argsort(values)[::-1]
        values, vectors = values[order], _lift(vectors[:, order], v, s)
        lam_min = float(values[-1])
        sum_positive = float(values[values > 0].sum())
        details.update(sum_positive=sum_positive, negative_sum=float(values[values < 0].sum()))
    else:
        rng = np.random.default_rng(seed)
        top, vecs = eigsh(g, k=int(dimensions), which="LA", v0=rng.standard_normal(n), tol=0.0)
        order = np.argsort(top)[::-1]
        values, vectors = top[order], vecs[:, order]
        lam_min = _min_eigenvalue(g, rng) if correction == "lingoes" else float("nan")
        sum_positive = float("nan")
        if exact_proportions:
            all_values = scipy.linalg.eigh(_deflate(g)[0], eigvals_only=True, driver="evd")
            sum_positive = float(all_values[all_values > 0].sum())
            lam_min = float(all_values.min())
            details.update(sum_positive=sum_positive, negative_sum=float(all_values[all_values < 0].sum()))
    if correction == "lingoes":
        c = max(0.0, -lam_min)
        shifted = values + c
        denominator = trace + (n - 1) * c
        details.update(lingoes_constant=c, lambda_min=lam_min, proportion_basis="trace_lingoes")
        eig = shifted
        prop = shifted / denominator
    elif correction is None:
        eig = values
        if np.isfinite(sum_positive):
            prop = np.where(values > 0, values, 0.0) / sum_positive
            details["proportion_basis"] = "sum_positive"
        else:
            prop = np.where(values > 0, values, 0.0) / trace
            details["proportion_basis"] = "trace"
    else:
        raise ValueError(f"unknown correction {correction!r}")
    eig = np.where(np.isclose(eig, 0.0), 0.0, eig)  # as skbio: numerically zero eigenvalues are 0
    keep = int(np.count_nonzero(eig > 0)) if dimensions is None else min(int(dimensions), eig.size)
    vectors = _fix_signs(vectors[:, :keep])
    coords = vectors * np.sqrt(np.maximum(eig[:keep], 0.0))
    details["all_eigenvalues"] = eig if full else None
    method = "pcoa_lingoes" if correction == "lingoes" else "pcoa"
    return Ordination(method, ids, coords, eig[:keep].copy(), prop[:keep].copy(), None, details)


def _min_eigenvalue(g: np.ndarray, rng: np.random.Generator) -> float:
    """Smallest eigenvalue of the Gower matrix (ARPACK, lowest algebraic), as a float."""
    n = g.shape[0]
    value = eigsh(g, k=1, which="SA", v0=rng.standard_normal(n), tol=0.0, return_eigenvectors=False)
    return float(min(value[0], 0.0))


def mothur_loadings(ordination: Ordination) -> np.ndarray:
    """mothur's ``.pcoa.loadings`` column (percent, n rows) from a full Lingoes ordination."""
    if ordination.method != "pcoa_lingoes" or ordination.details.get("all_eigenvalues") is None:
        raise ValueError("needs pcoa(..., correction='lingoes') in full mode")
    eig = ordination.details["all_eigenvalues"]
    denominator = ordination.details["trace"] + (len(ordination.ids) - 1) * ordination.details["lingoes_constant"]
    loadings = 100.0 * np.append(eig, 0.0) / denominator
    return np.sort(loadings)[::-1]


def write_mothur_pcoa(ordination: Ordination, prefix: str | Path) -> tuple[Path, Path]:
    """Write ``<prefix>.pcoa.axes`` and ``<prefix>.pcoa.loadings`` in mothur's layout (6 decimals, n axes)."""
    loadings = mothur_loadings(ordination)
    n = len(ordination.ids)
    coords = np.zeros((n, n))
    k = ordination.coordinates.shape[1]
    coords[:, :k] = ordination.coordinates
    axes_path, load_path = Path(f"{prefix}.pcoa.axes"), Path(f"{prefix}.pcoa.loadings")
    with axes_path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("group\t" + "\t".join(f"axis{i + 1}" for i in range(n)) + "\n")
        for name, row in zip(ordination.ids, coords, strict=True):
            fh.write(name + "\t" + "\t".join(f"{x:.6f}" for x in row) + "\n")
    with load_path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("axis\tloading\n")
        for i, value in enumerate(loadings):
            fh.write(f"{i + 1}\t{value:.6f}\n")
    return axes_path, load_path


# --------------------------------------------------------------------------------------------------- NMDS


def kruskal_stress(dissimilarities: np.ndarray, coordinates: np.ndarray) -> float:
    """Kruskal stress-1 ``sqrt(Σ(d - d̂)² / Σ d²)`` with the primary (weak) tie approach, as vegan ``monoMDS``.

    ``d`` are the configuration distances, ``d̂`` their isotonic regression on the rank order of the
    dissimilarities (condensed or square); tied dissimilarities may receive different fitted values.
    """
    from sklearn.isotonic import IsotonicRegression

    diss = np.asarray(dissimilarities, dtype=np.float64)
    diss = squareform(diss, checks=False) if diss.ndim == 2 else diss
    conf = _pdist_euclidean(np.asarray(coordinates, dtype=np.float64))
    order = np.lexsort((conf, diss))  # by dissimilarity, ties broken by configuration distance (weak ties)
    fitted = IsotonicRegression(increasing=True).fit_transform(np.arange(order.size, dtype=np.float64), conf[order])
    resid = conf[order] - fitted
    denom = float(np.sum(conf * conf))
    return float(np.sqrt(np.sum(resid * resid) / denom)) if denom > 0 else 0.0


def _pdist_euclidean(points: np.ndarray) -> np.ndarray:
    return pdist(points, "euclidean")


def _principal_axes(coords: np.ndarray) -> np.ndarray:
    centred = coords - coords.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return _fix_signs(centred @ vt.T)


#: Metric SMACOF iterations (at most) run on a random start before the non-metric iterations.
METRIC_WARMUP = 100
#: A start still above ``ABANDON_RATIO`` x the best stress found so far after ``ABANDON_AFTER`` non-metric
#: iterations is abandoned (its stress at that point is reported; it is bound for a worse local minimum).
ABANDON_RATIO = 1.05
ABANDON_AFTER = 40


def nmds(
    dist: Any,
    ids: Sequence[str] | None = None,
    *,
    n_components: int = 2,
    n_starts: int = 4,
    seed: int = 0,
    max_iter: int | None = None,
    eps: float | None = None,
    engine: Literal["smacof", "sklearn"] = "smacof",
) -> Ordination:
    """Non-metric MDS (Kruskal stress-1) from ``n_starts`` seeded starts; the start with the lowest stress wins.

    Start 0 is the classical-scaling (PCoA) configuration, start ``k > 0`` a random configuration seeded with
    ``seed + k``. Deterministic for a seed. The best configuration is centred and rotated to principal axes.
    ``details``: ``engine``, ``stresses`` (every start), ``best_start``, ``iterations``, ``converged``.

    ``engine="smacof"`` (default): :func:`nonmetric_smacof`, the numpy implementation below (defaults
    ``max_iter=300``, ``eps=1e-6``); a few seconds for 800 samples. ``engine="sklearn"``: scikit-learn's
    ``MDS(metric_mds=False)``, kept as the reference (defaults ``max_iter=300``, ``eps=1e-6``). sklearn refits
    an ``IsotonicRegression`` estimator on all pairs every iteration (~0.15 s per iteration at n = 600 on a
    2-core box) and treats zero dissimilarities as missing; keep ``n_starts`` small there.
    """
    square, ids = distance_input(dist, ids)
    n = square.shape[0]
    if n <= n_components + 1:
        raise ValueError(f"NMDS in {n_components} dimensions needs more than {n_components + 1} samples")
    condensed = squareform(square, checks=False)
    init0 = _classical_start(square, n_components)
    if engine == "smacof":
        problem = _NonmetricProblem.from_condensed(condensed, n)
        runs: list[tuple[np.ndarray, float, int, bool]] = []
        for k in range(max(1, n_starts)):
            best_so_far = min((r[1] for r in runs), default=np.inf)
            init = init0 if k == 0 else np.random.default_rng(seed + k).standard_normal((n, n_components))
            runs.append(
                _smacof_run(
                    problem,
                    init,
                    max_iter=max_iter or 300,
                    eps=1e-6 if eps is None else eps,
                    warmup=0 if k == 0 else METRIC_WARMUP,
                    abandon_above=ABANDON_RATIO * best_so_far,
                )
            )
        stresses = [r[1] for r in runs]
        best_k = int(np.argmin(stresses))
        best = runs[best_k]
        iterations = [r[2] for r in runs]
        converged = [r[3] for r in runs]
    elif engine == "sklearn":
        stresses, coords_list = _nmds_sklearn(square, condensed, init0, n_starts, seed, max_iter or 300, eps or 1e-6)
        best_k = int(np.argmin(stresses))
        best = (coords_list[best_k], stresses[best_k], None, None)
        iterations, converged = [None] * len(stresses), [None] * len(stresses)
    else:
        raise ValueError(f"unknown NMDS engine {engine!r}; expected 'smacof' or 'sklearn'")
    coords = _principal_axes(best[0])
    details = {
        "engine": engine,
        "stresses": stresses,
        "best_start": best_k,
        "iterations": iterations,
        "converged": converged,
        "n_starts": n_starts,
        "seed": seed,
    }
    return Ordination("nmds", ids, coords, None, None, float(stresses[best_k]), details)


def _classical_start(square: np.ndarray, n_components: int) -> np.ndarray:
    """The first ``n_components`` PCoA axes (ARPACK above 300 samples), zero-padded when fewer are positive."""
    n = square.shape[0]
    classical = pcoa(square, dimensions=None if n <= 300 else n_components).coordinates
    init0 = np.zeros((n, n_components))
    k = min(n_components, classical.shape[1])
    init0[:, :k] = classical[:, :k]
    if k < n_components or not np.any(init0):  # degenerate (e.g. all distances equal): jitter reproducibly
        init0 += 1e-3 * np.random.default_rng(0).standard_normal(init0.shape)
    return init0


def _nmds_sklearn(
    square: np.ndarray,
    condensed: np.ndarray,
    init0: np.ndarray,
    n_starts: int,
    seed: int,
    max_iter: int,
    eps: float,
) -> tuple[list[float], list[np.ndarray]]:
    """Every start through ``sklearn.manifold.MDS(metric_mds=False, metric="precomputed")``."""
    from sklearn.manifold import MDS

    n, n_components = init0.shape
    stresses: list[float] = []
    coords_list: list[np.ndarray] = []
    for k in range(max(1, n_starts)):
        rng = np.random.default_rng(seed + k)
        init = init0 if k == 0 else rng.uniform(size=(n, n_components))
        model = MDS(
            n_components=n_components,
            metric_mds=False,
            metric="precomputed",
            n_init=1,
            init="random",
            max_iter=max_iter,
            eps=eps,
            normalized_stress=True,
            random_state=seed + k,
        )
        coords = model.fit_transform(square, init=init)
        stresses.append(kruskal_stress(condensed, coords))
        coords_list.append(coords)
    return stresses, coords_list


@dataclass(frozen=True)
class _NonmetricProblem:
    """What every SMACOF iteration reuses: the dissimilarities' rank order and their tie blocks.

    ``order`` sorts the condensed dissimilarities (stable). ``tie_pos`` are the positions (in sorted order) that
    belong to a block of equal dissimilarities, ``tie_block`` the block number of each; with the primary
    approach to ties, the configuration distances are sorted inside each block before the monotone regression.
    """

    n: int
    order: np.ndarray
    tie_pos: np.ndarray
    tie_block: np.ndarray
    scaled_dissimilarities: np.ndarray  # condensed, rescaled to sum of squares n(n-1)/2 (metric warm-up)

    @classmethod
    def from_condensed(cls, condensed: np.ndarray, n: int) -> _NonmetricProblem:
        order = np.argsort(condensed, kind="stable")
        sorted_diss = condensed[order]
        same = sorted_diss[1:] == sorted_diss[:-1]
        in_block = np.zeros(sorted_diss.size, dtype=bool)
        in_block[1:] |= same
        in_block[:-1] |= same
        tie_pos = np.flatnonzero(in_block)
        starts = np.ones(tie_pos.size, dtype=bool)
        if tie_pos.size:
            starts[1:] = ~same[tie_pos[1:] - 1]
        ss = float(condensed @ condensed)
        scaled = condensed * np.sqrt(condensed.size / ss) if ss > 0 else condensed.astype(np.float64)
        return cls(n, order, tie_pos, np.cumsum(starts), scaled)


def _guttman(x: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Guttman transform ``B(X) X / n`` with ``b_ij = -δ̂_ij / d_ij`` (i != j), ``b_ii = -Σ_j b_ij``; ``ratio``
    holds ``δ̂ / d`` in condensed order."""
    b = squareform(ratio, checks=False)
    return (b.sum(axis=1)[:, None] * x - b @ x) / x.shape[0]


def _metric_warmup(problem: _NonmetricProblem, x: np.ndarray, iterations: int, eps: float = 1e-4) -> np.ndarray:
    """Metric (ratio) SMACOF on the dissimilarities themselves, with the relaxed update ``X + 1.9 (Γ(X) - X)``
    (de Leeuw & Heiser 1980), to bring a random start out of the degenerate equal-distance region that
    non-metric fitting of an unrelated configuration drifts into."""
    diss = problem.scaled_dissimilarities
    previous = np.inf
    for _ in range(iterations):
        d = pdist(x)
        resid = d - diss
        stress = float(resid @ resid)
        if previous - stress < eps * previous:
            break
        previous = stress
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d > 0, diss / d, 0.0)
        x = x + 1.9 * (_guttman(x, ratio) - x)
    return x


def _smacof_run(
    problem: _NonmetricProblem,
    init: np.ndarray,
    *,
    max_iter: int,
    eps: float,
    warmup: int = 0,
    abandon_above: float = np.inf,
) -> tuple[np.ndarray, float, int, bool]:
    """One start of non-metric SMACOF: ``(coordinates, stress-1, iterations, converged)``.

    Each iteration: configuration distances ``d`` (``pdist``); the tied pairs re-sorted by ``d`` inside their
    blocks (primary ties); ``d̂`` = monotone (isotonic, pool-adjacent-violators) regression of ``d`` in the rank
    order of the dissimilarities; stress-1 ``sqrt(Σ(d - d̂)² / Σd²)``; stop when it falls by less than
    ``eps`` (relative) or below 1e-10; ``d̂`` rescaled to ``Σd̂² = n(n-1)/2``; Guttman transform.
    After :data:`ABANDON_AFTER` iterations a start whose stress is still above ``abandon_above`` is given up
    (not converged): SMACOF decreases stress monotonically, and such a start is heading for a worse local minimum.
    """
    from threadpoolctl import threadpool_limits

    x = np.array(init, dtype=np.float64)
    x -= x.mean(axis=0)
    m = problem.order.size
    ratio = np.empty(m)
    previous = np.inf
    converged = False
    iteration = 0
    order = problem.order.copy()
    tied = order[problem.tie_pos]  # current within-block order of the tied pairs (kept between iterations)
    block = problem.tie_block.astype(np.float64)
    # n x n times n x k products are tiny; BLAS threads only add contention on a shared box.
    with threadpool_limits(1, user_api="blas"):
        if warmup:
            x = _metric_warmup(problem, x, warmup)
        while iteration < max_iter:
            iteration += 1
            d = pdist(x)
            if tied.size:
                tied = _sort_within_blocks(tied, block, d)
                order[problem.tie_pos] = tied
            d_sorted = d[order]
            fitted = _pava(d_sorted)
            ss_d = float(d_sorted @ d_sorted)
            if ss_d == 0.0:
                break
            resid = d_sorted - fitted
            stress = float(np.sqrt(resid @ resid / ss_d))
            if stress < 1e-10 or previous - stress < eps * previous:
                converged = True
                break
            if iteration >= ABANDON_AFTER and stress > abandon_above:
                break
            previous = stress
            ss_fit = float(fitted @ fitted)
            fitted *= np.sqrt(m / ss_fit) if ss_fit > 0 else 0.0
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio[order] = np.where(d_sorted > 0, fitted / d_sorted, 0.0)
            x = _guttman(x, ratio)
    return x, _stress_primary(problem, x), iteration, converged


def _pava(values: np.ndarray) -> np.ndarray:
    """Increasing isotonic regression (pool-adjacent-violators): scipy's, which is what
    ``sklearn.isotonic.isotonic_regression`` runs (scipy >= 1.12), without its per-call input validation."""
    from scipy.optimize import isotonic_regression

    return np.asarray(isotonic_regression(values, increasing=True).x, dtype=np.float64)


def _sort_within_blocks(tied: np.ndarray, block: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Reorder the tied pairs by configuration distance inside each block of equal dissimilarities.

    One stable argsort of ``block + d / (1.000001 max d)`` (block numbers are integers, the fraction stays
    below 1). ``tied`` is the previous iteration's order, nearly sorted already, which timsort exploits.
    """
    dt = d[tied]
    top = float(dt.max()) if dt.size else 0.0
    key = block + dt * (1.0 / (top * 1.000001)) if top > 0 else block
    return tied[np.argsort(key, kind="stable")]


def _stress_primary(problem: _NonmetricProblem, coordinates: np.ndarray) -> float:
    """Kruskal stress-1 of ``coordinates`` (primary ties) using a precomputed :class:`_NonmetricProblem`."""

    d = pdist(np.asarray(coordinates, dtype=np.float64))
    order = problem.order
    if problem.tie_pos.size:
        order = order.copy()
        tied = order[problem.tie_pos]
        order[problem.tie_pos] = tied[np.lexsort((d[tied], problem.tie_block))]
    d_sorted = d[order]
    denom = float(d_sorted @ d_sorted)
    if denom == 0.0:
        return 0.0
    resid = d_sorted - _pava(d_sorted)
    return float(np.sqrt(resid @ resid / denom))


def procrustes(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """``(disparity, correlation)``: scipy Procrustes disparity and vegan ``protest``'s ``sqrt(1 - disparity)``."""
    from scipy.spatial import procrustes as scipy_procrustes

    _, _, disparity = scipy_procrustes(np.asarray(reference, float), np.asarray(other, float))
    return float(disparity), float(np.sqrt(max(0.0, 1.0 - disparity)))


# ---------------------------------------------------------------------------------------------------- PCA


def pca_clr(
    counts: Any,
    ids: Sequence[str] | None = None,
    *,
    feature_ids: Sequence[str] | None = None,
    pseudocount: float = DEFAULT_AITCHISON_PSEUDOCOUNT,
    n_components: int | None = None,
) -> Ordination:
    """PCA of ``clr(counts + pseudocount)`` rows (centred, not scaled), as R ``prcomp`` on the CLR matrix.

    ``eigenvalues`` are ``sdev**2`` (variance, n-1 denominator), ``proportion_explained`` their share;
    ``details["loadings"]`` is the features x components rotation (DataFrame when ``feature_ids`` given).
    """
    matrix, ids = as_count_matrix(counts, ids)
    points = clr(matrix, pseudocount)
    centred = points - points.mean(axis=0)
    n = centred.shape[0]
    u, svals, vt = np.linalg.svd(centred, full_matrices=False)
    idx = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(vt.shape[0]), idx])
    signs[signs == 0] = 1.0
    u, vt = u * signs, vt * signs[:, None]
    k = min(n_components or len(svals), len(svals))
    sdev = svals / np.sqrt(max(1, n - 1))
    var = sdev**2
    total = float(var.sum())
    prop = var / total if total > 0 else np.zeros_like(var)
    loadings: Any = vt[:k].T
    if feature_ids is not None:
        loadings = pd.DataFrame(loadings, index=list(feature_ids), columns=[f"PC{i + 1}" for i in range(k)])
    details = {"pseudocount": pseudocount, "sdev": sdev, "loadings": loadings}
    return Ordination("pca", ids, (u * svals)[:, :k], var[:k], prop[:k], None, details)
