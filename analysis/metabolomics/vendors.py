"""Readers for LC-MS vendor exports -> :class:`~analysis.metabolomics.table.MetaboliteTable`.

Layouts (``omics.md`` §7.1; one row per feature, one intensity column per injection):

* **MS-DIAL** alignment export (Height/Area/Normalized ``.txt``, tab-separated): 4 preamble rows. The cell
  left of the first injection column holds the labels ``Class``, ``File type``, ``Injection order`` and
  ``Batch ID``; the cells to its right give those values per injection. Line 5 is the header
  (``Alignment ID, Average Rt(min), Average Mz, Metabolite name, Adduct type, ..., MS/MS spectrum``, then
  the injections). After the injections come per-class ``Average``/``Stdev`` columns (marked in the
  ``File type`` or ``Class`` row, or by a header ``Average``/``Stdev``); they and everything after them
  are dropped. RT is in minutes. The ion mode is taken from the argument, else from ``Adduct type``
  (``[M+H]+`` -> POS, ``[M-H]-`` -> NEG) when every annotated row agrees.
* **Progenesis QI** CSV: 3 header rows. Line 1 holds block labels (``Normalised abundance``,
  ``Raw abundance``) at the first column of each block, line 2 the condition names spanning their
  columns, line 3 the column names (``Compound, Neutral mass (Da), m/z, Charge, Retention time (min),
  ..., Accepted Compound ID, Accepted Description, Adducts, Formula, Score, Fragmentation Score, ...``).
  Sample names repeat once per block; ``abundance="raw"`` (default: the pipeline normalises itself) or
  ``"normalised"`` selects the block. A block ends at the next label; the last block has the width of
  the first (the names must repeat) or, if alone, ends at the first known annotation column.
  ``Accepted Compound ID`` goes to ``hmdb_id`` or ``kegg_id`` when it has that form.
* **XCMS** feature table (``cbind(featureDefinitions(x), featureValues(x))`` written by R, or legacy
  ``peakTable``/``diffreport``, optionally with CAMERA ``isotopes, adduct, pcgroup``): feature ids are the
  R row names (the empty first header cell, or a header one field short as ``write.table`` writes it),
  else a ``name`` column. ``mzmed``/``mz`` and ``rtmed``/``rt`` (**seconds**, converted to minutes).
  Class-count columns look like injections, so the injection columns are, in order of preference:
  ``sample_columns``; the columns named in the injection list; columns named after raw files
  (``.mzML``, ``.mzXML``, ``.CDF``, ``.raw``, ``.d``, ``.wiff``). Otherwise the reader refuses to guess.
* **Metabolomics Workbench mwTab** (``.txt``): ``#METABOLOMICS WORKBENCH`` first line, ``MS:ION_MODE``,
  ``SUBJECT_SAMPLE_FACTORS`` lines (subject, sample, ``Factor:value | ...``, ``RAW_FILE_NAME=...``), a
  ``MS_METABOLITE_DATA_START``/``_END`` block (``Samples`` header, optional ``Factors`` row, one row per
  metabolite) and a ``METABOLITES_START``/``_END`` annotation block joined on the metabolite name. The
  metabolite name is the feature id.

Contract checks (every failure is an :class:`analysis.errors.ContractViolation` naming file, 1-based line
and column): duplicate injection columns, non-numeric or non-finite intensities, negative intensities,
duplicate feature ids within an ion mode, an injection absent from the injection list (when given),
a layout that is not the vendor's. Empty cells and ``NA``/``NaN``/``null``/``N/A``/``#N/A``/``No record``
are missing (NaN); zeros are kept.

Parsing is vectorised: the matrix is parsed by pandas' C engine straight to float64; only when that fails
is the block re-read as text to locate the first bad cell. Only the few header lines go through ``csv``.
Line numbers assume no quoted field spans lines (true of all four formats).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import ContractViolation
from analysis.metabolomics.table import (
    MetaboliteTable,
    attach_injections,
    build_features,
    check_unique_features,
    infer_sample_types,
    normalise_ion_mode,
)

NA_STRINGS: tuple[str, ...] = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A", "No record")
RAW_FILE_SUFFIX = re.compile(r"(?i)\.(mzml|mzxml|mzdata|cdf|netcdf|raw|d|wiff|wiff2|lcd)$")
HMDB_FORM = re.compile(r"(?i)^\s*HMDB\d+\s*$")
KEGG_FORM = re.compile(r"^\s*C\d{5}\s*$")

#: Case-insensitive header aliases for optional annotation columns any vendor may carry.
OPTIONAL_ALIASES: dict[str, tuple[str, ...]] = {
    "kegg_id": ("kegg_id", "kegg", "kegg id", "keggid", "kegg compound", "kegg compound id", "kegg_compound_id"),
    "hmdb_id": ("hmdb_id", "hmdb", "hmdb id", "hmdbid", "hmdb_accession"),
    "formula": ("formula", "molecular formula", "molecular_formula"),
    "compound_class": ("compound_class", "ontology", "compound class", "class", "super_class", "superclass"),
    "evidence": ("evidence", "msi level", "msi_level", "identification level", "annotation level", "level"),
}


# ---------------------------------------------------------------------------------------------- helpers


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _head_lines(path: Path, n: int) -> list[str]:
    with _open_text(path) as handle:
        lines = []
        for _ in range(n):
            line = handle.readline()
            if not line:
                break
            lines.append(line.rstrip("\r\n"))
    return lines


def _sniff_sep(path: Path, lines: Sequence[str]) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".tab")):
        return "\t"
    sample = "\n".join(lines)
    return "\t" if sample.count("\t") >= sample.count(",") else ","


def _split(lines: Sequence[str], sep: str) -> list[list[str]]:
    return [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=sep)]


def _find(header: Sequence[str], *names: str) -> int | None:
    """Position of the first header cell equal (case-insensitive, spaces collapsed) to one of ``names``."""
    norm = [re.sub(r"\s+", " ", h).strip().lower() for h in header]
    for name in names:
        key = re.sub(r"\s+", " ", name).strip().lower()
        if key in norm:
            return norm.index(key)
    return None


def _check_duplicate_columns(names: Sequence[str], positions: Sequence[int], file: Path, header_line: int) -> None:
    seen: dict[str, int] = {}
    for pos in positions:
        name = names[pos]
        if name in seen:
            raise ContractViolation(
                file,
                f"duplicate injection column {name!r} (columns {seen[name] + 1} and {pos + 1})",
                expected="each injection once",
                row=header_line,
                column=name,
            )
        seen[name] = pos


def _read_body(
    source: Path | io.StringIO,
    *,
    file: Path,
    sep: str,
    skiprows: int,
    first_line: int,
    text_positions: Sequence[int],
    value_positions: Sequence[int],
    names: Sequence[str],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Parse the data rows: text columns as ``str``, intensity columns as float64 (C engine).

    Returns the text frame (columns named by header), the intensity array (rows × value columns) and the
    1-based file line of each row. Blank lines are skipped but counted.
    """
    value_positions = list(value_positions)
    text_positions = list(text_positions)
    # Every column is read (no usecols: with usecols the C parser silently drops surplus fields), with the
    # header's width forced by ``names`` so a row with more fields than the header is an error.
    width = len(names)
    value_set = set(value_positions)
    dtypes: dict[int, str] = {p: ("float64" if p in value_set else "str") for p in range(width)}

    def read(types: dict[int, str]) -> pd.DataFrame:
        if isinstance(source, io.StringIO):
            source.seek(0)
        try:
            return pd.read_csv(
                source,
                sep=sep,
                header=None,
                names=list(range(width)),
                # Without it pandas silently turns surplus leading fields of the first row into an index,
                # shifting every column; with it a too-long row is a ParserError (rejected below).
                index_col=False,
                skiprows=skiprows,
                dtype=types,
                na_values=list(NA_STRINGS),
                keep_default_na=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
                engine="c",
                quoting=csv.QUOTE_MINIMAL,
            )
        except pd.errors.ParserError as err:
            match = re.search(r"line (\d+), saw (\d+)", str(err))
            line = int(match.group(1)) - 1 - skiprows + first_line if match else None
            raise ContractViolation(
                file, f"row has more fields than the header ({err})", expected="one field per header column", row=line
            ) from err

    try:
        frame = read(dtypes)
    except ValueError:
        frame = read({p: "str" for p in range(width)})
        _raise_first_non_numeric(frame, value_positions, names, file, first_line)
        raise  # pragma: no cover - _raise_first_non_numeric always raises here
    lines = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame = frame.loc[~blank]
        lines = lines[~blank]
    values = np.ascontiguousarray(frame[value_positions].to_numpy(dtype="float64", na_value=np.nan))
    text = frame[text_positions].reset_index(drop=True)
    text.columns = [names[p] for p in text_positions]
    _check_values(values, lines, [names[p] for p in value_positions], file)
    return text, values, lines


