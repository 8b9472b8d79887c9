"""Running great-expectations suites over warehouse tables, and the Data Docs site QA reads.

Validation reads a table from DuckDB into a DataFrame and validates it with GX's pandas data source:
GX 1.x's SQL route over duckdb_engine is broken (see docs/quality.md).

Speed. GX's cost is almost all fixed overhead per expectation (metric graphs, pydantic configuration
objects), not data size: measured ~10 ms per expectation with ``BOOLEAN_ONLY`` results, ~20 ms with
``COMPLETE`` ones, the same on 5 rows as on 100,000. A file-backed GX context also re-reads its YAML
configuration on every store access (~0.5 s per suite through checkpoints). So the runner

* uses an *ephemeral* context whose stores are plain folders (no YAML re-reads; suites, results and
  Data Docs still persist beside the warehouse, so the history of past validations is kept);
* validates each suite's batch directly (no checkpoint or validation-definition objects to store);
* validates in two passes: every expectation with ``BOOLEAN_ONLY`` results, then only the failed ones again
  with ``COMPLETE`` results and the suite's row-id columns, so failure pages, samples and the quarantine
  name every offending row while passing suites cost the minimum;
* in the first pass, skips GX for the expectations a vectorised pre-screen *proves* to hold (the same pandas
  operation GX's metric runs, on the rows GX considers) and gives them the result GX gives a passing expectation
  in that format; GX evaluates every other expectation (any doubt, any failure), so its verdicts stand
  (:mod:`expectations._gx_speed`, with the GX settings that make it do less per expectation and per page);
* renders only the pages of new validations, straight from their stored results (no site builder listing the
  whole history per call), and writes its own index (:mod:`expectations.datadocs`) from a small ledger, instead
  of GX's index, which re-reads every stored result and grows slower with each run.

Severity. Each expectation carries GX's own ``severity`` (``critical`` by default, ``warning`` where a suite
marks it); a suite with ``critical=False`` downgrades all of its expectations to warnings. A validation
*blocks* when a critical expectation failed; failed warnings are reported and quarantined only.

Privacy. Values of direct identifiers (MRN, name, initials, birth date) are redacted before validation, and in
blinded runs every treatment-arm value other than the neutral placeholder is masked, so neither can reach
a Data Docs page, a quarantine row, check metadata or a log line.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from expectations import _gx_speed

logger = logging.getLogger(__name__)

# GX must not try to send usage statistics from this offline machine; set before its first import.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

#: Offending rows shown in check metadata, logs and descriptions.
SAMPLE_ROWS = 10
#: Offending rows kept per failed expectation (quarantine); beyond it one summary row says how many more.
MAX_FLAGGED_ROWS = 10_000
#: Result format of the first pass over every expectation (see the module docstring for the measurements).
FIRST_PASS_FORMAT = "BOOLEAN_ONLY"
#: The value blinded builds write into arm columns (``marts.adsl.arm_code``).
BLINDED_PLACEHOLDER = "BLINDED"
#: Columns that carry the randomised arm somewhere in the warehouse (compared case-insensitively).
ARM_COLUMNS: frozenset[str] = frozenset(
    {"arm", "arm_code", "actarm", "trt01p", "trt01a", "trtp", "trta", "treatment_arm", "randomised_arm"}
)
REDACTED = "<redacted>"
#: The GX data asset every table is validated as (the suite name says which table).
DATA_ASSET = "warehouse table"
MASKED = "<masked: blinded run>"
#: Severities of GX's ``FailureSeverity``; anything else counts as critical.
CRITICAL, WARNING = "critical", "warning"


@dataclass
class SuiteSpec:
    """A data-quality suite as code: which table, how to read it, its expectations and its severity."""

    name: str
    #: SQL that returns the rows to validate (e.g. current file versions only for raw tables).
    query: str
    #: Builds the list of GX expectation objects (a function so GX is imported only when needed).
    expectations: Callable[[], Iterable[Any]]
    #: Critical suites block downstream assets when a critical expectation fails; a suite with
    #: ``critical=False`` only warns, whatever its expectations say.
    critical: bool = True
    #: Columns that identify a row in failure samples and the quarantine.
    row_id: tuple[str, ...] = ()
    description: str = ""
    #: The suite reads restricted data (the randomisation list): never validated in a blinded run.
    restricted: bool = False

    @property
    def layer(self) -> str:
        """``raw`` of ``raw.crf_ae``."""
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        """``labs`` of ``marts.labs`` and of ``marts.labs.plausibility`` (a second suite on the same table)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    @property
    def asset(self) -> str:
        """The Dagster asset key of the table, as a path (``raw/crf_ae``)."""
        return f"{self.layer}/{self.table}"

    @property
    def aspect(self) -> str:
        """``plausibility`` of ``marts.labs.plausibility``; empty for a table's main suite."""
        return ".".join(self.name.split(".")[2:])


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[dict[str, Any]] = field(default_factory=list)
    details: str = ""
    severity: str = CRITICAL
    #: Every offending row (up to MAX_FLAGGED_ROWS): row-id columns plus the offending value(s).
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: What the expectation demands, in words (its GX description, else its type and arguments).
    rule: str = ""

    @property
    def blocking(self) -> bool:
        return self.severity == CRITICAL

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = f": {self.unexpected_count} rows" if self.unexpected_count is not None else ""
        details = f" {self.details}" if self.details else ""
        return f"[{self.severity}] {self.rule or self.expectation}{where}{count}{details}"


