"""Delimited tables with a header row (manifests, injection lists, metabolomics feature tables).

CSV rules (RFC 4180): comma separated (tab for ``.tsv``/``.txt``), optional double quotes with ``""``
escaping, quoted fields may hold separators and newlines. Records and their field counts are found with
numpy (quote parity), so a ragged row is named by its line before pandas' C parser, which silently pads
short rows, ever sees it. Values are kept as delivered (strings), except the columns the caller asks to
be parsed as numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import ContractViolation
from analysis.readers._text import (
    base_name,
    check_delimiter,
    clip,
    index_records,
    load_bytes,
    ragged_error,
    sep_name,
    to_utf8,
)


@dataclass
class Delimited:
    header: list[str]  # as delivered, surrounding whitespace stripped
    frame: pd.DataFrame  # columns 0..n-1 (positions); str except the float columns
    lines: np.ndarray  # 1-based line on which each data row starts
    header_line: int


#: Widest delimited table read (metabolomics feature tables and vendor exports: one column per injection of
#: a batch, and a batch is at most a few hundred injections). pandas spends ~0.3-0.5 ms per column, so a
#: hostile line of a million separators would otherwise take minutes.
MAX_TABLE_COLUMNS = 10_000
#: Longest column name: names of extra columns become column names in ``raw``.
MAX_COLUMN_NAME = 128
#: Column names the loader adds to every raw table (lineage): a delivered column may not take them.
RESERVED_COLUMNS: frozenset[str] = frozenset({"batch_id", "source_row"})
_UNSAFE_NAME = re.compile(r'["\x00-\x1f\x7f]')


def check_column_names(
    path: str | Path, header: Sequence[str], header_line: int, *, max_columns: int = MAX_TABLE_COLUMNS
) -> None:
    """Refuse header names that cannot become column names of a raw table.

    Extra delivered columns are kept in ``raw`` under their own names, so a name must be usable as a quoted
    SQL identifier (no double quote, no control character, at most ``MAX_COLUMN_NAME`` characters), unique
    ignoring case (DuckDB identifiers are case-insensitive) and not one of the lineage columns (names
    starting with ``_``, ``batch_id``, ``source_row``). ``max_columns`` bounds the width. Names equal
    ignoring case are refused by :func:`match_columns`, after the contract columns are matched.
    """
    if len(header) > max_columns:
        raise ContractViolation(
            path,
            f"the header has {len(header):,} columns",
            expected=f"at most {max_columns:,} columns",
            row=header_line,
        )
    for i, name in enumerate(header):
        label = column_label(header, i)
        if _UNSAFE_NAME.search(name) or len(name) > MAX_COLUMN_NAME:
            raise ContractViolation(
                path,
                f"column name {clip(name)} contains a double quote or a control character, or is too long",
                expected=f"column names of at most {MAX_COLUMN_NAME} characters without quotes or control characters",
                row=header_line,
                column=label,
            )
        key = name.strip().lower()
        if key.startswith("_") or key in RESERVED_COLUMNS:
            raise ContractViolation(
                path,
                f"column name {clip(name)} is reserved for the warehouse's lineage columns",
                expected="column names not starting with '_' and other than batch_id, source_row",
                row=header_line,
                column=label,
            )


def default_sep(path: str | Path) -> str:
    name = base_name(path)
    return "\t" if name.endswith((".tsv", ".txt", ".xls", ".tab")) else ","


def read_delimited(
    path: str | Path,
    sep: str | None = None,
    *,
    float_columns=None,
    na_values: Sequence[str] = (),
    what: str = "table",
    max_columns: int = 1000,
) -> Delimited:
    """Read a whole delimited table. ``float_columns(header) -> positions`` are parsed as float64 with
    ``na_values`` as missing; any other text in them is rejected naming the row and column. Header names
    are checked by :func:`check_column_names` (at most ``max_columns``)."""
    sep = sep or default_sep(path)
    data = to_utf8(path, load_bytes(path))
    rec = index_records(data, sep, quoted=True)
    if len(rec) == 0:
        raise ContractViolation(path, f"empty {what}: the file has no lines", expected="a header row and data rows")
    header_line = int(rec.lines[0])
    header_text = rec.decoded(path, 0)
    try:
        header = [h.strip() for h in next(csv.reader([header_text], delimiter=sep))]
    except csv.Error as exc:  # e.g. a header cell over csv's 131,072-character field limit
        raise ContractViolation(
            path, f"unreadable header ({exc})", expected=f"a {sep_name(sep)}-separated header row", row=header_line
        ) from None
    check_delimiter(path, header_text, sep, header_line, len(header))
    check_column_names(path, header, header_line, max_columns=max_columns)
    body = rec.subset(slice(1, None))
    if len(body) == 0:
        raise ContractViolation(
            path, f"empty {what}: a header but no rows", expected="at least one data row", row=header_line
        )
    ragged_error(path, body, len(header), sep)
    floats: Collection[int] = set(float_columns(header)) if float_columns else set()
    names = list(range(len(header)))
    text = data[int(body.starts[0]) :]

    def parse(float_ok: bool) -> pd.DataFrame:
        dtype = {i: (np.float64 if (float_ok and i in floats) else str) for i in names}
        na = {i: list(na_values) if i in floats else [] for i in names}
        return pd.read_csv(
            io.BytesIO(text),
            sep=sep,
            header=None,
            names=names,
            dtype=dtype,
            engine="c",
            keep_default_na=False,
            na_values=na,
            quotechar='"',
            doublequote=True,
            skip_blank_lines=True,
            encoding="utf-8",
        )

    try:
        try:
            frame = parse(True)
        except ValueError:
            if not floats:
                raise
            frame = parse(False)
            _locate_non_numeric(path, frame, sorted(floats), header, body.lines, na_values)
            raise
    except UnicodeDecodeError as exc:
        raise ContractViolation(path, f"text is not valid UTF-8 ({exc.reason})", expected="UTF-8 text") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ContractViolation(
            path,
            f"cannot parse the {sep_name(sep)}-separated table ({exc})",
            expected=f"a {sep_name(sep)}-separated table",
        ) from None
    if len(frame) != len(body):  # pragma: no cover - the record scan and the C parser agree on CSV rules
        raise ContractViolation(
            path, f"parsed {len(frame)} rows but the file has {len(body)} records", expected="one row per line"
        )
    return Delimited(header, frame, body.lines, header_line)


def _locate_non_numeric(
    path, frame: pd.DataFrame, cols: list[int], header: list[str], lines: np.ndarray, na_values: Sequence[str]
) -> None:
    """Error path: name the first cell of the float columns that is neither a number nor a missing marker."""
    sub = frame[cols]
    missing = sub.isin(list(na_values)).to_numpy()
    num = sub.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(num) & ~missing
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ContractViolation(
            path,
            f"non-numeric value {clip(sub.iat[r, c])}",
            expected=f"a number or a missing marker ({', '.join(repr(v) for v in na_values)})",
            row=int(lines[r]),
            column=column_label(header, cols[c]),
        )


def column_label(header: Sequence[str], i: int) -> str:
    """A column's name for a message: the header text (shortened), or its 1-based position when unnamed."""
    name = header[i].strip()
    if not name:
        return str(i + 1)
    return name if len(name) <= 60 else clip(name)


