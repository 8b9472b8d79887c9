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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import ContractViolation
from analysis.readers._text import (
    base_name,
    check_delimiter,
    index_records,
    load_bytes,
    ragged_error,
    sep_name,
    strip_bom,
)


@dataclass
class Delimited:
    header: list[str]  # as delivered, surrounding whitespace stripped
    frame: pd.DataFrame  # columns 0..n-1 (positions); str except the float columns
    lines: np.ndarray  # 1-based line on which each data row starts
    header_line: int


def default_sep(path: str | Path) -> str:
    name = base_name(path)
    return "\t" if name.endswith((".tsv", ".txt", ".xls", ".tab")) else ","


def read_delimited(
    path: str | Path, sep: str | None = None, *, float_columns=None, na_values: Sequence[str] = (), what: str = "table"
) -> Delimited:
    """Read a whole delimited table. ``float_columns(header) -> positions`` are parsed as float64 with
    ``na_values`` as missing; any other text in them is rejected naming the row and column."""
    sep = sep or default_sep(path)
    data = strip_bom(load_bytes(path))
    rec = index_records(data, sep, quoted=True)
    if len(rec) == 0:
        raise ContractViolation(path, f"empty {what}: the file has no lines", expected="a header row and data rows")
    header_line = int(rec.lines[0])
    header_text = rec.decoded(path, 0)
    header = [h.strip() for h in next(csv.reader([header_text], delimiter=sep))]
    check_delimiter(path, header_text, sep, header_line, len(header))
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
            f"non-numeric value {sub.iat[r, c]!r}",
            expected=f"a number or a missing marker ({', '.join(repr(v) for v in na_values)})",
            row=int(lines[r]),
            column=header[cols[c]],
        )


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
            path, f"duplicate column {header[i]!r}", expected="unique column names", row=header_line, column=header[i]
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
                column=header[pos[1]],
            )
        if pos:
            found[name] = pos[0]
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
