"""Landing folder -> DuckDB ``raw`` layer (pure functions over a DuckDB connection; no Dagster)."""

from analysis.ingest.loader import FileOutcome, LoadReport, load_family, new_load_id
from analysis.ingest.raw_schema import ensure_raw_schema

__all__ = ["FileOutcome", "LoadReport", "ensure_raw_schema", "load_family", "new_load_id"]
