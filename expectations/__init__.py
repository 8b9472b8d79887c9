"""Data-quality suites (great-expectations 1.x) as code, the runner that validates warehouse tables, the Data Docs
index (:mod:`expectations.datadocs`) and the quarantine (:mod:`expectations.quarantine`). See docs/quality.md."""

from expectations.runner import FailedExpectation, QualityRunner, SuiteSpec, ValidationSummary

__all__ = ["FailedExpectation", "QualityRunner", "SuiteSpec", "ValidationSummary"]
