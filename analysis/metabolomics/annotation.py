"""Compound identifiers carried from the vendor export: validated, normalised, split — never looked up.

Rules (``omics.md`` §7.4; patterns from MIRIAM/bioregistry):

* **KEGG COMPOUND**: ``^C\\d{5}$``. Cells are trimmed, upper-cased and a ``cpd:`` prefix (KEGG's own
  notation) is removed before checking. ``D\\d{5}`` (KEGG DRUG) and ``G\\d{5}`` (KEGG GLYCAN) are
  reported as such, not accepted as compounds.
* **HMDB**: ``^HMDB\\d+$``, normalised to the current 7-digit form by zero-padding
  (``HMDB01234`` -> ``HMDB0001234``); more than 7 digits is invalid.
* Cells holding several IDs are split on ``;`` ``,`` ``|`` ``/`` (and surrounding spaces); every ID keeps
  its feature key (``ion_mode``, ``feature_id``).
* Invalid tokens are **reported** (:attr:`Annotation.invalid`) with the reason, never silently dropped;
  unannotated features stay in the per-feature table with ``annotated = False``.
* Names, formulae, classes and the evidence level are carried exactly as exported (KEGG data may not
  be redistributed, so this package ships no KEGG names; ``kegg_ids`` are opaque keys for pathway tools).

All operations are vectorised pandas string operations (split/explode/fullmatch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KEGG_COMPOUND = r"C\d{5}"
SEPARATORS = r"\s*[;,|/]\s*"
_OTHER_KEGG = {"D": "KEGG DRUG ID, not a KEGG COMPOUND ID", "G": "KEGG GLYCAN ID, not a KEGG COMPOUND ID"}


def split_ids(cells: pd.Series) -> pd.DataFrame:
    """One row per token: ``row`` (position in ``cells``), ``ordinal`` (0-based within the cell), ``raw``.

    Empty cells and empty tokens produce no rows.
    """
    series = pd.Series(cells, dtype="str").reset_index(drop=True)
    tokens = series.str.strip().str.split(SEPARATORS, regex=True).explode()
    tokens = tokens[tokens.notna() & (tokens.str.len() > 0)]
    frame = pd.DataFrame({"row": tokens.index.to_numpy(dtype=np.int64), "raw": tokens.to_numpy(dtype=object)})
    frame["raw"] = frame["raw"].astype("str")
    frame["ordinal"] = frame.groupby("row").cumcount()
    return frame[["row", "ordinal", "raw"]]


def normalise_kegg(tokens: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalised id or NaN, reason or NaN) per token."""
    raw = pd.Series(tokens, dtype="str")
    cleaned = raw.str.strip().str.upper().str.replace(r"^CPD:", "", regex=True)
    ok = cleaned.str.fullmatch(KEGG_COMPOUND).fillna(False).astype(bool)
    reason = pd.Series(np.where(ok, None, "not a KEGG COMPOUND ID (C + 5 digits)"), index=raw.index, dtype="str")
    for prefix, text in _OTHER_KEGG.items():
        reason = reason.mask(cleaned.str.fullmatch(prefix + r"\d{5}").fillna(False).astype(bool), text)
    return cleaned.where(ok), reason.where(~ok)


