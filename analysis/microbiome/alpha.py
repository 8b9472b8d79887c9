r"""Alpha diversity exactly as mothur's ``summary.single`` computes it, vectorised over all samples.

The trial protocol names "Chao, Shannon, Simpson, ACE and Coverage", i.e. mothur's ``summary.single``
calculators, and analysts compare our numbers with sequencing providers' mothur reports to the printed
6 decimals. Everything here therefore follows the mothur 1.48 C++ sources (``source/calculators/*.cpp``,
``source/commands/summarycommand.cpp``, ``source/subsample.cpp``), including their quirks, and was checked
cell by cell against the Debian ``mothur 1.48.0`` binary (see ``tests/test_alpha.py``).

Notation
--------
Each sample (mothur "group") is reduced to its *sabund*: :math:`F_i` = number of OTUs with exactly *i* reads
(OTUs with 0 reads do not count). :math:`N=\sum_i iF_i` (nseqs), :math:`S=\sum_i F_i` (sobs),
:math:`F_1` singletons, :math:`F_2` doubletons. Sums "over classes" run over abundance classes *i* with
:math:`F_i>0` in increasing *i*, in that order (mothur's loop order; we keep it so that floating-point
rounding, and hence the sign of near-zero variances, is the same). ``pow``, ``log``, ``exp`` are the C
library's. "Sanitised" means NaN and ±Inf are replaced by 0, which only some mothur calculators do
(noted per calculator).

Calculators (mothur name = output column; ``_lci``/``_hci`` are the CI columns)
-------------------------------------------------------------------------------
``nseqs`` (``nseqs.h``)
    :math:`N`.
``sobs`` (``sobs.h``)
    :math:`S`.
``coverage`` and ``goodscoverage`` (``coverage.cpp``, ``goodscoverage.cpp``)
    Good's coverage :math:`1 - F_1/N`. Not sanitised. For an empty sample mothur reads past the end of
    an empty sabund (undefined behaviour, mothur 1.48 prints ``-inf``); we return NaN.
``chao`` (``chao1.cpp``)
    :math:`\hat S = S + F_1(F_1-1)/(2(F_2+1))`, the bias-corrected form for every sample.
    Variance: if :math:`F_1>0, F_2>0`:
    :math:`F_1(F_1-1)/(2(F_2+1)) + F_1(2F_1-1)^2/(4(F_2+1)^2) + F_1^2F_2(F_1-1)^2/(4(F_2+1)^4)`;
    if :math:`F_1>0, F_2=0`: :math:`F_1(F_1-1)/2 + F_1(2F_1-1)^2/4 - F_1^4/(4\hat S)`.
    CI if :math:`F_1>0`: :math:`c=\exp(1.96\sqrt{\ln(1+var/(\hat S-S)^2)})`,
    lci :math:`=S+(\hat S-S)/c`, hci :math:`=S+(\hat S-S)c` (with :math:`F_1=1`, :math:`\hat S=S` and the
    CI is 0/0, which sanitises to lci = S, hci = 0). CI if :math:`F_1=0`: :math:`P=e^{-N/S}`,
    lci :math:`=\max(S, S/(1-P) - 1.96\sqrt{SP/(1-P)})`, hci :math:`=S/(1-P) + 1.96\sqrt{SP/(1-P)}`.
    Sanitised. The point estimate equals ``skbio.diversity.alpha.chao1`` (bias_corrected=True).
``ace`` (``ace.cpp``, rare threshold ``abund`` = 10)
    :math:`S_{rare}=\sum_{i\le10}F_i`, :math:`S_{abund}=S-S_{rare}`, :math:`N_{rare}=\sum_{i\le10}iF_i`,
    :math:`W=\sum_{i\le10}i(i-1)F_i`, :math:`C=1-F_1/N_{rare}` (0 if :math:`N_{rare}=0`),
    :math:`d=C N_{rare}(N_{rare}-1)`, :math:`\gamma^2=\max(S_{rare}W/d-1, 0)` (0 if :math:`d\le0`);
    **if** :math:`\gamma^2\ge0.64`: :math:`\gamma^2 \leftarrow \max(\gamma^2(1+N_{rare}(1-C)W/d), 0)`
    (mothur's high-CV correction; scikit-bio and vegan never apply it).
    ACE :math:`=0` if :math:`C=0` (no rare OTUs, or all rare OTUs are singletons; scikit-bio returns
    :math:`S_{abund}` or raises), else :math:`S_{abund}+(S_{rare}+F_1\gamma^2)/C`.
    CI (Anne Chao's SE code as transcribed in mothur, *with its index quirks*): with
    :math:`n=N_{rare}`, :math:`w=W`, :math:`D=S_{rare}`, :math:`t_1=n-F_1`, :math:`t_2=n-1`,
    :math:`\Gamma=Dw/((1-F_1/n)n(n-1))-1` (no clamp, no CV correction) and :math:`P_j` for
    :math:`j\le\max i`:
    if :math:`\Gamma>0`: :math:`P_1=(D+n)(1+F_1w/t_1/t_2)/t_1 + nDw(t_1-1)/(t_1^2t_2^2) - (n+F_1)/t_1`,
    :math:`P_j=(nt_1-jF_1D)/t_1^2\,(1+F_1w/t_1/t_2) + jF_1Dn((j-1)t_1t_2-w(t_1+t_2))/(t_1^3t_2^2) +
    jF_1^2/t_1^2` for :math:`2\le j\le10`;
    else (off by one in mothur): :math:`P_{j-1}=(nt_1-jF_1D)/t_1^2` for :math:`2\le j\le10`;
    then :math:`P_{j-1}=1` for :math:`11\le j\le\max i+1` (off by one again: :math:`P_{10}=1`).
    :math:`se=\sum_j P_j^2F_j-(\sum_j P_jF_j)^2/\mathrm{ACE}`. If ACE = 0: (0, 0); if
    :math:`|\mathrm{ACE}-S|\le0.001|\mathrm{ACE}|` (mothur's relative ``isEqual``):
    :math:`\mathrm{ACE}\mp1.96\sqrt{se}`; else log-normal as for chao with ACE in place of
    :math:`\hat S`. Sanitised. **Differs from scikit-bio** ``ace``.
``shannon`` (``shannon.cpp``)
    :math:`H=-\sum_i F_i p_i\ln p_i`, :math:`p_i=i/N` (natural log, = ``skbio`` ``shannon``).
    :math:`hvar=(\sum_iF_ip_i(\ln p_i)^2-H^2)/N+(S-1)/\mathrm{int32}(2N^2)`: mothur computes
    ``2*N*N`` in 32-bit ``int``, which wraps for :math:`N>32768` (verified against the binary; e.g.
    N=100,078 gives a negative denominator). ci :math:`=1.96\sqrt{hvar}` if :math:`hvar>0` else 0;
    lci/hci :math:`=H\mp ci`. A single OTU prints ``-0.000000``. Sanitised.
``npshannon`` (``npshannon.cpp``)
    Chao-Shen non-parametric Shannon: :math:`\hat C=1-F_1/N`; 0 if :math:`\hat C\le0`; else
    :math:`-\sum_i F_i\hat Cp_i\ln(\hat Cp_i)/(1-(1-\hat Cp_i)^N)`. mothur accumulates into a C ``float``
    (``acc = (float)((double)acc + term)``, class by class); we emulate that exactly, so the value is a
    float32 number printed with 6 decimals. Sanitised.
``simpson`` (``simpson.cpp``)
    mothur's simpson is the finite-sample *dominance*
    :math:`D=\sum_iF_i\,i(i-1)/(N(N-1))` (lower = more diverse; = ``skbio`` ``dominance(finite=True)``),
    0 if S = 0. :math:`var=(4/N)(\sum_iF_ip_i^3-(\sum_iF_ip_i^2)^2)` (non-finite p-sums),
    ci :math:`=1.95\sqrt{var}` (**1.95**, as in mothur), lci/hci :math:`=D\mp ci`. Sanitised: for a
    perfectly even sample the variance is 0 up to rounding and mothur's is slightly negative, so its CI
    prints 0/0 and invsimpson's CI ``inf``; we reproduce that. **Not** ``skbio`` ``simpson``, which is
    the Gini-Simpson index :math:`1-\sum p^2` (see ``gini_simpson``).
``invsimpson`` (``invsimpson.cpp``)
    :math:`1/D`, lci :math:`=1/\mathrm{hci}_D`, hci :math:`=1/\mathrm{lci}_D` using the sanitised
    simpson values; all three are 1 if :math:`D=0`. Not sanitised (can be ``inf`` or negative, as in
    mothur).
``shannoneven`` (``shannoneven.cpp``)
    :math:`H/\ln S` if :math:`S>1` else 1 (= ``skbio`` ``pielou_e``).
``simpsoneven`` (``simpsoneven.cpp``)
    invsimpson / S (can exceed 1; **not** ``skbio`` ``simpson_e``). ``inf`` for an empty sample.

Extras (not mothur; clearly named so nobody mistakes them for mothur's columns)
    ``shannon_bits``: :math:`-\sum p\log_2p` (QIIME 2 ``shannon_entropy``); ``gini_simpson``:
    :math:`1-\sum p^2` (``skbio`` / QIIME 2 ``simpson``). NaN for an empty sample.

Subsampling (``subsample=T``; ``summarycommand.cpp``, ``subsample.cpp``)
    Size defaults to the smallest sample; samples with fewer reads are dropped (we list them).
    Each iteration draws ``size`` reads without replacement (mothur shuffles the reads and keeps the
    first ``size``); samples with exactly ``size`` reads are not resampled. Output: the mean over
    ``iters`` (default 1000) of every column (CIs included) and the *population* SD. mothur's RNG
    (mt19937) cannot be reproduced, so subsampled means agree statistically, not bit for bit.

Output files (``.groups.summary`` / ``.groups.ave-std.summary``)
    Tab-separated; header ``label\tgroup[\tmethod]\t<calc>[\t<calc>_lci\t<calc>_hci]...``; values
    ``fixed`` with 6 decimals (``-0.000000``, ``inf``, ``nan`` as C++ prints them); groups in the byte
    order of mothur's per-group file names ``<group>.summary`` / ``<group>.ave-std.summary`` (so
    ``"10"`` < ``"9"`` and ``"A-B"`` < ``"A.B"`` < ``"A"``); in the ave-std file all ``ave`` rows
    precede all ``std`` rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "CI_CALCS",
    "DEFAULT_CALCS",
    "EXTRA_CALCS",
    "MOTHUR_CALCS",
    "MOTHUR_DEFAULT_SEED",
    "alpha_columns",
    "alpha_diversity",
    "format_mothur_ave_std",
    "format_mothur_summary",
    "subsampled_alpha",
]

log = logging.getLogger(__name__)

#: The protocol's calculators, in the order mothur prints them for
#: ``calc=nseqs-sobs-coverage-chao-ace-shannon-npshannon-simpson-invsimpson-shannoneven-simpsoneven``.
DEFAULT_CALCS: Final[tuple[str, ...]] = (
    "nseqs",
    "sobs",
    "coverage",
    "chao",
    "ace",
    "shannon",
    "npshannon",
    "simpson",
    "invsimpson",
    "shannoneven",
    "simpsoneven",
)
#: Every mothur calculator this module implements.
MOTHUR_CALCS: Final[tuple[str, ...]] = (*DEFAULT_CALCS, "goodscoverage")
#: Non-mothur extras (QIIME 2 / scikit-bio conventions).
EXTRA_CALCS: Final[tuple[str, ...]] = ("shannon_bits", "gini_simpson")
#: Calculators that mothur prints with ``_lci`` and ``_hci`` columns.
CI_CALCS: Final[frozenset[str]] = frozenset({"chao", "ace", "shannon", "simpson", "invsimpson"})
#: mothur's default random seed ("Setting random seed to 19760620"); our stream is numpy's PCG64, not
#: mothur's mt19937, so the same seed does not give the same subsamples.
MOTHUR_DEFAULT_SEED: Final[int] = 19760620

_ACE_ABUND: Final[int] = 10  # mothur's ``abund`` default (summary.single resets values < 5 to 10)
#: Cells of the dense (sample x abundance) histogram we allow per call; larger abundances are sorted.
_DENSE_CELLS: Final[int] = 1 << 22
#: Work units (multinomial cells + single draws) per subsampling batch; bounds memory (~1 KB each).
_BATCH_ENTRIES: Final[int] = 1 << 19

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CountsLike = sp.spmatrix | sp.sparray | npt.ArrayLike


# --------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------
def _as_csr(counts: CountsLike) -> sp.csr_array:
    """Validated samples x features CSR array of non-negative int64 counts without stored zeros."""
    if sp.issparse(counts):
        csr = sp.csr_array(counts, copy=True)
    else:
        dense = np.asarray(counts)
        if dense.ndim != 2:
            raise ValueError(f"counts must be a 2-D samples x features matrix, got shape {dense.shape}")
        csr = sp.csr_array(dense)
    csr.sum_duplicates()
    data = csr.data
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)):
            raise ValueError("counts contain NaN or infinite values")
        if np.any(data != np.round(data)):
            raise ValueError("counts must be whole numbers (read counts), got fractional values")
    elif data.dtype.kind not in "iub":
        raise ValueError(f"counts must be numeric, got dtype {data.dtype}")
    if data.size and data.min() < 0:
        raise ValueError("counts must be non-negative")
    csr.data = data.astype(np.int64, copy=False)
    csr.eliminate_zeros()
    return csr


def _check_ids(sample_ids: Iterable[Hashable], n_rows: int) -> pd.Index:
    ids = pd.Index(list(sample_ids), name="sample_id")
    if len(ids) != n_rows:
        raise ValueError(f"got {len(ids)} sample ids for {n_rows} rows of counts")
    if ids.has_duplicates:
        dup = sorted({str(x) for x in ids[ids.duplicated()]})
        raise ValueError(f"duplicate sample ids: {dup[:10]}")
    return ids


def _check_calcs(calcs: Iterable[str]) -> tuple[str, ...]:
    out = tuple(calcs)
    known = (*MOTHUR_CALCS, *EXTRA_CALCS)
    bad = [c for c in out if c not in known]
    if bad:
        raise ValueError(f"unknown calculator(s) {bad}; known: {', '.join(known)}")
    if len(set(out)) != len(out):
        raise ValueError(f"calculators listed twice: {out}")
    return out


def alpha_columns(calcs: Iterable[str] = DEFAULT_CALCS) -> list[str]:
    """Output column names for ``calcs``, in mothur's order (``<calc>``, ``<calc>_lci``, ``<calc>_hci``)."""
    cols: list[str] = []
    for c in _check_calcs(calcs):
        cols.extend((c, f"{c}_lci", f"{c}_hci") if c in CI_CALCS else (c,))
    return cols