@dataclass
class ValidationSummary:
    suite: str
    success: bool
    evaluated: int
    n_rows: int
    failed: list[FailedExpectation]
    critical: bool
    docs_index: Path | None = None
    #: The Data Docs page of this validation (set once the docs are built).
    docs_page: Path | None = None
    seconds: float = 0.0
    description: str = ""
    #: GX's key of the stored result (used to render its page).
    result_key: Any = None
    run_name: str = ""
    validated_at: dt.datetime | None = None
    #: Set when the table could not be read (the suite's query failed); nothing was validated.
    error: str = ""
    #: Whether an unreadable table blocks (a missing column does; a table its asset dropped on purpose does not).
    error_blocks: bool = True
    #: The Dagster asset of the table (``raw/crf_ae``).
    asset: str = ""

    @property
    def blocking_failure(self) -> bool:
        return bool(self.error and self.error_blocks and self.critical) or any(f.blocking for f in self.failed)

    @property
    def status(self) -> str:
        """``passed``, ``warning`` (only non-blocking expectations failed) or ``failed`` (blocking)."""
        if self.blocking_failure:
            return "failed"
        return "warning" if (self.failed or self.error) else "passed"

    @property
    def flagged_rows(self) -> int:
        return sum(f.unexpected_count or 0 for f in self.failed)

    def failures_markdown(self) -> str:
        if self.error:
            return f"_not validated: {self.error}_"
        if not self.failed:
            return "_all expectations met_"
        lines = ["| severity | expectation | column | rows | sample |", "| --- | --- | --- | --- | --- |"]
        for failure in self.failed:
            sample = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in failure.sample[:5])
            lines.append(
                f"| {failure.severity} | {_md(failure.rule or failure.expectation)} | {failure.column or ''} | "
                f"{failure.unexpected_count if failure.unexpected_count is not None else ''} | {_md(sample)} |"
            )
        return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------------------------------------ reading


#: DuckDB types whose ``.df()`` conversion is the same straight or through Arrow (checked on every suite's query).
_ARROW_SAFE_TYPES = frozenset(
    {"VARCHAR", "BOOLEAN", "INTEGER", "BIGINT", "HUGEINT", "DOUBLE", "DATE", "TIMESTAMP", '"NULL"'}
)


