"""Classic (QIIME 1 / ``biom convert --to-tsv`` / Majorbio ``otu_table.xls``) tab-separated OTU tables.

Rules follow biom-format's ``Table._extract_data_from_tsv`` (omics.md section 6): blank lines are skipped;
among the leading ``#`` lines the last one that has columns is the header (``# Constructed from biom file``
then ``#OTU ID<TAB>S1 ...``); with no ``#`` header the first line is the header. Rows are features, the
first column is the feature id, then one column per sample. The last column is taxonomy metadata when its
name says so (``taxonomy``, ``Consensus Lineage``, ...) or when none of its values is a number; unlike
biom we do not demote a sample column to metadata because one cell is non-numeric: that cell is rejected.
Majorbio ``.xls`` exports are usually this same text despite the extension, hence sniffing by content.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import ContractViolation
from analysis.readers._text import (
    check_delimiter,
    clip,
    first_duplicate_pos,
    index_records,
    nth_sep,
    parse_cells,
    ragged_error,
    short,
    split_fields,
    strip_bom,
)
from analysis.readers.tables import FeatureTable

#: Header names (lower-cased) of a trailing taxonomy column.
TAXONOMY_COLUMN_NAMES: frozenset[str] = frozenset(
    {"taxonomy", "consensus lineage", "consensuslineage", "consensus_lineage", "taxon", "lineage", "tax"}
)


def read_classic_bytes(path: str | Path, data: bytes, allow_relative: bool = False) -> FeatureTable:
    data = strip_bom(data)
    rec = index_records(data, "\t")
    if len(rec) == 0:
        raise ContractViolation(
            path,
            "empty table: the file has no lines",
            expected="a header '#OTU ID<TAB>sample ...' and one row per feature",
        )
    hashed = rec.buf[rec.starts] == ord("#")
    n_lead = int(np.argmin(hashed)) if not hashed.all() else len(rec)
    multi = np.flatnonzero(hashed[:n_lead] & (rec.nfields[:n_lead] > 1))
    if len(multi):  # biom: the last leading '#' line is the header ('#OTU ID<TAB>S1 ...')
        h = int(multi[-1])
    elif n_lead < len(rec) and rec.nfields[n_lead] > 1:
        h = n_lead  # '# Constructed from biom file' is a comment; the next line is the header
    else:
        h = max(n_lead - 1, 0)  # a one-column '#' header (e.g. comma-separated): diagnosed below
    header_line = int(rec.lines[h])
    header = rec.decoded(path, h).split("\t")
    check_delimiter(path, "\t".join(header), "\t", header_line, len(header))
    if len(header) < 2:
        raise ContractViolation(
            path, "the header has no sample columns", expected="'#OTU ID<TAB>sample1<TAB>sample2 ...'", row=header_line
        )
    body = rec.subset(slice(h + 1, None))
    if len(body) == 0:
        raise ContractViolation(
            path, "empty table: a header but no feature rows", expected="one row per feature", row=header_line
        )
    ragged_error(path, body, len(header))
    id_col = header[0].lstrip("#").strip() or "OTU ID"

    # Feature ids: the first field of each row.
    first_tab = nth_sep(body, 1, "\t")
    feature_ids = split_fields(path, body, body.starts, first_tab, 1, "\t")[:, 0]

    # Trailing metadata column?
    last_tab = nth_sep(body, 1, "\t", from_end=True)
    has_tax = header[-1].strip().lower() in TAXONOMY_COLUMN_NAMES
    tail = None
    if len(header) > 2 and not has_tax:
        tail = split_fields(path, body, last_tab + 1, body.ends, 1, "\t")[:, 0]
        nonempty = tail != ""
        numeric = pd.to_numeric(pd.Series(tail), errors="coerce").notna().to_numpy()
        has_tax = bool(nonempty.any() and not (numeric & nonempty).any())
    taxonomy = None
    if has_tax:
        if tail is None:
            tail = split_fields(path, body, last_tab + 1, body.ends, 1, "\t")[:, 0]
        taxonomy = dict(zip(feature_ids.tolist(), tail.tolist(), strict=True))
    samples = header[1:-1] if has_tax else header[1:]
    if not samples:
        raise ContractViolation(
            path, "the header has no sample columns", expected="at least one sample column", row=header_line
        )

    dup = first_duplicate_pos(samples)
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate sample column {clip(samples[dup])}",
            expected="unique sample names",
            row=header_line,
            column=short(samples[dup]),
        )
    empty_name = np.flatnonzero(np.array(samples, dtype=object) == "")
    if len(empty_name):
        raise ContractViolation(
            path,
            f"sample column {int(empty_name[0]) + 2} has no name",
            expected="a sample name in every header cell",
            row=header_line,
        )
    dup = first_duplicate_pos(feature_ids.tolist())
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate feature id {clip(feature_ids[dup])}",
            expected="unique feature ids",
            row=int(body.lines[dup]),
            column=short(id_col),
        )
    blank = np.flatnonzero(feature_ids == "")
    if len(blank):
        raise ContractViolation(
            path,
            "empty feature id",
            expected="a feature id in the first column",
            row=int(body.lines[blank[0]]),
            column=short(id_col),
        )

    core_ends = last_tab if has_tax else body.ends
    by_feature, is_int = parse_cells(
        path,
        body,
        first_tab + 1,
        core_ends,
        samples,
        what="count",
        row_labels=feature_ids.tolist(),
        allow_float=allow_relative,
    )
    # rows are features in the file; the table is samples x features
    counts = by_feature.T.tocsr()
    return FeatureTable(
        sample_ids=list(samples),
        feature_ids=feature_ids.tolist(),
        counts=counts,
        taxonomy=taxonomy,
        format="tsv",
        label=None,
        source_rows=body.lines.astype(np.int64),
        source=str(path),
        relative=not is_int,
        rows_are="features",
    )
