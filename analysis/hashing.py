"""Content hashes of warehouse tables and checksums of files (pure: DuckDB and hashlib, no Dagster).

A table's content hash says "these rows, with these column names and types", independent of the physical row
order and of how DuckDB happened to lay the table out on disk, so two builds of the same landing folder can be
compared table by table (``tests/test_reproducibility.py``) and every run records what it produced
(``audit.run_outputs``).

Method (:func:`table_hash`): SHA-256 over the column signature (names and types in table order), the row count
and two order-independent aggregates of DuckDB's 64-bit ``hash()`` of each whole row: their sum (as HUGEINT, so
it cannot overflow) and their XOR. Two tables with the same multiset of rows give the same hash; a row that
differs in any value (a double in its last bit included; ``NULL`` differs from any value) changes it. One pass,
no sort and no text rendering: on the 120-patient demo (~650k mart rows) it is ~100x faster than an ordered MD5
over every row rendered as text (measured in ``docs/reliability.md``).

Limits, on purpose: it is a fingerprint for reproducibility and audit, not a signature against a forger. DuckDB's
``hash()`` is stable for a DuckDB version but not promised across versions, which is why the audit records the
DuckDB version next to every hash: compare hashes only between runs of one DuckDB version.

Volatile columns: a few analysis columns legitimately differ between two runs of the same inputs (when the table
was computed, where a side file was written). They are listed in :data:`VOLATILE_COLUMNS`, left out of the hash
(never silently: :class:`TableHash` names them), and documented in ``docs/reliability.md``. Run ids, load ids and
timestamps otherwise belong in ``raw.load_manifest`` and the ``audit`` schema, which are not hashed as outputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

#: The schemas whose tables are a run's outputs (raw is input-plus-lineage: its load ids differ by design).
OUTPUT_SCHEMAS: tuple[str, ...] = ("marts", "analysis")

#: ``schema.table`` -> columns left out of the content hash, with why. Keep this list short and justified.
VOLATILE_COLUMNS: dict[str, dict[str, str]] = {
    "analysis.endpoint_run": {"computed_at": "wall-clock time the endpoints were computed"},
    "analysis.beta_distance_files": {"path": "absolute path of the .npz file, which follows the warehouse location"},
}

_CHUNK = 1 << 20


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableHash:
    schema: str
    table: str
    rows: int
    columns: int
    content_hash: str
    #: Columns left out of the hash (see :data:`VOLATILE_COLUMNS`).
    excluded: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of every column of a table or view, in table order."""
    return _columns_by_table(con, [schema], table).get((schema, table), [])


def _columns_by_table(
    con: duckdb.DuckDBPyConnection, schemas: list[str], table: str | None = None
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    # One duckdb_columns() query for all tables: information_schema costs ~30 ms per call, which dominated the
    # hashing of ~70 tables.
    marks = ", ".join("?" for _ in schemas)
    params: list[str] = list(schemas)
    where = f"database_name = current_database() and schema_name in ({marks})"
    if table is not None:
        where += " and table_name = ?"
        params.append(table)
    rows = con.execute(
        f"select schema_name, table_name, column_name, data_type from duckdb_columns() where {where} "
        "order by schema_name, table_name, column_index",
        params,
    ).fetchall()
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, name, column, dtype in rows:
        out.setdefault((schema, name), []).append((column, dtype))
    return out


def _hash_relation(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, all_columns: list[tuple[str, str]], exclude: Iterable[str]
) -> TableHash:
    excluded = {c.lower() for c in exclude}
    columns = [(n, t) for n, t in all_columns if n.lower() not in excluded]
    if not columns:
        raise LookupError(f"{schema}.{table} does not exist or has no column left to hash")
    relation = f"{quote_ident(schema)}.{quote_ident(table)}"
    # hash() of a struct of the kept columns = one 64-bit hash per row over all its values.
    row = "hash(struct_pack(" + ", ".join(f"{quote_ident(n)} := {quote_ident(n)}" for n, _ in columns) + "))"
    n_rows, total, xor = con.execute(
        f"select count(*), coalesce(sum({row}::hugeint), 0), coalesce(bit_xor({row}), 0) from {relation}"
    ).fetchone()
    signature = "\x1f".join(f"{n}\x1e{t}" for n, t in columns)
    digest = hashlib.sha256(f"{signature}\x1d{n_rows}\x1d{total}\x1d{xor}".encode()).hexdigest()
    dropped = tuple(sorted(n for n, _ in all_columns if n.lower() in excluded))
    return TableHash(schema, table, int(n_rows), len(columns), digest, dropped)


def table_hash(con: duckdb.DuckDBPyConnection, schema: str, table: str, exclude: Iterable[str] = ()) -> TableHash:
    """The content hash of ``schema.table`` without the columns ``exclude`` (see the module docstring)."""
    return _hash_relation(con, schema, table, table_columns(con, schema, table), exclude)


def output_tables(con: duckdb.DuckDBPyConnection, schemas: Iterable[str] = OUTPUT_SCHEMAS) -> list[tuple[str, str]]:
    """Base tables (not views) of ``schemas``, sorted."""
    schemas = list(schemas)
    if not schemas:
        return []
    marks = ", ".join("?" for _ in schemas)
    rows = con.execute(
        f"select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        f"and schema_name in ({marks}) order by 1, 2",
        schemas,
    ).fetchall()
    return [(s, t) for s, t in rows]


def warehouse_hashes(
    con: duckdb.DuckDBPyConnection,
    schemas: Iterable[str] = OUTPUT_SCHEMAS,
    volatile: Mapping[str, Mapping[str, str]] = VOLATILE_COLUMNS,
) -> dict[str, TableHash]:
    """``schema.table`` -> :class:`TableHash` for every base table of ``schemas``."""
    schemas = list(schemas)
    tables = output_tables(con, schemas)
    columns = _columns_by_table(con, schemas) if tables else {}
    out: dict[str, TableHash] = {}
    for schema, table in tables:
        name = f"{schema}.{table}"
        out[name] = _hash_relation(con, schema, table, columns[(schema, table)], volatile.get(name, {}).keys())
    return out


def diff_hashes(a: Mapping[str, TableHash], b: Mapping[str, TableHash]) -> list[str]:
    """Human-readable differences between two :func:`warehouse_hashes` results (empty = identical)."""
    problems: list[str] = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only in {'the first' if name in a else 'the second'}")
        elif a[name].content_hash != b[name].content_hash:
            problems.append(f"{name}: content differs ({a[name].rows} vs {b[name].rows} rows)")
    return problems


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
