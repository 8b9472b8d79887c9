"""Running great-expectations suites over warehouse tables, and the Data Docs site QA reads.

Validation reads a table from DuckDB into a DataFrame and validates it with GX's pandas data source:
GX 1.x's SQL route over duckdb_engine is broken (see docs/quality.md). Results are stored in a GX file
context beside the warehouse, so every past validation stays in the Data Docs history.

A failed expectation is summarised with the columns it concerns and a sample of the offending rows,
identified by the suite's row-id columns (lineage ``_source_file``/``_row_number`` in raw tables, keys in
marts), so QA can go straight to the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

# GX must not try to send usage statistics from this offline machine; set before its first import.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SAMPLE_ROWS = 10


@dataclass
class SuiteSpec:
    """A data-quality suite as code: which table, how to read it, its expectations and its severity."""

    name: str
    #: SQL that returns the rows to validate (e.g. current file versions only for raw tables).
    query: str
    #: Builds the list of GX expectation objects (a function so GX is imported only when needed).
    expectations: Any
    #: Critical suites block downstream assets when they fail; warnings only report.
    critical: bool = True
    #: Columns that identify a row in failure samples.
    row_id: tuple[str, ...] = ()
    description: str = ""


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[dict[str, Any]] = field(default_factory=list)
    details: str = ""

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = f": {self.unexpected_count} rows" if self.unexpected_count is not None else ""
        return f"{self.expectation}{where}{count}{(' ' + self.details) if self.details else ''}"


@dataclass
class ValidationSummary:
    suite: str
    success: bool
    evaluated: int
    n_rows: int
    failed: list[FailedExpectation]
    critical: bool
    docs_index: Path | None = None

    def failures_markdown(self) -> str:
        if not self.failed:
            return "_all expectations met_"
        lines = ["| expectation | column | rows | sample |", "| --- | --- | --- | --- |"]
        for failure in self.failed:
            sample = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in failure.sample[:5])
            lines.append(
                f"| {failure.expectation} | {failure.column or ''} | {failure.unexpected_count or ''} | {sample} |"
            )
        return "\n".join(lines)


@cache
def _context(project_dir: str) -> Any:
    import great_expectations as gx

    Path(project_dir).mkdir(parents=True, exist_ok=True)
    return gx.get_context(mode="file", project_root_dir=project_dir)


class QualityRunner:
    """Validates DataFrames against suites in one GX file context and builds its Data Docs."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = Path(project_dir)
        self.context = _context(str(self.project_dir.resolve()))

    @property
    def docs_index(self) -> Path:
        return self.project_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

    def validate(self, spec: SuiteSpec, frame: pd.DataFrame) -> ValidationSummary:
        import great_expectations as gx

        context = self.context
        source = context.data_sources.add_or_update_pandas("warehouse")
        asset_name = spec.name
        try:
            asset = source.get_asset(asset_name)
        except LookupError:
            asset = source.add_dataframe_asset(asset_name)
        batch = (
            asset.batch_definitions[0] if asset.batch_definitions else asset.add_batch_definition_whole_dataframe("all")
        )
        suite = gx.ExpectationSuite(name=spec.name, expectations=list(spec.expectations()))
        suite = context.suites.add_or_update(suite)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)
        )
        row_id = [c for c in spec.row_id if c in frame.columns]
        result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_ROWS}
        if row_id:
            result_format["unexpected_index_column_names"] = row_id
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name=spec.name, validation_definitions=[definition], actions=[], result_format=result_format)
        )
        # GX's progress bars go to stderr for every suite; they are noise in Dagster logs.
        os.environ.setdefault("GX_PROGRESS_BARS", "false")
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        run = next(iter(result.run_results.values()))
        failed = [_failure(r, row_id) for r in run.results if not r.success]
        return ValidationSummary(
            suite=spec.name,
            success=bool(result.success),
            evaluated=len(run.results),
            n_rows=len(frame),
            failed=failed,
            critical=spec.critical,
            docs_index=self.docs_index,
        )

    def build_docs(self) -> Path:
        self.context.build_data_docs()
        return self.docs_index


def _failure(result: Any, row_id: list[str]) -> FailedExpectation:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.get("column") or kwargs.get("column_A") or None
    if column is None and "column_list" in kwargs:
        column = ", ".join(kwargs["column_list"])
    details = result.result or {}
    sample: list[dict[str, Any]] = []
    index_list = details.get("partial_unexpected_index_list") or details.get("unexpected_index_list") or []
    for entry in index_list[:SAMPLE_ROWS]:
        if isinstance(entry, dict):
            sample.append({k: _plain(v) for k, v in entry.items()})
        else:
            sample.append({"index": _plain(entry)})
    if not sample:
        values = details.get("partial_unexpected_list") or []
        sample = [{"value": _plain(v)} for v in values[:SAMPLE_ROWS]]
    exception = (result.exception_info or {}).get("exception_message") if result.exception_info else None
    observed = details.get("observed_value")
    note = f"(observed {observed})" if observed is not None and not index_list else ""
    if exception:
        note = f"(error: {exception})"
    return FailedExpectation(
        expectation=config.type,
        column=column,
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        sample=sample,
        details=note,
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