def _raise_first_non_numeric(
    frame: pd.DataFrame, positions: Sequence[int], names: Sequence[str], file: Path, first_line: int
) -> None:
    """Re-parse the intensity columns (as text) with ``to_numeric`` to locate the first bad cell."""
    worst: tuple[int, int, str] | None = None
    for pos in positions:  # one vectorised conversion per column
        raw = frame[pos]
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna().to_numpy() & numbers.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            if worst is None or row < worst[0]:
                worst = (row, pos, str(raw.iloc[row]))
    if worst is None:
        raise ContractViolation(file, "intensities could not be parsed as numbers", expected="numbers")
    row, pos, value = worst
    raise ContractViolation(
        file,
        f"non-numeric intensity {value!r}",
        expected="a number, or empty/NA for missing",
        row=first_line + row,
        column=names[pos],
    )


def _check_values(values: np.ndarray, lines: np.ndarray, names: Sequence[str], file: Path) -> None:
    finite = np.isfinite(values) | np.isnan(values)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise ContractViolation(
            file, f"non-finite intensity {values[r, c]}", expected="a finite number", row=int(lines[r]), column=names[c]
        )
    with np.errstate(invalid="ignore"):
        negative = values < 0
    if negative.any():
        r, c = np.argwhere(negative)[0]
        raise ContractViolation(
            file,
            f"negative intensity {values[r, c]}",
            expected="intensities >= 0 (missing as empty/NA)",
            row=int(lines[r]),
            column=names[c],
        )


