"""Landing folder -> DuckDB ``raw`` schema, one source family at a time.

Guarantees (tested in ``tests/test_ingest.py``):

* **Idempotent.** A file whose path and SHA-256 match the current loaded version is recorded as
  ``unchanged`` in ``raw.load_manifest`` and its data are not touched.
* **Versioned.** A changed file is loaded as a new version (new ``_load_id`` and ``_file_sha256``); the
  old rows stay. ``raw.current_files`` points at the latest good version of each path.
* **Transactional.** A family loads in one transaction: every file is parsed and checked completely
  before any of its rows is inserted, and an unexpected failure rolls the whole family back, leaving the
  previous state intact.
* **Rejections are local.** A file that breaks the contract is recorded as ``rejected`` with the reason
  (file, row, column, what was expected); the family's other files still load.
* **Vectorised.** Matrices go to DuckDB as Arrow tables built from the sparse non-zeros; CRF files go in
  as whole DataFrames. No per-value Python loops.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import contract
from analysis.errors import ContractViolation
from analysis.ingest.crf import read_crf_csv
from analysis.ingest.deidentify import deidentify_dm, scrub_stored_identifiers
from analysis.ingest.landing import LandingFile, scan_landing, sha256_of
from analysis.ingest.raw_schema import FAMILY_TABLES, ensure_raw_schema, table_columns


@dataclass
class FileOutcome:
    path: str
    kind: str
    status: str  # loaded | unchanged | rejected
    rows: int = 0
    reason: str | None = None


@dataclass
class LoadReport:
    family: str
    load_id: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    #: Rows in each raw table of the family from current file versions, after the load.
    current_rows: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def rejected(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]


#: ``raw.load_manifest.sha256`` of a file rejected by its name (its content is not read; size recorded as 0).
UNREAD_SHA256 = "not read: not a contract file"


def new_load_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------- helpers


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame | pa.Table) -> None:
    """Insert by column name, widening the raw table with any extra delivered column (kept as text)."""
    # DuckDB identifiers are case-insensitive, and a delivered header is untrusted text: compare folded and quote
    # with doubled quotes so a header can never close the identifier and inject SQL.
    existing = {c.casefold() for c in table_columns(con, table)}
    names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    for name in names:
        if name.casefold() not in existing:
            quoted = '"' + name.replace('"', '""') + '"'
            con.execute(f"alter table raw.{table} add column {quoted} VARCHAR")
            existing.add(name.casefold())
    con.register("_incoming", frame)
    try:
        con.execute(f"insert into raw.{table} by name select * from _incoming")
    finally:
        con.unregister("_incoming")


def _lineage(frame: pd.DataFrame, file: LandingFile, sha: str, load_id: str) -> pd.DataFrame:
    return frame.assign(_source_file=file.relpath, _file_sha256=sha, _load_id=load_id)


def _dictionary(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values, pa.string()))


def _constant(value: str | None, n: int) -> pa.DictionaryArray:
    return _dictionary(np.zeros(n, dtype=np.int32), [value] if value is not None else [""])


# ---------------------------------------------------------------------------------------------- per kind


def _load_crf(con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str) -> tuple[int, str]:
    form = contract.CRF_FORMS[file.crf_form or ""]
    frame = read_crf_csv(file.path, file.relpath, form)
    if form.identifiers:
        # The file must carry the identifier columns (checked by read_crf_csv), but their values are never stored:
        # dropped here (NULL in raw), the birth date replaced by the derived age at consent.
        frame = deidentify_dm(frame, file.relpath)
    _insert_frame(con, form.raw_table, _lineage(frame, file, sha, load_id))
    return len(frame), "csv"


def _load_seq_table(con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str) -> tuple[int, str]:
    from analysis.readers import read_feature_table

    try:
        table = read_feature_table(file.path)
    except ContractViolation as exc:
        exc.file = file.relpath
        raise
    counts = table.counts.tocoo()
    n = counts.nnz
    per_sample_rows = table.rows_are == "samples"
    source_rows = np.asarray(table.source_rows)[counts.row if per_sample_rows else counts.col]
    batch = file.batch_id or ""
    long = pa.table(
        {
            "batch_id": _constant(batch, n),
            "sample_id": _dictionary(counts.row, list(table.sample_ids)),
            "feature_id": _dictionary(counts.col, list(table.feature_ids)),
            "count": pa.array(counts.data.astype(np.int64)),
            "_source_file": _constant(file.relpath, n),
            "_row_number": pa.array(source_rows.astype(np.int64)),
            "_file_sha256": _constant(sha, n),
            "_load_id": _constant(load_id, n),
        }
    )
    # Cast dictionary columns back to plain text inside DuckDB (one vectorised pass).
    con.register("_long", long)
    try:
        con.execute(
            "insert into raw.seq_counts select batch_id::varchar, sample_id::varchar, feature_id::varchar, count, "
            "_source_file::varchar, _row_number, _file_sha256::varchar, _load_id::varchar from _long"
        )
    finally:
        con.unregister("_long")
    csr = table.counts.tocsr()
    samples = pd.DataFrame(
        {
            "batch_id": batch,
            "sample_id": list(table.sample_ids),
            "library_size": np.asarray(csr.sum(axis=1)).ravel().astype(np.int64),
            "n_features": np.diff(csr.indptr).astype(np.int64),
            "table_format": table.format,
            "label": table.label,
            "_row_number": np.asarray(table.source_rows, dtype=np.int64) if per_sample_rows else 1,
        }
    )
    _insert_frame(con, "seq_samples", _lineage(samples, file, sha, load_id))
    taxonomy = table.taxonomy or {}
    features = pd.DataFrame(
        {
            "batch_id": batch,
            "feature_id": list(table.feature_ids),
            "taxonomy": pd.Series(list(table.feature_ids)).map(taxonomy).astype(object),
            "taxonomy_source": "table" if taxonomy else None,
            "_row_number": 1 if per_sample_rows else np.asarray(table.source_rows, dtype=np.int64),
        }
    )
    _insert_frame(con, "seq_features", _lineage(features, file, sha, load_id))
    return n, table.format


def _load_seq_taxonomy(con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str) -> tuple[int, str]:
    from analysis.readers import read_taxonomy

    try:
        taxonomy = read_taxonomy(file.path)
    except ContractViolation as exc:
        exc.file = file.relpath
        raise
    frame = pd.DataFrame(
        {
            "batch_id": file.batch_id,
            "feature_id": list(taxonomy.keys()),
            "taxonomy": list(taxonomy.values()),
            "taxonomy_source": "taxonomy file",
            # Taxonomy files have one header line, then one feature per line in file order.
            "_row_number": np.arange(2, len(taxonomy) + 2, dtype=np.int64),
        }
    )
    _insert_frame(con, "seq_features", _lineage(frame, file, sha, load_id))
    return len(frame), "taxonomy"


def _load_seq_tree(con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str) -> tuple[int, str]:
    """A batch's phylogeny (``analysis.readers.tree``), checked against the feature ids of the batch's current
    feature table (so trees load after every table of the family: :func:`load_family` orders them last)."""
    from analysis.readers.tree import check_tips, read_tree

    try:
        phylogeny = read_tree(file.path)
        features = con.execute(
            "select distinct f.feature_id from raw.seq_features f join raw.current_files c "
            "on f._source_file = c.path and f._file_sha256 = c.sha256 and f._load_id = c.load_id "
            "where c.family = 'sequencing' and c.batch_id = ? and c.format <> 'taxonomy'",
            [file.batch_id],
        ).fetchall()
        n_features = check_tips(phylogeny.tips, [r[0] for r in features], file.path)
    except ContractViolation as exc:
        exc.file = file.relpath
        raise
    frame = pd.DataFrame(
        {
            "batch_id": [file.batch_id],
            "tree_format": [phylogeny.format],
            "newick": [phylogeny.newick],
            "newick_sha256": [phylogeny.sha256],
            "n_tips": [len(phylogeny.tips)],
            "n_table_features": [n_features],
            "rooted": ["Y" if phylogeny.rooted else "N"],
            "_row_number": [1],
        }
    )
    _insert_frame(con, "seq_trees", _lineage(frame, file, sha, load_id))
    return len(phylogeny.tips), phylogeny.format


def _load_table_csv(
    reader: Callable[[Path], pd.DataFrame], table: str
) -> Callable[[duckdb.DuckDBPyConnection, LandingFile, str, str], tuple[int, str]]:
    def load(con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str) -> tuple[int, str]:
        try:
            frame = reader(file.path)
        except ContractViolation as exc:
            exc.file = file.relpath
            raise
        frame = frame.rename(columns={"source_row": "_row_number"})
        if "_row_number" not in frame.columns:
            frame["_row_number"] = np.arange(2, len(frame) + 2, dtype=np.int64)
        frame.insert(0, "batch_id", file.batch_id)
        frame = frame.astype({c: "object" for c in frame.columns if c not in ("_row_number",)})
        _insert_frame(con, table, _lineage(frame, file, sha, load_id))
        return len(frame), "csv"

    return load


def _load_mtb_features(con: duckdb.DuckDBPyConnection, file: LandingFile, sha: str, load_id: str) -> tuple[int, str]:
    from analysis.ingest.mtb_vendors import detect_export, load_vendor_export
    from analysis.readers import read_metabolomics_table

    # MS-DIAL / Progenesis QI / XCMS / mwTab exports go through their vendor reader (analysis.ingest.mtb_vendors);
    # anything else is the contract's generic wide table, read below.
    vendor = detect_export(file.path)
    if vendor is not None:
        return load_vendor_export(con, file, sha, load_id, vendor)
    try:
        table = read_metabolomics_table(file.path)
    except ContractViolation as exc:
        exc.file = file.relpath
        raise
    annotation = table.annotations.drop(columns=["source_row"], errors="ignore")
    annotation["_row_number"] = np.asarray(table.source_rows, dtype=np.int64)
    annotation.insert(0, "batch_id", file.batch_id)
    annotation = annotation.astype({c: "object" for c in annotation.columns if c != "_row_number"})
    _insert_frame(con, "mtb_features", _lineage(annotation, file, sha, load_id))
    # Long table of the observed (non-missing) intensities only; the reader gives injections x features.
    values = np.asarray(table.intensities, dtype=np.float64)
    injection_idx, feature_idx = np.nonzero(~np.isnan(values))
    n = feature_idx.size
    feature_ids = annotation["feature_id"].astype(str).tolist()
    ion_modes = annotation["ion_mode"].astype(str).str.strip().str.upper().tolist()
    long = pa.table(
        {
            "batch_id": _constant(file.batch_id, n),
            "feature_id": _dictionary(feature_idx, feature_ids),
            "ion_mode": _dictionary(feature_idx, ion_modes),
            "injection_id": _dictionary(injection_idx, list(table.injection_ids)),
            "intensity": pa.array(values[injection_idx, feature_idx]),
            "_source_file": _constant(file.relpath, n),
            "_row_number": pa.array(np.asarray(table.source_rows, dtype=np.int64)[feature_idx]),
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
    return n, "wide"


def _loader_for(kind: str) -> Callable[[duckdb.DuckDBPyConnection, LandingFile, str, str], tuple[int, str]] | None:
    if kind.startswith("crf:"):
        return _load_crf
    if kind == "seq_table":
        return _load_seq_table
    if kind == "seq_taxonomy":
        return _load_seq_taxonomy
    if kind == "seq_tree":
        return _load_seq_tree
    if kind == "seq_manifest":
        from analysis.readers import read_seq_manifest

        return _load_table_csv(read_seq_manifest, "seq_manifest")
    if kind == "mtb_features":
        return _load_mtb_features
    if kind == "mtb_injections":
        from analysis.readers import read_injection_list

        return _load_table_csv(read_injection_list, "mtb_injections")
    return None


# ---------------------------------------------------------------------------------------------- family


def _current_sha(con: duckdb.DuckDBPyConnection, relpath: str) -> str | None:
    row = con.execute("select sha256 from raw.current_files where path = ?", [relpath]).fetchone()
    return row[0] if row else None


def _record(
    con: duckdb.DuckDBPyConnection,
    report: LoadReport,
    file: LandingFile,
    sha: str,
    size: int,
    loaded_at: dt.datetime,
    outcome: FileOutcome,
    fmt: str | None,
) -> None:
    con.execute(
        "insert into raw.load_manifest values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.load_id,
            file.family,
            file.relpath,
            sha,
            size,
            outcome.rows if outcome.status != "rejected" else None,
            fmt,
            file.batch_id,
            loaded_at,
            outcome.status,
            outcome.reason,
        ],
    )
    report.outcomes.append(outcome)


def current_row_counts(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, int]:
    """Rows of each raw table that belong to current file versions (what downstream models read)."""
    counts: dict[str, int] = {}
    for table in tables:
        counts[table] = con.execute(
            f"select count(*) from raw.{table} t join raw.current_files c "
            "on t._source_file = c.path and t._file_sha256 = c.sha256 and t._load_id = c.load_id"
        ).fetchone()[0]
    return counts


def load_family(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    family: str,
    load_id: str | None = None,
    now: dt.datetime | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> LoadReport:
    """Load every file of one source family from the landing folder into ``raw``, in one transaction."""
    landing_dir = Path(landing_dir)
    report = LoadReport(family=family, load_id=load_id or new_load_id())
    loaded_at = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_raw_schema(con)
    # trees are checked against the batch's feature table, so they load after every other file of the family
    files = sorted(scan_landing(landing_dir, family), key=lambda f: f.kind == "seq_tree")
    con.execute("begin transaction")
    try:
        if family == "crf":
            # A warehouse loaded by an older version may still hold identifier values in raw.crf_dm: blank them
            # (deriving the age first) in this same transaction, so they go with this load or not at all.
            scrub_stored_identifiers(con)
        for file in files:
            loader = _loader_for(file.kind)
            if loader is None:
                # A file this contract does not accept is never read, not even for a checksum: a randomisation
                # list dropped into the landing folder by mistake must leave no trace of its content (a SHA-256 of
                # a short allocation list can be brute-forced) in the blinded warehouse.
                sha, size = UNREAD_SHA256, 0
                outcome = FileOutcome(
                    file.relpath,
                    file.kind,
                    "rejected",
                    reason=f"{file.relpath}: not a file this contract accepts in '{family}/' "
                    "(see docs/raw_exports.md for file names and layout)",
                )
                _record(con, report, file, sha, size, loaded_at, outcome, None)
            else:
                sha, size = sha256_of(file.path), file.path.stat().st_size
                if _current_sha(con, file.relpath) == sha:
                    rows = con.execute(
                        "select n_rows from raw.current_files where path = ?", [file.relpath]
                    ).fetchone()[0]
                    outcome, fmt = FileOutcome(file.relpath, file.kind, "unchanged", rows), None
                else:
                    try:
                        rows, fmt = loader(con, file, sha, report.load_id)
                    except ContractViolation as exc:
                        outcome, fmt = FileOutcome(file.relpath, file.kind, "rejected", reason=str(exc)), None
                    else:
                        outcome = FileOutcome(file.relpath, file.kind, "loaded", rows)
                _record(con, report, file, sha, size, loaded_at, outcome, fmt)
            if on_file is not None:
                on_file(report.outcomes[-1])
        report.current_rows = current_row_counts(con, FAMILY_TABLES[family])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return report
