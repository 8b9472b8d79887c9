"""Sequencing quality control: library sizes, negative controls, mock communities and sample flags.

Pure functions on DataFrames / sparse matrices (no Dagster, no DuckDB). Definitions:

* **Library size** of a library = its total reads over all features. :func:`library_size_summary` gives n, min,
  quartiles, median, mean, max per batch and overall (pandas ``quantile``, linear interpolation = R type 7).
* **Negative controls** (extraction / PCR blanks, role ``NEGATIVE_CONTROL``): :func:`negative_control_summary`
  reports per control its reads, features, the ratio of its reads to the median library size of its batch's
  patient samples and to the batch's smallest sample, its dominant genera, and flags a control whose reads
  exceed ``max_ratio`` (default 10 %) of the batch median: contamination at that level is not negligible
  (Salter et al. 2014, BMC Biol 12:87; Eisenhofer et al. 2019, Trends Microbiol 27:105).
  :func:`negative_control_taxa` lists per genus its prevalence and share of reads in the negatives next to its
  prevalence in the samples: genera more prevalent in negatives than in samples are contaminant candidates
  (the idea behind ``decontam``'s prevalence method, Davis et al. 2018, Microbiome 6:226, without its test).
* **Mock community** (role ``MOCK``, known composition): :func:`mock_community_comparison` collapses each mock
  library to genus, closes it to relative abundances and compares them with the expected composition:
  Bray–Curtis dissimilarity ``1 - Σ min(o_g, e_g)`` between the observed and expected proportions (both sum to
  1), the number and list of expected genera recovered (observed share >= ``detection``), the share of reads
  in genera not in the mock (contamination / misclassification) and per-genus observed vs expected with the
  log2 ratio. The default expectation is the theoretical 16S composition of the ZymoBIOMICS Microbial
  Community Standard (D6300; Zymo Research, lot-independent 16S values), with SILVA genus names.
* **Sample flags** (:func:`flag_samples`): ``below_rarefaction_depth`` (library size < the chosen depth: left
  out of rarefied analyses), ``low_depth`` (< ``low_depth`` reads, default 5,000), ``high_unassigned``
  (share of reads without a phylum assignment > ``max_unassigned``, default 10 %; the genus-unassigned share is
  reported too but not flagged, since many gut genera are unnamed), ``duplicate_library`` (a deeper library of
  the same specimen was kept).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = [
    "ZYMOBIOMICS_16S_GENUS",
    "flag_samples",
    "library_size_summary",
    "mock_community_comparison",
    "negative_control_summary",
    "negative_control_taxa",
]

#: ZymoBIOMICS Microbial Community Standard (D6300) theoretical 16S rRNA gene composition, by genus
#: (fractions; SILVA names: *E. coli* is ``Escherichia-Shigella``). The default mock expectation.
ZYMOBIOMICS_16S_GENUS: dict[str, float] = {
    "Pseudomonas": 0.042,
    "Escherichia-Shigella": 0.101,
    "Salmonella": 0.104,
    "Lactobacillus": 0.184,
    "Enterococcus": 0.099,
    "Staphylococcus": 0.155,
    "Listeria": 0.141,
    "Bacillus": 0.174,
}

UNASSIGNED_GENUS = "Unassigned genus"


def library_size_summary(sizes: pd.DataFrame, *, by: str = "batch_id", value: str = "library_size") -> pd.DataFrame:
    """Distribution of library sizes per ``by`` group and overall (``group == "ALL"``).

    Columns: ``group, n, min, q1, median, q3, max, mean, sd, cv`` (sd with n-1; cv = sd / mean).
    """
    frames = [(str(k), g[value].astype(float)) for k, g in sizes.groupby(by, sort=True)]
    frames.append(("ALL", sizes[value].astype(float)))
    rows = []
    for name, s in frames:
        mean = float(s.mean()) if len(s) else np.nan
        sd = float(s.std(ddof=1)) if len(s) > 1 else np.nan
        rows.append(
            {
                by: name,
                "n": int(s.size),
                "min": float(s.min()) if len(s) else np.nan,
                "q1": float(s.quantile(0.25)) if len(s) else np.nan,
                "median": float(s.median()) if len(s) else np.nan,
                "q3": float(s.quantile(0.75)) if len(s) else np.nan,
                "max": float(s.max()) if len(s) else np.nan,
                "mean": mean,
                "sd": sd,
                "cv": sd / mean if mean else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _genus_of(counts: pd.DataFrame, taxonomy: pd.DataFrame) -> pd.Series:
    """Genus label of every count row (``Unassigned genus`` when the feature has none)."""
    tax = taxonomy.set_index(["batch_id", "feature_id"])["genus"]
    keys = pd.MultiIndex.from_frame(counts[["batch_id", "feature_id"]])
    genus = tax.reindex(keys).to_numpy(dtype=object)
    return pd.Series(np.where(pd.isna(genus), UNASSIGNED_GENUS, genus), index=counts.index, dtype=object)


def negative_control_summary(
    controls: pd.DataFrame,
    control_counts: pd.DataFrame,
    taxonomy: pd.DataFrame,
    sample_sizes: pd.DataFrame,
    *,
    max_ratio: float = 0.1,
    top: int = 3,
) -> pd.DataFrame:
    """One row per negative control: reads vs the patient samples of its batch, top genera, flag.

    ``controls``: ``batch_id, sample_id, sample_role, library_size`` (all control libraries; only
    ``NEGATIVE_CONTROL`` rows are used); ``control_counts``: ``batch_id, sample_id, feature_id, read_count``;
    ``taxonomy``: ``batch_id, feature_id, genus``; ``sample_sizes``: ``batch_id, library_size`` of the patient
    libraries. Columns: ``batch_id, sample_id, reads, n_features, batch_sample_median, batch_sample_min,
    ratio_to_median, ratio_to_min, top_genera, flag_contamination``.
    """
    neg = controls[controls["sample_role"] == "NEGATIVE_CONTROL"]
    counts = control_counts.merge(neg[["batch_id", "sample_id"]], on=["batch_id", "sample_id"])
    counts = counts.assign(genus=_genus_of(counts, taxonomy))
    per_batch = sample_sizes.groupby("batch_id")["library_size"].agg(["median", "min"])
    rows = []
    for (batch, sample), _ in neg.groupby(["batch_id", "sample_id"], sort=True):
        c = counts[(counts["batch_id"] == batch) & (counts["sample_id"] == sample)]
        reads = float(c["read_count"].sum())
        by_genus = c.groupby("genus")["read_count"].sum().sort_values(ascending=False, kind="stable")
        share = by_genus / reads if reads else by_genus
        med = float(per_batch["median"].get(batch, np.nan))
        low = float(per_batch["min"].get(batch, np.nan))
        rows.append(
            {
                "batch_id": batch,
                "sample_id": sample,
                "reads": reads,
                "n_features": int((c["read_count"] > 0).sum()),
                "batch_sample_median": med,
                "batch_sample_min": low,
                "ratio_to_median": reads / med if med else np.nan,
                "ratio_to_min": reads / low if low else np.nan,
                "top_genera": "; ".join(f"{k} ({v:.0%})" for k, v in share.head(top).items()),
                "flag_contamination": bool(med and reads / med > max_ratio),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "batch_id",
            "sample_id",
            "reads",
            "n_features",
            "batch_sample_median",
            "batch_sample_min",
            "ratio_to_median",
            "ratio_to_min",
            "top_genera",
            "flag_contamination",
        ],
    )


def negative_control_taxa(
    controls: pd.DataFrame,
    control_counts: pd.DataFrame,
    sample_counts: pd.DataFrame,
    taxonomy: pd.DataFrame,
    *,
    n_samples: int,
) -> pd.DataFrame:
    """Per genus seen in a negative control: prevalence and read share in negatives vs prevalence in samples.

    ``sample_counts``: long ``batch_id, sample_id, feature_id, read_count`` of the patient libraries (n_samples
    of them). ``contaminant_candidate`` when the genus is more prevalent in negatives than in samples.
    """
    neg = controls[controls["sample_role"] == "NEGATIVE_CONTROL"]
    n_neg = len(neg)
    cc = control_counts.merge(neg[["batch_id", "sample_id"]], on=["batch_id", "sample_id"])
    if cc.empty or n_neg == 0:
        return pd.DataFrame(
            columns=[
                "genus",
                "negative_prevalence",
                "negative_read_share",
                "sample_prevalence",
                "sample_mean_rel_abundance",
                "contaminant_candidate",
            ]
        )
    cc = cc.assign(genus=_genus_of(cc, taxonomy))
    neg_per = cc.groupby(["genus", "batch_id", "sample_id"])["read_count"].sum()
    neg_prev = neg_per.groupby(level="genus").size() / n_neg
    neg_share = neg_per.groupby(level="genus").sum() / float(cc["read_count"].sum())
    sc = sample_counts[sample_counts["read_count"] > 0]
    sc = sc.assign(genus=_genus_of(sc, taxonomy))
    totals = sc.groupby(["batch_id", "sample_id"])["read_count"].transform("sum")
    per = sc.assign(rel=sc["read_count"] / totals).groupby(["genus", "batch_id", "sample_id"])["rel"].sum()
    denominator = max(n_samples, 1)
    out = pd.DataFrame({"negative_prevalence": neg_prev, "negative_read_share": neg_share})
    out["sample_prevalence"] = per.groupby(level="genus").size().reindex(out.index).fillna(0) / denominator
    out["sample_mean_rel_abundance"] = per.groupby(level="genus").sum().reindex(out.index).fillna(0) / denominator
    out["contaminant_candidate"] = out["negative_prevalence"] > out["sample_prevalence"]
    out = out.rename_axis("genus").reset_index()
    return out.sort_values(["negative_read_share", "genus"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def mock_community_comparison(
    controls: pd.DataFrame,
    control_counts: pd.DataFrame,
    taxonomy: pd.DataFrame,
    expected: Mapping[str, float] | None = None,
    *,
    detection: float = 0.001,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed genus composition of every ``MOCK`` library vs the expected composition.

    Returns ``(summary, taxa)``. ``summary`` has one row per mock library: ``batch_id, sample_id, reads,
    n_expected, n_recovered, recovered_fraction, missing_genera, unexpected_read_share,
    braycurtis_to_expected, top_unexpected``. ``taxa`` one row per library and genus (expected or observed):
    ``observed_fraction, expected_fraction, log2_ratio`` (observed / expected; NaN when either is 0).
    ``expected`` (genus -> fraction) is renormalised to sum 1; default :data:`ZYMOBIOMICS_16S_GENUS`.
    """
    exp = pd.Series(dict(expected or ZYMOBIOMICS_16S_GENUS), dtype=float)
    exp = exp / exp.sum()
    mock = controls[controls["sample_role"] == "MOCK"]
    cc = control_counts.merge(mock[["batch_id", "sample_id"]], on=["batch_id", "sample_id"])
    cc = cc.assign(genus=_genus_of(cc, taxonomy))
    summary_rows, taxa_frames = [], []
    for (batch, sample), _ in mock.groupby(["batch_id", "sample_id"], sort=True):
        c = cc[(cc["batch_id"] == batch) & (cc["sample_id"] == sample)]
        reads = float(c["read_count"].sum())
        obs = c.groupby("genus")["read_count"].sum().astype(float)
        obs = obs / reads if reads else obs
        genera = sorted(set(obs.index) | set(exp.index))
        o = obs.reindex(genera).fillna(0.0)
        e = exp.reindex(genera).fillna(0.0)
        recovered = [g for g in exp.index if o[g] >= detection]
        unexpected = o[e == 0].sort_values(ascending=False, kind="stable")
        summary_rows.append(
            {
                "batch_id": batch,
                "sample_id": sample,
                "reads": reads,
                "n_expected": int(exp.size),
                "n_recovered": len(recovered),
                "recovered_fraction": len(recovered) / exp.size if exp.size else np.nan,
                "missing_genera": "; ".join(g for g in exp.index if g not in recovered),
                "unexpected_read_share": float(unexpected.sum()),
                "braycurtis_to_expected": float(1.0 - np.minimum(o, e).sum()) if reads else np.nan,
                "top_unexpected": "; ".join(f"{k} ({v:.2%})" for k, v in unexpected.head(3).items() if v > 0),
            }
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((o > 0) & (e > 0), np.log2(o / e), np.nan)
        taxa_frames.append(
            pd.DataFrame(
                {
                    "batch_id": batch,
                    "sample_id": sample,
                    "genus": genera,
                    "expected": e.to_numpy() > 0,
                    "observed_fraction": o.to_numpy(),
                    "expected_fraction": e.to_numpy(),
                    "log2_ratio": ratio,
                }
            )
        )
    summary = pd.DataFrame(
        summary_rows,
        columns=[
            "batch_id",
            "sample_id",
            "reads",
            "n_expected",
            "n_recovered",
            "recovered_fraction",
            "missing_genera",
            "unexpected_read_share",
            "braycurtis_to_expected",
            "top_unexpected",
        ],
    )
    taxa = (
        pd.concat(taxa_frames, ignore_index=True)
        if taxa_frames
        else pd.DataFrame(
            columns=[
                "batch_id",
                "sample_id",
                "genus",
                "expected",
                "observed_fraction",
                "expected_fraction",
                "log2_ratio",
            ]
        )
    )
    return summary, taxa


def flag_samples(
    libraries: pd.DataFrame,
    *,
    depth: int,
    low_depth: int = 5000,
    max_unassigned: float = 0.1,
) -> pd.DataFrame:
    """Per patient library: the QC flags of the module docstring.

    ``libraries`` has ``library_size``, ``unassigned_phylum_reads``, ``unassigned_genus_reads`` and optionally
    ``duplicate_library`` (bool) plus any identifying columns, which are kept. Adds ``unassigned_phylum_share``,
    ``unassigned_genus_share``, the boolean flags and ``flags`` (the names of the raised flags, ``;``-joined).
    """
    out = libraries.copy()
    size = out["library_size"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["unassigned_phylum_share"] = np.where(size > 0, out["unassigned_phylum_reads"] / size, np.nan)
        out["unassigned_genus_share"] = np.where(size > 0, out["unassigned_genus_reads"] / size, np.nan)
    out["below_rarefaction_depth"] = size < depth
    out["low_depth"] = size < low_depth
    out["high_unassigned"] = out["unassigned_phylum_share"] > max_unassigned
    if "duplicate_library" not in out.columns:
        out["duplicate_library"] = False
    names = ["below_rarefaction_depth", "low_depth", "high_unassigned", "duplicate_library"]
    flags = out[names].to_numpy(dtype=bool)
    out["flags"] = ["; ".join(n for n, f in zip(names, row, strict=True) if f) for row in flags]
    out["flagged"] = flags.any(axis=1)
    return out