def _numeric(text: pd.DataFrame, column: str | None, lines: np.ndarray, file: Path) -> np.ndarray | None:
    """A float annotation column (m/z, RT); a non-numeric cell is a contract violation."""
    if column is None:
        return None
    raw = text[column]
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna().to_numpy() & numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ContractViolation(
            file, f"non-numeric value {raw.iloc[row]!r}", expected="a number", row=int(lines[row]), column=column
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def _optional_columns(text: pd.DataFrame, taken: set[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for target, aliases in OPTIONAL_ALIASES.items():
        pos = _find(list(text.columns), *aliases)
        if pos is not None and text.columns[pos] not in taken:
            out[target] = text.iloc[:, pos].to_numpy(dtype=object)
            taken.add(text.columns[pos])
    return out


def _finish(
    *,
    file: Path,
    vendor: str,
    text: pd.DataFrame,
    values: np.ndarray,
    lines: np.ndarray,
    columns: dict[str, object],
    taken: set[str],
    injections: pd.DataFrame,
    injection_list: pd.DataFrame | None,
) -> MetaboliteTable:
    columns = {**_optional_columns(text, set(taken)), **{k: v for k, v in columns.items() if v is not None}}
    columns["source_row"] = lines
    features = build_features(columns, len(text))
    missing_id = features["feature_id"].isna().to_numpy()
    if missing_id.any():
        row = int(np.flatnonzero(missing_id)[0])
        raise ContractViolation(
            file, "feature without an id", expected="a feature id on every row", row=int(lines[row])
        )
    used = {c for c in taken if c in text.columns}
    vendor_columns = text[[c for c in text.columns if c not in used]].reset_index(drop=True)
    table = MetaboliteTable(
        features=features,
        intensities=values,
        injections=injections.reset_index(drop=True),
        source=str(file),
        vendor=vendor,
        vendor_columns=vendor_columns,
    )
    check_unique_features(table)
    if injection_list is not None:
        table = attach_injections(table, injection_list)
    return table


def _ion_mode_array(mode: str, n: int) -> np.ndarray:
    return np.full(n, mode, dtype=object)


def _resolve_ion_mode(ion_mode: str | None, file: Path, *, inferred: str | None = None) -> str:
    if ion_mode is not None:
        return normalise_ion_mode(ion_mode, file=file)
    if inferred is not None:
        return inferred
    raise ContractViolation(
        file, "the ion mode is not stated in this export", expected="ion_mode='POS' or 'NEG' passed to the reader"
    )


# ---------------------------------------------------------------------------------------------- MS-DIAL

MSDIAL_LABELS = ("Class", "File type", "Injection order", "Batch ID")
_SUMMARY = {"average", "stdev", "std", "sd"}


def read_msdial(
    path: str | Path,
    *,
    ion_mode: str | None = None,
    injections: pd.DataFrame | None = None,
) -> MetaboliteTable:
    """Read an MS-DIAL alignment export (see module docstring)."""
    file = Path(path)
    head = _head_lines(file, 6)
    sep = _sniff_sep(file, head)
    rows = _split(head[:5], sep)
    if len(rows) < 5:
        raise ContractViolation(
            file, "file too short for an MS-DIAL alignment export", expected="4 preamble rows + header"
        )
    label_pos = _find(rows[0], "Class")
    if label_pos is None:
        raise ContractViolation(
            file,
            "no 'Class' label in the first line",
            expected="MS-DIAL preamble rows Class/File type/Injection order/Batch ID",
            row=1,
        )
    for i, label in enumerate(MSDIAL_LABELS[1:], start=1):
        cell = rows[i][label_pos] if label_pos < len(rows[i]) else ""
        if cell.lower() != label.lower():
            raise ContractViolation(
                file,
                f"preamble label {cell!r}",
                expected=f"{label!r} above the header",
                row=i + 1,
                column=str(label_pos + 1),
            )
    header = rows[4]
    for required in ("Alignment ID", "Average Rt(min)", "Average Mz"):
        if _find(header, required) is None:
            raise ContractViolation(
                file, f"header lacks {required!r}", expected="MS-DIAL alignment header on line 5", row=5
            )
    preamble = [r + [""] * (len(header) - len(r)) for r in rows[:4]]
    sample_positions: list[int] = []
    for pos in range(label_pos + 1, len(header)):
        marks = {preamble[0][pos].lower(), preamble[1][pos].lower(), header[pos].lower()}
        if marks & _SUMMARY or preamble[1][pos] == "":
            break  # per-class Average/Stdev columns and anything after them
        sample_positions.append(pos)
    if not sample_positions:
        raise ContractViolation(
            file, "no injection columns after the 'Class' column", expected="injection columns", row=5
        )
    _check_duplicate_columns(header, sample_positions, file, 5)

    order = pd.to_numeric(pd.Series([preamble[2][p] for p in sample_positions], dtype="str"), errors="coerce")
    inj = pd.DataFrame(
        {
            "injection_id": pd.Series([header[p] for p in sample_positions], dtype="str"),
            "source_column": np.asarray(sample_positions) + 1,
            "class_label": pd.Series([preamble[0][p] for p in sample_positions], dtype="str"),
            "file_type": pd.Series([preamble[1][p] for p in sample_positions], dtype="str"),
            "run_order": order.astype("Int64") if order.notna().all() and (order % 1 == 0).all() else order,
            "batch": pd.Series([preamble[3][p] for p in sample_positions], dtype="str"),
        }
    )
    inj["sample_type"] = infer_sample_types(inj["injection_id"], inj["class_label"], inj["file_type"])

    text, values, lines = _read_body(
        file,
        file=file,
        sep=sep,
        skiprows=5,
        first_line=6,
        text_positions=range(label_pos + 1),
        value_positions=sample_positions,
        names=header,
    )
    col = {name: header[_find(header, name)] for name in ("Alignment ID", "Average Rt(min)", "Average Mz")}  # type: ignore[index]
    name_pos = _find(header, "Metabolite name")
    adduct_pos = _find(header, "Adduct type")
    formula_pos = _find(header, "Formula")
    ontology_pos = _find(header, "Ontology")
    taken = {col["Alignment ID"], col["Average Rt(min)"], col["Average Mz"]}

    inferred = None
    if adduct_pos is not None and label_pos >= adduct_pos:
        tail = text[header[adduct_pos]].dropna().str.strip().str[-1]
        modes = set(tail.map({"+": "POS", "-": "NEG"}).dropna())
        inferred = modes.pop() if len(modes) == 1 else None
    mode = _resolve_ion_mode(ion_mode, file, inferred=inferred)

    names_raw = text[header[name_pos]] if name_pos is not None else None
    if names_raw is not None:
        names_raw = names_raw.where(~names_raw.str.strip().str.lower().isin(["unknown", "null"]))
        taken.add(header[name_pos])  # type: ignore[index]
    evidence = _msdial_evidence(text, header)
    for pos in (formula_pos, ontology_pos):
        if pos is not None:
            taken.add(header[pos])
    return _finish(
        file=file,
        vendor="msdial",
        text=text,
        values=values,
        lines=lines,
        columns={
            "feature_id": text[col["Alignment ID"]].to_numpy(dtype=object),
            "ion_mode": _ion_mode_array(mode, len(text)),
            "mz": _numeric(text, col["Average Mz"], lines, file),
            "rt_min": _numeric(text, col["Average Rt(min)"], lines, file),
            "name": None if names_raw is None else names_raw.to_numpy(dtype=object),
            "formula": None if formula_pos is None else text[header[formula_pos]].to_numpy(dtype=object),
            "compound_class": None if ontology_pos is None else text[header[ontology_pos]].to_numpy(dtype=object),
            "evidence": evidence,
        },
        taken=taken,
        injections=inj,
        injection_list=injections,
    )


def _msdial_evidence(text: pd.DataFrame, header: Sequence[str]) -> np.ndarray | None:
    """MS-DIAL's own words: ``Annotation tag (VS1.0)`` if exported, else the True match flags joined by '; '."""
    tag = _find(list(text.columns), "Annotation tag (VS1.0)", "Annotation tag")
    if tag is not None:
        return text.iloc[:, tag].to_numpy(dtype=object)
    flags = [c for c in ("RT matched", "m/z matched", "MS/MS matched") if _find(list(text.columns), c) is not None]
    if not flags:
        return None
    parts = []
    for flag in flags:
        series = text.iloc[:, _find(list(text.columns), flag)].str.strip().str.lower()  # type: ignore[arg-type]
        parts.append(np.where(series.eq("true").to_numpy(dtype=bool), flag, ""))
    joined = pd.Series(["; ".join(p for p in row if p) for row in zip(*parts, strict=True)], dtype="str")
    return joined.where(joined.str.len() > 0).to_numpy(dtype=object)


# ---------------------------------------------------------------------------------------------- Progenesis QI

PROGENESIS_BLOCKS = {"normalised": ("normalised abundance", "normalized abundance"), "raw": ("raw abundance",)}
PROGENESIS_ANNOTATION = (
    "Accepted Compound ID",
    "Accepted Description",
    "Adducts",
    "Formula",
    "Score",
    "Fragmentation Score",
    "Mass Error (ppm)",
    "Isotope Similarity",
    "Retention Time Error (mins)",
    "Compound Link",
    "Description",
)


def read_progenesis(
    path: str | Path,
    *,
    ion_mode: str,
    abundance: str = "raw",
    injections: pd.DataFrame | None = None,
) -> MetaboliteTable:
    """Read a Progenesis QI compound export (see module docstring); ``abundance`` is ``raw`` or ``normalised``."""
    file = Path(path)
    if abundance not in PROGENESIS_BLOCKS:
        raise ValueError(f"abundance must be one of {sorted(PROGENESIS_BLOCKS)}")
    head = _head_lines(file, 4)
    sep = _sniff_sep(file, head)
    rows = _split(head[:3], sep)
    if len(rows) < 3:
        raise ContractViolation(file, "file too short for a Progenesis QI export", expected="3 header rows")
    header = rows[2]
    width = len(header)
    labels = rows[0] + [""] * (width - len(rows[0]))
    conditions = rows[1] + [""] * (width - len(rows[1]))
    for required in ("Compound", "m/z", "Retention time (min)"):
        if _find(header, required) is None:
            raise ContractViolation(
                file, f"header lacks {required!r}", expected="Progenesis QI column names on line 3", row=3
            )
    starts = [i for i, cell in enumerate(labels) if cell]
    blocks: dict[str, tuple[int, int]] = {}
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else None
        if end is None:
            if blocks:
                first_start, first_end = next(iter(blocks.values()))
                end = start + (first_end - first_start)
            else:
                later = [i for i in range(start + 1, width) if _find([header[i]], *PROGENESIS_ANNOTATION) is not None]
                end = later[0] if later else width
        key = next(
            (k2 for k2, names in PROGENESIS_BLOCKS.items() if labels[start].lower() in names), labels[start].lower()
        )
        blocks[key] = (start, min(end, width))
    if abundance not in blocks:
        raise ContractViolation(
            file,
            f"no {PROGENESIS_BLOCKS[abundance][0]!r} block in line 1 (found {[labels[s] for s in starts]})",
            expected="block labels 'Normalised abundance' / 'Raw abundance' above the sample columns",
            row=1,
        )
    start, end = blocks[abundance]
    sample_positions = list(range(start, end))
    _check_duplicate_columns(header, sample_positions, file, 3)
    sample_names = [header[p] for p in sample_positions]
    for other, (o_start, o_end) in blocks.items():
        if (
            other in PROGENESIS_BLOCKS
            and other != abundance
            and [header[p] for p in range(o_start, o_end)] != sample_names
        ):
            raise ContractViolation(
                file,
                f"the {other} and {abundance} blocks do not list the same samples",
                expected="sample names repeated once per abundance block",
                row=3,
            )
    block_positions = {p for s, e in blocks.values() for p in range(s, e)}
    text_positions = [p for p in range(width) if p not in block_positions]
    condition = pd.Series([c if c else None for c in conditions[start:end]], dtype="str").ffill()
    inj = pd.DataFrame(
        {
            "injection_id": pd.Series(sample_names, dtype="str"),
            "source_column": np.asarray(sample_positions) + 1,
            "class_label": condition,
        }
    )
    inj["sample_type"] = infer_sample_types(inj["injection_id"], inj["class_label"])
    text, values, lines = _read_body(
        file,
        file=file,
        sep=sep,
        skiprows=3,
        first_line=4,
        text_positions=text_positions,
        value_positions=sample_positions,
        names=header,
    )
    mode = normalise_ion_mode(ion_mode, file=file)
    get = {
        name: (header[p] if (p := _find(header, name)) is not None else None)
        for name in (
            "Compound",
            "m/z",
            "Retention time (min)",
            "Accepted Compound ID",
            "Accepted Description",
            "Description",
            "Formula",
            "Score",
            "Fragmentation Score",
        )
    }
    taken = {c for c in (get["Compound"], get["m/z"], get["Retention time (min)"]) if c}
    kegg = hmdb = None
    if get["Accepted Compound ID"]:
        accepted = text[get["Accepted Compound ID"]]
        hmdb = accepted.where(accepted.str.match(HMDB_FORM.pattern).fillna(False).astype(bool)).to_numpy(dtype=object)
        kegg = accepted.where(accepted.str.match(KEGG_FORM.pattern).fillna(False).astype(bool)).to_numpy(dtype=object)
    name_col = get["Accepted Description"] or get["Description"]
    evidence = None
    scored = [c for c in (get["Score"], get["Fragmentation Score"]) if c]
    if scored:
        pieces = [(c + "=" + text[c]).fillna("") for c in scored]
        joined = pieces[0] if len(pieces) == 1 else pieces[0].str.cat(pieces[1:], sep="; ")
        joined = joined.str.strip("; ")
        evidence = joined.where(joined.str.len() > 0).to_numpy(dtype=object)
    for c in (name_col, get["Formula"]):
        if c:
            taken.add(c)
    return _finish(
        file=file,
        vendor="progenesis",
        text=text,
        values=values,
        lines=lines,
        columns={
            "feature_id": text[get["Compound"]].to_numpy(dtype=object),
            "ion_mode": _ion_mode_array(mode, len(text)),
            "mz": _numeric(text, get["m/z"], lines, file),
            "rt_min": _numeric(text, get["Retention time (min)"], lines, file),
            "name": None if name_col is None else text[name_col].to_numpy(dtype=object),
            "formula": None if get["Formula"] is None else text[get["Formula"]].to_numpy(dtype=object),
            "kegg_id": kegg,
            "hmdb_id": hmdb,
            "evidence": evidence,
        },
        taken=taken,
        injections=inj,
        injection_list=injections,
    )


# ---------------------------------------------------------------------------------------------- XCMS

XCMS_DEFINITION = {
    "name",
    "fold",
    "tstat",
    "pvalue",
    "anova",
    "mzmed",
    "mzmin",
    "mzmax",
    "rtmed",
    "rtmin",
    "rtmax",
    "mz",
    "rt",
    "npeaks",
    "peakidx",
    "ms_level",
    "isotopes",
    "adduct",
    "pcgroup",
    "feature_id",
    "featureid",
    "row.names",
}


def read_xcms(
    path: str | Path,
    *,
    ion_mode: str,
    sample_columns: Sequence[str] | None = None,
    injections: pd.DataFrame | None = None,
) -> MetaboliteTable:
    """Read an XCMS feature table (see module docstring). RT seconds -> ``rt_min``."""
    file = Path(path)
    head = _head_lines(file, 3)
    if len(head) < 2:
        raise ContractViolation(file, "XCMS table without data rows", expected="a header and feature rows")
    sep = _sniff_sep(file, head)
    rows = _split(head[:2], sep)
    header = rows[0]
    if len(rows[1]) == len(header) + 1:  # write.table(row.names=TRUE): header lacks the row-name cell
        header = ["", *header]
    has_rownames = header[0] == ""
    lower = [h.lower() for h in header]
    mz_name = "mzmed" if "mzmed" in lower else "mz" if "mz" in lower else None
    rt_name = "rtmed" if "rtmed" in lower else "rt" if "rt" in lower else None
    if mz_name is None or rt_name is None:
        raise ContractViolation(
            file, "header lacks mzmed/mz or rtmed/rt", expected="an XCMS featureDefinitions/peakTable header", row=1
        )
    candidates = [i for i, h in enumerate(lower) if h not in XCMS_DEFINITION and not (has_rownames and i == 0)]
    if sample_columns is not None:
        wanted = list(sample_columns)
        sample_positions = []
        for name in wanted:
            if name not in header:
                raise ContractViolation(
                    file, f"sample column {name!r} not found", expected="a column of the header", row=1
                )
            sample_positions.append(header.index(name))
    elif injections is not None:
        listed = set(injections["injection_id"].astype("str"))
        sample_positions = [i for i in candidates if header[i] in listed]
        if not sample_positions:
            raise ContractViolation(
                file, "no column of the injection list is in the file", expected="injection columns", row=1
            )
        unknown = [i for i in candidates if i > sample_positions[0] and header[i] not in listed]
        if unknown:
            raise ContractViolation(
                file,
                f"unknown injection {header[unknown[0]]!r} is not in the injection list",
                expected="every intensity column listed in the injection list",
                row=1,
                column=header[unknown[0]],
            )
    else:
        sample_positions = [i for i in candidates if RAW_FILE_SUFFIX.search(header[i])]
        if not sample_positions:
            raise ContractViolation(
                file,
                "cannot tell injection columns from XCMS class-count columns",
                expected="sample_columns=..., an injection list, or injection columns named after raw files "
                "(.mzML ...)",
                row=1,
            )
    _check_duplicate_columns(header, sample_positions, file, 1)
    text_positions = [i for i in range(len(header)) if i not in set(sample_positions)]
    text, values, lines = _read_body(
        file,
        file=file,
        sep=sep,
        skiprows=1,
        first_line=2,
        text_positions=text_positions,
        value_positions=sample_positions,
        names=[h if h or i else "row.names" for i, h in enumerate(header)],
    )
    mode = normalise_ion_mode(ion_mode, file=file)
    mz_col, rt_col = header[lower.index(mz_name)], header[lower.index(rt_name)]
    taken = {mz_col, rt_col}
    if has_rownames:
        ids = text["row.names"].to_numpy(dtype=object)
        taken.add("row.names")
    elif "name" in lower:
        ids = text[header[lower.index("name")]].to_numpy(dtype=object)
        taken.add(header[lower.index("name")])
    else:
        ids = np.array([f"F{i:05d}" for i in range(1, len(text) + 1)], dtype=object)
    rt_seconds = _numeric(text, rt_col, lines, file)
    inj = pd.DataFrame(
        {
            "injection_id": pd.Series([header[p] for p in sample_positions], dtype="str"),
            "source_column": np.asarray(sample_positions) + 1,
        }
    )
    inj["sample_type"] = infer_sample_types(inj["injection_id"])
    return _finish(
        file=file,
        vendor="xcms",
        text=text,
        values=values,
        lines=lines,
        columns={
            "feature_id": ids,
            "ion_mode": _ion_mode_array(mode, len(text)),
            "mz": _numeric(text, mz_col, lines, file),
            "rt_min": None if rt_seconds is None else rt_seconds / 60.0,
        },
        taken=taken,
        injections=inj,
        injection_list=injections,
    )


# ---------------------------------------------------------------------------------------------- mwTab


def read_mwtab(
    path: str | Path,
    *,
    ion_mode: str | None = None,
    injections: pd.DataFrame | None = None,
) -> MetaboliteTable:
    """Read a Metabolomics Workbench mwTab text file (MS data; see module docstring)."""
    file = Path(path)
    with _open_text(file) as handle:
        lines = handle.read().splitlines()
    if not lines or not lines[0].startswith("#METABOLOMICS WORKBENCH"):
        raise ContractViolation(file, "not an mwTab file", expected="first line '#METABOLOMICS WORKBENCH ...'", row=1)
    stripped = [line.strip() for line in lines]

    def marker(name: str) -> int:
        try:
            return stripped.index(name)
        except ValueError:
            raise ContractViolation(file, f"no {name} line", expected=f"an {name} line (mwTab MS data block)") from None

    start, end = marker("MS_METABOLITE_DATA_START"), marker("MS_METABOLITE_DATA_END")
    if end <= start + 1:
        raise ContractViolation(
            file, "empty MS_METABOLITE_DATA block", expected="Samples header and rows", row=start + 1
        )
    header = [c.strip() for c in lines[start + 1].split("\t")]
    if header[0].lower() != "samples":
        raise ContractViolation(
            file, f"data block starts with {header[0]!r}", expected="'Samples' header", row=start + 2
        )
    skip = 1
    if end > start + 2 and lines[start + 2].split("\t", 1)[0].strip().lower() == "factors":
        skip = 2
    sample_positions = list(range(1, len(header)))
    while sample_positions and header[sample_positions[-1]] == "":
        sample_positions.pop()  # trailing tab
    _check_duplicate_columns(header, sample_positions, file, start + 2)
    block = io.StringIO("\n".join(lines[start + 1 + skip : end]))
    text, values, rows = _read_body(
        block,
        file=file,
        sep="\t",
        skiprows=0,
        first_line=start + 2 + skip,
        text_positions=[0],
        value_positions=sample_positions,
        names=["metabolite_name", *header[1:]],
    )
    mode_line = next((s for s in stripped if s.startswith("MS:ION_MODE")), None)
    stated = None
    if mode_line is not None:
        stated = normalise_ion_mode(
            mode_line.split(None, 1)[1] if " " in mode_line or "\t" in mode_line else "", file=file
        )
    if stated is not None and ion_mode is not None and normalise_ion_mode(ion_mode, file=file) != stated:
        raise ContractViolation(
            file,
            f"ion mode {ion_mode!r} was requested but the file states {stated}",
            expected="the ion mode of MS:ION_MODE",
            row=stripped.index(mode_line) + 1 if mode_line is not None else None,
        )
    mode = _resolve_ion_mode(ion_mode, file, inferred=stated)

    # subject/sample factors: a handful of lines, one per sample
    ssf = [line.split("\t") for line in lines if line.startswith("SUBJECT_SAMPLE_FACTORS")]
    ssf_frame = pd.DataFrame(
        [
            (
                r[2].strip() if len(r) > 2 else "",
                r[1].strip() if len(r) > 1 else "",
                r[3].strip() if len(r) > 3 else "",
                r[4].strip() if len(r) > 4 else "",
            )
            for r in ssf
        ],
        columns=["injection_id", "subject", "factors", "additional"],
    )
    ssf_frame = ssf_frame.drop_duplicates("injection_id")
    ids = pd.Series([header[p] for p in sample_positions], dtype="str")
    meta = ssf_frame.set_index("injection_id").reindex(ids)
    factor_values = (
        meta["factors"]
        .fillna("")
        .str.split("|")
        .map(lambda parts: " | ".join(p.split(":", 1)[-1].strip() for p in parts if p.strip()))
    )
    inj = pd.DataFrame(
        {
            "injection_id": ids,
            "source_column": np.asarray(sample_positions) + 1,
            "subject": meta["subject"].to_numpy(dtype=object),
            "factors": meta["factors"].to_numpy(dtype=object),
            "class_label": factor_values.to_numpy(dtype=object),
            "raw_file": meta["additional"].str.extract(r"RAW_FILE_NAME=([^;\t]+)", expand=False).to_numpy(dtype=object),
        }
    )
    inj["sample_type"] = infer_sample_types(inj["injection_id"], inj["class_label"])

    annotation = _mwtab_metabolites(file, lines, stripped)
    names = text["metabolite_name"]
    columns: dict[str, object] = {
        "feature_id": names.to_numpy(dtype=object),
        "ion_mode": _ion_mode_array(mode, len(text)),
        "name": names.to_numpy(dtype=object),
    }
    taken = {"metabolite_name"}
    if annotation is not None:
        joined = annotation.reindex(names.str.strip())
        mapping = {
            "mz": ("moverz_quant", "m/z", "mz", "quantified m/z", "moverz"),
            "rt_min": ("retention_time", "rt", "ret_time", "retention time", "rt_min"),
        }
        used: list[str] = []
        for target, aliases in mapping.items():
            pos = _find(list(joined.columns), *aliases)
            if pos is not None:
                columns[target] = pd.to_numeric(joined.iloc[:, pos], errors="coerce").to_numpy(dtype="float64")
                used.append(joined.columns[pos])
        for target, aliases in OPTIONAL_ALIASES.items():
            pos = _find(list(joined.columns), *aliases)
            if pos is not None:
                columns[target] = joined.iloc[:, pos].to_numpy(dtype=object)
                used.append(joined.columns[pos])
        # METABOLITES columns not mapped (pubchem_id, inchi_key, ...) stay as vendor columns
        text = pd.concat([text, joined.reset_index(drop=True).add_prefix("metabolites:")], axis=1)
        taken |= {f"metabolites:{c}" for c in used}
    return _finish(
        file=file,
        vendor="mwtab",
        text=text,
        values=values,
        lines=rows,
        columns=columns,
        taken=taken,
        injections=inj,
        injection_list=injections,
    )


def _mwtab_metabolites(file: Path, lines: list[str], stripped: list[str]) -> pd.DataFrame | None:
    if "METABOLITES_START" not in stripped:
        return None
    start = stripped.index("METABOLITES_START")
    end = stripped.index("METABOLITES_END") if "METABOLITES_END" in stripped else len(lines)
    if end <= start + 1:
        return None
    frame = pd.read_csv(
        io.StringIO("\n".join(lines[start + 1 : end])),
        sep="\t",
        dtype="str",
        keep_default_na=False,
        na_values=list(NA_STRINGS),
        engine="c",
    )
    frame.columns = [str(c).strip() for c in frame.columns]
    key = frame.iloc[:, 0].str.strip()
    frame = frame.iloc[:, 1:].set_axis(pd.Index(key, name="metabolite_name"), axis=0)
    return frame[~frame.index.duplicated()]


# ---------------------------------------------------------------------------------------------- dispatch

READERS = {"msdial": read_msdial, "progenesis": read_progenesis, "xcms": read_xcms, "mwtab": read_mwtab}


def detect_vendor(path: str | Path) -> str:
    """Guess the export format from its first lines (``msdial``, ``progenesis``, ``xcms`` or ``mwtab``)."""
    file = Path(path)
    head = _head_lines(file, 5)
    if head and head[0].startswith("#METABOLOMICS WORKBENCH"):
        return "mwtab"
    sep = _sniff_sep(file, head)
    rows = _split(head, sep)
    if rows and _find(rows[0], "Class") is not None and len(rows) >= 5 and _find(rows[4], "Alignment ID") is not None:
        return "msdial"
    if (
        len(rows) >= 3
        and _find(rows[2], "Compound") is not None
        and any(c.lower() in ("normalised abundance", "normalized abundance", "raw abundance") for c in rows[0])
    ):
        return "progenesis"
    first = {c.lower() for c in rows[0]} if rows else set()
    if {"mzmed", "rtmed"} <= first or {"mz", "rt", "npeaks"} <= first:
        return "xcms"
    raise ContractViolation(
        file, "unrecognised metabolomics export", expected="MS-DIAL, Progenesis QI, XCMS or mwTab layout", row=1
    )


def read_vendor_export(path: str | Path, vendor: str | None = None, **options: object) -> MetaboliteTable:
    """Read ``path`` with the reader for ``vendor`` (detected from the file when ``None``)."""
    kind = vendor or detect_vendor(path)
    if kind not in READERS:
        raise ValueError(f"unknown vendor {kind!r}; expected one of {sorted(READERS)}")
    return READERS[kind](path, **options)  # type: ignore[operator]
