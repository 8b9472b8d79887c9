"""Microbiome (16S rRNA OTU/ASV table) analyses: pure functions, no Dagster.

``alpha`` reproduces mothur's ``summary.single`` calculators to the printed 6 decimals.
"""

from analysis.microbiome.alpha import (
    CI_CALCS,
    DEFAULT_CALCS,
    EXTRA_CALCS,
    MOTHUR_CALCS,
    MOTHUR_DEFAULT_SEED,
    alpha_columns,
    alpha_diversity,
    format_mothur_ave_std,
    format_mothur_summary,
    subsampled_alpha,
)

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
