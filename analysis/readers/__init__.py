"""Pure file readers for the sequencing and metabolomics exports (no Dagster imports).

Every reader returns a whole table or raises :class:`analysis.errors.ContractViolation` naming the file,
the 1-based line (header = line 1) and the column. Format specs and sources are in each module's
docstring; the landing layout is in :mod:`analysis.contract`.
"""

from analysis.readers.feature_table import detect_format, read_feature_table, read_shared_labels
from analysis.readers.manifest import read_seq_manifest
from analysis.readers.metabolomics import (
    MTB_MISSING_INTENSITY,
    MetaboliteTable,
    read_injection_list,
    read_metabolomics_table,
)
from analysis.readers.tables import FEATURE_TABLE_FORMATS, FeatureTable
from analysis.readers.taxonomy import RANKS, lineage_table, parse_lineage, read_taxonomy, read_taxonomy_table
from analysis.readers.tree import PhylogenyFile, read_tree

__all__ = [
    "FEATURE_TABLE_FORMATS",
    "MTB_MISSING_INTENSITY",
    "RANKS",
    "FeatureTable",
    "MetaboliteTable",
    "PhylogenyFile",
    "detect_format",
    "lineage_table",
    "parse_lineage",
    "read_feature_table",
    "read_injection_list",
    "read_metabolomics_table",
    "read_seq_manifest",
    "read_shared_labels",
    "read_taxonomy",
    "read_taxonomy_table",
    "read_tree",
]
