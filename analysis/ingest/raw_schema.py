"""DDL of the ``raw`` schema: exports as delivered, plus lineage.

Every data row carries four lineage columns: ``_source_file`` (path relative to the landing folder),
``_row_number`` (1-based line in that file, header = line 1; for matrices, the line of the feature or of
the mothur group), ``_file_sha256`` and ``_load_id``. A changed file is loaded as a new version beside the
old one: nothing is ever deleted from ``raw``. ``raw.current_files`` names the version of each path that
downstream models should read.
"""

from __future__ import annotations

import duckdb

from analysis import contract

LINEAGE_COLUMNS: dict[str, str] = {
    "_source_file": "VARCHAR",
    "_row_number": "BIGINT",
    "_file_sha256": "VARCHAR",
    "_load_id": "VARCHAR",
}

#: Omics tables: typed where the contract demands numbers (counts, intensities), text elsewhere.
OMICS_TABLES: dict[str, dict[str, str]] = {
    "seq_counts": {"batch_id": "VARCHAR", "sample_id": "VARCHAR", "feature_id": "VARCHAR", "count": "BIGINT"},
    "seq_samples": {
        "batch_id": "VARCHAR",
        "sample_id": "VARCHAR",
        "library_size": "BIGINT",
        "n_features": "BIGINT",
        "table_format": "VARCHAR",
        "label": "VARCHAR",
    },
    "seq_features": {
        "batch_id": "VARCHAR",
        "feature_id": "VARCHAR",
        "taxonomy": "VARCHAR",
        "taxonomy_source": "VARCHAR",
    },
    "seq_manifest": {
        "batch_id": "VARCHAR",
        **{c: "VARCHAR" for c in contract.SEQ_MANIFEST_REQUIRED + contract.SEQ_MANIFEST_OPTIONAL},
    },
    # Optional phylogeny per batch (UniFrac): the Newick text as delivered (the payload of a .qza), one row per file.
    "seq_trees": {
        "batch_id": "VARCHAR",
        "tree_format": "VARCHAR",
        "newick": "VARCHAR",
        "newick_sha256": "VARCHAR",
        "n_tips": "BIGINT",
        "n_table_features": "BIGINT",
        "rooted": "VARCHAR",
    },
    "mtb_features": {
        "batch_id": "VARCHAR",
        **{c: "VARCHAR" for c in contract.MTB_FEATURE_REQUIRED + contract.MTB_FEATURE_OPTIONAL},
    },
    "mtb_intensities": {
        "batch_id": "VARCHAR",
        "feature_id": "VARCHAR",
        "ion_mode": "VARCHAR",
        "injection_id": "VARCHAR",
        "intensity": "DOUBLE",
    },
    "mtb_injections": {
        "batch_id": "VARCHAR",
        **{c: "VARCHAR" for c in contract.MTB_INJECTION_REQUIRED + contract.MTB_INJECTION_OPTIONAL},
    },
}

#: Which family's asset writes each raw table.
FAMILY_TABLES: dict[str, tuple[str, ...]] = {
    "crf": tuple(form.raw_table for form in contract.CRF_FORMS.values()),
    "sequencing": ("seq_counts", "seq_samples", "seq_features", "seq_manifest", "seq_trees"),
    "metabolomics": ("mtb_intensities", "mtb_features", "mtb_injections"),
}

LOAD_MANIFEST_DDL = """
create table if not exists raw.load_manifest (
    load_id      varchar   not null,
    family       varchar   not null,
    path         varchar   not null,
    sha256       varchar   not null,
    size_bytes   bigint    not null,
    n_rows       bigint,
    format       varchar,
    batch_id     varchar,
    loaded_at    timestamp not null,
    status       varchar   not null,  -- loaded | unchanged | rejected
    reason       varchar
)
"""

# The latest successfully loaded version of every path: what staging reads. A rejected re-delivery leaves
# the previous good version current, so a bad export never blanks out data that was already there.
CURRENT_FILES_DDL = """
create or replace view raw.current_files as
select family, path, sha256, load_id, loaded_at, n_rows, format, batch_id
from raw.load_manifest
where status = 'loaded'
qualify row_number() over (partition by path order by loaded_at desc, load_id desc) = 1
"""


def _column_ddl(columns: dict[str, str]) -> str:
    return ", ".join(f'"{name}" {dtype}' for name, dtype in {**columns, **LINEAGE_COLUMNS}.items())


def crf_columns(form: contract.CrfForm) -> dict[str, str]:
    # CRF values stay text exactly as delivered (typing and cleaning are staging's job), except the columns the
    # loader derives (``form.derived``, e.g. dm's age at consent replacing the birth date), typed as declared.
    # Identifier columns exist but are always NULL (``analysis.ingest.deidentify``).
    return {**{column: "VARCHAR" for column in form.columns}, **form.derived}


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and every raw table if absent (idempotent)."""
    con.execute("create schema if not exists raw")
    con.execute(LOAD_MANIFEST_DDL)
    con.execute(CURRENT_FILES_DDL)
    for form in contract.CRF_FORMS.values():
        con.execute(f"create table if not exists raw.{form.raw_table} ({_column_ddl(crf_columns(form))})")
    for table, columns in OMICS_TABLES.items():
        con.execute(f"create table if not exists raw.{table} ({_column_ddl(columns)})")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ? "
        "order by ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]
