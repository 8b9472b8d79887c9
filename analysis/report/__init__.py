"""The trial report: figures and tables built from the warehouse (pure functions; no Dagster, no files)."""