def match_columns(
    path: str | Path, header: list[str], required: Sequence[str], optional: Sequence[str], header_line: int
) -> dict[str, int]:
    """Case-insensitive match of contract column names; returns canonical name -> position.

    Rejects a missing required column and a contract column given twice (e.g. ``mz`` and ``MZ``).
    """
    dup = pd.Series(header).duplicated() & pd.Series(header).ne("")
    if dup.any():
        i = int(np.argmax(dup.to_numpy()))
        raise ContractViolation(
            path,
            f"duplicate column {clip(header[i])}",
            expected="unique column names",
            row=header_line,
            column=column_label(header, i),
        )
    keys = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for name in (*required, *optional):
        pos = [i for i, k in enumerate(keys) if k == name.lower()]
        if len(pos) > 1:
            raise ContractViolation(
                path,
                f"column {name!r} appears {len(pos)} times",
                expected="each column once",
                row=header_line,
                column=column_label(header, pos[1]),
            )
        if pos:
            found[name] = pos[0]
    folded = pd.Series([k for k in keys if k])
    clash = folded.duplicated()
    if clash.any():  # extra columns too: DuckDB column names are case-insensitive
        name = folded[clash].iloc[0]
        i = next(j for j, k in enumerate(keys) if k == name and j != keys.index(name))
        raise ContractViolation(
            path,
            f"column {clip(header[i])} repeats {clip(header[keys.index(name)])} (names differ only in case)",
            expected="column names that are unique ignoring case",
            row=header_line,
            column=column_label(header, i),
        )
    missing = [c for c in required if c not in found]
    if missing:
        raise ContractViolation(
            path,
            f"missing required column(s): {', '.join(missing)}",
            expected=f"columns {', '.join(required)}",
            row=header_line,
            column=missing[0],
        )
    return found
