"""Reading one CRF form export (CSV, comma-delimited, header row of CDASH names) as delivered.

Values stay text exactly as delivered (no trimming, no missing-value mapping: that is staging's job), so
the raw layer is a faithful copy of the EDC export. Header names are compared case- and
space-insensitively and stored upper-case, as CDASH names are.

Parsing uses Arrow's C++ CSV reader on the whole file at once (not Python's csv module row by row); it
reports malformed records with their record number, which pandas cannot do for short rows. Row numbers
count records, header = row 1; blank lines are not counted.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from analysis import contract
from analysis.errors import ContractViolation
from analysis.readers._csv import check_column_names
from analysis.readers._text import GZIP_MAGIC, clip, gunzip, to_utf8

#: A CRF export larger than this is not a CRF export (protects memory against runaway or hostile files).
MAX_CRF_BYTES = 512 * 1024 * 1024
#: A CRF form has tens of columns; extra columns are kept in raw, so a header of thousands is refused.
MAX_CRF_COLUMNS = 1000


def read_bytes(path: Path, display_name: str, limit: int = MAX_CRF_BYTES) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz`` (bounded, so a gzip bomb cannot exhaust memory)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise ContractViolation(display_name, f"file is larger than {limit // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise ContractViolation(
            display_name, f"cannot read the file: {exc.strerror or exc}", "a readable (optionally gzipped) file"
        ) from None
    if path.name.lower().endswith(".gz"):
        if data[:2] != GZIP_MAGIC:
            raise ContractViolation(
                display_name, "cannot read the file: the name ends in .gz but it is not gzip data", "gzip content"
            )
        try:
            data = gunzip(display_name, data, limit=limit)
        except ContractViolation as exc:
            exc.problem = f"cannot read the file: {exc.problem}"
            raise
    return data


def decode_text(data: bytes, display_name: str) -> str:
    """The export as text under the contract's encoding policy (``analysis.contract.TEXT_ENCODING_TOKENS``):
    UTF-8 with or without BOM, UTF-16 with BOM, GB18030 when the file name declares it; anything else, NUL
    bytes and CR-only line ends are rejected naming the line."""
    return to_utf8(display_name, data).decode("utf-8")


def _header(text: str, display_name: str) -> list[str]:
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if not first_line.strip():
        raise ContractViolation(display_name, "the file is empty or its first line is blank", "a header row", row=1)
    try:
        names = next(csv.reader([first_line]))
    except csv.Error as exc:
        raise ContractViolation(display_name, f"unreadable header: {exc}", row=1) from exc
    return [re.sub(r"\s+", "", name).upper() for name in names]


def read_crf_csv(path: Path, display_name: str, form: contract.CrfForm) -> pd.DataFrame:
    """One CRF export as a DataFrame of strings, plus ``_row_number`` (the line in the file; header = 1).

    Raises ``ContractViolation`` naming the file, line and column for: unreadable or non-text files,
    embedded NUL bytes, a wrong delimiter, duplicate or missing required columns, and rows with more or
    fewer fields than the header.
    """
    text = decode_text(read_bytes(path, display_name), display_name)
    header = _header(text, display_name)
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delimiter in text.split("\n", 1)[0]:
                raise ContractViolation(
                    display_name, f"the header is split by {label}s, not commas", "comma-separated values", row=1
                )
    # extra columns are kept in raw under their own names: they must be safe identifiers (no quote, no
    # control character, not a lineage name such as _ROW_NUMBER) and a form has tens of columns, not thousands
    check_column_names(display_name, header, 1, max_columns=MAX_CRF_COLUMNS)
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            raise ContractViolation(display_name, f"header column {position} has no name", "a CDASH name", row=1)
        if name in seen:
            raise ContractViolation(
                display_name,
                "duplicate column",
                "each column once",
                row=1,
                column=name if len(name) <= 60 else clip(name),
            )
        seen.add(name)
    missing = [c for c in form.required if c not in seen]
    if missing:
        raise ContractViolation(
            display_name,
            f"missing required column(s) {', '.join(missing)} for form '{form.code}' ({form.title})",
            f"columns {', '.join(form.required)}",
            row=1,
            column=missing[0],
        )
    invalid: list[tuple[int | None, int, int]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        invalid.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    payload = text.encode("utf-8")
    try:
        table = pa_csv.read_csv(
            io.BytesIO(payload),
            # One block for the whole file: with quoted newlines allowed, Arrow refuses a record that straddles
            # a block boundary, so a long free-text field (an AE narrative, a 10 MB paste) must fit one block.
            read_options=pa_csv.ReadOptions(
                use_threads=False, column_names=header, skip_rows=1, block_size=max(1 << 20, len(payload) + 1)
            ),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ContractViolation(
            display_name, f"not a valid CSV file: {clip(str(exc), 300)}", "comma-separated values"
        ) from None
    if invalid:
        number, expected, actual = invalid[0]
        raise ContractViolation(
            display_name,
            f"row has {actual} fields" + (f" ({len(invalid)} such rows)" if len(invalid) > 1 else ""),
            f"{expected} fields as in the header",
            # pyarrow counts the skipped header record too, so its number is already the file's row number.
            row=number if number is not None and number >= 1 else None,
        )
    frame = table.to_pandas()
    frame["_row_number"] = pd.RangeIndex(2, len(frame) + 2)
    return frame.reset_index(drop=True)
