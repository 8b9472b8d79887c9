"""CSV and TSV for people: cells a spreadsheet would run as a formula are neutralised (CSV injection).

A sample id, metabolite name or free-text field delivered as ``=cmd|' /C calc'!A0`` is data: the warehouse
stores it verbatim (``raw`` is a faithful copy of the exports). But a CSV the warehouse *writes* is opened in
Excel or LibreOffice, which evaluate a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, after a
leading tab or carriage return, whatever follows). Following the OWASP "CSV Injection" guidance, such a text
cell is written with a leading single quote (``'=cmd|...``): spreadsheets then show it as text, and a reader
can still recognise the original value. Numbers are left alone: ``-1.5``, ``+3`` and ``-2.5e-07`` are
plain decimal literals, not formulas, and stay numeric (only text that is *not* a decimal literal is
prefixed, so ``-inf``, ``-1+2`` and ``-`` are neutralised).

Use :func:`to_csv` instead of ``DataFrame.to_csv`` and :class:`SafeWriter` instead of ``csv.writer`` for any
file meant for people (CLI ``--csv`` outputs, report tables, exports). Machine formats read back by the
warehouse itself (PHYLIP distance files, dbt seeds) are not spreadsheets and keep the raw text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

#: First characters that make a spreadsheet evaluate a cell (OWASP: ``= + - @``, tab and carriage return).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
#: A decimal number as a spreadsheet reads it (no ``inf``/``nan``, no underscores, no expressions).
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def is_formula(value: object) -> bool:
    """True when ``value`` is text a spreadsheet would evaluate (a formula-injection risk)."""
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and _DECIMAL.fullmatch(value) is None


def neutralise(value: Any) -> Any:
    """``value`` with a leading single quote when it is text a spreadsheet would evaluate; else unchanged."""
    return "'" + value if is_formula(value) else value


def neutralise_frame(frame: pd.DataFrame, *, index: bool = True) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells, column names and (with ``index``) index labels are neutralised.

    Numeric columns are untouched, so their formatting (``float_format``) is exactly what ``to_csv`` gives.
    """
    out = frame.copy()
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        if column.dtype == object or isinstance(column.dtype, pd.StringDtype | pd.CategoricalDtype):
            values = column.astype(object)
            out.isetitem(position, values.map(neutralise, na_action="ignore"))
    out.columns = _neutral_index(out.columns)
    if index:
        out.index = _neutral_index(out.index)
    return out


def _neutral_index(labels: pd.Index) -> pd.Index:
    if isinstance(labels, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(neutralise(v) for v in t) for t in labels], names=[neutralise(n) for n in labels.names]
        )
    if labels.dtype != object and not isinstance(labels.dtype, pd.StringDtype):
        return labels.rename(neutralise(labels.name))
    return pd.Index([neutralise(v) for v in labels], dtype=object, name=neutralise(labels.name))


def to_csv(frame: pd.DataFrame, path_or_buf: str | Path | TextIO | None = None, **kwargs: Any) -> str | None:
    """``DataFrame.to_csv`` on the neutralised frame (same arguments; ``index_label`` is neutralised too)."""
    if isinstance(kwargs.get("index_label"), str):
        kwargs["index_label"] = neutralise(kwargs["index_label"])
    return neutralise_frame(frame, index=kwargs.get("index", True)).to_csv(path_or_buf, **kwargs)


class SafeWriter:
    """``csv.writer`` that neutralises every cell (same dialect arguments)."""

    def __init__(self, handle: TextIO, **fmtparams: Any) -> None:
        self._writer = csv.writer(handle, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
