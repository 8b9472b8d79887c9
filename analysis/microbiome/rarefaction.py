"""Rarefaction depth choice and rarefaction curves.

Depth rule (documented choice, configurable): the largest depth that keeps at least ``keep_fraction``
(default 90 %) of the patient samples, never below ``floor`` reads. With library sizes sorted ascending
``n_(1) <= ... <= n_(m)``, keeping at least ``k = ceil(keep_fraction * m)`` samples means the depth is the
``k``-th largest size, ``n_(m-k+1)``. Samples below the chosen depth are listed, never silently dropped.

Rarefaction curves use the exact expected richness of a subsample of ``d`` reads drawn without replacement
(Hurlbert 1971; Heck et al. 1975), as vegan's ``rarefy`` computes it:

    E[S_d] = sum_i [1 - C(N - n_i, d) / C(N, d)]

evaluated with log-gamma so large counts do not overflow. It needs no random draws, so curves are exact and
reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import gammaln


@dataclass(frozen=True)
class DepthChoice:
    depth: int
    keep_fraction: float
    floor: int
    n_samples: int
    n_kept: int
    below_depth: tuple[str, ...]
    reason: str


def choose_depth(library_sizes: pd.Series, keep_fraction: float = 0.9, floor: int = 1000) -> DepthChoice:
    """The rarefaction depth by the rule above; ``library_sizes`` is indexed by sample id."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    sizes = library_sizes.astype("int64").sort_values(kind="stable")
    m = len(sizes)
    if m == 0:
        raise ValueError("no samples to rarefy")
    k = math.ceil(keep_fraction * m)
    depth = int(sizes.iloc[m - k])
    reason = f"largest depth keeping >= {keep_fraction:.0%} of {m} samples"
    if depth < floor:
        depth = floor
        reason = f"floor of {floor} reads (the {keep_fraction:.0%} rule gave fewer)"
    below = tuple(str(s) for s in sizes.index[sizes.to_numpy() < depth])
    return DepthChoice(depth, keep_fraction, floor, m, m - len(below), below, reason)


def _log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def rarefaction_curves(
    counts: sp.csr_array | sp.csr_matrix | np.ndarray, sample_ids: list[str], depths: np.ndarray
) -> pd.DataFrame:
    """Expected observed richness at each depth per sample (long: sample_id, depth, expected_sobs).

    Depths above a sample's library size are omitted for that sample. Vectorised over the non-zero counts.
    """
    csr = sp.csr_array(counts)
    totals = np.asarray(csr.sum(axis=1)).ravel().astype(np.float64)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    values = csr.data.astype(np.float64)
    frames = []
    for depth in np.asarray(depths, dtype=np.float64):
        ok_rows = totals >= depth
        keep = ok_rows[rows]
        n_total = totals[rows[keep]]
        n_i = values[keep]
        # P(OTU i absent from a subsample of d reads) = C(N - n_i, d) / C(N, d); zero when N - n_i < d.
        feasible = (n_total - n_i) >= depth
        log_p = np.where(
            feasible,
            _log_choose(np.maximum(n_total - n_i, depth), np.full_like(n_i, depth))
            - _log_choose(n_total, np.full_like(n_i, depth)),
            -np.inf,
        )
        expected = np.bincount(rows[keep], weights=1.0 - np.exp(log_p), minlength=csr.shape[0])
        idx = np.nonzero(ok_rows)[0]
        frames.append(
            pd.DataFrame(
                {
                    "sample_id": np.asarray(sample_ids, dtype=object)[idx],
                    "depth": int(depth),
                    "expected_sobs": expected[idx],
                }
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["sample_id", "depth", "expected_sobs"])
    )
