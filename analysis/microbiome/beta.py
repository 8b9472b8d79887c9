"""Beta diversity on a sparse samples x features count matrix: Bray–Curtis, Jaccard, Aitchison, UniFrac.

Every metric returns a :class:`BetaDistances`: the sample ids and the *condensed* distance vector in
``scipy.spatial.distance.squareform`` order (pairs (0,1), (0,2), ..., (0,n-1), (1,2), ...), so an n x n matrix
is never stored as a long table. ``save_npz``/``load_npz`` persist it; ``write_phylip`` writes mothur's PHYLIP
layout (``dist.shared``: first line n, then ``name<TAB>values`` with 6 decimals) and ``write_square_csv`` a CSV.

Definitions (reference spec ``omics.md`` §1.8, §3.3, §5):

* **Bray–Curtis** ``1 - 2 Σ min(a_i, b_i) / (N_a + N_b)`` = scipy/skbio ``braycurtis`` = mothur ``braycurtis`` =
  vegan ``vegdist(method="bray")``. For integer counts the numerator is computed as the exact integer
  ``N_a + N_b - 2 Σ min`` = ``Σ |a - b|``, so the result is bit-identical to scipy's ``pdist``.
* **Jaccard** on presence/absence ``1 - S_ab / (S_a + S_b - S_ab)`` = scipy ``jaccard`` on ``X > 0`` = mothur
  ``jclass`` = vegan ``vegdist(method="jaccard", binary=TRUE)``. Never the quantitative vegan Jaccard.
* **Aitchison**: Euclidean distance between CLR vectors of ``counts + pseudocount`` (default pseudocount 1, on
  the raw counts; CLR is scale invariant per sample, so the pseudocount is the only free choice). This is vegan
  ``vegdist(method="aitchison", pseudocount=1)`` and skbio ``euclidean`` on ``clr(counts + 1)``.
* **UniFrac** (weighted / unweighted) when a tree is supplied: scikit-bio's definitions, computed for all pairs at
  once from the branch-incidence matrix (:func:`unifrac`; equal to scikit-bio's to rounding).

Speed (issue 5): Bray–Curtis never goes through a dense ``pdist`` over all features. For integers
``min(a, b) = Σ_{t=1..L} [a ≥ t][b ≥ t] + min((a-L)+, (b-L)+)``. Each feature f gets its own ``L_f`` (0..8) from a
cost model: the presence layers of all features are stacked into one float32 matrix and go through a BLAS
``syrk`` (exact: every partial sum is an integer below 2**24), which pays off for common, low-count features;
the residual ``(x - L_f)+`` is accumulated only over the features each sample actually contains (row ``i``
against rows ``j > i`` on ``i``'s nonzero columns, numpy minimum + sum in cache-sized blocks), so its cost is
about ``n * nnz / 2`` element operations instead of ``n² * features / 2``. Non-integer data (relative
abundances) or library sizes of 2**24 reads and more use ``L = 0`` and float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial.distance import squareform

from analysis import safe_csv

__all__ = [
    "DEFAULT_AITCHISON_PSEUDOCOUNT",
    "METRICS",
    "BetaDistances",
    "aitchison",
    "as_count_matrix",
    "beta_diversity",
    "bray_curtis",
    "clr",
    "jaccard",
    "load_npz",
    "read_phylip",
    "unifrac",
    "write_phylip",
    "write_square_csv",
]

METRICS = ("braycurtis", "jaccard", "aitchison", "weighted_unifrac", "unweighted_unifrac")
DEFAULT_AITCHISON_PSEUDOCOUNT = 1.0

# float32 represents every integer below 2**24 exactly; sums of 0/1 products and of integer minima stay exact
# as long as every partial sum stays below it.
_F32_EXACT = float(2**24)
# Rough relative costs used to choose the number of presence layers (measured on a 2-core Haswell box):
# one (pair, feature) term of a float32 syrk vs one element of the blocked numpy minimum/sum.
_COST_SYRK = 0.03e-9
_COST_MIN = 2.0e-9
_MAX_LAYERS = 8
_BLOCK_BYTES = 1 << 28  # dense float32 blocks handed to BLAS stay below 256 MiB


@dataclass(frozen=True)
class BetaDistances:
    """Pairwise distances between samples, condensed (``scipy.spatial.distance.squareform`` order)."""

    ids: tuple[str, ...]
    condensed: np.ndarray
    metric: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.condensed.shape != (n * (n - 1) // 2,):
            raise ValueError(f"condensed vector has {self.condensed.shape} entries, expected {n * (n - 1) // 2}")
        if len(set(self.ids)) != n:
            raise ValueError("sample ids must be unique")

    @property
    def n(self) -> int:
        return len(self.ids)

    def square(self) -> np.ndarray:
        """The full symmetric n x n matrix (zero diagonal)."""
        return squareform(self.condensed, checks=False)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.square(), index=list(self.ids), columns=list(self.ids))

    def to_skbio(self) -> Any:
        from skbio import DistanceMatrix

        return DistanceMatrix(self.square(), ids=list(self.ids))

    def subset(self, ids: Sequence[str]) -> BetaDistances:
        """Distances among ``ids`` (in that order)."""
        pos = {s: i for i, s in enumerate(self.ids)}
        idx = np.array([pos[s] for s in ids], dtype=np.intp)
        return BetaDistances(
            tuple(ids), squareform(self.square()[np.ix_(idx, idx)], checks=False), self.metric, self.params
        )

    def save_npz(self, path: str | Path) -> Path:
        """Store ids, condensed distances, metric and parameters in one compressed ``.npz`` file."""
        path = Path(path)
        np.savez_compressed(
            path,
            ids=np.array(self.ids, dtype=str),
            condensed=self.condensed,
            metric=np.array(self.metric),
            params=np.array(repr(sorted(self.params.items()))),
        )
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_npz(path: str | Path) -> BetaDistances:
    """Read a file written by :meth:`BetaDistances.save_npz` (parameters come back as their repr only)."""
    with np.load(Path(path), allow_pickle=False) as z:
        return BetaDistances(
            tuple(str(s) for s in z["ids"]),
            np.asarray(z["condensed"], dtype=np.float64),
            str(z["metric"]),
            {"saved_params": str(z["params"])},
        )


# ------------------------------------------------------------------------------------------------ input


def as_count_matrix(counts: Any, ids: Sequence[str] | None = None) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """Return ``(CSR float64 samples x features, sample ids)`` from a sparse matrix, ndarray or DataFrame.

    A DataFrame gives its index as ids unless ``ids`` is passed. Entries must be finite and non-negative.
    """
    if isinstance(counts, pd.DataFrame):
        if ids is None:
            ids = [str(s) for s in counts.index]
        counts = counts.to_numpy(dtype=np.float64)
    matrix = (
        sp.csr_matrix(counts, dtype=np.float64)
        if sp.issparse(counts)
        else sp.csr_matrix(np.asarray(counts, dtype=np.float64))
    )
    if matrix.ndim != 2:
        raise ValueError("counts must be a 2-D samples x features matrix")
    matrix = matrix.copy() if matrix is counts else matrix
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    if matrix.nnz and (not np.all(np.isfinite(matrix.data)) or matrix.data.min() < 0):
        raise ValueError("counts must be finite and non-negative")
    n = matrix.shape[0]
    if ids is None:
        ids = [f"S{i + 1}" for i in range(n)]
    ids = tuple(str(s) for s in ids)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} samples")
    return matrix, ids


def _require_nonempty(matrix: sp.csr_matrix, ids: tuple[str, ...], metric: str) -> np.ndarray:
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    empty = [ids[i] for i in np.flatnonzero(totals <= 0)]
    if empty:
        shown = ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else "")
        raise ValueError(f"{metric}: {len(empty)} sample(s) have no reads ({shown}); exclude them first")
    return totals


def _is_integral(matrix: sp.csr_matrix) -> bool:
    return bool(matrix.nnz == 0 or np.all(matrix.data == np.round(matrix.data)))


def _row_offsets(n: int) -> np.ndarray:
    """Start of row ``i``'s pairs (i, i+1..n-1) in the condensed vector."""
    i = np.arange(n, dtype=np.int64)
    return i * n - i * (i + 1) // 2


