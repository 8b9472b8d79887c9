"""The in-memory result of reading a sequencing feature table (whatever its file format)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: The values of :attr:`FeatureTable.format`.
FEATURE_TABLE_FORMATS: tuple[str, ...] = ("biom-json", "biom-hdf5", "qza", "shared", "tsv")


@dataclass
class FeatureTable:
    """A whole count table, samples x features, as delivered (never a partial table).

    ``counts`` is CSR with shape ``(len(sample_ids), len(feature_ids))``: int64 for counts; float64 only
    when the input is declared relative (a mothur ``.relabund``, a ``FeatureTable[RelativeFrequency]``
    artifact, or ``allow_relative=True``) and then ``relative`` is True.

    ``taxonomy`` maps feature id to the taxonomy string as delivered (a BIOM lineage list is joined with
    ``"; "``); None when the file carries no taxonomy.

    ``source_rows`` is 1-based lineage back to the file: the physical line of each feature for classic TSV,
    the line of each sample (group) for mothur ``.shared``, the position of each observation in the BIOM
    ``rows`` / ``observation/ids`` for BIOM and ``.qza``. ``rows_are`` says which ("features"/"samples").
    """

    sample_ids: list[str]
    feature_ids: list[str]
    counts: sp.csr_matrix
    taxonomy: dict[str, str] | None
    format: str
    label: str | None
    source_rows: np.ndarray
    source: str = ""
    relative: bool = False
    rows_are: str = "features"

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.sample_ids), len(self.feature_ids))

    def sample_totals(self) -> np.ndarray:
        return np.asarray(self.counts.sum(axis=1)).ravel()

    def feature_totals(self) -> np.ndarray:
        return np.asarray(self.counts.sum(axis=0)).ravel()
