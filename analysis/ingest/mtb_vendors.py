"""Vendor metabolomics exports in a landing batch folder -> the same raw tables as the generic wide table.

A file in ``metabolomics/<batch>/`` that :func:`analysis.metabolomics.vendors.detect_vendor` recognises as an
MS-DIAL alignment export, a Progenesis QI compound export, an XCMS feature table or a Metabolomics
Workbench mwTab file is read by that vendor's reader (``omics.md`` §7.1) and written to

* ``raw.mtb_features``: one row per feature, the contract's annotation columns as text (``mz`` and
  ``rt_min`` as the reader parsed them; XCMS seconds are already minutes), ``ion_mode`` as POS/NEG, plus
  ``vendor_annotation``: the export's other annotation columns (adduct, InChIKey, scores, ...) as one JSON
  object per feature, so nothing delivered is lost. ``_row_number`` is the feature's line in the file.
* ``raw.mtb_intensities``: long, observed values only — exactly as the generic path writes them.
* ``raw.mtb_injections``: only when the batch folder has **no** ``injections.csv`` and the export itself
  carries per-injection metadata (MS-DIAL class/file type/injection order/batch; Progenesis conditions;
  mwTab sample factors). ``sample_type`` follows MetaboAnalyst's rules
  (:func:`analysis.metabolomics.table.infer_sample_types`); ``specimen_barcode`` and ``matrix`` are left
  empty (an export does not state them), so the study samples of such a batch show up as ``NO_BARCODE`` in
  ``marts.unlinked_omics_samples`` until an injection list is delivered. Extra columns: ``class_label``,
  ``file_type`` (MS-DIAL), ``subject``/``factors``/``raw_file`` (mwTab), ``source_column``. When several
  exports of one batch carry the same injections (POS and NEG of one run), the injections are written once:
  by the first file loaded; a later export of the batch adds only injections not yet current for it.

When the batch has an ``injections.csv``, it is passed to the reader: every intensity column must be
listed there (an unknown injection rejects the file, naming the column), and for XCMS it tells the
injection columns from XCMS's class-count columns.

The **ion mode** is part of the feature key. MS-DIAL infers it from the adducts and mwTab states it
(``MS:ION_MODE``); Progenesis and XCMS exports do not carry it, so it is taken from the file name: a
``pos``/``positive`` or ``neg``/``negative`` token (``xcms_pos.csv``, ``QI-negative.csv``). A file name
token that contradicts the file's own statement is a contract violation, as is a Progenesis/XCMS file
whose name has no (or both) tokens; so is an MS-DIAL file named ``..._neg`` whose adducts are all
positive (``[M+H]+``), or the reverse.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import json
import re
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.errors import ContractViolation
from analysis.ingest.landing import LandingFile, strip_encoding_token, strip_gz
from analysis.readers._csv import MAX_TABLE_COLUMNS
from analysis.readers._text import (
    GZIP_MAGIC,
    UTF16_BOMS,
    check_utf8_text,
    clip,
    declared_encoding,
    gunzip,
    index_records,
    read_raw,
    sep_name,
    to_utf8,
    transcode,
)

VENDOR_FORMATS: tuple[str, ...] = ("msdial", "progenesis", "xcms", "mwtab")
#: Vendors whose exports do not state the ion mode: it must come from the file name.
MODE_FROM_NAME_ONLY: frozenset[str] = frozenset({"progenesis", "xcms"})
_MODE_TOKENS = {"pos": "POS", "positive": "POS", "neg": "NEG", "negative": "NEG"}
#: Per-injection metadata an export may carry; with any of them (and no injections.csv) injections are written.
_CARRIED = ("class_label", "file_type", "run_order", "batch", "factors")


#: What a vendor reader (``analysis.metabolomics.vendors``) may raise on a damaged export besides a
#: ContractViolation: csv/pandas parse errors, a missing expected column, bad gzip, undecodable text.
_VENDOR_ERRORS: tuple[type[Exception], ...] = (
    csv.Error,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    OSError,
    EOFError,
    zlib.error,
)
_VENDOR_NAMES = {"msdial": "MS-DIAL", "progenesis": "Progenesis QI", "xcms": "XCMS", "mwtab": "mwTab"}
#: Longest rejection text kept (vendor messages may echo a delivered value, and a value may be 10 MB).
_MAX_MESSAGE = 1000


def _head(path: Path, n: int = 2) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.read(n)


def _check_width(display: str, data: bytes) -> None:
    """Refuse any line wider than ``MAX_TABLE_COLUMNS`` fields (tab- or comma-separated) before a vendor reader
    spends minutes on its columns: mwTab blocks and MS-DIAL preambles are not on the first line only."""
    for sep in ("\t", ","):
        rec = index_records(data, sep)  # physical lines, separators counted even inside quotes: an upper bound
        wide = np.flatnonzero(rec.nfields > MAX_TABLE_COLUMNS)
        if len(wide):
            i = int(wide[0])
            raise ContractViolation(
                display,
                f"a line with {int(rec.nfields[i]):,} {sep_name(sep)}-separated fields",
                expected=f"at most {MAX_TABLE_COLUMNS:,} columns",
                row=int(rec.lines[i]),
            )


#: Line of the column header in each vendor layout (mwTab: found from its block markers).
_HEADER_LINE = {"msdial": 5, "progenesis": 3, "xcms": 1}
_MWTAB_BLOCKS = ((b"MS_METABOLITE_DATA_START", b"MS_METABOLITE_DATA_END"), (b"METABOLITES_START", b"METABOLITES_END"))


def _vendor_sep(name: str, data: bytes) -> str:
    """The separator the vendor readers use: by extension, else the more frequent of tab and comma."""
    base = strip_gz(name).lower()
    if base.endswith(".csv"):
        return ","
    if base.endswith((".tsv", ".tab")):
        return "\t"
    head = b"\n".join(data[: 1 << 20].split(b"\n", 5)[:5])
    return "\t" if head.count(b"\t") >= head.count(b",") else ","


def _check_layout(display: str, data: bytes, vendor: str, name: str) -> None:
    """Every data row of the export's table has the same number of fields, and as many as its header.

    The vendor readers parse with pandas, which treats extra leading fields of the *first* data row as an
    index and silently shifts every column; a ragged row is therefore refused here, naming its line. An
    XCMS table written by R's write.table has one more field per row than its header (the row names).
    """
    sep = _vendor_sep(name, data)
    rec = index_records(data, sep, quoted=True)
    blocks: list[tuple[int, int]] = []  # (header record, end record) per table
    if vendor == "mwtab":
        tags = [rec.text(i).strip() for i in range(len(rec))] if len(rec) < 1_000_000 else []
        for start, end in _MWTAB_BLOCKS:
            if start in tags:
                first = tags.index(start) + 1
                stop = tags.index(end) if end in tags[first:] else len(tags)
                blocks.append((first, stop))
    else:
        header = np.flatnonzero(rec.lines == _HEADER_LINE[vendor])
        if len(header):
            blocks.append((int(header[0]), len(rec)))
    for first, stop in blocks:
        if stop - first < 2:
            continue
        width = int(rec.nfields[first])
        body = rec.nfields[first + 1 : stop]
        allowed = (width, width + 1) if vendor == "xcms" else (width,)
        values, counts = np.unique(body, return_counts=True)
        usual = int(values[np.argmax(counts)])  # the width most rows have: the odd row out is the fault
        bad = np.flatnonzero(body != usual) if usual in allowed else np.flatnonzero(~np.isin(body, allowed))
        if len(bad):
            i = first + 1 + int(bad[0])
            raise ContractViolation(
                display,
                f"ragged row: {int(rec.nfields[i])} {sep_name(sep)}-separated fields where the header (line "
                f"{int(rec.lines[first])}) has {width}" + (f" and the other rows {usual}" if usual != width else ""),
                expected="one field per header column on every row",
                row=int(rec.lines[i]),
            )


@contextlib.contextmanager
def _utf8_source(path: Path, display: str, validate: bool, vendor: str | None = None) -> Iterator[Path]:
    """The export as a UTF-8 file for the vendor readers (which read paths as UTF-8 themselves).

    UTF-16 (with BOM) and declared GB18030 exports are transcoded into a temporary copy with the same name
    (the ion-mode token stays readable); other files are passed through, after the contract's text checks
    (encoding, NUL bytes, line ends) when ``validate`` is set, so those faults are named by line.
    """
    if _head(path)[:2] not in UTF16_BOMS and declared_encoding(path) is None:
        if validate:
            raw = read_raw(path)
            text = check_utf8_text(display, gunzip(display, raw) if raw[:2] == GZIP_MAGIC else raw)
            _check_width(display, text)
            if vendor is not None:
                _check_layout(display, text, vendor, path.name)
        yield path
        return
    raw = read_raw(path)
    data = to_utf8(display, gunzip(display, raw) if raw[:2] == GZIP_MAGIC else raw)
    if validate:
        _check_width(display, data)
        if vendor is not None:
            _check_layout(display, data, vendor, path.name)
    with tempfile.TemporaryDirectory(prefix="guttrial-mtb-") as tmp:
        copy = Path(tmp) / strip_gz(path.name)
        copy.write_bytes(data)
        yield copy


def detect_export(path: Path) -> str | None:
    """The vendor of a metabolomics export, or ``None`` for anything else (e.g. the generic wide table).

    Never raises: a file that cannot even be sniffed goes to the generic reader, which rejects it by line.
    """
    from analysis.metabolomics.vendors import detect_vendor

    try:
        with _utf8_source(path, str(path), validate=False) as source:
            return detect_vendor(source)
    except (ContractViolation, UnicodeDecodeError, *_VENDOR_ERRORS):
        return None


def ion_mode_from_name(name: str) -> str | None:
    """``POS``/``NEG`` from a ``pos``/``positive``/``neg``/``negative`` token of the file name, else ``None``."""
    tokens = re.split(r"[^a-z0-9]+", strip_gz(name).lower())
    modes = {_MODE_TOKENS[t] for t in tokens if t in _MODE_TOKENS}
    return modes.pop() if len(modes) == 1 else None


def _landing_root(file: LandingFile) -> Path:
    return file.path.parents[len(PurePosixPath(file.relpath).parts) - 1]


def batch_injection_list(file: LandingFile) -> pd.DataFrame | None:
    """The batch's ``injections.csv`` (all of them, first listing wins), or ``None`` if absent or unreadable.

    An unreadable list is rejected on its own row of the load manifest; here it only means "no list".
    """
    from analysis.readers import read_injection_list

    if file.batch_id is None:
        return None
    batch_dir = _landing_root(file) / "metabolomics" / file.batch_id
    lists = sorted(
        p
        for p in batch_dir.rglob("*")
        if p.is_file()
        and strip_encoding_token(strip_gz(p.name).lower()) == "injections.csv"
        and not any(part.startswith(".") or part.endswith("~") for part in p.relative_to(batch_dir).parts)
    )
    frames = []
    for path in lists:
        try:
            frames.append(read_injection_list(path))
        except ContractViolation:
            continue
    if not frames:
        return None
    listed = pd.concat(frames, ignore_index=True)
    return listed.drop_duplicates("injection_id", keep="first").reset_index(drop=True)


def read_export(file: LandingFile, vendor: str, injections: pd.DataFrame | None):  # -> MetaboliteTable
    """Read one vendor export with the ion mode and injection list of the landing conventions above."""
    from analysis.metabolomics.vendors import READERS

    mode = ion_mode_from_name(file.path.name)
    if mode is None and vendor in MODE_FROM_NAME_ONLY:
        raise ContractViolation(
            file.relpath,
            f"a {vendor} export does not state its ion mode and the file name does not either",
            expected="'pos'/'positive' or 'neg'/'negative' as a token of the file name (e.g. xcms_pos.csv)",
        )
    options: dict[str, object] = {"ion_mode": mode}
    if injections is not None:
        options["injections"] = injections
    try:
        with _utf8_source(file.path, file.relpath, validate=True, vendor=vendor) as source:
            table = READERS[vendor](source, **options)
    except ContractViolation as exc:
        exc.file = file.relpath
        if exc.column is not None and not str(exc.column).strip():
            exc.column, exc.problem = None, f"{exc.problem} (in a column without a name)"
        elif exc.column is not None and len(str(exc.column)) > 120:
            exc.column = clip(str(exc.column), 120)
        if len(exc.problem) > _MAX_MESSAGE:
            exc.problem = exc.problem[:_MAX_MESSAGE] + "... (message shortened)"
        raise
    except _VENDOR_ERRORS as exc:
        # A layout the vendor reader does not cope with: reject the file rather than crash the load.
        raise ContractViolation(
            file.relpath,
            f"unreadable {_VENDOR_NAMES[vendor]} export ({type(exc).__name__}: {clip(str(exc), 200)})",
            expected=f"an unmodified {_VENDOR_NAMES[vendor]} export",
        ) from None
    table = dataclasses.replace(table, source=str(file.path))
    if vendor == "msdial" and mode is not None and "Adduct type" in table.vendor_columns.columns:
        tails = table.vendor_columns["Adduct type"].dropna().astype(str).str.strip().str[-1]
        stated = set(tails.map({"+": "POS", "-": "NEG"}).dropna())
        if len(stated) == 1 and stated != {mode}:
            raise ContractViolation(
                file.relpath,
                f"the file name says ion mode {mode} but every adduct is {stated.pop()}",
                expected="the ion mode of the file name to agree with the exported adducts",
                column="Adduct type",
            )
    return table


def _text(values: pd.Series) -> pd.Series:
    """Any column as text (floats in Python's shortest repr, e.g. ``147.0764``), missing as None."""
    series = pd.Series(values).reset_index(drop=True)
    present = series.notna().to_numpy(dtype=bool)
    if pd.api.types.is_float_dtype(series):
        text = [repr(float(v)) for v in series.to_numpy(dtype="float64", na_value=np.nan)]
    else:
        text = [str(v) for v in series.to_numpy(dtype=object)]
    return pd.Series(np.where(present, np.asarray(text, dtype=object), None), dtype=object)


def _json_rows(frame: pd.DataFrame) -> list[str | None]:
    if frame.shape[1] == 0 or len(frame) == 0:
        return [None] * len(frame)
    text = frame.astype(object).where(frame.notna(), None)
    return [json.dumps(row, ensure_ascii=False) for row in text.to_dict(orient="records")]


def _header_line(file: LandingFile, vendor: str) -> int:
    """Line of the export that names the injection columns (lineage of injection rows)."""
    if vendor == "msdial":
        return 5
    if vendor == "progenesis":
        return 3
    if vendor == "mwtab":
        with contextlib.suppress(ContractViolation, OSError, EOFError, zlib.error):
            raw = read_raw(file.path)
            text = transcode(file.relpath, gunzip(file.relpath, raw) if raw[:2] == GZIP_MAGIC else raw)
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip() == b"MS_METABOLITE_DATA_START":
                    return number + 1
    return 1


def _current_injections(con: duckdb.DuckDBPyConnection, file: LandingFile, load_id: str) -> set[str]:
    """Injection ids of the batch already written by *another* file: current versions or this load."""
    rows = con.execute(
        "select distinct t.injection_id from raw.mtb_injections t where t.batch_id = ? and t._source_file <> ? "
        "and (t._load_id = ? or exists (select 1 from raw.current_files c where c.path = t._source_file "
        "and c.sha256 = t._file_sha256 and c.load_id = t._load_id))",
        [file.batch_id, file.relpath, load_id],
    ).fetchall()
    return {r[0] for r in rows}


def load_vendor_export(
    con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str, vendor: str
) -> tuple[int, str]:
    """Load one vendor export of a metabolomics batch into ``raw`` (see module docstring)."""
    from analysis.ingest.loader import _constant, _dictionary, _insert_frame, _lineage
    from analysis.metabolomics.table import FEATURE_COLUMNS

    listed = batch_injection_list(file)
    table = read_export(file, vendor, listed)

    features = pd.DataFrame({c: _text(table.features[c]) for c in FEATURE_COLUMNS})
    features["vendor_annotation"] = _json_rows(table.vendor_columns)
    features["_row_number"] = table.features["source_row"].to_numpy(dtype=np.int64)
    features.insert(0, "batch_id", file.batch_id)
    _insert_frame(con, "mtb_features", _lineage(features, file, sha, load_id))

    values = table.intensities  # features x injections
    feature_idx, injection_idx = np.nonzero(~np.isnan(values))
    n = feature_idx.size
    long = pa.table(
        {
            "batch_id": _constant(file.batch_id, n),
            "feature_id": _dictionary(feature_idx, table.features["feature_id"].astype(str).tolist()),
            "ion_mode": _dictionary(feature_idx, table.features["ion_mode"].astype(str).tolist()),
            "injection_id": _dictionary(injection_idx, table.injection_ids),
            "intensity": pa.array(values[feature_idx, injection_idx]),
            "_source_file": _constant(file.relpath, n),
            "_row_number": pa.array(table.features["source_row"].to_numpy(dtype=np.int64)[feature_idx]),
            "_file_sha256": _constant(sha, n),
            "_load_id": _constant(load_id, n),
        }
    )
    con.register("_long", long)
    try:
        con.execute(
            "insert into raw.mtb_intensities select batch_id::varchar, feature_id::varchar, ion_mode::varchar, "
            "injection_id::varchar, intensity, _source_file::varchar, _row_number, _file_sha256::varchar, "
            "_load_id::varchar from _long"
        )
    finally:
        con.unregister("_long")

    meta = table.injections
    if listed is None and any(c in meta.columns for c in _CARRIED):
        injections = pd.DataFrame(
            {
                "batch_id": file.batch_id,
                "injection_id": meta["injection_id"].astype(str).to_numpy(dtype=object),
                "sample_type": np.asarray(table.sample_types(), dtype=object),
                "specimen_barcode": None,
                "matrix": None,
                "run_order": _text(meta["run_order"]).to_numpy(dtype=object) if "run_order" in meta else None,
                "batch": _text(meta["batch"]).to_numpy(dtype=object) if "batch" in meta else None,
            }
        )
        for extra in ("class_label", "file_type", "subject", "factors", "raw_file", "source_column"):
            if extra in meta.columns:
                injections[extra] = _text(meta[extra]).to_numpy(dtype=object)
        injections = injections[~injections["injection_id"].isin(_current_injections(con, file, load_id))]
        if len(injections):
            injections["_row_number"] = np.int64(_header_line(file, vendor))
            injections = injections.astype({c: "object" for c in injections.columns if c != "_row_number"})
            _insert_frame(con, "mtb_injections", _lineage(injections, file, sha, load_id))
    return n, vendor
