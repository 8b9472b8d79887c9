"""Data-quality suites (great-expectations 1.x) as code, and the runner that validates warehouse tables."""

from expectations.runner import FailedExpectation, QualityRunner, SuiteSpec, ValidationSummary

__all__ = ["FailedExpectation", "QualityRunner", "SuiteSpec", "ValidationSummary"]