def read_frame(con: Any, query: str) -> pd.DataFrame:
    """The rows of ``query`` as the DataFrame ``con.execute(query).df()`` returns, about twice as fast.

    DuckDB's ``.df()`` turns every text value into a Python string that pandas then packs into its Arrow-backed
    ``str`` dtype again: most of the time of reading a table. Here the result is fetched once as Arrow; text
    (``VARCHAR``) columns go to pandas' ``str`` dtype straight from Arrow, every other column through DuckDB's own
    ``.df()`` conversion, so dtypes and values are the same as ``.df()``'s (columns entirely NULL included).
    """
    import duckdb

    relation = con.sql(query)
    types = [str(t) for t in relation.types]
    if not set(types) <= _ARROW_SAFE_TYPES or "VARCHAR" not in types:
        return relation.df()  # e.g. an ENUM (a pandas category from .df(), text through Arrow)
    table = relation.to_arrow_table()
    text = [i for i, t in enumerate(types) if t == "VARCHAR" and table.column(i).null_count < table.num_rows]
    if not text:
        return duckdb.from_arrow(table, connection=con).df()
    others = [i for i in range(table.num_columns) if i not in set(text)]
    rest = duckdb.from_arrow(table.select(others), connection=con).df() if others else None
    columns: dict[str, Any] = {}
    for i, name in enumerate(table.column_names):
        columns[name] = table.column(i).to_pandas() if i in text else rest[name]  # type: ignore[index]
    frame = pd.DataFrame(columns)
    if len(frame.columns) != table.num_columns:  # duplicate column names: keep DuckDB's own conversion
        return duckdb.from_arrow(table, connection=con).df()
    return frame


# ------------------------------------------------------------------------------------------------ privacy


def protect(frame: pd.DataFrame, *, blinded: bool) -> pd.DataFrame:
    """Redact direct identifiers and, in blinded runs, mask arm values before anything is validated.

    Nullness is kept (a missing value stays missing), so completeness expectations still work on the
    redacted columns; the blinded placeholder is kept so a suite can check that blinding held.
    """
    from analysis.contract import DIRECT_IDENTIFIERS

    identifiers = {c.lower() for c in DIRECT_IDENTIFIERS}
    replace: dict[str, pd.Series] = {}
    for column in frame.columns:
        name = str(column).lower()
        if name in identifiers:
            replace[column] = frame[column].where(frame[column].isna(), REDACTED)
        elif blinded and name in ARM_COLUMNS:
            values = frame[column]
            keep = values.isna() | (values.astype("string") == BLINDED_PLACEHOLDER)
            replace[column] = values.astype(object).where(keep, MASKED)
    if not replace:
        return frame
    return frame.assign(**replace)


# ------------------------------------------------------------------------------------------------ GX context