# --------------------------------------------------------------------------------------------------
# Abundance-class histograms (sabund), sparse and vectorised
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SAbund:
    """Per-sample abundance-class histograms of ``n_rows`` samples.

    Classes (``cls_*``) are the pairs (sample, abundance i) with F_i > 0, sorted by sample and then by i,
    i.e. in mothur's loop order.
    """

    n_rows: int
    nseqs: FloatArray  # N per sample (exact: integers < 2**53)
    sobs: FloatArray  # S per sample
    rare: FloatArray  # (n_rows, 11): rare[:, i] = F_i for i <= 10 (column 0 unused)
    maxrank: IntArray  # largest abundance per sample (0 if empty)
    cls_row: IntArray
    cls_value: FloatArray  # abundance i of the class
    cls_freq: FloatArray  # F_i of the class
    cls_start: IntArray  # index of each sample's first class
    cls_count: IntArray  # number of classes per sample


def _sabund(rows: IntArray, values: IntArray, n_rows: int, weights: IntArray | None = None) -> _SAbund:
    """Histograms from entries (row index, count > 0[, multiplicity]) without a loop over samples.

    ``weights`` (default 1) says how many OTUs of that row have that count; the subsampler passes
    already-grouped entries. Small abundances (the vast majority in OTU tables) are counted with one
    ``bincount`` over a dense (sample x abundance) grid; the few large ones are sorted. The merge keeps
    (row, abundance) order.
    """
    maxv = int(values.max()) if values.size else 0
    # bincount sums float64 weights; every total here is an integer < 2**53, hence exact.
    if weights is None:
        nseqs = np.bincount(rows, weights=values, minlength=n_rows)
        sobs = np.bincount(rows, minlength=n_rows)
    else:
        nseqs = np.bincount(rows, weights=values * weights, minlength=n_rows)
        sobs = np.bincount(rows, weights=weights, minlength=n_rows)
    # Dense width: at least 10 so the ACE rare classes come from the grid; otherwise bounded by a fixed
    # budget and by a few cells per entry (a grid much larger than the data costs more than sorting).
    cells = min(_DENSE_CELLS, 4 * values.size)
    top = min(maxv, max(_ACE_ABUND, cells // max(n_rows, 1) - 1))
    width = top + 1
    small = values <= top
    keys_small = rows[small] * width + values[small]
    w_small = None if weights is None else weights[small]
    grid = np.bincount(keys_small, weights=w_small, minlength=n_rows * width).astype(np.int64, copy=False)
    rare = np.zeros((n_rows, _ACE_ABUND + 1))
    k = min(width, _ACE_ABUND + 1)
    rare[:, :k] = grid.reshape(n_rows, width)[:, :k]
    flat = np.flatnonzero(grid)
    r_small, v_small = np.divmod(flat, width)
    f_small = grid[flat]
    if small.all():
        cls_row, cls_value, cls_freq = r_small, v_small, f_small
    else:
        stride = maxv + 1
        keys, inverse = np.unique(rows[~small] * stride + values[~small], return_inverse=True)
        w_big = None if weights is None else weights[~small]
        f_big = np.bincount(inverse, weights=w_big, minlength=keys.size).astype(np.int64, copy=False)
        r_big, v_big = np.divmod(keys, stride)
        n_small = np.bincount(r_small, minlength=n_rows)
        n_big = np.bincount(r_big, minlength=n_rows)
        start = np.cumsum(n_small + n_big) - (n_small + n_big)
        # Within a sample all small abundances precede all large ones: place each part after its start.
        first_small = np.cumsum(n_small) - n_small
        first_big = np.cumsum(n_big) - n_big
        pos_small = start[r_small] + np.arange(r_small.size) - first_small[r_small]
        pos_big = start[r_big] + n_small[r_big] + np.arange(r_big.size) - first_big[r_big]
        total = r_small.size + r_big.size
        cls_row = np.empty(total, np.int64)
        cls_value = np.empty(total, np.int64)
        cls_freq = np.empty(total, np.int64)
        cls_row[pos_small], cls_value[pos_small], cls_freq[pos_small] = r_small, v_small, f_small
        cls_row[pos_big], cls_value[pos_big], cls_freq[pos_big] = r_big, v_big, f_big
    cls_count = np.bincount(cls_row, minlength=n_rows)
    cls_start = np.cumsum(cls_count) - cls_count
    last = np.where(cls_count > 0, cls_start + cls_count - 1, 0)
    maxrank = np.where(cls_count > 0, cls_value[last] if cls_value.size else 0, 0)
    return _SAbund(
        n_rows=n_rows,
        nseqs=nseqs.astype(np.float64),
        sobs=sobs.astype(np.float64),
        rare=rare,
        maxrank=maxrank.astype(np.int64),
        cls_row=cls_row.astype(np.int64, copy=False),
        cls_value=cls_value.astype(np.float64),
        cls_freq=cls_freq.astype(np.float64),
        cls_start=cls_start,
        cls_count=cls_count,
    )


def _row_sum(sab: _SAbund, per_class: FloatArray) -> FloatArray:
    # bincount adds its weights one by one in input order, i.e. in mothur's class order per sample.
    return np.bincount(sab.cls_row, weights=per_class, minlength=sab.n_rows)


def _sanitise(x: FloatArray) -> FloatArray:
    """mothur's ``if (isnan(x) || isinf(x)) x = 0``."""
    return np.where(np.isfinite(x), x, 0.0)


# --------------------------------------------------------------------------------------------------
# Calculators (each mirrors one mothur source file; expression order kept for identical rounding)
# --------------------------------------------------------------------------------------------------
def _chao(sab: _SAbund) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``chao1.cpp``."""
    s, n = sab.sobs, sab.nseqs
    f1, f2 = sab.rare[:, 1], sab.rare[:, 2]
    chao = s + f1 * (f1 - 1) / (2 * (f2 + 1))
    var_both = (
        f1 * (f1 - 1) / (2 * (f2 + 1))
        + f1 * np.power(2 * f1 - 1, 2.0) / (4 * np.power(f2 + 1, 2.0))
        + np.power(f1, 2.0) * f2 * np.power(f1 - 1, 2.0) / (4 * np.power(f2 + 1, 4.0))
    )
    var_no_f2 = f1 * (f1 - 1) / 2 + f1 * np.power(2 * f1 - 1, 2.0) / 4 - np.power(f1, 4.0) / (4 * chao)
    var = np.where(f2 > 0, var_both, var_no_f2)
    # F1 > 0: log-normal interval. With F1 == 1, chao == S: c = inf, so lci = S + 0/inf = S and
    # hci = S + 0*inf = NaN, printed 0 by mothur (lci too is NaN -> 0 when var is also 0).
    c = np.exp(1.96 * np.power(np.log(1 + var / np.power(chao - s, 2.0)), 0.5))
    lci_f1 = s + (chao - s) / c
    hci_f1 = s + (chao - s) * c
    # F1 == 0: Chao's interval for no singletons.
    p = np.exp(-1 * n / s)
    half = 1.96 * np.power(s * p / (1 - p), 0.5)
    lci_0 = s / (1 - p) - half
    lci_0 = np.where(lci_0 < s, s, lci_0)  # NaN < S is false: NaN survives and sanitises to 0, as in C++
    hci_0 = s / (1 - p) + half
    has_f1 = f1 > 0
    return (
        _sanitise(chao),
        _sanitise(np.where(has_f1, lci_f1, lci_0)),
        _sanitise(np.where(has_f1, hci_f1, hci_0)),
    )


def _ace(sab: _SAbund) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``ace.cpp`` with abund = 10, including the CI's off-by-one ``Part_N_Part_F`` writes."""
    s = sab.sobs
    fr = sab.rare  # fr[:, i] = F_i, i <= 10
    idx = np.arange(_ACE_ABUND + 1, dtype=np.float64)
    f1 = fr[:, 1]
    srare = fr[:, 1:].sum(axis=1)  # integer-valued, exact
    nrare = fr @ idx
    numsum = fr @ (idx * (idx - 1))
    sabund = s - srare

    cace = np.where(nrare == 0, 0.0, 1.0 - f1 / nrare)
    denom = cace * (nrare * (nrare - 1))
    term1 = np.where(denom <= 0.0, 0.0, (srare * numsum) / denom - 1.0)
    gam = np.where(term1 >= 0.0, term1, 0.0)
    high_cv = gam >= 0.64
    gam_cv = gam * (1 + (nrare * (1 - cace) * numsum) / denom)
    gam = np.where(high_cv, np.where(gam_cv < 0, 0.0, gam_cv), gam)
    ace = np.where(cace == 0.0, 0.0, sabund + (srare + f1 * gam) / cace)

    # Anne Chao's SE code. D_s, nn, ww equal srare, nrare, numsum.
    ds, nn, ww = srare, nrare, numsum
    c_hat = 1.0 - f1 / nn
    gamma = (ds * ww) / (c_hat * nn * (nn - 1.0)) - 1.0
    t1 = nn - f1
    t2 = nn - 1.0
    pos = gamma > 0.0
    n_rows = sab.n_rows
    part = np.zeros((n_rows, _ACE_ABUND))  # part[:, j] = Part_N_Part_F[j] for j = 1..9 (col 0 unused)
    a = 1.0 + f1 * ww / t1 / t2
    p1_pos = (ds + nn) * a / t1 + nn * ds * ww * (t1 - 1.0) / (t1 * t1 * t2 * t2) - (nn + f1) / t1
    maxrank = sab.maxrank
    for j in range(1, _ACE_ABUND):
        jf = float(j)
        if j == 1:
            v_pos = p1_pos
        else:
            v_pos = (
                (nn * t1 - jf * f1 * ds) / t1 / t1 * a
                + jf * f1 * ds * nn * ((jf - 1.0) * t1 * t2 - ww * (t1 + t2)) / t1 / t1 / t1 / t2 / t2
                + jf * f1 * f1 / t1 / t1
            )
        # Gamma <= 0: mothur writes P[j-1] for j = 2..10, so P[j] gets the value meant for j+1.
        jn = jf + 1.0
        v_neg = (nn * t1 - jn * f1 * ds) / t1 / t1
        part[:, j] = np.where(pos, v_pos, v_neg)
    # mothur only writes and sums P[j] for j <= maxRank. Beyond it F_j = 0, but 0 * NaN would still
    # poison the sum where mothur never looks, so mask rather than rely on the zero.
    in_range = np.arange(_ACE_ABUND)[None, :] <= maxrank[:, None]
    prod1 = np.where(in_range, part * fr[:, :_ACE_ABUND], 0.0)
    prod2 = np.where(in_range, part * part * fr[:, :_ACE_ABUND], 0.0)
    # Accumulate left to right like mothur's loop (numpy's pairwise sum would round differently).
    temp1 = np.zeros(n_rows)
    temp2 = np.zeros(n_rows)
    for j in range(1, _ACE_ABUND):
        temp1 = temp1 + prod1[:, j]
        temp2 = temp2 + prod2[:, j]
    # P[j] = 1 for j >= 10 (P[10] by the off-by-one): those classes add F_j to both sums. mothur adds
    # them one class at a time; adding their (integer) total at once can differ in the last bit only.
    tail = fr[:, _ACE_ABUND] + sabund
    temp1 = temp1 + tail
    temp2 = temp2 + tail
    se = temp2 - temp1 * temp1 / ace

    near_s = np.abs(ace - s) <= np.abs(ace * 0.001)  # mothur's relative isEqual(ace, sobs)
    ci = 1.96 * np.power(se, 0.5)
    c = np.exp(1.96 * np.power(np.log(1 + se / np.power(ace - s, 2.0)), 0.5))
    lci = np.where(near_s, ace - ci, s + (ace - s) / c)
    hci = np.where(near_s, ace + ci, s + (ace - s) * c)
    # se = NaN implies ACE = 0 (t1 = 0 or t2 = 0), where mothur returns (ACE, ACE) = (0, 0) either way.
    zero = (ace == 0.0) | np.isnan(se)
    lci = np.where(zero, ace, lci)
    hci = np.where(zero, ace, hci)
    return _sanitise(ace), _sanitise(lci), _sanitise(hci)


def _shannon(sab: _SAbund) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``shannon.cpp`` (natural log; the variance's ``2*N*N`` wraps in 32-bit int as in mothur)."""
    n_c = sab.nseqs[sab.cls_row]
    p = sab.cls_value / n_c
    logp = np.log(p)
    h = -_row_sum(sab, sab.cls_freq * p * logp)
    hvara = _row_sum(sab, sab.cls_freq * p * np.power(logp, 2.0))
    # C `int` arithmetic: 2*N*N keeps only its low 32 bits (two's complement). uint64 products wrap
    # modulo 2**64, which preserves the low 32 bits for any N mothur can hold.
    n_u = sab.nseqs.astype(np.uint64)
    low = (np.uint64(2) * n_u * n_u) & np.uint64(0xFFFFFFFF)
    two_n2 = low.astype(np.int64) - np.where(low >= np.uint64(2**31), 2**32, 0)
    hvar = (hvara - np.power(h, 2.0)) / sab.nseqs + (sab.sobs - 1) / two_n2.astype(np.float64)
    ci = np.where(hvar > 0, 1.96 * np.power(np.where(hvar > 0, hvar, 0.0), 0.5), 0.0)
    return _sanitise(h), _sanitise(h - ci), _sanitise(h + ci)


def _npshannon(sab: _SAbund) -> FloatArray:
    """``npshannon.cpp`` with its float32 accumulator emulated class by class (loop over class rank)."""
    n = sab.nseqs
    chat = 1.0 - sab.rare[:, 1] / n
    n_c = n[sab.cls_row]
    cp = chat[sab.cls_row] * (sab.cls_value / n_c)
    term = sab.cls_freq * cp * np.log(cp) / (1 - np.power(1 - cp, n_c))
    term = np.where(cp > 0, term, 0.0)  # mothur skips ChatPi <= 0; adding 0.0 to the float is a no-op
    # Samples sorted by number of classes (descending): at class rank k the active ones are a prefix.
    order = np.argsort(-sab.cls_count, kind="stable")
    starts = sab.cls_start[order]
    counts = sab.cls_count[order]
    acc = np.zeros(sab.n_rows, np.float32)
    n_active = sab.n_rows - np.searchsorted(counts[::-1], np.arange(int(counts.max(initial=0))), side="right")
    for k, m in enumerate(n_active):
        # C++ `float += double`: the sum is done in double, then rounded to float. numpy does the same
        # here: float32 + float64 promotes to float64, and the assignment rounds back to float32.
        acc[:m] = acc[:m] + term[starts[:m] + k]
    out = np.empty(sab.n_rows, np.float32)
    out[order] = acc
    res = np.where(chat > 0, (-out).astype(np.float64), 0.0)
    return _sanitise(res)


def _simpson(sab: _SAbund) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``simpson.cpp``: finite-sample dominance with a 1.95 * SE interval."""
    n = sab.nseqs
    v = sab.cls_value
    simnum = _row_sum(sab, sab.cls_freq * v * (v - 1))  # exact integers, like mothur's (double)(F*i*(i-1))
    simpson = simnum / (n * (n - 1))
    p = v / n[sab.cls_row]
    first = _row_sum(sab, sab.cls_freq * np.power(p, 3.0))
    second = _row_sum(sab, sab.cls_freq * np.power(p, 2.0))
    var = (4.0 / n) * (first - second * second)
    ci = 1.95 * np.power(var, 0.5)
    empty = sab.sobs == 0
    simpson = np.where(empty, 0.0, simpson)
    ci = np.where(empty, 0.0, ci)
    return _sanitise(simpson), _sanitise(simpson - ci), _sanitise(simpson + ci)


def _invsimpson(
    simpson: tuple[FloatArray, FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``invsimpson.cpp``: reciprocals of the (sanitised) simpson triple; no sanitising of its own."""
    d, lo, hi = simpson
    zero = d == 0.0
    return (
        np.where(zero, 1.0, 1 / d),
        np.where(zero, 1.0, 1 / hi),
        np.where(zero, 1.0, 1 / lo),
    )


def _compute(sab: _SAbund, calcs: tuple[str, ...]) -> dict[str, FloatArray]:
    """Column name -> values for the requested calculators (each computed once, shared as needed)."""
    out: dict[str, FloatArray] = {}
    wanted = set(calcs)
    with np.errstate(all="ignore"):  # NaN/Inf are part of mothur's semantics; we sanitise like it does
        n, s = sab.nseqs, sab.sobs
        coverage = 1.0 - sab.rare[:, 1] / n
        shannon = _shannon(sab) if wanted & {"shannon", "shannoneven"} else None
        simpson = _simpson(sab) if wanted & {"simpson", "invsimpson", "simpsoneven"} else None
        invsimpson = _invsimpson(simpson) if simpson is not None else None
        for calc in calcs:
            if calc == "nseqs":
                out[calc] = n.copy()
            elif calc == "sobs":
                out[calc] = s.copy()
            elif calc in ("coverage", "goodscoverage"):
                out[calc] = coverage.copy()
            elif calc == "chao":
                out["chao"], out["chao_lci"], out["chao_hci"] = _chao(sab)
            elif calc == "ace":
                out["ace"], out["ace_lci"], out["ace_hci"] = _ace(sab)
            elif calc == "shannon":
                assert shannon is not None
                out["shannon"], out["shannon_lci"], out["shannon_hci"] = shannon
            elif calc == "npshannon":
                out[calc] = _npshannon(sab)
            elif calc == "simpson":
                assert simpson is not None
                out["simpson"], out["simpson_lci"], out["simpson_hci"] = simpson
            elif calc == "invsimpson":
                assert invsimpson is not None
                out["invsimpson"], out["invsimpson_lci"], out["invsimpson_hci"] = invsimpson
            elif calc == "shannoneven":
                assert shannon is not None
                out[calc] = np.where(s > 1, shannon[0] / np.log(s), 1.0)
            elif calc == "simpsoneven":
                assert invsimpson is not None
                out[calc] = invsimpson[0] / s
            elif calc == "shannon_bits":
                p = sab.cls_value / n[sab.cls_row]
                out[calc] = np.where(n > 0, -_row_sum(sab, sab.cls_freq * p * np.log2(p)), np.nan)
            elif calc == "gini_simpson":
                p = sab.cls_value / n[sab.cls_row]
                out[calc] = np.where(n > 0, 1.0 - _row_sum(sab, sab.cls_freq * p * p), np.nan)
    return out


def _frame(values: dict[str, FloatArray], calcs: tuple[str, ...], ids: pd.Index) -> pd.DataFrame:
    cols = alpha_columns(calcs)
    return pd.DataFrame({c: values[c] for c in cols}, index=ids, columns=cols)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
def alpha_diversity(
    counts: CountsLike,
    sample_ids: Sequence[Hashable],
    calcs: Sequence[str] = DEFAULT_CALCS,
) -> pd.DataFrame:
    """mothur ``summary.single`` (no subsampling) for every sample at once.

    Parameters
    ----------
    counts:
        Samples x features read counts: any scipy.sparse matrix/array or anything ``np.asarray`` accepts.
        Non-negative whole numbers; features are OTUs/ASVs (zero columns are harmless).
    sample_ids:
        One id per row (mothur's group names); must be unique.
    calcs:
        Calculator names from :data:`MOTHUR_CALCS` and :data:`EXTRA_CALCS`, in output order.

    Returns
    -------
    DataFrame indexed by sample id (index name ``sample_id``), float64 columns
    :func:`alpha_columns` ``(calcs)``; values are what mothur prints, before rounding to 6 decimals.
    """
    calcs_t = _check_calcs(calcs)
    csr = _as_csr(counts)
    ids = _check_ids(sample_ids, csr.shape[0])
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    sab = _sabund(rows, csr.data, csr.shape[0])
    return _frame(_compute(sab, calcs_t), calcs_t, ids)


def _distinct_positions(rng: np.random.Generator, pool: IntArray, k: IntArray) -> tuple[IntArray, IntArray]:
    """For each row r, k[r] distinct uniform integers in [0, pool[r]) (requires k <= pool).

    Draw i.i.d., then redraw one member of each duplicate pair until none is left. The procedure treats
    all positions alike (it is equivariant under relabelling them), so the resulting k-subset is
    uniform. Here k is O(sqrt(size)) and pool is O(size), so collisions are rare and it ends quickly.
    """
    rr = np.repeat(np.arange(k.size, dtype=np.int64), k)
    hi = pool[rr]
    pos = rng.integers(0, hi)
    stride = int(pool.max(initial=0)) + 1
    while True:
        key = rr * stride + pos
        order = np.argsort(key, kind="stable")
        ks = key[order]
        dup = np.flatnonzero(ks[1:] == ks[:-1]) + 1
        if dup.size == 0:
            return rr, pos
        redo = order[dup]
        pos[redo] = rng.integers(0, hi[redo])


@dataclass(frozen=True)
class _Groups:
    """A multiset of OTUs per row: ``m`` OTUs of row ``row`` with ``n`` reads, of which ``x`` are kept."""

    row: IntArray
    n: IntArray
    x: IntArray
    m: IntArray


@dataclass(frozen=True)
class _Thinning:
    """What one batch of subsamples needs from the (fixed) abundance classes of the rows to resample."""

    n_rows: int
    row_n: IntArray  # reads per row
    p: FloatArray  # size / reads per row
    # Classes thinned with one multinomial draw per class: F OTUs with n reads each keep
    # Multinomial(F, Binomial(n, p) pmf) many of 0..n reads (iid binomials, as a multiset).
    multi_row: IntArray
    multi_n: IntArray
    multi_f: IntArray
    multi_pmf: FloatArray  # (classes, max n + 1), zero beyond n
    # OTUs thinned one by one (large n, or classes with few OTUs), sorted by (row, n).
    single_row: IntArray
    single_n: IntArray


#: Classes with at most this many reads per OTU may use the per-class multinomial.
_MULTI_MAX_N: Final[int] = 16


def _binomial_pmf(n: IntArray, p: FloatArray, width: int) -> FloatArray:
    """Binomial(n, p) probabilities of 0..width-1 per row (n <= width - 1 <= _MULTI_MAX_N), 0 beyond n."""
    k = np.arange(width)
    comb = np.array([[math.comb(int(a), int(b)) for b in k] for a in range(width)], dtype=np.float64)
    kk = k[None, :]
    nn = n[:, None]
    q = 1.0 - p[:, None]
    with np.errstate(all="ignore"):
        pmf = comb[n] * p[:, None] ** kk * q ** np.maximum(nn - kk, 0)
    return np.where(kk <= nn, pmf, 0.0)


def _thinning(sab: _SAbund, size: int) -> _Thinning:
    row_n = sab.nseqs.astype(np.int64)
    p = size / sab.nseqs
    n = sab.cls_value.astype(np.int64)
    f = sab.cls_freq.astype(np.int64)
    # A multinomial over n + 1 outcomes costs up to n + 1 binomial draws; F single draws cost F.
    multi = (n <= _MULTI_MAX_N) & (f > n + 1)
    m_row, m_n, m_f = sab.cls_row[multi], n[multi], f[multi]
    width = int(m_n.max(initial=0)) + 1
    pmf = _binomial_pmf(m_n, p[m_row], width)
    single = ~multi
    s_row = np.repeat(sab.cls_row[single], f[single])
    s_n = np.repeat(n[single], f[single])
    return _Thinning(sab.n_rows, row_n, p, m_row, m_n, m_f, pmf, s_row, s_n)


def _thin(rng: np.random.Generator, th: _Thinning, b: int) -> _Groups:
    """Bernoulli(p) thinning of every read, for ``b`` independent copies of the rows (row = copy*R + r)."""
    r = th.n_rows
    copies = np.arange(b, dtype=np.int64)
    parts: list[tuple[IntArray, IntArray, IntArray, IntArray]] = []
    if th.multi_n.size:
        kept = rng.multinomial(np.tile(th.multi_f, b), np.tile(th.multi_pmf, (b, 1)))
        cls, x = np.nonzero(kept)  # row-major: sorted by copy, then row
        c = cls % th.multi_n.size
        rows = (cls // th.multi_n.size) * r + th.multi_row[c]
        parts.append((rows, th.multi_n[c], x, kept[cls, x]))
    if th.single_n.size:
        rows = (th.single_row[None, :] + r * copies[:, None]).ravel()
        n = np.tile(th.single_n, b)
        # Same (n, p) runs back to back (sorted by row, then n): numpy reuses its binomial set-up.
        x = rng.binomial(n, th.p[rows % r])
        parts.append((rows, n, x, np.ones(rows.size, np.int64)))
    row, n, x, m = (np.concatenate(a) for a in zip(*parts, strict=True))
    if len(parts) > 1:
        order = np.argsort(row, kind="stable")  # two sorted runs: timsort merges them in linear time
        row, n, x, m = row[order], n[order], x[order], m[order]
    return _Groups(row, n, x, m)


def _fix_size(rng: np.random.Generator, g: _Groups, row_n: IntArray, size: int) -> tuple[IntArray, IntArray, IntArray]:
    """Turn a Bernoulli(p) subset of each row's reads into a uniform ``size``-subset.

    A Bernoulli subset conditioned on its size M is a uniformly random M-subset. Removing M - size of
    its reads chosen uniformly (or adding size - M reads chosen uniformly among those left out) therefore
    yields a uniformly random ``size``-subset of the reads: exactly mothur's shuffle-and-keep-the-first-
    ``size``. Which OTU inside a group is hit does not matter (they are interchangeable), so the work is
    per group and per chosen read, never per read of the sample.

    Returns weighted entries ``(row, kept count > 0, multiplicity)``.
    """
    n_rows = row_n.size
    kept = np.bincount(g.row, weights=g.m * g.x, minlength=n_rows).astype(np.int64)
    need = size - kept
    adding = need > 0
    if need.any():
        src = np.where(adding[g.row], g.n - g.x, g.x)  # reads each OTU of the group can give or lose
        w = g.m * src
        pool = np.where(adding, row_n - kept, kept)
        rr, pos = _distinct_positions(rng, pool, np.abs(need))
        cum = np.cumsum(w)
        at = (np.cumsum(pool) - pool)[rr] + pos
        grp = np.searchsorted(cum, at, side="right")
        otu = (at - (cum[grp] - w[grp])) // src[grp]  # which OTU of the group holds that read
        hit, h = np.unique(grp * int(g.m.max()) + otu, return_counts=True)
        hit_g = hit // int(g.m.max())
        new_x = g.x[hit_g] + np.where(adding[g.row[hit_g]], h, -h)
        m_left = g.m - np.bincount(hit_g, minlength=g.m.size)
        rows = np.concatenate([g.row, g.row[hit_g]])
        xs = np.concatenate([g.x, new_x])
        ms = np.concatenate([m_left, np.ones(hit_g.size, np.int64)])
    else:
        rows, xs, ms = g.row, g.x, g.m
    ok = (xs > 0) & (ms > 0)
    return rows[ok], xs[ok], ms[ok]


def subsampled_alpha(
    counts: CountsLike,
    sample_ids: Sequence[Hashable],
    size: int | None = None,
    iters: int = 1000,
    seed: int | np.random.Generator = MOTHUR_DEFAULT_SEED,
    calcs: Sequence[str] = DEFAULT_CALCS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """mothur ``summary.single(..., subsample=T|<size>, iters=<iters>)``: mean and population SD.

    Parameters
    ----------
    size:
        Reads kept per sample; ``None`` = the smallest sample (mothur's ``subsample=T``).
        Samples with fewer reads are dropped (mothur does the same) and *listed*: in
        ``ave.attrs["dropped_samples"]`` (also on ``std``) and in a logged warning.
    iters:
        Number of subsamples (mothur's default 1000).
    seed:
        Seed (or Generator) for numpy's PCG64. mothur's mt19937 stream cannot be reproduced, so means
        agree with mothur's statistically (|Δ| of a few SD/sqrt(iters)), never bit for bit.

    Returns
    -------
    ``(ave, std)``: two DataFrames shaped like :func:`alpha_diversity`'s, over the retained samples in
    input order. Samples with exactly ``size`` reads are computed once (mothur's subsample is then the
    whole sample), so their ``ave`` row is exact and their ``std`` row 0. ``attrs`` of both carry
    ``subsample_size``, ``iters``, ``seed`` and ``dropped_samples``.
    """
    calcs_t = _check_calcs(calcs)
    csr = _as_csr(counts)
    ids = _check_ids(sample_ids, csr.shape[0])
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    nseqs = np.asarray(csr.sum(axis=1)).ravel().astype(np.int64)
    if size is None:
        if nseqs.size == 0:
            raise ValueError("no samples")
        size = int(nseqs.min())
    size = int(size)
    if size < 1:
        raise ValueError(f"subsample size must be >= 1 read, got {size} (is there an empty sample?)")
    keep = nseqs >= size
    dropped = tuple(ids[~keep])
    if keep.sum() == 0:
        # mothur: "You have not provided enough valid groups. I cannot run the command."
        raise ValueError(f"no sample has {size} reads or more (largest has {int(nseqs.max(initial=0))})")
    if dropped:
        log.warning("subsample size %d: dropping %d sample(s) with fewer reads: %s", size, len(dropped), dropped)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    cols = alpha_columns(calcs_t)
    kept_idx = np.flatnonzero(keep)
    ave = np.zeros((kept_idx.size, len(cols)))
    std = np.zeros((kept_idx.size, len(cols)))

    exact = np.flatnonzero(nseqs[kept_idx] == size)
    if exact.size:
        sub = csr[kept_idx[exact]]
        rows = np.repeat(np.arange(sub.shape[0], dtype=np.int64), np.diff(sub.indptr))
        vals = _compute(_sabund(rows, sub.data, sub.shape[0]), calcs_t)
        ave[exact] = np.column_stack([vals[c] for c in cols])

    resample = np.flatnonzero(nseqs[kept_idx] > size)
    if resample.size:
        sub = csr[kept_idx[resample]]
        n_res = sub.shape[0]
        rows = np.repeat(np.arange(n_res, dtype=np.int64), np.diff(sub.indptr))
        th = _thinning(_sabund(rows, sub.data, n_res), size)
        work = th.multi_n.size * th.multi_pmf.shape[1] + th.single_n.size + n_res
        per_batch = max(1, _BATCH_ENTRIES // max(work, 1))
        # Chan et al.'s pairwise merge of (count, mean, M2): numerically stable, and exactly 0 for
        # columns that do not vary (nseqs), as mothur's two-pass SD is.
        count = 0
        mean = np.zeros((n_res, len(cols)))
        m2 = np.zeros((n_res, len(cols)))
        while count < iters:
            b = min(per_batch, iters - count)
            r_b, x_b, m_b = _fix_size(rng, _thin(rng, th, b), np.tile(th.row_n, b), size)
            res = _compute(_sabund(r_b, x_b, b * n_res, m_b), calcs_t)
            block = np.stack([res[c].reshape(b, n_res) for c in cols], axis=-1)  # (b, n_res, cols)
            with np.errstate(invalid="ignore"):
                b_mean = block.mean(axis=0)
                b_m2 = ((block - b_mean) ** 2).sum(axis=0)
                delta = b_mean - mean
                tot = count + b
                mean = mean + delta * (b / tot)
                m2 = m2 + b_m2 + delta**2 * (count * b / tot)
            count = tot
        ave[resample] = mean
        with np.errstate(invalid="ignore"):
            std[resample] = np.sqrt(np.maximum(m2 / count, 0.0))

    kept_ids = ids[kept_idx]
    ave_df = pd.DataFrame(ave, index=kept_ids, columns=cols)
    std_df = pd.DataFrame(std, index=kept_ids, columns=cols)
    seed_attr = seed if isinstance(seed, int) else None
    for df in (ave_df, std_df):
        df.attrs.update(subsample_size=size, iters=iters, seed=seed_attr, dropped_samples=dropped)
    return ave_df, std_df


# --------------------------------------------------------------------------------------------------
# mothur output layout
# --------------------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    """C++ ``fixed`` with precision 6 (``%.6f``), including glibc's ``-nan``."""
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return f"{x:.6f}"


def _mothur_order(groups: Sequence[str], suffix: str) -> list[int]:
    # mothur merges per-group files kept in a std::map keyed by file name "<root><group>.<suffix>", so
    # the order is the byte order of group + suffix (not of the bare group name).
    return sorted(range(len(groups)), key=lambda i: (groups[i] + suffix).encode("utf-8"))


def format_mothur_summary(
    df: pd.DataFrame,
    label: str = "0.03",
    method: str | None = None,
    *,
    header: bool = True,
) -> str:
    """Text of mothur's ``<root>.groups.summary`` (``method=None``) or one block of the ave-std file.

    ``df`` is :func:`alpha_diversity`'s (or one of :func:`subsampled_alpha`'s) frame; its index gives the
    group names and its columns are printed in order. With ``method`` (``"ave"`` or ``"std"``) the
    header has a ``method`` column and each row carries ``method``; use :func:`format_mothur_ave_std` for
    the complete ``.groups.ave-std.summary`` file. Lines end with ``\\n``, as mothur writes them.
    """
    groups = [str(g) for g in df.index]
    values = df.to_numpy(dtype=np.float64)
    suffix = ".summary" if method is None else ".ave-std.summary"
    lines: list[str] = []
    if header:
        lead = ["label", "group"] if method is None else ["label", "group", "method"]
        lines.append("\t".join([*lead, *map(str, df.columns)]))
    for i in _mothur_order(groups, suffix):
        lead = [label, groups[i]] if method is None else [label, groups[i], method]
        lines.append("\t".join([*lead, *(_fmt(float(v)) for v in values[i])]))
    return "\n".join(lines) + "\n"


def format_mothur_ave_std(ave: pd.DataFrame, std: pd.DataFrame, label: str = "0.03") -> str:
    """Text of mothur's ``<root>.groups.ave-std.summary``: header, all ``ave`` rows, then all ``std`` rows."""
    if list(ave.columns) != list(std.columns) or not ave.index.equals(std.index):
        raise ValueError("ave and std must have the same samples and columns")
    return format_mothur_summary(ave, label, "ave") + format_mothur_summary(std, label, "std", header=False)