def _condensed_jaccard_form(totals: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Condensed ``(a + b - 2c) / (a + b - c)`` for every pair (0 where ``a + b - c`` is 0), from per-sample totals
    ``a``, ``b`` and the pairwise shared amounts ``c`` (a square Gram matrix): Jaccard on feature counts, unweighted
    UniFrac on branch lengths. One row at a time, so memory stays at one condensed vector."""
    n = len(totals)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    offsets = _row_offsets(n)
    for i in range(n - 1):
        both = shared[i, i + 1 :]
        either = totals[i] + totals[i + 1 :] - both
        differ = totals[i] + totals[i + 1 :] - 2.0 * both
        with np.errstate(invalid="ignore", divide="ignore"):
            row = np.where(either > 0, differ / np.where(either > 0, either, 1.0), 0.0)
        # rounding in the branch-length sums can leave -1e-17 where two samples share every branch
        out[offsets[i] : offsets[i] + n - 1 - i] = np.maximum(row, 0.0)
    return out


def _upper_to_condensed(square: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    n = square.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64) if out is None else out
    offsets = _row_offsets(n)
    for i in range(n - 1):
        out[offsets[i] : offsets[i] + n - 1 - i] = square[i, i + 1 :]
    return out


def _dense_columns(matrix: sp.csr_matrix, columns: np.ndarray, dtype: type) -> np.ndarray:
    """``matrix[:, columns].T`` as a C-contiguous dense (len(columns) x n) array."""
    return sp.csr_matrix(matrix.T)[columns].toarray().astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------- Bray–Curtis


def _presence_gram(matrix: sp.csr_matrix, threshold: float) -> np.ndarray:
    """``A @ A.T`` for ``A = [matrix >= threshold]`` (float32; exact, entries are counts < 2**24)."""
    n = matrix.shape[0]
    cols = np.flatnonzero(np.diff(matrix.tocsc().indptr))
    gram = np.zeros((n, n), dtype=np.float32)
    step = max(1, _BLOCK_BYTES // max(1, 4 * n))
    for c0 in range(0, len(cols), step):
        block = matrix[:, cols[c0 : c0 + step]].toarray() >= threshold
        block = block.astype(np.float32)
        gram += block @ block.T  # numpy dispatches A @ A.T to syrk
    return gram


def _layer_gram(matrix: sp.csr_matrix, per_feature: np.ndarray) -> np.ndarray:
    """``Σ_t A_t @ A_t.T`` with ``A_t = [X[:, f] >= t]`` over features with ``per_feature[f] >= t``.

    The layered features are densified once, ordered by their number of layers so that layer ``t`` is a
    column prefix; all layer columns go through as few float32 syrk calls as memory allows.
    """
    n = matrix.shape[0]
    layered = np.flatnonzero(per_feature > 0)
    order = layered[np.argsort(-per_feature[layered], kind="stable")]
    dense = matrix[:, order].toarray().astype(np.float32)
    depth = per_feature[order]
    prefix = [int(np.count_nonzero(depth >= t)) for t in range(1, int(depth.max(initial=0)) + 1)]
    gram = np.zeros((n, n), dtype=np.float32)
    capacity = max(max(prefix, default=1), min(sum(prefix), _BLOCK_BYTES // max(1, 4 * n)))
    buffer = np.empty((n, capacity), dtype=np.float32)
    used = 0
    for t, width in enumerate(prefix, start=1):
        if used + width > capacity:
            block = buffer[:, :used]
            gram += block @ block.T
            used = 0
        np.greater_equal(dense[:, :width], t, out=buffer[:, used : used + width], casting="unsafe")
        used += width
    if used:
        block = buffer[:, :used]
        gram += block @ block.T
    return gram


def _choose_feature_layers(matrix: sp.csr_matrix) -> np.ndarray:
    """Number of presence layers per feature (0.._MAX_LAYERS) minimising the modelled cost.

    Layer ``t`` of feature f costs one column of a syrk (``n**2`` terms) and removes every entry of f that is
    ``>= t`` from one unit of the residual, where each residual entry costs about ``n/2`` minimum/sum elements.
    So dense, low-count features get layers; rare features stay entirely in the residual.
    """
    n, n_features = matrix.shape
    csc = matrix.tocsc()
    col = np.repeat(np.arange(n_features), np.diff(csc.indptr))
    # residual_nnz[L, f] = number of entries of f above L
    residual_nnz = np.stack(
        [np.bincount(col[csc.data > layers], minlength=n_features) for layers in range(_MAX_LAYERS + 1)]
    ).astype(np.float64)
    layers = np.arange(_MAX_LAYERS + 1, dtype=np.float64)[:, None]
    cost = layers * (n * n * _COST_SYRK) + residual_nnz * (0.5 * n * _COST_MIN)
    return np.argmin(cost, axis=0).astype(np.int64)


def _sum_min_rows(
    residual: sp.csr_matrix, dense_t: np.ndarray, col_pos: np.ndarray, out: np.ndarray, dtype: type
) -> None:
    """Add ``Σ_f min(R_if, R_jf)`` for all i < j into the condensed ``out``, over i's nonzero columns only.

    ``dense_t`` is the residual transposed (features x samples, C order), so row i's features are gathered as
    contiguous row slices; blocks of samples j are sized to stay in cache.
    """
    n = residual.shape[0]
    offsets = _row_offsets(n)
    indptr, indices = residual.indptr, residual.indices
    for i in range(n - 1):
        a, b = indptr[i], indptr[i + 1]
        if a == b:
            continue
        rows = col_pos[indices[a:b]]
        xi = dense_t[rows, i][:, None]
        width = int(min(4096, max(256, (1 << 18) // (b - a))))
        base = offsets[i] - (i + 1)
        for j0 in range(i + 1, n, width):
            j1 = min(n, j0 + width)
            block = dense_t[rows, j0:j1]
            np.minimum(block, xi, out=block)
            out[base + j0 : base + j1] += block.sum(axis=0, dtype=dtype)


def _shared_minimum(matrix: sp.csr_matrix, layers: int | Literal["auto"] = "auto") -> tuple[np.ndarray, int]:
    """Condensed ``Σ_f min(X_if, X_jf)`` for all sample pairs, and the largest number of presence layers used.

    ``min(a, b) = Σ_{t=1..L} [a >= t][b >= t] + min((a-L)+, (b-L)+)`` for integers, with ``L`` chosen per
    feature (``"auto"``) or fixed for all features (an int).
    """
    n, n_features = matrix.shape
    integral = _is_integral(matrix)
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    exact32 = bool(integral and totals.max(initial=0.0) < _F32_EXACT)
    if layers == "auto":
        per_feature = _choose_feature_layers(matrix) if exact32 and matrix.nnz else np.zeros(n_features, np.int64)
    else:
        if layers and not exact32:
            raise ValueError("presence layers need integer counts with library sizes below 2**24")
        per_feature = np.full(n_features, int(layers), dtype=np.int64)
    out = np.zeros(n * (n - 1) // 2, dtype=np.float64)
    max_layers = int(per_feature.max(initial=0))
    residual = matrix
    if max_layers:
        gram = _layer_gram(matrix, per_feature)
        _upper_to_condensed(gram, out)
        del gram
        residual = matrix.copy()
        residual.data = np.maximum(residual.data - per_feature[residual.indices], 0.0)
        residual.eliminate_zeros()
    if residual.nnz:
        dtype = np.float32 if exact32 else np.float64
        cols = np.flatnonzero(np.diff(residual.tocsc().indptr))
        col_pos = np.full(n_features, -1, dtype=np.intp)
        col_pos[cols] = np.arange(len(cols))
        dense_t = _dense_columns(residual, cols, dtype)
        _sum_min_rows(residual, dense_t, col_pos, out, dtype)
    return out, max_layers


def bray_curtis(
    counts: Any, ids: Sequence[str] | None = None, *, layers: int | Literal["auto"] = "auto"
) -> BetaDistances:
    """Bray–Curtis dissimilarity between all samples (rows) of a sparse count matrix.

    ``1 - 2 Σ min(a, b) / (N_a + N_b)``; equal to scipy ``pdist(X, "braycurtis")`` (bit-identical for integer
    counts), mothur ``braycurtis`` and vegan ``vegdist(method="bray")``. Samples without reads are an error
    (scipy returns NaN for a pair of them). ``layers`` forces the number of presence layers (see the module
    docstring); the default picks it from a cost model.
    """
    matrix, ids = as_count_matrix(counts, ids)
    totals = _require_nonempty(matrix, ids, "braycurtis")
    n = matrix.shape[0]
    shared, used = _shared_minimum(matrix, layers)
    offsets = _row_offsets(n)
    out = shared  # reuse the buffer: shared -> distance, row by row
    for i in range(n - 1):
        sl = slice(offsets[i], offsets[i] + n - 1 - i)
        pair_total = totals[i] + totals[i + 1 :]
        out[sl] = (pair_total - 2.0 * shared[sl]) / pair_total
    np.clip(out, 0.0, 1.0, out=out)
    return BetaDistances(ids, out, "braycurtis", {"presence_layers": used})


# ------------------------------------------------------------------------------------------------- Jaccard


def _gram_presence_auto(matrix: sp.csr_matrix) -> np.ndarray:
    """Co-occurrence counts ``B @ B.T`` for ``B = X > 0``: sparse product when very sparse, else float32 syrk."""
    n = matrix.shape[0]
    prevalence = np.diff(matrix.tocsc().indptr).astype(np.float64)
    sparse_cost = float(np.sum(prevalence**2)) * 10e-9
    dense_cost = n * n * float(np.count_nonzero(prevalence)) * _COST_SYRK
    if sparse_cost < dense_cost:
        pres = matrix.copy()
        pres.data = np.ones_like(pres.data)
        return np.asarray((pres @ pres.T).toarray(), dtype=np.float64)
    return _presence_gram(matrix, 0.5).astype(np.float64)


def jaccard(counts: Any, ids: Sequence[str] | None = None) -> BetaDistances:
    """Presence/absence Jaccard distance ``1 - S_ab / (S_a + S_b - S_ab)`` (= scipy ``jaccard`` on ``X > 0``).

    Computed from one co-occurrence Gram matrix. Two empty samples are at distance 0, as in scipy.
    """
    matrix, ids = as_count_matrix(counts, ids)
    n = matrix.shape[0]
    richness = np.diff(matrix.indptr).astype(np.float64)
    if n > 1 and richness.max() >= _F32_EXACT:
        raise ValueError("jaccard: more than 2**24 features per sample is not supported")
    out = _condensed_jaccard_form(richness, _gram_presence_auto(matrix))
    return BetaDistances(ids, out, "jaccard", {"binary": True})


# ----------------------------------------------------------------------------------------------- Aitchison


def clr(counts: Any, pseudocount: float = DEFAULT_AITCHISON_PSEUDOCOUNT) -> np.ndarray:
    """Centred log-ratio of ``counts + pseudocount`` per sample (rows), dense float64.

    ``clr(x)_f = log(x_f + c) - mean_g log(x_g + c)``. With ``pseudocount=0`` every entry must be positive.
    """
    matrix = counts.toarray() if sp.issparse(counts) else np.asarray(counts, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    if pseudocount < 0:
        raise ValueError("pseudocount must be >= 0")
    shifted = matrix + pseudocount
    if np.any(shifted <= 0):
        raise ValueError("clr needs strictly positive values: use a positive pseudocount")
    logs = np.log(shifted)
    return logs - logs.mean(axis=1, keepdims=True)


def _euclidean_condensed(points: np.ndarray) -> np.ndarray:
    """Condensed Euclidean distances via the Gram matrix (one BLAS syrk)."""
    n = points.shape[0]
    gram = points @ points.T
    sq = np.diag(gram).copy()
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    offsets = _row_offsets(n)
    for i in range(n - 1):
        d2 = sq[i] + sq[i + 1 :] - 2.0 * gram[i, i + 1 :]
        out[offsets[i] : offsets[i] + n - 1 - i] = np.sqrt(np.maximum(d2, 0.0))
    return out


def aitchison(
    counts: Any, ids: Sequence[str] | None = None, *, pseudocount: float = DEFAULT_AITCHISON_PSEUDOCOUNT
) -> BetaDistances:
    """Aitchison distance: Euclidean distance between ``clr(counts + pseudocount)`` rows.

    The pseudocount (default 1, added to the raw counts) replaces zeros; it is recorded in ``params``. Equal to
    vegan ``vegdist(x, "aitchison", pseudocount=1)`` and skbio ``euclidean`` on ``clr(x + 1)``.
    """
    matrix, ids = as_count_matrix(counts, ids)
    points = clr(matrix, pseudocount)
    return BetaDistances(ids, _euclidean_condensed(points), "aitchison", {"pseudocount": pseudocount})


# ------------------------------------------------------------------------------------------------- UniFrac


def unifrac(
    counts: Any,
    ids: Sequence[str] | None,
    feature_ids: Sequence[str],
    tree: Any,
    *,
    weighted: bool = False,
    normalized: bool = False,
    engine: Literal["vectorised", "skbio"] = "vectorised",
) -> BetaDistances:
    """UniFrac between all samples (rows); ``tree`` is a rooted ``skbio.TreeNode`` whose tips include
    ``feature_ids`` (the columns; extra tips are fine, a feature that is not a tip is an error).

    Definitions (Lozupone & Knight 2005, Lozupone et al. 2007; scikit-bio 0.7 ``unweighted_unifrac`` /
    ``weighted_unifrac``, QIIME 2 ``unweighted_unifrac`` / ``weighted_unifrac``). For every node b of the tree
    (the root included when it has a length) with branch length ``L_b`` and, per sample, ``c_b`` = reads of the
    features below b and ``N`` = the sample's reads:

    * unweighted: ``Σ_b L_b |[c_ib > 0] - [c_jb > 0]| / Σ_b L_b max([c_ib > 0], [c_jb > 0])`` (unique / observed
      branch length; 0 when no branch is observed);
    * weighted (``normalized=False``, the skbio/QIIME 2 default): ``Σ_b L_b |c_ib/N_i - c_jb/N_j|``;
      ``normalized=True`` divides by ``Σ_tips D_t (c_it/N_i + c_jt/N_j)``, ``D_t`` the root-to-tip distance
      (skbio ``weighted_unifrac(normalized=True)``, QIIME 2 ``weighted_normalized_unifrac``).

    ``engine="vectorised"`` (default): the features-to-nodes incidence matrix ``A`` (sparse) gives all branch
    counts at once, ``C = X Aᵀ``; unweighted from one Gram product ``(P ∘ L) Pᵀ`` of the presence matrix ``P``,
    weighted as an L1 (cityblock) distance between ``L ∘ C/N`` rows. ``engine="skbio"`` calls scikit-bio (the
    reference; one Python-level call per pair of samples). Counts must be integers.
    """
    matrix, ids = as_count_matrix(counts, ids)
    if not _is_integral(matrix):
        raise ValueError("UniFrac needs integer counts")
    metric = "weighted_unifrac" if weighted else "unweighted_unifrac"
    params = {"normalized": normalized} if weighted else {}
    if engine == "skbio":
        from skbio.diversity import beta_diversity as skbio_beta

        dense = matrix.toarray().astype(np.int64)
        kwargs: dict[str, Any] = {"taxa": list(feature_ids), "tree": tree}
        if weighted:
            kwargs["normalized"] = normalized
        dm = skbio_beta(metric, dense, ids=list(ids), **kwargs)
        return BetaDistances(ids, np.asarray(dm.condensed_form(), dtype=np.float64), metric, params)
    if engine != "vectorised":
        raise ValueError(f"unknown engine {engine!r}")
    incidence, lengths, depth = _branch_incidence(tree, feature_ids)
    node_counts = np.asarray((matrix @ incidence.T).todense(), dtype=np.float64)  # samples x nodes
    n = matrix.shape[0]
    if not weighted:
        present = (node_counts > 0).astype(np.float64)
        observed = present @ lengths
        out = _condensed_jaccard_form(observed, (present * lengths) @ present.T)
        return BetaDistances(ids, out, metric, params)
    from scipy.spatial.distance import pdist

    totals = np.asarray(matrix.sum(axis=1)).ravel()
    if np.any(totals <= 0):
        raise ValueError("weighted UniFrac: samples without reads; exclude them first")
    share = node_counts / totals[:, None]
    out = pdist(share * lengths[None, :], "cityblock")
    if normalized:
        tip_share = np.asarray(matrix.toarray(), dtype=np.float64) / totals[:, None]
        weight = tip_share @ depth  # Σ_t D_t c_it / N_i per sample
        offsets = _row_offsets(n)
        for i in range(n - 1):
            sl = slice(offsets[i], offsets[i] + n - 1 - i)
            out[sl] = out[sl] / (weight[i] + weight[i + 1 :])
    return BetaDistances(ids, out, metric, params)


def _branch_incidence(tree: Any, feature_ids: Sequence[str]) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """``(A, L, D)``: ``A[b, f] = 1`` when feature f is at or below node b (sparse, nodes x features), branch
    lengths ``L`` (None -> 0) per node, and root-to-tip distance ``D`` per feature. A length on the root itself
    counts in ``L`` and ``D``, as in scikit-bio (``_tip_distances``)."""
    nodes = list(tree.postorder(include_self=True))
    index = {id(node): k for k, node in enumerate(nodes)}
    lengths = np.array([0.0 if node.length is None else float(node.length) for node in nodes])
    tips = {node.name: node for node in nodes if node.is_tip()}
    missing = [f for f in feature_ids if f not in tips]
    if missing:
        raise ValueError(f"{len(missing)} feature(s) are not tips of the tree: {list(missing)[:5]}")
    rows, cols, depth = [], [], np.zeros(len(feature_ids))
    for f, name in enumerate(feature_ids):
        node = tips[name]
        while node is not None:
            rows.append(index[id(node)])
            cols.append(f)
            depth[f] += 0.0 if node.length is None else float(node.length)  # the root's length too, as skbio
            node = node.parent
    data = np.ones(len(rows), dtype=np.float64)
    incidence = sp.csr_matrix((data, (rows, cols)), shape=(len(nodes), len(feature_ids)))
    return incidence, lengths, depth


def beta_diversity(metric: str, counts: Any, ids: Sequence[str] | None = None, **kwargs: Any) -> BetaDistances:
    """Dispatch by name: ``braycurtis``, ``jaccard``, ``aitchison``, ``weighted_unifrac``, ``unweighted_unifrac``."""
    name = metric.lower().replace("-", "").replace("_", "")
    if name in {"braycurtis", "bray"}:
        return bray_curtis(counts, ids, **kwargs)
    if name in {"jaccard", "jclass"}:
        return jaccard(counts, ids, **kwargs)
    if name == "aitchison":
        return aitchison(counts, ids, **kwargs)
    if name in {"weightedunifrac", "unweightedunifrac"}:
        return unifrac(counts, ids, weighted=name.startswith("weighted"), **kwargs)
    raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


# --------------------------------------------------------------------------------------------- file formats


def _fmt_row(values: np.ndarray, decimals: int) -> str:
    spec = f"{{:.{decimals}f}}"
    return "\t".join(map(spec.format, values.tolist()))


def write_phylip(
    distances: BetaDistances, path: str | Path, *, lower_triangle: bool = False, decimals: int = 6
) -> Path:
    """Write mothur's PHYLIP layout: first line ``n``, then ``name<TAB>d_1<TAB>...`` (``%.6f``).

    ``lower_triangle=True`` writes mothur's default ``lt`` output (row i holds distances to rows 0..i-1).
    Names must not contain whitespace (mothur splits on it).
    """
    bad = [s for s in distances.ids if any(c.isspace() for c in s)]
    if bad:
        raise ValueError(f"PHYLIP names cannot contain whitespace: {bad[:5]}")
    path = Path(path)
    square = distances.square()
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"{distances.n}\n")
        for i, name in enumerate(distances.ids):
            row = square[i, :i] if lower_triangle else square[i]
            fh.write(name + ("\t" + _fmt_row(row, decimals) if row.size else "") + "\n")
    return path


def write_square_csv(distances: BetaDistances, path: str | Path, *, decimals: int | None = None) -> Path:
    """Square CSV with a header row of ids and the ids as first column; full precision unless ``decimals``.

    Sample ids that a spreadsheet would run as a formula are neutralised (:mod:`analysis.safe_csv`)."""
    path = Path(path)
    float_format = None if decimals is None else f"%.{decimals}f"
    safe_csv.to_csv(distances.to_frame(), path, float_format=float_format, index_label="sample")
    return path


def read_phylip(path: str | Path, metric: str = "unknown") -> BetaDistances:
    """Read a square or lower-triangular PHYLIP distance file (mothur ``dist.shared`` output)."""
    lines = [ln.split() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    n = int(lines[0][0])
    rows = lines[1 : n + 1]
    if len(rows) != n:
        raise ValueError(f"{path}: header says {n} samples, found {len(rows)} rows")
    ids = tuple(r[0] for r in rows)
    square = np.zeros((n, n), dtype=np.float64)
    lower = all(len(r) - 1 == i for i, r in enumerate(rows))
    for i, r in enumerate(rows):
        vals = np.array(r[1:], dtype=np.float64)
        if lower:
            square[i, :i] = vals
            square[:i, i] = vals
        elif len(vals) == n:
            square[i] = vals
        else:
            raise ValueError(f"{path}: row {i + 2} has {len(vals)} values, expected {n} (square) or {i} (lower)")
    if not lower:
        square = (square + square.T) / 2.0
    return BetaDistances(ids, squareform(square, checks=False), metric, {"source": str(path)})
