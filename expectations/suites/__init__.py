"""Suites per layer: ``raw`` (contract structure of delivered files), later staging, marts and analysis."""

from expectations.suites.raw import raw_suites

__all__ = ["raw_suites"]