def normalise_hmdb(tokens: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(``HMDB`` + 7 digits or NaN, reason or NaN) per token."""
    raw = pd.Series(tokens, dtype="str")
    digits = raw.str.strip().str.upper().str.extract(r"^HMDB(\d+)$", expand=False)
    ok = digits.notna() & (digits.str.len() <= 7)
    normalised = ("HMDB" + digits.str.zfill(7)).where(ok)
    reason = pd.Series(
        np.where(digits.notna(), "HMDB ID with more than 7 digits", "not an HMDB ID (HMDB + digits)"),
        index=raw.index,
        dtype="str",
    )
    return normalised, reason.where(~ok)


@dataclass(frozen=True)
class Annotation:
    """Per-feature annotation, the long ID mapping and the rejected tokens."""

    #: One row per feature: ion_mode, feature_id, name, formula, compound_class, evidence, kegg_ids,
    #: hmdb_ids (valid IDs joined by ';'), n_invalid_ids, annotated.
    features: pd.DataFrame
    #: One row per valid ID: ion_mode, feature_id, id_type (KEGG/HMDB), id, raw, ordinal.
    ids: pd.DataFrame
    #: One row per rejected token: ion_mode, feature_id, id_type, raw, reason, source_row.
    invalid: pd.DataFrame


def annotate(features: pd.DataFrame) -> Annotation:
    """Validate and normalise the ``kegg_id`` and ``hmdb_id`` columns of a features frame.

    ``features`` is :attr:`MetaboliteTable.features` (or any frame with ``ion_mode``, ``feature_id`` and
    optionally ``kegg_id``, ``hmdb_id``, ``name``, ``formula``, ``compound_class``, ``evidence``,
    ``source_row``).
    """
    base = features.reset_index(drop=True)
    keys = base[["ion_mode", "feature_id"]]
    valid_parts: list[pd.DataFrame] = []
    invalid_parts: list[pd.DataFrame] = []
    for id_type, column, normaliser in (("KEGG", "kegg_id", normalise_kegg), ("HMDB", "hmdb_id", normalise_hmdb)):
        if column not in base.columns:
            continue
        tokens = split_ids(base[column])
        normalised, reason = normaliser(tokens["raw"])
        tokens["id"] = normalised.to_numpy(dtype=object)
        tokens["reason"] = reason.to_numpy(dtype=object)
        tokens["id_type"] = id_type
        tokens = tokens.join(keys, on="row")
        if "source_row" in base.columns:
            tokens["source_row"] = base["source_row"].to_numpy()[tokens["row"].to_numpy()]
        good = tokens["id"].notna()
        valid_parts.append(tokens.loc[good, ["row", "ion_mode", "feature_id", "id_type", "id", "raw", "ordinal"]])
        cols = ["row", "ion_mode", "feature_id", "id_type", "raw", "reason"] + (
            ["source_row"] if "source_row" in tokens else []
        )
        invalid_parts.append(tokens.loc[~good, cols])
    ids = (
        pd.concat(valid_parts, ignore_index=True)
        if valid_parts
        else pd.DataFrame(columns=["row", "ion_mode", "feature_id", "id_type", "id", "raw", "ordinal"])
    )
    invalid = (
        pd.concat(invalid_parts, ignore_index=True)
        if invalid_parts
        else pd.DataFrame(columns=["row", "ion_mode", "feature_id", "id_type", "raw", "reason"])
    )
    # one id once per feature and type (the same ID may be repeated in a cell or across spellings)
    ids = ids.drop_duplicates(["row", "id_type", "id"]).reset_index(drop=True)

    table = keys.copy()
    for column in ("name", "formula", "compound_class", "evidence"):
        table[column] = base[column] if column in base.columns else pd.Series(np.nan, index=base.index, dtype="str")
    for id_type, column in (("KEGG", "kegg_ids"), ("HMDB", "hmdb_ids")):
        subset = ids[ids["id_type"] == id_type]
        joined = subset.groupby("row")["id"].agg(";".join)
        table[column] = pd.Series(joined.reindex(range(len(base))).to_numpy(dtype=object), dtype="str")
    table["n_invalid_ids"] = (
        invalid["row"].value_counts().reindex(range(len(base)), fill_value=0).to_numpy(dtype=np.int64)
    )
    table["annotated"] = (table["name"].notna() | table["kegg_ids"].notna() | table["hmdb_ids"].notna()).to_numpy(
        dtype=bool
    )
    return Annotation(
        features=table,
        ids=ids.drop(columns="row"),
        invalid=invalid.drop(columns="row").reset_index(drop=True),
    )