@cache
def _context(root: str) -> Any:
    """An ephemeral GX context whose suites, results and Data Docs live in plain folders under ``root``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        FilesystemStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _gx_speed.install()
    Path(root).mkdir(parents=True, exist_ok=True)
    defaults = FilesystemStoreBackendDefaults(root_directory=root)
    site = defaults.data_docs_sites[defaults.data_docs_site_name]
    # QA reads these pages: no "how to" call-to-action buttons for GX Cloud.
    site["show_how_to_buttons"] = False
    config = DataContextConfig(
        store_backend_defaults=defaults,
        # The progress bars go to stderr for every suite; noise in Dagster logs.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


class QualityRunner:
    """Validates DataFrames against suites in one GX context and renders their Data Docs pages."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = Path(project_dir)
        self.root = (self.project_dir / "gx").resolve()
        self.context = _context(str(self.root))
        self._suites: dict[str, tuple[str, Any]] = {}
        self._batches: dict[str, Any] = {}
        self._saved_suites: set[str] = set()
        self._site_builder: Any = None

    @property
    def site_dir(self) -> Path:
        return self.root / "uncommitted" / "data_docs" / "local_site"

    @property
    def docs_index(self) -> Path:
        return self.site_dir / "index.html"

    # -- suites and batches, cached per process

    def _suite(self, spec: SuiteSpec) -> Any:
        import great_expectations as gx

        expectations = list(spec.expectations())
        for expectation in expectations:
            if not spec.critical:
                expectation.severity = WARNING
        fingerprint = hashlib.sha256(
            json.dumps([e.configuration.to_json_dict() for e in expectations], sort_keys=True, default=str).encode()
        ).hexdigest()
        cached = self._suites.get(spec.name)
        if cached and cached[0] == fingerprint:
            return cached[1]
        stored = self._stored_suite(spec.name)
        if stored is not None and (stored.meta or {}).get("fingerprint") == fingerprint:
            # Unchanged since an earlier run: reuse it (its expectations keep their ids, its page stays).
            self._suites[spec.name] = (fingerprint, stored)
            return stored
        suite = gx.ExpectationSuite(
            name=spec.name,
            expectations=expectations,
            meta={"description": spec.description, "critical": spec.critical, "fingerprint": fingerprint},
        )
        # Saving gives every expectation an id (results are matched to expectations by it) and puts the suite
        # in the expectations store, so Data Docs can show what the suite checks.
        suite = self.context.suites.add_or_update(suite)
        self._suites[spec.name] = (fingerprint, suite)
        self._saved_suites.add(spec.name)
        return suite

    def _stored_suite(self, name: str) -> Any:
        try:
            return self.context.suites.get(name)
        except Exception:  # GX raises its own DataContextError subclasses for a missing suite
            return None

    def _batch_definition(self) -> Any:
        """One pandas data asset for every table: each new asset or data source re-serialises the context's
        datasource configuration (~0.25 s apiece), and the page names the suite (= the table) anyway."""
        definition = self._batches.get("")
        if definition is None:
            source = self.context.data_sources.add_or_update_pandas("warehouse")
            try:
                asset = source.get_asset(DATA_ASSET)
            except LookupError:
                asset = source.add_dataframe_asset(DATA_ASSET)
            definition = (
                asset.batch_definitions[0]
                if asset.batch_definitions
                else asset.add_batch_definition_whole_dataframe("whole table")
            )
            self._batches[""] = definition
        return definition

    # -- validation

    def validate(
        self,
        spec: SuiteSpec,
        frame: pd.DataFrame,
        *,
        run_name: str | None = None,
        run_time: dt.datetime | None = None,
        blinded: bool = True,
    ) -> ValidationSummary:
        """Validate ``frame`` against ``spec``, store the result (Data Docs history) and summarise failures."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        started = time.perf_counter()
        frame = protect(frame, blinded=blinded)
        suite = self._suite(spec)
        batch = self._batch_definition().get_batch(batch_parameters={"dataframe": frame})
        row_id = [c for c in spec.row_id if c in frame.columns]
        with _gx_speed.cached_configurations():
            result = self._first_pass(suite, batch, frame)
            by_id = {e.id: e for e in suite.expectations}
            for i, first in enumerate(result.results):
                expectation = None if first.success else by_id.get(first.expectation_config.id)
                if expectation is None:  # passed (or, impossible for a saved suite, unmatched): keep the cheap result
                    continue
                # Second pass, failed expectations only: every offending row with the suite's row-id columns.
                result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_ROWS}
                if row_id:
                    result_format["unexpected_index_column_names"] = row_id
                result.results[i] = batch.validate(expectation, result_format=result_format)

        now = dt.datetime.now(dt.UTC)
        run_id = RunIdentifier(run_name=run_name or f"adhoc-{now:%Y%m%dT%H%M%S}", run_time=run_time or now)
        result.meta["run_id"] = run_id
        result.meta["validation_time"] = now
        result.meta["batch_parameters"] = {"dataframe": f"<{len(frame)} rows from the warehouse>"}
        result.meta["suite_description"] = spec.description
        # Shown as "Data asset" on the page: the Dagster asset the table belongs to.
        result.meta["batch_spec"] = {**(result.meta.get("batch_spec") or {}), "data_asset_name": spec.asset}
        suite_key = ExpectationSuiteIdentifier(name=spec.name)
        key = ValidationResultIdentifier(
            batch_identifier=_safe_segment(spec.name), expectation_suite_identifier=suite_key, run_id=run_id
        )
        self.context.validation_results_store.store_validation_results(result, key, suite_key)
        failed = [_failure(r, row_id, spec.critical) for r in result.results if not r.success]
        return ValidationSummary(
            suite=spec.name,
            success=bool(result.success),
            evaluated=len(result.results),
            n_rows=len(frame),
            failed=failed,
            critical=spec.critical,
            docs_index=self.docs_index,
            seconds=round(time.perf_counter() - started, 3),
            description=spec.description,
            result_key=key,
            run_name=run_id.run_name,
            validated_at=now,
            asset=spec.asset,
        )

    def _first_pass(self, suite: Any, batch: Any, frame: pd.DataFrame) -> Any:
        """Every expectation of ``suite`` with ``BOOLEAN_ONLY`` results, in the suite's order.

        Expectations the pre-screen proves to hold (:func:`expectations._gx_speed.proven_passes`) get the result GX
        itself gives a passing expectation in this format (success, no details); GX evaluates all the others. When
        every expectation is proven, GX is not called and the suite result is built as GX builds it, from the batch.
        """
        import great_expectations as gx
        from great_expectations.core import ExpectationValidationResult
        from great_expectations.validator.validation_statistics import calc_validation_statistics

        configurations = [e.configuration for e in suite.expectations]
        proven = _gx_speed.proven_passes(configurations, frame)
        evaluate = [c for c in configurations if c.id not in proven]
        if evaluate or not configurations:
            checked = gx.ExpectationSuite(name=suite.name, expectations=evaluate, meta=dict(suite.meta or {}))
            result = batch.validate(checked, result_format={"result_format": FIRST_PASS_FORMAT})
            if not proven:
                return result
        else:  # every expectation holds: the suite result GX builds, from the batch GX would validate
            from great_expectations import __version__ as gx_version
            from great_expectations.core import ExpectationSuiteValidationResult
            from great_expectations.util import convert_to_json_serializable

            result = ExpectationSuiteValidationResult(
                success=True,
                results=[],
                suite_name=suite.name,
                meta={
                    "great_expectations_version": gx_version,
                    "batch_spec": convert_to_json_serializable(batch.batch_spec),
                    "batch_markers": batch.batch_markers,
                    "active_batch_definition": convert_to_json_serializable(batch.batch_definition),
                },
                batch_id=batch.id,
            )
        by_id = {r.expectation_config.id: r for r in result.results}
        batch_id = batch.id
        results = []
        for config in configurations:
            evaluated = by_id.pop(config.id, None)
            if evaluated is None:
                # What GX returns for a passing expectation with BOOLEAN_ONLY results: its configuration with the
                # batch id, success, no result details.
                config = copy.copy(config)  # the cached configuration of the expectation stays as it is
                config.kwargs = {"batch_id": batch_id, **config.kwargs} if batch_id else dict(config.kwargs)
                evaluated = ExpectationValidationResult(success=True, expectation_config=config, result={}, meta={})
            results.append(evaluated)
        results.extend(by_id.values())
        statistics = calc_validation_statistics(results)
        result.results = results
        result.success = statistics.success
        result.statistics = {
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        }
        return result

    def unreadable(
        self, spec: SuiteSpec, error: str, *, run_name: str | None = None, blocks: bool = True
    ) -> ValidationSummary:
        """The summary of a suite whose table could not be read (nothing validated, nothing stored)."""
        return ValidationSummary(
            suite=spec.name,
            success=False,
            evaluated=0,
            n_rows=0,
            failed=[],
            critical=spec.critical,
            docs_index=self.docs_index,
            description=spec.description,
            run_name=run_name or "",
            validated_at=dt.datetime.now(dt.UTC),
            error=error,
            error_blocks=blocks,
            asset=spec.asset,
        )

    # -- Data Docs

    def page_for(self, summary: ValidationSummary) -> Path | None:
        """The Data Docs page of a stored validation: the site's file store lays pages out by the result key
        (suite name parts, run name, run time, batch id). Derived here, not through GX's URL lookup, which builds
        a whole site builder per call (~25 ms)."""
        if summary.result_key is None:
            return None
        *folders, name = summary.result_key.to_tuple()
        return self.site_dir.joinpath("validations", *folders, f"{name}.html")

    def _render_pages(self, keys: Sequence[Any]) -> None:
        """Render the Data Docs pages of ``keys`` (stored suites and validation results) exactly as GX's site
        builder does for ``build_data_docs(resource_identifiers=keys)``, without what makes that call slow: it
        builds a new site builder per call, lists every key of every store (the whole history, growing with each
        run) and compares each with every requested key, and copies the static assets every time."""
        from great_expectations.core import ExpectationSuite
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            SiteSectionIdentifier,
        )

        if not keys:
            return
        builder = self._site_builder
        if builder is None:
            site = self.context.variables.data_docs_sites or {}
            name, config = next(iter(site.items()))
            builder = self._site_builder = self.context._init_site_builder_for_data_docs_site_creation(name, config)
            builder.target_store.copy_static_assets()
        sections = builder.site_section_builders
        for key in keys:
            suite_page = isinstance(key, ExpectationSuiteIdentifier)
            section = sections["expectations" if suite_page else "validations"]
            try:
                resource = section.source_store.get(key)
                if suite_page:
                    resource = ExpectationSuite(**resource)
                rendered = section.renderer_class.render(resource)
                html = section.view_class.render(
                    rendered, data_context_id=section.data_context_id, show_how_to_buttons=section.show_how_to_buttons
                )
                section.target_store.set(
                    SiteSectionIdentifier(site_section_name=section.name, resource_identifier=key), html
                )
            except Exception:  # as GX's site builder: a page that cannot be rendered is logged, the others built
                logger.exception("Data Docs: the page of %s could not be rendered", key)

    def build_docs(
        self,
        summaries: Sequence[ValidationSummary] | None = None,
        *,
        layer: str = "",
        assets: dict[str, str] | None = None,
        blinded: bool | None = None,
    ) -> Path:
        """Render the pages of ``summaries`` (all stored results when None) and rewrite the index.

        ``assets`` maps suite name -> Dagster asset key (shown in the index); ``layer`` labels the entries.
        """
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        from expectations import datadocs

        suite_pages: list[Path] = []
        if summaries is None:
            self.context.build_data_docs(build_index=False)
            summaries = []
            suite_pages = list((self.site_dir / "expectations").rglob("*.html"))
        else:
            keys: list[Any] = [s.result_key for s in summaries if s.result_key is not None]
            for name in sorted(self._saved_suites):
                keys.append(ExpectationSuiteIdentifier(name=name))
                *folders, leaf = name.split(".")
                suite_pages.append(self.site_dir.joinpath("expectations", *folders, f"{leaf}.html"))
            self._saved_suites.clear()
            self._render_pages(keys)
        for summary in summaries:
            summary.docs_page = self.page_for(summary)
            summary.docs_index = self.docs_index
        datadocs.style_pages(self.site_dir, [*suite_pages, *(s.docs_page for s in summaries if s.docs_page)])
        datadocs.record(self.site_dir, summaries, layer=layer, assets=assets or {}, blinded=blinded)
        datadocs.write_index(self.site_dir)
        return self.docs_index


def _safe_segment(name: str) -> str:
    return name.replace("/", "_")


def _failure(result: Any, row_id: list[str], suite_critical: bool) -> FailedExpectation:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.get("column") or kwargs.get("column_A") or None
    if column and kwargs.get("column_B"):
        column = f"{column}, {kwargs['column_B']}"
    if column is None and "column_list" in kwargs:
        column = ", ".join(kwargs["column_list"])
    severity = str(getattr(config, "severity", None) or config.get("severity") or CRITICAL)
    severity = severity.split(".")[-1].lower()
    if not suite_critical or severity not in (CRITICAL, WARNING):
        severity = WARNING if not suite_critical else CRITICAL
    details = result.result or {}
    index_list = details.get("unexpected_index_list") or details.get("partial_unexpected_index_list") or []
    rows: list[dict[str, Any]] = []
    for entry in index_list[:MAX_FLAGGED_ROWS]:
        if isinstance(entry, dict):
            rows.append({str(k): _plain(v) for k, v in entry.items()})
        else:
            rows.append({"row_index": _plain(entry)})
    if not rows:
        values = details.get("unexpected_list") or details.get("partial_unexpected_list") or []
        rows = [{"value": _plain(v)} for v in values[:MAX_FLAGGED_ROWS]]
    exception = (result.exception_info or {}).get("exception_message") if result.exception_info else None
    observed = details.get("observed_value")
    note = f"(observed {_short(observed)})" if observed is not None and not rows else ""
    if exception:
        note = f"(error: {exception})"
    return FailedExpectation(
        expectation=config.type,
        column=column,
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        sample=rows[:SAMPLE_ROWS],
        details=note,
        severity=severity,
        rows=rows,
        rule=getattr(config, "description", None) or _rule_text(config.type, kwargs),
    )


_RULE_ARGS = ("value_set", "min_value", "max_value", "regex", "column_set", "or_equal", "mostly", "value")


def _rule_text(kind: str, kwargs: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={_short(kwargs[k])}" for k in _RULE_ARGS if kwargs.get(k) is not None)
    return f"{kind}({args})" if args else kind


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value if isinstance(value, (int, float, str, bool)) else str(value)
