"""Reading the marts and writing DuckDB schema ``analysis`` for the endpoint assets and ``guttrial endpoints``.

No Dagster here, so the command line reads the warehouse without loading the code location.

Writes are atomic per call: every table of one :func:`write_tables` call is replaced inside one transaction
(``create or replace table analysis.<name> as select * from <frame>``), so a reader never sees some tables of a
computation next to stale ones of the previous run, and a failed computation leaves the previous tables intact.
Datetime columns holding dates only are stored as ``DATE``.

:func:`table_metadata` is the materialisation metadata every analysis asset attaches to each table it writes (row
count, column schema, a small markdown preview), so the UI shows the same things for every table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import pandas as pd

from analysis import endpoints as ep

ANALYSIS_SCHEMA = "analysis"
#: Rows shown in the markdown preview of an analysis table in the Dagster UI.
PREVIEW_ROWS = 10
#: Columns shown in the preview (wider tables are cut, with a note, so the preview stays readable).
PREVIEW_COLUMNS = 12
#: Where NACT start dates are read from when ``adsl`` has no ``nact_date`` (older warehouses; see :func:`read_marts`).
THERAPY_SOURCES: tuple[tuple[str, str], ...] = (("marts", "subsequent_therapy"),)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [r[0] for r in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_marts(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> dict[str, pd.DataFrame]:
    """The marts ``names`` with the columns :data:`analysis.endpoints.MART_COLUMNS` lists (plus the optional ones
    present). When ``adsl`` is read and has no ``nact_date`` (warehouses built before the column existed), the new
    anti-cancer therapies are read as ``subsequent_therapy`` from the first of :data:`THERAPY_SOURCES` that exists,
    and NACTDT is derived from them."""
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        if not table_exists(con, "marts", name):
            raise LookupError(f"marts.{name} does not exist: build the marts first (guttrial build)")
        have = table_columns(con, "marts", name)
        wanted = list(ep.MART_COLUMNS.get(name, ())) + list(ep.OPTIONAL_COLUMNS.get(name, ()))
        cols = [c for c in wanted if c in have]
        missing = [c for c in ep.MART_COLUMNS.get(name, ()) if c not in have]
        if missing:
            raise LookupError(f"marts.{name} lacks column(s) {missing} that the endpoint derivations need")
        out[name] = con.execute(f"select {', '.join(map(_quote, cols))} from marts.{_quote(name)}").df()
    if "adsl" in out and "nact_date" not in out["adsl"].columns:
        for schema, table in THERAPY_SOURCES:
            if table_exists(con, schema, table):
                have = table_columns(con, schema, table)
                cols = [c for c in ("subject_id", "therapy", "start_date") if c in have]
                out["subsequent_therapy"] = con.execute(
                    f"select {', '.join(map(_quote, cols))} from {schema}.{_quote(table)}"
                ).df()
                out["subsequent_therapy"].attrs["source"] = f"{schema}.{table}"
                break
    return out


def _select_list(frame: pd.DataFrame) -> str:
    """``select`` expressions: date-only datetime columns cast to DATE, everything else as is."""
    parts = []
    for col in frame.columns:
        s = frame[col]
        q = _quote(str(col))
        if pd.api.types.is_datetime64_any_dtype(s):
            v = s.dropna()
            if v.empty or bool((v == v.dt.normalize()).all()):
                parts.append(f"cast({q} as date) as {q}")
                continue
        parts.append(q)
    return ", ".join(parts) if parts else "*"


def write_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame]) -> None:
    """Replace ``analysis.<name>`` for every frame in one transaction (schema created if needed)."""
    con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {ANALYSIS_SCHEMA}")
        for name, frame in tables.items():
            lowered = [str(c).lower() for c in frame.columns]
            clashes = sorted({c for c in lowered if lowered.count(c) > 1})
            if clashes:
                raise ValueError(f"analysis.{name}: column names differ only by case (DuckDB would rename): {clashes}")
            view = f"_analysis_{name}"
            con.register(view, frame)
            try:
                con.execute(
                    f"create or replace table {ANALYSIS_SCHEMA}.{_quote(name)} as "
                    f"select {_select_list(frame)} from {_quote(view)}"
                )
            finally:
                con.unregister(view)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def read_analysis(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> dict[str, pd.DataFrame]:
    """``analysis.<name>`` tables as DataFrames (``LookupError`` naming the missing ones)."""
    names = list(names)
    missing = [n for n in names if not table_exists(con, ANALYSIS_SCHEMA, n)]
    if missing:
        raise LookupError(
            f"the warehouse has no table(s) {', '.join(f'{ANALYSIS_SCHEMA}.{n}' for n in missing)}: "
            "run `guttrial build` (the endpoint assets write them)"
        )
    return {n: con.execute(f"select * from {ANALYSIS_SCHEMA}.{_quote(n)}").df() for n in names}


def preview_markdown(frame: pd.DataFrame, rows: int = PREVIEW_ROWS, columns: int = PREVIEW_COLUMNS) -> str:
    """The first ``rows`` rows (and ``columns`` columns) as a markdown table, floats to 4 decimals."""
    if frame.empty:
        return "_empty table_" + (f" (columns: {', '.join(map(str, frame.columns))})" if len(frame.columns) else "")
    head = frame.iloc[:rows, :columns].copy()
    for col in head.columns:
        if pd.api.types.is_float_dtype(head[col]):
            head[col] = head[col].round(4)
    text = head.to_markdown(index=False)
    notes = []
    if len(frame) > rows:
        notes.append(f"first {rows} of {len(frame):,} rows")
    if len(frame.columns) > columns:
        notes.append(f"first {columns} of {len(frame.columns)} columns")
    return text + (f"\n\n_{'; '.join(notes)}_" if notes else "")


def table_metadata(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dict[str, Any]:
    """Materialisation metadata for one analysis table: ``dagster/row_count``, ``dagster/column_schema`` (which
    the UI shows as the table's columns) and a markdown ``preview``."""
    # Imported here so the command line (``guttrial endpoints``) reads the warehouse without loading Dagster.
    import dagster as dg

    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()]
        ),
        "preview": dg.MetadataValue.md(preview_markdown(frame, rows)),
    }
