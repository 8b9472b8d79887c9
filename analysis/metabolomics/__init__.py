"""Untargeted LC-MS metabolomics (issue 6): pure computations, no Dagster.

One module per concept (each docstring gives the formulas and their sources; ``omics.md`` §7):

* :mod:`~analysis.metabolomics.table` — :class:`MetaboliteTable`, the common form of every export
  (features × injections, NaN = missing, feature key = ion mode + feature id), injection lists,
  stacking POS and NEG, adapters from the generic wide/long contract tables.
* :mod:`~analysis.metabolomics.vendors` — MS-DIAL, Progenesis QI, XCMS and mwTab readers; every bad
  input raises :class:`analysis.errors.ContractViolation` with file, line and column.
* :mod:`~analysis.metabolomics.preprocess` — blank and missing-value filters, imputation, QC RSD,
  QC-based LOWESS drift correction.
* :mod:`~analysis.metabolomics.normalise` — sum/median/PQN, MetaboAnalyst glog and log10, scalings.
* :mod:`~analysis.metabolomics.pca` — R ``prcomp``-exact PCA, importance table, QC projection.
* :mod:`~analysis.metabolomics.annotation` — KEGG/HMDB identifier validation and normalisation.
* :mod:`~analysis.metabolomics.differential` — fold change, Welch, Wilcoxon, BH, mixed models.
* :mod:`~analysis.metabolomics.steps` — :func:`prepare`, the whole recipe with its step log.
* :mod:`~analysis.metabolomics.integration` — Spearman correlations between two feature tables matched by
  patient and visit (e.g. genera × metabolites), vectorised, BH-corrected.
* :mod:`~analysis.metabolomics.study` — the trial's analysis per matrix (marts → prepared matrix, PCA per matrix
  and visit, QC RSD, annotation, differential metabolites, genus integration) as tidy frames.
* :mod:`~analysis.metabolomics.bench` — ``python -m analysis.metabolomics.bench``.
"""

from analysis.metabolomics.annotation import Annotation, annotate
from analysis.metabolomics.differential import (
    attach_annotation,
    bh_qvalues,
    compare_by_stratum,
    compare_groups,
    fold_change,
    mixed_model,
)
from analysis.metabolomics.integration import spearman_pairs
from analysis.metabolomics.pca import PCAResult, format_importance, prcomp
from analysis.metabolomics.steps import PrepareConfig, PreparedMatrix, prepare
from analysis.metabolomics.table import MetaboliteTable, attach_injections, stack_ion_modes
from analysis.metabolomics.vendors import (
    detect_vendor,
    read_msdial,
    read_mwtab,
    read_progenesis,
    read_vendor_export,
    read_xcms,
)

__all__ = [
    "Annotation",
    "MetaboliteTable",
    "PCAResult",
    "PrepareConfig",
    "PreparedMatrix",
    "annotate",
    "attach_annotation",
    "attach_injections",
    "bh_qvalues",
    "compare_by_stratum",
    "compare_groups",
    "detect_vendor",
    "fold_change",
    "format_importance",
    "mixed_model",
    "prcomp",
    "prepare",
    "read_msdial",
    "read_mwtab",
    "read_progenesis",
    "read_vendor_export",
    "read_xcms",
    "spearman_pairs",
    "stack_ion_modes",
]
