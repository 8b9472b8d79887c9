"""The sequencing manifest ``sequencing/<batch>/manifest.csv`` (``analysis.contract``).

Columns ``SEQ_MANIFEST_REQUIRED`` (+ ``SEQ_MANIFEST_OPTIONAL``), header matched case-insensitively; one row
per sequencing sample id; ``sample_role`` one of ``SEQ_SAMPLE_ROLES`` (case and surrounding spaces may
vary). Negative controls and mock communities have no specimen barcode; a ``SAMPLE`` must have one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.contract import SEQ_MANIFEST_OPTIONAL, SEQ_MANIFEST_REQUIRED, SEQ_SAMPLE_ROLES
from analysis.errors import ContractViolation
from analysis.readers._csv import column_label, match_columns, read_delimited
from analysis.readers._text import clip, first_duplicate_pos


def read_seq_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest with canonical column names, values as delivered (strings), plus ``source_row``.

    Extra columns are kept under their delivered names.
    """
    t = read_delimited(path, what="manifest")
    cols = match_columns(path, t.header, SEQ_MANIFEST_REQUIRED, SEQ_MANIFEST_OPTIONAL, t.header_line)
    out = _canonical(t, cols)
    ids = out["sample_id"].to_numpy(dtype=object)
    blank = np.flatnonzero(pd.Series(ids).str.strip().eq("").to_numpy())
    if len(blank):
        raise ContractViolation(
            path,
            "empty sample_id",
            expected="a sequencing sample id",
            row=int(t.lines[blank[0]]),
            column=column_label(t.header, cols["sample_id"]),
        )
    dup = first_duplicate_pos(ids.tolist())
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate sample_id {clip(ids[dup])}",
            expected="one row per sample",
            row=int(t.lines[dup]),
            column=column_label(t.header, cols["sample_id"]),
        )
    role = out["sample_role"].str.strip().str.upper()
    bad = np.flatnonzero(~role.isin(SEQ_SAMPLE_ROLES).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise ContractViolation(
            path,
            f"unknown sample_role {clip(out['sample_role'].iat[i])}",
            expected=f"one of {', '.join(SEQ_SAMPLE_ROLES)}",
            row=int(t.lines[i]),
            column=column_label(t.header, cols["sample_role"]),
        )
    no_barcode = np.flatnonzero((role.eq("SAMPLE") & out["specimen_barcode"].str.strip().eq("")).to_numpy())
    if len(no_barcode):
        i = int(no_barcode[0])
        raise ContractViolation(
            path,
            "a SAMPLE row has no specimen_barcode",
            expected="the specimen barcode from the biospecimen log",
            row=int(t.lines[i]),
            column=column_label(t.header, cols["specimen_barcode"]),
        )
    return out


def _canonical(t, cols: dict[str, int]) -> pd.DataFrame:
    """Contract columns under their canonical names first, then any extra columns, then ``source_row``."""
    data = {name: t.frame[pos] for name, pos in cols.items()}
    used = set(cols.values())
    for i, h in enumerate(t.header):
        if i not in used and h not in data:
            data[h] = t.frame[i]
    out = pd.DataFrame(data).reset_index(drop=True)
    out["source_row"] = t.lines.astype(np.int64)
    return out
