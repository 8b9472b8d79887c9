"""mothur ``.shared`` / ``.relabund`` tables.

Format (mothur ``SharedRAbundVectors::printHeaders`` / ``SharedRAbundVector::print``; omics.md section 2):
a tab-separated header ``label  Group  numOtus  Otu0001 ...`` and one row per (label, group), e.g.
``0.03  F3D0  2719  12  0 ...``. A file may hold several labels (``unique``, ``0.00`` ... ``0.10``): mothur
prints the header once, before the first label, and the rows of a later label with fewer OTUs use the first
``numOtus`` header names (``SharedRAbundVectors`` reading code keeps ``currentLabels``). Old files have no
header at all; mothur then names OTUs ``Otu`` + number zero-padded to the digits of ``numOtus``
(``Utils::getOTUNames``). A header line may also be repeated before a label block; it applies to the rows
that follow it. ``.relabund`` has the same layout with float values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import ContractViolation
from analysis.readers._text import (
    Records,
    base_name,
    check_delimiter,
    clip,
    first_duplicate_pos,
    index_records,
    nth_sep,
    parse_cells,
    short,
    split_fields,
    strip_bom,
)
from analysis.readers.tables import FeatureTable

DEFAULT_LABEL = "0.03"


@dataclass
class _SharedLayout:
    rec: Records
    lead: np.ndarray  # (n_records, 3) label, Group, numOtus as text
    lead_end: np.ndarray  # byte offset of the 3rd tab (or record end)
    is_header: np.ndarray
    labels: list[str]  # distinct data labels in file order


def _layout(path: str | Path, data: bytes) -> _SharedLayout:
    data = strip_bom(data)
    rec = index_records(data, "\t")
    if len(rec) == 0:
        raise ContractViolation(
            path,
            "empty table: no header and no rows",
            expected="a mothur .shared header 'label<TAB>Group<TAB>numOtus<TAB>Otu...'",
        )
    if rec.nfields[0] < 3:
        first = rec.decoded(path, 0)
        check_delimiter(path, first, "\t", int(rec.lines[0]), int(rec.nfields[0]))
    short = np.flatnonzero(rec.nfields < 3)
    if len(short):
        i = int(short[0])
        raise ContractViolation(
            path,
            f"ragged row: {int(rec.nfields[i])} fields",
            expected="at least label, Group and numOtus",
            row=int(rec.lines[i]),
        )
    third = nth_sep(rec, 3, "\t")
    lead_end = np.where(third >= 0, third, rec.ends)
    lead = split_fields(path, rec, rec.starts, lead_end, 3, "\t")
    is_header = (pd.Series(lead[:, 0]).str.lower() == "label").to_numpy()
    data_labels = lead[~is_header, 0]
    if len(data_labels) == 0:
        raise ContractViolation(
            path,
            "empty table: a header but no group rows",
            expected="one row per (label, group)",
            row=int(rec.lines[0]),
        )
    labels = [str(x) for x in pd.unique(data_labels)]
    return _SharedLayout(rec, lead, lead_end, is_header, labels)


def read_shared_labels_bytes(path: str | Path, data: bytes) -> list[str]:
    return _layout(path, data).labels


def read_shared_bytes(
    path: str | Path, data: bytes, label: str | None = None, allow_relative: bool = False
) -> FeatureTable:
    lay = _layout(path, data)
    rec, lead = lay.rec, lay.lead
    if label is None:
        label = DEFAULT_LABEL if DEFAULT_LABEL in lay.labels else lay.labels[0]
    elif label not in lay.labels:
        raise ContractViolation(
            path,
            f"label {clip(label)} is not in the file",
            expected=f"one of the labels present: {', '.join(lay.labels)}",
            column="label",
        )
    declared_relative = base_name(path).endswith(".relabund")
    relative = allow_relative or declared_relative

    sel = np.flatnonzero(~lay.is_header & (lead[:, 0] == label))
    sub = rec.subset(sel)
    groups = lead[sel, 1].tolist()

    num = pd.to_numeric(pd.Series(lead[sel, 2]), errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isfinite(num) | (num < 0) | (num != np.floor(num)))
    if len(bad):
        i = int(bad[0])
        raise ContractViolation(
            path,
            f"numOtus {clip(lead[sel[i], 2])} is not a whole number",
            expected="a non-negative integer",
            row=int(sub.lines[i]),
            column="numOtus",
        )
    num = num.astype(np.int64)
    differs = np.flatnonzero(num != num[0])
    if len(differs):
        i = int(differs[0])
        raise ContractViolation(
            path,
            f"numOtus {num[i]} differs from {num[0]} on the first row of label {clip(label)}",
            expected="the same numOtus on every row of a label",
            row=int(sub.lines[i]),
            column="numOtus",
        )
    n_otus = int(num[0])
    have = sub.nfields - 3
    wrong = np.flatnonzero(have != n_otus)
    if len(wrong):
        i = int(wrong[0])
        raise ContractViolation(
            path,
            f"numOtus is {n_otus} but the row has {int(have[i])} OTU columns (group {clip(groups[i])})",
            expected="numOtus equal to the number of OTU count columns",
            row=int(sub.lines[i]),
            column="numOtus",
        )

    otu_ids, header_line = _otu_names(path, lay, sel, n_otus, label)
    dup = first_duplicate_pos(otu_ids)
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate OTU column {clip(otu_ids[dup])}",
            expected="unique OTU names",
            row=header_line,
            column=short(otu_ids[dup]),
        )
    dup = first_duplicate_pos(groups)
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate group {clip(groups[dup])} within label {clip(label)}",
            expected="one row per group and label",
            row=int(sub.lines[dup]),
            column="Group",
        )
    empty = np.flatnonzero(lead[sel, 1] == "")
    if len(empty):
        raise ContractViolation(
            path, "empty Group name", expected="a sample (group) name", row=int(sub.lines[empty[0]]), column="Group"
        )

    core_starts = np.minimum(lay.lead_end[sel] + 1, sub.ends)
    counts, is_int = parse_cells(
        path, sub, core_starts, sub.ends, otu_ids, what="count", row_labels=groups, allow_float=relative
    )
    if declared_relative:  # a .relabund is relative even where its values happen to be whole numbers
        counts, is_int = counts.astype(np.float64), False
    return FeatureTable(
        sample_ids=groups,
        feature_ids=otu_ids,
        counts=counts,
        taxonomy=None,
        format="shared",
        label=label,
        source_rows=sub.lines.astype(np.int64),
        source=str(path),
        relative=not is_int,
        rows_are="samples",
    )


def _otu_names(
    path: str | Path, lay: _SharedLayout, sel: np.ndarray, n_otus: int, label: str
) -> tuple[list[str], int | None]:
    """OTU names for the selected rows: from the header that precedes them, else mothur's generated names."""
    header_pos = np.flatnonzero(lay.is_header)
    which = np.searchsorted(header_pos, sel) - 1  # the last header before each selected row
    if (which < 0).all():
        width = len(str(n_otus))
        return [f"Otu{i:0{width}d}" for i in range(1, n_otus + 1)], None
    if (which != which[0]).any() or which[0] < 0:
        i = int(np.argmax(which != which[0]))
        raise ContractViolation(
            path,
            f"a header line interrupts the rows of label {clip(label)}",
            expected="one header before a label block",
            row=int(lay.rec.lines[sel[i]]),
        )
    h = int(header_pos[which[0]])
    line = int(lay.rec.lines[h])
    names = lay.rec.decoded(path, h).split("\t")[3:]
    # The header belongs to this label when the first data row after it has this label: then it must name
    # exactly numOtus columns. A header printed for an earlier (larger) label only has to be long enough.
    own = sel[0] == h + 1 or lay.lead[h + 1, 0] == label
    if len(names) < n_otus or (own and len(names) != n_otus):
        raise ContractViolation(
            path,
            f"the header names {len(names)} OTU columns but numOtus is {n_otus}",
            expected="one header OTU column per count",
            row=line,
            column="numOtus",
        )
    return names[:n_otus], line
