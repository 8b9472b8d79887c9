"""Raw-layer suites: what must hold for every current file version as delivered.

Raw values are kept as delivered (trailing spaces, mixed case, missing markers), so these suites check
structure, keys and physically impossible values only; value sets are checked after cleaning, in staging
and marts. Rows are identified by their lineage (file and row number) in failure reports.
"""

from __future__ import annotations

from typing import Any

from analysis import contract
from expectations.runner import SuiteSpec

ROW_ID = ("_source_file", "_row_number")


def current_rows(table: str) -> str:
    """Rows of a raw table that belong to the current version of their file."""
    return (
        f"select t.* from raw.{table} t join raw.current_files c "
        "on t._source_file = c.path and t._file_sha256 = c.sha256 and t._load_id = c.load_id"
    )


def _lineage(gxe: Any) -> list[Any]:
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("_source_file", "_row_number", "_file_sha256")]


def _crf_suite(form: contract.CrfForm) -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectTableColumnsToMatchSet(column_set=list(form.required), exact_match=False),
            *[gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1) for c in contract.CRF_KEY_COLUMNS],
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "_row_number"]),
            *_lineage(gxe),
        ]

    return SuiteSpec(
        name=f"raw.{form.raw_table}",
        query=current_rows(form.raw_table),
        expectations=build,
        critical=True,
        row_id=ROW_ID,
        description=f"CRF form {form.code}: required columns present, study/site/subject filled on every row.",
    )


def _seq_counts() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="sample_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            # Stored sparse: only non-zero counts are rows, so every count is a positive integer.
            gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "sample_id", "feature_id"]),
            *_lineage(gxe),
        ]

    return SuiteSpec(
        "raw.seq_counts",
        current_rows("seq_counts"),
        build,
        row_id=("_source_file", "sample_id", "feature_id"),
        description="16S counts: positive integers, one per sample and feature in each file.",
    )


def _seq_samples() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="sample_id"),
            gxe.ExpectColumnValuesToBeBetween(column="library_size", min_value=0),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "sample_id"]),
        ]

    return SuiteSpec(
        "raw.seq_samples",
        current_rows("seq_samples"),
        build,
        row_id=("_source_file", "sample_id"),
        description="Sequencing samples: one per feature-table file, non-negative library sizes.",
    )


def _seq_manifest() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="sample_id"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["batch_id", "sample_id"]),
            *_lineage(gxe),
        ]

    return SuiteSpec(
        "raw.seq_manifest",
        current_rows("seq_manifest"),
        build,
        row_id=ROW_ID,
        description="Sequencing manifests: every sequencing sample listed once per batch.",
    )


def _mtb_intensities() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="injection_id"),
            gxe.ExpectColumnValuesToBeBetween(column="intensity", min_value=0),
        ]

    return SuiteSpec(
        "raw.mtb_intensities",
        current_rows("mtb_intensities"),
        build,
        row_id=("_source_file", "feature_id", "injection_id"),
        description="Metabolomics intensities: observed values are non-negative.",
    )


def _mtb_injections() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="injection_id"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["batch_id", "injection_id"]),
            *_lineage(gxe),
        ]

    return SuiteSpec(
        "raw.mtb_injections",
        current_rows("mtb_injections"),
        build,
        row_id=ROW_ID,
        description="Injection lists: every injection listed once per batch.",
    )


def _mtb_features() -> SuiteSpec:
    def build() -> list[Any]:
        import great_expectations.expectations as gxe

        return [
            gxe.ExpectColumnValuesToNotBeNull(column="feature_id"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["_source_file", "feature_id", "ion_mode"]),
            *_lineage(gxe),
        ]

    return SuiteSpec(
        "raw.mtb_features",
        current_rows("mtb_features"),
        build,
        row_id=ROW_ID,
        description="Metabolomics features: identified by feature id within ion mode.",
    )


def raw_suites() -> dict[str, SuiteSpec]:
    """Suite per raw table, keyed by table name."""
    suites = {form.raw_table: _crf_suite(form) for form in contract.CRF_FORMS.values()}
    for spec in (
        _seq_counts(),
        _seq_samples(),
        _seq_manifest(),
        _mtb_intensities(),
        _mtb_injections(),
        _mtb_features(),
    ):
        suites[spec.name.split(".", 1)[1]] = spec
    return suites
