"""The quarantine: every row a data-quality suite flagged, with the reason, in the warehouse.

Schema ``quality`` holds two tables, written by the check step of each layer in one transaction:

* ``quality.quarantine`` — one row per flagged row per failed expectation: run, layer, asset, suite,
  expectation, column, severity (``warning`` rows did not block anything; ``critical`` rows did), the row's
  identifiers as JSON (lineage ``_source_file``/``_row_number`` in raw tables, keys elsewhere), the offending
  value(s) as JSON, the reason in words and when it was detected. An expectation about the whole table
  (row count, a distribution, the column set) has one row with no identifiers and the observed value in the
  reason.
* ``quality.validations`` — one row per suite validated: status (passed / warning / failed), rows validated,
  expectations evaluated and failed, rows flagged, seconds, the Data Docs page.

The quarantine is a register, not a trash can: flagged rows stay in their table (the pipeline handles them by
design, e.g. an orphan sequencing sample goes to ``marts.unlinked_omics_samples``), so nothing is silently
dropped and nothing is silently passed. Re-running a check step in the same run replaces that run's rows
of that step's suites (and only those).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd

from expectations.runner import MAX_FLAGGED_ROWS, ValidationSummary

SCHEMA = "quality"

QUARANTINE_DDL = f"""
create table if not exists {SCHEMA}.quarantine (
    run_id       varchar   not null,
    layer        varchar   not null,
    asset        varchar   not null,
    suite        varchar   not null,
    expectation  varchar   not null,
    column_name  varchar,
    severity     varchar   not null,  -- warning | critical
    row_key      json,                -- identifiers of the flagged row
    value        json,                -- the offending value(s)
    reason       varchar   not null,
    detected_at  timestamp not null
)
"""

VALIDATIONS_DDL = f"""
create table if not exists {SCHEMA}.validations (
    run_id                 varchar   not null,
    layer                  varchar   not null,
    asset                  varchar   not null,
    suite                  varchar   not null,
    status                 varchar   not null,  -- passed | warning | failed
    rows_validated         bigint    not null,
    expectations_evaluated integer   not null,
    expectations_failed    integer   not null,
    rows_flagged           bigint    not null,
    seconds                double,
    docs_page              varchar,
    error                  varchar,
    validated_at           timestamp not null
)
"""

COLUMNS = (
    "run_id",
    "layer",
    "asset",
    "suite",
    "expectation",
    "column_name",
    "severity",
    "row_key",
    "value",
    "reason",
    "detected_at",
)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(QUARANTINE_DDL)
    con.execute(VALIDATIONS_DDL)


def quarantine_rows(
    summary: ValidationSummary, *, run_id: str, layer: str, asset: str, row_id: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """One tuple per flagged row (see the module docstring), in ``COLUMNS`` order."""
    detected = (summary.validated_at or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    out: list[tuple[Any, ...]] = []
    ids = set(row_id)
    for failure in summary.failed:
        reason = failure.rule or failure.expectation
        if failure.column:
            reason = f"{reason} (column {failure.column})"
        base = (run_id, layer, asset, summary.suite, failure.expectation, failure.column, failure.severity)
        if not failure.rows:
            out.append((*base, None, None, f"{reason} {failure.details}".strip(), detected))
            continue
        for row in failure.rows:
            key = {k: v for k, v in row.items() if k in ids} or None
            value = {k: v for k, v in row.items() if k not in ids} or None
            out.append((*base, _json(key), _json(value), reason, detected))
        total = failure.unexpected_count or 0
        if total > len(failure.rows):
            # Not silent: say how many flagged rows are not listed and where to find them.
            note = f"{reason}: {total - len(failure.rows)} more flagged rows not listed (limit {MAX_FLAGGED_ROWS})"
            out.append((*base, None, None, note, detected))
    return out


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def write(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    layer: str,
    suites: Sequence[str],
    summaries: Sequence[ValidationSummary],
    assets: Mapping[str, str],
    row_ids: Mapping[str, Sequence[str]],
    site_relative: Mapping[str, str] | None = None,
) -> int:
    """Replace this run's quarantine and validation rows of ``suites`` in one transaction; rows written.

    ``suites`` are all the suites of the calling check step, validated or not, so a re-run of the step in the
    same run replaces exactly its own earlier rows.
    """
    ensure_schema(con)
    rows: list[tuple[Any, ...]] = []
    for summary in summaries:
        rows.extend(
            quarantine_rows(
                summary,
                run_id=run_id,
                layer=layer,
                asset=assets.get(summary.suite, ""),
                row_id=row_ids.get(summary.suite, ()),
            )
        )
    validations = [
        (
            run_id,
            layer,
            assets.get(s.suite, ""),
            s.suite,
            s.status,
            s.n_rows,
            s.evaluated,
            len(s.failed),
            s.flagged_rows,
            s.seconds,
            (site_relative or {}).get(s.suite) or (str(s.docs_page) if s.docs_page else None),
            s.error or None,
            (s.validated_at or dt.datetime.now(dt.UTC)).replace(tzinfo=None),
        )
        for s in summaries
    ]
    con.execute("begin transaction")
    try:
        for table in ("quarantine", "validations"):
            con.execute(
                f"delete from {SCHEMA}.{table} where run_id = ? and list_contains(?, suite)", [run_id, list(suites)]
            )
        if rows:
            # A DataFrame insert: executemany is row-by-row and slow for thousands of flagged rows.
            flagged = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"row_key": "object", "value": "object"})
            con.register("_flagged_rows", flagged)
            try:
                con.execute(
                    f"insert into {SCHEMA}.quarantine ({', '.join(COLUMNS)}) "
                    f"select {', '.join(COLUMNS)} from _flagged_rows"
                )
            finally:
                con.unregister("_flagged_rows")
        if validations:
            con.executemany(
                f"insert into {SCHEMA}.validations values ({', '.join('?' * 13)})",
                validations,
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return len(rows)


def summary_line(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """One line for the build summary: suites validated in the run, by status, and rows quarantined."""
    have = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = 'validations'",
        [SCHEMA],
    ).fetchone()[0]
    if not have:
        return None
    counts = dict(
        con.execute(
            f"select status, count(*) from {SCHEMA}.validations where run_id = ? group by status", [run_id]
        ).fetchall()
    )
    if not counts:
        return None
    flagged = con.execute(f"select count(*) from {SCHEMA}.quarantine where run_id = ?", [run_id]).fetchone()[0]
    return (
        f"  quality: {sum(counts.values())} suites validated: {counts.get('passed', 0)} passed, "
        f"{counts.get('warning', 0)} with warnings, {counts.get('failed', 0)} failed (blocking); "
        f"{flagged} rows in {SCHEMA}.quarantine"
    )
