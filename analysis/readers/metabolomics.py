"""Metabolomics exports: the generic wide feature table and the injection list (``analysis.contract``).

``metabolomics/<batch>/features.csv``: one row per feature; annotation columns ``MTB_FEATURE_REQUIRED``
(``feature_id, ion_mode, mz, rt_min``) and ``MTB_FEATURE_OPTIONAL`` matched case-insensitively; every
other column is one injection (its name is an ``injection_id`` of the injection list) holding an
intensity. This is the layout every untargeted LC-MS export shares once vendor preambles are removed
(omics.md section 7.1: MS-DIAL, XCMS, Progenesis, Compound Discoverer, Majorbio). Separate POS and NEG
runs reuse feature ids, so the feature key is (``feature_id``, ``ion_mode``). RT is in minutes.
Intensities are floats; an empty cell or ``NA``/``ND``/``N/A``/``NaN`` is missing (not zero).

``metabolomics/<batch>/injections.csv``: ``MTB_INJECTION_REQUIRED`` (+ ``batch``); ``sample_type`` one
of ``MTB_SAMPLE_TYPES`` (pooled QC and blanks are injections too), ``run_order`` an integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.contract import (
    MTB_FEATURE_OPTIONAL,
    MTB_FEATURE_REQUIRED,
    MTB_INJECTION_OPTIONAL,
    MTB_INJECTION_REQUIRED,
    MTB_ION_MODES,
    MTB_MATRICES,
    MTB_SAMPLE_TYPES,
)
from analysis.errors import ContractViolation
from analysis.readers._csv import MAX_TABLE_COLUMNS, column_label, match_columns, read_delimited
from analysis.readers._text import clip, first_duplicate_pos

#: Intensity cells that mean "not measured / not detected" (missing, never zero).
MTB_MISSING_INTENSITY: tuple[str, ...] = ("", "NA", "ND", "N/A", "NaN", "nan")

_ANNOTATION_KEYS = frozenset(c.lower() for c in (*MTB_FEATURE_REQUIRED, *MTB_FEATURE_OPTIONAL))


@dataclass
class MetaboliteTable:
    """A whole wide metabolomics table.

    ``annotations``: one row per feature, contract columns under canonical names (strings as delivered)
    plus ``source_row`` (1-based line). ``intensities``: float64 of shape (n_injections, n_features), like
    ``FeatureTable.counts`` (samples x features), NaN where missing. ``injection_ids``: column names in file
    order.
    """

    annotations: pd.DataFrame
    injection_ids: list[str]
    intensities: np.ndarray
    source_rows: np.ndarray
    source: str

    @property
    def feature_keys(self) -> list[tuple[str, str]]:
        a = self.annotations
        return list(zip(a["feature_id"].tolist(), a["ion_mode"].str.strip().str.upper().tolist(), strict=True))


def read_metabolomics_table(path: str | Path, sep: str | None = None) -> MetaboliteTable:
    """Read ``features.csv`` (comma; tab for .tsv/.txt) or raise :class:`ContractViolation`."""

    def intensity_positions(header: list[str]) -> list[int]:
        return [i for i, h in enumerate(header) if h.strip().lower() not in _ANNOTATION_KEYS]

    t = read_delimited(
        path,
        sep,
        float_columns=intensity_positions,
        na_values=MTB_MISSING_INTENSITY,
        what="feature table",
        max_columns=MAX_TABLE_COLUMNS,
    )
    inj_pos = intensity_positions(t.header)
    injections = [t.header[i] for i in inj_pos]
    dup = first_duplicate_pos(injections)
    if dup is not None:
        raise ContractViolation(
            path,
            f"duplicate injection column {clip(injections[dup])}",
            expected="each injection once",
            row=t.header_line,
            column=column_label(t.header, inj_pos[dup]),
        )
    cols = match_columns(path, t.header, MTB_FEATURE_REQUIRED, MTB_FEATURE_OPTIONAL, t.header_line)
    if not injections:
        raise ContractViolation(
            path,
            "no injection (intensity) columns",
            row=t.header_line,
            expected="one intensity column per injection after the annotation columns",
        )
    blank = [i for i in inj_pos if t.header[i] == ""]
    if blank:
        raise ContractViolation(
            path, f"column {blank[0] + 1} has no name", expected="an injection_id per column", row=t.header_line
        )
    ann = pd.DataFrame({name: t.frame[pos].to_numpy(dtype=object) for name, pos in cols.items()})
    lines = t.lines.astype(np.int64)

    def reject(mask: np.ndarray, name: str, problem, expected: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise ContractViolation(
                path,
                problem(ann[name].iat[i]),
                expected=expected,
                row=int(lines[i]),
                column=column_label(t.header, cols[name]),
            )

    fid = ann["feature_id"].astype(str)
    reject(fid.str.strip().eq("").to_numpy(), "feature_id", lambda v: "empty feature_id", "a feature id")
    mode = ann["ion_mode"].astype(str).str.strip().str.upper()
    reject(
        ~mode.isin(MTB_ION_MODES).to_numpy(),
        "ion_mode",
        lambda v: f"unknown ion mode {clip(v)}",
        f"one of {', '.join(MTB_ION_MODES)}",
    )
    key_dup = pd.DataFrame({"f": fid, "m": mode}).duplicated().to_numpy()
    reject(
        key_dup,
        "feature_id",
        lambda v: f"duplicate feature_id {clip(v)} within its ion mode",
        "each feature_id once per ion mode",
    )
    for name, lower in (("mz", 0.0), ("rt_min", 0.0)):
        num = pd.to_numeric(ann[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num) | (num < lower) | ((num == lower) & (name == "mz"))
        reject(
            bad,
            name,
            lambda v, n=name: f"{n} {clip(v)} is not a valid number",
            "a positive m/z" if name == "mz" else "a retention time in minutes (>= 0)",
        )

    vals = t.frame[inj_pos].to_numpy(dtype=np.float64)  # features x injections, NaN = missing
    inf = np.isinf(vals)
    neg = vals < 0
    for mask, problem, expected in (
        (inf, "non-finite intensity", "a finite number"),
        (neg, "negative intensity", "an intensity >= 0"),
    ):
        if mask.any():
            r, c = np.argwhere(mask)[0]
            raise ContractViolation(
                path,
                f"{problem} {clip(vals[r, c].item())}",
                expected=expected,
                row=int(lines[r]),
                column=column_label(t.header, inj_pos[c]),
            )
    ann["source_row"] = lines
    return MetaboliteTable(ann, injections, np.ascontiguousarray(vals.T), lines, str(path))


def read_injection_list(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """``injections.csv`` with canonical column names, strings as delivered, ``run_order`` as Int64 and
    ``source_row``; extra columns are kept under their delivered names."""
    t = read_delimited(path, sep, what="injection list")
    cols = match_columns(path, t.header, MTB_INJECTION_REQUIRED, MTB_INJECTION_OPTIONAL, t.header_line)
    data = {name: t.frame[pos].to_numpy(dtype=object) for name, pos in cols.items()}
    used = set(cols.values())
    data.update({h: t.frame[i].to_numpy(dtype=object) for i, h in enumerate(t.header) if i not in used})
    out = pd.DataFrame(data)
    lines = t.lines.astype(np.int64)

    def reject(mask, name: str, problem, expected: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            i = int(np.argmax(mask))
            raise ContractViolation(
                path,
                problem(out[name].iat[i]),
                expected=expected,
                row=int(lines[i]),
                column=column_label(t.header, cols[name]),
            )

    inj = out["injection_id"].astype(str)
    reject(inj.str.strip().eq(""), "injection_id", lambda v: "empty injection_id", "an injection id")
    reject(inj.duplicated(), "injection_id", lambda v: f"duplicate injection_id {clip(v)}", "each injection once")
    stype = out["sample_type"].astype(str).str.strip().str.upper()
    reject(
        ~stype.isin(MTB_SAMPLE_TYPES),
        "sample_type",
        lambda v: f"unknown sample_type {clip(v)}",
        f"one of {', '.join(MTB_SAMPLE_TYPES)}",
    )
    matrix = out["matrix"].astype(str).str.strip().str.upper()
    is_sample = stype.eq("SAMPLE")
    reject(
        ~matrix.isin(MTB_MATRICES) & (is_sample | matrix.ne("")),
        "matrix",
        lambda v: f"unknown matrix {clip(v)}",
        f"one of {', '.join(MTB_MATRICES)} (may be empty only for QC and BLANK)",
    )
    reject(
        is_sample & out["specimen_barcode"].astype(str).str.strip().eq(""),
        "specimen_barcode",
        lambda v: "a SAMPLE injection has no specimen_barcode",
        "the specimen barcode of the sample",
    )
    ro = pd.to_numeric(out["run_order"].astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    reject(
        ~np.isfinite(ro) | (ro != np.floor(np.nan_to_num(ro))) | (ro < 0),
        "run_order",
        lambda v: f"run_order {clip(v)} is not a whole number",
        "a non-negative integer injection order",
    )
    out["run_order"] = pd.array(ro.astype(np.int64), dtype="Int64")
    out["source_row"] = lines
    return out
