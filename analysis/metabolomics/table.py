"""The common in-memory form of an untargeted LC-MS feature table: :class:`MetaboliteTable`.

Every vendor reader (:mod:`analysis.metabolomics.vendors`) and the generic wide table of the raw exports
contract (``metabolomics/<batch>/features.csv`` + ``injections.csv``, see :mod:`analysis.contract`) end up
here, so the pipeline (:mod:`analysis.metabolomics.steps`) has one input type.

Layout
------
* ``features``: one row per feature, columns :data:`FEATURE_COLUMNS` (the contract's
  ``MTB_FEATURE_REQUIRED + MTB_FEATURE_OPTIONAL``) plus ``source_row``, the 1-based line of the feature in
  the source file (the file's first line is 1, as in :class:`analysis.errors.ContractViolation`).
  Text columns use pandas' ``str`` dtype with missing values as NaN; ``mz``/``rt_min`` are float64 and
  ``rt_min`` is always in **minutes** (XCMS seconds are converted by its reader).
* ``intensities``: float64 ``ndarray`` of shape ``(n_features, n_injections)`` — the file's orientation.
  ``NaN`` means missing (empty, ``NA``, ``null``...). Zeros are kept as delivered; the pipeline decides
  whether a zero means "not detected" (:func:`analysis.metabolomics.preprocess.zeros_to_missing`).
  ``matrix()`` gives the samples × features view that MetaboAnalyst and R ``prcomp`` use.
* ``injections``: one row per intensity column, aligned with ``intensities``' columns: ``injection_id``
  (the column name), ``source_column`` (1-based column position in the file) and whatever per-injection
  metadata the format carries (``sample_type``, ``class_label``, ``run_order``, ``batch``, ...). Column
  names follow ``analysis.contract.MTB_INJECTION_*`` where the meaning matches.

Feature identity is ``(ion_mode, feature_id)``: positive- and negative-mode exports number their features
independently (MS-DIAL ``Alignment ID`` 0 exists in both), so :attr:`MetaboliteTable.feature_keys` is
``"<ION_MODE>:<feature_id>"`` and :func:`stack_ion_modes` keys on it.

Sample types (SAMPLE / QC / BLANK) come from the injection list when there is one
(:func:`attach_injections`); otherwise :func:`infer_sample_types` applies MetaboAnalyst's rules
(``omics.md`` §7.1): class label ``QC`` (case-insensitive) or a name starting with ``QC``; class label
``BLANK`` or a name starting with ``blank``; MS-DIAL's ``File type`` column when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import contract
from analysis.errors import ContractViolation

#: Annotation columns of every :class:`MetaboliteTable` (the contract's wide-table annotation columns).
FEATURE_COLUMNS: tuple[str, ...] = contract.MTB_FEATURE_REQUIRED + contract.MTB_FEATURE_OPTIONAL
#: Text annotation columns.
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in ("mz", "rt_min"))
SAMPLE_TYPES: tuple[str, ...] = contract.MTB_SAMPLE_TYPES

_ION_MODE_ALIASES = {
    "POS": "POS",
    "POSITIVE": "POS",
    "+": "POS",
    "ESI+": "POS",
    "ESI_POS": "POS",
    "P": "POS",
    "NEG": "NEG",
    "NEGATIVE": "NEG",
    "-": "NEG",
    "ESI-": "NEG",
    "ESI_NEG": "NEG",
    "N": "NEG",
}


def normalise_ion_mode(value: object, *, file: str | Path = "<argument>") -> str:
    """``"positive"``, ``"pos"``, ``"ESI+"`` ... -> ``"POS"``; likewise ``"NEG"``; anything else is an error."""
    key = str(value).strip().upper() if value is not None else ""
    if key not in _ION_MODE_ALIASES:
        raise ContractViolation(file, f"unknown ion mode {value!r}", expected="POS or NEG (positive/negative)")
    return _ION_MODE_ALIASES[key]


def infer_sample_types(
    injection_ids: Sequence[str],
    class_labels: Sequence[object] | None = None,
    file_types: Sequence[object] | None = None,
) -> np.ndarray:
    """SAMPLE / QC / BLANK per injection when no injection list says so (``omics.md`` §7.1).

    Order of evidence: a vendor ``File type`` (MS-DIAL: Sample/QC/Blank/Standard) wins; then the class
    label (``QC`` or ``BLANK``, case-insensitive, as MetaboAnalyst's ``FilterVariable``); then the name
    (``^QC`` or ``^blank``, case-insensitive). Anything else is SAMPLE; a vendor ``Standard`` stays
    ``STANDARD`` so it is excluded from samples, QCs and blanks alike.
    """
    ids = pd.Series(list(injection_ids), dtype="str")
    out = np.full(len(ids), "SAMPLE", dtype=object)
    by_name_qc = ids.str.match(r"(?i)^qc").to_numpy(dtype=bool)
    by_name_blank = ids.str.match(r"(?i)^blank").to_numpy(dtype=bool)
    out[by_name_qc] = "QC"
    out[by_name_blank] = "BLANK"
    if class_labels is not None:
        labels = pd.Series(list(class_labels), dtype="str").str.strip().str.upper()
        out[(labels == "QC").to_numpy(dtype=bool)] = "QC"
        out[(labels == "BLANK").to_numpy(dtype=bool)] = "BLANK"
    if file_types is not None:
        kinds = pd.Series(list(file_types), dtype="str").str.strip().str.upper()
        for vendor_kind, kind in (("SAMPLE", "SAMPLE"), ("QC", "QC"), ("BLANK", "BLANK"), ("STANDARD", "STANDARD")):
            out[(kinds == vendor_kind).to_numpy(dtype=bool)] = kind
    return out


def _empty_text(n: int) -> pd.Series:
    return pd.Series(np.full(n, np.nan, dtype=object), dtype="str")


def build_features(columns: dict[str, object], n: int) -> pd.DataFrame:
    """A features frame with exactly :data:`FEATURE_COLUMNS` + ``source_row`` and the right dtypes."""
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for name in FEATURE_COLUMNS:
        value = columns.get(name)
        if name in ("mz", "rt_min"):
            frame[name] = (
                np.full(n, np.nan)
                if value is None
                else pd.to_numeric(pd.Series(np.asarray(value, dtype=object)), errors="coerce").to_numpy(
                    dtype="float64", na_value=np.nan
                )
            )
        elif value is None:
            frame[name] = _empty_text(n)
        else:
            series = pd.Series(np.asarray(value, dtype=object), dtype="str")
            series = series.str.strip()
            frame[name] = series.where(series.str.len() > 0)
    rows = columns.get("source_row")
    frame["source_row"] = np.arange(1, n + 1, dtype="int64") if rows is None else np.asarray(rows, dtype="int64")
    return frame


@dataclass(frozen=True, eq=False)
class MetaboliteTable:
    """Features × injections intensities with per-feature annotation and per-injection metadata.

    See the module docstring for the layout. Instances are immutable in spirit: methods return new tables.
    """

    features: pd.DataFrame
    intensities: np.ndarray
    injections: pd.DataFrame
    source: str = ""
    vendor: str = ""
    #: Annotation columns the vendor exported that are not in :data:`FEATURE_COLUMNS`, as text.
    vendor_columns: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        values = np.asarray(self.intensities)
        if values.dtype != np.float64 or values.ndim != 2:
            raise TypeError("intensities must be a 2-D float64 array (features x injections)")
        if values.shape != (len(self.features), len(self.injections)):
            raise ValueError(
                f"intensities {values.shape} do not match {len(self.features)} features x "
                f"{len(self.injections)} injections"
            )
        missing = [c for c in (*FEATURE_COLUMNS, "source_row") if c not in self.features.columns]
        if missing:
            raise ValueError(f"features lack columns {missing}")
        if "injection_id" not in self.injections.columns:
            raise ValueError("injections lack the injection_id column")
        object.__setattr__(self, "intensities", values)

    # ------------------------------------------------------------------ views
    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_injections(self) -> int:
        return len(self.injections)

    @property
    def injection_ids(self) -> list[str]:
        return self.injections["injection_id"].astype("str").tolist()

    @property
    def feature_keys(self) -> pd.Index:
        """``"<ION_MODE>:<feature_id>"``, unique within a table."""
        return pd.Index(self.features["ion_mode"].astype("str") + ":" + self.features["feature_id"].astype("str"))

    def matrix(self) -> np.ndarray:
        """Samples × features (a transposed view, no copy), the orientation of MetaboAnalyst and ``prcomp``."""
        return self.intensities.T

    def sample_types(self) -> np.ndarray:
        """SAMPLE/QC/BLANK per injection (from metadata if present, else inferred from names)."""
        if "sample_type" in self.injections.columns:
            types = self.injections["sample_type"].astype("str").str.upper()
            if types.notna().all():
                return types.to_numpy(dtype=object)
        labels = self.injections["class_label"] if "class_label" in self.injections.columns else None
        return infer_sample_types(self.injection_ids, labels)

    # ------------------------------------------------------------------ subsetting
    def select_injections(self, keep: np.ndarray | Sequence[bool] | Sequence[str]) -> MetaboliteTable:
        """A table with only the injections selected by a boolean mask or a list of injection ids (in that order)."""
        keep_arr = np.asarray(keep)
        if keep_arr.dtype == bool:
            index = np.flatnonzero(keep_arr)
        else:
            position = pd.Index(self.injection_ids).get_indexer(keep_arr.astype(str))
            if (position < 0).any():
                raise KeyError(f"unknown injections {list(keep_arr[position < 0])}")
            index = position
        return replace(
            self,
            intensities=np.ascontiguousarray(self.intensities[:, index]),
            injections=self.injections.iloc[index].reset_index(drop=True),
        )

    def select_features(self, keep: np.ndarray | Sequence[bool]) -> MetaboliteTable:
        index = np.flatnonzero(np.asarray(keep, dtype=bool))
        vendor = (
            self.vendor_columns.iloc[index].reset_index(drop=True) if len(self.vendor_columns) else self.vendor_columns
        )
        return replace(
            self,
            features=self.features.iloc[index].reset_index(drop=True),
            intensities=self.intensities[index],
            vendor_columns=vendor,
        )

    # ------------------------------------------------------------------ conversions
    def to_wide(self) -> pd.DataFrame:
        """The contract's wide ``features.csv`` layout: :data:`FEATURE_COLUMNS` then one column per injection."""
        values = pd.DataFrame(self.intensities, columns=self.injection_ids)
        return pd.concat([self.features[list(FEATURE_COLUMNS)].reset_index(drop=True), values], axis=1)

    def to_long(self, *, drop_missing: bool = True) -> pd.DataFrame:
        """One row per (feature, injection): ``ion_mode, feature_id, injection_id, intensity`` (vectorised)."""
        n_f, n_i = self.intensities.shape
        feature_index = np.repeat(np.arange(n_f), n_i)
        injection_index = np.tile(np.arange(n_i), n_f)
        flat = self.intensities.reshape(-1)
        if drop_missing:
            present = ~np.isnan(flat)
            feature_index, injection_index, flat = feature_index[present], injection_index[present], flat[present]
        return pd.DataFrame(
            {
                "ion_mode": self.features["ion_mode"].to_numpy()[feature_index],
                "feature_id": self.features["feature_id"].to_numpy()[feature_index],
                "injection_id": np.asarray(self.injection_ids, dtype=object)[injection_index],
                "intensity": flat,
            }
        )

    @classmethod
    def from_wide(
        cls,
        frame: pd.DataFrame,
        *,
        source: str = "",
        injections: pd.DataFrame | None = None,
        source_rows: Sequence[int] | None = None,
    ) -> MetaboliteTable:
        """Adapt a contract-shaped wide table (annotation columns + one numeric column per injection).

        This is the bridge from the generic reader (``analysis.readers.read_metabolomics_table``): every
        column not in :data:`FEATURE_COLUMNS` (nor ``source_row``/``_row_number``) is an injection. Values
        must already be numeric (the reader checks the contract); ``injections`` is an injection list
        (contract columns) that is attached with :func:`attach_injections`.
        """
        meta = {c for c in frame.columns if c in FEATURE_COLUMNS or c in ("source_row", "_row_number")}
        injection_cols = [c for c in frame.columns if c not in meta]
        columns: dict[str, object] = {c: frame[c].to_numpy() for c in FEATURE_COLUMNS if c in frame.columns}
        if source_rows is not None:
            columns["source_row"] = source_rows
        elif "source_row" in frame.columns:
            columns["source_row"] = frame["source_row"].to_numpy()
        elif "_row_number" in frame.columns:
            columns["source_row"] = frame["_row_number"].to_numpy()
        else:
            columns["source_row"] = np.arange(2, len(frame) + 2)  # header is line 1
        if "ion_mode" in columns:
            modes = pd.Series(columns["ion_mode"], dtype="str").str.strip().str.upper()
            columns["ion_mode"] = modes.map(_ION_MODE_ALIASES).fillna(modes).to_numpy(dtype=object)
        features = build_features(columns, len(frame))
        values = np.ascontiguousarray(frame[injection_cols].to_numpy(dtype="float64", na_value=np.nan))
        table = cls(
            features=features,
            intensities=values,
            injections=pd.DataFrame(
                {
                    "injection_id": pd.Series([str(c) for c in injection_cols], dtype="str"),
                    "source_column": [frame.columns.get_loc(c) + 1 for c in injection_cols],
                }
            ),
            source=source,
            vendor="contract",
        )
        return attach_injections(table, injections) if injections is not None else table

    @classmethod
    def from_generic(cls, generic: object, injections: pd.DataFrame | None = None) -> MetaboliteTable:
        """Adapt the result of ``analysis.readers.read_metabolomics_table`` (the contract's wide table).

        That reader returns ``annotations`` (contract columns as delivered text + ``source_row``),
        ``injection_ids``, ``intensities`` as **injections × features** and ``source``; this table keeps
        the file's features × injections orientation, so the matrix is transposed (one copy).
        ``injections`` is the frame of ``read_injection_list`` (attached with :func:`attach_injections`).
        Duck-typed, so this package does not import ``analysis.readers``.
        """
        annotations: pd.DataFrame = generic.annotations  # type: ignore[attr-defined]
        ids: list[str] = list(generic.injection_ids)  # type: ignore[attr-defined]
        values = np.ascontiguousarray(np.asarray(generic.intensities, dtype="float64").T)  # type: ignore[attr-defined]
        cols: dict[str, object] = {c: annotations[c].to_numpy() for c in FEATURE_COLUMNS if c in annotations.columns}
        modes = pd.Series(cols.get("ion_mode", []), dtype="str").str.strip().str.upper()
        cols["ion_mode"] = modes.map(_ION_MODE_ALIASES).fillna(modes).to_numpy(dtype=object)
        rows = getattr(generic, "source_rows", None)
        cols["source_row"] = annotations["source_row"].to_numpy() if "source_row" in annotations else rows
        table = cls(
            features=build_features(cols, len(annotations)),
            intensities=values,
            injections=pd.DataFrame({"injection_id": pd.Series(ids, dtype="str")}),
            source=str(getattr(generic, "source", "")),
            vendor="contract",
        )
        return attach_injections(table, injections) if injections is not None else table

    @classmethod
    def from_long(
        cls,
        long: pd.DataFrame,
        features: pd.DataFrame,
        *,
        source: str = "",
        injections: pd.DataFrame | None = None,
    ) -> MetaboliteTable:
        """Build from a long table (``ion_mode, feature_id, injection_id, intensity``) and a features frame."""
        keys = features["ion_mode"].astype("str") + ":" + features["feature_id"].astype("str")
        feature_pos = pd.Index(keys).get_indexer(
            long["ion_mode"].astype("str") + ":" + long["feature_id"].astype("str")
        )
        if (feature_pos < 0).any():
            raise ValueError("long table has features that are not in the features frame")
        inj_codes, inj_ids = pd.factorize(long["injection_id"].astype("str"), sort=False)
        values = np.full((len(features), len(inj_ids)), np.nan)
        values[feature_pos, inj_codes] = long["intensity"].to_numpy(dtype="float64")
        cols = {c: features[c].to_numpy() for c in FEATURE_COLUMNS if c in features.columns}
        if "source_row" in features.columns:
            cols["source_row"] = features["source_row"].to_numpy()
        table = cls(
            features=build_features(cols, len(features)),
            intensities=values,
            injections=pd.DataFrame(
                {"injection_id": pd.Series(list(inj_ids), dtype="str"), "source_column": np.arange(1, len(inj_ids) + 1)}
            ),
            source=source,
            vendor="long",
        )
        return attach_injections(table, injections) if injections is not None else table


def check_unique_features(table: MetaboliteTable, *, column: str = "feature_id") -> None:
    """Raise :class:`ContractViolation` on a repeated ``(ion_mode, feature_id)``, naming the second row."""
    dup = table.feature_keys.duplicated()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise ContractViolation(
            table.source,
            f"duplicate feature {table.feature_keys[first]!r}",
            expected="one row per feature and ion mode",
            row=int(table.features["source_row"].iloc[first]),
            column=column,
        )


def attach_injections(
    table: MetaboliteTable,
    injection_list: pd.DataFrame,
    *,
    require_all: bool = False,
) -> MetaboliteTable:
    """Join an injection list (contract ``injections.csv`` columns) onto the table's injections.

    Every intensity column must be listed: an unlisted one is an **unknown injection** and raises
    :class:`ContractViolation` naming the data file and the column. Listed injections absent from the file
    are allowed (an injection list may span both ion modes) unless ``require_all``. Metadata from the list
    (``sample_type``, ``specimen_barcode``, ``matrix``, ``run_order``, ``batch``, ...) replace the
    vendor's values of the same name; other vendor metadata are kept.
    """
    if "injection_id" not in injection_list.columns:
        raise ContractViolation("<injection list>", "no injection_id column", expected="injection_id column")
    listed = injection_list.copy()
    listed["injection_id"] = listed["injection_id"].astype("str").str.strip()
    dup = listed["injection_id"].duplicated()
    if dup.any():
        raise ContractViolation(
            "<injection list>",
            f"injection {listed['injection_id'][dup].iloc[0]!r} is listed twice",
            expected="one row per injection",
        )
    ids = pd.Index(table.injection_ids)
    position = pd.Index(listed["injection_id"]).get_indexer(ids)
    if (position < 0).any():
        bad = int(np.flatnonzero(position < 0)[0])
        column = table.injections["source_column"].iloc[bad] if "source_column" in table.injections else None
        raise ContractViolation(
            table.source,
            f"unknown injection {ids[bad]!r} (column {column}) is not in the injection list",
            expected="every intensity column listed in the injection list",
            row=None,
            column=str(ids[bad]),
        )
    if require_all:
        absent = ~listed["injection_id"].isin(ids)
        if absent.any():
            raise ContractViolation(
                table.source,
                f"injection {listed['injection_id'][absent].iloc[0]!r} is in the injection list but not in the file",
                expected="every listed injection present",
            )
    matched = listed.iloc[position].reset_index(drop=True)
    if "source_row" in matched.columns:  # the line in the injection list, not in the data file
        matched = matched.rename(columns={"source_row": "injection_list_row"})
    injections = table.injections.reset_index(drop=True).copy()
    for column in matched.columns:
        if column != "injection_id":
            injections[column] = matched[column].to_numpy()
    if "sample_type" in injections.columns:
        injections["sample_type"] = injections["sample_type"].astype("str").str.strip().str.upper()
    return replace(table, injections=injections)


def stack_ion_modes(tables: Sequence[MetaboliteTable], *, on: str = "injection_id") -> MetaboliteTable:
    """Stack the features of several tables (e.g. POS and NEG) over the injections they share.

    ``on`` names the injection metadata column that identifies the same specimen across tables
    (``injection_id`` when both modes use one id, ``specimen_barcode`` when each mode has its own
    injection). Injections are the union in first-seen order; a feature has NaN where its table lacks the
    injection. Feature keys must stay unique (they include the ion mode).
    """
    if not tables:
        raise ValueError("no tables to stack")
    keys: list[str] = []
    seen: dict[str, int] = {}
    meta_rows: list[pd.DataFrame] = []
    for table in tables:
        if on not in table.injections.columns:
            raise ValueError(f"table {table.source!r} has no injection column {on!r}")
        ids = table.injections[on].astype("str")
        if ids.duplicated().any():
            raise ValueError(f"{on!r} is not unique within {table.source!r}")
        new = ~ids.isin(list(seen))
        for key in ids[new]:
            seen[key] = len(keys)
            keys.append(key)
        meta_rows.append(table.injections[new.to_numpy()])
    values = np.full((sum(t.n_features for t in tables), len(keys)), np.nan)
    start = 0
    for table in tables:
        cols = np.array([seen[k] for k in table.injections[on].astype("str")], dtype=np.intp)
        values[start : start + table.n_features][:, cols] = table.intensities
        start += table.n_features
    injections = pd.concat(meta_rows, ignore_index=True)
    if on != "injection_id":
        injections["injection_id"] = injections[on].astype("str")
    features = pd.concat([t.features for t in tables], ignore_index=True)
    vendor = (
        pd.concat([t.vendor_columns for t in tables], ignore_index=True)
        if any(len(t.vendor_columns) for t in tables)
        else pd.DataFrame()
    )
    out = MetaboliteTable(
        features=features,
        intensities=values,
        injections=injections,
        source=";".join(t.source for t in tables),
        vendor=";".join(sorted({t.vendor for t in tables})),
        vendor_columns=vendor if len(vendor) == len(features) else pd.DataFrame(),
    )
    check_unique_features(out)
    return out
